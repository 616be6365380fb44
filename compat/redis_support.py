"""Redis for the cluster-mode tests, and groups of wsgate nodes sharing one `[cluster]` section.

Fixtures (loaded by conftest.py as a plugin):
- `redis_server`: a standalone redis-server of this test, on a free 127.0.0.1 port, empty and
  without persistence; `.stop()` / `.start()` take it down and bring it back, empty, on the same
  port, to play a Redis outage.
- `redis_cluster`: a 3-master Redis Cluster of this test module (`redis-cli --cluster create`).
- `cluster_nodes`: starts wsgate nodes against either of them, with a key prefix of this test.

Every server is started by this file on ports taken from the kernel (never 6379, where Debian's
package may run a system Redis) and stopped by its PID. No Redis client library: a few lines of
RESP over a socket are enough for PING, INFO and CLUSTER INFO.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import Gateway, render_config, unused_port

START_TIMEOUT = 10.0
CLUSTER_NODES = 3

# Servers started for the current test, for attaching their logs to failure reports.
_current_servers: list["RedisServer"] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for server in _current_servers:
            report.sections.append((f"redis-server log (port {server.port})", server.log()))


# --------------------------------------------------------------------------------------------
# RESP, the Redis protocol: one command, one reply
# --------------------------------------------------------------------------------------------

class RedisError(Exception):
    """An error reply (`-ERR ...`)."""


def _read_reply(stream) -> Any:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError(f"connection closed in the middle of a reply: {line!r}")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RedisError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        length = int(rest)
        return None if length < 0 else stream.read(length + 2)[:-2].decode(errors="replace")
    if kind == b"*":
        length = int(rest)
        return None if length < 0 else [_read_reply(stream) for _ in range(length)]
    raise ConnectionError(f"not a RESP reply: {line!r}")


def redis_command(port: int, *args: str, timeout: float = 2.0) -> Any:
    """Sends one command to 127.0.0.1:port and returns its reply: str, int, list or None.
    Raises RedisError on an error reply and OSError when nothing answers."""
    encoded = [str(a).encode() for a in args]
    request = b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in encoded)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        with sock.makefile("rb") as stream:
            return _read_reply(stream)


def parse_info(text: str) -> dict[str, str]:
    """INFO's (and CLUSTER INFO's) `key:value` lines as a dict; section headers are left out."""
    fields = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value
    return fields


def redis_tool(name: str) -> str:
    """The path of `name` (redis-server, redis-cli). Missing: a failure on CI, which must have
    it (scripts/test.sh installs it), and a skip elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed; scripts/test.sh installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


# --------------------------------------------------------------------------------------------
# One redis-server process
# --------------------------------------------------------------------------------------------

class RedisServer:
    """A redis-server on 127.0.0.1:`port`, its files (log, cluster config) in `directory`.
    Empty at every start: no RDB snapshot, no AOF, and the directory's dump is removed."""

    def __init__(self, directory: Path, port: int, extra_args: list[str] | tuple = ()) -> None:
        self.binary = redis_tool("redis-server")
        self.directory = directory
        self.port = port
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.log_path = directory / "redis.log"
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def cluster_config(self) -> dict[str, Any]:
        """What `[cluster]` says to use this server."""
        return {"redis": self.url}

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Starts the server (again) on its port, empty, and waits until it answers PING."""
        assert not self.running(), "redis-server is already running"
        assert self.port != 6379, "tests never use the system Redis port"
        (self.directory / "dump.rdb").unlink(missing_ok=True)
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(self.directory), "--logfile", str(self.log_path),
               "--daemonize", "no", *self.extra_args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; cmd={cmd}\n{self.log()}")
            try:
                if self.command("PING") == "PONG":
                    return
            except (OSError, RedisError):
                pass
            if time.monotonic() >= deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT}s\n{self.log()}")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to its PID, then waits for it to exit (SIGKILL after `timeout`)."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=5)

    def command(self, *args: str) -> Any:
        return redis_command(self.port, *args)

    def info(self, section: str | None = None) -> dict[str, str]:
        """INFO [section], parsed: {"redis_version": "7.0.15", "tcp_port": "41234", ...}."""
        return parse_info(self.command("INFO", *([section] if section else [])))

    def keys(self) -> list[str]:
        """Every key of the server (tests keep a few hundred at most)."""
        return self.command("KEYS", "*")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""


def start_redis(directory: Path, extra_args: list[str] | tuple = (), tries: int = 3) -> RedisServer:
    """A RedisServer started on a free port; another port is tried if that one was taken in the
    meantime (another test, another worker)."""
    for attempt in range(tries):
        server = RedisServer(directory, unused_port(), extra_args)
        try:
            server.start()
            _current_servers.append(server)
            return server
        except RuntimeError:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def redis_server(tmp_path):
    """A standalone redis-server for this test: `.port`, `.url`, `.cluster_config()`, `.stop()`,
    `.start()` (same port, empty), `.info(section)`, `.command(...)`, `.keys()`. Stopped at the end."""
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()
    _current_servers.remove(server)


# --------------------------------------------------------------------------------------------
# A Redis Cluster of three masters
# --------------------------------------------------------------------------------------------

class RedisCluster:
    """Three redis-server processes in cluster mode, joined by `redis-cli --cluster create`."""

    def __init__(self, servers: list[RedisServer]) -> None:
        self.servers = servers

    @property
    def seeds(self) -> list[str]:
        return [server.url for server in self.servers]

    def cluster_config(self) -> dict[str, Any]:
        """What `[cluster]` says to use this cluster."""
        return {"redis_cluster": self.seeds}

    def cluster_info(self, index: int = 0) -> dict[str, str]:
        return parse_info(self.servers[index].command("CLUSTER", "INFO"))

    def healthy(self) -> bool:
        """Every node says cluster_state:ok and knows the others."""
        try:
            infos = [self.cluster_info(i) for i in range(len(self.servers))]
        except (OSError, RedisError):
            return False
        return all(info.get("cluster_state") == "ok" and info.get("cluster_known_nodes") == str(len(self.servers))
                   for info in infos)

    def create(self) -> None:
        cli = redis_tool("redis-cli")
        result = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in self.servers),
             "--cluster-replicas", "0", "--cluster-yes"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}")
        deadline = time.monotonic() + 20
        while not self.healthy():
            if time.monotonic() >= deadline:
                raise RuntimeError(f"the Redis Cluster is not ok after 20 s: {self.cluster_info()}")
            time.sleep(0.05)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def start_redis_cluster(directory: Path) -> RedisCluster:
    """Three masters, each with its own free client and bus ports (`--cluster-port`: the
    default bus port, port + 10000, may be taken or past 65535), joined into one cluster."""
    servers = []
    try:
        for n in range(1, CLUSTER_NODES + 1):
            servers.append(start_redis(directory / f"node-{n}", [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(directory / f"nodes-{n}.conf"),
                "--cluster-port", str(unused_port()),
            ]))
        cluster = RedisCluster(servers)
        cluster.create()
        return cluster
    except BaseException:
        for server in servers:
            server.stop()
            _current_servers.remove(server)
        raise


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    """A 3-master Redis Cluster shared by the tests of one module (each test's nodes use their
    own key prefix): `.seeds`, `.cluster_config()`, `.servers` (RedisServer each),
    `.cluster_info(i)`. Stopped after the module."""
    cluster = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()
    for server in cluster.servers:
        _current_servers.remove(server)


# --------------------------------------------------------------------------------------------
# wsgate nodes
# --------------------------------------------------------------------------------------------

def cluster_section(**keys: Any) -> str:
    """A `[cluster]` table. Values are strings, numbers or lists of strings (JSON's forms are
    TOML's); keys given None are left out."""
    lines = ["[cluster]"] + [f"{k} = {json.dumps(v)}" for k, v in keys.items() if v is not None]
    return "\n".join(lines) + "\n"


# node_timeout leaves a loaded 2-core CI machine room for a late heartbeat or two.
CLUSTER_DEFAULTS = {"heartbeat": "200ms", "node_timeout": "2s", "request_timeout": "1s"}


@pytest.fixture
def cluster_nodes(gateway_factory):
    """start(count, routes, backend, *, cluster=None, extra="", **render_config_kwargs) -> list of
    Gateways, each started with `serve --config FILE --listen 127.0.0.1:0` and with `.node_id`.

    `backend` is a redis_server or redis_cluster fixture value. Every node gets the same config
    but its own `node_id` (gw-1, gw-2, ... across calls), `key_prefix` is this test's
    (`cluster_nodes.prefix`); `cluster` overrides any [cluster] key (None leaves it out);
    `extra` is TOML appended as is (authorizers, functions)."""
    prefix = f"wsgate-test-{uuid.uuid4().hex[:12]}"
    started: list[Gateway] = []

    def start(count: int, routes: dict[str, dict[str, Any]], backend: Any, *,
              cluster: dict[str, Any] | None = None, extra: str = "", **render_kwargs: Any) -> list[Gateway]:
        base = render_config(routes, **render_kwargs)
        nodes = []
        for _ in range(count):
            node_id = f"gw-{len(started) + 1}"
            keys = {**backend.cluster_config(), "node_id": node_id, **CLUSTER_DEFAULTS,
                    "key_prefix": prefix, **(cluster or {})}
            gw = gateway_factory(base + "\n" + cluster_section(**keys) + ("\n" + extra if extra else ""),
                                 args=["--listen", "127.0.0.1:0"])
            gw.node_id = keys["node_id"]
            started.append(gw)
            nodes.append(gw)
        return nodes

    start.prefix = prefix
    return start


# --------------------------------------------------------------------------------------------
# A link that can be cut: one node's way to Redis
# --------------------------------------------------------------------------------------------

class CuttableLink:
    """A TCP forwarder on 127.0.0.1:`port` to 127.0.0.1:`target`. `cut()` closes every forwarded
    connection and refuses new ones (a node cut off from Redis while the others still reach it);
    `restore()` forwards again. Threads only; `close()` stops it."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.down = False
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"link-{self.port}").start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                refused = self.down or self.closed
            if refused:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self.lock:
            self.down = True
            sockets, self.open = self.open, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self) -> None:
        with self.lock:
            self.down = False

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()


@pytest.fixture
def cuttable_link():
    """link(target_port) -> CuttableLink; every link is closed at the end of the test."""
    links: list[CuttableLink] = []

    def make(target: int) -> CuttableLink:
        links.append(CuttableLink(target))
        return links[-1]

    yield make
    for link in links:
        link.close()
