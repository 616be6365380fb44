//! [`ConfigError`], which names the key at fault, and the checks more than one section makes.

use std::time::Duration;

use super::values::MAX_DURATION;

/// A configuration error, naming the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The dotted path of the bad key, e.g. `routes.sendmessage.url`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

pub(super) fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

pub(super) fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
        return Err(err(
            key,
            format!("{url:?} is not an http:// or https:// URL"),
        ));
    }
    Ok(())
}

pub(super) fn check_timeout(key: &str, timeout: Option<Duration>) -> Result<(), ConfigError> {
    if timeout.is_some_and(|t| t < Duration::from_millis(50) || t > MAX_DURATION) {
        return Err(err(key, "must be between 50ms and a year"));
    }
    Ok(())
}
