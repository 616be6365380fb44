//! `GET @connections/{id}`: when it connected, when it was last active, and who it is.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;

use super::reply;
use crate::directory::{Directory, One};
use crate::ops::Answer;

pub(super) async fn run(directory: &Directory, id: ConnectionId) -> Result<Response, MgmtError> {
    match directory.one(id, One::Get, Bytes::new()).await? {
        Answer::Info(body) => Ok(reply::ok(StatusCode::OK, Some(body.to_string()))),
        other => Err(reply::refused(other)),
    }
}
