//! What management operations read from a request: connection ids, group and user names, the
//! `except` list, a close's `code` and `reason`.

use http::request::Parts;
use wsgate_core::close::Close;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;
use wsgate_core::query;

/// A connection id from a path or a list; malformed ones are a 400, as API Gateway answers.
pub(super) fn connection_id(text: &str) -> Result<ConnectionId, MgmtError> {
    ConnectionId::parse(text)
        .map_err(|e| MgmtError::BadRequest(format!("Invalid connectionId: {}", e.0)))
}

/// A group or user name from a path (see `query::valid_name`).
pub(super) fn name(kind: &str, text: &str) -> Result<String, MgmtError> {
    if query::valid_name(text) {
        Ok(text.to_owned())
    } else {
        Err(MgmtError::BadRequest(format!(
            "Invalid {kind} name: {text} (1-128 characters of A-Z a-z 0-9 - _ . ~ @ : |)"
        )))
    }
}

/// The `except` query parameters: connections a send to many leaves out.
pub(super) fn except(parts: &Parts) -> Result<Vec<ConnectionId>, MgmtError> {
    query::pairs(parts.uri.query().unwrap_or_default())
        .into_iter()
        .filter(|(k, _)| k == "except")
        .map(|(_, v)| connection_id(&v))
        .collect()
}

/// The `code` and `reason` query parameters of a DELETE: the close they ask for (see
/// [`Close::asked`]); a bad one is a 400 and closes nothing.
pub(super) fn close(parts: &Parts) -> Result<Close, MgmtError> {
    let pairs = query::pairs(parts.uri.query().unwrap_or_default());
    let first = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    Close::asked(first("code"), first("reason"))
        .map_err(|e| MgmtError::BadRequest(format!("Invalid close: {e}")))
}
