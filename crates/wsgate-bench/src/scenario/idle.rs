//! `idle`: open N connections, hold them, report the server's RSS per connection, the kernel's
//! socket memory per connection end, and the connect rate and times.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Common, bounded};
use crate::client::{Target, Ws};
use crate::kernelmem;
use crate::procstat::{CpuMeter, rss_kib};
use crate::redisstat::redis_fields;
use crate::stats::{Latencies, cpu_fields, round3};

/// `idle` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Seconds to hold the connections before reading RSS and the kernel's socket memory.
    #[arg(long, default_value_t = 2)]
    pub hold_secs: u64,
    /// After that, hold them until this file exists (or the deadline passes): lets a script
    /// measure something else, e.g. a cluster's Redis, while they are open.
    #[arg(long)]
    pub hold_until: Option<PathBuf>,
}

/// Connections that opened, how long each took, and the first of the failures.
struct Opened {
    held: Vec<Ws>,
    latencies: Latencies,
    failed: usize,
    first_error: Option<String>,
}

/// Opens `args.connections`, `args.concurrency` at a time.
async fn open_all(target: &Arc<Target>, args: &Args) -> Opened {
    let held: Arc<Mutex<Vec<Ws>>> = Arc::new(Mutex::new(Vec::with_capacity(args.connections)));
    let results = bounded(args.connections, args.concurrency, |i| {
        let target = target.clone();
        let held = held.clone();
        async move {
            let began = Instant::now();
            let ws = target.connect(i).await?;
            let took = began.elapsed();
            held.lock().await.push(ws);
            Ok(took)
        }
    })
    .await;
    let mut opened = Opened {
        held: std::mem::take(&mut *held.lock().await),
        latencies: Latencies::default(),
        failed: 0,
        first_error: None,
    };
    for result in results {
        match result {
            Ok(took) => opened.latencies.push(took),
            Err(e) => {
                opened.failed += 1;
                opened.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    opened
}

/// Waits until `path` exists or `until`.
async fn wait_for_file(path: &Path, until: Instant) {
    while !path.exists() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run(common: &Common, args: &Args) -> anyhow::Result<Value> {
    let target = Arc::new(Target::new(&common.url, common.sources)?);
    let pid = common.pid();
    let rss_before = pid.map(rss_kib).transpose()?;
    let kernel_before = kernelmem::Snapshot::take();
    let redis = common.redis_meter().await?;
    let meter = CpuMeter::start(pid);
    let start = Instant::now();
    let Opened {
        held,
        mut latencies,
        failed,
        first_error,
    } = open_all(&target, args).await;
    let wall = start.elapsed();
    let cpu = meter.stop(pid);
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let rss_after = pid.map(rss_kib).transpose()?;
    let kernel_after = kernelmem::Snapshot::take();
    let redis = redis.stop().await?;
    let opened = latencies.len();

    let mut out = common.header("idle");
    out.insert("connections".into(), json!(opened));
    out.insert("failed".into(), json!(failed));
    if let Some(e) = first_error {
        out.insert("first_error".into(), json!(e));
    }
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        out.insert("rss_before_kib".into(), json!(before));
        out.insert("rss_after_kib".into(), json!(after));
        out.insert(
            "rss_per_connection_kib".into(),
            json!(round3(
                (after as f64 - before as f64) / opened.max(1) as f64
            )),
        );
    }
    // Client and server share this machine: the kernel holds both ends of every connection.
    kernelmem::fields(&kernel_before, &kernel_after, 2 * opened, &mut out);
    out.insert(
        "connect_rate_per_s".into(),
        json!(round3(opened as f64 / wall.as_secs_f64())),
    );
    latencies.write("connect", &mut out);
    cpu_fields(&mut out, cpu, opened, wall);
    redis_fields(&mut out, redis, opened, "connection");
    if let Some(path) = &args.hold_until {
        wait_for_file(path, start + common.deadline()).await;
    }
    for mut ws in held {
        let _ = ws.close(None).await;
    }
    Ok(Value::Object(out))
}
