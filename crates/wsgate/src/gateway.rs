//! The running gateway: shared state, the route table that reloads without dropping a
//! connection, start-up and graceful shutdown.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wsgate_core::config::{Config, ConfigError, Validated};
use wsgate_core::forwarded::TrustedProxies;
use wsgate_core::route::{RouteKey, SelectionExpression};

use crate::auth::authorizer::Authorizer;
use crate::edge;
use crate::edge::listener;
use crate::edge::tls::{self, Acceptor, DevTls};
use crate::function::{FunctionHost, HostError, HostSettings};
use crate::hub::Hub;
use crate::integration::Integration;
use crate::limits::{ConnectionCount, RateLimiter};
use crate::mgmt::Operation;

/// One configured route, ready to call.
#[derive(Debug)]
pub struct RouteEntry {
    /// Its key.
    pub key: RouteKey,
    /// What it calls.
    pub integration: Integration,
    /// Whether the answer goes back to the sender.
    pub route_response: bool,
}

/// A management token with its secret read from the config or the environment.
#[derive(Debug)]
pub struct ManagementToken {
    /// Its name, for logs and rate limits.
    pub name: String,
    /// The bearer token.
    pub secret: String,
    /// The operations it may call; `None`: all.
    pub operations: Option<Vec<Operation>>,
}

/// Everything a config file decides, built once per (re)load and swapped atomically.
#[derive(Debug)]
pub struct Runtime {
    /// The validated config.
    pub config: Config,
    /// The parsed route selection expression.
    pub expression: SelectionExpression,
    /// Routes by key.
    pub routes: HashMap<String, Arc<RouteEntry>>,
    /// The keys of `routes`, for selection.
    pub keys: HashSet<String>,
    /// `$connect`'s authorizer.
    pub authorizer: Option<Arc<Authorizer>>,
    /// Accepts TLS with `gateway.tls`'s certificate.
    pub tls: Option<Acceptor>,
    /// `management.tokens`, resolved.
    pub management_tokens: Vec<ManagementToken>,
    /// `gateway.trusted_proxies`, parsed.
    pub trusted_proxies: TrustedProxies,
}

impl Runtime {
    /// Validates `config` and builds its routes.
    pub fn build(
        config: Config,
        client: &reqwest::Client,
        functions: &FunctionHost,
        region: &str,
    ) -> Result<Self, GatewayError> {
        let validated = config.validate()?;
        Self::build_after(config, validated, client, functions, region, None)
    }

    /// [`Runtime::build`] of a config already validated, with what its validation parsed; on a
    /// reload, what may outlive a config (the keys a JWT authorizer fetched from its `jwks_url`)
    /// is taken over from `previous`.
    pub fn build_after(
        config: Config,
        mut validated: Validated,
        client: &reqwest::Client,
        functions: &FunctionHost,
        region: &str,
        previous: Option<&Runtime>,
    ) -> Result<Self, GatewayError> {
        let mut routes = HashMap::new();
        for (key, route) in &config.routes {
            let integration = match &route.integration {
                Some(integration) => {
                    let mock_body = validated.mock_bodies.remove(key);
                    Integration::from_config(integration, mock_body, &config, client, functions)
                        .map_err(|message| ConfigError {
                            key: format!("routes.{key}"),
                            message,
                        })?
                }
                // A `$connect` with only an authorizer accepts whom the authorizer allows.
                None => Integration::accept(),
            };
            let entry = RouteEntry {
                key: RouteKey(key.clone()),
                integration,
                route_response: route.route_response(),
            };
            routes.insert(key.clone(), Arc::new(entry));
        }
        let keys = routes.keys().cloned().collect();
        let authorizer = config
            .routes
            .get(RouteKey::CONNECT)
            .and_then(|route| route.authorizer.as_ref())
            .map(|name| {
                let previous = previous.and_then(|p| p.authorizer.as_deref());
                let sources = validated
                    .authorizer_sources
                    .remove(name)
                    .unwrap_or_default();
                Authorizer::build(name, sources, &config, client, functions, region, previous)
                    .map(Arc::new)
                    .map_err(|message| ConfigError {
                        key: format!("authorizers.{name}"),
                        message,
                    })
            })
            .transpose()?;
        let tls = config
            .gateway
            .tls
            .as_ref()
            .map(|files| {
                tls::load(&config.path(&files.cert), &config.path(&files.key)).map_err(|message| {
                    ConfigError {
                        key: "gateway.tls".into(),
                        message,
                    }
                })
            })
            .transpose()?;
        let management_tokens = config
            .management
            .tokens
            .iter()
            .enumerate()
            .map(|(i, token)| {
                let secret = match (&token.token, &token.token_env) {
                    (Some(secret), _) => secret.clone(),
                    (None, Some(var)) => std::env::var(var)
                        .ok()
                        .filter(|v| v.len() >= 16)
                        .ok_or_else(|| ConfigError {
                            key: format!("management.tokens[{i}].token_env"),
                            message: format!(
                                "the environment variable {var} is not set or shorter than 16 characters"
                            ),
                        })?,
                    (None, None) => String::new(),
                };
                Ok(ManagementToken {
                    name: token.name.clone(),
                    secret,
                    operations: token.operations.clone(),
                })
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self {
            config,
            expression: validated.selection_expression,
            routes,
            keys,
            authorizer,
            tls,
            management_tokens,
            trusted_proxies: validated.trusted_proxies,
        })
    }
}

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
}

/// State shared by every connection and request.
#[derive(Debug)]
pub struct Shared {
    /// Routes and settings; swapped on reload.
    pub runtime: ArcSwap<Runtime>,
    /// Live connections.
    pub hub: Hub,
    /// The pooled client for HTTP integrations.
    pub client: reqwest::Client,
    /// Sessions and their `$disconnect` calls, awaited on shutdown.
    pub tracker: TaskTracker,
    /// Cancelled when the gateway stops.
    pub shutdown: CancellationToken,
    /// This node's id, carried in connection ids.
    pub node_id: u8,
    /// The bound listener address.
    pub local_addr: SocketAddr,
    /// The management listener's address, when `management.listen` is set.
    pub management_addr: Option<SocketAddr>,
    /// Local functions' process pools.
    pub functions: FunctionHost,
    /// `AWS_REGION` of functions and of authorizers' `methodArn`.
    pub region: String,
    /// The development CA's acceptor (`wsgate dev`), used when `gateway.tls` is not set.
    pub dev_tls: Option<Acceptor>,
    /// Open connections, in all and per IP.
    pub connections: Arc<ConnectionCount>,
    /// `limits.new_connections_per_ip_per_second`.
    pub connect_rate: RateLimiter<IpAddr>,
    /// `limits.management_requests_per_second`, by credential.
    pub management_rate: RateLimiter<String>,
}

impl Shared {
    /// The state of a gateway listening at `local_addr`, with no connections yet, node id 0, no
    /// management listener and no development CA (set `management_addr` and `dev_tls` after).
    pub fn new(
        runtime: Runtime,
        client: reqwest::Client,
        functions: FunctionHost,
        region: String,
        local_addr: SocketAddr,
    ) -> Self {
        Self {
            runtime: ArcSwap::from_pointee(runtime),
            hub: Hub::default(),
            client,
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            node_id: 0,
            local_addr,
            management_addr: None,
            functions,
            region,
            dev_tls: None,
            connections: ConnectionCount::new(),
            connect_rate: RateLimiter::default(),
            management_rate: RateLimiter::default(),
        }
    }

    /// The acceptor new TLS connections use: `gateway.tls`'s, else the development CA's.
    pub fn tls_acceptor(&self) -> Option<Acceptor> {
        self.runtime
            .load()
            .tls
            .clone()
            .or_else(|| self.dev_tls.clone())
    }
}

/// Starts gateways.
#[derive(Debug)]
pub struct Gateway;

/// A gateway that is serving.
#[derive(Debug)]
pub struct RunningGateway {
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    /// `gateway.listen` and `management.listen` as started: a reload cannot move the listeners.
    listen: (String, Option<String>),
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

impl Gateway {
    /// Validates `config`, binds its listener and starts serving.
    pub async fn start(config: Config) -> Result<RunningGateway, GatewayError> {
        Self::start_with(config, Options::default()).await
    }

    /// [`Gateway::start`] with options.
    pub async fn start_with(
        config: Config,
        options: Options,
    ) -> Result<RunningGateway, GatewayError> {
        let client = http_client()?;
        let validated = config.validate()?;
        let (listener, local_addr) = bind(validated.listen).await?;
        let management = match validated.management_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let management_addr = management.as_ref().map(|(_, addr)| *addr);
        let region = options
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into());
        // Functions are told where the gateway is, so the listener comes first.
        let functions = FunctionHost::new(HostSettings {
            management_endpoint: format!(
                "http://{}/{}",
                management_addr.unwrap_or(local_addr),
                config.gateway.stage
            ),
            region: region.clone(),
            extra_env: options
                .function_env
                .iter()
                .cloned()
                .chain(options.tls.iter().flat_map(DevTls::handler_env))
                .collect(),
            watch: options.watch_code,
        })?;
        let listen = (
            config.gateway.listen.clone(),
            config.management.listen.clone(),
        );
        let runtime = Runtime::build_after(config, validated, &client, &functions, &region, None)?;
        let mut shared = Shared::new(runtime, client, functions, region, local_addr);
        shared.management_addr = management_addr;
        shared.dev_tls = options
            .tls
            .as_ref()
            .map(|tls| Acceptor(tls.acceptor.clone()));
        let shared = Arc::new(shared);
        let public = tokio::spawn(listener::serve(
            listener,
            edge::router(shared.clone(), edge::Port::Public),
            shared.clone(),
        ));
        let management = management.map(|(listener, addr)| {
            tracing::info!(%addr, "management API listening");
            tokio::spawn(listener::serve(
                listener,
                edge::router(shared.clone(), edge::Port::Management),
                shared.clone(),
            ))
        });
        let server = tokio::spawn(async move {
            let _ = public.await;
            if let Some(management) = management {
                let _ = management.await;
            }
        });
        tracing::info!(%local_addr, "gateway listening");
        Ok(RunningGateway {
            shared,
            server,
            listen,
        })
    }
}

impl RunningGateway {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The management listener's address, when `management.listen` is set.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.shared.management_addr
    }

    /// The shared state (for tests and operators).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
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
        let validated = config.validate()?;
        let runtime = Runtime::build_after(
            config,
            validated,
            &self.shared.client,
            &self.shared.functions,
            &self.shared.region,
            Some(&self.shared.runtime.load()),
        )?;
        self.shared.runtime.store(Arc::new(runtime));
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.shared.functions.retain(&names);
        Ok(())
    }

    /// Stops accepting, closes every client with 1001, runs their `$disconnect`s, and returns once
    /// all are done or `limits.shutdown_grace` has passed.
    pub async fn shutdown(self) {
        let grace = self.shared.runtime.load().config.limits.shutdown_grace;
        let open = self.shared.hub.len();
        tracing::info!(open, ?grace, "shutting down");
        self.shared.shutdown.cancel();
        self.shared.tracker.close();
        let deadline = tokio::time::Instant::now() + grace;
        if tokio::time::timeout_at(deadline, self.shared.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.shared.tracker.len(),
                "grace period over; abandoning sessions"
            );
        }
        // Requests still inside `$connect` hold the HTTP server; they get the rest of the grace.
        let mut server = self.server;
        if tokio::time::timeout_at(deadline, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        self.shared.functions.stop_all();
    }
}
