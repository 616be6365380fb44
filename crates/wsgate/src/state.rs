//! State below the edge and the management API: the [`Deployment`] a config builds (routes,
//! authorizer, TLS certificate, tokens), swapped whole on reload, and the narrow handles each layer
//! is given — what a session needs ([`SessionServices`]), what a management call needs
//! ([`ManagementServices`]), what a listener and a handshake need ([`EdgeServices`]). Nothing here
//! starts or stops anything: `server` does, on top.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;
use wsgate_core::config::{Config, ConfigError, Plaintext, Validated};
use wsgate_core::forwarded::TrustedProxies;
use wsgate_core::proxy::ProxyResult;
use wsgate_core::route::{RouteKey, SelectionExpression};

use crate::auth::authorizer::Authorizer;
use crate::auth::replay::ReplayCache;
use crate::auth::sigv4::SigningKeys;
use crate::auth::token::ManagementToken;
use crate::directory::Directory;
use crate::function::FunctionHost;
use crate::hub::Hub;
use crate::integration::{Integration, IntegrationError};
use crate::limits::{ConnectionCount, FirstTime, RateLimiter};
use crate::metrics::{Metrics, RouteMeter};
use crate::resume::Desk;
use crate::saved::Saved;
use crate::tls::{self, Acceptor};

/// One configured route, ready to call.
#[derive(Debug)]
pub struct RouteEntry {
    /// Its key.
    pub key: RouteKey,
    /// What it calls.
    pub integration: Integration,
    /// Whether the answer goes back to the sender.
    pub route_response: bool,
    /// Its counters.
    pub meter: RouteMeter,
    /// Where its failures are kept for the console.
    metrics: Arc<Metrics>,
}

impl RouteEntry {
    /// Calls the backend with the event, timed and counted (see [`Integration::invoke`]).
    pub async fn invoke(&self, event: Vec<u8>) -> Result<ProxyResult, IntegrationError> {
        let started = tokio::time::Instant::now();
        let outcome = self.integration.invoke(event).await;
        self.meter.latency.observe(started.elapsed().as_secs_f64());
        match &outcome {
            Err(error) => self.metrics.integration_failed(
                &self.meter,
                &self.key.0,
                error.kind(),
                error.to_string(),
            ),
            Ok(result) => {
                if let Some(unseen) = self.unseen_status(result) {
                    warn!(route = %self.key, status = result.status, "{unseen}");
                }
            }
        }
        outcome
    }

    /// What nobody would see otherwise: a backend's status other than 2xx on a route that sends
    /// nothing back (`$disconnect`, a route without a route response), which API Gateway drops
    /// too. `None` on `$connect` (its status refuses the connection, and is logged there), on a
    /// route response (the client gets the body) and for mocks (their status is the config's).
    fn unseen_status(&self, result: &ProxyResult) -> Option<String> {
        if result.is_success()
            || self.route_response
            || self.key.0 == RouteKey::CONNECT
            || matches!(self.integration, Integration::Mock(_))
        {
            return None;
        }
        let mut text = format!(
            "route {}: the integration answered {} (one-way route, nothing is sent back)",
            self.key, result.status
        );
        if let Some(body) = result.body.as_deref().filter(|b| !b.is_empty()) {
            text.push_str(": ");
            text.extend(body.chars().take(UNSEEN_BODY_CHARS));
            if body.chars().nth(UNSEEN_BODY_CHARS).is_some() {
                text.push_str("...");
            }
        }
        Some(text)
    }
}

/// How much of a dropped answer's body the warning quotes, in characters: enough for an error
/// message, not a whole page.
const UNSEEN_BODY_CHARS: usize = 200;

/// Everything a config file decides, built once per (re)load and swapped atomically: routes keep
/// their integrations, and live connections pick up the new routes with their next message.
#[derive(Debug)]
pub struct Deployment {
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

impl Deployment {
    /// Validates `config` and builds its routes.
    pub fn build(
        config: Config,
        client: &reqwest::Client,
        functions: &FunctionHost,
        region: &str,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, ConfigError> {
        let validated = config.validate()?;
        Self::build_after(config, validated, client, functions, region, metrics, None)
    }

    /// [`Deployment::build`] of a config already validated, with what its validation parsed; on
    /// a reload, what may outlive a config (the keys a JWT authorizer fetched from its
    /// `jwks_url`) is taken over from `previous`.
    pub fn build_after(
        config: Config,
        mut validated: Validated,
        client: &reqwest::Client,
        functions: &FunctionHost,
        region: &str,
        metrics: &Arc<Metrics>,
        previous: Option<&Deployment>,
    ) -> Result<Self, ConfigError> {
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
                meter: metrics.route(key),
                metrics: metrics.clone(),
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
        let management_tokens = ManagementToken::resolve_all(&config)?;
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

/// The deployment of the moment: loaded per message and per request, swapped on reload.
pub type CurrentDeployment = Arc<ArcSwap<Deployment>>;

/// The gateway's stop signal and the work shutdown waits for.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    /// Handshakes under way, sessions, their message tasks and `$disconnect` calls.
    pub tasks: TaskTracker,
    /// Cancelled when the gateway stops.
    pub stopping: CancellationToken,
    /// Cancelled when shutdown begins, `limits.shutdown_delay` before `stopping`: `/readyz`
    /// answers 503 from then on.
    pub draining: CancellationToken,
}

/// What every session needs: the routes of the moment, this node's live connections (where a
/// cluster's registry will plug in), and the lifecycle.
#[derive(Debug)]
pub struct SessionServices {
    /// Routes and limits; swapped on reload.
    pub deployment: CurrentDeployment,
    /// Live connections, groups and users.
    pub hub: Arc<Hub>,
    /// Stop signal and task tracking.
    pub lifecycle: Lifecycle,
    /// Resume tokens of resumable connections (`wsgate.reliable.v1`).
    pub resumes: Desk,
    /// With `gateway.state_dir` (as the gateway started with it): the folder, and the sessions
    /// kept when the gateway stops, for the next process.
    pub keeping: Option<(std::path::PathBuf, std::sync::Mutex<Vec<Saved>>)>,
    /// Handing live connections to a new process (`kill -USR2`).
    pub handoff: crate::handoff::Handoff,
    /// In a cluster, where suspended sessions are written to Redis (see [`crate::resume::Mirror`]).
    pub mirrors: crate::resume::Mirrors,
    /// This gateway's counters.
    pub metrics: Arc<Metrics>,
}

/// What a management call needs beyond the deployment it is handled under.
#[derive(Debug)]
pub struct ManagementServices {
    /// The connections it addresses: this node's, and the cluster's when there is one.
    pub directory: Arc<Directory>,
    /// `limits.management_requests_per_second`, by credential.
    pub rate: RateLimiter<String>,
    /// `management.auth_failures_per_second`, by address.
    pub failures: RateLimiter<IpAddr>,
    /// Bodies being read, per address (`management.max_body_reads_per_ip`).
    pub body_reads: Arc<ConnectionCount>,
    /// The SigV4 signing keys of signatures accepted lately.
    pub signing_keys: SigningKeys,
    /// Signatures already used (`management.reject_replayed_signatures`).
    pub replays: ReplayCache,
    /// This gateway's counters.
    pub metrics: Arc<Metrics>,
}

/// What the listeners and the handshake need: sessions' services, the management API's, and the
/// admission limits, addresses and TLS of this node.
#[derive(Debug)]
pub struct EdgeServices {
    /// Handed to every session.
    pub sessions: Arc<SessionServices>,
    /// Handed to every management call.
    pub management: ManagementServices,
    /// Open connections, in all and per IP.
    pub connections: Arc<ConnectionCount>,
    /// `limits.new_connections_per_ip_per_second`.
    pub connect_rate: RateLimiter<IpAddr>,
    /// The bound listener address.
    pub local_addr: SocketAddr,
    /// The management listener's address, when `management.listen` is set.
    pub management_addr: Option<SocketAddr>,
    /// The development CA's acceptor (`wsgate dev`), used when `gateway.tls` is not set.
    pub dev_tls: Option<Acceptor>,
    /// Under `wsgate dev`: no per-address limits, and plain HTTP beside TLS on one port.
    pub development: bool,
    /// Set when a per-address limit first refuses a client (the log then says what to look at).
    pub per_address_refused: FirstTime,
}

impl EdgeServices {
    /// The deployment of the moment.
    pub fn deployment(&self) -> Arc<Deployment> {
        self.sessions.deployment.load_full()
    }

    /// How the listener treats a new connection: with no TLS, plain HTTP only; with TLS, the
    /// acceptor (`gateway.tls`'s, else the development CA's) and whether plain HTTP is refused
    /// on the same port (`gateway.tls.plaintext`; never under `wsgate dev`).
    pub fn tls_policy(&self) -> Option<TlsPolicy> {
        let deployment = self.sessions.deployment.load();
        match (&deployment.tls, &deployment.config.gateway.tls) {
            (Some(acceptor), Some(files)) => Some(TlsPolicy {
                acceptor: acceptor.clone(),
                refuse_plaintext: files.plaintext == Plaintext::Refuse && !self.development,
            }),
            _ => self.dev_tls.clone().map(|acceptor| TlsPolicy {
                acceptor,
                refuse_plaintext: false,
            }),
        }
    }
}

/// TLS on a listener: the acceptor, and whether a plain-HTTP request gets 400.
#[derive(Debug, Clone)]
pub struct TlsPolicy {
    /// Accepts the TLS handshake.
    pub acceptor: Acceptor,
    /// Answer plain HTTP on this port with 400 instead of serving it.
    pub refuse_plaintext: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(key: &str, route_response: bool, integration: Integration) -> RouteEntry {
        let metrics = Arc::new(Metrics::default());
        RouteEntry {
            key: RouteKey(key.to_owned()),
            integration,
            route_response,
            meter: metrics.route(key),
            metrics,
        }
    }

    fn backend() -> Integration {
        let http = crate::integration::HttpIntegration::new(
            "http://127.0.0.1:1/",
            std::time::Duration::from_secs(1),
            reqwest::Client::new(),
        )
        .expect("url");
        Integration::Http(http)
    }

    fn answer(status: u16, body: &str) -> ProxyResult {
        ProxyResult {
            status,
            body: Some(body.to_owned()),
            ..ProxyResult::default()
        }
    }

    #[test]
    fn a_failed_answer_on_a_one_way_route_is_named_with_its_status_and_body() {
        let send = route("sendmessage", false, backend());
        assert_eq!(
            send.unseen_status(&answer(500, r#"{"message":"boom"}"#))
                .as_deref(),
            Some(
                r#"route sendmessage: the integration answered 500 (one-way route, nothing is sent back): {"message":"boom"}"#
            )
        );
        let long = "é".repeat(250);
        let warned = route("$disconnect", false, backend())
            .unseen_status(&answer(502, &long))
            .expect("warned");
        assert!(
            warned.ends_with(&format!(": {}...", "é".repeat(200))),
            "{warned}"
        );
        assert_eq!(
            send.unseen_status(&ProxyResult {
                status: 404,
                ..ProxyResult::default()
            })
            .as_deref(),
            Some(
                "route sendmessage: the integration answered 404 (one-way route, nothing is sent back)"
            )
        );
    }

    #[test]
    fn success_route_responses_connect_and_mocks_say_nothing() {
        let send = route("sendmessage", false, backend());
        assert_eq!(send.unseen_status(&answer(200, "fine")), None);
        assert_eq!(send.unseen_status(&answer(204, "")), None);
        let two_way = route("echo", true, backend());
        assert_eq!(two_way.unseen_status(&answer(500, "boom")), None);
        let connect = route("$connect", false, backend());
        assert_eq!(connect.unseen_status(&answer(401, "no")), None);
        let mock = route(
            "$disconnect",
            false,
            Integration::Mock(crate::integration::MockIntegration::status_only(500)),
        );
        assert_eq!(mock.unseen_status(&answer(500, "")), None);
    }
}
