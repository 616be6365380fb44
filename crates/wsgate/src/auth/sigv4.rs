//! Verifying AWS Signature Version 4 on management calls, as boto3 and the AWS SDKs sign them.
//!
//! We parse the request and enforce the policy (known key, `execute-api` scope, clock skew, the
//! signed headers present); the `aws-sigv4` crate recomputes the signature from exactly the
//! headers the client listed in `SignedHeaders`. Its default double percent-encoding of the path
//! is what non-S3 services use: the id's `%3D` on the wire is signed as `%253D`, and `@` as `%40`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use http::request::Parts;
use sha2::{Digest, Sha256};
use wsgate_core::config::Credential;
use wsgate_core::sigv4::{Authorization, SigV4Error, parse_amz_date};

/// The signing name of API Gateway's management API.
pub const SERVICE: &str = "execute-api";

/// Why a signature was refused. Every case answers 403 `ForbiddenException`.
#[derive(Debug, thiserror::Error)]
pub enum SignatureFailure {
    /// No `Authorization` header.
    #[error("missing authorization header")]
    Missing,
    /// The header does not parse.
    #[error("{0}")]
    Malformed(#[from] SigV4Error),
    /// The access key is not configured.
    #[error("unknown access key {0}")]
    UnknownKey(String),
    /// The scope names another service.
    #[error("credential scope is for service {0}, not execute-api")]
    WrongService(String),
    /// `X-Amz-Date` is missing.
    #[error("missing x-amz-date")]
    MissingDate,
    /// The request time is too far from ours.
    #[error("request time is {0}s away from the server's clock")]
    Skew(i64),
    /// The scope's date is not the request's date.
    #[error("credential date does not match x-amz-date")]
    DateMismatch,
    /// `host` is not among the signed headers, or a signed header is absent.
    #[error("signed header {0} is missing")]
    MissingSignedHeader(String),
    /// `x-amz-content-sha256` does not match the body.
    #[error("x-amz-content-sha256 does not match the body")]
    BodyHash,
    /// The signature is wrong.
    #[error("signature does not match")]
    Mismatch,
    /// The signer refused the request.
    #[error("cannot compute signature: {0}")]
    Signer(String),
}

/// The whole check at a given time, in one call ([`check_claim`] then [`verify_claim`]): for the
/// tests and the `sigv4_header` fuzz target. The management API makes the two calls itself, with
/// the body read in between.
pub fn verify_at<'c>(
    credentials: &'c [Credential],
    parts: &Parts,
    body: &[u8],
    max_skew: Duration,
    now: SystemTime,
) -> Result<&'c Credential, SignatureFailure> {
    let claim = check_claim(credentials, parts, max_skew, now)?;
    verify_claim(&claim, parts, body)
}

/// Checks a request's signature over its body, once its headers passed [`check_claim`].
pub fn verify_claim<'c>(
    claim: &Claim<'c>,
    parts: &Parts,
    body: &[u8],
) -> Result<&'c Credential, SignatureFailure> {
    let signed = signed_headers(&claim.auth, parts)?;
    let body = signable_body(parts, body)?;
    let expected = signature(claim, parts, &signed, body)?;
    if constant_time_eq(expected.as_bytes(), claim.auth.signature.as_bytes()) {
        Ok(claim.credential)
    } else {
        Err(SignatureFailure::Mismatch)
    }
}

/// What a signed request's headers claim, checked without its body: a key we know, for this
/// service, signed within the skew, covering `host`.
#[derive(Debug)]
pub struct Claim<'c> {
    auth: Authorization,
    credential: &'c Credential,
    /// `X-Amz-Date`, in seconds since the epoch.
    signed_at: i64,
}

impl Claim<'_> {
    /// The signature the request carries (for the replay check).
    pub fn signature(&self) -> &str {
        &self.auth.signature
    }

    /// When the signature stops being accepted: its date plus the skew, in seconds since the
    /// epoch.
    pub fn expires_at(&self, max_skew: Duration) -> i64 {
        self.signed_at
            .saturating_add(i64::try_from(max_skew.as_secs()).unwrap_or(i64::MAX))
    }
}

/// Checks what a signed request's headers claim, before its body is read: a request whose
/// credential cannot be valid is refused from its headers alone.
pub fn check_claim<'c>(
    credentials: &'c [Credential],
    parts: &Parts,
    max_skew: Duration,
    now: SystemTime,
) -> Result<Claim<'c>, SignatureFailure> {
    let header = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(SignatureFailure::Missing)?;
    let auth = Authorization::parse(header)?;
    if auth.service != SERVICE {
        return Err(SignatureFailure::WrongService(auth.service));
    }
    let credential = credentials
        .iter()
        .find(|c| c.access_key_id == auth.access_key_id)
        .ok_or_else(|| SignatureFailure::UnknownKey(auth.access_key_id.clone()))?;
    let date = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(SignatureFailure::MissingDate)?;
    let signed_at = parse_amz_date(date)?;
    if !date.starts_with(&auth.date) {
        return Err(SignatureFailure::DateMismatch);
    }
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let skew = signed_at - now_secs;
    if skew.unsigned_abs() > max_skew.as_secs() {
        return Err(SignatureFailure::Skew(skew));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(SignatureFailure::MissingSignedHeader("host".into()));
    }
    Ok(Claim {
        auth,
        credential,
        signed_at,
    })
}

/// Exactly the headers the client signed; repeated headers are joined with commas.
fn signed_headers(
    auth: &Authorization,
    parts: &Parts,
) -> Result<Vec<(String, String)>, SignatureFailure> {
    let mut signed: Vec<(String, String)> = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let values: Vec<&str> = parts
            .headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Err(SignatureFailure::MissingSignedHeader(name.clone()));
        }
        signed.push((name.clone(), values.join(",")));
    }
    Ok(signed)
}

/// The body as the signature covers it: unsigned, its declared hash (checked), or its bytes.
fn signable_body<'b>(parts: &Parts, body: &'b [u8]) -> Result<SignableBody<'b>, SignatureFailure> {
    let content_hash = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok());
    Ok(match content_hash {
        Some("UNSIGNED-PAYLOAD") => SignableBody::UnsignedPayload,
        Some(declared) => {
            let actual = hex::encode(Sha256::digest(body));
            if !declared.eq_ignore_ascii_case(&actual) {
                return Err(SignatureFailure::BodyHash);
            }
            SignableBody::Precomputed(actual)
        }
        None => SignableBody::Bytes(body),
    })
}

/// The signature the claimed key makes of this request, computed by `aws-sigv4`.
fn signature(
    claim: &Claim<'_>,
    parts: &Parts,
    signed: &[(String, String)],
    body: SignableBody<'_>,
) -> Result<String, SignatureFailure> {
    let identity: Identity = Credentials::new(
        claim.auth.access_key_id.clone(),
        claim.credential.secret_access_key.clone(),
        None,
        None,
        "wsgate",
    )
    .into();
    let mut settings = SigningSettings::default();
    // Sign exactly what the client listed, user-agent included if it did.
    settings.excluded_headers = Some(Vec::new());
    let params = SigningParams::builder()
        .identity(&identity)
        .region(&claim.auth.region)
        .name(SERVICE)
        .time(UNIX_EPOCH + Duration::from_secs(claim.signed_at.max(0) as u64))
        .settings(settings)
        .build()
        .map_err(|e| SignatureFailure::Signer(e.to_string()))?
        .into();
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let request = SignableRequest::new(
        parts.method.as_str(),
        uri,
        signed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        body,
    )
    .map_err(|e| SignatureFailure::Signer(e.to_string()))?;
    let output = sign(request, &params).map_err(|e| SignatureFailure::Signer(e.to_string()))?;
    Ok(output.signature().to_owned())
}

/// Compares secrets without an early exit.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn credentials() -> Vec<Credential> {
        ["AKIDEXAMPLE", "ASIAEXAMPLE"]
            .into_iter()
            .map(|akid| Credential {
                access_key_id: akid.into(),
                secret_access_key: SECRET.into(),
                operations: None,
            })
            .collect()
    }

    /// Requests exactly as boto3 signed them (tools/capture_boto3_sigv4.py), with the time they
    /// were signed at.
    fn captured() -> Vec<(Parts, Vec<u8>, SystemTime)> {
        let fixture: Value =
            serde_json::from_str(include_str!("fixtures/boto3.json")).expect("fixture");
        let requests = fixture["requests"].as_array().expect("requests");
        requests
            .iter()
            .map(|r| {
                let url = r["url"].as_str().expect("url");
                let (authority, path) = url
                    .trim_start_matches("http://")
                    .split_once('/')
                    .expect("path");
                let mut builder = http::Request::builder()
                    .method(r["method"].as_str().expect("method"))
                    .uri(format!("/{path}"));
                builder = builder.header("host", authority);
                let mut date = None;
                for (name, value) in r["headers"].as_object().expect("headers") {
                    let value = value.as_str().expect("value");
                    if name.eq_ignore_ascii_case("x-amz-date") {
                        date = Some(parse_amz_date(value).expect("date"));
                    }
                    builder = builder.header(name.as_str(), value);
                }
                let (parts, ()) = builder.body(()).expect("request").into_parts();
                let at = UNIX_EPOCH + Duration::from_secs(date.expect("x-amz-date") as u64);
                (
                    parts,
                    r["body"].as_str().expect("body").as_bytes().to_vec(),
                    at,
                )
            })
            .collect()
    }

    const SKEW: Duration = Duration::from_secs(900);

    #[test]
    fn boto3_signatures_verify() {
        let requests = captured();
        assert_eq!(requests.len(), 4);
        for (parts, body, at) in &requests {
            verify_at(
                &credentials(),
                parts,
                body,
                SKEW,
                *at + Duration::from_secs(60),
            )
            .unwrap_or_else(|e| panic!("{} {}: {e}", parts.method, parts.uri));
        }
    }

    #[test]
    fn a_changed_body_path_or_secret_fails() {
        let (parts, body, at) = captured().remove(0);
        assert!(matches!(
            verify_at(&credentials(), &parts, b"{\"hello\":\"there\"}", SKEW, at),
            Err(SignatureFailure::Mismatch)
        ));
        let mut moved = parts.clone();
        moved.uri = "/dev/@connections/TWegAcC4EowCHnA%3D".parse().expect("uri");
        assert!(matches!(
            verify_at(&credentials(), &moved, &body, SKEW, at),
            Err(SignatureFailure::Mismatch)
        ));
        let wrong = vec![Credential {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "other".into(),
            operations: None,
        }];
        assert!(matches!(
            verify_at(&wrong, &parts, &body, SKEW, at),
            Err(SignatureFailure::Mismatch)
        ));
        assert!(matches!(
            verify_at(&[], &parts, &body, SKEW, at),
            Err(SignatureFailure::UnknownKey(_))
        ));
    }

    #[test]
    fn requests_outside_the_skew_fail() {
        let (parts, body, at) = captured().remove(0);
        assert!(
            verify_at(
                &credentials(),
                &parts,
                &body,
                SKEW,
                at + Duration::from_secs(899)
            )
            .is_ok()
        );
        assert!(matches!(
            verify_at(
                &credentials(),
                &parts,
                &body,
                SKEW,
                at + Duration::from_secs(901)
            ),
            Err(SignatureFailure::Skew(_))
        ));
        assert!(matches!(
            verify_at(
                &credentials(),
                &parts,
                &body,
                SKEW,
                at - Duration::from_secs(901)
            ),
            Err(SignatureFailure::Skew(_))
        ));
    }

    #[test]
    fn unsigned_or_malformed_requests_fail() {
        let (mut parts, body, at) = captured().remove(0);
        let mut no_date = parts.clone();
        no_date.headers.remove("x-amz-date");
        assert!(matches!(
            verify_at(&credentials(), &no_date, &body, SKEW, at),
            Err(SignatureFailure::MissingDate)
        ));
        parts.headers.insert(
            http::header::AUTHORIZATION,
            "Bearer abc".parse().expect("value"),
        );
        assert!(matches!(
            verify_at(&credentials(), &parts, &body, SKEW, at),
            Err(SignatureFailure::Malformed(_))
        ));
        parts.headers.remove(http::header::AUTHORIZATION);
        assert!(matches!(
            verify_at(&credentials(), &parts, &body, SKEW, at),
            Err(SignatureFailure::Missing)
        ));
    }
}
