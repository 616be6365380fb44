//! `GET /metrics`: the gateway's counters in Prometheus' text format (OpenMetrics when the
//! scraper asks for it in `Accept`), with the gauges read at the moment of the scrape.

use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};

use crate::directory::Directory;
use crate::metrics::{Metrics, Snapshot};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) async fn run(directory: &Directory, metrics: &Metrics, parts: &Parts) -> Response {
    let openmetrics = parts
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let hub = directory.hub();
    let mut now = Snapshot {
        connections: hub.len(),
        overflows: hub.overflows.counts(),
        ..Snapshot::default()
    };
    if let Some(cluster) = directory.cluster() {
        now.cluster_nodes = cluster.live_nodes().await;
        now.redis_errors = cluster.redis_errors();
    }
    let text = metrics.render(&now, openmetrics);
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = StatusCode::OK;
    let kind = if openmetrics { OPENMETRICS } else { PROMETHEUS };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    response
}
