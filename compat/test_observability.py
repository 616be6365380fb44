"""What an operator reads: `GET /metrics` (parsed by the official Prometheus Python client's
parser), `/healthz` and `/readyz` (503 while draining on SIGTERM and while a cluster node's Redis
is down), and JSON logs with one line per ended connection. Counters are checked to move by
exactly the actions each test takes, on a real gateway driven by real clients (websockets, boto3,
raw HTTP)."""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (http_call, mgmt_client, open_slow_reader, post_until_limit_exceeded,
                      render_config, unused_port, wait_close, wait_until)

TOKEN = "metrics-token-0123456789abcdef"

FUNCTION = '''
def handler(event, context):
    if "boom" in event["body"]:
        raise ValueError("boom asked")
    return {"statusCode": 200, "body": "fn:" + event["body"]}
'''


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), {k.lower(): v for k, v in error.headers.items()}


def scrape(gw, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple], float]:
    """Every sample of `GET /metrics`, as {(name, sorted labels): value}, read by Prometheus'
    own parser."""
    status, text, response_headers = get(f"http://{gw.host}/metrics", headers)
    assert status == 200, text
    assert response_headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_exactly_the_actions_taken(gateway_factory, stub, clients, tmp_path):
    (tmp_path / "app.py").write_text(FUNCTION)
    slow = stub.url("/slow")
    stub.set("/slow", delay=1.0, body={"statusCode": 200})
    stub.set("/msg", body={"statusCode": 200, "body": "from backend"})
    config = render_config({
        "$connect": {"type": "http", "url": stub.url("/connect")},
        "$disconnect": {"type": "http", "url": stub.url("/disconnect")},
        "echo": {"type": "mock", "body": "${request.body}", "route_response": True},
        "backend": {"type": "http", "url": stub.url("/msg"), "route_response": True},
        "broken": {"type": "http", "url": f"http://user:pw@127.0.0.1:{unused_port()}/x?key=secret",
                   "route_response": True},
        "slow": {"type": "http", "url": slow, "timeout": "200ms", "route_response": True},
        "fn": {"type": "function", "function": "fn", "route_response": True},
    }) + f'''
[functions.fn]
runtime = "python"
handler = "app.handler"
dir = "{tmp_path}"
interpreter = "{sys.executable}"
'''
    gw = gateway_factory(config)
    before = scrape(gw)
    assert value(before, "wsgate_connections") == 0
    assert value(before, "wsgate_messages_total", route="echo") == 0

    a, b = clients(gw.ws_url), clients(gw.ws_url)
    stub.set("/connect", status=403)
    with pytest.raises(Exception):
        clients(gw.ws_url)
    stub.set("/connect", status=200)
    # Not a WebSocket upgrade: 426.
    assert get(f"http://{gw.host}/dev")[0] == 426

    sent = []
    for body in ("e1", "e2", "e3"):
        a.send(json.dumps({"action": "echo", "v": body}))
        sent.append(a.recv(timeout=5))
    for _ in range(2):
        a.send(json.dumps({"action": "backend"}))
        assert a.recv(timeout=5) == "from backend"
    for action in ("broken", "slow", "nothing-routes-this"):
        a.send(json.dumps({"action": action}))
        assert "message" in json.loads(a.recv(timeout=5))
    a.send(json.dumps({"action": "fn"}))
    assert a.recv(timeout=20).startswith("fn:")
    a.send(json.dumps({"action": "fn", "x": "boom"}))
    assert json.loads(a.recv(timeout=20))["message"] == "Internal server error"

    client = mgmt_client(gw.mgmt_url)
    cid_b = stub.wait_events("/connect", 2)[1]["requestContext"]["connectionId"]
    cid_a = stub.wait_events("/connect", 1)[0]["requestContext"]["connectionId"]
    for n in range(2):
        client.post_to_connection(ConnectionId=cid_a, Data=f"push {n}".encode())
        assert a.recv(timeout=5) == f"push {n}"
    client.get_connection(ConnectionId=cid_a)
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")

    during = scrape(gw)
    assert value(during, "wsgate_connections") == 2
    a.close(code=4000, reason="done")
    client.delete_connection(ConnectionId=cid_b)
    assert wait_close(b)[0] == 1000
    stub.wait_events("/disconnect", 2)
    wait_until(lambda: value(scrape(gw), "wsgate_connections") == 0, 5, "connections back to 0")
    s = scrape(gw)

    assert value(s, "wsgate_connects_total", result="accepted") == 2
    assert value(s, "wsgate_connects_total", result="refused") == 1
    assert value(s, "wsgate_connects_total", result="invalid") == 1
    for route, n in {"echo": 3, "backend": 2, "broken": 1, "slow": 1, "fn": 2, "$none": 1}.items():
        assert value(s, "wsgate_messages_total", route=route) == n, route
    # 3 echoes, 2 backend answers, 4 error frames (broken, slow, no route, the raise), 1 answer
    # of the function, 2 POSTs.
    assert value(s, "wsgate_messages_sent_total") == 12
    assert value(s, "wsgate_disconnects_total", code="4000") == 1
    assert value(s, "wsgate_disconnects_total", code="1000") == 1
    assert value(s, "wsgate_integration_errors_total", route="broken", kind="refused") == 1
    assert value(s, "wsgate_integration_errors_total", route="slow", kind="timeout") == 1
    assert value(s, "wsgate_integration_errors_total", route="fn", kind="handler_error") == 1
    assert value(s, "wsgate_integration_errors_total", route="backend", kind="timeout") == 0
    assert value(s, "wsgate_integration_latency_seconds_count", route="backend") == 2
    assert value(s, "wsgate_integration_latency_seconds_count", route="$connect") == 3
    assert value(s, "wsgate_integration_latency_seconds_count", route="$disconnect") == 2
    assert value(s, "wsgate_integration_latency_seconds_bucket", route="slow", le="0.512") == 1
    assert value(s, "wsgate_function_invocations_total", function="fn") == 2
    assert value(s, "wsgate_function_errors_total", function="fn") == 1
    # One process, or two when the second message came while the first process was between its
    # answer and its next `/next` (the pool then starts another, as Lambda would).
    cold_starts = value(s, "wsgate_function_cold_starts_total", function="fn")
    assert 1 <= cold_starts <= 2
    assert 1 <= value(s, "wsgate_function_processes", function="fn") <= cold_starts
    assert value(s, "wsgate_management_requests_total", operation="post_to_connection", status="200") == 2
    assert value(s, "wsgate_management_requests_total", operation="post_to_connection", status="410") == 1
    assert value(s, "wsgate_management_requests_total", operation="get_connection", status="200") == 1
    assert value(s, "wsgate_management_requests_total", operation="delete_connection", status="204") == 1
    # Every scrape but this one (and the ones of wait_until) is counted.
    assert value(s, "wsgate_management_requests_total", operation="metrics", status="200") >= 3
    assert value(s, "wsgate_cluster_nodes") == 0

    # The console's overview reads the same counters.
    status, overview, _ = http_call("GET", f"http://{gw.host}/@console/overview")
    assert status == 200
    assert overview["totals"]["messages"] == 10
    assert overview["totals"]["connects"] == 2 and overview["totals"]["refused"] == 2
    assert {r["key"]: r["messages"] for r in overview["routes"]}["echo"] == 3
    assert overview["functions"][0]["invocations"] == 2
    kinds = {(e["route"], e["kind"]) for e in overview["recentErrors"]}
    assert kinds == {("broken", "refused"), ("slow", "timeout"), ("fn", "handler_error")}
    # An HTTP backend is shown without the credentials and the query its URL may carry.
    broken = next(r for r in overview["routes"] if r["key"] == "broken")["integration"]
    assert broken["type"] == "http" and re.fullmatch(r"http://127\.0\.0\.1:\d+/x", broken["url"]), broken


def test_metrics_and_console_data_need_the_management_credential(gateway_factory, stub, clients):
    config = render_config(
        {"$default": {"type": "mock", "body": "${request.body}", "route_response": True}},
        management={"auth": "token", "listen": "127.0.0.1:0"},
    ) + f'''
[[management.tokens]]
name = "prometheus"
token = "{TOKEN}"
operations = ["metrics"]
'''
    gw = gateway_factory(config)
    public = gw.host
    private = re.search(r"\(management: http://([0-9.:]+)/", gw.listening_line)[1]
    assert private != public
    assert get(f"http://{private}/metrics")[0] == 401
    assert get(f"http://{private}/metrics", {"Authorization": "Bearer wrong"})[0] == 401
    # Not on the public port when management has a listener of its own.
    assert get(f"http://{public}/metrics", {"Authorization": f"Bearer {TOKEN}"})[0] == 403
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    status, text, headers = get(f"http://{private}/metrics", bearer)
    assert status == 200 and "wsgate_connections 0" in text
    status, text, headers = get(f"http://{private}/metrics", {**bearer, "Accept": "application/openmetrics-text"})
    assert status == 200 and headers["content-type"].startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")
    # The token may scrape, nothing else.
    assert get(f"http://{private}/@console/overview", bearer)[0] == 403
    # Health answers on both ports without a credential.
    for host in (public, private):
        assert get(f"http://{host}/healthz")[:2] == (200, "ok\n")
        assert get(f"http://{host}/readyz")[0] == 200


def test_full_outboxes_are_counted(gateway_factory, stub, clients):
    config = render_config({
        "$connect": {"type": "http", "url": stub.url("/connect")},
        "$default": {"type": "mock", "body": "${request.body}", "route_response": True},
    }, limits={"outbox_bytes": 65536}, management={"max_payload_bytes": 32768})
    gw = gateway_factory(config)
    ws, event = open_slow_reader(clients, gw, stub)
    cid = event["requestContext"]["connectionId"]
    client = mgmt_client(gw.mgmt_url)
    post_until_limit_exceeded(client, cid, b"x" * 30000)
    status, body, _ = http_call("POST", f"http://{gw.host}/@broadcast", body=b"y" * 30000)
    assert status == 200 and body.get("skipped") == 1
    s = scrape(gw)
    # boto3 may retry a 429 once: every one is counted.
    refused = value(s, "wsgate_management_requests_total", operation="post_to_connection", status="429")
    assert refused >= 1
    assert value(s, "wsgate_outbox_overflows_total", action="refused") == refused
    assert value(s, "wsgate_outbox_overflows_total", action="skipped") == 1
    assert value(s, "wsgate_outbox_overflows_total", action="closed") == 0


def test_readyz_answers_503_while_draining_and_the_gateway_still_serves(gateway_factory, clients):
    gw = gateway_factory(render_config(
        {"$default": {"type": "mock", "body": "${request.body}", "route_response": True}},
        limits={"shutdown_delay": "2s"},
    ))
    assert get(f"http://{gw.host}/readyz")[:2] == (200, "ready\n")
    ws = clients(gw.ws_url)
    started = time.monotonic()
    gw.terminate()
    wait_until(lambda: get(f"http://{gw.host}/readyz")[0] == 503, 1.5, "/readyz 503 after SIGTERM")
    assert "draining" in get(f"http://{gw.host}/readyz")[1]
    assert get(f"http://{gw.host}/healthz")[0] == 200
    # Still serving: the open connection answers, a new one is accepted.
    ws.send("still here")
    assert ws.recv(timeout=2) == "still here"
    late = clients(gw.ws_url)
    late.send("late")
    assert late.recv(timeout=2) == "late"
    # Then the shutdown proper: 1001 for everyone, after the delay.
    assert wait_close(ws, timeout=5)[0] == 1001
    assert time.monotonic() - started >= 1.9
    gw.proc.wait(timeout=10)
    assert gw.proc.returncode == 0


def test_readyz_answers_503_while_the_cluster_redis_is_down(redis_server, cluster_nodes):
    [gw] = cluster_nodes(1, {"$default": {"type": "mock", "body": "${request.body}",
                                          "route_response": True}}, redis_server)
    wait_until(lambda: get(f"http://{gw.host}/readyz")[0] == 200, 5, "ready once joined")
    assert value(scrape(gw), "wsgate_cluster_nodes") == 1
    redis_server.stop()
    wait_until(lambda: get(f"http://{gw.host}/readyz")[0] == 503, 5, "/readyz 503 with Redis down")
    assert "Redis" in get(f"http://{gw.host}/readyz")[1]
    assert get(f"http://{gw.host}/healthz")[0] == 200
    s = scrape(gw)
    assert value(s, "wsgate_redis_errors_total") >= 1
    assert value(s, "wsgate_cluster_nodes") == 0
    redis_server.start()
    wait_until(lambda: get(f"http://{gw.host}/readyz")[0] == 200, 10, "/readyz 200 once Redis is back")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_json_logs_parse_line_by_line_with_one_line_per_ended_connection(gateway_factory, stub, clients, how):
    config = render_config({
        "$connect": {"type": "http", "url": stub.url("/connect")},
        "$default": {"type": "mock", "body": "${request.body}", "route_response": True},
    })
    args, env = (["--log-format", "json"], None) if how == "flag" else ([], {"WSGATE_LOG_FORMAT": "json"})
    stub.set("/connect", body={"statusCode": 200, "wsgate": {"user": "alice"}})
    gw = gateway_factory(config, args=args, env=env)
    ws = clients(gw.ws_url)
    cid = stub.wait_events("/connect", 1)[0]["requestContext"]["connectionId"]
    for text in ("one", "two!"):
        ws.send(text)
        assert ws.recv(timeout=5) == text
    ws.close(code=4001, reason="bye")
    gw.stop()
    lines = [line for line in gw.stderr().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"timestamp", "level", "message", "target"} <= set(r) for r in records)
    [ended] = [r for r in records if r["message"] == "connection ended"]
    assert ended["connection_id"] == cid
    assert ended["source_ip"] == "127.0.0.1"
    assert ended["user"] == "alice"
    assert ended["messages_in"] == 2 and ended["messages_out"] == 2
    assert ended["bytes_in"] == 7 and ended["bytes_out"] == 7
    assert ended["code"] == 4001 and ended["reason"] == "bye"
    assert ended["closed_by"] == "client"
    assert 0 <= ended["duration_ms"] < 10_000
