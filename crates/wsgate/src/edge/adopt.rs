//! Connections the previous process handed over (`kill -USR2`) go on here: each is registered
//! again — the same connection id, context, groups, user and resume state — and its session
//! reads first what the client had sent that the old process had not read as a message, and
//! writes first what the old process could not write yet. Its lifetime and idle timers go on
//! from where they were; its client sees nothing, its backends no `$connect`.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tracing::warn;
use wsgate_core::clock;

use super::restore::register_again;
use super::session::{self, Moved, SessionLimits, Start};
use super::tap::{Tap, socket_config};
use crate::handoff::wire::Carried;
use crate::state::EdgeServices;

/// A connection as it arrived from the previous process.
#[derive(Debug)]
pub struct Arrival {
    /// Its state.
    pub carried: Carried,
    /// What the client sent that no message was read from yet.
    pub unread: Vec<u8>,
    /// What was not written to the client yet.
    pub unsent: Vec<u8>,
    /// Its socket; `None` for a suspended session.
    pub socket: Option<OwnedFd>,
}

/// Starts a session for each connection handed over.
pub fn adopt(edge: &Arc<EdgeServices>, arrivals: Vec<Arrival>) {
    let services = edge.sessions.clone();
    let limits = services.deployment.load().config.limits.clone();
    let session_limits = SessionLimits::from(&limits);
    let config = socket_config(&limits);
    let (now_ms, now) = (clock::now_ms(), Instant::now());
    let after = |ms: u64| now + Duration::from_millis(ms.saturating_sub(now_ms));
    for arrival in arrivals {
        let Arrival {
            carried,
            unread,
            unsent,
            socket,
        } = arrival;
        let Carried {
            ctx,
            groups,
            user,
            last_active_ms,
            lifetime_ends_ms,
            reliable,
            suspended,
            ..
        } = carried;
        let ip = ctx.source_ip.parse().unwrap_or([127, 0, 0, 1].into());
        // It counts against the limits as it did there; it is never refused.
        let admission = edge.connections.admit(ip, 0, 0).ok();
        let (handle, inbox, reliable) = register_again(
            &services,
            ctx,
            &groups,
            user.as_deref(),
            last_active_ms,
            reliable,
        );
        let start = match (socket, suspended) {
            (_, Some(suspension)) => Some(Start::Suspended {
                window: Duration::from_millis(suspension.window_ends_ms.saturating_sub(now_ms)),
                code: suspension.code,
            }),
            (Some(socket), None) => {
                let tcp = std::net::TcpStream::from(socket);
                match tcp
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpStream::from_std(tcp))
                {
                    Ok(tcp) => {
                        let idle_for = Duration::from_millis(now_ms.saturating_sub(last_active_ms));
                        let active = now.checked_sub(idle_for).unwrap_or(now);
                        let tap = Tap::handed(
                            tcp,
                            limits.read_buffer_bytes,
                            unsent,
                            handle.outbox.move_switch(),
                        );
                        let lifetime = after(lifetime_ends_ms);
                        let services = services.clone();
                        let (handle, inbox) = (handle.clone(), inbox);
                        services.lifecycle.tasks.clone().spawn(async move {
                            let _admission = admission;
                            let ws = WebSocketStream::from_partially_read(
                                tap,
                                unread,
                                Role::Server,
                                Some(config),
                            )
                            .await;
                            let start = Start::Moved(Box::new(Moved {
                                halves: ws.split(),
                                lifetime,
                                active,
                            }));
                            session::run(services, handle, inbox, session_limits, start, reliable)
                                .await;
                        });
                        continue;
                    }
                    Err(error) => {
                        warn!(connection_id = %handle.ctx.connection_id, %error, "a connection handed over could not be used");
                        None
                    }
                }
            }
            (None, None) => None,
        };
        let services = services.clone();
        let task = services.lifecycle.tasks.clone();
        match start {
            Some(start) => {
                task.spawn(async move {
                    let _admission = admission;
                    session::run(services, handle, inbox, session_limits, start, reliable).await;
                });
            }
            None => {
                // Nothing to serve it with: it is over, and its backends are told.
                services.hub.remove(&handle.ctx.connection_id);
                task.spawn(async move {
                    let ctx = handle.ctx.clone();
                    session::disconnect(&services, &ctx, 1006, session::ABNORMAL).await;
                });
            }
        }
    }
}
