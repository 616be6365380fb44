//! Starting and stopping a gateway: binds the listeners, builds the first [`Deployment`], hands
//! each layer its services, reloads, and shuts down gracefully. Only `lib.rs` (and through it
//! `main.rs`) uses this module; everything it starts sits below it.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use wsgate_core::config::{
    Cluster as ClusterConfig, Config, ConfigError, ManagementAuth, Validated,
};

use crate::auth::replay::ReplayCache;
use crate::auth::sigv4::SigningKeys;
use crate::cluster::{Cluster, Reaped, Released};
use crate::directory::Directory;
use crate::edge;
use crate::edge::listener;
use crate::function::{self, FunctionHost, HostError, HostSettings};
use crate::hub::Hub;
use crate::limits::{self, ConnectionCount, FirstTime, RateLimiter};
use crate::metrics::Metrics;
use crate::relaunch::{self, Listening};
use crate::resume::{Desk, Knock};
use crate::saved;
use crate::state::{Deployment, EdgeServices, Lifecycle, ManagementServices, SessionServices};
use crate::tls::{Acceptor, DevTls};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is invalid.
    #[error("invalid config: {0}")]
    Config(#[from] ConfigError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// Local functions cannot be set up.
    #[error("{0}")]
    Functions(#[from] HostError),
    /// The cluster's Redis cannot be reached, or refused this node.
    #[error("cannot join the cluster: {0}")]
    Cluster(String),
    /// `gateway.state_dir` cannot be read.
    #[error("gateway.state_dir: {0}")]
    State(String),
    /// Taking over from the previous process (`kill -USR2`) failed.
    #[error("cannot take over from the previous process: {0}")]
    Handoff(String),
}

/// How a gateway runs beyond its config.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Restart a function's processes when its code changes (`wsgate dev`).
    pub watch_code: bool,
    /// Environment every function process gets (e.g. a CA bundle).
    pub function_env: Vec<(String, String)>,
    /// Serve TLS on the same port as plain HTTP, with a development CA the functions trust.
    pub tls: Option<DevTls>,
    /// `AWS_REGION` of the functions. Default: the environment's, else `us-east-1`.
    pub region: Option<String>,
    /// Local development (`wsgate dev`): per-address connection limits are off, and a
    /// `[gateway.tls]` listener serves plain HTTP too.
    pub development: bool,
}

impl Options {
    /// The functions' `AWS_REGION`: `gateway.region`, else [`Self::region`], else the
    /// environment's `AWS_REGION`, else `us-east-1`.
    pub fn functions_region(&self, config: &Config) -> String {
        config
            .gateway
            .region
            .clone()
            .or_else(|| self.region.clone())
            .or_else(|| std::env::var("AWS_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into())
    }
}

/// Starts gateways.
#[derive(Debug)]
pub struct Gateway;

/// A gateway that is serving.
#[derive(Debug)]
pub struct RunningGateway {
    edge: Arc<EdgeServices>,
    /// The pooled client for HTTP integrations, kept for reloads.
    client: reqwest::Client,
    /// Local functions' process pools.
    functions: FunctionHost,
    /// `AWS_REGION` of functions and of authorizers' `methodArn`.
    region: String,
    server: JoinHandle<()>,
    /// `gateway.listen` and `management.listen` as started: a reload cannot move the listeners.
    listen: (String, Option<String>),
    /// `[cluster]` as started: a reload cannot move the node to another cluster.
    cluster: Option<ClusterConfig>,
    /// The listening sockets, to hand to a new process (`kill -USR2`).
    listening: Listening,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), GatewayError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| GatewayError::Bind { addr, source })?;
    Ok((listener, local))
}

fn http_client() -> Result<reqwest::Client, GatewayError> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| GatewayError::Client(e.to_string()))
}

/// `addr` as a handler on this machine reaches it: a wildcard address becomes the loopback one.
fn loopback(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port()).to_string()
}

/// What a config builds before anything is served, besides its [`Deployment`]; `start` and
/// `check` build it the same way.
struct Prepared {
    client: reqwest::Client,
    functions: FunctionHost,
    region: String,
    metrics: Arc<Metrics>,
}

/// Sets up the functions (told where the management API is) and builds the deployment: TLS
/// files, authorizer keys, management tokens, integrations.
fn prepare(
    config: Config,
    validated: Validated,
    options: &Options,
    management_addr: SocketAddr,
) -> Result<(Prepared, Deployment), GatewayError> {
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let client = http_client()?;
    let region = options.functions_region(&config);
    let metrics = Arc::new(Metrics::new());
    let functions = FunctionHost::new(HostSettings {
        management_endpoint: format!("http://{management_addr}/{}", config.gateway.stage),
        region: region.clone(),
        extra_env: options
            .function_env
            .iter()
            .cloned()
            .chain(options.tls.iter().flat_map(DevTls::handler_env))
            .chain(options.tls.as_ref().map(|_| {
                (
                    function::EXECUTE_API_ENV.to_owned(),
                    loopback(management_addr),
                )
            }))
            .collect(),
        watch: options.watch_code,
        metrics: metrics.clone(),
    })?;
    let deployment = Deployment::build_after(
        config, validated, &client, &functions, &region, &metrics, None,
    )?;
    Ok((
        Prepared {
            client,
            functions,
            region,
            metrics,
        },
        deployment,
    ))
}

impl Gateway {
    /// Validates `config`, binds its listener and starts serving.
    pub async fn start(config: Config) -> Result<RunningGateway, GatewayError> {
        Self::start_with(config, Options::default()).await
    }

    /// Builds everything [`Gateway::start`] builds from `config` — validation, the TLS files,
    /// the JWT keys of `jwks_file`, the tokens' `token_env`, the functions' directories — and
    /// fails with the same error, but binds no port and starts nothing: `wsgate check`.
    pub fn check(config: Config) -> Result<(), GatewayError> {
        let validated = config.validate()?;
        let management = validated.management_listen.unwrap_or(validated.listen);
        prepare(config, validated, &Options::default(), management).map(drop)
    }

    /// [`Gateway::start`] with options.
    pub async fn start_with(
        config: Config,
        options: Options,
    ) -> Result<RunningGateway, GatewayError> {
        let validated = config.validate()?;
        let (listener, local_addr) = bind(validated.listen).await?;
        let management = match validated.management_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let management_addr = management.as_ref().map(|(_, addr)| *addr);
        // Functions are told where the gateway is, so the listeners come first.
        let built = build(config, validated, &options, local_addr, management_addr).await?;
        let edge = built.edge.clone();
        warn_if_management_is_open(&edge);
        let listening = Listening {
            public: duplicate(&listener, local_addr)?,
            management: match &management {
                Some((listener, addr)) => Some(duplicate(listener, *addr)?),
                None => None,
            },
        };
        let server = serve(&edge, listener, management.map(|(listener, _)| listener));
        tracing::info!(%local_addr, "gateway listening");
        Ok(built.running(server, listening))
    }

    /// Takes over from the previous process (`kill -USR2` on it), which waits at `handoff`:
    /// builds everything from `config` as [`Gateway::start_with`] does, except the listeners,
    /// which come from the previous process with every live connection. Fails — and the
    /// previous process goes on serving — when `config` is invalid or the previous process
    /// goes away.
    pub async fn take_over(
        config: Config,
        options: Options,
        handoff: &std::path::Path,
    ) -> Result<RunningGateway, GatewayError> {
        let validated = config.validate()?;
        if config.cluster.is_some() {
            return Err(GatewayError::Handoff(
                "a cluster node does not take connections over (yet)".into(),
            ));
        }
        let (mut channel, welcome) = relaunch::greet(handoff)
            .await
            .map_err(GatewayError::Handoff)?;
        let (local_addr, management_addr) = (welcome.listen, welcome.management);
        let built = build(config, validated, &options, local_addr, management_addr).await?;
        let edge = built.edge.clone();
        let listeners = relaunch::take(&edge, &mut channel)
            .await
            .map_err(GatewayError::Handoff)?;
        let tokio_listener = |listener: std::net::TcpListener, addr: SocketAddr| {
            TcpListener::from_std(listener).map_err(|source| GatewayError::Bind { addr, source })
        };
        let public = tokio_listener(listeners.public, local_addr)?;
        let management = match (listeners.management, management_addr) {
            (Some(listener), Some(addr)) => Some(tokio_listener(listener, addr)?),
            _ => None,
        };
        let listening = Listening {
            public: duplicate(&public, local_addr)?,
            management: match (&management, management_addr) {
                (Some(listener), Some(addr)) => Some(duplicate(listener, addr)?),
                _ => None,
            },
        };
        let server = serve(&edge, public, management);
        relaunch::taken(edge.clone(), channel)
            .await
            .map_err(GatewayError::Handoff)?;
        tracing::info!(%local_addr, "gateway listening (taken over from the previous process)");
        Ok(built.running(server, listening))
    }
}

/// A gateway built but not serving yet.
struct Built {
    edge: Arc<EdgeServices>,
    prepared: Prepared,
    listen: (String, Option<String>),
    cluster: Option<ClusterConfig>,
}

impl Built {
    fn running(self, server: JoinHandle<()>, listening: Listening) -> RunningGateway {
        let Prepared {
            client,
            functions,
            region,
            metrics: _,
        } = self.prepared;
        RunningGateway {
            edge: self.edge,
            client,
            functions,
            region,
            server,
            listen: self.listen,
            cluster: self.cluster,
            listening,
        }
    }
}

/// Everything but the serving listeners: the functions (told where the management API is), the
/// deployment, each layer's services (with `[cluster]`, after joining it), and the sessions a
/// previous process kept in `gateway.state_dir` — back before the listener takes their resumes.
async fn build(
    config: Config,
    validated: Validated,
    options: &Options,
    local_addr: SocketAddr,
    management_addr: Option<SocketAddr>,
) -> Result<Built, GatewayError> {
    let listen = (
        config.gateway.listen.clone(),
        config.management.listen.clone(),
    );
    let cluster = config.cluster.clone();
    let (prepared, deployment) = prepare(
        config,
        validated,
        options,
        management_addr.unwrap_or(local_addr),
    )?;
    let edge = services(
        deployment,
        prepared.metrics.clone(),
        options,
        local_addr,
        management_addr,
    )
    .await?;
    if let Some((dir, _)) = &edge.sessions.keeping {
        let kept = saved::take(dir).map_err(GatewayError::State)?;
        edge::restore(&edge.sessions, kept, "the previous process");
    }
    Ok(Built {
        edge,
        prepared,
        listen,
        cluster,
    })
}

/// A second descriptor of a listening socket, to hand it over later.
fn duplicate(listener: &TcpListener, addr: SocketAddr) -> Result<OwnedFd, GatewayError> {
    listener
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| GatewayError::Bind { addr, source })
}

/// Serves the listeners until the gateway stops.
fn serve(
    edge: &Arc<EdgeServices>,
    public: TcpListener,
    management: Option<TcpListener>,
) -> JoinHandle<()> {
    let public = tokio::spawn(listener::serve(
        public,
        edge::router(edge.clone(), edge::Port::Public),
        edge.clone(),
    ));
    let management = management.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "management API listening");
        }
        tokio::spawn(listener::serve(
            listener,
            edge::router(edge.clone(), edge::Port::Management),
            edge.clone(),
        ))
    });
    tokio::spawn(async move {
        let _ = public.await;
        if let Some(management) = management {
            let _ = management.await;
        }
    })
}

/// Each layer's services, around the first deployment; with `[cluster]`, after joining it.
async fn services(
    deployment: Deployment,
    metrics: Arc<Metrics>,
    options: &Options,
    local_addr: SocketAddr,
    management_addr: Option<SocketAddr>,
) -> Result<Arc<EdgeServices>, GatewayError> {
    let hub = Arc::new(Hub::default());
    let cluster_config = deployment.config.cluster.clone();
    let state_dir = state_dir(&deployment.config);
    let sessions = Arc::new(SessionServices {
        deployment: Arc::new(ArcSwap::from_pointee(deployment)),
        hub: hub.clone(),
        lifecycle: Lifecycle::default(),
        resumes: Desk::default(),
        keeping: state_dir.map(|dir| (dir, std::sync::Mutex::new(Vec::new()))),
        handoff: crate::handoff::Handoff::default(),
        mirrors: crate::resume::Mirrors::new(),
        metrics: metrics.clone(),
    });
    let cluster = match &cluster_config {
        Some(config) => Some(join_cluster(config, &sessions).await?),
        None => None,
    };
    Ok(Arc::new(EdgeServices {
        sessions,
        management: ManagementServices {
            directory: Arc::new(Directory::new(hub, cluster)),
            rate: RateLimiter::default(),
            failures: RateLimiter::default(),
            body_reads: ConnectionCount::new(),
            signing_keys: SigningKeys::default(),
            replays: ReplayCache::default(),
            metrics,
        },
        connections: ConnectionCount::new(),
        connect_rate: RateLimiter::default(),
        local_addr,
        management_addr,
        dev_tls: options
            .tls
            .as_ref()
            .map(|tls| Acceptor(tls.acceptor.clone())),
        development: options.development,
        per_address_refused: FirstTime::default(),
    }))
}

/// Joins the cluster of `config`; a dead node's connections are told to this node's
/// `$disconnect` route, with 1006 as API Gateway reports a connection lost without a close.
async fn join_cluster(
    config: &ClusterConfig,
    sessions: &Arc<SessionServices>,
) -> Result<Arc<Cluster>, GatewayError> {
    let told = sessions.clone();
    let reaped: Reaped = Arc::new(move |ctx, taken| {
        let sessions = told.clone();
        Box::pin(async move {
            match taken {
                Some(taken) => edge::take_in(&sessions, taken, "a node that died"),
                None => {
                    edge::session::disconnect(&sessions, &ctx, 1006, edge::session::ABNORMAL).await
                }
            }
        })
    });
    let asked = sessions.clone();
    let released: Released = Arc::new(move |id, token| {
        let sessions = asked.clone();
        Box::pin(async move {
            let (held, door) = sessions.resumes.take(&token)?;
            if held != id {
                sessions.resumes.issue_as(token, held, door);
                return None;
            }
            let (to, saved) = tokio::sync::oneshot::channel();
            door.send(Box::new(Knock::Release(to))).await.ok()?;
            saved.await.ok()
        })
    });
    let cluster = Cluster::start(
        config,
        sessions.hub.clone(),
        (reaped, released),
        sessions.lifecycle.stopping.clone(),
    )
    .await
    .map_err(GatewayError::Cluster)?;
    let _ = sessions.mirrors.set(cluster.mirrors());
    Ok(cluster)
}

/// Writes the sessions kept at shutdown to `gateway.state_dir`, for the next process.
fn keep_sessions(edge: &EdgeServices) {
    let sessions = &edge.sessions;
    let Some((dir, keeping)) = &sessions.keeping else {
        return;
    };
    let kept = std::mem::take(&mut *keeping.lock().unwrap_or_else(|e| e.into_inner()));
    match saved::put(dir, &kept) {
        Ok(()) => {
            tracing::info!(sessions = kept.len(), dir = %dir.display(), "resumable sessions kept for the next process")
        }
        Err(error) => {
            tracing::error!(%error, sessions = kept.len(), "resumable sessions could not be kept")
        }
    }
}

/// `gateway.state_dir`, resolved against the config file's folder.
fn state_dir(config: &Config) -> Option<std::path::PathBuf> {
    config
        .gateway
        .state_dir
        .as_ref()
        .map(|dir| config.path(dir))
}

/// With `management.auth = "none"` on a listener other callers can reach, says at start who may
/// call it: loopback callers only (the default), or anyone (`allow_unauthenticated_remote`).
fn warn_if_management_is_open(edge: &EdgeServices) {
    let deployment = edge.deployment();
    let management = &deployment.config.management;
    let addr = edge.management_addr.unwrap_or(edge.local_addr);
    if management.auth != ManagementAuth::None || limits::is_loopback(addr.ip()) {
        return;
    }
    if management.allow_unauthenticated_remote {
        tracing::warn!(
            %addr,
            "the management API has auth = \"none\" and allow_unauthenticated_remote = true: \
             anyone who reaches {addr} can push to, list and close every connection"
        );
    } else {
        tracing::warn!(
            %addr,
            "the management API listens beyond loopback with auth = \"none\": it answers only \
             loopback callers (others get 403); set management.auth to \"sigv4\" or \"token\""
        );
    }
}

impl RunningGateway {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.edge.local_addr
    }

    /// The management listener's address, when `management.listen` is set.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.edge.management_addr
    }

    /// This node's live connections (for tests and operators).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.edge.sessions.hub
    }

    /// The cluster this node joined, when `[cluster]` is set.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.edge.management.directory.cluster()
    }

    /// Connections counted against `limits.max_connections`: upgraded ones and those in `$connect`.
    pub fn open_connections(&self) -> usize {
        self.edge.connections.open()
    }

    /// What in `config` differs from the listeners this gateway started with, which a reload
    /// cannot change (`key: running → asked for` lines, for a warning; empty when nothing differs).
    pub fn needs_restart(&self, config: &Config) -> Vec<String> {
        let (listen, management) = &self.listen;
        let mut changed = Vec::new();
        if *listen != config.gateway.listen {
            changed.push(format!(
                "gateway.listen: {listen} → {}",
                config.gateway.listen
            ));
        }
        let kept_in = self
            .edge
            .sessions
            .keeping
            .as_ref()
            .map(|(dir, _)| dir.clone());
        if kept_in != state_dir(config) {
            changed.push(
                "gateway.state_dir: the running gateway keeps its sessions where it started"
                    .to_owned(),
            );
        }
        if self.cluster != config.cluster {
            changed.push("[cluster]: the running node keeps the cluster it joined".to_owned());
        }
        if *management != config.management.listen {
            let show = |addr: &Option<String>| addr.clone().unwrap_or_else(|| "(none)".into());
            changed.push(format!(
                "management.listen: {} → {}",
                show(management),
                show(&config.management.listen)
            ));
        }
        changed
    }

    /// Swaps in a new config's routes; live connections keep going. The listener addresses cannot
    /// change without a restart ([`RunningGateway::needs_restart`] names them).
    pub fn reload(&self, config: Config) -> Result<(), GatewayError> {
        let names: Vec<String> = config.functions.keys().cloned().collect();
        let current = &self.edge.sessions.deployment;
        let validated = config.validate()?;
        let deployment = Deployment::build_after(
            config,
            validated,
            &self.client,
            &self.functions,
            &self.region,
            &self.edge.sessions.metrics,
            Some(&current.load()),
        )?;
        current.store(Arc::new(deployment));
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.functions.retain(&names);
        Ok(())
    }

    /// Starts `program` with `args` (`kill -USR2`) and hands it the listeners and every live
    /// connection. `Ok`: the new process serves everything — call [`RunningGateway::retire`]
    /// and exit. `Err` says why not; this process goes on serving everything.
    pub async fn upgrade(
        &self,
        program: &std::path::Path,
        args: &[std::ffi::OsString],
    ) -> Result<relaunch::Given, String> {
        relaunch::give(&self.edge, &self.listening, program, args).await
    }

    /// After a successful [`RunningGateway::upgrade`]: passes on what still arrives for the
    /// connections that moved (answers of integration calls under way, within
    /// `limits.shutdown_grace`), closes what did not move as [`RunningGateway::shutdown`] does,
    /// and returns.
    pub async fn retire(self, given: relaunch::Given) {
        let grace = self
            .edge
            .sessions
            .deployment
            .load()
            .config
            .limits
            .shutdown_grace;
        let mut relaying = given.relaying;
        if timeout(grace + Duration::from_secs(1), &mut relaying)
            .await
            .is_err()
        {
            relaying.abort();
        }
        drop(given.verdict);
        // Nothing is left to drain: the new process serves the listeners already.
        self.drain();
        self.stop().await;
    }

    /// Stops accepting, closes every client with 1001, runs their `$disconnect`s, and returns once
    /// all are done or `limits.shutdown_grace` has passed.
    ///
    /// Handshakes are tracked like sessions: one still inside `$connect` when the gateway stops
    /// either finishes (its client gets the 101, then 1001 and a `$disconnect`) or, if it had not
    /// started, is refused with 503 — never a 101 after this has stopped waiting.
    ///
    /// First, for `limits.shutdown_delay`, it drains: `/readyz` answers 503 while everything is
    /// still served, so load balancers stop sending new clients before any is refused.
    pub async fn shutdown(self) {
        self.drain();
        let delay = self.edge.deployment().config.limits.shutdown_delay;
        if !delay.is_zero() {
            tracing::info!(?delay, "draining: /readyz answers 503; still serving");
            tokio::time::sleep(delay).await;
        }
        self.stop().await;
    }

    fn drain(&self) {
        self.edge.sessions.lifecycle.draining.cancel();
    }

    async fn stop(self) {
        let sessions = &self.edge.sessions;
        let grace = sessions.deployment.load().config.limits.shutdown_grace;
        tracing::info!(open = sessions.hub.len(), ?grace, "shutting down");
        let lifecycle = &sessions.lifecycle;
        lifecycle.stopping.cancel();
        lifecycle.tasks.close();
        let deadline = tokio::time::Instant::now() + grace;
        if tokio::time::timeout_at(deadline, lifecycle.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = lifecycle.tasks.len(),
                "grace period over; abandoning sessions"
            );
        }
        // The accept loops ended when `stopping` was cancelled.
        let mut server = self.server;
        if tokio::time::timeout_at(deadline, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        keep_sessions(&self.edge);
        if let Some(cluster) = self.edge.management.directory.cluster() {
            cluster.leave().await;
        }
        self.functions.stop_all();
    }
}
