//! The error shapes of the management API, as the AWS SDKs read them.
//!
//! botocore takes the error code from the `x-amzn-ErrorType` header first, so every error carries
//! it; the body is also valid JSON with a `message`, for SDKs that parse the body (PHP failed on
//! AWS's empty bodies).

/// One management API error; each knows its status, error type and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MgmtError {
    /// The connection is unknown, closed, or still inside `$connect`.
    #[error("gone")]
    Gone,
    /// Bad or missing signature, unknown stage or path.
    #[error("forbidden")]
    Forbidden,
    /// The credential is valid but may not call this operation.
    #[error("{0} is not allowed for this credential")]
    NotAllowed(&'static str),
    /// `auth = "none"` and a browser on another site (or a rebound DNS name) made the request.
    #[error("cross-site management call refused: {0}")]
    CrossSite(&'static str),
    /// A SigV4 signature that was already used (`reject_replayed_signatures`).
    #[error("replayed signature")]
    Replayed,
    /// The body did not arrive within `management.body_timeout`.
    #[error("request body timed out")]
    BodyTimeout,
    /// `auth = "none"` and the caller is not on a loopback address.
    #[error("unauthenticated management call from a remote address")]
    RemoteUnauthenticated,
    /// `auth = "token"`: no bearer token, or an unknown one.
    #[error("unauthorized")]
    Unauthorized,
    /// The payload is larger than the limit.
    #[error("request entity too large: the limit is {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The connection's outbox is full (slow reader), or a rate limit.
    #[error("limit exceeded: {0}")]
    LimitExceeded(&'static str),
    /// The request is malformed, e.g. `Invalid connectionId: abc`.
    #[error("{0}")]
    BadRequest(String),
    /// The call needs another node, and the cluster's Redis or that node did not answer in time.
    #[error("service unavailable: {0}")]
    ServiceUnavailable(String),
    /// No operation for this method and path.
    #[error("no method found matching route {path} for http method {method}")]
    NoRoute {
        /// The request path.
        path: String,
        /// The request method.
        method: String,
    },
}

impl MgmtError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Gone => 410,
            Self::Forbidden
            | Self::NotAllowed(_)
            | Self::RemoteUnauthenticated
            | Self::CrossSite(_)
            | Self::Replayed => 403,
            Self::BodyTimeout => 408,
            Self::Unauthorized => 401,
            Self::PayloadTooLarge { .. } => 413,
            Self::LimitExceeded(_) => 429,
            Self::BadRequest(_) => 400,
            Self::NoRoute { .. } => 404,
            Self::ServiceUnavailable(_) => 503,
        }
    }

    /// The `x-amzn-ErrorType` header, which is also the modelled exception name.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Gone => "GoneException",
            Self::Forbidden
            | Self::NotAllowed(_)
            | Self::RemoteUnauthenticated
            | Self::CrossSite(_)
            | Self::Replayed => "ForbiddenException",
            Self::BodyTimeout => "RequestTimeoutException",
            Self::Unauthorized => "UnauthorizedException",
            Self::PayloadTooLarge { .. } => "PayloadTooLargeException",
            Self::LimitExceeded(_) => "LimitExceededException",
            Self::BadRequest(_) => "BadRequestException",
            Self::NoRoute { .. } => "NotFoundException",
            Self::ServiceUnavailable(_) => "ServiceUnavailableException",
        }
    }

    /// The JSON body: `{"message": "..."}`.
    pub fn body(&self) -> String {
        let message = match self {
            Self::Gone => "Gone".to_owned(),
            Self::Forbidden => "Forbidden".to_owned(),
            Self::NotAllowed(operation) => {
                format!("This credential is not allowed to call {operation}")
            }
            Self::RemoteUnauthenticated => "The management API has management.auth = \"none\" and \
                answers only callers on a loopback address: set management.auth to \"sigv4\" or \
                \"token\", or management.allow_unauthenticated_remote = true to open it"
                .to_owned(),
            Self::CrossSite(why) => format!(
                "Forbidden: {why}; a management API with management.auth = \"none\" answers no \
                 browser page of another site"
            ),
            Self::Replayed => "Forbidden: this signature was already used \
                (management.reject_replayed_signatures)"
                .to_owned(),
            Self::BodyTimeout => "Request timeout: the body did not arrive within \
                management.body_timeout"
                .to_owned(),
            Self::Unauthorized => "Unauthorized".to_owned(),
            Self::PayloadTooLarge { .. } => "Request entity too large".to_owned(),
            Self::LimitExceeded(why) => format!("Limit exceeded: {why}"),
            Self::BadRequest(m) => m.clone(),
            Self::ServiceUnavailable(why) => format!("Service unavailable: {why}"),
            Self::NoRoute { path, method } => {
                format!("No method found matching route {path} for http method {method}.")
            }
        };
        serde_json::json!({ "message": message }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status_and_type() {
        let cases = [
            (MgmtError::Gone, 410, "GoneException"),
            (MgmtError::Forbidden, 403, "ForbiddenException"),
            (
                MgmtError::NotAllowed("broadcast"),
                403,
                "ForbiddenException",
            ),
            (MgmtError::Unauthorized, 401, "UnauthorizedException"),
            (
                MgmtError::PayloadTooLarge { limit: 131_072 },
                413,
                "PayloadTooLargeException",
            ),
            (
                MgmtError::LimitExceeded("outbox full"),
                429,
                "LimitExceededException",
            ),
            (
                MgmtError::BadRequest("Invalid connectionId: abc".into()),
                400,
                "BadRequestException",
            ),
        ];
        for (err, status, kind) in cases {
            assert_eq!((err.status(), err.error_type()), (status, kind));
            let body: serde_json::Value = serde_json::from_str(&err.body()).expect("json");
            assert!(body["message"].is_string());
        }
        assert_eq!(
            MgmtError::BadRequest("Invalid connectionId: abc".into()).body(),
            r#"{"message":"Invalid connectionId: abc"}"#
        );
    }
}
