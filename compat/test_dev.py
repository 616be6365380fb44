"""`wsgate dev --config`: a wsgate TOML with functions; editing the file reloads the routes while
connections stay open; a bad edit keeps the previous routes."""

import json
import time

from conftest import open_ws

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


def test_dev_config_reloads_routes_and_keeps_connections(tmp_path, dev_gateway):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text(
        "def handler(event, context):\n    return {'statusCode': 200, 'body': 'fn:' + event['body']}\n"
    )
    config = tmp_path / "wsgate.toml"
    config.write_text(CONFIG.replace("VERSION", "v1"))
    dev = dev_gateway(["--config", str(config)])
    ws = open_ws(dev.ws_url, open_timeout=20)
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

    dev.stop(wait=15)
    assert dev.proc.returncode == 0
    assert "idle_timeot" in dev.stderr()
