//! Integrations: what a route calls. One type, several kinds — `http` POSTs the Lambda-proxy event
//! to a URL, `mock` answers from the config — all returning a [`ProxyResult`].
//!
//! An integration does not know which socket it serves: the session hands it the event (or the
//! message, for mocks) and sends the answer back itself.

mod error;
mod function;
mod http;
mod inbound;
mod mock;

use wsgate_core::config::{Config, Integration as ConfigIntegration};

use crate::function::FunctionHost;
use wsgate_core::event::ContextVars;
use wsgate_core::proxy::ProxyResult;
use wsgate_core::route::SelectionExpression;

pub use self::error::IntegrationError;
pub use self::function::FunctionIntegration;
pub use self::http::HttpIntegration;
pub(crate) use self::http::error_chain;
pub use self::inbound::Inbound;
pub use self::mock::MockIntegration;

/// One route's integration.
#[derive(Debug)]
pub enum Integration {
    /// POST the event to a URL.
    Http(HttpIntegration),
    /// Invoke a local function.
    Function(FunctionIntegration),
    /// Answer from the config.
    Mock(MockIntegration),
}

impl Integration {
    /// Builds the integration of a configured route; `mock_body` is a mock's `body` as
    /// validation parsed it.
    pub fn from_config(
        route: &ConfigIntegration,
        mock_body: Option<SelectionExpression>,
        config: &Config,
        client: &reqwest::Client,
        functions: &FunctionHost,
    ) -> Result<Self, String> {
        let default_timeout = config.limits.integration_timeout;
        Ok(match route {
            ConfigIntegration::Http { url, timeout, .. } => Self::Http(HttpIntegration::new(
                url,
                timeout.unwrap_or(default_timeout),
                client.clone(),
            )?),
            ConfigIntegration::Mock { status, .. } => {
                Self::Mock(MockIntegration::new(*status, mock_body))
            }
            ConfigIntegration::Function { function, .. } => {
                let definition = config
                    .functions
                    .get(function)
                    .ok_or_else(|| format!("no [functions.{function}]"))?;
                let spec = functions.spec(function, definition, config)?;
                Self::Function(FunctionIntegration::new(functions.pool(spec)))
            }
        })
    }

    /// Accepts without a call: a `$connect` route that only has an authorizer.
    pub fn accept() -> Self {
        Self::Mock(MockIntegration::status_only(200))
    }

    /// True when the integration needs the event JSON (mocks do not, so it is not built).
    pub fn needs_event(&self) -> bool {
        matches!(self, Self::Http(_) | Self::Function(_))
    }

    /// True for a mock whose answer is the message itself: the session sends the message back
    /// without building an answer.
    pub fn echoes(&self) -> bool {
        matches!(self, Self::Mock(mock) if mock.echoes())
    }

    /// True when answering needs the invocation's ids and time (backends get them in the
    /// event; mocks only when their body reads `${context.*}`).
    pub fn needs_context(&self) -> bool {
        match self {
            Self::Http(_) | Self::Function(_) => true,
            Self::Mock(mock) => mock.uses_context(),
        }
    }

    /// Calls a backend with the event (a mock answers with no message and no context).
    pub async fn invoke(&self, event: Vec<u8>) -> Result<ProxyResult, IntegrationError> {
        match self {
            Self::Http(http) => http.call(event).await,
            Self::Function(function) => function.call(event).await,
            Self::Mock(mock) => Ok(mock.answer(None, &|_| None)),
        }
    }

    /// The answer of an integration that needs no waiting (a mock), from the message and the
    /// invocation's context; `None` for backends, which go through [`Integration::invoke`]. Mocks
    /// are answered in line, so they keep the order of a connection's messages.
    pub fn answer_now(
        &self,
        message: Option<&Inbound>,
        vars: &ContextVars<'_>,
    ) -> Option<ProxyResult> {
        match self {
            Self::Mock(mock) => Some(mock.answer(message, &|name| vars.get(name))),
            Self::Http(_) | Self::Function(_) => None,
        }
    }
}
