//! Which function of a SAM / CloudFormation template an integration's or an authorizer's URI
//! invokes: `sam_routes.rs` and `sam_authorizer.rs` both need it.

use serde_json::Value;

use super::cfn::{Cfn, Res, lambda_name_in_arn, refs};

/// What an `IntegrationUri` or `AuthorizerUri` invokes.
pub(super) enum Invoked {
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
pub(super) fn invoked_function(
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
