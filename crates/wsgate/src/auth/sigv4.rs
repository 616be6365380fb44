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

/// Checks the request's signature against the configured credentials.
pub fn verify(
    credentials: &[Credential],
    parts: &Parts,
    body: &[u8],
    max_skew: Duration,
) -> Result<(), SignatureFailure> {
    verify_at(credentials, parts, body, max_skew, SystemTime::now())
}

/// [`verify`] at a given time (for tests).
pub fn verify_at(
    credentials: &[Credential],
    parts: &Parts,
    body: &[u8],
    max_skew: Duration,
    now: SystemTime,
) -> Result<(), SignatureFailure> {
    let header = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(SignatureFailure::Missing)?;
    let auth = Authorization::parse(header)?;
    if auth.service != SERVICE {
        return Err(SignatureFailure::WrongService(auth.service));
    }
    let secret = credentials
        .iter()
        .find(|c| c.access_key_id == auth.access_key_id)
        .map(|c| c.secret_access_key.clone())
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

    // Exactly the headers the client signed; repeated headers are joined with commas.
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

    let content_hash = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok());
    let signable_body = match content_hash {
        Some("UNSIGNED-PAYLOAD") => SignableBody::UnsignedPayload,
        Some(declared) => {
            let actual = hex::encode(Sha256::digest(body));
            if !declared.eq_ignore_ascii_case(&actual) {
                return Err(SignatureFailure::BodyHash);
            }
            SignableBody::Precomputed(actual)
        }
        None => SignableBody::Bytes(body),
    };

    let identity: Identity =
        Credentials::new(auth.access_key_id.clone(), secret, None, None, "wsgate").into();
    let mut settings = SigningSettings::default();
    // Sign exactly what the client listed, user-agent included if it did.
    settings.excluded_headers = Some(Vec::new());
    let params = SigningParams::builder()
        .identity(&identity)
        .region(&auth.region)
        .name(SERVICE)
        .time(UNIX_EPOCH + Duration::from_secs(signed_at.max(0) as u64))
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
        signable_body,
    )
    .map_err(|e| SignatureFailure::Signer(e.to_string()))?;
    let output = sign(request, &params).map_err(|e| SignatureFailure::Signer(e.to_string()))?;
    if constant_time_eq(output.signature().as_bytes(), auth.signature.as_bytes()) {
        Ok(())
    } else {
        Err(SignatureFailure::Mismatch)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
