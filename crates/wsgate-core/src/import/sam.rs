//! Importing an AWS SAM or CloudFormation template: the first WebSocket
//! `AWS::ApiGatewayV2::Api`, the resources that belong to it, its routes and their integrations,
//! its stage, and the functions the routes invoke.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::assembly::{
    Assembly, FunctionSpec, NO_LOCAL_MEANING, PendingRoute, apply_environment,
    check_route_response, not_emulated_warning, unrouted_warning,
};
use super::budget::Budget;
use super::cfn::{
    Cfn, Res, V2_API, V2_DEPLOYMENT, V2_INTEGRATION, V2_ROUTE, V2_ROUTE_RESPONSE, V2_STAGE,
    lambda_name_in_arn, refs,
};
use super::sam_authorizer::sam_route_authorizer;
use super::sam_function::sam_function;
use super::text::{scalar_text, short_form};
use super::yaml::parse_yaml;
use super::{DEFAULT_REGION, DEFAULT_SELECTION_EXPRESSION, ImportError, ImportOptions, Imported};
use crate::route::RouteKey;

/// Which API an `AWS::ApiGatewayV2::*` resource belongs to.
enum Owner {
    /// The imported one.
    Ours,
    /// Another API of the template.
    Other,
    /// No `ApiId`, or one that names no API of the template.
    Unknown,
}

fn owner(cfn: &Cfn<'_>, res: &Res<'_>, api: &str) -> Owner {
    let mut ids = Vec::new();
    if let Some(api_id) = res.prop("ApiId") {
        refs(api_id, &mut ids);
    }
    if ids.iter().any(|id| id == api) {
        Owner::Ours
    } else if ids
        .iter()
        .any(|id| cfn.res(id).is_some_and(|r| r.kind == V2_API))
    {
        Owner::Other
    } else {
        Owner::Unknown
    }
}

/// [`super::from_sam_with`].
pub(super) fn import(
    yaml: &str,
    base_dir: &Path,
    options: ImportOptions<'_>,
) -> Result<Imported, ImportError> {
    let root = parse_yaml(yaml, "template")?;
    let Some(resources) = root.get("Resources").and_then(Value::as_object) else {
        return Err(ImportError::NoWebSocketRoutes(
            "the template has no Resources".to_owned(),
        ));
    };
    let parameters = root.get("Parameters").and_then(Value::as_object);
    let mut warnings = Vec::new();

    // A parameter named like a region is the region, unless the caller says otherwise.
    let region_from_file = parameters.and_then(|p| {
        p.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("region") || k.eq_ignore_ascii_case("awsregion"))
            .and_then(|(k, v)| {
                options
                    .parameters
                    .iter()
                    .find(|(o, _)| o == k)
                    .map(|(_, value)| (*value).to_owned())
                    .or_else(|| v.get("Default").and_then(scalar_text))
            })
    });
    let mut cfn = Cfn {
        resources,
        parameters,
        mappings: root.get("Mappings").and_then(Value::as_object),
        overrides: options.parameters,
        region: options
            .region
            .map(str::to_owned)
            .or_else(|| region_from_file.clone())
            .unwrap_or_else(|| DEFAULT_REGION.to_owned()),
        api: None,
        vars: None,
        budget: Budget::default(),
    };
    let all = cfn.all();
    for id in resources.keys() {
        if cfn.res(id).is_none() {
            warnings.push(format!("resource {id}: it has no Type; ignored"));
        }
    }

    // The API.
    let apis: Vec<Res<'_>> = all
        .iter()
        .filter(|r| r.kind == V2_API)
        .filter(|r| {
            r.prop("ProtocolType")
                .and_then(|p| cfn.text(p, &format!("API {}", r.id), &mut Vec::new()))
                .is_some_and(|p| p.eq_ignore_ascii_case("WEBSOCKET"))
        })
        .copied()
        .collect();
    let Some(api) = apis.first().copied() else {
        return Err(ImportError::NoWebSocketRoutes(
            "the template has no AWS::ApiGatewayV2::Api with ProtocolType: WEBSOCKET".to_owned(),
        ));
    };
    cfn.api = Some(api.id.to_owned());
    let mut used: BTreeSet<&str> = apis.iter().map(|a| a.id).collect();
    for other in &apis[1..] {
        warnings.push(format!(
            "API {}: only one WebSocket API is imported ({}); its routes are skipped",
            other.id, api.id
        ));
    }
    let api_context = format!("API {}", api.id);
    let selection_expression = match api.prop("RouteSelectionExpression") {
        Some(v) => cfn.text(v, &api_context, &mut warnings),
        None => None,
    }
    .unwrap_or_else(|| {
        warnings.push(format!(
            "{api_context}: no RouteSelectionExpression; {DEFAULT_SELECTION_EXPRESSION} is used"
        ));
        DEFAULT_SELECTION_EXPRESSION.to_owned()
    });
    for key in [
        "Body",
        "BodyS3Location",
        "Target",
        "RouteKey",
        "CredentialsArn",
    ] {
        if api.prop(key).is_some() {
            warnings.push(format!("{api_context}: {key} is not supported; ignored"));
        }
    }

    let mut ours = Vec::new();
    for res in &all {
        if !res.kind.starts_with("AWS::ApiGatewayV2::") || res.kind == V2_API {
            continue;
        }
        match owner(&cfn, res, api.id) {
            Owner::Ours => {
                used.insert(res.id);
                ours.push(*res);
            }
            Owner::Other => {
                // Reported with its API.
                used.insert(res.id);
            }
            Owner::Unknown => {
                if matches!(res.kind, V2_ROUTE | V2_INTEGRATION | V2_ROUTE_RESPONSE) {
                    used.insert(res.id);
                    warnings.push(format!(
                        "{} {}: its ApiId names no API of this template; ignored",
                        res.kind, res.id
                    ));
                }
            }
        }
    }

    // Route responses, by route resource.
    let mut with_route_response = BTreeSet::new();
    for rr in ours.iter().filter(|r| r.kind == V2_ROUTE_RESPONSE) {
        let context = format!("route response {}", rr.id);
        let key = rr
            .prop("RouteResponseKey")
            .and_then(|k| cfn.text(k, &context, &mut warnings))
            .unwrap_or_default();
        if key != RouteKey::DEFAULT {
            warnings.push(format!(
                "{context}: RouteResponseKey {key:?} is not supported (only $default is); ignored"
            ));
            continue;
        }
        for prop in [
            "ModelSelectionExpression",
            "ResponseModels",
            "ResponseParameters",
        ] {
            if rr.prop(prop).is_some() {
                warnings.push(format!("{context}: {prop} is not supported; ignored"));
            }
        }
        let mut ids = Vec::new();
        if let Some(route) = rr.prop("RouteId") {
            refs(route, &mut ids);
        }
        with_route_response.extend(ids);
    }

    // Routes.
    let mut pending: Vec<PendingRoute> = Vec::new();
    let mut any_route = false;
    for route in ours.iter().filter(|r| r.kind == V2_ROUTE) {
        any_route = true;
        let Some(key) = route
            .prop("RouteKey")
            .and_then(|k| cfn.text(k, &format!("route resource {}", route.id), &mut warnings))
        else {
            warnings.push(format!("route resource {}: no RouteKey; skipped", route.id));
            continue;
        };
        let context = format!("route {key}");
        if let Some(first) = pending.iter().find(|p| p.key == key) {
            return Err(ImportError::DuplicateRoute {
                route: key,
                first: first.declared_by.clone(),
                second: route.id.to_owned(),
            });
        }
        route.warn_condition(&context, &mut warnings);
        let authorizer = sam_route_authorizer(&cfn, &all, route, &key, &mut used, &mut warnings)?;
        if route
            .prop("ApiKeyRequired")
            .is_some_and(|v| v == &Value::Bool(true) || v.as_str() == Some("true"))
        {
            warnings.push(format!(
                "{context}: ApiKeyRequired is not supported; API keys are not checked"
            ));
        }
        for prop in [
            "RequestModels",
            "ModelSelectionExpression",
            "RequestParameters",
        ] {
            if route.prop(prop).is_some() {
                warnings.push(format!(
                    "{context}: {prop} is not supported; requests are not checked against it"
                ));
            }
        }

        // Its integration.
        let Some(target) = route.prop("Target") else {
            warnings.push(format!("{context}: no Target (integration); skipped"));
            continue;
        };
        let mut ids = Vec::new();
        refs(target, &mut ids);
        let integration = ids
            .iter()
            .find_map(|id| cfn.res(id).filter(|r| r.kind == V2_INTEGRATION));
        let Some(integration) = integration else {
            if let Some(missing) = ids
                .iter()
                .find(|id| cfn.res(id).is_none() && !cfn.is_parameter(id))
            {
                return Err(ImportError::MissingIntegration {
                    route: key,
                    integration: missing.clone(),
                });
            }
            warnings.push(format!(
                "{context}: Target {} names no integration of this template; skipped",
                short_form(target)
            ));
            continue;
        };
        used.insert(integration.id);
        let integration_context = format!("{context}: integration {}", integration.id);
        integration.warn_condition(&context, &mut warnings);
        let kind = integration
            .prop("IntegrationType")
            .and_then(|t| cfn.text(t, &integration_context, &mut warnings))
            .map_or_else(|| "(none)".to_owned(), |t| t.to_ascii_uppercase());
        if kind != "AWS_PROXY" {
            warnings.push(format!(
                "{integration_context}: IntegrationType {kind} is not supported (only AWS_PROXY, the Lambda proxy integration, is); skipped"
            ));
            continue;
        }
        for prop in [
            "RequestTemplates",
            "TemplateSelectionExpression",
            "RequestParameters",
            "ResponseParameters",
            "ContentHandlingStrategy",
        ] {
            if integration.prop(prop).is_some() {
                warnings.push(format!(
                    "{integration_context}: {prop} is not supported; ignored"
                ));
            }
        }
        if integration.prop("TimeoutInMillis").is_some() {
            warnings.push(format!(
                "{integration_context}: TimeoutInMillis is not supported per route; the function's Timeout, else limits.integration_timeout, applies"
            ));
        }
        let Some(uri) = integration.prop("IntegrationUri") else {
            warnings.push(format!("{integration_context}: no IntegrationUri; skipped"));
            continue;
        };
        let function = match invoked_function(&cfn, &all, uri, &integration_context, &mut warnings)
        {
            Invoked::Function(function) => function,
            Invoked::Undefined(function) | Invoked::Outside(function) => {
                return Err(ImportError::MissingFunction {
                    route: key,
                    function,
                });
            }
            Invoked::Unknown => {
                warnings.push(format!(
                    "{integration_context}: cannot tell which function IntegrationUri {} invokes; skipped",
                    short_form(uri)
                ));
                continue;
            }
        };

        // Its route response: both the expression and a `$default` RouteResponse are needed.
        let expression = route
            .prop("RouteResponseSelectionExpression")
            .and_then(|e| cfn.text(e, &context, &mut warnings));
        let has_response = with_route_response.contains(route.id);
        let route_response = match (expression.as_deref(), has_response) {
            (Some(RouteKey::DEFAULT), true) => true,
            (None, false) => false,
            (Some(RouteKey::DEFAULT), false) => {
                warnings.push(format!(
                    "{context}: RouteResponseSelectionExpression is $default but no {V2_ROUTE_RESPONSE} with RouteResponseKey $default exists; no route response is sent"
                ));
                false
            }
            (Some(other), _) => {
                warnings.push(format!(
                    "{context}: RouteResponseSelectionExpression {other:?} is not supported (only $default is); no route response is sent"
                ));
                false
            }
            (None, true) => {
                warnings.push(format!(
                    "{context}: it has a $default RouteResponse but no RouteResponseSelectionExpression: $default; no route response is sent"
                ));
                false
            }
        };
        let route_response = check_route_response(&key, route_response, &mut warnings);
        pending.push(PendingRoute {
            key,
            declared_by: route.id.to_owned(),
            function,
            route_response,
            authorizer,
        });
    }
    if !any_route {
        return Err(ImportError::NoWebSocketRoutes(format!(
            "API {} has no {V2_ROUTE}",
            api.id
        )));
    }

    // The stage.
    let mut stage = None;
    for res in ours.iter().filter(|r| r.kind == V2_STAGE) {
        let context = format!("stage {}", res.id);
        let mut notes = Vec::new();
        let Some(name) = res
            .prop("StageName")
            .and_then(|n| cfn.text(n, &context, &mut notes))
        else {
            continue;
        };
        if !notes.is_empty() {
            warnings.extend(notes);
            warnings.push(format!(
                "{context}: its StageName cannot be resolved; ignored"
            ));
            continue;
        }
        if let Some(first) = &stage {
            warnings.push(format!(
                "stage {name}: only one stage is served ({first}); ignored"
            ));
            continue;
        }
        res.warn_condition(&format!("stage {name}"), &mut warnings);
        if res.prop("StageVariables").is_some() {
            warnings.push(format!(
                "stage {name}: StageVariables are not supported; ignored"
            ));
        }
        stage = Some(name);
    }
    let stage = stage
        .or_else(|| {
            let deployments: Vec<&Res<'_>> =
                ours.iter().filter(|r| r.kind == V2_DEPLOYMENT).collect();
            let named = deployments.iter().find_map(|d| {
                d.prop("StageName")
                    .and_then(|n| cfn.text(n, &format!("deployment {}", d.id), &mut warnings))
            });
            named.or_else(|| (!deployments.is_empty()).then(|| "Prod".to_owned()))
        })
        .unwrap_or_else(|| "dev".to_owned());
    let stage = options.stage.map_or(stage, str::to_owned);

    // The functions.
    let globals = root
        .get("Globals")
        .and_then(|g| g.get("Function"))
        .and_then(Value::as_object);
    let mut global_env = BTreeMap::new();
    if let Some(vars) = globals
        .and_then(|g| g.get("Environment"))
        .and_then(|e| e.get("Variables"))
    {
        let context = |name: Option<&str>| match name {
            Some(name) => format!("Globals.Function.Environment.Variables.{name}"),
            None => "Globals.Function.Environment.Variables".to_owned(),
        };
        apply_environment(&cfn, vars, &context, &mut global_env, &mut warnings);
    }
    let mut functions = BTreeMap::new();
    let mut broken = Vec::new();
    let mut routed = BTreeSet::new();
    // The routes' functions, then their authorizers'.
    let invoked = pending.iter().map(|r| &r.function).chain(
        pending
            .iter()
            .filter_map(|r| Some(&r.authorizer.as_ref()?.function)),
    );
    for name in invoked {
        if !routed.insert(name.as_str()) {
            continue;
        }
        used.insert(name.as_str());
        let Some(res) = cfn.res(name) else {
            continue;
        };
        let spec = sam_function(&cfn, &res, globals, &global_env, &mut warnings);
        match spec.and_then(FunctionSpec::build) {
            Ok(function) => {
                functions.insert(name.clone(), function);
            }
            Err(reason) => broken.push((name.clone(), reason)),
        }
    }

    // What is left.
    let unrouted: Vec<String> = all
        .iter()
        .filter(|r| r.is_function() && !used.contains(r.id))
        .map(|r| r.id.to_owned())
        .collect();
    let others: Vec<String> = all
        .iter()
        .filter(|r| !used.contains(r.id) && !r.is_function() && !NO_LOCAL_MEANING.contains(&r.kind))
        .map(|r| format!("{} ({})", r.id, r.kind))
        .collect();
    let trailing = [
        unrouted_warning("WebSocket route", &unrouted),
        not_emulated_warning(&others),
    ]
    .into_iter()
    .flatten()
    .collect();

    Assembly {
        base_dir: base_dir.to_path_buf(),
        stage,
        selection_expression,
        region: options.region.map(str::to_owned).or(region_from_file),
        routes: pending,
        functions,
        broken,
        warnings,
    }
    .finish(trailing)
}

/// What an `IntegrationUri` or `AuthorizerUri` invokes.
pub(super) enum Invoked {
    /// A function of the template, by logical id.
    Function(String),
    /// A logical id the template does not define (a typo, most likely).
    Undefined(String),
    /// The function a literal ARN names, which no function of the template is.
    Outside(String),
    /// Nothing that names a function.
    Unknown,
}

/// The function a Lambda invocation URI invokes: `${Fn.Arn}` in a `Fn::Sub`, `!GetAtt Fn.Arn`
/// in a `Fn::Join`, or a literal ARN naming a function by logical id or `FunctionName`.
pub(super) fn invoked_function(
    cfn: &Cfn<'_>,
    all: &[Res<'_>],
    uri: &Value,
    context: &str,
    warnings: &mut Vec<String>,
) -> Invoked {
    let mut ids = Vec::new();
    refs(uri, &mut ids);
    if let Some(function) = ids
        .iter()
        .find_map(|id| cfn.res(id).filter(Res::is_function))
    {
        return Invoked::Function(function.id.to_owned());
    }
    if let Some(missing) = ids
        .iter()
        .find(|id| cfn.res(id).is_none() && !cfn.is_parameter(id))
    {
        return Invoked::Undefined(missing.clone());
    }
    let text = cfn.text(uri, context, warnings).unwrap_or_default();
    let Some(name) = lambda_name_in_arn(&text) else {
        return Invoked::Unknown;
    };
    let named = all.iter().find(|r| {
        r.is_function()
            && (r.id == name
                || r.prop("FunctionName")
                    .and_then(|n| cfn.text(n, "", &mut Vec::new()))
                    .is_some_and(|n| n == name))
    });
    match named {
        Some(function) => Invoked::Function(function.id.to_owned()),
        None => Invoked::Outside(name.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::Runtime;
    use crate::import::test_support::{
        SAM_CHAT, base, env, function_route, sam, sam_function, sam_route,
    };
    use crate::import::{ImportOptions, from_sam, from_sam_with};

    #[test]
    fn the_sam_chat_app_imports_as_it_is() {
        let imported = from_sam(SAM_CHAT, base()).expect("imports");
        let config = &imported.config;
        config.validate().expect("valid");
        assert_eq!(config.base_dir, base());
        assert_eq!(config.gateway.stage, "Prod");
        assert_eq!(
            config.gateway.route_selection_expression,
            "$request.body.action"
        );
        assert_eq!(
            config.routes.keys().collect::<Vec<_>>(),
            ["$connect", "$default", "$disconnect", "sendmessage"]
        );
        assert_eq!(
            function_route(config, "$connect"),
            ("OnConnectFunction".to_owned(), false)
        );
        assert_eq!(
            function_route(config, "$disconnect"),
            ("OnDisconnectFunction".to_owned(), false)
        );
        assert_eq!(
            function_route(config, "sendmessage"),
            ("SendMessageFunction".to_owned(), false)
        );
        assert_eq!(
            function_route(config, "$default"),
            ("DefaultFunction".to_owned(), true)
        );
        assert_eq!(config.functions.len(), 4);

        let connect = &config.functions["OnConnectFunction"];
        assert_eq!(connect.runtime, Runtime::Node);
        assert_eq!(connect.handler.as_deref(), Some("app.handler"));
        assert_eq!(connect.dir, Path::new("onconnect/"));
        assert_eq!(connect.memory_size, 256);
        assert_eq!(connect.timeout, Some(Duration::from_secs(15)));
        assert_eq!(
            connect.environment,
            env(&[
                ("LOG_LEVEL", "info"),
                ("TABLE_NAME", "simplechat_connections")
            ])
        );
        assert!(connect.command.is_empty());
        assert_eq!(connect.interpreter, None);
        assert_eq!(
            config.function_dir(connect),
            Path::new("/projects/chat/onconnect/")
        );

        let disconnect = &config.functions["OnDisconnectFunction"];
        assert_eq!(disconnect.dir, Path::new("ondisconnect/"));
        assert_eq!(disconnect.runtime, Runtime::Node);

        // `!Ref ConnectionsTable` is the table's name, itself `!Ref TableName`'s default.
        let send = &config.functions["SendMessageFunction"];
        assert_eq!(send.timeout, Some(Duration::from_secs(29)));
        assert_eq!(send.memory_size, 256);
        assert_eq!(
            send.environment,
            env(&[
                ("LOG_LEVEL", "info"),
                ("TABLE_NAME", "simplechat_connections")
            ])
        );

        let default = &config.functions["DefaultFunction"];
        assert_eq!(default.runtime, Runtime::Python);
        assert_eq!(default.handler.as_deref(), Some("app.handler"));
        assert_eq!(default.dir, Path::new("default/"));
        assert_eq!(default.memory_size, 128);
        assert_eq!(default.timeout, Some(Duration::from_secs(15)));
        assert_eq!(default.interpreter, None);

        assert_eq!(
            imported.warnings,
            [
                "resources not emulated (if the functions use them, run them elsewhere and point the functions at them): ConnectionsTable (AWS::DynamoDB::Table)"
            ]
        );
        assert_eq!(imported.region, None);
    }

    #[test]
    fn sam_options_override_stage_region_and_parameters() {
        let options = ImportOptions {
            stage: Some("local"),
            region: Some("eu-west-1"),
            parameters: &[("TableName", "chat_local")],
            env: None,
        };
        let imported = from_sam_with(SAM_CHAT, base(), options).expect("imports");
        assert_eq!(imported.config.gateway.stage, "local");
        assert_eq!(imported.region.as_deref(), Some("eu-west-1"));
        for function in ["OnConnectFunction", "SendMessageFunction"] {
            assert_eq!(
                imported.config.functions[function].environment["TABLE_NAME"],
                "chat_local"
            );
        }
    }

    #[test]
    fn sam_routes_report_what_they_cannot_do() {
        let template = sam(&format!(
            "{}{}{}{}{}",
            sam_route("Connect", "$connect", "Fn"),
            sam_route("Echo", "echo", "Fn"),
            sam_route("Note", "note", "Fn"),
            sam_function("Fn", "python3.12", "      Timeout: !Ref Nothing\n"),
            r#"
  ConnectRouteAuth:
    Type: AWS::ApiGatewayV2::Authorizer
    Properties:
      ApiId: !Ref ChatApi
      AuthorizerType: REQUEST
      Name: auth
  ConnectRouteResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties:
      ApiId: !Ref ChatApi
      RouteId: !Ref ConnectRoute
      RouteResponseKey: $default
  NoteRouteResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties:
      ApiId: !Ref ChatApi
      RouteId: !Ref NoteRoute
      RouteResponseKey: $default
  Mock:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref ChatApi
      RouteKey: mock
      Target: !Sub integrations/${MockInteg}
  MockInteg:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref ChatApi
      IntegrationType: MOCK
      RequestTemplates:
        $default: '{"statusCode": 200}'
  Deployment:
    Type: AWS::ApiGatewayV2::Deployment
    Properties:
      ApiId: !Ref ChatApi
"#
        ))
        // Patch the generated routes with what is under test.
        .replace(
            "      RouteKey: $connect\n",
            "      RouteKey: $connect\n      AuthorizationType: CUSTOM\n      AuthorizerId: !Ref ConnectRouteAuth\n      RouteResponseSelectionExpression: $default\n",
        )
        .replace(
            "      RouteKey: echo\n",
            "      RouteKey: echo\n      RouteResponseSelectionExpression: $default\n",
        );
        let imported = from_sam(&template, base()).expect("imports");
        let config = &imported.config;
        assert_eq!(config.gateway.stage, "Prod", "a Deployment without a Stage");
        assert_eq!(function_route(config, "$connect"), ("Fn".to_owned(), false));
        assert_eq!(function_route(config, "echo"), ("Fn".to_owned(), false));
        assert_eq!(function_route(config, "note"), ("Fn".to_owned(), false));
        assert!(!config.routes.contains_key("mock"));
        assert_eq!(config.functions["Fn"].timeout, None);
        assert_eq!(
            imported.warnings,
            [
                "route $connect: authorizer ConnectRouteAuth: no AuthorizerUri; connections are accepted without it",
                "route $connect: a route response cannot be sent on $connect; ignored",
                "route echo: RouteResponseSelectionExpression is $default but no AWS::ApiGatewayV2::RouteResponse with RouteResponseKey $default exists; no route response is sent",
                "route note: it has a $default RouteResponse but no RouteResponseSelectionExpression: $default; no route response is sent",
                "route mock: integration MockInteg: IntegrationType MOCK is not supported (only AWS_PROXY, the Lambda proxy integration, is); skipped",
                "function Fn: !Ref Nothing left unresolved (no parameter or resource is named Nothing)",
                "function Fn: Timeout !Ref Nothing is not a number of seconds; ignored",
            ]
        );
    }

    #[test]
    fn sam_conditions_and_extra_apis_are_reported() {
        let template = sam(&format!(
            "{}{}{}",
            sam_route("Send", "sendmessage", "Send"),
            sam_function("Send", "nodejs20.x", ""),
            r#"
  AdminApi:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      ProtocolType: WEBSOCKET
      RouteSelectionExpression: $request.body.op
  AdminRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref AdminApi
      RouteKey: $default
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Condition: IsDev
    Properties:
      ApiId: !Ref ChatApi
      StageName: !If [IsDev, dev, prod]
      StageVariables:
        color: blue
  Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      MetricName: Errors
  Globals:
    Type: AWS::SSM::Parameter
"#
        ))
        .replace(
            "  SendRoute:\n    Type: AWS::ApiGatewayV2::Route\n",
            "  SendRoute:\n    Type: AWS::ApiGatewayV2::Route\n    Condition: IsDev\n",
        )
        .replace(
            "  Send:\n    Type: AWS::Serverless::Function\n",
            "  Send:\n    Type: AWS::Serverless::Function\n    Condition: IsDev\n",
        )
        .replace("      Runtime: nodejs20.x\n", "")
            + "Globals:\n  Function:\n    Runtime: nodejs22.x\n    Environment:\n      Variables: !If [IsDev, {A: b}, {A: c}]\n";
        let imported = from_sam(&template, base()).expect("imports");
        let config = &imported.config;
        assert_eq!(
            config.gateway.route_selection_expression,
            "$request.body.action"
        );
        // The stage's name cannot be resolved, so it is the default.
        assert_eq!(config.gateway.stage, "dev");
        assert_eq!(config.functions["Send"].runtime, Runtime::Node);
        assert!(config.functions["Send"].environment.is_empty());
        assert_eq!(
            imported.warnings,
            [
                "API AdminApi: only one WebSocket API is imported (ChatApi); its routes are skipped",
                "route sendmessage: Condition IsDev is not evaluated; SendRoute is imported as if it held",
                "stage Stage: !If [IsDev, dev, prod] left unresolved (conditions are not evaluated)",
                "stage Stage: its StageName cannot be resolved; ignored",
                r#"Globals.Function.Environment.Variables: !If [IsDev, {"A":"b"}, {"A":"c"}] left unresolved (conditions are not evaluated)"#,
                r#"Globals.Function.Environment.Variables: !If [IsDev, {"A":"b"}, {"A":"c"}] is not a mapping of variables; ignored"#,
                "function Send: Condition IsDev is not evaluated; Send is imported as if it held",
                "resources not emulated (if the functions use them, run them elsewhere and point the functions at them): Globals (AWS::SSM::Parameter)",
            ]
        );
    }

    #[test]
    fn sam_errors_name_what_is_missing() {
        // No WebSocket API: an HTTP API only.
        let e = from_sam(
            "Resources:\n  Http:\n    Type: AWS::ApiGatewayV2::Api\n    Properties:\n      ProtocolType: HTTP\n",
            base(),
        )
        .expect_err("no websocket api");
        assert!(matches!(e, ImportError::NoWebSocketRoutes(_)), "{e}");
        assert!(e.to_string().contains("ProtocolType: WEBSOCKET"), "{e}");
        let e = from_sam("AWSTemplateFormatVersion: '2010-09-09'\n", base()).expect_err("empty");
        assert!(matches!(e, ImportError::NoWebSocketRoutes(_)), "{e}");
        let e = from_sam(&sam(""), base()).expect_err("no routes");
        assert_eq!(
            e.to_string(),
            "no WebSocket routes found: API ChatApi has no AWS::ApiGatewayV2::Route"
        );

        // A route whose function is not defined (a typo in the Sub).
        let template = sam(&format!(
            "{}{}",
            sam_route("Connect", "$connect", "OnConnectFunctoin"),
            sam_function("OnConnectFunction", "nodejs20.x", "")
        ));
        let e = from_sam(&template, base()).expect_err("missing function");
        assert_eq!(
            e,
            ImportError::MissingFunction {
                route: "$connect".into(),
                function: "OnConnectFunctoin".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "route $connect: function OnConnectFunctoin is not defined in the file"
        );

        // A literal ARN naming a function the template does not have.
        let template = sam(&format!(
            "{}{}",
            sam_route("Connect", "$connect", "X"),
            sam_function("Other", "nodejs20.x", "")
        ))
        .replace(
            "${X.Arn}",
            "arn:aws:lambda:us-east-1:123456789012:function:chat-connect",
        );
        let e = from_sam(&template, base()).expect_err("missing function");
        assert_eq!(
            e,
            ImportError::MissingFunction {
                route: "$connect".into(),
                function: "chat-connect".into()
            }
        );
        // ... unless one has that FunctionName.
        let with_name = template.replace(
            "      CodeUri: Other/\n",
            "      CodeUri: Other/\n      FunctionName: chat-connect\n",
        );
        let imported = from_sam(&with_name, base()).expect("imports");
        assert_eq!(
            function_route(&imported.config, "$connect"),
            ("Other".to_owned(), false)
        );

        // A route whose integration is not defined.
        let template = sam(&format!(
            "{}{}",
            sam_route("Connect", "$connect", "Fn"),
            sam_function("Fn", "nodejs20.x", "")
        ))
        .replace("!Ref ConnectInteg]", "!Ref ConnectIntegration]");
        let e = from_sam(&template, base()).expect_err("missing integration");
        assert_eq!(
            e,
            ImportError::MissingIntegration {
                route: "$connect".into(),
                integration: "ConnectIntegration".into()
            }
        );

        // Two routes with one key.
        let template = sam(&format!(
            "{}{}{}",
            sam_route("A", "same", "Fn"),
            sam_route("B", "same", "Fn"),
            sam_function("Fn", "nodejs20.x", "")
        ));
        let e = from_sam(&template, base()).expect_err("duplicate");
        assert_eq!(
            e.to_string(),
            "route same is declared twice, by ARoute and by BRoute"
        );

        // A reserved key reaches validate().
        let template = sam(&format!(
            "{}{}",
            sam_route("A", "$ping", "Fn"),
            sam_function("Fn", "nodejs20.x", "")
        ));
        let e = from_sam(&template, base()).expect_err("reserved key");
        assert!(
            matches!(e, ImportError::Config(ref c) if c.key == "routes.\"$ping\""),
            "{e}"
        );
    }
}
