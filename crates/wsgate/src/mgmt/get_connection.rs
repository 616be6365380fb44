//! `GET @connections/{id}`: when it connected, when it was last active, and who it is.

use axum::response::Response;
use http::StatusCode;
use serde_json::json;
use wsgate_core::clock;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;

use super::reply;
use crate::hub::Hub;

pub(super) fn run(hub: &Hub, id: &ConnectionId) -> Result<Response, MgmtError> {
    let session = hub.get(id).ok_or(MgmtError::Gone)?;
    let ctx = &session.ctx;
    let body = json!({
        "connectedAt": clock::iso8601(ctx.connected_at),
        "identity": { "sourceIp": ctx.source_ip, "userAgent": ctx.user_agent },
        "lastActiveAt": clock::iso8601(session.last_active_ms()),
    });
    Ok(reply::ok(StatusCode::OK, Some(body.to_string())))
}
