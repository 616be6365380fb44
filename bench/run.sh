#!/usr/bin/env bash
# Runs every wsgate-bench scenario against wsgate, the raw baseline and serverless-offline, side by
# side and interleaved, three repetitions, then regenerates BENCHMARKS.md and its charts.
#
#   bench/run.sh            # full run (15,000 idle connections, ...): about 10 minutes
#   bench/run.sh --quick    # small counts, under 3 minutes; report in bench/results/<date>-quick/
#   bench/run.sh --reps 5 --skip-peer
#
# Results: bench/results/<UTC date>/results.jsonl (one JSON line per scenario run), machine.txt,
# commands.txt and PNG charts; BENCHMARKS.md at the repository root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh

quick=0
reps=3
peer=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --reps) reps=$2; shift ;;
        --skip-peer) peer=0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

out="bench/results/$(date -u +%Y-%m-%d)"
if [ "$quick" = 1 ]; then out="$out-quick"; fi
mkdir -p "$out"
: > "$out/results.jsonl"
: > "$out/commands.txt"
tmp=$(mktemp -d)
pids=()
peer_pgid=""
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "$peer_pgid" ]; then bench/peers/serverless-offline/stop.sh "$peer_pgid" || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

echo "==> building release binaries" >&2
cargo build --release --locked -p wsgate -p wsgate-bench -p wsgate-baseline >&2
bin=$(release_dir)
bench=$bin/wsgate-bench

# Counts: full, then quick.
if [ "$quick" = 1 ]; then
    idle_n=15000; idle_peer_n=2000
    connect_n=5000; connect_peer_n=1000
    echo_c=50; echo_m=400; echo_peer_c=10; echo_peer_m=100
    post_n=10000; post_peer_n=1000
    bcast_n=2000; bcast_peer_n=500; bcast_rounds=3
    fn_c=10; fn_m=100
    group_n=200; group_idle=2000
else
    idle_n=15000; idle_peer_n=15000
    connect_n=20000; connect_peer_n=3000
    echo_c=50; echo_m=2000; echo_peer_c=20; echo_peer_m=250
    post_n=50000; post_peer_n=5000
    bcast_n=15000; bcast_peer_n=2000; bcast_rounds=5
    fn_c=20; fn_m=250
    group_n=1000; group_idle=14000
fi
sigv4_key="AKIDBENCH:benchsecretbenchsecretbenchsecret00"

start_servers() {
    start_listener "$tmp/stub.log" "$bench" stub
    stub_addr=$addr
    sed "s/STUB_ADDR/$stub_addr/" bench/wsgate.toml > "$tmp/wsgate.toml"
    start_listener "$tmp/wsgate.log" "$bin/wsgate" serve --config "$tmp/wsgate.toml"
    wsgate_addr=$addr; wsgate_pid=$pid
    { cat "$tmp/wsgate.toml"; printf '\n[management]\nauth = "sigv4"\n[[management.credentials]]\naccess_key_id = "%s"\nsecret_access_key = "%s"\n' "${sigv4_key%%:*}" "${sigv4_key#*:}"; } > "$tmp/wsgate-sigv4.toml"
    start_listener "$tmp/wsgate-sigv4.log" "$bin/wsgate" serve --config "$tmp/wsgate-sigv4.toml"
    signed_addr=$addr; signed_pid=$pid
    start_listener "$tmp/baseline.log" "$bin/wsgate-baseline"
    baseline_addr=$addr; baseline_pid=$pid
    # The peer's own project, run by wsgate: the same serverless.yml and Node handlers.
    start_listener "$tmp/dev.log" "$bin/wsgate" dev --serverless bench/peers/serverless-offline/serverless.yml --listen 127.0.0.1:0
    dev_addr=$addr; dev_pid=$pid
    if [ "$peer" = 1 ]; then
        local port
        port=$(free_port)
        # Its fastest mode (in process) and no log line per invocation, as wsgate logs none.
        SLS_LOG_LEVEL=warning bench/peers/serverless-offline/start.sh "$port" > "$tmp/peer.out"
        peer_pid=$(awk '/^PID/ {print $2}' "$tmp/peer.out")
        peer_pgid=$(awk '/^PGID/ {print $2}' "$tmp/peer.out")
        peer_ws="ws://127.0.0.1:$port"
        peer_mgmt="http://127.0.0.1:$port"
    fi
}

stop_servers() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    pids=()
    if [ -n "$peer_pgid" ]; then bench/peers/serverless-offline/stop.sh "$peer_pgid" || true; peer_pgid=""; fi
}

# run REP COMMAND... : runs one scenario, appends its line with the repetition number.
run() {
    local rep=$1; shift
    echo "  wsgate-bench $*" >&2
    if [ "$rep" = 1 ]; then echo "wsgate-bench $*" >> "$out/commands.txt"; fi
    local line
    if line=$("$bench" "$@" 2> "$tmp/last.err"); then
        echo "$line" | python3 -c 'import json,sys; v=json.loads(sys.stdin.read()); v["rep"]=int(sys.argv[1]); print(json.dumps(v))' "$rep" >> "$out/results.jsonl"
    else
        echo "  failed: $(tail -3 "$tmp/last.err")" >&2
    fi
}

for rep in $(seq 1 "$reps"); do
    echo "==> repetition $rep of $reps" >&2
    start_servers
    settle "${pids[@]}" ${peer_pid:+"$peer_pid"}
    # Idle first, on fresh processes, so freed memory of earlier scenarios cannot hide its cost.
    run "$rep" idle --target wsgate --url "ws://$wsgate_addr/dev" --server-pid "$wsgate_pid" --connections "$idle_n"
    run "$rep" idle --target baseline --url "ws://$baseline_addr/" --server-pid "$baseline_pid" --connections "$idle_n"
    [ "$peer" = 1 ] && run "$rep" idle --target serverless-offline --url "$peer_ws" --server-pid "$peer_pid" --connections "$idle_peer_n"

    run "$rep" connect --target wsgate --url "ws://$wsgate_addr/dev" --server-pid "$wsgate_pid" --connections "$connect_n"
    run "$rep" connect --target baseline --url "ws://$baseline_addr/" --server-pid "$baseline_pid" --connections "$connect_n"
    [ "$peer" = 1 ] && run "$rep" connect --target serverless-offline --url "$peer_ws" --server-pid "$peer_pid" --connections "$connect_peer_n"

    # Functions before the echo cases, so the first message finds the echo handler cold on both.
    run "$rep" echo --case function-echo --integration node-function --target wsgate --url "ws://$dev_addr/dev" --server-pid "$dev_pid" --connections "$fn_c" --messages "$fn_m"
    [ "$peer" = 1 ] && run "$rep" echo --case function-echo --integration node-function --target serverless-offline --url "$peer_ws" --server-pid "$peer_pid" --connections "$fn_c" --messages "$fn_m"

    run "$rep" echo --case echo-mock --target wsgate --url "ws://$wsgate_addr/dev" --server-pid "$wsgate_pid" --connections "$echo_c" --messages "$echo_m"
    run "$rep" echo --case echo-mock --target baseline --url "ws://$baseline_addr/" --server-pid "$baseline_pid" --connections "$echo_c" --messages "$echo_m"
    [ "$peer" = 1 ] && run "$rep" echo --case echo-mock --integration lambda-in-process --target serverless-offline --url "$peer_ws" --server-pid "$peer_pid" --connections "$echo_peer_c" --messages "$echo_peer_m"
    run "$rep" echo --case echo-http --integration http --route echohttp --target wsgate --url "ws://$wsgate_addr/dev" --server-pid "$wsgate_pid" --connections "$echo_c" --messages "$echo_m"

    run "$rep" post --target wsgate --url "ws://$wsgate_addr/dev" --mgmt "http://$wsgate_addr/dev" --server-pid "$wsgate_pid" --requests "$post_n"
    run "$rep" post --target baseline --url "ws://$baseline_addr/" --mgmt "http://$baseline_addr" --server-pid "$baseline_pid" --requests "$post_n"
    [ "$peer" = 1 ] && run "$rep" post --target serverless-offline --url "$peer_ws" --mgmt "$peer_mgmt" --server-pid "$peer_pid" --requests "$post_peer_n"
    run "$rep" post --case post-sigv4 --target wsgate --url "ws://$signed_addr/dev" --mgmt "http://$signed_addr/dev" --server-pid "$signed_pid" --requests "$post_n" --sigv4 "$sigv4_key"

    run "$rep" broadcast --target wsgate --url "ws://$wsgate_addr/dev" --mgmt "http://$wsgate_addr/dev" --server-pid "$wsgate_pid" --receivers "$bcast_n" --rounds "$bcast_rounds"
    # The baseline documents @broadcast too (its GET @openapi.json), so both send one POST.
    run "$rep" broadcast --target baseline --url "ws://$baseline_addr/" --mgmt "http://$baseline_addr" --server-pid "$baseline_pid" --receivers "$bcast_n" --rounds "$bcast_rounds"
    # The same result with one POST per receiver, side by side with the fan-out API.
    run "$rep" broadcast --case broadcast-posts --mode posts --target wsgate --url "ws://$wsgate_addr/dev" --mgmt "http://$wsgate_addr/dev" --server-pid "$wsgate_pid" --receivers "$bcast_n" --rounds "$bcast_rounds"
    run "$rep" broadcast --case group --group room --target wsgate --url "ws://$wsgate_addr/dev" --mgmt "http://$wsgate_addr/dev" --server-pid "$wsgate_pid" --receivers "$group_n" --idle "$group_idle" --rounds "$bcast_rounds"
    [ "$peer" = 1 ] && run "$rep" broadcast --target serverless-offline --url "$peer_ws" --mgmt "$peer_mgmt" --server-pid "$peer_pid" --receivers "$bcast_peer_n" --rounds "$bcast_rounds"
    stop_servers
done

{
    machine_lines
    echo "node:      $(node --version 2>/dev/null || echo none)"
    if [ -f bench/peers/serverless-offline/package.json ]; then
        echo "peer:      $(python3 -c 'import json; d=json.load(open("bench/peers/serverless-offline/package.json")); print(", ".join(f"{k} {v}" for k, v in sorted({**d.get("dependencies", {}), **d.get("devDependencies", {})}.items())))')"
    fi
    echo "mode:      $([ "$quick" = 1 ] && echo quick || echo full), $reps repetitions, interleaved; run at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$out/machine.txt"
# A quick run is a smoke test: its report stays in its folder; a full run regenerates the
# repository's BENCHMARKS.md.
report=BENCHMARKS.md
if [ "$quick" = 1 ]; then report="$out/BENCHMARKS.md"; fi
"$bench" report --results "$out" --out "$report"
# The report is written anew: the newest full cluster run (bench/cluster.sh), resume run
# (bench/resume.sh), cluster resume run (bench/cluster-resume.sh) and upgrade run
# (bench/upgrade.sh) go back in.
if [ "$quick" = 0 ]; then
    for name in cluster resume cluster-resume upgrade; do
        # The date, then the name: *-resume alone would also match *-cluster-resume.
        latest=$(ls -d bench/results/[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]-"$name" 2>/dev/null | sort | tail -n 1)
        if [ -n "$latest" ]; then
            python3 bench/cluster_summary.py splice "$latest" "$report" "$name"
        fi
    done
fi
echo "==> wrote $out/results.jsonl and $report" >&2
