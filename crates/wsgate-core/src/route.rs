//! Route selection: the expression language of API Gateway's `routeSelectionExpression`, and the
//! choice of a route key for one message.
//!
//! Forms understood (evaluated once, never recursively):
//! - `$request.body.a.b` — the JSON value at `a.b` of the message;
//! - `${request.body.a.b}` mixed with text, e.g. `${request.body.svc}/${request.body.action}`;
//! - a plain literal, e.g. `action`, which evaluates to itself; `\$default` evaluates to `$default`.
//!
//! A path may index arrays: `$request.body.items[0].kind`. A missing value evaluates to the empty
//! string; numbers and booleans to their text; arrays to `[a, b]` and objects to `{k=v}`, the way
//! the Java service stringifies them.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;

use serde_json::Value;

/// The key of a route, e.g. `sendmessage` or `$default`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct RouteKey(pub String);

impl RouteKey {
    /// `$connect`.
    pub const CONNECT: &'static str = "$connect";
    /// `$disconnect`.
    pub const DISCONNECT: &'static str = "$disconnect";
    /// `$default`.
    pub const DEFAULT: &'static str = "$default";

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One step into a JSON document.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A path into the message body; empty means the whole body.
    Body(Vec<Step>),
    /// `${context.NAME}`, in templates only.
    Context(String),
}

/// The `${context.NAME}` variables a template may use.
pub const CONTEXT_VARIABLES: &[&str] = &[
    "connectionId",
    "requestId",
    "messageId",
    "routeKey",
    "eventType",
    "stage",
    "apiId",
    "domainName",
    "connectedAt",
    "requestTimeEpoch",
    "identity.sourceIp",
    "identity.userAgent",
];
// Besides these, `authorizer.KEY`: `principalId` or a key of the authorizer's context.

/// A parsed selection expression (or template).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectionExpression {
    source: String,
    parts: Vec<Part>,
}

/// Why an expression does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpressionError {
    /// `${` without its `}`.
    #[error("unclosed `${{` at byte {0}")]
    Unclosed(usize),
    /// A variable other than `request.body…`.
    #[error("unsupported variable `{0}`: only request.body paths can select a route")]
    UnsupportedVariable(String),
    /// A path with an empty step or a bad index.
    #[error("bad path `{0}`")]
    BadPath(String),
    /// The empty expression.
    #[error("the expression is empty")]
    Empty,
}

const BODY: &str = "request.body";

fn parse_path(var: &str) -> Result<Vec<Step>, ExpressionError> {
    let rest = var
        .strip_prefix(BODY)
        .ok_or_else(|| ExpressionError::UnsupportedVariable(var.to_owned()))?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let rest = rest
        .strip_prefix('.')
        .ok_or_else(|| ExpressionError::UnsupportedVariable(var.to_owned()))?;
    let bad = || ExpressionError::BadPath(var.to_owned());
    let mut steps = Vec::new();
    for segment in rest.split('.') {
        let (name, mut indexes) = match segment.find('[') {
            Some(at) => (&segment[..at], &segment[at..]),
            None => (segment, ""),
        };
        if name.is_empty() && indexes.is_empty() {
            return Err(bad());
        }
        if !name.is_empty() {
            steps.push(Step::Field(name.to_owned()));
        }
        while !indexes.is_empty() {
            let close = indexes.find(']').ok_or_else(bad)?;
            let index = indexes[1..close].parse::<usize>().map_err(|_| bad())?;
            steps.push(Step::Index(index));
            indexes = &indexes[close + 1..];
            if !indexes.is_empty() && !indexes.starts_with('[') {
                return Err(bad());
            }
        }
    }
    Ok(steps)
}

impl SelectionExpression {
    /// Parses an expression.
    pub fn parse(source: &str) -> Result<Self, ExpressionError> {
        let source_owned = source.to_owned();
        if source.is_empty() {
            return Err(ExpressionError::Empty);
        }
        if let Some(literal) = source.strip_prefix('\\') {
            return Ok(Self {
                source: source_owned,
                parts: vec![Part::Text(literal.to_owned())],
            });
        }
        if !source.contains("${") {
            if let Some(var) = source.strip_prefix('$')
                && var.starts_with("request.")
            {
                let steps = parse_path(var)?;
                return Ok(Self {
                    source: source_owned,
                    parts: vec![Part::Body(steps)],
                });
            }
            return Ok(Self {
                source: source_owned,
                parts: vec![Part::Text(source.to_owned())],
            });
        }
        Ok(Self {
            source: source_owned,
            parts: parse_parts(source, false)?,
        })
    }

    /// Parses a template for a mock body: only `${...}` is interpreted, other text (including a
    /// lone `$`) is literal.
    pub fn parse_template(source: &str) -> Result<Self, ExpressionError> {
        if source.contains("${") {
            Ok(Self {
                source: source.to_owned(),
                parts: parse_parts(source, true)?,
            })
        } else {
            Ok(Self {
                source: source.to_owned(),
                parts: vec![Part::Text(source.to_owned())],
            })
        }
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the expression reads nothing from the message.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// True when the whole expression is `${request.body}` (the message itself).
    pub fn is_whole_body(&self) -> bool {
        matches!(self.parts.as_slice(), [Part::Body(steps)] if steps.is_empty())
    }

    /// True when the template reads `${context.*}` variables.
    pub fn uses_context(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Context(_)))
    }

    /// True when evaluating needs the message parsed as JSON.
    pub fn reads_body_paths(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Body(steps) if !steps.is_empty()))
    }

    /// Evaluates against a parsed message; `raw` is the message text, for `${request.body}`.
    pub fn evaluate(&self, body: &Value, raw: &str) -> String {
        self.render(body, raw, &|_| None)
    }

    /// Evaluates a template; `context` answers `${context.NAME}` variables.
    pub fn render(
        &self,
        body: &Value,
        raw: &str,
        context: &dyn Fn(&str) -> Option<String>,
    ) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Context(name) => out.push_str(&context(name).unwrap_or_default()),
                Part::Body(steps) if steps.is_empty() => out.push_str(raw),
                Part::Body(steps) => {
                    if let Some(value) = lookup(body, steps) {
                        stringify(value, &mut out);
                    }
                }
            }
        }
        out
    }
}

fn parse_parts(source: &str, allow_context: bool) -> Result<Vec<Part>, ExpressionError> {
    let mut parts = Vec::new();
    let mut rest = source;
    let mut offset = 0;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_owned()));
        }
        let close = rest[start..]
            .find('}')
            .ok_or(ExpressionError::Unclosed(offset + start))?;
        let var = &rest[start + 2..start + close];
        match var.strip_prefix("context.") {
            Some(name)
                if allow_context
                    && (CONTEXT_VARIABLES.contains(&name)
                        || name
                            .strip_prefix("authorizer.")
                            .is_some_and(|key| !key.is_empty())) =>
            {
                parts.push(Part::Context(name.to_owned()))
            }
            _ => parts.push(Part::Body(parse_path(var)?)),
        }
        offset += start + close + 1;
        rest = &rest[start + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(parts)
}

/// Reads the value at `steps` while parsing, skipping everything else: no map or vector is built
/// for the parts of the message the expression does not read. The whole text is still checked
/// to be JSON.
struct PathSeed<'s> {
    steps: &'s [Step],
}

impl<'de> serde::de::DeserializeSeed<'de> for PathSeed<'_> {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match self.steps.first() {
            None => Value::deserialize(d).map(Some),
            Some(_) => d.deserialize_any(self),
        }
    }
}

impl<'de> serde::de::Visitor<'de> for PathSeed<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.steps.first() {
                // A repeated key wins, as in a parsed object.
                Some(Step::Field(name)) if *name == key => {
                    found = map.next_value_seed(PathSeed {
                        steps: &self.steps[1..],
                    })?;
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut index = 0;
        loop {
            let wanted = matches!(self.steps.first(), Some(Step::Index(i)) if *i == index);
            if wanted {
                match seq.next_element_seed(PathSeed {
                    steps: &self.steps[1..],
                })? {
                    Some(value) => found = value,
                    None => break,
                }
            } else if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                break;
            }
            index += 1;
        }
        Ok(found)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// The value at `steps` in a JSON text; `Err` when the text is not JSON.
fn extract(message: &str, steps: &[Step]) -> Result<Option<Value>, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut deserializer = serde_json::Deserializer::from_str(message);
    let value = PathSeed { steps }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

fn lookup<'a>(mut value: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    for step in steps {
        value = match step {
            Step::Field(name) => value.as_object()?.get(name)?,
            Step::Index(i) => value.as_array()?.get(*i)?,
        };
    }
    Some(value)
}

fn stringify(value: &Value, out: &mut String) {
    match value {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                stringify(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push('=');
                stringify(v, out);
            }
            out.push('}');
        }
    }
}

/// What a message is routed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// A route with this key exists (possibly `$default`).
    Route(RouteKey),
    /// No route matched and there is no `$default`: the `Forbidden` error frame.
    NoRoute,
}

/// Picks the route for a text message, given the keys of the configured routes.
///
/// Non-JSON goes to `$default`. `$connect` and `$disconnect` are never chosen by a message.
pub fn select(
    expression: &SelectionExpression,
    message: &str,
    routes: &HashSet<String>,
) -> Selection {
    let default = || {
        if routes.contains(RouteKey::DEFAULT) {
            Selection::Route(RouteKey(RouteKey::DEFAULT.to_owned()))
        } else {
            Selection::NoRoute
        }
    };
    let key = if let [Part::Body(steps)] = expression.parts.as_slice()
        && !steps.is_empty()
    {
        // The common case, `$request.body.action`: read one value without building the message.
        match extract(message, steps) {
            Ok(value) => {
                let mut key = String::new();
                if let Some(value) = value {
                    stringify(&value, &mut key);
                }
                key
            }
            Err(_) => return default(),
        }
    } else if expression.is_literal() {
        // Non-JSON still goes to `$default`; checking is cheaper than building a value.
        if serde_json::from_str::<serde::de::IgnoredAny>(message).is_err() {
            return default();
        }
        expression.evaluate(&Value::Null, message)
    } else {
        match serde_json::from_str::<Value>(message) {
            Ok(body) => expression.evaluate(&body, message),
            Err(_) => return default(),
        }
    };
    if key == RouteKey::CONNECT || key == RouteKey::DISCONNECT {
        return default();
    }
    if routes.contains(&key) {
        Selection::Route(RouteKey(key))
    } else {
        default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(expr: &str, body: &Value) -> String {
        SelectionExpression::parse(expr)
            .expect("parses")
            .evaluate(body, &body.to_string())
    }

    #[test]
    fn the_default_expression_reads_action() {
        assert_eq!(
            eval("$request.body.action", &json!({"action": "sendmessage"})),
            "sendmessage"
        );
    }

    #[test]
    fn nested_paths_and_indexes() {
        let body = json!({"a": {"b": {"c": "deep"}}, "items": [{"kind": "x"}, {"kind": "y"}]});
        assert_eq!(eval("$request.body.a.b.c", &body), "deep");
        assert_eq!(eval("${request.body.items[1].kind}", &body), "y");
        assert_eq!(eval("$request.body.items[5].kind", &body), "");
    }

    #[test]
    fn templates_mix_variables_and_text() {
        let body = json!({"svc": "chat", "action": "join"});
        assert_eq!(
            eval("${request.body.svc}/${request.body.action}", &body),
            "chat/join"
        );
        assert_eq!(
            eval("${request.body.action}-${request.body.nope}", &body),
            "join-"
        );
        assert_eq!(eval("v1:${request.body.action}", &body), "v1:join");
    }

    #[test]
    fn literals_evaluate_to_themselves() {
        assert_eq!(eval("action", &json!({"action": "x"})), "action");
        assert_eq!(eval("\\$default", &json!({})), "$default");
    }

    #[test]
    fn non_strings_are_stringified() {
        let body =
            json!({"n": 42, "f": 1.5, "t": true, "arr": ["a", "b"], "o": {"k": 1}, "z": null});
        assert_eq!(eval("$request.body.n", &body), "42");
        assert_eq!(eval("$request.body.f", &body), "1.5");
        assert_eq!(eval("$request.body.t", &body), "true");
        assert_eq!(eval("$request.body.arr", &body), "[a, b]");
        assert_eq!(eval("$request.body.o", &body), "{k=1}");
        assert_eq!(eval("$request.body.z", &body), "");
    }

    #[test]
    fn bad_expressions_are_errors() {
        assert_eq!(SelectionExpression::parse(""), Err(ExpressionError::Empty));
        assert!(matches!(
            SelectionExpression::parse("${request.body.a"),
            Err(ExpressionError::Unclosed(0))
        ));
        assert!(matches!(
            SelectionExpression::parse("${request.header.x}"),
            Err(ExpressionError::UnsupportedVariable(_))
        ));
        assert!(matches!(
            SelectionExpression::parse("$request.body.a..b"),
            Err(ExpressionError::BadPath(_))
        ));
        assert!(matches!(
            SelectionExpression::parse("$request.body.a[x]"),
            Err(ExpressionError::BadPath(_))
        ));
    }

    fn keys(list: &[&str]) -> HashSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn deep_nesting_never_overflows_the_stack() {
        // serde_json stops at 128 levels; 100 000 (a 128 KiB message) is non-JSON for selection.
        let routes = keys(&["$default", "x"]);
        let deep_array = format!("{{\"action\":{}", "[".repeat(100_000));
        let deep_object = format!("{}1", "{\"action\":".repeat(20_000));
        for expression in [
            "$request.body.action",
            "x",
            "$request.body.action-$request.body.b",
        ] {
            let expr = SelectionExpression::parse(expression).expect("parses");
            for message in [&deep_array, &deep_object] {
                assert_eq!(
                    select(&expr, message, &routes),
                    Selection::Route(RouteKey("$default".into())),
                    "{expression}"
                );
            }
        }
        // After the action, `$request.body.action` skips the rest without building it (serde_json
        // skips iteratively, with no depth to overflow): the action is read.
        let after = format!("{{\"action\":\"x\",\"y\":{}", "[".repeat(100_000));
        let expr = SelectionExpression::parse("$request.body.action").expect("parses");
        assert_eq!(
            select(&expr, &after, &routes),
            Selection::Route(RouteKey("$default".into()))
        );
        let closed = format!(
            "{{\"action\":\"x\",\"y\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            select(&expr, &closed, &routes),
            Selection::Route(RouteKey("x".into()))
        );
    }

    #[test]
    fn selection_falls_back_to_default_and_then_forbidden() {
        let expr = SelectionExpression::parse("$request.body.action").expect("parses");
        let with_default = keys(&["sendmessage", "$default", "$connect"]);
        let without = keys(&["sendmessage"]);
        let route = |k: &str| Selection::Route(RouteKey(k.to_owned()));
        assert_eq!(
            select(&expr, r#"{"action":"sendmessage"}"#, &with_default),
            route("sendmessage")
        );
        assert_eq!(
            select(&expr, r#"{"action":"other"}"#, &with_default),
            route("$default")
        );
        assert_eq!(select(&expr, "not json", &with_default), route("$default"));
        assert_eq!(
            select(&expr, r#"{"action":"$connect"}"#, &with_default),
            route("$default")
        );
        assert_eq!(
            select(&expr, r#"{"action":"SendMessage"}"#, &without),
            Selection::NoRoute
        );
        assert_eq!(select(&expr, "not json", &without), Selection::NoRoute);
        assert_eq!(
            select(&expr, r#"{"action":"sendmessage"}"#, &without),
            route("sendmessage")
        );
    }

    #[test]
    fn templates_read_context_variables_but_selection_does_not() {
        let t = SelectionExpression::parse_template(
            r#"{"id":"${context.connectionId}","x":"${request.body.x}"}"#,
        )
        .expect("parses");
        let context = |name: &str| (name == "connectionId").then(|| "abc=".to_owned());
        assert_eq!(
            t.render(&json!({"x": 1}), "", &context),
            r#"{"id":"abc=","x":"1"}"#
        );
        assert!(t.reads_body_paths());
        assert!(SelectionExpression::parse("${context.connectionId}").is_err());
        assert!(SelectionExpression::parse_template("${context.nope}").is_err());
    }

    #[test]
    fn path_extraction_agrees_with_full_evaluation() {
        let messages = [
            r#"{"action":"a","x":{"action":"nested"}}"#,
            r#"{"x":{"action":"nested"},"action":"late"}"#,
            r#"{"meta":{"kind":"join","n":[1,{"k":"deep"}]}}"#,
            r#"{"action":42}"#,
            r#"{"action":["a","b"]}"#,
            r#"{"action":{"k":1}}"#,
            r#"{"action":null}"#,
            r#"[{"action":"array"}]"#,
            r#""just a string""#,
            r#"{"action":"dup","action":"second"}"#,
        ];
        for expr in [
            "$request.body.action",
            "$request.body.meta.kind",
            "$request.body.meta.n[1].k",
            "$request.body.x.action",
        ] {
            let parsed = SelectionExpression::parse(expr).expect("parses");
            let Part::Body(steps) = &parsed.parts[0] else {
                panic!("a path")
            };
            for message in messages {
                let full: Value = serde_json::from_str(message).expect("json");
                let expected = parsed.evaluate(&full, message);
                let mut got = String::new();
                if let Some(value) = extract(message, steps).expect("json") {
                    stringify(&value, &mut got);
                }
                assert_eq!(got, expected, "{expr} on {message}");
            }
        }
        assert!(extract("{not json", &[Step::Field("a".into())]).is_err());
        assert!(extract(r#"{"a":1} trailing"#, &[Step::Field("a".into())]).is_err());
    }

    #[test]
    fn whole_body_template() {
        let expr = SelectionExpression::parse("${request.body}").expect("parses");
        assert!(expr.is_whole_body());
        assert_eq!(expr.evaluate(&Value::Null, "raw text"), "raw text");
    }
}
