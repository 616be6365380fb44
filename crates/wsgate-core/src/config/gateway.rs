//! `[gateway]`: the listener, the stage and the API's identity.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::error::{ConfigError, err};
use crate::forwarded::TrustedProxies;
use crate::route::SelectionExpression;

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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
    /// The AWS region the gateway stands for: in REQUEST authorizers' `methodArn` and the
    /// functions' `AWS_REGION`. Default: the `AWS_REGION` environment variable, else `us-east-1`.
    pub region: Option<String>,
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
    /// Where resumable sessions (`wsgate.reliable.v1`) are kept across a restart: on SIGTERM
    /// they are closed with 1012 and written here, and a gateway started with the same folder
    /// takes their resumes for the rest of their window. Relative to the config file. Default:
    /// none (sessions end at exit).
    pub state_dir: Option<PathBuf>,
}

/// `[gateway.tls]`: PEM files, relative to the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// What a plain-HTTP request on this TLS listener gets: `refuse` (the default) answers 400
    /// and reads nothing more, so a client that typed `ws://` by mistake learns it before its
    /// token travels in the clear again; `accept` serves plain HTTP and TLS on the one port.
    #[serde(default)]
    pub plaintext: Plaintext,
}

/// `gateway.tls.plaintext`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plaintext {
    /// Answer plain HTTP with 400.
    #[default]
    Refuse,
    /// Serve plain HTTP beside TLS.
    Accept,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            stage: "dev".into(),
            api_id: "local".into(),
            route_selection_expression: "$request.body.action".into(),
            domain_name: None,
            region: None,
            binary_frames: BinaryFrames::Reject,
            tls: None,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            state_dir: None,
        }
    }
}

/// What validating `[gateway]` parsed.
#[derive(Debug)]
pub(super) struct ParsedGateway {
    /// `gateway.listen`.
    pub listen: SocketAddr,
    /// `gateway.route_selection_expression`.
    pub selection_expression: SelectionExpression,
    /// `gateway.trusted_proxies`.
    pub trusted_proxies: TrustedProxies,
}

impl GatewayConfig {
    /// Checks `[gateway]` and returns what it parsed; the error names the first bad key.
    pub(super) fn validate(&self) -> Result<ParsedGateway, ConfigError> {
        let listen = self.listen.parse().map_err(|_| {
            err(
                "gateway.listen",
                format!("{:?} is not an address like 127.0.0.1:8080", self.listen),
            )
        })?;
        let stage = &self.stage;
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
        // `/healthz`, `/readyz` and `/metrics` are served on the gateway's port.
        if ["healthz", "readyz", "metrics"].contains(&stage.as_str()) {
            return Err(err(
                "gateway.stage",
                format!("{stage:?} is taken by /{stage} (health and metrics); choose another"),
            ));
        }
        if self.api_id.is_empty() {
            return Err(err("gateway.api_id", "must not be empty"));
        }
        if let Some(region) = &self.region
            && !valid_region(region)
        {
            return Err(err(
                "gateway.region",
                format!(
                    "{region:?} is not a region name like eu-west-1 (lowercase letters, digits and '-')"
                ),
            ));
        }
        let selection_expression = SelectionExpression::parse(&self.route_selection_expression)
            .map_err(|e| err("gateway.route_selection_expression", e.to_string()))?;
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            check_origin(origin)
                .map_err(|message| err(format!("gateway.allowed_origins[{i}]"), message))?;
        }
        let trusted_proxies = TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|message| err("gateway.trusted_proxies", message))?;
        Ok(ParsedGateway {
            listen,
            selection_expression,
            trusted_proxies,
        })
    }
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

/// A region name as AWS writes them (`us-east-1`, `eu-central-2`, `us-gov-west-1`), or any
/// other of the same characters (`local`): it goes into ARNs, where `:` or `/` would break them.
fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_returns_the_listener_expression_and_proxies_parsed() {
        let gateway = GatewayConfig {
            listen: "0.0.0.0:9000".into(),
            route_selection_expression: "${request.body.svc}/${request.body.op}".into(),
            trusted_proxies: vec!["10.0.0.0/8".into()],
            ..GatewayConfig::default()
        };
        let parsed = gateway.validate().expect("valid");
        assert_eq!(parsed.listen, "0.0.0.0:9000".parse().expect("address"));
        assert_eq!(
            parsed.selection_expression.source(),
            "${request.body.svc}/${request.body.op}"
        );
        assert!(parsed.trusted_proxies.contains([10, 1, 2, 3].into()));
        assert!(!parsed.trusted_proxies.contains([192, 0, 2, 7].into()));
    }
}
