"""5. Integration failures on message routes: error frames, and the connection stays open."""

import re

from conftest import ID_RE, open_ws, recv, render_config


def error_frame_re(message, connection_id):
    return (r'\{"message": "' + re.escape(message) + r'", "connectionId":"' + re.escape(connection_id)
            + r'", "requestId":"' + ID_RE + r'"\}')


def config(stub, limits=None, **routes):
    all_routes = {
        "$connect": {"type": "http", "url": stub.url("/connect")},
        "echo": {"type": "mock", "body": "still here", "route_response": True},
    }
    all_routes.update(routes)
    return render_config(all_routes, limits=limits)


def test_backend_down_on_one_way_route_sends_internal_server_error_frame(gateway_factory, stub, free_port):
    gw = gateway_factory(config(stub, down={"type": "http", "url": f"http://127.0.0.1:{free_port}/down"}))
    with open_ws(gw.ws_url) as ws:
        connection_id = stub.wait_events("/connect")[0]["requestContext"]["connectionId"]
        ws.send('{"action":"down"}')
        frame = recv(ws)
        assert re.fullmatch(error_frame_re("Internal server error", connection_id), frame), frame
        ws.send('{"action":"echo"}')
        assert recv(ws) == "still here"


def test_backend_dropping_connection_sends_internal_server_error_frame(gateway_factory, stub):
    stub.set("/drop", drop=True)
    gw = gateway_factory(config(stub, drop={"type": "http", "url": stub.url("/drop"), "route_response": True}))
    with open_ws(gw.ws_url) as ws:
        connection_id = stub.wait_events("/connect")[0]["requestContext"]["connectionId"]
        ws.send('{"action":"drop"}')
        frame = recv(ws)
        assert re.fullmatch(error_frame_re("Internal server error", connection_id), frame), frame
        ws.send('{"action":"echo"}')
        assert recv(ws) == "still here"


def test_slow_backend_beyond_timeout_sends_endpoint_request_timed_out_frame(gateway_factory, stub):
    stub.set("/slow", delay=3.0, body={"statusCode": 200, "body": "too late"})
    gw = gateway_factory(config(stub, slow={"type": "http", "url": stub.url("/slow"), "timeout": "300ms"}))
    with open_ws(gw.ws_url) as ws:
        connection_id = stub.wait_events("/connect")[0]["requestContext"]["connectionId"]
        ws.send('{"action":"slow"}')
        frame = recv(ws, timeout=2.5)
        assert re.fullmatch(error_frame_re("Endpoint request timed out", connection_id), frame), frame
        ws.send('{"action":"echo"}')
        assert recv(ws) == "still here"


def test_global_integration_timeout_applies_to_routes_without_their_own(gateway_factory, stub):
    stub.set("/slow", delay=3.0, body={"statusCode": 200, "body": "too late"})
    gw = gateway_factory(config(stub, limits={"integration_timeout": "300ms"},
                                slow={"type": "http", "url": stub.url("/slow"), "route_response": True}))
    with open_ws(gw.ws_url) as ws:
        connection_id = stub.wait_events("/connect")[0]["requestContext"]["connectionId"]
        ws.send('{"action":"slow"}')
        frame = recv(ws, timeout=2.5)
        assert re.fullmatch(error_frame_re("Endpoint request timed out", connection_id), frame), frame


def test_proxy_result_status_500_body_is_still_delivered_on_route_response_route(gateway_factory, stub):
    stub.set("/fail", body={"statusCode": 500, "body": "x"})
    gw = gateway_factory(config(stub, fail={"type": "http", "url": stub.url("/fail"), "route_response": True}))
    with open_ws(gw.ws_url) as ws:
        ws.send('{"action":"fail"}')
        assert recv(ws) == "x"
        ws.send('{"action":"echo"}')
        assert recv(ws) == "still here"


def test_plain_http_answer_body_is_delivered_on_route_response_route(gateway_factory, stub):
    stub.set("/plain", body="plain text answer", headers={"Content-Type": "text/plain"})
    gw = gateway_factory(config(stub, plain={"type": "http", "url": stub.url("/plain"), "route_response": True}))
    with open_ws(gw.ws_url) as ws:
        ws.send('{"action":"plain"}')
        assert recv(ws) == "plain text answer"


def test_json_answer_without_status_code_is_delivered_as_raw_body(gateway_factory, stub):
    raw = b'{"hello": "world",  "n":1}'
    stub.set("/raw", body=raw, headers={"Content-Type": "application/json"})
    gw = gateway_factory(config(stub, raw={"type": "http", "url": stub.url("/raw"), "route_response": True}))
    with open_ws(gw.ws_url) as ws:
        ws.send('{"action":"raw"}')
        assert recv(ws) == raw.decode()


def test_slow_integration_does_not_block_later_messages_of_same_connection(gateway_factory, stub):
    stub.set("/slow", delay=1.0, body={"statusCode": 200, "body": "slow done"})
    stub.set("/fast", body={"statusCode": 200, "body": "fast done"})
    gw = gateway_factory(config(stub,
                                slow={"type": "http", "url": stub.url("/slow"), "route_response": True},
                                fast={"type": "http", "url": stub.url("/fast"), "route_response": True}))
    with open_ws(gw.ws_url) as ws:
        ws.send('{"action":"slow"}')
        stub.wait_events("/slow")
        ws.send('{"action":"fast"}')
        assert recv(ws, timeout=0.8) == "fast done"
        assert recv(ws, timeout=3) == "slow done"
