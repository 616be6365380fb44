//! `POST @broadcast`: the raw body to every live connection but the `except` ones, as one frame
//! shared by all.

use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use wsgate_core::config::FanoutOverflow;
use wsgate_core::error::MgmtError;

use super::params::{except, frame_of};
use super::reply::delivery_response;
use crate::hub::Hub;

pub(super) fn run(
    hub: &Hub,
    parts: &Parts,
    data: Bytes,
    overflow: FanoutOverflow,
) -> Result<Response, MgmtError> {
    let except = except(parts)?;
    let delivery = hub.fan_out(None, &frame_of(data), &except, overflow);
    Ok(delivery_response(delivery))
}
