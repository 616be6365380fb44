//! `[management]`: how the `@connections` API is served and who may call it.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, err};
use super::values::{AWS_MAX_POST_BYTES, de_duration};

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
    /// `GET @cluster`: the live nodes.
    Cluster,
    /// `GET /metrics`: the Prometheus metrics.
    Metrics,
    /// `GET @console/overview`: what the web console shows (counts, routes, functions, errors).
    Console,
}

/// `[[management.credentials]]`: a SigV4 key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
    /// With `auth = "none"`, whether callers that are not on a loopback address may use the
    /// management API. Default false: they get 403 `ForbiddenException`, as Redis's protected
    /// mode answers, since anyone who reaches the port could push to, list and close every
    /// connection. Set it only behind a network that already decides who may call.
    pub allow_unauthenticated_remote: bool,
    /// How long a request's body may take to arrive once its headers are in; slower ones get
    /// 408 and are closed. Default 10 s.
    #[serde(deserialize_with = "de_duration")]
    pub body_timeout: Duration,
    /// Management requests one client address may have reading their bodies at once; past it
    /// 429 `LimitExceededException`. 0 = unlimited. Default 256.
    pub max_body_reads_per_ip: usize,
    /// Failed authentications one address may make per second (a burst of as many), whatever
    /// `limits.management_requests_per_second` says; past it 429 `LimitExceededException`.
    /// Loopback addresses count too. 0 = unlimited. Default 5.
    pub auth_failures_per_second: u32,
    /// With `auth = "sigv4"`, remember every accepted signature for `max_clock_skew` and answer
    /// a second request with the same signature 403 (AWS accepts replays within the skew).
    /// Costs about 100 bytes per request in the window. Default false.
    pub reject_replayed_signatures: bool,
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
            allow_unauthenticated_remote: false,
            body_timeout: Duration::from_secs(10),
            max_body_reads_per_ip: 256,
            auth_failures_per_second: 5,
            reject_replayed_signatures: false,
        }
    }
}

impl Management {
    /// Checks `[management]` and returns `management.listen` parsed; the error names the first
    /// bad key.
    pub(super) fn validate(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.max_payload_bytes == 0 {
            return Err(err(
                "management.max_payload_bytes",
                "must be greater than zero",
            ));
        }
        if self.body_timeout.is_zero() || self.body_timeout > Duration::from_secs(3600) {
            return Err(err(
                "management.body_timeout",
                "must be greater than zero and at most an hour",
            ));
        }
        if self.auth == ManagementAuth::Token && self.tokens.is_empty() {
            return Err(err(
                "management.tokens",
                "auth = \"token\" needs at least one [[management.tokens]]",
            ));
        }
        self.validate_tokens()?;
        let listen = self
            .listen
            .as_ref()
            .map(|listen| {
                listen.parse::<SocketAddr>().map_err(|_| {
                    err(
                        "management.listen",
                        format!("{listen:?} is not an address like 127.0.0.1:9090"),
                    )
                })
            })
            .transpose()?;
        if self.auth == ManagementAuth::Sigv4 && self.credentials.is_empty() {
            return Err(err(
                "management.credentials",
                "auth = \"sigv4\" needs at least one [[management.credentials]]",
            ));
        }
        for (i, c) in self.credentials.iter().enumerate() {
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
        Ok(listen)
    }

    /// `[[management.tokens]]`: named once each, with a long enough token or its variable.
    fn validate_tokens(&self) -> Result<(), ConfigError> {
        for (i, t) in self.tokens.iter().enumerate() {
            let path = format!("management.tokens[{i}]");
            if t.name.is_empty() {
                return Err(err(format!("{path}.name"), "must not be empty"));
            }
            if self.tokens[..i].iter().any(|other| other.name == t.name) {
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_returns_the_management_listener_parsed() {
        assert_eq!(Management::default().validate(), Ok(None));
        let management = Management {
            listen: Some("[::1]:9090".into()),
            ..Management::default()
        };
        assert_eq!(
            management.validate(),
            Ok(Some("[::1]:9090".parse().expect("address")))
        );
    }
}
