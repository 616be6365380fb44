"""2. `$connect` with an http backend: accept, refuse, fail, time out, subprotocols."""

import threading

import pytest
from websockets.exceptions import InvalidStatus

from conftest import assert_no_message, mgmt_client, open_ws, recv, render_config


def connect_config(stub, **connect_route):
    route = {"type": "http", "url": stub.url("/connect")}
    route.update(connect_route)
    return render_config({
        "$connect": route,
        "$default": {"type": "mock", "body": "${request.body}", "route_response": True},
    })


def refused_status(url, **kw):
    with pytest.raises(InvalidStatus) as info:
        with open_ws(url, **kw):
            pass
    return info.value.response.status_code


def test_connect_backend_proxy_result_200_accepts_connection(gateway_factory, stub):
    stub.set("/connect", body={"statusCode": 200})
    gw = gateway_factory(connect_config(stub))
    with open_ws(gw.ws_url) as ws:
        ws.send("ping")
        assert recv(ws) == "ping"
    assert stub.count("/connect") == 1


def test_connect_backend_plain_http_204_accepts_connection(gateway_factory, stub):
    stub.set("/connect", status=204)
    gw = gateway_factory(connect_config(stub))
    with open_ws(gw.ws_url) as ws:
        ws.send("ping")
        assert recv(ws) == "ping"


def test_connect_proxy_result_401_refuses_upgrade_with_401(gateway_factory, stub):
    stub.set("/connect", body={"statusCode": 401, "body": "no token"})
    gw = gateway_factory(connect_config(stub))
    assert refused_status(gw.ws_url) == 401


def test_connect_plain_http_403_from_backend_refuses_upgrade_with_403(gateway_factory, stub):
    stub.set("/connect", status=403, body="go away", headers={"Content-Type": "text/plain"})
    gw = gateway_factory(connect_config(stub))
    assert refused_status(gw.ws_url) == 403


def test_connect_backend_not_listening_refuses_upgrade_with_502(gateway_factory, free_port):
    config = render_config({"$connect": {"type": "http", "url": f"http://127.0.0.1:{free_port}/connect"}})
    gw = gateway_factory(config)
    assert refused_status(gw.ws_url) == 502


def test_connect_backend_dropping_connection_refuses_upgrade_with_502(gateway_factory, stub):
    stub.set("/connect", drop=True)
    gw = gateway_factory(connect_config(stub))
    assert refused_status(gw.ws_url) == 502


def test_connect_backend_slower_than_route_timeout_refuses_upgrade_with_504(gateway_factory, stub):
    stub.set("/connect", delay=3.0, body={"statusCode": 200})
    gw = gateway_factory(connect_config(stub, timeout="300ms"))
    assert refused_status(gw.ws_url) == 504


def test_connect_returning_subprotocol_header_selects_that_subprotocol(gateway_factory, stub):
    stub.set("/connect", body={"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "chat.v1"}})
    gw = gateway_factory(connect_config(stub))
    with open_ws(gw.ws_url, subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v1"
    event = stub.wait_events("/connect")[0]
    assert event["headers"]["Sec-WebSocket-Protocol"] == "chat.v1, chat.v2"


def test_connect_headers_other_than_subprotocol_are_not_copied_to_101(gateway_factory, stub):
    stub.set("/connect", body={"statusCode": 200, "headers": {"X-Custom": "leak", "Sec-WebSocket-Protocol": "chat.v2"}})
    gw = gateway_factory(connect_config(stub))
    with open_ws(gw.ws_url, subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2"
        assert "X-Custom" not in ws.response.headers


def test_post_to_connection_while_connect_is_running_raises_gone_exception(gateway_factory, stub):
    stub.set("/connect", delay=1.5, body={"statusCode": 200})
    gw = gateway_factory(connect_config(stub, timeout="5s"))
    client = mgmt_client(gw.mgmt_url)
    result = {}

    def connect():
        try:
            result["ws"] = open_ws(gw.ws_url)
        except Exception as exc:  # reported below
            result["error"] = exc

    t = threading.Thread(target=connect)
    t.start()
    try:
        event = stub.wait_events("/connect")[0]  # recorded on arrival, before the stub's delay
        connection_id = event["requestContext"]["connectionId"]
        with pytest.raises(client.exceptions.GoneException):
            client.post_to_connection(ConnectionId=connection_id, Data=b"too early")
        with pytest.raises(client.exceptions.GoneException):
            client.get_connection(ConnectionId=connection_id)
    finally:
        t.join(10)
    assert "error" not in result, result.get("error")
    ws = result["ws"]
    try:
        # Once $connect has returned, the same id is live.
        client.post_to_connection(ConnectionId=connection_id, Data=b"now")
        assert recv(ws) == "now"
        assert_no_message(ws)
    finally:
        ws.close()


def test_connect_json_answer_without_status_code_is_read_as_plain_http_status(gateway_factory, stub):
    stub.set("/connect", status=200, body={"ok": True})
    gw = gateway_factory(connect_config(stub))
    with open_ws(gw.ws_url) as ws:
        ws.send("in")
        assert recv(ws) == "in"
    stub.set("/connect", status=500, body={"error": "boom"})
    assert refused_status(gw.ws_url) == 500
