//! `broadcast`: N receivers, one sender; the time until all N got the message. Uses the target's
//! fan-out API when it has one (`@broadcast`), else N `@connections` POSTs, and says which.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{Common, bounded};
use crate::client::{Target, Ws, connection_url, whoami};
use crate::procstat::{CpuMeter, CpuUsed};
use crate::redisstat::{RedisUsed, redis_fields};
use crate::stats::{Latencies, cpu_fields, round3};

/// How the message reaches everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The fan-out API if the target documents `@broadcast`, else POSTs.
    Auto,
    /// One `POST @broadcast`.
    Broadcast,
    /// One `POST @connections/{id}` per receiver.
    Posts,
}

/// `broadcast` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Base URL of the management API, e.g. http://127.0.0.1:8080/dev.
    #[arg(long)]
    pub mgmt: String,
    /// Receiving connections.
    #[arg(long, default_value_t = 1000)]
    pub receivers: usize,
    /// Broadcasts to time.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// POSTs in flight when sending one POST per receiver.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Connects in flight while setting up.
    #[arg(long, default_value_t = 128)]
    pub connect_concurrency: usize,
    /// How to send.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    /// Send to this group instead (`POST @groups/NAME`); the receivers join it first.
    #[arg(long)]
    pub group: Option<String>,
    /// Connections held open besides the receivers, receiving nothing.
    #[arg(long, default_value_t = 0)]
    pub idle: usize,
}

#[derive(Default)]
struct Round {
    arrivals: Vec<Instant>,
}

/// What the receivers' readers share with the timed rounds: the round's arrivals, and a wake-up
/// per arrival.
#[derive(Default)]
struct Inbox {
    round: Mutex<Round>,
    arrived: Notify,
}

async fn has_fanout(client: &reqwest::Client, mgmt: &str) -> bool {
    let url = format!("{}/@openapi.json", mgmt.trim_end_matches('/'));
    match client.get(url).send().await {
        Ok(response) if response.status().is_success() => response
            .text()
            .await
            .map(|t| t.contains("@broadcast"))
            .unwrap_or(false),
        _ => false,
    }
}

pub async fn run(common: &Common, args: &Args) -> anyhow::Result<Value> {
    let target = Arc::new(Target::new(&common.url, common.sources)?);
    let inbox = Arc::new(Inbox::default());
    let (ids, readers) = connect_receivers(&target, args, &inbox).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let held = hold_idle(&target, args).await?;
    if let Some(group) = &args.group {
        join_group(&client, args, group, &ids).await?;
    }
    let fanout = match args.mode {
        Mode::Auto => has_fanout(&client, &args.mgmt).await,
        Mode::Broadcast => true,
        Mode::Posts => false,
    };
    let urls: Arc<Vec<String>> = Arc::new(
        ids.iter()
            .map(|id| connection_url(&args.mgmt, id))
            .collect(),
    );
    let measured = measure(common, args, &client, fanout, &urls, &inbox).await?;
    for reader in readers {
        reader.abort();
    }
    Ok(result_line(
        common,
        args,
        fanout,
        ids.len(),
        held.len(),
        measured,
    ))
}

/// Connects the receivers, each read by a task that notes when a message arrives: their
/// connection ids and the reading tasks.
async fn connect_receivers(
    target: &Arc<Target>,
    args: &Args,
    inbox: &Arc<Inbox>,
) -> anyhow::Result<(Vec<String>, Vec<tokio::task::JoinHandle<()>>)> {
    let opened = bounded(args.receivers, args.connect_concurrency, |i| {
        let target = target.clone();
        async move {
            let mut ws = target.connect(i).await?;
            let id = whoami(&mut ws).await?;
            Ok((ws, id))
        }
    })
    .await;
    let mut ids = Vec::with_capacity(args.receivers);
    let mut readers = Vec::with_capacity(args.receivers);
    for result in opened {
        let (mut ws, id) = result?;
        ids.push(id);
        let inbox = inbox.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                if matches!(message, Message::Text(_) | Message::Binary(_)) {
                    let now = Instant::now();
                    inbox.round.lock().await.arrivals.push(now);
                    inbox.arrived.notify_one();
                }
            }
        }));
    }
    Ok((ids, readers))
}

/// Bystanders: connected, in no group, reading nothing.
async fn hold_idle(target: &Arc<Target>, args: &Args) -> anyhow::Result<Vec<Ws>> {
    let offset = args.receivers;
    let held = bounded(args.idle, args.connect_concurrency, |i| {
        let target = target.clone();
        async move { target.connect(offset + i).await }
    })
    .await;
    held.into_iter().collect::<anyhow::Result<_>>()
}

/// Puts every receiver into `group`, `concurrency` PUTs in flight.
async fn join_group(
    client: &reqwest::Client,
    args: &Args,
    group: &str,
    ids: &[String],
) -> anyhow::Result<()> {
    let members = Arc::new(ids.to_vec());
    let per_worker = members.len().div_ceil(args.concurrency.max(1));
    let base = format!(
        "{}/@groups/{group}/connections",
        args.mgmt.trim_end_matches('/')
    );
    let joined = bounded(args.concurrency, args.concurrency, |w| {
        let client = client.clone();
        let members = members.clone();
        let base = base.clone();
        async move {
            for id in members.iter().skip(w * per_worker).take(per_worker) {
                client
                    .put(format!("{base}/{}", id.replace('=', "%3D")))
                    .send()
                    .await?
                    .error_for_status()?;
            }
            Ok(())
        }
    })
    .await;
    joined.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(())
}

/// The timed rounds: every delivery's delay, each round's time until its last arrival, how many
/// rounds did not reach everyone, and the server CPU, Redis commands and wall time they took.
struct Measured {
    delays: Latencies,
    round_ms: Vec<f64>,
    incomplete: usize,
    cpu: CpuUsed,
    redis: Option<RedisUsed>,
    wall: Duration,
}

/// Times `rounds` messages to every receiver (`urls` has one per receiver).
async fn measure(
    common: &Common,
    args: &Args,
    client: &reqwest::Client,
    fanout: bool,
    urls: &Arc<Vec<String>>,
    inbox: &Inbox,
) -> anyhow::Result<Measured> {
    let n = urls.len();
    let mut delays = Latencies::default();
    let mut round_ms = Vec::new();
    let mut incomplete = 0;
    let pid = common.pid();
    let redis = common.redis_meter().await?;
    let meter = CpuMeter::start(pid);
    let start = Instant::now();
    for r in 0..args.rounds {
        inbox.round.lock().await.arrivals.clear();
        let payload = format!("broadcast round {r}");
        let t0 = Instant::now();
        send_round(args, client, fanout, urls, payload).await?;
        let arrivals = wait_for_arrivals(inbox, n, t0).await;
        if arrivals.len() < n {
            incomplete += 1;
        }
        let mut last = Duration::ZERO;
        for at in arrivals {
            let delay = at.saturating_duration_since(t0);
            last = last.max(delay);
            delays.push(delay);
        }
        round_ms.push(last.as_secs_f64() * 1000.0);
    }
    let wall = start.elapsed();
    let cpu = meter.stop(pid);
    let redis = redis.stop().await?;
    Ok(Measured {
        delays,
        round_ms,
        incomplete,
        cpu,
        redis,
        wall,
    })
}

/// Sends one round's message: to the group, through the fan-out API, or as one POST per receiver.
async fn send_round(
    args: &Args,
    client: &reqwest::Client,
    fanout: bool,
    urls: &Arc<Vec<String>>,
    payload: String,
) -> anyhow::Result<()> {
    let mgmt = args.mgmt.trim_end_matches('/');
    let one_post = match &args.group {
        Some(group) => Some(format!("{mgmt}/@groups/{group}")),
        None if fanout => Some(format!("{mgmt}/@broadcast")),
        None => None,
    };
    if let Some(url) = one_post {
        client
            .post(url)
            .body(payload)
            .send()
            .await?
            .error_for_status()?;
    } else {
        let per_worker = urls.len().div_ceil(args.concurrency.max(1));
        bounded(args.concurrency, args.concurrency, |w| {
            let client = client.clone();
            let urls = urls.clone();
            let payload = payload.clone();
            async move {
                for url in urls.iter().skip(w * per_worker).take(per_worker) {
                    client
                        .post(url.as_str())
                        .body(payload.clone())
                        .send()
                        .await?;
                }
                Ok(())
            }
        })
        .await;
    }
    Ok(())
}

/// The round's arrival times, once all `n` receivers got the message or 30 s after it was sent.
async fn wait_for_arrivals(inbox: &Inbox, n: usize, t0: Instant) -> Vec<Instant> {
    let wait_until = t0 + Duration::from_secs(30);
    loop {
        if inbox.round.lock().await.arrivals.len() >= n || Instant::now() > wait_until {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), inbox.arrived.notified()).await;
    }
    std::mem::take(&mut inbox.round.lock().await.arrivals)
}

/// The scenario's JSON line.
fn result_line(
    common: &Common,
    args: &Args,
    fanout: bool,
    n: usize,
    idle: usize,
    measured: Measured,
) -> Value {
    let Measured {
        mut delays,
        mut round_ms,
        incomplete,
        cpu,
        redis,
        wall,
    } = measured;
    round_ms.sort_by(f64::total_cmp);
    let median_round = round_ms.get(round_ms.len() / 2).copied().unwrap_or(0.0);
    let mut out = common.header("broadcast");
    out.insert("receivers".into(), json!(n));
    out.insert("rounds".into(), json!(args.rounds));
    out.insert(
        "method".into(),
        json!(match (&args.group, fanout) {
            (Some(_), _) => "one POST @groups/{group}",
            (None, true) => "one POST @broadcast",
            (None, false) => "one POST @connections/{id} per receiver",
        }),
    );
    out.insert("idle".into(), json!(idle));
    out.insert("incomplete_rounds".into(), json!(incomplete));
    out.insert(
        "all_delivered_ms_median".into(),
        json!(round3(median_round)),
    );
    out.insert(
        "deliveries_per_s".into(),
        json!(round3(n as f64 / (median_round / 1000.0).max(1e-9))),
    );
    delays.write("delay", &mut out);
    cpu_fields(&mut out, cpu, n * args.rounds, wall);
    redis_fields(&mut out, redis, args.rounds, "round");
    Value::Object(out)
}
