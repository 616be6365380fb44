//! What a session's WebSocket reads from and writes to: the upgraded connection (or, after a
//! binary upgrade, the TCP socket the previous process handed over), with two things added so a
//! live connection can move to another process between two frames (`kill -USR2`):
//!
//! - it follows the client's framing as the bytes go by (headers only, payloads are skipped)
//!   and keeps a copy of what tungstenite was given since the last whole message — the part of a
//!   frame, or of a fragmented message, that has arrived but was not yet read as a message.
//!   tungstenite cannot be asked for its read buffer; this copy is what the next process is given
//!   to read first. It is empty between messages, which is nearly always: ~48 bytes per
//!   connection and no copying for messages that arrive whole in one read;
//! - while handing over, writes the socket cannot take are kept instead of waiting for a slow
//!   reader, and given to the next process to write first.
//!
//! It also keeps an idle connection from holding a read buffer: the socket is read into a buffer
//! shared by every connection on the worker thread (`limits.read_buffer_bytes`), tungstenite is
//! given what its small buffer ([`MESSAGE_READ`]) takes, and only bytes read ahead of it stay with
//! the connection, until tungstenite takes them. Between messages a connection holds none.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use wsgate_core::config::Limits;

use crate::hub::MoveSwitch;

/// What tungstenite reads at once, and the buffer every connection holds for it: small, as the
/// socket is read into a buffer of the thread's ([`Tap`]). A message up to this size (nearly every
/// message of a chat or a game) is one copy; a longer one is read into its own buffer in steps of
/// this size, which costs a copy each but no system call.
pub const MESSAGE_READ: usize = 256;

/// The socket settings for one session: a small read buffer (tungstenite's default would cost
/// 128 KiB per idle connection), eager writes, and API Gateway's frame and message limits.
pub fn socket_config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(MESSAGE_READ)
        .write_buffer_size(0)
        .max_write_buffer_size(limits.outbox_bytes.saturating_add(64 * 1024))
        .max_frame_size(Some(limits.max_frame_bytes))
        .max_message_size(Some(limits.max_message_bytes))
}

/// The connection under a session's WebSocket.
#[derive(Debug)]
pub enum Io {
    /// Upgraded by this process's HTTP server: plain TCP or TLS.
    Upgraded(TokioIo<Upgraded>),
    /// Handed over by the previous process: plain TCP.
    Tcp(TcpStream),
}

/// A session's connection, followed as described in the module's docs.
#[derive(Debug)]
pub struct Tap {
    io: Io,
    reads: Frames,
    /// Bytes read from the socket that tungstenite did not take yet. Boxed: nearly always none.
    ahead: Option<Box<Ahead>>,
    /// The most read from the socket at once (`limits.read_buffer_bytes`).
    read_size: u32,
    /// Bytes written while handing over that the socket could not take yet. Boxed: nearly always
    /// none, and every connection holds the field (8 bytes instead of a `Vec`'s 24).
    #[allow(clippy::box_collection)]
    unsent: Option<Box<Vec<u8>>>,
    /// On while the session hands over: reads stop (tungstenite keeps what it has, and the rest
    /// stays in the kernel for the next process), writes never wait. Shared with the session's
    /// outbox, so it is set without the socket in hand (the session holds it split in two).
    switch: Option<MoveSwitch>,
}

/// Bytes read from the socket ahead of tungstenite.
#[derive(Debug)]
struct Ahead {
    bytes: Vec<u8>,
    /// Where the bytes tungstenite has not taken start.
    at: usize,
}

thread_local! {
    /// The buffer sockets are read into on this thread, sized by the largest `read_size` seen.
    static READ: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A connection taken apart to move to another process.
#[derive(Debug)]
pub struct Parts {
    /// The socket.
    pub tcp: TcpStream,
    /// Bytes the client sent that no message was read from yet: read them first.
    pub unread: Vec<u8>,
    /// Bytes for the client that were not written yet: write them first.
    pub unsent: Vec<u8>,
}

impl Tap {
    /// A connection this process upgraded (plain TCP or TLS), read `read_size` bytes at most at
    /// once (`limits.read_buffer_bytes`).
    pub fn upgraded(io: TokioIo<Upgraded>, read_size: usize, switch: Option<MoveSwitch>) -> Self {
        Self::new(Io::Upgraded(io), read_size, Vec::new(), switch)
    }

    /// A connection handed over by the previous process, with what it had not written yet.
    pub fn handed(tcp: TcpStream, read_size: usize, unsent: Vec<u8>, switch: MoveSwitch) -> Self {
        Self::new(Io::Tcp(tcp), read_size, unsent, Some(switch))
    }

    fn new(io: Io, read_size: usize, unsent: Vec<u8>, switch: Option<MoveSwitch>) -> Self {
        Self {
            io,
            reads: Frames::default(),
            ahead: None,
            read_size: u32::try_from(read_size.max(1)).unwrap_or(u32::MAX),
            unsent: (!unsent.is_empty()).then(|| Box::new(unsent)),
            switch,
        }
    }

    /// Ties the socket to the session that now owns it (a resume's socket, made before its
    /// session was found).
    pub fn attach(&mut self, switch: MoveSwitch) {
        self.switch = Some(switch);
    }

    fn handing(&self) -> bool {
        self.switch.as_ref().is_some_and(MoveSwitch::on)
    }

    /// Takes the connection apart; `Err` gives it back when it cannot move (TLS).
    pub fn into_parts(self) -> Result<Parts, Box<Self>> {
        let Self {
            io,
            reads,
            ahead,
            read_size,
            unsent,
            switch,
        } = self;
        let mut unread = reads.kept;
        let kept = unread.len();
        if let Some(ahead) = &ahead {
            unread.extend_from_slice(&ahead.bytes[ahead.at..]);
        }
        let tcp = match io {
            Io::Tcp(tcp) => tcp,
            Io::Upgraded(upgraded) => {
                match upgraded.into_inner().downcast::<TokioIo<TcpStream>>() {
                    Ok(parts) => {
                        // What the HTTP server read past the request head and nobody read since.
                        unread.extend_from_slice(&parts.read_buf);
                        parts.io.into_inner()
                    }
                    Err(upgraded) => {
                        unread.truncate(kept);
                        let reads = Frames {
                            kept: unread,
                            ..reads
                        };
                        return Err(Box::new(Self {
                            io: Io::Upgraded(TokioIo::new(upgraded)),
                            reads,
                            ahead,
                            read_size,
                            unsent,
                            switch,
                        }));
                    }
                }
            }
        };
        Ok(Parts {
            tcp,
            unread,
            unsent: unsent.map(|u| *u).unwrap_or_default(),
        })
    }

    /// A connection that could not move (TLS), to read again: what tungstenite had been given
    /// but had not read as a message is read first.
    pub fn unmoved(mut self) -> (Self, Vec<u8>) {
        let unread = std::mem::take(&mut self.reads);
        (self, unread.kept)
    }

    /// Writes what was kept while handing over; ready once nothing is left.
    fn poll_unsent(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Self { io, unsent, .. } = self;
        let Some(bytes) = unsent.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while !bytes.is_empty() {
            match Pin::new(&mut *io).poll_write(cx, bytes) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    bytes.drain(..n);
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        *unsent = None;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Tap {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.handing() {
            // Only polled, while handing over, to read the messages tungstenite holds already.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let read = this.poll_ahead(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            this.reads.feed(&buf.filled()[before..]);
        }
        read
    }
}

impl Tap {
    /// Fills `buf` with what was read ahead, else from the socket through the thread's buffer,
    /// keeping what `buf` cannot take.
    fn poll_ahead(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(ahead) = &mut self.ahead {
            let n = buf.remaining().min(ahead.bytes.len() - ahead.at);
            buf.put_slice(&ahead.bytes[ahead.at..ahead.at + n]);
            ahead.at += n;
            if ahead.at == ahead.bytes.len() {
                self.ahead = None;
            }
            return Poll::Ready(Ok(()));
        }
        let size = self.read_size as usize;
        if buf.remaining() >= size {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        READ.with_borrow_mut(|shared| {
            if shared.len() < size {
                shared.resize(size, 0);
            }
            let mut read = ReadBuf::new(&mut shared[..size]);
            let polled = Pin::new(&mut self.io).poll_read(cx, &mut read);
            if let Poll::Ready(Ok(())) = polled {
                let got = read.filled();
                let n = buf.remaining().min(got.len());
                buf.put_slice(&got[..n]);
                if n < got.len() {
                    self.ahead = Some(Box::new(Ahead {
                        bytes: got[n..].to_vec(),
                        at: 0,
                    }));
                }
            }
            polled
        })
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = match this.poll_unsent(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_write(cx, data),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        };
        match written {
            Poll::Pending if this.handing() => {
                this.unsent
                    .get_or_insert_with(Default::default)
                    .extend_from_slice(data);
                Poll::Ready(Ok(data.len()))
            }
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_unsent(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_flush(cx),
            Poll::Pending if this.handing() => Poll::Ready(Ok(())),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_unsent(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_shutdown(cx),
            other => other,
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_read(cx, buf),
            Self::Tcp(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_write(cx, data),
            Self::Tcp(io) => Pin::new(io).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_flush(cx),
            Self::Tcp(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_shutdown(cx),
            Self::Tcp(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// The client's framing (RFC 6455 §5.2), followed from its headers, and a copy of the bytes
/// since the last boundary between whole messages.
#[derive(Debug, Default)]
struct Frames {
    /// The header being read.
    head: [u8; MAX_HEAD],
    /// Its bytes so far (0: the next byte starts a header, unless a payload is being skipped).
    have: u8,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// Inside a fragmented data message (a data frame without FIN went by).
    fragmented: bool,
    /// The bytes since the last boundary between whole messages.
    kept: Vec<u8>,
}

/// The longest frame header: 2 bytes, an 8-byte length, a 4-byte mask.
const MAX_HEAD: usize = 14;

/// The length of a header that starts with `head`, once its second byte is known.
fn head_len(head: &[u8]) -> Option<usize> {
    let second = *head.get(1)?;
    let extended = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    Some(2 + extended + mask)
}

/// The payload length a whole header gives.
fn payload_len(head: &[u8]) -> u64 {
    match head[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
        127 => head[2..10]
            .iter()
            .fold(0u64, |n, b| (n << 8) | u64::from(*b)),
        n => u64::from(n),
    }
}

impl Frames {
    /// Between two whole messages.
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.payload_left == 0 && !self.fragmented
    }

    /// Follows `chunk`, the next bytes handed to tungstenite.
    fn feed(&mut self, chunk: &[u8]) {
        let mut boundary = self.at_boundary().then_some(0);
        let mut at = 0;
        while at < chunk.len() {
            if self.have == 0 && self.payload_left > 0 {
                let skip = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(chunk.len() - at);
                at += skip;
                self.payload_left -= skip as u64;
                if self.payload_left == 0 && !self.fragmented {
                    boundary = Some(at);
                }
                continue;
            }
            self.head[usize::from(self.have)] = chunk[at];
            self.have += 1;
            at += 1;
            let have = usize::from(self.have);
            if head_len(&self.head[..have]) != Some(have) {
                continue;
            }
            let (fin, opcode) = (self.head[0] & 0x80 != 0, self.head[0] & 0x0f);
            self.payload_left = payload_len(&self.head[..have]);
            self.have = 0;
            // Control frames (8 and up) may come between the fragments of a message.
            if opcode < 8 {
                self.fragmented = !fin;
            }
            if self.payload_left == 0 && !self.fragmented {
                boundary = Some(at);
            }
        }
        match boundary {
            Some(start) => {
                self.kept.clear();
                self.kept.extend_from_slice(&chunk[start..]);
                if self.kept.is_empty() && self.kept.capacity() > 0 {
                    self.kept = Vec::new();
                }
            }
            None => self.kept.extend_from_slice(chunk),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;

    /// A masked client frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out.extend_from_slice(payload);
        out
    }

    fn fed(chunks: &[&[u8]]) -> Frames {
        let mut frames = Frames::default();
        for chunk in chunks {
            frames.feed(chunk);
        }
        frames
    }

    #[test]
    fn whole_messages_leave_nothing_kept() {
        let bytes = [frame(true, 1, b"hello"), frame(true, 2, &[0; 300])].concat();
        assert!(fed(&[&bytes]).kept.is_empty());
        // Split anywhere, whole messages in the end keep nothing either.
        for cut in 0..bytes.len() {
            assert!(
                fed(&[&bytes[..cut], &bytes[cut..]]).kept.is_empty(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn a_partial_frame_is_kept_from_its_first_byte() {
        let whole = frame(true, 1, b"first");
        let next = frame(true, 1, &[7; 70_000]);
        for cut in 1..next.len() {
            let frames = fed(&[&[whole.as_slice(), &next[..cut]].concat()]);
            assert_eq!(frames.kept, &next[..cut], "cut {cut}");
        }
    }

    #[test]
    fn a_fragmented_message_is_kept_whole_with_pings_between() {
        let parts = [
            frame(false, 1, b"frag"),
            frame(true, 9, b"ping"),
            frame(false, 0, b"ment"),
        ];
        let bytes = [frame(true, 1, b"done").as_slice(), &parts.concat()].concat();
        let frames = fed(&[&bytes[..7], &bytes[7..20], &bytes[20..]]);
        assert_eq!(frames.kept, parts.concat());
        let mut frames = frames;
        frames.feed(&frame(true, 0, b"ed"));
        assert!(frames.kept.is_empty());
    }

    /// A server-side tap on a loopback connection reading `read_size` at most at once, and the
    /// client's end.
    async fn pair(read_size: usize) -> (Tap, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let client = TcpStream::connect(listener.local_addr().expect("address"));
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (outbox, _inbox) = crate::hub::outbox(1024);
        let tap = Tap::handed(
            accepted.expect("accepts").0,
            read_size,
            Vec::new(),
            outbox.move_switch(),
        );
        (tap, client.expect("connects"))
    }

    #[tokio::test]
    async fn reads_smaller_than_the_socket_read_come_in_order_with_nothing_lost() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut tap, mut client) = pair(64).await;
        let sent: Vec<u8> = (0..=255).cycle().take(1000).collect();
        client.write_all(&sent).await.expect("writes");
        let mut got = Vec::new();
        let mut small = [0; 10];
        while got.len() < sent.len() {
            let n = tap.read(&mut small).await.expect("reads");
            assert!(n > 0);
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, sent);
        assert!(tap.ahead.is_none());
    }

    #[tokio::test]
    async fn messages_larger_than_tungstenites_buffer_arrive_whole() {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        let (tap, mut client) = pair(4096).await;
        let texts = ["a".repeat(200), "hi".to_owned(), "b".repeat(30_000)];
        // `frame` masks with 1, 2, 3, 4: the payload is masked here so that the server reads it.
        let masked = |text: &str| -> Vec<u8> {
            let bytes = text.bytes().enumerate();
            bytes.map(|(i, b)| b ^ (i % 4 + 1) as u8).collect()
        };
        let bytes: Vec<u8> = texts
            .iter()
            .flat_map(|t| frame(true, 1, &masked(t)))
            .collect();
        client.write_all(&bytes).await.expect("writes");
        let config = socket_config(&Limits::default());
        let mut ws = WebSocketStream::from_raw_socket(tap, Role::Server, Some(config)).await;
        for text in &texts {
            let message = ws.next().await.expect("a message").expect("reads");
            assert_eq!(message.into_text().expect("text").as_str(), text);
        }
    }

    #[tokio::test]
    async fn bytes_read_ahead_go_with_the_parts_after_those_kept() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut tap, mut client) = pair(4096).await;
        let whole = frame(true, 1, b"first");
        let next = frame(true, 1, &[7; 300]);
        let sent = [whole.as_slice(), &next].concat();
        client.write_all(&sent).await.expect("writes");
        // Wait until the whole write is there, so that one socket read takes it all.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut first = vec![0; whole.len() + 10];
        let n = tap.read(&mut first).await.expect("reads");
        assert_eq!(n, first.len());
        let parts = tap.into_parts().expect("plain TCP moves");
        // What the reads kept (the start of the partial frame), then what was read ahead.
        assert_eq!(parts.unread, next);
    }
}
