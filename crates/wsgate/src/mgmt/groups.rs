//! Groups: `PUT` / `DELETE @groups/{group}/connections/{id}` (join, leave), `POST @groups/{group}`
//! (send), `GET @groups/{group}` (members, paginated). An unknown group is simply empty. Members
//! may be on any node.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;

use super::list_connections;
use super::params::except;
use super::reply::{self, delivery_response};
use crate::directory::{Directory, One};
use crate::ops::{Answer, Audience};

pub(super) async fn join(
    directory: &Directory,
    group: String,
    id: ConnectionId,
    max_groups: usize,
) -> Result<Response, MgmtError> {
    match directory
        .one(id, One::Join(group, max_groups), Bytes::new())
        .await?
    {
        Answer::Ok => Ok(reply::ok(StatusCode::NO_CONTENT, None)),
        other => Err(reply::refused(other)),
    }
}

/// Idempotent: leaving a group one is not in, or as a gone connection, is fine.
pub(super) async fn leave(
    directory: &Directory,
    group: String,
    id: ConnectionId,
) -> Result<Response, MgmtError> {
    match directory.one(id, One::Leave(group), Bytes::new()).await? {
        Answer::Ok | Answer::Gone => Ok(reply::ok(StatusCode::NO_CONTENT, None)),
        other => Err(reply::refused(other)),
    }
}

pub(super) async fn send(
    directory: &Directory,
    group: String,
    parts: &Parts,
    data: Bytes,
    close_slow: bool,
) -> Result<Response, MgmtError> {
    let except = except(parts)?;
    let delivery = directory
        .fan_out(Audience::Group(group), except, data, close_slow)
        .await?;
    Ok(delivery_response(delivery))
}

pub(super) async fn list(
    directory: &Directory,
    group: String,
    parts: &Parts,
) -> Result<Response, MgmtError> {
    list_connections::page(directory, Some(group), None, parts).await
}
