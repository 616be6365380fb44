//! The configuration model: one serde tree, defaults equal to API Gateway's quotas, and a
//! `validate()` that names the bad key. Reading files and the environment is the caller's job;
//! this module only parses text and applies overrides it is handed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::route::{RouteKey, SelectionExpression};

/// Environment variable overriding `gateway.listen`.
pub const ENV_LISTEN: &str = "WSGATE_LISTEN";
/// Environment variable overriding `gateway.stage`.
pub const ENV_STAGE: &str = "WSGATE_STAGE";

/// The longest duration any setting takes.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The largest `@connections` payload API Gateway accepts, in bytes.
pub const AWS_MAX_POST_BYTES: usize = 131_072;

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{e} in {text:?} (use e.g. \"10m\", \"29s\", \"500ms\")"
        ))
    })
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener, stage and API identity.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// Sizes, timeouts and bounds.
    #[serde(default)]
    pub limits: Limits,
    /// The `@connections` API.
    #[serde(default)]
    pub management: Management,
    /// Routes by key: `$connect`, `$disconnect`, `$default` and custom keys.
    #[serde(default)]
    pub routes: BTreeMap<String, Route>,
    /// Local Lambda-style functions, by name, for `type = "function"` routes.
    #[serde(default)]
    pub functions: BTreeMap<String, Function>,
    /// Authorizers, by name, for `routes."$connect".authorizer`.
    #[serde(default)]
    pub authorizers: BTreeMap<String, Authorizer>,
    /// The folder relative paths (`functions.*.dir`) are resolved against: the config file's
    /// folder when loaded from a file. Not a key of the file.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// How a function's processes are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// The built-in Python bootstrap (standard library only) running `handler` with `python3`.
    Python,
    /// The built-in Node.js bootstrap (no packages) running `handler` with `node`.
    Node,
    /// Any runtime interface client: `command` is run as is (e.g. `python3 -m awslambdaric app.handler`
    /// or a binary built on the `lambda_runtime` crate).
    Command,
}

/// `[functions.NAME]`: a handler run in local processes that speak the Lambda Runtime API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Function {
    /// `python`, `node` or `command`.
    pub runtime: Runtime,
    /// `module.function` as in Lambda (`app.handler`, `src/index.handler`); `_HANDLER` for
    /// `command`.
    #[serde(default)]
    pub handler: Option<String>,
    /// The code's folder (`LAMBDA_TASK_ROOT`), relative to the config file. Default `.`.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// Extra environment variables.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// How long one invocation may take; past it the process is killed and replaced.
    /// Default: `limits.integration_timeout`.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    /// Warm processes at most (each handles one invocation at a time). Default 2.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// With `runtime = "command"`: the program and its arguments.
    #[serde(default)]
    pub command: Vec<String>,
    /// With `python` / `node`: the interpreter to run. Default `python3` / `node`.
    #[serde(default)]
    pub interpreter: Option<String>,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB. Default 128.
    #[serde(default = "default_memory")]
    pub memory_size: u32,
}

fn default_dir() -> PathBuf {
    PathBuf::from(".")
}

fn default_concurrency() -> usize {
    2
}

fn default_memory() -> u32 {
    128
}

/// What a client sending a binary frame gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BinaryFrames {
    /// Close with 1003, as API Gateway does. The default.
    #[default]
    Reject,
    /// Route the message to `$default` with `isBase64Encoded: true`.
    Accept,
}

/// `[gateway]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address for WebSocket upgrades at `/{stage}` and for the management API. Default
    /// `127.0.0.1:8080`.
    pub listen: String,
    /// The stage: clients connect to `/{stage}`. Default `dev`.
    pub stage: String,
    /// `requestContext.apiId` of events. Default `local`.
    pub api_id: String,
    /// How a message picks its route. Default `$request.body.action`.
    pub route_selection_expression: String,
    /// `requestContext.domainName` of events. Default: the `Host` the client connected to.
    pub domain_name: Option<String>,
    /// `reject` (close 1003, API Gateway's behaviour, the default) or `accept` binary frames.
    pub binary_frames: BinaryFrames,
    /// Serve TLS (`wss://`, `https://`) with this certificate; plain connections keep working
    /// on the same port. Reloaded with the config.
    pub tls: Option<TlsFiles>,
    /// Browsers' `Origin`s allowed to upgrade (`https://app.example`, or `*` for any). Empty,
    /// the default, allows any. Requests without an `Origin` (not from a browser) always pass.
    pub allowed_origins: Vec<String>,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the client, for the
    /// per-address limits and `identity.sourceIp`. Empty, the default, trusts nobody's header.
    pub trusted_proxies: Vec<String>,
}

/// `[gateway.tls]`: PEM files, relative to the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            stage: "dev".into(),
            api_id: "local".into(),
            route_selection_expression: "$request.body.action".into(),
            domain_name: None,
            binary_frames: BinaryFrames::Reject,
            tls: None,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[limits]`. Defaults are API Gateway's quotas.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Close with 1001 after this long without a data message either way. Default 10 minutes.
    #[serde(deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// Close with 1001 after this long, whatever happens. Default 2 hours.
    #[serde(deserialize_with = "de_duration")]
    pub max_connection_duration: Duration,
    /// How long an integration may take. Default 29 s.
    #[serde(deserialize_with = "de_duration")]
    pub integration_timeout: Duration,
    /// Largest inbound frame in bytes; larger closes with 1009. Outbound messages over it are
    /// sent in fragments of this size. Default 32768.
    pub max_frame_bytes: usize,
    /// Largest inbound message in bytes after reassembly; larger closes with 1009. Default 131072.
    pub max_message_bytes: usize,
    /// Bytes queued to one client before `@connections` POSTs get 429. Default 4 MiB.
    pub outbox_bytes: usize,
    /// Integration calls one connection may have in flight; past it the gateway stops reading
    /// from that client until one finishes. Default 32.
    pub max_inflight_per_connection: usize,
    /// Per-connection read buffer in bytes. tungstenite's default of 128 KiB would cost that much
    /// per idle connection. Default 4096.
    pub read_buffer_bytes: usize,
    /// Whether client Ping frames reset the idle timer. API Gateway's behaviour is unknown; off by
    /// default (only data messages count).
    pub control_frames_reset_idle: bool,
    /// What a send to many does with a recipient whose outbox is full: `skip` it and count it
    /// (the default), or `close` it with 1008. A single-target POST answers 429 either way.
    pub fanout_overflow: FanoutOverflow,
    /// On SIGTERM/SIGINT, how long to wait for clients to close and `$disconnect`s to run.
    /// Default 10 s.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_grace: Duration,
    /// Open connections at most; upgrades past it get 503. 0 = unlimited. Default 100000.
    pub max_connections: usize,
    /// Open connections from one IP address at most; upgrades past it get 429. 0 = unlimited.
    /// Default 1000.
    pub max_connections_per_ip: usize,
    /// Upgrade requests one IP address may make per second (a burst of as many is allowed);
    /// past it they get 429. 0 = unlimited. Default 100.
    pub new_connections_per_ip_per_second: u32,
    /// How long a new TCP connection may take to finish its TLS handshake and send a whole
    /// request head; slower ones are dropped (slowloris). Default 10 s.
    #[serde(deserialize_with = "de_duration")]
    pub handshake_timeout: Duration,
    /// Management calls one credential (or, without auth, one IP address) may make per second;
    /// past it they get 429 `LimitExceededException`. 0 = unlimited, the default.
    pub management_requests_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(600),
            max_connection_duration: Duration::from_secs(7200),
            integration_timeout: Duration::from_secs(29),
            max_frame_bytes: 32 * 1024,
            max_message_bytes: 128 * 1024,
            outbox_bytes: 4 * 1024 * 1024,
            max_inflight_per_connection: 32,
            read_buffer_bytes: 4096,
            control_frames_reset_idle: false,
            fanout_overflow: FanoutOverflow::Skip,
            shutdown_grace: Duration::from_secs(10),
            max_connections: 100_000,
            max_connections_per_ip: 1000,
            new_connections_per_ip_per_second: 100,
            handshake_timeout: Duration::from_secs(10),
            management_requests_per_second: 0,
        }
    }
}

/// `limits.fanout_overflow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FanoutOverflow {
    /// Leave the slow reader out of this send and count it in `skipped`.
    #[default]
    Skip,
    /// Close the slow reader with 1008.
    Close,
}

/// How management calls are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManagementAuth {
    /// Anyone who reaches the listener may call it. The default, for local development.
    #[default]
    None,
    /// AWS Signature Version 4, as boto3 and the AWS SDKs sign.
    Sigv4,
    /// `Authorization: Bearer TOKEN`, a token of `[[management.tokens]]`.
    Token,
}

/// A management operation, as a credential's `operations` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `POST @connections/{id}`: send data.
    PostToConnection,
    /// `GET @connections/{id}`: connection info.
    GetConnection,
    /// `DELETE @connections/{id}`: close.
    DeleteConnection,
    /// `POST @connections`: one message, many recipients.
    PostToConnections,
    /// `GET @connections?group=&user=`: list live connections.
    ListConnections,
    /// `POST @broadcast`: everyone.
    Broadcast,
    /// `PUT @groups/{group}/connections/{id}`: join.
    JoinGroup,
    /// `DELETE @groups/{group}/connections/{id}`: leave.
    LeaveGroup,
    /// `POST @groups/{group}`: send to a group.
    PostToGroup,
    /// `GET @groups/{group}`: members.
    ListGroup,
    /// `POST @users/{user}`: send to a user's connections.
    PostToUser,
    /// `DELETE @users/{user}`: close a user's connections.
    DeleteUser,
    /// `GET @openapi.json`: this API's description.
    #[serde(rename = "openapi")]
    OpenApi,
}

/// `[[management.credentials]]`: a SigV4 key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// The access key id the SDK is configured with.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
    /// The operations this key may call; absent, all of them.
    #[serde(default)]
    pub operations: Option<Vec<Operation>>,
}

/// `[[management.tokens]]`: a bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// A name for logs and rate limits.
    pub name: String,
    /// The token itself; or
    #[serde(default)]
    pub token: Option<String>,
    /// the environment variable holding it (read at start and on reload).
    #[serde(default)]
    pub token_env: Option<String>,
    /// The operations this token may call; absent, all of them.
    #[serde(default)]
    pub operations: Option<Vec<Operation>>,
}

/// `[management]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Management {
    /// `none` (default), `sigv4` or `token`.
    pub auth: ManagementAuth,
    /// Keys accepted when `auth = "sigv4"`.
    pub credentials: Vec<Credential>,
    /// Tokens accepted when `auth = "token"`.
    pub tokens: Vec<Token>,
    /// Serve the management API on this address only, and not on `gateway.listen` (where
    /// management paths then get 403). Default: on `gateway.listen`.
    pub listen: Option<String>,
    /// Largest clock difference accepted on a signed request. Default 15 minutes, as AWS.
    #[serde(deserialize_with = "de_duration")]
    pub max_clock_skew: Duration,
    /// Largest POST payload in bytes; larger gets 413. Default 131072, as AWS.
    pub max_payload_bytes: usize,
}

impl Default for Management {
    fn default() -> Self {
        Self {
            auth: ManagementAuth::None,
            credentials: Vec::new(),
            tokens: Vec::new(),
            listen: None,
            max_clock_skew: Duration::from_secs(900),
            max_payload_bytes: AWS_MAX_POST_BYTES,
        }
    }
}

/// `[authorizers.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Authorizer {
    /// API Gateway's Lambda REQUEST authorizer, called over HTTP or as a local function.
    Request(RequestAuthorizer),
    /// JSON Web Tokens checked by the gateway itself (an extension: API Gateway offers JWT
    /// authorizers on HTTP APIs only).
    Jwt(JwtAuthorizer),
}

/// `type = "request"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestAuthorizer {
    /// POST the authorizer event here and read the authorizer output from the answer; or
    #[serde(default)]
    pub url: Option<String>,
    /// invoke this `[functions.NAME]` with it.
    #[serde(default)]
    pub function: Option<String>,
    /// `route.request.header.NAME` / `route.request.querystring.NAME`: when one of them is
    /// missing or empty the upgrade gets 401 without a call. Empty: always call.
    #[serde(default)]
    pub identity_sources: Vec<String>,
    /// Keep an output for this long, keyed by the identity sources' values (an extension; API
    /// Gateway calls the authorizer on every connection). Default 0: no cache.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub cache_ttl: Option<Duration>,
    /// How long a call may take. Default: `limits.integration_timeout`.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
}

/// `type = "jwt"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtAuthorizer {
    /// A JWKS document (`{"keys": [...]}`), relative to the config file; or
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// a JWKS URL, fetched when the first token comes, again when older than `jwks_refresh`, and
    /// when a token names an unknown `kid` (at most every 10 s); or
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// an HS256 secret; or
    #[serde(default)]
    pub hs256_secret: Option<String>,
    /// the environment variable holding the HS256 secret.
    #[serde(default)]
    pub hs256_secret_env: Option<String>,
    /// Required `iss`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values; a token must carry one of them.
    #[serde(default, deserialize_with = "de_one_or_many")]
    pub audience: Vec<String>,
    /// Where the token is read, in order: `route.request.querystring.NAME`,
    /// `route.request.header.NAME` (`Authorization: Bearer` is stripped) and
    /// `route.request.header.Sec-WebSocket-Protocol` (the offered protocol that is a JWT).
    #[serde(default = "default_token_sources")]
    pub token_sources: Vec<String>,
    /// Clock tolerance for `exp` and `nbf`. Default 60 s.
    #[serde(default = "default_leeway", deserialize_with = "de_duration")]
    pub leeway: Duration,
    /// How often a `jwks_url` is fetched again. Default 5 minutes.
    #[serde(default = "default_jwks_refresh", deserialize_with = "de_duration")]
    pub jwks_refresh: Duration,
}

fn de_one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

fn default_token_sources() -> Vec<String> {
    [
        "route.request.querystring.token",
        "route.request.header.Authorization",
        "route.request.header.Sec-WebSocket-Protocol",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn default_leeway() -> Duration {
    Duration::from_secs(60)
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(300)
}

/// Where an identity source or token source reads, parsed from
/// `route.request.header.NAME` / `route.request.querystring.NAME` (`$request.…` also works).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestSource {
    /// A header, by case-insensitive name.
    Header(String),
    /// A query string parameter, by exact name.
    Query(String),
}

impl RequestSource {
    /// Parses a source expression.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .trim()
            .strip_prefix("route.request.")
            .or_else(|| text.trim().strip_prefix("$request."))
            .ok_or_else(|| {
                format!("{text:?}: use route.request.header.NAME or route.request.querystring.NAME")
            })?;
        let (kind, name) = rest.split_once('.').unwrap_or((rest, ""));
        if name.is_empty() {
            return Err(format!("{text:?}: the name is missing"));
        }
        match kind {
            "header" => {
                if http_token(name) {
                    Ok(Self::Header(name.to_ascii_lowercase()))
                } else {
                    Err(format!("{text:?}: {name:?} is not a header name"))
                }
            }
            "querystring" => Ok(Self::Query(name.to_owned())),
            _ => Err(format!(
                "{text:?}: only header and querystring sources are supported"
            )),
        }
    }
}

fn http_token(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// One route: its integration and, on `$connect`, its authorizer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "RouteTable")]
pub struct Route {
    /// What the route calls. `None` on a `$connect` that only has an authorizer: the connection
    /// is accepted once the authorizer allows it.
    pub integration: Option<Integration>,
    /// The name of an `[authorizers.NAME]` table; only `$connect` may have one.
    pub authorizer: Option<String>,
}

impl From<Integration> for Route {
    fn from(integration: Integration) -> Self {
        Self {
            integration: Some(integration),
            authorizer: None,
        }
    }
}

/// A route's integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integration {
    /// POST the Lambda-proxy event to a URL.
    Http {
        /// The backend URL.
        url: String,
        /// Send the integration's `body` back to the sender.
        route_response: bool,
        /// Overrides `limits.integration_timeout` for this route.
        timeout: Option<Duration>,
    },
    /// Invoke a local function (see `[functions]`) through the Lambda Runtime API.
    Function {
        /// The name of a `[functions.NAME]` table.
        function: String,
        /// Send the function's `body` back to the sender.
        route_response: bool,
    },
    /// Answer without a backend.
    Mock {
        /// The status code; on `$connect`, 2xx accepts and anything else refuses. Default 200.
        status: u16,
        /// The body, a template: `${request.body}` is the whole message, `${request.body.a.b}`
        /// a value in it. Default none.
        body: Option<String>,
        /// Send `body` back to the sender.
        route_response: bool,
    },
}

/// `type` of a route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum IntegrationType {
    Http,
    Function,
    Mock,
}

/// A `[routes.KEY]` table as written: every key of every type, checked by [`Route::try_from`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteTable {
    #[serde(rename = "type")]
    kind: Option<IntegrationType>,
    url: Option<String>,
    function: Option<String>,
    status: Option<u16>,
    body: Option<String>,
    #[serde(default)]
    route_response: bool,
    #[serde(default, deserialize_with = "de_opt_duration")]
    timeout: Option<Duration>,
    authorizer: Option<String>,
}

impl TryFrom<RouteTable> for Route {
    type Error = String;

    fn try_from(t: RouteTable) -> Result<Self, String> {
        let only = |present: bool, key: &str, kind: &str| {
            if present {
                Err(format!("`{key}` only goes with type = \"{kind}\""))
            } else {
                Ok(())
            }
        };
        let integration = match t.kind {
            None => {
                for (present, key) in [
                    (t.url.is_some(), "url"),
                    (t.function.is_some(), "function"),
                    (t.status.is_some(), "status"),
                    (t.body.is_some(), "body"),
                    (t.route_response, "route_response"),
                    (t.timeout.is_some(), "timeout"),
                ] {
                    if present {
                        return Err(format!(
                            "`{key}` needs a `type` (\"http\", \"function\" or \"mock\")"
                        ));
                    }
                }
                if t.authorizer.is_none() {
                    return Err("missing `type` (\"http\", \"function\" or \"mock\")".to_owned());
                }
                None
            }
            Some(IntegrationType::Http) => {
                only(t.function.is_some(), "function", "function")?;
                only(t.status.is_some(), "status", "mock")?;
                only(t.body.is_some(), "body", "mock")?;
                Some(Integration::Http {
                    url: t.url.ok_or("type = \"http\" needs `url`")?,
                    route_response: t.route_response,
                    timeout: t.timeout,
                })
            }
            Some(IntegrationType::Function) => {
                only(t.url.is_some(), "url", "http")?;
                only(t.timeout.is_some(), "timeout", "http")?;
                only(t.status.is_some(), "status", "mock")?;
                only(t.body.is_some(), "body", "mock")?;
                Some(Integration::Function {
                    function: t.function.ok_or("type = \"function\" needs `function`")?,
                    route_response: t.route_response,
                })
            }
            Some(IntegrationType::Mock) => {
                only(t.url.is_some(), "url", "http")?;
                only(t.timeout.is_some(), "timeout", "http")?;
                only(t.function.is_some(), "function", "function")?;
                Some(Integration::Mock {
                    status: t.status.unwrap_or(200),
                    body: t.body,
                    route_response: t.route_response,
                })
            }
        };
        Ok(Self {
            integration,
            authorizer: t.authorizer,
        })
    }
}

impl Route {
    /// Whether the integration's answer goes back to the sender.
    pub fn route_response(&self) -> bool {
        match &self.integration {
            Some(
                Integration::Http { route_response, .. }
                | Integration::Function { route_response, .. }
                | Integration::Mock { route_response, .. },
            ) => *route_response,
            None => false,
        }
    }
}

/// A configuration error, naming the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The dotted path of the bad key, e.g. `routes.sendmessage.url`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// The dotted key at a byte offset of a TOML text: the last `[table]` header above it, plus the
/// key of its line (`limits.idle_timeout`). Errors from serde carry only a span; users want the key.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let mut table = String::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let end = start + line.len();
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            table = trimmed
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim()
                .to_owned();
        }
        if offset < end || end == text.len() {
            if trimmed.starts_with('[') {
                return Some(table);
            }
            let key = trimmed.split_once('=').map(|(k, _)| k.trim())?;
            return Some(if table.is_empty() {
                key.to_owned()
            } else {
                format!("{table}.{key}")
            });
        }
        start = end;
    }
    None
}

fn route_key_path(key: &str) -> String {
    if key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        format!("routes.{key}")
    } else {
        format!("routes.\"{key}\"")
    }
}

fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
        return Err(err(
            key,
            format!("{url:?} is not an http:// or https:// URL"),
        ));
    }
    Ok(())
}

fn check_timeout(key: &str, timeout: Option<Duration>) -> Result<(), ConfigError> {
    if timeout.is_some_and(|t| t < Duration::from_millis(50) || t > MAX_DURATION) {
        return Err(err(key, "must be between 50ms and a year"));
    }
    Ok(())
}

/// An `Origin` as browsers send it: `scheme://host[:port]`, no path; or `*`.
fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let valid = origin.split_once("://").is_some_and(|(scheme, host)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            && !host.is_empty()
            && !host.contains(['/', '?', '#', ' '])
    });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{origin:?} is not an origin like \"https://app.example\" (scheme, host and port, no path) or \"*\""
        ))
    }
}

impl Config {
    /// Parses TOML text. Unknown keys are errors that name the key.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let message = e.message().to_owned();
            match e.span() {
                Some(span) => {
                    let offset = span.start.min(text.len());
                    let line = text[..offset].matches('\n').count() + 1;
                    let key = key_at(text, offset).unwrap_or_else(|| "config".to_owned());
                    err(key, format!("line {line}: {message}"))
                }
                None => err("config", message),
            }
        })
    }

    /// Applies `WSGATE_*` overrides from `lookup` (the environment, in the binary).
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        if let Some(listen) = lookup(ENV_LISTEN) {
            self.gateway.listen = listen;
        }
        if let Some(stage) = lookup(ENV_STAGE) {
            self.gateway.stage = stage;
        }
    }

    /// The listen address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.gateway.listen.parse().map_err(|_| {
            err(
                "gateway.listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:8080",
                    self.gateway.listen
                ),
            )
        })
    }

    /// The route selection expression, parsed.
    pub fn selection_expression(&self) -> Result<SelectionExpression, ConfigError> {
        SelectionExpression::parse(&self.gateway.route_selection_expression)
            .map_err(|e| err("gateway.route_selection_expression", e.to_string()))
    }

    /// Checks everything serde cannot; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        let stage = &self.gateway.stage;
        if stage.is_empty()
            || stage.len() > 128
            || !stage
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err(
                "gateway.stage",
                "1 to 128 characters of letters, digits, '-' and '_'",
            ));
        }
        if self.gateway.api_id.is_empty() {
            return Err(err("gateway.api_id", "must not be empty"));
        }
        self.selection_expression()?;
        for (i, origin) in self.gateway.allowed_origins.iter().enumerate() {
            check_origin(origin)
                .map_err(|message| err(format!("gateway.allowed_origins[{i}]"), message))?;
        }
        crate::forwarded::TrustedProxies::parse(&self.gateway.trusted_proxies)
            .map_err(|message| err("gateway.trusted_proxies", message))?;
        let l = &self.limits;
        for (key, value) in [
            ("limits.idle_timeout", l.idle_timeout),
            ("limits.max_connection_duration", l.max_connection_duration),
            ("limits.shutdown_grace", l.shutdown_grace),
            ("limits.handshake_timeout", l.handshake_timeout),
        ] {
            if value.is_zero() {
                return Err(err(key, "must be greater than zero"));
            }
        }
        // Timers add these to the clock: a year is plenty, and keeps the sum far from overflowing.
        for (key, value) in [
            ("limits.idle_timeout", l.idle_timeout),
            ("limits.max_connection_duration", l.max_connection_duration),
            ("limits.integration_timeout", l.integration_timeout),
            ("limits.shutdown_grace", l.shutdown_grace),
            ("management.max_clock_skew", self.management.max_clock_skew),
            ("limits.handshake_timeout", l.handshake_timeout),
        ] {
            if value > MAX_DURATION {
                return Err(err(key, "must be at most a year"));
            }
        }
        if l.integration_timeout < Duration::from_millis(50) {
            return Err(err(
                "limits.integration_timeout",
                "must be at least 50ms (API Gateway's minimum)",
            ));
        }
        for (key, value) in [
            ("limits.max_frame_bytes", l.max_frame_bytes),
            ("limits.max_message_bytes", l.max_message_bytes),
            (
                "limits.max_inflight_per_connection",
                l.max_inflight_per_connection,
            ),
        ] {
            if value == 0 {
                return Err(err(key, "must be greater than zero"));
            }
        }
        if !(256..=1 << 20).contains(&l.read_buffer_bytes) {
            return Err(err(
                "limits.read_buffer_bytes",
                "must be between 256 and 1048576",
            ));
        }
        if l.outbox_bytes < self.management.max_payload_bytes {
            return Err(err(
                "limits.outbox_bytes",
                format!(
                    "must be at least management.max_payload_bytes ({})",
                    self.management.max_payload_bytes
                ),
            ));
        }
        let m = &self.management;
        if m.max_payload_bytes == 0 {
            return Err(err(
                "management.max_payload_bytes",
                "must be greater than zero",
            ));
        }
        if m.auth == ManagementAuth::Token && m.tokens.is_empty() {
            return Err(err(
                "management.tokens",
                "auth = \"token\" needs at least one [[management.tokens]]",
            ));
        }
        for (i, t) in m.tokens.iter().enumerate() {
            let path = format!("management.tokens[{i}]");
            if t.name.is_empty() {
                return Err(err(format!("{path}.name"), "must not be empty"));
            }
            if m.tokens[..i].iter().any(|other| other.name == t.name) {
                return Err(err(format!("{path}.name"), "two tokens have this name"));
            }
            match (&t.token, &t.token_env) {
                (Some(token), None) if token.len() >= 16 => {}
                (Some(_), None) => {
                    return Err(err(
                        format!("{path}.token"),
                        "must be at least 16 characters",
                    ));
                }
                (None, Some(var)) if !var.is_empty() => {}
                _ => {
                    return Err(err(path, "needs exactly one of `token` and `token_env`"));
                }
            }
        }
        if let Some(listen) = &m.listen
            && listen.parse::<SocketAddr>().is_err()
        {
            return Err(err(
                "management.listen",
                format!("{listen:?} is not an address like 127.0.0.1:9090"),
            ));
        }
        if m.auth == ManagementAuth::Sigv4 && m.credentials.is_empty() {
            return Err(err(
                "management.credentials",
                "auth = \"sigv4\" needs at least one [[management.credentials]]",
            ));
        }
        for (i, c) in m.credentials.iter().enumerate() {
            if c.access_key_id.is_empty() {
                return Err(err(
                    format!("management.credentials[{i}].access_key_id"),
                    "must not be empty",
                ));
            }
            if c.secret_access_key.is_empty() {
                return Err(err(
                    format!("management.credentials[{i}].secret_access_key"),
                    "must not be empty",
                ));
            }
        }
        for (key, route) in &self.routes {
            let path = route_key_path(key);
            if key.is_empty() {
                return Err(err("routes", "a route key must not be empty"));
            }
            if key.starts_with('$')
                && ![RouteKey::CONNECT, RouteKey::DISCONNECT, RouteKey::DEFAULT]
                    .contains(&key.as_str())
            {
                return Err(err(
                    path,
                    "keys starting with '$' are reserved: use $connect, $disconnect or $default",
                ));
            }
            if route.route_response() && (key == RouteKey::CONNECT || key == RouteKey::DISCONNECT) {
                return Err(err(
                    format!("{path}.route_response"),
                    format!("{key} cannot send a route response"),
                ));
            }
            if let Some(name) = &route.authorizer {
                if key != RouteKey::CONNECT {
                    return Err(err(
                        format!("{path}.authorizer"),
                        "only $connect can have an authorizer, as on API Gateway",
                    ));
                }
                if !self.authorizers.contains_key(name) {
                    return Err(err(
                        format!("{path}.authorizer"),
                        format!("no [authorizers.{name}] is defined"),
                    ));
                }
            }
            match &route.integration {
                None if key != RouteKey::CONNECT => {
                    return Err(err(
                        format!("{path}.type"),
                        "missing `type` (\"http\", \"function\" or \"mock\")",
                    ));
                }
                None => {}
                Some(Integration::Http { url, timeout, .. }) => {
                    check_url(&format!("{path}.url"), url)?;
                    check_timeout(&format!("{path}.timeout"), *timeout)?;
                }
                Some(Integration::Function { function, .. })
                    if !self.functions.contains_key(function) =>
                {
                    return Err(err(
                        format!("{path}.function"),
                        format!("no [functions.{function}] is defined"),
                    ));
                }
                Some(Integration::Function { .. }) => {}
                Some(Integration::Mock { status, body, .. }) => {
                    if !(100..600).contains(status) {
                        return Err(err(format!("{path}.status"), "must be between 100 and 599"));
                    }
                    if let Some(body) = body {
                        SelectionExpression::parse_template(body)
                            .map_err(|e| err(format!("{path}.body"), e.to_string()))?;
                    }
                }
            }
        }
        self.validate_authorizers()?;
        for (name, function) in &self.functions {
            let path = format!("functions.{name}");
            if function.max_concurrency == 0 {
                return Err(err(format!("{path}.max_concurrency"), "must be at least 1"));
            }
            check_timeout(&format!("{path}.timeout"), function.timeout)?;
            match function.runtime {
                Runtime::Python | Runtime::Node => {
                    let handler = function.handler.as_deref().unwrap_or_default();
                    let valid = handler
                        .rsplit_once('.')
                        .is_some_and(|(module, func)| !module.is_empty() && !func.is_empty());
                    if !valid {
                        return Err(err(
                            format!("{path}.handler"),
                            "must be module.function, e.g. \"app.handler\"",
                        ));
                    }
                    if !function.command.is_empty() {
                        return Err(err(
                            format!("{path}.command"),
                            "only with runtime = \"command\"",
                        ));
                    }
                }
                Runtime::Command => {
                    if function.command.is_empty() {
                        return Err(err(
                            format!("{path}.command"),
                            "runtime = \"command\" needs the program to run, e.g. [\"python3\", \"-m\", \"awslambdaric\", \"app.handler\"]",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads a config file; relative paths in it are resolved against its folder.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path.display().to_string(), format!("cannot read: {e}")))?;
        let mut config = Self::from_toml(&text)?;
        config.base_dir = path.parent().map(PathBuf::from).unwrap_or_default();
        Ok(config)
    }

    fn validate_authorizers(&self) -> Result<(), ConfigError> {
        for (name, authorizer) in &self.authorizers {
            let path = format!("authorizers.{name}");
            match authorizer {
                Authorizer::Request(a) => {
                    match (&a.url, &a.function) {
                        (Some(url), None) => check_url(&format!("{path}.url"), url)?,
                        (None, Some(function)) => {
                            if !self.functions.contains_key(function) {
                                return Err(err(
                                    format!("{path}.function"),
                                    format!("no [functions.{function}] is defined"),
                                ));
                            }
                        }
                        _ => {
                            return Err(err(path, "needs exactly one of `url` and `function`"));
                        }
                    }
                    for (i, source) in a.identity_sources.iter().enumerate() {
                        RequestSource::parse(source)
                            .map_err(|m| err(format!("{path}.identity_sources[{i}]"), m))?;
                    }
                    check_timeout(&format!("{path}.timeout"), a.timeout)?;
                    if a.cache_ttl.is_some_and(|t| t > MAX_DURATION) {
                        return Err(err(format!("{path}.cache_ttl"), "must be at most a year"));
                    }
                }
                Authorizer::Jwt(j) => {
                    let keys = [
                        j.jwks_file.is_some(),
                        j.jwks_url.is_some(),
                        j.hs256_secret.is_some(),
                        j.hs256_secret_env.is_some(),
                    ];
                    if keys.iter().filter(|k| **k).count() != 1 {
                        return Err(err(
                            path,
                            "needs exactly one of `jwks_file`, `jwks_url`, `hs256_secret` and `hs256_secret_env`",
                        ));
                    }
                    if let Some(url) = &j.jwks_url {
                        check_url(&format!("{path}.jwks_url"), url)?;
                    }
                    if j.hs256_secret.as_ref().is_some_and(|s| s.len() < 32) {
                        return Err(err(
                            format!("{path}.hs256_secret"),
                            "must be at least 32 bytes",
                        ));
                    }
                    if j.token_sources.is_empty() {
                        return Err(err(format!("{path}.token_sources"), "must not be empty"));
                    }
                    for (i, source) in j.token_sources.iter().enumerate() {
                        RequestSource::parse(source)
                            .map_err(|m| err(format!("{path}.token_sources[{i}]"), m))?;
                    }
                    if j.leeway > Duration::from_secs(3600) {
                        return Err(err(format!("{path}.leeway"), "must be at most an hour"));
                    }
                    if j.jwks_refresh < Duration::from_secs(1) || j.jwks_refresh > MAX_DURATION {
                        return Err(err(
                            format!("{path}.jwks_refresh"),
                            "must be between 1s and a year",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// A path from the config file (TLS files, a JWKS file), resolved against `base_dir`.
    pub fn path(&self, path: &std::path::Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// A function's code folder, resolved against `base_dir`.
    pub fn function_dir(&self, function: &Function) -> PathBuf {
        if function.dir.is_absolute() {
            function.dir.clone()
        } else {
            self.base_dir.join(&function.dir)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = r#"
[gateway]
listen = "127.0.0.1:8080"
stage = "dev"
api_id = "local"
route_selection_expression = "$request.body.action"

[limits]
idle_timeout = "10m"
max_connection_duration = "2h"
integration_timeout = "29s"
max_frame_bytes = 32768
max_message_bytes = 131072

[management]
auth = "none"
[[management.credentials]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "secret"

[routes."$connect"]
type = "http"
url = "http://127.0.0.1:9000/connect"

[routes.sendmessage]
type = "http"
url = "http://127.0.0.1:9000/sendmessage"
route_response = true

[routes."$default"]
type = "mock"
status = 200
body = "unknown action"
route_response = true
"#;

    #[test]
    fn the_documented_example_parses_and_validates() {
        let config = Config::from_toml(ISSUE_EXAMPLE).expect("parses");
        config.validate().expect("valid");
        assert_eq!(config.limits.idle_timeout, Duration::from_secs(600));
        assert_eq!(config.routes.len(), 3);
        assert!(config.routes["sendmessage"].route_response());
        assert!(!config.routes["$connect"].route_response());
    }

    #[test]
    fn defaults_are_api_gateway_quotas() {
        let config = Config::from_toml("").expect("parses");
        config.validate().expect("valid");
        assert_eq!(config.gateway.listen, "127.0.0.1:8080");
        assert_eq!(config.gateway.stage, "dev");
        assert_eq!(
            config.limits.max_connection_duration,
            Duration::from_secs(7200)
        );
        assert_eq!(config.limits.integration_timeout, Duration::from_secs(29));
        assert_eq!(config.limits.max_frame_bytes, 32_768);
        assert_eq!(config.limits.max_message_bytes, 131_072);
        assert_eq!(config.management.max_payload_bytes, 131_072);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::from_toml("[limits]\nidle_timeot = \"1m\"\n").expect_err("unknown key");
        assert!(e.to_string().contains("idle_timeot"), "{e}");
        assert!(e.to_string().contains("line 2"), "{e}");
        assert_eq!(e.key, "limits.idle_timeot");
        let e = Config::from_toml(
            "[routes.x]\ntype = \"http\"\nurl = \"http://a\"\nrout_response = true\n",
        )
        .expect_err("unknown");
        assert!(e.to_string().contains("rout_response"), "{e}");
        let e = Config::from_toml("[routes.x]\ntype = \"ftp\"\n").expect_err("unknown type");
        assert!(e.to_string().contains("ftp"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[gateway]\nlisten = \"nope\"", "gateway.listen"),
            ("[gateway]\nstage = \"a/b\"", "gateway.stage"),
            (
                "[gateway]\nroute_selection_expression = \"${request.body.a\"",
                "gateway.route_selection_expression",
            ),
            (
                "[limits]\nintegration_timeout = \"10ms\"",
                "limits.integration_timeout",
            ),
            (
                "[limits]\nshutdown_grace = \"400years\"",
                "limits.shutdown_grace",
            ),
            (
                "[functions.f]\nruntime = \"command\"\ncommand = [\"x\"]\ntimeout = \"2years\"",
                "functions.f.timeout",
            ),
            ("[limits]\nmax_frame_bytes = 0", "limits.max_frame_bytes"),
            ("[management]\nauth = \"sigv4\"", "management.credentials"),
            ("[routes.\"$bad\"]\ntype = \"mock\"", "routes.\"$bad\""),
            (
                "[routes.x]\ntype = \"http\"\nurl = \"ftp://x\"",
                "routes.x.url",
            ),
            (
                "[routes.x]\ntype = \"mock\"\nstatus = 42",
                "routes.x.status",
            ),
            (
                "[routes.\"$connect\"]\ntype = \"mock\"\nroute_response = true",
                "routes.\"$connect\".route_response",
            ),
        ];
        for (text, key) in cases {
            let e = Config::from_toml(text)
                .and_then(|c| c.validate())
                .expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
        }
        let e = Config::from_toml("[limits]\nidle_timeout = \"ten\"").expect_err("bad duration");
        assert!(e.to_string().contains("10m"), "{e}");
        assert_eq!(e.key, "limits.idle_timeout");
        let e = Config::from_toml(
            "[gateway]\nstage = \"dev\"\n\n[routes.\"$connect\"]\ntype = \"http\"\nurl = 5\n",
        )
        .expect_err("bad type");
        assert_eq!(e.key, "routes.\"$connect\".url", "{e}");
    }

    const SECURITY_EXAMPLE: &str = r#"
[gateway]
allowed_origins = ["https://app.example"]
[gateway.tls]
cert = "cert.pem"
key = "key.pem"

[limits]
max_connections = 100000
max_connections_per_ip = 1000
new_connections_per_ip_per_second = 100
handshake_timeout = "10s"
management_requests_per_second = 0

[management]
auth = "token"
listen = "127.0.0.1:9090"
[[management.tokens]]
name = "backend"
token_env = "WSGATE_BACKEND_TOKEN"
operations = ["post_to_connection", "get_connection", "openapi"]

[authorizers.byheader]
type = "request"
url = "http://127.0.0.1:9000/auth"
identity_sources = ["route.request.header.Authorization", "route.request.querystring.token"]
cache_ttl = "0s"

[authorizers.tokens]
type = "jwt"
jwks_file = "jwks.json"
issuer = "https://issuer.example"
audience = "my-api"
token_sources = ["route.request.querystring.token", "route.request.header.Sec-WebSocket-Protocol"]

[routes."$connect"]
authorizer = "byheader"
"#;

    #[test]
    fn the_security_example_parses_and_validates() {
        let config = Config::from_toml(SECURITY_EXAMPLE).expect("parses");
        config.validate().expect("valid");
        let connect = &config.routes["$connect"];
        assert_eq!(connect.authorizer.as_deref(), Some("byheader"));
        assert!(connect.integration.is_none());
        let Authorizer::Jwt(jwt) = &config.authorizers["tokens"] else {
            panic!("jwt");
        };
        assert_eq!(jwt.audience, ["my-api"]);
        assert_eq!(jwt.leeway, Duration::from_secs(60));
        let Authorizer::Request(request) = &config.authorizers["byheader"] else {
            panic!("request");
        };
        assert_eq!(
            RequestSource::parse(&request.identity_sources[0]),
            Ok(RequestSource::Header("authorization".into()))
        );
        assert_eq!(
            RequestSource::parse(&request.identity_sources[1]),
            Ok(RequestSource::Query("token".into()))
        );
        assert_eq!(
            config.management.tokens[0].operations.as_deref(),
            Some(
                &[
                    Operation::PostToConnection,
                    Operation::GetConnection,
                    Operation::OpenApi
                ][..]
            )
        );
        assert_eq!(config.limits.handshake_timeout, Duration::from_secs(10));
        assert_eq!(
            config.gateway.tls.as_ref().map(|t| t.cert.clone()),
            Some("cert.pem".into())
        );
    }

    #[test]
    fn security_settings_name_their_bad_key() {
        let auth = "[authorizers.a]\ntype = \"request\"\nurl = \"http://x/a\"\n";
        let cases = [
            (
                "[routes.\"$connect\"]\nauthorizer = \"nope\"".to_owned(),
                "routes.\"$connect\".authorizer",
            ),
            (
                format!("{auth}[routes.x]\ntype = \"mock\"\nauthorizer = \"a\""),
                "routes.x.authorizer",
            ),
            (
                "[authorizers.a]\ntype = \"request\"".to_owned(),
                "authorizers.a",
            ),
            (
                "[authorizers.a]\ntype = \"request\"\nurl = \"http://x/\"\nidentity_sources = [\"route.request.body.x\"]".to_owned(),
                "authorizers.a.identity_sources[0]",
            ),
            (
                "[authorizers.j]\ntype = \"jwt\"\nhs256_secret = \"short\"".to_owned(),
                "authorizers.j.hs256_secret",
            ),
            (
                "[authorizers.j]\ntype = \"jwt\"\njwks_file = \"a\"\njwks_url = \"http://x/\"".to_owned(),
                "authorizers.j",
            ),
            (
                "[gateway]\ntrusted_proxies = [\"10.0.0.0/8\", \"lb.internal\"]".to_owned(),
                "gateway.trusted_proxies",
            ),
            (
                "[gateway]\nallowed_origins = [\"https://a.example/path\"]".to_owned(),
                "gateway.allowed_origins[0]",
            ),
            ("[management]\nauth = \"token\"".to_owned(), "management.tokens"),
            (
                "[[management.tokens]]\nname = \"b\"\ntoken = \"short\"".to_owned(),
                "management.tokens[0].token",
            ),
            (
                "[management]\nlisten = \"nowhere\"".to_owned(),
                "management.listen",
            ),
            (
                "[limits]\nhandshake_timeout = \"0s\"".to_owned(),
                "limits.handshake_timeout",
            ),
        ];
        for (text, key) in cases {
            let e = Config::from_toml(&text)
                .and_then(|c| c.validate())
                .expect_err(&text);
            assert_eq!(e.key, key, "{text}: {e}");
        }
        let e = Config::from_toml("[routes.x]\nurl = \"http://a/\"").expect_err("no type");
        assert!(e.to_string().contains("needs a `type`"), "{e}");
        let e = Config::from_toml("[routes.x]\ntype = \"mock\"\nurl = \"http://a/\"")
            .expect_err("url on a mock");
        assert!(
            e.to_string().contains("only goes with type = \"http\""),
            "{e}"
        );
        let e =
            Config::from_toml("[[management.tokens]]\nname = \"b\"\noperations = [\"drop_table\"]")
                .expect_err("unknown operation");
        assert!(e.to_string().contains("drop_table"), "{e}");
    }

    #[test]
    fn functions_parse_and_validate() {
        let text = r#"
[functions.chat]
runtime = "python"
handler = "app.handler"
dir = "handlers"
environment = { TABLE_NAME = "chat" }
timeout = "29s"
max_concurrency = 4

[functions.ric]
runtime = "command"
command = ["python3", "-m", "awslambdaric", "app.handler"]

[routes.sendmessage]
type = "function"
function = "chat"
route_response = true
"#;
        let config = Config::from_toml(text).expect("parses");
        config.validate().expect("valid");
        assert_eq!(config.functions["chat"].max_concurrency, 4);
        assert_eq!(config.functions["chat"].environment["TABLE_NAME"], "chat");
        assert_eq!(config.functions["ric"].runtime, Runtime::Command);
        let cases = [
            (
                "[routes.x]\ntype = \"function\"\nfunction = \"nope\"",
                "routes.x.function",
            ),
            (
                "[functions.f]\nruntime = \"python\"\nhandler = \"app\"",
                "functions.f.handler",
            ),
            (
                "[functions.f]\nruntime = \"command\"",
                "functions.f.command",
            ),
            (
                "[functions.f]\nruntime = \"node\"\nhandler = \"a.b\"\nmax_concurrency = 0",
                "functions.f.max_concurrency",
            ),
        ];
        for (text, key) in cases {
            let e = Config::from_toml(text)
                .and_then(|c| c.validate())
                .expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut config = Config::from_toml("[gateway]\nlisten = \"127.0.0.1:1\"").expect("parses");
        config.apply_env(|k| (k == ENV_LISTEN).then(|| "127.0.0.1:2".to_owned()));
        assert_eq!(config.gateway.listen, "127.0.0.1:2");
        assert_eq!(config.gateway.stage, "dev");
    }
}
