//! The JWT authorizer (a wsgate extension: API Gateway has JWT authorizers for HTTP APIs only).
//! The token comes from a query parameter, a header, or `Sec-WebSocket-Protocol` (the one place a
//! browser can put it); its signature is checked against a JWKS (a file or a URL, cached) or an
//! HS256 secret, then `iss`, `aud`, `exp` and `nbf`. Its claims become the authorizer context and
//! `sub` the principal.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use arc_swap::ArcSwapOption;
use http::StatusCode;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tracing::{info, warn};
use wsgate_core::authorizer;
use wsgate_core::config::{self, Config, ExpectedClaim, RequestSource};

use super::attempt::{Attempt, Verdict};

/// A JWKS document larger than this is refused.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// A token naming an unknown `kid` fetches the JWKS again at most this often.
const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(10);
/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One verification key and the algorithms it may verify.
struct Key {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// Keys fetched from a JWKS URL, and when.
#[derive(Debug)]
struct Fetched {
    keys: Vec<Key>,
    at: Instant,
}

/// What a JWKS URL gave: kept across config reloads while the URL stays the same, so a reload
/// neither fetches again nor depends on the issuer being reachable at that moment.
#[derive(Debug, Default)]
struct UrlCache {
    current: ArcSwapOption<Fetched>,
    // One fetch at a time (others wait for its result); holds when a token with an unknown
    // `kid` last forced one.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Debug)]
enum Keys {
    Fixed(Vec<Key>),
    Url {
        url: reqwest::Url,
        client: reqwest::Client,
        refresh: Duration,
        cache: Arc<UrlCache>,
    },
}

/// A configured JWT authorizer.
#[derive(Debug)]
pub struct JwtAuthorizer {
    keys: Keys,
    sources: Vec<RequestSource>,
    /// `iss` must be one of these (the one `issuer` names); `None`: `issuer = "*"`.
    issuer: Option<Vec<String>>,
    /// `aud` must be (or hold) one of these; `None`: `audience = "*"`.
    audience: Option<Vec<String>>,
    leeway: Duration,
}

/// What a token's `iss` and `aud` must hold (`None` where `"*"` accepts any); an error when
/// the config names either not at all (validation refuses such a config; this fails closed).
fn expected_claims(definition: &config::JwtAuthorizer) -> Result<[Option<Vec<String>>; 2], String> {
    let one_of = |expected: Option<ExpectedClaim>, key: &str| match expected {
        Some(ExpectedClaim::Any) => Ok(None),
        Some(ExpectedClaim::OneOf(values)) => Ok(Some(values)),
        None => Err(format!("no {key}: set one, or {key} = \"*\" to accept any")),
    };
    let issuer = one_of(definition.expected_issuer(), "issuer")?;
    let audience = one_of(definition.expected_audience(), "audience")?;
    Ok([issuer, audience])
}

/// Reads a JWKS document into keys; keys of unsupported types are skipped.
fn keys_of(text: &[u8]) -> Result<Vec<Key>, String> {
    let set: JwkSet =
        serde_json::from_slice(text).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let algorithms = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => continue,
            },
            AlgorithmParameters::OctetKey(_) => {
                vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
            }
            _ => continue,
        };
        // A key that names its algorithm verifies that one only.
        let algorithms = match jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<Algorithm>().ok())
        {
            Some(named) if algorithms.contains(&named) => vec![named],
            Some(_) => continue,
            None => algorithms,
        };
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            key,
            algorithms,
        });
    }
    if keys.is_empty() {
        return Err("the JWKS has no usable key (RSA, EC P-256/P-384 or oct)".into());
    }
    Ok(keys)
}

/// Whether a string has the shape of a compact JWS: three base64url parts.
fn looks_like_jwt(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl JwtAuthorizer {
    /// Builds one from its config and its `token_sources` as the config's validation parsed
    /// them; a `jwks_file` is read now (and again on every reload). The
    /// keys of a `jwks_url` are carried over from `previous` (the authorizer this one replaces on
    /// a reload) when it fetched from the same URL.
    pub fn build(
        definition: &config::JwtAuthorizer,
        sources: Vec<RequestSource>,
        config: &Config,
        client: &reqwest::Client,
        previous: Option<&Self>,
    ) -> Result<Self, String> {
        let [issuer, audience] = expected_claims(definition)?;
        let keys = if let Some(file) = &definition.jwks_file {
            let path = config.path(file);
            let text =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Keys::Fixed(keys_of(&text).map_err(|e| format!("{}: {e}", path.display()))?)
        } else if let Some(url) = &definition.jwks_url {
            let url = reqwest::Url::parse(url).map_err(|e| format!("invalid jwks_url: {e}"))?;
            let cache = match previous.map(|p| &p.keys) {
                Some(Keys::Url {
                    url: before, cache, ..
                }) if *before == url => cache.clone(),
                _ => Arc::default(),
            };
            Keys::Url {
                url,
                client: client.clone(),
                refresh: definition.jwks_refresh,
                cache,
            }
        } else {
            let secret = match (&definition.hs256_secret, &definition.hs256_secret_env) {
                (Some(secret), _) => secret.clone(),
                (None, Some(var)) => std::env::var(var)
                    .ok()
                    .filter(|s| s.len() >= 32)
                    .ok_or_else(|| {
                        format!(
                            "the environment variable {var} is not set or shorter than 32 bytes"
                        )
                    })?,
                (None, None) => {
                    return Err("no key: set jwks_file, jwks_url or hs256_secret".into());
                }
            };
            let key = DecodingKey::from_secret(secret.as_bytes()).map_err(|e| e.to_string())?;
            Keys::Fixed(vec![Key {
                kid: None,
                key,
                algorithms: vec![Algorithm::HS256],
            }])
        };
        Ok(Self {
            keys,
            sources,
            issuer,
            audience,
            leeway: definition.leeway,
        })
    }

    /// The token and, when it came in `Sec-WebSocket-Protocol`, the protocol to echo: another
    /// offered protocol if there is one (`new WebSocket(url, ["chat", token])` gets `chat`),
    /// else the token itself, since a browser fails a handshake that echoes none.
    fn token(&self, attempt: &Attempt<'_>) -> Option<(String, Option<String>)> {
        for source in &self.sources {
            let Some(value) = attempt.source(source) else {
                continue;
            };
            match source {
                RequestSource::Header(name) if name == "sec-websocket-protocol" => {
                    let offered: Vec<&str> = value.split(',').map(str::trim).collect();
                    if let Some(token) = offered.iter().find(|p| looks_like_jwt(p)) {
                        let echo = offered
                            .iter()
                            .find(|p| !looks_like_jwt(p) && !p.is_empty())
                            .unwrap_or(token);
                        return Some(((*token).to_owned(), Some((*echo).to_owned())));
                    }
                }
                RequestSource::Header(_) => {
                    let value = value.trim();
                    let token = match value.split_once(' ') {
                        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
                            rest.trim()
                        }
                        _ => value,
                    };
                    return Some((token.to_owned(), None));
                }
                RequestSource::Query(_) => return Some((value, None)),
            }
        }
        None
    }

    /// Checks the token of one upgrade.
    pub async fn authorize(&self, attempt: &Attempt<'_>) -> Verdict {
        let Some((token, protocol)) = self.token(attempt) else {
            let looked_in: Vec<String> = self.sources.iter().map(ToString::to_string).collect();
            info!(
                connection_id = %attempt.ctx.connection_id,
                looked_in = looked_in.join(", "),
                "refused with 401: no token"
            );
            return Verdict::Refuse(StatusCode::UNAUTHORIZED);
        };
        match self.verify(&token).await {
            Ok(claims) => Verdict::Allow {
                allowed: authorizer::claims_context(&claims),
                protocol,
            },
            Err(Refusal::Invalid(why)) => {
                info!(connection_id = %attempt.ctx.connection_id, %why, "refused with 401: token not accepted");
                Verdict::Refuse(StatusCode::UNAUTHORIZED)
            }
            Err(Refusal::NoKeys(why)) => {
                warn!(%why, "no JWKS keys: refusing connections with 500");
                Verdict::Refuse(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// The claims of a valid token.
    pub async fn verify(&self, token: &str) -> Result<Map<String, Value>, Refusal> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Refusal::Invalid(format!("malformed token: {e}")))?;
        match &self.keys {
            Keys::Fixed(keys) => self.check(token, &header, keys),
            Keys::Url { .. } => {
                let fetched = self.fetched(None).await?;
                match self.check(token, &header, &fetched.keys) {
                    Err(Refusal::Invalid(why))
                        if header.kid.is_some()
                            && !has_kid(&fetched.keys, header.kid.as_deref()) =>
                    {
                        // A key the cached set lacks: the issuer may have rotated its keys.
                        let newer = self.fetched(Some(fetched.at)).await?;
                        if newer.at == fetched.at {
                            return Err(Refusal::Invalid(why));
                        }
                        self.check(token, &header, &newer.keys)
                    }
                    other => other,
                }
            }
        }
    }

    fn check(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
        keys: &[Key],
    ) -> Result<Map<String, Value>, Refusal> {
        let candidates = keys.iter().filter(|k| {
            k.algorithms.contains(&header.alg)
                && match (&header.kid, &k.kid) {
                    (Some(wanted), Some(kid)) => wanted == kid,
                    (Some(_), None) => keys.len() == 1,
                    (None, _) => true,
                }
        });
        let mut last = Refusal::Invalid(format!(
            "no key for alg {:?} and kid {:?}",
            header.alg, header.kid
        ));
        for key in candidates {
            let validation = self.validation(header.alg);
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) => last = Refusal::Invalid(error.to_string()),
            }
        }
        Err(last)
    }

    /// What a token verified with `alg` must carry: `exp` (and `nbf`, when there) within the
    /// leeway; the configured `iss` and one of the configured `aud` values. jsonwebtoken checks a
    /// claim only when the token has it, so the configured ones are required too: a token without
    /// `aud` is no more for this API than one with another `aud`.
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(issuer);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(audience);
                required.push("aud");
            }
            // `audience = "*"`: any `aud`, or none.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// The current keys of a JWKS URL: fetched when there are none, when older than
    /// `jwks_refresh`, or (`stale_since`) when newer ones are wanted because a token named an
    /// unknown `kid` — at most every [`UNKNOWN_KID_REFETCH`]. A failed fetch keeps the old keys.
    async fn fetched(&self, stale_since: Option<Instant>) -> Result<Arc<Fetched>, Refusal> {
        let Keys::Url {
            url,
            client,
            refresh,
            cache,
        } = &self.keys
        else {
            return Err(Refusal::NoKeys("not a JWKS URL".into()));
        };
        let UrlCache { current, fetching } = &**cache;
        let fresh = |f: &Arc<Fetched>| match stale_since {
            Some(at) => f.at > at,
            None => f.at.elapsed() < *refresh,
        };
        if let Some(f) = current.load_full()
            && fresh(&f)
        {
            return Ok(f);
        }
        let mut last_forced = fetching.lock().await;
        if let Some(f) = current.load_full() {
            // Fetched while this call waited, or a forced fetch was tried too recently.
            let recently = last_forced.is_some_and(|t| t.elapsed() < UNKNOWN_KID_REFETCH);
            if fresh(&f) || (stale_since.is_some() && recently) {
                return Ok(f);
            }
        }
        if stale_since.is_some() {
            *last_forced = Some(Instant::now());
        }
        match fetch(client, url).await {
            Ok(keys) => {
                let f = Arc::new(Fetched {
                    keys,
                    at: Instant::now(),
                });
                current.store(Some(f.clone()));
                Ok(f)
            }
            Err(why) => match current.load_full() {
                Some(old) => {
                    warn!(%url, %why, "JWKS fetch failed; keeping the keys fetched before");
                    Ok(old)
                }
                None => Err(Refusal::NoKeys(format!("{url}: {why}"))),
            },
        }
    }
}

fn has_kid(keys: &[Key], kid: Option<&str>) -> bool {
    keys.iter().any(|k| k.kid.as_deref() == kid)
}

async fn fetch(client: &reqwest::Client, url: &reqwest::Url) -> Result<Vec<Key>, String> {
    let work = async {
        let mut response = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err("the JWKS is larger than 1 MiB".into());
            }
            body.extend_from_slice(&chunk);
        }
        keys_of(&body)
    };
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed, forged, expired, not yet valid, or for another issuer or audience: 401.
    Invalid(String),
    /// No key could be had: 500.
    NoKeys(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_jws_shapes_count_as_tokens() {
        assert!(looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"));
        assert!(!looks_like_jwt("chat"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b.c=d"));
    }
}
