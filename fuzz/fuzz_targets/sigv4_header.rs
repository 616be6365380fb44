//! SigV4 on management calls: the `Authorization` header, `X-Amz-Date`, and the whole check
//! (`wsgate::auth::sigv4::verify_at`) on a request built from the input.
//!
//! Input: a small HTTP/1-like text (`common/request_text.rs`, shared with `mgmt_request`), so
//! seeds are readable: `METHOD URI`, header lines, an empty line, the body.
//!
//! The whole input (lossy UTF-8) is also handed to `Authorization::parse` and `parse_amz_date`.
//! Requests the `http` builder refuses are skipped. The check runs at 1_700_000_000
//! (2023-11-14T22:13:20Z) with a skew of 900 s, so seeds dated `20231114T22xxxxZ` reach the
//! signer.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use wsgate::auth::sigv4::{SigningKeys, verify_at};
use wsgate_core::config::Credential;
use wsgate_core::sigv4::{Authorization, parse_amz_date};

#[path = "common/request_text.rs"]
mod request_text;
use request_text::RequestText;

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

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(auth) = Authorization::parse(&text) {
        assert!(!auth.signed_headers.is_empty());
        assert!(auth.signature.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let _ = parse_amz_date(&text);

    let text = RequestText::parse(data);
    for (_, value) in &text.headers {
        if let Ok(value) = std::str::from_utf8(value) {
            // Each header value is a date and an Authorization header candidate too.
            let _ = parse_amz_date(value);
            let _ = Authorization::parse(value);
        }
    }
    let body = text.body;
    let Ok(request) = text.builder().body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    // Fresh keys for each input, so an input's result does not depend on the ones before it.
    let keys = SigningKeys::default();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let _ = verify_at(&credentials(), &keys, &parts, body, Duration::from_secs(900), now);
    // The same request at the time it claims to be signed at, so any date reaches the signer.
    if let Some(signed_at) = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_amz_date(v).ok())
        .and_then(|s| u64::try_from(s).ok())
    {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(signed_at);
        let _ = verify_at(&credentials(), &keys, &parts, body, Duration::from_secs(900), at);
    }
});
