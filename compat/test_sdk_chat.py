"""examples/sdk-chat, an app in the style of most apps deployed on API Gateway, run unmodified by
`wsgate dev`: Node.js 20 ES modules on the AWS SDK for JavaScript v3 (and a Python twin on boto3)
that post to `https://{apiId}.execute-api.{region}.amazonaws.com/{stage}`, a DynamoDB table that
only the template declares (created by wsgate in moto's server mode), and SDKs that are not
installed in the project (provided by `--provide-sdks`, fetched with npm and pip). The log shows
Lambda's START / END / REPORT lines, its timeout message, and a one-way route's 500.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import websockets.sync.client as ws_client

from conftest import REPO_DIR
from test_chat_example import moto  # noqa: F401  (a fixture)

EXAMPLE = REPO_DIR / "examples" / "sdk-chat"
VENV_BIN = Path(sys.executable).parent

# Two routes of the test's own, added to a copy of the template: a handler that sleeps past
# Lambda's default timeout of 3 s, and one that answers 500 on a one-way route.
EXTRA_RESOURCES = """
  SlowRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref ChatApi
      RouteKey: slow
      Target: !Join ["/", ["integrations", !Ref SlowIntegration]]
  SlowIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref ChatApi
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${SlowFunction.Arn}/invocations
  SlowFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: extra/
      Handler: slow.handler
  FailRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref ChatApi
      RouteKey: fail
      Target: !Join ["/", ["integrations", !Ref FailIntegration]]
  FailIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref ChatApi
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${FailFunction.Arn}/invocations
  FailFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: extra/
      Handler: fail.handler
"""

SLOW = "export const handler = async () => { await new Promise((r) => setTimeout(r, 5000)); return { statusCode: 200 }; };\n"
FAIL = "export const handler = async () => ({ statusCode: 500, body: 'boom: the flux capacitor is empty' });\n"


@pytest.fixture(scope="module")
def sdk_cache(tmp_path_factory):
    """wsgate's cache for --provide-sdks, shared by this module's tests (npm and pip run once)."""
    return tmp_path_factory.mktemp("wsgate-cache")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """A folder to put first on the PATH whose python3 has pip but not boto3, as on a machine
    where nobody installed the SDK."""
    venv = tmp_path_factory.mktemp("bare-python") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    probe = subprocess.run([str(venv / "bin" / "python3"), "-c", "import boto3"], capture_output=True)
    assert probe.returncode != 0, "the bare virtualenv must not see boto3"
    return venv / "bin"


def dynamodb(url):
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def connection_ids(db, table):
    return {item["connectionId"]["S"] for item in db.scan(TableName=table)["Items"]}


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def connect(url):
    return ws_client.connect(url, open_timeout=30, close_timeout=2).__enter__()


def say(ws, text):
    ws.send(json.dumps({"action": "sendmessage", "data": text}))


def chat_and_leave(url, db, table):
    """Two clients chat, a third joins and hears the next message, one leaves and its id leaves
    the table."""
    alice = connect(url)
    first = wait_for(lambda: connection_ids(db, table), 10, "alice in the table")
    bob = connect(url)
    bob_id = (wait_for(lambda: connection_ids(db, table) - first, 10, "bob in the table")).pop()
    say(alice, "hi bob")
    assert alice.recv(timeout=30) == "hi bob"
    assert bob.recv(timeout=30) == "hi bob"
    carol = connect(url)
    wait_for(lambda: len(connection_ids(db, table)) == 3, 10, "carol in the table")
    say(bob, "welcome carol")
    for ws in (alice, bob, carol):
        assert ws.recv(timeout=30) == "welcome carol"
    bob.close()
    wait_for(lambda: bob_id not in connection_ids(db, table), 15, "bob's id to leave the table")
    assert len(connection_ids(db, table)) == 2
    say(carol, "bye bob")
    assert alice.recv(timeout=30) == "bye bob"
    assert carol.recv(timeout=30) == "bye bob"
    return alice, carol


def test_node_sample_runs_unmodified(moto, dev_gateway, sdk_cache, tmp_path):  # noqa: F811
    project = tmp_path / "sdk-chat"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("python"))
    assert not (project / "node_modules").exists()
    template = project / "template.yaml"
    text = template.read_text()
    assert "Timeout" not in text, "the example leaves the timeout to Lambda's default"
    template.write_text(text.replace("\nResources:\n", "\nResources:\n" + EXTRA_RESOURCES, 1))
    (project / "extra").mkdir()
    (project / "extra" / "slow.mjs").write_text(SLOW)
    (project / "extra" / "fail.mjs").write_text(FAIL)
    env = {"WSGATE_CACHE_DIR": str(sdk_cache), "AWS_ENDPOINT_URL_DYNAMODB": "", "WSGATE_LOG": "info"}
    dev = dev_gateway(["--sam", str(template), "--dynamodb", moto, "--provide-sdks"], env=env,
                      start_timeout=300)
    db = dynamodb(moto)
    table = "sdk_chat_connections"
    assert db.describe_table(TableName=table)["Table"]["KeySchema"] == [
        {"AttributeName": "connectionId", "KeyType": "HASH"}]

    alice, carol = chat_and_leave(dev.ws_url, db, table)

    log = dev.stderr()
    reports = re.findall(r"REPORT RequestId: \S+\s+Duration: [\d.]+ ms\s+Billed Duration: \d+ ms"
                         r"\s+Memory Size: \d+ MB\s+Max Memory Used: \d+ MB.*", log)
    assert reports, log[-4000:]
    assert any("Init Duration" in line for line in reports)
    assert any("Init Duration" not in line for line in reports), "warm invocations have none"
    assert re.search(r"START RequestId: \S+ Version: \$LATEST", log)
    assert re.search(r"END RequestId: \S+", log)

    alice.send(json.dumps({"action": "slow"}))
    assert "Endpoint request timed out" in alice.recv(timeout=15)
    wait_for(lambda: "Task timed out after 3.00 seconds" in dev.stderr(), 5, "Lambda's timeout message")

    alice.send(json.dumps({"action": "fail"}))
    warning = wait_for(lambda: re.search(r".*WARN.*fail.*500.*boom: the flux capacitor.*", dev.stderr()), 15,
                       "the warning about the one-way route's 500")
    assert "fail" in warning.group(0)
    for ws in (alice, carol):
        ws.close()


def test_python_twin_on_boto3(moto, dev_gateway, sdk_cache, bare_python, tmp_path):  # noqa: F811
    project = tmp_path / "sdk-chat"
    shutil.copytree(EXAMPLE / "python", project)
    env = {
        "PATH": f"{bare_python}{os.pathsep}{os.environ.get('PATH', '')}",
        "WSGATE_CACHE_DIR": str(sdk_cache),
        "AWS_ENDPOINT_URL_DYNAMODB": moto,  # the variable instead of --dynamodb
        "WSGATE_LOG": "info",
    }
    dev = dev_gateway(["--sam", str(project / "template.yaml"), "--provide-sdks"], env=env, start_timeout=300)
    db = dynamodb(moto)
    for ws in chat_and_leave(dev.ws_url, db, "sdk_chat_connections_py"):
        ws.close()
    assert "REPORT RequestId:" in dev.stderr()


def test_a_missing_sdk_is_named_with_the_command_that_installs_it(dev_gateway, bare_python, tmp_path):
    node = tmp_path / "node"
    shutil.copytree(EXAMPLE, node, ignore=shutil.ignore_patterns("python"))
    python = tmp_path / "python"
    shutil.copytree(EXAMPLE / "python", python)
    env = {
        "PATH": f"{bare_python}{os.pathsep}{os.environ.get('PATH', '')}",
        "WSGATE_CACHE_DIR": str(tmp_path / "empty-cache"),
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9",
        "WSGATE_LOG": "info",
    }
    for project, expected in [
        (node, ["@aws-sdk/client-dynamodb", f'npm install --prefix "{node / "onconnect"}" @aws-sdk/client-dynamodb',
                "--provide-sdks"]),
        (python, ["No module named 'boto3'", f"{bare_python / 'python3'} -m pip install boto3", "--provide-sdks"]),
    ]:
        dev = dev_gateway(["--sam", str(project / "template.yaml")], env=env)
        with pytest.raises(Exception) as refused:
            connect(dev.ws_url)
        assert "HTTP 5" in str(refused.value)
        log = wait_for(lambda: "Unable to import module" in dev.stderr() and dev.stderr(), 10, "the import error")
        for text in expected:
            assert text in log, (text, log[-3000:])
        dev.stop(wait=10)


POSTER = '''
import json, os, subprocess, sys

import boto3


def handler(event, context):
    request = event["requestContext"]
    url = f"https://{request['apiId']}.execute-api.{os.environ['AWS_REGION']}.amazonaws.com/{request['stage']}"
    boto3.client("apigatewaymanagementapi", endpoint_url=url).post_to_connection(
        ConnectionId=request["connectionId"], Data=b"from the handler")
    # A process the handler starts is redirected too.
    child = "import boto3, sys; boto3.client('apigatewaymanagementapi', endpoint_url=sys.argv[1])" \\
            ".post_to_connection(ConnectionId=sys.argv[2], Data=b'from its child')"
    subprocess.run([sys.executable, "-c", child, url, request["connectionId"]], check=True, timeout=20)
    return {"statusCode": 200}
'''


def test_a_command_runtime_reaches_the_gateway_by_the_api_name(dev_gateway, tmp_path):
    """awslambdaric (runtime = "command") and a process its handler starts: both post through
    the API's default host name and reach wsgate, over TLS, with the development CA."""
    (tmp_path / "app.py").write_text(POSTER)
    (tmp_path / "wsgate.toml").write_text(f'''
[gateway]
stage = "dev"

[functions.poster]
runtime = "command"
command = {json.dumps([sys.executable, "-m", "awslambdaric", "app.handler"])}
dir = "."
timeout = "20s"

[routes."$default"]
type = "function"
function = "poster"
''')
    dev = dev_gateway(["--config", str(tmp_path / "wsgate.toml")], env={"WSGATE_LOG": "info"})
    ws = connect(dev.ws_url)
    ws.send("go")
    assert {ws.recv(timeout=30), ws.recv(timeout=30)} == {"from the handler", "from its child"}
    ws.close()
