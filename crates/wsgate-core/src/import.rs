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
//! | `python3*`, `nodejs*`, `provided*` | `FunctionRuntime::Python`, `FunctionRuntime::Node`, `FunctionRuntime::Command` running `./bootstrap` |
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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::{Map, Number, Value};

use crate::config::{
    Authorizer, Config, ConfigError, Function, FunctionRuntime, GatewayConfig, Integration,
    RequestAuthorizer, RequestSource, Route,
};
use crate::route::RouteKey;

/// The region `AWS::Region` and `${aws:region}` stand for when neither the options nor the file
/// name one.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The account id `AWS::AccountId` stands for; wsgate's local function ARNs use it too.
pub const LOCAL_ACCOUNT_ID: &str = "000000000000";
/// The route selection expression when the file gives none (API Gateway's usual one and the
/// Serverless Framework's default).
pub const DEFAULT_SELECTION_EXPRESSION: &str = "$request.body.action";

const SAM_FUNCTION: &str = "AWS::Serverless::Function";
const LAMBDA_FUNCTION: &str = "AWS::Lambda::Function";
const V2_API: &str = "AWS::ApiGatewayV2::Api";
const V2_ROUTE: &str = "AWS::ApiGatewayV2::Route";
const V2_INTEGRATION: &str = "AWS::ApiGatewayV2::Integration";
const V2_ROUTE_RESPONSE: &str = "AWS::ApiGatewayV2::RouteResponse";
const V2_STAGE: &str = "AWS::ApiGatewayV2::Stage";
const V2_DEPLOYMENT: &str = "AWS::ApiGatewayV2::Deployment";
const V2_AUTHORIZER: &str = "AWS::ApiGatewayV2::Authorizer";

/// The identity source the Serverless Framework (v3) gives a websocket authorizer that names
/// none (`lib/plugins/aws/package/compile/events/websockets/lib/validate.js`).
const SLS_DEFAULT_IDENTITY_SOURCE: &str = "route.request.header.Auth";

/// Resource types with no meaning for a local gateway: not imported, and not worth a warning.
/// (Authorizers and models are reported on the routes that use them.)
const NO_LOCAL_MEANING: &[&str] = &[
    "AWS::Lambda::Permission",
    "AWS::Lambda::Version",
    "AWS::Lambda::Alias",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::Logs::LogGroup",
    "AWS::CloudWatch::Alarm",
    "AWS::ApiGatewayV2::Deployment",
    "AWS::ApiGatewayV2::DomainName",
    "AWS::ApiGatewayV2::ApiMapping",
    "AWS::ApiGatewayV2::IntegrationResponse",
    "AWS::ApiGatewayV2::Model",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::CertificateManager::Certificate",
    "AWS::Route53::RecordSet",
];

/// Variables resolved through references deeper than this are taken for a cycle.
const MAX_DEPTH: usize = 32;
/// Evaluation steps one import may take: references that each name others twice double the work
/// at every level, so depth alone does not bound it (found by fuzzing). A step is a variable, a
/// node walked while resolving, or 4 bytes of text read or written while resolving (a string
/// walked, a variable's text, resolved text): `${self:}` walks and writes out the whole document,
/// so counting variables alone let a 99-byte file take 13 s (found by fuzzing). A service of 300
/// functions, each with a route and three variables, takes about 29 000 steps; 1 000 functions
/// (twice what one CloudFormation stack can hold) about 96 000.
const MAX_STEPS: usize = 100_000;
/// Bytes of text read or written that count as one step.
const BYTES_PER_STEP: usize = 4;

/// The steps of writing `bytes` of `value`'s text: a string is copied, [`BYTES_PER_STEP`] bytes a
/// step; a mapping or list is written out character by character, a byte a step (real projects
/// write strings into strings; a whole `${self:}` document written into one is what fuzzing does).
fn text_steps(value: &Value, bytes: usize) -> usize {
    match value {
        Value::String(_) => bytes / BYTES_PER_STEP,
        _ => bytes,
    }
}

/// The longest text a `${...}` string, a `Fn::Sub` or a `Fn::Join` may resolve to.
const MAX_RESOLVED_BYTES: usize = 64 * 1024;

/// The longest environment value imported: Lambda refuses a function whose variables take more
/// than 4 KB in all, so a longer one could not be deployed either.
const MAX_ENVIRONMENT_BYTES: usize = 4 * 1024;

/// Why an intrinsic function is left unresolved when its text passes [`MAX_RESOLVED_BYTES`].
fn resolved_too_long() -> String {
    format!(" (resolves to more than {MAX_RESOLVED_BYTES} bytes)")
}

/// Why a `serverless.yml` string or variable is left as is once the budget is spent.
const TOO_MANY_STEPS: &str = "the file's variables take too many steps to resolve";

/// Counts evaluation steps; past [`MAX_STEPS`] evaluation stops with a warning.
#[derive(Default)]
struct Budget(std::cell::Cell<usize>);

impl Budget {
    /// Takes one step; false once the budget is spent.
    fn step(&self) -> bool {
        self.spend(1)
    }

    /// Takes `steps` steps; false once the budget is spent.
    fn spend(&self, steps: usize) -> bool {
        let used = self.0.get().saturating_add(steps);
        self.0.set(used);
        used <= MAX_STEPS
    }

    /// Whether steps are left.
    fn left(&self) -> bool {
        self.0.get() <= MAX_STEPS
    }
}

/// The Lambda runtimes wsgate runs, for warnings.
const SUPPORTED_RUNTIMES: &str = "python*, nodejs* and provided* with a bootstrap are";

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

// ---------------------------------------------------------------------------------------------
// YAML to long-form JSON
// ---------------------------------------------------------------------------------------------

/// Parses the first YAML document; it must be a mapping.
fn parse_yaml(text: &str, what: &str) -> Result<Map<String, Value>, ImportError> {
    let docs = Yaml::load_from_str(text).map_err(|e| ImportError::Syntax {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_owned(),
    })?;
    match docs.first().map(to_json) {
        Some(Value::Object(map)) => Ok(map),
        Some(Value::Null) | None => Err(invalid(what, "the file is empty")),
        Some(_) => Err(invalid(what, "expected a mapping at the top level")),
    }
}

/// A YAML node as JSON, with short-form CloudFormation tags rewritten to the long form and merge
/// keys (`<<: *defaults`) applied.
fn to_json(node: &Yaml) -> Value {
    match node {
        Yaml::Value(scalar) => scalar_json(scalar),
        Yaml::Representation(text, ..) => Value::String(text.to_string()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Mapping(entries) => {
            let mut map = Map::new();
            let mut merged = Vec::new();
            for (key, value) in entries {
                let key = key_text(key);
                if key == "<<" {
                    merged.push(to_json(value));
                } else {
                    map.insert(key, to_json(value));
                }
            }
            // Explicit keys win over merged ones, whatever the order.
            for source in merged {
                let sources = match source {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                for source in sources {
                    if let Value::Object(entries) = source {
                        for (key, value) in entries {
                            map.entry(key).or_insert(value);
                        }
                    }
                }
            }
            Value::Object(map)
        }
        Yaml::Tagged(tag, inner) => {
            let inner = to_json(inner);
            if tag.handle == "!" {
                long_form(&tag.suffix, inner)
            } else {
                inner
            }
        }
        _ => Value::Null,
    }
}

fn scalar_json(scalar: &Scalar) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => Number::from_f64(f.into_inner())
            .map_or_else(|| Value::String(f.to_string()), Value::Number),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

fn key_text(key: &Yaml) -> String {
    match to_json(key) {
        Value::String(s) => s,
        Value::Null => "null".to_owned(),
        // A mapping or a list as a key (`? ...`): its JSON, cut at 1 KiB. Uncut, keys nested in
        // keys escape each other's quotes, doubling at every level: a 70-byte file ran for over
        // 30 s, hundreds of megabytes and growing (found by fuzzing).
        other => cut_at_short_form(|out| std::fmt::Write::write_fmt(out, format_args!("{other}"))),
    }
}

/// `!Ref X` → `{"Ref": "X"}`, `!GetAtt A.B` → `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` →
/// `{"Fn::Sub": s}`, and so on for every other function.
fn long_form(tag: &str, arg: Value) -> Value {
    let (key, arg) = match tag {
        "Ref" | "Condition" => (tag.to_owned(), arg),
        "GetAtt" => {
            let arg = match arg {
                Value::String(s) => match s.split_once('.') {
                    Some((resource, attribute)) => Value::Array(vec![
                        Value::String(resource.to_owned()),
                        Value::String(attribute.to_owned()),
                    ]),
                    None => Value::String(s),
                },
                other => other,
            };
            ("Fn::GetAtt".to_owned(), arg)
        }
        _ => (format!("Fn::{tag}"), arg),
    };
    let mut map = Map::new();
    map.insert(key, arg);
    Value::Object(map)
}

/// `{"Ref": x}`, `{"Condition": x}` or `{"Fn::...": x}`: the function's name and argument.
fn intrinsic(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (name, arg) = map.iter().next()?;
    (name == "Ref" || name == "Condition" || name.starts_with("Fn::")).then_some((name, arg))
}

/// The longest short form a warning quotes (or an unresolved value holds); a longer one is cut
/// there and ends in `…`.
const MAX_SHORT_FORM_BYTES: usize = 1024;

/// A value in the short form a template author would write, for warnings: `!Ref Table`,
/// `!GetAtt Fn.Arn`. Cut at [`MAX_SHORT_FORM_BYTES`]: a value naming a whole document is not
/// written out into a warning (found by fuzzing).
fn short_form(value: &Value) -> String {
    cut_at_short_form(|out| write_short_form(value, out))
}

/// What `write` writes, cut at [`MAX_SHORT_FORM_BYTES`] and then ending in `…`.
fn cut_at_short_form(write: impl FnOnce(&mut Capped) -> std::fmt::Result) -> String {
    let mut out = Capped::new(MAX_SHORT_FORM_BYTES);
    if write(&mut out).is_err() {
        out.text.push('…');
    }
    out.text
}

fn write_short_form(value: &Value, out: &mut Capped) -> std::fmt::Result {
    use std::fmt::Write as _;
    let list = |items: &[Value], separator: &str, out: &mut Capped| {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.write_str(separator)?;
            }
            write_short_form(item, out)?;
        }
        Ok(())
    };
    match intrinsic(value) {
        Some(("Ref", Value::String(id))) => write!(out, "!Ref {id}"),
        Some(("Fn::GetAtt", Value::Array(parts))) => {
            out.write_str("!GetAtt ")?;
            list(parts, ".", out)
        }
        Some((name, arg)) => {
            let tag = name.strip_prefix("Fn::").unwrap_or(name);
            write!(out, "!{tag} ")?;
            write_short_form(arg, out)
        }
        None => match value {
            Value::String(s) => out.write_str(s),
            Value::Array(items) => {
                out.write_str("[")?;
                list(items, ", ", out)?;
                out.write_str("]")
            }
            other => write!(out, "{other}"),
        },
    }
}

/// Text written up to a limit: what passes it is cut at the limit (on a character boundary) and
/// the write fails, which stops whatever was writing.
struct Capped {
    text: String,
    limit: usize,
}

impl Capped {
    fn new(limit: usize) -> Self {
        Self {
            text: String::new(),
            limit,
        }
    }
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.limit.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        let mut cut = room;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&s[..cut]);
        Err(std::fmt::Error)
    }
}

/// A value as the text an environment variable or a joined string would hold (a list's items
/// joined by commas, a mapping as JSON), unless it passes `limit` bytes: then `None`, after
/// writing no more than about `limit` bytes (a variable naming a whole document is not written
/// out just to be refused).
fn text_at_most(value: &Value, limit: usize) -> Option<String> {
    match value {
        Value::String(s) => (s.len() <= limit).then(|| s.clone()),
        Value::Null => Some(String::new()),
        Value::Array(items) => {
            let mut out = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&text_at_most(item, limit.checked_sub(out.len())?)?);
            }
            (out.len() <= limit).then_some(out)
        }
        other => {
            // A mapping is written as JSON, escaped character by character: one sure to pass the
            // limit is refused without writing it (a variable naming a whole document).
            if text_bytes_past(other, limit) {
                return None;
            }
            let mut capped = Capped::new(limit);
            std::fmt::Write::write_fmt(&mut capped, format_args!("{other}")).ok()?;
            Some(capped.text)
        }
    }
}

/// Whether the strings and keys in `value` alone take more than `limit` bytes (so that any text of
/// it does too), counting no further than that.
fn text_bytes_past(value: &Value, limit: usize) -> bool {
    fn count(value: &Value, total: &mut usize, limit: usize) {
        match value {
            Value::String(s) => *total = total.saturating_add(s.len()),
            Value::Array(items) => {
                for item in items {
                    if *total > limit {
                        return;
                    }
                    count(item, total, limit);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    if *total > limit {
                        return;
                    }
                    *total = total.saturating_add(key.len());
                    count(item, total, limit);
                }
            }
            _ => {}
        }
    }
    let mut total = 0;
    count(value, &mut total, limit);
    total > limit
}

/// A scalar as text; `None` for null, sequences and mappings.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A number of seconds (a number or a numeric string).
fn seconds(value: &Value) -> Option<Duration> {
    let secs = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    // `try_`: a huge number (1e20) does not fit a Duration (found by fuzzing).
    (secs.is_finite() && secs > 0.0)
        .then(|| Duration::try_from_secs_f64(secs).ok())
        .flatten()
}

/// A whole number of megabytes.
fn megabytes(value: &Value) -> Option<u32> {
    match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|mb| *mb > 0)
}

/// The logical ids a value references through `Ref`, `Fn::GetAtt` and `Fn::Sub` variables
/// (pseudo parameters left out), in order, once each.
fn refs(value: &Value, out: &mut Vec<String>) {
    fn push(out: &mut Vec<String>, id: &str) {
        if !id.starts_with("AWS::") && !out.iter().any(|o| o == id) {
            out.push(id.to_owned());
        }
    }
    match intrinsic(value) {
        Some(("Ref", Value::String(id))) => push(out, id),
        Some(("Fn::GetAtt", arg)) => match arg {
            Value::Array(parts) => {
                if let Some(id) = parts.first().and_then(Value::as_str) {
                    push(out, id);
                }
            }
            Value::String(s) => push(out, s.split_once('.').map_or(s.as_str(), |(id, _)| id)),
            _ => {}
        },
        Some(("Fn::Sub", arg)) => {
            let (template, vars) = match arg {
                Value::String(s) => (Some(s.as_str()), None),
                Value::Array(parts) => (
                    parts.first().and_then(Value::as_str),
                    parts.get(1).and_then(Value::as_object),
                ),
                _ => (None, None),
            };
            for name in template.map(sub_names).unwrap_or_default() {
                if !name.starts_with('!') && !vars.is_some_and(|m| m.contains_key(name)) {
                    push(out, name.split_once('.').map_or(name, |(id, _)| id));
                }
            }
            for var in vars.into_iter().flat_map(|m| m.values()) {
                refs(var, out);
            }
        }
        Some((_, arg)) => refs(arg, out),
        None => match value {
            Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
            Value::Object(map) => map.values().for_each(|v| refs(v, out)),
            _ => {}
        },
    }
}

/// The variable names of a `Fn::Sub` template, trimmed.
fn sub_names(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        names.push(after[..end].trim());
        rest = &after[end + 1..];
    }
    names
}

/// The function name in a Lambda function ARN or an API Gateway invocation URI
/// (`...:function:NAME[:alias]/invocations`).
fn lambda_name_in_arn(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once(":function:")?;
    let name = rest.split(['/', ':']).next()?;
    (!name.is_empty()).then_some(name)
}

/// Warnings in order, without repeats.
fn dedup(warnings: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    warnings
        .into_iter()
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

fn prefixed(context: &str, notes: Vec<String>, warnings: &mut Vec<String>) {
    warnings.extend(notes.into_iter().map(|n| format!("{context}: {n}")));
}

/// Adds an environment mapping's variables to `environment` (a null value removes one, as
/// `AWS::NoValue` does). Written out, each variable is evaluated on its own, so warnings name it;
/// anything else (`${self:custom.env}`, `!If ...`) is evaluated whole and must give a mapping.
fn apply_environment(
    cfn: &Cfn<'_>,
    raw: &Value,
    context: &dyn Fn(Option<&str>) -> String,
    environment: &mut BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) {
    let entries: Vec<(String, Value)> = match raw {
        Value::Object(map) if intrinsic(raw).is_none() => map
            .iter()
            .map(|(name, v)| (name.clone(), cfn.eval(v, &context(Some(name)), warnings)))
            .collect(),
        other => match cfn.eval(other, &context(None), warnings) {
            Value::Object(map) => map.into_iter().collect(),
            Value::Null => Vec::new(),
            value => {
                warnings.push(format!(
                    "{}: {} is not a mapping of variables; ignored",
                    context(None),
                    short_form(&value)
                ));
                Vec::new()
            }
        },
    };
    for (name, value) in entries {
        if value.is_null() {
            environment.remove(&name);
            continue;
        }
        // A value Lambda would refuse (`${self:}`, a whole document) is not written out whole.
        match text_at_most(&value, MAX_ENVIRONMENT_BYTES) {
            Some(text) => {
                environment.insert(name, text);
            }
            None => warnings.push(format!(
                "{}: longer than {MAX_ENVIRONMENT_BYTES} bytes once resolved, where Lambda allows 4 KB for all of a function's variables; left out",
                context(Some(&name))
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Runtimes
// ---------------------------------------------------------------------------------------------

/// A Lambda runtime identifier as wsgate runs it.
fn map_runtime(runtime: &str) -> Option<FunctionRuntime> {
    if runtime.starts_with("python3") {
        Some(FunctionRuntime::Python)
    } else if runtime.starts_with("nodejs") {
        Some(FunctionRuntime::Node)
    } else if runtime.starts_with("provided") {
        Some(FunctionRuntime::Command)
    } else {
        None
    }
}

fn unsupported_runtime(runtime: &str) -> String {
    format!("runtime {runtime} is not supported ({SUPPORTED_RUNTIMES})")
}

/// What both formats know about a function, before it becomes a [`Function`].
struct FunctionSpec {
    runtime: String,
    handler: Option<String>,
    dir: PathBuf,
    environment: BTreeMap<String, String>,
    timeout: Option<Duration>,
    memory_size: u32,
}

impl FunctionSpec {
    fn build(self) -> Result<Function, String> {
        let runtime =
            map_runtime(&self.runtime).ok_or_else(|| unsupported_runtime(&self.runtime))?;
        if runtime != FunctionRuntime::Command && self.handler.is_none() {
            return Err("no handler is given".to_owned());
        }
        let command = if runtime == FunctionRuntime::Command {
            // Lambda runs `bootstrap` from the task root; wsgate runs commands in the function's
            // folder.
            vec!["./bootstrap".to_owned()]
        } else {
            Vec::new()
        };
        Ok(Function {
            runtime,
            handler: self.handler,
            dir: self.dir,
            environment: self.environment,
            timeout: self.timeout,
            // `Function`'s own default.
            max_concurrency: 2,
            command,
            interpreter: None,
            memory_size: self.memory_size,
        })
    }
}

/// A route on its way into the config.
struct PendingRoute {
    key: String,
    /// The serverless function or SAM route resource declaring it, for duplicate errors.
    declared_by: String,
    function: String,
    route_response: bool,
    /// Only ever on `$connect`.
    authorizer: Option<PendingAuthorizer>,
}

/// A Lambda REQUEST authorizer whose function is in the file, on its way into the config.
struct PendingAuthorizer {
    /// Its name under `[authorizers]`: the serverless authorizer's `name`, or the SAM
    /// `AWS::ApiGatewayV2::Authorizer`'s logical id.
    name: String,
    /// The function it invokes, as named in the config.
    function: String,
    /// Checked with [`RequestSource::parse`].
    identity_sources: Vec<String>,
}

/// An authorizer's identity sources (a list, or one string of comma-separated ones) as wsgate
/// reads them; those it cannot read are dropped with a warning (the authorizer is then still
/// called, without the gateway's check that they are present).
fn identity_sources(value: &Value, context: &str, warnings: &mut Vec<String>) -> Vec<String> {
    let items: Vec<String> = match value {
        Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
        other => scalar_text(other).into_iter().collect(),
    };
    items
        .iter()
        .flat_map(|item| item.split(','))
        .map(str::trim)
        .filter(|source| !source.is_empty())
        .filter(|source| {
            let readable = RequestSource::parse(source).is_ok();
            if !readable {
                warnings.push(format!(
                    "{context}: identity source {source} is not supported (only route.request.header.NAME and route.request.querystring.NAME are); the gateway does not check it"
                ));
            }
            readable
        })
        .map(str::to_owned)
        .collect()
}

/// The warning for an authorizer that cannot run here: the route is imported without it.
fn authorizer_skipped(key: &str, what: impl std::fmt::Display) -> String {
    format!("route {key}: {what}; connections are accepted without it")
}

/// Builds, checks and returns the config once functions and routes are known.
struct Assembly {
    base_dir: PathBuf,
    stage: String,
    selection_expression: String,
    region: Option<String>,
    routes: Vec<PendingRoute>,
    /// Functions that can run, by name.
    functions: BTreeMap<String, Function>,
    /// Functions that cannot, with why.
    broken: Vec<(String, String)>,
    warnings: Vec<String>,
}

impl Assembly {
    fn finish(mut self, trailing: Vec<String>) -> Result<Imported, ImportError> {
        for (name, reason) in &self.broken {
            let keys: Vec<&str> = self
                .routes
                .iter()
                .filter(|r| &r.function == name)
                .map(|r| r.key.as_str())
                .collect();
            if !keys.is_empty() {
                self.warnings.push(format!(
                    "function {name}: {reason}; skipped routes: {}",
                    keys.join(", ")
                ));
            }
            for route in &self.routes {
                if let Some(authorizer) = route.authorizer.as_ref().filter(|a| &a.function == name)
                {
                    self.warnings.push(authorizer_skipped(
                        &route.key,
                        format_args!(
                            "authorizer {} cannot run (function {name}: {reason})",
                            authorizer.name
                        ),
                    ));
                }
            }
        }
        self.warnings.extend(trailing);
        let mut routes = BTreeMap::new();
        let mut authorizers = BTreeMap::new();
        for route in &self.routes {
            let integration =
                self.functions
                    .contains_key(&route.function)
                    .then(|| Integration::Function {
                        function: route.function.clone(),
                        route_response: route.route_response,
                    });
            let authorizer = route
                .authorizer
                .as_ref()
                .filter(|a| self.functions.contains_key(&a.function));
            if let Some(a) = authorizer {
                authorizers.insert(
                    a.name.clone(),
                    Authorizer::Request(RequestAuthorizer {
                        url: None,
                        function: Some(a.function.clone()),
                        identity_sources: a.identity_sources.clone(),
                        // API Gateway does not cache WebSocket authorizers' outputs.
                        cache_ttl: None,
                        timeout: None,
                    }),
                );
            }
            // A `$connect` whose function cannot run keeps its authorizer: connections are
            // still checked, then accepted.
            if integration.is_some() || authorizer.is_some() {
                routes.insert(
                    route.key.clone(),
                    Route {
                        integration,
                        authorizer: authorizer.map(|a| a.name.clone()),
                    },
                );
            }
        }
        if !routes.values().any(|r| r.integration.is_some()) {
            return Err(ImportError::NothingToRun(dedup(self.warnings)));
        }
        let config = Config {
            gateway: GatewayConfig {
                stage: self.stage,
                route_selection_expression: self.selection_expression,
                ..GatewayConfig::default()
            },
            routes,
            functions: self.functions,
            authorizers,
            base_dir: self.base_dir,
            ..Config::default()
        };
        config.validate()?;
        Ok(Imported {
            config,
            warnings: dedup(self.warnings),
            region: self.region,
        })
    }
}

/// A route response on `$connect` or `$disconnect` is not something API Gateway sends.
fn check_route_response(key: &str, route_response: bool, warnings: &mut Vec<String>) -> bool {
    if route_response && (key == RouteKey::CONNECT || key == RouteKey::DISCONNECT) {
        warnings.push(format!(
            "route {key}: a route response cannot be sent on {key}; ignored"
        ));
        return false;
    }
    route_response
}

/// One summary warning for the functions that have no WebSocket route.
fn unrouted_warning(kind: &str, names: &[String]) -> Option<String> {
    (!names.is_empty()).then(|| {
        format!(
            "functions without a {kind} are not imported: {}",
            names.join(", ")
        )
    })
}

/// One summary warning for the resources the functions may use but wsgate does not run.
fn not_emulated_warning(resources: &[String]) -> Option<String> {
    (!resources.is_empty()).then(|| {
        format!(
            "resources not emulated (if the functions use them, run them elsewhere and point the functions at them): {}",
            resources.join(", ")
        )
    })
}

// ---------------------------------------------------------------------------------------------
// CloudFormation
// ---------------------------------------------------------------------------------------------

/// A resource of the template.
#[derive(Clone, Copy)]
struct Res<'a> {
    id: &'a str,
    kind: &'a str,
    props: Option<&'a Map<String, Value>>,
    /// The resource's `Condition`, which is not evaluated.
    condition: Option<&'a str>,
    /// The resource's `Metadata`.
    metadata: Option<&'a Value>,
}

impl<'a> Res<'a> {
    fn prop(&self, key: &str) -> Option<&'a Value> {
        self.props?.get(key)
    }

    fn is_function(&self) -> bool {
        self.kind == SAM_FUNCTION || self.kind == LAMBDA_FUNCTION
    }

    /// Conditions are not evaluated: a resource with one is imported as if it held.
    fn warn_condition(&self, context: &str, warnings: &mut Vec<String>) {
        if let Some(condition) = self.condition {
            warnings.push(format!(
                "{context}: Condition {condition} is not evaluated; {} is imported as if it held",
                self.id
            ));
        }
    }
}

/// Evaluates CloudFormation intrinsic functions against a template's parameters and resources.
struct Cfn<'a> {
    resources: &'a Map<String, Value>,
    parameters: Option<&'a Map<String, Value>>,
    mappings: Option<&'a Map<String, Value>>,
    overrides: &'a [(&'a str, &'a str)],
    region: String,
    /// The imported API: `!Ref` to it is the gateway's `api_id`.
    api: Option<String>,
    /// In a `serverless.yml`, its `${...}` variables are resolved in every string first.
    vars: Option<&'a Vars<'a>>,
    budget: Budget,
}

impl<'a> Cfn<'a> {
    fn res(&self, id: &str) -> Option<Res<'a>> {
        let (id, resource) = self.resources.get_key_value(id)?;
        Some(Res {
            id,
            kind: resource.get("Type")?.as_str()?,
            props: resource.get("Properties").and_then(Value::as_object),
            condition: resource.get("Condition").and_then(Value::as_str),
            metadata: resource.get("Metadata"),
        })
    }

    /// All resources with a `Type`, in document order.
    fn all(&self) -> Vec<Res<'a>> {
        self.resources
            .keys()
            .filter_map(|id| self.res(id))
            .collect()
    }

    fn is_parameter(&self, id: &str) -> bool {
        self.overrides.iter().any(|(k, _)| *k == id)
            || self.parameters.is_some_and(|p| p.contains_key(id))
    }

    /// Evaluates `value`; notes about what could not be resolved go to `warnings` after
    /// `context`.
    fn eval(&self, value: &Value, context: &str, warnings: &mut Vec<String>) -> Value {
        let mut notes = Vec::new();
        let out = self.eval_at(value, &mut notes, 0);
        prefixed(context, notes, warnings);
        out
    }

    /// [`Self::eval`] to a scalar's text.
    fn text(&self, value: &Value, context: &str, warnings: &mut Vec<String>) -> Option<String> {
        scalar_text(&self.eval(value, context, warnings))
    }

    fn eval_at(&self, value: &Value, notes: &mut Vec<String>, depth: usize) -> Value {
        // Checked for every value, not only intrinsics: a variable may resolve to a mapping
        // holding itself (`${self:}`), which would recurse without end (found by fuzzing).
        if depth > MAX_DEPTH {
            return unresolved(value, " (nested too deeply: a cycle?)", notes);
        }
        let Some((name, arg)) = intrinsic(value) else {
            return match value {
                // Variables may resolve to a mapping such as `{Ref: Table}`: evaluate that too.
                Value::String(s) => match self.pre(s, notes) {
                    resolved @ (Value::Object(_) | Value::Array(_)) => {
                        self.eval_at(&resolved, notes, depth + 1)
                    }
                    resolved => resolved,
                },
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .map(|i| self.eval_at(i, notes, depth + 1))
                        .collect(),
                ),
                Value::Object(map) => Value::Object(
                    map.iter()
                        .map(|(k, v)| (k.clone(), self.eval_at(v, notes, depth + 1)))
                        .collect(),
                ),
                other => other.clone(),
            };
        };
        if !self.budget.step() {
            return unresolved(
                value,
                " (the template's references take too many steps to resolve)",
                notes,
            );
        }
        let result = match name {
            "Ref" => match arg.as_str() {
                Some(id) => self.reference(id, notes, depth),
                None => Err(String::new()),
            },
            "Fn::Sub" => self.sub(arg, notes, depth),
            "Fn::Join" => self.join(arg, notes, depth),
            "Fn::Select" => self.select(arg, notes, depth),
            "Fn::Split" => self.split(arg, notes, depth),
            "Fn::FindInMap" => self.find_in_map(arg, notes, depth),
            "Fn::If" => Err(" (conditions are not evaluated)".to_owned()),
            _ => Err(String::new()),
        };
        result.unwrap_or_else(|reason| unresolved(value, &reason, notes))
    }

    /// A plain string: with a `serverless.yml`'s variables resolved, if any.
    fn pre(&self, s: &str, notes: &mut Vec<String>) -> Value {
        match self.vars {
            Some(vars) if s.contains("${") => vars.resolve_string(s, notes, 0),
            _ => Value::String(s.to_owned()),
        }
    }

    /// `Ref`: pseudo parameters, parameters (overrides, then `Default`), then resources.
    fn reference(&self, id: &str, notes: &mut Vec<String>, depth: usize) -> Result<Value, String> {
        match id {
            "AWS::Region" => return Ok(Value::String(self.region.clone())),
            "AWS::AccountId" => return Ok(Value::String(LOCAL_ACCOUNT_ID.to_owned())),
            "AWS::Partition" => return Ok(Value::String("aws".to_owned())),
            "AWS::URLSuffix" => return Ok(Value::String("amazonaws.com".to_owned())),
            "AWS::NoValue" => return Ok(Value::Null),
            "AWS::NotificationARNs" => return Ok(Value::Array(Vec::new())),
            _ if id.starts_with("AWS::") => return Err(" (not known locally)".to_owned()),
            _ => {}
        }
        if let Some((_, value)) = self.overrides.iter().find(|(k, _)| *k == id) {
            return Ok(self.parameter_value(id, Value::String((*value).to_owned())));
        }
        if let Some(parameter) = self.parameters.and_then(|p| p.get(id)) {
            let Some(default) = parameter.get("Default") else {
                return Err(format!(
                    " (parameter {id} has no Default; pass its value as an override)"
                ));
            };
            let value = self.eval_at(default, notes, depth + 1);
            return Ok(self.parameter_value(id, value));
        }
        let Some(res) = self.res(id) else {
            return Err(format!(" (no parameter or resource is named {id})"));
        };
        Ok(match res.kind {
            "AWS::DynamoDB::Table" | "AWS::Serverless::SimpleTable" => {
                match res.prop("TableName") {
                    Some(name) => self.eval_at(name, notes, depth + 1),
                    None => {
                        notes.push(format!(
                            "!Ref {id} resolved to its logical id (the table has no TableName)"
                        ));
                        Value::String(id.to_owned())
                    }
                }
            }
            // Locally a function is named by its logical id.
            SAM_FUNCTION | LAMBDA_FUNCTION => Value::String(id.to_owned()),
            V2_API if self.api.as_deref() == Some(id) => {
                Value::String(GatewayConfig::default().api_id)
            }
            V2_STAGE => match res.prop("StageName") {
                Some(name) => self.eval_at(name, notes, depth + 1),
                None => Value::String(id.to_owned()),
            },
            kind => {
                notes.push(format!("!Ref {id} ({kind}) resolved to its logical id"));
                Value::String(id.to_owned())
            }
        })
    }

    /// A list parameter's value is a list.
    fn parameter_value(&self, id: &str, value: Value) -> Value {
        let kind = self
            .parameters
            .and_then(|p| p.get(id))
            .and_then(|p| p.get("Type"))
            .and_then(Value::as_str)
            .unwrap_or("String");
        match value {
            Value::String(s) if kind == "CommaDelimitedList" || kind.starts_with("List<") => {
                Value::Array(
                    s.split(',')
                        .map(|item| Value::String(item.trim().to_owned()))
                        .collect(),
                )
            }
            other => other,
        }
    }

    fn sub(&self, arg: &Value, notes: &mut Vec<String>, depth: usize) -> Result<Value, String> {
        let (template, vars) = match arg {
            Value::String(s) => (s.as_str(), None),
            Value::Array(parts) => match parts.as_slice() {
                [Value::String(s), Value::Object(m)] => (s.as_str(), Some(m)),
                _ => return Err(String::new()),
            },
            _ => return Err(String::new()),
        };
        let template = text_at_most(&self.pre(template, notes), MAX_RESOLVED_BYTES)
            .ok_or_else(resolved_too_long)?;
        let mut out = String::new();
        let mut rest = template.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                rest = &rest[start..];
                break;
            };
            let name = after[..end].trim();
            rest = &after[end + 1..];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
                continue;
            }
            let value = match vars.and_then(|m| m.get(name)) {
                Some(v) => Ok(self.eval_at(v, notes, depth + 1)),
                // `${Resource.Attribute}` is a `Fn::GetAtt`.
                None if name.contains('.') => Err(String::new()),
                None => self.reference(name, notes, depth + 1),
            };
            match value {
                Ok(v) => {
                    let room = MAX_RESOLVED_BYTES.saturating_sub(out.len());
                    out.push_str(&text_at_most(&v, room).ok_or_else(resolved_too_long)?);
                }
                Err(reason) => {
                    let placeholder = format!("${{{name}}}");
                    notes.push(format!("{placeholder} left unresolved{reason}"));
                    out.push_str(&placeholder);
                }
            }
        }
        out.push_str(rest);
        if out.len() > MAX_RESOLVED_BYTES {
            return Err(resolved_too_long());
        }
        Ok(Value::String(out))
    }

    fn join(&self, arg: &Value, notes: &mut Vec<String>, depth: usize) -> Result<Value, String> {
        let Some([Value::String(delimiter), list]) = arg.as_array().map(Vec::as_slice) else {
            return Err(String::new());
        };
        let list = self.eval_at(list, notes, depth + 1);
        let items = list.as_array().ok_or_else(String::new)?;
        let mut out = String::new();
        for (i, item) in items.iter().filter(|i| !i.is_null()).enumerate() {
            if i > 0 {
                out.push_str(delimiter);
            }
            let room = MAX_RESOLVED_BYTES
                .checked_sub(out.len())
                .ok_or_else(resolved_too_long)?;
            out.push_str(&text_at_most(item, room).ok_or_else(resolved_too_long)?);
        }
        Ok(Value::String(out))
    }

    fn select(&self, arg: &Value, notes: &mut Vec<String>, depth: usize) -> Result<Value, String> {
        let Some([index, list]) = arg.as_array().map(Vec::as_slice) else {
            return Err(String::new());
        };
        let index = self.eval_at(index, notes, depth + 1);
        let index = match &index {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(String::new)?;
        let list = self.eval_at(list, notes, depth + 1);
        list.as_array()
            .and_then(|items| items.get(index))
            .cloned()
            .ok_or_else(|| " (index out of range)".to_owned())
    }

    fn split(&self, arg: &Value, notes: &mut Vec<String>, depth: usize) -> Result<Value, String> {
        let Some([Value::String(delimiter), source]) = arg.as_array().map(Vec::as_slice) else {
            return Err(String::new());
        };
        let source = self.eval_at(source, notes, depth + 1);
        let source = scalar_text(&source).ok_or_else(String::new)?;
        Ok(Value::Array(
            source
                .split(delimiter.as_str())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ))
    }

    fn find_in_map(
        &self,
        arg: &Value,
        notes: &mut Vec<String>,
        depth: usize,
    ) -> Result<Value, String> {
        let Some([map, top, second]) = arg.as_array().map(Vec::as_slice) else {
            return Err(String::new());
        };
        let key = |v: &Value, notes: &mut Vec<String>| {
            scalar_text(&self.eval_at(v, notes, depth + 1)).unwrap_or_default()
        };
        let (map, top, second) = (key(map, notes), key(top, notes), key(second, notes));
        let found = self
            .mappings
            .and_then(|m| m.get(&map))
            .and_then(|m| m.get(&top))
            .and_then(|m| m.get(&second))
            .ok_or_else(|| format!(" (Mappings has no {map}.{top}.{second})"))?;
        Ok(self.eval_at(found, notes, depth + 1))
    }
}

fn unresolved(value: &Value, reason: &str, notes: &mut Vec<String>) -> Value {
    let text = short_form(value);
    notes.push(format!("{text} left unresolved{reason}"));
    Value::String(text)
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

// ---------------------------------------------------------------------------------------------
// Serverless Framework
// ---------------------------------------------------------------------------------------------

/// Serverless Framework plugins that compile or bundle the handlers, so that what is deployed is
/// not what the `handler` paths point at.
const BUNDLER_PLUGINS: &[&str] = &[
    "serverless-esbuild",
    "serverless-plugin-typescript",
    "serverless-webpack",
    "serverless-bundle",
];

/// The sources resolved here, for warnings.
const RESOLVED_SOURCES: &str = "self:, sls:stage, opt:stage, opt:region, aws:region and env:";

/// What looking up one variable source gave.
enum Lookup {
    Found(Value),
    /// A source wsgate reads, without a value (an unset option or variable, a missing key).
    Missing,
    /// A source wsgate does not read (`ssm:`, `file(...)`, `cf:`, ...).
    NotLocal,
}

/// Resolves `${...}` variables of a `serverless.yml`.
struct Vars<'a> {
    root: &'a Value,
    stage: String,
    region: String,
    options: ImportOptions<'a>,
    budget: Budget,
}

impl Vars<'_> {
    /// Resolves every string in `value`; notes go to `warnings` after `context`.
    fn resolve(&self, value: &Value, context: &str, warnings: &mut Vec<String>) -> Value {
        let mut notes = Vec::new();
        let out = self.resolve_at(value, &mut notes, 0);
        prefixed(context, notes, warnings);
        out
    }

    fn resolve_at(&self, value: &Value, notes: &mut Vec<String>, depth: usize) -> Value {
        // Once the budget is spent nothing more is walked; the variable that finds it spent
        // says so in a note.
        if !self.budget.left() || (value.is_array() || value.is_object()) && !self.budget.step() {
            return value.clone();
        }
        if let Value::String(s) = value {
            // Read and copied whole: long strings walked again and again are work too.
            self.budget.spend(s.len() / BYTES_PER_STEP);
        }
        match value {
            Value::String(s) if s.contains("${") => self.resolve_string(s, notes, depth),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.resolve_at(i, notes, depth))
                    .collect(),
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.resolve_at(v, notes, depth)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// A string with variables: a variable alone keeps its value's type (a number stays a
    /// number); mixed with text, values are written into it.
    fn resolve_string(&self, s: &str, notes: &mut Vec<String>, depth: usize) -> Value {
        if !self.budget.left() {
            notes.push(format!("{s} left as is ({TOO_MANY_STEPS})"));
            return Value::String(s.to_owned());
        }
        let segments = split_variables(s);
        if let [Segment::Variable(whole, inner)] = segments.as_slice() {
            return self.variable(whole, inner, notes, depth);
        }
        // A variable naming a whole document (`${self:}`) written into a string that the
        // document holds grows at every level (found by fuzzing): stop at a sane size.
        let too_long = |notes: &mut Vec<String>| {
            notes.push(format!(
                "{s} left as is (its variables resolve to more than {MAX_RESOLVED_BYTES} bytes)"
            ));
            Value::String(s.to_owned())
        };
        let mut out = String::new();
        for segment in segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Variable(whole, inner) => {
                    let room = MAX_RESOLVED_BYTES.saturating_sub(out.len());
                    let value = self.variable(whole, inner, notes, depth);
                    let Some(text) = text_at_most(&value, room) else {
                        // Up to `room` bytes were written before giving up.
                        self.budget.spend(text_steps(&value, room));
                        return too_long(notes);
                    };
                    self.budget.spend(text_steps(&value, text.len()));
                    out.push_str(&text);
                }
            }
            if out.len() > MAX_RESOLVED_BYTES {
                return too_long(notes);
            }
        }
        Value::String(out)
    }

    fn variable(&self, whole: &str, inner: &str, notes: &mut Vec<String>, depth: usize) -> Value {
        // A variable is a step, and its text is read (split at commas, sources looked up) as
        // resolved text is: a long one used many times is as much work as a long value.
        let within_budget = self.budget.spend(1 + inner.len() / BYTES_PER_STEP);
        // `${AWS::Region}`, `${Resource.Arn}`: CloudFormation's, for `Fn::Sub`.
        if !is_variable(inner) {
            return Value::String(whole.to_owned());
        }
        if depth > MAX_DEPTH {
            notes.push(format!("{whole} left as is (nested too deeply: a cycle?)"));
            return Value::String(whole.to_owned());
        }
        if !within_budget {
            notes.push(format!("{whole} left as is ({TOO_MANY_STEPS})"));
            return Value::String(whole.to_owned());
        }
        let inner = if inner.contains("${") {
            // A name made of `${self:}` is a whole document: not written out just to be split.
            let name = self.resolve_string(inner, notes, depth + 1);
            let Some(text) = text_at_most(&name, MAX_RESOLVED_BYTES) else {
                self.budget.spend(text_steps(&name, MAX_RESOLVED_BYTES));
                notes.push(format!(
                    "{whole} left as is (its name resolves to more than {MAX_RESOLVED_BYTES} bytes)"
                ));
                return Value::String(whole.to_owned());
            };
            self.budget.spend(text_steps(&name, text.len()));
            text
        } else {
            inner.to_owned()
        };
        let parts = split_top_level_commas(&inner);
        let Some((first, fallbacks)) = parts.split_first() else {
            return Value::String(whole.to_owned());
        };
        let first = first.trim();
        let primary = self.source(first, notes, depth);
        if let Lookup::Found(value) = primary {
            return value;
        }
        if matches!(primary, Lookup::NotLocal) && !fallbacks.is_empty() {
            notes.push(format!(
                "{whole}: {first} is not looked up locally; the fallback is used"
            ));
        }
        for fallback in fallbacks {
            if let Lookup::Found(value) = self.source(fallback.trim(), notes, depth) {
                return value;
            }
        }
        // Without `--stage`, `${opt:stage}` is the stage.
        match first {
            "opt:stage" => return Value::String(self.stage.clone()),
            "opt:region" => return Value::String(self.region.clone()),
            _ => {}
        }
        let why = match primary {
            Lookup::NotLocal => format!("only {RESOLVED_SOURCES} are resolved"),
            _ => format!("{first} has no value and there is no fallback"),
        };
        notes.push(format!("{whole} left as is ({why})"));
        Value::String(whole.to_owned())
    }

    /// One source or literal of a variable.
    fn source(&self, expr: &str, notes: &mut Vec<String>, depth: usize) -> Lookup {
        if let Some(quoted) = expr
            .strip_prefix('\'')
            .and_then(|e| e.strip_suffix('\''))
            .or_else(|| expr.strip_prefix('"').and_then(|e| e.strip_suffix('"')))
        {
            return Lookup::Found(Value::String(quoted.to_owned()));
        }
        if let Ok(n) = expr.parse::<i64>() {
            return Lookup::Found(Value::Number(n.into()));
        }
        if let Some(n) = expr.parse::<f64>().ok().and_then(Number::from_f64) {
            return Lookup::Found(Value::Number(n));
        }
        if let Ok(b) = expr.parse::<bool>() {
            return Lookup::Found(Value::Bool(b));
        }
        let found = |value: Option<String>| {
            value.map_or(Lookup::Missing, |v| Lookup::Found(Value::String(v)))
        };
        match expr.split_once(':') {
            Some(("self", path)) => {
                let mut node = Some(self.root);
                for key in path.split('.').filter(|k| !k.is_empty()) {
                    node = node.and_then(|n| match n {
                        Value::Object(map) => map.get(key),
                        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                        _ => None,
                    });
                }
                match node {
                    None | Some(Value::Null) => Lookup::Missing,
                    Some(value) => Lookup::Found(self.resolve_at(value, notes, depth + 1)),
                }
            }
            Some(("sls", "stage")) => found(Some(self.stage.clone())),
            Some(("opt", "stage")) => found(self.options.stage.map(str::to_owned)),
            Some(("opt", "region")) => found(self.options.region.map(str::to_owned)),
            Some(("aws", "region")) => found(Some(self.region.clone())),
            Some(("env", name)) => found(self.options.env.and_then(|env| env(name.trim()))),
            _ => Lookup::NotLocal,
        }
    }
}

enum Segment<'s> {
    Text(&'s str),
    /// The whole `${...}` and what is inside the braces.
    Variable(&'s str, &'s str),
}

/// Splits text into literal parts and top-level `${...}` variables (which may nest).
fn split_variables(s: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let bytes = rest.as_bytes();
        let mut depth = 0usize;
        let mut end = None;
        let mut i = start;
        while i < bytes.len() {
            if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
                depth += 1;
                i += 2;
                continue;
            }
            if bytes[i] == b'}' {
                depth -= 1;
                if depth == 0 {
                    end = Some(i);
                    break;
                }
            }
            i += 1;
        }
        let Some(end) = end else { break };
        if start > 0 {
            segments.push(Segment::Text(&rest[..start]));
        }
        segments.push(Segment::Variable(&rest[start..=end], &rest[start + 2..end]));
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest));
    }
    segments
}

/// Whether `${inner}` is a Serverless Framework variable rather than a CloudFormation `Fn::Sub`
/// one: it names a source (`self:`, `env:`, `file(...)`, ...), and is not `AWS::...`.
fn is_variable(inner: &str) -> bool {
    let first = split_top_level_commas(inner)
        .first()
        .map_or("", |f| f.trim());
    !first.starts_with("AWS::") && (first.contains(':') || first.contains('('))
}

/// Splits on commas outside quotes, parentheses and nested variables.
fn split_top_level_commas(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote = None;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '{') => depth += 1,
            (None, ')' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

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
    use super::*;

    const SAM_CHAT: &str = include_str!("../tests/fixtures/import/simple-websockets-chat-app.yaml");
    const SERVERLESS_CHAT: &str = include_str!("../tests/fixtures/import/serverless-chat.yml");
    const SERVERLESS_AUTHORIZER: &str =
        include_str!("../tests/fixtures/import/serverless-authorizer.yml");
    const SAM_AUTHORIZER: &str = include_str!("../tests/fixtures/import/sam-authorizer.yaml");

    fn base() -> &'static Path {
        Path::new("/projects/chat")
    }

    fn function_route(config: &Config, key: &str) -> (String, bool) {
        match config.routes.get(key).and_then(|r| r.integration.as_ref()) {
            Some(Integration::Function {
                function,
                route_response,
            }) => (function.clone(), *route_response),
            other => panic!("route {key}: {other:?}"),
        }
    }

    fn request_authorizer<'c>(config: &'c Config, name: &str) -> &'c RequestAuthorizer {
        match config.authorizers.get(name) {
            Some(Authorizer::Request(authorizer)) => authorizer,
            other => panic!("authorizer {name}: {other:?}"),
        }
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A SAM template around one route's resources.
    fn sam(resources: &str) -> String {
        format!(
            r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  ChatApi:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: chat
      ProtocolType: WEBSOCKET
      RouteSelectionExpression: $request.body.action
{resources}"#
        )
    }

    /// A route on ChatApi to `function` (a logical id).
    fn sam_route(name: &str, key: &str, function: &str) -> String {
        format!(
            r#"
  {name}Route:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref ChatApi
      RouteKey: {key}
      Target: !Join ['/', [integrations, !Ref {name}Integ]]
  {name}Integ:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref ChatApi
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/${{{function}.Arn}}/invocations
"#
        )
    }

    fn sam_function(name: &str, runtime: &str, extra: &str) -> String {
        format!(
            r#"
  {name}:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {name}/
      Handler: app.handler
      Runtime: {runtime}
{extra}"#
        )
    }

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
    fn long_form_json_reads_like_short_form_yaml() {
        let template = r#"{
          "Parameters": {"Stage": {"Type": "String", "Default": "beta"}},
          "Resources": {
            "Api": {"Type": "AWS::ApiGatewayV2::Api",
                    "Properties": {"ProtocolType": "WEBSOCKET",
                                   "RouteSelectionExpression": "${request.body.type}"}},
            "Route": {"Type": "AWS::ApiGatewayV2::Route",
                      "Properties": {"ApiId": {"Ref": "Api"}, "RouteKey": "ping",
                                     "RouteResponseSelectionExpression": "$default",
                                     "Target": {"Fn::Join": ["/", ["integrations", {"Ref": "Integ"}]]}}},
            "Response": {"Type": "AWS::ApiGatewayV2::RouteResponse",
                         "Properties": {"ApiId": {"Ref": "Api"}, "RouteId": {"Ref": "Route"},
                                        "RouteResponseKey": "$default"}},
            "Integ": {"Type": "AWS::ApiGatewayV2::Integration",
                      "Properties": {"ApiId": {"Ref": "Api"}, "IntegrationType": "AWS_PROXY",
                                     "IntegrationUri": {"Fn::Join": ["", [
                                        "arn:aws:apigateway:", {"Ref": "AWS::Region"},
                                        ":lambda:path/2015-03-31/functions/",
                                        {"Fn::GetAtt": ["Ping", "Arn"]}, "/invocations"]]}}},
            "ProdStage": {"Type": "AWS::ApiGatewayV2::Stage",
                      "Properties": {"ApiId": {"Ref": "Api"}, "StageName": {"Ref": "Stage"}}},
            "Ping": {"Type": "AWS::Lambda::Function",
                     "Properties": {"Code": "ping", "Handler": "index.handler",
                                    "Runtime": "nodejs22.x", "Timeout": 5, "MemorySize": 512,
                                    "Environment": {"Variables": {
                                        "REGION": {"Fn::Sub": "${AWS::Region}"},
                                        "API": {"Fn::Sub": ["wss://${Id}.example/${Stage}", {"Id": {"Ref": "Api"}}]}}}}}
          }
        }"#;
        let imported = from_sam(template, base()).expect("imports");
        let config = &imported.config;
        assert_eq!(imported.warnings, Vec::<String>::new());
        assert_eq!(config.gateway.stage, "beta");
        assert_eq!(
            config.gateway.route_selection_expression,
            "${request.body.type}"
        );
        assert_eq!(function_route(config, "ping"), ("Ping".to_owned(), true));
        let ping = &config.functions["Ping"];
        assert_eq!(ping.dir, Path::new("ping"));
        assert_eq!(ping.timeout, Some(Duration::from_secs(5)));
        assert_eq!(ping.memory_size, 512);
        assert_eq!(
            ping.environment,
            env(&[("API", "wss://local.example/beta"), ("REGION", "us-east-1")])
        );
    }

    #[test]
    fn unresolvable_intrinsics_are_warnings_naming_them() {
        let template = sam(&format!(
            "{}{}{}",
            sam_route("Send", "sendmessage", "Send"),
            sam_function(
                "Send",
                "python3.13",
                r#"      Layers: [!Ref SharedLayer]
      Environment:
        Variables:
          TOPIC_ARN: !GetAtt Topic.TopicArn
          MODE: !If [IsProd, prod, dev]
          QUEUE: !Ref Queue
          BUCKET: !Sub '${Assets}-${AWS::StackName}-${!Literal}'
          SESSIONS: !Ref Sessions
          MISSING: !Ref Nowhere
          FIRST: !Select [0, !Split [',', 'a,b,c']]
          SIZE: !FindInMap [Sizes, !Ref 'AWS::Region', small]
          GONE: !Ref AWS::NoValue
          PORT: 8080
"#
            ),
            r#"
  Topic:
    Type: AWS::SNS::Topic
  Queue:
    Type: AWS::SQS::Queue
  Assets:
    Type: AWS::S3::Bucket
  Sessions:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
  SharedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
Mappings:
  Sizes:
    us-east-1:
      small: 1
"#
        ));
        let imported = from_sam(&template, base()).expect("imports");
        let send = &imported.config.functions["Send"];
        assert_eq!(send.runtime, FunctionRuntime::Python);
        assert_eq!(
            send.environment,
            env(&[
                ("BUCKET", "Assets-${AWS::StackName}-${Literal}"),
                ("FIRST", "a"),
                ("MISSING", "!Ref Nowhere"),
                ("MODE", "!If [IsProd, prod, dev]"),
                ("PORT", "8080"),
                ("QUEUE", "Queue"),
                ("SESSIONS", "Sessions"),
                ("SIZE", "1"),
                ("TOPIC_ARN", "!GetAtt Topic.TopicArn"),
            ])
        );
        assert_eq!(
            imported.warnings,
            [
                "function Send: Layers are not available locally (their code is not on the path); ignored",
                "function Send: environment TOPIC_ARN: !GetAtt Topic.TopicArn left unresolved",
                "function Send: environment MODE: !If [IsProd, prod, dev] left unresolved (conditions are not evaluated)",
                "function Send: environment QUEUE: !Ref Queue (AWS::SQS::Queue) resolved to its logical id",
                "function Send: environment BUCKET: !Ref Assets (AWS::S3::Bucket) resolved to its logical id",
                "function Send: environment BUCKET: ${AWS::StackName} left unresolved (not known locally)",
                "function Send: environment SESSIONS: !Ref Sessions resolved to its logical id (the table has no TableName)",
                "function Send: environment MISSING: !Ref Nowhere left unresolved (no parameter or resource is named Nowhere)",
                "resources not emulated (if the functions use them, run them elsewhere and point the functions at them): Topic (AWS::SNS::Topic), Queue (AWS::SQS::Queue), Assets (AWS::S3::Bucket), Sessions (AWS::DynamoDB::Table), SharedLayer (AWS::Serverless::LayerVersion)",
            ]
        );
    }

    #[test]
    fn an_unsupported_runtime_skips_its_routes_with_a_warning() {
        let template = sam(&format!(
            "{}{}{}{}",
            sam_route("Connect", "$connect", "Connect"),
            sam_route("Send", "sendmessage", "Send"),
            sam_function("Connect", "nodejs20.x", ""),
            sam_function("Send", "java17", ""),
        ));
        let imported = from_sam(&template, base()).expect("imports");
        assert_eq!(
            imported.config.routes.keys().collect::<Vec<_>>(),
            ["$connect"]
        );
        assert!(!imported.config.functions.contains_key("Send"));
        assert_eq!(
            imported.warnings,
            [
                "function Send: runtime java17 is not supported (python*, nodejs* and provided* with a bootstrap are); skipped routes: sendmessage"
            ]
        );

        // With nothing left to run, the import fails and says why.
        let template = sam(&format!(
            "{}{}",
            sam_route("Send", "sendmessage", "Send"),
            sam_function("Send", "dotnet8", ""),
        ));
        let e = from_sam(&template, base()).expect_err("nothing runs");
        assert!(
            matches!(e, ImportError::NothingToRun(ref w) if w.len() == 1),
            "{e}"
        );
        assert!(
            e.to_string().contains("runtime dotnet8 is not supported"),
            "{e}"
        );
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
        assert_eq!(send.runtime, FunctionRuntime::Command);
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
    fn exponential_references_and_huge_timeouts_are_bounded() {
        // Found by fuzzing (fuzz/repro/config): each level names the previous one twice.
        let mut sls = String::from("service: s\ncustom:\n  v0: x\n");
        for i in 1..40 {
            sls.push_str(&format!(
                "  v{i}: ${{self:custom.v{p}}}${{self:custom.v{p}}}\n",
                p = i - 1
            ));
        }
        sls.push_str(concat!(
            "provider:\n  name: aws\n  runtime: python3.12\n  environment:\n    BIG: ${self:custom.v39}\n",
            "functions:\n  f:\n    handler: a.b\n    timeout: 1e20\n    events:\n      - websocket: $default\n",
        ));
        let imported = from_serverless(&sls, Path::new(".")).expect("imports");
        assert_warned(&imported, |w| w.contains("too many steps"));
        assert_eq!(imported.config.functions["f"].timeout, None);

        let mut sam = String::from("Parameters:\n  P0: {Type: String, Default: x}\n");
        for i in 1..40 {
            sam.push_str(&format!("  P{i}: {{Type: String, Default: !Join ['', [!Ref P{p}, !Ref P{p}, !Ref P{p}]]}}\n", p = i - 1));
        }
        sam.push_str("Resources:\n  A: {Type: AWS::ApiGatewayV2::Api, Properties: {ProtocolType: WEBSOCKET, Name: !Ref P39}}\n");
        // Completes (an error or warnings), in bounded time and memory.
        let _ = from_sam(&sam, Path::new("."));
    }

    /// Asserts that some warning of `imported` matches, listing them all when none does.
    #[track_caller]
    fn assert_warned(imported: &Imported, matches: impl Fn(&str) -> bool) {
        assert!(
            imported.warnings.iter().any(|w| matches(w)),
            "{:?}",
            imported.warnings
        );
    }

    #[test]
    fn a_large_real_looking_service_stays_within_the_budget() {
        // 300 functions, each with a route and variables, and 300 tables in `resources`: every
        // variable resolves, none is left for lack of steps (1 000 of each fit too, where
        // CloudFormation allows 500 resources a stack).
        let mut yaml = String::from(
            "service: big\nprovider:\n  name: aws\n  runtime: python3.12\n  stage: ${opt:stage, 'dev'}\n  environment:\n    STAGE: ${sls:stage}\n    SERVICE: ${self:service}\ncustom:\n  prefix: ${self:service}-${sls:stage}\n  description: ${self:custom.prefix} of ${self:service}, a service with a long description that repeats itself\nfunctions:\n",
        );
        for i in 0..300 {
            yaml.push_str(&format!(
                "  fn{i}:\n    handler: src/h.fn{i}\n    timeout: 10\n    environment:\n      TABLE: ${{self:custom.prefix}}-table{i}\n      ABOUT: ${{self:custom.description}} ({i})\n      REGION: ${{aws:region}}\n    events:\n      - websocket:\n          route: action{i}\n"
            ));
        }
        yaml.push_str("resources:\n  Resources:\n");
        for i in 0..300 {
            yaml.push_str(&format!(
                "    Table{i}:\n      Type: AWS::DynamoDB::Table\n      Properties:\n        TableName: ${{self:custom.prefix}}-table{i}\n        BillingMode: PAY_PER_REQUEST\n        AttributeDefinitions:\n          - {{AttributeName: id, AttributeType: S}}\n        KeySchema:\n          - {{AttributeName: id, KeyType: HASH}}\n"
            ));
        }
        let imported = from_serverless(&yaml, Path::new(".")).expect("imports");
        assert_eq!(imported.config.functions.len(), 300);
        assert!(
            imported
                .warnings
                .iter()
                .all(|w| !w.contains("too many steps") && !w.contains("left as is")),
            "{:?}",
            imported.warnings
        );
        let env = &imported.config.functions["fn299"].environment;
        assert_eq!(env["TABLE"], "big-dev-table299");
        assert!(
            env["ABOUT"].starts_with("big-dev of big, a service"),
            "{}",
            env["ABOUT"]
        );
    }

    #[test]
    fn an_environment_value_past_4_kib_is_left_out_with_a_warning() {
        let big = "x".repeat(2_500);
        let yaml = format!(
            "service: s\nprovider:\n  name: aws\n  runtime: python3.12\ncustom:\n  big: [{big}, {big}]\nfunctions:\n  f:\n    handler: h.f\n    environment:\n      BIG: ${{self:custom.big}}\n      HALF: ${{self:custom.big.0}}\n      SMALL: ok\n    events:\n      - websocket:\n          route: $default\n"
        );
        let imported = from_serverless(&yaml, Path::new(".")).expect("imports");
        let env = &imported.config.functions["f"].environment;
        assert_eq!(env.get("SMALL").map(String::as_str), Some("ok"));
        assert_eq!(env.get("HALF"), Some(&big));
        assert!(!env.contains_key("BIG"));
        assert_warned(&imported, |w| w.contains("BIG") && w.contains("left out"));
    }

    #[test]
    fn text_at_most_is_the_text_within_the_limit_and_none_past_it() {
        let values = [
            (serde_json::json!("abc"), "abc"),
            (serde_json::json!(null), ""),
            (serde_json::json!(42), "42"),
            (serde_json::json!(true), "true"),
            (serde_json::json!(["a", 1, ["b", null]]), "a,1,b,"),
            (
                serde_json::json!({"k": ["v", {"n": 1.5}], "s": "x\"y"}),
                r#"{"k":["v",{"n":1.5}],"s":"x\"y"}"#,
            ),
        ];
        for (value, text) in values {
            assert!(!text_bytes_past(&value, text.len()), "{value}");
            assert_eq!(text_at_most(&value, text.len()).as_deref(), Some(text));
            assert_eq!(text_at_most(&value, usize::MAX).as_deref(), Some(text));
            if !text.is_empty() {
                assert_eq!(text_at_most(&value, text.len() - 1), None, "{value}");
            }
        }
    }

    #[test]
    fn keys_nested_in_keys_are_cut_at_a_kilobyte() {
        // Found by fuzzing (fuzz/repro/config/nested-complex-keys-timeout.yml): 70 bytes of
        // `? ? ? ...` ran for over 30 s and 733 MB, each key's JSON escaping the one inside it.
        let text = include_str!("../../../fuzz/repro/config/nested-complex-keys-timeout.yml");
        let doc = parse_yaml(text, "t").expect("parses");
        let mut longest = 0;
        let mut keys: Vec<(&String, &Value)> = doc.iter().collect();
        while let Some((key, value)) = keys.pop() {
            longest = longest.max(key.len());
            if let Value::Object(map) = value {
                keys.extend(map.iter());
            }
        }
        assert!(
            longest <= MAX_SHORT_FORM_BYTES + '…'.len_utf8(),
            "{longest}"
        );
        let small = parse_yaml("? {a: 1}\n: v\n? [x, y]\n: w\n", "t").expect("parses");
        assert_eq!(
            Value::Object(small),
            serde_json::json!({r#"{"a":1}"#: "v", r#"["x","y"]"#: "w"})
        );
    }

    #[test]
    fn short_forms_are_cut_at_a_kilobyte() {
        assert_eq!(
            short_form(&serde_json::json!({"Fn::GetAtt": ["T", "Arn"]})),
            "!GetAtt T.Arn"
        );
        assert_eq!(
            short_form(&serde_json::json!({"Fn::If": ["C", {"Ref": "A"}, [1, {"k": "v"}]]})),
            r#"!If [C, !Ref A, [1, {"k":"v"}]]"#
        );
        for long in [
            serde_json::json!({"Fn::Join": ["", ["x".repeat(5000)]]}),
            serde_json::json!({"Fn::Base64": {"k": "é".repeat(3000)}}),
            serde_json::json!(["é".repeat(3000)]),
        ] {
            let text = short_form(&long);
            assert!(text.ends_with('…'), "{text}");
            assert!(
                text.len() <= MAX_SHORT_FORM_BYTES + '…'.len_utf8(),
                "{}",
                text.len()
            );
        }
    }

    #[test]
    fn a_variable_name_past_64_kib_is_left_as_is() {
        let big = "x".repeat(70_000);
        let text = format!(
            "custom:\n  big: {big}\nprovider:\n  environment:\n    A: ${{${{self:custom.big}}}}\nfunctions:\n  f:\n    handler: a.b\n    events: [websocket: $default]\n"
        );
        let imported = from_serverless(&text, Path::new(".")).expect("imports");
        assert_warned(&imported, |w| {
            w.contains("its name resolves to more than 65536 bytes")
        });
    }

    #[test]
    fn sub_and_join_past_64_kib_are_left_unresolved() {
        let big = "x".repeat(40_000);
        let small = "y".repeat(1_000);
        let template = format!(
            "Parameters:\n  Big: {{Type: String, Default: {big}}}\n  Small: {{Type: String, Default: {small}}}\n{}",
            sam(&format!(
                "{}{}",
                sam_route("Send", "sendmessage", "Send"),
                sam_function(
                    "Send",
                    "python3.13",
                    "      Environment:\n        Variables:\n          JOINED: !Join ['', [!Ref Big, !Ref Big]]\n          SUBBED: !Sub '${Big}${Big}'\n          ONE: !Join ['-', [!Ref Small, a]]\n"
                )
            ))
        );
        let imported = from_sam(&template, base()).expect("imports");
        let environment = &imported.config.functions["Send"].environment;
        assert_eq!(environment["ONE"], format!("{small}-a"));
        for name in ["JOINED", "SUBBED"] {
            assert!(
                environment[name].len() <= MAX_SHORT_FORM_BYTES + 3,
                "{name}"
            );
            assert_warned(&imported, |w| {
                w.contains(name)
                    && w.contains("left unresolved (resolves to more than 65536 bytes)")
            });
        }
    }

    #[test]
    fn a_document_holding_itself_twice_is_bounded() {
        // Found by fuzzing (fuzz/repro/config/self-reference-twice-memoized-oom-serverless.yml,
        // against an attempt at reusing resolved `${self:}` values that let the copies double).
        let text = "provider: {environment: {A: \"${self:}\"}}\ncustom: {B: \"${self:}\"}\nfunctions: {f: {handler: a.b, events: [websocket: x]}}\n";
        let imported = from_serverless(text, Path::new(".")).expect("imports");
        assert_warned(&imported, |w| {
            w.contains("${self:}") && w.contains("left as is")
        });
    }

    #[test]
    fn a_document_holding_itself_does_not_recurse_forever() {
        // Found by fuzzing (fuzz/repro/config/self-reference-stack-overflow-serverless.yml).
        let text = "functions: {f: {handler: a.b, environment: {A: \"${self:}\"}, events: [websocket: x]}}";
        let _ = from_serverless(text, Path::new("."));
    }

    #[test]
    fn a_variable_naming_the_whole_document_does_not_grow_without_bound() {
        // Found by fuzzing (fuzz/artifacts/config): `${self:}` is the whole file, written into a
        // string of that file.
        let text = concat!(
            "service: vars\nprovider:\n  name: aws\n  runtime: nodejs20.x\n  environment:\n",
            "    TABLE: ${self:, 'fallback'} ${ssm:/p}//////////////////////////////////////\n",
            "functions:\n  f:\n    handler: index.handler\n    events:\n      - websocket: hello\n",
        );
        let imported = from_serverless(text, Path::new(".")).expect("imports");
        let table = &imported.config.functions["f"].environment["TABLE"];
        assert!(table.len() <= MAX_RESOLVED_BYTES, "{}", table.len());
    }

    #[test]
    fn variables_naming_the_whole_document_twice_are_bounded_in_work() {
        // Found by fuzzing (fuzz/repro/config/self-reference-slow-serverless.yml): each
        // `${self:}` walks the whole document, which holds both, down to the depth limit.
        let text = "provider: {environment: {A: \"${self:}x\", B: \"${self:}x\"}}\nfunctions: {f: {handler: a.b, events: [websocket: x]}}\n";
        let imported = from_serverless(text, Path::new(".")).expect("imports");
        assert_warned(&imported, |w| w.contains("too many steps"));
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
    fn yaml_syntax_errors_have_a_location() {
        let e = from_sam("Resources:\n  Api:\n    Type: [a, b\n  Other: 1\n", base())
            .expect_err("bad yaml");
        let ImportError::Syntax { line, column, .. } = &e else {
            panic!("{e:?}");
        };
        assert_eq!((*line, *column), (4, 8), "{e}");
        assert!(
            e.to_string()
                .starts_with("YAML syntax error at line 4, column 8: "),
            "{e}"
        );

        let e = from_serverless("service: a\nservice: b\n", base()).expect_err("duplicate key");
        assert!(matches!(e, ImportError::Syntax { line: 2, .. }), "{e}");
        let e = from_serverless("", base()).expect_err("empty");
        assert_eq!(e.to_string(), "serverless.yml: the file is empty");
        let e = from_sam("- a\n- b\n", base()).expect_err("a list");
        assert_eq!(
            e.to_string(),
            "template: expected a mapping at the top level"
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
    fn serverless_variables_resolve_or_warn() {
        let yaml = r#"
service:
  name: vars
custom:
  tables:
    dev: dev-table
  timeout: 7
  nested: ${self:custom.tables.${sls:stage}}
  loop: ${self:custom.loop}
provider:
  name: aws
  runtime: nodejs20.x
  stage: ${opt:stage}
  timeout: ${self:custom.timeout}
  environment:
    TABLE: ${self:custom.nested}
    SERVICE: ${self:service.name}
    REGION: ${aws:region}-${opt:region}
    HOME_DIR: ${env:HOME}
    SECRET: ${file(./secrets.yml):secret}
    FALLBACK: ${self:custom.nope, 'fallback'}
    LOOP: ${self:custom.loop}
    SUB: { "Fn::Sub": "arn:aws:s3:::${AWS::Region}-${self:service.name}/${Bucket}" }
functions:
  echo:
    handler: index.echo
    events:
      - websocket:
          route: echo
          routeResponseSelectionExpression: $default
"#;
        let imported = from_serverless(yaml, base()).expect("imports");
        let echo = &imported.config.functions["echo"];
        assert_eq!(imported.config.gateway.stage, "dev");
        assert_eq!(imported.region, None);
        assert_eq!(echo.timeout, Some(Duration::from_secs(7)));
        assert_eq!(echo.memory_size, 1024);
        assert_eq!(
            echo.environment,
            env(&[
                ("FALLBACK", "fallback"),
                ("HOME_DIR", "${env:HOME}"),
                ("LOOP", "${self:custom.loop}"),
                ("REGION", "us-east-1-us-east-1"),
                ("SECRET", "${file(./secrets.yml):secret}"),
                ("SERVICE", "vars"),
                ("SUB", "arn:aws:s3:::us-east-1-vars/${Bucket}"),
                ("TABLE", "dev-table"),
            ])
        );
        assert_eq!(
            imported.warnings,
            [
                "provider.environment.HOME_DIR: ${env:HOME} left as is (env:HOME has no value and there is no fallback)",
                "provider.environment.SECRET: ${file(./secrets.yml):secret} left as is (only self:, sls:stage, opt:stage, opt:region, aws:region and env: are resolved)",
                "provider.environment.LOOP: ${self:custom.loop} left as is (nested too deeply: a cycle?)",
                "provider.environment.SUB: ${Bucket} left unresolved (no parameter or resource is named Bucket)",
            ]
        );
    }

    #[test]
    fn serverless_environments_may_come_from_variables() {
        let yaml = r#"
service: ws
plugins:
  - serverless-esbuild
  - serverless-offline
custom:
  env:
    dev: { TABLE: dev-table, DEBUG: 1 }
provider:
  name: aws
  runtime: nodejs20.x
  environment: ${self:custom.env.${sls:stage}}
functions:
  echo:
    handler: src/echo.handler
    environment: ${file(./env.yml)}
    events:
      - websocket: $default
"#;
        let imported = from_serverless(yaml, base()).expect("imports");
        assert_eq!(
            imported.config.functions["echo"].environment,
            env(&[("DEBUG", "1"), ("TABLE", "dev-table")])
        );
        assert_eq!(
            imported.warnings,
            [
                "plugins: serverless-esbuild builds the handlers at deploy time; wsgate runs them as they are in the service folder (build them first, or point the handlers at the built code)",
                "functions.echo.environment: ${file(./env.yml)} left as is (only self:, sls:stage, opt:stage, opt:region, aws:region and env: are resolved)",
                "functions.echo.environment: ${file(./env.yml)} is not a mapping of variables; ignored",
            ]
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

    #[test]
    fn merge_keys_and_anchors_apply() {
        let yaml = r#"
x-defaults: &defaults
  handler: handler.run
  runtime: python3.11
  timeout: 3
functions:
  one:
    <<: *defaults
    timeout: 4
    events: [websocket: one]
  two:
    <<: *defaults
    events: [websocket: two]
"#;
        let imported = from_serverless(yaml, base()).expect("imports");
        let functions = &imported.config.functions;
        assert_eq!(functions["one"].timeout, Some(Duration::from_secs(4)));
        assert_eq!(functions["two"].timeout, Some(Duration::from_secs(3)));
        assert_eq!(functions["two"].handler.as_deref(), Some("handler.run"));
        assert_eq!(imported.warnings, Vec::<String>::new());
    }

    #[test]
    fn short_forms_become_long_forms() {
        let doc = parse_yaml(
            "a: !Ref X\nb: !GetAtt T.StreamArn\nc: !Sub ['${A}', {A: !Ref Y}]\nd: !GetAtt [T, Arn]\ne: !Condition C\nf: '!Ref Z'\n",
            "t",
        )
        .expect("parses");
        let json = Value::Object(doc);
        assert_eq!(
            json,
            serde_json::json!({
                "a": {"Ref": "X"},
                "b": {"Fn::GetAtt": ["T", "StreamArn"]},
                "c": {"Fn::Sub": ["${A}", {"A": {"Ref": "Y"}}]},
                "d": {"Fn::GetAtt": ["T", "Arn"]},
                "e": {"Condition": "C"},
                "f": "!Ref Z",
            })
        );
        let mut ids = Vec::new();
        refs(&json, &mut ids);
        assert_eq!(ids, ["X", "T", "Y"]);
        assert_eq!(
            lambda_name_in_arn(
                "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:1:function:chat:live/invocations"
            ),
            Some("chat")
        );
    }
}
