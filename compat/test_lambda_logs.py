"""Local functions log what Lambda's platform logs: `START`, the handler's own lines, `END` and a
`REPORT` (durations, memory, `Init Duration` on a cold start) for every invocation, in wsgate's
stderr as text or JSON; a SAM function without `Timeout` stops after Lambda's 3 s with `Task timed
out after 3.00 seconds`; and a one-way route whose function answers 500 is named in a warning
(API Gateway drops that status, so nobody would see it otherwise)."""

import json
import math
import re
import time

import pytest

from conftest import open_ws, render_config, wait_until

ECHO = '''
def handler(event, context):
    print("handling " + event["body"])
    return {"statusCode": 200, "body": "ok:" + event["body"]}
'''


def toml_config(tmp_path) -> str:
    route = {"type": "function", "function": "echo", "route_response": True}
    return render_config({"$default": route}) + f'''
[functions.echo]
runtime = "python"
handler = "app.handler"
dir = "{tmp_path / "code"}"
max_concurrency = 1
'''


def function_lines(stderr: str, json_logs: bool, function: str) -> list[str]:
    """The messages logged for `function`'s processes and invocations, in order."""
    found = []
    for raw in stderr.splitlines():
        if json_logs:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if entry.get("target") == "wsgate::function::log" and entry.get("function") == function:
                assert entry["level"] == "INFO", entry
                found.append(entry["message"])
        elif "wsgate::function::log" in raw and f"function={function}" in raw:
            found.append(raw.split("wsgate::function::log: ", 1)[1].split(f" function={function}", 1)[0])
    return found


REPORT_RE = re.compile(
    r"^REPORT RequestId: (?P<id>[0-9a-f-]{36})\tDuration: (?P<duration>\d+\.\d\d) ms"
    r"\tBilled Duration: (?P<billed>\d+) ms\tMemory Size: 128 MB\tMax Memory Used: (?P<used>\d+) MB"
    r"(?:\tInit Duration: (?P<init>\d+\.\d\d) ms)?(?:\tStatus: (?P<status>\w+))?$")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_every_invocation_is_framed_by_start_end_and_report(gateway_factory, tmp_path, log_format):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text(ECHO)
    gw = gateway_factory(toml_config(tmp_path), env={"WSGATE_LOG_FORMAT": log_format})
    json_logs = log_format == "json"
    ws = open_ws(gw.ws_url, open_timeout=20)
    try:
        for text in ("first", "second"):
            ws.send(text)
            assert ws.recv(timeout=20) == f"ok:{text}"
    finally:
        ws.close()

    lines = wait_until(
        lambda: (found := function_lines(gw.stderr(), json_logs, "echo"))
        and sum(line.startswith("REPORT ") for line in found) == 2 and found,
        10, "two REPORT lines")
    starts = [line for line in lines if line.startswith("START ")]
    assert len(starts) == 2, lines
    reports = []
    for start, text in zip(starts, ("first", "second")):
        request_id = re.fullmatch(r"START RequestId: ([0-9a-f-]{36}) Version: \$LATEST", start)[1]
        at = lines.index(start)
        # The handler's own line, then END, then REPORT: nothing of another invocation between.
        assert lines[at + 1:at + 4] == [f"handling {text}", f"END RequestId: {request_id}", lines[at + 3]], lines
        report = REPORT_RE.match(lines[at + 3])
        assert report and report["id"] == request_id, lines[at + 3]
        reports.append(report)
    for report in reports:
        duration, billed = float(report["duration"]), int(report["billed"])
        assert 0 < duration < 10_000
        assert billed == max(1, math.ceil(duration)) or billed == math.ceil(duration) + 1, report.group(0)
        assert 1 <= int(report["used"]) < 1024, report.group(0)
        assert report["status"] is None
    # A cold start on the process's first invocation only (one process: max_concurrency = 1).
    assert reports[0]["init"] is not None and float(reports[0]["init"]) > 0
    assert reports[1]["init"] is None


SAM_API = """
Transform: AWS::Serverless-2016-10-31
Resources:
  ChatApi:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: chat
      ProtocolType: WEBSOCKET
      RouteSelectionExpression: $request.body.action
"""


def sam_function(name: str, route_key: str, properties: str = "") -> str:
    """A route on ChatApi to a Python function `name` whose code is in the folder `name`."""
    return f"""
  {name}Route:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref ChatApi
      RouteKey: {route_key}
      Target: !Join ['/', [integrations, !Ref {name}Integ]]
  {name}Integ:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref ChatApi
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/${{{name}.Arn}}/invocations
  {name}:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {name}/
      Handler: app.handler
      Runtime: python3.12
{properties}"""


# No Timeout on Slow: Lambda's 3 s.
SAM = SAM_API + sam_function("Slow", "slow") + sam_function("Send", "sendmessage", "      Timeout: 10\n")

SLOW = '''
import time

def handler(event, context):
    print("sleeping 4 s")
    time.sleep(4)
    return {"statusCode": 200, "body": "too late"}
'''

SEND = '''
def handler(event, context):
    return {"statusCode": 500, "body": "boom"}
'''


@pytest.fixture
def sam_dev(tmp_path, dev_gateway):
    project = tmp_path / "project"
    for name, code in (("Slow", SLOW), ("Send", SEND)):
        (project / name).mkdir(parents=True)
        (project / name / "app.py").write_text(code)
    (project / "template.yaml").write_text(SAM)
    return dev_gateway(["--sam", str(project / "template.yaml")], cwd=project)


def test_a_sam_function_without_timeout_stops_after_lambdas_3_seconds(sam_dev):
    ws = open_ws(sam_dev.ws_url, open_timeout=20)
    try:
        sent = time.monotonic()
        ws.send(json.dumps({"action": "slow"}))
        frame = json.loads(ws.recv(timeout=20))
        waited = time.monotonic() - sent
    finally:
        ws.close()
    assert frame["message"] == "Endpoint request timed out", frame
    # 3 s from the moment the process took it (a cold start comes before), not the 4 s it sleeps.
    assert 3.0 <= waited < 4.0 + 10.0, waited

    def timeout_lines():
        lines = function_lines(sam_dev.stderr(), False, "Slow")
        return any(line.startswith("REPORT ") for line in lines) and lines

    lines = wait_until(timeout_lines, 10, "the timed-out invocation's REPORT")
    start = next(line for line in lines if line.startswith("START "))
    request_id = start.split()[2]
    at = lines.index(start)
    notice, end, report = lines[at + 2:at + 5]
    assert lines[at + 1] == "sleeping 4 s", lines
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z {request_id} Task timed out after 3\.00 seconds",
        notice), lines
    assert end == f"END RequestId: {request_id}"
    match = REPORT_RE.match(report)
    assert match and match["status"] == "timeout" and match["id"] == request_id, report
    assert float(match["duration"]) >= 3000.0


def test_a_one_way_route_answering_500_is_named_in_a_warning(sam_dev):
    ws = open_ws(sam_dev.ws_url, open_timeout=20)
    try:
        ws.send(json.dumps({"action": "sendmessage", "text": "hi"}))
        warning = wait_until(
            lambda: next((line for line in sam_dev.stderr().splitlines()
                          if "the integration answered 500" in line), None),
            20, "the warning about the dropped 500")
        # API Gateway sends nothing back on a one-way route, whatever the status.
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
    finally:
        ws.close()
    assert "WARN" in warning, warning
    assert "route sendmessage: the integration answered 500 (one-way route, nothing is sent back): boom" in warning
