//! `echo`: C connections each send M messages to a route with a route response and wait for
//! each answer: messages per second and round-trip latency.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{Common, bounded};
use crate::client::Target;
use crate::procstat::CpuMeter;
use crate::stats::{Latencies, cpu_fields, round3};

/// `echo` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Connections.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Messages per connection.
    #[arg(long, default_value_t = 2000)]
    pub messages: usize,
    /// The route key (`action`) of the messages.
    #[arg(long, default_value = "echo")]
    pub route: String,
    /// Bytes of padding in each message.
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// A label for the integration kind, e.g. mock or http.
    #[arg(long, default_value = "mock")]
    pub integration: String,
}

pub async fn run(common: &Common, args: &Args) -> anyhow::Result<Value> {
    let target = Arc::new(Target::new(&common.url, common.sources)?);
    let mut sockets = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        sockets.push(target.connect(i).await?);
    }
    let message = json!({"action": args.route, "data": "x".repeat(args.size)}).to_string();
    // The very first message: on a fresh server whose route runs in a process started on demand,
    // this is the cold start.
    let first = round_trip(
        sockets
            .first_mut()
            .ok_or_else(|| anyhow::anyhow!("no connection"))?,
        &message,
    )
    .await?;
    let sockets = Arc::new(std::sync::Mutex::new(sockets));
    let pid = common.pid();
    let meter = CpuMeter::start(pid);
    let start = Instant::now();
    let deadline = start + common.deadline();
    let messages = args.messages;
    let results = bounded(args.connections, args.connections, |_| {
        let sockets = sockets.clone();
        let message = message.clone();
        async move {
            let mut ws = sockets
                .lock()
                .map_err(|_| anyhow::anyhow!("lock"))?
                .pop()
                .ok_or_else(|| anyhow::anyhow!("no socket"))?;
            let mut latencies = Latencies::default();
            for _ in 0..messages {
                if Instant::now() > deadline {
                    break;
                }
                latencies.push(round_trip(&mut ws, &message).await?);
            }
            let _ = ws.close(None).await;
            Ok(latencies)
        }
    })
    .await;
    let wall = start.elapsed();
    let cpu = meter.stop(pid);
    let (mut latencies, failed) = Latencies::gather(results);
    let done = latencies.len();
    let mut out = common.header("echo");
    out.insert("integration".into(), json!(args.integration));
    out.insert("connections".into(), json!(args.connections));
    out.insert("messages".into(), json!(done));
    out.insert("failed_connections".into(), json!(failed));
    out.insert(
        "first_message_ms".into(),
        json!(round3(first.as_secs_f64() * 1000.0)),
    );
    out.insert(
        "msgs_per_s".into(),
        json!(round3(done as f64 / wall.as_secs_f64())),
    );
    latencies.write("latency", &mut out);
    cpu_fields(&mut out, cpu, done, wall);
    Ok(Value::Object(out))
}

/// Sends one message and waits for the text answer; how long that took.
async fn round_trip(
    ws: &mut crate::client::Ws,
    message: &str,
) -> anyhow::Result<std::time::Duration> {
    let sent = Instant::now();
    ws.send(Message::text(message)).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(_))) => return Ok(sent.elapsed()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("closed before the answer"),
        }
    }
}
