//! wsgate's pure core: identifiers, events, route selection, proxy results, error shapes, SigV4
//! header parsing and the configuration model. Nothing here does I/O, so all of it is tested with
//! plain unit tests against AWS fixtures.
//!
//! # Layout
//! - [`id`]: connection, request and message ids in API Gateway's 16-character form.
//! - [`clock`]: epoch milliseconds, CLF and ISO-8601 formats.
//! - [`close`]: the close codes and reasons a caller may ask for.
//! - [`route`]: selection expressions and picking a route for a message.
//! - [`event`]: the CONNECT / MESSAGE / DISCONNECT events and the error frames.
//! - [`proxy`]: reading an integration's answer as a Lambda proxy result, with wsgate's
//!   `"wsgate"` directives.
//! - [`query`]: query strings, group and user names.
//! - [`error`]: the management API's errors and their AWS shapes.
//! - [`sigv4`]: parsing SigV4 headers and `X-Amz-Date` (the gateway checks the signatures).
//! - [`config`]: the TOML model, its defaults and validation.
//! - [`import`]: a `serverless.yml` or SAM / CloudFormation template as a [`config::Config`] (a
//!   folder: YAML reading, the CloudFormation evaluator, serverless variables, one file or more
//!   per format; its own `# Layout` lists them).

pub mod authorizer;
pub mod clock;
pub mod close;
pub mod config;
pub mod error;
pub mod event;
pub mod forwarded;
pub mod id;
pub mod import;
pub mod proxy;
pub mod query;
pub mod route;
pub mod sigv4;
