"""Fixtures for the wsgate compatibility suite.

Every test starts its own gateway (the release binary, on 127.0.0.1:0) and, where it needs one,
its own stub backend: a ThreadingHTTPServer on 127.0.0.1:0 that records the Lambda-proxy events
the gateway POSTs to it and answers each path as the test configured.

Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import boto3
import botocore.config
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

COMPAT_DIR = Path(__file__).resolve().parent
REPO_DIR = COMPAT_DIR.parent
DEFAULT_BIN = REPO_DIR / "target" / "release" / "wsgate"

# Credentials used by every management test (the gateway is configured with them under sigv4).
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

ID_RE = r"[A-Za-z0-9_-]{15}="

# Redis (a server or a Redis Cluster) and groups of wsgate nodes for the cluster-mode tests.
pytest_plugins = ["redis_support"]

# --------------------------------------------------------------------------------------------
# Hermetic environment: no proxies (the gateway's HTTP client and boto3 both honour them), no
# machine AWS config, no instance metadata lookups. Applies to this process and its children.
# --------------------------------------------------------------------------------------------
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_name, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
for _name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
              "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
_AWS_DIR = Path(tempfile.mkdtemp(prefix="wsgate-compat-aws-"))
(_AWS_DIR / "config").write_text("")
(_AWS_DIR / "credentials").write_text("")
os.environ["AWS_CONFIG_FILE"] = str(_AWS_DIR / "config")
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(_AWS_DIR / "credentials")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def wsgate_bin() -> Path:
    """The binary under test: $WSGATE_BIN, else target/release/wsgate. Fails loudly if missing."""
    path = Path(os.environ.get("WSGATE_BIN") or DEFAULT_BIN)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"wsgate binary not found or not executable at {path}. "
            "Build it with `cd /work/main && cargo build --release` or set WSGATE_BIN.",
            pytrace=False,
        )
    return path


# --------------------------------------------------------------------------------------------
# Config rendering
# --------------------------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for everything we use
    raise TypeError(f"unsupported TOML value {value!r}")


def render_config(
    routes: dict[str, dict[str, Any]] | None = None,
    *,
    gateway: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    management: dict[str, Any] | None = None,
    credentials: list[dict[str, str]] | None = None,
) -> str:
    """Renders a wsgate TOML config. `[gateway] listen` defaults to 127.0.0.1:0, stage to dev."""
    gw = {"listen": "127.0.0.1:0", "stage": "dev"}
    gw.update(gateway or {})
    lines = ["[gateway]"] + [f"{k} = {_toml_value(v)}" for k, v in gw.items()]
    if limits:
        lines += ["", "[limits]"] + [f"{k} = {_toml_value(v)}" for k, v in limits.items()]
    if management:
        lines += ["", "[management]"] + [f"{k} = {_toml_value(v)}" for k, v in management.items()]
    for cred in credentials or []:
        lines += ["", "[[management.credentials]]"] + [f"{k} = {_toml_value(v)}" for k, v in cred.items()]
    for key, route in (routes or {}).items():
        lines += ["", f"[routes.{json.dumps(key)}]"] + [f"{k} = {_toml_value(v)}" for k, v in route.items()]
    return "\n".join(lines) + "\n"


def sigv4_management() -> dict[str, Any]:
    return {"management": {"auth": "sigv4"}, "credentials": [{"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}]}


# --------------------------------------------------------------------------------------------
# The gateway process
# --------------------------------------------------------------------------------------------

LISTENING_RE = re.compile(
    r"^wsgate listening on ws://127\.0\.0\.1:(?P<port>\d+)/(?P<stage>[A-Za-z0-9_-]+) "
    r"\(management: (?P<mgmt>http://127\.0\.0\.1:\d+/[A-Za-z0-9_-]+/@connections/\{id\})\)$"
)

# `wsgate dev` names both URLs, its routes and its development CA on the same line.
DEV_LISTENING_RE = re.compile(
    r"^wsgate listening on ws://127\.0\.0\.1:(?P<port>\d+)/(?P<stage>[A-Za-z0-9_-]+) and wss://"
)

# Gateways started by the current test, for attaching their logs to failure reports.
_current_gateways: list["Gateway"] = []


@dataclass
class Gateway:
    proc: subprocess.Popen
    port: int
    stage: str
    listening_line: str
    stderr_path: Path
    config_path: Path | None
    stdout_rest: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/{self.stage}"

    @property
    def mgmt_url(self) -> str:
        """The endpoint_url for boto3: management base including the stage."""
        return f"http://127.0.0.1:{self.port}/{self.stage}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def terminate(self) -> None:
        """SIGTERM by PID; then wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, wait: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # SIGKILL to this PID only
                self.proc.wait(timeout=5)


def _start_gateway(tmp_path: Path, config: str | None, args: list[str], env: dict[str, str] | None,
                   start_timeout: float = 10.0, *, command: str = "serve", cwd: Path | None = None,
                   log_dir: Path | None = None) -> Gateway:
    """Runs `wsgate COMMAND [--config FILE] ARGS` in `cwd` (default tmp_path), stderr to a file in
    `log_dir` (default tmp_path), and waits for its listening line (`serve`'s or `dev`'s)."""
    binary = wsgate_bin()
    log_dir = log_dir or tmp_path
    n = len(list(log_dir.glob("wsgate-*.stderr")))
    cmd = [str(binary), command]
    config_path = None
    if config is not None:
        config_path = tmp_path / f"wsgate-{n}.toml"
        config_path.write_text(config)
        cmd += ["--config", str(config_path)]
    cmd += args
    stderr_path = log_dir / f"wsgate-{n}.stderr"
    full_env = dict(os.environ)
    full_env.setdefault("WSGATE_LOG", "info,wsgate=debug,wsgate_core=debug")
    full_env.setdefault("NO_COLOR", "1")  # plain logs in failure reports
    full_env.update(env or {})
    with open(stderr_path, "wb") as stderr_file:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_file,
                                env=full_env, cwd=cwd or tmp_path, text=True, bufsize=1)
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=drain, daemon=True, name=f"wsgate-stdout-{proc.pid}").start()
    try:
        first = lines.get(timeout=start_timeout)
    except queue.Empty:
        proc.kill()
        proc.wait()
        pytest.fail(f"wsgate did not print its listening line within {start_timeout}s; "
                    f"cmd={cmd}\nstderr:\n{stderr_path.read_text(errors='replace')}", pytrace=False)
    if first is None:
        proc.wait(timeout=5)
        pytest.fail(f"wsgate exited with {proc.returncode} before listening; cmd={cmd}\n"
                    f"config:\n{config}\nstderr:\n{stderr_path.read_text(errors='replace')}", pytrace=False)
    m = (DEV_LISTENING_RE if command == "dev" else LISTENING_RE).match(first)
    if not m:
        proc.kill()
        proc.wait()
        pytest.fail(f"unexpected first stdout line from wsgate: {first!r}", pytrace=False)
    gw = Gateway(proc=proc, port=int(m["port"]), stage=m["stage"], listening_line=first,
                 stderr_path=stderr_path, config_path=config_path)

    def collect_rest() -> None:
        while True:
            item = lines.get()
            if item is None:
                return
            gw.stdout_rest.append(item)

    threading.Thread(target=collect_rest, daemon=True).start()
    return gw


@pytest.fixture
def gateway_factory(tmp_path):
    """start(config_text=None, args=(), env=None) -> Gateway. Without config, runs the embedded
    default with --listen 127.0.0.1:0. Every gateway is stopped by PID at teardown."""
    started: list[Gateway] = []

    def start(config: str | None = None, args: list[str] | tuple = (), env: dict[str, str] | None = None) -> Gateway:
        args = list(args)
        if config is None and "--listen" not in args:
            args += ["--listen", "127.0.0.1:0"]
        gw = _start_gateway(tmp_path, config, args, env)
        started.append(gw)
        _current_gateways.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()
    _current_gateways.clear()


@pytest.fixture
def dev_gateway(tmp_path, tmp_path_factory):
    """start(args, env=None, cwd=None, start_timeout=30) -> Gateway: `wsgate dev ARGS --listen 127.0.0.1:0` (ARGS
    naming the project: `--config`, `--serverless` or `--sam`), run in `cwd` (default tmp_path).
    `ws_url` is its plain URL. Stopped by PID at teardown (SIGTERM, 15 s to run `$disconnect`s)."""
    started: list[Gateway] = []

    def start(args: list[str] | tuple, env: dict[str, str] | None = None, cwd: Path | None = None,
              start_timeout: float = 30.0) -> Gateway:
        args = list(args)
        if "--listen" not in args:
            args += ["--listen", "127.0.0.1:0"]
        # The log goes outside the project folder, which `wsgate dev` watches for code changes.
        gw = _start_gateway(tmp_path, None, args, env, start_timeout=start_timeout, command="dev", cwd=cwd,
                            log_dir=tmp_path_factory.mktemp("wsgate-dev-log"))
        started.append(gw)
        _current_gateways.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop(wait=15.0)
    _current_gateways.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for i, gw in enumerate(_current_gateways):
            text = gw.stderr()
            if len(text) > 20000:
                text = "...\n" + text[-20000:]
            report.sections.append((f"wsgate #{i} stderr (port {gw.port})", text))
            if gw.config_path is not None:
                report.sections.append((f"wsgate #{i} config", gw.config_path.read_text()))


# --------------------------------------------------------------------------------------------
# The stub backend
# --------------------------------------------------------------------------------------------

@dataclass
class Behaviour:
    status: int = 200
    body: Any = None             # dict/list -> JSON; str/bytes -> as is; callable(event) -> either
    delay: float = 0.0           # seconds before answering
    drop: bool = False           # close the TCP connection without answering
    headers: dict[str, str] = field(default_factory=dict)


class StubBackend:
    """Records each JSON event POSTed per path and answers per configured behaviour."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict]] = defaultdict(list)
        self.raw: dict[str, list[tuple[dict[str, str], bytes]]] = defaultdict(list)
        self.behaviours: dict[str, Behaviour] = {}
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                try:
                    event = json.loads(data) if data else None
                except ValueError:
                    event = {"__unparsable__": data.decode(errors="replace")}
                with stub.cond:
                    stub.events[path].append(event)
                    stub.raw[path].append((dict(self.headers.items()), data))
                    stub.cond.notify_all()
                behaviour = stub.behaviours.get(path, Behaviour())
                if behaviour.delay:
                    stub.stopping.wait(behaviour.delay)
                if behaviour.drop:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                body = behaviour.body(event) if callable(behaviour.body) else behaviour.body
                if body is None:
                    payload = b""
                elif isinstance(body, (dict, list)):
                    payload = json.dumps(body).encode()
                elif isinstance(body, bytes):
                    payload = body
                else:
                    payload = str(body).encode()
                try:
                    self.send_response(behaviour.status)
                    for k, v in behaviour.headers.items():
                        self.send_header(k, v)
                    if isinstance(body, (dict, list)) and "Content-Type" not in behaviour.headers:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the gateway gave up on us (timeouts)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            # socketserver's default backlog is 5: hundreds of $disconnect calls at once (a test
            # that closes 300 clients) overflowed it, and the kernel's SYN-ACK retries made some
            # wait past the test's bounds. A real backend listens with a real backlog.
            request_queue_size = 1024

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set(self, path: str, **kw: Any) -> None:
        self.behaviours[path] = Behaviour(**kw)

    def count(self, path: str) -> int:
        with self.cond:
            return len(self.events[path])

    def wait_events(self, path: str, n: int = 1, timeout: float = 5.0) -> list[dict]:
        """Waits until `path` has received at least n events; returns a copy of them."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.events[path]) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"stub {path}: expected {n} event(s) within {timeout}s, got "
                        f"{len(self.events[path])}: {json.dumps(self.events[path])[:2000]}")
                self.cond.wait(left)
            return list(self.events[path])

    def wait_for(self, path: str, predicate: Callable[[dict], bool], timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for event in self.events[path]:
                    if predicate(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"stub {path}: no matching event within {timeout}s; got "
                                         f"{json.dumps(self.events[path])[:2000]}")
                self.cond.wait(left)

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    backend = StubBackend()
    yield backend
    backend.close()


def unused_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port():
    """A 127.0.0.1 port nothing listens on (bound then released)."""
    return unused_port()


def wait_until(probe: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Calls probe() until it returns something true, and returns that; fails after `timeout`
    seconds naming `what` and the last value probe() returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what}; last: {value!r}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------

class RequestFirstConnection(ClientConnection):
    """A websockets sync connection that starts reading only once its upgrade request is written.

    websockets' sync client reads the socket in one thread while the caller writes from another;
    over TLS that is one OpenSSL `SSL` in two threads, which OpenSSL does not support. It loses
    the upgrade request: in TLS 1.3 the server sends session tickets after the handshake (rustls
    sends two as soon as it has the client's Finished); while the reading thread's SSL_read
    processes one, OpenSSL 3.0 (3.0.19 here) has a buffering BIO pushed on the write side and
    frees it, unflushed, when the ticket is done. An SSL_write made in that window returns
    success and sends nothing: the client waited 5 s for the upgrade response, and the gateway,
    TLS handshake done but no request, closed after its 10 s header timeout. Seen in about one
    connect in 1 500 on a loaded machine (the client's socket had sent only the handshake bytes).

    Holding the reader back until the request is out keeps the two apart: the server sends the
    tickets before it reads the request, so they are read (by this thread's SSL_read) before the
    upgrade response is, and nothing else is written before that response. Overrides methods of
    websockets 17.4's sync ClientConnection (pinned in requirements.txt).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.request_written = threading.Event()
        super().__init__(*args, **kwargs)

    def send_data(self) -> None:
        try:
            super().send_data()
        finally:
            self.request_written.set()

    def close_socket(self) -> None:
        # Lets the reading thread run (and see the socket closed) if the request never went out.
        self.request_written.set()
        super().close_socket()

    def recv_events(self) -> None:
        self.request_written.wait()
        super().recv_events()


def open_ws(url: str, **kw: Any):
    """A websockets sync client, connected directly (no proxy), closed by the caller; it reads
    only once its upgrade request is out (see RequestFirstConnection)."""
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 3)
    kw.setdefault("proxy", None)
    kw.setdefault("create_connection", RequestFirstConnection)
    return ws_connect(url, legacy=True, **kw)


@pytest.fixture
def clients():
    """open(url, **kw) -> connection; every connection still open is closed at teardown."""
    opened = []

    def open_(url: str, **kw: Any):
        ws = open_ws(url, **kw)
        opened.append(ws)
        return ws

    yield open_
    for ws in opened:
        try:
            ws.close()
        except Exception:
            pass


def connect_tagged(clients, gw: Gateway, stub: StubBackend, connect_path: str = "/connect", query: str = "",
                   **kw: Any):
    """Connects with a unique ?tag=... (then `query`, e.g. "user=alice") and returns (ws, CONNECT
    event) for that connection."""
    tag = uuid.uuid4().hex
    ws = clients(f"{gw.ws_url}?tag={tag}" + (f"&{query}" if query else ""), **kw)
    event = stub.wait_for(connect_path, lambda e: (e.get("queryStringParameters") or {}).get("tag") == tag)
    return ws, event


def open_slow_reader(clients, gw: Gateway, stub: StubBackend):
    """A client that stops reading: a tiny kernel receive buffer, and websockets stops reading
    from the socket once one message is queued. Returns (ws, CONNECT event)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gw.port))
    return connect_tagged(clients, gw, stub, sock=sock, max_queue=1, close_timeout=0.5)


def post_until_limit_exceeded(client, cid: str, data: bytes, tries: int = 200) -> None:
    """POSTs `data` to a connection that does not read (boto3 `client`) until the gateway
    answers 429 LimitExceededException; fails if it never does within `tries` posts."""
    for _ in range(tries):
        try:
            client.post_to_connection(ConnectionId=cid, Data=data)
        except client.exceptions.LimitExceededException as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            return
    pytest.fail(f"{tries} posts of {len(data)} bytes to a client that does not read never got 429")


def wait_close(ws, timeout: float = 5.0):
    """Reads (discarding messages) until the server closes; returns (code, reason, messages)."""
    deadline = time.monotonic() + timeout
    messages = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"connection not closed within {timeout}s; messages: {messages!r}")
        try:
            messages.append(ws.recv(timeout=left))
        except TimeoutError:
            continue
        except ConnectionClosed as exc:
            if exc.rcvd is None:
                return None, None, messages
            return exc.rcvd.code, exc.rcvd.reason, messages


def recv(ws, timeout: float = 5.0):
    return ws.recv(timeout=timeout)


def assert_no_message(ws, within: float = 0.3) -> None:
    try:
        msg = ws.recv(timeout=within)
    except TimeoutError:
        return
    raise AssertionError(f"expected no message, got {msg!r}")


def http_call(method: str, url: str, body: bytes | None = None, json_body: Any = None):
    """A raw management call, as any backend makes it: (status, JSON body, text for a body that is
    not JSON (`/metrics`), or None; headers with lower-case names). HTTP errors are answers, not
    exceptions."""
    data = json.dumps(json_body).encode() if json_body is not None else body
    request = urllib.request.Request(url, data=data, method=method)
    if json_body is not None:
        request.add_header("Content-Type", "application/json")

    def parsed(text: bytes):
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text.decode(errors="replace")

    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, parsed(response.read()), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, parsed(error.read()), {k.lower(): v for k, v in error.headers.items()}


def quote_id(cid: str) -> str:
    """A connection id as a path segment or query value (its `=` written %3D)."""
    return cid.replace("=", "%3D")


def mgmt_client(endpoint_url: str, *, region: str = "eu-west-1", access_key: str = ACCESS_KEY,
                secret_key: str = SECRET_KEY, session_token: str | None = None,
                verify: str | None = None):
    return boto3.session.Session().client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint_url,
        verify=verify,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"},
                                      connect_timeout=5, read_timeout=10),
    )


def aws_cli() -> Path:
    candidate = Path(sys.executable).parent / "aws"
    if candidate.exists():
        return candidate
    return COMPAT_DIR / ".venv" / "bin" / "aws"
