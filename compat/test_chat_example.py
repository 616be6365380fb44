"""The example chat app (examples/chat) run by `wsgate dev` from its own SAM template and from its
serverless.yml: real Python handlers, state in DynamoDB served by moto's server mode, messages
posted to the others through the callback URL built from the event (https://{domainName}/{stage}).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets.sync.client as ws_client

from conftest import REPO_DIR, wsgate_bin

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


class Dev:
    def __init__(self, args, moto_url, cwd):
        env = dict(os.environ)
        # The handlers import boto3: the compat virtualenv's python3 has it.
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env["AWS_ENDPOINT_URL_DYNAMODB"] = moto_url
        env.setdefault("WSGATE_LOG", "info")
        self.proc = subprocess.Popen(
            [str(wsgate_bin()), "dev", *args, "--listen", "127.0.0.1:0"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.stop()
            raise AssertionError(f"wsgate dev did not start: {line!r}\n{self.proc.stderr.read()}")
        self.line = line
        url = line.split("listening on ")[1].split(" ")[0]
        self.ws_url = url

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


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


def test_chat_runs_from_the_sam_template(moto, tmp_path):
    project = tmp_path / "chat"
    shutil.copytree(EXAMPLE, project)
    dev = Dev(["--sam", str(project / "template.yaml")], moto, cwd=tmp_path)
    try:
        assert dev.ws_url.endswith("/Prod"), dev.line
        alice, bob, carol = chat(dev.ws_url)
        # Editing the template reloads the routes; open connections stay.
        template = project / "template.yaml"
        template.write_text(template.read_text() + "\n# edited\n")
        time.sleep(1.5)
        alice.send(json.dumps({"action": "sendmessage", "text": "still here"}))
        assert json.loads(bob.recv(timeout=20))["text"] == "still here"
        for ws in (alice, bob, carol):
            ws.close()
    finally:
        dev.stop()
    assert dev.proc.returncode == 0


def test_chat_runs_from_serverless_yml(moto, tmp_path):
    project = tmp_path / "chat"
    shutil.copytree(EXAMPLE, project)
    dev = Dev(["--serverless", str(project / "serverless.yml")], moto, cwd=tmp_path)
    try:
        assert dev.ws_url.endswith("/dev"), dev.line
        for ws in chat(dev.ws_url):
            ws.close()
    finally:
        dev.stop()
    assert dev.proc.returncode == 0


def test_edited_handler_runs_on_the_next_message(moto, tmp_path):
    project = tmp_path / "chat"
    shutil.copytree(EXAMPLE, project)
    dev = Dev(["--sam", str(project / "template.yaml")], moto, cwd=tmp_path)
    try:
        ws = connect(dev.ws_url, "dora")
        assert json.loads(ask(ws, {"action": "join", "room": "r"})) == {"joined": "r"}
        source = project / "src" / "chat.py"
        source.write_text(source.read_text().replace('json.dumps({"joined": room})', 'json.dumps({"joined": room, "v": 2})'))
        time.sleep(1.0)
        assert json.loads(ask(ws, {"action": "join", "room": "r"})) == {"joined": "r", "v": 2}
        ws.close()
    finally:
        dev.stop()
