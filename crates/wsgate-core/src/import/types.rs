//! The public types of an import (what it produced, its options, why it failed) and the
//! constants both formats use; `mod.rs` re-exports them.

use crate::config::{Config, ConfigError};

/// The region `AWS::Region` and `${aws:region}` stand for when neither the options nor the file
/// name one.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The account id `AWS::AccountId` stands for; wsgate's local function ARNs use it too.
pub const LOCAL_ACCOUNT_ID: &str = "000000000000";
/// The route selection expression when the file gives none (API Gateway's usual one and the
/// Serverless Framework's default).
pub const DEFAULT_SELECTION_EXPRESSION: &str = "$request.body.action";

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
    /// The DynamoDB tables the file declares, in document order, for `wsgate dev` to create at
    /// a local endpoint.
    pub tables: Vec<TableSpec>,
}

/// A DynamoDB table the file declares (`AWS::DynamoDB::Table`, `AWS::Serverless::SimpleTable`),
/// ready for DynamoDB's API.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    /// Its logical id.
    pub logical_id: String,
    /// Its `TableName` resolved, else `{stack}-{logical id}`: what `Ref` to it gives elsewhere in
    /// the file. The stack is the `serverless.yml`'s `{service}-{stage}`, or the template's
    /// folder name (`wsgate-dev` when it has none).
    pub name: String,
    /// The body of a `CreateTable` request (DynamoDB's JSON protocol), `TableName` included:
    /// key schema, attribute definitions, billing mode, throughput, secondary indexes and stream.
    pub create_table: serde_json::Value,
    /// The attribute the file's `TimeToLiveSpecification` enables, to be set with
    /// `UpdateTimeToLive` once the table exists.
    pub ttl_attribute: Option<String>,
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

pub(super) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ImportError {
    ImportError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}
