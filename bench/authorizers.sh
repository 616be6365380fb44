#!/usr/bin/env bash
# What an authorizer costs on $connect: `wsgate-bench connect` (open + close, 64 in flight)
# against one gateway per case — no authorizer, JWT HS256, JWT ES256 and JWT RS256 from a JWKS
# file, and a REQUEST authorizer over HTTP (the bench stub answering an Allow policy) — and a
# Markdown table of connects per second and server CPU per connect.
#
#   bench/authorizers.sh [CONNECTIONS]      # default 5000; writes bench/results/<date>/authorizers.md
#
# Needs compat/.venv (scripts/test.sh or compat/run.sh makes it) for PyJWT, to sign the tokens.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n="${1:-5000}"
python=compat/.venv/bin/python
[ -x "$python" ] || { echo "bench/authorizers.sh: run compat/run.sh once first (it makes compat/.venv)" >&2; exit 2; }
cargo build --release --locked -p wsgate -p wsgate-bench >&2
bin=target/release
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# Keys, JWKS and one token per algorithm (valid for an hour).
"$python" - "$tmp" <<'PY'
import json, sys, time
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
out = sys.argv[1]
claims = {"sub": "bench", "iss": "https://issuer.bench", "aud": "bench", "exp": int(time.time()) + 3600}
secret = "bench-secret-of-at-least-thirty-two-bytes"
ec_key = ec.generate_private_key(ec.SECP256R1())
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
keys = []
for kid, key, alg in (("ec", ec_key, ECAlgorithm), ("rsa", rsa_key, RSAAlgorithm)):
    jwk = json.loads(alg.to_jwk(key.public_key()))
    jwk["kid"] = kid
    keys.append(jwk)
open(f"{out}/jwks.json", "w").write(json.dumps({"keys": keys}))
open(f"{out}/HS256.token", "w").write(jwt.encode(claims, secret, algorithm="HS256"))
open(f"{out}/ES256.token", "w").write(jwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": "ec"}))
open(f"{out}/RS256.token", "w").write(jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "rsa"}))
open(f"{out}/secret", "w").write(secret)
PY

listen() {
    local log=$1; shift
    "$@" > "$log" 2> "$log.err" &
    pid=$!; pids+=("$pid")
    for _ in $(seq 1 100); do
        addr=$(grep -o 'listening on [^ ]*' "$log" 2>/dev/null | head -1 | sed 's/listening on //; s#ws://##; s#/.*##') || true
        [ -n "$addr" ] && return 0
        sleep 0.1
    done
    echo "no listening line from $*" >&2; cat "$log.err" >&2; return 1
}

listen "$tmp/stub.log" "$bin/wsgate-bench" stub
stub=$addr
base='[gateway]
listen = "127.0.0.1:0"
stage = "dev"
[limits]
max_connections_per_ip = 0
new_connections_per_ip_per_second = 0
'
jwt='[routes."$connect"]
authorizer = "a"
[authorizers.a]
type = "jwt"
issuer = "https://issuer.bench"
audience = "bench"
'
run_case() {
    local name=$1 config=$2 query=$3
    printf '%s' "$config" > "$tmp/$name.toml"
    listen "$tmp/$name.log" "$bin/wsgate" serve --config "$tmp/$name.toml"
    "$bin/wsgate-bench" connect --url "ws://$addr/dev$query" --server-pid "$pid" --case "$name" \
        --connections "$n" --sources 1 | tail -1 > "$tmp/$name.json"
    kill "$pid"
}
run_case none "$base" ""
run_case jwt-hs256 "$base$jwt""hs256_secret = \"$(cat "$tmp/secret")\"" "?token=$(cat "$tmp/HS256.token")"
run_case jwt-es256 "$base$jwt""jwks_file = \"$tmp/jwks.json\"" "?token=$(cat "$tmp/ES256.token")"
run_case jwt-rs256 "$base$jwt""jwks_file = \"$tmp/jwks.json\"" "?token=$(cat "$tmp/RS256.token")"
# The bench stub answers every POST with this body when told so by the path /authorizer-allow.
run_case request-http "$base"'[routes."$connect"]
authorizer = "a"
[authorizers.a]
type = "request"
url = "http://'"$stub"'/authorizer-allow"
' ""

out="bench/results/$(date -u +%F)"
mkdir -p "$out"
{
    echo "# \$connect authorizers: connect + close, $n connections, 64 in flight ($(date -u +%FT%TZ))"
    echo
    echo "Command: \`bench/authorizers.sh $n\`. Every case answers 101 (failed = 0); server CPU is the gateway's user + system time per connect + close."
    echo
    echo "| case | failed | connects/s | p50 ms | p99 ms | server CPU µs/connect |"
    echo "|---|---|---|---|---|---|"
    for name in none jwt-hs256 jwt-es256 jwt-rs256 request-http; do
        "$python" -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("| %s | %d | %.0f | %.2f | %.2f | %.0f |" % (sys.argv[2], r["failed"], r["connects_per_s"],
      r["connect_close_p50_ms"], r["connect_close_p99_ms"], r["server_cpu_us_per_op"]))' "$tmp/$name.json" "$name"
    done
} | tee "$out/authorizers.md"
