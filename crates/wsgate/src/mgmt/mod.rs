//! The management API: `@connections` POST / GET / DELETE, at `/{stage}/@connections/{id}` and
//! `/@connections/{id}`, exactly as boto3's `apigatewaymanagementapi` client calls it.
//!
//! Every answer carries `x-amzn-RequestId`; every error carries `x-amzn-ErrorType`, which is how
//! boto3 picks the modelled exception.

mod broadcast;
mod delete_connection;
mod get_connection;
mod groups;
mod list_connections;
mod openapi;
mod post_to_connection;
mod post_to_connections;
mod users;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use percent_encoding::percent_decode_str;
use std::net::IpAddr;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use wsgate_core::config::ManagementAuth;
use wsgate_core::error::MgmtError;
use wsgate_core::id::{ConnectionId, random_id};
use wsgate_core::query;

use crate::hub::{Command, Delivery};

/// The OpenAPI 3.1 document of the management API (`docs/openapi.json`).
pub const OPENAPI: &str = openapi::DOCUMENT;

use crate::auth::sigv4;
use crate::gateway::{Runtime, Shared};

pub use wsgate_core::config::Operation;

/// The name an operation has in `operations = [...]`, for messages.
fn operation_name(operation: Operation) -> &'static str {
    match operation {
        Operation::PostToConnection => "post_to_connection",
        Operation::GetConnection => "get_connection",
        Operation::DeleteConnection => "delete_connection",
        Operation::PostToConnections => "post_to_connections",
        Operation::ListConnections => "list_connections",
        Operation::Broadcast => "broadcast",
        Operation::JoinGroup => "join_group",
        Operation::LeaveGroup => "leave_group",
        Operation::PostToGroup => "post_to_group",
        Operation::ListGroup => "list_group",
        Operation::PostToUser => "post_to_user",
        Operation::DeleteUser => "delete_user",
        Operation::OpenApi => "openapi",
    }
}

/// What a management path addresses; names and ids percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `@connections/{id}`.
    Connection(String),
    /// `@connections`.
    Connections,
    /// `@broadcast`.
    Broadcast,
    /// `@groups/{group}`.
    Group(String),
    /// `@groups/{group}/connections/{id}`.
    GroupMember(String, String),
    /// `@users/{user}`.
    User(String),
    /// `@openapi.json`.
    OpenApi,
    /// A management path that names no operation.
    Unknown,
    /// A management path under another stage.
    WrongStage,
}

fn decoded(segment: &str) -> std::borrow::Cow<'_, str> {
    percent_decode_str(segment).decode_utf8_lossy()
}

const ROOTS: &[&str] = &[
    "@connections",
    "@broadcast",
    "@groups",
    "@users",
    "@openapi.json",
];

impl Target {
    /// Reads a raw (percent-encoded) path; `None` when it is not a management path. Every path
    /// works with and without the `/{stage}` prefix.
    pub fn parse(path: &str, stage: &str) -> Option<Self> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let is_root = |s: &str| ROOTS.contains(&decoded(s).as_ref());
        let rest: &[&str] = match segments.as_slice() {
            [first, ..] if is_root(first) => &segments,
            [first, second, ..] if is_root(second) => {
                if decoded(first) != stage {
                    return Some(Self::WrongStage);
                }
                &segments[1..]
            }
            _ => return None,
        };
        let named = |s: &str| (!s.is_empty()).then(|| decoded(s).into_owned());
        let root = decoded(rest[0]);
        Some(match (root.as_ref(), &rest[1..]) {
            ("@connections", []) => Self::Connections,
            ("@connections", [id]) => named(id).map_or(Self::Unknown, Self::Connection),
            ("@broadcast", []) => Self::Broadcast,
            ("@groups", [group]) => named(group).map_or(Self::Unknown, Self::Group),
            ("@groups", [group, connections, id]) if *connections == "connections" => {
                match (named(group), named(id)) {
                    (Some(group), Some(id)) => Self::GroupMember(group, id),
                    _ => Self::Unknown,
                }
            }
            ("@users", [user]) => named(user).map_or(Self::Unknown, Self::User),
            ("@openapi.json", []) => Self::OpenApi,
            _ => Self::Unknown,
        })
    }

    /// The operation for a method on this target.
    fn operation(&self, method: &Method) -> Option<Operation> {
        Some(match (self, method) {
            (Self::Connection(_), &Method::POST) => Operation::PostToConnection,
            (Self::Connection(_), &Method::GET) => Operation::GetConnection,
            (Self::Connection(_), &Method::DELETE) => Operation::DeleteConnection,
            (Self::Connections, &Method::POST) => Operation::PostToConnections,
            (Self::Connections, &Method::GET) => Operation::ListConnections,
            (Self::Broadcast, &Method::POST) => Operation::Broadcast,
            (Self::GroupMember(..), &Method::PUT) => Operation::JoinGroup,
            (Self::GroupMember(..), &Method::DELETE) => Operation::LeaveGroup,
            (Self::Group(_), &Method::POST) => Operation::PostToGroup,
            (Self::Group(_), &Method::GET) => Operation::ListGroup,
            (Self::User(_), &Method::POST) => Operation::PostToUser,
            (Self::User(_), &Method::DELETE) => Operation::DeleteUser,
            (Self::OpenApi, &Method::GET) => Operation::OpenApi,
            _ => return None,
        })
    }
}

/// A connection id from a path or a list; malformed ones are a 400, as API Gateway answers.
pub(crate) fn connection_id(text: &str) -> Result<ConnectionId, MgmtError> {
    ConnectionId::parse(text)
        .map_err(|e| MgmtError::BadRequest(format!("Invalid connectionId: {}", e.0)))
}

/// A group or user name from a path (see `query::valid_name`).
pub(crate) fn name(kind: &str, text: &str) -> Result<String, MgmtError> {
    if query::valid_name(text) {
        Ok(text.to_owned())
    } else {
        Err(MgmtError::BadRequest(format!(
            "Invalid {kind} name: {text} (1-128 characters of A-Z a-z 0-9 - _ . ~ @ : |)"
        )))
    }
}

/// The `except` query parameters: connections a send to many leaves out.
pub(crate) fn except(parts: &Parts) -> Result<Vec<ConnectionId>, MgmtError> {
    query::pairs(parts.uri.query().unwrap_or_default())
        .into_iter()
        .filter(|(k, _)| k == "except")
        .map(|(_, v)| connection_id(&v))
        .collect()
}

/// Text when the data is UTF-8, binary otherwise; the bytes are shared, not copied.
pub(crate) fn frame_of(data: bytes::Bytes) -> Command {
    match Utf8Bytes::try_from(data.clone()) {
        Ok(text) => Command::Text(text),
        Err(_) => Command::Binary(data),
    }
}

/// `{"recipients": N}` (and `"skipped"`, `"closed"` when some were).
pub(crate) fn delivery_response(delivery: Delivery) -> Response {
    let mut body = serde_json::json!({"recipients": delivery.recipients});
    if delivery.skipped > 0 {
        body["skipped"] = delivery.skipped.into();
    }
    if delivery.closed > 0 {
        body["closed"] = delivery.closed.into();
    }
    ok(StatusCode::OK, Some(body.to_string()))
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
pub(crate) fn ok(status: StatusCode, json: Option<String>) -> Response {
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

/// Answers one management request from `peer`.
pub async fn handle(
    shared: &Shared,
    runtime: &Runtime,
    target: Target,
    peer: IpAddr,
    request: Request<Body>,
) -> Response {
    match handle_inner(shared, runtime, target, peer, request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%error, status = error.status(), "management call refused");
            error_response(&error)
        }
    }
}

/// Who is calling: what the rate limit counts and what the credential may call.
struct Caller<'a> {
    key: String,
    operations: Option<&'a [Operation]>,
}

/// Checks the request's credential; `None` operations means all are allowed.
fn authenticate<'a>(
    runtime: &'a Runtime,
    parts: &Parts,
    body: &[u8],
    peer: IpAddr,
) -> Result<Caller<'a>, MgmtError> {
    let management = &runtime.config.management;
    match management.auth {
        ManagementAuth::None => Ok(Caller {
            key: peer.to_string(),
            operations: None,
        }),
        ManagementAuth::Sigv4 => {
            let credential = sigv4::verify(
                &management.credentials,
                parts,
                body,
                management.max_clock_skew,
            )
            .map_err(|failure| {
                tracing::debug!(%failure, "signature rejected");
                MgmtError::Forbidden
            })?;
            Ok(Caller {
                key: format!("key:{}", credential.access_key_id),
                operations: credential.operations.as_deref(),
            })
        }
        ManagementAuth::Token => {
            let presented = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .ok_or(MgmtError::Unauthorized)?;
            let token = runtime
                .management_tokens
                .iter()
                .find(|t| sigv4::constant_time_eq(t.secret.as_bytes(), presented.as_bytes()))
                .ok_or_else(|| {
                    tracing::debug!("unknown management token");
                    MgmtError::Unauthorized
                })?;
            Ok(Caller {
                key: format!("token:{}", token.name),
                operations: token.operations.as_deref(),
            })
        }
    }
}

async fn handle_inner(
    shared: &Shared,
    runtime: &Runtime,
    target: Target,
    peer: IpAddr,
    request: Request<Body>,
) -> Result<Response, MgmtError> {
    let (parts, body) = request.into_parts();
    let management = &runtime.config.management;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let no_route = || MgmtError::NoRoute {
        path: parts.uri.path().to_owned(),
        method: parts.method.to_string(),
    };
    let operation = match &target {
        Target::WrongStage => None,
        other => Some(other.operation(&parts.method).ok_or_else(no_route)),
    };
    // A batch carries its data in JSON (base64 grows it by a third), the id list besides.
    let limit = match operation {
        Some(Ok(Operation::PostToConnections)) => {
            management.max_payload_bytes * 2 + BATCH_IDS_BYTES
        }
        _ => management.max_payload_bytes,
    };
    // The signature covers the body, so it is read (within its bound) before the check.
    let body = read_body(body, declared, limit).await?;
    let rate = runtime.config.limits.management_requests_per_second;
    let caller = match authenticate(runtime, &parts, &body, peer) {
        Ok(caller) => caller,
        // Failed attempts count against their address, so guessing is limited too.
        Err(error) => {
            if !shared
                .management_rate
                .allow(&format!("failed:{peer}"), rate)
            {
                return Err(MgmtError::LimitExceeded("management_requests_per_second"));
            }
            return Err(error);
        }
    };
    let operation = match operation {
        None => return Err(MgmtError::Forbidden),
        Some(operation) => operation?,
    };
    if caller
        .operations
        .is_some_and(|allowed| !allowed.contains(&operation))
    {
        return Err(MgmtError::NotAllowed(operation_name(operation)));
    }
    if !shared.management_rate.allow(&caller.key, rate) {
        return Err(MgmtError::LimitExceeded("management_requests_per_second"));
    }
    let overflow = runtime.config.limits.fanout_overflow;
    match (operation, target) {
        (Operation::PostToConnection, Target::Connection(id)) => {
            post_to_connection::run(shared, &connection_id(&id)?, body)
        }
        (Operation::GetConnection, Target::Connection(id)) => {
            get_connection::run(shared, &connection_id(&id)?)
        }
        (Operation::DeleteConnection, Target::Connection(id)) => {
            delete_connection::run(shared, &connection_id(&id)?)
        }
        (Operation::PostToConnections, _) => {
            post_to_connections::run(shared, &body, management.max_payload_bytes, overflow)
        }
        (Operation::ListConnections, _) => list_connections::run(shared, &parts),
        (Operation::Broadcast, _) => broadcast::run(shared, &parts, body, overflow),
        (Operation::JoinGroup, Target::GroupMember(group, id)) => {
            groups::join(shared, &name("group", &group)?, &connection_id(&id)?)
        }
        (Operation::LeaveGroup, Target::GroupMember(group, id)) => {
            groups::leave(shared, &name("group", &group)?, &connection_id(&id)?)
        }
        (Operation::PostToGroup, Target::Group(group)) => {
            groups::send(shared, &name("group", &group)?, &parts, body, overflow)
        }
        (Operation::ListGroup, Target::Group(group)) => {
            groups::list(shared, &name("group", &group)?, &parts)
        }
        (Operation::PostToUser, Target::User(user)) => {
            users::send(shared, &name("user", &user)?, &parts, body, overflow)
        }
        (Operation::DeleteUser, Target::User(user)) => users::close(shared, &name("user", &user)?),
        (Operation::OpenApi, _) => Ok(openapi::document()),
        _ => Err(no_route()),
    }
}

/// Room for the id list of a batch send: 16 characters and a little JSON per id.
const BATCH_IDS_BYTES: usize = 1024 * 1024;

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
            Some(Target::Connections)
        );
        assert_eq!(Target::parse("/@broadcast", "dev"), Some(Target::Broadcast));
        assert_eq!(
            Target::parse("/dev/@groups/room", "dev"),
            Some(Target::Group("room".into()))
        );
        assert_eq!(
            Target::parse("/dev/@groups/room/connections/Mg_ugfpqPHcCIVA%3D", "dev"),
            Some(Target::GroupMember(
                "room".into(),
                "Mg_ugfpqPHcCIVA=".into()
            ))
        );
        assert_eq!(
            Target::parse("/@users/alice", "dev"),
            Some(Target::User("alice".into()))
        );
        assert_eq!(
            Target::parse("/dev/@openapi.json", "dev"),
            Some(Target::OpenApi)
        );
        assert_eq!(
            Target::parse("/dev/@groups/room/members/x", "dev"),
            Some(Target::Unknown)
        );
        assert_eq!(
            Target::parse("/prod/@broadcast", "dev"),
            Some(Target::WrongStage)
        );
        assert_eq!(
            Target::parse("/dev/@connections/a/b", "dev"),
            Some(Target::Unknown)
        );
        assert_eq!(Target::parse("/dev", "dev"), None);
        assert_eq!(Target::parse("/dev/other", "dev"), None);
    }
}
