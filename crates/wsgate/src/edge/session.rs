//! One session per connection, in one task: it reads frames and routes messages, writes what
//! the outbox holds, keeps the idle and lifetime timers, and ends with the right close code and a
//! `$disconnect` call.

use std::future::poll_fn;
use std::os::fd::AsFd;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::{FutureExt, Sink, SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data as OpData, OpCode};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_util::sync::PollSemaphore;
use tracing::{debug, info, warn};
use wsgate_core::clock;
use wsgate_core::config::{BinaryFrames, Limits};
use wsgate_core::event::{self, ConnectionContext, ContextVars, Invocation};
use wsgate_core::id::random_id;
use wsgate_core::proxy::ProxyResult;
use wsgate_core::route::{RouteKey, Selection, select};

use crate::edge::tap::Tap;
use crate::handoff::wire::{Carried, Reliability, Suspension};
use crate::handoff::{self, Moving, Relay, Verdict};
use crate::hub::{Command, Inbox, JoinError, Outbox, Reason, SessionHandle};
use crate::integration::{Inbound, IntegrationError};
use crate::resume::{self, Knock, Mirror, Replay, Resume, Socket};
use crate::saved::Saved;
use crate::state::{Deployment, RouteEntry, SessionServices};

/// How long to wait for the client's half of a close handshake.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);

/// Close reasons, as `$disconnect` reports them.
const GOING_AWAY: &str = "Going away";
const CLIENT_NO_STATUS: &str = "Client-side close frame status not set";
pub(crate) const ABNORMAL: &str = "Connection closed abnormally";

/// How a session ended.
enum Ending {
    /// The gateway is stopping: 1001, or for a resumable session kept in `gateway.state_dir`,
    /// 1012 and its state written down.
    Stopping,
    /// The gateway closes with this code and reason.
    Server(u16, Reason),
    /// The gateway closes because reading failed (too big, bad UTF-8, protocol error): the
    /// WebSocket stream can no longer be read, so the rest is drained from the socket itself.
    ReadFailed(u16, &'static str),
    /// The client closed with this code and reason.
    Client(u16, String),
    /// The connection broke without a close handshake.
    Abnormal,
}

/// How a failed read ends the session: the close code for what the client sent wrong, or an
/// abnormal end when the connection itself broke.
fn read_failed(ctx: &ConnectionContext, error: WsError) -> Ending {
    match error {
        WsError::Capacity(_) => Ending::ReadFailed(1009, "Message too big"),
        WsError::Utf8(_) => Ending::ReadFailed(1007, "Invalid frame payload data"),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Ending::Abnormal,
        WsError::Protocol(error) => {
            debug!(connection_id = %ctx.connection_id, %error, "protocol error");
            Ending::ReadFailed(1002, "Protocol error")
        }
        error => {
            debug!(connection_id = %ctx.connection_id, %error, "read failed");
            Ending::Abnormal
        }
    }
}

/// What the write pump reports to the loop.
enum Pumped {
    /// Messages (or fragments) went to the socket: how many, and their bytes.
    Wrote(u32, u64),
    /// Someone asked the session to close.
    Close(u16, Reason),
    /// The socket can no longer be written.
    Failed,
    /// The session is asked to move to a new process (`kill -USR2`).
    HandOver,
}

/// What a resumable session (`wsgate.reliable.v1`) carries besides its socket.
pub(crate) struct Reliable {
    /// Where resumes of this connection arrive.
    pub resumes: mpsc::Receiver<Box<Knock>>,
    /// The sending end, for the tokens issued after a resume.
    pub sender: mpsc::Sender<Box<Knock>>,
    /// The token the client holds now.
    pub token: String,
    /// Messages the client has not acknowledged (in a cluster, written to Redis as well).
    pub replay: Replay,
}

/// How one socket's turn of a session ended.
enum Turn {
    /// The connection is over (or, when resumable and broken, suspended).
    Over(Ending),
    /// A resume took over with a new socket; the old one is dropped.
    Replaced(Box<Resume>),
    /// Another node of the cluster takes the session over.
    Released(oneshot::Sender<Saved>),
    /// The session is asked to move to a new process.
    HandOver(Box<Handing>),
}

/// What a socket's turn leaves to the move to a new process.
struct Handing {
    /// A message half written.
    pending: Option<Outgoing>,
    /// The session's integration calls under way hold its permits.
    inflight: Arc<Semaphore>,
}

/// How a suspended session ended.
enum Suspended {
    /// The client came back.
    Resumed(Box<Resume>),
    /// Another node of the cluster takes the session over (its client resumes there).
    Released(oneshot::Sender<Saved>),
    /// The gateway is stopping.
    Stopping,
    /// The session is asked to move to a new process; its window ends at this instant.
    HandOver(Instant),
    /// The window passed or the buffer overflowed (`None`: `$disconnect` is told the code of
    /// the drop), or the connection was closed meanwhile with this code and reason.
    Over(Option<(u16, String)>),
}

/// The limits a session reads, copied from `[limits]` when it starts (a reload applies to new
/// connections). A compact copy: every idle session's future holds it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionLimits {
    /// `limits.idle_timeout`.
    pub idle_timeout: Duration,
    /// `limits.max_connection_duration`.
    pub max_connection_duration: Duration,
    /// `limits.resume_window`.
    pub resume_window: Duration,
    /// `limits.max_frame_bytes`.
    pub max_frame_bytes: usize,
    /// `limits.max_inflight_per_connection`.
    pub max_inflight_per_connection: usize,
    /// `limits.resume_buffer_bytes`.
    pub resume_buffer_bytes: usize,
    /// `limits.control_frames_reset_idle`.
    pub control_frames_reset_idle: bool,
}

impl std::convert::From<&Limits> for SessionLimits {
    fn from(limits: &Limits) -> Self {
        Self {
            idle_timeout: limits.idle_timeout,
            max_connection_duration: limits.max_connection_duration,
            resume_window: limits.resume_window,
            max_frame_bytes: limits.max_frame_bytes,
            max_inflight_per_connection: limits.max_inflight_per_connection,
            resume_buffer_bytes: limits.resume_buffer_bytes,
            control_frames_reset_idle: limits.control_frames_reset_idle,
        }
    }
}

/// How a session starts: with its socket, or suspended (kept across a restart) for `window`,
/// telling `$disconnect` `code` if its client does not come back.
pub(crate) enum Start {
    /// A new connection's socket halves.
    Live(SocketSink, SocketStream),
    /// A connection the previous process handed over (`kill -USR2`). Boxed: every session's
    /// future holds a `Start`.
    Moved(Box<Moved>),
    /// Restored from `gateway.state_dir`, waiting for its resume.
    Suspended {
        /// What is left of its resume window.
        window: Duration,
        /// What `$disconnect` is told if the window passes.
        code: u16,
    },
}

/// A connection the previous process handed over: its socket, and where its timers were.
pub(crate) struct Moved {
    /// The socket's halves.
    pub halves: (SocketSink, SocketStream),
    /// When `limits.max_connection_duration` ends it.
    pub lifetime: Instant,
    /// Its latest activity, for the idle timer.
    pub active: Instant,
}

/// How a session's sockets came to an end.
enum Finished {
    /// The last socket ended so: close it and tell `$disconnect`.
    Socket(Ending, SocketSink, SocketStream),
    /// No socket is left; tell `$disconnect` this.
    Ended(u16, String),
    /// Kept for the next process (`gateway.state_dir`); `$disconnect` is not told.
    Kept(u16),
    /// Taken over by another node of the cluster; `$disconnect` is not told.
    Released(oneshot::Sender<Saved>, u16),
}

/// The reason `$disconnect` is told with a close code of a session that never came back.
pub(crate) fn reason_of(code: u16) -> &'static str {
    match code {
        1012 => SERVICE_RESTART,
        _ => ABNORMAL,
    }
}

/// The reason of a 1012 close.
const SERVICE_RESTART: &str = "Service Restart";

/// Runs a session until the connection ends, then its `$disconnect`.
///
/// The connection was registered in the hub when `$connect` accepted it (before the 101), so
/// POSTs made as soon as the client sees the upgrade are queued in `inbox`, not refused. A
/// resumable session whose socket breaks is suspended for `limits.resume_window` instead of
/// ending, and goes on with the socket of the client's resume; when the gateway stops with
/// `gateway.state_dir`, it is closed with 1012 and kept for the next process.
///
/// Not an `async fn`, nor is [`serve`]: an `async fn` keeps its arguments in its future twice
/// (as received, and moved into the body), and every idle connection would carry the copies.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run(
    services: Arc<SessionServices>,
    handle: Arc<SessionHandle>,
    mut inbox: Inbox,
    limits: SessionLimits,
    start: Start,
    mut reliable: Option<Box<Reliable>>,
) -> impl Future<Output = ()> {
    async move {
        let ctx = handle.ctx.clone();
        let now = Instant::now();
        let mut lifetime = now + limits.max_connection_duration;
        // The latest activity of a connection handed over, for its first turn's idle timer.
        let mut active = None;
        let (mut halves, mut window, mut drop_code) = match start {
            Start::Live(sink, stream) => {
                if let Some(r) = reliable.as_deref_mut() {
                    let greeting = resume::connected(&ctx.connection_id, &r.token);
                    r.replay.open_with(greeting, Vec::new());
                    mirror_live(&services, &handle, r, lifetime, limits.resume_window);
                }
                (Some((sink, stream)), limits.resume_window, 1006)
            }
            Start::Moved(moved) => {
                (lifetime, active) = (moved.lifetime, Some(moved.active));
                (Some(moved.halves), limits.resume_window, 1006)
            }
            Start::Suspended { window, code } => {
                // Kept by another process or node: in a cluster, any node can resume it from
                // now on.
                if let Some(r) = reliable.as_deref_mut() {
                    mirror_suspended(&services, &handle, &mut inbox, r, code, window);
                }
                (None, window, code)
            }
        };
        let keeping = services.keeping.is_some();
        let mut tally = Tally::default();
        let finished = loop {
            let resume = match halves.as_mut() {
                Some((sink, stream)) => {
                    let turn = serve(
                        &services,
                        &handle,
                        (&mut inbox, &mut tally),
                        &limits,
                        (sink, stream),
                        (lifetime, active.take()),
                        reliable.as_deref_mut(),
                    )
                    .await;
                    let resumable = reliable.is_some() && !limits.resume_window.is_zero();
                    match turn {
                        Turn::Replaced(resume) => resume,
                        // The client resumes on another node: this socket was left behind.
                        Turn::Released(to) => break Finished::Released(to, drop_code),
                        Turn::HandOver(handing) => {
                            let Some((sink, stream)) = halves.take() else {
                                continue;
                            };
                            let r = reliable.as_deref_mut();
                            let out = move_out(
                                &services,
                                &handle,
                                &mut inbox,
                                &limits,
                                (sink, stream),
                                r,
                                *handing,
                                lifetime,
                            );
                            match Box::pin(out).await {
                                Out::Stay(sink, stream) => halves = Some((sink, stream)),
                                Out::Ended(ending, sink, stream) => {
                                    break Finished::Socket(ending, sink, stream);
                                }
                                Out::Gone(relay, inflight) => {
                                    Box::pin(pass_on(&services, &handle, inbox, relay, inflight))
                                        .await;
                                    return;
                                }
                                Out::Secure(sink, stream) if resumable => {
                                    // TLS cannot move: closed with 1012, the session moves
                                    // suspended and its client resumes with the new process.
                                    let restart = Ending::Server(1012, SERVICE_RESTART.into());
                                    Box::pin(finish(sink, stream, restart)).await;
                                    (window, drop_code) = (limits.resume_window, 1012);
                                    handle.outbox.hand_over();
                                }
                                Out::Secure(sink, stream) => {
                                    break Finished::Socket(
                                        Ending::Server(1012, SERVICE_RESTART.into()),
                                        sink,
                                        stream,
                                    );
                                }
                            }
                            continue;
                        }
                        Turn::Over(Ending::Abnormal) if resumable => {
                            debug!(connection_id = %ctx.connection_id, "socket lost: suspended until resumed");
                            (halves, window, drop_code) = (None, limits.resume_window, 1006);
                            if let Some(r) = reliable.as_deref_mut() {
                                mirror_suspended(
                                    &services, &handle, &mut inbox, r, drop_code, window,
                                );
                            }
                            continue;
                        }
                        Turn::Over(Ending::Stopping) if resumable && keeping => {
                            if let Some((sink, stream)) = halves.take() {
                                let restart = Ending::Server(1012, SERVICE_RESTART.into());
                                Box::pin(finish(sink, stream, restart)).await;
                            }
                            break Finished::Kept(1012);
                        }
                        Turn::Over(ending) => match halves.take() {
                            Some((sink, stream)) => break Finished::Socket(ending, sink, stream),
                            None => break Finished::Ended(1006, ABNORMAL.to_owned()),
                        },
                    }
                }
                None => {
                    let Some(r) = reliable.as_deref_mut() else {
                        break Finished::Ended(drop_code, reason_of(drop_code).to_owned());
                    };
                    match Box::pin(suspend(&services, &mut inbox, r, &limits, window)).await {
                        Suspended::Resumed(resume) => resume,
                        Suspended::Released(to) => break Finished::Released(to, drop_code),
                        Suspended::HandOver(ends) => {
                            let out =
                                move_suspended(&services, &handle, r, lifetime, ends, drop_code);
                            match Box::pin(out).await {
                                Some(relay) => {
                                    Box::pin(pass_on(&services, &handle, inbox, relay, None)).await;
                                    return;
                                }
                                None => {
                                    window = ends.saturating_duration_since(Instant::now());
                                    continue;
                                }
                            }
                        }
                        Suspended::Stopping if keeping => break Finished::Kept(drop_code),
                        Suspended::Stopping => {
                            break Finished::Ended(drop_code, reason_of(drop_code).to_owned());
                        }
                        Suspended::Over(None) => {
                            break Finished::Ended(drop_code, reason_of(drop_code).to_owned());
                        }
                        Suspended::Over(Some((code, reason))) => {
                            break Finished::Ended(code, reason);
                        }
                    }
                }
            };
            let Some(r) = reliable.as_deref_mut() else {
                break Finished::Ended(1006, ABNORMAL.to_owned());
            };
            match resumed(&services, &ctx, r, resume.seq) {
                Ok(()) => {
                    mirror_live(&services, &handle, r, lifetime, limits.resume_window);
                    let mut socket = resume.socket;
                    socket.get_mut().attach(handle.outbox.move_switch());
                    halves = Some(socket.split());
                }
                Err(reason) => {
                    Box::pin(refuse_resume(resume.socket, reason)).await;
                    break Finished::Ended(drop_code, reason_of(drop_code).to_owned());
                }
            }
        };
        end(&services, &handle, inbox, reliable, finished, tally).await;
    }
}

/// What one connection exchanged, for the line logged when it ends (kept in the session's own
/// state: 24 bytes, no atomics).
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    messages_in: u32,
    messages_out: u32,
    bytes_in: u64,
    bytes_out: u64,
}

impl Tally {
    fn sent(&mut self, messages: u32, bytes: u64) {
        self.messages_out = self.messages_out.saturating_add(messages);
        self.bytes_out = self.bytes_out.saturating_add(bytes);
    }

    /// Counts a message the client sent, and hands the read on.
    fn received(
        &mut self,
        frame: Option<Result<Message, WsError>>,
    ) -> Option<Result<Message, WsError>> {
        if let Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) = &frame {
            self.messages_in = self.messages_in.saturating_add(1);
            self.bytes_in = self.bytes_in.saturating_add(message.len() as u64);
        }
        frame
    }
}

/// Who ended a connection, for its log line.
fn closed_by(finished: &Finished) -> &'static str {
    match finished {
        Finished::Socket(Ending::Client(..), ..) => "client",
        Finished::Socket(Ending::Abnormal, ..) | Finished::Ended(..) => "network",
        Finished::Socket(..) => "gateway",
        Finished::Kept(_) | Finished::Released(..) => "moved",
    }
}

/// The line logged once per ended connection.
fn log_ended(
    handle: &SessionHandle,
    user: Option<&str>,
    tally: Tally,
    (code, reason, by): (u16, &str, &'static str),
) {
    let ctx = &handle.ctx;
    let duration_ms = clock::now_ms().saturating_sub(ctx.connected_at);
    info!(
        connection_id = %ctx.connection_id,
        source_ip = %ctx.source_ip,
        user,
        duration_ms,
        messages_in = tally.messages_in,
        messages_out = tally.messages_out,
        bytes_in = tally.bytes_in,
        bytes_out = tally.bytes_out,
        code,
        reason,
        closed_by = by,
        "connection ended"
    );
}

/// The end of a session: out of the hub and of the resume desk, its socket closed, and
/// `$disconnect` told — or, kept for the next process, written down instead.
async fn end(
    services: &Arc<SessionServices>,
    handle: &Arc<SessionHandle>,
    mut inbox: Inbox,
    mut reliable: Option<Box<Reliable>>,
    finished: Finished,
    tally: Tally,
) {
    let ctx = &handle.ctx;
    let by = closed_by(&finished);
    // Read once, before the hub lets go of them: a kept or released session takes its groups and
    // user along; an ended one's user goes into its log line.
    let membership = handle.membership();
    let user = membership.user.clone();
    if let Some(r) = &reliable {
        services.resumes.forget(&r.token);
    }
    // A session another node took over is that node's to keep in Redis now.
    let released = matches!(finished, Finished::Released(..));
    handle.set_mirrored(false);
    if let Some(r) = reliable.as_deref_mut()
        && r.replay.unmirror()
        && !released
    {
        mirror(services, Mirror::Forget(ctx.connection_id));
    }
    let membership =
        matches!(finished, Finished::Kept(_) | Finished::Released(..)).then_some(membership);
    // From here on the connection is gone for the management API.
    services.hub.remove(&ctx.connection_id);
    // The closing and `$disconnect` futures are boxed: they run once, at the end, but an async
    // fn's state is as large as its largest await, and every idle session would carry their size.
    let (code, reason) = match finished {
        Finished::Socket(ending, sink, stream) => {
            drop(inbox);
            Box::pin(finish(sink, stream, ending)).await
        }
        Finished::Ended(code, reason) => (code, reason),
        Finished::Released(to, code) => {
            if let (Some(mut r), Some(membership)) = (reliable, membership) {
                let saved = keep(handle, &mut inbox, &mut r, membership, code);
                let _ = to.send(saved);
                debug!(connection_id = %ctx.connection_id, "taken over by another node");
            }
            return;
        }
        Finished::Kept(code) => {
            if let (Some(mut r), Some((_, keeping)), Some(membership)) =
                (reliable, &services.keeping, membership)
            {
                let saved = keep(handle, &mut inbox, &mut r, membership, code);
                keeping
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(saved);
                debug!(connection_id = %ctx.connection_id, "kept for the next process");
                return;
            }
            (code, reason_of(code).to_owned())
        }
    };
    services.metrics.disconnect(code);
    log_ended(handle, user.as_deref(), tally, (code, &reason, by));
    // A cluster that took this node for dead told `$disconnect` already.
    if !handle.reported() {
        Box::pin(disconnect(services, ctx, code, &reason)).await;
    }
}

/// Sends a mirror of the session to the cluster's Redis, when there is a cluster.
fn mirror(services: &SessionServices, mirror: Mirror) {
    if let Some(mirrors) = services.mirrors.get() {
        let _ = mirrors.send(mirror);
    }
}

/// In a cluster, a session that has just lost its socket is written to Redis as it is, so that
/// its client can resume on any node, this one dead or alive.
fn mirror_suspended(
    services: &SessionServices,
    handle: &SessionHandle,
    inbox: &mut Inbox,
    reliable: &mut Reliable,
    code: u16,
    window: Duration,
) {
    if services.mirrors.get().is_none() {
        return;
    }
    let saved = keep(handle, inbox, reliable, handle.membership(), code);
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    mirror(services, Mirror::Keep(Box::new(saved), window_ms));
    if let Some(mirrors) = services.mirrors.get() {
        reliable
            .replay
            .mirror_to(mirrors.clone(), handle.ctx.connection_id);
        handle.set_mirrored(true);
    }
}

/// In a cluster, a resumable session with a socket is written to Redis as well, and then each
/// message to it: if this node dies, a survivor takes it over, and its client resumes there.
/// Its record lives as long as it may (the rest of its lifetime, and a resume window).
fn mirror_live(
    services: &SessionServices,
    handle: &SessionHandle,
    reliable: &mut Reliable,
    lifetime: Instant,
    window: Duration,
) {
    let Some(mirrors) = services.mirrors.get() else {
        return;
    };
    // Live: its window starts when a survivor finds its node dead (suspended at "0").
    let saved = snapshot(handle, reliable, handle.membership(), 0, 1006);
    let ttl = lifetime.saturating_duration_since(Instant::now()) + window;
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let _ = mirrors.send(Mirror::KeepLive(Box::new(saved), ttl_ms));
    reliable
        .replay
        .mirror_to(mirrors.clone(), handle.ctx.connection_id);
    handle.set_mirrored(true);
}

/// What a session kept for the next process is made of; what its outbox still held is
/// numbered and kept too.
fn keep(
    handle: &SessionHandle,
    inbox: &mut Inbox,
    reliable: &mut Reliable,
    membership: crate::hub::Membership,
    code: u16,
) -> Saved {
    while let Some(command) = inbox.try_recv() {
        reliable.replay.wrap(&command);
    }
    snapshot(handle, reliable, membership, clock::now_ms(), code)
}

/// A resumable session as it is now, suspended at `suspended_at_ms`.
fn snapshot(
    handle: &SessionHandle,
    reliable: &Reliable,
    membership: crate::hub::Membership,
    suspended_at_ms: u64,
    code: u16,
) -> Saved {
    let (last_seq, dropped_to, kept) = reliable.replay.export();
    Saved {
        ctx: (*handle.ctx).clone(),
        groups: membership.groups.iter().map(|g| g.to_string()).collect(),
        user: membership.user.as_deref().map(str::to_owned),
        token: reliable.token.clone(),
        last_seq,
        dropped_to,
        kept,
        last_active_ms: handle.last_active_ms(),
        suspended_at_ms,
        code,
    }
}

/// How a move to a new process ended for a session with a socket.
enum Out {
    /// It goes on here: no new process took it.
    Stay(SocketSink, SocketStream),
    /// It ended while moving (the client closed, or broke the protocol).
    Ended(Ending, SocketSink, SocketStream),
    /// TLS: it cannot move.
    Secure(SocketSink, SocketStream),
    /// The new process has it: what still arrives here is passed on, until the session's
    /// integration calls under way (their permits) are all back.
    Gone(Relay, Option<(Arc<Semaphore>, u32)>),
}

/// Moves a connection to the new process between two frames: routes the messages tungstenite
/// has read already, writes everything queued (the socket never makes it wait now: what it
/// cannot take is carried), and sends the session's state with its socket; then waits for the
/// verdict. If the new process failed, the session goes on with the same socket.
#[allow(clippy::too_many_arguments)]
async fn move_out(
    services: &Arc<SessionServices>,
    handle: &Arc<SessionHandle>,
    inbox: &mut Inbox,
    limits: &SessionLimits,
    (sink, stream): (SocketSink, SocketStream),
    mut reliable: Option<&mut Reliable>,
    handing: Handing,
    lifetime: Instant,
) -> Out {
    let (mut sink, mut stream) = (sink, stream);
    let outbox = &handle.outbox;
    // From here the socket reads nothing more and never makes a write wait.
    outbox.set_moving(true);
    let ended = |sink, stream, ending| {
        outbox.set_moving(false);
        Out::Ended(ending, sink, stream)
    };
    // A message the sink half holds (it takes one before the socket can) goes in first.
    if !matches!(timeout(CLOSE_HANDSHAKE, sink.flush()).await, Ok(Ok(()))) {
        return ended(sink, stream, Ending::Abnormal);
    }
    // Messages tungstenite holds whole are routed here; their answers are passed on.
    while let Some(next) = stream.next().now_or_never() {
        let replay = reliable.as_deref_mut().map(|r| &mut r.replay);
        if let Read::End(ending) = on_read(services, handle, next, replay, &mut None) {
            return ended(sink, stream, ending);
        }
    }
    let frame_bytes = limits.max_frame_bytes;
    let mut pending = handing.pending;
    loop {
        if let Some(outgoing) = pending.as_mut() {
            while let Some(message) = outgoing.next(frame_bytes) {
                if sink.feed(message).await.is_err() {
                    return ended(sink, stream, Ending::Abnormal);
                }
            }
        }
        let replay = reliable.as_deref_mut().map(|r| &mut r.replay);
        pending = match next_outgoing(inbox, replay, frame_bytes) {
            Some(Ok(outgoing)) => Some(outgoing),
            Some(Err((code, reason))) => return ended(sink, stream, Ending::Server(code, reason)),
            None => break,
        };
    }
    if !matches!(timeout(CLOSE_HANDSHAKE, sink.flush()).await, Ok(Ok(()))) {
        return ended(sink, stream, Ending::Abnormal);
    }
    let ws = match stream.reunite(sink) {
        Ok(ws) => ws,
        Err(halves) => return ended(halves.0, halves.1, Ending::Abnormal),
    };
    let carried = carried(handle, reliable.as_deref(), lifetime, None);
    let parts = match ws.into_inner().into_parts() {
        Ok(parts) => parts,
        Err(tap) => {
            // TLS: the session stays, on the same connection.
            outbox.set_moving(false);
            let (tap, unread) = (*tap).unmoved();
            let (sink, stream) = rebuilt(services, tap, unread).await.split();
            return Out::Secure(sink, stream);
        }
    };
    let moving = Moving {
        carried: carried.encode(&parts.unread, &parts.unsent),
        socket: parts.tcp.as_fd().try_clone_to_owned().ok(),
    };
    let departure = match moving.socket {
        Some(_) => services.handoff.depart(moving),
        None => None,
    };
    if let Some(departure) = departure
        && handoff::verdict(departure.verdict).await == Verdict::Taken
    {
        // Closing this process's descriptor leaves the connection open: the new one holds it.
        drop(parts);
        let inflight = handing.inflight;
        let permits = u32::try_from(limits.max_inflight_per_connection).unwrap_or(u32::MAX);
        return Out::Gone(departure.relay, Some((inflight, permits)));
    }
    outbox.set_moving(false);
    let read_size = services.deployment.load().config.limits.read_buffer_bytes;
    let tap = Tap::handed(parts.tcp, read_size, parts.unsent, outbox.move_switch());
    let (sink, stream) = rebuilt(services, tap, parts.unread).await.split();
    Out::Stay(sink, stream)
}

/// A session's WebSocket on `tap` again, reading `unread` first.
async fn rebuilt(services: &SessionServices, tap: Tap, unread: Vec<u8>) -> Socket {
    let config = crate::edge::tap::socket_config(&services.deployment.load().config.limits);
    WebSocketStream::from_partially_read(tap, unread, Role::Server, Some(config)).await
}

/// A session's state as the new process needs it.
fn carried(
    handle: &SessionHandle,
    reliable: Option<&Reliable>,
    lifetime: Instant,
    suspended: Option<Suspension>,
) -> Carried {
    let membership = handle.membership();
    let left = lifetime.saturating_duration_since(Instant::now());
    Carried {
        ctx: (*handle.ctx).clone(),
        groups: membership.groups.iter().map(|g| g.to_string()).collect(),
        user: membership.user.as_deref().map(str::to_owned),
        last_active_ms: handle.last_active_ms(),
        lifetime_ends_ms: clock::now_ms() + u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
        reliable: reliable.map(|r| {
            let (last_seq, dropped_to, kept) = r.replay.export();
            Reliability {
                token: r.token.clone(),
                last_seq,
                dropped_to,
                kept,
            }
        }),
        suspended,
        unread: 0,
        unsent: 0,
    }
}

/// Moves a suspended session (no socket) to the new process; `Some` once the new process has
/// it, `None` when it stays here.
async fn move_suspended(
    services: &SessionServices,
    handle: &SessionHandle,
    reliable: &Reliable,
    lifetime: Instant,
    window_ends: Instant,
    code: u16,
) -> Option<Relay> {
    let left = window_ends.saturating_duration_since(Instant::now());
    let suspension = Suspension {
        window_ends_ms: clock::now_ms() + u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
        code,
    };
    let carried = carried(handle, Some(reliable), lifetime, Some(suspension));
    let moving = Moving {
        carried: carried.encode(&[], &[]),
        socket: None,
    };
    let departure = services.handoff.depart(moving)?;
    (handoff::verdict(departure.verdict).await == Verdict::Taken).then_some(departure.relay)
}

/// What a session that moved to the new process still does here: passes on what arrives for it
/// (answers of its integration calls under way) until they are all back, at most for
/// `limits.shutdown_grace`. No `$disconnect`: the connection lives on in the new process.
async fn pass_on(
    services: &SessionServices,
    handle: &SessionHandle,
    mut inbox: Inbox,
    relay: Relay,
    inflight: Option<(Arc<Semaphore>, u32)>,
) {
    let id = handle.ctx.connection_id;
    services.hub.remove(&id);
    let grace = services.deployment.load().config.limits.shutdown_grace;
    let calls_done = async move {
        if let Some((inflight, permits)) = inflight {
            let _ = inflight.acquire_many_owned(permits).await;
        }
    };
    let mut calls_done = pin!(calls_done);
    let deadline = sleep(grace);
    let mut deadline = pin!(deadline);
    loop {
        tokio::select! {
            biased;
            next = poll_fn(|cx| next_command(cx, &mut inbox)) => {
                if let Next::Command(command) = next {
                    let _ = relay.send((id, command));
                }
            }
            () = &mut calls_done => break,
            () = &mut deadline => break,
        }
    }
    while let Some(command) = inbox.try_recv() {
        let _ = relay.send((id, command));
    }
}

/// A resume of a suspended (or replaced) session: issues the next token and queues the `resumed`
/// frame and the messages after the client's `seq`; or says why it cannot be served.
fn resumed(
    services: &SessionServices,
    ctx: &ConnectionContext,
    reliable: &mut Reliable,
    seq: u64,
) -> Result<(), &'static str> {
    let resend = reliable
        .replay
        .after(seq)
        .map_err(|_| "messages after that seq are no longer kept (limits.resume_buffer_bytes)")?;
    services.resumes.forget(&reliable.token);
    reliable.token = services
        .resumes
        .issue(ctx.connection_id, reliable.sender.clone());

    debug!(connection_id = %ctx.connection_id, seq, resent = resend.len(), "resumed");
    let greeting = resume::resumed(&ctx.connection_id, &reliable.token);
    reliable.replay.open_with(greeting, resend);
    Ok(())
}

/// Tells a client its resume cannot be served, and closes with 4410.
pub(crate) async fn refuse_resume(mut socket: Socket, reason: &str) {
    let closing = async {
        let _ = socket
            .send(Message::Text(resume::resume_failed(reason)))
            .await;
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::from(resume::RESUME_FAILED),
                reason: Utf8Bytes::from_static("Resume failed"),
            })))
            .await;
        while let Some(Ok(_)) = socket.next().await {}
    };
    let _ = timeout(CLOSE_HANDSHAKE, closing).await;
}

/// Waits `window`, socket gone, for the client to resume: posts are numbered and kept meanwhile.
async fn suspend(
    services: &SessionServices,
    inbox: &mut Inbox,
    reliable: &mut Reliable,
    limits: &SessionLimits,
    window: Duration,
) -> Suspended {
    let window = sleep(window);
    let mut window = pin!(window);
    let stopping = services.lifecycle.stopping.clone();
    let mut stopped = pin!(stopping.cancelled());
    let lost = || Suspended::Over(None);
    loop {
        tokio::select! {
            biased;
            () = &mut stopped => return Suspended::Stopping,
            () = &mut window => return lost(),
            knock = reliable.resumes.recv() => match knock.map(|k| *k) {
                Some(Knock::Resume(resume)) => return Suspended::Resumed(Box::new(resume)),
                Some(Knock::Release(to)) => return Suspended::Released(to),
                None => return lost(),
            },
            command = poll_fn(|cx| next_command(cx, inbox)) => match command {
                Next::HandOver => return Suspended::HandOver(window.deadline()),
                Next::Command(Command::Close(code, reason)) => return Suspended::Over(Some((code, reason.into_owned()))),
                Next::Command(command) => {
                    reliable.replay.wrap(&command);
                    if reliable.replay.bytes() > limits.resume_buffer_bytes {
                        debug!("suspended session past limits.resume_buffer_bytes: ended");
                        return lost();
                    }
                }
            },
        }
    }
}

/// What a session without a socket is asked to do next.
enum Next {
    Command(Command),
    HandOver,
}

/// The next command for a session without a socket; an urgent close comes first.
fn next_command(cx: &mut Context<'_>, inbox: &mut Inbox) -> Poll<Next> {
    if let Some((code, reason)) = inbox.take_urgent(cx) {
        return Poll::Ready(Next::Command(Command::Close(code, reason.into())));
    }
    if inbox.take_hand_over() {
        return Poll::Ready(Next::HandOver);
    }
    match inbox.poll_recv(cx) {
        Poll::Ready(Some(command)) => Poll::Ready(Next::Command(command)),
        _ => Poll::Pending,
    }
}

/// A resume, when the session is resumable (never otherwise).
fn next_resume(
    cx: &mut Context<'_>,
    resumes: Option<&mut mpsc::Receiver<Box<Knock>>>,
) -> Poll<Option<Box<Knock>>> {
    match resumes {
        Some(resumes) => resumes.poll_recv(cx),
        None => Poll::Pending,
    }
}

/// One socket's turn: reads and routes messages, writes what the outbox holds, keeps the timers
/// (the lifetime runs across resumes), until the connection ends or a resume takes over.
#[allow(clippy::manual_async_fn)] // Not an `async fn`: see [`run`].
fn serve<'a>(
    services: &'a Arc<SessionServices>,
    handle: &'a Arc<SessionHandle>,
    (inbox, tally): (&'a mut Inbox, &'a mut Tally),
    limits: &'a SessionLimits,
    (sink, stream): (&'a mut SocketSink, &'a mut SocketStream),
    (lifetime, active): (Instant, Option<Instant>),
    reliable: Option<&'a mut Reliable>,
) -> impl Future<Output = Turn> + 'a {
    async move {
        let (mut replay, mut resumes) = match reliable {
            Some(r) => (Some(&mut r.replay), Some(&mut r.resumes)),
            None => (None, None),
        };
        let resume_bytes = limits.resume_buffer_bytes;

        // One timer for both the idle timeout and the lifetime, set to whichever ends first. It is
        // re-armed only when it fires (from the last activity), not on every message: resetting a
        // timer per message costs a timer-wheel update each time.
        // The idle timer runs from now, or from the latest activity of a connection handed over.
        let mut last_activity = active.unwrap_or_else(Instant::now);
        let mut timer = pin!(tokio::time::sleep_until(
            (last_activity + limits.idle_timeout).min(lifetime)
        ));
        let inflight = Arc::new(Semaphore::new(limits.max_inflight_per_connection));
        // Waits for a permit without a future per loop turn: it allocates one only while every
        // permit is taken.
        let mut permits = PollSemaphore::new(inflight.clone());
        let mut permit: Option<OwnedSemaphorePermit> = inflight.clone().try_acquire_owned().ok();
        let mut pending: Option<Outgoing> = None;
        let frame_bytes = limits.max_frame_bytes;

        // Created once: a fresh `cancelled()` per loop turn would register with and leave the
        // gateway-wide shutdown notifier, under its lock, for every message of every session.
        let shutdown = services.lifecycle.stopping.clone();
        let mut cancelled = pin!(shutdown.cancelled());

        let ending = loop {
            tokio::select! {
                biased;
                () = &mut cancelled => break Ending::Stopping,
                pumped = poll_fn(|cx| pump(cx, &mut *sink, inbox, &mut pending, frame_bytes, replay.as_deref_mut())) => match pumped {
                    Pumped::Wrote(n, bytes) => {
                        services.metrics.sent(u64::from(n));
                        tally.sent(n, bytes);
                        handle.touch(clock::now_ms());
                        last_activity = Instant::now();
                        if let Some(replay) = replay.as_deref_mut() {
                            replay.trim_to(resume_bytes);
                        }
                    }
                    Pumped::Close(code, reason) => break Ending::Server(code, reason),
                    Pumped::Failed => break Ending::Abnormal,
                    Pumped::HandOver => return Turn::HandOver(Box::new(Handing { pending: pending.take(), inflight })),
                },
                resume = poll_fn(|cx| next_resume(cx, resumes.as_deref_mut())), if resumes.is_some() => match resume {
                    Some(knock) => match *knock {
                        Knock::Resume(resume) => return Turn::Replaced(Box::new(resume)),
                        Knock::Release(to) => return Turn::Released(to),
                    },
                    None => break Ending::Abnormal,
                },
                acquired = poll_fn(|cx| permits.poll_acquire(cx)), if permit.is_none() => permit = acquired,
                frame = stream.next(), if permit.is_some() => match on_read(services, handle, tally.received(frame), replay.as_deref_mut(), &mut permit) {
                    Read::Data => last_activity = Instant::now(),
                    // tungstenite queues the Pong of a Ping and writes it on the next read or write.
                    Read::Ping if limits.control_frames_reset_idle => last_activity = Instant::now(),
                    Read::Ping | Read::Other => {}
                    Read::End(ending) => break ending,
                },
                () = &mut timer => {
                    let idle_ends = last_activity + limits.idle_timeout;
                    let now = Instant::now();
                    if idle_ends > now && lifetime > now {
                        timer.as_mut().reset(idle_ends.min(lifetime));
                    } else {
                        break Ending::Server(1001, GOING_AWAY.into());
                    }
                }
            }
        };
        Turn::Over(ending)
    }
}

/// The writing half of a session's socket.
pub(crate) type SocketSink = futures_util::stream::SplitSink<Socket, Message>;
/// The reading half.
pub(crate) type SocketStream = futures_util::stream::SplitStream<Socket>;

/// Ends the WebSocket conversation as `ending` says and returns the code and reason that
/// `$disconnect` reports. Bounded by [`CLOSE_HANDSHAKE`].
async fn finish(mut sink: SocketSink, mut stream: SocketStream, ending: Ending) -> (u16, String) {
    let ending = match ending {
        Ending::Stopping => Ending::Server(1001, GOING_AWAY.into()),
        other => other,
    };
    match ending {
        Ending::Server(code, reason) => {
            let frame = close_frame(code, reason.clone());
            let closing = async {
                if sink.send(frame).await.is_ok() {
                    // Wait for the client's Close so the handshake completes cleanly.
                    while let Some(Ok(_)) = stream.next().await {}
                }
            };
            let _ = timeout(CLOSE_HANDSHAKE, closing).await;
            (code, reason.into_owned())
        }
        Ending::ReadFailed(code, reason) => {
            let closing = async move {
                if sink.send(close_frame(code, reason.into())).await.is_err() {
                    return;
                }
                // The client may still be sending (the rest of a message that was too big).
                // Dropping a socket with unread data resets it, and the client would lose our
                // Close; so half-close and discard what comes until the client closes too.
                let Ok(socket) = stream.reunite(sink) else {
                    return;
                };
                let mut io = socket.into_inner();
                let _ = io.shutdown().await;
                let mut discard = vec![0u8; 4096];
                while let Ok(1..) = io.read(&mut discard).await {}
            };
            let _ = timeout(CLOSE_HANDSHAKE, closing).await;
            (code, reason.to_owned())
        }
        Ending::Client(code, reason) => {
            let _ = timeout(CLOSE_HANDSHAKE, sink.close()).await;
            (code, reason)
        }
        Ending::Abnormal => (1006, ABNORMAL.to_owned()),
        Ending::Stopping => (1001, GOING_AWAY.to_owned()),
    }
}

fn close_frame(code: u16, reason: Reason) -> Message {
    let reason = match reason {
        Reason::Borrowed(fixed) => Utf8Bytes::from_static(fixed),
        Reason::Owned(chosen) => Utf8Bytes::from(chosen),
    };
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason,
    }))
}

/// A message being written: whole when it fits in one frame, else as a first frame and
/// continuations of at most `limits.max_frame_bytes` each, as API Gateway fragments pushes over
/// 32 KB (pings and pongs may go between them, as RFC 6455 allows).
enum Outgoing {
    Whole(Option<Message>),
    Fragments {
        kind: OpData,
        data: Bytes,
        /// Bytes already handed to the socket.
        sent: usize,
    },
}

impl Outgoing {
    /// What to write for `command`; a close is handed back.
    fn new(command: Command, frame_bytes: usize) -> Result<Self, (u16, Reason)> {
        let (kind, data) = match command {
            Command::Text(text) if text.len() <= frame_bytes => {
                return Ok(Self::Whole(Some(Message::Text(text))));
            }
            Command::Binary(data) if data.len() <= frame_bytes => {
                return Ok(Self::Whole(Some(Message::Binary(data))));
            }
            Command::Text(text) => (OpData::Text, Bytes::from(text)),
            Command::Binary(data) => (OpData::Binary, data),
            Command::Close(code, reason) => return Err((code, reason)),
        };
        Ok(Self::Fragments {
            kind,
            data,
            sent: 0,
        })
    }

    /// The next message or frame to write; `None` once all is handed over.
    fn next(&mut self, frame_bytes: usize) -> Option<Message> {
        match self {
            Self::Whole(message) => message.take(),
            Self::Fragments { kind, data, sent } => {
                if *sent == data.len() {
                    return None;
                }
                let end = data.len().min(*sent + frame_bytes.max(1));
                let opcode = if *sent == 0 { *kind } else { OpData::Continue };
                let frame = Frame::message(
                    data.slice(*sent..end),
                    OpCode::Data(opcode),
                    end == data.len(),
                );
                *sent = end;
                Some(Message::Frame(frame))
            }
        }
    }
}

/// What to write next: a resumable session's greeting (and what a resume sends again) first,
/// then the outbox; a resumable session's messages go out numbered, and are kept until
/// acknowledged. A close is handed back.
fn next_outgoing(
    inbox: &mut Inbox,
    replay: Option<&mut Replay>,
    frame_bytes: usize,
) -> Option<Result<Outgoing, (u16, Reason)>> {
    let Some(replay) = replay else {
        return inbox.try_recv().map(|c| Outgoing::new(c, frame_bytes));
    };
    if let Some(front) = replay.next_front() {
        return Some(Ok(Outgoing::Whole(Some(Message::Text(front)))));
    }
    let command = inbox.try_recv()?;
    let command = match replay.wrap(&command) {
        Some(envelope) => Command::Text(envelope),
        None => command,
    };
    Some(Outgoing::new(command, frame_bytes))
}

/// Moves queued messages from the outbox into the socket. Ready when there is something for the
/// session loop to do; pending while the socket is busy or the outbox is empty.
fn pump<S>(
    cx: &mut Context<'_>,
    sink: &mut S,
    inbox: &mut Inbox,
    pending: &mut Option<Outgoing>,
    frame_bytes: usize,
    mut replay: Option<&mut Replay>,
) -> Poll<Pumped>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    if let Some((code, reason)) = inbox.take_urgent(cx) {
        return Poll::Ready(Pumped::Close(code, reason.into()));
    }
    if inbox.take_hand_over() {
        return Poll::Ready(Pumped::HandOver);
    }
    let (mut wrote, mut bytes) = (0u32, 0u64);
    loop {
        if pending.is_none() {
            // `take_urgent` registered the waker for this poll already.
            match next_outgoing(inbox, replay.as_deref_mut(), frame_bytes) {
                Some(Ok(outgoing)) => *pending = Some(outgoing),
                Some(Err((code, reason))) => return Poll::Ready(Pumped::Close(code, reason)),
                None => break,
            }
        }
        match Pin::new(&mut *sink).poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                let next = pending.as_mut().and_then(|p| p.next(frame_bytes));
                match next {
                    Some(message) => {
                        bytes += message.len() as u64;
                        if Pin::new(&mut *sink).start_send(message).is_err() {
                            return Poll::Ready(Pumped::Failed);
                        }
                        wrote += 1;
                    }
                    None => *pending = None,
                }
            }
            Poll::Ready(Err(_)) => return Poll::Ready(Pumped::Failed),
            Poll::Pending => break,
        }
    }
    if let Poll::Ready(Err(_)) = Pin::new(&mut *sink).poll_flush(cx) {
        return Poll::Ready(Pumped::Failed);
    }
    if wrote > 0 {
        Poll::Ready(Pumped::Wrote(wrote, bytes))
    } else {
        Poll::Pending
    }
}

/// The route a message selects (its key, for the event), or `None` once the client has been
/// sent API Gateway's `Forbidden` frame because none matched.
fn route_of<'d>(
    deployment: &'d Deployment,
    handle: &SessionHandle,
    text: &str,
) -> Option<(RouteKey, &'d Arc<RouteEntry>)> {
    match select(&deployment.expression, text, &deployment.keys) {
        Selection::Route(key) => {
            let route = deployment.routes.get(key.as_str())?;
            Some((key, route))
        }
        Selection::NoRoute => {
            let frame =
                event::error_frame(event::FORBIDDEN, &handle.ctx.connection_id, &random_id());
            queue(
                &handle.outbox,
                Command::Text(Utf8Bytes::from(frame)),
                From::Session,
            );
            None
        }
    }
}

/// Routes one message: mocks answer in line (keeping order), backends in a task of their own so
/// messages of one connection are handled concurrently, as on API Gateway.
fn on_message(
    services: &Arc<SessionServices>,
    handle: &Arc<SessionHandle>,
    message: Inbound,
    permit: &mut Option<OwnedSemaphorePermit>,
) {
    let deployment = services.deployment.load();
    let text = match &message {
        Inbound::Text(text) => text.as_str(),
        // Binary is never JSON, so it goes to $default.
        Inbound::Binary(_) => "",
    };
    let Some((key, route)) = route_of(&deployment, handle, text) else {
        services.metrics.unrouted();
        return;
    };
    route.meter.messages.inc();
    if route.integration.echoes() {
        // The answer is the message itself: send it back as it came, without a copy.
        if route.route_response {
            let reply = match message {
                Inbound::Text(text) => Command::Text(text),
                Inbound::Binary(data) => Command::Binary(data),
            };
            queue(&handle.outbox, reply, From::Session);
        }
        return;
    }
    // Ids cost a random draw and an encoding each: only what reads them gets them.
    let needs_context = route.integration.needs_context();
    let id = || {
        if needs_context {
            random_id()
        } else {
            String::new()
        }
    };
    let (request_id, message_id) = (id(), id());
    let invocation = Invocation {
        request_id: &request_id,
        time_ms: clock::now_ms(),
    };
    let vars = ContextVars {
        ctx: &handle.ctx,
        invocation: &invocation,
        route_key: key.as_str(),
        event_type: "MESSAGE",
        message_id: Some(&message_id),
    };
    if let Some(answer) = route.integration.answer_now(Some(&message), &vars) {
        deliver(
            services,
            handle,
            route,
            &request_id,
            Ok(answer),
            From::Session,
        );
        return;
    }
    // Binary messages reach a backend base64-encoded, with `isBase64Encoded`.
    let (body, is_base64) = match &message {
        Inbound::Text(_) => (std::borrow::Cow::Borrowed(text), false),
        Inbound::Binary(bytes) => (std::borrow::Cow::Owned(STANDARD.encode(bytes)), true),
    };
    let event = event::message(
        &handle.ctx,
        &invocation,
        key.as_str(),
        &message_id,
        &body,
        is_base64,
    );
    let permit = permit.take();
    let handle = handle.clone();
    let route = route.clone();
    let task_services = services.clone();
    services.lifecycle.tasks.spawn(async move {
        let answer = route.invoke(event).await;
        deliver(
            &task_services,
            &handle,
            &route,
            &request_id,
            answer,
            From::Task,
        );
        drop(permit);
    });
}

/// What a read from the client was.
enum Read {
    /// A message (routed, or an ack).
    Data,
    /// A ping.
    Ping,
    /// Another control frame.
    Other,
    /// The end of the connection.
    End(Ending),
}

/// Handles what the client sent: a message is routed (an ack, from a resumable client, is
/// taken instead); a close, a broken stream or a binary frame where they are refused ends the
/// connection.
fn on_read(
    services: &Arc<SessionServices>,
    handle: &Arc<SessionHandle>,
    frame: Option<Result<Message, WsError>>,
    replay: Option<&mut Replay>,
    permit: &mut Option<OwnedSemaphorePermit>,
) -> Read {
    match frame {
        Some(Ok(Message::Text(text))) => {
            handle.touch(clock::now_ms());
            // Only a resumable session looks for acks: others route every message unread.
            if let Some(replay) = replay
                && let Some(seq) = resume::ack(text.as_str())
            {
                replay.ack(seq);
                return Read::Data;
            }
            on_message(services, handle, Inbound::Text(text), permit);
            Read::Data
        }
        Some(Ok(Message::Binary(data))) => {
            if services.deployment.load().config.gateway.binary_frames == BinaryFrames::Reject {
                return Read::End(Ending::Server(
                    1003,
                    "Binary frames are not supported".into(),
                ));
            }
            handle.touch(clock::now_ms());
            on_message(services, handle, Inbound::Binary(data), permit);
            Read::Data
        }
        Some(Ok(Message::Ping(_))) => Read::Ping,
        Some(Ok(Message::Pong(_) | Message::Frame(_))) => Read::Other,
        Some(Ok(Message::Close(frame))) => Read::End(match frame {
            Some(frame) => Ending::Client(frame.code.into(), frame.reason.to_string()),
            None => Ending::Client(1005, CLIENT_NO_STATUS.to_owned()),
        }),
        Some(Err(error)) => Read::End(read_failed(&handle.ctx, error)),
        None => Read::End(Ending::Abnormal),
    }
}

/// Who queues a reply: the session itself (which drains its outbox on its next turn, so no wake
/// is needed) or another task.
#[derive(Clone, Copy)]
enum From {
    Session,
    Task,
}

fn queue(outbox: &Outbox, command: Command, from: From) {
    let queued = match from {
        From::Session => outbox.push_from_session(command),
        From::Task => outbox.push(command),
    };
    if let Err(error) = queued {
        debug!(%error, "reply dropped");
    }
}

/// Applies the answer's `"wsgate"` directives (groups, user) to the calling connection; joins
/// past `limits.max_groups_per_connection` are left out with a warning. A `close` is the
/// caller's to apply, after what it sends.
pub(crate) fn apply_directives(
    services: &SessionServices,
    ctx: &ConnectionContext,
    result: &ProxyResult,
) {
    let Some(directives) = &result.directives else {
        return;
    };
    let hub = &services.hub;
    let id = &ctx.connection_id;
    for group in &directives.leave {
        hub.leave(id, group);
    }
    let max = services
        .deployment
        .load()
        .config
        .limits
        .max_groups_per_connection;
    for group in &directives.join {
        match hub.join_at_most(id, group, max) {
            Ok(()) => {}
            Err(JoinError::Gone) => return,
            Err(error @ JoinError::TooMany(_)) => {
                warn!(connection_id = %id, group, %error, "join directive ignored");
                break;
            }
        }
    }
    if let Some(user) = &directives.user {
        let _ = hub.set_user(id, Some(user));
    }
}

/// Applies the answer's directives, then sends a route response, or the error frame API Gateway
/// sends (on one-way routes too); then closes the connection if the directives say so.
fn deliver(
    services: &SessionServices,
    handle: &SessionHandle,
    route: &RouteEntry,
    request_id: &str,
    answer: Result<ProxyResult, IntegrationError>,
    from: From,
) {
    let (outbox, ctx) = (&handle.outbox, &*handle.ctx);
    let (reply, close) = match answer {
        Ok(mut result) => {
            // Before the route response: a client told "joined" is in the group.
            apply_directives(services, ctx, &result);
            let close = result.directives.as_mut().and_then(|d| d.close.take());
            (route_response(route, result), close)
        }
        Err(error) => (Err(error), None),
    };
    match reply {
        Ok(Some(response)) => queue(outbox, response, from),
        Ok(None) => {}
        Err(error) => {
            warn!(connection_id = %ctx.connection_id, route = %route.key, kind = error.kind(), %error, "integration failed");
            let frame = event::error_frame(error.client_message(), &ctx.connection_id, request_id);
            queue(outbox, Command::Text(Utf8Bytes::from(frame)), from);
        }
    }
    // Queued after the route response, so the client reads the response first.
    if let Some(close) = close {
        services.hub.close(&ctx.connection_id, close);
    }
}

/// The route response to `result`: none when the route has none or the body is empty; an error
/// when the body is said to be base64 and is not.
fn route_response(
    route: &RouteEntry,
    result: ProxyResult,
) -> Result<Option<Command>, IntegrationError> {
    if !route.route_response {
        return Ok(None);
    }
    let Some(body) = result.body else {
        return Ok(None);
    };
    if !result.is_base64_encoded {
        return Ok(Some(Command::Text(Utf8Bytes::from(body))));
    }
    match STANDARD.decode(body.as_bytes()) {
        Ok(data) => Ok(Some(Command::Binary(Bytes::from(data)))),
        Err(e) => Err(IntegrationError::BadResponse(format!(
            "isBase64Encoded body is not base64: {e}"
        ))),
    }
}

/// Tells `$disconnect` (best effort, after the socket is gone).
pub(crate) async fn disconnect(
    services: &SessionServices,
    ctx: &ConnectionContext,
    code: u16,
    reason: &str,
) {
    let deployment = services.deployment.load_full();
    let Some(route) = deployment.routes.get(RouteKey::DISCONNECT) else {
        return;
    };
    let request_id = random_id();
    let invocation = Invocation {
        request_id: &request_id,
        time_ms: clock::now_ms(),
    };
    let event = event::disconnect(ctx, &invocation, code, reason);
    if let Err(error) = route.invoke(event).await {
        warn!(connection_id = %ctx.connection_id, kind = error.kind(), %error, "$disconnect integration failed");
    }
}
