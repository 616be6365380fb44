//! `upgrade`: a zero-downtime binary upgrade (SIGUSR2) under load. Opens N plain connections
//! and learns their ids; posts numbered messages to them at a steady rate (each connection's
//! next number only once the previous POST was answered, retried on 503 and on connection errors
//! as boto3 would); sends SIGUSR2 to the pid in the gateway's pid file and times the new pid's
//! appearance there and the old process's exit. Afterwards every connection must answer an echo
//! and a POST. Reports whether any connection was closed and whether every message answered 200
//! arrived exactly once and in order, and says what went wrong in `problems` (`passed` is false
//! then, and the command exits non-zero).
//!
//! - `process`: the pid file, the signal, whether a process has exited.
//! - `poster`: the numbered POSTs, paced, retried, recorded.
//! - `inbox`: one reader per connection, and the check of what arrived against what was posted.
//! - `summary`: the JSON line and its human summary.

mod inbox;
mod poster;
mod process;
mod summary;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::anyhow;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{Common, bounded};
use crate::client::{Target, Ws, connection_url, whoami};
use crate::procstat::rss_kib;
use crate::stats::Latencies;
use inbox::{Inbox, echo_request, wait_for};
use poster::{Poster, drain};
use process::Handover;

/// How long the answers (echoes, posted messages) may take to arrive once their POSTs were
/// answered or their requests sent.
const ARRIVAL_WAIT: Duration = Duration::from_secs(10);

/// `upgrade` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Base URL of the management API, e.g. http://127.0.0.1:8080/dev.
    #[arg(long)]
    pub mgmt: String,
    /// The gateway's pid file (`wsgate serve --pid-file`): the process to signal, and where the
    /// new process's pid appears.
    #[arg(long)]
    pub pid_file: PathBuf,
    /// Connections, each held through the upgrade.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Connects in flight while setting up.
    #[arg(long, default_value_t = 128)]
    pub connect_concurrency: usize,
    /// Numbered POSTs per second, round-robin over the connections.
    #[arg(long, default_value_t = 3000.0)]
    pub rate: f64,
    /// POSTs in flight at most (retries included); a POST due beyond that is not sent, and
    /// counted. The default holds a second of POSTs at the default rate: a gateway that holds
    /// the management calls during the move for up to that long is measured, not capped.
    #[arg(long, default_value_t = 3000)]
    pub in_flight: usize,
    /// Seconds of POSTs before the signal.
    #[arg(long, default_value_t = 2)]
    pub before_secs: u64,
    /// Seconds of POSTs after the old process has exited.
    #[arg(long, default_value_t = 2)]
    pub after_secs: u64,
    /// Seconds the upgrade may take (a new pid in the pid file and the old process gone).
    #[arg(long, default_value_t = 60)]
    pub upgrade_timeout_secs: u64,
    /// Seconds one message is retried before it counts as given up.
    #[arg(long, default_value_t = 30)]
    pub retry_secs: u64,
    /// POSTs in flight in the check afterwards (one to each connection).
    #[arg(long, default_value_t = 64)]
    pub check_concurrency: usize,
    /// Send no signal: the same run, with a window of --window-secs where the upgrade would
    /// be. A dry run of the bench against a gateway without USR2, which the signal would kill.
    #[arg(long)]
    pub no_signal: bool,
    /// The window's length in seconds with --no-signal.
    #[arg(long, default_value_t = 3)]
    pub window_secs: u64,
}

/// The open connections: each one's write half and reader, and its id.
struct Connections {
    sinks: Vec<SplitSink<Ws, Message>>,
    readers: Vec<JoinHandle<()>>,
    ids: Vec<String>,
    connect: Latencies,
}

/// Opens every connection and asks each its id, then hands its read half to a reader.
async fn open_all(
    target: &Arc<Target>,
    args: &Args,
    inbox: &Arc<Inbox>,
) -> anyhow::Result<Connections> {
    let opened = bounded(args.connections, args.connect_concurrency, |i| {
        let target = target.clone();
        async move {
            let began = Instant::now();
            let mut ws = target.connect(i).await?;
            let id = whoami(&mut ws).await?;
            Ok((ws, id, began.elapsed()))
        }
    })
    .await;
    let failed = opened.iter().filter(|r| r.is_err()).count();
    if let Some(Err(first)) = opened.iter().find(|r| r.is_err()) {
        return Err(anyhow!(
            "{failed} of {} connections did not open; the first: {first:#}",
            args.connections
        ));
    }
    let mut connections = Connections {
        sinks: Vec::with_capacity(args.connections),
        readers: Vec::with_capacity(args.connections),
        ids: Vec::with_capacity(args.connections),
        connect: Latencies::default(),
    };
    for (conn, result) in opened.into_iter().enumerate() {
        let (ws, id, took) = result?;
        let (sink, stream) = ws.split();
        connections.sinks.push(sink);
        connections.readers.push(inbox.spawn_reader(conn, stream));
        connections.ids.push(id);
        connections.connect.push(took);
    }
    Ok(connections)
}

/// The upgrade as the bench saw it.
#[derive(Debug, Clone, Copy)]
pub struct Upgrade {
    /// The process signalled (the pid file's pid at the time).
    pub old_pid: u32,
    /// Whether a signal was sent (not with --no-signal).
    pub signalled: bool,
    /// When the window began: the signal, or its place with --no-signal.
    pub began: Instant,
    /// When it ended: the later of the new pid and the old process's exit, the end of
    /// --window-secs, or the timeout.
    pub ended: Instant,
    pub handover: Handover,
}

/// Signals the pid in the pid file and watches the handover; with --no-signal, waits the window.
async fn upgrade(args: &Args, deadline: Instant) -> anyhow::Result<Upgrade> {
    // Read again now: whatever the pid file says at the moment of the signal is the old process.
    let old_pid = process::read_pid(&args.pid_file)?;
    let began = Instant::now();
    if args.no_signal {
        tokio::time::sleep(Duration::from_secs(args.window_secs)).await;
        return Ok(Upgrade {
            old_pid,
            signalled: false,
            began,
            ended: Instant::now(),
            handover: Handover::default(),
        });
    }
    process::send_usr2(old_pid).await?;
    let until = deadline.min(began + Duration::from_secs(args.upgrade_timeout_secs));
    let handover = process::watch(&args.pid_file, old_pid, began, until).await;
    // The handover is over when both happened, in whichever order.
    let ended = match (handover.new_pid, handover.old_exited) {
        (Some((_, new)), Some(old)) => began + new.max(old),
        _ => Instant::now(),
    };
    Ok(Upgrade {
        old_pid,
        signalled: true,
        began,
        ended,
        handover,
    })
}

/// Sends an echo request on every connection until `until` (a gateway that stopped reading
/// would hold the sends): how many were sent.
async fn send_echoes(sinks: &mut [SplitSink<Ws, Message>], until: Instant) -> usize {
    let mut sent = 0;
    for (conn, sink) in sinks.iter_mut().enumerate() {
        let send = sink.send(Message::text(echo_request(conn)));
        if let Ok(Ok(())) = tokio::time::timeout_at(until, send).await {
            sent += 1;
        }
    }
    sent
}

/// Closes every connection with a close frame, for at most `within`; the rest are dropped.
async fn close_all(sinks: Vec<SplitSink<Ws, Message>>, within: Duration) {
    let closing = async {
        for mut sink in sinks {
            let _ = sink.close().await;
        }
    };
    let _ = tokio::time::timeout(within, closing).await;
}

pub async fn run(common: &Common, args: &Args) -> anyhow::Result<Value> {
    let deadline = Instant::now() + common.deadline();
    let first_pid = process::read_pid(&args.pid_file)?;
    let target = Arc::new(Target::new(&common.url, common.sources)?);
    let inbox = Arc::new(Inbox::new(args.connections));
    let Connections {
        mut sinks,
        readers,
        ids,
        connect,
    } = open_all(&target, args, &inbox).await?;
    let urls = ids
        .iter()
        .map(|id| connection_url(&args.mgmt, id))
        .collect();
    let retry_for = Duration::from_secs(args.retry_secs);
    let poster = Arc::new(Poster::new(urls, args.in_flight, retry_for, deadline)?);
    let rss_before = rss_kib(&first_pid.to_string()).ok();

    let in_flight = Arc::new(Semaphore::new(args.in_flight));
    let stop = Arc::new(AtomicBool::new(false));
    let pacer = tokio::spawn(
        poster
            .clone()
            .pace(args.rate, in_flight.clone(), stop.clone()),
    );
    tokio::time::sleep(Duration::from_secs(args.before_secs)).await;
    let upgrade = upgrade(args, deadline).await;
    // Posting goes on after the upgrade (or after a failure to signal, so the pacer is stopped).
    if upgrade.is_ok() {
        tokio::time::sleep(Duration::from_secs(args.after_secs)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let pacing = pacer.await?;
    let upgrade = upgrade?;
    // A POST still retried when the retry time runs out ends then: give it that, plus one
    // attempt's time.
    let drained = drain(
        &in_flight,
        args.in_flight,
        retry_for + Duration::from_secs(10),
    )
    .await;
    wait_for(|| inbox.arrived(), poster.delivered(), ARRIVAL_WAIT).await;

    // Afterwards, every connection must still answer: an echo on its socket, then a POST.
    let echoes_sent = send_echoes(&mut sinks, Instant::now() + ARRIVAL_WAIT).await;
    wait_for(|| inbox.echoes(), args.connections, ARRIVAL_WAIT).await;
    poster.sweep(args.check_concurrency).await;
    wait_for(|| inbox.arrived(), poster.delivered(), ARRIVAL_WAIT).await;

    let serving = upgrade.handover.new_pid.map_or(first_pid, |(pid, _)| pid);
    // Counted before this side closes anything: every end seen so far was the gateway's doing.
    let (closed, first_close) = inbox.ended();
    let posts = poster.posts();
    let seen = summary::Seen {
        connections: args.connections,
        connect,
        upgrade,
        pacing,
        drained,
        closed,
        first_close,
        echoes_sent,
        echoed: inbox.echoed_connections(),
        delivery: inbox.check(&posts),
        notes: poster.notes(),
        rss_before_kib: rss_before,
        rss_after_kib: rss_kib(&serving.to_string()).ok(),
        posts,
    };
    for reader in readers {
        reader.abort();
    }
    close_all(sinks, ARRIVAL_WAIT).await;
    let line = summary::result_line(common, args, seen);
    eprint!("{}", summary::human(&line));
    Ok(line)
}
