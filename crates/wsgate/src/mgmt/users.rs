//! Users: `POST @users/{user}` sends to all the user's connections; `DELETE @users/{user}` closes
//! them as `DELETE @connections/{id}` does (1000, or the query's `code` and `reason`) — on every
//! node that holds any.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use serde_json::json;
use wsgate_core::error::MgmtError;

use super::params::{self, except};
use super::reply::{self, delivery_response};
use crate::directory::Directory;
use crate::ops::Audience;

pub(super) async fn send(
    directory: &Directory,
    user: String,
    parts: &Parts,
    data: Bytes,
    close_slow: bool,
) -> Result<Response, MgmtError> {
    let except = except(parts)?;
    let delivery = directory
        .fan_out(Audience::User(user), except, data, close_slow)
        .await?;
    Ok(delivery_response(delivery))
}

/// Answers `{"closed": N}`.
pub(super) async fn close(
    directory: &Directory,
    user: &str,
    parts: &Parts,
) -> Result<Response, MgmtError> {
    let closed = directory.close_user(user, params::close(parts)?).await?;
    Ok(reply::ok(
        StatusCode::OK,
        Some(json!({"closed": closed}).to_string()),
    ))
}
