//! `POST @connections/{id}`: the raw body goes to the client as one message — a text frame when
//! it is UTF-8, a binary frame otherwise.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;

use super::reply;
use crate::hub::{Command, Hub, PushError};

pub(super) fn run(hub: &Hub, id: &ConnectionId, data: Bytes) -> Result<Response, MgmtError> {
    let session = hub.get(id).ok_or(MgmtError::Gone)?;
    let command = match Utf8Bytes::try_from(data.clone()) {
        Ok(text) => Command::Text(text),
        Err(_) => Command::Binary(data),
    };
    session.outbox.push(command).map_err(|e| match e {
        PushError::Full => MgmtError::LimitExceeded("the connection's outbound buffer is full"),
        PushError::Closed => MgmtError::Gone,
    })?;
    Ok(reply::ok(StatusCode::OK, None))
}
