"""`[gateway.tls]` with the release binary: `websockets` over wss and boto3 over https trusting only
the configured certificate, plain ws on the same port refused by default (400) or served with
`plaintext = "accept"`, and `kill -HUP` swapping the certificate while open connections keep going."""

import datetime
import ipaddress
import json
import signal
import ssl
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from websockets.exceptions import InvalidStatus

from conftest import mgmt_client, open_ws, render_config, sigv4_management


def make_cert(directory, name):
    """A self-signed certificate for 127.0.0.1 and localhost; answers the PEM paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def trusting(cert_path):
    context = ssl.create_default_context(cafile=str(cert_path))
    context.check_hostname = True
    return context


def tls_config(tmp_path, extra=""):
    """The test API with `[gateway.tls]` on live.pem / live.key, plus `extra` lines in that section."""
    config = render_config({
        "$default": {"type": "mock", "body": "${request.body}", "route_response": True},
        "whoami": {"type": "mock", "body": '{"id":"${context.connectionId}"}', "route_response": True},
    }, **sigv4_management())
    return config + f'\n[gateway.tls]\ncert = "{tmp_path / "live.pem"}"\nkey = "{tmp_path / "live.key"}"\n{extra}'


@pytest.fixture
def tls_gateway(gateway_factory, tmp_path):
    cert, key = make_cert(tmp_path, "first")
    (tmp_path / "live.pem").write_bytes(cert.read_bytes())
    (tmp_path / "live.key").write_bytes(key.read_bytes())
    gw = gateway_factory(tls_config(tmp_path))
    return gw, tmp_path, cert


def test_wss_and_https_with_real_clients_and_plain_ws_refused_with_400(tls_gateway):
    gw, _, cert = tls_gateway
    wss = open_ws(f"wss://127.0.0.1:{gw.port}/dev", ssl=trusting(cert))
    try:
        wss.send(json.dumps({"action": "whoami"}))
        connection_id = json.loads(wss.recv(timeout=5))["id"]
        api = mgmt_client(f"https://127.0.0.1:{gw.port}/dev", verify=str(cert))
        api.post_to_connection(ConnectionId=connection_id, Data=b"over https")
        assert wss.recv(timeout=5) == "over https"
    finally:
        wss.close()
    # A client that typed ws:// by mistake is told so before any token travels in the clear again.
    with pytest.raises(InvalidStatus) as refused:
        open_ws(f"ws://127.0.0.1:{gw.port}/dev")
    assert refused.value.response.status_code == 400
    assert b"TLS only" in refused.value.response.body
    # A client that trusts nothing but the system store refuses the self-signed certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        open_ws(f"wss://127.0.0.1:{gw.port}/dev", ssl=ssl.create_default_context())


def test_plaintext_accept_serves_ws_beside_wss_on_one_port(gateway_factory, tmp_path):
    cert, key = make_cert(tmp_path, "first")
    (tmp_path / "live.pem").write_bytes(cert.read_bytes())
    (tmp_path / "live.key").write_bytes(key.read_bytes())
    gw = gateway_factory(tls_config(tmp_path, 'plaintext = "accept"\n'))
    for url, context in ((f"wss://127.0.0.1:{gw.port}/dev", trusting(cert)), (f"ws://127.0.0.1:{gw.port}/dev", None)):
        client = open_ws(url, ssl=context) if context else open_ws(url)
        try:
            client.send(url)
            assert client.recv(timeout=5) == url
        finally:
            client.close()


def test_sighup_swaps_the_certificate_and_keeps_open_connections(tls_gateway):
    gw, tmp_path, first = tls_gateway
    old = open_ws(f"wss://127.0.0.1:{gw.port}/dev", ssl=trusting(first))
    try:
        second, second_key = make_cert(tmp_path, "second")
        (tmp_path / "live.pem").write_bytes(second.read_bytes())
        (tmp_path / "live.key").write_bytes(second_key.read_bytes())
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            try:
                new = open_ws(f"wss://127.0.0.1:{gw.port}/dev", ssl=trusting(second))
                break
            except ssl.SSLCertVerificationError:
                assert time.monotonic() < deadline, "the new certificate was not loaded"
                time.sleep(0.1)
        try:
            new.send("new")
            assert new.recv(timeout=5) == "new"
        finally:
            new.close()
        old.send("still here")
        assert old.recv(timeout=5) == "still here"
        with pytest.raises(ssl.SSLCertVerificationError):
            open_ws(f"wss://127.0.0.1:{gw.port}/dev", ssl=trusting(first))
    finally:
        old.close()
    assert "reloaded" in gw.stderr()
