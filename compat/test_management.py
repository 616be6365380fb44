"""7. The @connections management API through boto3's apigatewaymanagementapi client."""

import datetime
import time
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from conftest import (assert_no_message, connect_tagged, mgmt_client, open_slow_reader,
                      post_until_limit_exceeded, recv, render_config, wait_close)
from conftest import http_call as call
from conftest import quote_id as q


def mgmt_config(stub):
    return render_config({
        "$connect": {"type": "http", "url": stub.url("/connect")},
        "$disconnect": {"type": "http", "url": stub.url("/disconnect")},
        "$default": {"type": "mock", "body": "${request.body}", "route_response": True},
    })


@pytest.fixture
def env(gateway_factory, stub, clients):
    gw = gateway_factory(mgmt_config(stub))

    class Env:
        pass

    e = Env()
    e.gw, e.stub, e.client = gw, stub, mgmt_client(gw.mgmt_url)

    def open_client(**kw):
        ws, event = connect_tagged(clients, gw, stub, **kw)
        return ws, event["requestContext"]["connectionId"], event

    e.open = open_client
    return e


def error_code(exc_info):
    return exc_info.value.response["Error"]["Code"]


def test_post_to_connection_delivers_utf8_data_as_text_frame(env):
    ws, cid, _ = env.open()
    env.client.post_to_connection(ConnectionId=cid, Data="h\u00e9llo \u2603".encode())
    assert recv(ws) == "h\u00e9llo \u2603"
    env.client.post_to_connection(ConnectionId=cid, Data="{\"type\":\"push\"}")
    assert recv(ws) == "{\"type\":\"push\"}"


def test_post_to_connection_delivers_non_utf8_data_as_binary_frame(env):
    ws, cid, _ = env.open()
    env.client.post_to_connection(ConnectionId=cid, Data=b"\xff\x00\xfe\x80")
    assert recv(ws) == b"\xff\x00\xfe\x80"


def test_post_to_connection_reaches_only_the_addressed_connection(env):
    ws1, cid1, _ = env.open()
    ws2, cid2, _ = env.open()
    assert cid1 != cid2
    env.client.post_to_connection(ConnectionId=cid2, Data=b"for two")
    assert recv(ws2) == "for two"
    assert_no_message(ws1)


def test_post_of_exactly_131072_bytes_is_delivered_whole(env):
    # It goes out in four 32 KiB fragments (as API Gateway sends it); websockets reassembles them.
    ws, cid, _ = env.open()
    data = (b"0123456789abcdef" * 8192)
    assert len(data) == 131072
    env.client.post_to_connection(ConnectionId=cid, Data=data)
    assert recv(ws) == data.decode()


def test_post_of_131073_bytes_raises_payload_too_large_exception(env):
    ws, cid, _ = env.open()
    with pytest.raises(env.client.exceptions.PayloadTooLargeException) as info:
        env.client.post_to_connection(ConnectionId=cid, Data=b"a" * 131073)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert_no_message(ws)


def test_get_connection_returns_connected_at_last_active_at_and_identity(env):
    ws, cid, event = env.open()
    time.sleep(0.3)
    ws.send("activity")
    assert recv(ws) == "activity"
    after_activity = time.time()
    info = env.client.get_connection(ConnectionId=cid)
    connected_at, last_active_at = info["ConnectedAt"], info["LastActiveAt"]
    assert isinstance(connected_at, datetime.datetime) and connected_at.tzinfo is not None
    assert isinstance(last_active_at, datetime.datetime) and last_active_at.tzinfo is not None
    assert abs(connected_at.timestamp() * 1000 - event["requestContext"]["connectedAt"]) <= 1
    assert last_active_at - connected_at >= datetime.timedelta(milliseconds=250), (connected_at, last_active_at)
    assert last_active_at.timestamp() <= after_activity + 0.01
    assert info["Identity"]["SourceIp"] == "127.0.0.1"
    assert info["Identity"]["UserAgent"] == event["headers"]["User-Agent"]


def test_delete_connection_closes_client_with_1000_and_disconnect_gets_1000(env):
    ws, cid, _ = env.open()
    response = env.client.delete_connection(ConnectionId=cid)
    assert 200 <= response["ResponseMetadata"]["HTTPStatusCode"] < 300
    code, reason, _ = wait_close(ws)
    assert (code, reason) == (1000, "Connection Closed Normally")
    event = env.stub.wait_for("/disconnect", lambda e: e["requestContext"]["connectionId"] == cid)
    assert event["requestContext"]["disconnectStatusCode"] == 1000
    assert event["requestContext"]["disconnectReason"] == "Connection Closed Normally"


def test_delete_with_code_and_reason_closes_with_them_and_disconnect_reports_them(env):
    ws, cid, _ = env.open()
    reason = urllib.parse.quote("kicked \u270b")
    status, _, _ = call("DELETE", f"{env.gw.mgmt_url}/@connections/{q(cid)}?code=4001&reason={reason}")
    assert status == 204
    code, reason, _ = wait_close(ws)
    assert (code, reason) == (4001, "kicked \u270b")
    event = env.stub.wait_for("/disconnect", lambda e: e["requestContext"]["connectionId"] == cid)
    assert event["requestContext"]["disconnectStatusCode"] == 4001
    assert event["requestContext"]["disconnectReason"] == "kicked \u270b"


@pytest.mark.parametrize("query", ["code=999", "code=1001", "code=1005", "code=2999", "code=5000", "code=abc",
                                   "code=4000&reason=" + "r" * 124, "reason=" + "r" * 124])
def test_delete_with_a_bad_close_is_bad_request_and_the_connection_stays_open(env, query):
    ws, cid, _ = env.open()
    status, body, headers = call("DELETE", f"{env.gw.mgmt_url}/@connections/{q(cid)}?{query}")
    assert (status, headers["x-amzn-errortype"]) == (400, "BadRequestException")
    assert "1000 or 3000-4999" in body["message"] or "at most 123 bytes" in body["message"], body
    env.client.post_to_connection(ConnectionId=cid, Data=b"still open")
    assert recv(ws) == "still open"


@pytest.mark.parametrize("operation", ["post_to_connection", "get_connection", "delete_connection"])
def test_calls_on_deleted_connection_raise_gone_exception(env, operation):
    ws, cid, _ = env.open()
    env.client.delete_connection(ConnectionId=cid)
    wait_close(ws)
    kwargs = {"ConnectionId": cid}
    if operation == "post_to_connection":
        kwargs["Data"] = b"late"
    with pytest.raises(env.client.exceptions.GoneException) as info:
        getattr(env.client, operation)(**kwargs)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410


def test_post_to_gone_connection_raises_gone_exception(env):
    ws, cid, _ = env.open()
    ws.close()
    env.stub.wait_for("/disconnect", lambda e: e["requestContext"]["connectionId"] == cid)
    with pytest.raises(env.client.exceptions.GoneException):
        env.client.post_to_connection(ConnectionId=cid, Data=b"anyone?")


def test_post_to_never_seen_well_formed_id_raises_gone_exception(env):
    with pytest.raises(env.client.exceptions.GoneException):
        env.client.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")
    with pytest.raises(env.client.exceptions.GoneException):
        env.client.get_connection(ConnectionId="Mg_ugfpqPHcCIVA=")


def test_malformed_connection_id_raises_bad_request_exception(env):
    with pytest.raises(ClientError) as info:
        env.client.post_to_connection(ConnectionId="bad", Data=b"x")
    assert error_code(info) == "BadRequestException"
    assert "Invalid connectionId: bad" in info.value.response["Error"]["Message"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_endpoint_url_without_stage_also_reaches_connections(env):
    ws, cid, _ = env.open()
    client = mgmt_client(f"http://127.0.0.1:{env.gw.port}")
    client.post_to_connection(ConnectionId=cid, Data=b"no stage")
    assert recv(ws) == "no stage"
    assert client.get_connection(ConnectionId=cid)["Identity"]["SourceIp"] == "127.0.0.1"


def test_endpoint_url_with_wrong_stage_raises_forbidden_exception(env):
    ws, cid, _ = env.open()
    client = mgmt_client(f"http://127.0.0.1:{env.gw.port}/prod")
    with pytest.raises(client.exceptions.ForbiddenException):
        client.post_to_connection(ConnectionId=cid, Data=b"wrong stage")
    assert_no_message(ws)


def test_management_pushes_keep_message_order(env):
    ws, cid, _ = env.open()
    for i in range(20):
        env.client.post_to_connection(ConnectionId=cid, Data=f"m{i}".encode())
    assert [recv(ws) for _ in range(20)] == [f"m{i}" for i in range(20)]


def test_post_to_slow_reader_eventually_raises_limit_exceeded_exception(gateway_factory, stub, clients):
    gw = gateway_factory(render_config({
        "$connect": {"type": "http", "url": stub.url("/connect")},
    }, limits={"outbox_bytes": 262144}))
    client = mgmt_client(gw.mgmt_url)
    ws, event = open_slow_reader(clients, gw, stub)
    cid = event["requestContext"]["connectionId"]
    data = b"x" * 131072
    post_until_limit_exceeded(client, cid, data)
    # The connection is still there: the client gets what was queued once it reads.
    assert recv(ws) == data.decode()
    assert client.get_connection(ConnectionId=cid)["Identity"]["SourceIp"] == "127.0.0.1"
