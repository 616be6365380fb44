//! The WebSocket handshake: check the upgrade request, run `$connect`, and answer 101 (with the
//! subprotocol `$connect` chose, and nothing else of its headers) or the status it refused with.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::{Instrument, debug, info_span, warn};
use wsgate_core::clock;
use wsgate_core::config::Limits;
use wsgate_core::event::{
    self, ConnectionContext, ContextVars, Invocation, UpgradeRequest, canonical_header_name,
};
use wsgate_core::id::{ConnectionId, random_id};
use wsgate_core::query;
use wsgate_core::route::RouteKey;

use super::listener::Secure;
use super::session;
use crate::auth::authorizer::{Attempt, Verdict};
use crate::gateway::{Runtime, Shared};
use crate::hub::{self, SessionHandle};
use crate::integration::IntegrationError;
use crate::limits::Refusal;

const SEC_WEBSOCKET_PROTOCOL: &str = "sec-websocket-protocol";

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}

fn too_many(text: &'static str) -> Response {
    let mut response = plain(StatusCode::TOO_MANY_REQUESTS, text);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Whether a browser's `Origin` may upgrade: any when none are configured or `*` is.
fn origin_allowed(allowed: &[String], origin: &[u8]) -> bool {
    allowed.is_empty()
        || allowed
            .iter()
            .any(|a| a == "*" || a.as_bytes().eq_ignore_ascii_case(origin))
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The socket settings for one session: a small read buffer (tungstenite's default would cost
/// 128 KiB per idle connection), eager writes, and API Gateway's frame and message limits.
pub(crate) fn socket_config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(limits.read_buffer_bytes)
        .write_buffer_size(0)
        .max_write_buffer_size(limits.outbox_bytes.saturating_add(64 * 1024))
        .max_frame_size(Some(limits.max_frame_bytes))
        .max_message_size(Some(limits.max_message_bytes))
}

fn upgrade_request(request: &Request<Body>, peer: SocketAddr, local: SocketAddr) -> UpgradeRequest {
    let mut headers = Vec::with_capacity(request.headers().len() + 4);
    let mut forwarded_for = None;
    for (name, value) in request.headers() {
        // Captured $connect events carry neither Connection nor Upgrade.
        if name == header::CONNECTION || name == header::UPGRADE {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name.as_str() == "x-forwarded-for" {
            forwarded_for = Some(value);
            continue;
        }
        headers.push((canonical_header_name(name.as_str()), value));
    }
    let chain = match forwarded_for {
        Some(earlier) => format!("{earlier}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if !request.headers().contains_key("x-amzn-trace-id") {
        let seconds = clock::now_ms() / 1000;
        let random: [u8; 12] = rand::random();
        headers.push((
            "X-Amzn-Trace-Id".into(),
            format!("Root=1-{seconds:08x}-{}", hex::encode(random)),
        ));
    }
    headers.push(("X-Forwarded-For".into(), chain));
    headers.push(("X-Forwarded-Port".into(), local.port().to_string()));
    let secure = request.extensions().get::<Secure>().is_some_and(|s| s.0);
    headers.push((
        "X-Forwarded-Proto".into(),
        if secure { "https" } else { "http" }.into(),
    ));
    let query = request
        .uri()
        .query()
        .filter(|q| !q.is_empty())
        .map(query::pairs);
    UpgradeRequest { headers, query }
}

/// Handles `GET /{stage}` from `peer`, on behalf of `client` (the peer, or whom a trusted proxy
/// forwarded): the per-address limits and `identity.sourceIp` are the client's.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    runtime: Arc<Runtime>,
    peer: SocketAddr,
    client: IpAddr,
    mut request: Request<Body>,
) -> Response {
    if shared.shutdown.is_cancelled() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    }
    let headers = request.headers();
    if !has_token(headers, header::UPGRADE, "websocket") {
        let mut response = plain(StatusCode::UPGRADE_REQUIRED, "Upgrade Required");
        response
            .headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return response;
    }
    if request.method() != http::Method::GET || !has_token(headers, header::CONNECTION, "upgrade") {
        return plain(
            StatusCode::BAD_REQUEST,
            "Bad Request: not a WebSocket upgrade",
        );
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut response = plain(
            StatusCode::UPGRADE_REQUIRED,
            "Upgrade Required: Sec-WebSocket-Version 13",
        );
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "Bad Request: missing Sec-WebSocket-Key",
        );
    };
    let accept = derive_accept_key(key.as_bytes());

    let config = &runtime.config;
    // Browsers say where the page came from; other clients send no Origin and are not limited.
    if let Some(origin) = headers.get(header::ORIGIN)
        && !origin_allowed(&config.gateway.allowed_origins, origin.as_bytes())
    {
        debug!(origin = %String::from_utf8_lossy(origin.as_bytes()), "origin not allowed: 403");
        return plain(StatusCode::FORBIDDEN, "Forbidden: origin not allowed");
    }
    let limits = &config.limits;
    if !shared
        .connect_rate
        .allow(&client, limits.new_connections_per_ip_per_second)
    {
        return too_many("Too Many Requests: new_connections_per_ip_per_second");
    }
    let admission = match shared.connections.admit(
        client,
        limits.max_connections,
        limits.max_connections_per_ip,
    ) {
        Ok(admission) => admission,
        Err(Refusal::Full) => {
            warn!(
                open = shared.connections.open(),
                "max_connections reached: 503"
            );
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable: max_connections",
            );
        }
        Err(Refusal::PerIp) => {
            return too_many("Too Many Requests: max_connections_per_ip");
        }
    };
    let domain_name = config
        .gateway
        .domain_name
        .clone()
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| shared.local_addr.to_string());
    let user_agent = headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut ctx = ConnectionContext {
        connection_id: ConnectionId::generate(shared.node_id),
        connected_at: clock::now_ms(),
        source_ip: client.to_string(),
        user_agent,
        domain_name,
        stage: config.gateway.stage.clone(),
        api_id: config.gateway.api_id.clone(),
        authorizer: None,
    };
    let span = info_span!("connection", connection_id = %ctx.connection_id);

    let mut upgrade = None;
    let mut protocol = None;
    let mut user = None;
    if let Some(authorizer) = &runtime.authorizer {
        let request_id = random_id();
        let invocation = Invocation {
            request_id: &request_id,
            time_ms: clock::now_ms(),
        };
        let query = request.uri().query().map(query::pairs).unwrap_or_default();
        let upgrade = upgrade.insert(upgrade_request(&request, peer, shared.local_addr));
        let attempt = Attempt {
            headers: request.headers(),
            query: &query,
            ctx: &ctx,
            upgrade,
            invocation: &invocation,
        };
        match authorizer
            .authorize(&attempt)
            .instrument(span.clone())
            .await
        {
            Verdict::Allow {
                allowed,
                protocol: chosen,
            } => {
                protocol = chosen.and_then(|p| HeaderValue::from_str(&p).ok());
                user = Some(allowed.principal_id);
                ctx.authorizer = Some(allowed.context);
            }
            Verdict::Refuse(status) => {
                debug!(parent: &span, %status, "the authorizer refused the connection");
                let text = match status {
                    StatusCode::UNAUTHORIZED => "Unauthorized",
                    StatusCode::FORBIDDEN => "Forbidden",
                    _ => "Internal Server Error",
                };
                return plain(status, text);
            }
        }
    }

    let mut connect_result = None;
    if let Some(route) = runtime.routes.get(RouteKey::CONNECT) {
        let request_id = random_id();
        let invocation = Invocation {
            request_id: &request_id,
            time_ms: clock::now_ms(),
        };
        let event = if route.integration.needs_event() {
            let upgrade =
                upgrade.get_or_insert_with(|| upgrade_request(&request, peer, shared.local_addr));
            event::connect(&ctx, &invocation, upgrade)
        } else {
            Vec::new()
        };
        let vars = ContextVars {
            ctx: &ctx,
            invocation: &invocation,
            route_key: RouteKey::CONNECT,
            event_type: "CONNECT",
            message_id: None,
        };
        let outcome = match route.integration.answer_now(None, &vars) {
            Some(answer) => Ok(answer),
            None => {
                route
                    .integration
                    .invoke(event)
                    .instrument(span.clone())
                    .await
            }
        };
        match outcome {
            Ok(result) if result.is_success() => {
                if let Some(chosen) = result
                    .header(SEC_WEBSOCKET_PROTOCOL)
                    .and_then(|p| HeaderValue::from_str(p).ok())
                {
                    protocol = Some(chosen);
                }
                connect_result = Some(result);
            }
            Ok(result) => {
                debug!(parent: &span, status = result.status, "$connect refused the connection");
                let mut response = Response::new(Body::empty());
                *response.status_mut() =
                    StatusCode::from_u16(result.status).unwrap_or(StatusCode::FORBIDDEN);
                return response;
            }
            Err(IntegrationError::Timeout(after)) => {
                warn!(parent: &span, ?after, "$connect integration timed out");
                return plain(StatusCode::GATEWAY_TIMEOUT, "Endpoint request timed out");
            }
            Err(error) => {
                warn!(parent: &span, %error, "$connect integration failed");
                return plain(StatusCode::BAD_GATEWAY, "Bad Gateway");
            }
        }
    }

    // The connection exists from now on, as on API Gateway once `$connect` returned: a backend
    // told of it may POST before the client has even read the 101, and the POST is queued.
    let (outbox, inbox) = hub::outbox(config.limits.outbox_bytes);
    let handle = Arc::new(SessionHandle::new(Arc::new(ctx), outbox));
    shared.hub.insert(handle.clone());
    // The authorizer's principal is the connection's user (when it is a valid name) ...
    if let Some(user) = user.filter(|u| query::valid_name(u)) {
        let _ = shared.hub.set_user(&handle.ctx.connection_id, Some(&user));
    }
    // ... unless `"wsgate": {"join": [...], "user": "..."}` in the $connect result says otherwise.
    if let Some(result) = &connect_result {
        session::apply_directives(&shared.hub, &handle.ctx, result);
    }
    let on_upgrade = hyper::upgrade::on(&mut request);
    let socket_config = socket_config(&config.limits);
    let limits = config.limits.clone();
    let session_shared = shared.clone();
    shared.tracker.spawn(
        async move {
            // The connection counts against the limits until its session is over.
            let _admission = admission;
            match on_upgrade.await {
                Ok(upgraded) => {
                    let ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(socket_config),
                    )
                    .await;
                    session::run(session_shared, handle, inbox, limits, ws).await;
                }
                Err(error) => {
                    debug!(connection_id = %handle.ctx.connection_id, %error, "upgrade did not complete");
                    session_shared.hub.remove(&handle.ctx.connection_id);
                    Box::pin(session::disconnect(&session_shared, &handle.ctx, 1006, session::ABNORMAL))
                        .await;
                }
            }
        },
        // No span around the session: a span lives in the subscriber's registry for as long
        // as the connection, which idle connections would pay for. Events carry the id.
    );

    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
}
