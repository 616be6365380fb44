//! Local functions: the user's real Lambda handlers, run in warm child processes that speak the
//! AWS Lambda Runtime API, which this module serves.
//!
//! Each function has a [`Pool`] of at most `max_concurrency` processes, started lazily when an
//! invocation finds no idle one, reused while warm, replaced when they crash, time out, or their
//! code changes. Every process gets a Runtime API listener of its own on 127.0.0.1
//! (`AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT`, host and port only, as every runtime interface client
//! expects), so the gateway always knows which process runs which invocation — and which one to
//! kill when an invocation times out. Only that process and its descendants may use it (on
//! Linux, checked per TCP connection: see `peer`), with its own address as `Host`, and one
//! `/next` at a time.

mod error;
mod peer;
mod pool;
mod report;
mod runtime_api;
pub mod sdks;
mod spec;
mod transcript;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tempfile::TempDir;
use wsgate_core::config::{Config, Function, FunctionRuntime};

use crate::scratch;

pub use self::error::FunctionError;
pub use self::pool::Pool;
pub use self::spec::Spec;

/// The built-in Python bootstrap (standard library only).
const PYTHON_BOOTSTRAP: &str = include_str!("bootstrap/python.py");
/// The built-in Node.js bootstrap (no packages).
const NODE_BOOTSTRAP: &str = include_str!("bootstrap/node.cjs");
/// The Node.js module hooks that resolve `--provide-sdks` packages from ES modules.
const NODE_SDK_HOOKS: &str = include_str!("bootstrap/node-sdk-resolve.mjs");
/// What sends an API's default host name to wsgate (`wsgate dev`), for Node.js processes
/// (required by the bootstrap, preloaded by `NODE_OPTIONS`) and Python ones (`sitecustomize`,
/// found through `PYTHONPATH`).
const NODE_EXECUTE_API: &str = include_str!("bootstrap/execute-api.cjs");
const PYTHON_EXECUTE_API: &str = include_str!("bootstrap/sitecustomize.py");
/// The variable that turns it on: `host:port` of the gateway's TLS listener.
pub const EXECUTE_API_ENV: &str = "WSGATE_EXECUTE_API";

/// The access key id, secret and session token a handler gets when the host has none: without
/// any, SDKs wait on the instance metadata service. `wsgate dev` signs its own DynamoDB calls
/// with it too, so that a local DynamoDB keeping a database per key shows the handlers its tables.
pub const PLACEHOLDER_CREDENTIAL: &str = "wsgate-local";

/// What every function is told about the gateway.
#[derive(Debug, Clone)]
pub struct HostSettings {
    /// `AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI`: where handlers' SDK clients reach `@connections`.
    pub management_endpoint: String,
    /// `AWS_REGION` for the handlers.
    pub region: String,
    /// Environment every process gets before the function's own (CA bundles, …).
    pub extra_env: Vec<(String, String)>,
    /// Watch handler code and restart processes when it changes.
    pub watch: bool,
    /// Where pools count invocations, cold starts and errors.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// All function pools of a gateway; pools survive config reloads when their function is unchanged.
#[derive(Debug)]
pub struct FunctionHost {
    settings: HostSettings,
    /// The built-in bootstraps' private folder, removed with the host.
    bootstraps: TempDir,
    pools: Mutex<HashMap<String, Arc<Pool>>>,
}

/// Why a function cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The built-in bootstraps cannot be written.
    #[error("cannot write the built-in bootstraps to {path}: {source}")]
    Bootstrap {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl FunctionHost {
    /// A host whose built-in bootstraps are written into a new private folder under the system's
    /// temporary directory (see [`crate::scratch`]), removed when the host is dropped.
    pub fn new(settings: HostSettings) -> Result<Self, HostError> {
        // One folder per host: several gateways may live in one process (tests).
        let bootstraps =
            scratch::private_dir("wsgate-bootstrap-").map_err(|source| HostError::Bootstrap {
                path: std::env::temp_dir(),
                source,
            })?;
        for (file, text) in [
            ("python.py", PYTHON_BOOTSTRAP),
            ("node.cjs", NODE_BOOTSTRAP),
            ("node-sdk-resolve.mjs", NODE_SDK_HOOKS),
            ("execute-api.cjs", NODE_EXECUTE_API),
            ("python-site/sitecustomize.py", PYTHON_EXECUTE_API),
        ] {
            let path = bootstraps.path().join(file);
            if let Some(folder) = path.parent().filter(|p| !p.exists()) {
                std::fs::create_dir(folder).map_err(|source| HostError::Bootstrap {
                    path: folder.to_path_buf(),
                    source,
                })?;
            }
            scratch::write_new(&path, text.as_bytes())
                .map_err(|source| HostError::Bootstrap { path, source })?;
        }
        Ok(Self {
            settings,
            bootstraps,
            pools: Mutex::new(HashMap::new()),
        })
    }

    /// The command line of `function`'s processes: the interpreter and its built-in bootstrap, or
    /// the function's own `command`. A program given as a relative path (`.venv/bin/python`,
    /// `./bootstrap`) is found from the config file's folder, as `dir` is; a bare name
    /// (`python3`) on the `PATH`.
    fn command(&self, function: &Function, config: &Config) -> Vec<String> {
        let bootstrap = |file: &str| self.bootstraps.path().join(file).display().to_string();
        let interpreter = |default: &str| {
            let program = function.interpreter.as_deref().unwrap_or(default);
            program_path(program, config)
        };
        match function.runtime {
            FunctionRuntime::Python => {
                vec![interpreter("python3"), "-u".into(), bootstrap("python.py")]
            }
            FunctionRuntime::Node => vec![interpreter("node"), bootstrap("node.cjs")],
            FunctionRuntime::Command => {
                let mut command = function.command.clone();
                if let Some(program) = command.first_mut() {
                    *program = program_path(program, config);
                }
                command
            }
        }
    }

    /// How to run `function` of `config`; an error when its directory does not exist (the
    /// processes would fail at every invocation).
    pub fn spec(&self, name: &str, function: &Function, config: &Config) -> Result<Spec, String> {
        let dir = config.function_dir(function);
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        if !dir.is_dir() {
            return Err(format!(
                "the function {name}'s directory {} does not exist",
                dir.display()
            ));
        }
        let handler = function.handler.clone().unwrap_or_default();
        let command = self.command(function, config);
        let execution_env = match function.runtime {
            FunctionRuntime::Python => "AWS_Lambda_python3",
            FunctionRuntime::Node => "AWS_Lambda_nodejs20.x",
            FunctionRuntime::Command => "AWS_Lambda_provided.al2023",
        };
        let region = &self.settings.region;
        let arn = format!("arn:aws:lambda:{region}:000000000000:function:{name}");
        let from_host =
            |key: &str, fallback: &str| std::env::var(key).unwrap_or_else(|_| fallback.to_owned());
        let mut env: Vec<(String, String)> = vec![
            ("_HANDLER".into(), handler),
            ("LAMBDA_TASK_ROOT".into(), dir.display().to_string()),
            (
                "LAMBDA_RUNTIME_DIR".into(),
                self.bootstraps.path().display().to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
                function.memory_size.to_string(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME".into(),
                format!("/aws/lambda/{name}"),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
            ("AWS_EXECUTION_ENV".into(), execution_env.into()),
            ("AWS_REGION".into(), region.clone()),
            ("AWS_DEFAULT_REGION".into(), region.clone()),
            // The host's credentials when it has some (a handler may talk to real services),
            // placeholders otherwise.
            (
                "AWS_ACCESS_KEY_ID".into(),
                from_host("AWS_ACCESS_KEY_ID", PLACEHOLDER_CREDENTIAL),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                from_host("AWS_SECRET_ACCESS_KEY", PLACEHOLDER_CREDENTIAL),
            ),
            (
                "AWS_SESSION_TOKEN".into(),
                from_host("AWS_SESSION_TOKEN", PLACEHOLDER_CREDENTIAL),
            ),
            (
                "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI".into(),
                self.settings.management_endpoint.clone(),
            ),
            ("TZ".into(), ":UTC".into()),
        ];
        env.extend(self.settings.extra_env.iter().cloned());
        env.extend(self.preloads(function.runtime));
        env.extend(
            function
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        Ok(Spec {
            name: name.to_owned(),
            command,
            dir,
            env,
            timeout: function
                .timeout
                .unwrap_or(config.limits.integration_timeout),
            memory_size: function.memory_size,
            max_concurrency: function.max_concurrency,
            arn,
            watch: self.settings.watch,
        })
    }

    /// Under `wsgate dev`, what loads the execute-api redirect into every Node.js and Python
    /// process of a function, the processes its handler starts included: `NODE_OPTIONS` and
    /// `PYTHONPATH`, after what wsgate's own environment has in them. (The built-in bootstraps
    /// load it themselves too, should the function's environment replace these.)
    fn preloads(&self, runtime: FunctionRuntime) -> Vec<(String, String)> {
        let on = self
            .settings
            .extra_env
            .iter()
            .any(|(k, _)| k == EXECUTE_API_ENV);
        if !on {
            return Vec::new();
        }
        let dir = self.bootstraps.path();
        let joined = |key: &str, ours: String, separator: &str| {
            let theirs = std::env::var(key).unwrap_or_default();
            let value = if theirs.is_empty() {
                ours
            } else {
                format!("{ours}{separator}{theirs}")
            };
            (key.to_owned(), value)
        };
        let node = joined(
            "NODE_OPTIONS",
            format!("--require {:?}", dir.join("execute-api.cjs")),
            " ",
        );
        let python = joined(
            "PYTHONPATH",
            dir.join("python-site").display().to_string(),
            ":",
        );
        match runtime {
            FunctionRuntime::Node => vec![node],
            FunctionRuntime::Python => vec![python],
            FunctionRuntime::Command => vec![node, python],
        }
    }

    /// The pool for a function: the existing one when its spec is unchanged, else a new one (the
    /// old one's processes are stopped).
    pub fn pool(&self, spec: Spec) -> Arc<Pool> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = pools.get(&spec.name) {
            if *pool.spec() == spec {
                return pool.clone();
            }
            pool.stop();
        }
        let meter = self.settings.metrics.function(&spec.name);
        let pool = Pool::start(spec.clone(), meter);
        pools.insert(spec.name, pool.clone());
        pool
    }

    /// Stops the pools of functions a reloaded config no longer has.
    pub fn retain(&self, names: &[&str]) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|name, pool| {
            let keep = names.contains(&name.as_str());
            if !keep {
                pool.stop();
            }
            keep
        });
    }

    /// Stops every process.
    pub fn stop_all(&self) {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        for pool in pools.values() {
            pool.stop();
        }
    }
}

/// `program` as the OS will find it: a path with a folder in it as [`Config::path`] resolves the
/// config's paths (made absolute: the process runs in the function's `dir`), a bare name as
/// written (it is looked up on the `PATH`).
fn program_path(program: &str, config: &Config) -> String {
    let path = Path::new(program);
    if path.components().count() > 1 {
        let path = config.path(path);
        if path.is_relative() {
            return std::path::absolute(&path)
                .unwrap_or(path)
                .display()
                .to_string();
        }
        path.display().to_string()
    } else {
        program.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn host() -> FunctionHost {
        FunctionHost::new(HostSettings {
            management_endpoint: "http://127.0.0.1:1".into(),
            region: "us-east-1".into(),
            extra_env: Vec::new(),
            watch: false,
            metrics: Arc::default(),
        })
        .expect("host")
    }

    #[test]
    fn bootstraps_go_to_a_new_private_folder_removed_with_the_host() {
        let (a, b) = (host(), host());
        assert_ne!(a.bootstraps.path(), b.bootstraps.path());
        let meta = std::fs::symlink_metadata(a.bootstraps.path()).expect("metadata");
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
        let python = a.bootstraps.path().join("python.py");
        assert_eq!(
            std::fs::read_to_string(&python).expect("python"),
            PYTHON_BOOTSTRAP
        );
        let dir = a.bootstraps.path().to_path_buf();
        drop(a);
        assert!(!dir.exists());
    }

    #[test]
    fn a_relative_program_path_is_found_from_the_config_files_folder_a_bare_name_on_the_path() {
        let config = Config {
            base_dir: "/srv/app".into(),
            ..Config::default()
        };
        assert_eq!(
            program_path(".venv/bin/python", &config),
            "/srv/app/.venv/bin/python"
        );
        assert_eq!(program_path("./bootstrap", &config), "/srv/app/./bootstrap");
        assert_eq!(program_path("python3", &config), "python3");
        assert_eq!(program_path("/usr/bin/node", &config), "/usr/bin/node");
    }
}
