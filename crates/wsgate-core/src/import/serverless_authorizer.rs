//! A `serverless.yml` `$connect` event's `authorizer`, as the Serverless Framework v3 reads it,
//! followed to a function of the service: by its key, or through an ARN naming it by deployed
//! name or logical id. One that cannot run here is a warning.

use serde_json::{Map, Value};

use super::assembly::{PendingAuthorizer, authorizer_skipped, identity_sources};
use super::cfn::{lambda_name_in_arn, refs};
use super::text::{scalar_text, short_form};
use super::variables::Vars;

/// The identity source the Serverless Framework (v3) gives a websocket authorizer that names
/// none (`lib/plugins/aws/package/compile/events/websockets/lib/validate.js`).
const SLS_DEFAULT_IDENTITY_SOURCE: &str = "route.request.header.Auth";

/// A function of a `serverless.yml`, as an authorizer's ARN may name it.
pub(super) struct ServiceFunction {
    /// Its key under `functions`.
    key: String,
    /// Its Lambda function name once deployed, when known.
    deployed_name: Option<String>,
    /// Its resource's logical id in the compiled template.
    logical_id: String,
}

/// The logical id the Serverless Framework gives a function's `AWS::Lambda::Function`
/// (`naming.getLambdaLogicalId`): `-` spelled `Dash`, `_` spelled `Underscore`, the first letter
/// upper-cased, then `LambdaFunction`.
fn sls_lambda_logical_id(key: &str) -> String {
    let normalized = key.replace('-', "Dash").replace('_', "Underscore");
    let mut chars = normalized.chars();
    let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
    format!(
        "{}{}LambdaFunction",
        first.unwrap_or_default(),
        chars.as_str()
    )
}

/// The functions of a `serverless.yml` as an authorizer's ARN may name them: by deployed name
/// (`name`, else `SERVICE-STAGE-KEY`) or by logical id (`KeyLambdaFunction`).
pub(super) fn service_functions(
    root: &Value,
    functions: &Map<String, Value>,
    vars: &Vars<'_>,
) -> Vec<ServiceFunction> {
    let service = root
        .get("service")
        .map(|s| s.get("name").unwrap_or(s))
        .and_then(|s| scalar_text(&vars.resolve(s, "service", &mut Vec::new())));
    functions
        .iter()
        .map(|(key, function)| ServiceFunction {
            key: key.clone(),
            deployed_name: function
                .get("name")
                .and_then(|n| scalar_text(&vars.resolve(n, "", &mut Vec::new())))
                .or_else(|| {
                    service
                        .as_ref()
                        .map(|service| format!("{service}-{}-{key}", vars.stage))
                }),
            logical_id: sls_lambda_logical_id(key),
        })
        .collect()
}

/// A `$connect` websocket event's `authorizer` (variables resolved), as the Serverless
/// Framework v3 reads it: `auth` (a function of the service), an ARN (`arn:...`, anything with a
/// `:`), or `{name, arn, identitySource}`, where `arn` wins over `name` and may be an intrinsic
/// (`!GetAtt AuthLambdaFunction.Arn`). The identity source defaults to
/// `route.request.header.Auth`, as in the Framework. An ARN is followed only to a function of
/// this service; any other cannot run here and is a warning.
pub(super) fn sls_authorizer(
    value: &Value,
    key: &str,
    service_functions: &[ServiceFunction],
    warnings: &mut Vec<String>,
) -> Option<PendingAuthorizer> {
    let (name, arn, sources) = authorizer_parts(value, key, warnings)?;
    let function = match arn {
        Some(arn) => match by_arn(arn, service_functions) {
            Some(function) => function.key.clone(),
            None => {
                warnings.push(authorizer_skipped(
                    key,
                    format_args!(
                        "authorizer {} is not a function of this service, so it cannot run locally",
                        short_form(arn)
                    ),
                ));
                return None;
            }
        },
        None => match &name {
            Some(name) => name.clone(),
            None => {
                warnings.push(authorizer_skipped(
                    key,
                    "the authorizer has neither a name nor an arn",
                ));
                return None;
            }
        },
    };
    let name = name.unwrap_or_else(|| function.clone());
    let context = format!("route {key}: authorizer {name}");
    let identity_sources = match sources {
        Some(sources) => identity_sources(sources, &context, warnings),
        None => vec![SLS_DEFAULT_IDENTITY_SOURCE.to_owned()],
    };
    Some(PendingAuthorizer {
        name,
        function,
        identity_sources,
    })
}

/// An `authorizer`'s name, ARN and identity sources, as written; `None` (with a warning) when it
/// is none of the forms the Framework reads. Keys it does not read are warnings.
fn authorizer_parts<'v>(
    value: &'v Value,
    key: &str,
    warnings: &mut Vec<String>,
) -> Option<(Option<String>, Option<&'v Value>, Option<&'v Value>)> {
    match value {
        Value::String(s) if s.contains(':') => Some((arn_name(value), Some(value), None)),
        Value::String(s) => Some((Some(s.clone()), None, None)),
        Value::Object(map) => {
            for other in map
                .keys()
                .filter(|k| !["name", "arn", "identitySource"].contains(&k.as_str()))
            {
                warnings.push(format!(
                    "route {key}: websocket.authorizer.{other} is not supported; ignored"
                ));
            }
            let arn = map.get("arn").filter(|a| !a.is_null());
            let name = map
                .get("name")
                .and_then(scalar_text)
                .or_else(|| arn.and_then(arn_name));
            Some((
                name,
                arn,
                map.get("identitySource").filter(|s| !s.is_null()),
            ))
        }
        other => {
            warnings.push(authorizer_skipped(
                key,
                format_args!(
                    "authorizer {} is neither a function name, an ARN nor a mapping",
                    short_form(other)
                ),
            ));
            None
        }
    }
}

/// The function of the service an authorizer's `arn` names: a literal ARN by deployed name, an
/// intrinsic (`!GetAtt AuthLambdaFunction.Arn`) by logical id.
fn by_arn<'f>(
    arn: &Value,
    service_functions: &'f [ServiceFunction],
) -> Option<&'f ServiceFunction> {
    match arn {
        Value::String(arn) => {
            let name = lambda_name_in_arn(arn)?;
            service_functions
                .iter()
                .find(|f| f.deployed_name.as_deref() == Some(name))
        }
        other => {
            let mut ids = Vec::new();
            refs(other, &mut ids);
            service_functions
                .iter()
                .find(|f| ids.contains(&f.logical_id))
        }
    }
}

/// The Framework names an ARN's authorizer after the ARN's last part.
fn arn_name(arn: &Value) -> Option<String> {
    match arn {
        Value::String(arn) => arn.rsplit(':').next().map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::FunctionRuntime;
    use crate::import::test_support::{
        SERVERLESS_AUTHORIZER, base, function_route, request_authorizer,
    };
    use crate::import::{ImportError, from_serverless};

    #[test]
    fn a_serverless_authorizer_named_by_function_runs_that_function() {
        let imported = from_serverless(SERVERLESS_AUTHORIZER, base()).expect("imports");
        let config = &imported.config;
        config.validate().expect("valid");
        assert_eq!(imported.warnings, Vec::<String>::new());
        assert_eq!(
            config.routes.keys().collect::<Vec<_>>(),
            ["$connect", "$default"]
        );
        assert_eq!(
            function_route(config, "$connect"),
            ("connect".to_owned(), false)
        );
        assert_eq!(
            config.routes["$connect"].authorizer.as_deref(),
            Some("auth")
        );
        assert_eq!(config.routes["$default"].authorizer, None);
        assert_eq!(config.authorizers.keys().collect::<Vec<_>>(), ["auth"]);
        let auth = request_authorizer(config, "auth");
        assert_eq!(auth.function.as_deref(), Some("auth"));
        assert_eq!(auth.url, None);
        // The Serverless Framework's default identity source.
        assert_eq!(auth.identity_sources, ["route.request.header.Auth"]);
        assert_eq!(auth.cache_ttl, None);
        assert_eq!(auth.timeout, None);

        // The authorizer function is imported like any other, though no route invokes it.
        assert_eq!(
            config.functions.keys().collect::<Vec<_>>(),
            ["auth", "connect", "default"]
        );
        let function = &config.functions["auth"];
        assert_eq!(function.runtime, FunctionRuntime::Python);
        assert_eq!(function.handler.as_deref(), Some("src/auth.handler"));
        assert_eq!(function.timeout, Some(Duration::from_secs(5)));
        assert_eq!(function.environment["JWT_ISSUER"], "https://issuer.example");
    }

    #[test]
    fn a_serverless_authorizer_object_maps_its_identity_sources() {
        let service = |authorizer: &str| {
            format!(
                r#"
service: chat
provider:
  name: aws
  runtime: python3.12
functions:
  auth:
    handler: auth.handler
  connect:
    handler: handler.connect
    events:
      - websocket:
          route: $connect
          authorizer:
{authorizer}
      - websocket:
          route: hello
          authorizer: auth
"#
            )
        };
        let yaml = service(
            "            name: auth\n            identitySource:\n              - route.request.header.Auth\n              - route.request.querystring.Auth\n",
        );
        let imported = from_serverless(&yaml, base()).expect("imports");
        let config = &imported.config;
        config.validate().expect("valid");
        assert_eq!(
            config.routes["$connect"].authorizer.as_deref(),
            Some("auth")
        );
        assert_eq!(config.routes["hello"].authorizer, None);
        let auth = request_authorizer(config, "auth");
        assert_eq!(auth.function.as_deref(), Some("auth"));
        assert_eq!(
            auth.identity_sources,
            [
                "route.request.header.Auth",
                "route.request.querystring.Auth"
            ]
        );
        assert_eq!(
            imported.warnings,
            ["route hello: only $connect can have an authorizer, as on API Gateway; ignored"]
        );

        // One string, and sources wsgate cannot read (dropped, with a warning).
        let yaml = service(
            "            name: auth\n            identitySource: 'route.request.querystring.token, context.requestId'\n            type: request\n",
        );
        let imported = from_serverless(&yaml, base()).expect("imports");
        imported.config.validate().expect("valid");
        assert_eq!(
            request_authorizer(&imported.config, "auth").identity_sources,
            ["route.request.querystring.token"]
        );
        assert_eq!(
            imported.warnings,
            [
                "route $connect: websocket.authorizer.type is not supported; ignored",
                "route $connect: authorizer auth: identity source context.requestId is not supported (only route.request.header.NAME and route.request.querystring.NAME are); the gateway does not check it",
                "route hello: only $connect can have an authorizer, as on API Gateway; ignored",
            ]
        );

        // An ARN that names a function of this service, by deployed name or by logical id.
        for arn in [
            "            arn: arn:aws:lambda:us-east-1:123456789012:function:chat-dev-auth\n",
            "            name: checker\n            arn: !GetAtt AuthLambdaFunction.Arn\n",
        ] {
            let imported = from_serverless(&service(arn), base()).expect("imports");
            let config = &imported.config;
            config.validate().expect("valid");
            let name = config.routes["$connect"].authorizer.clone().expect("one");
            assert!(name == "chat-dev-auth" || name == "checker", "{name}");
            let auth = request_authorizer(config, &name);
            assert_eq!(auth.function.as_deref(), Some("auth"));
            assert_eq!(auth.identity_sources, ["route.request.header.Auth"]);
        }

        // An authorizer naming no function of the service is an error, as a route's would be.
        let e = from_serverless(&service("            name: nobody\n"), base())
            .expect_err("missing function");
        assert_eq!(
            e,
            ImportError::MissingFunction {
                route: "$connect".into(),
                function: "nobody".into()
            }
        );

        // An authorizer function that cannot run: $connect is imported without it.
        let yaml = service("            name: auth\n").replace(
            "    handler: auth.handler\n",
            "    handler: com.example.Auth::handle\n    runtime: java17\n",
        );
        let imported = from_serverless(&yaml, base()).expect("imports");
        let config = &imported.config;
        config.validate().expect("valid");
        assert!(config.authorizers.is_empty());
        assert_eq!(config.routes["$connect"].authorizer, None);
        assert_eq!(
            function_route(config, "$connect"),
            ("connect".to_owned(), false)
        );
        assert!(!config.functions.contains_key("auth"));
        assert_eq!(
            imported.warnings,
            [
                "route hello: only $connect can have an authorizer, as on API Gateway; ignored",
                "route $connect: authorizer auth cannot run (function auth: runtime java17 is not supported (python*, nodejs* and provided* with a bootstrap are)); connections are accepted without it",
            ]
        );
    }

    #[test]
    fn a_serverless_authorizer_outside_the_service_is_a_warning() {
        let yaml = r#"
service: chat
provider:
  name: aws
  runtime: nodejs20.x
functions:
  connect:
    handler: handler.connect
    events:
      - websocket:
          route: $connect
          authorizer: arn:aws:lambda:us-east-1:123456789012:function:shared-auth
"#;
        let imported = from_serverless(yaml, base()).expect("imports");
        let config = &imported.config;
        config.validate().expect("valid");
        assert!(config.authorizers.is_empty());
        assert_eq!(config.routes["$connect"].authorizer, None);
        assert_eq!(
            function_route(config, "$connect"),
            ("connect".to_owned(), false)
        );
        assert_eq!(
            imported.warnings,
            [
                "route $connect: authorizer arn:aws:lambda:us-east-1:123456789012:function:shared-auth is not a function of this service, so it cannot run locally; connections are accepted without it"
            ]
        );

        // The object form, with an identity source, warns the same way.
        let yaml = yaml.replace(
            "          authorizer: arn:aws:lambda:us-east-1:123456789012:function:shared-auth\n",
            "          authorizer:\n            arn: arn:aws:lambda:us-east-1:123456789012:function:shared-auth\n            identitySource: [route.request.header.Auth]\n",
        );
        let imported = from_serverless(&yaml, base()).expect("imports");
        assert!(imported.config.authorizers.is_empty());
        assert_eq!(
            imported.warnings,
            [
                "route $connect: authorizer arn:aws:lambda:us-east-1:123456789012:function:shared-auth is not a function of this service, so it cannot run locally; connections are accepted without it"
            ]
        );
    }
}
