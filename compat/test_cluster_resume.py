"""Resumable connections in a cluster: a `wsgate.reliable.v1` client resumes on any node — the
one that held it alive (it lets the session go) or dead (the session was kept in Redis) — as the
same connection, with every message posted meanwhile through any node, in its groups, and with
neither `$connect` nor `$disconnect` told again. Real nodes, a real Redis (standalone and
Cluster), real `websockets` clients whose TCP connection is reset."""

from __future__ import annotations

import json
import time

from conftest import quote_id, recv, wait_close, wait_until
from test_cluster import backend, error_type, make_cluster, wait_registered  # noqa: F401 (fixtures)
from test_resume import SUBPROTOCOL, drop

q = quote_id


def frame(ws, timeout: float = 5.0) -> dict:
    return json.loads(recv(ws, timeout=timeout))


def open_reliable(c, node: int, query: str = ""):
    """A resumable client of node `node`: (ws, its `connected` frame)."""
    ws, cid, _ = c.open(node, query=query, subprotocols=[SUBPROTOCOL])
    hello = frame(ws)
    assert hello["type"] == "connected" and hello["connectionId"] == cid
    return ws, hello


def resume(c, node: int, hello: dict, seq: int):
    ws = c.clients(f"{c.nodes[node].ws_url}?resume={hello['resumeToken']}&seq={seq}", subprotocols=[SUBPROTOCOL])
    return ws, frame(ws, timeout=15)


def post_until_accepted(c, node: int, cid: str, data: str, timeout: float = 15) -> None:
    """POSTs until 200: a node that just died answers 503 (retry) until a survivor knows."""
    wait_until(lambda: c.post(node, cid, data) == 200, timeout, f"POST {data!r} answered 200")


def suspended_in_redis(backend, c, cid: str) -> bool:
    key = f"{c.prefix}:{{s:{cid}}}:state"
    for server in getattr(backend, "servers", [backend]):
        try:
            if int(server.command("EXISTS", key)):
                return True
        except Exception:  # another shard: MOVED
            continue
    return False


def wait_group_on(backend, c, group: str, node: int) -> None:
    """Waits until Redis names node `node` among the holders of `group` (the registry is written
    a moment after a connection joins, or is taken over, there)."""
    number = str(c.view(node)["number"])
    key = f"{c.prefix}:{{g:{group}}}:nodes"

    def held() -> bool:
        for server in getattr(backend, "servers", [backend]):
            try:
                if number in [str(m) for m in server.command("SMEMBERS", key)]:
                    return True
            except Exception:  # another shard: MOVED
                continue
        return False
    wait_until(held, 5, f"node {node} among the holders of {group}")


def test_a_client_resumes_on_another_node_as_the_same_connection(backend, make_cluster):
    c = make_cluster(backend)
    ws, hello = open_reliable(c, 0, query="join=room")
    cid = hello["connectionId"]
    assert c.post(2, cid, "one") == 200
    assert frame(ws) == {"type": "message", "seq": 1, "data": "one"}

    drop(ws)
    wait_until(lambda: suspended_in_redis(backend, c, cid), 5, "the suspended session in Redis")
    assert c.post(1, cid, "while away") == 200
    back, resumed = resume(c, 1, hello, 1)
    assert resumed["type"] == "resumed" and resumed["connectionId"] == cid
    assert frame(back) == {"type": "message", "seq": 2, "data": "while away"}

    # Every node reaches it where it is now: the node its id names too.
    for n, node in enumerate((0, 1, 2)):
        assert c.post(node, cid, f"after {n}") == 200
        assert frame(back) == {"type": "message", "seq": 3 + n, "data": f"after {n}"}
    wait_group_on(backend, c, "room", 1)
    status, body, _ = c.call(2, "POST", "@groups/room", b"to the room")
    assert status == 200 and body["recipients"] == 1, body
    assert frame(back)["data"] == "to the room"
    assert c.call(0, "GET", f"@connections/{q(cid)}")[0] == 200
    assert [item for item in c.listed(2) if item == cid] == [cid]
    back.send("echo")
    assert frame(back)["data"] == "echo"
    assert c.stub.count("/connect") == 1
    assert c.disconnects(cid) == []

    status, _, _ = c.call(0, "DELETE", f"@connections/{q(cid)}")
    assert status == 204
    assert wait_close(back)[0] == 1000
    wait_until(lambda: c.disconnects(cid), 5, "$disconnect after the DELETE")
    time.sleep(0.5)
    [event] = c.disconnects(cid)
    assert event["requestContext"]["disconnectStatusCode"] == 1000


def test_a_client_whose_node_died_resumes_on_a_survivor_with_every_message(backend, make_cluster):
    c = make_cluster(backend)
    ws, hello = open_reliable(c, 2, query="join=room")
    cid = hello["connectionId"]
    wait_registered(backend, c, 2, 1)
    assert c.post(0, cid, "before") == 200
    assert frame(ws) == {"type": "message", "seq": 1, "data": "before"}
    drop(ws)
    wait_until(lambda: suspended_in_redis(backend, c, cid), 5, "the suspended session in Redis")

    killed = c.nodes[2]
    killed.proc.kill()  # SIGKILL: nothing said to Redis or to anyone
    killed.proc.wait(timeout=5)
    post_until_accepted(c, 0, cid, "after the crash")

    back, resumed = resume(c, 1, hello, 1)
    assert resumed["type"] == "resumed" and resumed["connectionId"] == cid, resumed
    assert frame(back) == {"type": "message", "seq": 2, "data": "after the crash"}
    for node in (0, 1):
        assert c.post(node, cid, f"through {node}") == 200
        assert frame(back)["data"] == f"through {node}"
    wait_group_on(backend, c, "room", 1)
    status, body, _ = c.call(0, "POST", "@groups/room", b"room")
    assert status == 200 and body["recipients"] == 1, body
    assert frame(back)["data"] == "room"
    # The dead node's reaping told no $disconnect for it: it lives on.
    time.sleep(3)
    assert c.disconnects(cid) == []
    assert c.stub.count("/connect") == 1


def test_a_session_of_a_dead_node_nobody_resumes_gets_one_disconnect(redis_server, make_cluster):
    c = make_cluster(redis_server, limits={"resume_window": "4s"})
    ws, hello = open_reliable(c, 1)
    cid = hello["connectionId"]
    wait_registered(redis_server, c, 1, 1)
    drop(ws)
    wait_until(lambda: suspended_in_redis(redis_server, c, cid), 5, "the suspended session in Redis")
    c.nodes[1].proc.kill()
    c.nodes[1].proc.wait(timeout=5)
    # A survivor takes it over and waits for the rest of its window: GET answers meanwhile.
    wait_until(lambda: c.call(0, "GET", f"@connections/{q(cid)}")[0] == 200, 10, "a survivor holds it")
    wait_until(lambda: c.disconnects(cid), 10, "$disconnect once its window passed")
    time.sleep(1.5)
    [event] = c.disconnects(cid)
    assert event["requestContext"]["disconnectStatusCode"] == 1006
    status, _, headers = c.call(2, "GET", f"@connections/{q(cid)}")
    assert (status, error_type(headers)) == (410, "GoneException")
    late = c.clients(f"{c.nodes[0].ws_url}?resume={hello['resumeToken']}&seq=0", subprotocols=[SUBPROTOCOL])
    assert frame(late)["type"] == "resume-failed"
    assert wait_close(late)[0] == 4410


def test_a_resume_on_another_node_takes_over_from_a_socket_that_still_looks_open(redis_server, make_cluster):
    c = make_cluster(redis_server, 2)
    old, hello = open_reliable(c, 0)
    cid = hello["connectionId"]
    assert c.post(1, cid, "first") == 200
    assert frame(old) == {"type": "message", "seq": 1, "data": "first"}
    # The client gave up on its connection; node 0 has not noticed.
    back, resumed = resume(c, 1, hello, 1)
    assert resumed["type"] == "resumed" and resumed["connectionId"] == cid
    assert c.post(0, cid, "second") == 200
    assert frame(back) == {"type": "message", "seq": 2, "data": "second"}
    code, _, messages = wait_close(old)
    assert (code, messages) == (None, [])
    assert c.stub.count("/connect") == 1
    assert c.disconnects(cid) == []


def test_a_live_client_of_a_node_that_crashes_resumes_on_a_survivor(backend, make_cluster):
    c = make_cluster(backend)
    ws, hello = open_reliable(c, 2)
    cid = hello["connectionId"]
    wait_registered(backend, c, 2, 1)
    # Joined after it connected, through another node.
    assert c.call(0, "PUT", f"@groups/late-room/connections/{q(cid)}")[0] == 204
    for n in range(3):
        assert c.post(1, cid, f"m{n}") == 200
    assert [frame(ws)["seq"] for _ in range(3)] == [1, 2, 3]
    ws.send(json.dumps({"type": "ack", "seq": 1}))
    time.sleep(0.3)  # the ack reaches the node (and Redis) before it dies

    killed = c.nodes[2]
    killed.proc.kill()  # the client's connection dies with it
    killed.proc.wait(timeout=5)
    post_until_accepted(c, 0, cid, "after the crash")
    # The client got up to 3; 2 and 3 may not have arrived for all it knows: it says 1.
    back, resumed = resume(c, 0, hello, 1)
    assert resumed["type"] == "resumed" and resumed["connectionId"] == cid, resumed
    assert [frame(back) for _ in range(3)] == [
        {"type": "message", "seq": 2, "data": "m1"},
        {"type": "message", "seq": 3, "data": "m2"},
        {"type": "message", "seq": 4, "data": "after the crash"}]
    wait_group_on(backend, c, "late-room", 0)
    status, body, _ = c.call(1, "POST", "@groups/late-room", b"to the late room")
    assert status == 200 and body["recipients"] == 1, body
    assert frame(back) == {"type": "message", "seq": 5, "data": "to the late room"}
    time.sleep(3)
    assert c.disconnects(cid) == []
    assert c.stub.count("/connect") == 1


def test_a_message_answered_just_before_its_node_crashes_is_not_lost(backend, make_cluster):
    c = make_cluster(backend)
    live, live_hello = open_reliable(c, 2)
    away, away_hello = open_reliable(c, 2)
    wait_registered(backend, c, 2, 2)
    drop(away)
    wait_until(lambda: suspended_in_redis(backend, c, away_hello["connectionId"]), 5, "the suspended session")
    # Answered 200 by the node that holds them (directly and through another node), which is
    # killed at once: no time for anything but what was done before answering.
    assert c.post(2, live_hello["connectionId"], "last words") == 200
    assert c.post(0, away_hello["connectionId"], "last words too") == 200
    c.nodes[2].proc.kill()
    c.nodes[2].proc.wait(timeout=5)
    for hello, text in ((live_hello, "last words"), (away_hello, "last words too")):
        back, resumed = resume(c, 1, hello, 0)
        assert resumed["type"] == "resumed", resumed
        assert frame(back, timeout=10)["data"] == text
