//! Reading the YAML: saphyr's nodes become JSON values, with CloudFormation's short-form tags
//! (`!Ref X`, `!GetAtt X.Arn`, `!Sub ...`) rewritten to the long form (`{"Ref": "X"}`,
//! `{"Fn::GetAtt": ["X", "Arn"]}`) and merge keys applied, so that both forms (and JSON
//! templates, which are YAML) read the same from here on; `intrinsic.rs` then recognizes a
//! long-form function wherever a value may hold one.

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::{Map, Number, Value};

use super::text::cut_at_short_form;
use super::types::{ImportError, invalid};

/// Parses the first YAML document; it must be a mapping.
pub(super) fn parse_yaml(text: &str, what: &str) -> Result<Map<String, Value>, ImportError> {
    let docs = Yaml::load_from_str(text).map_err(|e| ImportError::Syntax {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_owned(),
    })?;
    match docs.first().map(to_json) {
        Some(Value::Object(map)) => Ok(map),
        Some(Value::Null) | None => Err(invalid(what, "the file is empty")),
        Some(_) => Err(invalid(what, "expected a mapping at the top level")),
    }
}

/// A YAML node as JSON, with short-form CloudFormation tags rewritten to the long form and merge
/// keys (`<<: *defaults`) applied.
fn to_json(node: &Yaml) -> Value {
    match node {
        Yaml::Value(scalar) => scalar_json(scalar),
        Yaml::Representation(text, ..) => Value::String(text.to_string()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Mapping(entries) => {
            let mut map = Map::new();
            let mut merged = Vec::new();
            for (key, value) in entries {
                let key = key_text(key);
                if key == "<<" {
                    merged.push(to_json(value));
                } else {
                    map.insert(key, to_json(value));
                }
            }
            // Explicit keys win over merged ones, whatever the order.
            for source in merged {
                let sources = match source {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                for source in sources {
                    if let Value::Object(entries) = source {
                        for (key, value) in entries {
                            map.entry(key).or_insert(value);
                        }
                    }
                }
            }
            Value::Object(map)
        }
        Yaml::Tagged(tag, inner) => {
            let inner = to_json(inner);
            if tag.handle == "!" {
                long_form(&tag.suffix, inner)
            } else {
                inner
            }
        }
        _ => Value::Null,
    }
}

fn scalar_json(scalar: &Scalar) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => Number::from_f64(f.into_inner())
            .map_or_else(|| Value::String(f.to_string()), Value::Number),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

fn key_text(key: &Yaml) -> String {
    match to_json(key) {
        Value::String(s) => s,
        Value::Null => "null".to_owned(),
        // A mapping or a list as a key (`? ...`): its JSON, cut at 1 KiB. Uncut, keys nested in
        // keys escape each other's quotes, doubling at every level: a 70-byte file ran for over
        // 30 s, hundreds of megabytes and growing (found by fuzzing).
        other => cut_at_short_form(|out| std::fmt::Write::write_fmt(out, format_args!("{other}"))),
    }
}

/// `!Ref X` → `{"Ref": "X"}`, `!GetAtt A.B` → `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` →
/// `{"Fn::Sub": s}`, and so on for every other function.
fn long_form(tag: &str, arg: Value) -> Value {
    let (key, arg) = match tag {
        "Ref" | "Condition" => (tag.to_owned(), arg),
        "GetAtt" => {
            let arg = match arg {
                Value::String(s) => match s.split_once('.') {
                    Some((resource, attribute)) => Value::Array(vec![
                        Value::String(resource.to_owned()),
                        Value::String(attribute.to_owned()),
                    ]),
                    None => Value::String(s),
                },
                other => other,
            };
            ("Fn::GetAtt".to_owned(), arg)
        }
        _ => (format!("Fn::{tag}"), arg),
    };
    let mut map = Map::new();
    map.insert(key, arg);
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::import::cfn::{lambda_name_in_arn, refs};
    use crate::import::test_support::{base, env, function_route};
    use crate::import::text::MAX_SHORT_FORM_BYTES;
    use crate::import::{ImportError, from_sam, from_serverless};

    #[test]
    fn long_form_json_reads_like_short_form_yaml() {
        let template = r#"{
          "Parameters": {"Stage": {"Type": "String", "Default": "beta"}},
          "Resources": {
            "Api": {"Type": "AWS::ApiGatewayV2::Api",
                    "Properties": {"ProtocolType": "WEBSOCKET",
                                   "RouteSelectionExpression": "${request.body.type}"}},
            "Route": {"Type": "AWS::ApiGatewayV2::Route",
                      "Properties": {"ApiId": {"Ref": "Api"}, "RouteKey": "ping",
                                     "RouteResponseSelectionExpression": "$default",
                                     "Target": {"Fn::Join": ["/", ["integrations", {"Ref": "Integ"}]]}}},
            "Response": {"Type": "AWS::ApiGatewayV2::RouteResponse",
                         "Properties": {"ApiId": {"Ref": "Api"}, "RouteId": {"Ref": "Route"},
                                        "RouteResponseKey": "$default"}},
            "Integ": {"Type": "AWS::ApiGatewayV2::Integration",
                      "Properties": {"ApiId": {"Ref": "Api"}, "IntegrationType": "AWS_PROXY",
                                     "IntegrationUri": {"Fn::Join": ["", [
                                        "arn:aws:apigateway:", {"Ref": "AWS::Region"},
                                        ":lambda:path/2015-03-31/functions/",
                                        {"Fn::GetAtt": ["Ping", "Arn"]}, "/invocations"]]}}},
            "ProdStage": {"Type": "AWS::ApiGatewayV2::Stage",
                      "Properties": {"ApiId": {"Ref": "Api"}, "StageName": {"Ref": "Stage"}}},
            "Ping": {"Type": "AWS::Lambda::Function",
                     "Properties": {"Code": "ping", "Handler": "index.handler",
                                    "Runtime": "nodejs22.x", "Timeout": 5, "MemorySize": 512,
                                    "Environment": {"Variables": {
                                        "REGION": {"Fn::Sub": "${AWS::Region}"},
                                        "API": {"Fn::Sub": ["wss://${Id}.example/${Stage}", {"Id": {"Ref": "Api"}}]}}}}}
          }
        }"#;
        let imported = from_sam(template, base()).expect("imports");
        let config = &imported.config;
        assert_eq!(imported.warnings, Vec::<String>::new());
        assert_eq!(config.gateway.stage, "beta");
        assert_eq!(
            config.gateway.route_selection_expression,
            "${request.body.type}"
        );
        assert_eq!(function_route(config, "ping"), ("Ping".to_owned(), true));
        let ping = &config.functions["Ping"];
        assert_eq!(ping.dir, Path::new("ping"));
        assert_eq!(ping.timeout, Some(Duration::from_secs(5)));
        assert_eq!(ping.memory_size, 512);
        assert_eq!(
            ping.environment,
            env(&[("API", "wss://local.example/beta"), ("REGION", "us-east-1")])
        );
    }

    #[test]
    fn keys_nested_in_keys_are_cut_at_a_kilobyte() {
        // Found by fuzzing (fuzz/repro/config/nested-complex-keys-timeout.yml): 70 bytes of
        // `? ? ? ...` ran for over 30 s and 733 MB, each key's JSON escaping the one inside it.
        let text = include_str!("../../../../fuzz/repro/config/nested-complex-keys-timeout.yml");
        let doc = parse_yaml(text, "t").expect("parses");
        let mut longest = 0;
        let mut keys: Vec<(&String, &Value)> = doc.iter().collect();
        while let Some((key, value)) = keys.pop() {
            longest = longest.max(key.len());
            if let Value::Object(map) = value {
                keys.extend(map.iter());
            }
        }
        assert!(
            longest <= MAX_SHORT_FORM_BYTES + '…'.len_utf8(),
            "{longest}"
        );
        let small = parse_yaml("? {a: 1}\n: v\n? [x, y]\n: w\n", "t").expect("parses");
        assert_eq!(
            Value::Object(small),
            serde_json::json!({r#"{"a":1}"#: "v", r#"["x","y"]"#: "w"})
        );
    }

    #[test]
    fn yaml_syntax_errors_have_a_location() {
        let e = from_sam("Resources:\n  Api:\n    Type: [a, b\n  Other: 1\n", base())
            .expect_err("bad yaml");
        let ImportError::Syntax { line, column, .. } = &e else {
            panic!("{e:?}");
        };
        assert_eq!((*line, *column), (4, 8), "{e}");
        assert!(
            e.to_string()
                .starts_with("YAML syntax error at line 4, column 8: "),
            "{e}"
        );

        let e = from_serverless("service: a\nservice: b\n", base()).expect_err("duplicate key");
        assert!(matches!(e, ImportError::Syntax { line: 2, .. }), "{e}");
        let e = from_serverless("", base()).expect_err("empty");
        assert_eq!(e.to_string(), "serverless.yml: the file is empty");
        let e = from_sam("- a\n- b\n", base()).expect_err("a list");
        assert_eq!(
            e.to_string(),
            "template: expected a mapping at the top level"
        );
    }

    #[test]
    fn merge_keys_and_anchors_apply() {
        let yaml = r#"
x-defaults: &defaults
  handler: handler.run
  runtime: python3.11
  timeout: 3
functions:
  one:
    <<: *defaults
    timeout: 4
    events: [websocket: one]
  two:
    <<: *defaults
    events: [websocket: two]
"#;
        let imported = from_serverless(yaml, base()).expect("imports");
        let functions = &imported.config.functions;
        assert_eq!(functions["one"].timeout, Some(Duration::from_secs(4)));
        assert_eq!(functions["two"].timeout, Some(Duration::from_secs(3)));
        assert_eq!(functions["two"].handler.as_deref(), Some("handler.run"));
        assert_eq!(imported.warnings, Vec::<String>::new());
    }

    #[test]
    fn short_forms_become_long_forms() {
        let doc = parse_yaml(
            "a: !Ref X\nb: !GetAtt T.StreamArn\nc: !Sub ['${A}', {A: !Ref Y}]\nd: !GetAtt [T, Arn]\ne: !Condition C\nf: '!Ref Z'\n",
            "t",
        )
        .expect("parses");
        let json = Value::Object(doc);
        assert_eq!(
            json,
            serde_json::json!({
                "a": {"Ref": "X"},
                "b": {"Fn::GetAtt": ["T", "StreamArn"]},
                "c": {"Fn::Sub": ["${A}", {"A": {"Ref": "Y"}}]},
                "d": {"Fn::GetAtt": ["T", "Arn"]},
                "e": {"Condition": "C"},
                "f": "!Ref Z",
            })
        );
        let mut ids = Vec::new();
        refs(&json, &mut ids);
        assert_eq!(ids, ["X", "T", "Y"]);
        assert_eq!(
            lambda_name_in_arn(
                "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:1:function:chat:live/invocations"
            ),
            Some("chat")
        );
    }
}
