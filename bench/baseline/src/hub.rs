//! The open connections by id, and writing a pre-encoded frame to one of them.
//!
//! The cheapest design found for a frame that comes from outside the connection's task (a POST,
//! a broadcast): the caller writes it to the socket itself, `try_write` of bytes encoded once,
//! under a per-connection `std::sync::Mutex` that also guards the bytes the socket did not take.
//! No channel, no wake-up of the connection's task unless the socket's buffer is full, and a
//! broadcast is one encode plus one non-blocking `send` per connection. The same path carries the
//! connection's own frames (echoes, pongs), so two writers never interleave within a frame.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll, ready};

use tokio::io::ReadBuf;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Bytes one connection may have waiting for its socket, as wsgate's default outbox (4 MiB):
/// past it a frame is refused rather than kept for a client that does not read.
const MAX_UNSENT_BYTES: usize = 4 << 20;

/// A connection's id: a counter, written as 16 hex digits (nothing to escape in a URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// Parses the form `Display` writes; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 16 {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(Self)
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Why a frame was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The connection is closed, or its socket failed.
    Gone,
    /// The client does not read: `MAX_UNSENT_BYTES` are waiting already.
    Full,
}

/// The open connections.
#[derive(Default)]
pub struct Hub {
    connections: RwLock<HashMap<ConnectionId, Arc<Connection>>>,
    next_id: AtomicU64,
}

impl Hub {
    /// Registers a connection under a new id.
    pub fn add(&self, connection: Arc<Connection>) -> ConnectionId {
        let id = ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        self.write().insert(id, connection);
        id
    }

    pub fn remove(&self, id: ConnectionId) {
        self.write().remove(&id);
    }

    /// Writes one encoded frame to the connection `id`.
    pub fn send_to(&self, id: ConnectionId, frame: &[u8]) -> Result<(), Refused> {
        let connection = self.read().get(&id).cloned().ok_or(Refused::Gone)?;
        connection.send(frame)
    }

    /// Writes one encoded frame to every open connection: how many took it.
    pub fn broadcast(&self, frame: &[u8]) -> usize {
        self.read()
            .values()
            .filter(|connection| connection.send(frame).is_ok())
            .count()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ConnectionId, Arc<Connection>>> {
        self.connections
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ConnectionId, Arc<Connection>>> {
        self.connections
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's socket, shared by its task (which reads) and whoever writes to it.
pub struct Connection {
    stream: TcpStream,
    /// Bytes the socket did not take at once, oldest first. Empty but for a client that reads
    /// slower than it is written to; the connection's task writes them out when the socket can
    /// take more. No capacity while empty.
    unsent: Mutex<Vec<u8>>,
    /// Tells the connection's task that `unsent` has bytes.
    wake: Notify,
}

impl Connection {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            unsent: Mutex::new(Vec::new()),
            wake: Notify::new(),
        }
    }

    /// Writes `frame` (whole frames only) to the socket, or keeps what it does not take for the
    /// connection's task to write.
    pub fn send(&self, frame: &[u8]) -> Result<(), Refused> {
        let mut unsent = self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
        let rest = if unsent.is_empty() {
            match self.stream.try_write(frame) {
                Ok(n) if n == frame.len() => return Ok(()),
                // Kept whatever the bound says: the socket has the frame's start.
                Ok(n) => &frame[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => frame,
                Err(_) => return Err(Refused::Gone),
            }
        } else if unsent.len() + frame.len() > MAX_UNSENT_BYTES {
            return Err(Refused::Full);
        } else {
            frame
        };
        unsent.extend_from_slice(rest);
        drop(unsent);
        self.wake.notify_one();
        Ok(())
    }

    /// Resolves once something waits in `unsent`.
    pub async fn has_unsent(&self) {
        self.wake.notified().await;
    }

    /// Writes out `unsent`; ready once it is empty.
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut unsent = self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
            if unsent.is_empty() {
                // Gives back the memory a burst took: an idle connection holds none.
                unsent.shrink_to_fit();
                return Poll::Ready(Ok(()));
            }
            match self.stream.try_write(&unsent) {
                Ok(n) => {
                    unsent.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drop(unsent);
                    ready!(self.stream.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Reads what the socket has into `buf`.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale; try_read cleared it, so the next poll registers.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// `payload` as one unmasked server frame, encoded once for any number of connections: text
/// when it is UTF-8 (as API Gateway sends a POSTed body), else binary.
pub fn data_frame(payload: &[u8]) -> Vec<u8> {
    let opcode = if std::str::from_utf8(payload).is_ok() {
        Data::Text
    } else {
        Data::Binary
    };
    let mut encoded = Vec::with_capacity(payload.len() + 10);
    Frame::message(Bytes::copy_from_slice(payload), OpCode::Data(opcode), true)
        .format(&mut encoded)
        .expect("writing to a Vec cannot fail");
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_id_reads_back_as_written() {
        let id = ConnectionId(0x2a);
        assert_eq!(id.to_string(), "000000000000002a");
        assert_eq!(ConnectionId::parse(&id.to_string()), Some(id));
        assert_eq!(ConnectionId::parse("2a"), None);
        assert_eq!(ConnectionId::parse("zzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn a_short_text_frame_is_a_two_byte_header_and_the_payload() {
        assert_eq!(data_frame(b"hi"), [0x81, 2, b'h', b'i']);
        assert_eq!(data_frame(&[0xff])[0], 0x82);
        let long = data_frame(&[b'a'; 300]);
        assert_eq!(&long[..4], [0x81, 126, 1, 44]);
        assert_eq!(long.len(), 304);
    }
}
