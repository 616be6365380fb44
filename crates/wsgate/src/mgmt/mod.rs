//! The management API: `@connections` POST / GET / DELETE, at `/{stage}/@connections/{id}` and
//! `/@connections/{id}`, exactly as boto3's `apigatewaymanagementapi` client calls it, and
//! wsgate's extensions (batches, broadcast, groups, users).
//!
//! This file checks the caller and dispatches; [`target`] reads the path, one file per operation
//! does the work on the hub, [`reply`] shapes every answer.

mod broadcast;
mod caller;
mod cluster;
mod delete_connection;
mod get_connection;
mod groups;
mod list_connections;
mod metrics;
mod openapi;
mod overview;
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
use wsgate_core::config::FanoutOverflow;
use wsgate_core::error::MgmtError;

use self::params::{connection_id, name};
pub use self::reply::error_response;
pub use self::target::Target;
use crate::directory::Directory;
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
        Operation::Cluster => "cluster",
        Operation::Metrics => "metrics",
        Operation::Console => "console",
    }
}

/// Answers one management request from `peer`.
pub async fn handle(
    services: &ManagementServices,
    deployment: &Deployment,
    target: Target,
    peer: IpAddr,
    request: Request<Body>,
) -> Response {
    // `None` under another stage, `Some(None)` for a method the path does not take.
    let operation = match &target {
        Target::WrongStage => None,
        other => Some(other.operation(request.method())),
    };
    let response =
        match handle_inner(services, deployment, (target, operation), peer, request).await {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(%error, status = error.status(), "management call refused");
                error_response(&error)
            }
        };
    let name = operation.flatten().map_or("unknown", operation_name);
    services
        .metrics
        .management(name, response.status().as_u16());
    response
}

async fn handle_inner(
    services: &ManagementServices,
    deployment: &Deployment,
    (target, operation): (Target, Option<Option<Operation>>),
    peer: IpAddr,
    request: Request<Body>,
) -> Result<Response, MgmtError> {
    let (parts, body) = request.into_parts();
    let management = &deployment.config.management;
    let no_route = || MgmtError::NoRoute {
        path: parts.uri.path().to_owned(),
        method: parts.method.to_string(),
    };
    let operation = operation.map(|operation| operation.ok_or_else(no_route));
    // Whatever can be refused from the headers is refused before the body is read.
    let from_headers = caller::from_headers(deployment, &parts, peer)
        .map_err(|e| failed(services, deployment, peer, e))?;
    // A batch carries its data in JSON (base64 grows it by a third), the id list besides.
    let limit = match operation {
        Some(Ok(Operation::PostToConnections)) => {
            management.max_payload_bytes * 2 + BATCH_IDS_BYTES
        }
        _ => management.max_payload_bytes,
    };
    let body = read_body(services, deployment, &parts, body, peer, limit).await?;
    let caller = caller::with_body(
        from_headers,
        deployment,
        &parts,
        &body,
        &services.signing_keys,
        &services.replays,
    )
    .map_err(|e| failed(services, deployment, peer, e))?;
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
    let rate = deployment.config.limits.management_requests_per_second;
    if !services.rate.allow(&caller.key, rate) {
        return Err(MgmtError::LimitExceeded("management_requests_per_second"));
    }
    let limits = &deployment.config.limits;
    let call = Call {
        deployment,
        metrics: &services.metrics,
        directory: &services.directory,
        parts: &parts,
        body,
        max_payload_bytes: management.max_payload_bytes,
        close_slow: limits.fanout_overflow == FanoutOverflow::Close,
        max_groups: limits.max_groups_per_connection,
    };
    run(operation, target, call).await.ok_or_else(no_route)?
}

/// A failed authentication counts against its address (loopback ones too), so guessing is
/// limited whatever the request rate setting says.
fn failed(
    services: &ManagementServices,
    deployment: &Deployment,
    peer: IpAddr,
    error: MgmtError,
) -> MgmtError {
    let rate = deployment.config.management.auth_failures_per_second;
    if services.failures.allow(&peer, rate) {
        error
    } else {
        MgmtError::LimitExceeded("management.auth_failures_per_second")
    }
}

/// Reads the body within its size bound and `management.body_timeout`, while the address has
/// fewer than `management.max_body_reads_per_ip` bodies on the way.
async fn read_body(
    services: &ManagementServices,
    deployment: &Deployment,
    parts: &Parts,
    body: Body,
    peer: IpAddr,
    limit: usize,
) -> Result<Bytes, MgmtError> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(MgmtError::PayloadTooLarge { limit });
    }
    let management = &deployment.config.management;
    let _reading = services
        .body_reads
        .admit(peer, 0, management.max_body_reads_per_ip)
        .map_err(|_| MgmtError::LimitExceeded("management.max_body_reads_per_ip"))?;
    match tokio::time::timeout(management.body_timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(MgmtError::PayloadTooLarge { limit }),
        Err(_) => Err(MgmtError::BodyTimeout),
    }
}

/// An authorized call: what its operation works on and reads.
struct Call<'a> {
    deployment: &'a Deployment,
    metrics: &'a crate::metrics::Metrics,
    directory: &'a Directory,
    parts: &'a Parts,
    body: Bytes,
    max_payload_bytes: usize,
    close_slow: bool,
    max_groups: usize,
}

/// Runs `operation` on `target`; `None` when the two do not go together.
async fn run(
    operation: Operation,
    target: Target,
    call: Call<'_>,
) -> Option<Result<Response, MgmtError>> {
    let Call {
        deployment,
        metrics,
        directory,
        parts,
        body,
        max_payload_bytes,
        close_slow,
        max_groups,
    } = call;
    Some(match (operation, target) {
        (Operation::PostToConnection, Target::Connection(id)) => match connection_id(&id) {
            Ok(id) => post_to_connection::run(directory, id, body).await,
            Err(error) => Err(error),
        },
        (Operation::GetConnection, Target::Connection(id)) => match connection_id(&id) {
            Ok(id) => get_connection::run(directory, id).await,
            Err(error) => Err(error),
        },
        (Operation::DeleteConnection, Target::Connection(id)) => match connection_id(&id) {
            Ok(id) => delete_connection::run(directory, id, parts).await,
            Err(error) => Err(error),
        },
        (Operation::PostToConnections, _) => {
            post_to_connections::run(directory, &body, max_payload_bytes, close_slow).await
        }
        (Operation::ListConnections, _) => list_connections::run(directory, parts).await,
        (Operation::Broadcast, _) => broadcast::run(directory, parts, body, close_slow).await,
        (Operation::JoinGroup, Target::GroupMember(group, id)) => {
            match (name("group", &group), connection_id(&id)) {
                (Ok(group), Ok(id)) => groups::join(directory, group, id, max_groups).await,
                (Err(error), _) | (_, Err(error)) => Err(error),
            }
        }
        (Operation::LeaveGroup, Target::GroupMember(group, id)) => {
            match (name("group", &group), connection_id(&id)) {
                (Ok(group), Ok(id)) => groups::leave(directory, group, id).await,
                (Err(error), _) | (_, Err(error)) => Err(error),
            }
        }
        (Operation::PostToGroup, Target::Group(group)) => match name("group", &group) {
            Ok(group) => groups::send(directory, group, parts, body, close_slow).await,
            Err(error) => Err(error),
        },
        (Operation::ListGroup, Target::Group(group)) => match name("group", &group) {
            Ok(group) => groups::list(directory, group, parts).await,
            Err(error) => Err(error),
        },
        (Operation::PostToUser, Target::User(user)) => match name("user", &user) {
            Ok(user) => users::send(directory, user, parts, body, close_slow).await,
            Err(error) => Err(error),
        },
        (Operation::DeleteUser, Target::User(user)) => match name("user", &user) {
            Ok(user) => users::close(directory, &user, parts).await,
            Err(error) => Err(error),
        },
        (Operation::OpenApi, _) => Ok(openapi::document()),
        (Operation::Cluster, _) => Ok(cluster::view(directory).await),
        (Operation::Metrics, _) => Ok(metrics::run(directory, metrics, parts).await),
        (Operation::Console, _) => Ok(overview::run(directory, metrics, deployment)),
        _ => return None,
    })
}

/// Room for the id list of a batch send: 16 characters and a little JSON per id.
const BATCH_IDS_BYTES: usize = 1024 * 1024;
