//! Importing a Serverless Framework `serverless.yml`: the provider's settings, every function's
//! `websocket` events as routes, and the functions these invoke, each with the provider's
//! defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::assembly::{
    Assembly, FunctionSpec, NO_LOCAL_MEANING, PendingAuthorizer, PendingRoute, apply_environment,
    check_route_response, map_runtime, not_emulated_warning, unrouted_warning, unsupported_runtime,
};
use super::budget::Budget;
use super::cfn::{Cfn, is_table};
use super::serverless_authorizer::{ServiceFunction, service_functions, sls_authorizer};
use super::tables::{stack_name, tables};
use super::text::{megabytes, scalar_text, seconds, short_form};
use super::types::{
    DEFAULT_REGION, DEFAULT_SELECTION_EXPRESSION, ImportError, ImportOptions, Imported, invalid,
};
use super::variables::Vars;
use super::yaml::parse_yaml;
use crate::config::Function;
use crate::route::RouteKey;

/// Serverless Framework plugins that compile or bundle the handlers, so that what is deployed is
/// not what the `handler` paths point at.
const BUNDLER_PLUGINS: &[&str] = &[
    "serverless-esbuild",
    "serverless-plugin-typescript",
    "serverless-webpack",
    "serverless-bundle",
];

/// [`super::from_serverless_with`].
pub(super) fn import(
    yaml: &str,
    base_dir: &Path,
    options: ImportOptions<'_>,
) -> Result<Imported, ImportError> {
    let root = Value::Object(parse_yaml(yaml, "serverless.yml")?);
    let mut warnings = Vec::new();
    let mut vars = Vars {
        root: &root,
        stage: "dev".to_owned(),
        region: DEFAULT_REGION.to_owned(),
        options,
        budget: Budget::default(),
    };
    let provider = root.get("provider").and_then(Value::as_object);

    if let Some(name) = provider_text(&vars, provider, "name", &mut warnings)
        && name != "aws"
    {
        return Err(invalid(
            "provider.name",
            format!("{name:?}: only AWS projects can be imported"),
        ));
    }
    vars.stage = match options.stage {
        Some(stage) => stage.to_owned(),
        None => provider_text(&vars, provider, "stage", &mut warnings)
            .unwrap_or_else(|| "dev".to_owned()),
    };
    let region_from_file = provider_text(&vars, provider, "region", &mut warnings);
    vars.region = options
        .region
        .map(str::to_owned)
        .or_else(|| region_from_file.clone())
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    let selection_expression = provider_text(
        &vars,
        provider,
        "websocketsApiRouteSelectionExpression",
        &mut warnings,
    )
    .unwrap_or_else(|| DEFAULT_SELECTION_EXPRESSION.to_owned());
    warn_build_steps(&root, &mut warnings);

    let Some(functions) = root.get("functions").and_then(Value::as_object) else {
        return Err(ImportError::NoWebSocketRoutes(
            "serverless.yml has no functions".to_owned(),
        ));
    };
    let empty = Map::new();
    let resources = root
        .get("resources")
        .and_then(|r| r.get("Resources"))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let vars = vars;
    // The Serverless Framework deploys `{service}-{stage}`.
    let service = root
        .get("service")
        .map(|s| s.get("name").unwrap_or(s))
        .and_then(|s| scalar_text(&vars.resolve(s, "service", &mut warnings)))
        .unwrap_or_else(|| "service".to_owned());
    let cfn = Cfn {
        resources,
        parameters: None,
        mappings: None,
        overrides: &[],
        region: vars.region.clone(),
        stack: stack_name(&format!("{service}-{}", vars.stage)),
        api: None,
        vars: Some(&vars),
        budget: Budget::default(),
    };

    let service_functions = service_functions(&root, functions, &vars);
    let (pending, unrouted) = routes(functions, &vars, &service_functions, &mut warnings)?;
    let (built, broken) = build_functions(functions, &pending, provider, &cfn, &mut warnings);
    let tables = tables(&cfn, &cfn.all(), &mut warnings);
    let trailing = leftover_warnings(&cfn, &unrouted);

    Assembly {
        base_dir: base_dir.to_path_buf(),
        stage: vars.stage.clone(),
        selection_expression,
        region: options.region.map(str::to_owned).or(region_from_file),
        routes: pending,
        functions: built,
        broken,
        tables,
        warnings,
    }
    .finish(trailing)
}

/// A `provider` setting as text, its variables resolved.
fn provider_text(
    vars: &Vars<'_>,
    provider: Option<&Map<String, Value>>,
    key: &str,
    warnings: &mut Vec<String>,
) -> Option<String> {
    provider
        .and_then(|p| p.get(key))
        .and_then(|v| scalar_text(&vars.resolve(v, &format!("provider.{key}"), warnings)))
}

/// What builds the handlers before deploying, which wsgate does not: bundler plugins, and
/// `.env` files.
fn warn_build_steps(root: &Value, warnings: &mut Vec<String>) {
    let plugins = root.get("plugins").map(|p| match p {
        // The long form: `plugins: {modules: [...]}`.
        Value::Object(m) => m.get("modules").cloned().unwrap_or(Value::Null),
        other => other.clone(),
    });
    for plugin in plugins.iter().filter_map(Value::as_array).flatten() {
        let Some(plugin) = plugin.as_str() else {
            continue;
        };
        if BUNDLER_PLUGINS.contains(&plugin) {
            warnings.push(format!(
                "plugins: {plugin} builds the handlers at deploy time; wsgate runs them as they are in the service folder (build them first, or point the handlers at the built code)"
            ));
        }
    }
    if root.get("useDotenv") == Some(&Value::Bool(true)) {
        warnings.push(
            "useDotenv: .env files are not read by the importer; ${env:...} uses the caller's environment"
                .to_owned(),
        );
    }
}

/// Every function's `websocket` events as routes to it, and the functions (other than
/// authorizers) that have none.
fn routes(
    functions: &Map<String, Value>,
    vars: &Vars<'_>,
    service_functions: &[ServiceFunction],
    warnings: &mut Vec<String>,
) -> Result<(Vec<PendingRoute>, Vec<String>), ImportError> {
    let mut pending: Vec<PendingRoute> = Vec::new();
    let mut unrouted = Vec::new();
    for (name, function) in functions {
        let events = function
            .get("events")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut routed = false;
        for (i, event) in events.iter().enumerate() {
            let Some(websocket) = event.get("websocket") else {
                continue;
            };
            routed = true;
            let path = format!("functions.{name}.events[{i}].websocket");
            let websocket = vars.resolve(websocket, &path, warnings);
            let key = route_key(&websocket, path)?;
            // A mapping holds the event's settings.
            let definition = websocket.as_object();
            if let Some(first) = pending.iter().find(|p| p.key == key) {
                return Err(ImportError::DuplicateRoute {
                    route: key,
                    first: first.declared_by.clone(),
                    second: name.clone(),
                });
            }
            let (route_response, authorizer) =
                route_settings(&key, definition, service_functions, warnings);
            if let Some(authorizer) = &authorizer
                && !functions.contains_key(&authorizer.function)
            {
                return Err(ImportError::MissingFunction {
                    route: key,
                    function: authorizer.function.clone(),
                });
            }
            pending.push(PendingRoute {
                key,
                declared_by: name.clone(),
                function: name.clone(),
                route_response,
                authorizer,
            });
        }
        if !routed {
            unrouted.push(name.clone());
        }
    }
    // An authorizer's function is imported though it has no websocket event.
    unrouted.retain(|name| {
        !pending
            .iter()
            .any(|r| r.authorizer.as_ref().is_some_and(|a| &a.function == name))
    });
    if pending.is_empty() {
        return Err(ImportError::NoWebSocketRoutes(
            "no function has a `websocket` event".to_owned(),
        ));
    }
    Ok((pending, unrouted))
}

/// A `websocket` event's route key (its variables resolved; at `path`): the event itself, or
/// its `route` when it is a mapping.
fn route_key(websocket: &Value, path: String) -> Result<String, ImportError> {
    match websocket {
        Value::String(key) => Ok(key.clone()),
        Value::Object(map) => match map.get("route").and_then(scalar_text) {
            Some(key) => Ok(key),
            None => Err(invalid(format!("{path}.route"), "missing")),
        },
        _ => Err(invalid(
            path,
            "expected a route key or a mapping with `route`",
        )),
    }
}

/// A `websocket` event's settings besides `route`: whether it sends a route response, and its
/// authorizer; any other setting is a warning.
fn route_settings(
    key: &str,
    definition: Option<&Map<String, Value>>,
    service_functions: &[ServiceFunction],
    warnings: &mut Vec<String>,
) -> (bool, Option<PendingAuthorizer>) {
    let context = format!("route {key}");
    let mut route_response = false;
    let mut authorizer = None;
    for (prop, v) in definition.into_iter().flatten() {
        match prop.as_str() {
            "route" => {}
            "routeResponseSelectionExpression" => match scalar_text(v).as_deref() {
                Some(RouteKey::DEFAULT) => route_response = true,
                other => warnings.push(format!(
                    "{context}: routeResponseSelectionExpression {} is not supported (only $default is); no route response is sent",
                    other.unwrap_or("null")
                )),
            },
            "authorizer" if key != RouteKey::CONNECT => warnings.push(format!(
                "{context}: only $connect can have an authorizer, as on API Gateway; ignored"
            )),
            "authorizer" => {
                authorizer = sls_authorizer(v, key, service_functions, warnings);
            }
            other => warnings.push(format!(
                "{context}: websocket.{other} is not supported; ignored"
            )),
        }
    }
    let route_response = check_route_response(key, route_response, warnings);
    (route_response, authorizer)
}

/// The functions the routes invoke, then their authorizers', each once, with the provider's
/// environment and defaults: those that can run, by name, and those that cannot, with why.
fn build_functions(
    functions: &Map<String, Value>,
    pending: &[PendingRoute],
    provider: Option<&Map<String, Value>>,
    cfn: &Cfn<'_>,
    warnings: &mut Vec<String>,
) -> (BTreeMap<String, Function>, Vec<(String, String)>) {
    let mut provider_env = BTreeMap::new();
    if let Some(env) = provider.and_then(|p| p.get("environment")) {
        let context = |name: Option<&str>| match name {
            Some(name) => format!("provider.environment.{name}"),
            None => "provider.environment".to_owned(),
        };
        apply_environment(cfn, env, &context, &mut provider_env, warnings);
    }
    let mut built = BTreeMap::new();
    let mut broken = Vec::new();
    // The routes' functions, then their authorizers'.
    let invoked = pending.iter().map(|r| &r.function).chain(
        pending
            .iter()
            .filter_map(|r| Some(&r.authorizer.as_ref()?.function)),
    );
    for name in invoked {
        if built.contains_key(name) || broken.iter().any(|(n, _)| n == name) {
            continue;
        }
        let result = sls_function(
            name,
            &functions[name],
            provider,
            &provider_env,
            cfn,
            warnings,
        );
        match result {
            Ok(function) => {
                built.insert(name.clone(), function);
            }
            Err(reason) => broken.push((name.clone(), reason)),
        }
    }
    (built, broken)
}

/// The closing warnings: the functions without a websocket event, and the `resources` not
/// emulated.
fn leftover_warnings(cfn: &Cfn<'_>, unrouted: &[String]) -> Vec<String> {
    let others: Vec<String> = cfn
        .all()
        .iter()
        .filter(|r| !NO_LOCAL_MEANING.contains(&r.kind) && !is_table(r.kind))
        .map(|r| format!("{} ({})", r.id, r.kind))
        .collect();
    [
        unrouted_warning("websocket event", unrouted),
        not_emulated_warning(&others),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The Serverless Framework deploys a function that sets no `timeout` (nor `provider.timeout`)
/// with 6 s, not Lambda's 3.
const FRAMEWORK_TIMEOUT: Duration = Duration::from_secs(6);

/// One function of a `serverless.yml`, with the provider's defaults: `timeout` and `memorySize`
/// come from the function, else `provider`, else what the Framework deploys with (6 s, see
/// [`FRAMEWORK_TIMEOUT`], and 1024 MB).
fn sls_function(
    name: &str,
    function: &Value,
    provider: Option<&Map<String, Value>>,
    provider_env: &BTreeMap<String, String>,
    cfn: &Cfn<'_>,
    warnings: &mut Vec<String>,
) -> Result<Function, String> {
    let path = format!("functions.{name}");
    let context = format!("function {name}");
    // The function's key, else the provider's, evaluated.
    let get = |key: &str, warnings: &mut Vec<String>| {
        function
            .get(key)
            .map(|v| (format!("{path}.{key}"), v))
            .or_else(|| provider?.get(key).map(|v| (format!("provider.{key}"), v)))
            .map(|(at, v)| cfn.eval(v, &at, warnings))
    };
    if function.get("image").is_some() {
        return Err("container images (image) are not supported".to_owned());
    }
    let runtime = match get("runtime", warnings).as_ref().and_then(scalar_text) {
        Some(runtime) => runtime,
        None => {
            warnings.push(format!(
                "{context}: no runtime given; nodejs is assumed (the Serverless Framework's default)"
            ));
            "nodejs".to_owned()
        }
    };
    map_runtime(&runtime).ok_or_else(|| unsupported_runtime(&runtime))?;
    let handler = function
        .get("handler")
        .and_then(|h| scalar_text(&cfn.eval(h, &format!("{path}.handler"), warnings)));
    let timeout = match get("timeout", warnings) {
        None => FRAMEWORK_TIMEOUT,
        Some(v) => seconds(&v).unwrap_or_else(|| {
            warnings.push(format!(
                "{context}: timeout {} is not a number of seconds; 6 is used",
                short_form(&v)
            ));
            FRAMEWORK_TIMEOUT
        }),
    };
    let memory_size = match get("memorySize", warnings) {
        None => 1024,
        Some(v) => megabytes(&v).unwrap_or_else(|| {
            warnings.push(format!(
                "{context}: memorySize {} is not a number of megabytes; 1024 is used",
                short_form(&v)
            ));
            1024
        }),
    };
    let layers = function.get("layers").or_else(|| provider?.get("layers"));
    if layers.is_some_and(|l| l.as_array().is_none_or(|l| !l.is_empty())) {
        warnings.push(format!(
            "{context}: layers are not available locally (their code is not on the path); ignored"
        ));
    }
    let mut environment = provider_env.clone();
    if let Some(env) = function.get("environment") {
        let context = |key: Option<&str>| match key {
            Some(key) => format!("{path}.environment.{key}"),
            None => format!("{path}.environment"),
        };
        apply_environment(cfn, env, &context, &mut environment, warnings);
    }
    FunctionSpec {
        runtime,
        handler,
        // Lambda's task root is the service folder; the handler keeps its path.
        dir: PathBuf::from("."),
        environment,
        timeout,
        memory_size,
    }
    .build()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::FunctionRuntime;
    use crate::import::test_support::{
        SERVERLESS_CHAT, base, env, function_route, request_authorizer,
    };
    use crate::import::{from_serverless, from_serverless_with};

    #[test]
    fn timeout_is_the_functions_else_the_providers_else_the_frameworks_6_seconds() {
        let service = |provider_timeout: &str| {
            format!(
                "service: s\nprovider:\n  name: aws\n  runtime: python3.12\n{provider_timeout}\
                 functions:\n  plain:\n    handler: h.plain\n    events:\n      - websocket: $default\n\
                 \x20 own:\n    handler: h.own\n    timeout: 10\n    events:\n      - websocket: own\n"
            )
        };
        let timeouts = |yaml: &str| {
            let imported = from_serverless(yaml, base()).expect("imports");
            let functions = &imported.config.functions;
            (functions["plain"].timeout, functions["own"].timeout)
        };
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(timeouts(&service("")), (secs(6), secs(10)));
        assert_eq!(timeouts(&service("  timeout: 20\n")), (secs(20), secs(10)));
    }

    #[test]
    fn the_serverless_chat_imports_as_it_is() {
        let imported = from_serverless(SERVERLESS_CHAT, base()).expect("imports");
        let config = &imported.config;
        config.validate().expect("valid");
        assert_eq!(config.base_dir, base());
        assert_eq!(config.gateway.stage, "dev");
        assert_eq!(
            config.gateway.route_selection_expression,
            "$request.body.action"
        );
        assert_eq!(imported.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            config.routes.keys().collect::<Vec<_>>(),
            ["$connect", "$default", "$disconnect", "sendmessage"]
        );
        assert_eq!(
            function_route(config, "$connect"),
            ("connect".to_owned(), false)
        );
        assert_eq!(
            function_route(config, "$disconnect"),
            ("disconnect".to_owned(), false)
        );
        assert_eq!(
            function_route(config, "$default"),
            ("fallback".to_owned(), false)
        );
        assert_eq!(
            function_route(config, "sendmessage"),
            ("sendMessage".to_owned(), true)
        );
        assert_eq!(
            config.functions.keys().collect::<Vec<_>>(),
            ["connect", "disconnect", "fallback", "sendMessage"]
        );

        let provider_env = [
            ("API_KEY", "local-dev-key"),
            ("CONNECTIONS_TABLE", "chat-ws-connections-dev"),
            ("LOG_LEVEL", "info"),
            ("STAGE", "dev"),
        ];
        let connect = &config.functions["connect"];
        assert_eq!(connect.runtime, FunctionRuntime::Python);
        assert_eq!(
            connect.handler.as_deref(),
            Some("src/handlers/connection.connect")
        );
        assert_eq!(connect.dir, Path::new("."));
        assert_eq!(connect.timeout, Some(Duration::from_secs(10)));
        assert_eq!(connect.memory_size, 256);
        assert_eq!(connect.environment, env(&provider_env));
        assert_eq!(connect.interpreter, None);
        assert_eq!(
            config.functions["disconnect"].handler.as_deref(),
            Some("src/handlers/connection.disconnect")
        );
        assert_eq!(
            config.functions["fallback"].handler.as_deref(),
            Some("src/handlers/chat.fallback")
        );

        let send = &config.functions["sendMessage"];
        assert_eq!(send.runtime, FunctionRuntime::Node);
        assert_eq!(send.handler.as_deref(), Some("src/handlers/chat.send"));
        assert_eq!(send.timeout, Some(Duration::from_secs(29)));
        assert_eq!(send.memory_size, 512);
        let mut send_env = env(&provider_env);
        send_env.extend(env(&[
            ("LOG_LEVEL", "debug"),
            ("TABLE_FROM_REF", "chat-ws-connections-dev"),
            ("TOPIC", "chat-ws-dev-messages"),
        ]));
        assert_eq!(send.environment, send_env);

        assert_eq!(
            imported.warnings,
            [
                "provider.environment.API_KEY: ${ssm:/chat-ws/api-key, 'local-dev-key'}: ssm:/chat-ws/api-key is not looked up locally; the fallback is used",
                "functions without a websocket event are not imported: health",
            ]
        );
        // `Ref: ConnectionsTable` above is the name the table is created with.
        assert_eq!(
            imported
                .tables
                .iter()
                .map(|t| (t.logical_id.as_str(), t.name.as_str()))
                .collect::<Vec<_>>(),
            [("ConnectionsTable", "chat-ws-connections-dev")]
        );
    }

    #[test]
    fn serverless_options_set_the_stage_and_the_environment() {
        let lookup = |name: &str| (name == "LOG_LEVEL").then(|| "warning".to_owned());
        let options = ImportOptions {
            stage: Some("prod"),
            env: Some(&lookup),
            ..ImportOptions::default()
        };
        let imported = from_serverless_with(SERVERLESS_CHAT, base(), options).expect("imports");
        let config = &imported.config;
        assert_eq!(config.gateway.stage, "prod");
        let connect = &config.functions["connect"];
        assert_eq!(connect.environment["STAGE"], "prod");
        assert_eq!(connect.environment["LOG_LEVEL"], "warning");
        assert_eq!(
            connect.environment["CONNECTIONS_TABLE"],
            "chat-ws-connections-prod"
        );
        assert_eq!(
            config.functions["sendMessage"].environment["TABLE_FROM_REF"],
            "chat-ws-connections-prod"
        );
    }

    #[test]
    fn serverless_routes_report_what_they_cannot_do() {
        let yaml = r#"
service: ws
provider:
  name: aws
  runtime: python3.12
  layers:
    - arn:aws:lambda:eu-west-1:123456789012:layer:deps:3
functions:
  auth:
    handler: auth.handler
  connect:
    handler: handler.connect
    events:
      - websocket:
          route: $connect
          authorizer:
            name: auth
            identitySource: [route.request.header.Auth]
          routeResponseSelectionExpression: $default
  legacy:
    handler: com.example.Handler::handleRequest
    runtime: java17
    events:
      - websocket: legacy
  odd:
    handler: handler.odd
    timeout: soon
    events:
      - websocket:
          route: odd
          routeResponseSelectionExpression: $request.body.reply
          routeKey: odd
"#;
        let imported = from_serverless(yaml, base()).expect("imports");
        let config = &imported.config;
        assert_eq!(
            config.routes.keys().collect::<Vec<_>>(),
            ["$connect", "odd"]
        );
        assert_eq!(function_route(config, "odd"), ("odd".to_owned(), false));
        assert_eq!(
            config.functions["odd"].timeout,
            Some(Duration::from_secs(6))
        );
        // The authorizer maps; its function is imported without a websocket event.
        assert_eq!(
            config.routes["$connect"].authorizer.as_deref(),
            Some("auth")
        );
        let auth = request_authorizer(config, "auth");
        assert_eq!(auth.function.as_deref(), Some("auth"));
        assert_eq!(auth.identity_sources, ["route.request.header.Auth"]);
        assert!(config.functions.contains_key("auth"));
        assert_eq!(
            imported.warnings,
            [
                "route $connect: a route response cannot be sent on $connect; ignored",
                "route odd: routeResponseSelectionExpression $request.body.reply is not supported (only $default is); no route response is sent",
                "route odd: websocket.routeKey is not supported; ignored",
                "function connect: layers are not available locally (their code is not on the path); ignored",
                "function odd: timeout soon is not a number of seconds; 6 is used",
                "function odd: layers are not available locally (their code is not on the path); ignored",
                "function auth: layers are not available locally (their code is not on the path); ignored",
                "function legacy: runtime java17 is not supported (python*, nodejs* and provided* with a bootstrap are); skipped routes: legacy",
            ]
        );
    }

    #[test]
    fn serverless_errors() {
        let e = from_serverless(
            "service: a\nprovider:\n  name: aws\nfunctions:\n  f:\n    handler: h.f\n    events:\n      - httpApi: GET /\n",
            base(),
        )
        .expect_err("no websocket");
        assert_eq!(
            e.to_string(),
            "no WebSocket routes found: no function has a `websocket` event"
        );
        let e = from_serverless("service: a\nprovider:\n  name: aws\n", base())
            .expect_err("no functions");
        assert!(matches!(e, ImportError::NoWebSocketRoutes(_)), "{e}");
        let e = from_serverless(
            "service: a\nprovider:\n  name: azure\nfunctions: {}\n",
            base(),
        )
        .expect_err("not aws");
        assert_eq!(
            e.to_string(),
            "provider.name: \"azure\": only AWS projects can be imported"
        );
        let e = from_serverless(
            "provider: {name: aws, runtime: nodejs20.x}\nfunctions:\n  a:\n    handler: a.h\n    events: [websocket: $default]\n  b:\n    handler: b.h\n    events: [{websocket: {route: $default}}]\n",
            base(),
        )
        .expect_err("duplicate");
        assert_eq!(
            e,
            ImportError::DuplicateRoute {
                route: "$default".into(),
                first: "a".into(),
                second: "b".into()
            }
        );
        let e = from_serverless(
            "functions:\n  a:\n    handler: a.h\n    events:\n      - websocket: {routeResponseSelectionExpression: $default}\n",
            base(),
        )
        .expect_err("no route");
        assert_eq!(
            e.to_string(),
            "functions.a.events[0].websocket.route: missing"
        );
        // A stage wsgate cannot serve reaches validate().
        let e = from_serverless(
            "provider: {name: aws, runtime: nodejs20.x, stage: 'my.stage'}\nfunctions:\n  a:\n    handler: a.h\n    events: [websocket: $default]\n",
            base(),
        )
        .expect_err("bad stage");
        assert!(
            matches!(e, ImportError::Config(ref c) if c.key == "gateway.stage"),
            "{e}"
        );
    }
}
