//! Management bearer tokens (`management.tokens`), with their secrets read from the config or the
//! environment once per (re)load.

use wsgate_core::config::{Config, ConfigError, Operation};

/// A management token with its secret read from the config or the environment.
#[derive(Debug)]
pub struct ManagementToken {
    /// Its name, for logs and rate limits.
    pub name: String,
    /// The bearer token.
    pub secret: String,
    /// The operations it may call; `None`: all.
    pub operations: Option<Vec<Operation>>,
}

impl ManagementToken {
    /// Every `management.tokens` entry of `config`, its secret resolved; a `token_env` that is
    /// unset or shorter than 16 characters is an error naming the key.
    pub fn resolve_all(config: &Config) -> Result<Vec<Self>, ConfigError> {
        config
            .management
            .tokens
            .iter()
            .enumerate()
            .map(|(i, token)| {
                let secret = match (&token.token, &token.token_env) {
                    (Some(secret), _) => secret.clone(),
                    (None, Some(var)) => std::env::var(var)
                        .ok()
                        .filter(|v| v.len() >= 16)
                        .ok_or_else(|| ConfigError {
                            key: format!("management.tokens[{i}].token_env"),
                            message: format!(
                                "the environment variable {var} is not set or shorter than 16 characters"
                            ),
                        })?,
                    (None, None) => String::new(),
                };
                Ok(Self {
                    name: token.name.clone(),
                    secret,
                    operations: token.operations.clone(),
                })
            })
            .collect()
    }
}
