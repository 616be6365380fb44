//! The limits that keep one import bounded in time and memory whatever the file holds: how deep
//! references nest, how many evaluation steps they take ([`Budget`]) and how long resolved text
//! may grow. Each was found needed by fuzzing (`fuzz/README.md` tells the crashes); the step count
//! is sized so that real projects never meet it.

use serde_json::Value;

/// Variables resolved through references deeper than this are taken for a cycle.
pub(super) const MAX_DEPTH: usize = 32;
/// Evaluation steps one import may take: references that each name others twice double the work
/// at every level, so depth alone does not bound it (found by fuzzing). A step is a variable, a
/// node walked while resolving, or 4 bytes of text read or written while resolving (a string
/// walked, a variable's text, resolved text): `${self:}` walks and writes out the whole document,
/// so counting variables alone let a 99-byte file take 13 s (found by fuzzing). A service of 300
/// functions, each with a route and three variables, takes about 29 000 steps; 1 000 functions
/// (twice what one CloudFormation stack can hold) about 96 000.
const MAX_STEPS: usize = 100_000;
/// Bytes of text read or written that count as one step.
pub(super) const BYTES_PER_STEP: usize = 4;

/// The steps of writing `bytes` of `value`'s text: a string is copied, [`BYTES_PER_STEP`] bytes a
/// step; a mapping or list is written out character by character, a byte a step (real projects
/// write strings into strings; a whole `${self:}` document written into one is what fuzzing does).
pub(super) fn text_steps(value: &Value, bytes: usize) -> usize {
    match value {
        Value::String(_) => bytes / BYTES_PER_STEP,
        _ => bytes,
    }
}

/// The longest text a `${...}` string, a `Fn::Sub` or a `Fn::Join` may resolve to.
pub(super) const MAX_RESOLVED_BYTES: usize = 64 * 1024;

/// The longest environment value imported: Lambda refuses a function whose variables take more
/// than 4 KB in all, so a longer one could not be deployed either.
pub(super) const MAX_ENVIRONMENT_BYTES: usize = 4 * 1024;

/// Counts evaluation steps; past [`MAX_STEPS`] evaluation stops with a warning.
#[derive(Default)]
pub(super) struct Budget(std::cell::Cell<usize>);

impl Budget {
    /// Takes one step; false once the budget is spent.
    pub(super) fn step(&self) -> bool {
        self.spend(1)
    }

    /// Takes `steps` steps; false once the budget is spent.
    pub(super) fn spend(&self, steps: usize) -> bool {
        let used = self.0.get().saturating_add(steps);
        self.0.set(used);
        used <= MAX_STEPS
    }

    /// Whether steps are left.
    pub(super) fn left(&self) -> bool {
        self.0.get() <= MAX_STEPS
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::import::test_support::assert_warned;
    use crate::import::{from_sam, from_serverless};

    #[test]
    fn exponential_references_and_huge_timeouts_are_bounded() {
        // Found by fuzzing (fuzz/repro/config): each level names the previous one twice.
        let mut sls = String::from("service: s\ncustom:\n  v0: x\n");
        for i in 1..40 {
            sls.push_str(&format!(
                "  v{i}: ${{self:custom.v{p}}}${{self:custom.v{p}}}\n",
                p = i - 1
            ));
        }
        sls.push_str(concat!(
            "provider:\n  name: aws\n  runtime: python3.12\n  environment:\n    BIG: ${self:custom.v39}\n",
            "functions:\n  f:\n    handler: a.b\n    timeout: 1e20\n    events:\n      - websocket: $default\n",
        ));
        let imported = from_serverless(&sls, Path::new(".")).expect("imports");
        assert_warned(&imported, |w| w.contains("too many steps"));
        // Too large for a duration: the Framework's default.
        assert_eq!(
            imported.config.functions["f"].timeout,
            Some(std::time::Duration::from_secs(6))
        );

        let mut sam = String::from("Parameters:\n  P0: {Type: String, Default: x}\n");
        for i in 1..40 {
            sam.push_str(&format!("  P{i}: {{Type: String, Default: !Join ['', [!Ref P{p}, !Ref P{p}, !Ref P{p}]]}}\n", p = i - 1));
        }
        sam.push_str("Resources:\n  A: {Type: AWS::ApiGatewayV2::Api, Properties: {ProtocolType: WEBSOCKET, Name: !Ref P39}}\n");
        // Completes (an error or warnings), in bounded time and memory.
        let _ = from_sam(&sam, Path::new("."));
    }

    #[test]
    fn a_large_real_looking_service_stays_within_the_budget() {
        // 300 functions, each with a route and variables, and 300 tables in `resources`: every
        // variable resolves, none is left for lack of steps (1 000 of each fit too, where
        // CloudFormation allows 500 resources a stack).
        let mut yaml = String::from(
            "service: big\nprovider:\n  name: aws\n  runtime: python3.12\n  stage: ${opt:stage, 'dev'}\n  environment:\n    STAGE: ${sls:stage}\n    SERVICE: ${self:service}\ncustom:\n  prefix: ${self:service}-${sls:stage}\n  description: ${self:custom.prefix} of ${self:service}, a service with a long description that repeats itself\nfunctions:\n",
        );
        for i in 0..300 {
            yaml.push_str(&format!(
                "  fn{i}:\n    handler: src/h.fn{i}\n    timeout: 10\n    environment:\n      TABLE: ${{self:custom.prefix}}-table{i}\n      ABOUT: ${{self:custom.description}} ({i})\n      REGION: ${{aws:region}}\n    events:\n      - websocket:\n          route: action{i}\n"
            ));
        }
        yaml.push_str("resources:\n  Resources:\n");
        for i in 0..300 {
            yaml.push_str(&format!(
                "    Table{i}:\n      Type: AWS::DynamoDB::Table\n      Properties:\n        TableName: ${{self:custom.prefix}}-table{i}\n        BillingMode: PAY_PER_REQUEST\n        AttributeDefinitions:\n          - {{AttributeName: id, AttributeType: S}}\n        KeySchema:\n          - {{AttributeName: id, KeyType: HASH}}\n"
            ));
        }
        let imported = from_serverless(&yaml, Path::new(".")).expect("imports");
        assert_eq!(imported.config.functions.len(), 300);
        assert!(
            imported
                .warnings
                .iter()
                .all(|w| !w.contains("too many steps") && !w.contains("left as is")),
            "{:?}",
            imported.warnings
        );
        let env = &imported.config.functions["fn299"].environment;
        assert_eq!(env["TABLE"], "big-dev-table299");
        assert!(
            env["ABOUT"].starts_with("big-dev of big, a service"),
            "{}",
            env["ABOUT"]
        );
    }
}
