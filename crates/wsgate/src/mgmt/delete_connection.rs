//! `DELETE @connections/{id}`: the client is closed with 1000 and `$disconnect` reports 1000
//! "Connection Closed Normally", as on API Gateway.

use axum::response::Response;
use http::StatusCode;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;

use crate::gateway::Shared;
use crate::hub::Command;

pub(super) fn run(shared: &Shared, id: &ConnectionId) -> Result<Response, MgmtError> {
    // Removed at once, so a second DELETE or a POST right after gets 410.
    let session = shared.hub.remove(id).ok_or(MgmtError::Gone)?;
    session
        .outbox
        .push(Command::Close(1000, "Connection Closed Normally"))
        .map_err(|_| MgmtError::Gone)?;
    Ok(super::ok(StatusCode::NO_CONTENT, None))
}
