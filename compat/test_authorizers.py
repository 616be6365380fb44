"""`$connect` authorizers with real clients: tokens minted by PyJWT (RS256 against a JWKS file,
HS256 against a shared secret) presented by the `websockets` client in the query string, the
`Authorization` header or the subprotocol; a REQUEST authorizer that is a real local Python
function (the built-in bootstrap) and one that is an HTTP endpoint (the stub backend). Refusals are
the upgrade's HTTP status, as on API Gateway: 401 without or with a bad token, 403 on Deny, 500
on an unusable authorizer output. What an authorizer allowed is `requestContext.authorizer` on
every later event of the connection ($connect, messages, $disconnect), values as strings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.exceptions import InvalidStatus

from conftest import assert_no_message, mgmt_client, open_ws, recv, render_config

REGION = "eu-west-1"
API_ID = "compatapi"
STAGE = "dev"
METHOD_ARN = f"arn:aws:execute-api:{REGION}:000000000000:{API_ID}/{STAGE}/$connect"
ISSUER = "https://issuer.compat.test/"
AUDIENCE = "wsgate-compat"
KID = "compat-key-1"
HS256_SECRET = "compat-secret-0123456789-abcdefghijklmnop"  # >= 32 bytes


def toml_table(name: str, values: dict) -> str:
    """A TOML table; strings, numbers, booleans and lists of strings (JSON's forms are TOML's)."""
    lines = [f"[{name}]"]
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, str, list)):
            text = json.dumps(value)
        elif isinstance(value, dict):
            text = "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
        else:
            raise TypeError(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def config(routes: dict, tables: dict[str, dict]) -> str:
    gateway = {"api_id": API_ID, "stage": STAGE}
    return render_config(routes, gateway=gateway) + "\n" + "\n".join(toml_table(k, v) for k, v in tables.items())


def start(gateway_factory, text: str):
    return gateway_factory(text, env={"AWS_REGION": REGION})


def refused_with(url: str, **kw) -> int:
    """Opens a connection that must be refused; the HTTP status of the refusal."""
    with pytest.raises(InvalidStatus) as info:
        ws = open_ws(url, **kw)
        ws.close()
    return info.value.response.status_code


def call(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# ---------------------------------------------------------------------------------------------
# JWT
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rsa_keys():
    trusted = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return trusted, other


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 600,
            "tier": 3, "admin": True, "groups": ["a", "b"], "email": "alice@example.com"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def rs256(key, **overrides) -> str:
    return jwt.encode(claims(**overrides), key, algorithm="RS256", headers={"kid": KID})


@pytest.fixture
def jwt_gw(gateway_factory, stub, tmp_path, rsa_keys):
    """A gateway whose $connect has an RS256 JWT authorizer (a JWKS file) and an HTTP integration;
    messages and $disconnect go to the stub too; `whoami` is a mock answering the principal."""
    (tmp_path / "jwks.json").write_text(json.dumps(jwks_of((rsa_keys[0], KID))))
    return start(gateway_factory, config(
        {
            "$connect": {"type": "http", "url": stub.url("/connect"), "authorizer": "users"},
            "$disconnect": {"type": "http", "url": stub.url("/disconnect")},
            "$default": {"type": "http", "url": stub.url("/default")},
            "whoami": {"type": "mock", "body": "${context.authorizer.principalId}", "route_response": True},
        },
        {"authorizers.users": {"type": "jwt", "jwks_file": "jwks.json", "issuer": ISSUER, "audience": AUDIENCE}},
    ))


def by_tag(tag):
    return lambda e: (e.get("queryStringParameters") or {}).get("tag") == tag


def by_connection(cid):
    return lambda e: e["requestContext"]["connectionId"] == cid


def test_jwt_in_the_query_string_puts_its_claims_on_every_event(jwt_gw, stub, clients, rsa_keys):
    token = rs256(rsa_keys[0])
    decoded = jwt.decode(token, options={"verify_signature": False})
    tag = uuid.uuid4().hex
    ws = clients(f"{jwt_gw.ws_url}?tag={tag}&token={token}")
    connect = stub.wait_for("/connect", by_tag(tag))
    expected = {
        "principalId": "alice",
        "sub": "alice",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": str(decoded["iat"]),
        "exp": str(decoded["exp"]),
        "tier": "3",
        "admin": "true",
        "groups": '["a","b"]',
        "email": "alice@example.com",
    }
    assert connect["requestContext"]["authorizer"] == expected
    assert all(isinstance(v, str) for v in connect["requestContext"]["authorizer"].values())
    cid = connect["requestContext"]["connectionId"]

    ws.send(json.dumps({"action": "whoami"}))
    assert recv(ws) == "alice"
    ws.send(json.dumps({"action": "anything", "n": 1}))
    message = stub.wait_for("/default", by_connection(cid))
    assert message["requestContext"]["eventType"] == "MESSAGE"
    assert message["requestContext"]["authorizer"] == expected

    ws.close()
    disconnect = stub.wait_for("/disconnect", by_connection(cid))
    assert disconnect["requestContext"]["eventType"] == "DISCONNECT"
    assert disconnect["requestContext"]["authorizer"] == expected


def test_jwt_in_the_subprotocol_gets_the_other_protocol_chosen(jwt_gw, stub, clients, rsa_keys):
    token = rs256(rsa_keys[0], sub="bob")
    ws = clients(jwt_gw.ws_url, subprotocols=["chat", token])
    assert ws.subprotocol == "chat"
    ws.send(json.dumps({"action": "whoami"}))
    assert recv(ws) == "bob"
    # The $connect event shows the header as offered, as API Gateway's does.
    connect = stub.wait_for("/connect", lambda e: e["requestContext"]["authorizer"]["sub"] == "bob")
    assert connect["headers"]["Sec-WebSocket-Protocol"] == f"chat, {token}"


def test_jwt_alone_in_the_subprotocol_is_echoed(jwt_gw, clients, rsa_keys):
    token = rs256(rsa_keys[0], sub="carol")
    ws = clients(jwt_gw.ws_url, subprotocols=[token])
    assert ws.subprotocol == token
    ws.send(json.dumps({"action": "whoami"}))
    assert recv(ws) == "carol"


def test_jwt_in_the_authorization_header(jwt_gw, clients, rsa_keys):
    ws = clients(jwt_gw.ws_url, additional_headers={"Authorization": f"Bearer {rs256(rsa_keys[0], sub='dave')}"})
    ws.send(json.dumps({"action": "whoami"}))
    assert recv(ws) == "dave"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def tampered(token: str) -> str:
    """A valid token whose payload was swapped for another subject's, signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{b64url(json.dumps(claims(sub='mallory')).encode())}.{signature}"


def hs256_with_public_key(key) -> str:
    """The algorithm-confusion forgery: HS256 keyed with the RSA public key's PEM."""
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64url(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': KID}).encode())}." \
                    f"{b64url(json.dumps(claims()).encode())}"
    return f"{signing_input}.{b64url(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"


BAD_TOKENS = {
    "expired": lambda keys: rs256(keys[0], iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
    "not-yet-valid": lambda keys: rs256(keys[0], nbf=int(time.time()) + 3600),
    "no-exp": lambda keys: rs256(keys[0], exp=None),
    "wrong-issuer": lambda keys: rs256(keys[0], iss="https://evil.example/"),
    "wrong-audience": lambda keys: rs256(keys[0], aud="someone-else"),
    "forged": lambda keys: rs256(keys[1]),
    "tampered": lambda keys: tampered(rs256(keys[0])),
    "alg-none": lambda keys: jwt.encode(claims(), None, algorithm="none", headers={"kid": KID}),
    "hs256-with-the-public-key": lambda keys: hs256_with_public_key(keys[0]),
    "garbage": lambda keys: "not-a-token",
}


@pytest.mark.parametrize("where", ["query", "subprotocol"])
def test_jwt_bad_or_missing_tokens_are_401_without_calling_connect(jwt_gw, stub, rsa_keys, where):
    for name, make in BAD_TOKENS.items():
        token = make(rsa_keys)
        if where == "query":
            status = refused_with(f"{jwt_gw.ws_url}?token={token}")
        elif name == "garbage":
            continue  # not JWT-shaped: an ordinary protocol, so this is the "no token" case below
        else:
            status = refused_with(jwt_gw.ws_url, subprotocols=["chat", token])
        assert status == 401, f"{name} ({where}): {status}"
    assert refused_with(jwt_gw.ws_url) == 401
    assert refused_with(jwt_gw.ws_url, subprotocols=["chat"]) == 401
    assert refused_with(jwt_gw.ws_url, additional_headers={"Authorization": "Bearer"}) == 401
    time.sleep(0.2)
    assert stub.count("/connect") == 0
    assert stub.count("/disconnect") == 0  # a refused upgrade never was a connection
    # Each refusal is in the log at the default level with why, and no token is.
    log = jwt_gw.stderr()
    assert "refused with 401: no token" in log, log[-2000:]
    assert "refused with 401: token not accepted" in log, log[-2000:]
    assert "xpired" in log, log[-2000:]
    expired = BAD_TOKENS["expired"](rsa_keys)
    assert expired.split(".")[1] not in log


def test_jwt_hs256_user_is_reachable_by_connection_id_and_by_user(gateway_factory, stub, clients):
    gw = start(gateway_factory, config(
        {"$connect": {"type": "http", "url": stub.url("/connect"), "authorizer": "shared"}},
        {"authorizers.shared": {"type": "jwt", "hs256_secret": HS256_SECRET, "issuer": "*",
                                 "audience": [AUDIENCE, "other"]}},
    ))
    sub = f"user-{uuid.uuid4().hex[:8]}"
    token = jwt.encode(claims(sub=sub, iss=None), HS256_SECRET, algorithm="HS256")
    ws = clients(gw.ws_url, additional_headers={"Authorization": f"Bearer {token}"})
    other = clients(gw.ws_url, additional_headers={"Authorization": f"Bearer {jwt.encode(claims(sub='someone-else'), HS256_SECRET, algorithm='HS256')}"})
    connect = stub.wait_for("/connect", lambda e: e["requestContext"]["authorizer"]["principalId"] == sub)
    cid = connect["requestContext"]["connectionId"]

    mgmt_client(gw.mgmt_url, region=REGION).post_to_connection(ConnectionId=cid, Data=b"by id")
    assert recv(ws) == "by id"
    status, body = call("POST", f"{gw.mgmt_url}/@users/{sub}", b"by user")
    assert status == 200, body
    assert json.loads(body) == {"recipients": 1}
    assert recv(ws) == "by user"
    assert_no_message(other)

    # Any one of the configured audiences will do, `aud` being a string or a list.
    listed = jwt.encode(claims(sub="listed", aud=["x", "other"]), HS256_SECRET, algorithm="HS256")
    clients(f"{gw.ws_url}?token={listed}")
    assert stub.wait_for("/connect", lambda e: e["requestContext"]["authorizer"]["principalId"] == "listed")[
        "requestContext"]["authorizer"]["aud"] == '["x","other"]'
    unlisted = jwt.encode(claims(sub="unlisted", aud=["x", "y"]), HS256_SECRET, algorithm="HS256")
    assert refused_with(f"{gw.ws_url}?token={unlisted}") == 401

    # A token signed with another secret: 401.
    forged = jwt.encode(claims(sub=sub), "another-secret-0123456789-abcdefghijk", algorithm="HS256")
    assert refused_with(gw.ws_url, additional_headers={"Authorization": f"Bearer {forged}"}) == 401


def jwks_of(*keys_and_kids) -> dict:
    out = []
    for key, kid in keys_and_kids:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        public.update(kid=kid, alg="RS256", use="sig")
        out.append(public)
    return {"keys": out}


def test_jwt_jwks_file_is_read_again_on_sighup(jwt_gw, clients, rsa_keys):
    trusted, other = rsa_keys
    kept = clients(f"{jwt_gw.ws_url}?token={rs256(trusted)}")
    rotated = jwt.encode(claims(sub="rotated"), other, algorithm="RS256", headers={"kid": "compat-key-2"})
    assert refused_with(f"{jwt_gw.ws_url}?token={rotated}") == 401
    jwt_gw.config_path.with_name("jwks.json").write_text(json.dumps(jwks_of((other, "compat-key-2"))))
    jwt_gw.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while True:
        try:
            ws = open_ws(f"{jwt_gw.ws_url}?token={rotated}")
            break
        except InvalidStatus as error:
            assert error.response.status_code == 401
            assert time.monotonic() < deadline, "the rotated key was not accepted after SIGHUP"
            time.sleep(0.05)
    with ws:
        ws.send(json.dumps({"action": "whoami"}))
        assert recv(ws) == "rotated"
    assert refused_with(f"{jwt_gw.ws_url}?token={rs256(trusted)}") == 401
    kept.send(json.dumps({"action": "whoami"}))  # connections are kept across the reload
    assert recv(kept) == "alice"


class JwksServer:
    """Serves a JWKS document on GET, counting the fetches."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.fetches += 1
                body = json.dumps(server.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_jwt_jwks_url(gateway_factory, clients, rsa_keys):
    trusted, _ = rsa_keys
    jwks = JwksServer(jwks_of((trusted, KID)))
    try:
        gw = start(gateway_factory, config(
            {"whoami": {"type": "mock", "body": "${context.authorizer.principalId}", "route_response": True},
             "$connect": {"authorizer": "remote"}},
            {"authorizers.remote": {"type": "jwt", "jwks_url": jwks.url, "issuer": ISSUER, "audience": AUDIENCE}},
        ))
        for sub in ("erin", "frank"):
            ws = clients(jwt_gw_url(gw, rs256(trusted, sub=sub)))
            ws.send(json.dumps({"action": "whoami"}))
            assert recv(ws) == sub
        assert jwks.fetches == 1  # cached
        assert refused_with(jwt_gw_url(gw, rs256(rsa_keys[1]))) == 401
    finally:
        jwks.close()


def jwt_gw_url(gw, token: str) -> str:
    return f"{gw.ws_url}?token={token}"


def test_jwt_jwks_url_unreachable_is_500(gateway_factory, free_port, rsa_keys):
    gw = start(gateway_factory, config(
        {"$connect": {"authorizer": "remote"}},
        {"authorizers.remote": {"type": "jwt", "jwks_url": f"http://127.0.0.1:{free_port}/jwks.json",
                                 "issuer": ISSUER, "audience": AUDIENCE}},
    ))
    assert refused_with(jwt_gw_url(gw, rs256(rsa_keys[0]))) == 500
    assert refused_with(gw.ws_url) == 401  # no token: refused before any key is needed


# ---------------------------------------------------------------------------------------------
# REQUEST authorizer: a local Python function
# ---------------------------------------------------------------------------------------------

AUTH_PY = '''
import json
import os
import uuid
from pathlib import Path

EVENTS = Path(__file__).resolve().parent / "events"


def policy(effect, resource, principal, context):
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        "context": context,
    }


def handler(event, context):
    EVENTS.mkdir(exist_ok=True)
    (EVENTS / (uuid.uuid4().hex + ".json")).write_text(json.dumps(event))
    headers = event.get("headers") or {}
    query = event.get("queryStringParameters") or {}
    verdict = headers.get("Authorization") or query.get("auth")
    ctx = {"tenant": query.get("tenant", "none"), "tier": 3, "beta": True}
    if verdict == "allow":
        return policy("Allow", event["methodArn"], "user-" + query.get("tenant", "none"), ctx)
    if verdict == "allow-other-api":
        return policy("Allow", "arn:aws:execute-api:*:*:otherapi/*", "x", ctx)
    if verdict == "deny":
        return policy("Deny", event["methodArn"], "user-denied", ctx)
    if verdict == "raise":
        raise Exception("Unauthorized")
    if verdict == "crash":
        raise ValueError("boom")
    if verdict == "proxy401":
        return {"statusCode": 401}
    return "unexpected"
'''


@pytest.fixture
def fn_gw(gateway_factory, stub, tmp_path):
    code = tmp_path / "authfn"
    code.mkdir()
    (code / "auth.py").write_text(AUTH_PY)
    gw = start(gateway_factory, config(
        {
            "$connect": {"type": "http", "url": stub.url("/connect"), "authorizer": "lambda"},
            "$disconnect": {"type": "http", "url": stub.url("/disconnect")},
            "$default": {"type": "http", "url": stub.url("/default")},
            "tenant": {"type": "mock", "body": "${context.authorizer.tenant}/${context.authorizer.tier}",
                       "route_response": True},
        },
        {
            "authorizers.lambda": {"type": "request", "function": "auth",
                                   "identity_sources": ["route.request.header.Authorization"]},
            "functions.auth": {"runtime": "python", "handler": "auth.handler", "dir": str(code),
                               "timeout": "10s"},
        },
    ))
    gw.events_dir = code / "events"
    return gw


def function_events(gw) -> list[dict]:
    if not gw.events_dir.exists():
        return []
    return [json.loads(p.read_text()) for p in gw.events_dir.glob("*.json")]


def test_request_function_allow_context_is_stringified_on_every_event(fn_gw, stub, clients):
    tag = uuid.uuid4().hex
    ws = clients(f"{fn_gw.ws_url}?tag={tag}&tenant=acme", additional_headers={"Authorization": "allow"},
                 open_timeout=15)  # the first call starts the function's process
    connect = stub.wait_for("/connect", by_tag(tag))
    expected = {"principalId": "user-acme", "tenant": "acme", "tier": "3", "beta": "true"}
    assert connect["requestContext"]["authorizer"] == expected
    cid = connect["requestContext"]["connectionId"]

    ws.send(json.dumps({"action": "tenant"}))
    assert recv(ws) == "acme/3"
    ws.send("hello")
    message = stub.wait_for("/default", by_connection(cid))
    assert message["requestContext"]["authorizer"] == expected
    ws.close()
    disconnect = stub.wait_for("/disconnect", by_connection(cid))
    assert disconnect["requestContext"]["authorizer"] == expected

    # What the function was given: API Gateway's REQUEST authorizer event for $connect.
    [event] = function_events(fn_gw)
    assert event["type"] == "REQUEST"
    assert event["methodArn"] == METHOD_ARN
    assert event["headers"]["Authorization"] == "allow"
    assert event["headers"]["Host"] == fn_gw.host
    assert "Sec-WebSocket-Key" in event["headers"]
    assert event["multiValueHeaders"]["Authorization"] == ["allow"]
    assert event["queryStringParameters"] == {"tag": tag, "tenant": "acme"}
    assert event["multiValueQueryStringParameters"] == {"tag": [tag], "tenant": ["acme"]}
    context = event["requestContext"]
    assert context["connectionId"] == cid  # the id the connection then has
    assert context["routeKey"] == "$connect"
    assert context["eventType"] == "CONNECT"
    assert context["apiId"] == API_ID
    assert context["stage"] == STAGE
    assert "authorizer" not in context


@pytest.mark.parametrize("verdict, status", [
    ("deny", 403),
    ("allow-other-api", 403),  # an Allow that does not match the methodArn is no Allow
    ("raise", 401),            # Exception("Unauthorized"), as a Lambda authorizer says it
    ("proxy401", 500),         # a Lambda-proxy answer is not an authorizer output
    ("crash", 500),
    ("unexpected", 500),
])
def test_request_function_refusals(fn_gw, stub, verdict, status):
    assert refused_with(f"{fn_gw.ws_url}?tenant=acme", additional_headers={"Authorization": verdict},
                        open_timeout=15) == status
    assert len(function_events(fn_gw)) == 1
    time.sleep(0.2)
    assert stub.count("/connect") == 0
    assert stub.count("/disconnect") == 0


def test_request_function_missing_identity_source_is_401_without_a_call(fn_gw, stub, clients):
    # The function would allow this (it also reads ?auth=), but the identity source is the header.
    assert refused_with(f"{fn_gw.ws_url}?auth=allow&tenant=acme") == 401
    assert refused_with(fn_gw.ws_url, additional_headers={"Authorization": ""}) == 401
    time.sleep(0.2)
    assert function_events(fn_gw) == []
    assert stub.count("/connect") == 0
    # The same with the header is allowed: the function is there and works.
    clients(f"{fn_gw.ws_url}?tenant=acme", additional_headers={"Authorization": "allow"}, open_timeout=15)
    assert len(function_events(fn_gw)) == 1
    # Why is in the log at the default level, naming the source, without any secret.
    log = fn_gw.stderr()
    assert "identity source missing" in log and "route.request.header.authorization" in log.lower(), log[-2000:]
    assert "auth=allow" not in log


# ---------------------------------------------------------------------------------------------
# REQUEST authorizer over HTTP
# ---------------------------------------------------------------------------------------------

def allow_output(event):
    return {
        "principalId": "http-user",
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}]},
        "context": {"tenant": event["queryStringParameters"]["tenant"], "tier": 3, "beta": True},
    }


def test_request_url_authorizer(gateway_factory, stub, clients):
    gw = start(gateway_factory, config(
        {
            "$connect": {"authorizer": "http"},  # no integration: accepted once allowed
            "$default": {"type": "http", "url": stub.url("/default")},
            "whoami": {"type": "mock", "body": "${context.authorizer.principalId}:${context.authorizer.tenant}",
                       "route_response": True},
        },
        {"authorizers.http": {"type": "request", "url": stub.url("/authorize"),
                              "identity_sources": ["route.request.querystring.tenant"]}},
    ))
    stub.set("/authorize", body=allow_output)
    ws = clients(f"{gw.ws_url}?tenant=globex", additional_headers={"Authorization": "Bearer abc"})
    ws.send(json.dumps({"action": "whoami"}))
    assert recv(ws) == "http-user:globex"
    [event] = stub.wait_events("/authorize", 1)
    assert event["type"] == "REQUEST"
    assert event["methodArn"] == METHOD_ARN
    assert event["headers"]["Authorization"] == "Bearer abc"
    assert event["queryStringParameters"] == {"tenant": "globex"}
    ws.send("hi")
    [message] = stub.wait_events("/default", 1)
    assert message["requestContext"]["connectionId"] == event["requestContext"]["connectionId"]
    assert message["requestContext"]["authorizer"] == {
        "principalId": "http-user", "tenant": "globex", "tier": "3", "beta": "true"}

    deny = {"principalId": "u", "policyDocument": {"Statement": [
        {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": "*"}]}}
    for behaviour, status in [
        ({"body": deny}, 403),
        ({"status": 401, "body": "Unauthorized"}, 401),
        ({"status": 403, "body": "Forbidden"}, 403),
        ({"status": 500, "body": "oops"}, 500),
        ({"body": "not json"}, 500),
        ({"body": {"statusCode": 200, "body": "a proxy result"}}, 500),
    ]:
        stub.set("/authorize", **behaviour)
        assert refused_with(f"{gw.ws_url}?tenant=globex") == status, behaviour
    calls = stub.count("/authorize")
    assert refused_with(gw.ws_url) == 401  # identity source missing: not called
    assert stub.count("/authorize") == calls
    ws.send(json.dumps({"action": "whoami"}))  # the first connection is unaffected
    assert recv(ws) == "http-user:globex"
