//! Fixtures and helpers the importers' tests share: the example projects, a SAM template built
//! around a few resources, and lookups into an imported config.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{Authorizer, Config, Integration, RequestAuthorizer};

use super::types::Imported;

pub(super) const SAM_CHAT: &str =
    include_str!("../../tests/fixtures/import/simple-websockets-chat-app.yaml");
pub(super) const SERVERLESS_CHAT: &str =
    include_str!("../../tests/fixtures/import/serverless-chat.yml");
pub(super) const SERVERLESS_AUTHORIZER: &str =
    include_str!("../../tests/fixtures/import/serverless-authorizer.yml");
pub(super) const SAM_AUTHORIZER: &str =
    include_str!("../../tests/fixtures/import/sam-authorizer.yaml");

pub(super) fn base() -> &'static Path {
    Path::new("/projects/chat")
}

pub(super) fn function_route(config: &Config, key: &str) -> (String, bool) {
    match config.routes.get(key).and_then(|r| r.integration.as_ref()) {
        Some(Integration::Function {
            function,
            route_response,
        }) => (function.clone(), *route_response),
        other => panic!("route {key}: {other:?}"),
    }
}

pub(super) fn request_authorizer<'c>(config: &'c Config, name: &str) -> &'c RequestAuthorizer {
    match config.authorizers.get(name) {
        Some(Authorizer::Request(authorizer)) => authorizer,
        other => panic!("authorizer {name}: {other:?}"),
    }
}

pub(super) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A SAM template around one route's resources.
pub(super) fn sam(resources: &str) -> String {
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
pub(super) fn sam_route(name: &str, key: &str, function: &str) -> String {
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

pub(super) fn sam_function(name: &str, runtime: &str, extra: &str) -> String {
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

/// Asserts that some warning of `imported` matches, listing them all when none does.
#[track_caller]
pub(super) fn assert_warned(imported: &Imported, matches: impl Fn(&str) -> bool) {
    assert!(
        imported.warnings.iter().any(|w| matches(w)),
        "{:?}",
        imported.warnings
    );
}
