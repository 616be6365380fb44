"""11. SIGTERM: every client is closed with 1001, every $disconnect runs, exit code 0. SIGHUP reloads."""

import time

from conftest import connect_tagged, open_ws, recv, render_config, wait_close


def test_sigterm_closes_clients_with_1001_runs_disconnects_and_exits_0(gateway_factory, stub, clients):
    gw = gateway_factory(render_config({
        "$connect": {"type": "http", "url": stub.url("/connect")},
        "$disconnect": {"type": "http", "url": stub.url("/disconnect")},
        "$default": {"type": "mock", "body": "${request.body}", "route_response": True},
    }, limits={"shutdown_grace": "60s"}))
    conns = [connect_tagged(clients, gw, stub) for _ in range(3)]
    ids = {event["requestContext"]["connectionId"] for _, event in conns}
    assert len(ids) == 3

    gw.terminate()  # SIGTERM to the gateway's PID
    for ws, _ in conns:
        code, reason, _ = wait_close(ws, timeout=5)
        assert (code, reason) == (1001, "Going away")
    # It exits once the $disconnects are done, not at the end of the 60 s grace (the margin is
    # for a loaded machine; this is not a speed check).
    rc = gw.proc.wait(timeout=30)
    assert rc == 0, gw.stderr()[-3000:]

    events = stub.wait_events("/disconnect", 3, timeout=1)
    assert {e["requestContext"]["connectionId"] for e in events} == ids
    for e in events:
        assert e["requestContext"]["disconnectStatusCode"] == 1001
        assert e["requestContext"]["disconnectReason"] == "Going away"
        assert e["requestContext"]["eventType"] == "DISCONNECT"


def test_sigterm_with_no_clients_exits_0_without_waiting_for_the_grace(gateway_factory):
    gw = gateway_factory(render_config({"$default": {"type": "mock", "body": "x", "route_response": True}},
                                       limits={"shutdown_grace": "60s"}))
    gw.terminate()
    assert gw.proc.wait(timeout=30) == 0


def test_sigint_also_shuts_down_gracefully(gateway_factory, clients):
    import signal
    gw = gateway_factory()
    ws = clients(gw.ws_url)
    gw.proc.send_signal(signal.SIGINT)
    code, reason, _ = wait_close(ws, timeout=5)
    assert (code, reason) == (1001, "Going away")
    assert gw.proc.wait(timeout=12) == 0


def test_signals_right_after_the_listening_line_are_handled(gateway_factory):
    """A supervisor may signal as soon as the line is out: SIGHUP must reload (not kill) and
    SIGTERM must stop gracefully (exit 0, not death by the signal). Ten tries, as it is a race."""
    import signal
    for _ in range(10):
        gw = gateway_factory()
        gw.proc.send_signal(signal.SIGHUP)
        gw.terminate()
        assert gw.proc.wait(timeout=30) == 0, gw.stderr()[-2000:]


def test_sighup_reloads_routes_and_warns_that_a_new_listen_address_takes_a_restart(gateway_factory):
    import signal
    gw = gateway_factory(render_config({"$default": {"type": "mock", "body": "v1", "route_response": True}}))
    ws = open_ws(gw.ws_url)
    ws.send("x")
    assert recv(ws) == "v1"
    gw.config_path.write_text(render_config({"$default": {"type": "mock", "body": "v2", "route_response": True}},
                                            gateway={"listen": "127.0.0.1:1"}))
    gw.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "takes a restart" not in gw.stderr():
        assert time.monotonic() < deadline, gw.stderr()[-2000:]
        time.sleep(0.05)
    assert "gateway.listen: 127.0.0.1:0 → 127.0.0.1:1 takes a restart" in gw.stderr()
    # The routes are reloaded all the same (just after the warning), on the same connection.
    answer = None
    while answer != "v2":
        assert time.monotonic() < deadline, answer
        ws.send("x")
        answer = recv(ws)
    ws.close()
    assert gw.proc.poll() is None
