//! The `$connect` authorizer of a runtime: what it is given and what it decides.

use http::{HeaderMap, StatusCode};
use wsgate_core::authorizer::Allowed;
use wsgate_core::config::{self, Config, RequestSource};
use wsgate_core::event::{ConnectionContext, Invocation, UpgradeRequest};

use super::jwt::JwtAuthorizer;
use super::request::RequestAuthorizer;
use crate::function::FunctionHost;

/// The AWS account id in `methodArn`s: a local gateway has none.
pub const ACCOUNT_ID: &str = "000000000000";

/// What an authorizer reads from an upgrade request.
pub struct Attempt<'a> {
    /// The raw headers.
    pub headers: &'a HeaderMap,
    /// Query parameters in order.
    pub query: &'a [(String, String)],
    /// The connection being opened (its id is already assigned, as on API Gateway).
    pub ctx: &'a ConnectionContext,
    /// The request as events carry it, for the REQUEST authorizer's event.
    pub upgrade: &'a UpgradeRequest,
    /// The invocation's ids and time.
    pub invocation: &'a Invocation<'a>,
}

impl Attempt<'_> {
    /// The value of a source; `None` when missing or empty. Repeated headers are joined with
    /// commas; a repeated query parameter gives its last value, as in the event.
    pub fn source(&self, source: &RequestSource) -> Option<String> {
        let value = match source {
            RequestSource::Header(name) => {
                let values: Vec<&str> = self
                    .headers
                    .get_all(name.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                values.join(",")
            }
            RequestSource::Query(name) => self
                .query
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())?,
        };
        (!value.trim().is_empty()).then_some(value)
    }
}

/// What an authorizer decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let the connection in with this identity; `protocol` is the `Sec-WebSocket-Protocol` to
    /// answer when the token came in that header.
    Allow {
        /// `principalId` and the context.
        allowed: Allowed,
        /// The subprotocol to echo, if the authorizer chose one.
        protocol: Option<String>,
    },
    /// Refuse the upgrade with this status (401, 403 or 500).
    Refuse(StatusCode),
}

/// A configured authorizer, ready to run.
#[derive(Debug)]
pub enum Authorizer {
    /// `type = "request"`.
    Request(RequestAuthorizer),
    /// `type = "jwt"`.
    Jwt(JwtAuthorizer),
}

impl Authorizer {
    /// Builds `[authorizers.NAME]`; the message names what is wrong. `sources` are its identity
    /// or token sources as the config's validation parsed them. `previous` is the authorizer
    /// this one replaces on a reload (a JWT authorizer keeps its fetched JWKS).
    pub fn build(
        name: &str,
        sources: Vec<RequestSource>,
        config: &Config,
        client: &reqwest::Client,
        functions: &FunctionHost,
        region: &str,
        previous: Option<&Self>,
    ) -> Result<Self, String> {
        let definition = config
            .authorizers
            .get(name)
            .ok_or_else(|| format!("no [authorizers.{name}]"))?;
        let method_arn = format!(
            "arn:aws:execute-api:{region}:{ACCOUNT_ID}:{}/{}/$connect",
            config.gateway.api_id, config.gateway.stage
        );
        Ok(match definition {
            config::Authorizer::Request(request) => Self::Request(RequestAuthorizer::build(
                request, sources, config, client, functions, method_arn,
            )?),
            config::Authorizer::Jwt(jwt) => {
                let previous = match previous {
                    Some(Self::Jwt(previous)) => Some(previous),
                    _ => None,
                };
                Self::Jwt(JwtAuthorizer::build(
                    jwt, sources, config, client, previous,
                )?)
            }
        })
    }

    /// Decides on one upgrade.
    pub async fn authorize(&self, attempt: &Attempt<'_>) -> Verdict {
        match self {
            Self::Request(request) => request.authorize(attempt).await,
            Self::Jwt(jwt) => jwt.authorize(attempt).await,
        }
    }
}
