//! `idle`: open N connections, hold them, report the server's RSS per connection and the
//! connect rate and times.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Common, bounded};
use crate::client::{Target, Ws};
use crate::procstat::{CpuMeter, rss_kib};
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
    /// Seconds to hold the connections before reading RSS.
    #[arg(long, default_value_t = 2)]
    pub hold_secs: u64,
}

pub async fn run(common: &Common, args: &Args) -> anyhow::Result<Value> {
    let target = Arc::new(Target::new(&common.url, common.sources)?);
    let pid = common.pid();
    let rss_before = pid.map(rss_kib).transpose()?;
    let meter = CpuMeter::start(pid);
    let held: Arc<Mutex<Vec<Ws>>> = Arc::new(Mutex::new(Vec::with_capacity(args.connections)));
    let start = Instant::now();
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
    let wall = start.elapsed();
    let cpu = meter.stop(pid);
    let mut latencies = Latencies::default();
    let mut failed = 0;
    let mut first_error = None;
    for result in results {
        match result {
            Ok(took) => latencies.push(took),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let rss_after = pid.map(rss_kib).transpose()?;
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
    out.insert(
        "connect_rate_per_s".into(),
        json!(round3(opened as f64 / wall.as_secs_f64())),
    );
    latencies.write("connect", &mut out);
    cpu_fields(&mut out, cpu, opened, wall);
    let mut held = held.lock().await;
    for mut ws in held.drain(..) {
        let _ = ws.close(None).await;
    }
    Ok(Value::Object(out))
}
