//! `resume`: resumable connections (`wsgate.reliable.v1`). Opens N of them in waves and drops
//! each at once without a close (a reset, as a lost network does), so that the server holds N
//! suspended sessions and at most a wave of live ones: the server's RSS per suspended session.
//! Then posts one message to each (one batch call per thousand) and resumes them all, Q at a
//! time: the time until every client has its `resumed` frame and its missed message, and the
//! server's CPU per resume.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{Common, bounded};
use crate::client::{Target, Ws};
use crate::procstat::{CpuMeter, rss_kib};
use crate::stats::{Latencies, cpu_fields, round3};

const SUBPROTOCOL: &str = "wsgate.reliable.v1";

/// `resume` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Base URL of the management API, e.g. http://127.0.0.1:8080/dev.
    #[arg(long)]
    pub mgmt: String,
    /// Resumable connections.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Connections opened (and dropped) at once while setting up.
    #[arg(long, default_value_t = 100)]
    pub wave: usize,
    /// Resumes in flight at once (default: all of them).
    #[arg(long)]
    pub concurrency: Option<usize>,
}

/// The next text frame, as JSON.
async fn frame(ws: &mut Ws) -> anyhow::Result<Value> {
    while let Some(message) = ws.next().await {
        if let Message::Text(text) = message? {
            return Ok(serde_json::from_str(text.as_str())?);
        }
    }
    Err(anyhow!("closed before a frame"))
}

/// Opens a resumable connection and drops it with a reset: its (id, token).
async fn open_and_drop(target: &Target, n: usize) -> anyhow::Result<(String, String)> {
    let mut ws = target.connect_to(n, "", Some(SUBPROTOCOL)).await?;
    let hello = frame(&mut ws).await?;
    let id = hello["connectionId"]
        .as_str()
        .context("no connectionId")?
        .to_owned();
    let token = hello["resumeToken"]
        .as_str()
        .context("no resumeToken")?
        .to_owned();
    // A zero linger resets the connection at once on drop (it blocks nothing).
    #[allow(deprecated)]
    ws.get_ref().set_linger(Some(Duration::ZERO))?;
    drop(ws);
    Ok((id, token))
}

/// Resumes one session and reads its `resumed` frame and its missed message.
async fn resume_one(target: &Target, n: usize, token: &str) -> anyhow::Result<Duration> {
    let began = Instant::now();
    let query = format!("?resume={token}&seq=0");
    let mut ws = target.connect_to(n, &query, Some(SUBPROTOCOL)).await?;
    let first = frame(&mut ws).await?;
    if first["type"] != "resumed" {
        return Err(anyhow!("not resumed: {first}"));
    }
    let missed = frame(&mut ws).await?;
    if missed["seq"] != 1 {
        return Err(anyhow!("unexpected frame: {missed}"));
    }
    Ok(began.elapsed())
}

/// One message to each id, a thousand ids per batch call.
async fn post_to_all(mgmt: &str, ids: &[String]) -> anyhow::Result<usize> {
    let client = reqwest::Client::new();
    let mut sent = 0;
    for chunk in ids.chunks(1000) {
        let body = json!({"connectionIds": chunk, "data": "missed while away"});
        let answer = client
            .post(format!("{}/@connections", mgmt.trim_end_matches('/')))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?
            .text()
            .await?;
        let answer: Value = serde_json::from_str(&answer)?;
        sent += answer["sent"].as_array().map_or(0, Vec::len);
    }
    Ok(sent)
}

pub async fn run(common: &Common, args: &Args) -> anyhow::Result<Value> {
    let target = Arc::new(Target::new(&common.url, common.sources)?);
    let pid = common.pid();
    let rss_before = pid.map(rss_kib).transpose()?;
    let opened = bounded(args.connections, args.wave, |n| {
        let target = target.clone();
        async move { open_and_drop(&target, n).await }
    })
    .await;
    let sessions: Vec<(String, String)> = opened.into_iter().collect::<anyhow::Result<_>>()?;
    // The server notices each reset on its next read: give it a moment, then count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_suspended = pid.map(rss_kib).transpose()?;
    let ids: Vec<String> = sessions.iter().map(|(id, _)| id.clone()).collect();
    let posted = post_to_all(&args.mgmt, &ids).await?;

    let tokens = Arc::new(sessions);
    let meter = CpuMeter::start(pid);
    let start = Instant::now();
    let results = bounded(
        tokens.len(),
        args.concurrency.unwrap_or(tokens.len()),
        |n| {
            let (target, tokens) = (target.clone(), tokens.clone());
            async move {
                resume_one(&target, n, &tokens[n].1)
                    .await
                    .map(Latencies::one)
            }
        },
    )
    .await;
    let wall = start.elapsed();
    let cpu = meter.stop(pid);
    let (mut latencies, failed) = Latencies::gather(results);

    let mut out = common.header("resume");
    out.insert("connections".into(), json!(args.connections));
    out.insert("posted_while_away".into(), json!(posted));
    out.insert("resumed".into(), json!(latencies.len()));
    out.insert("failed".into(), json!(failed));
    out.insert(
        "resume_all_ms".into(),
        json!(round3(wall.as_secs_f64() * 1000.0)),
    );
    if let (Some(before), Some(after)) = (rss_before, rss_suspended) {
        let per = after.saturating_sub(before) as f64 / args.connections.max(1) as f64;
        out.insert("rss_per_suspended_session_kib".into(), json!(round3(per)));
    }
    latencies.write("resume", &mut out);
    cpu_fields(&mut out, cpu, latencies.len(), wall);
    Ok(Value::Object(out))
}
