//! The running gateway: shared state, the route table that reloads without dropping a
//! connection, start-up and graceful shutdown.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wsgate_core::config::{Config, ConfigError};
use wsgate_core::route::{RouteKey, SelectionExpression};

use crate::edge;
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
    pub fn build(config: Config, client: &reqwest::Client) -> Result<Self, GatewayError> {
        config.validate()?;
        let expression = config.selection_expression()?;
        let mut routes = HashMap::new();
        for (key, route) in &config.routes {
            let integration =
                Integration::from_config(route, config.limits.integration_timeout, client)
                    .map_err(|message| ConfigError {
                        key: format!("routes.{key}"),
                        message,
                    })?;
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
        let client = http_client()?;
        let addr = config.listen_addr()?;
        let runtime = Runtime::build(config, &client)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| GatewayError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| GatewayError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            runtime: ArcSwap::from_pointee(runtime),
            hub: Hub::default(),
            client,
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            node_id: 0,
            local_addr,
        });
        let app = edge::router(shared.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let stop = shared.shutdown.clone();
        let server = tokio::spawn(async move {
            // No Nagle: route responses and pushes are small frames that must leave at once.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let serve = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await });
            if let Err(error) = serve.await {
                tracing::error!(%error, "listener failed");
            }
        });
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
        let runtime = Runtime::build(config, &self.shared.client)?;
        self.shared.runtime.store(Arc::new(runtime));
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
    }
}
