"""1. `wsgate serve` without --config: the embedded echo config."""

import json

from conftest import LISTENING_RE, open_ws, recv


def test_serve_prints_one_listening_line_naming_port_stage_and_management_url(gateway_factory):
    gw = gateway_factory()
    m = LISTENING_RE.match(gw.listening_line)
    assert m, gw.listening_line
    assert gw.stage == "dev"
    assert m["mgmt"] == f"http://127.0.0.1:{gw.port}/dev/@connections/{{id}}"
    assert gw.port != 0


def test_default_config_echoes_json_message_unchanged(gateway_factory):
    gw = gateway_factory()
    with open_ws(gw.ws_url) as ws:
        for message in ['{"action":"sendmessage","text":"hi"}',
                        '{ "action" : "nothing-matches",  "n": [1, 2, {"x": null}] }',
                        json.dumps({"unicode": "h\u00e9llo \u2603"})]:
            ws.send(message)
            assert recv(ws) == message


def test_default_config_echoes_non_json_message_unchanged(gateway_factory):
    gw = gateway_factory()
    with open_ws(gw.ws_url) as ws:
        for message in ["hello world", "{not json", "  spaces  ", "${request.body.action}"]:
            ws.send(message)
            assert recv(ws) == message
