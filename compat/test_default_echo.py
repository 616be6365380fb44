"""1. `wsgate serve` without --config: the embedded echo config."""

import json
import re

from conftest import ID_RE, LISTENING_RE, mgmt_client, open_ws, recv


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


def test_stage_flag_overrides_the_stage_clients_connect_to(gateway_factory):
    gw = gateway_factory(args=["--stage", "prod"])
    assert gw.stage == "prod"
    assert gw.listening_line.endswith(f"(management: http://127.0.0.1:{gw.port}/prod/@connections/{{id}})")
    with open_ws(f"ws://127.0.0.1:{gw.port}/prod") as ws:
        ws.send("on prod")
        assert recv(ws) == "on prod"


def test_client_ping_is_answered_with_pong(gateway_factory):
    gw = gateway_factory()
    with open_ws(gw.ws_url, ping_interval=None) as ws:
        pong = ws.ping(b"are you there")
        assert pong.wait(timeout=3), "no Pong for the client's Ping"
        ws.send("after ping")
        assert recv(ws) == "after ping"


def test_default_config_whoami_returns_connection_id_usable_with_boto3(gateway_factory):
    gw = gateway_factory()
    with open_ws(gw.ws_url) as ws:
        ws.send('{"action":"whoami"}')
        me = json.loads(recv(ws))
        assert re.fullmatch(ID_RE, me["connectionId"]), me
        assert re.fullmatch(ID_RE, me["requestId"]), me
        assert me["sourceIp"] == "127.0.0.1"
        mgmt_client(gw.mgmt_url).post_to_connection(ConnectionId=me["connectionId"], Data=b"found you")
        assert recv(ws) == "found you"
