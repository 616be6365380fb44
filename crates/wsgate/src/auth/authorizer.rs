//! The `$connect` authorizer of a runtime: what it is given and what it decides.

use wsgate_core::config::{self, Config, RequestSource};

pub use super::attempt::{Attempt, Verdict};
use super::jwt::JwtAuthorizer;
use super::request::RequestAuthorizer;
use crate::function::FunctionHost;

/// The AWS account id in `methodArn`s: a local gateway has none.
pub const ACCOUNT_ID: &str = "000000000000";

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
