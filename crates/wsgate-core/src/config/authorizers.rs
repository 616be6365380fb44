//! `[authorizers.NAME]`: who may `$connect`, and where the request carries their identity.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::error::{ConfigError, check_timeout, check_url, err};
use super::functions::Function;
use super::values::{MAX_DURATION, de_duration, de_opt_duration};

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
    /// Required `iss`: the issuer of your identity provider, so that tokens of another issuer
    /// sharing its keys are refused. Required; `"*"` accepts any issuer (or none).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values; a token must carry one of them, so that tokens the same issuer
    /// made for other applications are refused. Required; `"*"` accepts any audience (or none).
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

/// `issuer = "*"`, `audience = "*"`: the claim is not checked.
pub const ANY_CLAIM: &str = "*";

/// What a token's `iss` or `aud` must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedClaim {
    /// `"*"`: anything, or no claim at all.
    Any,
    /// The claim must be there and hold one of these.
    OneOf(Vec<String>),
}

impl ExpectedClaim {
    /// `values` as configured; `None` when there are none (the key is missing).
    fn of(values: &[String]) -> Option<Self> {
        match values {
            [] => None,
            [any] if any == ANY_CLAIM => Some(Self::Any),
            listed => Some(Self::OneOf(listed.to_vec())),
        }
    }
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

/// As written in the config: `route.request.header.NAME`, `route.request.querystring.NAME`.
impl std::fmt::Display for RequestSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Header(name) => write!(f, "route.request.header.{name}"),
            Self::Query(name) => write!(f, "route.request.querystring.{name}"),
        }
    }
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

/// Checks every `[authorizers.NAME]` (`functions` for the names they invoke) and returns each
/// one's sources parsed, by name: a REQUEST authorizer's `identity_sources`, a JWT authorizer's
/// `token_sources`. The error names the first bad key.
pub(super) fn validate(
    authorizers: &BTreeMap<String, Authorizer>,
    functions: &BTreeMap<String, Function>,
) -> Result<BTreeMap<String, Vec<RequestSource>>, ConfigError> {
    let mut sources = BTreeMap::new();
    for (name, authorizer) in authorizers {
        let path = format!("authorizers.{name}");
        let parsed = match authorizer {
            Authorizer::Request(a) => a.validate(&path, functions)?,
            Authorizer::Jwt(j) => j.validate(&path)?,
        };
        sources.insert(name.clone(), parsed);
    }
    Ok(sources)
}

/// Parses `sources`, the key `{path}.{key}[i]` naming the first bad one.
fn parse_sources(
    path: &str,
    key: &str,
    sources: &[String],
) -> Result<Vec<RequestSource>, ConfigError> {
    sources
        .iter()
        .enumerate()
        .map(|(i, source)| {
            RequestSource::parse(source).map_err(|m| err(format!("{path}.{key}[{i}]"), m))
        })
        .collect()
}

impl RequestAuthorizer {
    /// Checks `type = "request"` at `path` and returns its `identity_sources` parsed.
    fn validate(
        &self,
        path: &str,
        functions: &BTreeMap<String, Function>,
    ) -> Result<Vec<RequestSource>, ConfigError> {
        match (&self.url, &self.function) {
            (Some(url), None) => check_url(&format!("{path}.url"), url)?,
            (None, Some(function)) => {
                if !functions.contains_key(function) {
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
        let sources = parse_sources(path, "identity_sources", &self.identity_sources)?;
        check_timeout(&format!("{path}.timeout"), self.timeout)?;
        if self.cache_ttl.is_some_and(|t| t > MAX_DURATION) {
            return Err(err(format!("{path}.cache_ttl"), "must be at most a year"));
        }
        Ok(sources)
    }
}

impl JwtAuthorizer {
    /// The `iss` a token must carry; `None` when `issuer` is not set (an invalid config).
    pub fn expected_issuer(&self) -> Option<ExpectedClaim> {
        ExpectedClaim::of(self.issuer.as_slice())
    }

    /// The `aud` values of which a token must carry one; `None` when `audience` is not set (an
    /// invalid config).
    pub fn expected_audience(&self) -> Option<ExpectedClaim> {
        ExpectedClaim::of(&self.audience)
    }

    /// `issuer` and `audience` are required: without them a token the same identity provider
    /// made for another application, or another tenant of it, would get in. `"*"` opts out.
    fn validate_expected(&self, path: &str) -> Result<(), ConfigError> {
        let required = |key: &str, claim: &str| {
            err(
                format!("{path}.{key}"),
                format!(
                    "required: the `{claim}` your identity provider puts in this API's tokens \
                     (tokens with another one are refused); set {key} = \"*\" to accept any"
                ),
            )
        };
        let listed = [
            ("issuer", "iss", self.issuer.as_slice()),
            ("audience", "aud", self.audience.as_slice()),
        ];
        for (key, claim, values) in listed {
            match ExpectedClaim::of(values) {
                None => return Err(required(key, claim)),
                Some(ExpectedClaim::OneOf(values)) => {
                    if values.iter().any(String::is_empty) {
                        return Err(err(format!("{path}.{key}"), "must not be empty"));
                    }
                    if values.iter().any(|v| v == ANY_CLAIM) {
                        return Err(err(
                            format!("{path}.{key}"),
                            "\"*\" accepts any value and stands alone, not in a list",
                        ));
                    }
                }
                Some(ExpectedClaim::Any) => {}
            }
        }
        Ok(())
    }

    /// Checks `type = "jwt"` at `path` and returns its `token_sources` parsed.
    fn validate(&self, path: &str) -> Result<Vec<RequestSource>, ConfigError> {
        let keys = [
            self.jwks_file.is_some(),
            self.jwks_url.is_some(),
            self.hs256_secret.is_some(),
            self.hs256_secret_env.is_some(),
        ];
        if keys.iter().filter(|k| **k).count() != 1 {
            return Err(err(
                path,
                "needs exactly one of `jwks_file`, `jwks_url`, `hs256_secret` and `hs256_secret_env`",
            ));
        }
        if let Some(url) = &self.jwks_url {
            check_url(&format!("{path}.jwks_url"), url)?;
        }
        if self.hs256_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(err(
                format!("{path}.hs256_secret"),
                "must be at least 32 bytes",
            ));
        }
        self.validate_expected(path)?;
        if self.token_sources.is_empty() {
            return Err(err(format!("{path}.token_sources"), "must not be empty"));
        }
        let sources = parse_sources(path, "token_sources", &self.token_sources)?;
        if self.leeway > Duration::from_secs(3600) {
            return Err(err(format!("{path}.leeway"), "must be at most an hour"));
        }
        if self.jwks_refresh < Duration::from_secs(1) || self.jwks_refresh > MAX_DURATION {
            return Err(err(
                format!("{path}.jwks_refresh"),
                "must be between 1s and a year",
            ));
        }
        Ok(sources)
    }
}
