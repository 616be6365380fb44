"""Tests for wsgate's built-in Lambda bootstraps (src/function/bootstrap/{python.py,node.cjs}).

Each test starts the fake Runtime API (fake_runtime_api.py) on 127.0.0.1 and the bootstrap as a
child process with the environment wsgate gives it, drives invocations, and kills the child.

Run:  /work/main/compat/.venv/bin/python -m pytest crates/wsgate/tests/bootstrap -q -p no:cacheprovider
Interpreters: BOOTSTRAP_PYTHON (default python3), BOOTSTRAP_NODE (default node).
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from fake_runtime_api import FakeRuntimeAPI  # noqa: E402

BOOTSTRAP_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "src", "function", "bootstrap"))
HANDLERS = os.path.join(HERE, "handlers")
PY_ROOT = os.path.join(HANDLERS, "python")
CJS_ROOT = os.path.join(HANDLERS, "node", "cjs")
ESM_ROOT = os.path.join(HANDLERS, "node", "esm")
ESM_PKG_ROOT = os.path.join(HANDLERS, "node", "esm-pkg")

PYTHON = os.environ.get("BOOTSTRAP_PYTHON", "python3")
NODE = os.environ.get("BOOTSTRAP_NODE", "node")

FUNCTION_NAME = "testfn"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:" + FUNCTION_NAME


class Runtime(object):
    """A bootstrap child process plus its captured stdout/stderr."""

    def __init__(self, api, lang, task_root, handler, extra_env=None, api_address=None):
        if lang == "python":
            cmd = [PYTHON, "-u", os.path.join(BOOTSTRAP_DIR, "python.py")]
        else:
            cmd = [NODE, os.path.join(BOOTSTRAP_DIR, "node.cjs")]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k not in ("_HANDLER", "LAMBDA_TASK_ROOT", "_X_AMZN_TRACE_ID",
                                                         "PYTHONPATH", "NODE_OPTIONS")}
        env.update({
            "AWS_LAMBDA_RUNTIME_API": api_address or api.address,
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": task_root,
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/" + FUNCTION_NAME,
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]abcdef",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "AKIDWSGATELOCAL",
            "AWS_SECRET_ACCESS_KEY": "wsgate-local-secret",
            "AWS_SESSION_TOKEN": "wsgate-local-token",
            "PYTHONDONTWRITEBYTECODE": "1",  # keep the fixture folders clean
        })
        env.update(extra_env or {})
        self.proc = subprocess.Popen(cmd, cwd=task_root, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._out = []
        self._err = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, sink):
        for chunk in iter(lambda: stream.readline(), b""):
            sink.append(chunk)

    @property
    def stdout(self):
        return b"".join(self._out).decode("utf-8", "replace")

    @property
    def stderr(self):
        return b"".join(self._err).decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def wait(self, timeout=10):
        rc = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=2)
        return rc

    def wait_output(self, stream, needle, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in getattr(self, stream):
                return
            time.sleep(0.02)
        raise AssertionError("%r not in %s:\n%s" % (needle, stream, getattr(self, stream)))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()  # only the child we started, by its handle/PID
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except Exception:
                pass


@pytest.fixture
def api():
    a = FakeRuntimeAPI(function_arn=ARN).start()
    yield a
    a.stop()


@pytest.fixture
def start(api):
    started = []

    def _start(lang, task_root, handler, api=api, **kw):
        rt = Runtime(api, lang, task_root, handler, **kw)
        started.append(rt)
        return rt

    yield _start
    for rt in started:
        rt.kill()


def ok_json(api, rt, request_id, timeout=10):
    rec = api.result(request_id, timeout=timeout)
    assert rec.kind == "response", "expected a response, got %r\nstderr:\n%s" % (rec, rt.stderr)
    assert rec.headers.get("content-type") == "application/json"
    return rec.json()


# Where each runtime's fixtures live, and their handler names.
TARGETS = {
    "python": dict(lang="python", root=PY_ROOT, mod="app", echo="echo", ctx="ctx", count="count",
                   fail="maybe_fail", missing="nope", not_callable="not_callable"),
    "node-cjs": dict(lang="node", root=CJS_ROOT, mod="index", echo="echo", ctx="ctx", count="count",
                     fail="maybeFail", missing="nope", not_callable="notAFunction"),
    "node-esm": dict(lang="node", root=ESM_ROOT, mod="index", echo="echo", ctx="ctx", count="count",
                     fail="maybeFail", missing="nope", not_callable=None),
}
ALL = sorted(TARGETS)


def h(t, name):
    return "%s.%s" % (t["mod"], t[name])


# ---------------------------------------------------------------------------------------
# Common behaviour, both runtimes
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ALL)
def test_echo_returns_status_and_body(api, start, target):
    t = TARGETS[target]
    rt = start(t["lang"], t["root"], h(t, "echo"))
    rid = api.invoke({"body": "hello \u00e9\u6f22", "requestContext": {"routeKey": "$default"}})
    assert ok_json(api, rt, rid) == {"statusCode": 200, "body": "hello \u00e9\u6f22"}
    assert rt.alive()


@pytest.mark.parametrize("target", ALL)
def test_context_fields(api, start, target):
    t = TARGETS[target]
    rt = start(t["lang"], t["root"], h(t, "ctx"))
    rid = api.invoke({}, timeout_ms=20000, trace_id="Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    out = ok_json(api, rt, rid)
    if t["lang"] == "python":
        assert out["aws_request_id"] == rid
        assert out["function_name"] == FUNCTION_NAME
        assert out["function_version"] == "$LATEST"
        assert out["invoked_function_arn"] == ARN
        assert out["memory_limit_in_mb"] == 256  # int
        assert out["log_group_name"] == "/aws/lambda/" + FUNCTION_NAME
        assert out["log_stream_name"] == "2024/01/01/[$LATEST]abcdef"
        assert 0 < out["remaining_second"] < out["remaining_first"] <= 20000
        assert out["remaining_first"] - out["remaining_second"] >= 40
        assert out["identity_is_none"] and out["client_context_is_none"]
        assert out["trace_id"] == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
        assert os.path.samefile(out["cwd"], PY_ROOT)
        assert os.path.samefile(out["sys_path_0"], PY_ROOT)
    elif target == "node-cjs":
        assert out["awsRequestId"] == rid
        assert out["functionName"] == FUNCTION_NAME
        assert out["functionVersion"] == "$LATEST"
        assert out["invokedFunctionArn"] == ARN
        assert out["memoryLimitInMB"] == "256"  # string, as on Lambda
        assert out["logGroupName"] == "/aws/lambda/" + FUNCTION_NAME
        assert out["logStreamName"] == "2024/01/01/[$LATEST]abcdef"
        assert out["callbackWaitsForEmptyEventLoop"] is True
        assert out["hasLegacy"] == ["function", "function", "function"]
        assert 0 < out["remainingSecond"] < out["remainingFirst"] <= 20000
        assert out["remainingFirst"] - out["remainingSecond"] >= 40
        assert out["traceId"] == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
        assert os.path.samefile(out["cwd"], CJS_ROOT)
    else:
        assert out["awsRequestId"] == rid
        assert out["functionName"] == FUNCTION_NAME
        assert 0 < out["remaining"] <= 20000

    # A second invocation gets its own id and deadline.
    rid2 = api.invoke({}, timeout_ms=5000)
    out2 = ok_json(api, rt, rid2)
    key = "aws_request_id" if t["lang"] == "python" else "awsRequestId"
    assert out2[key] == rid2 != rid


@pytest.mark.parametrize("lang", ["python", "node"])
def test_identity_and_client_context_headers(api, start, lang):
    root, handler = (PY_ROOT, "app.identity") if lang == "python" else (CJS_ROOT, "index.identity")
    rt = start(lang, root, handler)
    rid = api.invoke({}, extra_headers={
        "Lambda-Runtime-Cognito-Identity": json.dumps({"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}),
        "Lambda-Runtime-Client-Context": json.dumps({"client": {"app_title": "t"}, "custom": {"k": "v"}, "env": {}}),
    })
    out = ok_json(api, rt, rid)
    if lang == "python":
        assert out == {"cognito_identity_id": "id-1", "cognito_identity_pool_id": "pool-1",
                       "client_custom": {"k": "v"}, "client_app_title": "t"}
    else:
        assert out == {"identity": {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"},
                       "clientContext": {"client": {"app_title": "t"}, "custom": {"k": "v"}, "env": {}}}


@pytest.mark.parametrize("target", ALL)
def test_state_persists_across_invocations(api, start, target):
    t = TARGETS[target]
    rt = start(t["lang"], t["root"], h(t, "count"))
    first = ok_json(api, rt, api.invoke({}))
    second = ok_json(api, rt, api.invoke({}))
    assert first["count"] == 1 and second["count"] == 2
    assert first["pid"] == second["pid"] == rt.proc.pid
    if target == "node-esm":
        assert first["esm"] is True
    api.wait_next_calls(3)  # warm: polling again
    assert rt.alive()


@pytest.mark.parametrize("target", ALL)
def test_handler_error_is_reported_and_process_stays_warm(api, start, target):
    t = TARGETS[target]
    rt = start(t["lang"], t["root"], h(t, "fail"))
    rid = api.invoke({"fail": "x1"})
    rec = api.result(rid)
    assert rec.kind == "error", rec
    assert rec.headers["lambda-runtime-function-error-type"] == "Unhandled"
    body = rec.json()
    assert isinstance(body["stackTrace"], list) and body["stackTrace"]
    if t["lang"] == "python":
        assert body["errorType"] == "ValueError"
        assert body["errorMessage"] == "boom: x1"
        assert any("app.py" in line and "maybe_fail" in line for line in body["stackTrace"])
        assert not any("python.py" in line for line in body["stackTrace"])
        rt.wait_output("stderr", "[ERROR] ValueError: boom: x1")
        rt.wait_output("stderr", "Traceback (most recent call last):")
    else:
        expected = ("TypeError", "boom: x1") if target == "node-cjs" else ("Error", "esm boom: x1")
        assert (body["errorType"], body["errorMessage"]) == expected
        assert body["stackTrace"][0].startswith(expected[0])
        rt.wait_output("stderr", "\tERROR\tInvoke Error \t")
        rt.wait_output("stderr", rid)
    # The same process serves the next event.
    ok = ok_json(api, rt, api.invoke({}))
    assert ok == {"ok": True}
    assert rt.alive()


@pytest.mark.parametrize("target", ALL)
def test_missing_function_is_handler_not_found(api, start, target):
    t = TARGETS[target]
    rt = start(t["lang"], t["root"], h(t, "missing"))
    rec = api.init_error()
    assert rt.wait() == 1
    assert rec.headers["lambda-runtime-function-error-type"] == "Runtime.HandlerNotFound"
    body = rec.json()
    assert body["errorType"] == "Runtime.HandlerNotFound"
    assert "nope" in body["errorMessage"]
    assert isinstance(body["stackTrace"], list)
    assert api.next_calls == 0


@pytest.mark.parametrize("target", ["python", "node-cjs"])
def test_not_callable_is_handler_not_found(api, start, target):
    t = TARGETS[target]
    rt = start(t["lang"], t["root"], h(t, "not_callable"))
    rec = api.init_error()
    assert rt.wait() == 1
    assert rec.headers["lambda-runtime-function-error-type"] == "Runtime.HandlerNotFound"
    assert "not" in rec.json()["errorMessage"]


@pytest.mark.parametrize("lang", ["python", "node"])
def test_missing_module_is_import_error(api, start, lang, tmp_path):
    rt = start(lang, str(tmp_path), "does_not_exist.handler")
    rec = api.init_error()
    assert rt.wait() == 1
    assert rec.headers["lambda-runtime-function-error-type"] == "Runtime.ImportModuleError"
    body = rec.json()
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert "does_not_exist" in body["errorMessage"]
    assert isinstance(body["stackTrace"], list)
    assert "Runtime.ImportModuleError" in rt.stderr


BROKEN = {
    "python": {
        "missing_dep": ("m.py", "import no_such_dependency_xyz\n\ndef handler(e, c):\n    return 1\n",
                        "no_such_dependency_xyz"),
        "syntax": ("m.py", "def handler(e, c)\n    return 1\n", "yntax"),
        "raises": ("m.py", "raise RuntimeError('init exploded')\n", "init exploded"),
    },
    "node": {
        "missing_dep": ("m.js", "require('no-such-dependency-xyz');\nexports.handler = async () => 1;\n",
                        "no-such-dependency-xyz"),
        "syntax": ("m.js", "exports.handler = async () => { return 1;\n", "SyntaxError"),
        "raises": ("m.js", "throw new Error('init exploded');\n", "init exploded"),
        "esm_syntax": ("m.mjs", "export const handler = async ( => 1;\n", "SyntaxError"),
        "esm_missing_dep": ("m.mjs", "import x from 'no-such-esm-dep';\nexport const handler = async () => x;\n",
                            "no-such-esm-dep"),
    },
}


@pytest.mark.parametrize("lang,case", [(lang, case) for lang in BROKEN for case in BROKEN[lang]])
def test_broken_module_is_import_error(api, start, tmp_path, lang, case):
    fname, source, needle = BROKEN[lang][case]
    (tmp_path / fname).write_text(source)
    rt = start(lang, str(tmp_path), "m.handler")
    rec = api.init_error()
    assert rt.wait() == 1
    assert rec.headers["lambda-runtime-function-error-type"] == "Runtime.ImportModuleError"
    body = rec.json()
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert needle in body["errorMessage"], body
    assert api.next_calls == 0


@pytest.mark.parametrize("lang", ["python", "node"])
def test_malformed_handler_name(api, start, lang):
    root = PY_ROOT if lang == "python" else CJS_ROOT
    rt = start(lang, root, "nodot")
    rec = api.init_error()
    assert rt.wait() == 1
    assert rec.headers["lambda-runtime-function-error-type"] == "Runtime.MalformedHandlerName"


@pytest.mark.parametrize("lang", ["python", "node"])
def test_unreachable_runtime_api_exits_1(start, tmp_path, lang):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    root, handler = (PY_ROOT, "app.echo") if lang == "python" else (CJS_ROOT, "index.echo")
    rt = start(lang, root, handler, api_address="127.0.0.1:%d" % port)
    assert rt.wait() == 1
    assert "Runtime API unreachable" in rt.stderr
    assert "Traceback" not in rt.stderr


@pytest.mark.parametrize("lang", ["python", "node"])
def test_api_dying_mid_life_exits_1(api, start, lang):
    root, handler = (PY_ROOT, "app.count") if lang == "python" else (CJS_ROOT, "index.count")
    rt = start(lang, root, handler)
    ok_json(api, rt, api.invoke({}))
    api.wait_next_calls(2)
    api.stop()  # the pending /next gets a 503, then nothing listens
    assert rt.wait() == 1
    assert "[wsgate bootstrap]" in rt.stderr


@pytest.mark.parametrize("lang", ["python", "node"])
def test_keep_alive_connection_is_reused(api, start, lang):
    root, handler = (PY_ROOT, "app.count") if lang == "python" else (CJS_ROOT, "index.count")
    rt = start(lang, root, handler)
    for i in range(1, 4):
        assert ok_json(api, rt, api.invoke({}))["count"] == i
    api.wait_next_calls(4)
    assert api.connections == 1


@pytest.mark.parametrize("lang", ["python", "node"])
def test_server_closing_idle_connections_is_tolerated(start, lang):
    api = FakeRuntimeAPI(function_arn=ARN, drop_connections=True).start()
    try:
        root, handler = (PY_ROOT, "app.count") if lang == "python" else (CJS_ROOT, "index.count")
        rt = start(lang, root, handler, api=api)
        for i in range(1, 6):
            assert ok_json(api, rt, api.invoke({}))["count"] == i
        assert rt.alive()
        assert api.connections >= 5
    finally:
        api.stop()


@pytest.mark.parametrize("lang", ["python", "node"])
def test_malformed_next_reply_exits_cleanly(api, start, lang):
    root, handler = (PY_ROOT, "app.echo") if lang == "python" else (CJS_ROOT, "index.echo")
    rt = start(lang, root, handler)
    api.queue_raw_next_reply(200, {"Content-Type": "application/json"}, b'{"no":"request id"}')
    assert rt.wait() == 1
    assert "Lambda-Runtime-Aws-Request-Id" in rt.stderr
    assert "Traceback" not in rt.stderr


@pytest.mark.parametrize("lang", ["python", "node"])
def test_next_answering_410_gone_exits_0(api, start, lang):
    root, handler = (PY_ROOT, "app.echo") if lang == "python" else (CJS_ROOT, "index.echo")
    rt = start(lang, root, handler)
    api.queue_raw_next_reply(410, {"Content-Type": "application/json"},
                             b'{"errorType":"Runtime.Replaced","errorMessage":"this process is being replaced"}')
    assert rt.wait() == 0
    assert "410" in rt.stderr


@pytest.mark.parametrize("lang", ["python", "node"])
def test_non_json_event_is_an_error_and_process_continues(api, start, lang):
    root, handler = (PY_ROOT, "app.echo") if lang == "python" else (CJS_ROOT, "index.echo")
    rt = start(lang, root, handler)
    rec = api.result(api.invoke(None, raw_body=b"{not json"))
    assert rec.kind == "error"
    assert rec.headers["lambda-runtime-function-error-type"] == "Runtime.UnmarshalError"
    assert ok_json(api, rt, api.invoke({"body": "b"})) == {"statusCode": 200, "body": "b"}


@pytest.mark.parametrize("lang", ["python", "node"])
def test_unserializable_result_is_an_error(api, start, lang):
    root, handler = (PY_ROOT, "app.unserializable") if lang == "python" else (CJS_ROOT, "index.bigint")
    rt = start(lang, root, handler)
    rec = api.result(api.invoke({}))
    assert rec.kind == "error", rec
    assert rec.headers["lambda-runtime-function-error-type"] == "Runtime.MarshalError"
    assert rec.json()["errorType"] == "Runtime.MarshalError"
    assert rt.alive()
    rec2 = api.result(api.invoke({}))  # still warm
    assert rec2.kind == "error"


@pytest.mark.parametrize("lang", ["python", "node"])
def test_handler_output_goes_to_stdout_and_stderr(api, start, lang):
    root, handler = (PY_ROOT, "app.logs") if lang == "python" else (CJS_ROOT, "index.logs")
    rt = start(lang, root, handler)
    rid = api.invoke({})
    assert ok_json(api, rt, rid) is None
    rt.wait_output("stdout", "stdout line from handler\n")
    rt.wait_output("stderr", "stderr line from handler\n")
    assert "stderr line" not in rt.stdout and "stdout line" not in rt.stderr
    if lang == "python":
        # Like Lambda, the root logger has a handler that prints the request id.
        rt.wait_output("stdout", "[INFO]\t")
        rt.wait_output("stdout", "\t%s\tlogged at info\n" % rid)


# ---------------------------------------------------------------------------------------
# Python specifics
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("handler", ["pkg/sub/app.handler", "pkg.sub.app.handler"])
def test_python_handler_in_sub_folder(api, start, handler):
    rt = start("python", PY_ROOT, handler)
    out = ok_json(api, rt, api.invoke({"body": "x"}))
    assert out == {"module": "pkg.sub.app", "helper": "helper-ok", "body": "x"}


@pytest.mark.parametrize("handler,expected", [("app.decimals", b'{"n": 1.5, "i": 3}'), ("app.logs", b"null")])
def test_python_decimal_and_none_results(api, start, handler, expected):
    rt = start("python", PY_ROOT, handler)
    assert api.result(api.invoke({})).body == expected
    assert rt.alive()


def test_python_sys_exit_in_handler(api, start):
    rt = start("python", PY_ROOT, "app.exits")
    rec = api.result(api.invoke({}))
    assert rec.kind == "error"
    assert rec.json()["errorType"] == "Runtime.ExitError"
    assert rt.wait() == 3


def test_python_user_module_cannot_shadow_bootstrap(api, start, tmp_path):
    # A user module named like a stdlib module the bootstrap uses, and one named like the bootstrap.
    (tmp_path / "json.py").write_text("raise RuntimeError('user json.py must not be imported by the bootstrap')\n")
    (tmp_path / "python.py").write_text("def handler(e, c):\n    return {'mine': True}\n")
    rt = start("python", str(tmp_path), "python.handler")
    assert ok_json(api, rt, api.invoke({})) == {"mine": True}


# ---------------------------------------------------------------------------------------
# Node specifics
# ---------------------------------------------------------------------------------------


def test_node_src_subfolder(api, start):
    rt = start("node", CJS_ROOT, "src/index.handler")
    assert ok_json(api, rt, api.invoke({"body": "s"})) == {"where": "src", "body": "s"}


def test_node_nested_export(api, start):
    rt = start("node", CJS_ROOT, "index.handlers.connect")
    assert ok_json(api, rt, api.invoke({"body": "n"})) == {"statusCode": 200, "body": "nested:n"}


def test_node_type_module_js_with_top_level_await(api, start):
    rt = start("node", ESM_PKG_ROOT, "index.handler")
    assert ok_json(api, rt, api.invoke({"body": "e"})) == {"loaded": "tla-ok", "file": "index.js", "body": "e"}


def test_node_cjs_file_in_module_package(api, start):
    rt = start("node", ESM_PKG_ROOT, "legacy.handler")
    assert ok_json(api, rt, api.invoke({"body": "c"})) == {"cjs": True, "body": "c"}


def test_node_callback_handler(api, start):
    rt = start("node", CJS_ROOT, "index.callback")
    first = ok_json(api, rt, api.invoke({"body": "cb"}))
    second = ok_json(api, rt, api.invoke({"body": "cb2"}))
    assert first == {"viaCallback": True, "body": "cb", "count": 1}
    assert second["count"] == 2


def test_node_callback_error(api, start):
    rt = start("node", CJS_ROOT, "index.callbackError")
    rec = api.result(api.invoke({}))
    assert rec.kind == "error"
    assert rec.headers["lambda-runtime-function-error-type"] == "Unhandled"
    assert rec.json()["errorMessage"] == "callback failure"
    assert rt.alive()


def test_node_callback_waits_for_empty_event_loop(api, start):
    rt = start("node", CJS_ROOT, "index.callbackWaits")
    t0 = time.time()
    ok_json(api, rt, api.invoke({"waits": True}))
    waited = time.time() - t0
    t1 = time.time()
    ok_json(api, rt, api.invoke({"waits": False}))
    immediate = time.time() - t1
    assert waited >= 0.28, waited  # the pending 300 ms timer delayed the answer
    assert immediate < 0.25, immediate


def test_node_sync_handler_returning_value(api, start):
    start("node", CJS_ROOT, "index.syncValue")
    assert api.result(api.invoke({"body": "v"})).json() == {"sync": True, "body": "v"}


def test_node_sync_handler_returning_undefined(api, start):
    rt = start("node", CJS_ROOT, "index.syncUndefined")
    assert ok_json(api, rt, api.invoke({})) is None
    rt.wait_output("stdout", "sync handler returning undefined\n")


def test_node_sync_handler_throwing(api, start):
    rt = start("node", CJS_ROOT, "index.syncThrow")
    rec = api.result(api.invoke({}))
    assert rec.kind == "error" and rec.json()["errorType"] == "RangeError"
    assert rec.json()["errorMessage"] == "sync boom"
    assert rt.alive()


def test_node_legacy_context_succeed(api, start):
    rt = start("node", CJS_ROOT, "index.legacySucceed")
    assert ok_json(api, rt, api.invoke({})) == {"legacy": "succeed"}


def test_node_legacy_context_done_with_error(api, start):
    rt = start("node", CJS_ROOT, "index.legacyDone")
    rec = api.result(api.invoke({}))
    assert rec.kind == "error" and rec.json()["errorMessage"] == "done with error"
    assert rt.alive()


def test_node_undefined_result_is_null(api, start):
    start("node", CJS_ROOT, "index.undefinedResult")
    assert api.result(api.invoke({})).body == b"null"


def test_node_unhandled_rejection_fails_invocation_and_exits(api, start):
    rt = start("node", CJS_ROOT, "index.unhandledRejection")
    rec = api.result(api.invoke({}))
    assert rec.kind == "error"
    body = rec.json()
    assert body["errorType"] == "Runtime.UnhandledPromiseRejection"
    assert "nobody catches me" in body["errorMessage"]
    assert rt.wait() == 128


# ---------------------------------------------------------------------------------------------
# The execute-api preloads (wsgate dev): which connections go to wsgate
# ---------------------------------------------------------------------------------------------

# (name, port, redirected?)
EXECUTE_API_CASES = [
    ("abc123.execute-api.us-east-1.amazonaws.com", 443, True),
    ("ABC.Execute-API.eu-west-1.amazonaws.com.", 443, True),
    ("x1.execute-api.cn-north-1.amazonaws.com.cn", 443, True),
    ("abc123.execute-api.us-east-1.amazonaws.com", 8443, False),
    ("dynamodb.us-east-1.amazonaws.com", 443, False),
    ("abc.execute-api.us-east-1.amazonaws.com.evil.example", 443, False),
    ("a.b.execute-api.us-east-1.amazonaws.com", 443, False),
    ("execute-api.us-east-1.amazonaws.com", 443, False),
    ("localhost", 443, False),
]

PYTHON_PROBE = """
import json, runpy, socket, sys
calls = []
socket.getaddrinfo = lambda host, port, *a, **k: calls.append([host, port]) or []
runpy.run_path(sys.argv[1])
runpy.run_path(sys.argv[1])  # loaded twice (site, then python.py): wrapped once
for name, port in json.loads(sys.argv[2]):
    socket.getaddrinfo(name, port, 0, socket.SOCK_STREAM)
print(json.dumps(calls))
"""

NODE_PROBE = """
const tls = require('tls');
const calls = [];
tls.connect = (...args) => { calls.push(args); return null; };
require(process.argv[1]);
delete require.cache[require.resolve(process.argv[1])];
require(process.argv[1]);  // loaded twice (NODE_OPTIONS, then node.cjs): wrapped once
for (const [name, port] of JSON.parse(process.argv[2])) {
  tls.connect({ host: name, port, servername: name });
  tls.connect(port, name, {});
}
// As the real tls.connect would read them: (options) or (port, host, options).
const seen = (args) => (typeof args[0] === 'object' ? args[0] : Object.assign({}, args[2], { port: args[0], host: args[1] }));
console.log(JSON.stringify(calls.map(seen).map((o) => [o.host, o.port, o.servername])));
"""


def _probe_cases():
    return json.dumps([[name, port] for name, port, _ in EXECUTE_API_CASES])


def test_python_preload_sends_only_api_default_names_on_443_to_wsgate():
    env = dict(os.environ, WSGATE_EXECUTE_API="127.0.0.1:4321")
    out = subprocess.run([PYTHON, "-c", PYTHON_PROBE, os.path.join(BOOTSTRAP_DIR, "sitecustomize.py"),
                          _probe_cases()], env=env, capture_output=True, text=True, timeout=20, check=True)
    calls = json.loads(out.stdout)
    assert len(calls) == len(EXECUTE_API_CASES), out.stdout
    for (name, port, redirected), call in zip(EXECUTE_API_CASES, calls):
        assert call == (["127.0.0.1", 4321] if redirected else [name, port]), (name, port, call)


def test_node_preload_sends_only_api_default_names_on_443_to_wsgate():
    env = dict(os.environ, WSGATE_EXECUTE_API="127.0.0.1:4321")
    out = subprocess.run([NODE, "-e", NODE_PROBE, os.path.join(BOOTSTRAP_DIR, "execute-api.cjs"), _probe_cases()],
                         env=env, capture_output=True, text=True, timeout=20, check=True)
    calls = json.loads(out.stdout)
    assert len(calls) == 2 * len(EXECUTE_API_CASES), out.stdout
    for i, (name, port, redirected) in enumerate(EXECUTE_API_CASES):
        for host, to_port, servername in calls[2 * i: 2 * i + 2]:
            if redirected:
                # The name the handler used stays for SNI and the certificate check.
                assert (host, to_port, servername) == ("127.0.0.1", 4321, name.rstrip(".")), (name, port)
            else:
                assert (host, to_port) == (name, port), (name, port, host, to_port)


def test_preloads_do_nothing_without_the_variable():
    env = {k: v for k, v in os.environ.items() if k != "WSGATE_EXECUTE_API"}
    cases = json.dumps([["abc123.execute-api.us-east-1.amazonaws.com", 443]])
    py = subprocess.run([PYTHON, "-c", PYTHON_PROBE, os.path.join(BOOTSTRAP_DIR, "sitecustomize.py"), cases],
                        env=env, capture_output=True, text=True, timeout=20, check=True)
    assert json.loads(py.stdout) == [["abc123.execute-api.us-east-1.amazonaws.com", 443]]
    node = subprocess.run([NODE, "-e", NODE_PROBE, os.path.join(BOOTSTRAP_DIR, "execute-api.cjs"), cases],
                          env=env, capture_output=True, text=True, timeout=20, check=True)
    assert [c[:2] for c in json.loads(node.stdout)] == [["abc123.execute-api.us-east-1.amazonaws.com", 443]] * 2
