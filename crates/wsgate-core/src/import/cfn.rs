//! CloudFormation: a template's resources ([`Res`]), the logical ids a value references
//! ([`refs`]), and [`Cfn`], which evaluates intrinsic functions: `Ref`, `Fn::Sub`, `Fn::Join`,
//! `Fn::Select`, `Fn::Split`, `Fn::FindInMap` and `Fn::GetAtt` of a table's `Arn`; the rest is
//! left as its short form, with a note.
//! SAM templates are read with it, and so are a `serverless.yml`'s `resources` and intrinsics,
//! whose `${...}` variables it resolves first (through [`Vars`]).

use serde_json::{Map, Value};

use super::budget::{Budget, MAX_DEPTH, MAX_RESOLVED_BYTES};
use super::intrinsic::intrinsic;
use super::text::{prefixed, scalar_text, short_form, text_at_most};
use super::types::LOCAL_ACCOUNT_ID;
use super::variables::Vars;
use crate::config::GatewayConfig;

pub(super) const SAM_FUNCTION: &str = "AWS::Serverless::Function";
const LAMBDA_FUNCTION: &str = "AWS::Lambda::Function";
pub(super) const V2_API: &str = "AWS::ApiGatewayV2::Api";
pub(super) const V2_ROUTE: &str = "AWS::ApiGatewayV2::Route";
pub(super) const V2_INTEGRATION: &str = "AWS::ApiGatewayV2::Integration";
pub(super) const V2_ROUTE_RESPONSE: &str = "AWS::ApiGatewayV2::RouteResponse";
pub(super) const V2_STAGE: &str = "AWS::ApiGatewayV2::Stage";
pub(super) const V2_DEPLOYMENT: &str = "AWS::ApiGatewayV2::Deployment";
pub(super) const V2_AUTHORIZER: &str = "AWS::ApiGatewayV2::Authorizer";

const DYNAMODB_TABLE: &str = "AWS::DynamoDB::Table";
pub(super) const SIMPLE_TABLE: &str = "AWS::Serverless::SimpleTable";

pub(super) fn is_table(kind: &str) -> bool {
    kind == DYNAMODB_TABLE || kind == SIMPLE_TABLE
}

/// The name CloudFormation gives a table without `TableName` is `{stack}-{LogicalId}-{random}`;
/// locally it is the same without the random part, so that it is the same at every start.
pub(super) fn generated_name(stack: &str, logical_id: &str) -> String {
    format!("{stack}-{logical_id}")
}

/// What `Fn::GetAtt Table.Arn` gives.
pub(super) fn table_arn(region: &str, name: &str) -> String {
    format!("arn:aws:dynamodb:{region}:{LOCAL_ACCOUNT_ID}:table/{name}")
}

/// Why an intrinsic function is left unresolved when its text passes [`MAX_RESOLVED_BYTES`].
fn resolved_too_long() -> String {
    format!(" (resolves to more than {MAX_RESOLVED_BYTES} bytes)")
}

/// The logical ids a value references through `Ref`, `Fn::GetAtt` and `Fn::Sub` variables
/// (pseudo parameters left out), in order, once each.
pub(super) fn refs(value: &Value, out: &mut Vec<String>) {
    fn push(out: &mut Vec<String>, id: &str) {
        if !id.starts_with("AWS::") && !out.iter().any(|o| o == id) {
            out.push(id.to_owned());
        }
    }
    match intrinsic(value) {
        Some(("Ref", Value::String(id))) => push(out, id),
        Some(("Fn::GetAtt", arg)) => match arg {
            Value::Array(parts) => {
                if let Some(id) = parts.first().and_then(Value::as_str) {
                    push(out, id);
                }
            }
            Value::String(s) => push(out, s.split_once('.').map_or(s.as_str(), |(id, _)| id)),
            _ => {}
        },
        Some(("Fn::Sub", arg)) => {
            let (template, vars) = match arg {
                Value::String(s) => (Some(s.as_str()), None),
                Value::Array(parts) => (
                    parts.first().and_then(Value::as_str),
                    parts.get(1).and_then(Value::as_object),
                ),
                _ => (None, None),
            };
            for name in template.map(sub_names).unwrap_or_default() {
                if !name.starts_with('!') && !vars.is_some_and(|m| m.contains_key(name)) {
                    push(out, name.split_once('.').map_or(name, |(id, _)| id));
                }
            }
            for var in vars.into_iter().flat_map(|m| m.values()) {
                refs(var, out);
            }
        }
        Some((_, arg)) => refs(arg, out),
        None => match value {
            Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
            Value::Object(map) => map.values().for_each(|v| refs(v, out)),
            _ => {}
        },
    }
}

/// The variable names of a `Fn::Sub` template, trimmed.
fn sub_names(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        names.push(after[..end].trim());
        rest = &after[end + 1..];
    }
    names
}

/// The function name in a Lambda function ARN or an API Gateway invocation URI
/// (`...:function:NAME[:alias]/invocations`).
pub(super) fn lambda_name_in_arn(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once(":function:")?;
    let name = rest.split(['/', ':']).next()?;
    (!name.is_empty()).then_some(name)
}

/// A resource of the template.
#[derive(Clone, Copy)]
pub(super) struct Res<'a> {
    pub(super) id: &'a str,
    pub(super) kind: &'a str,
    props: Option<&'a Map<String, Value>>,
    /// The resource's `Condition`, which is not evaluated.
    condition: Option<&'a str>,
    /// The resource's `Metadata`.
    pub(super) metadata: Option<&'a Value>,
}

impl<'a> Res<'a> {
    pub(super) fn prop(&self, key: &str) -> Option<&'a Value> {
        self.props?.get(key)
    }

    pub(super) fn is_function(&self) -> bool {
        self.kind == SAM_FUNCTION || self.kind == LAMBDA_FUNCTION
    }

    /// Conditions are not evaluated: a resource with one is imported as if it held.
    pub(super) fn warn_condition(&self, context: &str, warnings: &mut Vec<String>) {
        if let Some(condition) = self.condition {
            warnings.push(format!(
                "{context}: Condition {condition} is not evaluated; {} is imported as if it held",
                self.id
            ));
        }
    }
}

/// Evaluates CloudFormation intrinsic functions against a template's parameters and resources.
pub(super) struct Cfn<'a> {
    pub(super) resources: &'a Map<String, Value>,
    pub(super) parameters: Option<&'a Map<String, Value>>,
    pub(super) mappings: Option<&'a Map<String, Value>>,
    pub(super) overrides: &'a [(&'a str, &'a str)],
    pub(super) region: String,
    /// `AWS::StackName`, and the first part of the name of a table without `TableName`.
    pub(super) stack: String,
    /// The imported API: `!Ref` to it is the gateway's `api_id`.
    pub(super) api: Option<String>,
    /// In a `serverless.yml`, its `${...}` variables are resolved in every string first.
    pub(super) vars: Option<&'a Vars<'a>>,
    pub(super) budget: Budget,
}

impl<'a> Cfn<'a> {
    pub(super) fn res(&self, id: &str) -> Option<Res<'a>> {
        let (id, resource) = self.resources.get_key_value(id)?;
        Some(Res {
            id,
            kind: resource.get("Type")?.as_str()?,
            props: resource.get("Properties").and_then(Value::as_object),
            condition: resource.get("Condition").and_then(Value::as_str),
            metadata: resource.get("Metadata"),
        })
    }

    /// All resources with a `Type`, in document order.
    pub(super) fn all(&self) -> Vec<Res<'a>> {
        self.resources
            .keys()
            .filter_map(|id| self.res(id))
            .collect()
    }

    pub(super) fn is_parameter(&self, id: &str) -> bool {
        self.overrides.iter().any(|(k, _)| *k == id)
            || self.parameters.is_some_and(|p| p.contains_key(id))
    }

    /// Evaluates `value`; notes about what could not be resolved go to `warnings` after
    /// `context`.
    pub(super) fn eval(&self, value: &Value, context: &str, warnings: &mut Vec<String>) -> Value {
        let mut notes = Vec::new();
        let out = self.eval_at(value, &mut notes, 0);
        prefixed(context, notes, warnings);
        out
    }

    /// [`Self::eval`] to a scalar's text.
    pub(super) fn text(
        &self,
        value: &Value,
        context: &str,
        warnings: &mut Vec<String>,
    ) -> Option<String> {
        scalar_text(&self.eval(value, context, warnings))
    }

    fn eval_at(&self, value: &Value, notes: &mut Vec<String>, depth: usize) -> Value {
        // Checked for every value, not only intrinsics: a variable may resolve to a mapping
        // holding itself (`${self:}`), which would recurse without end (found by fuzzing).
        if depth > MAX_DEPTH {
            return unresolved(value, " (nested too deeply: a cycle?)", notes);
        }
        let Some((name, arg)) = intrinsic(value) else {
            return match value {
                // Variables may resolve to a mapping such as `{Ref: Table}`: evaluate that too.
                Value::String(s) => match self.pre(s, notes) {
                    resolved @ (Value::Object(_) | Value::Array(_)) => {
                        self.eval_at(&resolved, notes, depth + 1)
                    }
                    resolved => resolved,
                },
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .map(|i| self.eval_at(i, notes, depth + 1))
                        .collect(),
                ),
                Value::Object(map) => Value::Object(
                    map.iter()
                        .map(|(k, v)| (k.clone(), self.eval_at(v, notes, depth + 1)))
                        .collect(),
                ),
                other => other.clone(),
            };
        };
        if !self.budget.step() {
            return unresolved(
                value,
                " (the template's references take too many steps to resolve)",
                notes,
            );
        }
        let result = match name {
            "Ref" => match arg.as_str() {
                Some(id) => self.reference(id, notes, depth),
                None => Err(String::new()),
            },
            "Fn::GetAtt" => self.get_att(arg, notes, depth),
            "Fn::Sub" => self.sub(arg, notes, depth),
            "Fn::Join" => self.join(arg, notes, depth),
            "Fn::Select" => self.select(arg, notes, depth),
            "Fn::Split" => self.split(arg, notes, depth),
            "Fn::FindInMap" => self.find_in_map(arg, notes, depth),
            "Fn::If" => Err(" (conditions are not evaluated)".to_owned()),
            _ => Err(String::new()),
        };
        result.unwrap_or_else(|reason| unresolved(value, &reason, notes))
    }

    /// A plain string: with a `serverless.yml`'s variables resolved, if any.
    fn pre(&self, s: &str, notes: &mut Vec<String>) -> Value {
        match self.vars {
            Some(vars) if s.contains("${") => vars.resolve_string(s, notes, 0),
            _ => Value::String(s.to_owned()),
        }
    }

    /// `Ref`: pseudo parameters, parameters (overrides, then `Default`), then resources.
    fn reference(&self, id: &str, notes: &mut Vec<String>, depth: usize) -> Result<Value, String> {
        match id {
            "AWS::Region" => return Ok(Value::String(self.region.clone())),
            "AWS::AccountId" => return Ok(Value::String(LOCAL_ACCOUNT_ID.to_owned())),
            "AWS::Partition" => return Ok(Value::String("aws".to_owned())),
            "AWS::URLSuffix" => return Ok(Value::String("amazonaws.com".to_owned())),
            "AWS::NoValue" => return Ok(Value::Null),
            "AWS::NotificationARNs" => return Ok(Value::Array(Vec::new())),
            "AWS::StackName" => return Ok(Value::String(self.stack.clone())),
            _ if id.starts_with("AWS::") => return Err(" (not known locally)".to_owned()),
            _ => {}
        }
        if let Some((_, value)) = self.overrides.iter().find(|(k, _)| *k == id) {
            return Ok(self.parameter_value(id, Value::String((*value).to_owned())));
        }
        if let Some(parameter) = self.parameters.and_then(|p| p.get(id)) {
            let Some(default) = parameter.get("Default") else {
                return Err(format!(
                    " (parameter {id} has no Default; pass its value as an override)"
                ));
            };
            let value = self.eval_at(default, notes, depth + 1);
            return Ok(self.parameter_value(id, value));
        }
        let Some(res) = self.res(id) else {
            return Err(format!(" (no parameter or resource is named {id})"));
        };
        Ok(match res.kind {
            kind if is_table(kind) => self.table_name_at(&res, notes, depth + 1),
            // Locally a function is named by its logical id.
            SAM_FUNCTION | LAMBDA_FUNCTION => Value::String(id.to_owned()),
            V2_API if self.api.as_deref() == Some(id) => {
                Value::String(GatewayConfig::default().api_id)
            }
            V2_STAGE => match res.prop("StageName") {
                Some(name) => self.eval_at(name, notes, depth + 1),
                None => Value::String(id.to_owned()),
            },
            kind => {
                notes.push(format!("!Ref {id} ({kind}) resolved to its logical id"));
                Value::String(id.to_owned())
            }
        })
    }

    /// A table's name: its `TableName`, else the one `wsgate dev` gives it (what `Ref` to it
    /// gives, and what it is created as). What of its `TableName` cannot be resolved goes to
    /// `notes`.
    pub(super) fn table_name(&self, res: &Res<'_>, notes: &mut Vec<String>) -> Option<String> {
        scalar_text(&self.table_name_at(res, notes, 0))
    }

    fn table_name_at(&self, res: &Res<'_>, notes: &mut Vec<String>, depth: usize) -> Value {
        match res.prop("TableName") {
            Some(name) => self.eval_at(name, notes, depth),
            None => Value::String(generated_name(&self.stack, res.id)),
        }
    }

    /// `Fn::GetAtt`, in its list or dotted form: a table's `Arn`; anything else is left as is.
    fn get_att(&self, arg: &Value, notes: &mut Vec<String>, depth: usize) -> Result<Value, String> {
        let (id, attribute) = match arg {
            Value::Array(parts) => match parts.as_slice() {
                [Value::String(id), Value::String(attribute)] => (id.as_str(), attribute.as_str()),
                _ => return Err(String::new()),
            },
            Value::String(s) => s.split_once('.').ok_or_else(String::new)?,
            _ => return Err(String::new()),
        };
        self.attribute(id, attribute, notes, depth)
    }

    fn attribute(
        &self,
        id: &str,
        attribute: &str,
        notes: &mut Vec<String>,
        depth: usize,
    ) -> Result<Value, String> {
        match self.res(id) {
            Some(res) if is_table(res.kind) && attribute == "Arn" => {
                let name = self.table_name_at(&res, notes, depth + 1);
                let name = scalar_text(&name).ok_or_else(String::new)?;
                Ok(Value::String(table_arn(&self.region, &name)))
            }
            _ => Err(String::new()),
        }
    }

    /// A list parameter's value is a list.
    fn parameter_value(&self, id: &str, value: Value) -> Value {
        let kind = self
            .parameters
            .and_then(|p| p.get(id))
            .and_then(|p| p.get("Type"))
            .and_then(Value::as_str)
            .unwrap_or("String");
        match value {
            Value::String(s) if kind == "CommaDelimitedList" || kind.starts_with("List<") => {
                Value::Array(
                    s.split(',')
                        .map(|item| Value::String(item.trim().to_owned()))
                        .collect(),
                )
            }
            other => other,
        }
    }

    fn sub(&self, arg: &Value, notes: &mut Vec<String>, depth: usize) -> Result<Value, String> {
        let (template, vars) = match arg {
            Value::String(s) => (s.as_str(), None),
            Value::Array(parts) => match parts.as_slice() {
                [Value::String(s), Value::Object(m)] => (s.as_str(), Some(m)),
                _ => return Err(String::new()),
            },
            _ => return Err(String::new()),
        };
        let template = text_at_most(&self.pre(template, notes), MAX_RESOLVED_BYTES)
            .ok_or_else(resolved_too_long)?;
        let mut out = String::new();
        let mut rest = template.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                rest = &rest[start..];
                break;
            };
            let name = after[..end].trim();
            rest = &after[end + 1..];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
                continue;
            }
            let value = match vars.and_then(|m| m.get(name)) {
                Some(v) => Ok(self.eval_at(v, notes, depth + 1)),
                // `${Resource.Attribute}` is a `Fn::GetAtt`.
                None => match name.split_once('.') {
                    Some((id, attribute)) => self.attribute(id, attribute, notes, depth + 1),
                    None => self.reference(name, notes, depth + 1),
                },
            };
            match value {
                Ok(v) => {
                    let room = MAX_RESOLVED_BYTES.saturating_sub(out.len());
                    out.push_str(&text_at_most(&v, room).ok_or_else(resolved_too_long)?);
                }
                Err(reason) => {
                    let placeholder = format!("${{{name}}}");
                    notes.push(format!("{placeholder} left unresolved{reason}"));
                    out.push_str(&placeholder);
                }
            }
        }
        out.push_str(rest);
        if out.len() > MAX_RESOLVED_BYTES {
            return Err(resolved_too_long());
        }
        Ok(Value::String(out))
    }

    fn join(&self, arg: &Value, notes: &mut Vec<String>, depth: usize) -> Result<Value, String> {
        let Some([Value::String(delimiter), list]) = arg.as_array().map(Vec::as_slice) else {
            return Err(String::new());
        };
        let list = self.eval_at(list, notes, depth + 1);
        let items = list.as_array().ok_or_else(String::new)?;
        let mut out = String::new();
        for (i, item) in items.iter().filter(|i| !i.is_null()).enumerate() {
            if i > 0 {
                out.push_str(delimiter);
            }
            let room = MAX_RESOLVED_BYTES
                .checked_sub(out.len())
                .ok_or_else(resolved_too_long)?;
            out.push_str(&text_at_most(item, room).ok_or_else(resolved_too_long)?);
        }
        Ok(Value::String(out))
    }

    fn select(&self, arg: &Value, notes: &mut Vec<String>, depth: usize) -> Result<Value, String> {
        let Some([index, list]) = arg.as_array().map(Vec::as_slice) else {
            return Err(String::new());
        };
        let index = self.eval_at(index, notes, depth + 1);
        let index = match &index {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(String::new)?;
        let list = self.eval_at(list, notes, depth + 1);
        list.as_array()
            .and_then(|items| items.get(index))
            .cloned()
            .ok_or_else(|| " (index out of range)".to_owned())
    }

    fn split(&self, arg: &Value, notes: &mut Vec<String>, depth: usize) -> Result<Value, String> {
        let Some([Value::String(delimiter), source]) = arg.as_array().map(Vec::as_slice) else {
            return Err(String::new());
        };
        let source = self.eval_at(source, notes, depth + 1);
        let source = scalar_text(&source).ok_or_else(String::new)?;
        Ok(Value::Array(
            source
                .split(delimiter.as_str())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ))
    }

    fn find_in_map(
        &self,
        arg: &Value,
        notes: &mut Vec<String>,
        depth: usize,
    ) -> Result<Value, String> {
        let Some([map, top, second]) = arg.as_array().map(Vec::as_slice) else {
            return Err(String::new());
        };
        let key = |v: &Value, notes: &mut Vec<String>| {
            scalar_text(&self.eval_at(v, notes, depth + 1)).unwrap_or_default()
        };
        let (map, top, second) = (key(map, notes), key(top, notes), key(second, notes));
        let found = self
            .mappings
            .and_then(|m| m.get(&map))
            .and_then(|m| m.get(&top))
            .and_then(|m| m.get(&second))
            .ok_or_else(|| format!(" (Mappings has no {map}.{top}.{second})"))?;
        Ok(self.eval_at(found, notes, depth + 1))
    }
}

pub(super) fn unresolved(value: &Value, reason: &str, notes: &mut Vec<String>) -> Value {
    let text = short_form(value);
    notes.push(format!("{text} left unresolved{reason}"));
    Value::String(text)
}

#[cfg(test)]
mod tests {
    use crate::config::FunctionRuntime;
    use crate::import::from_sam;
    use crate::import::test_support::{assert_warned, base, env, sam, sam_function, sam_route};
    use crate::import::text::MAX_SHORT_FORM_BYTES;

    #[test]
    fn unresolvable_intrinsics_are_warnings_naming_them() {
        let template = sam(&format!(
            "{}{}{}",
            sam_route("Send", "sendmessage", "Send"),
            sam_function(
                "Send",
                "python3.13",
                r#"      Layers: [!Ref SharedLayer]
      Environment:
        Variables:
          TOPIC_ARN: !GetAtt Topic.TopicArn
          MODE: !If [IsProd, prod, dev]
          QUEUE: !Ref Queue
          BUCKET: !Sub '${Assets}-${AWS::StackName}-${!Literal}'
          SESSIONS: !Ref Sessions
          MISSING: !Ref Nowhere
          FIRST: !Select [0, !Split [',', 'a,b,c']]
          SIZE: !FindInMap [Sizes, !Ref 'AWS::Region', small]
          GONE: !Ref AWS::NoValue
          PORT: 8080
"#
            ),
            r#"
  Topic:
    Type: AWS::SNS::Topic
  Queue:
    Type: AWS::SQS::Queue
  Assets:
    Type: AWS::S3::Bucket
  Sessions:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
  SharedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
Mappings:
  Sizes:
    us-east-1:
      small: 1
"#
        ));
        let imported = from_sam(&template, base()).expect("imports");
        let send = &imported.config.functions["Send"];
        assert_eq!(send.runtime, FunctionRuntime::Python);
        assert_eq!(
            send.environment,
            env(&[
                ("BUCKET", "Assets-chat-${Literal}"),
                ("FIRST", "a"),
                ("MISSING", "!Ref Nowhere"),
                ("MODE", "!If [IsProd, prod, dev]"),
                ("PORT", "8080"),
                ("QUEUE", "Queue"),
                ("SESSIONS", "chat-Sessions"),
                ("SIZE", "1"),
                ("TOPIC_ARN", "!GetAtt Topic.TopicArn"),
            ])
        );
        assert_eq!(
            imported.warnings,
            [
                "function Send: Layers are not available locally (their code is not on the path); ignored",
                "function Send: environment TOPIC_ARN: !GetAtt Topic.TopicArn left unresolved",
                "function Send: environment MODE: !If [IsProd, prod, dev] left unresolved (conditions are not evaluated)",
                "function Send: environment QUEUE: !Ref Queue (AWS::SQS::Queue) resolved to its logical id",
                "function Send: environment BUCKET: !Ref Assets (AWS::S3::Bucket) resolved to its logical id",
                "function Send: environment MISSING: !Ref Nowhere left unresolved (no parameter or resource is named Nowhere)",
                "table Sessions: it has no KeySchema; it is not created",
                "resources not emulated (if the functions use them, run them elsewhere and point the functions at them): Topic (AWS::SNS::Topic), Queue (AWS::SQS::Queue), Assets (AWS::S3::Bucket), SharedLayer (AWS::Serverless::LayerVersion)",
            ]
        );
    }

    #[test]
    fn sub_and_join_past_64_kib_are_left_unresolved() {
        let big = "x".repeat(40_000);
        let small = "y".repeat(1_000);
        let template = format!(
            "Parameters:\n  Big: {{Type: String, Default: {big}}}\n  Small: {{Type: String, Default: {small}}}\n{}",
            sam(&format!(
                "{}{}",
                sam_route("Send", "sendmessage", "Send"),
                sam_function(
                    "Send",
                    "python3.13",
                    "      Environment:\n        Variables:\n          JOINED: !Join ['', [!Ref Big, !Ref Big]]\n          SUBBED: !Sub '${Big}${Big}'\n          ONE: !Join ['-', [!Ref Small, a]]\n"
                )
            ))
        );
        let imported = from_sam(&template, base()).expect("imports");
        let environment = &imported.config.functions["Send"].environment;
        assert_eq!(environment["ONE"], format!("{small}-a"));
        for name in ["JOINED", "SUBBED"] {
            assert!(
                environment[name].len() <= MAX_SHORT_FORM_BYTES + 3,
                "{name}"
            );
            assert_warned(&imported, |w| {
                w.contains(name)
                    && w.contains("left unresolved (resolves to more than 65536 bytes)")
            });
        }
    }
}
