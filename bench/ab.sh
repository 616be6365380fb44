#!/usr/bin/env bash
# Before and after, side by side: two wsgate binaries on the same config, both running at once,
# the echo (mock and HTTP backend) and POST scenarios alternated between them ROUNDS times at full
# size (A, B, A, B, ...), so that a noisy moment of the machine falls on both. Prints the median of
# each metric per binary and the change; the lines go to OUT/ab.jsonl.
#
#   bench/ab.sh OLD_WSGATE NEW_WSGATE [ROUNDS] [OUT]
#   git worktree add --detach ../wt-old <commit> && (cd ../wt-old && cargo build --release -p wsgate)
#   bench/ab.sh ../wt-old/target/release/wsgate target/release/wsgate 5
#
# wsgate-bench is this checkout's (built here if missing). Every process is ended by its PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh

old=$(realpath "$1"); new=$(realpath "$2"); rounds=${3:-5}
out=${4:-bench/results/$(date -u +%Y-%m-%d)-ab}
mkdir -p "$out"
: > "$out/ab.jsonl"
tmp=$(mktemp -d)
pids=()
trap 'stop_pids; rm -rf "$tmp"' EXIT

bench=$(release_dir)/wsgate-bench
[ -x "$bench" ] || cargo build --release --locked -p wsgate-bench >&2

start_listener "$tmp/stub.log" "$bench" stub
sed "s/STUB_ADDR/$addr/" bench/wsgate.toml > "$tmp/wsgate.toml"
start_listener "$tmp/old.log" "$old" serve --config "$tmp/wsgate.toml"
old_addr=$addr; old_pid=$pid
start_listener "$tmp/new.log" "$new" serve --config "$tmp/wsgate.toml"
new_addr=$addr; new_pid=$pid

# run LABEL ADDR PID SCENARIO ARGS...: one scenario against one binary, its line labelled.
run() {
    local label=$1 a=$2 p=$3; shift 3
    local line
    if line=$("$bench" "$@" --url "ws://$a/dev" --server-pid "$p" 2> "$tmp/last.err"); then
        echo "$line" | python3 -c 'import json,sys; v=json.loads(sys.stdin.read()); v["binary"]=sys.argv[1]; print(json.dumps(v))' "$label" >> "$out/ab.jsonl"
    else
        echo "  failed ($label $1): $(tail -3 "$tmp/last.err")" >&2
    fi
}

for round in $(seq 1 "$rounds"); do
    echo "==> round $round of $rounds" >&2
    for side in old new; do
        if [ "$side" = old ]; then a=$old_addr; p=$old_pid; else a=$new_addr; p=$new_pid; fi
        run "$side" "$a" "$p" echo --case echo-mock --target wsgate --connections 50 --messages 2000
        run "$side" "$a" "$p" echo --case echo-http --integration http --route echohttp --target wsgate --connections 50 --messages 2000
        run "$side" "$a" "$p" post --target wsgate --mgmt "http://$a/dev" --requests 50000
    done
done

python3 - "$out/ab.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
metrics = {"echo": ["msgs_per_s", "latency_p50_ms", "latency_p99_ms", "server_cpu_us_per_op"],
           "post": ["req_per_s", "latency_p50_ms", "latency_p99_ms", "server_cpu_us_per_op"]}
print(f"{'case':12} {'metric':22} {'old (median)':>13} {'new (median)':>13} {'change':>8}   old runs / new runs")
for case in sorted({r["case"] for r in rows}):
    of = [r for r in rows if r["case"] == case]
    for m in metrics[of[0]["scenario"]]:
        a = [r[m] for r in of if r["binary"] == "old"]
        b = [r[m] for r in of if r["binary"] == "new"]
        if not a or not b:
            continue
        ma, mb = statistics.median(a), statistics.median(b)
        change = (mb - ma) / ma * 100 if ma else 0.0
        runs = " ".join(f"{v:g}" for v in a) + " / " + " ".join(f"{v:g}" for v in b)
        print(f"{case:12} {m:22} {ma:13.3f} {mb:13.3f} {change:+7.1f}%   {runs}")
EOF
