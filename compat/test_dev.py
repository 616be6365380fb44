"""`wsgate dev --config`: a wsgate TOML with functions; editing the file reloads the routes while
connections stay open; a bad edit keeps the previous routes."""

import json
import re
import stat
import time
from pathlib import Path

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


# The binary, started by a shell that first plants the folder `wsgate dev` used to take for its
# TLS files, `$TMPDIR/wsgate-dev-{pid}`, as another local user would: `exec` keeps the pid, so
# the planted path is exactly the one the old code derived. `symlink`: a link to a folder of the
# attacker's (the CA bundle the handlers trust would have been theirs to swap); `folder`: a folder
# open to all holding links named like the CA files (written through, they would have overwritten
# the victim's file).
PLANT_THEN_EXEC = """#!/bin/sh
planted="$TMPDIR/wsgate-dev-$$"
case "$PLANT" in
  symlink) ln -s "$ATTACKER" "$planted" ;;
  folder) mkdir -m 777 "$planted" && ln -s "$VICTIM" "$planted/wsgate-dev-ca.pem" &&
          ln -s "$VICTIM" "$planted/wsgate-dev-ca-bundle.pem" ;;
esac
exec "$WSGATE_REAL_BIN" "$@"
"""

MOCK_ONLY = """
[gateway]
listen = "127.0.0.1:0"
stage = "dev"

[routes."$default"]
type = "mock"
body = "${request.body}"
route_response = true
"""


def test_dev_never_writes_through_a_planted_tls_folder(tmp_path, tmp_path_factory, dev_gateway, monkeypatch):
    temp = tmp_path_factory.mktemp("shared-tmp")
    attacker = tmp_path_factory.mktemp("attacker")
    victim = tmp_path_factory.mktemp("victim") / "precious.txt"
    victim.write_text("precious")
    wrapper = tmp_path_factory.mktemp("wrapper") / "plant-then-exec"
    wrapper.write_text(PLANT_THEN_EXEC)
    wrapper.chmod(0o755)
    real = wsgate_bin()
    monkeypatch.setenv("WSGATE_BIN", str(wrapper))
    config = tmp_path / "wsgate.toml"
    config.write_text(MOCK_ONLY)

    folders, planted_paths = [], []
    for plant in ("symlink", "folder"):
        env = {"TMPDIR": str(temp), "PLANT": plant, "ATTACKER": str(attacker), "VICTIM": str(victim),
               "WSGATE_REAL_BIN": str(real)}
        dev = dev_gateway(["--config", str(config)], env=env)
        planted = temp / f"wsgate-dev-{dev.proc.pid}"
        assert planted.is_symlink() or planted.is_dir(), "the old path was planted for this very pid"
        planted_paths.append(planted)
        ca = Path(re.search(r"development CA: (.+)\)$", dev.listening_line)[1])
        folder = ca.parent
        assert folder.parent == temp and folder != planted, folder
        mode = folder.lstat().st_mode
        assert stat.S_ISDIR(mode) and stat.S_IMODE(mode) == 0o700, oct(mode)
        assert ca.is_file() and not ca.is_symlink()
        # Every folder wsgate made under $TMPDIR (the built-in bootstraps' too) is private.
        made = [p for p in temp.iterdir() if p.name.startswith("wsgate-") and p not in planted_paths]
        assert folder in made and len(made) >= 2, made
        for path in made:
            assert stat.S_IMODE(path.lstat().st_mode) == 0o700 and path.is_dir() and not path.is_symlink(), path
        ws = open_ws(dev.ws_url, open_timeout=20)
        ws.send("still works")
        assert ws.recv(timeout=5) == "still works"
        ws.close()
        dev.stop(wait=15)
        assert dev.proc.returncode == 0
        assert not folder.exists(), "removed at exit"
        folders.append(folder)

    assert folders[0] != folders[1], "a new folder every run"
    assert list(attacker.iterdir()) == [], "nothing written into the attacker's folder"
    assert victim.read_text() == "precious", "nothing written through the planted links"
    assert sorted(temp.iterdir()) == sorted(planted_paths), "only the planted paths stay"
