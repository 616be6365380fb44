//! `post`: K `@connections` POSTs with a given concurrency to live connections: requests per
//! second, latency, and that every posted payload arrived.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{Common, bounded};
use crate::client::{Signer, Target, connection_url, whoami};
use crate::procstat::CpuMeter;
use crate::redisstat::redis_fields;
use crate::stats::{Latencies, cpu_fields, round3};

/// `post` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Base URL of the management API, e.g. http://127.0.0.1:8080/dev.
    #[arg(long)]
    pub mgmt: String,
    /// Receiving connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// POSTs in all.
    #[arg(long, default_value_t = 50_000)]
    pub requests: usize,
    /// POSTs in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Bytes per payload.
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Sign with SigV4: AKID:SECRET.
    #[arg(long)]
    pub sigv4: Option<String>,
}

/// Connects the receivers, each read by a task that counts the messages it gets: their
/// `@connections` URLs and the reading tasks.
async fn connect_receivers(
    target: &Target,
    args: &Args,
    received: &Arc<AtomicUsize>,
) -> anyhow::Result<(Vec<String>, Vec<tokio::task::JoinHandle<()>>)> {
    let mut urls = Vec::with_capacity(args.connections);
    let mut readers = Vec::new();
    for i in 0..args.connections {
        let mut ws = target.connect(i).await?;
        urls.push(connection_url(&args.mgmt, &whoami(&mut ws).await?));
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                if matches!(message, Message::Text(_) | Message::Binary(_)) {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    Ok((urls, readers))
}

/// How many payloads arrived, once all `ok` of them did or 10 s on.
async fn wait_for_arrivals(received: &AtomicUsize, ok: usize) -> usize {
    let wait_until = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < ok && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    received.load(Ordering::Relaxed)
}

/// Sends `args.requests` POSTs round-robin over `urls`, `args.concurrency` in flight, until
/// `deadline`: the latencies of those answered with a success, and how many were not.
async fn send_posts(
    args: &Args,
    client: &reqwest::Client,
    urls: Arc<Vec<String>>,
    signer: Option<Arc<Signer>>,
    deadline: Instant,
) -> (Latencies, usize) {
    let payload = bytes::Bytes::from("p".repeat(args.size));
    let per_worker = args.requests.div_ceil(args.concurrency.max(1));
    let total = args.requests;
    let results = bounded(args.concurrency, args.concurrency, |worker| {
        let client = client.clone();
        let urls = urls.clone();
        let payload = payload.clone();
        let signer = signer.clone();
        async move {
            let mut latencies = Latencies::default();
            let mut errors = 0usize;
            for k in 0..per_worker {
                let n = worker * per_worker + k;
                if n >= total || Instant::now() > deadline {
                    break;
                }
                let url = &urls[n % urls.len()];
                let mut request = client.post(url.as_str()).body(payload.clone());
                if let Some(signer) = &signer {
                    for (name, value) in signer.sign("POST", url, &payload)? {
                        request = request.header(name, value);
                    }
                }
                let sent = Instant::now();
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        latencies.push(sent.elapsed())
                    }
                    _ => errors += 1,
                }
            }
            Ok((latencies, errors))
        }
    })
    .await;
    let mut latencies = Latencies::default();
    let mut errors = 0;
    for (l, e) in results.into_iter().flatten() {
        latencies.extend(l);
        errors += e;
    }
    (latencies, errors)
}

pub async fn run(common: &Common, args: &Args) -> anyhow::Result<Value> {
    let target = Target::new(&common.url, common.sources)?;
    let received = Arc::new(AtomicUsize::new(0));
    let (urls, readers) = connect_receivers(&target, args, &received).await?;
    let signer = args
        .sigv4
        .as_deref()
        .map(Signer::parse)
        .transpose()?
        .map(Arc::new);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let pid = common.pid();
    let redis = common.redis_meter().await?;
    let meter = CpuMeter::start(pid);
    let start = Instant::now();
    let deadline = start + common.deadline();
    let (mut latencies, errors) =
        send_posts(args, &client, Arc::new(urls), signer.clone(), deadline).await;
    let wall = start.elapsed();
    let cpu = meter.stop(pid);
    let redis = redis.stop().await?;
    let ok = latencies.len();
    let arrived = wait_for_arrivals(&received, ok).await;
    for reader in readers {
        reader.abort();
    }
    let mut out = common.header("post");
    out.insert("signed".into(), json!(signer.is_some()));
    out.insert("connections".into(), json!(args.connections));
    out.insert("concurrency".into(), json!(args.concurrency));
    out.insert("requests".into(), json!(ok));
    out.insert("errors".into(), json!(errors));
    out.insert("arrived".into(), json!(arrived));
    out.insert("all_arrived".into(), json!(arrived == ok && errors == 0));
    out.insert(
        "req_per_s".into(),
        json!(round3(ok as f64 / wall.as_secs_f64())),
    );
    latencies.write("latency", &mut out);
    cpu_fields(&mut out, cpu, ok, wall);
    redis_fields(&mut out, redis, ok, "request");
    Ok(Value::Object(out))
}
