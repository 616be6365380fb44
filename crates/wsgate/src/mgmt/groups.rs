//! Groups: `PUT` / `DELETE @groups/{group}/connections/{id}` (join, leave), `POST @groups/{group}`
//! (send), `GET @groups/{group}` (members, paginated). An unknown group is simply empty.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use wsgate_core::config::FanoutOverflow;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;

use super::list_connections;
use super::params::{except, frame_of};
use super::reply::{self, delivery_response};
use crate::hub::{Hub, JoinError};

pub(super) fn join(
    hub: &Hub,
    group: &str,
    id: &ConnectionId,
    max_groups: usize,
) -> Result<Response, MgmtError> {
    hub.join_at_most(id, group, max_groups)
        .map_err(|error| match error {
            JoinError::Gone => MgmtError::Gone,
            JoinError::TooMany(_) => MgmtError::BadRequest(format!(
                "The connection is in {max_groups} groups already \
                 (limits.max_groups_per_connection)"
            )),
        })?;
    Ok(reply::ok(StatusCode::NO_CONTENT, None))
}

/// Idempotent: leaving a group one is not in, or as a gone connection, is fine.
pub(super) fn leave(hub: &Hub, group: &str, id: &ConnectionId) -> Result<Response, MgmtError> {
    hub.leave(id, group);
    Ok(reply::ok(StatusCode::NO_CONTENT, None))
}

pub(super) fn send(
    hub: &Hub,
    group: &str,
    parts: &Parts,
    data: Bytes,
    overflow: FanoutOverflow,
) -> Result<Response, MgmtError> {
    let except = except(parts)?;
    let members = hub.group_members(group);
    Ok(delivery_response(hub.fan_out(
        Some(&members),
        &frame_of(data),
        &except,
        overflow,
    )))
}

pub(super) fn list(hub: &Hub, group: &str, parts: &Parts) -> Result<Response, MgmtError> {
    list_connections::page(hub, hub.group_members(group), parts)
}
