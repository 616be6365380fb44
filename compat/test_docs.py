"""The docs' snippets, run as written: every TOML config in README.md and docs/ passes `wsgate
check`, and the README's quick start (curl, boto3, the AWS CLI), its fan-out block, its signed
call, its resumable-connection example and its metrics lines work against a live gateway.

What a reader must fill in is filled the way the text tells them to: the connection id (from
`{"action":"whoami"}`, with `=` written `%3D` in URLs), the gateway's address (these tests run
it on a free port, not 8080), a JWKS file named by `jwks_file`, a function's `dir`, an
environment variable named by `token_env`. A snippet that stops working fails here.
"""

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import (REPO_DIR, aws_cli, quote_id, recv, render_config, sigv4_management, wait_close,
                      wsgate_bin)

DOCS = [REPO_DIR / "README.md", *sorted((REPO_DIR / "docs").glob("*.md"))]
# The address and the connection id the README's examples use.
EXAMPLE_ADDR = "127.0.0.1:8080"
EXAMPLE_ID = "Vb1qPcW2DoECK-w="


def blocks(language: str) -> list[tuple[str, str]]:
    """Every fenced block of `language` in the docs: (where, text)."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in re.finditer(rf"^```{language}\n(.*?)^```", text, re.S | re.M):
            line = text[: match.start()].count("\n") + 1
            found.append((f"{doc.relative_to(REPO_DIR)}:{line}", match.group(1)))
    return found


def jwks(path: Path) -> None:
    """A JWKS with one RSA key, as an identity provider publishes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers()

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    path.write_text(json.dumps({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
                                          "n": b64(key.n), "e": b64(key.e)}]}))


def with_what_it_names(config: str, folder: Path) -> dict[str, str]:
    """Creates what a config names and the reader is told to provide; returns the environment."""
    for name in re.findall(r'^\s*jwks_file\s*=\s*"([^"]+)"', config, re.M):
        jwks(folder / name)
    for name in re.findall(r'^\s*dir\s*=\s*"([^"]+)"', config, re.M):
        (folder / name).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for name in re.findall(r'^\s*token_env\s*=\s*"([^"]+)"', config, re.M):
        env[name] = "a-token-of-at-least-thirty-two-characters-0123"
    return env


TOML_BLOCKS = blocks("toml")


def test_the_docs_have_toml_configs():
    assert len(TOML_BLOCKS) >= 5, TOML_BLOCKS


@pytest.mark.parametrize("where,config", TOML_BLOCKS, ids=[w for w, _ in TOML_BLOCKS])
def test_every_toml_config_in_the_docs_passes_wsgate_check(where, config, tmp_path):
    path = tmp_path / "wsgate.toml"
    path.write_text(config)
    env = with_what_it_names(config, tmp_path)
    checked = subprocess.run([str(wsgate_bin()), "check", "--config", str(path)], env=env,
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, f"{where}:\n{config}\n{checked.stdout}{checked.stderr}"


def filled(snippet: str, addr: str, cid: str) -> str:
    """The README's example address and id replaced by the live ones, as a reader would."""
    return (snippet.replace(EXAMPLE_ADDR, addr)
            .replace(quote_id(EXAMPLE_ID), quote_id(cid))
            .replace(EXAMPLE_ID, cid))


def quick_start_block(language: str, containing: str) -> str:
    readme = [text for where, text in blocks(language) if where.startswith("README.md:")]
    matching = [text for text in readme if containing in text]
    assert matching, f"no ```{language} block with {containing!r} in README.md"
    return matching[0]


def whoami(ws) -> str:
    ws.send(json.dumps({"action": "whoami"}))
    return json.loads(recv(ws))["connectionId"]


def run_shell(line: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
    return done.stdout


def status_of(curl_output: str) -> int:
    return int(curl_output.split()[1])


def test_the_readmes_quick_start_curl_lines_work_as_written(gateway_factory, clients):
    # `cargo run --release -- serve`: the embedded defaults, here on a free port.
    gw = gateway_factory()
    lines = [line for line in quick_start_block("sh", "hello from the backend").splitlines()
             if line.startswith("curl")]
    assert len(lines) == 3, lines
    post, get, delete = lines
    ws = clients(gw.ws_url)
    cid = whoami(ws)
    assert status_of(run_shell(filled(post, gw.host, cid))) == 200
    assert recv(ws) == "hello from the backend"
    info = json.loads(run_shell(filled(get, gw.host, cid)))
    assert {"connectedAt", "identity", "lastActiveAt"} <= info.keys()
    assert status_of(run_shell(filled(delete, gw.host, cid))) == 204
    assert wait_close(ws)[0] == 1000

    (close,) = [line for line in quick_start_block("sh", "code=4001").splitlines()
                if line.startswith("curl")]
    ws = clients(gw.ws_url)
    cid = whoami(ws)
    assert status_of(run_shell(filled(close, gw.host, cid))) == 204
    assert wait_close(ws)[:2] == (4001, "kicked")


def test_the_readmes_boto3_example_runs_as_written(gateway_factory, clients):
    gw = gateway_factory()
    ws = clients(gw.ws_url)
    cid = whoami(ws)
    script = filled(quick_start_block("python", "apigatewaymanagementapi"), gw.host, cid)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert recv(ws) == "hi"
    assert wait_close(ws)[0] == 1000


def test_the_readmes_aws_cli_line_runs_as_written(gateway_factory, clients):
    gw = gateway_factory()
    ws = clients(gw.ws_url)
    cid = whoami(ws)
    command = filled(quick_start_block("sh", "aws apigatewaymanagementapi"), gw.host, cid)
    # The CLI from the compat environment, found on the PATH as the reader's would be.
    env = dict(os.environ, PATH=f"{Path(aws_cli()).parent}:{os.environ['PATH']}")
    run_shell(command, env=env)
    assert recv(ws) == "hello"


def test_the_readmes_fan_out_examples_run_as_written(gateway_factory, clients):
    gw = gateway_factory()
    first, second = clients(gw.ws_url), clients(gw.ws_url)
    cid, cid2 = whoami(first), whoami(second)
    block = quick_start_block("sh", "@broadcast?except=$ID")
    block = (block.replace("http://127.0.0.1:8080/dev", gw.mgmt_url)
             .replace("Vb1qPcW2DoECK-w=", cid).replace("Vb1rT0yPDoECLsA=", cid2)
             # The first page: the text's `next=...` is the `next` of the previous answer.
             .replace("&next=...", ""))
    # Each curl's status, written after its body: the commands themselves are the README's.
    wrapper = "curl() { command curl -sS -w '\\n%{http_code}\\n' \"$@\"; }\n"
    out = run_shell(wrapper + block)
    statuses = [int(line) for line in out.splitlines() if re.fullmatch(r"\d{3}", line)]
    assert len(statuses) == block.count("\ncurl ") + block.startswith("curl "), out
    assert all(200 <= s < 300 for s in statuses), out
    assert recv(second) == "hi all"          # the broadcast left out the first connection
    assert recv(first) == "hi" and recv(second) == "hi"


def test_the_readmes_resumable_connection_example_runs_as_written(gateway_factory):
    gw = gateway_factory()
    script = filled(quick_start_block("python", "wsgate.reliable.v1"), gw.host, EXAMPLE_ID)
    # What the comments say comes next: the resumed frame.
    check = '\nresumed = json.loads(ws.recv(timeout=5))\nassert resumed["type"] == "resumed", resumed\n'
    done = subprocess.run([sys.executable, "-c", script + check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_readmes_metrics_and_readiness_lines_run_as_written(gateway_factory, clients):
    gw = gateway_factory()
    clients(gw.ws_url)
    lines = [line for line in quick_start_block("sh", "/metrics").splitlines() if line.startswith("curl")]
    metrics, ready = (run_shell(filled(line, gw.host, EXAMPLE_ID)) for line in lines)
    assert re.search(r"^wsgate_connections 1$", metrics, re.M), metrics
    assert ready.strip(), ready


def test_the_readmes_signed_call_line_runs_as_written(gateway_factory, clients):
    # The README's keys are the ones its sigv4 example config lists.
    gw = gateway_factory(render_config({
        "$default": {"type": "mock", "body": "${request.body}", "route_response": True},
    }, **sigv4_management()))
    ws = clients(gw.ws_url)
    line = filled(quick_start_block("sh", "tools/signed-call.py"), gw.host, EXAMPLE_ID)
    # From the repository's folder, with a python3 that has boto3 (as the tool's docstring says).
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=60, env=env,
                          cwd=REPO_DIR)
    assert done.returncode == 0 and done.stdout.startswith("200 "), done.stdout + done.stderr
    assert recv(ws) == "hello everyone"
