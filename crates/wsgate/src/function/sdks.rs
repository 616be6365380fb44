//! `wsgate dev --provide-sdks`: the AWS SDKs Lambda's runtimes give every handler without it
//! being installed — the AWS SDK for JavaScript v3 on Node.js, boto3 on Python — installed once
//! into wsgate's cache (with npm and pip) and made resolvable for the handler processes.
//!
//! Node.js: the `@aws-sdk/*` and `@smithy/*` packages the functions' code names, unless the
//! function's own `node_modules` has them, go to `{cache}/sdks/node` (`npm install --prefix`);
//! CommonJS finds them through `NODE_PATH`, ES modules through the bootstrap's resolve hook
//! (`WSGATE_NODE_SDKS`). Python: `boto3`, unless the function's interpreter imports it already,
//! goes to `{cache}/sdks/python` (`pip install --target`), which the bootstrap puts last on
//! `sys.path` (`WSGATE_PYTHON_SDKS`). What the project installs itself always wins.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use wsgate_core::config::{Config, FunctionRuntime};

/// How many files of a function's folder are read for package names; how large one may be.
const MAX_FILES: usize = 5_000;
const MAX_FILE_BYTES: u64 = 2 << 20;
/// Source files whose imports are looked at.
const NODE_SOURCES: &[&str] = &["js", "mjs", "cjs", "ts", "mts", "cts"];

/// wsgate's cache: `WSGATE_CACHE_DIR`, else `$XDG_CACHE_HOME/wsgate`, else `~/.cache/wsgate`.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |key: &str| {
        std::env::var_os(key)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("WSGATE_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|dir| dir.join("wsgate")))
        .or_else(|| var("HOME").map(|home| home.join(".cache").join("wsgate")))
}

/// Installs what `config`'s functions need and is missing, and returns the environment that
/// makes the installed SDKs resolvable. A failed install is logged; the handlers then say what
/// is missing when they import it.
pub fn provide(config: &Config, cache: &Path) -> Vec<(String, String)> {
    let sdks = cache.join("sdks");
    let node = sdks.join("node");
    let python = sdks.join("python");
    // Two `wsgate dev` starting at once install one after the other.
    let _lock = std::fs::create_dir_all(&sdks)
        .and_then(|()| std::fs::File::create(sdks.join(".lock")))
        .and_then(|file| file.lock().map(|()| file))
        .map_err(|error| tracing::warn!(%error, dir = %sdks.display(), "--provide-sdks: cannot lock the cache"))
        .ok();
    let mut packages = BTreeSet::new();
    let mut interpreters = BTreeSet::new();
    for function in config.functions.values() {
        let dir = config.function_dir(function);
        match function.runtime {
            FunctionRuntime::Node => packages.extend(
                sdk_imports(&dir)
                    .into_iter()
                    .filter(|package| !resolvable(&dir, package)),
            ),
            FunctionRuntime::Python => {
                let program = function.interpreter.as_deref().unwrap_or("python3");
                interpreters.insert(super::program_path(program, config));
            }
            FunctionRuntime::Command => {}
        }
    }
    let missing: Vec<String> = packages
        .into_iter()
        .filter(|package| !installed(&node, package))
        .collect();
    if !missing.is_empty() {
        install_node(&node, &missing);
    }
    let lacking = interpreters.iter().find(|python| !imports_boto3(python));
    if let Some(interpreter) = lacking
        && !python.join("boto3").is_dir()
    {
        install_python(interpreter, &python);
    }
    let mut node_path = node.join("node_modules").display().to_string();
    if let Some(existing) = std::env::var_os("NODE_PATH").filter(|v| !v.is_empty()) {
        node_path = format!("{}:{node_path}", existing.to_string_lossy());
    }
    vec![
        ("WSGATE_NODE_SDKS".into(), node.display().to_string()),
        ("NODE_PATH".into(), node_path),
        ("WSGATE_PYTHON_SDKS".into(), python.display().to_string()),
    ]
}

/// The `@aws-sdk/*` and `@smithy/*` packages named in quotes in the Node.js sources under `dir`
/// (`node_modules` and hidden folders left out).
fn sdk_imports(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if name != "node_modules" && !name.starts_with('.') {
                    pending.push(path);
                }
                continue;
            }
            let source = path
                .extension()
                .is_some_and(|ext| NODE_SOURCES.iter().any(|s| ext == *s));
            let small = entry.metadata().is_ok_and(|m| m.len() <= MAX_FILE_BYTES);
            if !kind.is_file() || !source || !small {
                continue;
            }
            files += 1;
            if files > MAX_FILES {
                return found;
            }
            if let Ok(text) = std::fs::read_to_string(&path) {
                found.extend(package_names(&text));
            }
        }
    }
    found
}

/// `@aws-sdk/x` and `@smithy/x` right after a quote (`'`, `"` or a backtick), with a subpath
/// (`@aws-sdk/x/y`) cut off.
fn package_names(text: &str) -> impl Iterator<Item = String> + '_ {
    text.match_indices(['\'', '"', '`']).filter_map(|(at, _)| {
        let rest = &text[at + 1..];
        let scope = ["@aws-sdk/", "@smithy/"]
            .into_iter()
            .find(|scope| rest.starts_with(scope))?;
        let name: String = rest[scope.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        (!name.is_empty()).then(|| format!("{scope}{name}"))
    })
}

/// Whether `package` is in a `node_modules` of `dir` or of a folder above it.
fn resolvable(dir: &Path, package: &str) -> bool {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors()
        .any(|folder| installed_in(&folder.join("node_modules"), package))
}

fn installed(prefix: &Path, package: &str) -> bool {
    installed_in(&prefix.join("node_modules"), package)
}

fn installed_in(modules: &Path, package: &str) -> bool {
    modules.join(package).join("package.json").is_file()
}

fn install_node(prefix: &Path, packages: &[String]) {
    tracing::info!(
        packages = packages.join(" "),
        into = %prefix.display(),
        "--provide-sdks: installing the AWS SDK packages the functions import (once)"
    );
    if let Err(error) = std::fs::create_dir_all(prefix) {
        tracing::error!(%error, dir = %prefix.display(), "--provide-sdks: cannot make the folder");
        return;
    }
    let mut npm = Command::new("npm");
    npm.arg("install")
        .arg("--prefix")
        .arg(prefix)
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .args(packages);
    run("npm", npm);
}

fn imports_boto3(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import boto3"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn install_python(python: &str, target: &Path) {
    tracing::info!(
        python,
        into = %target.display(),
        "--provide-sdks: installing boto3 (once)"
    );
    let mut pip = Command::new(python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ])
    .arg("--target")
    .arg(target)
    .arg("boto3");
    run("pip", pip);
}

/// Runs an installer to its end (its output goes to wsgate's stderr); logs how it failed.
fn run(what: &str, mut command: Command) {
    command.stdin(Stdio::null()).stdout(Stdio::null());
    match command.status() {
        Ok(status) if status.success() => tracing::info!("--provide-sdks: {what} finished"),
        Ok(status) => tracing::error!(
            "--provide-sdks: {what} failed ({status}); handlers importing what it should have installed will fail"
        ),
        Err(error) => tracing::error!(
            %error,
            "--provide-sdks: cannot run {what}; is it installed and on the PATH?"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_are_read_from_imports_requires_and_dynamic_imports() {
        let text = r#"
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb/dist-cjs/index.js';
const { ApiGatewayManagementApiClient } = require('@aws-sdk/client-apigatewaymanagementapi');
const m = await import(`@smithy/util-retry`);
// "@aws-sdk/" alone, and @aws-sdk/client-s3 outside quotes, are not packages.
"#;
        let names: BTreeSet<String> = package_names(text).collect();
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            [
                "@aws-sdk/client-apigatewaymanagementapi",
                "@aws-sdk/client-dynamodb",
                "@aws-sdk/lib-dynamodb",
                "@smithy/util-retry"
            ]
        );
    }

    #[test]
    fn sources_under_node_modules_and_hidden_folders_are_not_read() {
        let dir = tempfile::tempdir().expect("dir");
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        };
        write("src/app.mjs", "import x from '@aws-sdk/client-sqs';");
        write("node_modules/y/index.js", "require('@aws-sdk/client-s3')");
        write(".aws-sam/build/app.js", "require('@aws-sdk/client-sns')");
        write("README.md", "'@aws-sdk/client-kms'");
        assert_eq!(
            sdk_imports(dir.path()).into_iter().collect::<Vec<_>>(),
            ["@aws-sdk/client-sqs"]
        );
        write("node_modules/@aws-sdk/client-sqs/package.json", "{}");
        assert!(resolvable(&dir.path().join("src"), "@aws-sdk/client-sqs"));
        assert!(!resolvable(&dir.path().join("src"), "@aws-sdk/client-s3"));
    }
}
