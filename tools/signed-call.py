#!/usr/bin/env python3
"""One management call signed with SigV4, as boto3 signs its own: for the calls boto3 has no
method for (@broadcast, @groups, @users, listings) when `management.auth = "sigv4"`.

    python3 tools/signed-call.py METHOD URL [BODY]

    AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=... AWS_DEFAULT_REGION=us-east-1 \\
        python3 tools/signed-call.py POST http://127.0.0.1:8080/dev/@broadcast 'hello everyone'

Credentials and region come from wherever boto3 finds them (the environment, ~/.aws). Prints the
status and the body of the answer; exits 1 when it is not 2xx. Needs boto3 (pip install boto3).
"""

import sys
import urllib.error
import urllib.request

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    method, url = sys.argv[1].upper(), sys.argv[2]
    body = sys.argv[3].encode() if len(sys.argv) == 4 else None
    session = boto3.Session()
    credentials = session.get_credentials()
    if credentials is None:
        print("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", file=sys.stderr)
        return 2
    request = AWSRequest(method=method, url=url, data=body)
    SigV4Auth(credentials, "execute-api", session.region_name or "us-east-1").add_auth(request)
    prepared = request.prepare()
    call = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method=method)
    try:
        with urllib.request.urlopen(call) as answer:
            print(answer.status, answer.read().decode())
            return 0
    except urllib.error.HTTPError as error:
        print(error.code, error.read().decode())
        return 1


if __name__ == "__main__":
    sys.exit(main())
