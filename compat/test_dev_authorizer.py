"""`wsgate dev --serverless`: a service whose `$connect` has `authorizer: auth` runs its own
authorizer function locally, with API Gateway's identity source default, status codes and context."""

import json

import pytest
from websockets.exceptions import InvalidStatus

from conftest import open_ws

SERVERLESS = """
service: chat-auth
frameworkVersion: '3'
provider:
  name: aws
  runtime: python3.12
  stage: dev
functions:
  auth:
    handler: src/auth.handler
  connect:
    handler: src/handlers.connect
    events:
      - websocket:
          route: $connect
          authorizer: auth
  default:
    handler: src/handlers.default
    events:
      - websocket:
          route: $default
          routeResponseSelectionExpression: $default
"""

AUTH = '''
def handler(event, context):
    token = event["headers"].get("Auth", "")
    if token == "boom":
        raise Exception("Unauthorized")
    effect = "Deny" if token == "deny" else "Allow"
    return {
        "principalId": token,
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}]},
        "context": {"plan": "pro", "seats": 5},
    }
'''

HANDLERS = '''
def connect(event, context):
    return {"statusCode": 200}

def default(event, context):
    authorizer = event["requestContext"]["authorizer"]
    return {"statusCode": 200, "body": "%s/%s/%s" % (authorizer["principalId"], authorizer["plan"], authorizer["seats"])}
'''


@pytest.fixture
def dev(tmp_path, dev_gateway):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "auth.py").write_text(AUTH)
    (tmp_path / "src" / "handlers.py").write_text(HANDLERS)
    (tmp_path / "serverless.yml").write_text(SERVERLESS)
    return dev_gateway(["--serverless", str(tmp_path / "serverless.yml")]).ws_url


def status_of(url, headers=None):
    with pytest.raises(InvalidStatus) as info:
        open_ws(url, additional_headers=headers or {}, open_timeout=20)
    return info.value.response.status_code


def test_the_services_own_authorizer_guards_connect(dev):
    # serverless's default identity source is the Auth header: without it, 401 and no call.
    assert status_of(dev) == 401
    assert status_of(dev, {"Auth": "deny"}) == 403
    assert status_of(dev, {"Auth": "boom"}) == 401
    ws = open_ws(dev, additional_headers={"Auth": "alice"}, open_timeout=20)
    try:
        ws.send(json.dumps({"action": "anything"}))
        assert ws.recv(timeout=20) == "alice/pro/5"
    finally:
        ws.close()
