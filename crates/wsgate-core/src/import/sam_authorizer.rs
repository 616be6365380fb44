//! A SAM route's Lambda REQUEST authorizer (`AuthorizationType: CUSTOM` → `AuthorizerId` → an
//! `AWS::ApiGatewayV2::Authorizer` → `AuthorizerUri`), followed to a function of the template; one
//! that cannot run here is a warning, and the route is imported without it.

use std::collections::BTreeSet;

use serde_json::Value;

use super::assembly::{PendingAuthorizer, authorizer_skipped, identity_sources};
use super::cfn::{Cfn, Res, V2_AUTHORIZER, refs};
use super::sam_invoked::{Invoked, invoked_function};
use super::text::short_form;
use super::types::ImportError;
use crate::route::RouteKey;

/// The Lambda REQUEST authorizer a route's `AuthorizationType: CUSTOM` and `AuthorizerId` name,
/// when its function is in the template; anything else is a warning and the route is imported
/// without an authorizer.
pub(super) fn sam_route_authorizer<'a>(
    cfn: &Cfn<'a>,
    all: &[Res<'a>],
    route: &Res<'a>,
    key: &str,
    used: &mut BTreeSet<&'a str>,
    warnings: &mut Vec<String>,
) -> Result<Option<PendingAuthorizer>, ImportError> {
    let context = format!("route {key}");
    let Some(id) = custom_authorizer_id(cfn, route, key, warnings) else {
        return Ok(None);
    };
    let mut ids = Vec::new();
    refs(id, &mut ids);
    let Some(res) = ids
        .iter()
        .find_map(|id| cfn.res(id).filter(|r| r.kind == V2_AUTHORIZER))
    else {
        warnings.push(authorizer_skipped(
            key,
            format_args!(
                "AuthorizerId {} names no {V2_AUTHORIZER} of this template",
                short_form(id)
            ),
        ));
        return Ok(None);
    };
    used.insert(res.id);
    let name = res.id;
    let authorizer_context = format!("{context}: authorizer {name}");
    res.warn_condition(&context, warnings);
    let Some(function) = authorizer_function(cfn, all, &res, key, warnings)? else {
        return Ok(None);
    };
    let identity_sources = match res.prop("IdentitySource") {
        Some(value) => {
            let value = cfn.eval(value, &authorizer_context, warnings);
            identity_sources(&value, &authorizer_context, warnings)
        }
        None => Vec::new(),
    };
    Ok(Some(PendingAuthorizer {
        name: name.to_owned(),
        function,
        identity_sources,
    }))
}

/// A route's `AuthorizerId`, when its `AuthorizationType` is `CUSTOM` and it is `$connect`;
/// otherwise `None`, with a warning where an authorizer is asked for but not used.
fn custom_authorizer_id<'a>(
    cfn: &Cfn<'a>,
    route: &Res<'a>,
    key: &str,
    warnings: &mut Vec<String>,
) -> Option<&'a Value> {
    let context = format!("route {key}");
    let authorization = route
        .prop("AuthorizationType")
        .and_then(|a| cfn.text(a, &context, warnings))
        .map_or_else(|| "NONE".to_owned(), |a| a.to_ascii_uppercase());
    let authorizer_id = route.prop("AuthorizerId");
    match authorization.as_str() {
        "NONE" => {
            if let Some(id) = authorizer_id {
                warnings.push(format!(
                    "{context}: AuthorizerId {} has no effect without AuthorizationType: CUSTOM; ignored",
                    short_form(id)
                ));
            }
            return None;
        }
        "CUSTOM" => {}
        "AWS_IAM" => {
            warnings.push(authorizer_skipped(
                key,
                "AuthorizationType AWS_IAM is not supported (requests are not checked for a SigV4 signature)",
            ));
            return None;
        }
        other => {
            warnings.push(authorizer_skipped(
                key,
                format_args!(
                    "AuthorizationType {other} is not supported (only NONE and CUSTOM, a Lambda authorizer, are)"
                ),
            ));
            return None;
        }
    }
    if key != RouteKey::CONNECT {
        warnings.push(format!(
            "{context}: only $connect can have an authorizer, as on API Gateway; ignored"
        ));
        return None;
    }
    if authorizer_id.is_none() {
        warnings.push(authorizer_skipped(
            key,
            "AuthorizationType CUSTOM without an AuthorizerId",
        ));
    }
    authorizer_id
}

/// The function an `AWS::ApiGatewayV2::Authorizer` (`res`) invokes, when it is a REQUEST
/// authorizer whose function is in the template; `None`, with a warning, when it cannot run
/// here; an error when its `AuthorizerUri` names a logical id the template does not define.
fn authorizer_function(
    cfn: &Cfn<'_>,
    all: &[Res<'_>],
    res: &Res<'_>,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, ImportError> {
    let name = res.id;
    let authorizer_context = format!("route {key}: authorizer {name}");
    let kind = res
        .prop("AuthorizerType")
        .and_then(|t| cfn.text(t, &authorizer_context, warnings))
        .map_or_else(|| "(none)".to_owned(), |t| t.to_ascii_uppercase());
    if kind != "REQUEST" {
        warnings.push(authorizer_skipped(
            key,
            format_args!(
                "authorizer {name}: AuthorizerType {kind} is not supported (only REQUEST, a Lambda authorizer, is)"
            ),
        ));
        return Ok(None);
    }
    let Some(uri) = res.prop("AuthorizerUri") else {
        warnings.push(authorizer_skipped(
            key,
            format_args!("authorizer {name}: no AuthorizerUri"),
        ));
        return Ok(None);
    };
    match invoked_function(cfn, all, uri, &authorizer_context, warnings) {
        Invoked::Function(function) => Ok(Some(function)),
        Invoked::Undefined(function) => Err(ImportError::MissingFunction {
            route: key.to_owned(),
            function,
        }),
        Invoked::Outside(function) => {
            warnings.push(authorizer_skipped(
                key,
                format_args!(
                    "authorizer {name}: function {function} is not in this template, so it cannot run locally"
                ),
            ));
            Ok(None)
        }
        Invoked::Unknown => {
            warnings.push(authorizer_skipped(
                key,
                format_args!(
                    "authorizer {name}: cannot tell which function AuthorizerUri {} invokes",
                    short_form(uri)
                ),
            ));
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::FunctionRuntime;
    use crate::import::test_support::{SAM_AUTHORIZER, base, function_route, request_authorizer};
    use crate::import::{ImportError, from_sam};

    #[test]
    fn a_sam_request_authorizer_runs_its_function() {
        let imported = from_sam(SAM_AUTHORIZER, base()).expect("imports");
        let config = &imported.config;
        config.validate().expect("valid");
        assert_eq!(imported.warnings, Vec::<String>::new());
        assert_eq!(
            config.routes.keys().collect::<Vec<_>>(),
            ["$connect", "sendmessage"]
        );
        assert_eq!(
            function_route(config, "$connect"),
            ("ConnectFunction".to_owned(), false)
        );
        // Named after the resource's logical id, which AuthorizerId references.
        assert_eq!(
            config.routes["$connect"].authorizer.as_deref(),
            Some("ConnectAuthorizer")
        );
        assert_eq!(config.routes["sendmessage"].authorizer, None);
        assert_eq!(
            config.authorizers.keys().collect::<Vec<_>>(),
            ["ConnectAuthorizer"]
        );
        let auth = request_authorizer(config, "ConnectAuthorizer");
        assert_eq!(auth.function.as_deref(), Some("AuthFunction"));
        assert_eq!(
            auth.identity_sources,
            [
                "route.request.header.Auth",
                "route.request.querystring.token"
            ]
        );
        assert_eq!(
            config.functions.keys().collect::<Vec<_>>(),
            ["AuthFunction", "ConnectFunction", "SendFunction"]
        );
        let function = &config.functions["AuthFunction"];
        assert_eq!(function.runtime, FunctionRuntime::Python);
        assert_eq!(function.handler.as_deref(), Some("auth.handler"));
        assert_eq!(function.dir, Path::new("src/"));

        // `Fn::Join` with `!GetAtt`, and the identity sources as one comma-separated string.
        let joined = SAM_AUTHORIZER
            .replace(
                "      AuthorizerUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${AuthFunction.Arn}/invocations\n",
                "      AuthorizerUri: !Join ['', ['arn:aws:apigateway:', !Ref 'AWS::Region', ':lambda:path/2015-03-31/functions/', !GetAtt AuthFunction.Arn, '/invocations']]\n",
            )
            .replace(
                "      IdentitySource:\n        - route.request.header.Auth\n        - route.request.querystring.token\n",
                "      IdentitySource: 'route.request.header.Auth,route.request.querystring.token'\n",
            );
        assert_ne!(joined, SAM_AUTHORIZER);
        let imported = from_sam(&joined, base()).expect("imports");
        imported.config.validate().expect("valid");
        assert_eq!(imported.warnings, Vec::<String>::new());
        let auth = request_authorizer(&imported.config, "ConnectAuthorizer");
        assert_eq!(auth.function.as_deref(), Some("AuthFunction"));
        assert_eq!(
            auth.identity_sources,
            [
                "route.request.header.Auth",
                "route.request.querystring.token"
            ]
        );

        // A literal ARN naming a function of the template by its FunctionName.
        let named = SAM_AUTHORIZER
            .replace(
                "${AuthFunction.Arn}",
                "arn:aws:lambda:${AWS::Region}:${AWS::AccountId}:function:chat-auth",
            )
            .replace(
                "      Handler: auth.handler\n",
                "      Handler: auth.handler\n      FunctionName: chat-auth\n",
            );
        let imported = from_sam(&named, base()).expect("imports");
        assert_eq!(
            request_authorizer(&imported.config, "ConnectAuthorizer")
                .function
                .as_deref(),
            Some("AuthFunction")
        );
    }

    #[test]
    fn sam_authorizers_that_cannot_run_are_warnings() {
        let connect =
            "      AuthorizationType: CUSTOM\n      AuthorizerId: !Ref ConnectAuthorizer\n";
        let with = |from: &str, to: &str| {
            let template = SAM_AUTHORIZER.replace(from, to);
            assert_ne!(template, SAM_AUTHORIZER, "{from}");
            let imported = from_sam(&template, base()).expect("imports");
            imported.config.validate().expect("valid");
            assert_eq!(
                function_route(&imported.config, "$connect"),
                ("ConnectFunction".to_owned(), false)
            );
            imported
        };

        // IAM authorization is not checked.
        let imported = with(connect, "      AuthorizationType: AWS_IAM\n");
        assert!(imported.config.authorizers.is_empty());
        assert_eq!(imported.config.routes["$connect"].authorizer, None);
        assert!(!imported.config.functions.contains_key("AuthFunction"));
        assert_eq!(
            imported.warnings,
            [
                "route $connect: AuthorizationType AWS_IAM is not supported (requests are not checked for a SigV4 signature); connections are accepted without it",
                "functions without a WebSocket route are not imported: AuthFunction",
            ]
        );

        // An authorizer function outside the template.
        let imported = with(
            "${AuthFunction.Arn}",
            "arn:aws:lambda:us-east-1:123456789012:function:shared-auth",
        );
        assert!(imported.config.authorizers.is_empty());
        assert_eq!(
            imported.warnings,
            [
                "route $connect: authorizer ConnectAuthorizer: function shared-auth is not in this template, so it cannot run locally; connections are accepted without it",
                "functions without a WebSocket route are not imported: AuthFunction",
            ]
        );

        // An authorizer function whose runtime does not run here.
        let imported = with("      Runtime: python3.12\n", "      Runtime: java17\n");
        assert!(imported.config.authorizers.is_empty());
        assert_eq!(imported.config.routes["$connect"].authorizer, None);
        assert_eq!(
            imported.warnings,
            [
                "route $connect: authorizer ConnectAuthorizer cannot run (function AuthFunction: runtime java17 is not supported (python*, nodejs* and provided* with a bootstrap are)); connections are accepted without it"
            ]
        );

        // A JWT authorizer type (HTTP APIs only on AWS), and a CUSTOM route that is not $connect.
        let imported = with(
            "      AuthorizerType: REQUEST\n",
            "      AuthorizerType: JWT\n",
        );
        assert!(imported.config.authorizers.is_empty());
        assert_eq!(
            imported.warnings,
            [
                "route $connect: authorizer ConnectAuthorizer: AuthorizerType JWT is not supported (only REQUEST, a Lambda authorizer, is); connections are accepted without it",
                "functions without a WebSocket route are not imported: AuthFunction",
            ]
        );
        let imported = with(
            "      AuthorizationType: NONE\n",
            "      AuthorizationType: CUSTOM\n      AuthorizerId: !Ref ConnectAuthorizer\n",
        );
        assert_eq!(imported.config.routes["sendmessage"].authorizer, None);
        assert_eq!(
            imported.warnings,
            ["route sendmessage: only $connect can have an authorizer, as on API Gateway; ignored"]
        );

        // A $connect whose own function cannot run keeps its authorizer: connections are still
        // checked, then accepted.
        let template = SAM_AUTHORIZER.replace(
            "      Handler: connect.handler\n",
            "      Handler: connect.handler\n      Runtime: java17\n",
        );
        let imported = from_sam(&template, base()).expect("imports");
        let config = &imported.config;
        config.validate().expect("valid");
        let connect = &config.routes["$connect"];
        assert_eq!(connect.integration, None);
        assert_eq!(connect.authorizer.as_deref(), Some("ConnectAuthorizer"));
        assert_eq!(
            imported.warnings,
            [
                "function ConnectFunction: runtime java17 is not supported (python*, nodejs* and provided* with a bootstrap are); skipped routes: $connect"
            ]
        );

        // An AuthorizerUri naming a function the template does not define is an error.
        let template = SAM_AUTHORIZER.replace("${AuthFunction.Arn}", "${AuthFunctoin.Arn}");
        let e = from_sam(&template, base()).expect_err("missing function");
        assert_eq!(
            e,
            ImportError::MissingFunction {
                route: "$connect".into(),
                function: "AuthFunctoin".into()
            }
        );
    }
}
