//! The AWS Lambda Runtime API (`2018-06-01`) as one process sees it: `/next` long-polls for an
//! invocation; `/response`, `/error` and `/init/error` report back.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tracing::warn;

use super::pool::{FunctionError, Pool};

/// Lambda's limit on a synchronous response payload.
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

#[derive(Clone)]
struct Api {
    pool: Arc<Pool>,
    worker: u64,
}

/// The Runtime API for process `worker` of `pool`.
pub(super) fn router(pool: Arc<Pool>, worker: u64) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD))
        .with_state(Api { pool, worker })
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn accepted() -> Response {
    json_response(StatusCode::ACCEPTED, &json!({"status": "OK"}))
}

fn refused(status: StatusCode, error_type: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"errorMessage": message, "errorType": error_type}),
    )
}

async fn next(State(api): State<Api>) -> Response {
    let Some(invocation) = api.pool.next_job(api.worker).await else {
        return refused(
            StatusCode::GONE,
            "Runtime.Replaced",
            "this process is being replaced",
        );
    };
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", &invocation.request_id);
    set(
        "lambda-runtime-deadline-ms",
        &invocation.deadline_ms.to_string(),
    );
    set("lambda-runtime-invoked-function-arn", &api.pool.spec().arn);
    set("lambda-runtime-trace-id", &invocation.trace_id);
    set("content-type", "application/json");
    (StatusCode::OK, headers, invocation.payload).into_response()
}

async fn response(State(api): State<Api>, Path(request_id): Path<String>, body: Bytes) -> Response {
    completed(api.pool.complete(api.worker, &request_id, Ok(body)))
}

/// 202 when the result reached its invocation; 400 when no invocation of this process has that id.
fn completed(known: bool) -> Response {
    if known {
        accepted()
    } else {
        refused(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "unknown or expired request id",
        )
    }
}

/// Reads an error report: `{"errorMessage", "errorType", "stackTrace"}` as the runtime interface
/// clients send it, or any bytes.
fn error_of(headers: &HeaderMap, body: &[u8]) -> FunctionError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let header_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let error_type = parsed["errorType"]
        .as_str()
        .map(str::to_owned)
        .or(header_type)
        .unwrap_or_else(|| "Unhandled".into());
    let message = parsed["errorMessage"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    FunctionError::Handler {
        error_type,
        message,
    }
}

async fn error(
    State(api): State<Api>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let failure = error_of(&headers, &body);
    warn!(function = %api.pool.spec().name, request_id, error = %failure, "handler failed");
    completed(api.pool.complete(api.worker, &request_id, Err(failure)))
}

async fn init_error(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let failure = match error_of(&headers, &body) {
        FunctionError::Handler {
            error_type,
            message,
        } => FunctionError::Init(format!("{error_type}: {message}")),
        other => other,
    };
    warn!(function = %api.pool.spec().name, error = %failure, "handler failed to load");
    // Every waiting invocation would meet the same failure.
    api.pool.fail_queued(&failure);
    accepted()
}
