"""`runtime = "command"`: real runtime interface clients run unchanged against wsgate's Lambda
Runtime API — awslambdaric from PyPI, and a Rust handler built on the `lambda_runtime` crate
(examples/lambda-rust, built by `cargo build --release --workspace`)."""

import json
import sys
import time
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


def test_a_function_that_cannot_start_answers_at_once_and_is_not_restarted_in_a_loop(
        gateway_factory, clients, tmp_path):
    # What a `runtime = "command"` function does without awslambdaric installed: it prints why
    # and exits before asking for work.
    fails = [sys.executable, "-c",
             "import sys; sys.stderr.write(\"ModuleNotFoundError: No module named 'awslambdaric'\\n\"); sys.exit(1)"]
    gw = gateway_factory(config(tmp_path, fails).replace('timeout = "10s"', 'timeout = "29s"'))
    ws = clients(gw.ws_url)
    started = time.monotonic()
    for _ in range(5):
        ws.send(json.dumps({"action": "x"}))
        answer = json.loads(ws.recv(timeout=10))
        assert answer["message"] == "Internal server error", answer
    # Five answers in far less than the 29 s timeout: none waited for a process that never comes.
    assert time.monotonic() - started < 8
    time.sleep(2)
    log = gw.stderr()
    assert "No module named 'awslambdaric'" in log, log[-3000:]
    assert "function process could not start" in log, log[-3000:]
    # Backed off: a handful of starts over these seconds, not one every few milliseconds.
    assert log.count("function process ended") <= 6, log[-3000:]


def test_a_relative_interpreter_is_found_from_the_config_files_folder(
        gateway_factory, clients, tmp_path):
    # As the docs put it: `interpreter = ".venv/bin/python"` beside the config file, while the
    # handler's code is in its own `dir`.
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    code = tmp_path / "src"
    code.mkdir()
    (code / "app.py").write_text(APP)
    gw = gateway_factory(f'''
[gateway]
listen = "127.0.0.1:0"
stage = "dev"

[functions.echo]
runtime = "python"
interpreter = ".venv/bin/python"
handler = "app.handler"
dir = "src"

[routes."$default"]
type = "function"
function = "echo"
route_response = true
''')
    ws = clients(gw.ws_url)
    ws.send(json.dumps({"action": "x", "text": "hi"}))
    answer = json.loads(ws.recv(timeout=30))
    assert json.loads(answer["echo"])["text"] == "hi"
