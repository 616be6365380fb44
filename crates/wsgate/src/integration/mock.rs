//! The `mock` integration: a status and a body template, no backend.
//!
//! The body is a template: `${request.body}` is the whole message and `${request.body.a.b}` a
//! value in it. A body of exactly `${request.body}` echoes the message unchanged, binary included.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use wsgate_core::proxy::ProxyResult;
use wsgate_core::route::SelectionExpression;

use super::inbound::Inbound;

/// A configured answer.
#[derive(Debug)]
pub struct MockIntegration {
    status: u16,
    body: Option<SelectionExpression>,
}

impl MockIntegration {
    /// A mock answering `status` and `body`, a template parsed by the config's validation.
    pub fn new(status: u16, body: Option<SelectionExpression>) -> Self {
        Self { status, body }
    }

    /// A mock answering `status` and no body.
    pub fn status_only(status: u16) -> Self {
        Self { status, body: None }
    }

    /// True when the answer is the message itself (the body is exactly `${request.body}`).
    pub fn echoes(&self) -> bool {
        self.body
            .as_ref()
            .is_some_and(SelectionExpression::is_whole_body)
    }

    /// True when the body reads `${context.*}`, so the invocation's ids are needed.
    pub fn uses_context(&self) -> bool {
        self.body
            .as_ref()
            .is_some_and(SelectionExpression::uses_context)
    }

    /// The answer to one message (`None` on `$connect` and `$disconnect`); `context` answers
    /// `${context.NAME}` variables.
    pub fn answer(
        &self,
        message: Option<&Inbound>,
        context: &dyn Fn(&str) -> Option<String>,
    ) -> ProxyResult {
        let mut result = ProxyResult {
            status: self.status,
            ..ProxyResult::default()
        };
        let Some(template) = &self.body else {
            return result;
        };
        if template.is_whole_body() {
            match message {
                Some(Inbound::Text(text)) => result.body = Some(text.as_str().to_owned()),
                Some(Inbound::Binary(bytes)) => {
                    result.body = Some(STANDARD.encode(bytes));
                    result.is_base64_encoded = true;
                }
                None => {}
            }
            return result;
        }
        let raw = match message {
            Some(Inbound::Text(text)) => text.as_str().to_owned(),
            Some(Inbound::Binary(bytes)) => STANDARD.encode(bytes),
            None => String::new(),
        };
        let parsed = if template.reads_body_paths() {
            serde_json::from_str(&raw).unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        result.body = Some(template.render(&parsed, &raw, context));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    /// A mock answering 200 and `body`, parsed as the config's validation parses it.
    fn mock_of(body: &str) -> MockIntegration {
        let body = SelectionExpression::parse_template(body).expect("valid");
        MockIntegration::new(200, Some(body))
    }

    #[test]
    fn literal_bodies_are_sent_as_written() {
        let mock = mock_of("unknown action, cost $5");
        let answer = mock.answer(Some(&Inbound::Text(Utf8Bytes::from_static("{}"))), &|_| {
            None
        });
        assert_eq!(answer.body.as_deref(), Some("unknown action, cost $5"));
    }

    #[test]
    fn templates_read_the_message() {
        let mock = mock_of(r#"{"you said": "${request.body.text}"}"#);
        let answer = mock.answer(
            Some(&Inbound::Text(Utf8Bytes::from_static(r#"{"text":"hi"}"#))),
            &|_| None,
        );
        assert_eq!(answer.body.as_deref(), Some(r#"{"you said": "hi"}"#));
    }

    #[test]
    fn whole_body_echoes_binary_as_binary() {
        let mock = mock_of("${request.body}");
        let answer = mock.answer(
            Some(&Inbound::Binary(Bytes::from_static(&[0, 255]))),
            &|_| None,
        );
        assert!(answer.is_base64_encoded);
        assert_eq!(answer.body.as_deref(), Some("AP8="));
    }
}
