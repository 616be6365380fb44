"""Captures requests exactly as boto3 signs them for the management API, as a test fixture.

Nothing is sent: a before-send hook records the prepared request and answers it locally.
Run: compat/.venv/bin/python tools/capture_boto3_sigv4.py > crates/wsgate/src/auth/fixtures/boto3.json
"""
import json

import boto3
import botocore
from botocore.awsrequest import AWSResponse

captured = []


def capture(request, **_):
    captured.append({
        "method": request.method,
        "url": request.url,
        "headers": {k: (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()},
        "body": (request.body or b"").decode("latin-1") if isinstance(request.body, (bytes, type(None))) else request.body,
    })
    return AWSResponse(request.url, 200, {}, _Raw())


class _Raw:
    def stream(self):
        yield b"{}"


def client(**creds):
    c = boto3.client("apigatewaymanagementapi", endpoint_url="http://127.0.0.1:8080/dev", region_name="eu-west-1", **creds)
    c.meta.events.register("before-send", capture)
    return c


plain = client(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
plain.post_to_connection(ConnectionId="Mg_ugfpqPHcCIVA=", Data=b'{"hello":"world"}')
plain.get_connection(ConnectionId="Mg_ugfpqPHcCIVA=")
plain.delete_connection(ConnectionId="Mg_ugfpqPHcCIVA=")
temporary = client(aws_access_key_id="ASIAEXAMPLE", aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", aws_session_token="FwoGZXIvYXdzEXAMPLETOKEN")
temporary.post_to_connection(ConnectionId="Mg_ugfpqPHcCIVA=", Data=b"temporary")
print(json.dumps({"botocore": botocore.__version__, "requests": captured}, indent=2))
