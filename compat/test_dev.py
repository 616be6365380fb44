"""`wsgate dev --config`: a wsgate TOML with functions; editing the file reloads the routes while
connections stay open; a bad edit keeps the previous routes."""

import json
import signal
import subprocess
import time

from conftest import open_ws, wsgate_bin

CONFIG = '''
[gateway]
listen = "127.0.0.1:0"
stage = "dev"

[functions.echo]
runtime = "python"
handler = "app.handler"
dir = "code"

[routes."$default"]
type = "function"
function = "echo"
route_response = true

[routes.version]
type = "mock"
body = "VERSION"
route_response = true
'''


def test_dev_config_reloads_routes_and_keeps_connections(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text(
        "def handler(event, context):\n    return {'statusCode': 200, 'body': 'fn:' + event['body']}\n"
    )
    config = tmp_path / "wsgate.toml"
    config.write_text(CONFIG.replace("VERSION", "v1"))
    proc = subprocess.Popen(
        [str(wsgate_bin()), "dev", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "listening on ws://" in line, line + proc.stderr.read()
        url = line.split("listening on ")[1].split(" ")[0]
        ws = open_ws(url, open_timeout=20)
        ws.send("hello")
        assert ws.recv(timeout=20) == "fn:hello"
        ws.send(json.dumps({"action": "version"}))
        assert ws.recv(timeout=5) == "v1"

        time.sleep(0.05)
        config.write_text(CONFIG.replace("VERSION", "v2"))
        deadline = time.time() + 5
        answer = None
        while time.time() < deadline:
            ws.send(json.dumps({"action": "version"}))
            answer = ws.recv(timeout=5)
            if answer == "v2":
                break
            time.sleep(0.2)
        assert answer == "v2", "the edited config was not loaded"

        # A broken edit keeps what works.
        config.write_text(CONFIG.replace("VERSION", "v3") + "\n[limits]\nidle_timeot = \"1m\"\n")
        time.sleep(1.0)
        ws.send(json.dumps({"action": "version"}))
        assert ws.recv(timeout=5) == "v2"
        ws.send("still")
        assert ws.recv(timeout=20) == "fn:still"
        ws.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0
    assert "idle_timeot" in proc.stderr.read()
