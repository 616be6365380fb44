//! Verifying AWS Signature Version 4 on management calls, as boto3 and the AWS SDKs sign them.
//!
//! We parse the request and enforce the policy (known key, `execute-api` scope, clock skew, the
//! signed headers present), then recompute the signature over exactly the headers the client
//! listed in `SignedHeaders` ([`canonical_request`](super::canonical_request)). The signing key
//! and the final HMAC come from the `aws-sigv4` crate; the key of an accepted signature is kept
//! ([`SigningKeys`]), as it only changes with the day, the region and the secret.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use http::request::Parts;
use sha2::{Digest, Sha256};
use wsgate_core::config::Credential;
use wsgate_core::sigv4::{Authorization, SigV4Error, format_amz_date, parse_amz_date};

use super::canonical_request::CanonicalRequest;

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
}

/// The whole check at a given time, in one call ([`check_claim`] then [`verify_claim`]): for the
/// tests and the `sigv4_header` fuzz target. The management API makes the two calls itself, with
/// the body read in between.
pub fn verify_at<'c>(
    credentials: &'c [Credential],
    keys: &SigningKeys,
    parts: &Parts,
    body: &[u8],
    max_skew: Duration,
    now: SystemTime,
) -> Result<&'c Credential, SignatureFailure> {
    let claim = check_claim(credentials, parts, max_skew, now)?;
    verify_claim(&claim, keys, parts, body)
}

/// Checks a request's signature over its body, once its headers passed [`check_claim`].
pub fn verify_claim<'c>(
    claim: &Claim<'c>,
    keys: &SigningKeys,
    parts: &Parts,
    body: &[u8],
) -> Result<&'c Credential, SignatureFailure> {
    let headers = signed_headers(&claim.auth, parts)?;
    let payload_hash = payload_hash(parts, body)?;
    // Signed as the SDK signed it: at the time `X-Amz-Date` says, written back the same way.
    let signed_at = claim.signed_at.max(0);
    let date_time = format_amz_date(signed_at);
    let date = &date_time[..8];
    let request = CanonicalRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &headers,
        date_time: &date_time,
        payload_hash: &payload_hash,
    };
    let region = &claim.auth.region;
    let string_to_sign = request.string_to_sign(&format!("{date}/{region}/{SERVICE}/aws4_request"));
    let scope = KeyScope {
        access_key_id: &claim.credential.access_key_id,
        secret: &claim.credential.secret_access_key,
        date,
        region,
    };
    let (key, cached) = match keys.get(&scope) {
        Some(key) => (key, true),
        None => {
            let time = UNIX_EPOCH + Duration::from_secs(signed_at.unsigned_abs());
            (derive_key(scope.secret, time, region), false)
        }
    };
    let expected = calculate_signature(key, string_to_sign.as_bytes());
    if !constant_time_eq(expected.as_bytes(), claim.auth.signature.as_bytes()) {
        return Err(SignatureFailure::Mismatch);
    }
    if !cached {
        keys.insert(&scope, key);
    }
    Ok(claim.credential)
}

/// A derived signing key: HMAC-SHA256 output.
type SigningKey = [u8; 32];

/// What a signing key is derived from (the service is always `execute-api`).
struct KeyScope<'a> {
    access_key_id: &'a str,
    secret: &'a str,
    /// `YYYYMMDD`.
    date: &'a str,
    region: &'a str,
}

impl KeyScope<'_> {
    /// The map key. None of the three has a `/`: they come from one `/`-separated scope.
    fn id(&self) -> String {
        format!("{}/{}/{}", self.date, self.region, self.access_key_id)
    }
}

/// The signing keys of signatures accepted lately, by day, region and access key.
///
/// Deriving a key is four HMACs; a client signs with the same key all day, so it is derived once.
/// Only a key that verified a signature is kept, so a caller without the secret cannot fill
/// the map with regions it makes up. The secret is kept beside its key: a reload that changes
/// the secret of an access key makes the old key useless rather than valid.
#[derive(Default)]
pub struct SigningKeys {
    keys: Mutex<HashMap<String, (String, SigningKey)>>,
}

impl SigningKeys {
    /// Keys kept at most; past it the map starts over. An entry is about 200 bytes (the map's
    /// key, the secret, 32 bytes of key), so at most about 200 KiB; in use it holds one entry
    /// per access key, region and day.
    pub const MAX_KEYS: usize = 1024;

    fn get(&self, scope: &KeyScope<'_>) -> Option<SigningKey> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.get(&scope.id())
            .filter(|(secret, _)| secret == scope.secret)
            .map(|(_, key)| *key)
    }

    fn insert(&self, scope: &KeyScope<'_>, key: SigningKey) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= Self::MAX_KEYS {
            // Past days' keys go with the rest; the ones in use are derived again when next used.
            keys.clear();
        }
        keys.insert(scope.id(), (scope.secret.to_owned(), key));
    }

    /// How many keys are kept.
    pub fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Secrets and keys stay out of logs: only how many there are.
impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("len", &self.len())
            .finish()
    }
}

/// The key `aws-sigv4` derives for `execute-api` in `region` on the day of `time`.
fn derive_key(secret: &str, time: SystemTime, region: &str) -> SigningKey {
    let derived = generate_signing_key(secret, time, region, SERVICE);
    let mut key = SigningKey::default();
    // An HMAC-SHA256 output, 32 bytes whatever the input.
    key.copy_from_slice(derived.as_ref());
    key
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

/// Exactly the headers the client signed, one entry per value, in the order they came (values
/// that are not visible ASCII are left out).
fn signed_headers<'p>(
    auth: &'p Authorization,
    parts: &'p Parts,
) -> Result<Vec<(&'p str, &'p str)>, SignatureFailure> {
    let mut signed = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let before = signed.len();
        let values = parts.headers.get_all(name.as_str()).iter();
        signed.extend(
            values
                .filter_map(|v| v.to_str().ok())
                .map(|v| (name.as_str(), v)),
        );
        if signed.len() == before {
            return Err(SignatureFailure::MissingSignedHeader(name.clone()));
        }
    }
    Ok(signed)
}

/// The body as the signature covers it: unsigned, its declared hash (checked), or its bytes'
/// hash.
fn payload_hash(parts: &Parts, body: &[u8]) -> Result<String, SignatureFailure> {
    let content_hash = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok());
    let actual = || hex::encode(Sha256::digest(body));
    Ok(match content_hash {
        Some(UNSIGNED_PAYLOAD) => UNSIGNED_PAYLOAD.to_owned(),
        Some(declared) => {
            let actual = actual();
            if !declared.eq_ignore_ascii_case(&actual) {
                return Err(SignatureFailure::BodyHash);
            }
            actual
        }
        None => actual(),
    })
}

/// What `x-amz-content-sha256` says when the body is not signed.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Compares secrets without an early exit.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4::SigningParams;
    use aws_smithy_runtime_api::client::identity::Identity;
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
                &SigningKeys::default(),
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
            verify_at(
                &credentials(),
                &SigningKeys::default(),
                &parts,
                b"{\"hello\":\"there\"}",
                SKEW,
                at
            ),
            Err(SignatureFailure::Mismatch)
        ));
        let mut moved = parts.clone();
        moved.uri = "/dev/@connections/TWegAcC4EowCHnA%3D".parse().expect("uri");
        assert!(matches!(
            verify_at(
                &credentials(),
                &SigningKeys::default(),
                &moved,
                &body,
                SKEW,
                at
            ),
            Err(SignatureFailure::Mismatch)
        ));
        let wrong = vec![Credential {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "other".into(),
            operations: None,
        }];
        assert!(matches!(
            verify_at(&wrong, &SigningKeys::default(), &parts, &body, SKEW, at),
            Err(SignatureFailure::Mismatch)
        ));
        assert!(matches!(
            verify_at(&[], &SigningKeys::default(), &parts, &body, SKEW, at),
            Err(SignatureFailure::UnknownKey(_))
        ));
    }

    #[test]
    fn requests_outside_the_skew_fail() {
        let (parts, body, at) = captured().remove(0);
        assert!(
            verify_at(
                &credentials(),
                &SigningKeys::default(),
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
                &SigningKeys::default(),
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
                &SigningKeys::default(),
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
            verify_at(
                &credentials(),
                &SigningKeys::default(),
                &no_date,
                &body,
                SKEW,
                at
            ),
            Err(SignatureFailure::MissingDate)
        ));
        parts.headers.insert(
            http::header::AUTHORIZATION,
            "Bearer abc".parse().expect("value"),
        );
        assert!(matches!(
            verify_at(
                &credentials(),
                &SigningKeys::default(),
                &parts,
                &body,
                SKEW,
                at
            ),
            Err(SignatureFailure::Malformed(_))
        ));
        parts.headers.remove(http::header::AUTHORIZATION);
        assert!(matches!(
            verify_at(
                &credentials(),
                &SigningKeys::default(),
                &parts,
                &body,
                SKEW,
                at
            ),
            Err(SignatureFailure::Missing)
        ));
    }

    /// A small deterministic generator (splitmix64): a failing case is the same on every run.
    struct Dice(u64);

    impl Dice {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    const METHODS: &[&str] = &["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD"];
    const REGIONS: &[&str] = &["us-east-1", "eu-west-1", "ap-southeast-2", "local"];

    /// How the body is declared.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Payload {
        /// No `x-amz-content-sha256`: the body's bytes are hashed.
        Bytes,
        /// `x-amz-content-sha256` carries the hash.
        Declared,
        /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`.
        Unsigned,
    }

    /// A request signed by `aws-sigv4`'s own signer, as an SDK sends it.
    struct Signed {
        method: String,
        path: String,
        query: Option<String>,
        /// In the order sent; the ones the signer did not see come last.
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        payload: Payload,
        at: SystemTime,
    }

    impl Signed {
        fn parts(&self) -> Parts {
            let uri = match &self.query {
                Some(query) => format!("{}?{query}", self.path),
                None => self.path.clone(),
            };
            let mut builder = http::Request::builder()
                .method(self.method.as_str())
                .uri(uri);
            for (name, value) in &self.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            builder.body(()).expect("request").into_parts().0
        }

        fn header_mut(&mut self, name: &str) -> &mut String {
            let (_, value) = self
                .headers
                .iter_mut()
                .find(|(n, _)| n == name)
                .expect("header");
            value
        }
    }

    fn generate(dice: &mut Dice) -> Signed {
        let method = dice.pick(METHODS).to_string();
        // Spaces, unicode, `%` and `=` as a client's URL library sends them, dot and empty
        // segments, and the characters a path may carry unencoded.
        let segments = [
            "@connections",
            "dev",
            "TWegAcC4EowCHnA%3D",
            "a%20b",
            "%E2%9C%93",
            "caf%C3%A9",
            "%25",
            "x=y",
            "a+b",
            "~user",
            "!$&'()*,;:@",
            ".",
            "..",
            "",
        ];
        let mut path = String::new();
        for _ in 0..=dice.below(5) {
            path.push('/');
            path.push_str(dice.pick(&segments));
        }
        if dice.below(4) == 0 {
            path.push('/');
        }
        let keys = [
            "a",
            "b",
            "a",
            "X-Amz-Meta",
            "sp%20ace",
            "plus+sign",
            "%E2%9C%93",
            "eq%3D",
        ];
        let values = [
            "",
            "1",
            "two%20words",
            "a+b",
            "%3D%3D",
            "x=y",
            "%7E",
            "%C3%A9",
        ];
        let query = match dice.below(4) {
            0 => None,
            1 => Some(String::new()),
            _ => {
                let mut pairs = Vec::new();
                for _ in 0..=dice.below(5) {
                    let key = dice.pick(&keys);
                    pairs.push(match dice.below(5) {
                        0 => key.to_owned(),
                        1 => String::new(),
                        _ => format!("{key}={}", dice.pick(&values)),
                    });
                }
                Some(pairs.join("&"))
            }
        };
        let host = dice.pick(&["localhost:8080", "example.com", "abc.execute-api.local:443"]);
        let mut signed_headers = vec![("host".to_owned(), host.to_owned())];
        let header_values = [
            "application/json",
            "  padded  ",
            "a   b    c",
            "tab\tinside",
            "v1,v2",
            "",
            "UPPER lower",
        ];
        for _ in 0..dice.below(5) {
            let name = dice.pick(&["content-type", "x-amz-meta-a", "x-custom", "x-repeat"]);
            signed_headers.push((name.to_owned(), dice.pick(&header_values).to_string()));
        }
        let body: Vec<u8> = (0..dice.below(64)).map(|_| dice.next() as u8).collect();
        let payload = dice.pick(&[Payload::Bytes, Payload::Declared, Payload::Unsigned]);
        let declared = match payload {
            Payload::Bytes => None,
            Payload::Declared => Some(hex::encode(Sha256::digest(&body))),
            Payload::Unsigned => Some(UNSIGNED_PAYLOAD.to_owned()),
        };
        // The declared hash is signed or not, as the client chose.
        let mut unsigned_headers = vec![("user-agent".to_owned(), "test/1.0".to_owned())];
        if let Some(declared) = &declared {
            let header = ("x-amz-content-sha256".to_owned(), declared.clone());
            if dice.below(2) == 0 {
                signed_headers.push(header);
            } else {
                unsigned_headers.push(header);
            }
        }
        // Three days, so the kept signing keys are used again and also change.
        let at = UNIX_EPOCH + Duration::from_secs(1_716_508_800 + dice.below(3 * 86_400) as u64);
        let (access_key_id, token) = dice.pick(&[
            ("AKIDEXAMPLE", None),
            ("ASIAEXAMPLE", Some("session-token")),
        ]);
        let identity: Identity = Credentials::new(
            access_key_id,
            SECRET,
            token.map(str::to_owned),
            None,
            "test",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.excluded_headers = Some(Vec::new());
        let params = SigningParams::builder()
            .identity(&identity)
            .region(dice.pick(REGIONS))
            .name(SERVICE)
            .time(at)
            .settings(settings)
            .build()
            .expect("params")
            .into();
        let uri = match &query {
            Some(query) => format!("{path}?{query}"),
            None => path.clone(),
        };
        let body_to_sign = match &declared {
            None => SignableBody::Bytes(&body),
            Some(hash) if hash == UNSIGNED_PAYLOAD => SignableBody::UnsignedPayload,
            Some(hash) => SignableBody::Precomputed(hash.clone()),
        };
        let request = SignableRequest::new(
            &method,
            uri.as_str(),
            signed_headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            body_to_sign,
        )
        .expect("signable");
        let (instructions, _) = sign(request, &params).expect("signs").into_parts();
        let mut headers = signed_headers;
        for (name, value) in instructions.headers() {
            headers.push((name.to_owned(), value.to_owned()));
        }
        headers.extend(unsigned_headers);
        Signed {
            method,
            path,
            query,
            headers,
            body,
            payload,
            at,
        }
    }

    /// One change that the signature covers.
    fn mutate(dice: &mut Dice, request: &mut Signed) -> &'static str {
        match dice.below(6) {
            0 => {
                let method = loop {
                    let method = dice.pick(METHODS);
                    if method != request.method {
                        break method;
                    }
                };
                request.method = method.to_string();
                "method"
            }
            1 => {
                request.path.push('a');
                "path"
            }
            2 => {
                let query = request.query.get_or_insert_with(String::new);
                query.push_str("&zz=1");
                "query"
            }
            3 if request.payload != Payload::Unsigned => {
                request.body.push(b'!');
                "body"
            }
            4 => {
                request.header_mut("host").push('x');
                "host"
            }
            _ => {
                let signature = request.header_mut("authorization");
                let last = if signature.ends_with('0') { '1' } else { '0' };
                signature.pop();
                signature.push(last);
                "signature"
            }
        }
    }

    #[test]
    fn requests_signed_by_the_sdk_verify_and_changed_ones_do_not() {
        let credentials = credentials();
        let keys = SigningKeys::default();
        let mut dice = Dice(16);
        let mut reused = 0;
        for case in 0..2000 {
            let mut request = generate(&mut dice);
            let parts = request.parts();
            let kept = keys.len();
            let verified = verify_at(&credentials, &keys, &parts, &request.body, SKEW, request.at);
            assert!(
                verified.is_ok(),
                "case {case}: {} {} {:?}: {verified:?}",
                request.method,
                parts.uri,
                request.headers
            );
            if keys.len() == kept {
                reused += 1;
            }
            let what = mutate(&mut dice, &mut request);
            let parts = request.parts();
            let verified = verify_at(&credentials, &keys, &parts, &request.body, SKEW, request.at);
            assert!(
                verified.is_err(),
                "case {case}: a changed {what} verifies: {} {} {:?}",
                request.method,
                parts.uri,
                request.headers
            );
        }
        // 2 keys, 4 regions, 3 days: most cases sign with a key kept from an earlier one.
        assert!(keys.len() <= 24, "{}", keys.len());
        assert!(reused > 1900, "{reused}");
    }

    #[test]
    fn a_kept_signing_key_is_not_used_for_a_changed_secret() {
        let keys = SigningKeys::default();
        let (parts, body, at) = captured().remove(0);
        assert!(verify_at(&credentials(), &keys, &parts, &body, SKEW, at).is_ok());
        assert_eq!(keys.len(), 1);
        let rotated = vec![Credential {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "rotated".into(),
            operations: None,
        }];
        assert!(matches!(
            verify_at(&rotated, &keys, &parts, &body, SKEW, at),
            Err(SignatureFailure::Mismatch)
        ));
        assert!(verify_at(&credentials(), &keys, &parts, &body, SKEW, at).is_ok());
    }

    #[test]
    fn a_refused_signature_leaves_no_key_and_the_keys_are_bounded() {
        let keys = SigningKeys::default();
        let (parts, body, at) = captured().remove(0);
        let other = vec![Credential {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "other".into(),
            operations: None,
        }];
        assert!(verify_at(&other, &keys, &parts, &body, SKEW, at).is_err());
        assert!(keys.is_empty());
        for day in 0..SigningKeys::MAX_KEYS + 1 {
            let scope = KeyScope {
                access_key_id: "AKIDEXAMPLE",
                secret: SECRET,
                date: &format!("{day:08}"),
                region: "r",
            };
            keys.insert(&scope, SigningKey::default());
            assert!(keys.len() <= SigningKeys::MAX_KEYS);
        }
    }
}
