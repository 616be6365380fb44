//! The edge: the one HTTP listener that serves WebSocket upgrades at `/{stage}` and the
//! management API at `/{stage}/@connections/{id}`, as API Gateway does on one host.

pub mod listener;
mod session;
pub mod tls;
mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use wsgate_core::error::MgmtError;

use crate::gateway::Shared;
use crate::mgmt;

/// The router of the listener: everything goes through [`dispatch`].
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(dispatch).with_state(shared)
}

async fn dispatch(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response {
    let runtime = shared.runtime.load_full();
    let stage = runtime.config.gateway.stage.as_str();
    let path = request.uri().path();
    if let Some(target) = mgmt::Target::parse(path, stage) {
        return mgmt::handle(&shared, &runtime, target, request).await;
    }
    let on_stage = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix('/').or(Some(p)))
        == Some(stage);
    if on_stage {
        return upgrade::handle(shared, runtime, peer, request).await;
    }
    // API Gateway answers paths outside the stage with 403 Forbidden.
    mgmt::error_response(&MgmtError::Forbidden)
}
