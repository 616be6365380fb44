# wsgate built-in Python bootstrap: an AWS Lambda Runtime API client.
#
# Run as `python3 -u python.py`. Python 3.8+, standard library only.
#
# Environment (set by wsgate):
#   AWS_LAMBDA_RUNTIME_API   host:port of the Runtime API (no scheme)
#   _HANDLER                 "module.function", e.g. "app.handler", "pkg/sub/app.handler", "pkg.app.handler"
#   LAMBDA_TASK_ROOT         the code folder (put first on sys.path)
#   AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_VERSION, AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
#   AWS_LAMBDA_LOG_GROUP_NAME, AWS_LAMBDA_LOG_STREAM_NAME, AWS_REGION, credentials.
#
# Loop: load the handler (failure -> POST /runtime/init/error, exit 1), then forever
# GET /runtime/invocation/next -> handler(event, context) -> POST .../response or .../error.
#
# The standard-library imports below happen before the task root is put on sys.path, so
# a user module called e.g. `json.py` or `http.py` cannot shadow what the bootstrap uses.
import decimal
import http.client
import importlib
import json
import logging
import os
import runpy
import sys
import time
import traceback

API_VERSION = "2018-06-01"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"

_BOOTSTRAP_FILE = os.path.abspath(__file__)
_IMPORTLIB_DIR = os.path.dirname(os.path.abspath(importlib.__file__))
_current_request_id = ""  # seen by the logging filter; "" outside invocations


def _log_stderr(text):
    try:
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()
    except Exception:
        pass


def _fatal(message):
    _log_stderr("[wsgate bootstrap] " + message)
    _flush_std()
    os._exit(1)


def _flush_std():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------
# Runtime API client
# ---------------------------------------------------------------------------------------


class RuntimeApiUnavailable(Exception):
    pass


class RuntimeClient(object):
    """Minimal keep-alive HTTP/1.1 client for the Runtime API (http.client, no timeouts)."""

    def __init__(self, address):
        address = address.strip()
        # Tolerate a scheme and a trailing slash, though wsgate passes plain host:port.
        for prefix in ("http://", "HTTP://"):
            if address.startswith(prefix):
                address = address[len(prefix):]
        self.address = address.rstrip("/")
        self.base = "/" + API_VERSION
        self._conn = None

    def _connection(self):
        if self._conn is None:
            # timeout=None: /next is a long-poll and must never time out on our side.
            self._conn = http.client.HTTPConnection(self.address, timeout=None)
        return self._conn

    def _drop(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
        self._conn = None

    def request(self, method, path, body=None, headers=None):
        """Returns (status, headers_dict_lowercase, body_bytes). Raises RuntimeApiUnavailable."""
        headers = dict(headers or {})
        last_error = None
        # A reused keep-alive connection may have been closed by the server while idle:
        # retry once on a fresh connection.
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._connection()
            try:
                conn.request(method, self.base + path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                resp_headers = {}
                for k, v in resp.getheaders():
                    resp_headers[k.lower()] = v
                if resp.will_close:
                    self._drop()
                return resp.status, resp_headers, data
            except (http.client.HTTPException, OSError) as e:
                last_error = e
                self._drop()
                if not reused:
                    break
        raise RuntimeApiUnavailable(
            "%s %s%s failed: %s: %s"
            % (method, self.address, self.base + path, type(last_error).__name__, last_error)
        )

    def next_invocation(self):
        return self.request("GET", "/runtime/invocation/next")

    def post_response(self, request_id, payload):
        return self.request(
            "POST",
            "/runtime/invocation/%s/response" % request_id,
            body=payload,
            headers={"Content-Type": "application/json"},
        )

    def post_error(self, request_id, error_body, error_type_header):
        return self.request(
            "POST",
            "/runtime/invocation/%s/error" % request_id,
            body=_error_json(error_body),
            headers={"Content-Type": "application/json", ERROR_TYPE_HEADER: error_type_header},
        )

    def post_init_error(self, error_body, error_type_header):
        return self.request(
            "POST",
            "/runtime/init/error",
            body=_error_json(error_body),
            headers={"Content-Type": "application/json", ERROR_TYPE_HEADER: error_type_header},
        )


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


def _error_json(body):
    try:
        return json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
    except Exception:
        return json.dumps(
            {"errorMessage": "unserializable error", "errorType": "Runtime.Unknown", "stackTrace": []}
        ).encode("utf-8")


def _safe_str(value):
    try:
        return str(value)
    except Exception:
        try:
            return repr(value)
        except Exception:
            return "<unprintable %s>" % type(value).__name__


def _stack_trace(tb):
    """Lambda-style stackTrace: traceback.format_list entries, without bootstrap frames."""
    try:
        frames = [
            f
            for f in traceback.extract_tb(tb)
            if not f.filename.startswith("<frozen importlib")
            and os.path.abspath(f.filename) != _BOOTSTRAP_FILE
            and os.path.dirname(os.path.abspath(f.filename)) != _IMPORTLIB_DIR
        ]
        return traceback.format_list(frames)
    except Exception:
        return []


def _error_body(error_type, message, stack, request_id=None):
    body = {"errorMessage": message, "errorType": error_type, "stackTrace": stack}
    if request_id is not None:
        body["requestId"] = request_id
    return body


def _exception_body(exc, request_id=None):
    return _error_body(
        type(exc).__name__, _safe_str(exc), _stack_trace(exc.__traceback__), request_id
    )


def _print_error(body):
    """Print like the Lambda Python runtime: "[ERROR] Type: message" + the traceback."""
    lines = ["[ERROR] %s: %s" % (body.get("errorType"), body.get("errorMessage"))]
    stack = body.get("stackTrace") or []
    if stack:
        lines.append("Traceback (most recent call last):")
        lines.append("".join(stack).rstrip("\n"))
    _log_stderr("\n".join(lines))


# ---------------------------------------------------------------------------------------
# Handler loading
# ---------------------------------------------------------------------------------------


class InitError(Exception):
    def __init__(self, error_type, message, stack=None):
        Exception.__init__(self, message)
        self.error_type = error_type
        self.message = message
        self.stack = stack or []


# ---------------------------------------------------------------------------------------
# wsgate dev: what Lambda's environment gives a handler
# ---------------------------------------------------------------------------------------

# The packages Lambda's Python runtime provides, and what installs them.
_PROVIDED = {"boto3": "boto3", "botocore": "boto3", "s3transfer": "boto3"}


def _missing_sdk_hint(error):
    """For a ModuleNotFoundError of a package Lambda provides: the one command that installs it
    for this interpreter; None for any other."""
    name = getattr(error, "name", None) or ""
    package = _PROVIDED.get(name.split(".")[0])
    if not package or not isinstance(error, ModuleNotFoundError):
        return None
    provided = (
        "or restart wsgate dev --provide-sdks, which installs it when it starts"
        if os.environ.get("WSGATE_PYTHON_SDKS")
        else "or start wsgate dev with --provide-sdks"
    )
    return (
        "%s is provided by Lambda's Python runtime; it is not installed for %s. Install it with: "
        "%s -m pip install %s (%s)" % (package, sys.executable, sys.executable, package, provided)
    )


def _load_handler(handler_string):
    handler_string = (handler_string or "").strip()
    if "." not in handler_string:
        raise InitError(
            "Runtime.MalformedHandlerName",
            "Bad handler '%s': expected 'module.function'" % handler_string,
        )
    modname, fname = handler_string.rsplit(".", 1)
    if not modname or not fname:
        raise InitError(
            "Runtime.MalformedHandlerName",
            "Bad handler '%s': expected 'module.function'" % handler_string,
        )
    # "pkg/sub/app" -> "pkg.sub.app" (Lambda does the same replacement).
    import_name = modname.replace("\\", "/").strip("/")
    if import_name.endswith("/__init__"):
        import_name = import_name[: -len("/__init__")]
    import_name = import_name.replace("/", ".")
    try:
        module = importlib.import_module(import_name)
    except ImportError as e:
        hint = _missing_sdk_hint(e)
        raise InitError(
            "Runtime.ImportModuleError",
            "Unable to import module '%s': %s%s" % (modname, _safe_str(e), ". " + hint if hint else ""),
            _stack_trace(e.__traceback__),
        )
    except SyntaxError as e:
        # Lambda itself calls this Runtime.UserCodeSyntaxError; wsgate reports it as an import failure.
        stack = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, (e.text or "").strip())]
        raise InitError(
            "Runtime.ImportModuleError",
            "Unable to import module '%s': Syntax error: %s" % (modname, _safe_str(e)),
            stack,
        )
    except Exception as e:
        raise InitError(
            "Runtime.ImportModuleError",
            "Unable to import module '%s': %s: %s" % (modname, type(e).__name__, _safe_str(e)),
            _stack_trace(e.__traceback__),
        )
    try:
        func = getattr(module, fname)
    except AttributeError:
        raise InitError(
            "Runtime.HandlerNotFound", "Handler '%s' missing on module '%s'" % (fname, modname)
        )
    if not callable(func):
        raise InitError(
            "Runtime.HandlerNotFound",
            "Handler '%s' on module '%s' is not callable (%s)" % (fname, modname, type(func).__name__),
        )
    return func


# ---------------------------------------------------------------------------------------
# Context
# ---------------------------------------------------------------------------------------


class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return "CognitoIdentity(%r, %r)" % (self.cognito_identity_id, self.cognito_identity_pool_id)


class Client(object):
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]


class ClientContext(object):
    __slots__ = ["client", "custom", "env"]


def _parse_identity(raw):
    if not raw:
        return None
    try:
        data = json.loads(raw)
        identity = CognitoIdentity()
        identity.cognito_identity_id = data.get("cognitoIdentityId")
        identity.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")
        return identity
    except Exception:
        return None


def _parse_client_context(raw):
    if not raw:
        return None
    try:
        data = json.loads(raw)
        ctx = ClientContext()
        client_data = data.get("client")
        if client_data:
            client = Client()
            client.installation_id = client_data.get("installation_id")
            client.app_title = client_data.get("app_title")
            client.app_version_name = client_data.get("app_version_name")
            client.app_version_code = client_data.get("app_version_code")
            client.app_package_name = client_data.get("app_package_name")
            ctx.client = client
        else:
            ctx.client = None
        ctx.custom = data.get("custom")
        ctx.env = data.get("env")
        return ctx
    except Exception:
        return None


def _memory_size():
    try:
        return int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
    except ValueError:
        return 128


class LambdaContext(object):
    def __init__(self, request_id, deadline_ms, invoked_function_arn, identity=None,
                 client_context=None, tenant_id=None):
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = _memory_size()
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = identity
        self.client_context = client_context
        self.tenant_id = tenant_id
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(int(self._deadline_ms - time.time() * 1000), 0)

    def log(self, msg):
        sys.stdout.write(_safe_str(msg))
        sys.stdout.flush()

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,function_name=%s,"
            "memory_limit_in_mb=%s,function_version=%s,invoked_function_arn=%s,client_context=%s,"
            "identity=%s])"
            % (self.aws_request_id, self.log_group_name, self.log_stream_name, self.function_name,
               self.memory_limit_in_mb, self.function_version, self.invoked_function_arn,
               self.client_context, self.identity)
        )


def _deadline_from(headers):
    raw = headers.get("lambda-runtime-deadline-ms")
    try:
        return int(raw)
    except (TypeError, ValueError):
        try:
            timeout_s = float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "300"))
        except ValueError:
            timeout_s = 300.0
        return int(time.time() * 1000 + timeout_s * 1000)


# ---------------------------------------------------------------------------------------
# Serialization (Decimal is serialized as a number, like the Lambda Python runtime)
# ---------------------------------------------------------------------------------------


def _json_default(obj):
    if isinstance(obj, decimal.Decimal):
        if obj == obj.to_integral_value() and obj.is_finite():
            return int(obj)
        return float(obj)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def _to_json(result):
    return json.dumps(result, default=_json_default, ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------------------------------
# Logging: like Lambda, the root logger gets a handler so `logging` output is visible
# ---------------------------------------------------------------------------------------


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _current_request_id
        return True


def _setup_logging():
    try:
        logging.Formatter.converter = time.gmtime
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(
            logging.Formatter(
                "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
                "%Y-%m-%dT%H:%M:%S",
            )
        )
        handler.addFilter(_RequestIdFilter())
        logging.getLogger().addHandler(handler)
    except Exception:
        pass


# ---------------------------------------------------------------------------------------
# Main loop
# ---------------------------------------------------------------------------------------


def _post(client, what, func, *args):
    """POST to the Runtime API; unreachable API -> exit 1, non-2xx -> logged."""
    try:
        status, _, data = func(*args)
    except RuntimeApiUnavailable as e:
        _fatal("Runtime API unreachable while posting %s: %s" % (what, e))
        return None
    if not 200 <= status < 300:
        _log_stderr(
            "[wsgate bootstrap] Runtime API answered %s to %s: %s"
            % (status, what, data[:500].decode("utf-8", "replace"))
        )
    return status


def _handle_invocation(client, handler, headers, body):
    global _current_request_id
    request_id = headers.get("lambda-runtime-aws-request-id", "")
    _current_request_id = request_id

    trace_id = headers.get("lambda-runtime-trace-id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)

    context = LambdaContext(
        request_id,
        _deadline_from(headers),
        headers.get("lambda-runtime-invoked-function-arn"),
        _parse_identity(headers.get("lambda-runtime-cognito-identity")),
        _parse_client_context(headers.get("lambda-runtime-client-context")),
        headers.get("lambda-runtime-aws-tenant-id"),
    )

    try:
        event = json.loads(body.decode("utf-8")) if body else None
    except Exception as e:
        err = _error_body(
            "Runtime.UnmarshalError",
            "Unable to unmarshal input: %s" % _safe_str(e),
            [],
            request_id,
        )
        _print_error(err)
        _post(client, "error", client.post_error, request_id, err, "Runtime.UnmarshalError")
        return

    try:
        result = handler(event, context)
    except SystemExit as e:
        # The handler called sys.exit(): report, then let the process exit as Lambda does.
        err = _error_body(
            "Runtime.ExitError", "RequestId: %s Error: Runtime exited: %s" % (request_id, e.code), [], request_id
        )
        _print_error(err)
        _flush_std()
        _post(client, "error", client.post_error, request_id, err, "Runtime.ExitError")
        raise
    except Exception as e:
        err = _exception_body(e, request_id)
        _print_error(err)
        _flush_std()
        _post(client, "error", client.post_error, request_id, err, "Unhandled")
        return
    finally:
        _flush_std()

    try:
        payload = _to_json(result)
    except Exception as e:
        err = _error_body(
            "Runtime.MarshalError", "Unable to marshal response: %s" % _safe_str(e), [], request_id
        )
        _print_error(err)
        _post(client, "error", client.post_error, request_id, err, "Runtime.MarshalError")
        return

    status = _post(client, "response", client.post_response, request_id, payload)
    if status == 413:
        err = _error_body(
            "Function.ResponseSizeTooLarge",
            "Response payload size (%d bytes) exceeded maximum allowed payload size." % len(payload),
            [],
            request_id,
        )
        _print_error(err)
        _post(client, "error", client.post_error, request_id, err, "Function.ResponseSizeTooLarge")


def main():
    global _current_request_id
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)  # in case we were not started with -u
        except Exception:
            pass

    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        _fatal("AWS_LAMBDA_RUNTIME_API is not set")
    client = RuntimeClient(address)

    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    task_root = os.path.abspath(task_root)
    # Drop the bootstrap's own folder (sys.path[0] for a script) so it cannot shadow user modules.
    own_dir = os.path.dirname(_BOOTSTRAP_FILE)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != own_dir or own_dir == task_root]
    if task_root in sys.path:
        sys.path.remove(task_root)
    sys.path.insert(0, task_root)
    # `wsgate dev --provide-sdks`: boto3 as Lambda provides it, after everything the project has.
    sdks = os.environ.get("WSGATE_PYTHON_SDKS")
    if sdks and sdks not in sys.path:
        sys.path.append(sdks)
    # Also loaded through PYTHONPATH (python-site/sitecustomize.py), for the processes a handler
    # starts; loaded here in case the function's own PYTHONPATH replaced wsgate's. Installs once.
    if os.environ.get("WSGATE_EXECUTE_API"):
        runpy.run_path(os.path.join(own_dir, "python-site", "sitecustomize.py"))

    _setup_logging()

    try:
        handler = _load_handler(os.environ.get("_HANDLER"))
    except InitError as e:
        err = _error_body(e.error_type, e.message, e.stack)
        _print_error(err)
        _flush_std()
        try:
            client.post_init_error(err, e.error_type)
        except RuntimeApiUnavailable as api_err:
            _log_stderr("[wsgate bootstrap] could not post init error: %s" % api_err)
        _flush_std()
        os._exit(1)

    while True:
        _current_request_id = ""
        try:
            status, headers, body = client.next_invocation()
        except RuntimeApiUnavailable as e:
            _fatal("Runtime API unreachable: %s" % e)
            return
        if status == 410:
            # wsgate answers 410 Gone when it is replacing or stopping this process.
            _log_stderr("[wsgate bootstrap] the Runtime API asked this process to stop (410 Gone)")
            _flush_std()
            os._exit(0)
        if status != 200:
            _fatal(
                "unexpected answer %s from GET /runtime/invocation/next: %s"
                % (status, body[:500].decode("utf-8", "replace"))
            )
        if not headers.get("lambda-runtime-aws-request-id"):
            _fatal("GET /runtime/invocation/next answered without a Lambda-Runtime-Aws-Request-Id header")
        _handle_invocation(client, handler, headers, body)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        _flush_std()
        os._exit(130)
