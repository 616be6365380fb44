"""`runtime = "command"`: real runtime interface clients run unchanged against wsgate's Lambda
Runtime API — awslambdaric from PyPI, and a Rust handler built on the `lambda_runtime` crate
(examples/lambda-rust, built by `cargo build --release --workspace`)."""

import json
import sys
from pathlib import Path

from conftest import REPO_DIR

RUST_HANDLER = REPO_DIR / "target" / "release" / "echo-lambda"

APP = '''
import json

def handler(event, context):
    return {"statusCode": 200, "body": json.dumps({
        "echo": event["body"],
        "route": event["requestContext"]["routeKey"],
        "requestId": context.aws_request_id,
        "function": context.function_name,
        "remaining": context.get_remaining_time_in_millis(),
    })}
'''


def config(tmp_path: Path, command: list[str]) -> str:
    return f'''
[gateway]
listen = "127.0.0.1:0"
stage = "dev"

[functions.echo]
runtime = "command"
command = {json.dumps(command)}
dir = "{tmp_path}"
timeout = "10s"

[routes."$default"]
type = "function"
function = "echo"
route_response = true
'''


def test_awslambdaric_runs_a_python_handler(gateway_factory, clients, tmp_path):
    (tmp_path / "app.py").write_text(APP)
    gw = gateway_factory(config(tmp_path, [sys.executable, "-m", "awslambdaric", "app.handler"]))
    ws = clients(gw.ws_url)
    for text in ("first", "second"):
        ws.send(json.dumps({"action": "x", "text": text}))
        answer = json.loads(ws.recv(timeout=30))
        assert json.loads(answer["echo"])["text"] == text
        assert answer["route"] == "$default"
        assert answer["function"] == "echo"
        assert len(answer["requestId"]) == 36
        assert 0 < answer["remaining"] <= 10_000


def test_lambda_runtime_rust_binary_runs_unchanged(gateway_factory, clients, tmp_path):
    assert RUST_HANDLER.exists(), f"build it first: cargo build --release --workspace ({RUST_HANDLER})"
    gw = gateway_factory(config(tmp_path, [str(RUST_HANDLER)]))
    ws = clients(gw.ws_url)
    ws.send('{"action":"anything","n":1}')
    answer = json.loads(ws.recv(timeout=30))
    assert answer["echo"] == '{"action":"anything","n":1}'
    assert answer["route"] == "$default"
    assert answer["function"] == "echo"
    assert len(answer["connectionId"]) == 16
