//! Groups: `PUT` / `DELETE @groups/{group}/connections/{id}` (join, leave), `POST @groups/{group}`
//! (send), `GET @groups/{group}` (members, paginated). An unknown group is simply empty.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use wsgate_core::config::FanoutOverflow;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;

use super::{delivery_response, except, frame_of, list_connections};
use crate::gateway::Shared;

pub(super) fn join(shared: &Shared, group: &str, id: &ConnectionId) -> Result<Response, MgmtError> {
    shared.hub.join(id, group).map_err(|_| MgmtError::Gone)?;
    Ok(super::ok(StatusCode::NO_CONTENT, None))
}

/// Idempotent: leaving a group one is not in, or as a gone connection, is fine.
pub(super) fn leave(
    shared: &Shared,
    group: &str,
    id: &ConnectionId,
) -> Result<Response, MgmtError> {
    shared.hub.leave(id, group);
    Ok(super::ok(StatusCode::NO_CONTENT, None))
}

pub(super) fn send(
    shared: &Shared,
    group: &str,
    parts: &Parts,
    data: Bytes,
    overflow: FanoutOverflow,
) -> Result<Response, MgmtError> {
    let except = except(parts)?;
    let members = shared.hub.group_members(group);
    Ok(delivery_response(shared.hub.fan_out(
        Some(&members),
        &frame_of(data),
        &except,
        overflow,
    )))
}

pub(super) fn list(shared: &Shared, group: &str, parts: &Parts) -> Result<Response, MgmtError> {
    list_connections::page(shared, shared.hub.group_members(group), parts)
}
