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

use super::error::FunctionError;

/// What `/next` hands a process.
#[derive(Debug, Clone)]
pub(super) struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    pub deadline_ms: u64,
    pub trace_id: String,
}

/// Lambda's limit on a synchronous response payload.
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// Where a process's Runtime API takes invocations from and reports results to: its function's
/// queue (the pool). A trait, so this file does not depend on the pool that serves it.
pub(super) trait Queue: Send + Sync + 'static {
    /// The function's name, for logs.
    fn function_name(&self) -> &str;
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    fn arn(&self) -> &str;
    /// Waits for the next invocation for process `worker`; `None` when it should stop asking.
    fn next_job(&self, worker: u64) -> impl Future<Output = Option<Invocation>> + Send;
    /// Delivers a result or error for `request_id`; false when `worker` does not hold it.
    fn complete(
        &self,
        worker: u64,
        request_id: &str,
        outcome: Result<Bytes, FunctionError>,
    ) -> bool;
    /// Fails every queued invocation.
    fn fail_queued(&self, error: &FunctionError);
}

struct Api<Q> {
    queue: Arc<Q>,
    worker: u64,
}

impl<Q> Clone for Api<Q> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            worker: self.worker,
        }
    }
}

/// The Runtime API for process `worker` of `queue`.
pub(super) fn router<Q: Queue>(queue: Arc<Q>, worker: u64) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next::<Q>))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(response::<Q>),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(error::<Q>),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error::<Q>))
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD))
        .with_state(Api { queue, worker })
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

async fn next<Q: Queue>(State(api): State<Api<Q>>) -> Response {
    let Some(invocation) = api.queue.next_job(api.worker).await else {
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
    set("lambda-runtime-invoked-function-arn", api.queue.arn());
    set("lambda-runtime-trace-id", &invocation.trace_id);
    set("content-type", "application/json");
    (StatusCode::OK, headers, invocation.payload).into_response()
}

async fn response<Q: Queue>(
    State(api): State<Api<Q>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    completed(api.queue.complete(api.worker, &request_id, Ok(body)))
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

async fn error<Q: Queue>(
    State(api): State<Api<Q>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let failure = error_of(&headers, &body);
    warn!(function = %api.queue.function_name(), request_id, error = %failure, "handler failed");
    completed(api.queue.complete(api.worker, &request_id, Err(failure)))
}

async fn init_error<Q: Queue>(
    State(api): State<Api<Q>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let failure = match error_of(&headers, &body) {
        FunctionError::Handler {
            error_type,
            message,
        } => FunctionError::Init(format!("{error_type}: {message}")),
        other => other,
    };
    warn!(function = %api.queue.function_name(), error = %failure, "handler failed to load");
    // Every waiting invocation would meet the same failure.
    api.queue.fail_queued(&failure);
    accepted()
}
