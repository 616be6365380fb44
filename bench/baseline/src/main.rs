//! The raw limit for `wsgate-bench`: an echo server on tokio-tungstenite with the same socket
//! settings as wsgate (4 KiB read buffer, eager writes), one task per connection, no routing, no
//! events. `{"action":"whoami"}` answers a fake id so the bench's set-up works unchanged.
//!
//! Usage: `wsgate-baseline [ADDR]` (default 127.0.0.1:0); prints `baseline listening on ADDR`.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("baseline listening on {}", listener.local_addr()?);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_frame_size(Some(32 * 1024))
        .max_message_size(Some(128 * 1024));
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let Ok(mut ws) =
                tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
            else {
                return;
            };
            while let Some(Ok(message)) = ws.next().await {
                let reply = match message {
                    Message::Text(text) if text.as_str() == r#"{"action":"whoami"}"# => {
                        Message::text(r#"{"connectionId":"AAAAAAAAAAAAAAA="}"#)
                    }
                    Message::Text(_) | Message::Binary(_) => message,
                    Message::Close(_) => break,
                    _ => continue,
                };
                if ws.send(reply).await.is_err() {
                    break;
                }
            }
        });
    }
}
