//! `GET @console/overview`: what the web console shows besides the connections — this node's
//! counts and running totals, the routes with their integrations, the functions with their
//! processes, and the latest integration failures. The console computes rates from the totals.

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};
use wsgate_core::config::{Integration, ManagementAuth};

use super::reply;
use crate::directory::Directory;
use crate::metrics::Metrics;
use crate::state::Deployment;

pub(super) fn run(directory: &Directory, metrics: &Metrics, deployment: &Deployment) -> Response {
    let config = &deployment.config;
    let mut routes: Vec<Value> = deployment
        .routes
        .values()
        .map(|entry| {
            let key = entry.key.as_str();
            let integration = config
                .routes
                .get(key)
                .and_then(|route| route.integration.as_ref())
                .map_or(json!({"type": "none"}), |integration| {
                    describe(integration, entry.integration.echoes())
                });
            json!({
                "key": key,
                "integration": integration,
                "routeResponse": entry.route_response,
                "messages": entry.meter.messages.get(),
                "errors": entry.meter.errors.iter().map(|c| c.get()).sum::<u64>(),
            })
        })
        .collect();
    routes.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    let functions: Vec<Value> = config
        .functions
        .iter()
        .map(|(name, function)| {
            let [invocations, cold_starts, errors, processes] = metrics.function_counts(name);
            json!({
                "name": name,
                "runtime": format!("{:?}", function.runtime).to_lowercase(),
                "handler": function.handler,
                "processes": processes,
                "maxConcurrency": function.max_concurrency,
                "invocations": invocations,
                "coldStarts": cold_starts,
                "errors": errors,
            })
        })
        .collect();
    let auth = match config.management.auth {
        ManagementAuth::None => "none",
        ManagementAuth::Token => "token",
        ManagementAuth::Sigv4 => "sigv4",
    };
    let body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "stage": config.gateway.stage,
        "node": directory.cluster().map(|c| c.name().to_owned()),
        "auth": auth,
        "connections": directory.hub().len(),
        "totals": metrics.totals(),
        "routes": routes,
        "functions": functions,
        "recentErrors": metrics.recent_errors(),
    });
    reply::ok(StatusCode::OK, Some(body.to_string()))
}

/// An integration as the console lists it (`echoes`: a mock that answers the message itself); an
/// HTTP backend's URL without its credentials and query, which may hold secrets.
fn describe(integration: &Integration, echoes: bool) -> Value {
    match integration {
        Integration::Http { url, timeout, .. } => {
            let shown = reqwest::Url::parse(url).map_or_else(
                |_| String::from("(invalid URL)"),
                |u| {
                    format!(
                        "{}://{}{}",
                        u.scheme(),
                        u.host_str().unwrap_or_default(),
                        u.port().map(|p| format!(":{p}")).unwrap_or_default()
                    ) + u.path()
                },
            );
            json!({"type": "http", "url": shown, "timeoutMs": timeout.map(|t| t.as_millis() as u64)})
        }
        Integration::Function { function, .. } => json!({"type": "function", "function": function}),
        Integration::Mock { status, .. } => {
            json!({"type": "mock", "status": status, "echo": echoes})
        }
    }
}
