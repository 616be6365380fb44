//! The WebSocket handshake, in named stages: check the upgrade request, admit it within the
//! connection limits, run the authorizer and `$connect`, register the connection, and answer 101
//! (with the subprotocol `$connect` chose, and nothing else of its headers). Any stage may refuse;
//! a [`Refusal`] is its HTTP response.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures_util::StreamExt;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::{Instrument, debug, info, info_span, warn};
use wsgate_core::clock;
use wsgate_core::event::{
    self, ConnectionContext, ContextVars, Invocation, UpgradeRequest, canonical_header_name,
};
use wsgate_core::id::{ConnectionId, random_id};
use wsgate_core::proxy::ProxyResult;
use wsgate_core::query;
use wsgate_core::route::RouteKey;

use super::listener::Secure;
use super::session::{self, SessionLimits};
use super::tap::{Tap, socket_config};
use crate::auth::authorizer::{Attempt, Verdict};
use crate::cluster::{Cluster, Found};
use crate::hub::{self, SessionHandle};
use crate::integration::IntegrationError;
use crate::limits::{self, Admission};
use crate::metrics::ConnectResult;
use crate::resume::{self, Knock, Replay, Resume, Resumes};
use crate::state::{Deployment, EdgeServices, SessionServices};

const SEC_WEBSOCKET_PROTOCOL: &str = "sec-websocket-protocol";

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

fn upgrade_request(request: &Parts, peer: SocketAddr, local: SocketAddr) -> UpgradeRequest {
    let mut headers = Vec::with_capacity(request.headers.len() + 4);
    let mut forwarded_for = None;
    for (name, value) in &request.headers {
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
    if !request.headers.contains_key("x-amzn-trace-id") {
        let seconds = clock::now_ms() / 1000;
        let random: [u8; 12] = rand::random();
        headers.push((
            "X-Amzn-Trace-Id".into(),
            format!("Root=1-{seconds:08x}-{}", hex::encode(random)),
        ));
    }
    headers.push(("X-Forwarded-For".into(), chain));
    headers.push(("X-Forwarded-Port".into(), local.port().to_string()));
    let secure = request.extensions.get::<Secure>().is_some_and(|s| s.0);
    headers.push((
        "X-Forwarded-Proto".into(),
        if secure { "https" } else { "http" }.into(),
    ));
    let query = request
        .uri
        .query()
        .filter(|q| !q.is_empty())
        .map(query::pairs);
    UpgradeRequest { headers, query }
}

/// Why an upgrade was refused. Each refusal is its HTTP response ([`Refusal::response`]).
#[derive(Debug)]
enum Refusal {
    /// The gateway is stopping: 503.
    ShuttingDown,
    /// No `Upgrade: websocket`: 426, naming the protocol.
    NotAnUpgrade,
    /// Not a `GET` with `Connection: upgrade`: 400.
    NotWebSocket,
    /// Not `Sec-WebSocket-Version: 13`: 426, naming the version.
    Version,
    /// No `Sec-WebSocket-Key`: 400.
    MissingKey,
    /// A browser's `Origin` outside `gateway.allowed_origins`: 403.
    Origin,
    /// A per-address limit: 429 with `Retry-After`, naming the setting.
    TooMany(&'static str),
    /// `limits.max_connections`: 503.
    Full,
    /// The authorizer refused: its status (401, 403 or 500).
    Authorizer(StatusCode),
    /// `$connect` answered a non-2xx status: that status, with no body.
    Connect(u16),
    /// `$connect`'s integration failed: 504 on a timeout, else 502.
    Integration(IntegrationError),
}

impl Refusal {
    /// How the refusal is counted in `wsgate_connects_total`.
    fn result(&self) -> ConnectResult {
        match self {
            Self::ShuttingDown | Self::TooMany(_) | Self::Full => ConnectResult::limited,
            Self::NotAnUpgrade | Self::NotWebSocket | Self::Version | Self::MissingKey => {
                ConnectResult::invalid
            }
            Self::Origin => ConnectResult::unauthorized,
            Self::Authorizer(status) if status.is_client_error() => ConnectResult::unauthorized,
            Self::Authorizer(_) | Self::Integration(_) => ConnectResult::error,
            Self::Connect(_) => ConnectResult::refused,
        }
    }

    fn response(self) -> Response {
        let mut extra = None;
        let (status, text) = match self {
            Self::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
            Self::NotAnUpgrade => {
                extra = Some((header::UPGRADE, "websocket"));
                (StatusCode::UPGRADE_REQUIRED, "Upgrade Required")
            }
            Self::NotWebSocket => (
                StatusCode::BAD_REQUEST,
                "Bad Request: not a WebSocket upgrade",
            ),
            Self::Version => {
                extra = Some((header::SEC_WEBSOCKET_VERSION, "13"));
                (
                    StatusCode::UPGRADE_REQUIRED,
                    "Upgrade Required: Sec-WebSocket-Version 13",
                )
            }
            Self::MissingKey => (
                StatusCode::BAD_REQUEST,
                "Bad Request: missing Sec-WebSocket-Key",
            ),
            Self::Origin => (StatusCode::FORBIDDEN, "Forbidden: origin not allowed"),
            Self::TooMany(text) => {
                extra = Some((header::RETRY_AFTER, "1"));
                (StatusCode::TOO_MANY_REQUESTS, text)
            }
            Self::Full => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable: max_connections",
            ),
            Self::Authorizer(status) => match status {
                StatusCode::UNAUTHORIZED => (status, "Unauthorized"),
                StatusCode::FORBIDDEN => (status, "Forbidden"),
                _ => (status, "Internal Server Error"),
            },
            // API Gateway passes the status on and nothing else.
            Self::Connect(status) => (
                StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
                "",
            ),
            Self::Integration(error) => error.connect_refusal(),
        };
        let mut response = Response::new(Body::from(text));
        *response.status_mut() = status;
        if let Some((name, value)) = extra {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

/// Handles `GET /{stage}` from `peer`, on behalf of `client` (the peer, or whom a trusted proxy
/// forwarded): the per-address limits and `identity.sourceIp` are the client's.
pub(crate) async fn handle(
    edge: Arc<EdgeServices>,
    deployment: Arc<Deployment>,
    peer: SocketAddr,
    client: IpAddr,
    request: Request<Body>,
) -> Response {
    // Shutdown waits for every handshake that holds a token; one that starts after the gateway
    // began stopping is refused (the token is taken before the check, so none slips between).
    let _handshake = edge.sessions.lifecycle.tasks.token();
    let metrics = &edge.sessions.metrics;
    let outcome = match edge.sessions.lifecycle.stopping.is_cancelled() {
        true => Err(Refusal::ShuttingDown),
        false => upgrade(&edge, &deployment, peer, client, request).await,
    };
    match outcome {
        Ok((response, result)) => {
            metrics.connect(result);
            response
        }
        Err(refusal) => {
            metrics.connect(refusal.result());
            refusal.response()
        }
    }
}

/// The stages, in order; each refusal is answered as its response.
async fn upgrade(
    edge: &Arc<EdgeServices>,
    deployment: &Deployment,
    peer: SocketAddr,
    client: IpAddr,
    mut request: Request<Body>,
) -> Result<(Response, ConnectResult), Refusal> {
    // Taken first, so that what follows holds only the request's head (which is `Sync`) across
    // its awaits; dropped unused when the upgrade is refused.
    let on_upgrade = hyper::upgrade::on(&mut request);
    let (request, _) = request.into_parts();
    let accept = check_handshake(&request)?;
    check_origin(deployment, &request.headers)?;
    let admission = admit(edge, deployment, client)?;
    let resumable = !deployment.config.limits.resume_window.is_zero()
        && has_token(
            &request.headers,
            header::SEC_WEBSOCKET_PROTOCOL,
            resume::SUBPROTOCOL,
        );
    if resumable && let Some(asked) = resume_asked(&request) {
        // A resume runs neither the authorizer nor `$connect`: the connection never left.
        hand_over(edge, asked, on_upgrade);
        let response =
            switching_protocols(&accept, Some(HeaderValue::from_static(resume::SUBPROTOCOL)));
        return Ok((response, ConnectResult::resumed));
    }
    let mut ctx = connection_context(edge, deployment, &request.headers, client);
    let span = info_span!("connection", connection_id = %ctx.connection_id);
    let mut upgrade = None;
    let mut authorized = Authorized::default();
    if let Some(authorizer) = &deployment.authorizer {
        let event = upgrade.insert(upgrade_request(&request, peer, edge.local_addr));
        authorized = authorize(authorizer, &request, &mut ctx, event)
            .instrument(span.clone())
            .await?;
    }
    let connected = run_connect(
        deployment,
        &ctx,
        &mut upgrade,
        &request,
        peer,
        edge.local_addr,
    )
    .instrument(span.clone())
    .await?;
    // `$connect` or the authorizer may choose the subprotocol; else a resumable client gets its.
    let protocol = connected
        .as_ref()
        .and_then(|result| result.header(SEC_WEBSOCKET_PROTOCOL))
        .or(authorized.protocol.as_deref())
        .or(resumable.then_some(resume::SUBPROTOCOL))
        .and_then(|p| HeaderValue::from_str(p).ok());
    let reliable = resumable && protocol.as_ref().is_some_and(|p| p == resume::SUBPROTOCOL);
    register(
        edge,
        deployment,
        Registration {
            ctx,
            user: authorized.user,
            connected,
            admission,
            on_upgrade,
            reliable,
        },
    );
    Ok((
        switching_protocols(&accept, protocol),
        ConnectResult::accepted,
    ))
}

/// A WebSocket upgrade request, by RFC 6455; the `Sec-WebSocket-Accept` it is answered with.
fn check_handshake(request: &Parts) -> Result<String, Refusal> {
    let headers = &request.headers;
    if !has_token(headers, header::UPGRADE, "websocket") {
        return Err(Refusal::NotAnUpgrade);
    }
    if request.method != http::Method::GET || !has_token(headers, header::CONNECTION, "upgrade") {
        return Err(Refusal::NotWebSocket);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(Refusal::Version);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(Refusal::MissingKey)?;
    Ok(derive_accept_key(key.as_bytes()))
}

/// Browsers say where the page came from; other clients send no Origin and are not limited.
fn check_origin(deployment: &Deployment, headers: &HeaderMap) -> Result<(), Refusal> {
    match headers.get(header::ORIGIN) {
        Some(origin)
            if !origin_allowed(
                &deployment.config.gateway.allowed_origins,
                origin.as_bytes(),
            ) =>
        {
            debug!(origin = %String::from_utf8_lossy(origin.as_bytes()), "origin not allowed: 403");
            Err(Refusal::Origin)
        }
        _ => Ok(()),
    }
}

/// The new-connection rate and the open-connection limits; the slot is held until the session
/// ends. Per-address limits are off under `wsgate dev` and, with `limits.exempt_loopback`, for
/// loopback clients (every client of a same-host proxy has the proxy's address).
fn admit(
    edge: &EdgeServices,
    deployment: &Deployment,
    client: IpAddr,
) -> Result<Admission, Refusal> {
    let limits = &deployment.config.limits;
    let exempt = edge.development || (limits.exempt_loopback && crate::limits::is_loopback(client));
    let (rate, per_ip) = match exempt {
        true => (0, 0),
        false => (
            limits.new_connections_per_ip_per_second,
            limits.max_connections_per_ip,
        ),
    };
    if !edge.connect_rate.allow(&client, rate) {
        refused_per_address(edge, client, "limits.new_connections_per_ip_per_second");
        return Err(Refusal::TooMany(
            "Too Many Requests: new_connections_per_ip_per_second",
        ));
    }
    edge.connections
        .admit(client, limits.max_connections, per_ip)
        .map_err(|refusal| match refusal {
            limits::Refusal::Full => {
                warn!(
                    open = edge.connections.open(),
                    "max_connections reached: 503"
                );
                Refusal::Full
            }
            limits::Refusal::PerIp => {
                refused_per_address(edge, client, "limits.max_connections_per_ip");
                Refusal::TooMany("Too Many Requests: max_connections_per_ip")
            }
        })
}

/// The first time a per-address limit refuses anyone, says which address and what to look at:
/// many users behind one proxy share its address unless the proxy is trusted.
fn refused_per_address(edge: &EdgeServices, client: IpAddr, setting: &'static str) {
    if edge.per_address_refused.first() {
        warn!(
            %client,
            setting,
            "a per-address limit refused {client} (logged once): if clients reach wsgate through \
             a proxy or load balancer, list it in gateway.trusted_proxies so each client is \
             counted by its own address; otherwise raise {setting}"
        );
    }
}

/// The new connection as events describe it; its id is drawn now, as on API Gateway.
fn connection_context(
    edge: &EdgeServices,
    deployment: &Deployment,
    headers: &HeaderMap,
    client: IpAddr,
) -> ConnectionContext {
    let gateway = &deployment.config.gateway;
    let domain_name = gateway
        .domain_name
        .clone()
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| edge.local_addr.to_string());
    let user_agent = headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    ConnectionContext {
        connection_id: ConnectionId::generate(edge.management.directory.node()),
        connected_at: clock::now_ms(),
        source_ip: client.to_string(),
        user_agent,
        domain_name,
        stage: gateway.stage.clone(),
        api_id: gateway.api_id.clone(),
        authorizer: None,
    }
}

/// What the authorizer allowed: the principal (the connection's user) and the subprotocol to
/// echo when the token came in `Sec-WebSocket-Protocol`.
#[derive(Debug, Default)]
struct Authorized {
    user: Option<String>,
    protocol: Option<String>,
}

/// Runs the `$connect` authorizer; its context goes into `ctx` for every later event.
async fn authorize(
    authorizer: &crate::auth::authorizer::Authorizer,
    request: &Parts,
    ctx: &mut ConnectionContext,
    upgrade: &UpgradeRequest,
) -> Result<Authorized, Refusal> {
    let request_id = random_id();
    let invocation = Invocation {
        request_id: &request_id,
        time_ms: clock::now_ms(),
    };
    let query = request.uri.query().map(query::pairs).unwrap_or_default();
    let attempt = Attempt {
        headers: &request.headers,
        query: &query,
        ctx,
        upgrade,
        invocation: &invocation,
    };
    match authorizer.authorize(&attempt).await {
        Verdict::Allow { allowed, protocol } => {
            ctx.authorizer = Some(allowed.context);
            Ok(Authorized {
                user: Some(allowed.principal_id),
                protocol,
            })
        }
        Verdict::Refuse(status) => {
            debug!(%status, "the authorizer refused the connection");
            Err(Refusal::Authorizer(status))
        }
    }
}

/// Calls `$connect`, if the API has one: its successful result (for the subprotocol and the
/// `"wsgate"` directives), or the refusal its status or failure makes.
async fn run_connect(
    deployment: &Deployment,
    ctx: &ConnectionContext,
    upgrade: &mut Option<UpgradeRequest>,
    request: &Parts,
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<Option<ProxyResult>, Refusal> {
    let Some(route) = deployment.routes.get(RouteKey::CONNECT) else {
        return Ok(None);
    };
    let request_id = random_id();
    let invocation = Invocation {
        request_id: &request_id,
        time_ms: clock::now_ms(),
    };
    let vars = ContextVars {
        ctx,
        invocation: &invocation,
        route_key: RouteKey::CONNECT,
        event_type: "CONNECT",
        message_id: None,
    };
    let outcome = match route.integration.answer_now(None, &vars) {
        Some(answer) => Ok(answer),
        None => {
            let upgrade = upgrade.get_or_insert_with(|| upgrade_request(request, peer, local));
            let event = event::connect(ctx, &invocation, upgrade);
            route.invoke(event).await
        }
    };
    match outcome {
        Ok(result) if result.is_success() => Ok(Some(result)),
        Ok(result) => {
            info!(connection_id = %ctx.connection_id, status = result.status, "refused: the $connect route answered a status other than 2xx");
            Err(Refusal::Connect(result.status))
        }
        Err(error) => {
            warn!(kind = error.kind(), %error, "$connect integration failed");
            Err(Refusal::Integration(error))
        }
    }
}

/// A connection `$connect` accepted, ready to be registered.
struct Registration {
    ctx: ConnectionContext,
    user: Option<String>,
    connected: Option<ProxyResult>,
    admission: Admission,
    on_upgrade: hyper::upgrade::OnUpgrade,
    /// The client chose `wsgate.reliable.v1`.
    reliable: bool,
}

/// The connection exists from now on, as on API Gateway once `$connect` returned: a backend
/// told of it may POST before the client has even read the 101, and the POST is queued. Its
/// session starts once the 101 is written.
fn register(edge: &Arc<EdgeServices>, deployment: &Deployment, registration: Registration) {
    let Registration {
        ctx,
        user,
        connected,
        admission,
        on_upgrade,
        reliable,
    } = registration;
    let limits = &deployment.config.limits;
    let services = edge.sessions.clone();
    let (outbox, inbox) = hub::outbox(limits.outbox_bytes);
    let handle = Arc::new(SessionHandle::new(Arc::new(ctx), outbox));
    services.hub.insert(handle.clone());
    // The authorizer's principal is the connection's user (when it is a valid name) ...
    if let Some(user) = user.filter(|u| query::valid_name(u)) {
        let _ = services
            .hub
            .set_user(&handle.ctx.connection_id, Some(&user));
    }
    // ... unless `"wsgate": {"join": [...], "user": "..."}` in the $connect result says otherwise.
    if let Some(result) = &connected {
        session::apply_directives(&services, &handle.ctx, result);
    }
    // A `"close"` too: the client reads the 101, then the close, as after a DELETE this early.
    // A browser sees a close code, where a refused upgrade shows it no status at all.
    if let Some(close) = connected.and_then(|r| r.directives?.close) {
        services.hub.close(&handle.ctx.connection_id, close);
    }
    let reliable = reliable.then(|| {
        let (sender, resumes) = mpsc::channel(1);
        let token = services
            .resumes
            .issue(handle.ctx.connection_id, sender.clone());
        Box::new(session::Reliable {
            resumes,
            sender,
            token,
            replay: Replay::default(),
        })
    });
    // What the session needs of the limits, boxed: what the task captures stays in its future
    // for as long as the connection lives, while what it takes out of the box is gone once the
    // session starts.
    let setup = Box::new(Setup {
        socket: socket_config(limits),
        session: SessionLimits::from(limits),
        read_size: limits.read_buffer_bytes,
    });
    let tasks = services.lifecycle.tasks.clone();
    // No span around the session: a span lives in the subscriber's registry for as long as the
    // connection, which idle connections would pay for. Events carry the id.
    tasks.spawn(async move {
        // The connection counts against the limits until its session is over.
        let _admission = &admission;
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    Tap::upgraded(
                        TokioIo::new(upgraded),
                        setup.read_size,
                        Some(handle.outbox.move_switch()),
                    ),
                    Role::Server,
                    Some(setup.socket),
                )
                .await;
                // Split here: a whole socket passed on would sit in the session's future
                // for as long as the connection lives.
                let (sink, stream) = ws.split();
                let start = session::Start::Live(sink, stream);
                session::run(services, handle, inbox, setup.session, start, reliable).await;
            }
            Err(error) => {
                debug!(connection_id = %handle.ctx.connection_id, %error, "upgrade did not complete");
                if let Some(reliable) = &reliable {
                    services.resumes.forget(&reliable.token);
                }
                services.hub.remove(&handle.ctx.connection_id);
                Box::pin(session::disconnect(
                    &services,
                    &handle.ctx,
                    1006,
                    session::ABNORMAL,
                ))
                .await;
            }
        }
    });
}

/// What a session's task takes from the limits when it starts.
struct Setup {
    /// The WebSocket settings.
    socket: WebSocketConfig,
    /// The limits the session reads.
    session: SessionLimits,
    /// `limits.read_buffer_bytes`.
    read_size: usize,
}

/// `?resume=TOKEN&seq=N` of a resume request: the token and the last seq the client got.
fn resume_asked(request: &Parts) -> Option<(String, u64)> {
    let pairs = query::pairs(request.uri.query()?);
    let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let token = get("resume")?;
    let seq = get("seq").and_then(|s| s.parse().ok()).unwrap_or(0);
    Some((token, seq))
}

/// Hands the upgraded socket of a resume to the suspended (or still connected) session its token
/// names — in a cluster, taken over from the node that holds it first; a token that names none
/// gets `resume-failed` and 4410. The resume's own admission ends here: the session holds the one
/// of its first connection.
fn hand_over(
    edge: &Arc<EdgeServices>,
    (token, seq): (String, u64),
    on_upgrade: hyper::upgrade::OnUpgrade,
) {
    let services = edge.sessions.clone();
    let cluster = edge.management.directory.cluster().cloned();
    let deployment = services.deployment.load();
    let limits = &deployment.config.limits;
    let (config, read_size) = (socket_config(limits), limits.read_buffer_bytes);
    services.lifecycle.tasks.clone().spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        // Its session is found below: it ties the socket to itself when it takes it.
        let tap = Tap::upgraded(TokioIo::new(upgraded), read_size, None);
        let socket = WebSocketStream::from_raw_socket(tap, Role::Server, Some(config)).await;
        let mut door = services.resumes.take(&token);
        if door.is_none()
            && let Some(cluster) = &cluster
        {
            door = Box::pin(take_from_cluster(&services, cluster, &token)).await;
        }
        let refused = match door {
            None => Some((socket, "unknown, used or expired resume token")),
            Some((id, session)) => {
                let knock = Box::new(Knock::Resume(Resume { socket, seq }));
                match session.send(knock).await {
                    Ok(()) => {
                        debug!(connection_id = %id, seq, "resume handed to its session");
                        None
                    }
                    Err(mpsc::error::SendError(knock)) => match *knock {
                        Knock::Resume(resume) => Some((resume.socket, "the connection has ended")),
                        Knock::Release(_) => None,
                    },
                }
            }
        };
        if let Some((socket, reason)) = refused {
            debug!(reason, "resume refused");
            Box::pin(session::refuse_resume(socket, reason)).await;
        }
    });
}

/// The session a token resumes, held by another node of the cluster (or kept in Redis, that node
/// being dead): taken in here, where its client resumes. A session a node has just taken from
/// Redis (reaping a dead node) is asked for again until that node has it in its hub, for at most
/// [`HELD_WAIT`].
async fn take_from_cluster(
    services: &Arc<SessionServices>,
    cluster: &Cluster,
    token: &str,
) -> Option<(ConnectionId, Resumes)> {
    let id = resume::connection_of(token)?;
    let deadline = tokio::time::Instant::now() + HELD_WAIT;
    loop {
        match cluster.take_session(id, token).await {
            Ok(Found::Taken(taken)) => {
                super::restore::take_in(services, *taken, "another node");
                if let Err(error) = cluster.holds(id).await {
                    warn!(connection_id = %id, %error, "a session taken from another node is not recorded as this node's");
                }
                return services.resumes.take(token);
            }
            Ok(Found::Held(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                // This node may be the one that took it (reaping): then it is on the desk now.
                if let Some(door) = services.resumes.take(token) {
                    return Some(door);
                }
            }
            Ok(_) => return None,
            Err(error) => {
                warn!(connection_id = %id, %error, "a resume could not take its session from the node that holds it");
                return None;
            }
        }
    }
}

/// How long a resume waits for a node that has just taken its session to have it.
const HELD_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The 101 answer.
fn switching_protocols(accept: &str, protocol: Option<HeaderValue>) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
}
