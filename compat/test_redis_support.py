"""The Redis fixtures of the cluster-mode tests (redis_support.py) checked on their own, without
wsgate: a failure here is the test machine's, not the gateway's."""

import tomllib

import pytest

from conftest import render_config
from redis_support import cluster_section


def test_redis_server_fixture_starts_stops_and_restarts_empty_on_the_same_port(redis_server):
    port = redis_server.port
    assert port != 6379
    assert redis_server.url == f"redis://127.0.0.1:{port}"
    assert redis_server.info("server")["tcp_port"] == str(port)
    assert redis_server.info("persistence")["aof_enabled"] == "0"
    assert redis_server.command("SET", "left-over", "1") == "OK"

    redis_server.stop()
    assert not redis_server.running()
    with pytest.raises(OSError):
        redis_server.command("PING")

    redis_server.start()
    assert redis_server.port == port
    assert redis_server.command("PING") == "PONG"
    assert redis_server.command("DBSIZE") == 0
    assert redis_server.keys() == []


def test_redis_cluster_fixture_forms_a_cluster_of_three_masters(redis_cluster):
    assert len(redis_cluster.seeds) == 3 and 6379 not in [s.port for s in redis_cluster.servers]
    for i, server in enumerate(redis_cluster.servers):
        info = redis_cluster.cluster_info(i)
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_assigned"] == "16384"
        assert info["cluster_known_nodes"] == "3"
        assert info["cluster_size"] == "3"
        assert server.info("replication")["role"] == "master"


def test_cluster_section_is_valid_toml_after_a_config():
    text = render_config({"$default": {"type": "mock", "body": "x"}}) + "\n" + cluster_section(
        redis_cluster=["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"], node_id="gw-1",
        heartbeat="200ms", node_timeout="1s", key_prefix="wsgate-test", redis=None)
    assert tomllib.loads(text)["cluster"] == {
        "redis_cluster": ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"], "node_id": "gw-1",
        "heartbeat": "200ms", "node_timeout": "1s", "key_prefix": "wsgate-test"}
