//! Identifiers in API Gateway's format: 11 bytes as URL-safe base64 with its `=` padding, 16
//! characters, e.g. `TWegAcC4EowCHnA=`. Connection ids, request ids and message ids share it.
//!
//! The first byte of a connection id names the node that holds the socket, so a management call
//! reaching any node can be forwarded without a lookup. The other ten bytes are random.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;

/// Raw length of an id in bytes.
pub const ID_BYTES: usize = 11;
/// Encoded length of an id in characters.
pub const ID_CHARS: usize = 16;

fn encode(bytes: &[u8; ID_BYTES]) -> [u8; ID_CHARS] {
    let mut out = [b'='; ID_CHARS];
    // 11 bytes always encode to exactly 16 characters, so this cannot fail.
    let _ = URL_SAFE.encode_slice(bytes, &mut out);
    out
}

fn decode(text: &[u8]) -> Option<[u8; ID_BYTES]> {
    // Base64 decoders want room for a whole last quantum: 16 characters may hold 12 bytes.
    let mut out = [0u8; ID_BYTES + 1];
    match URL_SAFE.decode_slice(text, &mut out) {
        Ok(ID_BYTES) => {
            let mut id = [0u8; ID_BYTES];
            id.copy_from_slice(&out[..ID_BYTES]);
            Some(id)
        }
        _ => None,
    }
}

/// A fresh random id, for requests and messages.
pub fn random_id() -> String {
    String::from_utf8_lossy(&encode(&rand::random::<[u8; ID_BYTES]>())).into_owned()
}

/// The id of one WebSocket connection: 16 ASCII characters, held inline (no allocation, `Copy`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId([u8; ID_CHARS]);

impl ConnectionId {
    /// A new id for a connection held by `node`.
    pub fn generate(node: u8) -> Self {
        let mut bytes = rand::random::<[u8; ID_BYTES]>();
        bytes[0] = node;
        Self(encode(&bytes))
    }

    /// Parses an id as a client sent it (already percent-decoded). Anything that is not 16
    /// characters of URL-safe base64 decoding to 11 bytes is malformed.
    pub fn parse(text: &str) -> Result<Self, MalformedId> {
        let bytes = text.as_bytes();
        match (<[u8; ID_CHARS]>::try_from(bytes), decode(bytes)) {
            (Ok(chars), Some(_)) => Ok(Self(chars)),
            _ => Err(MalformedId(text.to_owned())),
        }
    }

    /// The node that holds this connection.
    pub fn node(&self) -> u8 {
        decode(&self.0).map_or(0, |bytes| bytes[0])
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Built only from base64 output or validated base64: always ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionId({})", self.as_str())
    }
}

impl serde::Serialize for ConnectionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ConnectionId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A connection id that does not parse; it is echoed back in the 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid connectionId: {0}")]
pub struct MalformedId(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_aws_ids_parse() {
        for id in [
            "TWegAcC4EowCHnA=",
            "JC1dgf9yoAMCK-g=",
            "Mg_ugfpqPHcCIVA=",
            "U8ugtdbIIAMCIZg=",
        ] {
            assert_eq!(
                ConnectionId::parse(id).map(|c| c.to_string()),
                Ok(id.to_owned())
            );
        }
    }

    #[test]
    fn generated_ids_look_like_aws_ids_and_carry_the_node() {
        for node in [0u8, 7, 255] {
            let id = ConnectionId::generate(node);
            assert_eq!(id.as_str().len(), ID_CHARS);
            assert!(id.as_str().ends_with('='));
            assert!(!id.as_str()[..15].contains(['+', '/', '=']));
            assert_eq!(ConnectionId::parse(id.as_str()), Ok(id));
            assert_eq!(id.node(), node);
        }
        assert_eq!(random_id().len(), ID_CHARS);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "abc",
            "TWegAcC4EowCHnA",
            "TWegAcC4EowCHnA==",
            "TWeg+cC4EowCHnA=",
            "TWegAcC4EowCHn!=",
            "TWegAcC4EowCHnA=x",
        ] {
            assert!(ConnectionId::parse(bad).is_err(), "{bad}");
        }
    }
}
