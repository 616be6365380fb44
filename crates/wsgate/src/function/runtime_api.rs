//! The AWS Lambda Runtime API (`2018-06-01`) as one process sees it: `/next` long-polls for an
//! invocation; `/response`, `/error` and `/init/error` report back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
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
    /// A `/next` of this process is waiting.
    polling: Arc<AtomicBool>,
}

impl<Q> Clone for Api<Q> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            worker: self.worker,
            polling: self.polling.clone(),
        }
    }
}

/// The Runtime API for process `worker` of `queue`, served on `addr` (`AWS_LAMBDA_RUNTIME_API`).
pub(super) fn router<Q: Queue>(queue: Arc<Q>, worker: u64, addr: SocketAddr) -> Router {
    let hosts = Arc::new(Hosts::of(addr));
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
        .layer(middleware::from_fn_with_state(hosts, check_host))
        .with_state(Api {
            queue,
            worker,
            polling: Arc::new(AtomicBool::new(false)),
        })
}

/// The `Host` values a request may carry: the Runtime API's own address, as
/// `AWS_LAMBDA_RUNTIME_API` gives it, or `localhost` with its port. Anything else is a request
/// a browser page sent through a name that resolves here (DNS rebinding).
#[derive(Debug)]
struct Hosts {
    exact: String,
    localhost: String,
}

impl Hosts {
    fn of(addr: SocketAddr) -> Self {
        Self {
            exact: addr.to_string(),
            localhost: format!("localhost:{}", addr.port()),
        }
    }

    fn allows(&self, host: &str) -> bool {
        host == self.exact || host.eq_ignore_ascii_case(&self.localhost)
    }
}

/// 403 before anything is read from a request whose `Host` (and authority, in an absolute URI)
/// is not the Runtime API's own address.
async fn check_host(State(hosts): State<Arc<Hosts>>, request: Request, next: Next) -> Response {
    let header = request.headers().get(header::HOST).map(HeaderValue::to_str);
    let authority = request.uri().authority().map(|a| a.as_str());
    let allowed = match (header, authority) {
        (None, None) | (Some(Err(_)), _) => false,
        (Some(Ok(host)), None) => hosts.allows(host),
        (None, Some(authority)) => hosts.allows(authority),
        (Some(Ok(host)), Some(authority)) => hosts.allows(host) && hosts.allows(authority),
    };
    if allowed {
        next.run(request).await
    } else {
        refused(
            StatusCode::FORBIDDEN,
            "Runtime.InvalidHost",
            "the Host header must be the AWS_LAMBDA_RUNTIME_API address",
        )
    }
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

/// Marks a process's `/next` as waiting while it lives.
struct Polling(Arc<AtomicBool>);

impl Polling {
    /// `None` when another `/next` of the same process is already waiting.
    fn claim(flag: &Arc<AtomicBool>) -> Option<Self> {
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Self(flag.clone()))
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

async fn next<Q: Queue>(State(api): State<Api<Q>>) -> Response {
    // A process runs one invocation at a time: it has one `/next` waiting at most. A second one
    // (another thread, or a process sharing its connection) takes nothing.
    let Some(_polling) = Polling::claim(&api.polling) else {
        return refused(
            StatusCode::CONFLICT,
            "Runtime.ConcurrentNext",
            "another /next of this process is already waiting",
        );
    };
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Body;
    use tokio::sync::Notify;
    use tower::ServiceExt;

    use super::*;

    /// A queue with one invocation, handed out when `release` is notified.
    #[derive(Default)]
    struct OneJob {
        release: Notify,
        waiting: std::sync::atomic::AtomicU32,
        taken: Mutex<u32>,
    }

    impl Queue for OneJob {
        fn function_name(&self) -> &str {
            "test"
        }
        fn arn(&self) -> &str {
            "arn:aws:lambda:us-east-1:000000000000:function:test"
        }
        async fn next_job(&self, _worker: u64) -> Option<Invocation> {
            self.waiting.fetch_add(1, Ordering::AcqRel);
            self.release.notified().await;
            *self.taken.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            Some(Invocation {
                request_id: "r1".into(),
                payload: Bytes::from_static(b"{}"),
                deadline_ms: 0,
                trace_id: "t".into(),
            })
        }
        fn complete(&self, _: u64, _: &str, _: Result<Bytes, FunctionError>) -> bool {
            true
        }
        fn fail_queued(&self, _: &FunctionError) {}
    }

    const ADDR: &str = "127.0.0.1:40123";

    fn request(method: &str, path: &str, host: Option<&str>) -> Request {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        builder.body(Body::empty()).expect("request")
    }

    async fn error_type(response: Response) -> (StatusCode, String) {
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, value["errorType"].as_str().unwrap_or("").to_owned())
    }

    #[tokio::test]
    async fn a_host_other_than_the_runtime_api_address_is_403() {
        let queue = Arc::new(OneJob::default());
        let app = router(queue.clone(), 1, ADDR.parse().expect("addr"));
        let init = "/2018-06-01/runtime/init/error";
        for host in [
            Some("evil.example:40123"),
            Some("127.0.0.1:40124"),
            Some("127.0.0.1"),
            Some("localhost"),
            Some("0.0.0.0:40123"),
            None,
        ] {
            let answer = app.clone().oneshot(request("POST", init, host)).await;
            let (status, kind) = error_type(answer.expect("served")).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{host:?}");
            assert_eq!(kind, "Runtime.InvalidHost");
        }
        // An absolute URI naming another authority is refused too, whatever the header says.
        let absolute = request(
            "POST",
            "http://evil.example:40123/2018-06-01/runtime/init/error",
            Some(ADDR),
        );
        let (status, _) = error_type(app.clone().oneshot(absolute).await.expect("served")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        for host in [ADDR, "localhost:40123", "LocalHost:40123"] {
            let answer = app.clone().oneshot(request("POST", init, Some(host))).await;
            assert_eq!(
                answer.expect("served").status(),
                StatusCode::ACCEPTED,
                "{host}"
            );
        }
    }

    #[tokio::test]
    async fn a_second_concurrent_next_is_409_and_takes_nothing() {
        let queue = Arc::new(OneJob::default());
        let app = router(queue.clone(), 1, ADDR.parse().expect("addr"));
        let path = "/2018-06-01/runtime/invocation/next";
        let first = tokio::spawn(app.clone().oneshot(request("GET", path, Some(ADDR))));
        // Let the first one start waiting.
        while queue.waiting.load(Ordering::Acquire) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let second = app.clone().oneshot(request("GET", path, Some(ADDR))).await;
        let (status, kind) = error_type(second.expect("served")).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(kind, "Runtime.ConcurrentNext");
        queue.release.notify_one();
        let first = first.await.expect("task").expect("served");
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(*queue.taken.lock().unwrap_or_else(|e| e.into_inner()), 1);
        // Once it is answered, the process may ask again.
        let again = tokio::spawn(app.clone().oneshot(request("GET", path, Some(ADDR))));
        queue.release.notify_one();
        assert_eq!(
            again.await.expect("task").expect("served").status(),
            StatusCode::OK
        );
    }
}
