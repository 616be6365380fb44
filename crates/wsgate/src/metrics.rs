//! The gateway's counters, in one explicit Prometheus registry per gateway (several gateways may
//! live in one process: tests), served as `GET /metrics` by `admin` and read by the console.
//!
//! Every label value comes from the config (route keys, function names), from the code (a result,
//! a kind, an operation) or from a bounded range (close codes 1000–4999, HTTP statuses): never
//! from what a client sent, so the number of series stays bounded.
//!
//! Cost on the hot paths: a counter is one relaxed atomic add. The per-route handles are looked
//! up once, when a deployment is built ([`RouteMeter`]), so a message costs no map lookup.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use wsgate_core::clock;

/// How a `$connect` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ConnectResult {
    /// Upgraded.
    accepted,
    /// A resume of a `wsgate.reliable.v1` session (no `$connect` runs).
    resumed,
    /// `$connect` answered a non-2xx status.
    refused,
    /// The authorizer refused, or the origin is not allowed.
    unauthorized,
    /// A limit: connections in all or per address, new connections per second, shutting down.
    limited,
    /// Not a valid WebSocket handshake.
    invalid,
    /// `$connect`'s integration or the authorizer failed.
    error,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: ConnectResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteKindLabels {
    route: String,
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabel {
    code: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ManagementLabels {
    operation: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FunctionLabel {
    function: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OverflowLabel {
    action: &'static str,
}

/// The kinds of [`crate::integration::IntegrationError`], in the order [`RouteMeter`] keeps them.
pub const ERROR_KINDS: [&str; 6] = [
    "refused",
    "timeout",
    "broken",
    "bad_answer",
    "handler_error",
    "function_failed",
];

/// The label a message gets when it selects no route.
pub const NO_ROUTE: &str = "$none";

/// An integration failure the console lists.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ErrorNote {
    /// When, in ms since the epoch.
    pub at_ms: u64,
    /// The route.
    pub route: String,
    /// One of [`ERROR_KINDS`].
    pub kind: &'static str,
    /// What failed, as logged.
    pub error: String,
}

/// How many integration failures the console is shown.
const RECENT_ERRORS: usize = 50;

/// One function pool's counters.
#[derive(Debug, Clone, Default)]
pub struct FunctionMeter {
    /// Invocations started.
    pub invocations: Counter,
    /// Processes started (each is a cold start).
    pub cold_starts: Counter,
    /// Invocations that failed (raised, crashed, timed out).
    pub errors: Counter,
    /// Processes alive now.
    pub processes: Gauge,
}

/// One route's counters, looked up once per deployment.
#[derive(Debug, Clone)]
pub struct RouteMeter {
    /// Client messages that selected the route.
    pub messages: Counter,
    /// Backend call time.
    pub latency: Histogram,
    /// Failed calls, by [`ERROR_KINDS`].
    pub errors: [Counter; 6],
}

/// Every counter of one gateway.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Gauge,
    connects: Family<ResultLabel, Counter>,
    messages: Family<RouteLabel, Counter>,
    sent: Counter,
    disconnects: Family<CodeLabel, Counter>,
    management: Family<ManagementLabels, Counter>,
    latency: Family<RouteLabel, Histogram>,
    errors: Family<RouteKindLabels, Counter>,
    function_invocations: Family<FunctionLabel, Counter>,
    function_cold_starts: Family<FunctionLabel, Counter>,
    function_errors: Family<FunctionLabel, Counter>,
    function_processes: Family<FunctionLabel, Gauge>,
    overflows: Family<OverflowLabel, Counter>,
    cluster_nodes: Gauge,
    redis_errors: Counter,
    recent: Mutex<VecDeque<ErrorNote>>,
    /// Every route key a meter was made for (the families cannot be iterated), for totals.
    keys: Mutex<BTreeSet<String>>,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~33 s: API Gateway's integration timeout is 29 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wsgate");
        let connections = Gauge::default();
        let connects = Family::<ResultLabel, Counter>::default();
        let messages = Family::<RouteLabel, Counter>::default();
        let sent = Counter::default();
        let disconnects = Family::<CodeLabel, Counter>::default();
        let management = Family::<ManagementLabels, Counter>::default();
        let latency =
            Family::<RouteLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let errors = Family::<RouteKindLabels, Counter>::default();
        let function_invocations = Family::<FunctionLabel, Counter>::default();
        let function_cold_starts = Family::<FunctionLabel, Counter>::default();
        let function_errors = Family::<FunctionLabel, Counter>::default();
        let function_processes = Family::<FunctionLabel, Gauge>::default();
        let overflows = Family::<OverflowLabel, Counter>::default();
        let cluster_nodes = Gauge::default();
        let redis_errors = Counter::default();
        registry.register(
            "connections",
            "Open WebSocket connections on this node",
            connections.clone(),
        );
        registry.register(
            "connects",
            "WebSocket upgrade requests, by result",
            connects.clone(),
        );
        registry.register(
            "messages",
            "Client messages, by the route they selected ($none: no route)",
            messages.clone(),
        );
        registry.register("messages_sent", "Frames written to clients", sent.clone());
        registry.register(
            "disconnects",
            "Ended connections, by close code",
            disconnects.clone(),
        );
        registry.register(
            "management_requests",
            "Management API requests, by operation and HTTP status",
            management.clone(),
        );
        registry.register(
            "integration_latency_seconds",
            "Time an integration (HTTP backend or function) took to answer, by route",
            latency.clone(),
        );
        registry.register(
            "integration_errors",
            "Integration calls that gave no usable answer, by route and kind",
            errors.clone(),
        );
        registry.register(
            "function_invocations",
            "Invocations of local functions",
            function_invocations.clone(),
        );
        registry.register(
            "function_cold_starts",
            "Function processes started",
            function_cold_starts.clone(),
        );
        registry.register(
            "function_errors",
            "Function invocations that failed (raised, crashed, timed out)",
            function_errors.clone(),
        );
        registry.register(
            "function_processes",
            "Function processes alive",
            function_processes.clone(),
        );
        registry.register(
            "outbox_overflows",
            "Messages that found a connection's outbox full: refused (429), skipped or closed (fan-out)",
            overflows.clone(),
        );
        registry.register(
            "cluster_nodes",
            "Live nodes of the cluster, this one included (0 without a cluster)",
            cluster_nodes.clone(),
        );
        registry.register(
            "redis_errors",
            "Cluster operations on Redis that failed",
            redis_errors.clone(),
        );
        Self {
            registry,
            connections,
            connects,
            messages,
            sent,
            disconnects,
            management,
            latency,
            errors,
            function_invocations,
            function_cold_starts,
            function_errors,
            function_processes,
            overflows,
            cluster_nodes,
            redis_errors,
            recent: Mutex::new(VecDeque::with_capacity(RECENT_ERRORS)),
            keys: Mutex::new(BTreeSet::from([NO_ROUTE.to_owned()])),
        }
    }

    /// The text of a scrape: Prometheus' text format, or OpenMetrics when `openmetrics`.
    pub fn render(&self, now: &Snapshot, openmetrics: bool) -> String {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.connections.set(gauge(now.connections));
        self.cluster_nodes.set(gauge(now.cluster_nodes));
        // Kept by the hub (which counts where it decides), copied at each scrape.
        for (action, n) in ["refused", "skipped", "closed"]
            .into_iter()
            .zip(now.overflows)
        {
            self.overflows
                .get_or_create(&OverflowLabel { action })
                .inner()
                .store(n, std::sync::atomic::Ordering::Relaxed);
        }
        self.redis_errors
            .inner()
            .store(now.redis_errors, std::sync::atomic::Ordering::Relaxed);
        let mut text = String::new();
        let encoded = if openmetrics {
            prometheus_client::encoding::text::encode(&mut text, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        };
        // Writing into a `String` cannot fail.
        let _ = encoded;
        text
    }

    /// Counts a WebSocket upgrade request.
    pub fn connect(&self, result: ConnectResult) {
        self.connects.get_or_create(&ResultLabel { result }).inc();
    }

    /// Counts a message that selected no route.
    pub fn unrouted(&self) {
        self.messages
            .get_or_create(&RouteLabel {
                route: NO_ROUTE.into(),
            })
            .inc();
    }

    /// Counts `n` frames written to clients.
    pub fn sent(&self, n: u64) {
        self.sent.inc_by(n);
    }

    /// Counts an ended connection.
    pub fn disconnect(&self, code: u16) {
        self.disconnects.get_or_create(&CodeLabel { code }).inc();
    }

    /// Counts a management request.
    pub fn management(&self, operation: &'static str, status: u16) {
        self.management
            .get_or_create(&ManagementLabels { operation, status })
            .inc();
    }

    /// The handles of route `key`.
    pub fn route(&self, key: &str) -> RouteMeter {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned());
        let route = || RouteLabel { route: key.into() };
        RouteMeter {
            messages: self.messages.get_or_create_owned(&route()),
            latency: self.latency.get_or_create_owned(&route()),
            errors: ERROR_KINDS.map(|kind| {
                self.errors.get_or_create_owned(&RouteKindLabels {
                    route: key.into(),
                    kind,
                })
            }),
        }
    }

    /// The handles of function `name`.
    pub fn function(&self, name: &str) -> FunctionMeter {
        let label = FunctionLabel {
            function: name.into(),
        };
        FunctionMeter {
            invocations: self.function_invocations.get_or_create_owned(&label),
            cold_starts: self.function_cold_starts.get_or_create_owned(&label),
            errors: self.function_errors.get_or_create_owned(&label),
            processes: self.function_processes.get_or_create_owned(&label),
        }
    }

    /// Counts a failed integration call of `route` (its meter is `meter`) and keeps it for the
    /// console.
    pub fn integration_failed(
        &self,
        meter: &RouteMeter,
        route: &str,
        kind: &'static str,
        error: String,
    ) {
        if let Some(at) = ERROR_KINDS.iter().position(|k| *k == kind) {
            meter.errors[at].inc();
        }
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_ERRORS {
            recent.pop_front();
        }
        recent.push_back(ErrorNote {
            at_ms: clock::now_ms(),
            route: route.to_owned(),
            kind,
            error,
        });
    }

    /// A function's invocations, cold starts, errors and live processes.
    pub fn function_counts(&self, name: &str) -> [u64; 4] {
        let label = FunctionLabel {
            function: name.into(),
        };
        let count =
            |family: &Family<FunctionLabel, Counter>| family.get(&label).map_or(0, |c| c.get());
        let processes = self
            .function_processes
            .get(&label)
            .map_or(0, |g| u64::try_from(g.get()).unwrap_or(0));
        [
            count(&self.function_invocations),
            count(&self.function_cold_starts),
            count(&self.function_errors),
            processes,
        ]
    }

    /// The latest integration failures, newest first.
    pub fn recent_errors(&self) -> Vec<ErrorNote> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().rev().cloned().collect()
    }

    /// The totals the console charts.
    pub fn totals(&self) -> Totals {
        let keys: Vec<String> = self
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        let messages = keys
            .iter()
            .filter_map(|key| {
                self.messages
                    .get(&RouteLabel { route: key.clone() })
                    .map(|c| c.get())
            })
            .sum();
        let integration_errors = keys
            .iter()
            .flat_map(|key| ERROR_KINDS.map(|kind| (key.clone(), kind)))
            .filter_map(|(route, kind)| {
                self.errors
                    .get(&RouteKindLabels { route, kind })
                    .map(|c| c.get())
            })
            .sum();
        let connects = |result| {
            self.connects
                .get(&ResultLabel { result })
                .map_or(0, |c| c.get())
        };
        Totals {
            connects: connects(ConnectResult::accepted),
            refused: [
                ConnectResult::refused,
                ConnectResult::unauthorized,
                ConnectResult::limited,
                ConnectResult::invalid,
                ConnectResult::error,
            ]
            .into_iter()
            .map(connects)
            .sum(),
            messages,
            sent: self.sent.get(),
            integration_errors,
        }
    }
}

/// What is read from elsewhere at each scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Open connections on this node.
    pub connections: usize,
    /// Live nodes of the cluster (0 without one).
    pub cluster_nodes: usize,
    /// Outbox overflows: refused, skipped, closed (see [`crate::hub::Overflows`]).
    pub overflows: [u64; 3],
    /// Failed or timed-out requests to the cluster's Redis.
    pub redis_errors: u64,
}

/// Running totals since the start, for rates.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Upgrades accepted.
    pub connects: u64,
    /// Upgrades refused, for any reason.
    pub refused: u64,
    /// Client messages.
    pub messages: u64,
    /// Frames to clients.
    pub sent: u64,
    /// Failed integration calls.
    pub integration_errors: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_names_every_family_and_counts_what_was_counted() {
        let metrics = Metrics::new();
        let route = metrics.route("sendmessage");
        route.messages.inc();
        route.latency.observe(0.003);
        metrics.integration_failed(&route, "sendmessage", "timeout", "slow".into());
        metrics.connect(ConnectResult::accepted);
        metrics.unrouted();
        metrics.disconnect(4001);
        metrics.management("post_to_connection", 410);
        let now = Snapshot {
            connections: 3,
            overflows: [1, 2, 0],
            ..Snapshot::default()
        };
        let text = metrics.render(&now, false);
        for line in [
            "wsgate_connections 3",
            "wsgate_connects_total{result=\"accepted\"} 1",
            "wsgate_messages_total{route=\"sendmessage\"} 1",
            "wsgate_messages_total{route=\"$none\"} 1",
            "wsgate_disconnects_total{code=\"4001\"} 1",
            "wsgate_management_requests_total{operation=\"post_to_connection\",status=\"410\"} 1",
            "wsgate_integration_errors_total{route=\"sendmessage\",kind=\"timeout\"} 1",
            "wsgate_integration_latency_seconds_count{route=\"sendmessage\"} 1",
            "wsgate_outbox_overflows_total{action=\"skipped\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        let totals = metrics.totals();
        assert_eq!((totals.messages, totals.integration_errors), (2, 1));
        assert_eq!(metrics.recent_errors()[0].kind, "timeout");
        assert!(metrics.render(&now, true).ends_with("# EOF\n"));
    }

    #[test]
    fn only_the_latest_integration_errors_are_kept() {
        let metrics = Metrics::new();
        let route = metrics.route("r");
        for n in 0..RECENT_ERRORS + 5 {
            metrics.integration_failed(&route, "r", "refused", n.to_string());
        }
        let recent = metrics.recent_errors();
        assert_eq!(recent.len(), RECENT_ERRORS);
        assert_eq!(recent[0].error, (RECENT_ERRORS + 4).to_string());
        assert_eq!(route.errors[0].get(), (RECENT_ERRORS + 5) as u64);
    }
}
