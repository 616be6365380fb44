//! Importing a project's `serverless.yml` (Serverless Framework) or AWS SAM / CloudFormation
//! template into a [`Config`], so that `wsgate dev` runs the project as it is.
//!
//! Pure, like the rest of the crate: the caller reads the file and hands over its text, the folder
//! it came from (which becomes [`Config::base_dir`]) and, through [`ImportOptions`], the stage,
//! region, template parameters and environment lookup it wants applied.
//!
//! [`Config`]: crate::config::Config
//! [`Config::base_dir`]: crate::config::Config::base_dir
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
//! | `timeout` (else `provider.timeout`) / `Timeout` (else `Globals.Function.Timeout`), in seconds | `timeout` (absent: 6 s / 3 s, what the Serverless Framework / Lambda deploy with) |
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
//! warning. CloudFormation: `Ref` (parameters, pseudo parameters, tables to their name, the API
//! to the gateway's `api_id`), `Fn::Sub`, `Fn::Join`, `Fn::Select`, `Fn::Split`,
//! `Fn::FindInMap` and `Fn::GetAtt` of a table's `Arn` are evaluated; other `Fn::GetAtt`s,
//! `Fn::If`, `Fn::ImportValue` and the rest are left as their short form, with a warning.
//!
//! DynamoDB tables (`AWS::DynamoDB::Table`, `AWS::Serverless::SimpleTable`, in a template or a
//! `serverless.yml`'s `resources.Resources`) become [`Imported::tables`], which `wsgate dev
//! --dynamodb URL` creates. A table without `TableName` is named `{stack}-{LogicalId}` (where
//! CloudFormation adds a random suffix): the stack is `{service}-{stage}` for a
//! `serverless.yml`, the template's folder name for SAM; `AWS::StackName` is that stack too.
//! `!GetAtt Table.Arn` is `arn:aws:dynamodb:{region}:000000000000:table/{name}`.
//!
//! # Layout
//! This file holds the entry points and re-exports the public types; the rest is in:
//! - `types.rs`: the public types ([`Imported`], [`ImportOptions`], [`ImportError`]), the
//!   constants and `invalid`, which the files listed after it use;
//! - `intrinsic.rs`: a CloudFormation function in its long form, recognized;
//! - `yaml.rs`: the YAML as long-form JSON; `text.rs`: values back as text, capped (short forms
//!   for warnings, environment values, seconds, megabytes);
//! - `budget.rs`: the depth, step and size limits that bound one import, whatever the file;
//! - `cfn.rs`: a template's resources and the intrinsic functions' evaluator, for both formats;
//! - `variables.rs`: a `serverless.yml`'s `${...}` variables;
//! - `tables.rs`: the DynamoDB tables ([`TableSpec`]) as `CreateTable` takes them;
//! - `assembly.rs`: what both formats build (functions, routes, authorizers) and the config it
//!   becomes;
//! - `sam.rs`, with `sam_routes.rs`, `sam_authorizer.rs`, `sam_function.rs` and
//!   `sam_invoked.rs` (which function a URI invokes): SAM / CloudFormation;
//! - `serverless.rs`, with `serverless_authorizer.rs`: the Serverless Framework;
//! - `test_support.rs`: the fixtures and helpers the tests beside each of them share.

mod assembly;
mod budget;
mod cfn;
mod intrinsic;
mod sam;
mod sam_authorizer;
mod sam_function;
mod sam_invoked;
mod sam_routes;
mod serverless;
mod serverless_authorizer;
mod tables;
#[cfg(test)]
mod test_support;
mod text;
mod types;
mod variables;
mod yaml;

use std::path::Path;

pub use self::types::{
    DEFAULT_REGION, DEFAULT_SELECTION_EXPRESSION, EnvLookup, ImportError, ImportOptions, Imported,
    LOCAL_ACCOUNT_ID, TableSpec,
};

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
    sam::import(yaml, base_dir, options)
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
    serverless::import(yaml, base_dir, options)
}
