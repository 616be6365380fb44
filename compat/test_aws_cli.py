"""9. AWS CLI v1 against the management API, with SigV4 enabled."""

import json
import os
import subprocess

import pytest

from conftest import (ACCESS_KEY, SECRET_KEY, aws_cli, connect_tagged, recv, render_config,
                      sigv4_management, wait_close)


@pytest.fixture
def env(gateway_factory, stub, clients, tmp_path):
    gw = gateway_factory(render_config({
        "$connect": {"type": "http", "url": stub.url("/connect")},
        "$disconnect": {"type": "http", "url": stub.url("/disconnect")},
        "$default": {"type": "mock", "body": "${request.body}", "route_response": True},
    }, **sigv4_management()))
    (tmp_path / "aws-config").write_text("")
    (tmp_path / "aws-credentials").write_text("")
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    cli_env.update({
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
    })

    def aws(*args):
        cmd = [str(aws_cli()), "apigatewaymanagementapi", *args, "--endpoint-url", gw.mgmt_url]
        return subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=30)

    class Env:
        pass

    e = Env()
    e.gw, e.stub, e.aws = gw, stub, aws

    def open_client():
        ws, event = connect_tagged(clients, gw, stub)
        return ws, event["requestContext"]["connectionId"]

    e.open = open_client
    return e


def test_aws_cli_post_to_connection_delivers_data(env):
    ws, cid = env.open()
    result = env.aws("post-to-connection", f"--connection-id={cid}", "--data", "hello")
    assert result.returncode == 0, result.stderr
    assert recv(ws) == "hello"


def test_aws_cli_get_connection_prints_json_with_connected_at(env):
    ws, cid = env.open()
    result = env.aws("get-connection", f"--connection-id={cid}")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert "ConnectedAt" in info and "LastActiveAt" in info, info
    assert info["Identity"]["SourceIp"] == "127.0.0.1"


def test_aws_cli_delete_connection_closes_client(env):
    ws, cid = env.open()
    result = env.aws("delete-connection", f"--connection-id={cid}")
    assert result.returncode == 0, result.stderr
    code, _, _ = wait_close(ws)
    assert code == 1000


def test_aws_cli_post_to_gone_connection_fails_with_gone_exception(env):
    ws, cid = env.open()
    ws.close()
    env.stub.wait_for("/disconnect", lambda e: e["requestContext"]["connectionId"] == cid)
    result = env.aws("post-to-connection", f"--connection-id={cid}", "--data", "hello")
    assert result.returncode != 0
    assert "GoneException" in result.stderr, result.stderr
