"""Safe defaults with real clients and the release binary: the first per-address refusal is
logged once with what to change, and an unauthenticated management API refuses a remote caller
with a ForbiddenException that boto3 raises, naming the setting."""

import pytest
from websockets.exceptions import InvalidStatus

from conftest import mgmt_client, open_ws, render_config

ECHO = {"$default": {"type": "mock", "body": "${request.body}", "route_response": True}}


def test_the_first_per_address_refusal_is_logged_once_with_the_setting_to_look_at(gateway_factory):
    gw = gateway_factory(render_config(ECHO, limits={
        "max_connections_per_ip": 1, "new_connections_per_ip_per_second": 0, "exempt_loopback": False}))
    first = open_ws(gw.ws_url)
    try:
        for _ in range(3):
            with pytest.raises(InvalidStatus) as refused:
                open_ws(gw.ws_url)
            assert refused.value.response.status_code == 429
    finally:
        first.close()
    log = gw.stderr()
    assert log.count("a per-address limit refused") == 1, log
    line = next(line for line in log.splitlines() if "a per-address limit refused" in line)
    assert "127.0.0.1" in line and "gateway.trusted_proxies" in line and "limits.max_connections_per_ip" in line


def test_boto3_from_a_remote_address_gets_forbidden_from_an_unauthenticated_management_api(gateway_factory):
    # The test plays a load balancer on 127.0.0.1 forwarding a client from elsewhere.
    config = render_config(ECHO).replace("[gateway]\n", '[gateway]\ntrusted_proxies = ["127.0.0.1"]\n', 1)
    gw = gateway_factory(config)
    api = mgmt_client(gw.mgmt_url)

    def forwarded_from(client):
        def add(request, **_):
            request.headers["X-Forwarded-For"] = client
        return add

    api.meta.events.register("before-send.apigatewaymanagementapi.*", forwarded_from("203.0.113.7"))
    with pytest.raises(api.exceptions.ForbiddenException) as refused:
        api.get_connection(ConnectionId="Vb1qPcW2DoECK-w=")
    message = refused.value.response["Error"]["Message"]
    assert "management.auth" in message and "allow_unauthenticated_remote" in message, message

    local = mgmt_client(gw.mgmt_url)
    with pytest.raises(local.exceptions.GoneException):
        local.get_connection(ConnectionId="Vb1qPcW2DoECK-w=")
