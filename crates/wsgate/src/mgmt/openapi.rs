//! `GET @openapi.json`: the OpenAPI 3.1 description of the whole management API, checked in at
//! `docs/openapi.json`.

use super::reply;
use axum::response::Response;
use http::StatusCode;

/// The document, as checked in.
pub const DOCUMENT: &str = include_str!("../../../../docs/openapi.json");

pub(super) fn document() -> Response {
    reply::ok(StatusCode::OK, Some(DOCUMENT.to_owned()))
}
