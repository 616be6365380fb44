//! Upgrading a gateway in place (`kill -USR2`): the old process starts the binary again, with
//! the same arguments, and hands it the listening sockets and every live connection over a Unix
//! socket; see [`crate::handoff`] for what sessions do meanwhile. [`give`] is the old process's
//! side, [`take`] the new one's.
//!
//! The new process finds the socket in `WSGATE_HANDOFF` (a path in a folder only this user can
//! enter; the old process checks that the peer is the process it started). Until the new process
//! says it has taken everything, the old one can go back to serving as if nothing happened: it
//! does when the new process exits, times out or breaks the protocol — a binary that does not
//! start, a config that does not validate, a crash — and the log says why.

use std::collections::HashSet;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::net::{UnixListener, UnixStream};
use tokio::process::{Child, Command as Process};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tracing::{info, warn};
use wsgate_core::close::Close;
use wsgate_core::id::ConnectionId;

use crate::edge::{self, Arrival};
use crate::handoff::channel::{Channel, Message, kind};
use crate::handoff::wire::{Carried, Relayed};
use crate::handoff::{Moving, Phase, Round, Verdict};
use crate::hub::Command;
use crate::scratch;
use crate::state::EdgeServices;

/// The environment variable that tells a new process where the old one waits for it.
pub const ENV_HANDOFF: &str = "WSGATE_HANDOFF";

/// How long the new process has to connect, and to build its routes.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the old process waits for its sessions to move (those still in `$connect` included).
const MOVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the new process has to take what it was sent.
const TAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Duplicates of the listening sockets, kept to hand them over.
#[derive(Debug)]
pub struct Listening {
    /// `gateway.listen`.
    pub public: OwnedFd,
    /// `management.listen`, when set.
    pub management: Option<OwnedFd>,
}

/// What the old process keeps once the new one serves: the channel's writer, which passes on
/// what still arrives for the connections that moved, until there is nothing left to pass on.
#[derive(Debug)]
pub struct Given {
    /// Ends when every session that moved has passed on what it had.
    pub relaying: JoinHandle<()>,
    /// The new process (not waited for: it serves on after this one exits).
    pub child: Child,
    /// Held so that sessions that moved keep their verdict.
    pub verdict: watch::Sender<Verdict>,
}

/// The old process's side: starts `program` with `args` and hands it everything. `Ok` once the
/// new process serves every connection; `Err` (why) with everything still served here.
pub async fn give(
    edge: &Arc<EdgeServices>,
    listening: &Listening,
    program: &Path,
    args: &[OsString],
) -> Result<Given, String> {
    if edge.management.directory.cluster().is_some() {
        return Err(
            "a cluster node does not hand over its connections (yet): restart it; \
                    resumable clients resume on the other nodes"
                .into(),
        );
    }
    let dir = scratch::private_dir("wsgate-handoff-")
        .map_err(|e| format!("cannot make a folder for the handoff socket: {e}"))?;
    let path = dir.path().join("handoff.sock");
    let listener = UnixListener::bind(&path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    let mut child = Process::new(program)
        .args(args)
        .env(ENV_HANDOFF, &path)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    info!(pid = child.id(), program = %program.display(), "USR2: new process started");
    let (verdict, verdicts) = watch::channel(Verdict::Waiting);
    let (relay, relayed) = mpsc::unbounded_channel();
    let handoff = &edge.sessions.handoff;
    let outcome = hand_over(edge, listening, &listener, &mut child, verdicts, relay).await;
    handoff.close();
    match outcome {
        Ok(channel) => {
            verdict.send_replace(Verdict::Taken);
            handoff.set_phase(Phase::Moved);
            let relaying = tokio::spawn(pass_on(channel, relayed));
            Ok(Given {
                relaying,
                child,
                verdict,
            })
        }
        Err(error) => {
            // The new process is ended (it is ours) before the sessions here read their sockets
            // again: two readers would split what clients send.
            let _ = child.start_kill();
            let _ = timeout(Duration::from_secs(5), child.wait()).await;
            verdict.send_replace(Verdict::Failed);
            handoff.set_phase(Phase::Serving);
            Err(error)
        }
    }
}

/// The new process's exit, as an error.
fn exited(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => format!(
            "the new process exited ({status}) before it took over (its own log lines say why)"
        ),
        Err(e) => format!("the new process could not be waited for: {e}"),
    }
}

/// The next message from the new process, of kind `expected`, within `wait`; its exit or
/// anything else is an error.
async fn expect(
    channel: &mut Channel,
    child: &mut Child,
    expected: u8,
    wait: Duration,
) -> Result<Message, String> {
    let received = tokio::select! {
        received = channel.recv() => received,
        status = child.wait() => return Err(exited(status)),
        () = sleep(wait) => return Err(format!("the new process did not answer within {wait:?}")),
    };
    match received {
        Ok(Some(message)) if message.kind == expected => Ok(message),
        Ok(Some(message)) => Err(format!(
            "the new process sent {:?} where {:?} was expected",
            message.kind as char, expected as char
        )),
        Ok(None) => Err(exited(child.wait().await)),
        Err(e) => Err(format!("the handoff channel failed: {e}")),
    }
}

/// The round itself: hello, the routes built, every session, the listeners, and the new
/// process's word that it has them.
async fn hand_over(
    edge: &Arc<EdgeServices>,
    listening: &Listening,
    listener: &UnixListener,
    child: &mut Child,
    verdicts: watch::Receiver<Verdict>,
    relay: mpsc::UnboundedSender<(ConnectionId, Command)>,
) -> Result<Channel, String> {
    let stream = tokio::select! {
        accepted = listener.accept() => accepted.map_err(|e| format!("the handoff socket failed: {e}"))?.0,
        status = child.wait() => return Err(exited(status)),
        () = sleep(START_TIMEOUT) => return Err("the new process did not connect within 60 s".into()),
    };
    let mut channel = Channel::new(stream);
    let expected = child.id().and_then(|pid| i32::try_from(pid).ok());
    if channel.peer_pid() != expected {
        return Err("a process other than the new one connected to the handoff socket".into());
    }
    let failed = |e: std::io::Error| format!("the handoff channel failed: {e}");
    expect(&mut channel, child, kind::HELLO, START_TIMEOUT).await?;
    let welcome = json!({"listen": edge.local_addr, "management": edge.management_addr});
    channel
        .send_json(kind::WELCOME, &welcome)
        .await
        .map_err(failed)?;
    expect(&mut channel, child, kind::READY, START_TIMEOUT).await?;

    let started = Instant::now();
    let handoff = &edge.sessions.handoff;
    let (sessions, mut moving) = mpsc::unbounded_channel();
    handoff.open(Round {
        sessions,
        verdict: verdicts,
        relay,
    });
    handoff.set_phase(Phase::Handing);
    let sent = send_sessions(edge, &mut channel, &mut moving, child).await?;
    let fds: Vec<_> = std::iter::once(listening.public.as_fd())
        .chain(listening.management.as_ref().map(AsFd::as_fd))
        .collect();
    let roles = json!({"management": listening.management.is_some()});
    let roles = serde_json::to_vec(&roles).unwrap_or_default();
    channel
        .send(kind::LISTENERS, &roles, &[], &fds)
        .await
        .map_err(failed)?;
    channel
        .send_json(kind::END, &json!({"sessions": sent}))
        .await
        .map_err(failed)?;
    expect(&mut channel, child, kind::TAKEN, TAKE_TIMEOUT).await?;
    info!(
        sessions = sent,
        took = ?started.elapsed(),
        pid = child.id(),
        "USR2: the new process serves every connection"
    );
    Ok(channel)
}

/// Asks every session to move and sends each as it comes, until all have (or
/// [`MOVE_TIMEOUT`] passed: one still in `$connect` then stays, and is closed with this process).
async fn send_sessions(
    edge: &Arc<EdgeServices>,
    channel: &mut Channel,
    moving: &mut mpsc::UnboundedReceiver<Moving>,
    child: &mut Child,
) -> Result<usize, String> {
    let deadline = Instant::now() + MOVE_TIMEOUT;
    let mut asked = HashSet::new();
    let mut sent = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        tokio::select! {
            biased;
            status = child.wait() => return Err(exited(status)),
            session = moving.recv() => {
                let Some(session) = session else { break };
                send_session(channel, session).await?;
                sent += 1;
            }
            _ = tick.tick() => {
                for handle in edge.sessions.hub.sessions() {
                    if asked.insert(handle.ctx.connection_id) {
                        handle.outbox.hand_over();
                    }
                }
                // Every admitted connection is a session that moved (it holds its admission
                // until the verdict), or one still on its way.
                if sent >= edge.connections.open() {
                    break;
                }
                if Instant::now() >= deadline {
                    warn!(left = edge.connections.open().saturating_sub(sent), "USR2: connections that did not move in time stay with this process");
                    break;
                }
            }
        }
    }
    edge.sessions.handoff.close();
    while let Ok(session) = moving.try_recv() {
        send_session(channel, session).await?;
        sent += 1;
    }
    Ok(sent)
}

async fn send_session(channel: &mut Channel, session: Moving) -> Result<(), String> {
    let Moving { carried, socket } = session;
    let fds: Vec<_> = socket.as_ref().map(AsFd::as_fd).into_iter().collect();
    channel
        .send(kind::SESSION, &carried.header, &carried.data, &fds)
        .await
        .map_err(|e| format!("the handoff channel failed: {e}"))
}

/// Passes on, to the new process, what still arrives for connections that moved.
async fn pass_on(
    mut channel: Channel,
    mut relayed: mpsc::UnboundedReceiver<(ConnectionId, Command)>,
) {
    while let Some((id, command)) = relayed.recv().await {
        let (kind_name, code, reason, data) = match command {
            Command::Text(text) => ("text", None, None, bytes::Bytes::from(text)),
            Command::Binary(data) => ("binary", None, None, data),
            Command::Close(code, reason) => (
                "close",
                Some(code),
                Some(reason.into_owned()),
                bytes::Bytes::new(),
            ),
        };
        let header = Relayed {
            id: id.as_str().to_owned(),
            kind: kind_name.into(),
            code,
            reason,
        };
        let header = serde_json::to_vec(&header).unwrap_or_default();
        if let Err(error) = channel.send(kind::RELAY, &header, &data, &[]).await {
            warn!(%error, "USR2: a message for a connection that moved could not be passed on");
            break;
        }
    }
}

/// Where the old process listens, as it tells the new one.
#[derive(Debug, serde::Deserialize)]
pub struct Welcome {
    /// `gateway.listen`, bound.
    pub listen: SocketAddr,
    /// `management.listen`, bound, when set.
    pub management: Option<SocketAddr>,
}

/// The new process's side, first half: connects to the old process and learns where the
/// listeners are.
pub async fn greet(path: &Path) -> Result<(Channel, Welcome), String> {
    let stream = UnixStream::connect(path).await.map_err(|e| {
        format!(
            "cannot reach the previous process at {}: {e}",
            path.display()
        )
    })?;
    let mut channel = Channel::new(stream);
    let failed = |e: std::io::Error| format!("the handoff channel failed: {e}");
    channel
        .send_json(kind::HELLO, &json!({"pid": std::process::id()}))
        .await
        .map_err(failed)?;
    let message = channel
        .recv()
        .await
        .map_err(failed)?
        .filter(|m| m.kind == kind::WELCOME)
        .ok_or("the previous process did not welcome this one")?;
    let welcome = serde_json::from_slice(&message.header)
        .map_err(|e| format!("the previous process's welcome is unreadable: {e}"))?;
    Ok((channel, welcome))
}

/// The listening sockets the old process handed over.
#[derive(Debug)]
pub struct Listeners {
    /// `gateway.listen`.
    pub public: std::net::TcpListener,
    /// `management.listen`, when set.
    pub management: Option<std::net::TcpListener>,
}

/// The new process's side, second half (its routes built): takes every session and the
/// listeners, starts the sessions, and returns the listeners to serve; then, once they serve,
/// [`taken`] says so.
pub async fn take(edge: &Arc<EdgeServices>, channel: &mut Channel) -> Result<Listeners, String> {
    let failed = |e: std::io::Error| format!("the handoff channel failed: {e}");
    channel
        .send_json(kind::READY, &json!({}))
        .await
        .map_err(failed)?;
    let mut arrivals = Vec::new();
    let mut listeners = None;
    loop {
        let Some(message) = channel.recv().await.map_err(failed)? else {
            return Err("the previous process went away before handing everything over".into());
        };
        match message.kind {
            kind::SESSION => {
                let Message {
                    header, data, fds, ..
                } = message;
                let Some((carried, unread, unsent)) = Carried::decode(&header, data) else {
                    return Err("a session handed over is unreadable".into());
                };
                arrivals.push(Arrival {
                    carried,
                    unread,
                    unsent,
                    socket: fds.into_iter().next(),
                });
            }
            kind::LISTENERS => {
                let mut fds = message.fds.into_iter();
                let listener = |fd: Option<OwnedFd>| -> Result<std::net::TcpListener, String> {
                    let listener = std::net::TcpListener::from(fd.ok_or("a listener is missing")?);
                    listener
                        .set_nonblocking(true)
                        .map_err(|e| format!("a listener handed over is unusable: {e}"))?;
                    Ok(listener)
                };
                let public = listener(fds.next())?;
                let management = fds.next().map(|fd| listener(Some(fd))).transpose()?;
                listeners = Some(Listeners { public, management });
            }
            kind::END => break,
            other => return Err(format!("unexpected message {:?}", other as char)),
        }
    }
    let listeners = listeners.ok_or("the previous process sent no listeners")?;
    info!(
        sessions = arrivals.len(),
        "connections handed over by the previous process"
    );
    edge::adopt(edge, arrivals);
    Ok(listeners)
}

/// Tells the old process that this one serves everything, and delivers what it passes on
/// afterwards to the connections that moved, until it exits.
pub async fn taken(edge: Arc<EdgeServices>, mut channel: Channel) -> Result<(), String> {
    channel
        .send_json(kind::TAKEN, &json!({}))
        .await
        .map_err(|e| format!("the handoff channel failed: {e}"))?;
    tokio::spawn(async move {
        while let Ok(Some(message)) = channel.recv().await {
            if message.kind != kind::RELAY {
                continue;
            }
            let Ok(relayed) = serde_json::from_slice::<Relayed>(&message.header) else {
                continue;
            };
            let command = match relayed.kind.as_str() {
                "text" => match String::from_utf8(message.data) {
                    Ok(text) => Command::Text(text.into()),
                    Err(_) => continue,
                },
                "binary" => Command::Binary(message.data.into()),
                _ => match (relayed.code, relayed.reason) {
                    (Some(code), Some(reason)) => Command::Close(code, reason.into()),
                    // A process of an older version relays only DELETE's 1000.
                    _ => {
                        let (code, reason) = Close::NORMAL.into_parts();
                        Command::Close(code, reason)
                    }
                },
            };
            let Ok(id) = ConnectionId::parse(&relayed.id) else {
                continue;
            };
            match edge.sessions.hub.get(&id) {
                Some(handle) => {
                    if let Err(error) = handle.outbox.push(command) {
                        warn!(connection_id = %id, %error, "a message passed on by the previous process was dropped");
                    }
                }
                None => {
                    warn!(connection_id = %id, "a message passed on by the previous process found its connection gone")
                }
            }
        }
    });
    Ok(())
}

/// The path of the binary to start again: `argv[0]` as it was at start (made absolute, a
/// symlink left as it is, so that pointing it at a new version upgrades), or, when it named no
/// path, what `PATH` found then.
pub fn program_path() -> Option<PathBuf> {
    let first = PathBuf::from(std::env::args_os().next()?);
    if first.components().count() > 1 {
        return std::path::absolute(&first).ok();
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(&first))
        .find(|candidate| candidate.is_file())
        .or_else(|| std::env::current_exe().ok())
}
