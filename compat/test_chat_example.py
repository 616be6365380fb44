"""The example chat app (examples/chat) run by `wsgate dev` from its own SAM template and from its
serverless.yml: real Python handlers, state in DynamoDB served by moto's server mode, messages
posted to the others through the callback URL built from the event (https://{domainName}/{stage}).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets.sync.client as ws_client

from conftest import REPO_DIR

EXAMPLE = REPO_DIR / "examples" / "chat"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, deadline: float) -> None:
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def moto():
    port = free_port()
    proc = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, time.time() + 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def chat_dev(moto, dev_gateway):
    """start(*args) -> Gateway: `wsgate dev ARGS`, its handlers on the compat virtualenv's python3
    (which has boto3) and DynamoDB at moto."""
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AWS_ENDPOINT_URL_DYNAMODB": moto,
        "WSGATE_LOG": "info",
    }
    return lambda *args: dev_gateway(list(args), env=env)


def connect(url, name):
    # Used as a context manager, as websockets asks; the tests close what they open.
    return ws_client.connect(f"{url}?name={name}", open_timeout=20, close_timeout=2).__enter__()


def ask(ws, message, timeout=20):
    ws.send(json.dumps(message))
    return ws.recv(timeout=timeout)


def chat(url):
    """Alice and Bob join room1, Carol stays in the lobby; Alice's message reaches Bob only."""
    alice, bob, carol = connect(url, "alice"), connect(url, "bob"), connect(url, "carol")
    try:
        assert json.loads(ask(alice, {"action": "join", "room": "room1"})) == {"joined": "room1"}
        assert json.loads(ask(bob, {"action": "join", "room": "room1"})) == {"joined": "room1"}
        alice.send(json.dumps({"action": "sendmessage", "text": "hi bob"}))
        assert json.loads(bob.recv(timeout=20)) == {"from": "alice", "room": "room1", "text": "hi bob"}
        carol.send(json.dumps({"action": "sendmessage", "text": "anyone?"}))
        with pytest.raises(TimeoutError):
            alice.recv(timeout=1)
        with pytest.raises(TimeoutError):
            bob.recv(timeout=0.2)
        return alice, bob, carol
    except BaseException:
        for ws in (alice, bob, carol):
            ws.close()
        raise


def test_chat_runs_from_the_sam_template(chat_dev, tmp_path):
    project = tmp_path / "chat"
    shutil.copytree(EXAMPLE, project)
    dev = chat_dev("--sam", str(project / "template.yaml"))
    assert dev.ws_url.endswith("/Prod"), dev.listening_line
    alice, bob, carol = chat(dev.ws_url)
    # Editing the template reloads the routes; open connections stay.
    template = project / "template.yaml"
    template.write_text(template.read_text() + "\n# edited\n")
    time.sleep(1.5)
    alice.send(json.dumps({"action": "sendmessage", "text": "still here"}))
    assert json.loads(bob.recv(timeout=20))["text"] == "still here"
    for ws in (alice, bob, carol):
        ws.close()
    dev.stop(wait=15)
    assert dev.proc.returncode == 0


def test_chat_runs_from_serverless_yml(chat_dev, tmp_path):
    project = tmp_path / "chat"
    shutil.copytree(EXAMPLE, project)
    dev = chat_dev("--serverless", str(project / "serverless.yml"))
    assert dev.ws_url.endswith("/dev"), dev.listening_line
    for ws in chat(dev.ws_url):
        ws.close()
    dev.stop(wait=15)
    assert dev.proc.returncode == 0


def test_edited_handler_runs_on_the_next_message(chat_dev, tmp_path):
    project = tmp_path / "chat"
    shutil.copytree(EXAMPLE, project)
    dev = chat_dev("--sam", str(project / "template.yaml"))
    ws = connect(dev.ws_url, "dora")
    assert json.loads(ask(ws, {"action": "join", "room": "r"})) == {"joined": "r"}
    source = project / "src" / "chat.py"
    source.write_text(source.read_text().replace('json.dumps({"joined": room})', 'json.dumps({"joined": room, "v": 2})'))
    time.sleep(1.0)
    assert json.loads(ask(ws, {"action": "join", "room": "r"})) == {"joined": "r", "v": 2}
    ws.close()
