//! Why an integration gave no usable answer, and what the client is told of it — written once,
//! for the error frame of a message route and the status of a refused `$connect`.

use std::time::Duration;

use http::StatusCode;
use wsgate_core::event;

/// Why an integration gave no usable answer. The backend is at fault in every case; the variant
/// says how, so logs (and metrics) can tell a dead backend from a slow or a broken one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrationError {
    /// No answer within the integration timeout.
    #[error("integration timed out after {0:?}")]
    Timeout(Duration),
    /// The backend could not be reached: connection refused, no such host, TLS failed.
    #[error("backend unreachable: {0}")]
    Connect(String),
    /// The connection broke before the whole answer came (reset, closed early).
    #[error("backend connection broken: {0}")]
    Broken(String),
    /// The backend answered something that is not a usable proxy result.
    #[error("malformed integration response: {0}")]
    BadResponse(String),
    /// A local function's handler raised (`errorType: errorMessage`).
    #[error("function raised {0}")]
    Raised(String),
    /// A local function could not run: it failed to load, its process died or did not start.
    #[error("function failed: {0}")]
    FunctionFailed(String),
}

impl IntegrationError {
    /// A short, stable name of the failure, for logs and metrics (one of
    /// [`crate::metrics::ERROR_KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Connect(_) => "refused",
            Self::Broken(_) => "broken",
            Self::BadResponse(_) => "bad_answer",
            Self::Raised(_) => "handler_error",
            Self::FunctionFailed(_) => "function_failed",
        }
    }

    /// The `message` of the error frame a client gets for a failed message route, as API
    /// Gateway words it.
    pub fn client_message(&self) -> &'static str {
        match self {
            Self::Timeout(_) => event::ENDPOINT_REQUEST_TIMED_OUT,
            _ => event::INTERNAL_SERVER_ERROR,
        }
    }

    /// The status and text a failed `$connect` refuses the upgrade with: 504 when the backend
    /// was too slow, 502 otherwise.
    pub fn connect_refusal(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "Endpoint request timed out"),
            _ => (StatusCode::BAD_GATEWAY, "Bad Gateway"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_told_as_a_timeout_and_everything_else_as_an_internal_error() {
        let timeout = IntegrationError::Timeout(Duration::from_secs(29));
        assert_eq!(timeout.client_message(), event::ENDPOINT_REQUEST_TIMED_OUT);
        assert_eq!(timeout.connect_refusal().0, StatusCode::GATEWAY_TIMEOUT);
        for other in [
            IntegrationError::Connect("refused".into()),
            IntegrationError::Broken("reset".into()),
            IntegrationError::BadResponse("x".into()),
            IntegrationError::Raised("Error: x".into()),
            IntegrationError::FunctionFailed("exited".into()),
        ] {
            assert_eq!(other.client_message(), event::INTERNAL_SERVER_ERROR);
            assert_eq!(other.connect_refusal().0, StatusCode::BAD_GATEWAY);
        }
    }
}
