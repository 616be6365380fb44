//! What a `$connect` authorizer answers: the REQUEST authorizer's output (a principal, an IAM
//! policy and a context) read as API Gateway reads it, and the `requestContext.authorizer` object
//! every later event of the connection carries.

use serde_json::{Map, Value};

/// The largest authorizer output API Gateway accepts, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 8 * 1024;

/// The action a WebSocket authorizer's policy must allow.
const INVOKE: &str = "execute-api:Invoke";

/// An accepted connection's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// `principalId`.
    pub principal_id: String,
    /// `requestContext.authorizer`: `principalId` and the context, values as strings.
    pub context: Map<String, Value>,
}

/// What an authorizer decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// An Allow matched and no Deny did.
    Allow(Allowed),
    /// A Deny matched, or no Allow did: 403.
    Deny,
}

/// Why an output is not usable: the upgrade gets 500, as on API Gateway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// Not JSON, or not an object.
    #[error("the authorizer output is not a JSON object")]
    NotAnObject,
    /// Larger than 8 KB.
    #[error("the authorizer output is larger than {MAX_OUTPUT_BYTES} bytes")]
    TooLarge,
    /// No string `principalId`.
    #[error("the authorizer output has no principalId string")]
    NoPrincipal,
    /// No usable `policyDocument`.
    #[error("the authorizer output has no valid policyDocument: {0}")]
    BadPolicy(&'static str),
    /// `context` is not an object of strings, numbers, booleans and nulls.
    #[error("the authorizer context must map keys to strings, numbers, booleans or null ({0})")]
    BadContext(String),
}

/// Reads a REQUEST authorizer's output and evaluates its policy against `method_arn`.
pub fn evaluate(output: &[u8], method_arn: &str) -> Result<Decision, OutputError> {
    if output.len() > MAX_OUTPUT_BYTES {
        return Err(OutputError::TooLarge);
    }
    let value: Value = serde_json::from_slice(output).map_err(|_| OutputError::NotAnObject)?;
    let object = value.as_object().ok_or(OutputError::NotAnObject)?;
    let principal_id = match object.get("principalId") {
        Some(Value::String(id)) => id.clone(),
        _ => return Err(OutputError::NoPrincipal),
    };
    let policy = object
        .get("policyDocument")
        .and_then(Value::as_object)
        .ok_or(OutputError::BadPolicy("missing"))?;
    let statements = match policy.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => return Err(OutputError::BadPolicy("no Statement")),
    };
    let mut allowed = false;
    for statement in statements {
        let statement = statement
            .as_object()
            .ok_or(OutputError::BadPolicy("a Statement is not an object"))?;
        let effect = match statement.get("Effect").and_then(Value::as_str) {
            Some("Allow") => true,
            Some("Deny") => false,
            _ => return Err(OutputError::BadPolicy("Effect must be Allow or Deny")),
        };
        let action = strings(statement.get("Action"))
            .ok_or(OutputError::BadPolicy("Action must be a string or a list"))?;
        let resource = strings(statement.get("Resource")).ok_or(OutputError::BadPolicy(
            "Resource must be a string or a list",
        ))?;
        let applies = action.iter().any(|a| wildcard_match(a, INVOKE))
            && resource.iter().any(|r| wildcard_match(r, method_arn));
        if applies && !effect {
            return Ok(Decision::Deny);
        }
        allowed |= applies && effect;
    }
    if !allowed {
        return Ok(Decision::Deny);
    }
    let mut context = Map::new();
    context.insert("principalId".into(), Value::String(principal_id.clone()));
    match object.get("context") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, value) in map {
                let text = match value {
                    Value::String(s) => Value::String(s.clone()),
                    Value::Number(n) => Value::String(n.to_string()),
                    Value::Bool(b) => Value::String(b.to_string()),
                    Value::Null => Value::Null,
                    Value::Array(_) | Value::Object(_) => {
                        return Err(OutputError::BadContext(format!("{key} is not a scalar")));
                    }
                };
                context.insert(key.clone(), text);
            }
        }
        Some(_) => return Err(OutputError::BadContext("context is not an object".into())),
    }
    Ok(Decision::Allow(Allowed {
        principal_id,
        context,
    }))
}

/// A JSON string or list of strings.
fn strings(value: Option<&Value>) -> Option<Vec<&str>> {
    match value? {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(list) => list.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

/// IAM's wildcards: `*` any run of characters, `?` any one character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Greedy matching with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The claims of a verified JWT as `requestContext.authorizer`: `principalId` (the `sub`, always:
/// a claim named `principalId` does not replace it), then each claim, strings as they are and
/// anything else as its JSON text.
pub fn claims_context(claims: &Map<String, Value>) -> Allowed {
    let principal_id = match claims.get("sub") {
        Some(Value::String(sub)) => sub.clone(),
        Some(other) if !other.is_null() => other.to_string(),
        _ => String::new(),
    };
    let mut context = Map::new();
    context.insert("principalId".into(), Value::String(principal_id.clone()));
    for (key, value) in claims.iter().filter(|(key, _)| *key != "principalId") {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        context.insert(key.clone(), Value::String(text));
    }
    Allowed {
        principal_id,
        context,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ARN: &str = "arn:aws:execute-api:eu-west-1:000000000000:local/dev/$connect";

    fn output(effect: &str, resource: Value) -> Vec<u8> {
        json!({
            "principalId": "user-42",
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]
            },
            "context": {"tenant": "acme", "tier": 3, "beta": true, "none": null}
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn an_allow_matching_the_arn_admits_with_a_stringified_context() {
        let Ok(Decision::Allow(allowed)) = evaluate(&output("Allow", json!(ARN)), ARN) else {
            panic!("allowed");
        };
        assert_eq!(allowed.principal_id, "user-42");
        assert_eq!(
            Value::Object(allowed.context),
            json!({"principalId": "user-42", "tenant": "acme", "tier": "3", "beta": "true", "none": null})
        );
        for resource in [
            json!("*"),
            json!("arn:aws:execute-api:*:*:local/*"),
            json!(["x", "arn:aws:execute-api:eu-west-?:*"]),
        ] {
            assert!(
                matches!(
                    evaluate(&output("Allow", resource.clone()), ARN),
                    Ok(Decision::Allow(_))
                ),
                "{resource}"
            );
        }
    }

    #[test]
    fn deny_wins_and_no_matching_allow_denies() {
        assert_eq!(
            evaluate(&output("Deny", json!("*")), ARN),
            Ok(Decision::Deny)
        );
        assert_eq!(
            evaluate(
                &output("Allow", json!("arn:aws:execute-api:*:*:other/*")),
                ARN
            ),
            Ok(Decision::Deny)
        );
        let both = json!({
            "principalId": "u",
            "policyDocument": {"Statement": [
                {"Action": "*", "Effect": "Allow", "Resource": "*"},
                {"Action": ["execute-api:*"], "Effect": "Deny", "Resource": ARN}
            ]}
        });
        assert_eq!(
            evaluate(both.to_string().as_bytes(), ARN),
            Ok(Decision::Deny)
        );
        let other_action = json!({
            "principalId": "u",
            "policyDocument": {"Statement": {"Action": "s3:GetObject", "Effect": "Allow", "Resource": "*"}}
        });
        assert_eq!(
            evaluate(other_action.to_string().as_bytes(), ARN),
            Ok(Decision::Deny)
        );
    }

    #[test]
    fn bad_outputs_are_errors() {
        let cases: [&[u8]; 7] = [
            b"not json",
            br#"{"statusCode": 401}"#,
            br#"{"principalId": "u"}"#,
            br#"{"principalId": 5, "policyDocument": {"Statement": []}}"#,
            br#"{"principalId": "u", "policyDocument": {"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}}"#,
            br#"{"principalId": "u", "policyDocument": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}, "context": {"a": {"b": 1}}}"#,
            br#"[1, 2]"#,
        ];
        for case in cases {
            assert!(
                evaluate(case, ARN).is_err(),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
        let big = format!(r#"{{"principalId": "{}"}}"#, "x".repeat(MAX_OUTPUT_BYTES));
        assert_eq!(evaluate(big.as_bytes(), ARN), Err(OutputError::TooLarge));
    }

    #[test]
    fn wildcards_follow_iam() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*$connect", ARN));
        assert!(!wildcard_match("*$disconnect", ARN));
        assert!(wildcard_match("a*b*c*d", "aXbYcZd"));
        assert!(!wildcard_match("a*b*c*d", "aXbYcZ"));
    }

    #[test]
    fn jwt_claims_become_the_context() {
        let claims = json!({"sub": "alice", "aud": ["a", "b"], "exp": 1700000000, "admin": true, "principalId": "mallory"});
        let allowed = claims_context(claims.as_object().expect("object"));
        assert_eq!(allowed.principal_id, "alice");
        assert_eq!(
            Value::Object(allowed.context),
            json!({"principalId": "alice", "sub": "alice", "aud": "[\"a\",\"b\"]", "exp": "1700000000", "admin": "true"})
        );
    }
}
