//! The configuration model: one serde tree, defaults equal to API Gateway's quotas, and a
//! `validate()` that names the bad key and hands back what it parsed ([`Validated`]). Reading
//! files and the environment is the caller's job; this module only parses text and applies
//! overrides it is handed.
//!
//! One file per section of the file, each with its types, its checks and their tests:
//! `[gateway]`, `[limits]`, `[management]`, `[routes]` (with their integrations),
//! `[authorizers]`, `[functions]` and `[cluster]`. Below them, what the sections share: `error.rs`
//! ([`ConfigError`] and the checks more than one section makes) and `values.rs` (bounds and the
//! duration parser).

mod authorizers;
mod cluster;
mod error;
mod functions;
mod gateway;
mod limits;
mod management;
mod routes;
mod values;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub use self::authorizers::{
    ANY_CLAIM, Authorizer, ExpectedClaim, JwtAuthorizer, RequestAuthorizer, RequestSource,
};
pub use self::cluster::{Cluster, RedisTarget, redacted};
pub use self::error::ConfigError;
use self::error::err;
pub use self::functions::{Function, FunctionRuntime};
pub use self::gateway::{BinaryFrames, GatewayConfig, Plaintext, TlsFiles};
pub use self::limits::{FanoutOverflow, Limits};
pub use self::management::{Credential, Management, ManagementAuth, Operation, Token};
pub use self::routes::{Integration, Route};
pub use self::values::{AWS_MAX_POST_BYTES, MAX_DURATION};
use crate::forwarded::TrustedProxies;
use crate::route::SelectionExpression;

/// Environment variable overriding `gateway.listen`.
pub const ENV_LISTEN: &str = "WSGATE_LISTEN";
/// Environment variable overriding `gateway.stage`.
pub const ENV_STAGE: &str = "WSGATE_STAGE";

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
    /// Several nodes sharing one API through Redis; absent, one node.
    #[serde(default)]
    pub cluster: Option<Cluster>,
    /// The folder relative paths (`functions.*.dir`) are resolved against: the config file's
    /// folder when loaded from a file. Not a key of the file.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// What [`Config::validate`] parsed on its way: the gateway uses these as they are, and never
/// parses the same text again.
#[derive(Debug, Clone)]
pub struct Validated {
    /// `gateway.listen`.
    pub listen: SocketAddr,
    /// `gateway.route_selection_expression`.
    pub selection_expression: SelectionExpression,
    /// `gateway.trusted_proxies`.
    pub trusted_proxies: TrustedProxies,
    /// `management.listen`, when set.
    pub management_listen: Option<SocketAddr>,
    /// The `body` templates of `type = "mock"` routes, by route key (routes without a body are
    /// not in it).
    pub mock_bodies: BTreeMap<String, SelectionExpression>,
    /// Each authorizer's sources, by authorizer name: a REQUEST authorizer's `identity_sources`,
    /// a JWT authorizer's `token_sources`.
    pub authorizer_sources: BTreeMap<String, Vec<RequestSource>>,
}

/// The dotted key at a byte offset of a TOML text (`limits.idle_timeout`,
/// `routes."$connect".authorizer`, `management.credentials[0].secret_access_key`): the deepest
/// key whose name or value spans the offset. Errors from serde carry only a span; users want the
/// key. Read by toml's own parser, so comments, quoted keys, dotted keys and inline tables count as
/// TOML says; a text that does not parse gives what could be read of it.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let (table, _) = toml::de::DeTable::parse_recoverable(text);
    let mut walk = Walk {
        offset,
        deepest: None,
    };
    walk.table(table.get_ref(), "", 0);
    walk.deepest.map(|(_, path)| path)
}

/// A search for [`key_at`]: the deepest path whose key or value spans `offset` so far.
struct Walk {
    offset: usize,
    deepest: Option<(usize, String)>,
}

impl Walk {
    /// Keeps `path` (at `depth`) if `span` holds the offset and it is deeper than the best yet.
    fn consider(&mut self, span: &std::ops::Range<usize>, depth: usize, path: &str) {
        if span.contains(&self.offset) && self.deepest.as_ref().is_none_or(|(d, _)| depth > *d) {
            self.deepest = Some((depth, path.to_owned()));
        }
    }

    fn table(&mut self, table: &toml::de::DeTable<'_>, prefix: &str, depth: usize) {
        for (key, value) in table {
            let name = key.get_ref();
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            let name = if plain {
                name.to_string()
            } else {
                format!("\"{name}\"")
            };
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}.{name}")
            };
            self.consider(&key.span(), depth + 1, &path);
            self.consider(&value.span(), depth + 1, &path);
            // Tables' spans do not always cover their keys (a `[header]`'s covers the header):
            // every table is searched.
            self.value(value.get_ref(), &path, depth + 1);
        }
    }

    /// The tables inside a value; an array's items are numbered (`[0]`).
    fn value(&mut self, value: &toml::de::DeValue<'_>, path: &str, depth: usize) {
        match value {
            toml::de::DeValue::Table(table) => self.table(table, path, depth),
            toml::de::DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("{path}[{i}]");
                    self.consider(&item.span(), depth + 1, &path);
                    self.value(item.get_ref(), &path, depth + 1);
                }
            }
            _ => {}
        }
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

    /// Checks everything serde cannot, section by section, and returns what it parsed; the error
    /// names the first bad key.
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        let gateway = self.gateway.validate()?;
        self.limits.validate(&self.management)?;
        let management_listen = self.management.validate()?;
        let mock_bodies = routes::validate(&self.routes, &self.authorizers, &self.functions)?;
        let authorizer_sources = authorizers::validate(&self.authorizers, &self.functions)?;
        functions::validate(&self.functions)?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        Ok(Validated {
            listen: gateway.listen,
            selection_expression: gateway.selection_expression,
            trusted_proxies: gateway.trusted_proxies,
            management_listen,
            mock_bodies,
            authorizer_sources,
        })
    }

    /// Reads a config file; relative paths in it are resolved against its folder.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path.display().to_string(), format!("cannot read: {e}")))?;
        let mut config = Self::from_toml(&text)?;
        config.base_dir = path.parent().map(PathBuf::from).unwrap_or_default();
        Ok(config)
    }

    /// A path from the config file (TLS files, a JWKS file), resolved against `base_dir`.
    pub fn path(&self, path: &std::path::Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// What is valid but likely not what the author meant, one sentence each.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.routes.is_empty() {
            warnings.push(
                "no routes: every message is answered {\"message\": \"Forbidden\"}, as API Gateway \
                 answers a message no route takes; add [routes.\"$default\"] to take them all"
                    .to_owned(),
            );
        }
        warnings
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
    use std::time::Duration;

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
    fn a_key_is_named_exactly_whatever_surrounds_it() {
        let key = |text: &str| Config::from_toml(text).expect_err("an unknown key").key;
        // A table header with a comment, as the README's own example has.
        let text = "[limits]  # defaults are API Gateway's quotas\nidle_timout = \"10m\"\n";
        assert_eq!(key(text), "limits.idle_timout");
        assert_eq!(
            key("[routes.\"$connect\"]  # the door\ntyp = \"mock\"\n"),
            "routes.\"$connect\".typ"
        );
        assert_eq!(key("limits.idle_timout = \"1m\"\n"), "limits.idle_timout");
        assert_eq!(key("[routes.\"a.b\"]\ntyp = 1\n"), "routes.\"a.b\".typ");
        assert_eq!(
            key("[limits]\n# a comment = with an equals sign\nmax_frame = 1\n"),
            "limits.max_frame"
        );
        let credentials = "[management]\n[[management.credentials]]\naccess_key_id = \"A\"\nsecret_access_key = \"s\"\n[[management.credentials]]\naccess_key_id = \"B\"\nsecret = 1\n";
        assert_eq!(key(credentials), "management.credentials[1].secret");
        let e = Config::from_toml("[limits]\nmax_frame_bytes = \"big\"  # bytes\n")
            .expect_err("a string");
        assert_eq!(e.key, "limits.max_frame_bytes");
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn a_config_without_routes_is_valid_but_warned_about() {
        let config = Config::from_toml("[gateway]\nstage = \"dev\"\n").expect("parses");
        config.validate().expect("valid");
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("Forbidden"), "{warnings:?}");
        let routed = Config::from_toml("[routes.\"$default\"]\ntype = \"mock\"\n").expect("parses");
        assert!(routed.warnings().is_empty());
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
            ("[gateway]\nregion = \"eu:west-1\"", "gateway.region"),
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

    /// A JWT authorizer without `audience` would let in tokens its identity provider made for
    /// any other application (and without `issuer`, those of any issuer sharing the keys):
    /// `wsgate check` and the start fail naming the key, unless `"*"` says so on purpose.
    #[test]
    fn a_jwt_authorizer_needs_issuer_and_audience_or_a_star() {
        let jwt = |extra: &str| {
            format!(
                "[authorizers.users]\ntype = \"jwt\"\njwks_url = \"https://idp.example/jwks\"\n{extra}"
            )
        };
        let fails = |extra: &str, key: &str, says: &str| {
            let e = Config::from_toml(&jwt(extra))
                .and_then(|c| c.validate())
                .expect_err(extra);
            assert_eq!(e.key, key, "{extra}: {e}");
            assert!(e.to_string().contains(says), "{extra}: {e}");
        };
        fails(
            "issuer = \"https://idp.example/\"",
            "authorizers.users.audience",
            "required: the `aud` your identity provider puts in this API's tokens (tokens with another one are refused); set audience = \"*\" to accept any",
        );
        fails(
            "issuer = \"https://idp.example/\"\naudience = []",
            "authorizers.users.audience",
            "set audience = \"*\"",
        );
        fails(
            "audience = \"my-api\"",
            "authorizers.users.issuer",
            "required: the `iss` your identity provider puts in this API's tokens (tokens with another one are refused); set issuer = \"*\" to accept any",
        );
        fails("", "authorizers.users.issuer", "required");
        fails(
            "issuer = \"\"\naudience = \"my-api\"",
            "authorizers.users.issuer",
            "must not be empty",
        );
        fails(
            "issuer = \"https://idp.example/\"\naudience = [\"my-api\", \"*\"]",
            "authorizers.users.audience",
            "stands alone",
        );

        let valid = |extra: &str| {
            let config = Config::from_toml(&jwt(extra)).expect(extra);
            config.validate().expect(extra);
            let Authorizer::Jwt(jwt) = &config.authorizers["users"] else {
                panic!("jwt");
            };
            (jwt.expected_issuer(), jwt.expected_audience())
        };
        assert_eq!(
            valid("issuer = \"*\"\naudience = \"*\""),
            (Some(ExpectedClaim::Any), Some(ExpectedClaim::Any))
        );
        assert_eq!(
            valid("issuer = \"https://idp.example/\"\naudience = [\"a\", \"b\"]"),
            (
                Some(ExpectedClaim::OneOf(vec!["https://idp.example/".into()])),
                Some(ExpectedClaim::OneOf(vec!["a".into(), "b".into()]))
            )
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
    fn environment_overrides_the_file() {
        let mut config = Config::from_toml("[gateway]\nlisten = \"127.0.0.1:1\"").expect("parses");
        config.apply_env(|k| (k == ENV_LISTEN).then(|| "127.0.0.1:2".to_owned()));
        assert_eq!(config.gateway.listen, "127.0.0.1:2");
        assert_eq!(config.gateway.stage, "dev");
    }

    /// `examples/wsgate.toml` says it sets "every key with its default": each key it sets in a
    /// section that has defaults must leave that section equal to `Config::default()`'s.
    #[test]
    fn the_example_file_states_the_defaults() {
        let text = include_str!("../../../../examples/wsgate.toml");
        Config::from_toml(text)
            .and_then(|c| c.validate())
            .expect("examples/wsgate.toml is valid");
        let file: toml::Table = text.parse().expect("TOML");
        let defaults = Config::default();
        let mut compared = 0;
        for (section, keys) in &file {
            // Named tables: a route, an authorizer or a function has no defaults to state.
            if ["routes", "authorizers", "functions"].contains(&section.as_str()) {
                continue;
            }
            let toml::Value::Table(keys) = keys else {
                panic!("examples/wsgate.toml: {section} is not a table");
            };
            for (key, value) in keys {
                let one = toml::Table::from_iter([(
                    section.clone(),
                    toml::Value::Table(toml::Table::from_iter([(key.clone(), value.clone())])),
                )]);
                let config: Config = toml::Value::Table(one)
                    .try_into()
                    .unwrap_or_else(|e| panic!("examples/wsgate.toml: {section}.{key}: {e}"));
                let default = match section.as_str() {
                    "gateway" => config.gateway == defaults.gateway,
                    "limits" => config.limits == defaults.limits,
                    "management" => config.management == defaults.management,
                    other => panic!("examples/wsgate.toml: [{other}] is not compared"),
                };
                assert!(
                    default,
                    "examples/wsgate.toml: {section}.{key} = {value} is not the default"
                );
                compared += 1;
            }
        }
        // The keys of [gateway], [limits] and [management] that the file sets today.
        assert!(compared >= 26, "only {compared} keys compared");
    }

    /// One value of each kind that validation parses, as the gateway gets it.
    #[test]
    fn validation_returns_what_it_parsed() {
        let config = Config::from_toml(SECURITY_EXAMPLE).expect("parses");
        let validated = config.validate().expect("valid");
        assert_eq!(validated.listen, "127.0.0.1:8080".parse().expect("address"));
        assert_eq!(
            validated.management_listen,
            Some("127.0.0.1:9090".parse().expect("address"))
        );
        assert_eq!(
            validated.selection_expression,
            SelectionExpression::parse("$request.body.action").expect("parses")
        );
        assert_eq!(
            validated.authorizer_sources["byheader"],
            [
                RequestSource::Header("authorization".into()),
                RequestSource::Query("token".into())
            ]
        );
        assert_eq!(validated.authorizer_sources["tokens"].len(), 2);
        assert!(validated.mock_bodies.is_empty());
    }
}
