"""Cluster mode (`[cluster]`): several wsgate nodes, one registry in Redis. Any node answers any
management call with the answer one node gives (`@connections`, batch, `@broadcast`, `@groups`,
`@users`, listings), pushes from one caller keep their order whichever node they go through, a
node that dies (SIGKILL) has its connections' `$disconnect` fired once by a survivor, one that
stops (SIGTERM) leaves the registry at once, and a Redis outage keeps each node's own traffic
going and ends with the registry rebuilt. `GET /@cluster` shows the nodes.

Tests that take the `backend` fixture run against a standalone Redis and a Redis Cluster;
the others against a standalone Redis. Every node is a real `wsgate serve` on 127.0.0.1:0, every
Redis a process of this test (redis_support.py)."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import time
import urllib.request
import uuid
from typing import Any

import jwt
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import (ACCESS_KEY, SECRET_KEY, assert_no_message, aws_cli, connect_tagged, http_call,
                      mgmt_client, open_slow_reader, post_until_limit_exceeded, quote_id, recv,
                      sigv4_management, wait_close, wait_until)
from redis_support import RedisError

q = quote_id
JWT_SECRET = "cluster-secret-0123456789-abcdefghijklmnop"  # >= 32 bytes
UNKNOWN_ID = "AAAAAAAAAAAAAAA="
JWT_ISSUER, JWT_AUDIENCE = "https://issuer.cluster.test/", "wsgate-cluster"
JWT_AUTHORIZER = f"""[authorizers.shared]
type = "jwt"
hs256_secret = "{JWT_SECRET}"
issuer = "{JWT_ISSUER}"
audience = "{JWT_AUDIENCE}"
"""


def connect_directives(event: dict) -> dict:
    """The $connect answer: `?user=U&join=a,b` become the wsgate directives of the connection."""
    query = event.get("queryStringParameters") or {}
    directives = {}
    if query.get("user"):
        directives["user"] = query["user"]
    if query.get("join"):
        directives["join"] = query["join"].split(",")
    return {"statusCode": 200, **({"wsgate": directives} if directives else {})}


def routes(stub, **connect: Any) -> dict[str, dict[str, Any]]:
    return {
        "$connect": {"type": "http", "url": stub.url("/connect"), **connect},
        "$disconnect": {"type": "http", "url": stub.url("/disconnect")},
        "$default": {"type": "mock", "body": "${request.body}", "route_response": True},
    }


def epoch_ms(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp() * 1000


def error_type(headers: dict[str, str]) -> str:
    return headers.get("x-amzn-errortype", "").split(":")[0]


def recv_skipping_probes(ws, expected: str, timeout: float = 5.0) -> None:
    """Receives `expected`, passing over the `probe-…` pushes made while waiting for recovery."""
    deadline = time.monotonic() + timeout
    while True:
        message = recv(ws, timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(message, str) and message.startswith("probe-"):
            continue
        assert message == expected
        return


class Cluster:
    """The nodes of one test and what is done through them; `node` arguments are indexes."""

    def __init__(self, nodes, stub, clients, prefix: str) -> None:
        self.nodes, self.stub, self.clients, self.prefix = nodes, stub, clients, prefix

    def open(self, node: int, query: str = "", **kw: Any):
        """A client of node `node`: (ws, connectionId, CONNECT event)."""
        ws, event = connect_tagged(self.clients, self.nodes[node], self.stub, query=query, **kw)
        return ws, event["requestContext"]["connectionId"], event

    def call(self, node: int, method: str, path: str, body: bytes | None = None, json_body: Any = None,
             stage: bool = True):
        gw = self.nodes[node]
        base = gw.mgmt_url if stage else f"http://{gw.host}"
        return http_call(method, f"{base}/{path}", body, json_body)

    def post(self, node: int, cid: str, data: str) -> int:
        return self.call(node, "POST", f"@connections/{q(cid)}", data.encode())[0]

    def view(self, node: int) -> dict:
        """GET /@cluster of node `node`; any other answer than 200 as {"status": ..., "body": ...}
        (no "redis", no "nodes"), so that polling goes on."""
        status, body, _ = self.call(node, "GET", "@cluster")
        return body if status == 200 else {"status": status, "body": body}

    def node_ids(self, node: int) -> set[str]:
        return {n["nodeId"] for n in self.view(node).get("nodes", [])}

    def node_counts(self, node: int) -> dict[str, int]:
        """{nodeId: connections} as node `node` shows them in /@cluster."""
        return {n["nodeId"]: n["connections"] for n in self.view(node).get("nodes", [])}

    def pages(self, node: int, path: str, limit: int | None = None) -> list[list[str]]:
        """The connection ids of each page of a listing (`@connections?...` or `@groups/g`)."""
        pages, after = [], None
        while True:
            params = [p for p in (f"limit={limit}" if limit else "", f"next={q(after)}" if after else "") if p]
            sep = "&" if "?" in path else "?"
            status, body, _ = self.call(node, "GET", path + (sep + "&".join(params) if params else ""))
            assert status == 200, body
            pages.append([item["connectionId"] for item in body["items"]])
            after = body.get("next")
            if after is None:
                return pages
            assert len(pages) <= 100, "the listing never ends"

    def listed(self, node: int, path: str = "@connections") -> dict[str, tuple[list[str], str | None]] | tuple:
        """{connectionId: (groups, user)} of a whole listing; (status, body) if it is not a 200."""
        status, body, _ = self.call(node, "GET", path + ("&" if "?" in path else "?") + "limit=1000")
        if status != 200:
            return status, body
        return {item["connectionId"]: (sorted(item["groups"]), item["user"]) for item in body["items"]}

    def disconnects(self, cid: str) -> list[dict]:
        with self.stub.cond:
            return [e for e in self.stub.events["/disconnect"] if e["requestContext"]["connectionId"] == cid]


@pytest.fixture(params=["redis_server", "redis_cluster"])
def backend(request):
    """A standalone Redis, then a Redis Cluster (request it before make_cluster: the nodes stop
    before their Redis does)."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def make_cluster(cluster_nodes, stub, clients):
    """make(backend, count=3, *, connect=None, **cluster_nodes_kwargs) -> Cluster. $connect goes
    to the stub, which answers the directives of connect_directives; `connect` adds keys to that
    route (an authorizer)."""
    stub.set("/connect", body=connect_directives)

    def make(backend, count: int = 3, *, connect: dict | None = None, **kw: Any) -> Cluster:
        nodes = cluster_nodes(count, routes(stub, **(connect or {})), backend, **kw)
        prefix = (kw.get("cluster") or {}).get("key_prefix", cluster_nodes.prefix)
        return Cluster(nodes, stub, clients, prefix)

    return make


# ------------------------------------------------------------------------------ @connections/{id}

def test_post_get_delete_reach_a_connection_through_any_node(backend, make_cluster):
    c = make_cluster(backend)
    socks = [c.open(i) for i in range(3)]
    for caller in range(3):
        for owner, (ws, cid, _) in enumerate(socks):
            assert c.post(caller, cid, f"{caller} to {owner}") == 200
            assert recv(ws) == f"{caller} to {owner}"

    ws0, cid0, event0 = socks[0]
    status, info, _ = c.call(2, "GET", f"@connections/{q(cid0)}")
    assert status == 200, info
    assert abs(epoch_ms(info["connectedAt"]) - event0["requestContext"]["connectedAt"]) <= 1
    assert info["identity"] == {"sourceIp": "127.0.0.1", "userAgent": event0["headers"]["User-Agent"]}
    assert epoch_ms(info["lastActiveAt"]) >= epoch_ms(info["connectedAt"])

    status, body, _ = c.call(1, "DELETE", f"@connections/{q(cid0)}")
    assert status == 204, body
    assert wait_close(ws0)[0] == 1000
    event = c.stub.wait_for("/disconnect", lambda e: e["requestContext"]["connectionId"] == cid0)
    assert event["requestContext"]["disconnectStatusCode"] == 1000
    for gone in (cid0, UNKNOWN_ID):
        for caller in range(3):
            for method in ("POST", "GET", "DELETE"):
                status, _, headers = c.call(caller, method, f"@connections/{q(gone)}", b"late" if method == "POST" else None)
                assert (status, error_type(headers)) == (410, "GoneException"), (gone, caller, method)
    for ws, cid, _ in socks[1:]:
        assert c.post(0, cid, "still here") == 200 and recv(ws) == "still here"
    assert len(c.disconnects(cid0)) == 1


def test_delete_with_a_close_code_reaches_a_connection_held_by_another_node(redis_server, make_cluster):
    c = make_cluster(redis_server, 2)
    ws, cid, _ = c.open(0)
    status, body, headers = c.call(1, "DELETE", f"@connections/{q(cid)}?code=1001")
    assert (status, error_type(headers)) == (400, "BadRequestException"), body
    assert c.post(1, cid, "still open") == 200 and recv(ws) == "still open"

    status, body, _ = c.call(1, "DELETE", f"@connections/{q(cid)}?code=4001&reason=kicked%20by%20B")
    assert status == 204, body
    assert wait_close(ws)[:2] == (4001, "kicked by B")
    event = c.stub.wait_for("/disconnect", lambda e: e["requestContext"]["connectionId"] == cid)
    assert (event["requestContext"]["disconnectStatusCode"], event["requestContext"]["disconnectReason"]) == (
        4001, "kicked by B")
    assert c.post(1, cid, "late") == 410


def signed_get(url: str, region: str = "eu-west-1"):
    """A GET signed as boto3 signs for execute-api: (status, JSON body)."""
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "execute-api", region).add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, headers=dict(prepared.headers), method="GET")
    with urllib.request.urlopen(raw, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_boto3_with_sigv4_works_against_every_node(redis_server, make_cluster):
    c = make_cluster(redis_server, **sigv4_management())
    socks = [c.open(i) for i in range(3)]
    boto = [mgmt_client(gw.mgmt_url) for gw in c.nodes]
    for caller, client in enumerate(boto):
        for owner, (ws, cid, _) in enumerate(socks):
            client.post_to_connection(ConnectionId=cid, Data=f"signed {caller} to {owner}".encode())
            assert recv(ws) == f"signed {caller} to {owner}"
        other = socks[(caller + 1) % 3]
        assert client.get_connection(ConnectionId=other[1])["Identity"]["SourceIp"] == "127.0.0.1"

    ws0, cid0, _ = socks[0]
    boto[2].delete_connection(ConnectionId=cid0)
    assert wait_close(ws0)[0] == 1000
    for client in boto:
        with pytest.raises(client.exceptions.GoneException):
            client.post_to_connection(ConnectionId=cid0, Data=b"late")
        with pytest.raises(client.exceptions.GoneException):
            client.get_connection(ConnectionId=cid0)
        forged = mgmt_client(client.meta.endpoint_url, secret_key=SECRET_KEY + "x")
        with pytest.raises(forged.exceptions.ForbiddenException):
            forged.post_to_connection(ConnectionId=socks[1][1], Data=b"forged")
    assert_no_message(socks[1][0])

    # /@cluster takes the same authentication.
    status, _, headers = c.call(0, "GET", "@cluster")
    assert (status, error_type(headers)) == (403, "ForbiddenException")
    status, view = signed_get(f"{c.nodes[1].mgmt_url}/@cluster")
    assert status == 200 and view["node"] == "gw-2"


def test_aws_cli_reaches_a_connection_held_by_another_node(redis_server, make_cluster, tmp_path):
    c = make_cluster(redis_server, 2, **sigv4_management())
    ws, cid, _ = c.open(0)
    (tmp_path / "aws-config").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": "eu-west-1", "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-config"),
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": ""})

    def aws(*args: str) -> subprocess.CompletedProcess:
        cmd = [str(aws_cli()), "apigatewaymanagementapi", *args, "--endpoint-url", c.nodes[1].mgmt_url]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)

    done = aws("post-to-connection", f"--connection-id={cid}", "--data", "from the cli")
    assert done.returncode == 0, done.stderr
    assert recv(ws) == "from the cli"
    done = aws("get-connection", f"--connection-id={cid}")
    assert done.returncode == 0 and json.loads(done.stdout)["Identity"]["SourceIp"] == "127.0.0.1"
    assert aws("delete-connection", f"--connection-id={cid}").returncode == 0
    assert wait_close(ws)[0] == 1000
    done = aws("post-to-connection", f"--connection-id={cid}", "--data", "late")
    assert done.returncode != 0 and "GoneException" in done.stderr


def test_cross_node_post_to_a_full_outbox_raises_limit_exceeded(redis_server, make_cluster, clients):
    c = make_cluster(redis_server, 2, limits={"outbox_bytes": 262144})
    ws, event = open_slow_reader(clients, c.nodes[0], c.stub)
    cid = event["requestContext"]["connectionId"]
    client = mgmt_client(c.nodes[1].mgmt_url)
    data = b"x" * 131072
    post_until_limit_exceeded(client, cid, data)  # through another node
    assert recv(ws) == data.decode()
    assert client.get_connection(ConnectionId=cid)["Identity"]["SourceIp"] == "127.0.0.1"


# ------------------------------------------------------------------------------- to many at once

def test_batch_post_reaches_connections_on_every_node(redis_server, make_cluster):
    c = make_cluster(redis_server)
    socks = [c.open(i) for i in range(3)]
    closed_ws, closed, _ = c.open(2)
    closed_ws.close()
    c.stub.wait_for("/disconnect", lambda e: e["requestContext"]["connectionId"] == closed)
    ids = [cid for _, cid, _ in socks]
    status, body, _ = c.call(1, "POST", "@connections", json_body={"connectionIds": ids + [closed, UNKNOWN_ID],
                                                                   "data": "batch"})
    assert status == 200, body
    assert sorted(body["sent"]) == sorted(ids)
    assert sorted(body["gone"]) == sorted([closed, UNKNOWN_ID])
    for ws, _, _ in socks:
        assert recv(ws) == "batch"


def test_broadcast_reaches_and_counts_every_nodes_connections(backend, make_cluster):
    c = make_cluster(backend)
    socks = [c.open(node) for node in (0, 0, 1, 2)]
    closed_ws, closed, _ = c.open(1)
    closed_ws.close()
    c.stub.wait_for("/disconnect", lambda e: e["requestContext"]["connectionId"] == closed)
    for caller in range(3):
        status, body, _ = c.call(caller, "POST", "@broadcast", f"to all from {caller}".encode())
        assert status == 200 and body["recipients"] == 4, body
        for ws, _, _ in socks:
            assert recv(ws) == f"to all from {caller}"
    first_ws, first, _ = socks[0]
    status, body, _ = c.call(2, "POST", f"@broadcast?except={q(first)}", b"not the first")
    assert body["recipients"] == 3, body
    for ws, _, _ in socks[1:]:
        assert recv(ws) == "not the first"
    assert_no_message(first_ws)


# ------------------------------------------------------------------------------- groups and users

def test_groups_join_send_list_page_and_leave_across_nodes(backend, make_cluster):
    c = make_cluster(backend)
    members = [c.open(node) for node in (0, 0, 1, 1, 2, 2)]
    outsider_ws, _, _ = c.open(0)
    for k, (_, cid, _) in enumerate(members):
        owner = k // 2
        via = (owner + 1 + k % 2) % 3  # never the node that holds the connection
        status, body, _ = c.call(via, "PUT", f"@groups/room/connections/{q(cid)}")
        assert status == 204, (k, body)
    status, _, headers = c.call(1, "PUT", f"@groups/room/connections/{q(UNKNOWN_ID)}")
    assert (status, error_type(headers)) == (410, "GoneException")

    status, body, _ = c.call(0, "POST", "@groups/room", b"to the room")
    assert status == 200 and body["recipients"] == 6, body
    for ws, _, _ in members:
        assert recv(ws) == "to the room"
    assert_no_message(outsider_ws)
    status, body, _ = c.call(1, "POST", f"@groups/room?except={q(members[0][1])}", b"all but one")
    assert body["recipients"] == 5, body

    ids = sorted(cid for _, cid, _ in members)
    for node in range(3):
        status, body, _ = c.call(node, "GET", "@groups/room")
        assert status == 200 and "next" not in body, body
        assert [item["connectionId"] for item in body["items"]] == ids
        assert all(item["groups"] == ["room"] and item["user"] is None and "connectedAt" in item
                   for item in body["items"])
    for limit in (1, 2, 4):
        pages = c.pages(2, "@groups/room", limit)
        assert sum(pages, []) == ids, (limit, pages)
        assert all(0 < len(page) <= limit for page in pages), (limit, pages)

    leaver = members[0][1]
    for _ in range(2):
        assert c.call(1, "DELETE", f"@groups/room/connections/{q(leaver)}")[0] == 204
    assert sum(c.pages(0, "@connections?group=room"), []) == [cid for cid in ids if cid != leaver]
    closer_ws, closer, _ = members[3]
    closer_ws.close()
    c.stub.wait_for("/disconnect", lambda e: e["requestContext"]["connectionId"] == closer)
    status, body, _ = c.call(2, "POST", "@groups/room", b"after leaving")
    assert body["recipients"] == 4, body
    assert sum(c.pages(1, "@groups/room"), []) == [cid for cid in ids if cid not in (leaver, closer)]


def test_users_send_list_and_close_across_nodes(redis_server, make_cluster):
    c = make_cluster(redis_server)
    alice = [c.open(node, "user=alice&join=lobby") for node in range(3)]
    bob_ws, bob, _ = c.open(1, "user=bob&join=lobby")
    carol_ws, carol, _ = c.open(2)
    alice_ids = sorted(cid for _, cid, _ in alice)

    status, body, _ = c.call(0, "POST", "@users/alice", b"hi alice")
    assert status == 200 and body["recipients"] == 3, body
    for ws, _, _ in alice:
        assert recv(ws) == "hi alice"
    assert_no_message(bob_ws)
    assert_no_message(carol_ws)

    for node in range(3):
        assert c.listed(node, "@connections?user=alice") == {cid: (["lobby"], "alice") for cid in alice_ids}
        assert c.listed(node, "@connections?group=lobby&user=bob") == {bob: (["lobby"], "bob")}
        assert c.listed(node) == {**{cid: (["lobby"], "alice") for cid in alice_ids},
                                  bob: (["lobby"], "bob"), carol: ([], None)}
    assert sum(c.pages(2, "@connections?group=lobby"), []) == sorted(alice_ids + [bob])
    assert [len(page) for page in c.pages(1, "@connections?user=alice", 2)] == [2, 1]

    status, body, _ = c.call(1, "DELETE", "@users/alice")
    assert (status, body) == (200, {"closed": 3})
    for ws, cid, _ in alice:
        assert wait_close(ws)[0] == 1000
        event = c.stub.wait_for("/disconnect", lambda e, cid=cid: e["requestContext"]["connectionId"] == cid)
        assert event["requestContext"]["disconnectStatusCode"] == 1000
    assert c.call(2, "POST", "@users/alice", b"anyone?")[1]["recipients"] == 0
    assert c.call(2, "POST", "@users/bob", b"hi bob")[1]["recipients"] == 1
    assert recv(bob_ws) == "hi bob"
    assert c.listed(0) == {bob: (["lobby"], "bob"), carol: ([], None)}


# ----------------------------------------------------------------------------------- /@cluster

def test_cluster_view_names_this_node_every_node_and_their_connections(redis_server, make_cluster):
    c = make_cluster(redis_server)
    socks = [c.open(node) for node in (0, 0, 1)]
    for node in range(3):
        for stage in (True, False):
            status, view, _ = c.call(node, "GET", "@cluster", stage=stage)
            assert status == 200, view
            assert view["node"] == f"gw-{node + 1}" and view["redis"] == "up", view
        # Nodes and counts may lag by a heartbeat.
        wait_until(lambda node=node: c.node_counts(node) == {"gw-1": 2, "gw-2": 1, "gw-3": 0}, 5,
                   f"/@cluster of gw-{node + 1} counts 2, 1 and 0 connections")

    def heartbeats() -> dict[str, float]:
        return {n["nodeId"]: epoch_ms(n["lastHeartbeat"]) for n in c.view(0)["nodes"]}

    first = heartbeats()
    assert all(abs(ms - time.time() * 1000) < 30_000 for ms in first.values()), first
    wait_until(lambda: (now := heartbeats()) and all(now.get(n, 0) > first[n] for n in first), 5,
               "every node heartbeats again")

    socks[0][0].close()
    wait_until(lambda: c.node_counts(2) == {"gw-1": 1, "gw-2": 1, "gw-3": 0}, 5,
               "/@cluster counts a closed connection out")


# ---------------------------------------------------------------------------------------- order

def test_posts_alternating_between_nodes_arrive_in_order(redis_server, make_cluster):
    c = make_cluster(redis_server)
    ws, cid, _ = c.open(1)
    for i in range(200):
        assert c.post(i % 3, cid, f"m{i}") == 200, i
    assert [recv(ws) for _ in range(200)] == [f"m{i}" for i in range(200)]
    assert_no_message(ws)


# ------------------------------------------------------------------------------ a node goes away

def token(sub: str) -> str:
    now = int(time.time())
    claims = {"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": sub, "iat": now, "exp": now + 600}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def open_authorized(c: Cluster, node: int, sub: str, query: str = "join=room"):
    return c.open(node, query, additional_headers={"Authorization": f"Bearer {token(sub)}"})


def wait_registered(backend, c: Cluster, node: int, count: int) -> None:
    """Waits until Redis's registry holds `count` connections of node `node`: a survivor can only
    tell `$disconnect` of connections the registry held when their node went away. On a Redis
    Cluster only the shard that owns the key answers; the others refuse with MOVED."""
    number = c.view(node)["number"]
    key = f"{c.prefix}:{{n{number}}}:conns"
    servers = getattr(backend, "servers", [backend])

    def held() -> int:
        total = 0
        for server in servers:
            try:
                total += int(server.command("HLEN", key))
            except RedisError:
                pass
        return total

    wait_until(lambda: held() == count, 5, f"the registry holds node {node}'s {count} connections")


@pytest.mark.timeout(90)
def test_killed_node_gets_exactly_one_disconnect_per_connection_from_a_survivor(backend, make_cluster):
    c = make_cluster(backend, connect={"authorizer": "shared"}, extra=JWT_AUTHORIZER)
    survivor_ws, survivor, _ = open_authorized(c, 0, "survivor")
    doomed = {cid: event for _, cid, event in (open_authorized(c, 2, f"user-{k}") for k in range(3))}
    for event in doomed.values():
        assert event["requestContext"]["authorizer"]["principalId"].startswith("user-")

    wait_registered(backend, c, 2, 3)
    killed = c.nodes[2]
    killed.proc.kill()  # SIGKILL to that PID: no $disconnect, no goodbye to Redis
    killed.proc.wait(timeout=5)
    # node_timeout (2 s) + heartbeat (200 ms) and a margin for a loaded machine.
    wait_until(lambda: all(c.disconnects(cid) for cid in doomed), 10,
               "a survivor fires $disconnect for every connection of the killed node")
    # A duplicate would come from the other survivor in the next heartbeats: give it time.
    time.sleep(1.5)
    for cid, connect in doomed.items():
        [event] = c.disconnects(cid)
        ctx = event["requestContext"]
        assert ctx["eventType"] == "DISCONNECT" and ctx["routeKey"] == "$disconnect"
        assert ctx["connectionId"] == cid
        assert ctx["disconnectStatusCode"] == 1006
        assert ctx["connectedAt"] == connect["requestContext"]["connectedAt"]
        assert ctx["identity"]["sourceIp"] == "127.0.0.1"
        assert ctx["authorizer"] == connect["requestContext"]["authorizer"]
        assert ctx["stage"] == "dev"
    assert c.disconnects(survivor) == []

    for node in (0, 1):
        for cid in doomed:
            status, _, headers = c.call(node, "GET", f"@connections/{q(cid)}")
            assert (status, error_type(headers)) == (410, "GoneException")
        assert c.listed(node) == {survivor: (["room"], "survivor")}
        assert sum(c.pages(node, "@groups/room"), []) == [survivor]
        assert c.call(node, "POST", "@users/user-0", b"x")[1]["recipients"] == 0
    status, body, _ = c.call(1, "POST", "@broadcast", b"who is left")
    assert body["recipients"] == 1, body
    assert recv(survivor_ws) == "who is left"
    wait_until(lambda: c.node_ids(0) == {"gw-1", "gw-2"}, 5, "/@cluster leaves the killed node out")


@pytest.mark.timeout(90)
def test_stopped_node_leaves_the_registry_at_once_and_fires_its_own_disconnects(redis_server, make_cluster):
    # node_timeout is long enough that only the node's own goodbye can explain a prompt cleanup.
    c = make_cluster(redis_server, 2, cluster={"node_timeout": "4s"})
    _, kept, _ = c.open(0)
    leaving = [c.open(1) for _ in range(2)]
    c.nodes[1].terminate()  # SIGTERM
    for ws, _, _ in leaving:
        assert wait_close(ws)[0] == 1001
    assert c.nodes[1].proc.wait(timeout=30) == 0
    stopped = time.monotonic()
    wait_until(lambda: c.listed(0) == {kept: ([], None)}, 2, "the stopped node's connections leave the listing")
    wait_until(lambda: c.node_counts(0) == {"gw-1": 1}, 2, "/@cluster leaves the stopped node out")
    for _, cid, _ in leaving:
        status, _, headers = c.call(0, "GET", f"@connections/{q(cid)}")
        assert (status, error_type(headers)) == (410, "GoneException")
    assert c.call(0, "POST", "@broadcast", b"x")[1]["recipients"] == 1
    # Past node_timeout + heartbeat: the survivor must not fire them again.
    time.sleep(max(0.0, stopped + 5.5 - time.monotonic()))
    for _, cid, _ in leaving:
        [event] = c.disconnects(cid)
        assert event["requestContext"]["disconnectStatusCode"] == 1001


@pytest.mark.timeout(90)
def test_a_node_cut_off_from_redis_is_reaped_then_closes_its_connections_and_joins_again(
        redis_server, cluster_nodes, cuttable_link, stub, clients):
    # gw-1 and gw-2 reach Redis directly; gw-3 through a link the test can cut.
    stub.set("/connect", body=connect_directives)
    link = cuttable_link(redis_server.port)
    nodes = cluster_nodes(2, routes(stub), redis_server) + \
        cluster_nodes(1, routes(stub), redis_server, cluster={"redis": link.url})
    c = Cluster(nodes, stub, clients, cluster_nodes.prefix)
    isolated = [c.open(2, "join=room") for _ in range(2)]
    wait_registered(redis_server, c, 2, 2)

    link.cut()
    # Until its deadline passes it may only be slow: a call for its connection from another node
    # is a 503 to retry, never a 410 that would make a backend forget a live connection.
    status, _, headers = c.call(0, "POST", f"@connections/{q(isolated[0][1])}", b"not yet")
    assert (status, error_type(headers)) == (503, "ServiceUnavailableException")
    # The cut-off node still serves its own clients...
    for ws, cid, _ in isolated:
        assert c.post(2, cid, "still here") == 200
        assert recv(ws) == "still here"
    # ... while the others take it for dead and tell $disconnect of its connections, once.
    wait_until(lambda: all(c.disconnects(cid) for _, cid, _ in isolated), 15,
               "a survivor tells $disconnect of the cut-off node's connections")
    for _, cid, _ in isolated:
        [event] = c.disconnects(cid)
        assert event["requestContext"]["disconnectStatusCode"] == 1006
        status, _, headers = c.call(0, "GET", f"@connections/{q(cid)}")
        assert (status, error_type(headers)) == (410, "GoneException")

    link.restore()
    # Back in touch, it learns that the cluster let it go: its clients are closed with 1012 so
    # they reconnect, and $disconnect is not told a second time.
    for ws, _, _ in isolated:
        assert wait_close(ws, timeout=15)[0] == 1012
    time.sleep(0.5)
    for _, cid, _ in isolated:
        assert len(c.disconnects(cid)) == 1
    # It joins again under a new number: a new client of it is reached through the others.
    ws, cid, _ = c.open(2)
    wait_until(lambda: c.post(0, cid, "welcome back") == 200, 10, "the node is reachable again")
    assert recv(ws) == "welcome back"
    wait_until(lambda: c.node_ids(0) == {"gw-1", "gw-2", "gw-3"}, 10, "/@cluster lists it again")


# ---------------------------------------------------------------------------------------- Redis

@pytest.mark.timeout(120)
def test_redis_outage_keeps_local_traffic_and_the_registry_comes_back(redis_server, make_cluster):
    c = make_cluster(redis_server)
    socks = []  # (node, ws, cid)
    expected = {}
    for node in range(3):
        for query, membership in ((f"user=user-{node}&join=room", (["room"], f"user-{node}")),
                                  (f"join=side-{node}", ([f"side-{node}"], None))):
            ws, cid, _ = c.open(node, query)
            socks.append((node, ws, cid))
            expected[cid] = membership
    assert all(c.listed(node) == expected for node in range(3))

    redis_server.stop()
    for node, ws, cid in socks:
        assert c.post(node, cid, "same node") == 200
        assert recv(ws) == "same node"
        ws.send(f"echo {cid}")
        assert recv(ws) == f"echo {cid}"
    for caller in range(3):
        _, _, cid = next(s for s in socks if s[0] == (caller + 1) % 3)
        started = time.monotonic()
        status, body, headers = c.call(caller, "POST", f"@connections/{q(cid)}", b"across")
        elapsed = time.monotonic() - started
        assert (status, error_type(headers)) == (503, "ServiceUnavailableException"), body
        assert elapsed <= 2.5, f"503 after {elapsed:.2f}s"
    wait_until(lambda: c.view(0).get("redis") == "down", 5, "/@cluster says Redis is down")

    redis_server.start()  # same port, empty
    for caller in range(3):
        _, _, cid = next(s for s in socks if s[0] == (caller + 1) % 3)
        wait_until(lambda caller=caller, cid=cid: c.post(caller, cid, f"probe-{caller}") == 200, 10,
                   f"gw-{caller + 1} reaches another node's connection again")
    for node in range(3):
        wait_until(lambda node=node: c.listed(node) == expected, 10,
                   f"gw-{node + 1} lists every live connection with its groups and user again")
    wait_until(lambda: c.view(1).get("redis") == "up" and c.node_ids(1) == {"gw-1", "gw-2", "gw-3"}, 10,
               "/@cluster says Redis is up with the 3 nodes")

    status, body, _ = c.call(2, "POST", "@broadcast", b"after the outage")
    assert body["recipients"] == 6, body
    for _, ws, _ in socks:
        recv_skipping_probes(ws, "after the outage")
    assert c.call(1, "POST", "@groups/room", b"room")[1]["recipients"] == 3
    assert c.stub.count("/disconnect") == 0


def test_key_prefix_keeps_two_deployments_on_one_redis_apart(redis_server, make_cluster):
    first = make_cluster(redis_server, 2)
    # Its own prefix, and the node_id of one of the first deployment's nodes.
    second = make_cluster(redis_server, 1, cluster={"key_prefix": f"wsgate-other-{uuid.uuid4().hex[:12]}",
                                                    "node_id": "gw-1"})
    first_socks = [first.open(node) for node in range(2)]
    second_ws, second_id, _ = second.open(0)

    assert first.call(1, "POST", "@broadcast", b"first")[1]["recipients"] == 2
    for ws, _, _ in first_socks:
        assert recv(ws) == "first"
    assert_no_message(second_ws)
    assert second.call(0, "POST", "@broadcast", b"second")[1]["recipients"] == 1
    assert recv(second_ws) == "second"
    status, _, headers = first.call(0, "POST", f"@connections/{q(second_id)}", b"not yours")
    assert (status, error_type(headers)) == (410, "GoneException")
    wait_until(lambda: second.node_ids(0) == {"gw-1"}, 5, "the second deployment sees its one node")
    wait_until(lambda: first.node_ids(1) == {"gw-1", "gw-2"}, 5, "the first deployment sees its two nodes")
    keys = redis_server.keys()
    assert all(first.prefix in key or second.prefix in key for key in keys), keys
    assert any(first.prefix in key for key in keys) and any(second.prefix in key for key in keys), keys
