//! A SAM template's function (an `AWS::Serverless::Function`, with `Globals.Function`, or an
//! `AWS::Lambda::Function`) as a [`FunctionSpec`]: its code folder, runtime, handler, timeout,
//! memory and environment, or why it cannot run here.
//!
//! What the template leaves out is what Lambda deploys: a function without `Timeout` (on itself
//! or, for a SAM function, in `Globals.Function`) runs for 3 s at most, [`LAMBDA_TIMEOUT`]; one
//! without `MemorySize` gets 128 MB.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::assembly::{FunctionSpec, apply_environment, map_runtime, unsupported_runtime};
use super::cfn::{Cfn, Res, SAM_FUNCTION};
use super::text::{megabytes, seconds, short_form};

/// Lambda's timeout for a function that sets none (CloudFormation's and SAM's default).
pub(super) const LAMBDA_TIMEOUT: Duration = Duration::from_secs(3);

/// An `AWS::Serverless::Function` (with `Globals.Function`) or an `AWS::Lambda::Function`.
pub(super) fn sam_function(
    cfn: &Cfn<'_>,
    res: &Res<'_>,
    globals: Option<&Map<String, Value>>,
    global_env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<FunctionSpec, String> {
    let serverless = res.kind == SAM_FUNCTION;
    let context = format!("function {}", res.id);
    res.warn_condition(&context, warnings);
    if let Some(method) = res
        .metadata
        .and_then(|m| m.get("BuildMethod"))
        .and_then(Value::as_str)
    {
        warnings.push(format!(
            "{context}: Metadata.BuildMethod {method}: `sam build` builds this function, wsgate runs CodeUri as it is (build first and import .aws-sam/build/template.yaml)"
        ));
    }
    let get = |key: &str| {
        res.prop(key)
            .or_else(|| globals.filter(|_| serverless).and_then(|g| g.get(key)))
    };
    let text = |key: &str, warnings: &mut Vec<String>| {
        get(key).and_then(|v| cfn.text(v, &context, warnings))
    };
    if text("PackageType", warnings).is_some_and(|p| p.eq_ignore_ascii_case("Image"))
        || get("ImageUri").is_some()
    {
        return Err("container images (PackageType: Image) are not supported".to_owned());
    }
    let dir = code_dir(cfn, res, &get, &context, warnings)?;
    let runtime = text("Runtime", warnings).ok_or_else(|| {
        if serverless {
            "no Runtime (set it on the function or in Globals.Function)".to_owned()
        } else {
            "no Runtime".to_owned()
        }
    })?;
    map_runtime(&runtime).ok_or_else(|| unsupported_runtime(&runtime))?;
    let handler = text("Handler", warnings);
    let timeout = get("Timeout").map_or(LAMBDA_TIMEOUT, |v| timeout(cfn, v, &context, warnings));
    let memory_size = match get("MemorySize") {
        None => 128,
        Some(v) => memory_size(cfn, v, &context, warnings),
    };
    if get("Layers").is_some_and(|l| l.as_array().is_none_or(|l| !l.is_empty())) {
        warnings.push(format!(
            "{context}: Layers are not available locally (their code is not on the path); ignored"
        ));
    }
    let mut environment = if serverless {
        global_env.clone()
    } else {
        BTreeMap::new()
    };
    if let Some(vars) = res.prop("Environment").and_then(|e| e.get("Variables")) {
        let context = |name: Option<&str>| match name {
            Some(name) => format!("{context}: environment {name}"),
            None => format!("{context}: Environment.Variables"),
        };
        apply_environment(cfn, vars, &context, &mut environment, warnings);
    }
    Ok(FunctionSpec {
        runtime,
        handler,
        dir: PathBuf::from(dir),
        environment,
        timeout,
        memory_size,
    })
}

/// The function's code folder: a SAM function's `CodeUri` (`get` reads its properties, then
/// `Globals.Function`), a Lambda function's `Code`, else `.`; or why it is not a local folder.
fn code_dir<'v>(
    cfn: &Cfn<'_>,
    res: &Res<'_>,
    get: &dyn Fn(&str) -> Option<&'v Value>,
    context: &str,
    warnings: &mut Vec<String>,
) -> Result<String, String> {
    let dir = if res.kind == SAM_FUNCTION {
        if get("InlineCode").is_some() {
            return Err(
                "InlineCode is not supported (put the code in a folder and point CodeUri to it)"
                    .to_owned(),
            );
        }
        match get("CodeUri").map(|v| cfn.eval(v, context, warnings)) {
            None => ".".to_owned(),
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(
                    "CodeUri in S3 is not supported (point it to the local folder)".to_owned(),
                );
            }
        }
    } else {
        match res.prop("Code").map(|v| cfn.eval(v, context, warnings)) {
            None => ".".to_owned(),
            Some(Value::String(s)) => s,
            Some(Value::Object(code)) if code.contains_key("ZipFile") => {
                return Err("inline code (Code.ZipFile) is not supported".to_owned());
            }
            Some(Value::Object(code)) if code.contains_key("ImageUri") => {
                return Err("container images (Code.ImageUri) are not supported".to_owned());
            }
            Some(_) => {
                return Err("Code in S3 is not supported (set Code to the local folder)".to_owned());
            }
        }
    };
    if dir.starts_with("s3://") {
        return Err(format!(
            "CodeUri {dir} is in S3, which is not supported (point it to the local folder)"
        ));
    }
    if [".zip", ".jar"].iter().any(|ext| dir.ends_with(ext)) {
        return Err(format!(
            "CodeUri {dir} is an archive (point it to the unpacked folder)"
        ));
    }
    Ok(dir)
}

/// A `Timeout` in seconds; one that is not is a warning, and Lambda's default is used.
fn timeout(cfn: &Cfn<'_>, value: &Value, context: &str, warnings: &mut Vec<String>) -> Duration {
    let value = cfn.eval(value, context, warnings);
    seconds(&value).unwrap_or_else(|| {
        warnings.push(format!(
            "{context}: Timeout {} is not a number of seconds; 3 is used",
            short_form(&value)
        ));
        LAMBDA_TIMEOUT
    })
}

/// A `MemorySize` in megabytes; one that is not is a warning, and 128 (Lambda's default) is used.
fn memory_size(cfn: &Cfn<'_>, value: &Value, context: &str, warnings: &mut Vec<String>) -> u32 {
    let value = cfn.eval(value, context, warnings);
    megabytes(&value).unwrap_or_else(|| {
        warnings.push(format!(
            "{context}: MemorySize {} is not a number of megabytes; 128 is used",
            short_form(&value)
        ));
        128
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::FunctionRuntime;
    use crate::import::from_sam;
    use crate::import::test_support::{base, sam, sam_function, sam_route};

    #[test]
    fn a_function_without_timeout_gets_lambdas_3_seconds_unless_globals_set_one() {
        let resources = [
            sam_route("Plain", "plain", "Plain"),
            sam_function("Plain", "python3.12", ""),
            sam_route("Own", "own", "Own"),
            sam_function("Own", "python3.12", "      Timeout: 10\n"),
        ]
        .concat();
        let timeouts = |template: &str| {
            let imported = from_sam(template, base()).expect("imports");
            let functions = &imported.config.functions;
            (functions["Plain"].timeout, functions["Own"].timeout)
        };
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(timeouts(&sam(&resources)), (secs(3), secs(10)));
        let with_globals = sam(&resources) + "Globals:\n  Function:\n    Timeout: 20\n";
        assert_eq!(timeouts(&with_globals), (secs(20), secs(10)));
    }

    #[test]
    fn provided_runtimes_run_their_bootstrap() {
        let template = sam(&format!(
            "{}{}",
            sam_route("Send", "$default", "Send"),
            r#"
  Send:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
    Properties:
      CodeUri: target/lambda/send
      Handler: bootstrap
      Runtime: provided.al2023
      Architectures: [arm64]
"#
        ));
        let imported = from_sam(&template, base()).expect("imports");
        let send = &imported.config.functions["Send"];
        assert_eq!(send.runtime, FunctionRuntime::Command);
        assert_eq!(send.command, ["./bootstrap"]);
        assert_eq!(send.dir, Path::new("target/lambda/send"));
        assert_eq!(send.handler.as_deref(), Some("bootstrap"));
        assert_eq!(imported.config.gateway.stage, "dev");
        assert_eq!(
            imported.warnings,
            [
                "function Send: Metadata.BuildMethod rust-cargolambda: `sam build` builds this function, wsgate runs CodeUri as it is (build first and import .aws-sam/build/template.yaml)"
            ]
        );
    }
}
