#!/usr/bin/env bash
# Before and after for local functions: two wsgate binaries, each run as `wsgate dev` on the
# bench's serverless.yml (the Node `echo` handler of bench/peers/serverless-offline), one at a
# time on a fresh process, alternated ROUNDS times (A, B, A, B, ...). Each run is
# `wsgate-bench echo --case function-echo` (20 connections x 250 messages); the first message is
# the cold start. Prints each run's line, then the medians per binary; the lines go to
# OUT/ab-function.jsonl. WSGATE_LOG is passed on (default info, which logs START/END/REPORT).
#
#   bench/ab-function.sh OLD_WSGATE NEW_WSGATE [ROUNDS] [OUT]
#
# Every process is ended by its PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh

old=$(realpath "$1"); new=$(realpath "$2"); rounds=${3:-3}
out=${4:-bench/results/$(date -u +%Y-%m-%d)-ab-function}
mkdir -p "$out"
: > "$out/ab-function.jsonl"
tmp=$(mktemp -d)
pids=()
trap 'stop_pids; rm -rf "$tmp"' EXIT
export WSGATE_LOG="${WSGATE_LOG:-info}"

bench=$(release_dir)/wsgate-bench
[ -x "$bench" ] || cargo build --release --locked -p wsgate-bench >&2

for round in $(seq "$rounds"); do
    for which in old new; do
        start_listener "$tmp/$which.log" "${!which}" dev --serverless bench/peers/serverless-offline/serverless.yml --listen 127.0.0.1:0
        "$bench" echo --case function-echo --integration node-function --target "$which" \
            --url "ws://$addr/dev" --server-pid "$pid" --connections 20 --messages 250 \
            | tail -1 | tee -a "$out/ab-function.jsonl"
        stop_pids
    done
done

python3 - "$out/ab-function.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
keys = ["first_message_ms", "msgs_per_s", "latency_p50_ms", "latency_p99_ms", "server_cpu_us_per_op"]
medians = {t: {k: statistics.median(r[k] for r in runs if r["target"] == t) for k in keys} for t in ("old", "new")}
for k in keys:
    o, n = medians["old"][k], medians["new"][k]
    print(f"{k:24} old {o:10.2f}  new {n:10.2f}  ({(n - o) / o * 100:+.1f}%)")
PY
