//! One WebSocket connection: a single task that reads frames and echoes them, answers `whoami`,
//! and writes out what its socket could not take at once.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::hub::{Connection, ConnectionId, Hub, Refused};

/// The question the bench asks to learn a connection's id.
const WHOAMI: &str = r#"{"action":"whoami"}"#;

/// wsgate's socket settings: a small read buffer (tungstenite allocates it up front, so it is
/// most of an idle connection's cost; 256 bytes as wsgate's), eager writes, API Gateway's frame
/// and message limits.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(256)
        .write_buffer_size(0)
        .max_frame_size(Some(32 * 1024))
        .max_message_size(Some(128 * 1024))
}

/// The socket as tungstenite sees it: reads come from the TCP stream, writes go through the
/// connection's `send`, the path POSTs and broadcasts take, so frames never interleave.
struct Socket(Arc<Connection>);

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    /// Takes all of `buf`: tungstenite hands over whole frames (its write buffer is 0, so each
    /// frame is written as soon as it is queued, in one call).
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(match self.0.send(buf) {
            Ok(()) => Ok(buf.len()),
            Err(Refused::Gone) => Err(io::ErrorKind::BrokenPipe.into()),
            Err(Refused::Full) => Err(io::Error::other("the client does not read")),
        })
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }

    /// The socket closes when the connection's last handle goes, as its task ends.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }
}

/// Runs an upgraded connection until it closes; `read` is what the HTTP server read past the
/// upgrade request.
pub async fn run(stream: TcpStream, read: Vec<u8>, hub: Arc<Hub>) {
    let connection = Arc::new(Connection::new(stream));
    let id = hub.add(connection.clone());
    let socket = Socket(connection.clone());
    let mut ws =
        WebSocketStream::from_partially_read(socket, read, Role::Server, Some(socket_config()))
            .await;
    loop {
        tokio::select! {
            message = ws.next() => {
                let Some(Ok(message)) = message else { break };
                if answer(&mut ws, id, message).await.is_err() {
                    break;
                }
            }
            () = connection.has_unsent() => {
                if std::future::poll_fn(|cx| connection.poll_flush(cx)).await.is_err() {
                    break;
                }
            }
        }
    }
    hub.remove(id);
}

/// Echoes a data frame, answers `whoami`; `Err` when the connection is over.
async fn answer(
    ws: &mut WebSocketStream<Socket>,
    id: ConnectionId,
    message: Message,
) -> Result<(), ()> {
    let reply = match message {
        Message::Text(text) if text.as_str() == WHOAMI => {
            Message::text(format!(r#"{{"connectionId":"{id}"}}"#))
        }
        Message::Text(_) | Message::Binary(_) => message,
        Message::Close(_) => return Err(()),
        // Pongs are tungstenite's.
        _ => return Ok(()),
    };
    ws.send(reply).await.map_err(drop)
}
