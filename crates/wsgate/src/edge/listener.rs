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
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;
use tracing::{debug, warn};

use super::tls::Acceptor;
use crate::gateway::Shared;

/// Set on every request: whether it came over TLS (`X-Forwarded-Proto` of events).
#[derive(Debug, Clone, Copy)]
pub struct Secure(pub bool);

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

/// Accepts connections until the gateway stops, serving each with `app`. The TLS certificate
/// and the handshake timeout are read for each new connection, so a reload changes them for the
/// next ones and leaves open connections alone.
pub async fn serve(listener: TcpListener, app: Router, shared: Arc<Shared>) {
    let stop = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
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
        let tls = shared.tls_acceptor();
        let handshake = shared.runtime.load().config.limits.handshake_timeout;
        tokio::spawn(connection(stream, peer, app.clone(), tls, handshake));
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    tls: Option<Acceptor>,
    handshake: Duration,
) {
    // The first byte and the TLS handshake must come within the timeout; hyper's header timeout
    // then bounds each request head (the first one, and later ones on a kept-alive connection).
    let deadline = tokio::time::Instant::now() + handshake;
    let secure = match &tls {
        None => false,
        Some(_) => {
            let mut first = [0u8; 1];
            match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
                Ok(Ok(1)) => first[0] == TLS_HANDSHAKE,
                _ => return,
            }
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
        Some(Acceptor(acceptor)) if secure => {
            match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
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
            }
        }
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
