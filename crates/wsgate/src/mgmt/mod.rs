//! The management API: `@connections` POST / GET / DELETE, at `/{stage}/@connections/{id}` and
//! `/@connections/{id}`, exactly as boto3's `apigatewaymanagementapi` client calls it, and
//! wsgate's extensions (batches, broadcast, groups, users).
//!
//! This file checks the caller and dispatches; [`target`] reads the path, one file per operation
//! does the work on the hub, [`reply`] shapes every answer.

mod broadcast;
mod delete_connection;
mod get_connection;
mod groups;
mod list_connections;
mod openapi;
mod params;
mod post_to_connection;
mod post_to_connections;
mod reply;
mod target;
mod users;

use std::net::IpAddr;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::header;
use http::request::Parts;
use wsgate_core::config::{FanoutOverflow, ManagementAuth};
use wsgate_core::error::MgmtError;

use self::params::{connection_id, name};
pub use self::reply::error_response;
pub use self::target::Target;
use crate::auth::sigv4;
use crate::hub::Hub;
use crate::limits;
use crate::state::{Deployment, ManagementServices};

/// The OpenAPI 3.1 document of the management API (`docs/openapi.json`).
pub const OPENAPI: &str = openapi::DOCUMENT;

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

/// Reads the body, refusing more than `limit` bytes with 413.
async fn read_body(body: Body, declared: Option<u64>, limit: usize) -> Result<Bytes, MgmtError> {
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(MgmtError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| MgmtError::PayloadTooLarge { limit })
}

/// Answers one management request from `peer`.
pub async fn handle(
    services: &ManagementServices,
    deployment: &Deployment,
    target: Target,
    peer: IpAddr,
    request: Request<Body>,
) -> Response {
    match handle_inner(services, deployment, target, peer, request).await {
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
    deployment: &'a Deployment,
    parts: &Parts,
    body: &[u8],
    peer: IpAddr,
) -> Result<Caller<'a>, MgmtError> {
    let management = &deployment.config.management;
    match management.auth {
        // Like Redis's protected mode: no credential means callers on this machine only.
        ManagementAuth::None
            if !management.allow_unauthenticated_remote && !limits::is_loopback(peer) =>
        {
            Err(MgmtError::RemoteUnauthenticated)
        }
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
            let token = deployment
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
    services: &ManagementServices,
    deployment: &Deployment,
    target: Target,
    peer: IpAddr,
    request: Request<Body>,
) -> Result<Response, MgmtError> {
    let (parts, body) = request.into_parts();
    let management = &deployment.config.management;
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
    let rate = deployment.config.limits.management_requests_per_second;
    let caller = match authenticate(deployment, &parts, &body, peer) {
        Ok(caller) => caller,
        // Failed attempts count against their address, so guessing is limited too.
        Err(error) => {
            if !services.rate.allow(&format!("failed:{peer}"), rate) {
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
    if !services.rate.allow(&caller.key, rate) {
        return Err(MgmtError::LimitExceeded("management_requests_per_second"));
    }
    let call = Call {
        hub: &services.hub,
        parts: &parts,
        body,
        max_payload_bytes: management.max_payload_bytes,
        overflow: deployment.config.limits.fanout_overflow,
    };
    run(operation, target, call).ok_or_else(no_route)?
}

/// An authorized call: what its operation works on and reads.
struct Call<'a> {
    hub: &'a Hub,
    parts: &'a Parts,
    body: Bytes,
    max_payload_bytes: usize,
    overflow: FanoutOverflow,
}

/// Runs `operation` on `target`; `None` when the two do not go together.
fn run(
    operation: Operation,
    target: Target,
    call: Call<'_>,
) -> Option<Result<Response, MgmtError>> {
    let Call {
        hub,
        parts,
        body,
        max_payload_bytes,
        overflow,
    } = call;
    Some(match (operation, target) {
        (Operation::PostToConnection, Target::Connection(id)) => {
            connection_id(&id).and_then(|id| post_to_connection::run(hub, &id, body))
        }
        (Operation::GetConnection, Target::Connection(id)) => {
            connection_id(&id).and_then(|id| get_connection::run(hub, &id))
        }
        (Operation::DeleteConnection, Target::Connection(id)) => {
            connection_id(&id).and_then(|id| delete_connection::run(hub, &id))
        }
        (Operation::PostToConnections, _) => {
            post_to_connections::run(hub, &body, max_payload_bytes, overflow)
        }
        (Operation::ListConnections, _) => list_connections::run(hub, parts),
        (Operation::Broadcast, _) => broadcast::run(hub, parts, body, overflow),
        (Operation::JoinGroup, Target::GroupMember(group, id)) => {
            name("group", &group).and_then(|group| groups::join(hub, &group, &connection_id(&id)?))
        }
        (Operation::LeaveGroup, Target::GroupMember(group, id)) => {
            name("group", &group).and_then(|group| groups::leave(hub, &group, &connection_id(&id)?))
        }
        (Operation::PostToGroup, Target::Group(group)) => {
            name("group", &group).and_then(|group| groups::send(hub, &group, parts, body, overflow))
        }
        (Operation::ListGroup, Target::Group(group)) => {
            name("group", &group).and_then(|group| groups::list(hub, &group, parts))
        }
        (Operation::PostToUser, Target::User(user)) => {
            name("user", &user).and_then(|user| users::send(hub, &user, parts, body, overflow))
        }
        (Operation::DeleteUser, Target::User(user)) => {
            name("user", &user).and_then(|user| users::close(hub, &user))
        }
        (Operation::OpenApi, _) => Ok(openapi::document()),
        _ => return None,
    })
}

/// Room for the id list of a batch send: 16 characters and a little JSON per id.
const BATCH_IDS_BYTES: usize = 1024 * 1024;
