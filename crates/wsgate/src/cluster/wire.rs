//! Messages between nodes, as published on Redis: a request (an [`Op`] with the data to send) or
//! an answer to one.
//!
//! ```text
//! byte 0      b'Q' (request) or b'A' (answer)
//! byte 1      the sender's node number
//! bytes 2..10 the request's number at its sender (u64, little-endian)
//! bytes 10..14 the header's length (u32, little-endian)
//! header      the Op or the Answer, as JSON
//! rest        a request's data: the frame's payload, as it arrived (never re-encoded)
//! ```

use bytes::Bytes;

use crate::ops::{Answer, Op};

const REQUEST: u8 = b'Q';
const ANSWER: u8 = b'A';
const HEAD: usize = 14;

/// A message read off the bus.
#[derive(Debug)]
pub enum Message {
    /// Run `op` and answer `number` on node `from`'s channel.
    Request {
        /// The asking node.
        from: u8,
        /// The request's number there.
        number: u64,
        /// What to do.
        op: Op,
        /// The payload.
        data: Bytes,
    },
    /// The answer to this node's request `number`.
    Answer {
        /// The request's number.
        number: u64,
        /// What it did.
        answer: Answer,
    },
}

fn encode(kind: u8, from: u8, number: u64, header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD + header.len() + data.len());
    out.push(kind);
    out.push(from);
    out.extend_from_slice(&number.to_le_bytes());
    // A header is a few hundred bytes at most; a listing's a few hundred KB.
    out.extend_from_slice(
        &u32::try_from(header.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// A request from node `from`.
pub fn request(from: u8, number: u64, op: &Op, data: &[u8]) -> Vec<u8> {
    let header = serde_json::to_vec(op).unwrap_or_default();
    encode(REQUEST, from, number, &header, data)
}

/// An answer from node `from`.
pub fn answer(from: u8, number: u64, answer: &Answer) -> Vec<u8> {
    let header = serde_json::to_vec(answer).unwrap_or_default();
    encode(ANSWER, from, number, &header, &[])
}

/// Reads a message; `None` when it is not one of ours (or is damaged).
pub fn decode(message: Bytes) -> Option<Message> {
    if message.len() < HEAD {
        return None;
    }
    let (kind, from) = (message[0], message[1]);
    let number = u64::from_le_bytes(message[2..10].try_into().ok()?);
    let length = u32::from_le_bytes(message[10..14].try_into().ok()?) as usize;
    let end = HEAD
        .checked_add(length)
        .filter(|end| *end <= message.len())?;
    let header = &message[HEAD..end];
    match kind {
        REQUEST => Some(Message::Request {
            from,
            number,
            op: serde_json::from_slice(header).ok()?,
            data: message.slice(end..),
        }),
        ANSWER => Some(Message::Answer {
            number,
            answer: serde_json::from_slice(header).ok()?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use wsgate_core::close::Close;
    use wsgate_core::id::ConnectionId;

    use super::*;
    use crate::ops::Audience;

    #[test]
    fn requests_and_answers_survive_the_trip() {
        let id = ConnectionId::generate(3);
        let op = Op::FanOut {
            to: Audience::Group("room".into()),
            except: vec![id],
            close_slow: true,
        };
        match decode(Bytes::from(request(7, 42, &op, b"hello"))) {
            Some(Message::Request {
                from: 7,
                number: 42,
                op: got,
                data,
            }) => {
                assert_eq!(got, op);
                assert_eq!(&data[..], b"hello");
            }
            other => panic!("{other:?}"),
        }
        let items = Answer::Items(vec![(id, serde_json::json!({"user": "alice"}))]);
        assert!(matches!(
            decode(Bytes::from(answer(2, 8, &items))),
            Some(Message::Answer { answer, .. }) if answer == items
        ));
        assert!(matches!(
            decode(Bytes::from(answer(2, 8, &Answer::Closed(3)))),
            Some(Message::Answer {
                answer: Answer::Closed(3),
                ..
            })
        ));
        match decode(Bytes::from(answer(2, 9, &Answer::TooMany { max: 5 }))) {
            Some(Message::Answer {
                number: 9,
                answer: Answer::TooMany { max: 5 },
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_delete_carries_its_close_code_and_reason() {
        let id = ConnectionId::generate(3);
        let close = Close::new(4001, "kicked").expect("valid");
        let op = Op::Delete {
            id,
            close: close.clone(),
        };
        match decode(Bytes::from(request(1, 5, &op, b""))) {
            Some(Message::Request { op: got, .. }) => assert_eq!(got, op),
            other => panic!("{other:?}"),
        }
        // A node of an older version asks for a plain DELETE.
        let older = format!(r#"{{"op":"delete","id":"{id}"}}"#);
        let message = encode(REQUEST, 1, 6, older.as_bytes(), b"");
        match decode(Bytes::from(message)) {
            Some(Message::Request {
                op: Op::Delete { close, .. },
                ..
            }) => assert_eq!(close, Close::NORMAL),
            other => panic!("{other:?}"),
        }
        // A close no caller may ask for is not run.
        let bad = format!(r#"{{"op":"delete","id":"{id}","close":{{"code":1001,"reason":""}}}}"#);
        assert!(decode(Bytes::from(encode(REQUEST, 1, 7, bad.as_bytes(), b""))).is_none());
    }

    #[test]
    fn damaged_messages_are_ignored() {
        let good = request(
            1,
            1,
            &Op::Get {
                id: ConnectionId::generate(1),
            },
            b"",
        );
        for cut in 0..good.len() {
            let _ = decode(Bytes::copy_from_slice(&good[..cut]));
        }
        let mut bad = good.clone();
        bad[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(Bytes::from(bad)).is_none());
        assert!(decode(Bytes::from_static(b"Xgarbage-garbage")).is_none());
    }
}
