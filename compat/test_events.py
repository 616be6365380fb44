"""3, 4, 6. The Lambda-proxy events the gateway POSTs to http integrations."""

import base64
import re
import time

from conftest import ID_RE, assert_no_message, open_ws, recv, render_config

REQUEST_TIME_RE = r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000"
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def lifecycle_config(stub, **extra_routes):
    routes = {
        "$connect": {"type": "http", "url": stub.url("/connect")},
        "$disconnect": {"type": "http", "url": stub.url("/disconnect")},
        "sendmessage": {"type": "http", "url": stub.url("/sendmessage"), "route_response": True},
        "$default": {"type": "mock", "body": "default:${request.body}", "route_response": True},
    }
    routes.update(extra_routes)
    return render_config(routes, gateway={"api_id": "compat1234"})


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_common_context(ctx, gw, *, route_key, event_type):
    assert ctx["routeKey"] == route_key
    assert ctx["eventType"] == event_type
    assert re.fullmatch(ID_RE, ctx["connectionId"]), ctx["connectionId"]
    assert re.fullmatch(ID_RE, ctx["requestId"]), ctx["requestId"]
    assert ctx["extendedRequestId"] == ctx["requestId"]
    assert re.fullmatch(REQUEST_TIME_RE, ctx["requestTime"]), ctx["requestTime"]
    assert ctx["requestTime"][3:6] in MONTHS
    assert is_int(ctx["requestTimeEpoch"]) and is_int(ctx["connectedAt"])
    now_ms = time.time() * 1000
    assert abs(ctx["requestTimeEpoch"] - now_ms) < 60_000, "requestTimeEpoch is not epoch milliseconds"
    assert abs(ctx["connectedAt"] - now_ms) < 60_000, "connectedAt is not epoch milliseconds"
    assert ctx["connectedAt"] <= ctx["requestTimeEpoch"]
    # requestTime and requestTimeEpoch describe the same instant (to the second)
    epoch_s = ctx["requestTimeEpoch"] // 1000
    assert ctx["requestTime"] == time.strftime("%d/", time.gmtime(epoch_s)) + MONTHS[time.gmtime(epoch_s).tm_mon - 1] \
        + time.strftime("/%Y:%H:%M:%S +0000", time.gmtime(epoch_s))
    assert ctx["messageDirection"] == "IN"
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert ctx["stage"] == "dev"
    assert ctx["apiId"] == "compat1234"
    assert ctx["domainName"] == gw.host


# ---------------------------------------------------------------------------------------- CONNECT

def test_connect_event_carries_upgrade_headers_in_canonical_casing(gateway_factory, stub):
    gw = gateway_factory(lifecycle_config(stub))
    with open_ws(gw.ws_url, additional_headers={"Origin": "https://app.example.org", "x-custom-thing": "1"}):
        pass
    event = stub.wait_events("/connect")[0]
    headers = event["headers"]
    assert headers["Host"] == gw.host
    assert re.fullmatch(r"[A-Za-z0-9+/]{22}==", headers["Sec-WebSocket-Key"])
    assert headers["Sec-WebSocket-Version"] == "13"
    assert headers["User-Agent"].startswith("Python/")
    assert headers["Origin"] == "https://app.example.org"
    lowered = {k.lower() for k in headers}
    assert "connection" not in lowered and "upgrade" not in lowered, sorted(headers)
    assert "x-custom-thing" in lowered


def test_connect_event_multi_value_headers_are_lists_of_the_same_values(gateway_factory, stub):
    gw = gateway_factory(lifecycle_config(stub))
    with open_ws(gw.ws_url):
        pass
    event = stub.wait_events("/connect")[0]
    mv = event["multiValueHeaders"]
    assert set(mv) == set(event["headers"])
    for name, values in mv.items():
        assert isinstance(values, list) and values, (name, values)
        assert values[-1] == event["headers"][name] or ", ".join(values) == event["headers"][name], (name, values)
    assert mv["Host"] == [gw.host]
    assert mv["Sec-WebSocket-Version"] == ["13"]


def test_connect_event_has_query_parameters_last_value_and_all_values(gateway_factory, stub):
    gw = gateway_factory(lifecycle_config(stub))
    with open_ws(f"{gw.ws_url}?room=a&room=b&token=x%3Dy"):
        pass
    event = stub.wait_events("/connect")[0]
    assert event["queryStringParameters"] == {"room": "b", "token": "x=y"}
    assert event["multiValueQueryStringParameters"] == {"room": ["a", "b"], "token": ["x=y"]}


def test_connect_event_without_query_string_has_no_query_parameter_fields(gateway_factory, stub):
    gw = gateway_factory(lifecycle_config(stub))
    with open_ws(gw.ws_url):
        pass
    event = stub.wait_events("/connect")[0]
    assert "queryStringParameters" not in event, event.get("queryStringParameters")
    assert "multiValueQueryStringParameters" not in event, event.get("multiValueQueryStringParameters")


def test_connect_event_request_context_has_api_gateway_fields_and_formats(gateway_factory, stub):
    gw = gateway_factory(lifecycle_config(stub))
    with open_ws(gw.ws_url):
        pass
    event = stub.wait_events("/connect")[0]
    assert event["isBase64Encoded"] is False
    assert "body" not in event, event.get("body")
    ctx = event["requestContext"]
    check_common_context(ctx, gw, route_key="$connect", event_type="CONNECT")
    assert "messageId" not in ctx
    assert "disconnectStatusCode" not in ctx and "disconnectReason" not in ctx
    assert ctx["identity"]["userAgent"] == event["headers"]["User-Agent"]


def test_each_connection_gets_a_new_connection_id_and_request_id(gateway_factory, stub):
    gw = gateway_factory(lifecycle_config(stub))
    for _ in range(3):
        with open_ws(gw.ws_url):
            pass
    events = stub.wait_events("/connect", 3)
    assert len({e["requestContext"]["connectionId"] for e in events}) == 3
    assert len({e["requestContext"]["requestId"] for e in events}) == 3


# ---------------------------------------------------------------------------------------- MESSAGE

def test_message_event_has_raw_body_message_id_and_connection_of_connect(gateway_factory, stub):
    stub.set("/sendmessage", body={"statusCode": 200, "body": "ack"})
    gw = gateway_factory(lifecycle_config(stub))
    raw = '{ "action": "sendmessage",\n  "text": "hi \u00e9" }'
    with open_ws(gw.ws_url) as ws:
        ws.send(raw)
        assert recv(ws) == "ack"
    connect = stub.wait_events("/connect")[0]
    event = stub.wait_events("/sendmessage")[0]
    assert "headers" not in event and "multiValueHeaders" not in event, sorted(event)
    assert "queryStringParameters" not in event
    assert event["body"] == raw
    assert event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    check_common_context(ctx, gw, route_key="sendmessage", event_type="MESSAGE")
    assert re.fullmatch(ID_RE, ctx["messageId"]), ctx.get("messageId")
    assert ctx["connectionId"] == connect["requestContext"]["connectionId"]
    assert ctx["connectedAt"] == connect["requestContext"]["connectedAt"]
    assert ctx["requestId"] != connect["requestContext"]["requestId"]
    assert ctx["identity"]["userAgent"] == connect["requestContext"]["identity"]["userAgent"]
    assert "disconnectStatusCode" not in ctx


def test_route_response_body_is_delivered_to_sender_as_text(gateway_factory, stub):
    stub.set("/sendmessage", body=lambda e: {"statusCode": 200, "body": "you said " + e["body"]})
    gw = gateway_factory(lifecycle_config(stub))
    with open_ws(gw.ws_url) as ws:
        for i in range(3):
            msg = '{"action":"sendmessage","i":%d}' % i
            ws.send(msg)
            assert recv(ws) == "you said " + msg


def test_http_route_without_route_response_sends_nothing_back(gateway_factory, stub):
    stub.set("/oneway", body={"statusCode": 200, "body": "should not arrive"})
    gw = gateway_factory(lifecycle_config(stub, oneway={"type": "http", "url": stub.url("/oneway")}))
    with open_ws(gw.ws_url) as ws:
        ws.send('{"action":"oneway"}')
        stub.wait_events("/oneway")
        ws.send('{"action":"other"}')  # $default mock: proves the connection is live and ordered after
        assert recv(ws) == 'default:{"action":"other"}'
        assert_no_message(ws, 0.5)


def test_route_selected_by_nested_body_path(gateway_factory):
    config = render_config({
        "alpha": {"type": "mock", "body": "alpha got ${request.body.meta.n}", "route_response": True},
        "$default": {"type": "mock", "body": "default", "route_response": True},
    }, gateway={"route_selection_expression": "$request.body.meta.kind"})
    gw = gateway_factory(config)
    with open_ws(gw.ws_url) as ws:
        ws.send('{"meta": {"kind": "alpha", "n": 7}}')
        assert recv(ws) == "alpha got 7"
        ws.send('{"meta": {"kind": "beta"}}')
        assert recv(ws) == "default"
        ws.send('{"kind": "alpha"}')
        assert recv(ws) == "default"


def test_route_selected_by_template_expression_with_slash_key(gateway_factory, stub):
    stub.set("/chat-join", body={"statusCode": 200, "body": "joined"})
    config = render_config({
        "chat/join": {"type": "http", "url": stub.url("/chat-join"), "route_response": True},
        "chat/leave": {"type": "mock", "body": "left", "route_response": True},
        "$default": {"type": "mock", "body": "default", "route_response": True},
    }, gateway={"route_selection_expression": "${request.body.svc}/${request.body.op}"})
    gw = gateway_factory(config)
    with open_ws(gw.ws_url) as ws:
        ws.send('{"svc": "chat", "op": "join"}')
        assert recv(ws) == "joined"
        ws.send('{"svc": "chat", "op": "leave"}')
        assert recv(ws) == "left"
        ws.send('{"svc": "chat"}')  # -> "chat/" -> no such route
        assert recv(ws) == "default"
    assert stub.wait_events("/chat-join")[0]["requestContext"]["routeKey"] == "chat/join"


def test_non_json_message_goes_to_default_even_if_text_equals_a_route_key(gateway_factory, stub):
    stub.set("/default", body=lambda e: {"statusCode": 200, "body": "default:" + e["body"]})
    gw = gateway_factory(lifecycle_config(stub, **{
        "hello": {"type": "mock", "body": "hello route", "route_response": True},
        "$default": {"type": "http", "url": stub.url("/default"), "route_response": True},
    }))
    with open_ws(gw.ws_url) as ws:
        ws.send("hello")
        assert recv(ws) == "default:hello"
        ws.send("{broken json")
        assert recv(ws) == "default:{broken json"
    events = stub.wait_events("/default", 2)
    assert [e["requestContext"]["routeKey"] for e in events] == ["$default", "$default"]
    assert [e["body"] for e in events] == ["hello", "{broken json"]


def test_no_matching_route_and_no_default_sends_forbidden_frame_and_keeps_connection(gateway_factory, stub):
    config = render_config({
        "$connect": {"type": "http", "url": stub.url("/connect")},
        "known": {"type": "mock", "body": "known ok", "route_response": True},
    })
    gw = gateway_factory(config)
    with open_ws(gw.ws_url) as ws:
        connection_id = stub.wait_events("/connect")[0]["requestContext"]["connectionId"]
        ws.send('{"action":"unknown"}')
        frame = recv(ws)
        assert re.fullmatch(
            r'\{"message": "Forbidden", "connectionId":"' + re.escape(connection_id)
            + r'", "requestId":"' + ID_RE + r'"\}', frame), frame
        ws.send("not json at all")
        assert re.fullmatch(r'\{"message": "Forbidden", "connectionId":"' + re.escape(connection_id)
                            + r'", "requestId":"' + ID_RE + r'"\}', recv(ws))
        ws.send('{"action":"known"}')
        assert recv(ws) == "known ok"


# ---------------------------------------------------------------------------------------- DISCONNECT

DISCONNECT_HEADER_NAMES = ["Host", "x-api-key", "X-Forwarded-For", "x-restapi"]


def test_client_close_with_code_and_reason_reaches_disconnect_event(gateway_factory, stub):
    gw = gateway_factory(lifecycle_config(stub))
    ws = open_ws(gw.ws_url)
    ws.close(4000, "bye")
    connect = stub.wait_events("/connect")[0]
    event = stub.wait_events("/disconnect")[0]
    ctx = event["requestContext"]
    check_common_context(ctx, gw, route_key="$disconnect", event_type="DISCONNECT")
    assert ctx["disconnectStatusCode"] == 4000
    assert ctx["disconnectReason"] == "bye"
    assert ctx["connectionId"] == connect["requestContext"]["connectionId"]
    assert ctx["connectedAt"] == connect["requestContext"]["connectedAt"]
    assert "messageId" not in ctx
    assert event["isBase64Encoded"] is False
    assert "body" not in event


def test_disconnect_event_has_exactly_the_four_synthetic_headers(gateway_factory, stub):
    gw = gateway_factory(lifecycle_config(stub))
    ws = open_ws(gw.ws_url, additional_headers={"Origin": "https://app.example.org"})
    ws.close(4000, "bye")
    event = stub.wait_events("/disconnect")[0]
    assert event["headers"] == {"Host": gw.host, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
    assert event["multiValueHeaders"] == {"Host": [gw.host], "x-api-key": [""], "X-Forwarded-For": [""], "x-restapi": [""]}
    assert "queryStringParameters" not in event


def test_client_close_without_status_reports_1005_to_disconnect(gateway_factory, stub):
    gw = gateway_factory(lifecycle_config(stub))
    ws = open_ws(gw.ws_url)
    ws.close(code=None)  # a Close frame with an empty payload
    event = stub.wait_events("/disconnect")[0]
    assert event["requestContext"]["disconnectStatusCode"] == 1005
    assert event["requestContext"]["disconnectReason"] == "Client-side close frame status not set"


def test_normal_client_close_reports_1000_with_empty_reason(gateway_factory, stub):
    gw = gateway_factory(lifecycle_config(stub))
    with open_ws(gw.ws_url):
        pass  # websockets closes with 1000, reason ""
    ctx = stub.wait_events("/disconnect")[0]["requestContext"]
    assert ctx["disconnectStatusCode"] == 1000
    assert ctx["disconnectReason"] == ""


def test_configured_domain_name_is_used_in_events_instead_of_host(gateway_factory, stub):
    config = lifecycle_config(stub).replace('api_id = "compat1234"', 'api_id = "compat1234"\ndomain_name = "ws.example.test"')
    gw = gateway_factory(config)
    ws = open_ws(gw.ws_url)
    ws.send('{"action":"sendmessage"}')
    ws.close(4000, "bye")
    assert stub.wait_events("/connect")[0]["requestContext"]["domainName"] == "ws.example.test"
    assert stub.wait_events("/sendmessage")[0]["requestContext"]["domainName"] == "ws.example.test"
    disconnect = stub.wait_events("/disconnect")[0]
    assert disconnect["requestContext"]["domainName"] == "ws.example.test"
    assert disconnect["headers"]["Host"] == "ws.example.test"


def test_binary_frames_accepted_go_to_default_base64_encoded(gateway_factory, stub):
    stub.set("/default", body={"statusCode": 200, "body": "got binary"})
    config = render_config({
        "hello": {"type": "mock", "body": "hello route", "route_response": True},
        "$default": {"type": "http", "url": stub.url("/default"), "route_response": True},
    }, gateway={"binary_frames": "accept"})
    gw = gateway_factory(config)
    with open_ws(gw.ws_url) as ws:
        ws.send(b'{"action":"hello"}\xff')
        assert recv(ws) == "got binary"
        ws.send('{"action":"hello"}')
        assert recv(ws) == "hello route"
    event = stub.wait_events("/default")[0]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b'{"action":"hello"}\xff'
    assert event["requestContext"]["routeKey"] == "$default"
    assert event["requestContext"]["eventType"] == "MESSAGE"
