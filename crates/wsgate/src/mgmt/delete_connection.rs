//! `DELETE @connections/{id}`: the client is closed with 1000 and `$disconnect` reports 1000
//! "Connection Closed Normally", as on API Gateway.

use axum::response::Response;
use http::StatusCode;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;

use super::reply;
use crate::hub::{Command, Hub};

pub(super) fn run(hub: &Hub, id: &ConnectionId) -> Result<Response, MgmtError> {
    // Removed at once, so a second DELETE or a POST right after gets 410.
    let session = hub.remove(id).ok_or(MgmtError::Gone)?;
    session
        .outbox
        .push(Command::Close(1000, "Connection Closed Normally"))
        .map_err(|_| MgmtError::Gone)?;
    Ok(reply::ok(StatusCode::NO_CONTENT, None))
}
