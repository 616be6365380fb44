//! `connect`: open and close K connections with a given concurrency: connects per second and the
//! server's CPU per connect + close.

use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Common, bounded};
use crate::client::Target;
use crate::procstat::CpuMeter;
use crate::redisstat::redis_fields;
use crate::stats::{Latencies, cpu_fields, round3};

/// `connect` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Connections to open and close.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Connections in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

pub async fn run(common: &Common, args: &Args) -> anyhow::Result<Value> {
    let target = Arc::new(Target::new(&common.url, common.sources)?);
    let pid = common.pid();
    let redis = common.redis_meter().await?;
    let meter = CpuMeter::start(pid);
    let start = Instant::now();
    let results = bounded(args.connections, args.concurrency, |i| {
        let target = target.clone();
        async move {
            let began = Instant::now();
            let mut ws = target.connect(i).await?;
            ws.close(None).await?;
            // Wait for the server's side of the close handshake.
            while let Some(Ok(_)) = ws.next().await {}
            Ok(began.elapsed())
        }
    })
    .await;
    let wall = start.elapsed();
    let cpu = meter.stop(pid);
    let redis = redis.stop().await?;
    let (mut latencies, failed) =
        Latencies::gather(results.into_iter().map(|r| r.map(Latencies::one)));
    let done = latencies.len();
    let mut out = common.header("connect");
    out.insert("connections".into(), json!(done));
    out.insert("failed".into(), json!(failed));
    out.insert("concurrency".into(), json!(args.concurrency));
    out.insert(
        "connects_per_s".into(),
        json!(round3(done as f64 / wall.as_secs_f64())),
    );
    latencies.write("connect_close", &mut out);
    cpu_fields(&mut out, cpu, done, wall);
    redis_fields(&mut out, redis, done, "connection");
    Ok(Value::Object(out))
}
