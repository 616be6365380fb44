//! Resumable connections (`wsgate.reliable.v1`), the parts below the edge: the frames of the
//! protocol, the replay buffer a session keeps, and the desk where a resume request finds the
//! session it resumes.
//!
//! A client that offers the subprotocol gets, first, `{"type":"connected","connectionId":…,
//! "resumeToken":…}`; then every message to it is `{"type":"message","seq":N,"data":…}` (or
//! `"dataBase64"` for binary), `seq` counting from 1. It may send `{"type":"ack","seq":N}`
//! (cumulative; not routed). When its socket drops, the session waits `limits.resume_window` for
//! `GET /{stage}?resume=TOKEN&seq=LAST` with the same subprotocol, answers
//! `{"type":"resumed",…}` and sends every message after `LAST` again, then live ones. A token
//! works once. A resume that cannot be served gets `{"type":"resume-failed","reason":…}` and the
//! close code 4410.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use wsgate_core::id::ConnectionId;

use crate::hub::Command;
use crate::saved::Saved;

/// The subprotocol a client offers to be resumable.
pub const SUBPROTOCOL: &str = "wsgate.reliable.v1";

/// The close code of a resume that cannot be served: the client connects anew.
pub const RESUME_FAILED: u16 = 4410;

/// A client's WebSocket, once upgraded.
pub type Socket = WebSocketStream<crate::edge::tap::Tap>;

/// Where a session waits for its resumes. A knock is boxed: a channel allocates room for a
/// block of messages up front, and every resumable session holds one.
pub type Resumes = mpsc::Sender<Box<Knock>>;

/// What comes to a resumable session's door (boxed on the way: [`Resumes`]).
#[allow(clippy::large_enum_variant)]
pub enum Knock {
    /// Its client, back on a new socket.
    Resume(Resume),
    /// Another node of the cluster, where the client resumes: the session leaves this node
    /// (no `$disconnect`: the connection lives on there) and hands over what it is made of.
    Release(tokio::sync::oneshot::Sender<Saved>),
}

/// What a cluster keeps of a suspended session in Redis, so that it can be resumed on any node,
/// the one that held it dead or alive. Sessions send these in order; the cluster writes them.
#[derive(Debug)]
pub enum Mirror {
    /// The session is suspended, as it is now; it ends with its window, in `window_ms`.
    Keep(Box<Saved>, u64),
    /// The session, live: what a node that takes it over after this node died needs (its
    /// window starts then); it lives `ttl_ms` at most.
    KeepLive(Box<Saved>, u64),
    /// A message for the session, numbered (its envelope, as it is or will be sent), and the
    /// message itself (a POST wrote it down before it was answered: that copy goes).
    Append(ConnectionId, Utf8Bytes, bytes::Bytes),
    /// The client has every message up to this `seq`.
    Ack(ConnectionId, u64),
    /// The session resumed, left, or ended: nothing to keep.
    Forget(ConnectionId),
}

/// Where sessions send their [`Mirror`]s: set once a cluster is joined.
pub type Mirrors = std::sync::OnceLock<mpsc::UnboundedSender<Mirror>>;

/// A resume handed to the session it resumes: the new socket, and the last `seq` the client got.
pub struct Resume {
    /// The client's new socket.
    pub socket: Socket,
    /// The last message the client received.
    pub seq: u64,
}

/// The first frame of a resumable connection.
pub fn connected(id: &ConnectionId, token: &str) -> Utf8Bytes {
    Utf8Bytes::from(
        json!({"type": "connected", "connectionId": id.as_str(), "resumeToken": token}).to_string(),
    )
}

/// The first frame after a resume.
pub fn resumed(id: &ConnectionId, token: &str) -> Utf8Bytes {
    Utf8Bytes::from(
        json!({"type": "resumed", "connectionId": id.as_str(), "resumeToken": token}).to_string(),
    )
}

/// The frame before the 4410 close.
pub fn resume_failed(reason: &str) -> Utf8Bytes {
    Utf8Bytes::from(json!({"type": "resume-failed", "reason": reason}).to_string())
}

/// `seq` of a client's `{"type":"ack","seq":N}`; `None` for anything else (which is routed).
pub fn ack(text: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Ack {
        #[serde(rename = "type")]
        kind: String,
        seq: u64,
    }
    // Cheap test first: most messages are not acks.
    if !text.contains("\"ack\"") {
        return None;
    }
    serde_json::from_str::<Ack>(text)
        .ok()
        .filter(|a| a.kind == "ack")
        .map(|a| a.seq)
}

/// A fresh resume token for connection `id`: its id (without the final `=`), then 128 random
/// bits. Any node of a cluster can tell whose it is; only the random part makes it worth anything.
pub fn token(id: &ConnectionId) -> String {
    let id = id.as_str();
    let name = id.strip_suffix('=').unwrap_or(id);
    format!(
        "{name}{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
    )
}

/// The connection a token was issued for; `None` for a token of another form.
pub fn connection_of(token: &str) -> Option<ConnectionId> {
    let name = token.get(..wsgate_core::id::ID_CHARS - 1)?;
    ConnectionId::parse(&format!("{name}=")).ok()
}

/// Why a resume cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresumable {
    /// Messages after the client's `seq` were dropped (the buffer overflowed).
    Overflowed,
}

/// The messages a resumable session has sent or queued and the client has not acknowledged, in
/// `seq` order, bounded in bytes.
#[derive(Debug, Default)]
pub struct Replay {
    last_seq: u64,
    kept: VecDeque<(u64, Utf8Bytes)>,
    bytes: usize,
    /// Messages up to this seq were dropped unacknowledged (the bound was passed while live).
    dropped_to: u64,
    /// Frames to write before anything else on the next socket: the greeting, and the messages
    /// sent again after a resume (already numbered).
    front: VecDeque<Utf8Bytes>,
    /// In a cluster, where each message and ack is also written (to the cluster's Redis), and
    /// the connection's id.
    mirror: Option<(mpsc::UnboundedSender<Mirror>, ConnectionId)>,
}

impl Replay {
    /// Numbers a message and keeps its envelope; the text to write.
    pub fn wrap(&mut self, command: &Command) -> Option<Utf8Bytes> {
        self.last_seq += 1;
        let seq = self.last_seq;
        let envelope = match command {
            Command::Text(text) => json!({"type": "message", "seq": seq, "data": text.as_str()}),
            Command::Binary(data) => {
                json!({"type": "message", "seq": seq, "dataBase64": STANDARD.encode(data)})
            }
            Command::Close(..) => {
                self.last_seq -= 1;
                return None;
            }
        };
        let text = Utf8Bytes::from(envelope.to_string());
        self.bytes += text.len();
        self.kept.push_back((seq, text.clone()));
        if let Some((mirrors, id)) = &self.mirror {
            let raw = match command {
                Command::Text(text) => bytes::Bytes::from(text.clone()),
                Command::Binary(data) => data.clone(),
                Command::Close(..) => bytes::Bytes::new(),
            };
            let _ = mirrors.send(Mirror::Append(*id, text.clone(), raw));
        }
        Some(text)
    }

    /// From now on, writes each message and ack to `mirrors` too, for connection `id`.
    pub fn mirror_to(&mut self, mirrors: mpsc::UnboundedSender<Mirror>, id: ConnectionId) {
        self.mirror = Some((mirrors, id));
    }

    /// Stops writing to the mirror; whether it was.
    pub fn unmirror(&mut self) -> bool {
        self.mirror.take().is_some()
    }

    /// What is kept, to write it down (`gateway.state_dir`): the last `seq` given out, the last
    /// one dropped unacknowledged, and the envelopes kept.
    pub fn export(&self) -> (u64, u64, Vec<(u64, String)>) {
        let kept = self
            .kept
            .iter()
            .map(|(seq, text)| (*seq, text.as_str().to_owned()))
            .collect();
        (self.last_seq, self.dropped_to, kept)
    }

    /// A replay as [`Replay::export`] wrote it down.
    pub fn restore(last_seq: u64, dropped_to: u64, kept: Vec<(u64, String)>) -> Self {
        let kept: VecDeque<(u64, Utf8Bytes)> = kept
            .into_iter()
            .map(|(seq, text)| (seq, Utf8Bytes::from(text)))
            .collect();
        Self {
            last_seq,
            bytes: kept.iter().map(|(_, t)| t.len()).sum(),
            kept,
            dropped_to,
            front: VecDeque::new(),
            mirror: None,
        }
    }

    /// Queues `greeting` and then `again` to be written first on the next socket.
    pub fn open_with(&mut self, greeting: Utf8Bytes, again: Vec<Utf8Bytes>) {
        self.front.clear();
        self.front.push_back(greeting);
        self.front.extend(again);
    }

    /// The next frame that goes before the outbox, if any.
    pub fn next_front(&mut self) -> Option<Utf8Bytes> {
        self.front.pop_front()
    }

    /// The client has every message up to `seq`.
    pub fn ack(&mut self, seq: u64) {
        if let Some((mirrors, id)) = &self.mirror {
            let _ = mirrors.send(Mirror::Ack(*id, seq));
        }
        while let Some((first, text)) = self.kept.front() {
            if *first > seq {
                break;
            }
            self.bytes -= text.len();
            self.kept.pop_front();
        }
    }

    /// Bytes kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// While the socket is live: keeps at most `limit` bytes, dropping the oldest (a resume
    /// that needs them then fails).
    pub fn trim_to(&mut self, limit: usize) {
        while self.bytes > limit {
            let Some((seq, text)) = self.kept.pop_front() else {
                break;
            };
            self.bytes -= text.len();
            self.dropped_to = seq;
        }
    }

    /// The envelopes after `seq`, to send again on a resumed socket.
    pub fn after(&mut self, seq: u64) -> Result<Vec<Utf8Bytes>, Unresumable> {
        if seq < self.dropped_to {
            return Err(Unresumable::Overflowed);
        }
        self.ack(seq);
        Ok(self.kept.iter().map(|(_, text)| text.clone()).collect())
    }
}

/// Where a resume request finds its session: resume token → the connection and the channel its
/// session waits on. A token is taken once.
#[derive(Debug, Default)]
pub struct Desk {
    by_token: Mutex<HashMap<String, (ConnectionId, Resumes)>>,
}

impl Desk {
    /// Issues a token for `id`, whose session listens on `resumes`.
    pub fn issue(&self, id: ConnectionId, resumes: Resumes) -> String {
        let token = token(&id);
        self.by_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.clone(), (id, resumes));
        token
    }

    /// Registers a token given out before (a session kept across a restart).
    pub fn issue_as(&self, token: String, id: ConnectionId, resumes: Resumes) {
        self.by_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, (id, resumes));
    }

    /// The session a token resumes, taking the token.
    pub fn take(&self, token: &str) -> Option<(ConnectionId, Resumes)> {
        self.by_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token)
    }

    /// Forgets a token (its session ended, or issued another).
    pub fn forget(&self, token: &str) {
        self.by_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_numbered_kept_until_acked_and_sent_again_after_a_seq() {
        let mut replay = Replay::default();
        let first = replay
            .wrap(&Command::Text(Utf8Bytes::from_static("hi \"you\"")))
            .expect("text");
        assert_eq!(
            first.as_str(),
            r#"{"type":"message","seq":1,"data":"hi \"you\""}"#
        );
        let second = replay
            .wrap(&Command::Binary(bytes::Bytes::from_static(&[0, 255])))
            .expect("binary");
        assert_eq!(
            second.as_str(),
            r#"{"type":"message","seq":2,"dataBase64":"AP8="}"#
        );
        assert!(replay.wrap(&Command::Close(1000, "bye".into())).is_none());
        replay.wrap(&Command::Text(Utf8Bytes::from_static("three")));
        replay.ack(1);
        assert_eq!(replay.after(1).expect("kept").len(), 2);
        assert_eq!(replay.after(2).expect("kept").len(), 1);
        replay.trim_to(0);
        assert_eq!(replay.after(2), Err(Unresumable::Overflowed));
        assert_eq!(
            replay.after(3).expect("nothing left"),
            Vec::<Utf8Bytes>::new()
        );
    }

    #[test]
    fn only_acks_are_acks() {
        assert_eq!(ack(r#"{"type":"ack","seq":7}"#), Some(7));
        assert_eq!(ack(r#"{"action":"ack","seq":7}"#), None);
        assert_eq!(ack(r#"{"type":"ack"}"#), None);
        assert_eq!(ack("ack"), None);
    }

    #[test]
    fn a_token_resumes_once() {
        let desk = Desk::default();
        let (tx, _rx) = mpsc::channel(1);
        let id = ConnectionId::generate(0);
        let token = desk.issue(id, tx);
        assert!(desk.take(&token).is_some_and(|(got, _)| got == id));
        assert!(desk.take(&token).is_none());
    }
}
