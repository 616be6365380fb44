//! Users: `POST @users/{user}` sends to all the user's connections; `DELETE @users/{user}` closes
//! them with 1000, as `DELETE @connections/{id}` does.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use serde_json::json;
use wsgate_core::config::FanoutOverflow;
use wsgate_core::error::MgmtError;

use super::params::{except, frame_of};
use super::reply::{self, delivery_response};
use crate::hub::{Command, Hub};

pub(super) fn send(
    hub: &Hub,
    user: &str,
    parts: &Parts,
    data: Bytes,
    overflow: FanoutOverflow,
) -> Result<Response, MgmtError> {
    let except = except(parts)?;
    let connections = hub.user_connections(user);
    Ok(delivery_response(hub.fan_out(
        Some(&connections),
        &frame_of(data),
        &except,
        overflow,
    )))
}

/// Answers `{"closed": N}`.
pub(super) fn close(hub: &Hub, user: &str) -> Result<Response, MgmtError> {
    let mut closed = 0;
    for id in hub.user_connections(user) {
        // Removed at once, like DELETE @connections/{id}: a POST right after gets 410.
        if let Some(session) = hub.remove(&id)
            && session
                .outbox
                .push(Command::Close(1000, "Connection Closed Normally"))
                .is_ok()
        {
            closed += 1;
        }
    }
    Ok(reply::ok(
        StatusCode::OK,
        Some(json!({"closed": closed}).to_string()),
    ))
}
