"""Upgrading the binary in place: `wsgate serve --pid-file P` and `kill -USR2 $(cat P)` start the
binary again and hand it the listener and every live plain-TCP connection. Real `websockets`
clients (hundreds, under POST traffic), raw sockets mid-frame, resumable and TLS clients, boto3, a
stub backend that counts `$connect`/`$disconnect`, and new processes that fail in each way one can:
a binary that does not start, a config that does not validate, a process that dies mid-handover."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import signal
import socket
import stat
import struct
import threading
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect_async
from websockets.exceptions import ConnectionClosed

from conftest import (http_call, mgmt_client, open_slow_reader, open_ws, quote_id, recv, render_config,
                      sigv4_management, wait_close, wait_until, wsgate_bin)
from redis_support import cluster_section
from test_resume import SUBPROTOCOL, drop
from test_resume import routes as resume_routes
from test_tls import make_cert, trusting

def routes(stub) -> dict:
    """$connect and $disconnect to the stub, $default echoes, `whoami` names the connection,
    `slow` asks the stub (whose /slow answers late)."""
    return {
        **resume_routes(stub),
        "whoami": {"type": "mock", "body": '{"id":"${context.connectionId}"}', "route_response": True},
        "slow": {"type": "http", "url": stub.url("/slow"), "route_response": True},
    }


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Upgradable:
    """A gateway started with --pid-file; `upgrade()` sends USR2 to whoever serves and waits for
    the new pid. Every process that served is stopped by PID at teardown."""

    def __init__(self, gateway_factory, tmp_path: Path) -> None:
        self.factory, self.tmp_path = gateway_factory, tmp_path
        self.pids: list[int] = []

    def start(self, config: str, env: dict | None = None):
        self.pid_file = self.tmp_path / f"wsgate-{len(self.pids)}.pid"
        self.gw = self.factory(config, args=["--pid-file", str(self.pid_file)], env=env)
        wait_until(lambda: read_pid(self.pid_file) == self.gw.proc.pid, 5, "the pid file")
        self.pids.append(self.gw.proc.pid)
        return self.gw

    def serving(self) -> int:
        pid = read_pid(self.pid_file)
        assert pid is not None
        return pid

    def upgrade(self, timeout: float = 30) -> int:
        old = self.serving()
        os.kill(old, signal.SIGUSR2)
        new = wait_until(lambda: (read_pid(self.pid_file) or old) != old and read_pid(self.pid_file), timeout,
                         "the new process's pid in the pid file")
        self.pids.append(new)
        wait_until(lambda: not alive(old), 15, f"the old process {old} to exit")
        if old == self.gw.proc.pid:
            assert self.gw.proc.wait(timeout=5) == 0
        return new

    def log(self) -> str:
        return self.gw.stderr()

    def stop(self) -> None:
        for pid in self.pids[1:]:
            if alive(pid):
                os.kill(pid, signal.SIGTERM)
        for pid in self.pids[1:]:
            deadline = time.monotonic() + 15
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def upgradable(gateway_factory, tmp_path):
    gateway = Upgradable(gateway_factory, tmp_path)
    yield gateway
    gateway.stop()


def disconnects(stub) -> list[dict]:
    with stub.cond:
        return list(stub.events["/disconnect"])


class Poster(threading.Thread):
    """POSTs round after round of numbered messages to every connection over one kept-alive HTTP
    connection, as a backend does; a 503 or a broken connection is retried on a new one (boto3
    does the same). Records what each connection was answered 200 for."""

    def __init__(self, port: int, ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.port, self.ids = port, ids
        self.accepted: dict[str, list[str]] = {cid: [] for cid in ids}
        self.retries = 0
        self.rounds = 0
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.halt.is_set():
            for cid in self.ids:
                body = str(self.rounds)
                for attempt in range(50):
                    try:
                        conn.request("POST", f"/dev/@connections/{quote_id(cid)}", body=body.encode())
                        response = conn.getresponse()
                        response.read()
                        status = response.status
                        if response.getheader("connection", "").lower() == "close":
                            conn.close()
                    except (OSError, http.client.HTTPException):
                        conn.close()
                        status = None
                    if status == 200:
                        self.accepted[cid].append(body)
                        break
                    if status not in (None, 503):
                        self.failures.append(f"{cid}: {status}")
                        break
                    self.retries += 1
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    time.sleep(0.01)
                else:
                    self.failures.append(f"{cid}: no answer after 50 tries")
            self.rounds += 1
        conn.close()


def test_usr2_hands_hundreds_of_connections_to_the_new_binary_under_traffic_twice(upgradable, stub, tmp_path):
    # systemd's notify socket, to see each process say it is the main one once it serves.
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    gw = upgradable.start(render_config(routes(stub)), env={"NOTIFY_SOCKET": str(notify_path)})
    count = 300

    async def scenario():
        clients = [await ws_connect_async(gw.ws_url, proxy=None, max_queue=None) for _ in range(count)]
        ids = []
        for ws in clients:
            await ws.send(json.dumps({"action": "whoami"}))
            ids.append(json.loads(await asyncio.wait_for(ws.recv(), 5))["id"])
        received: dict[str, list[str]] = {cid: [] for cid in ids}
        closed: list[str] = []

        async def read(ws, cid):
            try:
                async for message in ws:
                    received[cid].append(message)
            except ConnectionClosed as exc:
                closed.append(f"{cid}: {exc}")
            else:
                closed.append(f"{cid}: closed")

        readers = [asyncio.create_task(read(ws, cid)) for ws, cid in zip(clients, ids)]
        poster = Poster(gw.port, ids)
        poster.start()
        pids = [upgradable.serving()]
        for _ in range(2):
            await asyncio.to_thread(wait_until, lambda r=poster.rounds: poster.rounds >= r + 2, 30, "two rounds of POSTs")
            pids.append(await asyncio.to_thread(upgradable.upgrade))
        await asyncio.to_thread(wait_until, lambda r=poster.rounds: poster.rounds >= r + 2, 30, "two more rounds")
        poster.halt.set()
        await asyncio.to_thread(poster.join, 30)
        assert poster.failures == []

        def all_arrived():
            return all(received[cid][:len(poster.accepted[cid])] == poster.accepted[cid] for cid in ids)
        deadline = time.monotonic() + 15
        while not all_arrived() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # Every message answered 200 arrived, exactly once and in order; nothing else came.
        for cid in ids:
            assert received[cid] == poster.accepted[cid], cid
        assert closed == []
        # Every connection still answers on its socket, and by its id.
        for n, ws in enumerate(clients):
            await ws.send(f"after {n}")
        for n, cid in enumerate(ids):
            await asyncio.to_thread(wait_until, lambda: received[cid][-1:] == [f"after {n}"], 5, "the echo")
        for r in readers:
            r.cancel()
        for ws in clients:
            await ws.close()
        return ids, pids, poster

    ids, pids, poster = asyncio.run(scenario())
    assert len(set(pids)) == 3
    assert poster.rounds >= 6
    # Backends saw each connection once: no $connect again, no $disconnect while they moved.
    assert stub.count("/connect") == count
    wait_until(lambda: len(disconnects(stub)) == count, 10, "$disconnect of the clients that closed")
    assert sorted(e["requestContext"]["connectionId"] for e in disconnects(stub)) == sorted(ids)
    assert all(e["requestContext"]["disconnectStatusCode"] == 1000 for e in disconnects(stub))
    notify.settimeout(1)
    said = []
    try:
        while True:
            said.append(notify.recv(4096).decode())
    except OSError:
        pass
    notify.close()
    for pid in pids:
        assert f"READY=1\nMAINPID={pid}" in said


def test_an_answer_under_way_during_the_upgrade_reaches_its_client(upgradable, stub, clients):
    stub.set("/slow", delay=1.5, body="slow answer")
    gw = upgradable.start(render_config(routes(stub)))
    ws = clients(gw.ws_url)
    ws.send(json.dumps({"action": "slow"}))
    stub.wait_events("/slow")
    upgradable.upgrade()
    assert recv(ws, timeout=10) == "slow answer"
    ws.send("and then")
    assert recv(ws) == "and then"
    assert disconnects(stub) == []


def raw_client(port: int) -> socket.socket:
    """A WebSocket client on a bare socket: the handshake, then frames written by hand."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /dev HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def client_frame(payload: bytes, opcode: int = 1, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_message(sock: socket.socket) -> bytes:
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data
    first, second = exactly(2)
    assert first & 0x0F in (1, 2), f"opcode {first & 0x0F}"
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", exactly(2))[0]
    return exactly(length)


def test_half_a_frame_and_half_a_message_sent_before_the_upgrade_are_finished_after_it(upgradable, stub):
    gw = upgradable.start(render_config(routes(stub)))
    halves, fragments = raw_client(gw.port), raw_client(gw.port)
    whole = client_frame(b"split across two processes " * 10)
    halves.sendall(whole[:40])
    fragments.sendall(client_frame(b"first fragment, ", fin=False) + client_frame(b"ping", opcode=9))
    time.sleep(0.2)
    upgradable.upgrade()
    halves.sendall(whole[40:])
    assert server_message(halves) == b"split across two processes " * 10
    fragments.sendall(client_frame(b"last fragment", opcode=0))
    # The pong of the ping comes first (perhaps twice: once from each process), then the message.
    message = server_message_skipping_pongs(fragments)
    assert message == b"first fragment, last fragment"
    for sock in (halves, fragments):
        sock.sendall(client_frame(b"more"))
        assert server_message_skipping_pongs(sock) == b"more"
        sock.close()


def server_message_skipping_pongs(sock: socket.socket) -> bytes:
    while True:
        first = sock.recv(1, socket.MSG_PEEK)
        if first and first[0] & 0x0F == 0xA:
            header = sock.recv(2)
            sock.recv(header[1] & 0x7F)
            continue
        return server_message(sock)


def test_a_new_binary_that_fails_leaves_the_old_one_serving_every_connection(upgradable, stub, clients,
                                                                           tmp_path, monkeypatch):
    binary = tmp_path / "bin" / "wsgate"
    binary.parent.mkdir()
    real = wsgate_bin().read_bytes()
    binary.write_bytes(real)
    binary.chmod(0o755)
    monkeypatch.setenv("WSGATE_BIN", str(binary))
    config = render_config(routes(stub))
    gw = upgradable.start(config)
    ws = clients(gw.ws_url)
    ws.send(json.dumps({"action": "whoami"}))
    cid = json.loads(recv(ws))["id"]
    serving = upgradable.serving()

    def attempt_fails(why: str, n: int) -> None:
        os.kill(serving, signal.SIGUSR2)
        wait_until(lambda: upgradable.log().count("USR2: not upgraded") >= n, 40, "the failed upgrade's log line")
        assert why in upgradable.log().split("USR2: not upgraded")[n]
        assert upgradable.serving() == serving
        # The client saw nothing; its socket and its id still work.
        ws.send(f"still here {n}")
        assert recv(ws) == f"still here {n}"
        assert http_call("POST", f"{gw.mgmt_url}/@connections/{quote_id(cid)}", f"posted {n}".encode())[0] == 200
        assert recv(ws) == f"posted {n}"

    # A binary that does not start.
    replace(binary, b"#!/bin/sh\necho 'this build is broken' >&2\nexit 3\n")
    attempt_fails("exit status: 3", 1)
    assert "this build is broken" in upgradable.log()
    # A new process that dies in the middle of the handover, with the connection in its hands.
    replace(binary, FAKE_THAT_DIES.format(python=Path(os.sys.executable)).encode())
    attempt_fails("exited", 2)
    assert "fake took a session" in upgradable.log()
    # The real binary, with a config that no longer validates.
    replace(binary, real)
    gw.config_path.write_text(config + "\n[limits]\nidle_timeout = \"forever\"\n")
    attempt_fails("exited", 3)
    assert "idle_timeout" in upgradable.log()
    # Put right, the upgrade goes through.
    gw.config_path.write_text(config)
    upgradable.upgrade()
    ws.send("moved at last")
    assert recv(ws) == "moved at last"
    assert stub.count("/connect") == 1
    assert disconnects(stub) == []


def replace(path: Path, content: bytes) -> None:
    """Swaps a new file in at `path` (a rename, as a package manager does)."""
    fresh = path.with_suffix(".new")
    fresh.write_bytes(content)
    fresh.chmod(fresh.stat().st_mode | stat.S_IXUSR)
    fresh.replace(path)


# A "new binary" that says hello and ready, takes one session (and its socket), and dies.
FAKE_THAT_DIES = """#!{python}
import json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.environ["WSGATE_HANDOFF"])
def send(kind, header):
    h = json.dumps(header).encode()
    s.sendall(kind + b"\\0" + struct.pack("<II", len(h), 0) + h)
def recv():
    data, fds, _, _ = socket.recv_fds(s, 10, 8)
    kind, nfds, hl, dl = data[0:1], data[1], *struct.unpack("<II", data[2:10])
    rest = b""
    while len(rest) < hl + dl:
        rest += s.recv(hl + dl - len(rest))
    return kind, fds
send(b"H", {{"pid": os.getpid()}})
assert recv()[0] == b"W"
send(b"R", {{}})
kind, fds = recv()
print("fake took a session" if kind == b"S" and fds else "fake got " + repr(kind), file=sys.stderr, flush=True)
os._exit(1)
"""


def reliable(url: str, **kw):
    ws = open_ws(url, subprotocols=[SUBPROTOCOL], **kw)
    hello = json.loads(recv(ws))
    return ws, hello


def test_resumable_sessions_move_live_and_suspended_and_tls_ones_resume_after_1012(upgradable, stub, tmp_path):
    cert, key = make_cert(tmp_path, "upgrade")
    config = render_config(routes(stub), **sigv4_management()) + (
        f'\n[gateway.tls]\ncert = "{cert}"\nkey = "{key}"\nplaintext = "accept"\n')
    gw = upgradable.start(config)
    api = mgmt_client(gw.mgmt_url)
    live, live_hello = reliable(gw.ws_url)
    away, away_hello = reliable(gw.ws_url)
    secure, secure_hello = reliable(f"wss://127.0.0.1:{gw.port}/dev", ssl=trusting(cert))
    plain_tls = open_ws(f"wss://127.0.0.1:{gw.port}/dev", ssl=trusting(cert))
    plain_tls.send(json.dumps({"action": "whoami"}))
    plain_tls_id = json.loads(recv(plain_tls))["id"]
    for ws, hello in ((live, live_hello), (away, away_hello), (secure, secure_hello)):
        api.post_to_connection(ConnectionId=hello["connectionId"], Data=b"before")
        assert json.loads(recv(ws)) == {"type": "message", "seq": 1, "data": "before"}
    drop(away)
    api.post_to_connection(ConnectionId=away_hello["connectionId"], Data=b"while away")

    upgradable.upgrade()
    # A TLS connection cannot move: 1012, and a resumable one comes back with the new process.
    assert wait_close(secure)[0] == 1012
    assert wait_close(plain_tls)[0] == 1012
    wait_until(lambda: [e for e in disconnects(stub) if e["requestContext"]["connectionId"] == plain_tls_id],
               10, "$disconnect of the TLS client that cannot resume")
    [gone] = disconnects(stub)
    assert gone["requestContext"]["disconnectStatusCode"] == 1012

    api = mgmt_client(gw.mgmt_url)
    for ws, hello in ((live, live_hello), (away, away_hello), (secure, secure_hello)):
        api.post_to_connection(ConnectionId=hello["connectionId"], Data=b"after")
    # The live one never noticed; its numbering goes on.
    assert json.loads(recv(live)) == {"type": "message", "seq": 2, "data": "after"}
    back, resumed = reliable(f"{gw.ws_url}?resume={away_hello['resumeToken']}&seq=1")
    assert resumed["type"] == "resumed" and resumed["connectionId"] == away_hello["connectionId"]
    assert [json.loads(recv(back)) for _ in range(2)] == [
        {"type": "message", "seq": 2, "data": "while away"}, {"type": "message", "seq": 3, "data": "after"}]
    again, resumed = reliable(f"wss://127.0.0.1:{gw.port}/dev?resume={secure_hello['resumeToken']}&seq=1",
                              ssl=trusting(cert))
    assert resumed["connectionId"] == secure_hello["connectionId"]
    assert json.loads(recv(again)) == {"type": "message", "seq": 2, "data": "after"}
    assert stub.count("/connect") == 4
    for ws in (live, back, again):
        ws.close()


def test_a_reader_too_slow_to_take_what_was_queued_moves_with_all_of_it(upgradable, stub, clients):
    gw = upgradable.start(render_config(routes(stub), limits={"outbox_bytes": 131072}))
    ws, event = open_slow_reader(clients, gw, stub)
    cid = event["requestContext"]["connectionId"]
    url = f"{gw.mgmt_url}/@connections/{quote_id(cid)}"
    accepted = []
    for n in range(5000):
        message = f"{n:06d}" + "x" * 1000
        status = http_call("POST", url, message.encode())[0]
        if status == 429:
            break
        assert status == 200
        accepted.append(message)
    assert status == 429, "the outbox never filled"
    upgradable.upgrade()
    for n in range(3):
        assert http_call("POST", url, f"after {n}".encode())[0] == 200
        accepted.append(f"after {n}")
    # Everything queued in the old process, and what the socket could not take, arrives in order.
    assert [recv(ws) for _ in accepted] == accepted
    assert disconnects(stub) == []


def test_a_cluster_node_refuses_usr2_and_serves_on(upgradable, stub, clients, redis_server):
    config = render_config(routes(stub)) + "\n" + cluster_section(**redis_server.cluster_config())
    gw = upgradable.start(config)
    ws = clients(gw.ws_url)
    serving = upgradable.serving()
    os.kill(serving, signal.SIGUSR2)
    wait_until(lambda: "USR2: not upgraded" in upgradable.log(), 10, "the refusal in the log")
    assert "cluster node" in upgradable.log().split("USR2: not upgraded")[1]
    assert upgradable.serving() == serving
    ws.send("still served")
    assert recv(ws) == "still served"


def test_usr2_does_not_end_wsgate_dev(dev_gateway, stub, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "wsgate.toml").write_text(render_config(routes(stub)))
    gw = dev_gateway(["--config", str(project / "wsgate.toml")])
    os.kill(gw.proc.pid, signal.SIGUSR2)
    wait_until(lambda: "wsgate dev does not upgrade" in gw.stderr(), 10, "the warning in the log")
    assert gw.proc.poll() is None
    ws = open_ws(gw.ws_url)
    ws.send("still here")
    assert recv(ws) == "still here"
    ws.close()
