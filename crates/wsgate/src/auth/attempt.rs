//! What every `$connect` authorizer is given ([`Attempt`]) and what it decides ([`Verdict`]).

use http::{HeaderMap, StatusCode};
use wsgate_core::authorizer::Allowed;
use wsgate_core::config::RequestSource;
use wsgate_core::event::{ConnectionContext, Invocation, UpgradeRequest};

/// What an authorizer reads from an upgrade request.
pub struct Attempt<'a> {
    /// The raw headers.
    pub headers: &'a HeaderMap,
    /// Query parameters in order.
    pub query: &'a [(String, String)],
    /// The connection being opened (its id is already assigned, as on API Gateway).
    pub ctx: &'a ConnectionContext,
    /// The request as events carry it, for the REQUEST authorizer's event.
    pub upgrade: &'a UpgradeRequest,
    /// The invocation's ids and time.
    pub invocation: &'a Invocation<'a>,
}

impl Attempt<'_> {
    /// The value of a source; `None` when missing or empty. Repeated headers are joined with
    /// commas; a repeated query parameter gives its last value, as in the event.
    pub fn source(&self, source: &RequestSource) -> Option<String> {
        let value = match source {
            RequestSource::Header(name) => {
                let values: Vec<&str> = self
                    .headers
                    .get_all(name.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                values.join(",")
            }
            RequestSource::Query(name) => self
                .query
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())?,
        };
        (!value.trim().is_empty()).then_some(value)
    }
}

/// What an authorizer decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let the connection in with this identity; `protocol` is the `Sec-WebSocket-Protocol` to
    /// answer when the token came in that header.
    Allow {
        /// `principalId` and the context.
        allowed: Allowed,
        /// The subprotocol to echo, if the authorizer chose one.
        protocol: Option<String>,
    },
    /// Refuse the upgrade with this status (401, 403 or 500).
    Refuse(StatusCode),
}
