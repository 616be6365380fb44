//! `resume`: resumable connections (`wsgate.reliable.v1`). Opens N of them in waves and drops
//! each at once without a close (a reset, as a lost network does), so that the server holds N
//! suspended sessions and at most a wave of live ones: the server's RSS per suspended session.
//! Then posts one message to each (one batch call per thousand) and resumes them all, Q at a
//! time: the time until every client has its `resumed` frame, for the same connection, and its
//! missed message, and the server's CPU per resume.
//!
//! In a cluster, `--resume-url` sends each client back to another node than the one it left
//! (the holder then lets its session go over Redis), `--kill-pid` kills that holder first (the
//! sessions are then taken from Redis once its entry expires), and `--redis` adds what Redis
//! holds per suspended session (and per live connection with `--hold-open`) and the commands it
//! ran per resume.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{Common, bounded};
use crate::client::{Target, Ws};
use crate::procstat::{CpuMeter, rss_kib};
use crate::redisstat::{redis_fields, used_memory};
use crate::stats::{Latencies, cpu_fields, round3};

const SUBPROTOCOL: &str = "wsgate.reliable.v1";

/// The message posted to each suspended session, which its client must get after `resumed`.
const MISSED: &str = "missed while away";

/// How long the resumes may take in all, missed messages included: longer than a cluster's
/// `node_timeout` (5 s by default), which a resume after its node died waits for, plus a few
/// SYN retransmits.
const RESUME_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the missed message may take after the `resumed` frame: it is sent right behind it, so
/// a client still waiting after this has lost it (and frees its place for the next resume).
const MISSED_WAIT: Duration = Duration::from_secs(5);

/// How many distinct failure reasons a result line lists.
const REASONS_SHOWN: usize = 8;

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
    /// Where the clients resume: a WebSocket URL, or several separated by commas (a cluster's
    /// nodes): connection i resumes on the (i mod n)-th. Default: where it connected (--url).
    #[arg(long)]
    pub resume_url: Option<String>,
    /// Opens every connection (--wave at a time) before dropping any, so that all are live at
    /// once: with --redis, Redis's memory per live resumable connection. The RSS figure then
    /// also counts what the server freed from the live sockets but kept.
    #[arg(long)]
    pub hold_open: bool,
    /// Kills this process with SIGKILL (a cluster node holding the sessions, started by the
    /// calling script) once the messages are posted, then resumes: times count from the kill.
    /// Leave it out of --server-pid.
    #[arg(long)]
    pub kill_pid: Option<u32>,
    /// With --kill-pid: milliseconds between the last POST answered and the kill, for the node
    /// to write what it keeps to Redis (it writes in batches, after answering).
    #[arg(long, default_value_t = 1000)]
    pub kill_after_ms: u64,
}

/// A connection as its client knows it.
#[derive(Debug, Clone)]
struct Session {
    id: String,
    token: String,
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

/// Opens a resumable connection: the socket and what its `connected` frame says.
async fn open(target: &Target, n: usize) -> anyhow::Result<(Ws, Session)> {
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
    Ok((ws, Session { id, token }))
}

/// Drops a connection with a reset, as a lost network does: the server suspends its session.
fn drop_with_reset(ws: Ws) -> anyhow::Result<()> {
    // A zero linger resets the connection at once on drop (it blocks nothing).
    #[allow(deprecated)]
    ws.get_ref().set_linger(Some(Duration::ZERO))?;
    drop(ws);
    Ok(())
}

/// Opens every connection, `args.wave` at a time, and drops each at once, or keeps them all
/// open with `args.hold_open` (the caller drops them).
async fn open_all(target: &Arc<Target>, args: &Args) -> anyhow::Result<Vec<(Option<Ws>, Session)>> {
    let hold = args.hold_open;
    let opened = bounded(args.connections, args.wave, |n| {
        let target = target.clone();
        async move {
            let (ws, session) = open(&target, n).await?;
            if hold {
                return Ok((Some(ws), session));
            }
            drop_with_reset(ws)?;
            Ok((None, session))
        }
    })
    .await;
    opened.into_iter().collect()
}

/// Resumes one session and reads its `resumed` frame, which must name the same connection, and
/// its missed message, giving up at `until`. The errors name no connection, so that a line can
/// count them by reason, and say which step did not come.
async fn resume_one(
    target: &Target,
    n: usize,
    session: &Session,
    until: Instant,
) -> anyhow::Result<Duration> {
    let began = Instant::now();
    if began >= until {
        return Err(anyhow!("not tried: the time was up before its turn"));
    }
    let query = format!("?resume={}&seq=0", session.token);
    let mut ws = tokio::time::timeout_at(until, target.connect_to(n, &query, Some(SUBPROTOCOL)))
        .await
        .map_err(|_| anyhow!("timed out: no WebSocket handshake"))??;
    let first = tokio::time::timeout_at(until, frame(&mut ws))
        .await
        .map_err(|_| anyhow!("timed out: handshake done, no resumed frame"))??;
    if first["type"] != "resumed" {
        return Err(anyhow!(
            "not resumed: {} {}",
            first["type"].as_str().unwrap_or("a frame without a type"),
            first["reason"].as_str().unwrap_or_default()
        ));
    }
    if first["connectionId"] != session.id.as_str() {
        return Err(anyhow!("resumed as another connection"));
    }
    let wait = until.min(Instant::now() + MISSED_WAIT);
    let missed = tokio::time::timeout_at(wait, frame(&mut ws))
        .await
        .map_err(|_| anyhow!("timed out: resumed, but the missed message did not come"))??;
    if missed["type"] != "message" || missed["seq"] != 1 || missed["data"] != MISSED {
        return Err(anyhow!(
            "the missed message did not come first: a {} frame, seq {}",
            missed["type"],
            missed["seq"]
        ));
    }
    Ok(began.elapsed())
}

/// One message to each id, a thousand ids per batch call.
async fn post_to_all(mgmt: &str, ids: &[String]) -> anyhow::Result<usize> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut sent = 0;
    for chunk in ids.chunks(1000) {
        let body = json!({"connectionIds": chunk, "data": MISSED});
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

/// Redis's `used_memory` once it stops moving (the nodes write in batches, a little after the
/// event): two reads in a row, 250 ms apart, within 16 KiB of each other, or the last read
/// after 10 s.
async fn settled_memory(addr: &str) -> anyhow::Result<u64> {
    const STEP: Duration = Duration::from_millis(250);
    const CLOSE: u64 = 16 * 1024;
    let until = Instant::now() + Duration::from_secs(10);
    let mut last = used_memory(addr).await?;
    loop {
        tokio::time::sleep(STEP).await;
        let now = used_memory(addr).await?;
        if now.abs_diff(last) < CLOSE || Instant::now() >= until {
            return Ok(now);
        }
        last = now;
    }
}

/// Sends SIGKILL to `pid` with kill(1): the bench forbids unsafe code, so no kill(2) of its own.
async fn send_kill(pid: u32) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status()
        .await
        .context("running kill")?;
    anyhow::ensure!(status.success(), "kill -KILL {pid} failed: {status}");
    Ok(())
}

/// Tries once more, a second after the rest, the resumes in `refused` (their tokens are still
/// unused): how many then succeed. Not counted as resumed; it tells a refused session that was
/// still there from one that was lost.
async fn retry_refused(
    target: &Arc<Target>,
    sessions: &Arc<Vec<Session>>,
    refused: &[usize],
) -> usize {
    if refused.is_empty() {
        return 0;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let refused = Arc::new(refused.to_vec());
    let until = Instant::now() + RESUME_TIMEOUT;
    let retried = bounded(refused.len(), refused.len(), |i| {
        let (target, sessions, refused) = (target.clone(), sessions.clone(), refused.clone());
        async move {
            let n = refused[i];
            resume_one(&target, n, &sessions[n], until).await
        }
    })
    .await;
    retried.iter().filter(|r| r.is_ok()).count()
}

/// Failed resumes counted by reason, the most frequent first (at most [`REASONS_SHOWN`]).
fn reasons(errors: &[anyhow::Error]) -> Value {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for error in errors {
        *counts.entry(format!("{error:#}")).or_default() += 1;
    }
    let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
    counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let shown: Map<String, Value> = counts
        .into_iter()
        .take(REASONS_SHOWN)
        .map(|(reason, n)| (reason, json!(n)))
        .collect();
    Value::Object(shown)
}

/// Redis's `used_memory` now, once settled, if a Redis was given.
async fn memory(redis: Option<&str>) -> anyhow::Result<Option<u64>> {
    match redis {
        Some(addr) => Ok(Some(settled_memory(addr).await?)),
        None => Ok(None),
    }
}

pub async fn run(common: &Common, args: &Args) -> anyhow::Result<Value> {
    let target = Arc::new(Target::new(&common.url, common.sources)?);
    let resume_target = match &args.resume_url {
        Some(urls) => Arc::new(Target::new(urls, common.sources)?),
        None => target.clone(),
    };
    let pid = common.pid();
    let redis = common.redis.as_deref();
    let memory_before = memory(redis).await?;
    let rss_before = pid.map(rss_kib).transpose()?;
    let opened = open_all(&target, args).await?;
    let memory_live = if args.hold_open {
        memory(redis).await?
    } else {
        None
    };
    let mut sessions = Vec::with_capacity(opened.len());
    for (ws, session) in opened {
        if let Some(ws) = ws {
            drop_with_reset(ws)?;
        }
        sessions.push(session);
    }
    // The server notices each reset on its next read: give it a moment, then count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_suspended = pid.map(rss_kib).transpose()?;
    let memory_suspended = memory(redis).await?;
    let ids: Vec<String> = sessions.iter().map(|s| s.id.clone()).collect();
    let posted = post_to_all(&args.mgmt, &ids).await?;

    if args.kill_pid.is_some() {
        tokio::time::sleep(Duration::from_millis(args.kill_after_ms)).await;
    }
    // With a kill, the time counts from it: the resumes' wait for the dead node is part of it.
    let start = Instant::now();
    if let Some(victim) = args.kill_pid {
        send_kill(victim).await?;
    }
    let meter = CpuMeter::start(pid);
    let redis_meter = common.redis_meter().await?;
    let sessions = Arc::new(sessions);
    let until = start + RESUME_TIMEOUT.min(common.deadline());
    let results = bounded(
        sessions.len(),
        args.concurrency.unwrap_or(sessions.len()),
        |n| {
            let (target, sessions) = (resume_target.clone(), sessions.clone());
            async move { resume_one(&target, n, &sessions[n], until).await }
        },
    )
    .await;
    let wall = start.elapsed();
    let cpu = meter.stop(pid);
    let redis_used = redis_meter.stop().await?;
    let mut latencies = Latencies::default();
    let mut errors = Vec::new();
    let mut refused = Vec::new();
    for (n, result) in results.into_iter().enumerate() {
        match result {
            Ok(took) => latencies.push(took),
            Err(error) => {
                errors.push(error);
                refused.push(n);
            }
        }
    }
    let retried = retry_refused(&resume_target, &sessions, &refused).await;

    let mut out = common.header("resume");
    out.insert("connections".into(), json!(args.connections));
    out.insert("posted_while_away".into(), json!(posted));
    out.insert("resumed".into(), json!(latencies.len()));
    out.insert("failed".into(), json!(errors.len()));
    out.insert("failure_reasons".into(), reasons(&errors));
    out.insert("failed_then_resumed_on_retry".into(), json!(retried));
    if let Some(urls) = &args.resume_url {
        out.insert("resume_url".into(), json!(urls));
    }
    if let Some(victim) = args.kill_pid {
        out.insert("killed_pid".into(), json!(victim));
        out.insert("kill_after_ms".into(), json!(args.kill_after_ms));
    }
    out.insert(
        "resume_all_ms".into(),
        json!(round3(wall.as_secs_f64() * 1000.0)),
    );
    if let (Some(before), Some(after)) = (rss_before, rss_suspended) {
        let per = after.saturating_sub(before) as f64 / args.connections.max(1) as f64;
        out.insert("rss_per_suspended_session_kib".into(), json!(round3(per)));
    }
    if let Some(before) = memory_before {
        let per =
            |after: u64| round3(after.saturating_sub(before) as f64 / ids.len().max(1) as f64);
        out.insert("redis_used_memory_before".into(), json!(before));
        if let Some(live) = memory_live {
            out.insert("redis_used_memory_live".into(), json!(live));
            out.insert("redis_bytes_per_live_connection".into(), json!(per(live)));
        }
        if let Some(suspended) = memory_suspended {
            out.insert("redis_used_memory_suspended".into(), json!(suspended));
            out.insert(
                "redis_bytes_per_suspended_session".into(),
                json!(per(suspended)),
            );
        }
    }
    redis_fields(&mut out, redis_used, latencies.len(), "resume");
    latencies.write("resume", &mut out);
    cpu_fields(&mut out, cpu, latencies.len(), wall);
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_reason_most_frequent_first() {
        let errors: Vec<anyhow::Error> = ["b", "a", "b", "c", "b", "a"]
            .into_iter()
            .map(|reason| anyhow!("{reason}"))
            .collect();
        let counted = reasons(&errors);
        let order: Vec<(&String, &Value)> =
            counted.as_object().expect("an object").iter().collect();
        assert_eq!(counted, json!({"b": 3, "a": 2, "c": 1}));
        assert_eq!(order[0].0, "b", "most frequent first: {counted}");
        assert_eq!(reasons(&[]), json!({}));
    }
}
