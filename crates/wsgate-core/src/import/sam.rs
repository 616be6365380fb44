//! Importing an AWS SAM or CloudFormation template: the first WebSocket
//! `AWS::ApiGatewayV2::Api`, the resources that belong to it, its stage, and the functions its
//! routes invoke (the routes themselves are read in `sam_routes.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value};

use super::assembly::{
    Assembly, FunctionSpec, NO_LOCAL_MEANING, PendingRoute, apply_environment,
    not_emulated_warning, unrouted_warning,
};
use super::budget::Budget;
use super::cfn::{
    Cfn, Res, V2_API, V2_DEPLOYMENT, V2_INTEGRATION, V2_ROUTE, V2_ROUTE_RESPONSE, V2_STAGE,
    is_table, refs,
};
use super::sam_function::sam_function;
use super::sam_routes::routes;
use super::tables::{DEFAULT_STACK, stack_name, tables};
use super::text::scalar_text;
use super::types::{
    DEFAULT_REGION, DEFAULT_SELECTION_EXPRESSION, ImportError, ImportOptions, Imported,
};
use super::yaml::parse_yaml;
use crate::config::Function;

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

    let region_from_file = region_parameter(parameters, options);
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
        stack: base_dir
            .file_name()
            .and_then(|name| name.to_str())
            .map_or_else(|| DEFAULT_STACK.to_owned(), stack_name),
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
    let apis = websocket_apis(&cfn, &all);
    let Some(api) = apis.first().copied() else {
        return Err(ImportError::NoWebSocketRoutes(
            "the template has no AWS::ApiGatewayV2::Api with ProtocolType: WEBSOCKET".to_owned(),
        ));
    };
    cfn.api = Some(api.id.to_owned());
    let mut used: BTreeSet<&str> = apis.iter().map(|a| a.id).collect();
    let selection_expression = api_settings(&cfn, &apis, &mut warnings);
    let ours = our_resources(&cfn, &all, api.id, &mut used, &mut warnings);

    let pending = routes(&cfn, &all, &ours, api.id, &mut used, &mut warnings)?;
    let stage = stage(&cfn, &ours, &mut warnings);
    let stage = options.stage.map_or(stage, str::to_owned);
    let (functions, broken) = functions(&cfn, &root, &pending, &mut used, &mut warnings);
    let tables = tables(&cfn, &all, &mut warnings);
    used.extend(all.iter().filter(|r| is_table(r.kind)).map(|r| r.id));
    let trailing = leftover_warnings(&all, &used);

    Assembly {
        base_dir: base_dir.to_path_buf(),
        stage,
        selection_expression,
        region: options.region.map(str::to_owned).or(region_from_file),
        routes: pending,
        functions,
        broken,
        tables,
        warnings,
    }
    .finish(trailing)
}

/// The region a parameter named like one gives (`Region`, `AwsRegion`): its override, else its
/// `Default`. It is the region unless the caller names another.
fn region_parameter(
    parameters: Option<&Map<String, Value>>,
    options: ImportOptions<'_>,
) -> Option<String> {
    parameters.and_then(|p| {
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
    })
}

/// The template's `AWS::ApiGatewayV2::Api`s with `ProtocolType: WEBSOCKET`, in document order.
fn websocket_apis<'a>(cfn: &Cfn<'a>, all: &[Res<'a>]) -> Vec<Res<'a>> {
    all.iter()
        .filter(|r| r.kind == V2_API)
        .filter(|r| {
            r.prop("ProtocolType")
                .and_then(|p| cfn.text(p, &format!("API {}", r.id), &mut Vec::new()))
                .is_some_and(|p| p.eq_ignore_ascii_case("WEBSOCKET"))
        })
        .copied()
        .collect()
}

/// The imported API's (the first of `apis`) route selection expression; the other APIs, and
/// what the imported one sets that is not supported, are warnings.
fn api_settings(cfn: &Cfn<'_>, apis: &[Res<'_>], warnings: &mut Vec<String>) -> String {
    let api = apis[0];
    for other in &apis[1..] {
        warnings.push(format!(
            "API {}: only one WebSocket API is imported ({}); its routes are skipped",
            other.id, api.id
        ));
    }
    let api_context = format!("API {}", api.id);
    let selection_expression = match api.prop("RouteSelectionExpression") {
        Some(v) => cfn.text(v, &api_context, warnings),
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
    selection_expression
}

/// The `AWS::ApiGatewayV2::*` resources of the imported API `api`. They and those of the other
/// APIs are marked used; a route, integration or route response whose `ApiId` names no API of
/// the template is a warning.
fn our_resources<'a>(
    cfn: &Cfn<'a>,
    all: &[Res<'a>],
    api: &str,
    used: &mut BTreeSet<&'a str>,
    warnings: &mut Vec<String>,
) -> Vec<Res<'a>> {
    let mut ours = Vec::new();
    for res in all {
        if !res.kind.starts_with("AWS::ApiGatewayV2::") || res.kind == V2_API {
            continue;
        }
        match owner(cfn, res, api) {
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
    ours
}

/// The stage: the first `AWS::ApiGatewayV2::Stage` of the API whose `StageName` resolves, else a
/// Deployment's `StageName`, else `Prod` if a Deployment exists, else `dev`.
fn stage(cfn: &Cfn<'_>, ours: &[Res<'_>], warnings: &mut Vec<String>) -> String {
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
        res.warn_condition(&format!("stage {name}"), warnings);
        if res.prop("StageVariables").is_some() {
            warnings.push(format!(
                "stage {name}: StageVariables are not supported; ignored"
            ));
        }
        stage = Some(name);
    }
    stage
        .or_else(|| {
            let deployments: Vec<&Res<'_>> =
                ours.iter().filter(|r| r.kind == V2_DEPLOYMENT).collect();
            let named = deployments.iter().find_map(|d| {
                d.prop("StageName")
                    .and_then(|n| cfn.text(n, &format!("deployment {}", d.id), warnings))
            });
            named.or_else(|| (!deployments.is_empty()).then(|| "Prod".to_owned()))
        })
        .unwrap_or_else(|| "dev".to_owned())
}

/// The functions the routes invoke, then their authorizers', each once and marked used: those
/// that can run, by logical id, and those that cannot, with why.
fn functions<'a>(
    cfn: &Cfn<'_>,
    root: &Map<String, Value>,
    pending: &'a [PendingRoute],
    used: &mut BTreeSet<&'a str>,
    warnings: &mut Vec<String>,
) -> (BTreeMap<String, Function>, Vec<(String, String)>) {
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
        apply_environment(cfn, vars, &context, &mut global_env, warnings);
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
        let spec = sam_function(cfn, &res, globals, &global_env, warnings);
        match spec.and_then(FunctionSpec::build) {
            Ok(function) => {
                functions.insert(name.clone(), function);
            }
            Err(reason) => broken.push((name.clone(), reason)),
        }
    }
    (functions, broken)
}

/// The closing warnings: the functions no route invokes, and the resources not emulated.
fn leftover_warnings(all: &[Res<'_>], used: &BTreeSet<&str>) -> Vec<String> {
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
    [
        unrouted_warning("WebSocket route", &unrouted),
        not_emulated_warning(&others),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::FunctionRuntime;
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
        assert_eq!(connect.runtime, FunctionRuntime::Node);
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
        assert_eq!(disconnect.runtime, FunctionRuntime::Node);

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
        assert_eq!(default.runtime, FunctionRuntime::Python);
        assert_eq!(default.handler.as_deref(), Some("app.handler"));
        assert_eq!(default.dir, Path::new("default/"));
        assert_eq!(default.memory_size, 128);
        assert_eq!(default.timeout, Some(Duration::from_secs(15)));
        assert_eq!(default.interpreter, None);

        assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
        assert_eq!(imported.region, None);
        // The table `!Ref ConnectionsTable` names, as CreateTable takes it (SSE left out).
        assert_eq!(imported.tables.len(), 1);
        let table = &imported.tables[0];
        assert_eq!(table.logical_id, "ConnectionsTable");
        assert_eq!(table.name, "simplechat_connections");
        assert_eq!(
            table.create_table,
            serde_json::json!({
                "TableName": "simplechat_connections",
                "KeySchema": [{"AttributeName": "connectionId", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "connectionId", "AttributeType": "S"}],
                "BillingMode": "PROVISIONED",
                "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
            })
        );
        assert_eq!(table.ttl_attribute, None);
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
        assert_eq!(config.functions["Send"].runtime, FunctionRuntime::Node);
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
