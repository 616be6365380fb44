//! `POST @broadcast`: the raw body to every live connection but the `except` ones, as one frame
//! shared by all.

use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use wsgate_core::config::FanoutOverflow;
use wsgate_core::error::MgmtError;

use super::{delivery_response, except, frame_of};
use crate::gateway::Shared;

pub(super) fn run(
    shared: &Shared,
    parts: &Parts,
    data: Bytes,
    overflow: FanoutOverflow,
) -> Result<Response, MgmtError> {
    let except = except(parts)?;
    let delivery = shared.hub.fan_out(None, &frame_of(data), &except, overflow);
    Ok(delivery_response(delivery))
}
