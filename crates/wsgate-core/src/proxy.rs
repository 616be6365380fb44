//! Reading an integration's answer as a Lambda proxy result.
//!
//! A JSON object with a `statusCode` is a proxy result (`statusCode`, `headers`, `body`,
//! `isBase64Encoded`). Anything else is a plain answer: the HTTP status is the status code and the
//! raw body is the body.

use serde_json::{Map, Value};

use crate::close::Close;

/// An integration's answer, whatever its kind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProxyResult {
    /// The status code (HTTP status for plain answers).
    pub status: u16,
    /// Response headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body, if any; `None` sends nothing back. Non-string JSON bodies are kept as their JSON
    /// text. Only a mock echoing an empty message has `Some("")`.
    pub body: Option<String>,
    /// True when `body` is base64 of binary data.
    pub is_base64_encoded: bool,
    /// wsgate's extension: groups to join and leave, the user to set and a close, for the calling
    /// connection. API Gateway ignores the unknown key, so the same handler works there.
    pub directives: Option<Directives>,
}

/// `"wsgate": {"join": [...], "leave": [...], "user": "...", "close": {"code": 4002, "reason":
/// "..."}}` in a proxy result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Directives {
    /// Groups the connection joins.
    pub join: Vec<String>,
    /// Groups the connection leaves.
    pub leave: Vec<String>,
    /// The connection's user, if set.
    pub user: Option<String>,
    /// Close the connection, after the route response.
    pub close: Option<Close>,
}

/// `"close": {"code": 4002, "reason": "bye"}`: the same choices as `DELETE
/// @connections/{id}?code=&reason=` (see [`Close::asked`]).
fn close_of(value: Option<&Value>) -> Result<Option<Close>, String> {
    let object = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(object)) => object,
        Some(other) => return Err(format!("close must be an object, got {other}")),
    };
    let code = match object.get("code") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => return Err(format!("close: code must be a number, got {other}")),
    };
    let reason = match object.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(reason)) => Some(reason.as_str()),
        Some(other) => return Err(format!("close: reason must be a string, got {other}")),
    };
    Close::asked(code.as_deref(), reason)
        .map(Some)
        .map_err(|e| format!("close: {e}"))
}

fn directives_of(value: Option<&Value>) -> Result<Option<Directives>, ProxyError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let bad = |why: &str| ProxyError::BadDirectives(why.to_owned());
    let object = value
        .as_object()
        .ok_or_else(|| bad("\"wsgate\" must be an object"))?;
    let names = |key: &str| -> Result<Vec<String>, ProxyError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item.as_str() {
                    Some(name) if crate::query::valid_name(name) => Ok(name.to_owned()),
                    _ => Err(bad(&format!(
                        "{key}: group names are 1-128 URL-safe characters, got {item}"
                    ))),
                })
                .collect(),
            Some(other) => Err(bad(&format!(
                "{key} must be a list of group names, got {other}"
            ))),
        }
    };
    let user = match object.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(user)) if crate::query::valid_name(user) => Some(user.clone()),
        Some(other) => {
            return Err(bad(&format!(
                "user must be 1-128 URL-safe characters, got {other}"
            )));
        }
    };
    Ok(Some(Directives {
        join: names("join")?,
        leave: names("leave")?,
        user,
        close: close_of(object.get("close")).map_err(|why| bad(&why))?,
    }))
}

impl ProxyResult {
    /// The first header with this name, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a proxy result is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// `statusCode` is not an integer between 100 and 599.
    #[error("statusCode must be an integer between 100 and 599, got {0}")]
    BadStatus(String),
    /// The `"wsgate"` directives are malformed.
    #[error("bad \"wsgate\" directives: {0}")]
    BadDirectives(String),
}

fn status_of(value: &Value) -> Result<u16, ProxyError> {
    let bad = || ProxyError::BadStatus(value.to_string());
    let n = match value {
        Value::Number(n) => n.as_u64().ok_or_else(bad)?,
        Value::String(s) => s.trim().parse::<u64>().map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    u16::try_from(n)
        .ok()
        .filter(|s| (100..600).contains(s))
        .ok_or_else(bad)
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn headers_of(object: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(Value::Object(h)) = object.get("headers") {
        for (k, v) in h {
            out.push((k.clone(), text_of(v)));
        }
    }
    if let Some(Value::Object(h)) = object.get("multiValueHeaders") {
        for (k, v) in h {
            if let Value::Array(values) = v {
                for v in values {
                    out.push((k.clone(), text_of(v)));
                }
            }
        }
    }
    out
}

/// Reads a Lambda proxy result from a parsed JSON value; `None` when it is not one.
pub fn from_value(value: &Value) -> Option<Result<ProxyResult, ProxyError>> {
    let object = value.as_object()?;
    let status = object.get("statusCode")?;
    let directives = match directives_of(object.get("wsgate")) {
        Ok(directives) => directives,
        Err(e) => return Some(Err(e)),
    };
    Some(status_of(status).map(|status| {
        ProxyResult {
            directives,
            status,
            headers: headers_of(object),
            // An empty body sends nothing back, like a missing one.
            body: match object.get("body") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.is_empty() => None,
                Some(v) => Some(text_of(v)),
            },
            is_base64_encoded: object
                .get("isBase64Encoded")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }))
}

/// Reads the answer of an HTTP integration: a proxy result if the body is one, else a plain answer.
pub fn from_http(status: u16, body: &[u8]) -> Result<ProxyResult, ProxyError> {
    let looks_like_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if looks_like_object
        && let Ok(value) = serde_json::from_slice::<Value>(body)
        && let Some(result) = from_value(&value)
    {
        return result;
    }
    Ok(ProxyResult {
        status,
        headers: Vec::new(),
        body: (!body.is_empty()).then(|| String::from_utf8_lossy(body).into_owned()),
        is_base64_encoded: false,
        directives: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_results_are_read() {
        let r = from_http(
            200,
            br#"{"statusCode": 401, "headers": {"Sec-WebSocket-Protocol": "chat"}, "body": "no"}"#,
        )
        .expect("valid");
        assert_eq!(r.status, 401);
        assert_eq!(r.header("sec-websocket-protocol"), Some("chat"));
        assert_eq!(r.body.as_deref(), Some("no"));
        assert!(!r.is_success());
    }

    #[test]
    fn non_string_bodies_keep_their_json() {
        let r = from_http(200, br#"{"statusCode": "200", "body": {"a": 1}}"#).expect("valid");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.as_deref(), Some(r#"{"a":1}"#));
    }

    #[test]
    fn plain_answers_use_the_http_status() {
        let r = from_http(503, b"down").expect("valid");
        assert_eq!((r.status, r.body.as_deref()), (503, Some("down")));
        let r = from_http(200, br#"{"action": "x"}"#).expect("valid");
        assert_eq!(r.body.as_deref(), Some(r#"{"action": "x"}"#));
        let r = from_http(204, b"").expect("valid");
        assert_eq!(r.body, None);
        let r = from_http(200, br#"{"statusCode": 200, "body": ""}"#).expect("valid");
        assert_eq!(r.body, None);
    }

    #[test]
    fn wsgate_directives_are_read_and_checked() {
        let r = from_http(200, br#"{"statusCode": 200, "wsgate": {"join": ["a", "b"], "leave": ["c"], "user": "u-1"}}"#)
            .expect("valid");
        assert_eq!(
            r.directives,
            Some(Directives {
                join: vec!["a".into(), "b".into()],
                leave: vec!["c".into()],
                user: Some("u-1".into()),
                close: None,
            })
        );
        assert_eq!(
            from_http(200, br#"{"statusCode": 200}"#)
                .expect("valid")
                .directives,
            None
        );
        assert!(
            from_http(
                200,
                br#"{"statusCode": 200, "wsgate": {"join": ["bad name"]}}"#
            )
            .is_err()
        );
        assert!(from_http(200, br#"{"statusCode": 200, "wsgate": {"user": 5}}"#).is_err());
        assert!(from_http(200, br#"{"statusCode": 200, "wsgate": []}"#).is_err());
    }

    #[test]
    fn a_close_directive_is_checked_like_a_delete_query() {
        let close = |json: &str| {
            from_http(
                200,
                format!(r#"{{"statusCode": 200, "wsgate": {{"close": {json}}}}}"#).as_bytes(),
            )
            .map(|r| r.directives.and_then(|d| d.close))
        };
        let bye = close(r#"{"code": 4002, "reason": "bye"}"#)
            .expect("valid")
            .expect("a close");
        assert_eq!((bye.code(), bye.reason()), (4002, "bye"));
        assert_eq!(close("{}"), Ok(Some(Close::NORMAL)));
        assert_eq!(close("null"), Ok(None));
        let long = format!(r#"{{"code": 4000, "reason": "{}"}}"#, "x".repeat(124));
        for bad in [
            r#"{"code": 1001}"#,
            r#"{"code": 5000}"#,
            r#"{"code": "4000"}"#,
            r#"{"code": 4000.5}"#,
            r#"{"reason": 7}"#,
            r#"4000"#,
            &long,
        ] {
            assert!(
                matches!(close(bad), Err(ProxyError::BadDirectives(why)) if why.starts_with("close")),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_status_codes_are_errors() {
        assert!(from_http(200, br#"{"statusCode": "abc"}"#).is_err());
        assert!(from_http(200, br#"{"statusCode": 42}"#).is_err());
        assert!(from_http(200, br#"{"statusCode": -1}"#).is_err());
    }
}
