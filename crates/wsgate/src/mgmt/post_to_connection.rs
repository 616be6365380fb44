//! `POST @connections/{id}`: the raw body goes to the client as one message — a text frame when
//! it is UTF-8, a binary frame otherwise — whichever node holds it.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;

use super::reply;
use crate::directory::{Directory, One};
use crate::ops::Answer;

pub(super) async fn run(
    directory: &Directory,
    id: ConnectionId,
    data: Bytes,
) -> Result<Response, MgmtError> {
    match directory.one(id, One::Post, data).await? {
        Answer::Ok => Ok(reply::ok(StatusCode::OK, None)),
        other => Err(reply::refused(other)),
    }
}
