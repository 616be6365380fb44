"""The fan-out API beyond API Gateway, called with raw HTTP as any backend would: broadcast,
batch sends, groups, users (set by $connect's "wsgate" result), queries, the OpenAPI document."""

import json

import pytest

from conftest import assert_no_message, connect_tagged, recv, render_config
from conftest import http_call as call
from conftest import quote_id as q


@pytest.fixture
def env(gateway_factory, stub, clients):
    gw = gateway_factory(render_config({
        "$connect": {"type": "http", "url": stub.url("/connect")},
        "$default": {"type": "mock", "body": "${request.body}", "route_response": True},
    }))

    class Env:
        pass

    e = Env()
    e.gw, e.stub = gw, stub
    e.base = gw.mgmt_url

    def open_client(**kw):
        ws, event = connect_tagged(clients, gw, stub, **kw)
        return ws, event["requestContext"]["connectionId"]

    e.open = open_client
    return e


def test_broadcast_and_except(env):
    a, ida = env.open()
    b, _ = env.open()
    status, body, _ = call("POST", f"{env.base}/@broadcast", b"hello all")
    assert (status, body) == (200, {"recipients": 2})
    assert recv(a) == "hello all" and recv(b) == "hello all"
    status, body, _ = call("POST", f"{env.base}/@broadcast?except={q(ida)}", b"not a")
    assert body == {"recipients": 1}
    assert recv(b) == "not a"
    assert_no_message(a)


def test_batch_send_reports_sent_and_gone(env):
    a, ida = env.open()
    status, body, _ = call("POST", f"{env.base}/@connections", json_body={"connectionIds": [ida, "TWegAcC4EowCHnA="], "data": "batch"})
    assert (status, body) == (200, {"sent": [ida], "gone": ["TWegAcC4EowCHnA="]})
    assert recv(a) == "batch"
    status, body, headers = call("POST", f"{env.base}/@connections", json_body={"connectionIds": ["nope"], "data": "x"})
    assert status == 400 and headers["x-amzn-errortype"] == "BadRequestException"


def test_groups_join_send_leave_list(env):
    a, ida = env.open()
    b, idb = env.open()
    for cid in (ida, idb):
        assert call("PUT", f"{env.base}/@groups/room/connections/{q(cid)}")[0] == 204
    assert call("PUT", f"{env.base}/@groups/room/connections/TWegAcC4EowCHnA%3D")[0] == 410
    status, body, _ = call("POST", f"{env.base}/@groups/room?except={q(ida)}", b"to the room")
    assert body == {"recipients": 1}
    assert recv(b) == "to the room"
    status, body, _ = call("GET", f"{env.base}/@groups/room")
    assert sorted(item["connectionId"] for item in body["items"]) == sorted([ida, idb])
    assert all(item["groups"] == ["room"] and "connectedAt" in item for item in body["items"])
    assert call("DELETE", f"{env.base}/@groups/room/connections/{q(ida)}")[0] == 204
    assert call("DELETE", f"{env.base}/@groups/room/connections/{q(ida)}")[0] == 204
    status, body, _ = call("GET", f"{env.base}/@connections?group=room")
    assert [item["connectionId"] for item in body["items"]] == [idb]
    assert call("POST", f"{env.base}/@groups/bad%20name", b"x")[0] == 400
    assert call("POST", f"{env.base}/@groups/empty-group", b"x")[1] == {"recipients": 0}


def test_users_from_the_connect_result(env):
    env.stub.set("/connect", body={"statusCode": 200, "wsgate": {"user": "alice"}})
    a1, _ = env.open()
    a2, _ = env.open()
    env.stub.set("/connect", body={"statusCode": 200})
    other, _ = env.open()
    status, body, _ = call("POST", f"{env.base}/@users/alice", b"hi alice")
    assert body == {"recipients": 2}
    assert recv(a1) == "hi alice" and recv(a2) == "hi alice"
    assert_no_message(other)
    status, body, _ = call("DELETE", f"{env.base}/@users/alice")
    assert (status, body) == (200, {"closed": 2})


def test_openapi_document_is_served_and_every_path_answers(env):
    _, cid = env.open()
    status, doc, _ = call("GET", f"{env.base}/@openapi.json")
    assert status == 200 and doc["openapi"] == "3.1.0"
    for path, item in doc["paths"].items():
        for method in ("get", "post", "put"):
            if method not in item:
                continue
            url = env.base + path.replace("{connectionId}", q(cid)).replace("{group}", "g").replace("{user}", "u")
            body = json.dumps({"connectionIds": [cid], "data": "x"}).encode() if path == "/@connections" and method == "post" else b"x"
            status = call(method.upper(), url, body)[0]
            assert 200 <= status < 300, (method, url, status)
