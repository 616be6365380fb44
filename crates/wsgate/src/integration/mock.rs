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
    /// A mock answering `status` and `body`.
    pub fn new(status: u16, body: Option<&str>) -> Result<Self, String> {
        let body = body
            .map(SelectionExpression::parse_template)
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(Self { status, body })
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

    #[test]
    fn literal_bodies_are_sent_as_written() {
        let mock = MockIntegration::new(200, Some("unknown action, cost $5")).expect("valid");
        let answer = mock.answer(Some(&Inbound::Text(Utf8Bytes::from_static("{}"))), &|_| {
            None
        });
        assert_eq!(answer.body.as_deref(), Some("unknown action, cost $5"));
    }

    #[test]
    fn templates_read_the_message() {
        let mock = MockIntegration::new(200, Some(r#"{"you said": "${request.body.text}"}"#))
            .expect("valid");
        let answer = mock.answer(
            Some(&Inbound::Text(Utf8Bytes::from_static(r#"{"text":"hi"}"#))),
            &|_| None,
        );
        assert_eq!(answer.body.as_deref(), Some(r#"{"you said": "hi"}"#));
    }

    #[test]
    fn whole_body_echoes_binary_as_binary() {
        let mock = MockIntegration::new(200, Some("${request.body}")).expect("valid");
        let answer = mock.answer(
            Some(&Inbound::Binary(Bytes::from_static(&[0, 255]))),
            &|_| None,
        );
        assert!(answer.is_base64_encoded);
        assert_eq!(answer.body.as_deref(), Some("AP8="));
    }
}
