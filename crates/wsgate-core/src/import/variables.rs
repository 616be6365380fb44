//! A `serverless.yml`'s variables: `${self:...}`, `${sls:stage}`, `${opt:stage}`,
//! `${opt:region}`, `${aws:region}` and `${env:...}`, nested or not, with fallbacks
//! (`${env:X, 'default'}`); other sources (`ssm:`, `file(...)`, `cf:`, ...) are left as written,
//! with a note. Resolving spends the import's [`Budget`].

use serde_json::{Number, Value};

use super::budget::{BYTES_PER_STEP, Budget, MAX_DEPTH, MAX_RESOLVED_BYTES, text_steps};
use super::text::{prefixed, text_at_most};
use super::types::ImportOptions;

/// Why a `serverless.yml` string or variable is left as is once the budget is spent.
const TOO_MANY_STEPS: &str = "the file's variables take too many steps to resolve";

/// The sources resolved here, for warnings.
const RESOLVED_SOURCES: &str = "self:, sls:stage, opt:stage, opt:region, aws:region and env:";

/// What looking up one variable source gave.
enum Lookup {
    Found(Value),
    /// A source wsgate reads, without a value (an unset option or variable, a missing key).
    Missing,
    /// A source wsgate does not read (`ssm:`, `file(...)`, `cf:`, ...).
    NotLocal,
}

/// Resolves `${...}` variables of a `serverless.yml`.
pub(super) struct Vars<'a> {
    pub(super) root: &'a Value,
    pub(super) stage: String,
    pub(super) region: String,
    pub(super) options: ImportOptions<'a>,
    pub(super) budget: Budget,
}

impl Vars<'_> {
    /// Resolves every string in `value`; notes go to `warnings` after `context`.
    pub(super) fn resolve(
        &self,
        value: &Value,
        context: &str,
        warnings: &mut Vec<String>,
    ) -> Value {
        let mut notes = Vec::new();
        let out = self.resolve_at(value, &mut notes, 0);
        prefixed(context, notes, warnings);
        out
    }

    fn resolve_at(&self, value: &Value, notes: &mut Vec<String>, depth: usize) -> Value {
        // Once the budget is spent nothing more is walked; the variable that finds it spent
        // says so in a note.
        if !self.budget.left() || (value.is_array() || value.is_object()) && !self.budget.step() {
            return value.clone();
        }
        if let Value::String(s) = value {
            // Read and copied whole: long strings walked again and again are work too.
            self.budget.spend(s.len() / BYTES_PER_STEP);
        }
        match value {
            Value::String(s) if s.contains("${") => self.resolve_string(s, notes, depth),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.resolve_at(i, notes, depth))
                    .collect(),
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.resolve_at(v, notes, depth)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// A string with variables: a variable alone keeps its value's type (a number stays a
    /// number); mixed with text, values are written into it.
    pub(super) fn resolve_string(&self, s: &str, notes: &mut Vec<String>, depth: usize) -> Value {
        if !self.budget.left() {
            notes.push(format!("{s} left as is ({TOO_MANY_STEPS})"));
            return Value::String(s.to_owned());
        }
        let segments = split_variables(s);
        if let [Segment::Variable(whole, inner)] = segments.as_slice() {
            return self.variable(whole, inner, notes, depth);
        }
        // A variable naming a whole document (`${self:}`) written into a string that the
        // document holds grows at every level (found by fuzzing): stop at a sane size.
        let too_long = |notes: &mut Vec<String>| {
            notes.push(format!(
                "{s} left as is (its variables resolve to more than {MAX_RESOLVED_BYTES} bytes)"
            ));
            Value::String(s.to_owned())
        };
        let mut out = String::new();
        for segment in segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Variable(whole, inner) => {
                    let room = MAX_RESOLVED_BYTES.saturating_sub(out.len());
                    let value = self.variable(whole, inner, notes, depth);
                    let Some(text) = text_at_most(&value, room) else {
                        // Up to `room` bytes were written before giving up.
                        self.budget.spend(text_steps(&value, room));
                        return too_long(notes);
                    };
                    self.budget.spend(text_steps(&value, text.len()));
                    out.push_str(&text);
                }
            }
            if out.len() > MAX_RESOLVED_BYTES {
                return too_long(notes);
            }
        }
        Value::String(out)
    }

    fn variable(&self, whole: &str, inner: &str, notes: &mut Vec<String>, depth: usize) -> Value {
        // A variable is a step, and its text is read (split at commas, sources looked up) as
        // resolved text is: a long one used many times is as much work as a long value.
        let within_budget = self.budget.spend(1 + inner.len() / BYTES_PER_STEP);
        // `${AWS::Region}`, `${Resource.Arn}`: CloudFormation's, for `Fn::Sub`.
        if !is_variable(inner) {
            return Value::String(whole.to_owned());
        }
        if depth > MAX_DEPTH {
            notes.push(format!("{whole} left as is (nested too deeply: a cycle?)"));
            return Value::String(whole.to_owned());
        }
        if !within_budget {
            notes.push(format!("{whole} left as is ({TOO_MANY_STEPS})"));
            return Value::String(whole.to_owned());
        }
        let inner = if inner.contains("${") {
            // A name made of `${self:}` is a whole document: not written out just to be split.
            let name = self.resolve_string(inner, notes, depth + 1);
            let Some(text) = text_at_most(&name, MAX_RESOLVED_BYTES) else {
                self.budget.spend(text_steps(&name, MAX_RESOLVED_BYTES));
                notes.push(format!(
                    "{whole} left as is (its name resolves to more than {MAX_RESOLVED_BYTES} bytes)"
                ));
                return Value::String(whole.to_owned());
            };
            self.budget.spend(text_steps(&name, text.len()));
            text
        } else {
            inner.to_owned()
        };
        let parts = split_top_level_commas(&inner);
        let Some((first, fallbacks)) = parts.split_first() else {
            return Value::String(whole.to_owned());
        };
        let first = first.trim();
        let primary = self.source(first, notes, depth);
        if let Lookup::Found(value) = primary {
            return value;
        }
        if matches!(primary, Lookup::NotLocal) && !fallbacks.is_empty() {
            notes.push(format!(
                "{whole}: {first} is not looked up locally; the fallback is used"
            ));
        }
        for fallback in fallbacks {
            if let Lookup::Found(value) = self.source(fallback.trim(), notes, depth) {
                return value;
            }
        }
        // Without `--stage`, `${opt:stage}` is the stage.
        match first {
            "opt:stage" => return Value::String(self.stage.clone()),
            "opt:region" => return Value::String(self.region.clone()),
            _ => {}
        }
        let why = match primary {
            Lookup::NotLocal => format!("only {RESOLVED_SOURCES} are resolved"),
            _ => format!("{first} has no value and there is no fallback"),
        };
        notes.push(format!("{whole} left as is ({why})"));
        Value::String(whole.to_owned())
    }

    /// One source or literal of a variable.
    fn source(&self, expr: &str, notes: &mut Vec<String>, depth: usize) -> Lookup {
        if let Some(quoted) = expr
            .strip_prefix('\'')
            .and_then(|e| e.strip_suffix('\''))
            .or_else(|| expr.strip_prefix('"').and_then(|e| e.strip_suffix('"')))
        {
            return Lookup::Found(Value::String(quoted.to_owned()));
        }
        if let Ok(n) = expr.parse::<i64>() {
            return Lookup::Found(Value::Number(n.into()));
        }
        if let Some(n) = expr.parse::<f64>().ok().and_then(Number::from_f64) {
            return Lookup::Found(Value::Number(n));
        }
        if let Ok(b) = expr.parse::<bool>() {
            return Lookup::Found(Value::Bool(b));
        }
        let found = |value: Option<String>| {
            value.map_or(Lookup::Missing, |v| Lookup::Found(Value::String(v)))
        };
        match expr.split_once(':') {
            Some(("self", path)) => {
                let mut node = Some(self.root);
                for key in path.split('.').filter(|k| !k.is_empty()) {
                    node = node.and_then(|n| match n {
                        Value::Object(map) => map.get(key),
                        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                        _ => None,
                    });
                }
                match node {
                    None | Some(Value::Null) => Lookup::Missing,
                    Some(value) => Lookup::Found(self.resolve_at(value, notes, depth + 1)),
                }
            }
            Some(("sls", "stage")) => found(Some(self.stage.clone())),
            Some(("opt", "stage")) => found(self.options.stage.map(str::to_owned)),
            Some(("opt", "region")) => found(self.options.region.map(str::to_owned)),
            Some(("aws", "region")) => found(Some(self.region.clone())),
            Some(("env", name)) => found(self.options.env.and_then(|env| env(name.trim()))),
            _ => Lookup::NotLocal,
        }
    }
}

enum Segment<'s> {
    Text(&'s str),
    /// The whole `${...}` and what is inside the braces.
    Variable(&'s str, &'s str),
}

/// Splits text into literal parts and top-level `${...}` variables (which may nest).
fn split_variables(s: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let bytes = rest.as_bytes();
        let mut depth = 0usize;
        let mut end = None;
        let mut i = start;
        while i < bytes.len() {
            if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
                depth += 1;
                i += 2;
                continue;
            }
            if bytes[i] == b'}' {
                depth -= 1;
                if depth == 0 {
                    end = Some(i);
                    break;
                }
            }
            i += 1;
        }
        let Some(end) = end else { break };
        if start > 0 {
            segments.push(Segment::Text(&rest[..start]));
        }
        segments.push(Segment::Variable(&rest[start..=end], &rest[start + 2..end]));
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest));
    }
    segments
}

/// Whether `${inner}` is a Serverless Framework variable rather than a CloudFormation `Fn::Sub`
/// one: it names a source (`self:`, `env:`, `file(...)`, ...), and is not `AWS::...`.
fn is_variable(inner: &str) -> bool {
    let first = split_top_level_commas(inner)
        .first()
        .map_or("", |f| f.trim());
    !first.starts_with("AWS::") && (first.contains(':') || first.contains('('))
}

/// Splits on commas outside quotes, parentheses and nested variables.
fn split_top_level_commas(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote = None;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '{') => depth += 1,
            (None, ')' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::import::from_serverless;
    use crate::import::test_support::{assert_warned, base, env};

    #[test]
    fn a_variable_name_past_64_kib_is_left_as_is() {
        let big = "x".repeat(70_000);
        let text = format!(
            "custom:\n  big: {big}\nprovider:\n  environment:\n    A: ${{${{self:custom.big}}}}\nfunctions:\n  f:\n    handler: a.b\n    events: [websocket: $default]\n"
        );
        let imported = from_serverless(&text, Path::new(".")).expect("imports");
        assert_warned(&imported, |w| {
            w.contains("its name resolves to more than 65536 bytes")
        });
    }

    #[test]
    fn a_document_holding_itself_twice_is_bounded() {
        // Found by fuzzing (fuzz/repro/config/self-reference-twice-memoized-oom-serverless.yml,
        // against an attempt at reusing resolved `${self:}` values that let the copies double).
        let text = "provider: {environment: {A: \"${self:}\"}}\ncustom: {B: \"${self:}\"}\nfunctions: {f: {handler: a.b, events: [websocket: x]}}\n";
        let imported = from_serverless(text, Path::new(".")).expect("imports");
        assert_warned(&imported, |w| {
            w.contains("${self:}") && w.contains("left as is")
        });
    }

    #[test]
    fn a_document_holding_itself_does_not_recurse_forever() {
        // Found by fuzzing (fuzz/repro/config/self-reference-stack-overflow-serverless.yml).
        let text = "functions: {f: {handler: a.b, environment: {A: \"${self:}\"}, events: [websocket: x]}}";
        let _ = from_serverless(text, Path::new("."));
    }

    #[test]
    fn a_variable_naming_the_whole_document_does_not_grow_without_bound() {
        // Found by fuzzing (fuzz/artifacts/config): `${self:}` is the whole file, written into a
        // string of that file.
        let text = concat!(
            "service: vars\nprovider:\n  name: aws\n  runtime: nodejs20.x\n  environment:\n",
            "    TABLE: ${self:, 'fallback'} ${ssm:/p}//////////////////////////////////////\n",
            "functions:\n  f:\n    handler: index.handler\n    events:\n      - websocket: hello\n",
        );
        let imported = from_serverless(text, Path::new(".")).expect("imports");
        let table = &imported.config.functions["f"].environment["TABLE"];
        assert!(table.len() <= MAX_RESOLVED_BYTES, "{}", table.len());
    }

    #[test]
    fn variables_naming_the_whole_document_twice_are_bounded_in_work() {
        // Found by fuzzing (fuzz/repro/config/self-reference-slow-serverless.yml): each
        // `${self:}` walks the whole document, which holds both, down to the depth limit.
        let text = "provider: {environment: {A: \"${self:}x\", B: \"${self:}x\"}}\nfunctions: {f: {handler: a.b, events: [websocket: x]}}\n";
        let imported = from_serverless(text, Path::new(".")).expect("imports");
        assert_warned(&imported, |w| w.contains("too many steps"));
    }

    #[test]
    fn serverless_variables_resolve_or_warn() {
        let yaml = r#"
service:
  name: vars
custom:
  tables:
    dev: dev-table
  timeout: 7
  nested: ${self:custom.tables.${sls:stage}}
  loop: ${self:custom.loop}
provider:
  name: aws
  runtime: nodejs20.x
  stage: ${opt:stage}
  timeout: ${self:custom.timeout}
  environment:
    TABLE: ${self:custom.nested}
    SERVICE: ${self:service.name}
    REGION: ${aws:region}-${opt:region}
    HOME_DIR: ${env:HOME}
    SECRET: ${file(./secrets.yml):secret}
    FALLBACK: ${self:custom.nope, 'fallback'}
    LOOP: ${self:custom.loop}
    SUB: { "Fn::Sub": "arn:aws:s3:::${AWS::Region}-${self:service.name}/${Bucket}" }
functions:
  echo:
    handler: index.echo
    events:
      - websocket:
          route: echo
          routeResponseSelectionExpression: $default
"#;
        let imported = from_serverless(yaml, base()).expect("imports");
        let echo = &imported.config.functions["echo"];
        assert_eq!(imported.config.gateway.stage, "dev");
        assert_eq!(imported.region, None);
        assert_eq!(echo.timeout, Some(Duration::from_secs(7)));
        assert_eq!(echo.memory_size, 1024);
        assert_eq!(
            echo.environment,
            env(&[
                ("FALLBACK", "fallback"),
                ("HOME_DIR", "${env:HOME}"),
                ("LOOP", "${self:custom.loop}"),
                ("REGION", "us-east-1-us-east-1"),
                ("SECRET", "${file(./secrets.yml):secret}"),
                ("SERVICE", "vars"),
                ("SUB", "arn:aws:s3:::us-east-1-vars/${Bucket}"),
                ("TABLE", "dev-table"),
            ])
        );
        assert_eq!(
            imported.warnings,
            [
                "provider.environment.HOME_DIR: ${env:HOME} left as is (env:HOME has no value and there is no fallback)",
                "provider.environment.SECRET: ${file(./secrets.yml):secret} left as is (only self:, sls:stage, opt:stage, opt:region, aws:region and env: are resolved)",
                "provider.environment.LOOP: ${self:custom.loop} left as is (nested too deeply: a cycle?)",
                "provider.environment.SUB: ${Bucket} left unresolved (no parameter or resource is named Bucket)",
            ]
        );
    }

    #[test]
    fn serverless_environments_may_come_from_variables() {
        let yaml = r#"
service: ws
plugins:
  - serverless-esbuild
  - serverless-offline
custom:
  env:
    dev: { TABLE: dev-table, DEBUG: 1 }
provider:
  name: aws
  runtime: nodejs20.x
  environment: ${self:custom.env.${sls:stage}}
functions:
  echo:
    handler: src/echo.handler
    environment: ${file(./env.yml)}
    events:
      - websocket: $default
"#;
        let imported = from_serverless(yaml, base()).expect("imports");
        assert_eq!(
            imported.config.functions["echo"].environment,
            env(&[("DEBUG", "1"), ("TABLE", "dev-table")])
        );
        assert_eq!(
            imported.warnings,
            [
                "plugins: serverless-esbuild builds the handlers at deploy time; wsgate runs them as they are in the service folder (build them first, or point the handlers at the built code)",
                "functions.echo.environment: ${file(./env.yml)} left as is (only self:, sls:stage, opt:stage, opt:region, aws:region and env: are resolved)",
                "functions.echo.environment: ${file(./env.yml)} is not a mapping of variables; ignored",
            ]
        );
    }
}
