//! The `function` integration: the event goes to a local function's process through the Lambda
//! Runtime API, and its return value is read as a Lambda proxy result.

use std::sync::Arc;

use wsgate_core::proxy::{self, ProxyResult};

use super::error::IntegrationError;
use crate::function::{FunctionError, Pool};

/// Invokes one function's pool.
#[derive(Debug)]
pub struct FunctionIntegration {
    pool: Arc<Pool>,
}

impl FunctionIntegration {
    /// An integration for `pool`.
    pub fn new(pool: Arc<Pool>) -> Self {
        Self { pool }
    }

    /// Runs the handler with the event.
    pub async fn call(&self, event: Vec<u8>) -> Result<ProxyResult, IntegrationError> {
        match self.pool.invoke(event).await {
            Ok(payload) => result_of(&payload),
            Err(FunctionError::Timeout(after)) => Err(IntegrationError::Timeout(after)),
            Err(error @ FunctionError::Handler { .. }) => {
                Err(IntegrationError::Raised(error.to_string()))
            }
            Err(error) => Err(IntegrationError::FunctionFailed(error.to_string())),
        }
    }
}

/// A handler's return value: a proxy result (`{"statusCode": …}`), nothing (`None`/`undefined`,
/// which Lambda sends as `null`), a string (the body), or any other JSON (its text is the body).
fn result_of(payload: &[u8]) -> Result<ProxyResult, IntegrationError> {
    let ok = |body: Option<String>| {
        Ok(ProxyResult {
            status: 200,
            body,
            ..ProxyResult::default()
        })
    };
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Null) => ok(None),
        Ok(serde_json::Value::String(text)) => ok(Some(text)),
        Ok(value) => match proxy::from_value(&value) {
            Some(result) => result.map_err(|e| IntegrationError::BadResponse(e.to_string())),
            None => ok(Some(value.to_string())),
        },
        Err(_) if payload.trim_ascii().is_empty() => ok(None),
        Err(e) => Err(IntegrationError::BadResponse(format!(
            "the function returned invalid JSON: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_results_are_read_like_lambda_proxy_results() {
        let proxy = result_of(br#"{"statusCode": 401, "body": "no"}"#).expect("ok");
        assert_eq!((proxy.status, proxy.body.as_deref()), (401, Some("no")));
        assert_eq!(result_of(b"null").expect("ok").body, None);
        assert_eq!(result_of(b"").expect("ok").body, None);
        assert_eq!(
            result_of(br#""hello""#).expect("ok").body.as_deref(),
            Some("hello")
        );
        assert_eq!(
            result_of(br#"{"a":1}"#).expect("ok").body.as_deref(),
            Some(r#"{"a":1}"#)
        );
        assert!(result_of(b"{not json").is_err());
        assert!(result_of(br#"{"statusCode": "x"}"#).is_err());
    }
}
