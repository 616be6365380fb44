//! What both formats build on their way to a [`Config`]: functions ([`FunctionSpec`], their
//! runtimes and environments), routes and authorizers ([`PendingRoute`], [`PendingAuthorizer`]),
//! and the [`Assembly`] that turns them into a validated config with its warnings; also the
//! warnings both formats give in the same words.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::budget::MAX_ENVIRONMENT_BYTES;
use super::cfn::Cfn;
use super::intrinsic::intrinsic;
use super::text::{scalar_text, short_form, text_at_most};
use super::types::{ImportError, Imported, TableSpec};
use crate::config::{
    Authorizer, Config, Function, FunctionRuntime, GatewayConfig, Integration, RequestAuthorizer,
    RequestSource, Route,
};
use crate::route::RouteKey;

/// Resource types with no meaning for a local gateway: not imported, and not worth a warning.
/// (Authorizers and models are reported on the routes that use them.)
pub(super) const NO_LOCAL_MEANING: &[&str] = &[
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

/// The Lambda runtimes wsgate runs, for warnings.
const SUPPORTED_RUNTIMES: &str = "python*, nodejs* and provided* with a bootstrap are";

/// Warnings in order, without repeats.
fn dedup(warnings: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    warnings
        .into_iter()
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

/// Adds an environment mapping's variables to `environment` (a null value removes one, as
/// `AWS::NoValue` does). Written out, each variable is evaluated on its own, so warnings name it;
/// anything else (`${self:custom.env}`, `!If ...`) is evaluated whole and must give a mapping.
pub(super) fn apply_environment(
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

/// A Lambda runtime identifier as wsgate runs it.
pub(super) fn map_runtime(runtime: &str) -> Option<FunctionRuntime> {
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

pub(super) fn unsupported_runtime(runtime: &str) -> String {
    format!("runtime {runtime} is not supported ({SUPPORTED_RUNTIMES})")
}

/// What both formats know about a function, before it becomes a [`Function`].
pub(super) struct FunctionSpec {
    pub(super) runtime: String,
    pub(super) handler: Option<String>,
    pub(super) dir: PathBuf,
    pub(super) environment: BTreeMap<String, String>,
    /// What the platform deploys with: the file's value, else the platform's default (each
    /// importer knows its own).
    pub(super) timeout: Duration,
    pub(super) memory_size: u32,
}

impl FunctionSpec {
    pub(super) fn build(self) -> Result<Function, String> {
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
            timeout: Some(self.timeout),
            // `Function`'s own default.
            max_concurrency: 2,
            command,
            interpreter: None,
            memory_size: self.memory_size,
        })
    }
}

/// A route on its way into the config.
pub(super) struct PendingRoute {
    pub(super) key: String,
    /// The serverless function or SAM route resource declaring it, for duplicate errors.
    pub(super) declared_by: String,
    pub(super) function: String,
    pub(super) route_response: bool,
    /// Only ever on `$connect`.
    pub(super) authorizer: Option<PendingAuthorizer>,
}

/// A Lambda REQUEST authorizer whose function is in the file, on its way into the config.
pub(super) struct PendingAuthorizer {
    /// Its name under `[authorizers]`: the serverless authorizer's `name`, or the SAM
    /// `AWS::ApiGatewayV2::Authorizer`'s logical id.
    pub(super) name: String,
    /// The function it invokes, as named in the config.
    pub(super) function: String,
    /// Checked with [`RequestSource::parse`].
    pub(super) identity_sources: Vec<String>,
}

/// An authorizer's identity sources (a list, or one string of comma-separated ones) as wsgate
/// reads them; those it cannot read are dropped with a warning (the authorizer is then still
/// called, without the gateway's check that they are present).
pub(super) fn identity_sources(
    value: &Value,
    context: &str,
    warnings: &mut Vec<String>,
) -> Vec<String> {
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
pub(super) fn authorizer_skipped(key: &str, what: impl std::fmt::Display) -> String {
    format!("route {key}: {what}; connections are accepted without it")
}

/// Builds, checks and returns the config once functions and routes are known.
pub(super) struct Assembly {
    pub(super) base_dir: PathBuf,
    pub(super) stage: String,
    pub(super) selection_expression: String,
    pub(super) region: Option<String>,
    pub(super) routes: Vec<PendingRoute>,
    /// Functions that can run, by name.
    pub(super) functions: BTreeMap<String, Function>,
    /// Functions that cannot, with why.
    pub(super) broken: Vec<(String, String)>,
    pub(super) tables: Vec<TableSpec>,
    pub(super) warnings: Vec<String>,
}

impl Assembly {
    pub(super) fn finish(mut self, trailing: Vec<String>) -> Result<Imported, ImportError> {
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
            tables: self.tables,
        })
    }
}

/// A route response on `$connect` or `$disconnect` is not something API Gateway sends.
pub(super) fn check_route_response(
    key: &str,
    route_response: bool,
    warnings: &mut Vec<String>,
) -> bool {
    if route_response && (key == RouteKey::CONNECT || key == RouteKey::DISCONNECT) {
        warnings.push(format!(
            "route {key}: a route response cannot be sent on {key}; ignored"
        ));
        return false;
    }
    route_response
}

/// One summary warning for the functions that have no WebSocket route.
pub(super) fn unrouted_warning(kind: &str, names: &[String]) -> Option<String> {
    (!names.is_empty()).then(|| {
        format!(
            "functions without a {kind} are not imported: {}",
            names.join(", ")
        )
    })
}

/// One summary warning for the resources the functions may use but wsgate does not run.
pub(super) fn not_emulated_warning(resources: &[String]) -> Option<String> {
    (!resources.is_empty()).then(|| {
        format!(
            "resources not emulated (if the functions use them, run them elsewhere and point the functions at them): {}",
            resources.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::import::test_support::{assert_warned, base, sam, sam_function, sam_route};
    use crate::import::{from_sam, from_serverless};

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
}
