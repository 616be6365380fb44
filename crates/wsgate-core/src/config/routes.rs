//! `[routes.KEY]`: a route's integration (`http`, `function` or `mock`) and, on `$connect`, its
//! authorizer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::authorizers::Authorizer;
use super::error::{ConfigError, check_timeout, check_url, err};
use super::functions::Function;
use super::values::de_opt_duration;
use crate::route::{RouteKey, SelectionExpression};

/// One route: its integration and, on `$connect`, its authorizer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "RouteTable")]
pub struct Route {
    /// What the route calls. `None` on a `$connect` that only has an authorizer: the connection
    /// is accepted once the authorizer allows it.
    pub integration: Option<Integration>,
    /// The name of an `[authorizers.NAME]` table; only `$connect` may have one.
    pub authorizer: Option<String>,
}

impl From<Integration> for Route {
    fn from(integration: Integration) -> Self {
        Self {
            integration: Some(integration),
            authorizer: None,
        }
    }
}

/// A route's integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integration {
    /// POST the Lambda-proxy event to a URL.
    Http {
        /// The backend URL.
        url: String,
        /// Send the integration's `body` back to the sender.
        route_response: bool,
        /// Overrides `limits.integration_timeout` for this route.
        timeout: Option<Duration>,
    },
    /// Invoke a local function (see `[functions]`) through the Lambda Runtime API.
    Function {
        /// The name of a `[functions.NAME]` table.
        function: String,
        /// Send the function's `body` back to the sender.
        route_response: bool,
    },
    /// Answer without a backend.
    Mock {
        /// The status code; on `$connect`, 2xx accepts and anything else refuses. Default 200.
        status: u16,
        /// The body, a template: `${request.body}` is the whole message, `${request.body.a.b}`
        /// a value in it. Default none.
        body: Option<String>,
        /// Send `body` back to the sender.
        route_response: bool,
    },
}

/// `type` of a route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum IntegrationType {
    Http,
    Function,
    Mock,
}

/// A `[routes.KEY]` table as written: every key of every type, checked by [`Route::try_from`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteTable {
    #[serde(rename = "type")]
    kind: Option<IntegrationType>,
    url: Option<String>,
    function: Option<String>,
    status: Option<u16>,
    body: Option<String>,
    #[serde(default)]
    route_response: bool,
    #[serde(default, deserialize_with = "de_opt_duration")]
    timeout: Option<Duration>,
    authorizer: Option<String>,
}

impl TryFrom<RouteTable> for Route {
    type Error = String;

    fn try_from(t: RouteTable) -> Result<Self, String> {
        let only = |present: bool, key: &str, kind: &str| {
            if present {
                Err(format!("`{key}` only goes with type = \"{kind}\""))
            } else {
                Ok(())
            }
        };
        let integration = match t.kind {
            None => {
                for (present, key) in [
                    (t.url.is_some(), "url"),
                    (t.function.is_some(), "function"),
                    (t.status.is_some(), "status"),
                    (t.body.is_some(), "body"),
                    (t.route_response, "route_response"),
                    (t.timeout.is_some(), "timeout"),
                ] {
                    if present {
                        return Err(format!(
                            "`{key}` needs a `type` (\"http\", \"function\" or \"mock\")"
                        ));
                    }
                }
                if t.authorizer.is_none() {
                    return Err("missing `type` (\"http\", \"function\" or \"mock\")".to_owned());
                }
                None
            }
            Some(IntegrationType::Http) => {
                only(t.function.is_some(), "function", "function")?;
                only(t.status.is_some(), "status", "mock")?;
                only(t.body.is_some(), "body", "mock")?;
                Some(Integration::Http {
                    url: t.url.ok_or("type = \"http\" needs `url`")?,
                    route_response: t.route_response,
                    timeout: t.timeout,
                })
            }
            Some(IntegrationType::Function) => {
                only(t.url.is_some(), "url", "http")?;
                only(t.timeout.is_some(), "timeout", "http")?;
                only(t.status.is_some(), "status", "mock")?;
                only(t.body.is_some(), "body", "mock")?;
                Some(Integration::Function {
                    function: t.function.ok_or("type = \"function\" needs `function`")?,
                    route_response: t.route_response,
                })
            }
            Some(IntegrationType::Mock) => {
                only(t.url.is_some(), "url", "http")?;
                only(t.timeout.is_some(), "timeout", "http")?;
                only(t.function.is_some(), "function", "function")?;
                Some(Integration::Mock {
                    status: t.status.unwrap_or(200),
                    body: t.body,
                    route_response: t.route_response,
                })
            }
        };
        Ok(Self {
            integration,
            authorizer: t.authorizer,
        })
    }
}

impl Route {
    /// Whether the integration's answer goes back to the sender.
    pub fn route_response(&self) -> bool {
        match &self.integration {
            Some(
                Integration::Http { route_response, .. }
                | Integration::Function { route_response, .. }
                | Integration::Mock { route_response, .. },
            ) => *route_response,
            None => false,
        }
    }
}

fn route_key_path(key: &str) -> String {
    if key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        format!("routes.{key}")
    } else {
        format!("routes.\"{key}\"")
    }
}

/// Checks every `[routes.KEY]` (`authorizers` and `functions` for the names they refer to) and
/// returns the mock routes' `body` templates parsed, by route key. The error names the first bad
/// key.
pub(super) fn validate(
    routes: &BTreeMap<String, Route>,
    authorizers: &BTreeMap<String, Authorizer>,
    functions: &BTreeMap<String, Function>,
) -> Result<BTreeMap<String, SelectionExpression>, ConfigError> {
    let mut bodies = BTreeMap::new();
    for (key, route) in routes {
        if let Some(body) = route.validate(key, authorizers, functions)? {
            bodies.insert(key.clone(), body);
        }
    }
    Ok(bodies)
}

impl Route {
    /// Checks the route at `key` and returns its mock `body` parsed, if it has one.
    fn validate(
        &self,
        key: &str,
        authorizers: &BTreeMap<String, Authorizer>,
        functions: &BTreeMap<String, Function>,
    ) -> Result<Option<SelectionExpression>, ConfigError> {
        let path = route_key_path(key);
        if key.is_empty() {
            return Err(err("routes", "a route key must not be empty"));
        }
        if key.starts_with('$')
            && ![RouteKey::CONNECT, RouteKey::DISCONNECT, RouteKey::DEFAULT].contains(&key)
        {
            return Err(err(
                path,
                "keys starting with '$' are reserved: use $connect, $disconnect or $default",
            ));
        }
        if self.route_response() && (key == RouteKey::CONNECT || key == RouteKey::DISCONNECT) {
            return Err(err(
                format!("{path}.route_response"),
                format!("{key} cannot send a route response"),
            ));
        }
        if let Some(name) = &self.authorizer {
            if key != RouteKey::CONNECT {
                return Err(err(
                    format!("{path}.authorizer"),
                    "only $connect can have an authorizer, as on API Gateway",
                ));
            }
            if !authorizers.contains_key(name) {
                return Err(err(
                    format!("{path}.authorizer"),
                    format!("no [authorizers.{name}] is defined"),
                ));
            }
        }
        validate_integration(&path, key, self.integration.as_ref(), functions)
    }
}

/// Checks the integration of the route at `key` (`path` in error keys) and returns its mock
/// `body` parsed, if it has one.
fn validate_integration(
    path: &str,
    key: &str,
    integration: Option<&Integration>,
    functions: &BTreeMap<String, Function>,
) -> Result<Option<SelectionExpression>, ConfigError> {
    match integration {
        None if key != RouteKey::CONNECT => Err(err(
            format!("{path}.type"),
            "missing `type` (\"http\", \"function\" or \"mock\")",
        )),
        None => Ok(None),
        Some(Integration::Http { url, timeout, .. }) => {
            check_url(&format!("{path}.url"), url)?;
            check_timeout(&format!("{path}.timeout"), *timeout)?;
            Ok(None)
        }
        Some(Integration::Function { function, .. }) => {
            if functions.contains_key(function) {
                Ok(None)
            } else {
                Err(err(
                    format!("{path}.function"),
                    format!("no [functions.{function}] is defined"),
                ))
            }
        }
        Some(Integration::Mock { status, body, .. }) => {
            if !(100..600).contains(status) {
                return Err(err(format!("{path}.status"), "must be between 100 and 599"));
            }
            body.as_deref()
                .map(|body| {
                    SelectionExpression::parse_template(body)
                        .map_err(|e| err(format!("{path}.body"), e.to_string()))
                })
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn validation_returns_mock_templates_by_route_key() {
        let config = Config::from_toml(
            "[routes.\"$default\"]\ntype = \"mock\"\nbody = \"${request.body}\"\nroute_response = true\n\
             [routes.ping]\ntype = \"mock\"\nbody = \"pong\"\n\
             [routes.\"$connect\"]\ntype = \"mock\"\n\
             [routes.x]\ntype = \"http\"\nurl = \"http://a/\"\n",
        )
        .expect("parses");
        let bodies =
            validate(&config.routes, &config.authorizers, &config.functions).expect("valid");
        assert_eq!(bodies.keys().collect::<Vec<_>>(), ["$default", "ping"]);
        assert!(bodies["$default"].is_whole_body());
        assert!(bodies["ping"].is_literal());
    }
}
