//! `POST @broadcast`: the raw body to every live connection on every node but the `except`
//! ones, as one frame shared by all a node holds.

use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use wsgate_core::error::MgmtError;

use super::params::except;
use super::reply::delivery_response;
use crate::directory::Directory;
use crate::ops::Audience;

pub(super) async fn run(
    directory: &Directory,
    parts: &Parts,
    data: Bytes,
    close_slow: bool,
) -> Result<Response, MgmtError> {
    let except = except(parts)?;
    let delivery = directory
        .fan_out(Audience::All, except, data, close_slow)
        .await?;
    Ok(delivery_response(delivery))
}
