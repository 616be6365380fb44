//! Who is calling the management API, decided in two steps. From the headers alone, before a
//! byte of the body is read: no credential, an unknown bearer token, a SigV4 key we do not know,
//! a date outside the skew, another service — and, with `auth = "none"`, a browser page of
//! another site or a rebound DNS name — are refused at once. Then, for SigV4 only, the
//! signature over the body.

use std::net::IpAddr;

use http::header;
use http::request::Parts;
use wsgate_core::config::{ManagementAuth, Operation};
use wsgate_core::error::MgmtError;

use crate::auth::replay::{Replay, ReplayCache};
use crate::auth::sigv4::{self, Claim, SigningKeys};
use crate::limits;
use crate::state::Deployment;

/// An authenticated caller: what the rate limit counts and what it may call (`None`: all).
pub(super) struct Caller<'a> {
    pub key: String,
    pub operations: Option<&'a [Operation]>,
}

/// What the headers established.
pub(super) enum FromHeaders<'a> {
    /// The caller is known already.
    Known(Caller<'a>),
    /// A SigV4 claim that holds so far; the signature over the body is checked next.
    Signed(Claim<'a>),
}

/// The first step: everything that can be decided without the body.
pub(super) fn from_headers<'a>(
    deployment: &'a Deployment,
    parts: &Parts,
    peer: IpAddr,
) -> Result<FromHeaders<'a>, MgmtError> {
    let management = &deployment.config.management;
    match management.auth {
        ManagementAuth::None => {
            // Like Redis's protected mode: no credential means callers on this machine only.
            if !management.allow_unauthenticated_remote && !limits::is_loopback(peer) {
                return Err(MgmtError::RemoteUnauthenticated);
            }
            same_machine(deployment, parts)?;
            Ok(FromHeaders::Known(Caller {
                key: peer.to_string(),
                operations: None,
            }))
        }
        ManagementAuth::Token => bearer(deployment, parts).map(FromHeaders::Known),
        ManagementAuth::Sigv4 => sigv4::check_claim(
            &management.credentials,
            parts,
            management.max_clock_skew,
            std::time::SystemTime::now(),
        )
        .map(FromHeaders::Signed)
        .map_err(|failure| {
            tracing::info!(%failure, "management call refused with 403: bad SigV4 signature");
            MgmtError::Forbidden
        }),
    }
}

/// The second step, once the body is in: a SigV4 signature over it (with the signing key kept
/// from an earlier call of the day), used once when `reject_replayed_signatures` is on.
pub(super) fn with_body<'a>(
    from_headers: FromHeaders<'a>,
    deployment: &Deployment,
    parts: &Parts,
    body: &[u8],
    keys: &SigningKeys,
    replays: &ReplayCache,
) -> Result<Caller<'a>, MgmtError> {
    let claim = match from_headers {
        FromHeaders::Known(caller) => return Ok(caller),
        FromHeaders::Signed(claim) => claim,
    };
    let credential = sigv4::verify_claim(&claim, keys, parts, body).map_err(|failure| {
        tracing::info!(%failure, "management call refused with 403: bad SigV4 signature");
        MgmtError::Forbidden
    })?;
    let management = &deployment.config.management;
    if management.reject_replayed_signatures {
        let expires_at = claim.expires_at(management.max_clock_skew);
        match replays.first_use(claim.signature(), expires_at) {
            Ok(()) => {}
            Err(Replay::Seen) => return Err(MgmtError::Replayed),
            Err(Replay::Full) => {
                return Err(MgmtError::LimitExceeded(
                    "management.reject_replayed_signatures (1000000 signatures remembered)",
                ));
            }
        }
    }
    Ok(Caller {
        key: format!("key:{}", credential.access_key_id),
        operations: credential.operations.as_deref(),
    })
}

/// `Authorization: Bearer TOKEN` with a configured token, compared without an early exit.
fn bearer<'a>(deployment: &'a Deployment, parts: &Parts) -> Result<Caller<'a>, MgmtError> {
    let presented = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(MgmtError::Unauthorized)?;
    let token = deployment
        .management_tokens
        .iter()
        .find(|t| sigv4::constant_time_eq(t.secret.as_bytes(), presented.as_bytes()))
        .ok_or_else(|| {
            tracing::info!("management call refused with 401: unknown bearer token");
            MgmtError::Unauthorized
        })?;
    Ok(Caller {
        key: format!("token:{}", token.name),
        operations: token.operations.as_deref(),
    })
}

/// With no credential, the loopback rule alone would let any web page the operator opens drive
/// the API (`fetch(..., {mode: "no-cors"})` sends a POST all the same), or read it through a
/// DNS name rebound to 127.0.0.1. So a request a browser marks as cross-site, one whose `Origin`
/// is not on this machine, and one whose `Host` names another host (other than an API's default
/// `execute-api` name) are refused.
fn same_machine(deployment: &Deployment, parts: &Parts) -> Result<(), MgmtError> {
    let headers = &parts.headers;
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if text("sec-fetch-site").is_some_and(|site| site.eq_ignore_ascii_case("cross-site")) {
        return Err(MgmtError::CrossSite(
            "the browser marked it Sec-Fetch-Site: cross-site",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest);
        if !host.is_some_and(is_loopback_host) {
            return Err(MgmtError::CrossSite("its Origin is not on this machine"));
        }
    }
    let management = &deployment.config.management;
    // An operator who opened the API to the network has callers that name it by any address.
    if !management.allow_unauthenticated_remote
        && let Some(host) = headers.get(header::HOST)
    {
        let host = host.to_str().unwrap_or_default();
        let domain = deployment.config.gateway.domain_name.as_deref();
        // An API's default name (`{apiId}.execute-api.{region}.amazonaws.com`) is AWS's: no
        // page can rebind it to this machine. `wsgate dev` sends handlers' calls to it here.
        let api_default = || crate::tls::execute_api_zone(without_port(host)).is_some();
        if !is_loopback_host(host) && !api_default() && domain.is_none_or(|d| !same_name(host, d)) {
            return Err(MgmtError::CrossSite("its Host names another host"));
        }
    }
    Ok(())
}

/// `host[:port]` without the port; IPv6 literals keep no brackets.
fn without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// `localhost`, a name under `.localhost`, or a loopback address, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = without_port(host)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(limits::is_loopback)
}

/// Whether `host` (maybe with a port) is `name` (maybe with a port), ignoring case and ports.
fn same_name(host: &str, name: &str) -> bool {
    without_port(host).eq_ignore_ascii_case(without_port(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_apart_from_other_names() {
        for host in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "app.localhost:3000",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "rebind.attacker.example:8080",
            "localhost.attacker.example",
            "10.0.0.1:8080",
            "[2001:db8::1]:80",
            "",
            "null",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
        assert!(same_name("chat.example.com:443", "CHAT.example.com"));
    }
}
