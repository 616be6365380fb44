"""The slow-body attack on the management API, against the release binary: 100 connections, each
declaring a body 10 bytes longer than it sends. With a credential that cannot be valid they are
refused from their headers at once; without auth (loopback) their bodies time out. Either way
every connection is closed and the gateway's memory stays bounded."""

import socket
import time

from conftest import render_config

ECHO = {"$default": {"type": "mock", "body": "${request.body}", "route_response": True}}
CONNECTIONS = 100
BODY = 64 * 1024


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_short_bodies(port: int, authorization: str | None) -> list[socket.socket]:
    """Each socket has sent its head and all but 10 bytes of the body it declared."""
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    head = (f"POST /dev/@broadcast HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
            f"Content-Length: {BODY + 10}\r\n\r\n").encode()
    sockets = []
    for _ in range(CONNECTIONS):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(head + b"x" * BODY)
        sockets.append(s)
    return sockets


def answer_then_close(s: socket.socket, deadline: float) -> bytes:
    """What the gateway sent before closing (b"" if it reset); fails past the deadline."""
    received = b""
    s.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return received
            received += chunk
    except ConnectionResetError:
        return received
    finally:
        s.close()


def attack(gw, authorization, expected_status, within):
    before = rss_kib(gw.proc.pid)
    started = time.monotonic()
    sockets = open_short_bodies(gw.port, authorization)
    peak = rss_kib(gw.proc.pid)
    deadline = started + within
    answers = [answer_then_close(s, deadline) for s in sockets]
    elapsed = time.monotonic() - started
    statuses = {a.split(b" ")[1].decode() for a in answers if a.startswith(b"HTTP/1.1 ")}
    assert statuses <= {expected_status}, statuses
    assert elapsed < within, f"every connection closed within {within} s (took {elapsed:.1f} s)"
    after = rss_kib(gw.proc.pid)
    print(f"RSS {before} KiB before, {peak} KiB with {CONNECTIONS} connections open, {after} KiB after")
    # The original attack grew RSS from 8.7 MB to 130 MB and held every connection open.
    assert max(peak, after) - before < 40 * 1024, (before, peak, after)


def test_unknown_tokens_are_refused_from_their_headers_and_closed(gateway_factory):
    config = render_config(ECHO, management={"auth": "token"})
    config += '\n[[management.tokens]]\nname = "backend"\ntoken = "backend-token-0123456789"\n'
    config = config.replace('auth = "token"', 'auth = "token"\nauth_failures_per_second = 0', 1)
    gw = gateway_factory(config)
    attack(gw, None, "401", within=5)
    attack(gw, "Bearer guessed-token-0123456789", "401", within=5)


def test_unauthenticated_bodies_that_never_end_time_out_and_close(gateway_factory):
    gw = gateway_factory(render_config(ECHO, management={"body_timeout": "1s"}))
    attack(gw, None, "408", within=6)
