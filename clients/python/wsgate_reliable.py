"""A client for wsgate's resumable connections (`wsgate.reliable.v1`), on `websockets` (asyncio).

    async with ReliableConnection("ws://127.0.0.1:8080/dev") as conn:
        await conn.send("hello")
        async for event in conn:              # across dropped networks, in order, no duplicates
            if event.kind == "message":
                print(event.seq, event.data)  # str, or bytes for binary messages
            elif event.kind == "resumed":     # same connection, missed messages follow
                ...
            elif event.kind == "reset":       # could not resume: a new connection (new id)
                ...

It connects, acknowledges what it received, reconnects after a drop with backoff and jitter,
resumes with its token and last `seq`, drops duplicates by `seq`, and — when the gateway cannot
resume (window passed, token used) — connects anew and says so with a `reset` event.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit, parse_qsl

import websockets

SUBPROTOCOL = "wsgate.reliable.v1"
RESUME_FAILED = 4410


@dataclass
class Event:
    """What the connection tells: `message` (with `seq` and `data`), `resumed`, or `reset`."""

    kind: str
    data: str | bytes | None = None
    seq: int = 0
    connection_id: str = ""


class ResumeFailed(Exception):
    """The gateway refused a resume; the client connects anew."""


class ReliableConnection:
    """One logical connection to a wsgate stage that survives dropped sockets."""

    def __init__(self, url: str, *, ack_every: int = 16, ack_interval: float = 1.0,
                 min_backoff: float = 0.1, max_backoff: float = 5.0, max_attempts: int | None = None,
                 **connect_kwargs) -> None:
        self.url = url
        self.ack_every, self.ack_interval = ack_every, ack_interval
        self.min_backoff, self.max_backoff, self.max_attempts = min_backoff, max_backoff, max_attempts
        self.connect_kwargs = connect_kwargs
        self.connection_id = ""
        self.token = ""
        self.last_seq = 0
        self.acked = 0
        self.resumes = 0
        self.resets = 0
        self._ws = None
        self._events: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()
        self._online = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None

    # -- public ---------------------------------------------------------------------------

    async def connect(self) -> "ReliableConnection":
        await self._open(resume=False)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aenter__(self) -> "ReliableConnection":
        return await self.connect()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def __aiter__(self) -> "ReliableConnection":
        return self

    async def __anext__(self) -> Event:
        item = await self._events.get()
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    async def send(self, data: str | bytes) -> None:
        """Sends a message to the gateway (routed as usual), waiting for a socket if there is none."""
        while True:
            await self._online.wait()
            try:
                await self._ws.send(data)
                return
            except websockets.ConnectionClosed:
                self._online.clear()

    async def close(self) -> None:
        """Closes for good (the gateway tells `$disconnect` at once)."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._events.put_nowait(None)

    # -- inside ---------------------------------------------------------------------------

    def _url(self, resume: bool) -> str:
        if not resume:
            return self.url
        parts = urlsplit(self.url)
        query = parse_qsl(parts.query) + [("resume", self.token), ("seq", str(self.last_seq))]
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def _open(self, resume: bool) -> None:
        kwargs = dict(self.connect_kwargs)
        protocols = list(kwargs.pop("subprotocols", None) or [])
        ws = await websockets.connect(self._url(resume), subprotocols=[SUBPROTOCOL, *protocols], **kwargs)
        if ws.subprotocol != SUBPROTOCOL:
            await ws.close()
            raise RuntimeError("the gateway did not select wsgate.reliable.v1 (limits.resume_window = 0s?)")
        first = json.loads(await ws.recv())
        if first.get("type") == "resume-failed":
            await ws.close()
            raise ResumeFailed(first.get("reason", ""))
        self._ws = ws
        self.token = first["resumeToken"]
        if first["type"] == "resumed":
            self.resumes += 1
            self._events.put_nowait(Event("resumed", connection_id=first["connectionId"]))
        elif self.connection_id and first["connectionId"] != self.connection_id:
            self.resets += 1
            self.last_seq = self.acked = 0
            self._events.put_nowait(Event("reset", connection_id=first["connectionId"]))
        self.connection_id = first["connectionId"]
        self._online.set()

    async def _run(self) -> None:
        try:
            while not self._closing:
                closed_cleanly = await self._read()
                self._online.clear()
                if self._closing or closed_cleanly:
                    break
                await self._reconnect()
        except BaseException as error:  # surfaced to the reader of events
            self._events.put_nowait(error)
        finally:
            self._events.put_nowait(None)

    async def _read(self) -> bool:
        """Reads until the socket ends; True when it ended with a close handshake."""
        ws = self._ws
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(ws.recv(), self.ack_interval)
                except asyncio.TimeoutError:
                    await self._ack(force=True)
                    continue
                frame = json.loads(raw)
                if frame.get("type") != "message":
                    continue
                seq = frame["seq"]
                if seq <= self.last_seq:
                    continue  # sent again after a resume: already delivered
                self.last_seq = seq
                data = frame["data"] if "data" in frame else base64.b64decode(frame["dataBase64"])
                self._events.put_nowait(Event("message", data=data, seq=seq, connection_id=self.connection_id))
                await self._ack()
        except websockets.ConnectionClosedOK:
            return True
        except websockets.ConnectionClosed:
            return False

    async def _ack(self, force: bool = False) -> None:
        if self.last_seq > self.acked and (force or self.last_seq - self.acked >= self.ack_every):
            try:
                await self._ws.send(json.dumps({"type": "ack", "seq": self.last_seq}))
                self.acked = self.last_seq
            except websockets.ConnectionClosed:
                pass

    async def _reconnect(self) -> None:
        attempt = 0
        resume = True
        while not self._closing:
            delay = min(self.max_backoff, self.min_backoff * 2 ** attempt)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0) if attempt else 0)
            attempt += 1
            try:
                await self._open(resume=resume)
                return
            except ResumeFailed:
                resume = False   # connect anew right away
                attempt = 0
            except (OSError, websockets.WebSocketException, asyncio.TimeoutError):
                if self.max_attempts is not None and attempt >= self.max_attempts:
                    raise
