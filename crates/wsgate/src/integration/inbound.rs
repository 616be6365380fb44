//! A client's message as a route sees it.

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// An inbound message as the route sees it.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// A text message.
    Text(Utf8Bytes),
    /// A binary message (only when `gateway.binary_frames = "accept"`).
    Binary(Bytes),
}
