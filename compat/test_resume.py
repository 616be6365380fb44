"""Resumable connections (`wsgate.reliable.v1`): a client that offers the subprotocol gets a
`connected` frame with a resume token, numbered messages, and — when its TCP connection drops —
comes back with `?resume=TOKEN&seq=LAST` as the same connection, with every message it missed and
neither `$connect` nor `$disconnect` told. Real `websockets` clients, a real gateway, a stub
backend that counts the events."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import time

import pytest

from conftest import http_call, quote_id, recv, render_config, wait_close, wait_until

SUBPROTOCOL = "wsgate.reliable.v1"


def routes(stub) -> dict:
    return {
        "$connect": {"type": "http", "url": stub.url("/connect")},
        "$disconnect": {"type": "http", "url": stub.url("/disconnect")},
        "$default": {"type": "mock", "body": "${request.body}", "route_response": True},
    }


def start(gateway_factory, stub, **limits) -> object:
    return gateway_factory(render_config(routes(stub), limits=limits or None))


def frame(ws, timeout: float = 5.0) -> dict:
    return json.loads(recv(ws, timeout=timeout))


def connect(clients, gw, query: str = ""):
    """A resumable client: (ws, its `connected` or `resumed` frame)."""
    ws = clients(gw.ws_url + query, subprotocols=[SUBPROTOCOL])
    assert ws.subprotocol == SUBPROTOCOL
    return ws, frame(ws)


def drop(ws) -> None:
    """Loses the TCP connection as a network would: a reset, no close frame."""
    sock = ws.socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def post(gw, cid: str, data: str) -> int:
    return http_call("POST", f"{gw.mgmt_url}/@connections/{quote_id(cid)}", data.encode())[0]


def disconnects(stub, cid: str) -> list[dict]:
    with stub.cond:
        return [e for e in stub.events["/disconnect"] if e["requestContext"]["connectionId"] == cid]


def test_a_dropped_client_resumes_as_the_same_connection_with_every_message_it_missed(
        gateway_factory, stub, clients):
    gw = start(gateway_factory, stub)
    ws, hello = connect(clients, gw)
    assert hello["type"] == "connected"
    cid, token = hello["connectionId"], hello["resumeToken"]
    assert post(gw, cid, "one") == 200
    assert frame(ws) == {"type": "message", "seq": 1, "data": "one"}
    ws.send("echo me")
    assert frame(ws) == {"type": "message", "seq": 2, "data": "echo me"}

    drop(ws)
    # While it is away: POSTs are accepted, GET still knows it.
    for n in range(3):
        assert post(gw, cid, f"missed {n}") == 200
    assert http_call("GET", f"{gw.mgmt_url}/@connections/{quote_id(cid)}")[0] == 200

    back, resumed = connect(clients, gw, f"?resume={token}&seq=2")
    assert resumed["type"] == "resumed" and resumed["connectionId"] == cid
    assert resumed["resumeToken"] != token
    assert [frame(back) for _ in range(3)] == [
        {"type": "message", "seq": 3 + n, "data": f"missed {n}"} for n in range(3)]
    back.send("after")
    assert frame(back) == {"type": "message", "seq": 6, "data": "after"}
    assert stub.count("/connect") == 1
    assert disconnects(stub, cid) == []


def test_messages_written_to_a_socket_that_dropped_come_again_unless_acked(gateway_factory, stub, clients):
    gw = start(gateway_factory, stub)
    ws, hello = connect(clients, gw)
    cid = hello["connectionId"]
    for n in range(4):
        assert post(gw, cid, f"m{n}") == 200
    assert [frame(ws)["seq"] for _ in range(4)] == [1, 2, 3, 4]
    ws.send(json.dumps({"type": "ack", "seq": 2}))   # not routed: no echo comes back
    drop(ws)
    # The client says it got up to 3: message 4 comes again, 3 does not.
    back, resumed = connect(clients, gw, f"?resume={hello['resumeToken']}&seq=3")
    assert resumed["type"] == "resumed"
    assert frame(back) == {"type": "message", "seq": 4, "data": "m3"}
    back.send("next")
    assert frame(back) == {"type": "message", "seq": 5, "data": "next"}


def test_a_token_resumes_once_and_a_stranger_token_is_refused_with_4410(gateway_factory, stub, clients):
    gw = start(gateway_factory, stub)
    ws, hello = connect(clients, gw)
    drop(ws)
    back, resumed = connect(clients, gw, f"?resume={hello['resumeToken']}&seq=0")
    assert resumed["type"] == "resumed"
    for token in (hello["resumeToken"], "not-a-token"):
        again = clients(gw.ws_url + f"?resume={token}&seq=0", subprotocols=[SUBPROTOCOL])
        refusal = frame(again)
        assert refusal["type"] == "resume-failed" and refusal["reason"]
        assert wait_close(again)[0] == 4410
    # The resumed connection is untouched.
    back.send("still here")
    assert frame(back)["data"] == "still here"
    assert stub.count("/connect") == 1


def test_when_the_window_passes_disconnect_is_told_once_with_1006(gateway_factory, stub, clients):
    gw = start(gateway_factory, stub, resume_window="1s")
    ws, hello = connect(clients, gw)
    cid = hello["connectionId"]
    drop(ws)
    assert post(gw, cid, "into the void") == 200
    wait_until(lambda: disconnects(stub, cid), 10, "$disconnect once the resume window passed")
    time.sleep(0.3)
    [event] = disconnects(stub, cid)
    assert event["requestContext"]["disconnectStatusCode"] == 1006
    status, _, headers = http_call("GET", f"{gw.mgmt_url}/@connections/{quote_id(cid)}")
    assert status == 410
    late = clients(gw.ws_url + f"?resume={hello['resumeToken']}&seq=0", subprotocols=[SUBPROTOCOL])
    assert frame(late)["type"] == "resume-failed"
    assert wait_close(late)[0] == 4410


def test_a_client_that_closes_normally_is_gone_at_once(gateway_factory, stub, clients):
    gw = start(gateway_factory, stub)
    ws, hello = connect(clients, gw)
    ws.close()
    wait_until(lambda: disconnects(stub, hello["connectionId"]), 5, "$disconnect after a clean close")
    assert disconnects(stub, hello["connectionId"])[0]["requestContext"]["disconnectStatusCode"] == 1000


def test_without_the_subprotocol_nothing_changes_and_resume_off_means_plain_frames(gateway_factory, stub, clients):
    gw = start(gateway_factory, stub)
    plain = clients(gw.ws_url)
    plain.send("plain")
    assert recv(plain) == "plain"
    off = start(gateway_factory, stub, resume_window="0s")
    ws = clients(off.ws_url, subprotocols=[SUBPROTOCOL])
    assert ws.subprotocol is None
    ws.send("plain too")
    assert recv(ws) == "plain too"


@pytest.mark.timeout(60)
def test_a_suspended_session_past_its_buffer_ends(gateway_factory, stub, clients):
    gw = start(gateway_factory, stub, resume_buffer_bytes=131072)
    ws, hello = connect(clients, gw)
    cid = hello["connectionId"]
    drop(ws)
    chunk = "x" * 60000
    statuses = [post(gw, cid, chunk) for _ in range(4)]
    assert statuses[0] == 200
    wait_until(lambda: disconnects(stub, cid), 10, "$disconnect once the buffer overflowed")
    assert disconnects(stub, cid)[0]["requestContext"]["disconnectStatusCode"] == 1006


# ------------------------------------------------------------------------- gateway.state_dir

def kept_config(stub, state_dir, **limits) -> str:
    return render_config(routes(stub), gateway={"state_dir": str(state_dir)}, limits=limits or None)


def test_sessions_survive_a_restart_with_state_dir(gateway_factory, stub, clients, tmp_path):
    stub.set("/connect", body={"statusCode": 200, "wsgate": {"join": ["room"], "user": "alice"}})
    config = kept_config(stub, tmp_path / "state")
    first = gateway_factory(config)
    ws, hello = connect(clients, first)
    cid, token = hello["connectionId"], hello["resumeToken"]
    assert post(first, cid, "one") == 200
    assert frame(ws) == {"type": "message", "seq": 1, "data": "one"}
    assert post(first, cid, "queued at the stop") == 200

    first.stop()
    code, _, _ = wait_close(ws)
    assert code == 1012

    second = gateway_factory(config)
    # Before its client is back, the connection is known, kept in its group, and takes POSTs.
    assert http_call("GET", f"{second.mgmt_url}/@connections/{quote_id(cid)}")[0] == 200
    _, listing, _ = http_call("GET", f"{second.mgmt_url}/@connections?group=room&user=alice")
    assert [item["connectionId"] for item in listing["items"]] == [cid]
    assert post(second, cid, "while restarting") == 200

    back, resumed = connect(clients, second, f"?resume={token}&seq=1")
    assert resumed == {"type": "resumed", "connectionId": cid, "resumeToken": resumed["resumeToken"]}
    got = [frame(back)["data"] for _ in range(2)]
    assert got == ["queued at the stop", "while restarting"]
    back.send("on the new process")
    assert frame(back) == {"type": "message", "seq": 4, "data": "on the new process"}
    assert stub.count("/connect") == 1
    assert disconnects(stub, cid) == []


def test_a_kept_session_that_never_comes_back_is_told_1012(gateway_factory, stub, clients, tmp_path):
    config = kept_config(stub, tmp_path / "state", resume_window="1s")
    first = gateway_factory(config)
    ws, hello = connect(clients, first)
    first.stop()
    assert wait_close(ws)[0] == 1012
    gateway_factory(config)
    wait_until(lambda: disconnects(stub, hello["connectionId"]), 10, "$disconnect once the window passed")
    [event] = disconnects(stub, hello["connectionId"])
    assert event["requestContext"]["disconnectStatusCode"] == 1012


def test_plain_connections_close_with_1001_and_are_not_kept(gateway_factory, stub, clients, tmp_path):
    config = kept_config(stub, tmp_path / "state")
    first = gateway_factory(config)
    plain = clients(first.ws_url)
    plain.send("x")
    assert recv(plain) == "x"
    first.stop()
    assert wait_close(plain)[0] == 1001
    wait_until(lambda: stub.count("/disconnect") == 1, 5, "the plain connection's $disconnect")


def test_a_state_file_that_is_not_ours_stops_the_gateway_saying_which(stub, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "sessions.redb").write_bytes(b"this is not a redb file, nor ours")
    config = tmp_path / "wsgate.toml"
    config.write_text(kept_config(stub, state))
    from conftest import wsgate_bin
    done = subprocess.run([str(wsgate_bin()), "serve", "--config", str(config)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode != 0
    assert "gateway.state_dir" in done.stderr and "sessions.redb" in done.stderr, done.stderr
    assert "panicked" not in done.stderr


def test_a_resume_while_the_old_socket_still_looks_open_takes_over_from_it(gateway_factory, stub, clients):
    # A half-open connection: the client gave up on it, the gateway has not noticed yet.
    gw = start(gateway_factory, stub)
    old, hello = connect(clients, gw)
    cid = hello["connectionId"]
    assert post(gw, cid, "one") == 200
    assert frame(old) == {"type": "message", "seq": 1, "data": "one"}
    back, resumed = connect(clients, gw, f"?resume={hello['resumeToken']}&seq=0")
    assert resumed["type"] == "resumed" and resumed["connectionId"] == cid
    # What the client did not acknowledge comes again; new messages go to the new socket.
    assert frame(back) == {"type": "message", "seq": 1, "data": "one"}
    assert post(gw, cid, "two") == 200
    assert frame(back) == {"type": "message", "seq": 2, "data": "two"}
    # The old socket is let go of, without a close frame; backends saw one connection throughout.
    code, _, messages = wait_close(old)
    assert (code, messages) == (None, [])
    assert stub.count("/connect") == 1
    assert disconnects(stub, cid) == []
