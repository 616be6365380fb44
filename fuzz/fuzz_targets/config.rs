//! The configuration file (`wsgate.toml`) and the importers of a project's `serverless.yml` and
//! SAM / CloudFormation template (YAML).
//!
//! Input: the file's text (lossy UTF-8), handed to all three readers.
//!
//! Checks that an import that succeeds gives a configuration that validates (as
//! `import::Imported::config` documents).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wsgate_core::config::Config;
use wsgate_core::import::{
    ImportOptions, from_sam, from_sam_with, from_serverless, from_serverless_with,
};

fn env(name: &str) -> Option<String> {
    (name.len() < 8).then(|| format!("env-{name}"))
}

fn check(imported: Result<wsgate_core::import::Imported, wsgate_core::import::ImportError>) {
    match imported {
        Ok(imported) => {
            if let Err(e) = imported.config.validate() {
                panic!("an imported config does not validate: {e}");
            }
            for function in imported.config.functions.values() {
                let _ = imported.config.function_dir(function);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    match Config::from_toml(text) {
        Ok(mut config) => {
            let _ = config.validate();
            config.apply_env(|k| (k == "WSGATE_STAGE").then(|| "prod".to_owned()));
            let _ = config.validate();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }

    // Each input is imported once as a `serverless.yml` and once as a SAM template: with the
    // default options when its length is even, with the options `wsgate dev --stage ...
    // --region ...` hands over when it is odd (a mutation that adds or removes a byte moves it to
    // the other). Importing every input four times doubled the cost of the slowest inputs, those
    // that spend the import's whole work budget.
    let base = Path::new(".");
    if data.len() % 2 == 0 {
        check(from_serverless(text, base));
        check(from_sam(text, base));
    } else {
        let parameters = [("Stage", "prod"), ("TableName", "t"), ("Env", "a,b")];
        let options = ImportOptions {
            stage: Some("prod"),
            region: Some("eu-west-1"),
            parameters: &parameters,
            env: Some(&env),
        };
        check(from_serverless_with(text, base, options));
        check(from_sam_with(text, base, options));
    }
});
