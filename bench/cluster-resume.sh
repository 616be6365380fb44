#!/usr/bin/env bash
# Measures resumable connections (wsgate.reliable.v1) across the nodes of a cluster. Clients of
# node gw-1 drop their sockets and resume:
#   - on gw-2, which asks gw-1 over Redis to let each session go (cross-node);
#   - on gw-1 itself: the same-node baseline, in the same cluster;
#   - on gw-2 after gw-1 was killed with SIGKILL: the sessions are taken from Redis once gw-1's
#     entry has expired (cluster.node_timeout 2 s here), so the time counts from the kill; gw-1
#     dies 1 s after the last POST was answered, or at once (kill-now).
# Each run on fresh processes (one redis-server, two nodes: bench/wsgate.toml plus
# bench/cluster-resume.toml), 127.0.0.1 only, all at once and with 100 in flight.
#
#   bench/cluster-resume.sh             # 1,000 clients per run, 3 repetitions
#   bench/cluster-resume.sh --reps 5
#   bench/cluster-resume.sh --quick     # 200 clients: a smoke run, BENCHMARKS.md untouched
#
# Results: bench/results/<UTC date>-cluster-resume[-quick]/results.jsonl (one JSON line per run,
# tagged with rep, placement, in_flight and what the CPU is summed over), machine.txt,
# commands.txt, gateway-log.txt (the nodes' warnings and errors), failures.txt (runs that printed
# no result, if any), README.md (bench/cluster_summary.py: medians, with the bench's commands) and
# summary.md (the same without them), which becomes the "Resumable connections across nodes"
# section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh

invocation="bench/cluster-resume.sh${*:+ $*}"
quick=0
reps=3
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --reps) reps=${2:-}; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
case "$reps" in '' | *[!0-9]* | 0) echo "--reps wants a positive number" >&2; exit 2 ;; esac
connections=1000
if [ "$quick" = 1 ]; then connections=200; fi

out="bench/results/$(date -u +%Y-%m-%d)-cluster-resume"
if [ "$quick" = 1 ]; then out="$out-quick"; fi
mkdir -p "$out"
: > "$out/results.jsonl"
: > "$out/commands.txt"
: > "$out/gateway-log.txt"
rm -f "$out/failures.txt"
tmp=$(mktemp -d)
pids=()
cleanup() {
    stop_pids
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n 65536 2>/dev/null || true
# The load before the runs: the clients, the nodes and Redis share the cores with whatever else runs.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

echo "==> building release binaries" >&2
cargo build --release --locked -p wsgate -p wsgate-bench >&2
bin=$(release_dir)
bench=$bin/wsgate-bench

# How many nodes GET /@cluster of gw-1 lists.
nodes_seen() {
    curl -sf --max-time 2 "http://${node_addrs[0]}/dev/@cluster" \
        | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["nodes"]))' 2>/dev/null || echo 0
}

# One redis-server and two nodes, gw-1 and gw-2, once both see each other. The echohttp route's
# stub is not started: no case here uses it.
start_cluster() {
    start_redis "$tmp/redis.log"
    sed 's/STUB_ADDR/127.0.0.1:9/' bench/wsgate.toml > "$tmp/plain.toml"
    node_addrs=(); node_pids=()
    local n
    for n in 1 2; do
        { cat "$tmp/plain.toml"; echo; sed "s/REDIS_PORT/$redis_port/; s/NODE_ID/gw-$n/" bench/cluster-resume.toml; } > "$tmp/gw-$n.toml"
        start_listener "$tmp/gw-$n.log" "$bin/wsgate" serve --config "$tmp/gw-$n.toml"
        node_addrs+=("$addr"); node_pids+=("$pid")
    done
    for _ in $(seq 1 100); do
        [ "$(nodes_seen)" = 2 ] && return 0
        sleep 0.1
    done
    echo "GET /@cluster does not list 2 nodes" >&2
    return 1
}

# stop_cluster WHERE KILLED: ends the run's processes, noting in gateway-log.txt any that ended
# before (but KILLED, the node the run killed on purpose) and the nodes' warnings and errors.
stop_cluster() {
    local where=$1 killed=$2 names=(gw-1 gw-2 redis) i log
    local started=("${node_pids[@]}" "$redis_pid")
    for i in "${!names[@]}"; do
        if [ "${names[i]}" = "$killed" ] || running "${started[i]}"; then continue; fi
        { echo "$where ${names[i]}: ended during the run; its last lines:"
          tail -5 "$tmp/${names[i]}.log.err" 2>/dev/null || tail -5 "$tmp/redis.log"; } >> "$out/gateway-log.txt"
    done
    stop_pids
    for log in "$tmp"/gw-*.log.err; do
        sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E 'WARN|ERROR' | head -20 \
            | sed "s#^#$where $(basename "$log" .log.err): #" >> "$out/gateway-log.txt" || true
    done
}

# run_case REP PLACEMENT IN_FLIGHT: one wsgate-bench resume run on a fresh cluster; its line,
# tagged, into results.jsonl.
run_case() {
    local rep=$1 placement=$2 q=$3 a b over resumed_on killed=none
    start_cluster
    a=${node_addrs[0]}; b=${node_addrs[1]}
    local args=(resume --case "resume-$placement-$q" --target wsgate-cluster --url "ws://$a/dev"
        --mgmt "http://$a/dev" --redis "127.0.0.1:$redis_port" --connections "$connections" --hold-open)
    case "$placement" in
        cross)
            args+=(--resume-url "ws://$b/dev" --server-pid "${node_pids[0]},${node_pids[1]},$redis_pid")
            over=gw-1+gw-2+redis; resumed_on=gw-2 ;;
        same)
            args+=(--server-pid "${node_pids[0]},${node_pids[1]},$redis_pid")
            over=gw-1+gw-2+redis; resumed_on=gw-1 ;;
        kill | kill-now)
            # gw-1's PID, started above by this script: the bench kills it 1 s after the last
            # POST was answered (kill-now: at once). Its CPU is left out (it is dead while the
            # clients resume).
            args+=(--resume-url "ws://$b/dev" --kill-pid "${node_pids[0]}" --server-pid "${node_pids[1]},$redis_pid")
            if [ "$placement" = kill-now ]; then args+=(--kill-after-ms 0); fi
            over=gw-2+redis; resumed_on=gw-2; killed=gw-1 ;;
    esac
    if [ "$q" != all ]; then args+=(--concurrency "$q"); fi
    echo "  wsgate-bench ${args[*]}" >&2
    if [ "$rep" = 1 ]; then echo "wsgate-bench ${args[*]}" >> "$out/commands.txt"; fi
    # The bench bounds its resumes (30 s); this bounds the whole run.
    if timeout 300 "$bench" "${args[@]}" > "$tmp/line.json" 2> "$tmp/last.err"; then
        python3 bench/cluster_summary.py tag "rep=$rep" "placement=$placement" "in_flight=$q" \
            "resumed_on=$resumed_on" "cpu_summed_over=$over" "nodes=2" < "$tmp/line.json" >> "$out/results.jsonl"
        python3 -c 'import json, sys; print("    resumed {resumed} of {connections} in {resume_all_ms:.0f} ms, failed {failed}".format(**json.load(sys.stdin)))' < "$tmp/line.json" >&2
    else
        sed -n '/^Stack backtrace:/q; /./p' "$tmp/last.err" | head -8 > "$tmp/why"
        echo "  failed: $(cat "$tmp/why")" >&2
        { echo "rep $rep: wsgate-bench ${args[*]}"; sed 's/^/    /' "$tmp/why"; } >> "$out/failures.txt"
    fi
    stop_cluster "rep $rep resume-$placement-$q" "$killed"
}

# kill-now: whether what gw-1 answered 200 for just before it died reached Redis.
cases=("cross all" "cross 100" "same all" "same 100" "kill all" "kill 100" "kill-now all")
for rep in $(seq 1 "$reps"); do
    echo "==> repetition $rep of $reps" >&2
    for spec in "${cases[@]}"; do
        read -r placement q <<< "$spec"
        run_case "$rep" "$placement" "$q"
    done
done

{
    machine_lines
    echo "redis:     $(redis-server --version)"
    echo "load:      $load_before before the runs (1, 5, 15 min)"
    echo "mode:      $connections clients per run, $reps repetitions; run at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$out/machine.txt"
python3 bench/cluster_summary.py cluster-resume "$out" "$invocation"
echo "==> wrote $out/results.jsonl, $out/README.md and $out/summary.md" >&2
if [ "$quick" = 0 ]; then
    python3 bench/cluster_summary.py splice "$out" BENCHMARKS.md cluster-resume
    echo "==> updated the Resumable connections across nodes section of BENCHMARKS.md" >&2
fi
