//! Management answers: every one carries `x-amzn-RequestId`; every error carries
//! `x-amzn-ErrorType`, which is how boto3 picks the modelled exception.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use wsgate_core::error::MgmtError;
use wsgate_core::id::random_id;

use crate::hub::Delivery;
use crate::ops::Answer;

/// `{"recipients": N}` (and `"skipped"`, `"closed"` when some were).
pub(super) fn delivery_response(delivery: Delivery) -> Response {
    let mut body = serde_json::json!({"recipients": delivery.recipients});
    if delivery.skipped > 0 {
        body["skipped"] = delivery.skipped.into();
    }
    if delivery.closed > 0 {
        body["closed"] = delivery.closed.into();
    }
    ok(StatusCode::OK, Some(body.to_string()))
}

/// The error for a node's answer that is not the success an operation expects.
pub(super) fn refused(answer: Answer) -> MgmtError {
    match answer {
        Answer::Gone => MgmtError::Gone,
        Answer::Full => MgmtError::LimitExceeded("the connection's outbound buffer is full"),
        Answer::TooMany { max } => MgmtError::BadRequest(format!(
            "The connection is in {max} groups already (limits.max_groups_per_connection)"
        )),
        other => MgmtError::ServiceUnavailable(format!("another node answered {other:?}")),
    }
}

/// Builds the response for an error.
pub fn error_response(error: &MgmtError) -> Response {
    let mut response = Response::new(Body::from(error.body()));
    *response.status_mut() =
        StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "x-amzn-ErrorType",
        HeaderValue::from_static(error.error_type()),
    );
    add_request_id(&mut response);
    response
}

fn add_request_id(response: &mut Response) {
    if let Ok(id) = HeaderValue::from_str(&random_id()) {
        response.headers_mut().insert("x-amzn-RequestId", id);
    }
}

/// A successful answer with an optional JSON body.
pub(super) fn ok(status: StatusCode, json: Option<String>) -> Response {
    let mut response = Response::new(json.map(Body::from).unwrap_or_default());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    add_request_id(&mut response);
    response
}
