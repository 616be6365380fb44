//! `POST @connections/{id}`: the raw body goes to the client as one message — a text frame when
//! it is UTF-8, a binary frame otherwise.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;

use crate::gateway::Shared;
use crate::hub::{Command, PushError};

pub(super) fn run(shared: &Shared, id: &ConnectionId, data: Bytes) -> Result<Response, MgmtError> {
    let session = shared.hub.get(id).ok_or(MgmtError::Gone)?;
    let command = if std::str::from_utf8(&data).is_ok() {
        Command::Text(data)
    } else {
        Command::Binary(data)
    };
    session.outbox.push(command).map_err(|e| match e {
        PushError::Full => MgmtError::LimitExceeded("the connection's outbound buffer is full"),
        PushError::Closed => MgmtError::Gone,
    })?;
    Ok(super::ok(StatusCode::OK, None))
}
