//! The edge: the one HTTP listener that serves WebSocket upgrades at `/{stage}` and the
//! management API at `/{stage}/@connections/{id}`, as API Gateway does on one host.

mod adopt;
pub mod listener;
mod restore;
pub(crate) mod session;
pub mod tap;
mod upgrade;

pub(crate) use self::adopt::{Arrival, adopt};
pub(crate) use self::restore::{restore, take_in};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use wsgate_core::error::MgmtError;

use crate::admin;
use crate::handoff::Phase;
use crate::mgmt;
use crate::state::EdgeServices;

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// `gateway.listen`: upgrades, and the management API unless `management.listen` is set.
    Public,
    /// `management.listen`: the management API only.
    Management,
}

/// The router of a listener: everything goes through [`dispatch`].
pub fn router(edge: Arc<EdgeServices>, port: Port) -> Router {
    Router::new().fallback(dispatch).with_state((edge, port))
}

async fn dispatch(
    State((edge, port)): State<(Arc<EdgeServices>, Port)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response {
    // Health answers at once, whatever the phase; the console only where management is served.
    let page = admin::Page::of(
        request.uri().path(),
        &edge.deployment().config.gateway.stage,
    );
    if let Some(page) = page {
        let here = port == Port::Management || edge.management_addr.is_none();
        if page == admin::Page::Console && !here {
            return mgmt::error_response(&MgmtError::Forbidden);
        }
        return admin::serve(&edge, page, request.method());
    }
    if let Some(refused) = while_handing_over(&edge).await {
        return refused;
    }
    let deployment = edge.deployment();
    // The client: the TCP peer, or whom a trusted proxy's `X-Forwarded-For` names.
    let client = deployment.trusted_proxies.client(
        peer.ip(),
        request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .map(|value| value.as_bytes()),
    );
    let stage = deployment.config.gateway.stage.as_str();
    let path = request.uri().path();
    let management_here = match port {
        Port::Management => true,
        Port::Public => edge.management_addr.is_none(),
    };
    if let Some(target) = mgmt::Target::parse(path, stage) {
        if !management_here {
            return mgmt::error_response(&MgmtError::Forbidden);
        }
        return mgmt::handle(&edge.management, &deployment, target, client, request).await;
    }
    if port == Port::Management {
        return mgmt::error_response(&MgmtError::Forbidden);
    }
    let on_stage = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix('/').or(Some(p)))
        == Some(stage);
    if on_stage {
        return upgrade::handle(edge, deployment, peer, client, request).await;
    }
    // API Gateway answers paths outside the stage with 403 Forbidden.
    mgmt::error_response(&MgmtError::Forbidden)
}

/// While the connections move to a new process (`kill -USR2`), a request waits: a call that
/// changed a connection now would be missing from what moved. Once they have moved, a request
/// that still reaches this process (on a kept-alive connection) is answered 503 with
/// `Connection: close`; clients (boto3 included) retry it, on a new connection, with the new one.
async fn while_handing_over(edge: &EdgeServices) -> Option<Response> {
    let mut phase = edge.sessions.handoff.phase();
    let now = *phase.wait_for(|p| *p != Phase::Handing).await.ok()?;
    if now != Phase::Moved {
        return None;
    }
    let mut response = mgmt::error_response(&MgmtError::ServiceUnavailable(
        "this gateway process has handed its connections to a new one: retry".into(),
    ));
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    Some(response)
}
