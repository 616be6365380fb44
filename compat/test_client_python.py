"""The Python client of resumable connections (clients/python/wsgate_reliable.py) against a real
gateway: it survives a dropped socket with every message in order and none twice, and when the
gateway can no longer resume it, it connects anew and says so."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from conftest import http_call, quote_id, wait_until
from test_resume import start as gateway

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients" / "python"))
from wsgate_reliable import ReliableConnection  # noqa: E402


async def post(gw, cid: str, data: str) -> int:
    url = f"{gw.mgmt_url}/@connections/{quote_id(cid)}"
    return (await asyncio.to_thread(http_call, "POST", url, data.encode()))[0]


async def next_event(conn, kind: str | None = None, timeout: float = 5.0):
    while True:
        event = await asyncio.wait_for(conn.__anext__(), timeout)
        if kind is None or event.kind == kind:
            return event


def test_the_client_resumes_after_a_drop_with_every_message_once_and_in_order(gateway_factory, stub):
    gw = gateway(gateway_factory, stub)

    async def scenario():
        async with ReliableConnection(gw.ws_url, ack_every=2) as conn:
            cid = conn.connection_id
            await conn.send("first")
            assert (await next_event(conn)).data == "first"
            for n in range(3):
                assert await post(gw, cid, f"before {n}") == 200
            got = [(await next_event(conn, "message")).data for _ in range(3)]
            conn._ws.transport.abort()   # the socket goes away under the client
            for n in range(5):
                assert await post(gw, cid, f"away {n}") == 200
            resumed = await next_event(conn)
            assert resumed.kind == "resumed" and resumed.connection_id == cid
            got += [(await next_event(conn, "message")).data for _ in range(5)]
            await conn.send("after")
            assert (await next_event(conn, "message")).data == "after"
            assert got == [f"before {n}" for n in range(3)] + [f"away {n}" for n in range(5)]
            assert conn.connection_id == cid and conn.resumes == 1
        return cid

    cid = asyncio.run(scenario())
    assert stub.count("/connect") == 1
    wait_until(lambda: stub.count("/disconnect") == 1, 5, "one $disconnect, after the client closed")
    assert stub.events["/disconnect"][0]["requestContext"]["connectionId"] == cid


def test_when_the_gateway_cannot_resume_the_client_connects_anew_and_says_reset(
        gateway_factory, stub, cuttable_link):
    gw = gateway(gateway_factory, stub, resume_window="500ms")
    link = cuttable_link(gw.port)   # the client's network, which the test cuts

    async def scenario():
        url = f"ws://127.0.0.1:{link.port}/{gw.stage}"
        async with ReliableConnection(url, min_backoff=0.05, max_backoff=0.2) as conn:
            first = conn.connection_id
            link.cut()   # the socket drops, and every reconnection is refused meanwhile
            await asyncio.to_thread(wait_until, lambda: stub.count("/disconnect") == 1, 5,
                                    "$disconnect once the resume window passed")
            link.restore()
            reset = await next_event(conn, timeout=10)
            assert reset.kind == "reset" and reset.connection_id != first
            assert conn.resets == 1 and conn.connection_id == reset.connection_id
            await conn.send("new me")
            assert (await next_event(conn, "message")).data == "new me"

    asyncio.run(scenario())
    assert stub.count("/connect") == 2
