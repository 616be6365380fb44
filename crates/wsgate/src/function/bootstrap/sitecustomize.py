# wsgate built-in Python preload (wsgate dev): an API's default host name leads to wsgate.
#
# Found through PYTHONPATH by every Python process of a function (site imports sitecustomize at
# start-up) and run by python.py. Standard library only; does nothing unless WSGATE_EXECUTE_API
# is set.
import os
import re
import socket
import sys

# An API's default host name, as handlers build their callback URL:
# https://{apiId}.execute-api.{region}.amazonaws.com/{stage}.
_EXECUTE_API = re.compile(r"^[a-z0-9-]+\.execute-api\.[a-z0-9-]+\.amazonaws\.com(\.cn)?\.?$", re.IGNORECASE)


def _redirect_execute_api(target):
    """WSGATE_EXECUTE_API=host:port: an API's default host name on port 443 resolves to wsgate's
    TLS listener there, which presents a certificate for that name from the development CA
    (AWS_CA_BUNDLE, REQUESTS_CA_BUNDLE, SSL_CERT_FILE); TLS still checks the name the handler
    used. Every other name resolves as before. Covers botocore, urllib3, requests and http.client,
    which all resolve through socket.getaddrinfo."""
    host, _, port = target.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        os.write(2, ("[wsgate bootstrap] WSGATE_EXECUTE_API=%s is not host:port; execute-api names are not redirected\n" % target).encode())
        return
    original = socket.getaddrinfo
    if getattr(original, "wsgate_execute_api", False):
        return

    def getaddrinfo(name, service, *args, **kwargs):
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        if isinstance(text, str) and str(service) in ("443", "https") and _EXECUTE_API.match(text):
            return original(host, int(port), *args, **kwargs)
        return original(name, service, *args, **kwargs)

    getaddrinfo.wsgate_execute_api = True
    socket.getaddrinfo = getaddrinfo


def _run_shadowed():
    """Runs the sitecustomize this one hides further along sys.path (Debian's python has one; so
    may a virtualenv), as site would have."""
    import importlib.util
    from importlib.machinery import PathFinder

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        os.write(2, ("[wsgate bootstrap] %s failed: %r\n" % (spec.origin, error)).encode())


if os.environ.get("WSGATE_EXECUTE_API"):
    _redirect_execute_api(os.environ["WSGATE_EXECUTE_API"])
# Imported by site (not run again by python.py): the hidden sitecustomize runs once too.
if __name__ == "sitecustomize":
    _run_shadowed()
