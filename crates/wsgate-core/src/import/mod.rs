//! Importing a project's `serverless.yml` (Serverless Framework) or AWS SAM / CloudFormation
//! template into a [`Config`], so that `wsgate dev` runs the project as it is.
//!
//! Pure, like the rest of the crate: the caller reads the file and hands over its text, the folder
//! it came from (which becomes [`Config::base_dir`]) and, through [`ImportOptions`], the stage,
//! region, template parameters and environment lookup it wants applied.
//!
//! Everything in the file that would change how the WebSocket API behaves but cannot be mapped
//! becomes a warning that names it (an IAM-authorized or an outside authorizer, an unsupported
//! runtime, an intrinsic function left unresolved, a route response without its selection
//! expression, ...). What has no meaning
//! for a local gateway is skipped without a word: IAM roles and policies, Lambda permissions,
//! deployments, log groups, domain names, tags, VPC settings, `Outputs`, `plugins`, `package`.
//!
//! The YAML is read with saphyr, which keeps CloudFormation's short-form tags (`!Ref X`,
//! `!GetAtt X.Arn`, `!Sub ...`) as tagged nodes; they are rewritten to the long JSON form
//! (`{"Ref": "X"}`, `{"Fn::GetAtt": ["X", "Arn"]}`) before anything looks at them, so both forms
//! (and JSON templates, which are YAML) read the same.
//!
//! # What maps
//!
//! | From | To |
//! |---|---|
//! | `provider.stage` / `AWS::ApiGatewayV2::Stage` `StageName` (else a Deployment's, else `Prod` if a Deployment exists, else `dev`) | `gateway.stage` |
//! | `provider.websocketsApiRouteSelectionExpression` / the API's `RouteSelectionExpression` | `gateway.route_selection_expression` |
//! | a function's `websocket` events / a `Route` → `AWS_PROXY` `Integration` → function | `routes.KEY = Route::Function` |
//! | `routeResponseSelectionExpression: $default` / that plus a `$default` `RouteResponse` | `route_response = true` |
//! | `python3*`, `nodejs*`, `provided*` | `Runtime::Python`, `Runtime::Node`, `Runtime::Command` running `./bootstrap` |
//! | `handler` / `Handler` | `handler`, as written (`src/handlers/chat.send`) |
//! | the service folder / `CodeUri` (or `Code` when it is a folder) | `dir` |
//! | `provider.environment` under `environment` / `Globals.Function` under the function's `Environment.Variables` | `environment` |
//! | `timeout` / `Timeout` (seconds) | `timeout` (absent: `limits.integration_timeout`) |
//! | `memorySize` / `MemorySize` | `memory_size` (absent: 1024 / 128, the platforms' defaults) |
//! | a `$connect` event's `authorizer: FN` or `{name: FN, identitySource}` (FN a function of the service, or an `arn` naming one by deployed name or `FnLambdaFunction` logical id) / a `$connect` `Route` with `AuthorizationType: CUSTOM` → `AuthorizerId` → `AWS::ApiGatewayV2::Authorizer` with `AuthorizerType: REQUEST` → `AuthorizerUri` → function | `[authorizers.NAME] type = "request"`, `function` = that function (imported even without a route of its own), and `routes."$connect".authorizer = NAME`; NAME is the serverless authorizer's `name` (an ARN's last part) or the Authorizer's logical id |
//! | `identitySource` / `IdentitySource` (a list, or comma-separated; absent: `route.request.header.Auth` for serverless, as the Framework, none for SAM) | `identity_sources` (only `route.request.header.*` and `route.request.querystring.*`; others are dropped with a warning) |
//!
//! Authorizers that cannot run here leave `$connect` without one, with a warning: an ARN of a
//! function outside the file, `AuthorizationType: AWS_IAM`, an `AuthorizerType` other than
//! `REQUEST`, an authorizer function whose runtime is not supported, and an authorizer on a route
//! other than `$connect`. A `$connect` whose own function cannot run keeps its authorizer.
//!
//! Serverless variables: `${self:...}`, `${sls:stage}`, `${opt:stage}`, `${opt:region}`,
//! `${aws:region}`, `${env:...}` (through [`ImportOptions::env`]) and fallbacks are resolved,
//! nested or not; anything else (`ssm:`, `file(...)`, `cf:`, ...) is left as written, with a
//! warning. CloudFormation: `Ref` (parameters, pseudo parameters, tables to their `TableName`,
//! the API to the gateway's `api_id`), `Fn::Sub`, `Fn::Join`, `Fn::Select`, `Fn::Split` and
//! `Fn::FindInMap` are evaluated; `Fn::GetAtt`, `Fn::If`, `Fn::ImportValue` and the rest are left
//! as their short form, with a warning.

mod assembly;
mod budget;
mod cfn;
mod text;
mod variables;
mod yaml;
#[cfg(test)]
mod test_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use assembly::{
    Assembly, FunctionSpec, NO_LOCAL_MEANING, PendingAuthorizer, PendingRoute, apply_environment,
    authorizer_skipped, check_route_response, identity_sources, map_runtime,
    not_emulated_warning, unrouted_warning, unsupported_runtime,
};
use budget::Budget;
use cfn::{
    Cfn, Res, SAM_FUNCTION, V2_API, V2_AUTHORIZER, V2_DEPLOYMENT,
    V2_INTEGRATION, V2_ROUTE, V2_ROUTE_RESPONSE, V2_STAGE, lambda_name_in_arn, refs,
};
use text::{megabytes, scalar_text, seconds, short_form};
use variables::Vars;
use yaml::parse_yaml;

use crate::config::{Config, ConfigError, Function};
use crate::route::RouteKey;

/// The region `AWS::Region` and `${aws:region}` stand for when neither the options nor the file
/// name one.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The account id `AWS::AccountId` stands for; wsgate's local function ARNs use it too.
pub const LOCAL_ACCOUNT_ID: &str = "000000000000";
/// The route selection expression when the file gives none (API Gateway's usual one and the
/// Serverless Framework's default).
pub const DEFAULT_SELECTION_EXPRESSION: &str = "$request.body.action";

/// The identity source the Serverless Framework (v3) gives a websocket authorizer that names
/// none (`lib/plugins/aws/package/compile/events/websockets/lib/validate.js`).
const SLS_DEFAULT_IDENTITY_SOURCE: &str = "route.request.header.Auth";

/// What an import produced.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The configuration: `base_dir`, `gateway.stage`, `gateway.route_selection_expression`,
    /// `functions`, `routes` and `authorizers` come from the file, everything else is the
    /// default. It passes
    /// [`Config::validate`].
    pub config: Config,
    /// What could not be mapped, one sentence each, naming the thing (`route $connect: ...`,
    /// `function X: ...`), in the order found, without repeats.
    pub warnings: Vec<String>,
    /// The region the file names (`provider.region`, or a SAM `Region` parameter), if any; the
    /// caller may use it for the functions' `AWS_REGION`.
    pub region: Option<String>,
}

/// Looks up an environment variable.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What the caller knows that the file does not.
#[derive(Clone, Copy, Default)]
pub struct ImportOptions<'a> {
    /// The stage, as `--stage` would give it: `${opt:stage}` in a `serverless.yml`; overrides
    /// the stage found in the file for both formats.
    pub stage: Option<&'a str>,
    /// The region: `${opt:region}` and `AWS::Region`; overrides the file's.
    pub region: Option<&'a str>,
    /// Template parameter values, as `--parameter-overrides` gives them; they win over `Default`s.
    pub parameters: &'a [(&'a str, &'a str)],
    /// Looks up an environment variable for `${env:NAME}`. Without it, only the fallbacks given
    /// in the file are used.
    pub env: Option<EnvLookup<'a>>,
}

/// Why a file could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The text is not YAML.
    #[error("YAML syntax error at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based.
        line: usize,
        /// 1-based.
        column: usize,
        /// What the parser says.
        message: String,
    },
    /// The YAML is not shaped like the file it should be.
    #[error("{key}: {message}")]
    Invalid {
        /// The dotted path of the bad key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The file declares no WebSocket API or route.
    #[error("no WebSocket routes found: {0}")]
    NoWebSocketRoutes(String),
    /// A route's integration invokes a function the file does not define.
    #[error("route {route}: function {function} is not defined in the file")]
    MissingFunction {
        /// The route key.
        route: String,
        /// The function's name or logical id, as referenced.
        function: String,
    },
    /// A route's `Target` names an integration the template does not define.
    #[error("route {route}: integration {integration} is not defined in the template")]
    MissingIntegration {
        /// The route key.
        route: String,
        /// The integration's logical id, as referenced.
        integration: String,
    },
    /// Two routes share a route key.
    #[error("route {route} is declared twice, by {first} and by {second}")]
    DuplicateRoute {
        /// The route key.
        route: String,
        /// The function (serverless) or route resource (SAM) declaring it first.
        first: String,
        /// The one declaring it again.
        second: String,
    },
    /// The file has WebSocket routes but none of them can run here; the warnings say why.
    #[error("none of the WebSocket routes can run locally: {}", .0.join("; "))]
    NothingToRun(Vec<String>),
    /// The configuration built from the file does not validate (a bad stage name, a reserved
    /// route key, an invalid selection expression, ...).
    #[error("the imported configuration is invalid: {0}")]
    Config(#[from] ConfigError),
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ImportError {
    ImportError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

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

/// Imports an AWS SAM or CloudFormation template (YAML or JSON) with default options.
pub fn from_sam(yaml: &str, base_dir: &Path) -> Result<Imported, ImportError> {
    from_sam_with(yaml, base_dir, ImportOptions::default())
}

/// Imports an AWS SAM or CloudFormation template (YAML or JSON): the first
/// `AWS::ApiGatewayV2::Api` with `ProtocolType: WEBSOCKET`, its routes, their `AWS_PROXY`
/// integrations and the functions these invoke.
pub fn from_sam_with(
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
enum Invoked {
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
fn invoked_function(
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

/// The Lambda REQUEST authorizer a route's `AuthorizationType: CUSTOM` and `AuthorizerId` name,
/// when its function is in the template; anything else is a warning and the route is imported
/// without an authorizer.
fn sam_route_authorizer<'a>(
    cfn: &Cfn<'a>,
    all: &[Res<'a>],
    route: &Res<'a>,
    key: &str,
    used: &mut BTreeSet<&'a str>,
    warnings: &mut Vec<String>,
) -> Result<Option<PendingAuthorizer>, ImportError> {
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
            return Ok(None);
        }
        "CUSTOM" => {}
        "AWS_IAM" => {
            warnings.push(authorizer_skipped(
                key,
                "AuthorizationType AWS_IAM is not supported (requests are not checked for a SigV4 signature)",
            ));
            return Ok(None);
        }
        other => {
            warnings.push(authorizer_skipped(
                key,
                format_args!(
                    "AuthorizationType {other} is not supported (only NONE and CUSTOM, a Lambda authorizer, are)"
                ),
            ));
            return Ok(None);
        }
    }
    if key != RouteKey::CONNECT {
        warnings.push(format!(
            "{context}: only $connect can have an authorizer, as on API Gateway; ignored"
        ));
        return Ok(None);
    }
    let Some(id) = authorizer_id else {
        warnings.push(authorizer_skipped(
            key,
            "AuthorizationType CUSTOM without an AuthorizerId",
        ));
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
    let function = match invoked_function(cfn, all, uri, &authorizer_context, warnings) {
        Invoked::Function(function) => function,
        Invoked::Undefined(function) => {
            return Err(ImportError::MissingFunction {
                route: key.to_owned(),
                function,
            });
        }
        Invoked::Outside(function) => {
            warnings.push(authorizer_skipped(
                key,
                format_args!(
                    "authorizer {name}: function {function} is not in this template, so it cannot run locally"
                ),
            ));
            return Ok(None);
        }
        Invoked::Unknown => {
            warnings.push(authorizer_skipped(
                key,
                format_args!(
                    "authorizer {name}: cannot tell which function AuthorizerUri {} invokes",
                    short_form(uri)
                ),
            ));
            return Ok(None);
        }
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

/// An `AWS::Serverless::Function` (with `Globals.Function`) or an `AWS::Lambda::Function`.
fn sam_function(
    cfn: &Cfn<'_>,
    res: &Res<'_>,
    globals: Option<&Map<String, Value>>,
    global_env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<FunctionSpec, String> {
    let serverless = res.kind == SAM_FUNCTION;
    let context = format!("function {}", res.id);
    res.warn_condition(&context, warnings);
    if let Some(method) = res
        .metadata
        .and_then(|m| m.get("BuildMethod"))
        .and_then(Value::as_str)
    {
        warnings.push(format!(
            "{context}: Metadata.BuildMethod {method}: `sam build` builds this function, wsgate runs CodeUri as it is (build first and import .aws-sam/build/template.yaml)"
        ));
    }
    let get = |key: &str| {
        res.prop(key)
            .or_else(|| globals.filter(|_| serverless).and_then(|g| g.get(key)))
    };
    let text = |key: &str, warnings: &mut Vec<String>| {
        get(key).and_then(|v| cfn.text(v, &context, warnings))
    };
    if text("PackageType", warnings).is_some_and(|p| p.eq_ignore_ascii_case("Image"))
        || get("ImageUri").is_some()
    {
        return Err("container images (PackageType: Image) are not supported".to_owned());
    }
    let dir = if serverless {
        if get("InlineCode").is_some() {
            return Err(
                "InlineCode is not supported (put the code in a folder and point CodeUri to it)"
                    .to_owned(),
            );
        }
        match get("CodeUri").map(|v| cfn.eval(v, &context, warnings)) {
            None => ".".to_owned(),
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(
                    "CodeUri in S3 is not supported (point it to the local folder)".to_owned(),
                );
            }
        }
    } else {
        match res.prop("Code").map(|v| cfn.eval(v, &context, warnings)) {
            None => ".".to_owned(),
            Some(Value::String(s)) => s,
            Some(Value::Object(code)) if code.contains_key("ZipFile") => {
                return Err("inline code (Code.ZipFile) is not supported".to_owned());
            }
            Some(Value::Object(code)) if code.contains_key("ImageUri") => {
                return Err("container images (Code.ImageUri) are not supported".to_owned());
            }
            Some(_) => {
                return Err("Code in S3 is not supported (set Code to the local folder)".to_owned());
            }
        }
    };
    if dir.starts_with("s3://") {
        return Err(format!(
            "CodeUri {dir} is in S3, which is not supported (point it to the local folder)"
        ));
    }
    if [".zip", ".jar"].iter().any(|ext| dir.ends_with(ext)) {
        return Err(format!(
            "CodeUri {dir} is an archive (point it to the unpacked folder)"
        ));
    }
    let runtime = text("Runtime", warnings).ok_or_else(|| {
        if serverless {
            "no Runtime (set it on the function or in Globals.Function)".to_owned()
        } else {
            "no Runtime".to_owned()
        }
    })?;
    map_runtime(&runtime).ok_or_else(|| unsupported_runtime(&runtime))?;
    let handler = text("Handler", warnings);
    let timeout = get("Timeout").and_then(|v| {
        let value = cfn.eval(v, &context, warnings);
        let timeout = seconds(&value);
        if timeout.is_none() {
            warnings.push(format!(
                "{context}: Timeout {} is not a number of seconds; ignored",
                short_form(&value)
            ));
        }
        timeout
    });
    let memory_size = match get("MemorySize") {
        None => 128,
        Some(v) => {
            let value = cfn.eval(v, &context, warnings);
            megabytes(&value).unwrap_or_else(|| {
                warnings.push(format!(
                    "{context}: MemorySize {} is not a number of megabytes; 128 is used",
                    short_form(&value)
                ));
                128
            })
        }
    };
    if get("Layers").is_some_and(|l| l.as_array().is_none_or(|l| !l.is_empty())) {
        warnings.push(format!(
            "{context}: Layers are not available locally (their code is not on the path); ignored"
        ));
    }
    let mut environment = if serverless {
        global_env.clone()
    } else {
        BTreeMap::new()
    };
    if let Some(vars) = res.prop("Environment").and_then(|e| e.get("Variables")) {
        let context = |name: Option<&str>| match name {
            Some(name) => format!("{context}: environment {name}"),
            None => format!("{context}: Environment.Variables"),
        };
        apply_environment(cfn, vars, &context, &mut environment, warnings);
    }
    Ok(FunctionSpec {
        runtime,
        handler,
        dir: PathBuf::from(dir),
        environment,
        timeout,
        memory_size,
    })
}

/// Serverless Framework plugins that compile or bundle the handlers, so that what is deployed is
/// not what the `handler` paths point at.
const BUNDLER_PLUGINS: &[&str] = &[
    "serverless-esbuild",
    "serverless-plugin-typescript",
    "serverless-webpack",
    "serverless-bundle",
];

/// Imports a Serverless Framework `serverless.yml` with default options.
pub fn from_serverless(yaml: &str, base_dir: &Path) -> Result<Imported, ImportError> {
    from_serverless_with(yaml, base_dir, ImportOptions::default())
}

/// Imports a Serverless Framework `serverless.yml`: every function's `websocket` events become
/// routes to it.
pub fn from_serverless_with(
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
    let provider_get = |key: &str| provider.and_then(|p| p.get(key));
    let provider_text = |vars: &Vars<'_>, key: &str, warnings: &mut Vec<String>| {
        provider_get(key)
            .and_then(|v| scalar_text(&vars.resolve(v, &format!("provider.{key}"), warnings)))
    };

    if let Some(name) = provider_text(&vars, "name", &mut warnings)
        && name != "aws"
    {
        return Err(invalid(
            "provider.name",
            format!("{name:?}: only AWS projects can be imported"),
        ));
    }
    vars.stage = match options.stage {
        Some(stage) => stage.to_owned(),
        None => provider_text(&vars, "stage", &mut warnings).unwrap_or_else(|| "dev".to_owned()),
    };
    let region_from_file = provider_text(&vars, "region", &mut warnings);
    vars.region = options
        .region
        .map(str::to_owned)
        .or_else(|| region_from_file.clone())
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    let selection_expression = provider_text(
        &vars,
        "websocketsApiRouteSelectionExpression",
        &mut warnings,
    )
    .unwrap_or_else(|| DEFAULT_SELECTION_EXPRESSION.to_owned());
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
    let cfn = Cfn {
        resources,
        parameters: None,
        mappings: None,
        overrides: &[],
        region: vars.region.clone(),
        api: None,
        vars: Some(&vars),
        budget: Budget::default(),
    };

    // How an authorizer's ARN may name a function of the service: by its deployed name
    // (`name`, else `SERVICE-STAGE-KEY`) or by its logical id (`KeyLambdaFunction`).
    let service = root
        .get("service")
        .map(|s| s.get("name").unwrap_or(s))
        .and_then(|s| scalar_text(&vars.resolve(s, "service", &mut Vec::new())));
    let service_functions: Vec<ServiceFunction> = functions
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
        .collect();

    // Routes.
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
            let websocket = vars.resolve(websocket, &path, &mut warnings);
            let (key, definition) = match &websocket {
                Value::String(key) => (key.clone(), None),
                Value::Object(map) => match map.get("route").and_then(scalar_text) {
                    Some(key) => (key, Some(map)),
                    None => return Err(invalid(format!("{path}.route"), "missing")),
                },
                _ => {
                    return Err(invalid(
                        path,
                        "expected a route key or a mapping with `route`",
                    ));
                }
            };
            let context = format!("route {key}");
            if let Some(first) = pending.iter().find(|p| p.key == key) {
                return Err(ImportError::DuplicateRoute {
                    route: key,
                    first: first.declared_by.clone(),
                    second: name.clone(),
                });
            }
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
                        authorizer = sls_authorizer(v, &key, &service_functions, &mut warnings);
                    }
                    other => warnings.push(format!(
                        "{context}: websocket.{other} is not supported; ignored"
                    )),
                }
            }
            let route_response = check_route_response(&key, route_response, &mut warnings);
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

    // Functions.
    let mut provider_env = BTreeMap::new();
    if let Some(env) = provider_get("environment") {
        let context = |name: Option<&str>| match name {
            Some(name) => format!("provider.environment.{name}"),
            None => "provider.environment".to_owned(),
        };
        apply_environment(&cfn, env, &context, &mut provider_env, &mut warnings);
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
            &cfn,
            &mut warnings,
        );
        match result {
            Ok(function) => {
                built.insert(name.clone(), function);
            }
            Err(reason) => broken.push((name.clone(), reason)),
        }
    }

    let others: Vec<String> = cfn
        .all()
        .iter()
        .filter(|r| !NO_LOCAL_MEANING.contains(&r.kind))
        .map(|r| format!("{} ({})", r.id, r.kind))
        .collect();
    let trailing = [
        unrouted_warning("websocket event", &unrouted),
        not_emulated_warning(&others),
    ]
    .into_iter()
    .flatten()
    .collect();

    Assembly {
        base_dir: base_dir.to_path_buf(),
        stage: vars.stage.clone(),
        selection_expression,
        region: options.region.map(str::to_owned).or(region_from_file),
        routes: pending,
        functions: built,
        broken,
        warnings,
    }
    .finish(trailing)
}

/// A function of a `serverless.yml`, as an authorizer's ARN may name it.
struct ServiceFunction {
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

/// A `$connect` websocket event's `authorizer` (variables resolved), as the Serverless
/// Framework v3 reads it: `auth` (a function of the service), an ARN (`arn:...`, anything with a
/// `:`), or `{name, arn, identitySource}`, where `arn` wins over `name` and may be an intrinsic
/// (`!GetAtt AuthLambdaFunction.Arn`). The identity source defaults to
/// `route.request.header.Auth`, as in the Framework. An ARN is followed only to a function of
/// this service; any other cannot run here and is a warning.
fn sls_authorizer(
    value: &Value,
    key: &str,
    service_functions: &[ServiceFunction],
    warnings: &mut Vec<String>,
) -> Option<PendingAuthorizer> {
    let by_arn = |arn: &Value| -> Option<&ServiceFunction> {
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
    };
    // The Framework names an ARN's authorizer after the ARN's last part.
    let arn_name = |arn: &Value| match arn {
        Value::String(arn) => arn.rsplit(':').next().map(str::to_owned),
        _ => None,
    };
    let (name, arn, sources) = match value {
        Value::String(s) if s.contains(':') => (arn_name(value), Some(value), None),
        Value::String(s) => (Some(s.clone()), None, None),
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
            (
                name,
                arn,
                map.get("identitySource").filter(|s| !s.is_null()),
            )
        }
        other => {
            warnings.push(authorizer_skipped(
                key,
                format_args!(
                    "authorizer {} is neither a function name, an ARN nor a mapping",
                    short_form(other)
                ),
            ));
            return None;
        }
    };
    let function = match arn {
        Some(arn) => match by_arn(arn) {
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

/// One function of a `serverless.yml`, with the provider's defaults.
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
    let timeout = get("timeout", warnings).and_then(|v| {
        let timeout = seconds(&v);
        if timeout.is_none() {
            warnings.push(format!(
                "{context}: timeout {} is not a number of seconds; ignored",
                short_form(&v)
            ));
        }
        timeout
    });
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
    use crate::config::{Runtime};
    use crate::import::test_support::{
        SAM_AUTHORIZER, SAM_CHAT, SERVERLESS_AUTHORIZER, SERVERLESS_CHAT, base, env,
        function_route, request_authorizer, sam, sam_function, sam_route,
    };

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
    fn provided_runtimes_run_their_bootstrap() {
        let template = sam(&format!(
            "{}{}",
            sam_route("Send", "$default", "Send"),
            r#"
  Send:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
    Properties:
      CodeUri: target/lambda/send
      Handler: bootstrap
      Runtime: provided.al2023
      Architectures: [arm64]
"#
        ));
        let imported = from_sam(&template, base()).expect("imports");
        let send = &imported.config.functions["Send"];
        assert_eq!(send.runtime, Runtime::Command);
        assert_eq!(send.command, ["./bootstrap"]);
        assert_eq!(send.dir, Path::new("target/lambda/send"));
        assert_eq!(send.handler.as_deref(), Some("bootstrap"));
        assert_eq!(imported.config.gateway.stage, "dev");
        assert_eq!(
            imported.warnings,
            [
                "function Send: Metadata.BuildMethod rust-cargolambda: `sam build` builds this function, wsgate runs CodeUri as it is (build first and import .aws-sam/build/template.yaml)"
            ]
        );
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
        assert_eq!(connect.runtime, Runtime::Python);
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
        assert_eq!(send.runtime, Runtime::Node);
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
                "resources not emulated (if the functions use them, run them elsewhere and point the functions at them): ConnectionsTable (AWS::DynamoDB::Table)",
            ]
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
        assert_eq!(config.functions["odd"].timeout, None);
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
                "function odd: timeout soon is not a number of seconds; ignored",
                "function odd: layers are not available locally (their code is not on the path); ignored",
                "function auth: layers are not available locally (their code is not on the path); ignored",
                "function legacy: runtime java17 is not supported (python*, nodejs* and provided* with a bootstrap are); skipped routes: legacy",
            ]
        );
    }

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
        assert_eq!(function.runtime, Runtime::Python);
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
        assert_eq!(function.runtime, Runtime::Python);
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
