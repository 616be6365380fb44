//! The Unix socket between the old and the new process: framed messages, each with the file
//! descriptors it carries (SCM_RIGHTS).
//!
//! ```text
//! byte 0       the message's kind
//! byte 1       how many descriptors ride with it
//! bytes 2..6   the header's length (u32, little-endian)
//! bytes 6..10  the data's length (u32, little-endian)
//! header       JSON
//! data         raw bytes
//! ```
//!
//! A message's descriptors are sent with its first byte, so they arrive no later than its
//! header; the reader keeps them in arrival order and gives each message as many as it says.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

const HEAD: usize = 10;

/// The most descriptors one message carries (the listeners; a session carries one).
pub const MAX_FDS: usize = 8;

/// The largest message: a session's state with its buffers, or a relayed message.
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// The kinds of message.
pub mod kind {
    /// New → old: I am up (`{"pid": N}`).
    pub const HELLO: u8 = b'H';
    /// Old → new: where the listeners are (`{"listen": …, "management": …}`).
    pub const WELCOME: u8 = b'W';
    /// New → old: my routes are built; send the connections.
    pub const READY: u8 = b'R';
    /// Old → new: a session (its socket attached, unless suspended).
    pub const SESSION: u8 = b'S';
    /// Old → new: the listening sockets, in the order the header names them.
    pub const LISTENERS: u8 = b'L';
    /// Old → new: that was every session.
    pub const END: u8 = b'E';
    /// New → old: every session is mine; let go.
    pub const TAKEN: u8 = b'T';
    /// Old → new: a message for a connection that moved.
    pub const RELAY: u8 = b'M';
}

/// A message read off the channel.
#[derive(Debug)]
pub struct Message {
    /// Its kind (see [`kind`]).
    pub kind: u8,
    /// Its JSON header.
    pub header: Vec<u8>,
    /// Its data.
    pub data: Vec<u8>,
    /// The descriptors that came with it.
    pub fds: Vec<OwnedFd>,
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    stream: UnixStream,
    buffer: Vec<u8>,
    fds: VecDeque<OwnedFd>,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl Channel {
    /// The channel over `stream`.
    pub fn new(stream: UnixStream) -> Self {
        Self {
            stream,
            buffer: Vec::new(),
            fds: VecDeque::new(),
        }
    }

    /// The process at the other end, as the kernel tells it.
    pub fn peer_pid(&self) -> Option<i32> {
        self.stream.peer_cred().ok()?.pid()
    }

    /// Sends a message with `fds`.
    pub async fn send(
        &mut self,
        kind: u8,
        header: &[u8],
        data: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> io::Result<()> {
        if fds.len() > MAX_FDS {
            return Err(invalid("too many descriptors for one message"));
        }
        let length = |n: usize| u32::try_from(n).map_err(|_| invalid("message too large"));
        let mut head = [0u8; HEAD];
        head[0] = kind;
        head[1] = fds.len() as u8;
        head[2..6].copy_from_slice(&length(header.len())?.to_le_bytes());
        head[6..10].copy_from_slice(&length(data.len())?.to_le_bytes());
        let mut sent = 0;
        if !fds.is_empty() {
            // The descriptors go with the first bytes; the rest follows as plain writes.
            sent = loop {
                self.stream.writable().await?;
                let attempt = self.stream.try_io(Interest::WRITABLE, || {
                    let mut space =
                        [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
                    let mut control = SendAncillaryBuffer::new(&mut space);
                    control.push(SendAncillaryMessage::ScmRights(fds));
                    rustix::net::sendmsg(
                        &self.stream,
                        &[IoSlice::new(&head)],
                        &mut control,
                        SendFlags::NOSIGNAL,
                    )
                    .map_err(io::Error::from)
                });
                match attempt {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            };
        }
        self.stream.write_all(&head[sent..]).await?;
        self.stream.write_all(header).await?;
        self.stream.write_all(data).await
    }

    /// Sends a message with a JSON header and no data or descriptors.
    pub async fn send_json(&mut self, kind: u8, header: &serde_json::Value) -> io::Result<()> {
        let header = serde_json::to_vec(header).map_err(|e| invalid(&e.to_string()))?;
        self.send(kind, &header, &[], &[]).await
    }

    /// The next message; `None` when the other end closed between two messages.
    pub async fn recv(&mut self) -> io::Result<Option<Message>> {
        loop {
            if let Some(message) = self.parse()? {
                return Ok(Some(message));
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let read = loop {
                self.stream.readable().await?;
                let Self { stream, fds, .. } = self;
                let attempt = stream.try_io(Interest::READABLE, || {
                    let mut space =
                        [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
                    let mut control = RecvAncillaryBuffer::new(&mut space);
                    let got = rustix::net::recvmsg(
                        &*stream,
                        &mut [IoSliceMut::new(&mut chunk)],
                        &mut control,
                        RecvFlags::CMSG_CLOEXEC,
                    )
                    .map_err(io::Error::from)?;
                    for message in control.drain() {
                        if let RecvAncillaryMessage::ScmRights(received) = message {
                            fds.extend(received);
                        }
                    }
                    if got.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
                        return Err(invalid("descriptors were cut off"));
                    }
                    Ok(got.bytes)
                });
                match attempt {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            };
            if read == 0 {
                return match self.buffer.is_empty() {
                    true => Ok(None),
                    false => Err(io::ErrorKind::UnexpectedEof.into()),
                };
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }

    /// A whole message from the buffer, if one is there.
    fn parse(&mut self) -> io::Result<Option<Message>> {
        if self.buffer.len() < HEAD {
            return Ok(None);
        }
        let word = |at: usize| {
            u32::from_le_bytes([
                self.buffer[at],
                self.buffer[at + 1],
                self.buffer[at + 2],
                self.buffer[at + 3],
            ]) as usize
        };
        let (header_len, data_len) = (word(2), word(6));
        if header_len + data_len > MAX_MESSAGE {
            return Err(invalid("message too large"));
        }
        let end = HEAD + header_len + data_len;
        if self.buffer.len() < end {
            return Ok(None);
        }
        let (kind, count) = (self.buffer[0], usize::from(self.buffer[1]));
        if self.fds.len() < count {
            return Err(invalid("a message came without its descriptors"));
        }
        let fds = self.fds.drain(..count).collect();
        let mut rest = self.buffer.split_off(end);
        std::mem::swap(&mut rest, &mut self.buffer);
        let data = rest.split_off(HEAD + header_len);
        let header = rest.split_off(HEAD);
        Ok(Some(Message {
            kind,
            header,
            data,
            fds,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[tokio::test]
    async fn messages_arrive_whole_with_their_descriptors() {
        let (a, b) = UnixStream::pair().expect("pair");
        let (mut a, mut b) = (Channel::new(a), Channel::new(b));
        let big = vec![7u8; 300_000];
        // More than the socket holds: the reader reads while the writer writes.
        let sent = big.clone();
        let writer = tokio::spawn(async move {
            let file = tempfile::tempfile().expect("file");
            a.send(kind::SESSION, b"{\"x\":1}", &sent, &[file.as_fd()])
                .await
                .expect("send");
            a.send(kind::END, b"{}", &[], &[]).await.expect("send");
        });
        let first = b.recv().await.expect("recv").expect("a message");
        assert_eq!(first.kind, kind::SESSION);
        assert_eq!(first.header, b"{\"x\":1}");
        assert_eq!(first.data, big);
        assert_eq!(first.fds.len(), 1);
        let second = b.recv().await.expect("recv").expect("a message");
        assert_eq!((second.kind, second.fds.len()), (kind::END, 0));
        writer.await.expect("writer");
        assert!(b.recv().await.expect("recv").is_none());
    }
}
