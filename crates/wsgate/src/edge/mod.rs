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

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// `gateway.listen`: upgrades, and the management API unless `management.listen` is set.
    Public,
    /// `management.listen`: the management API only.
    Management,
}

/// The router of a listener: everything goes through [`dispatch`].
pub fn router(shared: Arc<Shared>, port: Port) -> Router {
    Router::new().fallback(dispatch).with_state((shared, port))
}

async fn dispatch(
    State((shared, port)): State<(Arc<Shared>, Port)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response {
    let runtime = shared.runtime.load_full();
    // The client: the TCP peer, or whom a trusted proxy's `X-Forwarded-For` names.
    let client = runtime.trusted_proxies.client(
        peer.ip(),
        request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .map(|value| value.as_bytes()),
    );
    let stage = runtime.config.gateway.stage.as_str();
    let path = request.uri().path();
    let management_here = match port {
        Port::Management => true,
        Port::Public => shared.management_addr.is_none(),
    };
    if let Some(target) = mgmt::Target::parse(path, stage) {
        if !management_here {
            return mgmt::error_response(&MgmtError::Forbidden);
        }
        return mgmt::handle(&shared, &runtime, target, client, request).await;
    }
    if port == Port::Management {
        return mgmt::error_response(&MgmtError::Forbidden);
    }
    let on_stage = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix('/').or(Some(p)))
        == Some(stage);
    if on_stage {
        return upgrade::handle(shared, runtime, peer, client, request).await;
    }
    // API Gateway answers paths outside the stage with 403 Forbidden.
    mgmt::error_response(&MgmtError::Forbidden)
}
