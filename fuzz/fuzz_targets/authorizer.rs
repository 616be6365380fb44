//! What `$connect` authorizers read from the outside: a REQUEST authorizer's output (policy,
//! principal, context) with IAM wildcard matching, JWTs checked by the JWT authorizer, and the
//! identity / token source expressions of the config.
//!
//! Input: one byte choosing the part, then its input.
//! - 0: an authorizer output (JSON bytes) evaluated against a fixed `methodArn`;
//! - 1: `PATTERN \0 TEXT` for `authorizer::wildcard_match`, compared with a plain recursive matcher;
//! - 2: a token (lossy UTF-8) given to a JWT authorizer with an HS256 secret, issuer and audience;
//! - 3: a source expression for `RequestSource::parse`, and JSON claims for `claims_context`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wsgate::auth::jwt::JwtAuthorizer;
use wsgate_core::authorizer::{self, Decision, MAX_OUTPUT_BYTES};
use wsgate_core::config::{Authorizer, Config, RequestSource};

const ARN: &str = "arn:aws:execute-api:us-east-1:000000000000:local/dev/$connect";

/// The JWT authorizer the tokens go to (the seeds hold tokens signed with this secret).
fn jwt() -> &'static (JwtAuthorizer, tokio::runtime::Runtime) {
    static JWT: OnceLock<(JwtAuthorizer, tokio::runtime::Runtime)> = OnceLock::new();
    JWT.get_or_init(|| {
        let config = Config::from_toml(
            "[authorizers.a]\ntype = \"jwt\"\nhs256_secret = \"fuzz-secret-of-at-least-32-bytes!!\"\nissuer = \"https://issuer.fuzz\"\naudience = \"fuzz\"\n",
        )
        .expect("config");
        let Authorizer::Jwt(definition) = &config.authorizers["a"] else {
            panic!("jwt");
        };
        let sources = config.validate().expect("valid").authorizer_sources["a"].clone();
        let client = reqwest::Client::new();
        let authorizer =
            JwtAuthorizer::build(definition, sources, &config, &client, None).expect("builds");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        (authorizer, runtime)
    })
}

/// IAM matching written another way, for comparison: a table of which prefixes match.
fn reference_match(p: &[char], t: &[char]) -> bool {
    // matches[i][j]: the first i pattern characters match the first j text characters.
    let mut matches = vec![vec![false; t.len() + 1]; p.len() + 1];
    matches[0][0] = true;
    for i in 1..=p.len() {
        for j in 0..=t.len() {
            matches[i][j] = match p[i - 1] {
                '*' => matches[i - 1][j] || (j > 0 && matches[i][j - 1]),
                c => j > 0 && matches[i - 1][j - 1] && (c == '?' || c == t[j - 1]),
            };
        }
    }
    matches[p.len()][t.len()]
}

fuzz_target!(|data: &[u8]| {
    let Some((&part, input)) = data.split_first() else {
        return;
    };
    match part % 4 {
        0 => match authorizer::evaluate(input, ARN) {
            Ok(Decision::Allow(allowed)) => {
                assert!(input.len() <= MAX_OUTPUT_BYTES);
                assert_eq!(
                    allowed.context.get("principalId"),
                    Some(&Value::String(allowed.principal_id.clone()))
                );
                for (key, value) in &allowed.context {
                    assert!(
                        value.is_string() || value.is_null(),
                        "context {key} is not a string: {value}"
                    );
                }
            }
            Ok(Decision::Deny) => {}
            Err(error) => {
                let _ = error.to_string();
            }
        },
        1 => {
            let text = String::from_utf8_lossy(input);
            let (pattern, subject) = text.split_once('\0').unwrap_or((&text, ARN));
            let fast = authorizer::wildcard_match(pattern, subject);
            // The reference takes pattern × text steps: compare on inputs of reasonable size.
            if pattern.len() * subject.len() <= 1 << 16 {
                let p: Vec<char> = pattern.chars().collect();
                let t: Vec<char> = subject.chars().collect();
                assert_eq!(fast, reference_match(&p, &t), "{pattern:?} ~ {subject:?}");
            }
        }
        2 => {
            let token = String::from_utf8_lossy(input);
            let (authorizer, runtime) = jwt();
            if let Ok(claims) = runtime.block_on(authorizer.verify(&token)) {
                assert_eq!(claims.get("iss"), Some(&Value::from("https://issuer.fuzz")));
                assert!(claims.contains_key("exp"), "a token without exp passed");
                let allowed = authorizer::claims_context(&claims);
                assert!(allowed.context.values().all(Value::is_string));
            }
        }
        _ => {
            let text = String::from_utf8_lossy(input);
            let (source, claims) = text.split_once('\0').unwrap_or((&text, ""));
            match RequestSource::parse(source) {
                Ok(RequestSource::Header(name)) => {
                    assert!(!name.is_empty());
                    assert_eq!(name, name.to_ascii_lowercase());
                }
                Ok(RequestSource::Query(name)) => assert!(!name.is_empty()),
                Err(message) => assert!(!message.is_empty()),
            }
            if let Ok(Value::Object(claims)) = serde_json::from_str::<Value>(claims) {
                let allowed = authorizer::claims_context(&claims);
                assert_eq!(
                    allowed.context.len(),
                    claims.len() + usize::from(!claims.contains_key("principalId"))
                );
                assert_eq!(
                    allowed.context["principalId"],
                    Value::String(allowed.principal_id.clone())
                );
            }
        }
    }
});
