"""8. `[management] auth = "sigv4"`: boto3's signatures verify; bad or missing ones get 403."""

import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from conftest import (ACCESS_KEY, REPO_DIR, SECRET_KEY, assert_no_message, connect_tagged,
                      mgmt_client, recv, render_config, sigv4_management, wait_close)


@pytest.fixture
def env(gateway_factory, stub, clients):
    gw = gateway_factory(render_config({
        "$connect": {"type": "http", "url": stub.url("/connect")},
        "$default": {"type": "mock", "body": "${request.body}", "route_response": True},
    }, **sigv4_management()))

    class Env:
        pass

    e = Env()
    e.gw = gw

    def open_client():
        ws, event = connect_tagged(clients, gw, stub)
        return ws, event["requestContext"]["connectionId"]

    e.open = open_client
    return e


@pytest.mark.parametrize("region", ["eu-west-1", "us-east-1", "ap-southeast-2"])
def test_sigv4_signed_post_get_delete_succeed_in_any_region(env, region):
    ws, cid = env.open()
    client = mgmt_client(env.gw.mgmt_url, region=region)
    client.post_to_connection(ConnectionId=cid, Data=b"signed hello")
    assert recv(ws) == "signed hello"
    assert client.get_connection(ConnectionId=cid)["Identity"]["SourceIp"] == "127.0.0.1"
    client.delete_connection(ConnectionId=cid)
    code, _, _ = wait_close(ws)
    assert code == 1000


def test_sigv4_with_temporary_credentials_session_token_verifies(env):
    ws, cid = env.open()
    client = mgmt_client(env.gw.mgmt_url, session_token="IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCWV1LXdlc3QtMSJHMEUCIQ==")
    client.post_to_connection(ConnectionId=cid, Data=b"from lambda")
    assert recv(ws) == "from lambda"
    assert client.get_connection(ConnectionId=cid)["Identity"]["SourceIp"] == "127.0.0.1"


def test_sigv4_signed_post_without_stage_in_endpoint_verifies(env):
    ws, cid = env.open()
    client = mgmt_client(f"http://127.0.0.1:{env.gw.port}")
    client.post_to_connection(ConnectionId=cid, Data=b"stageless")
    assert recv(ws) == "stageless"


def test_sigv4_wrong_secret_raises_forbidden_exception(env):
    ws, cid = env.open()
    client = mgmt_client(env.gw.mgmt_url, secret_key=SECRET_KEY + "x")
    with pytest.raises(client.exceptions.ForbiddenException):
        client.post_to_connection(ConnectionId=cid, Data=b"forged")
    with pytest.raises(client.exceptions.ForbiddenException):
        client.get_connection(ConnectionId=cid)
    with pytest.raises(client.exceptions.ForbiddenException):
        client.delete_connection(ConnectionId=cid)
    assert_no_message(ws)
    ws.send("still open")
    assert recv(ws) == "still open"


def test_sigv4_unknown_access_key_raises_forbidden_exception(env):
    ws, cid = env.open()
    client = mgmt_client(env.gw.mgmt_url, access_key="AKIAUNKNOWNKEY000000")
    with pytest.raises(client.exceptions.ForbiddenException):
        client.post_to_connection(ConnectionId=cid, Data=b"who?")
    assert_no_message(ws)


def test_unsigned_raw_post_gets_403_with_forbidden_error_type_header(env):
    ws, cid = env.open()
    url = f"{env.gw.mgmt_url}/@connections/{cid.replace('=', '%3D')}"
    request = urllib.request.Request(url, data=b"unsigned", method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(request, timeout=5)
    assert info.value.code == 403
    assert info.value.headers["x-amzn-ErrorType"].split(":")[0] == "ForbiddenException"
    assert_no_message(ws)


def test_sigv4_unsigned_get_on_unknown_id_is_forbidden_not_gone(env):
    """Authentication comes first: an unsigned caller learns nothing about connection ids."""
    url = f"{env.gw.mgmt_url}/@connections/AAAAAAAAAAAAAAA%3D"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(urllib.request.Request(url, method="GET"), timeout=5)
    assert info.value.code == 403



def test_the_readmes_signing_tool_signs_calls_boto3_has_no_method_for(env):
    # README: "tools/signed-call.py signs one call the way boto3 does" (@broadcast, listings).
    ws, cid = env.open()
    environment = dict(os.environ, AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID=ACCESS_KEY,
                       AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    environment.pop("AWS_SESSION_TOKEN", None)
    tool = str(REPO_DIR / "tools" / "signed-call.py")
    sent = subprocess.run([sys.executable, tool, "POST", f"{env.gw.mgmt_url}/@broadcast", "hello everyone"],
                          env=environment, capture_output=True, text=True, timeout=30)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sent.stdout.startswith("200 "), sent.stdout
    assert recv(ws) == "hello everyone"
    listed = subprocess.run([sys.executable, tool, "GET", f"{env.gw.mgmt_url}/@connections"],
                            env=environment, capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0 and cid in listed.stdout, listed.stdout + listed.stderr
    # Unsigned, the same call is refused: the tool is what makes it pass.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(f"{env.gw.mgmt_url}/@broadcast", data=b"x", method="POST"))
    assert refused.value.code == 403
