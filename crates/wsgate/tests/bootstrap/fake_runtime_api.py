"""A small fake of the AWS Lambda Runtime API (2018-06-01), for testing wsgate's bootstraps.

- GET  /2018-06-01/runtime/invocation/next         blocks until an event is queued with invoke()
- POST /2018-06-01/runtime/invocation/{id}/response recorded, answers 202 {"status":"OK"}
- POST /2018-06-01/runtime/invocation/{id}/error    recorded, answers 202
- POST /2018-06-01/runtime/init/error               recorded, answers 202

Served with HTTP/1.1 keep-alive on 127.0.0.1:<ephemeral port>.
"""

import json
import queue
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01"


class Record(object):
    def __init__(self, kind, request_id, headers, body):
        self.kind = kind  # "response" | "error" | "init_error"
        self.request_id = request_id
        self.headers = headers  # dict, lower-case names
        self.body = body  # raw bytes

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "Record(%s, %s, %r, %r)" % (self.kind, self.request_id, self.headers, self.body[:300])


class FakeRuntimeAPI(object):
    def __init__(self, function_arn="arn:aws:lambda:us-east-1:123456789012:function:testfn",
                 timeout_ms=30000, drop_connections=False):
        self.function_arn = function_arn
        self.timeout_ms = timeout_ms
        # drop_connections: close every connection after a POST reply without announcing it
        # (no "Connection: close"), like a server whose keep-alive timer fired.
        self.drop_connections = drop_connections
        self.connections = 0
        self._events = queue.Queue()
        self._cond = threading.Condition()
        self.records = []  # every Record, in arrival order
        self.next_calls = 0
        self.server = None
        self._thread = None
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------

    def start(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def setup(self):
                BaseHTTPRequestHandler.setup(self)
                with api._cond:
                    api.connections += 1

            def _reply(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_GET(self):
                if self.path != PREFIX + "/runtime/invocation/next":
                    return self._reply(404, b'{"errorMessage":"not found"}')
                with api._cond:
                    api.next_calls += 1
                    api._cond.notify_all()
                item = None
                while not api._stopping:
                    try:
                        item = api._events.get(timeout=0.2)
                        break
                    except queue.Empty:
                        continue
                if item is None:
                    self.close_connection = True
                    return self._reply(503, b'{"errorMessage":"shutting down"}')
                if item.get("raw_reply") is not None:
                    status, headers, body = item["raw_reply"]
                    return self._reply(status, body, headers)
                headers = {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": item["request_id"],
                    "Lambda-Runtime-Deadline-Ms": str(item["deadline_ms"]),
                    "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                }
                if item.get("trace_id"):
                    headers["Lambda-Runtime-Trace-Id"] = item["trace_id"]
                for k, v in (item.get("extra_headers") or {}).items():
                    headers[k] = v
                self._reply(200, item["body"], headers)

            def do_POST(self):
                body = self._body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                path = self.path
                rec = None
                if path == PREFIX + "/runtime/init/error":
                    rec = Record("init_error", None, headers, body)
                elif path.startswith(PREFIX + "/runtime/invocation/"):
                    rest = path[len(PREFIX + "/runtime/invocation/"):]
                    parts = rest.split("/")
                    if len(parts) == 2 and parts[1] in ("response", "error"):
                        rec = Record(parts[1], parts[0], headers, body)
                if rec is None:
                    return self._reply(404, b'{"errorMessage":"not found"}')
                with api._cond:
                    api.records.append(rec)
                    api._cond.notify_all()
                self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})
                if api.drop_connections:
                    self.close_connection = True

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                # A bootstrap that exits drops its keep-alive connection: not an error here.
                if isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
                    return
                ThreadingHTTPServer.handle_error(self, request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    @property
    def address(self):
        host, port = self.server.server_address[:2]
        return "%s:%d" % (host, port)

    def stop(self):
        if self._stopping:
            return
        self._stopping = True
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- driving -----------------------------------------------------------------------

    def invoke(self, event, request_id=None, timeout_ms=None, trace_id=None, raw_body=None,
               extra_headers=None):
        """Queue an event; returns its request id."""
        request_id = request_id or str(uuid.uuid4())
        timeout_ms = self.timeout_ms if timeout_ms is None else timeout_ms
        body = raw_body if raw_body is not None else json.dumps(event).encode("utf-8")
        self._events.put({
            "request_id": request_id,
            "deadline_ms": int(time.time() * 1000) + timeout_ms,
            "body": body,
            "trace_id": trace_id,
            "extra_headers": extra_headers,
        })
        return request_id

    def queue_raw_next_reply(self, status, headers, body):
        """Make the next /next answer with an arbitrary (e.g. malformed) reply."""
        self._events.put({"raw_reply": (status, headers, body)})

    def wait_for(self, predicate, timeout=10.0, what="record"):
        deadline = time.time() + timeout
        with self._cond:
            while True:
                for rec in self.records:
                    if predicate(rec):
                        return rec
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("timed out waiting for %s; records: %r" % (what, self.records))
                self._cond.wait(left)

    def result(self, request_id, timeout=10.0):
        """The /response or /error record of an invocation."""
        return self.wait_for(lambda r: r.request_id == request_id, timeout, "result of " + request_id)

    def init_error(self, timeout=10.0):
        return self.wait_for(lambda r: r.kind == "init_error", timeout, "init error")

    def wait_next_calls(self, n, timeout=10.0):
        deadline = time.time() + timeout
        with self._cond:
            while self.next_calls < n:
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("only %d /next calls seen" % self.next_calls)
                self._cond.wait(left)
