"""`wsgate dev --dynamodb URL` (or AWS_ENDPOINT_URL_DYNAMODB in its environment): the DynamoDB
tables a SAM template or a serverless.yml declares are created at a local DynamoDB (moto's server
mode) before the listening line, with their key schema, indexes, billing mode and TTL; a table
that is there already is left alone; the handlers get the endpoint, so boto3 in a handler with no
endpoint_url finds the tables; a template edit that adds a table creates it; an endpoint that
cannot be reached is an error line and dev goes on."""

import os
import re
import time

import boto3
import pytest

from conftest import open_ws
from test_chat_example import VENV_BIN, free_port, moto  # noqa: F401  (moto is a fixture)

REGION = "us-east-1"

HANDLER = '''
import os
import boto3

# No endpoint_url: the handler finds DynamoDB through AWS_ENDPOINT_URL_DYNAMODB, as deployed code
# finds the real one.
table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


def connect(event, context):
    table.put_item(Item={"connectionId": event["requestContext"]["connectionId"], "room": "lobby"})
    return {"statusCode": 200}
'''

SAM = '''
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  TableName:
    Type: String
    Default: dev_tables_connections
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: api
      ProtocolType: WEBSOCKET
      RouteSelectionExpression: $request.body.action
  ConnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref Api
      RouteKey: $connect
      Target: !Join ["/", ["integrations", !Ref ConnectIntegration]]
  ConnectIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${ConnectFunction.Arn}/invocations
  ConnectFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.connect
      Runtime: python3.12
      Environment:
        Variables:
          TABLE_NAME: !Ref ConnectionsTable
  ConnectionsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Ref TableName
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
      TimeToLiveSpecification: {AttributeName: expiresAt, Enabled: true}
      SSESpecification: {SSEEnabled: true}
  MessagesTable:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions:
        - {AttributeName: room, AttributeType: S}
        - {AttributeName: sentAt, AttributeType: N}
      KeySchema:
        - {AttributeName: room, KeyType: HASH}
        - {AttributeName: sentAt, KeyType: RANGE}
      ProvisionedThroughput: {ReadCapacityUnits: 2, WriteCapacityUnits: 3}
      StreamSpecification: {StreamViewType: NEW_IMAGE}
  ExistingTable:
    Type: AWS::Serverless::SimpleTable
    Properties:
      TableName: dev_tables_existing
      PrimaryKey: {Name: id, Type: String}
'''

ADDED = '''
  AddedTable:
    Type: AWS::Serverless::SimpleTable
'''

SERVERLESS = '''
service: tables-svc
provider:
  name: aws
  runtime: python3.12
  stage: ${opt:stage, 'local'}
  environment:
    TABLE_NAME: {Ref: EventsTable}
custom:
  sessions: ${self:service}-sessions-${sls:stage}
functions:
  connect:
    handler: src/app.connect
    events:
      - websocket: $connect
resources:
  Resources:
    SessionsTable:
      Type: AWS::DynamoDB::Table
      Properties:
        TableName: ${self:custom.sessions}
        BillingMode: PAY_PER_REQUEST
        AttributeDefinitions:
          - {AttributeName: connectionId, AttributeType: S}
        KeySchema:
          - {AttributeName: connectionId, KeyType: HASH}
        TimeToLiveSpecification: {AttributeName: ttl, Enabled: true}
    EventsTable:
      Type: AWS::DynamoDB::Table
      Properties:
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
            Projection: {ProjectionType: ALL}
'''


def dynamodb(url):
    return boto3.client("dynamodb", endpoint_url=url, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


def project(tmp_path, name, text):
    folder = tmp_path / "project"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "app.py").write_text(HANDLER)
    path = folder / name
    path.write_text(text)
    return path


def handler_env(**extra):
    """The handlers run on the compat virtualenv's python (which has boto3)."""
    return {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "AWS_REGION": REGION,
            "WSGATE_LOG": "info", **extra}


def wait_for_log(gw, pattern, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if re.search(pattern, gw.stderr()):
            return
        time.sleep(0.1)
    raise AssertionError(f"no log line matching {pattern!r}:\n{gw.stderr()}")


def keys(table):
    return {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]}


def billing(table):
    return table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")


def items_after_connect(gw, client, name):
    """Opens a connection ($connect writes its id into `name`) and returns the table's items."""
    ws = open_ws(gw.ws_url, open_timeout=20)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            items = client.scan(TableName=name)["Items"]
            if items:
                return items
            time.sleep(0.1)
        return []
    finally:
        ws.close()


def test_sam_tables_are_created_and_handlers_reach_them(moto, dev_gateway, tmp_path):
    client = dynamodb(moto)
    # There before wsgate starts, with another schema than the template's: left as it is.
    client.create_table(TableName="dev_tables_existing", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "other", "AttributeType": "N"}],
                        KeySchema=[{"AttributeName": "other", "KeyType": "HASH"}])
    template = project(tmp_path, "template.yaml", SAM)
    gw = dev_gateway(["--sam", str(template), "--dynamodb", moto], env=handler_env())

    connections = client.describe_table(TableName="dev_tables_connections")["Table"]
    assert connections["TableStatus"] == "ACTIVE"
    assert keys(connections) == {"connectionId": "HASH"}
    assert billing(connections) == "PAY_PER_REQUEST"
    assert [i["IndexName"] for i in connections["GlobalSecondaryIndexes"]] == ["byRoom"]
    ttl = client.describe_time_to_live(TableName="dev_tables_connections")["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "expiresAt"

    # No TableName: the stack (the template's folder) and the logical id.
    messages = client.describe_table(TableName="project-MessagesTable")["Table"]
    assert keys(messages) == {"room": "HASH", "sentAt": "RANGE"}
    assert billing(messages) == "PROVISIONED"
    assert messages["ProvisionedThroughput"]["ReadCapacityUnits"] == 2
    assert messages["ProvisionedThroughput"]["WriteCapacityUnits"] == 3
    assert messages["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}

    existing = client.describe_table(TableName="dev_tables_existing")["Table"]
    assert keys(existing) == {"other": "HASH"}

    log = gw.stderr()
    assert re.search(r"DynamoDB table created.*table=dev_tables_connections", log), log
    assert re.search(r"DynamoDB table created.*table=project-MessagesTable", log), log
    assert re.search(r"DynamoDB table already there; left as it is.*table=dev_tables_existing", log), log

    # The handler's boto3 has no endpoint_url: it found moto through the environment.
    items = items_after_connect(gw, client, "dev_tables_connections")
    assert len(items) == 1 and items[0]["room"] == {"S": "lobby"}, items

    # A table added to the template is created on reload; the others are not looked at again.
    template.write_text(template.read_text() + ADDED)
    wait_for_log(gw, r"DynamoDB table created.*table=project-AddedTable")
    added = client.describe_table(TableName="project-AddedTable")["Table"]
    assert keys(added) == {"id": "HASH"}
    assert len(re.findall(r"table=dev_tables_existing", gw.stderr())) == 1


def test_serverless_tables_through_the_environment_variable(moto, dev_gateway, tmp_path):
    client = dynamodb(moto)
    path = project(tmp_path, "serverless.yml", SERVERLESS)
    gw = dev_gateway(["--serverless", str(path)], env=handler_env(AWS_ENDPOINT_URL_DYNAMODB=moto))

    sessions = client.describe_table(TableName="tables-svc-sessions-local")["Table"]
    assert keys(sessions) == {"connectionId": "HASH"}
    ttl = client.describe_time_to_live(TableName="tables-svc-sessions-local")["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "ttl"

    # No TableName: the Framework's stack, {service}-{stage}; `Ref: EventsTable` is that name too.
    events = client.describe_table(TableName="tables-svc-local-EventsTable")["Table"]
    assert billing(events) == "PAY_PER_REQUEST"
    assert [i["IndexName"] for i in events["GlobalSecondaryIndexes"]] == ["byRoom"]
    items = items_after_connect(gw, client, "tables-svc-local-EventsTable")
    assert len(items) == 1, items


def test_an_unreachable_endpoint_is_an_error_line_and_dev_goes_on(dev_gateway, tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"
    template = project(tmp_path, "template.yaml", SAM)
    # The flag wins over the variable.
    env = handler_env(AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:9/not-this-one")
    gw = dev_gateway(["--sam", str(template), "--dynamodb", endpoint], env=env)
    log = gw.stderr()
    for name in ("dev_tables_connections", "project-MessagesTable", "dev_tables_existing"):
        line = next((l for l in log.splitlines() if f"table={name}" in l), None)
        assert line is not None, log
        assert "ERROR" in line and "not created" in line, line
        assert f"endpoint={endpoint}" in line and "cannot reach the endpoint" in line, line
    assert gw.proc.poll() is None
    # The gateway serves: a connection whose $connect fails is refused, not hung.
    with pytest.raises(Exception):
        open_ws(gw.ws_url, open_timeout=20).close()
    assert gw.proc.poll() is None


BAD = '''
  BadTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: dev_tables_bad
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: a, AttributeType: S}]
      KeySchema: [{AttributeName: b, KeyType: HASH}]
'''


def test_a_refused_create_table_is_an_error_line_with_the_services_message(moto, dev_gateway, tmp_path):
    template = project(tmp_path, "template.yaml", SAM + BAD)
    gw = dev_gateway(["--sam", str(template), "--dynamodb", moto], env=handler_env())
    line = next((l for l in gw.stderr().splitlines() if "table=dev_tables_bad" in l), None)
    assert line is not None, gw.stderr()
    assert "ERROR" in line and f"endpoint={moto}" in line, line
    assert "CreateTable refused: ValidationException: One or more parameter values were invalid" in line, line
    # The other tables are there, and the gateway serves.
    client = dynamodb(moto)
    assert client.describe_table(TableName="dev_tables_connections")["Table"]["TableStatus"] == "ACTIVE"
    assert len(items_after_connect(gw, client, "dev_tables_connections")) == 1
