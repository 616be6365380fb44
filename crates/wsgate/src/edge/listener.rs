//! The accept loop: one port for plain HTTP and, when TLS is on, TLS too — the first byte of a
//! connection tells them apart (a TLS handshake starts with 0x16, an HTTP request with a letter),
//! so `ws://host:port` and `https://host:port` reach the same gateway.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::handoff::Phase;
use crate::state::{EdgeServices, TlsPolicy};
use crate::tls::Acceptor;

/// Set on every request: whether it came over TLS (`X-Forwarded-Proto` of events).
#[derive(Debug, Clone, Copy)]
pub struct Secure(pub bool);

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

/// Accepts connections until the gateway stops, serving each with `app`. The TLS certificate
/// and the handshake timeout are read for each new connection, so a reload changes them for the
/// next ones and leaves open connections alone.
///
/// At most `limits.max_pending_connections` accepted connections are served at once before they
/// become WebSocket sessions (read at start): past that the loop stops accepting until one
/// finishes, and new clients wait in the kernel's backlog instead of costing memory here.
pub async fn serve(listener: TcpListener, app: Router, edge: Arc<EdgeServices>) {
    let stop = edge.sessions.lifecycle.stopping.clone();
    let bound = edge.deployment().config.limits.max_pending_connections;
    let pending = Arc::new(Semaphore::new(bound));
    let mut warned = false;
    let mut phase = edge.sessions.handoff.phase();
    loop {
        // While the connections move to a new process, new ones wait in the kernel's backlog;
        // once they have moved, the new process accepts them.
        match phase.wait_for(|p| *p != Phase::Handing).await.map(|p| *p) {
            Ok(Phase::Serving) => {}
            Ok(_) | Err(_) => return,
        }
        let permit = match pending.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !std::mem::replace(&mut warned, true) {
                    warn!(
                        max_pending_connections = bound,
                        "too many connections before their upgrade; accepting no more until one ends"
                    );
                }
                tokio::select! {
                    permit = pending.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return,
                    },
                    () = stop.cancelled() => return,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
            _ = phase.changed() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // No Nagle: route responses and pushes are small frames that must leave at once.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = edge.tls_policy();
        let handshake = edge
            .sessions
            .deployment
            .load()
            .config
            .limits
            .handshake_timeout;
        tokio::spawn(async move {
            connection(stream, peer, app, tls, handshake).await;
            // Held until the connection is over or has become a session (hyper then hands the
            // socket to it and this future ends).
            drop(permit);
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    tls: Option<TlsPolicy>,
    handshake: Duration,
) {
    // The first byte and the TLS handshake must come within the timeout; hyper's header timeout
    // then bounds each request head (the first one, and later ones on a kept-alive connection).
    let deadline = tokio::time::Instant::now() + handshake;
    let secure = match &tls {
        None => false,
        Some(policy) => {
            let mut first = [0u8; 1];
            let secure = match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
                Ok(Ok(1)) => first[0] == TLS_HANDSHAKE,
                _ => return,
            };
            if !secure && policy.refuse_plaintext {
                refuse_plaintext(stream, peer, deadline).await;
                return;
            }
            secure
        }
    };
    let service = app.map_request(move |mut request: axum::http::Request<Incoming>| {
        // The path only: a query string can carry a token.
        debug!(
            %peer,
            secure,
            method = %request.method(),
            path = request.uri().path(),
            "request head read"
        );
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(Secure(secure));
        request
    });
    let service = TowerToHyperService::new(service);
    // hyper's own HTTP/1 connection, not hyper-util's `auto` one: that one first reads the bytes
    // that tell HTTP/1 from HTTP/2 (even when told `http1_only`), with no timeout, so a client
    // that sent nothing (or nothing after its TLS handshake) was never dropped.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(handshake);
    let served = match tls {
        Some(TlsPolicy {
            acceptor: Acceptor(acceptor),
            ..
        }) if secure => match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                let version = stream.get_ref().1.protocol_version();
                debug!(%peer, ?version, "TLS handshake done");
                builder
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await
            }
            Ok(Err(error)) => {
                debug!(%peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => return,
        },
        _ => {
            builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
        }
    };
    if let Err(error) = served {
        debug!(%peer, %error, "connection ended with an error");
    }
}

/// The answer to plain HTTP on a TLS port, as nginx gives one: the client learns its mistake,
/// and nothing it sends after the request head (a body, WebSocket frames) is read.
const PLAINTEXT_REFUSED: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
content-type: text/plain\r\n\
connection: close\r\n\
content-length: 75\r\n\
\r\n\
This port speaks TLS only: use wss:// or https:// (gateway.tls.plaintext).\n";

/// Reads what the client sent of its request head (up to 16 KiB, within the deadline, so the
/// close does not reset the answer away), answers 400 and closes.
async fn refuse_plaintext(mut stream: TcpStream, peer: SocketAddr, deadline: tokio::time::Instant) {
    debug!(%peer, "plain HTTP on a TLS listener: 400");
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buffer[..n]),
            _ => break,
        }
    }
    let _ = stream.write_all(PLAINTEXT_REFUSED).await;
    let _ = stream.shutdown().await;
}
