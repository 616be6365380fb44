"""Checks a running serverless-offline peer against what the wsgate benchmark needs.

    python verify.py <ws_port>        (compat/.venv/bin/python has websockets and boto3)

Prints one line per check; exits 1 if a check the benchmark relies on fails. Checks marked
"info" only report how serverless-offline differs from API Gateway.
"""

import asyncio
import json
import sys
import time
import urllib.error
import urllib.request

import boto3
import botocore.exceptions
import websockets

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 3001
BASE = f"http://127.0.0.1:{PORT}"
failed = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        failed.append(name)


def info(name, detail):
    print(f"info {name}: {detail}")


def http(method, path, data=None):
    request = urllib.request.Request(BASE + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def recv(ws, timeout=5):
    return await asyncio.wait_for(ws.recv(), timeout)


async def main():
    # Which URLs upgrade.
    for path in ["", "/", "/dev", "/anything/else"]:
        try:
            async with websockets.connect(f"ws://127.0.0.1:{PORT}{path}", open_timeout=5) as ws:
                await ws.send('{"action":"whoami"}')
                answer = json.loads(await recv(ws))
                check(f"upgrade at ws://127.0.0.1:{PORT}{path or ''}", "connectionId" in answer)
        except Exception as error:  # noqa: BLE001
            check(f"upgrade at ws://127.0.0.1:{PORT}{path}", False, repr(error))

    url = f"ws://127.0.0.1:{PORT}"
    async with websockets.connect(url) as ws:
        message = '{"action":"echo","data":"x"}'
        started = time.perf_counter()
        await ws.send(message)
        answer = await recv(ws)
        check("echo route returns the raw message", answer == message,
              f"{answer!r} in {1000 * (time.perf_counter() - started):.1f} ms")

        for message in ['{"action":"nope","n":1}', "not json", '{"no":"action"}']:
            await ws.send(message)
            answer = await recv(ws)
            check(f"$default route echoes {message!r}", answer == message, repr(answer))

        await ws.send('{"action":"whoami"}')
        whoami = json.loads(await recv(ws))
        connection_id = whoami["connectionId"]
        check("whoami", bool(connection_id), f"connectionId={connection_id!r} (len {len(connection_id)})")

        # Management API, raw HTTP.
        status, body = http("POST", f"/@connections/{connection_id}", b"pushed-raw")
        got = await recv(ws)
        # AWS answers 200; serverless-offline answers 204 No Content (still 2xx).
        check("POST /@connections/{id} delivers (2xx)", 200 <= status < 300 and got == "pushed-raw",
              f"HTTP {status} body={body!r}, socket got {got!r}")

        status, body = http("POST", f"/dev/@connections/{connection_id}", b"pushed-stage")
        info("POST /dev/@connections/{id} (stage in the path, as on AWS)", f"HTTP {status} {body[:80]!r}")

        status, body = http("GET", f"/@connections/{connection_id}")
        info("GET /@connections/{id} (GetConnection)", f"HTTP {status} {body[:80]!r}")

        status, body = http("POST", "/@connections/does-not-exist", b"x")
        check("POST to an unknown id answers 410 Gone", status == 410, f"HTTP {status}")

        # Management API through boto3, as a backend would call it.
        api = boto3.client("apigatewaymanagementapi", endpoint_url=BASE, region_name="us-east-1",
                           aws_access_key_id="x", aws_secret_access_key="x")
        api.post_to_connection(ConnectionId=connection_id, Data=b"pushed-boto3")
        got = await recv(ws)
        check("boto3 post_to_connection (endpoint_url = http://127.0.0.1:PORT)", got == "pushed-boto3", repr(got))
        try:
            api.get_connection(ConnectionId=connection_id)
            info("boto3 get_connection", "works")
        except botocore.exceptions.ClientError as error:
            info("boto3 get_connection", f"{error.response['Error'].get('Code')} "
                 f"HTTP {error.response['ResponseMetadata']['HTTPStatusCode']}")
        try:
            api.post_to_connection(ConnectionId="does-not-exist", Data=b"x")
            check("boto3 post_to_connection to an unknown id fails", False, "no error")
        except api.exceptions.GoneException:
            info("boto3 post_to_connection to an unknown id", "GoneException")
        except botocore.exceptions.ClientError as error:
            # AWS sends a GoneException error body; serverless-offline an empty 410.
            info("boto3 post_to_connection to an unknown id", f"ClientError code "
                 f"{error.response['Error'].get('Code')!r}, not GoneException (empty 410 body)")

        # Binary frame: API Gateway base64-encodes it for the backend; see what comes back.
        await ws.send(b"\x00\x01binary")
        try:
            got = await recv(ws, 2)
            info("binary frame on $default", f"answered {got!r}")
        except asyncio.TimeoutError:
            info("binary frame on $default", "no answer within 2 s")

        # DeleteConnection closes the socket.
        api.delete_connection(ConnectionId=connection_id)
        try:
            await recv(ws, 5)
            check("boto3 delete_connection closes the socket", False, "still open")
        except websockets.ConnectionClosed as closed:
            check("boto3 delete_connection closes the socket", True,
                  f"close code {closed.rcvd.code if closed.rcvd else None}")

    # Round-trip latency of the echo route, sequential.
    async with websockets.connect(url) as ws:
        n = 500
        started = time.perf_counter()
        for i in range(n):
            await ws.send(json.dumps({"action": "echo", "i": i}))
            await recv(ws)
        elapsed = time.perf_counter() - started
        info("sequential echo", f"{n} round trips in {elapsed:.2f} s, {1e6 * elapsed / n:.0f} µs each")

    # Concurrency: many connections, each learns its own id and gets its own echoes back.
    conns, per = 200, 50

    async def client(k):
        async with websockets.connect(url, open_timeout=30) as ws:
            await ws.send('{"action":"whoami"}')
            my_id = json.loads(await recv(ws, 30))["connectionId"]
            for i in range(per):
                sent = json.dumps({"action": "echo", "k": k, "i": i})
                await ws.send(sent)
                if await recv(ws, 30) != sent:
                    return my_id, False
            return my_id, True

    started = time.perf_counter()
    results = await asyncio.gather(*(client(k) for k in range(conns)))
    elapsed = time.perf_counter() - started
    ids = {r[0] for r in results}
    check(f"{conns} concurrent connections x {per} echoes", all(r[1] for r in results) and len(ids) == conns,
          f"{len(ids)} distinct ids, {conns * per / elapsed:.0f} echoes/s")

    if failed:
        print("FAILED:", ", ".join(failed))
        sys.exit(1)
    print("all checks passed")


asyncio.run(main())
