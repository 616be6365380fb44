//! The management API: `@connections` POST / GET / DELETE, at `/{stage}/@connections/{id}` and
//! `/@connections/{id}`, exactly as boto3's `apigatewaymanagementapi` client calls it.
//!
//! Every answer carries `x-amzn-RequestId`; every error carries `x-amzn-ErrorType`, which is how
//! boto3 picks the modelled exception.

mod delete_connection;
mod get_connection;
mod post_to_connection;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use percent_encoding::percent_decode_str;
use wsgate_core::config::ManagementAuth;
use wsgate_core::error::MgmtError;
use wsgate_core::id::{ConnectionId, random_id};

use crate::auth::sigv4;
use crate::gateway::{Runtime, Shared};

/// The management operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST @connections/{id}`: send data.
    PostToConnection,
    /// `GET @connections/{id}`: connection info.
    GetConnection,
    /// `DELETE @connections/{id}`: close.
    DeleteConnection,
}

/// What a management path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `@connections/{id}`, the id percent-decoded.
    Connection(String),
    /// A path under `@connections` that names no operation.
    Unknown,
    /// `@connections` under another stage.
    WrongStage,
}

fn decoded(segment: &str) -> std::borrow::Cow<'_, str> {
    percent_decode_str(segment).decode_utf8_lossy()
}

impl Target {
    /// Reads a raw (percent-encoded) path; `None` when it is not a management path.
    pub fn parse(path: &str, stage: &str) -> Option<Self> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let is_connections = |s: &str| decoded(s) == "@connections";
        let rest = match segments.as_slice() {
            [first, rest @ ..] if is_connections(first) => rest,
            [first, second, rest @ ..] if is_connections(second) => {
                if decoded(first) != stage {
                    return Some(Self::WrongStage);
                }
                rest
            }
            _ => return None,
        };
        Some(match rest {
            [id] if !id.is_empty() => Self::Connection(decoded(id).into_owned()),
            _ => Self::Unknown,
        })
    }
}

/// Builds the response for an error.
pub fn error_response(error: &MgmtError) -> Response {
    let mut response = Response::new(Body::from(error.body()));
    *response.status_mut() =
        StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "x-amzn-ErrorType",
        HeaderValue::from_static(error.error_type()),
    );
    add_request_id(&mut response);
    response
}

fn add_request_id(response: &mut Response) {
    if let Ok(id) = HeaderValue::from_str(&random_id()) {
        response.headers_mut().insert("x-amzn-RequestId", id);
    }
}

/// A successful answer with an optional JSON body.
fn ok(status: StatusCode, json: Option<String>) -> Response {
    let mut response = Response::new(json.map(Body::from).unwrap_or_default());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    add_request_id(&mut response);
    response
}

/// Reads the body, refusing more than `limit` bytes with 413.
async fn read_body(
    body: Body,
    declared: Option<u64>,
    limit: usize,
) -> Result<bytes::Bytes, MgmtError> {
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(MgmtError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| MgmtError::PayloadTooLarge { limit })
}

/// Answers one management request.
pub async fn handle(
    shared: &Shared,
    runtime: &Runtime,
    target: Target,
    request: Request<Body>,
) -> Response {
    match handle_inner(shared, runtime, target, request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%error, status = error.status(), "management call refused");
            error_response(&error)
        }
    }
}

async fn handle_inner(
    shared: &Shared,
    runtime: &Runtime,
    target: Target,
    request: Request<Body>,
) -> Result<Response, MgmtError> {
    let (parts, body) = request.into_parts();
    let management = &runtime.config.management;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The signature covers the body, so it is read (within its bound) before the check.
    let body = read_body(body, declared, management.max_payload_bytes).await?;
    if management.auth == ManagementAuth::Sigv4 {
        sigv4::verify(
            &management.credentials,
            &parts,
            &body,
            management.max_clock_skew,
        )
        .map_err(|failure| {
            tracing::debug!(%failure, "signature rejected");
            MgmtError::Forbidden
        })?;
    }
    let id = match target {
        Target::Connection(id) => id,
        Target::WrongStage => return Err(MgmtError::Forbidden),
        Target::Unknown => {
            return Err(MgmtError::NoRoute {
                path: parts.uri.path().to_owned(),
                method: parts.method.to_string(),
            });
        }
    };
    let operation = match parts.method {
        Method::POST => Operation::PostToConnection,
        Method::GET => Operation::GetConnection,
        Method::DELETE => Operation::DeleteConnection,
        _ => {
            return Err(MgmtError::NoRoute {
                path: parts.uri.path().to_owned(),
                method: parts.method.to_string(),
            });
        }
    };
    let id = ConnectionId::parse(&id)
        .map_err(|e| MgmtError::BadRequest(format!("Invalid connectionId: {}", e.0)))?;
    match operation {
        Operation::PostToConnection => post_to_connection::run(shared, &id, body),
        Operation::GetConnection => get_connection::run(shared, &id),
        Operation::DeleteConnection => delete_connection::run(shared, &id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_paths_parse() {
        let id = || Some(Target::Connection("Mg_ugfpqPHcCIVA=".into()));
        assert_eq!(
            Target::parse("/dev/@connections/Mg_ugfpqPHcCIVA%3D", "dev"),
            id()
        );
        assert_eq!(
            Target::parse("/@connections/Mg_ugfpqPHcCIVA%3D", "dev"),
            id()
        );
        assert_eq!(
            Target::parse("/dev/%40connections/Mg_ugfpqPHcCIVA=", "dev"),
            id()
        );
        assert_eq!(
            Target::parse("/prod/@connections/x", "dev"),
            Some(Target::WrongStage)
        );
        assert_eq!(
            Target::parse("/dev/@connections", "dev"),
            Some(Target::Unknown)
        );
        assert_eq!(
            Target::parse("/dev/@connections/a/b", "dev"),
            Some(Target::Unknown)
        );
        assert_eq!(Target::parse("/dev", "dev"), None);
        assert_eq!(Target::parse("/dev/other", "dev"), None);
    }
}
