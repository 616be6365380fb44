//! `[functions.NAME]`: local Lambda-style functions that `type = "function"` routes and REQUEST
//! authorizers invoke.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, check_timeout, err};
use super::values::de_opt_duration;

/// How a function's processes are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionRuntime {
    /// The built-in Python bootstrap (standard library only) running `handler` with `python3`.
    Python,
    /// The built-in Node.js bootstrap (no packages) running `handler` with `node`.
    Node,
    /// Any runtime interface client: `command` is run as is (e.g. `python3 -m awslambdaric app.handler`
    /// or a binary built on the `lambda_runtime` crate).
    Command,
}

/// `[functions.NAME]`: a handler run in local processes that speak the Lambda Runtime API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Function {
    /// `python`, `node` or `command`.
    pub runtime: FunctionRuntime,
    /// `module.function` as in Lambda (`app.handler`, `src/index.handler`); `_HANDLER` for
    /// `command`.
    #[serde(default)]
    pub handler: Option<String>,
    /// The code's folder (`LAMBDA_TASK_ROOT`), relative to the config file. Default `.`.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// Extra environment variables.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// How long one invocation may take, from when a process takes it (as on Lambda: waiting
    /// for a process is bounded apart); past it the process is killed and replaced.
    /// Default: `limits.integration_timeout`.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    /// Warm processes at most (each handles one invocation at a time). Default 2.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// With `runtime = "command"`: the program and its arguments.
    #[serde(default)]
    pub command: Vec<String>,
    /// With `python` / `node`: the interpreter to run. Default `python3` / `node`.
    #[serde(default)]
    pub interpreter: Option<String>,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB. Default 128.
    #[serde(default = "default_memory")]
    pub memory_size: u32,
}

fn default_dir() -> PathBuf {
    PathBuf::from(".")
}

fn default_concurrency() -> usize {
    2
}

fn default_memory() -> u32 {
    128
}

/// Checks every `[functions.NAME]`; the error names the first bad key.
pub(super) fn validate(functions: &BTreeMap<String, Function>) -> Result<(), ConfigError> {
    for (name, function) in functions {
        function.validate(&format!("functions.{name}"))?;
    }
    Ok(())
}

impl Function {
    /// Checks one function, `path` being its `functions.NAME`.
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if self.max_concurrency == 0 {
            return Err(err(format!("{path}.max_concurrency"), "must be at least 1"));
        }
        check_timeout(&format!("{path}.timeout"), self.timeout)?;
        match self.runtime {
            FunctionRuntime::Python | FunctionRuntime::Node => {
                let handler = self.handler.as_deref().unwrap_or_default();
                let valid = handler
                    .rsplit_once('.')
                    .is_some_and(|(module, func)| !module.is_empty() && !func.is_empty());
                if !valid {
                    return Err(err(
                        format!("{path}.handler"),
                        "must be module.function, e.g. \"app.handler\"",
                    ));
                }
                if !self.command.is_empty() {
                    return Err(err(
                        format!("{path}.command"),
                        "only with runtime = \"command\"",
                    ));
                }
            }
            FunctionRuntime::Command => {
                if self.command.is_empty() {
                    return Err(err(
                        format!("{path}.command"),
                        "runtime = \"command\" needs the program to run, e.g. [\"python3\", \"-m\", \"awslambdaric\", \"app.handler\"]",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn functions_parse_and_validate() {
        let text = r#"
[functions.chat]
runtime = "python"
handler = "app.handler"
dir = "handlers"
environment = { TABLE_NAME = "chat" }
timeout = "29s"
max_concurrency = 4

[functions.ric]
runtime = "command"
command = ["python3", "-m", "awslambdaric", "app.handler"]

[routes.sendmessage]
type = "function"
function = "chat"
route_response = true
"#;
        let config = Config::from_toml(text).expect("parses");
        config.validate().expect("valid");
        assert_eq!(config.functions["chat"].max_concurrency, 4);
        assert_eq!(config.functions["chat"].environment["TABLE_NAME"], "chat");
        assert_eq!(config.functions["ric"].runtime, FunctionRuntime::Command);
        let cases = [
            (
                "[routes.x]\ntype = \"function\"\nfunction = \"nope\"",
                "routes.x.function",
            ),
            (
                "[functions.f]\nruntime = \"python\"\nhandler = \"app\"",
                "functions.f.handler",
            ),
            (
                "[functions.f]\nruntime = \"command\"",
                "functions.f.command",
            ),
            (
                "[functions.f]\nruntime = \"node\"\nhandler = \"a.b\"\nmax_concurrency = 0",
                "functions.f.max_concurrency",
            ),
        ];
        for (text, key) in cases {
            let e = Config::from_toml(text)
                .and_then(|c| c.validate())
                .expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }
}
