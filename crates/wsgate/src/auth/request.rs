//! The REQUEST authorizer: API Gateway's Lambda authorizer for `$connect`, called with the
//! authorizer event over HTTP (`url`) or as a local function (`function`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use http::StatusCode;
use tracing::{info, warn};
use wsgate_core::authorizer::{self, Decision};
use wsgate_core::config::{self, Config, RequestSource};
use wsgate_core::event;

use super::attempt::{Attempt, Verdict};
use crate::function::{FunctionError, FunctionHost, Pool};

/// Cached outputs at most; past it the expired ones go, then all.
const CACHE_ENTRIES: usize = 10_000;
/// Answers larger than this are not read: an output may be 8 KB.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

enum Backend {
    Url(reqwest::Url, reqwest::Client),
    Function(Arc<Pool>),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Url(url, _) => write!(f, "Url({url})"),
            Self::Function(pool) => write!(f, "Function({})", pool.spec().name),
        }
    }
}

/// Why a call gave no output.
enum CallError {
    /// The authorizer said `Unauthorized` (a function raising it, or an HTTP 401).
    Unauthorized,
    /// An HTTP authorizer answered 403.
    Forbidden,
    /// Anything else.
    Failed(String),
}

/// A configured REQUEST authorizer.
#[derive(Debug)]
pub struct RequestAuthorizer {
    backend: Backend,
    identity_sources: Vec<RequestSource>,
    method_arn: String,
    timeout: Duration,
    cache_ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Decision)>>,
}

impl RequestAuthorizer {
    /// Builds one from its config and its `identity_sources` as the config's validation parsed
    /// them.
    pub fn build(
        definition: &config::RequestAuthorizer,
        identity_sources: Vec<RequestSource>,
        config: &Config,
        client: &reqwest::Client,
        functions: &FunctionHost,
        method_arn: String,
    ) -> Result<Self, String> {
        let timeout = definition
            .timeout
            .unwrap_or(config.limits.integration_timeout);
        let backend = match (&definition.url, &definition.function) {
            (Some(url), _) => Backend::Url(
                reqwest::Url::parse(url).map_err(|e| format!("invalid url {url:?}: {e}"))?,
                client.clone(),
            ),
            (None, Some(name)) => {
                let function = config
                    .functions
                    .get(name)
                    .ok_or_else(|| format!("no [functions.{name}]"))?;
                Backend::Function(functions.pool(functions.spec(name, function, config)?))
            }
            (None, None) => return Err("needs `url` or `function`".into()),
        };
        Ok(Self {
            backend,
            identity_sources,
            method_arn,
            timeout,
            cache_ttl: definition.cache_ttl.unwrap_or_default(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Runs the authorizer for one upgrade.
    pub async fn authorize(&self, attempt: &Attempt<'_>) -> Verdict {
        // A missing identity source is a 401 without a call, as on API Gateway.
        let mut identity = Vec::with_capacity(self.identity_sources.len());
        for source in &self.identity_sources {
            match attempt.source(source) {
                Some(value) => identity.push(value),
                None => {
                    // Every source is required: one missing refuses, even when others are there.
                    info!(
                        connection_id = %attempt.ctx.connection_id,
                        %source,
                        "refused with 401: identity source missing (every one listed is required); the authorizer was not called"
                    );
                    return Verdict::Refuse(StatusCode::UNAUTHORIZED);
                }
            }
        }
        let cache_key =
            (!self.cache_ttl.is_zero() && !identity.is_empty()).then(|| identity.join("\u{0}"));
        if let Some(key) = &cache_key
            && let Some(decision) = self.cached(key)
        {
            return verdict(decision);
        }
        let event = event::authorizer_request(
            attempt.ctx,
            attempt.invocation,
            attempt.upgrade,
            &self.method_arn,
        );
        let output = match self.call(event).await {
            Ok(output) => output,
            Err(CallError::Unauthorized) => {
                info!(connection_id = %attempt.ctx.connection_id, "refused with 401: the authorizer answered Unauthorized");
                return Verdict::Refuse(StatusCode::UNAUTHORIZED);
            }
            Err(CallError::Forbidden) => {
                info!(connection_id = %attempt.ctx.connection_id, "refused with 403: the authorizer answered Forbidden");
                return Verdict::Refuse(StatusCode::FORBIDDEN);
            }
            Err(CallError::Failed(why)) => {
                warn!(connection_id = %attempt.ctx.connection_id, %why, "authorizer failed: 500");
                return Verdict::Refuse(StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        match authorizer::evaluate(&output, &self.method_arn) {
            Ok(decision) => {
                if let Some(key) = cache_key {
                    self.remember(key, decision.clone());
                }
                verdict(decision)
            }
            Err(error) => {
                warn!(connection_id = %attempt.ctx.connection_id, %error, "authorizer output refused: 500");
                Verdict::Refuse(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    fn cached(&self, key: &str) -> Option<Decision> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (at, decision) = cache.get(key)?;
        (at.elapsed() < self.cache_ttl).then(|| decision.clone())
    }

    fn remember(&self, key: String, decision: Decision) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            let ttl = self.cache_ttl;
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), decision));
    }

    async fn call(&self, event: Vec<u8>) -> Result<Vec<u8>, CallError> {
        match &self.backend {
            Backend::Url(url, client) => {
                let work = async {
                    let mut response = client
                        .post(url.clone())
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(event)
                        .send()
                        .await
                        .map_err(|e| CallError::Failed(format!("unreachable: {e}")))?;
                    match response.status().as_u16() {
                        200..=299 => {}
                        401 => return Err(CallError::Unauthorized),
                        403 => return Err(CallError::Forbidden),
                        status => return Err(CallError::Failed(format!("answered {status}"))),
                    }
                    let mut body = Vec::new();
                    while let Some(chunk) = response
                        .chunk()
                        .await
                        .map_err(|e| CallError::Failed(e.to_string()))?
                    {
                        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                            return Err(CallError::Failed("answer too large".into()));
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Ok(body)
                };
                tokio::time::timeout(self.timeout, work)
                    .await
                    .unwrap_or_else(|_| Err(CallError::Failed("timed out".into())))
            }
            Backend::Function(pool) => match pool.invoke(event).await {
                Ok(payload) => Ok(payload.to_vec()),
                Err(FunctionError::Handler { message, .. }) if message == "Unauthorized" => {
                    Err(CallError::Unauthorized)
                }
                Err(error) => Err(CallError::Failed(error.to_string())),
            },
        }
    }
}

fn verdict(decision: Decision) -> Verdict {
    match decision {
        Decision::Allow(allowed) => Verdict::Allow {
            allowed,
            protocol: None,
        },
        Decision::Deny => Verdict::Refuse(StatusCode::FORBIDDEN),
    }
}
