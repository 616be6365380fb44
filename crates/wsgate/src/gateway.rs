//! The running gateway: shared state, the route table that reloads without dropping a
//! connection, start-up and graceful shutdown.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wsgate_core::config::{Config, ConfigError};
use wsgate_core::route::{RouteKey, SelectionExpression};

use crate::edge;
use crate::edge::listener;
use crate::edge::tls::DevTls;
use crate::function::{FunctionHost, HostError, HostSettings};
use crate::hub::Hub;
use crate::integration::Integration;

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
}

impl Runtime {
    /// Validates `config` and builds its routes.
    pub fn build(
        config: Config,
        client: &reqwest::Client,
        functions: &FunctionHost,
    ) -> Result<Self, GatewayError> {
        config.validate()?;
        let expression = config.selection_expression()?;
        let mut routes = HashMap::new();
        for (key, route) in &config.routes {
            let integration = match &route.integration {
                Some(integration) => {
                    Integration::from_config(integration, &config, client, functions).map_err(
                        |message| ConfigError {
                            key: format!("routes.{key}"),
                            message,
                        },
                    )?
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
        Ok(Self {
            config,
            expression,
            routes,
            keys,
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
    /// Local functions' process pools.
    pub functions: FunctionHost,
}

/// Starts gateways.
#[derive(Debug)]
pub struct Gateway;

/// A gateway that is serving.
#[derive(Debug)]
pub struct RunningGateway {
    shared: Arc<Shared>,
    server: JoinHandle<()>,
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
        config.validate()?;
        let addr = config.listen_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| GatewayError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| GatewayError::Bind { addr, source })?;
        // Functions are told where the gateway is, so the listener comes first.
        let functions = FunctionHost::new(HostSettings {
            management_endpoint: format!("http://{local_addr}/{}", config.gateway.stage),
            region: options
                .region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .unwrap_or_else(|| "us-east-1".into()),
            extra_env: options
                .function_env
                .iter()
                .cloned()
                .chain(options.tls.iter().flat_map(DevTls::handler_env))
                .collect(),
            watch: options.watch_code,
        })?;
        let runtime = Runtime::build(config, &client, &functions)?;
        let shared = Arc::new(Shared {
            runtime: ArcSwap::from_pointee(runtime),
            hub: Hub::default(),
            client,
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            node_id: 0,
            local_addr,
            functions,
        });
        let app = edge::router(shared.clone());
        let acceptor = options.tls.as_ref().map(|tls| tls.acceptor.clone());
        let server = tokio::spawn(listener::serve(
            listener,
            app,
            acceptor,
            shared.shutdown.clone(),
        ));
        tracing::info!(%local_addr, "gateway listening");
        Ok(RunningGateway { shared, server })
    }
}

impl RunningGateway {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The shared state (for tests and operators).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Swaps in a new config's routes; live connections keep going. The listener address cannot
    /// change without a restart.
    pub fn reload(&self, config: Config) -> Result<(), GatewayError> {
        let names: Vec<String> = config.functions.keys().cloned().collect();
        let runtime = Runtime::build(config, &self.shared.client, &self.shared.functions)?;
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
