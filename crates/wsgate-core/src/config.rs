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
    /// Largest inbound frame in bytes; larger closes with 1009. Default 32768.
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
}

/// `[[management.credentials]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// The access key id the SDK is configured with.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
}

/// `[management]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Management {
    /// `none` (default) or `sigv4`.
    pub auth: ManagementAuth,
    /// Keys accepted when `auth = "sigv4"`.
    pub credentials: Vec<Credential>,
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
            max_clock_skew: Duration::from_secs(900),
            max_payload_bytes: AWS_MAX_POST_BYTES,
        }
    }
}

/// One route and its integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Route {
    /// POST the Lambda-proxy event to a URL.
    Http {
        /// The backend URL.
        url: String,
        /// Send the integration's `body` back to the sender.
        #[serde(default)]
        route_response: bool,
        /// Overrides `limits.integration_timeout` for this route.
        #[serde(default, deserialize_with = "de_opt_duration")]
        timeout: Option<Duration>,
    },
    /// Invoke a local function (see `[functions]`) through the Lambda Runtime API.
    Function {
        /// The name of a `[functions.NAME]` table.
        function: String,
        /// Send the function's `body` back to the sender.
        #[serde(default)]
        route_response: bool,
    },
    /// Answer without a backend.
    Mock {
        /// The status code; on `$connect`, 2xx accepts and anything else refuses. Default 200.
        #[serde(default = "default_status")]
        status: u16,
        /// The body, a template: `${request.body}` is the whole message, `${request.body.a.b}`
        /// a value in it. Default none.
        #[serde(default)]
        body: Option<String>,
        /// Send `body` back to the sender.
        #[serde(default)]
        route_response: bool,
    },
}

fn default_status() -> u16 {
    200
}

impl Route {
    /// Whether the integration's answer goes back to the sender.
    pub fn route_response(&self) -> bool {
        match self {
            Self::Http { route_response, .. }
            | Self::Function { route_response, .. }
            | Self::Mock { route_response, .. } => *route_response,
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
        let l = &self.limits;
        for (key, value) in [
            ("limits.idle_timeout", l.idle_timeout),
            ("limits.max_connection_duration", l.max_connection_duration),
            ("limits.shutdown_grace", l.shutdown_grace),
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
            match route {
                Route::Http { url, timeout, .. } => {
                    let rest = url
                        .strip_prefix("http://")
                        .or_else(|| url.strip_prefix("https://"));
                    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
                        return Err(err(
                            format!("{path}.url"),
                            format!("{url:?} is not an http:// or https:// URL"),
                        ));
                    }
                    if timeout.is_some_and(|t| t < Duration::from_millis(50) || t > MAX_DURATION) {
                        return Err(err(
                            format!("{path}.timeout"),
                            "must be between 50ms and a year",
                        ));
                    }
                }
                Route::Function { function, .. } => {
                    if !self.functions.contains_key(function) {
                        return Err(err(
                            format!("{path}.function"),
                            format!("no [functions.{function}] is defined"),
                        ));
                    }
                }
                Route::Mock { status, body, .. } => {
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
        for (name, function) in &self.functions {
            let path = format!("functions.{name}");
            if function.max_concurrency == 0 {
                return Err(err(format!("{path}.max_concurrency"), "must be at least 1"));
            }
            if function
                .timeout
                .is_some_and(|t| t < Duration::from_millis(50) || t > MAX_DURATION)
            {
                return Err(err(
                    format!("{path}.timeout"),
                    "must be between 50ms and a year",
                ));
            }
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
        // Routes are tagged by `type`, so serde reports their errors on the route's table.
        assert_eq!(e.key, "routes.\"$connect\"", "{e}");
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
