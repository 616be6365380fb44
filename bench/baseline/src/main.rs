//! The raw limit for `wsgate-bench`: the crates wsgate is built on (hyper 1, tokio-tungstenite)
//! with the same socket settings, and nothing else: no routing, no events, no auth, no limits
//! but the frame sizes. One port serves:
//!
//! - a WebSocket upgrade on any path. Every text or binary frame is echoed, except
//!   `{"action":"whoami"}`, answered `{"connectionId":"…"}` as wsgate's bench route does;
//! - `POST {prefix}/@connections/{id}`: the body as one frame to that connection (200, 410 when
//!   it is not open);
//! - `POST {prefix}/@broadcast`: the body as one frame to every open connection
//!   (`{"recipients":N}`);
//! - `GET {prefix}/@openapi.json`: a document naming `@broadcast`, which is how the bench's
//!   broadcast scenario decides to use it.
//!
//! # Layout
//!
//! - `main` accepts TCP connections and hands each to `http`.
//! - `http` serves one HTTP/1.1 connection: the upgrade, which spawns the connection's task in
//!   `session`, and the management calls, which write frames through `hub`.
//! - `session` is the one task per WebSocket connection: it reads frames (tungstenite), echoes,
//!   and writes out what the socket could not take at once.
//! - `hub` holds the open connections by id and writes a pre-encoded frame to one of them.
//!
//! Usage: `wsgate-baseline [ADDR]` (default 127.0.0.1:0); prints `baseline listening on ADDR`.

mod http;
mod hub;
mod session;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::hub::Hub;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("baseline listening on {}", listener.local_addr()?);
    let hub = Arc::new(Hub::default());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                eprintln!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // As wsgate: small frames leave at once.
        let _ = stream.set_nodelay(true);
        tokio::spawn(http::serve(stream, hub.clone()));
    }
}
