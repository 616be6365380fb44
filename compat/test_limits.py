"""10. Frame and message size limits, binary frames, idle and maximum-duration timers."""

import asyncio
import random
import string
import time

from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed

from conftest import mgmt_client, open_ws, recv, render_config, wait_close

ECHO = {"$default": {"type": "mock", "body": "${request.body}", "route_response": True}}


def random_text(n):
    rng = random.Random(n)
    return "".join(rng.choices(string.ascii_letters + string.digits, k=n))


def send_and_wait_close(ws, message, timeout=5.0):
    try:
        ws.send(message)
    except ConnectionClosed:
        pass
    return wait_close(ws, timeout)


def test_single_40_kib_text_frame_closes_with_1009(gateway_factory):
    gw = gateway_factory(render_config(ECHO))
    ws = open_ws(gw.ws_url, compression=None)
    code, _, messages = send_and_wait_close(ws, random_text(40 * 1024))
    assert code == 1009
    assert messages == []


def test_text_frame_of_exactly_32_kib_is_accepted(gateway_factory):
    gw = gateway_factory(render_config(ECHO))
    with open_ws(gw.ws_url, compression=None) as ws:
        text = random_text(32 * 1024)
        ws.send(text)
        assert recv(ws) == text


def test_fragmented_message_of_200_kib_closes_with_1009(gateway_factory):
    gw = gateway_factory(render_config(ECHO))

    async def scenario():
        async with async_connect(gw.ws_url, compression=None, proxy=None, open_timeout=5, close_timeout=3) as ws:
            async def chunks():
                for _ in range(200 // 16):
                    yield random_text(16 * 1024)
            try:
                await ws.send(chunks())
            except ConnectionClosed:
                pass
            try:
                await asyncio.wait_for(ws.recv(), timeout=5)
            except ConnectionClosed:
                pass
            await asyncio.wait_for(ws.wait_closed(), timeout=5)
            return ws.close_code

    assert asyncio.run(scenario()) == 1009


def test_fragmented_message_under_128_kib_is_reassembled_and_routed(gateway_factory):
    gw = gateway_factory(render_config(ECHO))

    async def scenario():
        async with async_connect(gw.ws_url, compression=None, proxy=None, open_timeout=5, close_timeout=3,
                                 max_size=None) as ws:
            parts = [random_text(16 * 1024) for _ in range(6)]  # 96 KiB in 16 KiB frames

            async def chunks():
                for part in parts:
                    yield part
            await ws.send(chunks())
            return "".join(parts), await asyncio.wait_for(ws.recv(), timeout=5)

    sent, got = asyncio.run(scenario())
    assert got == sent


def test_binary_frame_with_default_config_closes_with_1003(gateway_factory):
    gw = gateway_factory(render_config(ECHO))
    ws = open_ws(gw.ws_url)
    code, _, messages = send_and_wait_close(ws, b"\x00\x01binary")
    assert code == 1003
    assert messages == []


def test_idle_client_is_closed_with_1001_and_disconnect_reports_going_away(gateway_factory, stub):
    gw = gateway_factory(render_config({
        "$disconnect": {"type": "http", "url": stub.url("/disconnect")}, **ECHO,
    }, limits={"idle_timeout": "1s"}))
    start = time.monotonic()
    ws = open_ws(gw.ws_url, ping_interval=None)
    code, reason, _ = wait_close(ws, timeout=4)
    elapsed = time.monotonic() - start
    assert code == 1001 and reason == "Going away", (code, reason)
    assert 0.8 <= elapsed <= 3.0, elapsed
    ctx = stub.wait_events("/disconnect")[0]["requestContext"]
    assert ctx["disconnectStatusCode"] == 1001
    assert ctx["disconnectReason"] == "Going away"


def test_messages_reset_the_idle_timer(gateway_factory):
    gw = gateway_factory(render_config(ECHO, limits={"idle_timeout": "1s"}))
    with open_ws(gw.ws_url, ping_interval=None) as ws:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            ws.send("tick")
            assert recv(ws) == "tick"
            time.sleep(0.4)


def test_busy_client_is_closed_with_1001_at_max_connection_duration(gateway_factory, stub):
    gw = gateway_factory(render_config({
        "$disconnect": {"type": "http", "url": stub.url("/disconnect")}, **ECHO,
    }, limits={"idle_timeout": "1s", "max_connection_duration": "2s"}))
    start = time.monotonic()
    ws = open_ws(gw.ws_url, ping_interval=None)
    code = reason = None
    while time.monotonic() - start < 6:
        try:
            ws.send("busy")
            assert recv(ws, 2) == "busy"
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, "connection dropped without a close frame"
            code, reason = exc.rcvd.code, exc.rcvd.reason
            break
        time.sleep(0.3)
    elapsed = time.monotonic() - start
    assert code == 1001 and reason == "Going away", (code, reason)
    assert 1.7 <= elapsed <= 4.0, elapsed
    ctx = stub.wait_events("/disconnect")[0]["requestContext"]
    assert ctx["disconnectStatusCode"] == 1001


def test_configured_max_frame_bytes_is_enforced(gateway_factory):
    gw = gateway_factory(render_config(ECHO, limits={"max_frame_bytes": 1024}))
    with open_ws(gw.ws_url, compression=None) as ws:
        ws.send(random_text(1024))
        assert recv(ws) == random_text(1024)
    ws = open_ws(gw.ws_url, compression=None)
    code, _, _ = send_and_wait_close(ws, random_text(2048))
    assert code == 1009


def test_management_pushes_reset_the_idle_timer(gateway_factory, stub):
    gw = gateway_factory(render_config({
        "$connect": {"type": "http", "url": stub.url("/connect")}, **ECHO,
    }, limits={"idle_timeout": "1s"}))
    client = mgmt_client(gw.mgmt_url)
    with open_ws(gw.ws_url, ping_interval=None) as ws:
        cid = stub.wait_events("/connect")[0]["requestContext"]["connectionId"]
        deadline = time.monotonic() + 2.2
        while time.monotonic() < deadline:
            client.post_to_connection(ConnectionId=cid, Data=b"push")
            assert recv(ws) == "push"
            time.sleep(0.4)
        # The client never sent a data message, yet it is still open; then idles out.
        code, _, _ = wait_close(ws, timeout=3)
        assert code == 1001
