//! What a session that moves to the new process is made of, and how it travels: a JSON header
//! and the raw bytes it carries after it (never re-encoded).

use serde::{Deserialize, Serialize};
use wsgate_core::event::ConnectionContext;

/// A session's state, as the new process needs it to go on where the old one stopped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Carried {
    /// The connection's fixed context: id, identity, authorizer context.
    pub ctx: ConnectionContext,
    /// Its groups.
    pub groups: Vec<String>,
    /// Its user.
    pub user: Option<String>,
    /// Epoch ms of its latest activity (the idle timer runs from there).
    pub last_active_ms: u64,
    /// Epoch ms when `limits.max_connection_duration` ends it.
    pub lifetime_ends_ms: u64,
    /// Its resume state, when it is resumable.
    pub reliable: Option<Reliability>,
    /// Set when it has no socket (suspended, waiting for a resume).
    pub suspended: Option<Suspension>,
    /// Bytes the client sent that no message was read from yet (the first part of the data).
    pub unread: usize,
    /// Bytes for the client not written yet (the rest of the data).
    pub unsent: usize,
}

/// A resumable session's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reliability {
    /// The token its client resumes with.
    pub token: String,
    /// The last `seq` given out.
    pub last_seq: u64,
    /// Messages up to this `seq` were dropped unacknowledged.
    pub dropped_to: u64,
    /// The messages kept for a resume, as sent.
    pub kept: Vec<(u64, String)>,
}

/// A suspended session's window.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Suspension {
    /// Epoch ms when its resume window ends.
    pub window_ends_ms: u64,
    /// What `$disconnect` is told if the client does not come back.
    pub code: u16,
}

/// A message encoded for the channel: its header and its data.
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    /// JSON.
    pub header: Vec<u8>,
    /// Raw bytes the header describes.
    pub data: Vec<u8>,
}

impl Carried {
    /// Encodes the state with the bytes it carries.
    pub fn encode(&self, unread: &[u8], unsent: &[u8]) -> Encoded {
        let carried = Self {
            unread: unread.len(),
            unsent: unsent.len(),
            ..self.clone()
        };
        Encoded {
            header: serde_json::to_vec(&carried).unwrap_or_default(),
            data: [unread, unsent].concat(),
        }
    }

    /// The state, its unread and its unsent bytes; `None` when damaged.
    pub fn decode(header: &[u8], mut data: Vec<u8>) -> Option<(Self, Vec<u8>, Vec<u8>)> {
        let carried: Self = serde_json::from_slice(header).ok()?;
        if data.len() != carried.unread + carried.unsent {
            return None;
        }
        let unsent = data.split_off(carried.unread);
        Some((carried, data, unsent))
    }
}

/// A message relayed to a connection that moved: its header.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Relayed {
    /// The connection.
    pub id: String,
    /// `text`, `binary` or `close`.
    pub kind: String,
    /// The close code, for a close.
    pub code: Option<u16>,
    /// The close reason, for a close (none from a process of an older version: 1000's).
    #[serde(default)]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carried_state_comes_back_with_its_bytes() {
        let carried = Carried {
            ctx: crate::hub::tests::context(),
            groups: vec!["room".into()],
            user: Some("ann".into()),
            last_active_ms: 5,
            lifetime_ends_ms: 9,
            reliable: None,
            suspended: None,
            unread: 0,
            unsent: 0,
        };
        let encoded = carried.encode(b"abc", b"de");
        let (back, unread, unsent) =
            Carried::decode(&encoded.header, encoded.data).expect("decodes");
        assert_eq!(
            (unread.as_slice(), unsent.as_slice()),
            (&b"abc"[..], &b"de"[..])
        );
        assert_eq!(back.groups, ["room"]);
        assert!(Carried::decode(&encoded.header, b"abcd".to_vec()).is_none());
        assert!(Carried::decode(b"{}", Vec::new()).is_none());
    }
}
