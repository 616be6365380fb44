//! The DynamoDB tables a file declares (`AWS::DynamoDB::Table`, `AWS::Serverless::SimpleTable`)
//! as DynamoDB's `CreateTable` takes them, so that `wsgate dev` can create them at a local
//! endpoint; also the names and ARNs `Ref` and `Fn::GetAtt` give for them.
//!
//! CloudFormation's table properties and `CreateTable`'s request share their names and shapes,
//! so they are kept as they are, with three differences: `StreamSpecification` needs
//! `StreamEnabled: true` beside its `StreamViewType`, `TimeToLiveSpecification` is a call of its
//! own (`UpdateTimeToLive`, once the table exists), and throughput is a number where a template
//! may give text. What has no meaning for a local table (encryption, backups, tags, contributor
//! insights, deletion protection, table class, resource policies, Kinesis streams, imports) is
//! left out without a word.

use serde_json::{Map, Value, json};

use super::cfn::{Cfn, Res, SIMPLE_TABLE, is_table};
use super::text::scalar_text;
use super::types::TableSpec;

/// The stack name when nothing names one: the template's folder has no usable name.
pub(super) const DEFAULT_STACK: &str = "wsgate-dev";

/// A stack name made of `raw` (a folder name, `{service}-{stage}`): CloudFormation allows
/// letters, digits and `-`, starting with a letter; anything else becomes `-`.
pub(super) fn stack_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name
    } else {
        DEFAULT_STACK.to_owned()
    }
}

/// Every table of `all` that can be created, in document order; a table whose name or key
/// schema cannot be resolved is left out with a warning.
pub(super) fn tables(cfn: &Cfn<'_>, all: &[Res<'_>], warnings: &mut Vec<String>) -> Vec<TableSpec> {
    all.iter()
        .filter(|r| is_table(r.kind))
        .filter_map(|res| {
            let context = format!("table {}", res.id);
            res.warn_condition(&context, warnings);
            let table = if res.kind == SIMPLE_TABLE {
                simple_table(cfn, res, &context, warnings)
            } else {
                dynamodb_table(cfn, res, &context, warnings)
            };
            table
                .map_err(|why| warnings.push(format!("{context}: {why}; it is not created")))
                .ok()
        })
        .collect()
}

/// The table's name, or why it has none that can be used.
fn name(cfn: &Cfn<'_>, res: &Res<'_>) -> Result<String, String> {
    let mut notes = Vec::new();
    let name = cfn.table_name(res, &mut notes);
    match name {
        Some(name) if notes.is_empty() => Ok(name),
        _ => Err(format!(
            "its TableName cannot be resolved ({})",
            notes.join("; ")
        )),
    }
}

/// A property, evaluated; `None` when absent or null (`!Ref AWS::NoValue`).
fn prop(
    cfn: &Cfn<'_>,
    res: &Res<'_>,
    key: &str,
    context: &str,
    warnings: &mut Vec<String>,
) -> Option<Value> {
    res.prop(key)
        .map(|v| cfn.eval(v, &format!("{context}: {key}"), warnings))
        .filter(|v| !v.is_null())
}

fn dynamodb_table(
    cfn: &Cfn<'_>,
    res: &Res<'_>,
    context: &str,
    warnings: &mut Vec<String>,
) -> Result<TableSpec, String> {
    let name = name(cfn, res)?;
    let mut get = |key: &str| prop(cfn, res, key, context, warnings);
    let key_schema = get("KeySchema").ok_or("it has no KeySchema")?;
    let attributes = get("AttributeDefinitions").ok_or("it has no AttributeDefinitions")?;
    let on_demand = get("BillingMode")
        .and_then(|m| scalar_text(&m))
        .is_some_and(|m| m == "PAY_PER_REQUEST");
    let mut body = Map::new();
    body.insert("TableName".into(), Value::String(name.clone()));
    body.insert("KeySchema".into(), key_schema);
    body.insert("AttributeDefinitions".into(), attributes);
    if on_demand {
        body.insert("BillingMode".into(), json!("PAY_PER_REQUEST"));
    } else {
        // CloudFormation's default billing mode; it then requires the throughput.
        body.insert("BillingMode".into(), json!("PROVISIONED"));
        let throughput = get("ProvisionedThroughput").ok_or(
            "it is PROVISIONED (BillingMode absent or PROVISIONED) but has no ProvisionedThroughput",
        )?;
        body.insert(
            "ProvisionedThroughput".into(),
            throughput_units(&throughput)?,
        );
    }
    if let Some(indexes) = get("GlobalSecondaryIndexes") {
        body.insert(
            "GlobalSecondaryIndexes".into(),
            indexes_of(&indexes, "GlobalSecondaryIndexes", !on_demand)?,
        );
    }
    if let Some(indexes) = get("LocalSecondaryIndexes") {
        body.insert(
            "LocalSecondaryIndexes".into(),
            indexes_of(&indexes, "LocalSecondaryIndexes", false)?,
        );
    }
    if let Some(view) = get("StreamSpecification")
        .as_ref()
        .and_then(|s| s.get("StreamViewType"))
        .and_then(scalar_text)
    {
        body.insert(
            "StreamSpecification".into(),
            json!({"StreamEnabled": true, "StreamViewType": view}),
        );
    }
    let ttl_attribute = get("TimeToLiveSpecification").and_then(|ttl| {
        let enabled = match ttl.get("Enabled") {
            Some(Value::Bool(b)) => *b,
            Some(other) => scalar_text(other).is_some_and(|t| t.eq_ignore_ascii_case("true")),
            None => false,
        };
        enabled
            .then(|| ttl.get("AttributeName").and_then(scalar_text))
            .flatten()
    });
    Ok(TableSpec {
        logical_id: res.id.to_owned(),
        name,
        create_table: Value::Object(body),
        ttl_attribute,
    })
}

/// `AWS::Serverless::SimpleTable`: a hash key only (`PrimaryKey`, by default `id` of type
/// `String`), on demand unless it gives a `ProvisionedThroughput`.
fn simple_table(
    cfn: &Cfn<'_>,
    res: &Res<'_>,
    context: &str,
    warnings: &mut Vec<String>,
) -> Result<TableSpec, String> {
    let name = name(cfn, res)?;
    let key = prop(cfn, res, "PrimaryKey", context, warnings);
    let key_name = key
        .as_ref()
        .and_then(|k| k.get("Name"))
        .and_then(scalar_text)
        .unwrap_or_else(|| "id".to_owned());
    let key_type = key
        .as_ref()
        .and_then(|k| k.get("Type"))
        .and_then(scalar_text)
        .unwrap_or_else(|| "String".to_owned());
    let attribute_type = match key_type.as_str() {
        "String" => "S",
        "Number" => "N",
        "Binary" => "B",
        other => {
            return Err(format!(
                "PrimaryKey.Type {other} is not String, Number or Binary"
            ));
        }
    };
    let mut body = json!({
        "TableName": name,
        "KeySchema": [{"AttributeName": key_name, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": key_name, "AttributeType": attribute_type}],
        "BillingMode": "PAY_PER_REQUEST",
    });
    if let Some(throughput) = prop(cfn, res, "ProvisionedThroughput", context, warnings) {
        body["BillingMode"] = json!("PROVISIONED");
        body["ProvisionedThroughput"] = throughput_units(&throughput)?;
    }
    Ok(TableSpec {
        logical_id: res.id.to_owned(),
        name,
        create_table: body,
        ttl_attribute: None,
    })
}

/// `ReadCapacityUnits` and `WriteCapacityUnits` as numbers (a template may give them as text).
fn throughput_units(value: &Value) -> Result<Value, String> {
    let units = |key: &str| {
        let v = value.get(key);
        v.and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .ok_or_else(|| format!("ProvisionedThroughput.{key} is not a whole number"))
    };
    Ok(json!({
        "ReadCapacityUnits": units("ReadCapacityUnits")?,
        "WriteCapacityUnits": units("WriteCapacityUnits")?,
    }))
}

/// Secondary indexes with the keys `CreateTable` takes: the name, key schema, projection and,
/// for a global index of a provisioned table, its throughput.
fn indexes_of(value: &Value, key: &str, throughput: bool) -> Result<Value, String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("{key} is not a list"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, index)| {
            let field = |name: &str| {
                index
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("{key}[{i}] has no {name}"))
            };
            let mut out = Map::new();
            out.insert("IndexName".into(), field("IndexName")?);
            out.insert("KeySchema".into(), field("KeySchema")?);
            out.insert("Projection".into(), field("Projection")?);
            if throughput {
                let units = field("ProvisionedThroughput")?;
                out.insert("ProvisionedThroughput".into(), throughput_units(&units)?);
            }
            Ok(Value::Object(out))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Value::Array)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::import::test_support::{base, env, sam, sam_function, sam_route};
    use crate::import::{ImportOptions, from_sam, from_sam_with, from_serverless_with};

    /// A SAM template with one route whose function's environment is `environment` and the
    /// resources `tables`.
    fn template(environment: &str, tables: &str) -> String {
        let parameters = "Parameters:\n  Prefix:\n    Type: String\n    Default: chat\n  ConnectionsName:\n    Type: String\n    Default: simplechat_connections\n";
        format!(
            "{parameters}{}",
            sam(&format!(
                "{}{}{tables}",
                sam_route("Connect", "$connect", "Connect"),
                sam_function(
                    "Connect",
                    "python3.13",
                    &format!("      Environment:\n        Variables:\n{environment}")
                ),
            ))
        )
    }

    const SAM_TABLES: &str = r#"
  Connections:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Ref ConnectionsName
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: connectionId, AttributeType: S}
        - {AttributeName: room, AttributeType: S}
      KeySchema:
        - {AttributeName: connectionId, KeyType: HASH}
      GlobalSecondaryIndexes:
        - IndexName: byRoom
          KeySchema:
            - {AttributeName: room, KeyType: HASH}
          Projection: {ProjectionType: KEYS_ONLY}
          ContributorInsightsSpecification: {Enabled: true}
      TimeToLiveSpecification: {AttributeName: expiresAt, Enabled: true}
      SSESpecification: {SSEEnabled: true}
      PointInTimeRecoverySpecification: {PointInTimeRecoveryEnabled: true}
      DeletionProtectionEnabled: true
      Tags: [{Key: team, Value: chat}]
  Messages:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub '${Prefix}-messages-${AWS::Region}'
      AttributeDefinitions:
        - {AttributeName: room, AttributeType: S}
        - {AttributeName: sentAt, AttributeType: N}
        - {AttributeName: author, AttributeType: S}
      KeySchema:
        - {AttributeName: room, KeyType: HASH}
        - {AttributeName: sentAt, KeyType: RANGE}
      ProvisionedThroughput: {ReadCapacityUnits: '5', WriteCapacityUnits: 2}
      LocalSecondaryIndexes:
        - IndexName: byAuthor
          KeySchema:
            - {AttributeName: room, KeyType: HASH}
            - {AttributeName: author, KeyType: RANGE}
          Projection: {ProjectionType: INCLUDE, NonKeyAttributes: [text]}
      GlobalSecondaryIndexes:
        - IndexName: byAuthorGlobal
          KeySchema:
            - {AttributeName: author, KeyType: HASH}
          Projection: {ProjectionType: ALL}
          ProvisionedThroughput: {ReadCapacityUnits: 1, WriteCapacityUnits: 1}
      StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
      TimeToLiveSpecification: {AttributeName: gone, Enabled: false}
  Sessions:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
"#;

    #[test]
    fn sam_tables_become_create_table_requests_named_as_ref_names_them() {
        let environment = "          CONNECTIONS: !Ref Connections\n          MESSAGES: !Ref Messages\n          SESSIONS: !Ref Sessions\n          SESSIONS_ARN: !GetAtt Sessions.Arn\n          MESSAGES_ARN: !GetAtt [Messages, Arn]\n          INDEX_ARN: !Sub '${Connections.Arn}/index/*'\n          STACK: !Ref AWS::StackName\n          STREAM: !GetAtt Messages.StreamArn\n";
        let imported = from_sam_with(
            &template(environment, SAM_TABLES),
            base(),
            ImportOptions {
                region: Some("eu-west-1"),
                ..ImportOptions::default()
            },
        )
        .expect("imports");
        let arn = "arn:aws:dynamodb:eu-west-1:000000000000:table";
        assert_eq!(
            imported.config.functions["Connect"].environment,
            env(&[
                ("CONNECTIONS", "simplechat_connections"),
                (
                    "INDEX_ARN",
                    &format!("{arn}/simplechat_connections/index/*")
                ),
                ("MESSAGES", "chat-messages-eu-west-1"),
                ("MESSAGES_ARN", &format!("{arn}/chat-messages-eu-west-1")),
                // No TableName: the stack (the template's folder) and the logical id.
                ("SESSIONS", "chat-Sessions"),
                ("SESSIONS_ARN", &format!("{arn}/chat-Sessions")),
                ("STACK", "chat"),
                ("STREAM", "!GetAtt Messages.StreamArn"),
            ])
        );
        // Only the stream's ARN (which has a creation time in it) is left; the tables are no
        // longer "not emulated".
        assert_eq!(
            imported.warnings,
            ["function Connect: environment STREAM: !GetAtt Messages.StreamArn left unresolved"]
        );
        let tables: Vec<(&str, &str)> = imported
            .tables
            .iter()
            .map(|t| (t.logical_id.as_str(), t.name.as_str()))
            .collect();
        assert_eq!(
            tables,
            [
                ("Connections", "simplechat_connections"),
                ("Messages", "chat-messages-eu-west-1"),
                ("Sessions", "chat-Sessions")
            ]
        );
        let [connections, messages, sessions] = imported.tables.as_slice() else {
            panic!("three tables");
        };
        // On demand, a global index without throughput, the TTL for later, and nothing of
        // SSE, backups, tags or the index's contributor insights.
        assert_eq!(
            connections.create_table,
            json!({
                "TableName": "simplechat_connections",
                "KeySchema": [{"AttributeName": "connectionId", "KeyType": "HASH"}],
                "AttributeDefinitions": [
                    {"AttributeName": "connectionId", "AttributeType": "S"},
                    {"AttributeName": "room", "AttributeType": "S"}
                ],
                "BillingMode": "PAY_PER_REQUEST",
                "GlobalSecondaryIndexes": [{
                    "IndexName": "byRoom",
                    "KeySchema": [{"AttributeName": "room", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"}
                }]
            })
        );
        assert_eq!(connections.ttl_attribute.as_deref(), Some("expiresAt"));
        // Provisioned (the default billing mode), throughput as numbers, both kinds of index,
        // the stream enabled, a disabled TTL not applied.
        assert_eq!(
            messages.create_table,
            json!({
                "TableName": "chat-messages-eu-west-1",
                "KeySchema": [
                    {"AttributeName": "room", "KeyType": "HASH"},
                    {"AttributeName": "sentAt", "KeyType": "RANGE"}
                ],
                "AttributeDefinitions": [
                    {"AttributeName": "room", "AttributeType": "S"},
                    {"AttributeName": "sentAt", "AttributeType": "N"},
                    {"AttributeName": "author", "AttributeType": "S"}
                ],
                "BillingMode": "PROVISIONED",
                "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 2},
                "GlobalSecondaryIndexes": [{
                    "IndexName": "byAuthorGlobal",
                    "KeySchema": [{"AttributeName": "author", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                    "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}
                }],
                "LocalSecondaryIndexes": [{
                    "IndexName": "byAuthor",
                    "KeySchema": [
                        {"AttributeName": "room", "KeyType": "HASH"},
                        {"AttributeName": "author", "KeyType": "RANGE"}
                    ],
                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["text"]}
                }],
                "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"}
            })
        );
        assert_eq!(messages.ttl_attribute, None);
        assert_eq!(sessions.create_table["TableName"], "chat-Sessions");
    }

    #[test]
    fn a_parameter_override_renames_the_table_and_its_references() {
        let imported = from_sam_with(
            &template("          TABLE_NAME: !Ref Connections\n", SAM_TABLES),
            base(),
            ImportOptions {
                parameters: &[("ConnectionsName", "chat_local")],
                ..ImportOptions::default()
            },
        )
        .expect("imports");
        assert_eq!(
            imported.config.functions["Connect"].environment["TABLE_NAME"],
            "chat_local"
        );
        assert_eq!(imported.tables[0].name, "chat_local");
        assert_eq!(imported.tables[0].create_table["TableName"], "chat_local");
    }

    #[test]
    fn simple_tables_have_a_hash_key_and_are_on_demand_unless_provisioned() {
        let tables = r#"
  Plain:
    Type: AWS::Serverless::SimpleTable
  Keyed:
    Type: AWS::Serverless::SimpleTable
    Properties:
      TableName: keyed
      PrimaryKey: {Name: connectionId, Type: Number}
      ProvisionedThroughput: {ReadCapacityUnits: 3, WriteCapacityUnits: 4}
      SSESpecification: {SSEEnabled: true}
"#;
        let imported = from_sam(
            &template("          PLAIN: !Ref Plain\n", tables),
            Path::new("/work/My Project"),
        )
        .expect("imports");
        // A folder name with a space becomes a stack name with a dash.
        assert_eq!(
            imported.config.functions["Connect"].environment["PLAIN"],
            "My-Project-Plain"
        );
        assert_eq!(
            imported.tables[0].create_table,
            json!({
                "TableName": "My-Project-Plain",
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST"
            })
        );
        assert_eq!(
            imported.tables[1].create_table,
            json!({
                "TableName": "keyed",
                "KeySchema": [{"AttributeName": "connectionId", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "connectionId", "AttributeType": "N"}],
                "BillingMode": "PROVISIONED",
                "ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 4}
            })
        );
    }

    #[test]
    fn a_table_that_cannot_be_created_is_a_warning_naming_why() {
        let tables = r#"
  NoThroughput:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
  Unnamed:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !ImportValue shared-table
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
  BadIndex:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      GlobalSecondaryIndexes: [{IndexName: x, KeySchema: [{AttributeName: id, KeyType: HASH}]}]
"#;
        // A template without a folder name: the stack is `wsgate-dev`.
        let imported =
            from_sam(&template("          A: b\n", tables), Path::new("")).expect("imports");
        assert!(imported.tables.is_empty(), "{:?}", imported.tables);
        assert_eq!(
            imported.warnings,
            [
                "table NoThroughput: it is PROVISIONED (BillingMode absent or PROVISIONED) but has no ProvisionedThroughput; it is not created",
                "table Unnamed: its TableName cannot be resolved (!ImportValue shared-table left unresolved); it is not created",
                "table BadIndex: GlobalSecondaryIndexes[0] has no Projection; it is not created",
            ]
        );
    }

    #[test]
    fn serverless_resources_tables_resolve_variables_and_refs() {
        let yaml = r#"
service: chat-ws
provider:
  name: aws
  runtime: python3.12
  stage: ${opt:stage, 'dev'}
  environment:
    CONNECTIONS: ${self:custom.connections}
    EVENTS: {Ref: EventsTable}
    EVENTS_ARN: {"Fn::GetAtt": [EventsTable, Arn]}
custom:
  connections: ${self:service}-connections-${sls:stage}
functions:
  connect:
    handler: handler.connect
    events:
      - websocket: $connect
resources:
  Resources:
    ConnectionsTable:
      Type: AWS::DynamoDB::Table
      Properties:
        TableName: ${self:custom.connections}
        BillingMode: PAY_PER_REQUEST
        AttributeDefinitions:
          - {AttributeName: connectionId, AttributeType: S}
        KeySchema:
          - {AttributeName: connectionId, KeyType: HASH}
        TimeToLiveSpecification:
          AttributeName: ttl
          Enabled: true
    EventsTable:
      Type: AWS::DynamoDB::Table
      Properties:
        BillingMode: ${self:custom.billing, 'PAY_PER_REQUEST'}
        AttributeDefinitions:
          - {AttributeName: pk, AttributeType: S}
        KeySchema:
          - {AttributeName: pk, KeyType: HASH}
"#;
        let imported = from_serverless_with(
            yaml,
            Path::new("/projects/chat"),
            ImportOptions {
                stage: Some("local"),
                ..ImportOptions::default()
            },
        )
        .expect("imports");
        assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
        // A table without TableName is in the stack the Framework deploys: {service}-{stage}.
        assert_eq!(
            imported.config.functions["connect"].environment,
            env(&[
                ("CONNECTIONS", "chat-ws-connections-local"),
                ("EVENTS", "chat-ws-local-EventsTable"),
                (
                    "EVENTS_ARN",
                    "arn:aws:dynamodb:us-east-1:000000000000:table/chat-ws-local-EventsTable"
                ),
            ])
        );
        let [connections, events] = imported.tables.as_slice() else {
            panic!("two tables: {:?}", imported.tables);
        };
        assert_eq!(connections.name, "chat-ws-connections-local");
        assert_eq!(
            connections.create_table["TableName"],
            "chat-ws-connections-local"
        );
        assert_eq!(connections.ttl_attribute.as_deref(), Some("ttl"));
        assert_eq!(
            events.create_table,
            json!({
                "TableName": "chat-ws-local-EventsTable",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST"
            })
        );
    }

    #[test]
    fn stack_names_keep_letters_digits_and_dashes() {
        assert_eq!(stack_name("chat-ws-dev"), "chat-ws-dev");
        assert_eq!(stack_name("my_app.v2"), "my-app-v2");
        assert_eq!(stack_name("2fast"), DEFAULT_STACK);
        assert_eq!(stack_name(""), DEFAULT_STACK);
    }
}
