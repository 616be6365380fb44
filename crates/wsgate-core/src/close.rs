//! Closes a caller chooses: `DELETE @connections/{id}?code=&reason=` (and `@users/{user}`), and
//! `"wsgate": {"close": {"code": ..., "reason": ...}}` in an integration's result.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// A close code and reason a caller may ask for, checked: code 1000 or 3000–4999, a reason of at
/// most [`MAX_REASON_BYTES`]. RFC 6455 §7.4 leaves the other codes to the protocol and the
/// gateway itself (1001 going away, 1008 slow consumer, 1012 restart; 1005 and 1006 are never
/// sent), so a caller cannot make a close look like one of those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Asked")]
pub struct Close {
    code: u16,
    reason: Cow<'static, str>,
}

/// A close frame carries at most 125 bytes: the code's 2 and the reason's 123.
pub const MAX_REASON_BYTES: usize = 123;

/// Why a close cannot be asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseError {
    /// Not 1000 nor 3000–4999.
    #[error("code must be 1000 or 3000-4999, got {0}")]
    Code(String),
    /// Over [`MAX_REASON_BYTES`].
    #[error("reason must be at most 123 bytes of UTF-8, got {0} bytes")]
    Reason(usize),
}

/// A close as another node sends it: checked again on the way in.
#[derive(Deserialize)]
struct Asked {
    code: u16,
    reason: String,
}

impl TryFrom<Asked> for Close {
    type Error = CloseError;

    fn try_from(asked: Asked) -> Result<Self, CloseError> {
        Close::new(asked.code, asked.reason)
    }
}

impl Default for Close {
    fn default() -> Self {
        Self::NORMAL
    }
}

impl Close {
    /// What `DELETE @connections/{id}` sends when no close is asked for, as API Gateway does.
    pub const NORMAL: Close = Close {
        code: 1000,
        reason: Cow::Borrowed("Connection Closed Normally"),
    };

    /// `code` with `reason`, when a caller may ask for them.
    pub fn new(code: u16, reason: impl Into<Cow<'static, str>>) -> Result<Self, CloseError> {
        let reason = reason.into();
        if code != 1000 && !(3000..5000).contains(&code) {
            return Err(CloseError::Code(code.to_string()));
        }
        if reason.len() > MAX_REASON_BYTES {
            return Err(CloseError::Reason(reason.len()));
        }
        Ok(Self { code, reason })
    }

    /// The close a query's `code` and `reason` ask for: none is [`Close::NORMAL`], a reason
    /// alone closes with 1000, a code alone with an empty reason.
    pub fn asked(code: Option<&str>, reason: Option<&str>) -> Result<Self, CloseError> {
        let code = match code {
            None if reason.is_none() => return Ok(Self::NORMAL),
            None => 1000,
            Some(text) => text
                .parse::<u16>()
                .map_err(|_| CloseError::Code(text.to_owned()))?,
        };
        Self::new(code, reason.unwrap_or_default().to_owned())
    }

    /// The code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The code and the reason, for the close frame.
    pub fn into_parts(self) -> (u16, Cow<'static, str>) {
        (self.code, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_1000_and_3000_to_4999_may_be_asked_for() {
        for code in [1000, 3000, 4001, 4999] {
            assert_eq!(Close::new(code, "x").map(|c| c.code()), Ok(code));
        }
        for code in [0, 999, 1001, 1005, 1006, 1008, 1012, 2999, 5000, u16::MAX] {
            assert_eq!(
                Close::new(code, "x"),
                Err(CloseError::Code(code.to_string()))
            );
        }
    }

    #[test]
    fn reasons_are_at_most_123_bytes() {
        assert!(Close::new(4000, "é".repeat(61) + "a").is_ok());
        assert_eq!(
            Close::new(4000, "é".repeat(62)),
            Err(CloseError::Reason(124))
        );
    }

    #[test]
    fn queries_ask_for_a_close() {
        assert_eq!(Close::asked(None, None), Ok(Close::NORMAL));
        let kicked = Close::asked(Some("4001"), Some("kicked")).expect("valid");
        assert_eq!((kicked.code(), kicked.reason()), (4001, "kicked"));
        let alone = Close::asked(None, Some("bye")).expect("valid");
        assert_eq!((alone.code(), alone.reason()), (1000, "bye"));
        let bare = Close::asked(Some("3000"), None).expect("valid");
        assert_eq!((bare.code(), bare.reason()), (3000, ""));
        for bad in ["abc", "", "-1", "70000", "4001.0"] {
            assert_eq!(
                Close::asked(Some(bad), None),
                Err(CloseError::Code(bad.to_owned()))
            );
        }
    }

    #[test]
    fn a_close_from_another_node_is_checked_again() {
        let json = serde_json::to_string(&Close::new(4002, "bye").expect("valid")).expect("json");
        assert_eq!(json, r#"{"code":4002,"reason":"bye"}"#);
        let back: Close = serde_json::from_str(&json).expect("valid");
        assert_eq!((back.code(), back.reason()), (4002, "bye"));
        assert!(serde_json::from_str::<Close>(r#"{"code":1001,"reason":""}"#).is_err());
    }
}
