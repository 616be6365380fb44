"""`[cluster] redis = "rediss://user:password@host:port"`: nodes reach a Redis that speaks only
TLS and wants an ACL user, with the certificate trusted through SSL_CERT_FILE, as an operator
would run it; a wrong password or an untrusted certificate stops the node at start with a message
that names the Redis but never the password."""

from __future__ import annotations

import datetime
import ipaddress
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import connect_tagged, http_call, quote_id, recv, render_config, unused_port, wait_until
from redis_support import cluster_section, redis_tool

PASSWORD = "cluster-acl-secret-42"


def _certificate(subject: str, key, issuer: str, signer, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_ca_and_server(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate it signed for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("wsgate test CA", ca_key, "wsgate test CA", ca_key, ca=True)
    server = _certificate("127.0.0.1", server_key, "wsgate test CA", ca_key, ca=False)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return paths


@pytest.fixture
def tls_redis(tmp_path):
    """A redis-server on a TLS port only (no plain port), with an ACL user `app` and the
    default user off; stopped by PID at the end."""
    ca, cert, key = make_ca_and_server(tmp_path)
    port = unused_port()
    cmd = [redis_tool("redis-server"), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
           "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
           "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
           "--user", "default", "off", "--user", "app", "on", f">{PASSWORD}", "~*", "&*", "+@all"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cli = [redis_tool("redis-cli"), "--tls", "--cacert", str(ca), "-p", str(port), "--user", "app",
               "--pass", PASSWORD, "--no-auth-warning", "PING"]
        wait_until(lambda: proc.poll() is None and subprocess.run(cli, capture_output=True, text=True).stdout.strip() == "PONG",
                   10, "the TLS redis-server answers PING")
        yield port, ca
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def node_config(url: str, node_id: str, connect: str | None = None) -> str:
    routes = {"$connect": {"type": "http", "url": connect} if connect else {"type": "mock", "status": 200}}
    cluster = cluster_section(redis=url, node_id=node_id, heartbeat="200ms", node_timeout="1s")
    return render_config(routes) + "\n" + cluster


def test_nodes_reach_a_tls_redis_with_an_acl_user(tls_redis, gateway_factory, clients, stub):
    port, cert = tls_redis
    url = f"rediss://app:{PASSWORD}@127.0.0.1:{port}"
    env = {"SSL_CERT_FILE": str(cert)}
    a, b = (gateway_factory(node_config(url, f"tls-{n}", stub.url("/connect")), args=["--listen", "127.0.0.1:0"], env=env)
            for n in (1, 2))
    ws, event = connect_tagged(clients, a, stub)
    cid = event["requestContext"]["connectionId"]
    status, body, _ = http_call("POST", f"{b.mgmt_url}/@connections/{quote_id(cid)}", b"over tls")
    assert status == 200, body
    assert recv(ws) == "over tls"
    wait_until(lambda: len(http_call("GET", f"{a.mgmt_url}/@cluster")[1]["nodes"]) == 2, 5, "both nodes are listed")
    assert PASSWORD not in a.stderr() + b.stderr()


@pytest.mark.parametrize("case", ["wrong password", "untrusted certificate"])
def test_a_node_that_cannot_join_says_why_without_the_password(case, tls_redis, tmp_path, wsgate_binary):
    port, cert = tls_redis
    password, trust = (("not-" + PASSWORD, cert) if case == "wrong password" else (PASSWORD, "/dev/null"))
    config = tmp_path / "node.toml"
    config.write_text(node_config(f"rediss://app:{password}@127.0.0.1:{port}", "refused"))
    started = time.monotonic()
    done = subprocess.run([str(wsgate_binary), "serve", "--config", str(config), "--listen", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=30, env={"SSL_CERT_FILE": str(trust), "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert "cannot join the cluster" in done.stderr and f"rediss://app:***@127.0.0.1:{port}" in done.stderr, done.stderr
    assert password not in done.stderr + done.stdout
    expected = "WRONGPASS" if case == "wrong password" else "UnknownIssuer"
    assert expected.lower() in done.stderr.lower(), done.stderr
    assert time.monotonic() - started < 10


@pytest.fixture
def wsgate_binary() -> Path:
    from conftest import wsgate_bin
    return wsgate_bin()
