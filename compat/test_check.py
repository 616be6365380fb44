"""12. `wsgate check --config FILE`."""

import subprocess

import pytest

from conftest import render_config, wsgate_bin
from redis_support import cluster_section


def check(tmp_path, text):
    path = tmp_path / "check.toml"
    path.write_text(text)
    result = subprocess.run([str(wsgate_bin()), "check", "--config", str(path)],
                            capture_output=True, text=True, timeout=10)
    return path, result


def test_check_good_config_exits_0_and_prints_ok(tmp_path):
    text = render_config({
        "$connect": {"type": "http", "url": "http://127.0.0.1:9000/connect", "timeout": "1s"},
        "sendmessage": {"type": "http", "url": "http://127.0.0.1:9000/sendmessage", "route_response": True},
        "$default": {"type": "mock", "status": 200, "body": "unknown action", "route_response": True},
    }, limits={"idle_timeout": "10m", "max_connection_duration": "2h", "integration_timeout": "29s",
               "max_frame_bytes": 32768, "max_message_bytes": 131072, "outbox_bytes": 4194304,
               "shutdown_grace": "10s"},
        management={"auth": "sigv4", "max_payload_bytes": 131072},
        credentials=[{"access_key_id": "AKIDEXAMPLE", "secret_access_key": "secret"}])
    path, result = check(tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: ok ("), result.stdout


def test_check_unknown_key_typo_exits_1_naming_the_key(tmp_path):
    _, result = check(tmp_path, '[gateway]\nstage = "dev"\n\n[limits]\nidle_timeot = "1m"\n')
    assert result.returncode == 1
    assert "idle_timeot" in result.stderr, result.stderr
    assert "line 5" in result.stderr, result.stderr


def test_check_integration_timeout_below_50ms_exits_1_naming_the_key(tmp_path):
    _, result = check(tmp_path, '[limits]\nintegration_timeout = "10ms"\n')
    assert result.returncode == 1
    assert "limits.integration_timeout" in result.stderr, result.stderr


def test_check_bad_duration_exits_1_naming_the_key(tmp_path):
    _, result = check(tmp_path, '[limits]\nidle_timeout = "ten minutes"\n')
    assert result.returncode == 1
    assert "idle_timeout" in result.stderr, result.stderr


def test_serve_with_invalid_config_exits_1_without_listening(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[gateway]\nlisten = "127.0.0.1:0"\n\n[limits]\nintegration_timeout = "10ms"\n')
    result = subprocess.run([str(wsgate_bin()), "serve", "--config", str(path)],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "limits.integration_timeout" in result.stderr, result.stderr


JWT_WITHOUT_AUDIENCE = """
[authorizers.users]
type = "jwt"
jwks_url = "https://idp.example/.well-known/jwks.json"
issuer = "https://idp.example/"
"""


def test_check_and_serve_refuse_a_jwt_authorizer_without_audience(tmp_path):
    """Without `audience` a token the identity provider made for any other application would get
    in: `check` and `serve` fail naming the key; `audience = "*"` says so on purpose."""
    path, result = check(tmp_path, JWT_WITHOUT_AUDIENCE)
    assert result.returncode == 1
    assert 'authorizers.users.audience: required' in result.stderr, result.stderr
    assert 'set audience = "*" to accept any' in result.stderr, result.stderr
    served = subprocess.run([str(wsgate_bin()), "serve", "--config", str(path)],
                            capture_output=True, text=True, timeout=10)
    assert served.returncode == 1 and served.stdout == ""
    assert "authorizers.users.audience" in served.stderr, served.stderr
    _, result = check(tmp_path, JWT_WITHOUT_AUDIENCE + 'audience = "*"\n')
    assert result.returncode == 0, result.stderr


# A [cluster] section that `check` accepts: it is validated, Redis is not contacted.
CLUSTER = {"redis": "redis://127.0.0.1:6390", "node_id": "gw-1", "heartbeat": "200ms", "node_timeout": "1s",
           "request_timeout": "1s", "key_prefix": "wsgate"}
SEEDS = ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]


def with_cluster(change: dict) -> str:
    """A config with CLUSTER changed by `change` (None removes a key)."""
    return render_config({"$default": {"type": "mock", "body": "x"}}) + "\n" + cluster_section(**{**CLUSTER, **change})


@pytest.mark.parametrize("change", [{}, {"redis": None, "redis_cluster": SEEDS}, {"node_id": None}],
                         ids=["redis", "redis_cluster", "generated_node_id"])
def test_check_accepts_a_cluster_section(tmp_path, change):
    _, result = check(tmp_path, with_cluster(change))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("change, keys", [
    ({"redis_cluster": SEEDS}, ("cluster.redis",)),                     # both redis and redis_cluster
    ({"redis": None}, ("cluster.redis",)),                               # neither
    ({"node_timeout": "200ms"}, ("cluster.node_timeout", "cluster.heartbeat")),   # equal to heartbeat
    ({"node_timeout": "100ms"}, ("cluster.node_timeout", "cluster.heartbeat")),   # below it
    ({"heartbeat": "soon"}, ("cluster.heartbeat",)),
], ids=["both_redis_and_redis_cluster", "no_redis", "node_timeout_equal_to_heartbeat",
        "node_timeout_below_heartbeat", "bad_duration"])
def test_check_bad_cluster_section_exits_1_naming_the_key(tmp_path, change, keys):
    _, result = check(tmp_path, with_cluster(change))
    assert result.returncode == 1, result.stdout
    assert any(key in result.stderr for key in keys), result.stderr
