//! A SAM template's routes: each `AWS::ApiGatewayV2::Route` of the imported API with its
//! `AWS_PROXY` integration, the function this invokes, its route response and its authorizer,
//! as a [`PendingRoute`]. A route that cannot run here is skipped with a warning; one that names
//! what the template does not define is an error, as it would be on deploying.

use std::collections::BTreeSet;

use serde_json::Value;

use super::assembly::{PendingRoute, check_route_response};
use super::cfn::{Cfn, Res, V2_INTEGRATION, V2_ROUTE, V2_ROUTE_RESPONSE, refs};
use super::sam_authorizer::sam_route_authorizer;
use super::sam_invoked::{Invoked, invoked_function};
use super::text::short_form;
use super::types::ImportError;
use crate::route::RouteKey;

/// The routes of the imported API `api`, whose resources are `ours`; the resources they use are
/// marked used.
pub(super) fn routes<'a>(
    cfn: &Cfn<'a>,
    all: &[Res<'a>],
    ours: &[Res<'a>],
    api: &str,
    used: &mut BTreeSet<&'a str>,
    warnings: &mut Vec<String>,
) -> Result<Vec<PendingRoute>, ImportError> {
    let with_route_response = route_responses(cfn, ours, warnings);
    let mut pending: Vec<PendingRoute> = Vec::new();
    let mut any_route = false;
    for route in ours.iter().filter(|r| r.kind == V2_ROUTE) {
        any_route = true;
        let Some(route) = sam_route(
            cfn,
            all,
            route,
            &pending,
            &with_route_response,
            used,
            warnings,
        )?
        else {
            continue;
        };
        pending.push(route);
    }
    if !any_route {
        return Err(ImportError::NoWebSocketRoutes(format!(
            "API {api} has no {V2_ROUTE}"
        )));
    }
    Ok(pending)
}

/// The logical ids of the routes that have a `$default` `AWS::ApiGatewayV2::RouteResponse`.
fn route_responses(
    cfn: &Cfn<'_>,
    ours: &[Res<'_>],
    warnings: &mut Vec<String>,
) -> BTreeSet<String> {
    let mut with_route_response = BTreeSet::new();
    for rr in ours.iter().filter(|r| r.kind == V2_ROUTE_RESPONSE) {
        let context = format!("route response {}", rr.id);
        let key = rr
            .prop("RouteResponseKey")
            .and_then(|k| cfn.text(k, &context, warnings))
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
    with_route_response
}

/// One `AWS::ApiGatewayV2::Route` as a route, or `None` when it cannot run here (with a
/// warning); `pending` are the routes found before it.
fn sam_route<'a>(
    cfn: &Cfn<'a>,
    all: &[Res<'a>],
    route: &Res<'a>,
    pending: &[PendingRoute],
    with_route_response: &BTreeSet<String>,
    used: &mut BTreeSet<&'a str>,
    warnings: &mut Vec<String>,
) -> Result<Option<PendingRoute>, ImportError> {
    let Some(key) = route
        .prop("RouteKey")
        .and_then(|k| cfn.text(k, &format!("route resource {}", route.id), warnings))
    else {
        warnings.push(format!("route resource {}: no RouteKey; skipped", route.id));
        return Ok(None);
    };
    let context = format!("route {key}");
    if let Some(first) = pending.iter().find(|p| p.key == key) {
        return Err(ImportError::DuplicateRoute {
            route: key,
            first: first.declared_by.clone(),
            second: route.id.to_owned(),
        });
    }
    route.warn_condition(&context, warnings);
    let authorizer = sam_route_authorizer(cfn, all, route, &key, used, warnings)?;
    warn_unchecked_requests(route, &context, warnings);
    let Some(integration) = target_integration(cfn, route, &key, warnings)? else {
        return Ok(None);
    };
    used.insert(integration.id);
    let Some(function) = integration_function(cfn, all, &integration, &key, warnings)? else {
        return Ok(None);
    };
    let route_response = route_response(
        cfn,
        route,
        &context,
        with_route_response.contains(route.id),
        warnings,
    );
    let route_response = check_route_response(&key, route_response, warnings);
    Ok(Some(PendingRoute {
        key,
        declared_by: route.id.to_owned(),
        function,
        route_response,
        authorizer,
    }))
}

/// What a route would check requests against that the gateway does not: API keys and models.
fn warn_unchecked_requests(route: &Res<'_>, context: &str, warnings: &mut Vec<String>) {
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
}

/// The `AWS::ApiGatewayV2::Integration` a route's `Target` names, or `None` (with a warning)
/// when it names none of the template; an error when it names a logical id the template does
/// not define.
fn target_integration<'a>(
    cfn: &Cfn<'a>,
    route: &Res<'a>,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<Res<'a>>, ImportError> {
    let context = format!("route {key}");
    let Some(target) = route.prop("Target") else {
        warnings.push(format!("{context}: no Target (integration); skipped"));
        return Ok(None);
    };
    let mut ids = Vec::new();
    refs(target, &mut ids);
    let integration = ids
        .iter()
        .find_map(|id| cfn.res(id).filter(|r| r.kind == V2_INTEGRATION));
    if integration.is_none() {
        if let Some(missing) = ids
            .iter()
            .find(|id| cfn.res(id).is_none() && !cfn.is_parameter(id))
        {
            return Err(ImportError::MissingIntegration {
                route: key.to_owned(),
                integration: missing.clone(),
            });
        }
        warnings.push(format!(
            "{context}: Target {} names no integration of this template; skipped",
            short_form(target)
        ));
    }
    Ok(integration)
}

/// The function a route's integration invokes, or `None` (with a warning) when it is not a
/// Lambda proxy integration or its `IntegrationUri` names no function the gateway can tell; an
/// error when that function is not in the template.
fn integration_function(
    cfn: &Cfn<'_>,
    all: &[Res<'_>],
    integration: &Res<'_>,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, ImportError> {
    let context = format!("route {key}");
    let integration_context = format!("{context}: integration {}", integration.id);
    integration.warn_condition(&context, warnings);
    let kind = integration
        .prop("IntegrationType")
        .and_then(|t| cfn.text(t, &integration_context, warnings))
        .map_or_else(|| "(none)".to_owned(), |t| t.to_ascii_uppercase());
    if kind != "AWS_PROXY" {
        warnings.push(format!(
            "{integration_context}: IntegrationType {kind} is not supported (only AWS_PROXY, the Lambda proxy integration, is); skipped"
        ));
        return Ok(None);
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
        return Ok(None);
    };
    match invoked_function(cfn, all, uri, &integration_context, warnings) {
        Invoked::Function(function) => Ok(Some(function)),
        Invoked::Undefined(function) | Invoked::Outside(function) => {
            Err(ImportError::MissingFunction {
                route: key.to_owned(),
                function,
            })
        }
        Invoked::Unknown => {
            warnings.push(format!(
                "{integration_context}: cannot tell which function IntegrationUri {} invokes; skipped",
                short_form(uri)
            ));
            Ok(None)
        }
    }
}

/// Whether a route sends a route response: both the expression and a `$default` RouteResponse
/// (`has_response`) are needed; either alone is a warning.
fn route_response(
    cfn: &Cfn<'_>,
    route: &Res<'_>,
    context: &str,
    has_response: bool,
    warnings: &mut Vec<String>,
) -> bool {
    let expression = route
        .prop("RouteResponseSelectionExpression")
        .and_then(|e| cfn.text(e, context, warnings));
    match (expression.as_deref(), has_response) {
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
    }
}

#[cfg(test)]
mod tests {
    use crate::import::from_sam;
    use crate::import::test_support::{base, function_route, sam, sam_function, sam_route};

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
        assert_eq!(
            config.functions["Fn"].timeout,
            Some(std::time::Duration::from_secs(3))
        );
        assert_eq!(
            imported.warnings,
            [
                "route $connect: authorizer ConnectRouteAuth: no AuthorizerUri; connections are accepted without it",
                "route $connect: a route response cannot be sent on $connect; ignored",
                "route echo: RouteResponseSelectionExpression is $default but no AWS::ApiGatewayV2::RouteResponse with RouteResponseKey $default exists; no route response is sent",
                "route note: it has a $default RouteResponse but no RouteResponseSelectionExpression: $default; no route response is sent",
                "route mock: integration MockInteg: IntegrationType MOCK is not supported (only AWS_PROXY, the Lambda proxy integration, is); skipped",
                "function Fn: !Ref Nothing left unresolved (no parameter or resource is named Nothing)",
                "function Fn: Timeout !Ref Nothing is not a number of seconds; 3 is used",
            ]
        );
    }
}
