//! What an operator's tools read besides the management API: `GET /healthz` and `GET /readyz`
//! for load balancers and orchestrators (on every listener, no credential: they tell nothing
//! but the state), and the web console's page, `GET /@console` (on the management listener;
//! the page holds no data — it asks the management API, with the operator's credential).
//! `GET /metrics` and the console's data are management operations (`mgmt`).

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};

use crate::handoff::Phase;
use crate::state::EdgeServices;

/// The console: one HTML file with its script and style inline, nothing fetched from elsewhere.
const CONSOLE: &str = include_str!("console.html");

/// The paths served here, whatever the stage.
pub const HEALTHZ: &str = "/healthz";
/// See [`HEALTHZ`].
pub const READYZ: &str = "/readyz";
/// See [`HEALTHZ`].
pub const CONSOLE_PATH: &str = "/@console";

/// What a path is, if it is one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// `/healthz`.
    Health,
    /// `/readyz`.
    Ready,
    /// `/@console` (or `/{stage}/@console`).
    Console,
}

impl Page {
    /// Which page `path` asks for under `stage`.
    pub fn of(path: &str, stage: &str) -> Option<Self> {
        let console = |p: &str| p == CONSOLE_PATH || p == "/@console/";
        match path {
            HEALTHZ => Some(Self::Health),
            READYZ => Some(Self::Ready),
            p if console(p) => Some(Self::Console),
            p => p
                .strip_prefix('/')
                .and_then(|p| p.strip_prefix(stage))
                .filter(|rest| console(rest))
                .map(|_| Self::Console),
        }
    }
}

/// Answers `page`; only `GET` and `HEAD`.
pub fn serve(edge: &EdgeServices, page: Page, method: &Method) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    match page {
        Page::Health => text(StatusCode::OK, "ok\n"),
        Page::Ready => match not_ready(edge) {
            None => text(StatusCode::OK, "ready\n"),
            Some(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
        },
        Page::Console => {
            let mut response = text(StatusCode::OK, CONSOLE);
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            // Everything is inline; nothing may be loaded from elsewhere, and no other site
            // may frame the page.
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                     connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                ),
            );
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            response
        }
    }
}

/// Why the gateway should not be sent new connections now; `None` when it should.
fn not_ready(edge: &EdgeServices) -> Option<&'static str> {
    let lifecycle = &edge.sessions.lifecycle;
    if lifecycle.draining.is_cancelled() || lifecycle.stopping.is_cancelled() {
        return Some("draining: the gateway is shutting down\n");
    }
    if *edge.sessions.handoff.phase().borrow() == Phase::Moved {
        return Some("draining: the connections moved to a new process\n");
    }
    match edge.management.directory.cluster() {
        Some(cluster) if !cluster.redis_up() => Some("the cluster's Redis does not answer\n"),
        _ => None,
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
