//! `DELETE @connections/{id}`: the client is closed with 1000 and `$disconnect` reports 1000
//! "Connection Closed Normally", as on API Gateway; or, an extension, with the `code` (1000 or
//! 3000-4999) and `reason` (at most 123 bytes) of the query.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;

use super::params;
use super::reply;
use crate::directory::{Directory, One};
use crate::ops::Answer;

pub(super) async fn run(
    directory: &Directory,
    id: ConnectionId,
    parts: &Parts,
) -> Result<Response, MgmtError> {
    let close = params::close(parts)?;
    // The holder removes it at once, so a second DELETE or a POST right after gets 410.
    match directory.one(id, One::Delete(close), Bytes::new()).await? {
        Answer::Ok => Ok(reply::ok(StatusCode::NO_CONTENT, None)),
        other => Err(reply::refused(other)),
    }
}
