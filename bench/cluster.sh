#!/usr/bin/env bash
# Measures cluster mode ([cluster] on Redis) side by side with one node, in one run: POSTs to a
# connection on the same node and on another node, a broadcast over three nodes against one node,
# Redis messages per broadcast and Redis memory per connection. Interleaved, fresh processes (one
# redis-server, three cluster nodes, one plain node) per repetition, 127.0.0.1 only.
#
#   bench/cluster.sh            # full run: 15,000 connections, 20,000 POSTs, 3 repetitions
#   bench/cluster.sh --quick    # small counts, a smoke run under 2 minutes (after the build)
#   bench/cluster.sh --reps 5
#
# Results: bench/results/<UTC date>-cluster[-quick]/results.jsonl (one JSON line per run, tagged
# with rep, nodes, placement and what the CPU is summed over), machine.txt, commands.txt,
# failures.txt (if any run failed), gateway-log.txt (the nodes' warnings and errors) and
# summary.md (bench/cluster_summary.py: medians side by side).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh

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

if [ "$quick" = 1 ]; then
    conns=2000; post_n=2000; post_c1_n=500; rounds=3
else
    conns=15000; post_n=20000; post_c1_n=5000; rounds=5
fi
post_conns=64
prefix=wsgate                     # cluster.key_prefix (the default)

out="bench/results/$(date -u +%Y-%m-%d)-cluster"
if [ "$quick" = 1 ]; then out="$out-quick"; fi
mkdir -p "$out"
: > "$out/results.jsonl"
: > "$out/commands.txt"
: > "$out/gateway-log.txt"
rm -f "$out/failures.txt"
tmp=$(mktemp -d)
pids=()
cleanup() {
    # A held idle run ends at once when its release file appears.
    touch "$tmp/release" 2>/dev/null || true
    stop_pids
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 15,000 sockets in the client and as many in the plain node, plus a margin.
need=$((conns + 4096))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    ulimit -n "$need" 2>/dev/null || { echo "ulimit -n is $(ulimit -n); $need are needed" >&2; exit 1; }
fi

echo "==> building release binaries" >&2
cargo build --release --locked -p wsgate -p wsgate-bench >&2
bin=$(release_dir)
bench=$bin/wsgate-bench

# How many nodes GET /@cluster of node gw-1 lists.
nodes_seen() {
    curl -sf "http://${node_addrs[0]}/dev/@cluster" \
        | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["nodes"]))' 2>/dev/null || echo 0
}

# Three cluster nodes (gw-1..3) and one plain node, all with bench/wsgate.toml's routes. The
# echohttp route's stub is not started: no case here uses it.
start_nodes() {
    sed 's/STUB_ADDR/127.0.0.1:9/' bench/wsgate.toml > "$tmp/plain.toml"
    node_addrs=(); node_pids=()
    local n
    for n in 1 2 3; do
        { cat "$tmp/plain.toml"; echo; sed "s/REDIS_PORT/$redis_port/; s/NODE_ID/gw-$n/" bench/cluster.toml; } > "$tmp/gw-$n.toml"
        start_listener "$tmp/gw-$n.log" "$bin/wsgate" serve --config "$tmp/gw-$n.toml"
        node_addrs+=("$addr"); node_pids+=("$pid")
    done
    start_listener "$tmp/plain.log" "$bin/wsgate" serve --config "$tmp/plain.toml"
    plain_addr=$addr; plain_pid=$pid
    for _ in $(seq 1 100); do
        [ "$(nodes_seen)" = 3 ] && return 0
        sleep 0.1
    done
    echo "GET /@cluster does not list 3 nodes" >&2
    return 1
}

# note_exits REP: notes in gateway-log.txt every server that ended before it was stopped.
note_exits() {
    local names=(gw-1 gw-2 gw-3 plain redis) i
    local started=("${node_pids[@]}" "$plain_pid" "$redis_pid")
    for i in "${!names[@]}"; do
        running "${started[i]}" && continue
        { echo "rep $1 ${names[i]}: ended during the repetition; its last lines:"
          tail -5 "$tmp/${names[i]}.log.err" 2>/dev/null || tail -5 "$tmp/redis.log"; } >> "$out/gateway-log.txt"
    done
}

# stop_all REP: ends this repetition's processes, keeping the nodes' warnings and errors.
stop_all() {
    local log
    note_exits "$1"
    stop_pids
    for log in "$tmp"/gw-*.log.err "$tmp/plain.log.err"; do
        sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E 'WARN|ERROR' | head -20 \
            | sed "s#^#rep $1 $(basename "$log" .log.err): #" >> "$out/gateway-log.txt" || true
    done
}

# note REP ARGS...: shows a wsgate-bench command, and keeps it in commands.txt once.
note() {
    local rep=$1; shift
    echo "  wsgate-bench $*" >&2
    if [ "$rep" = 1 ]; then echo "wsgate-bench $*" >> "$out/commands.txt"; fi
}

# keep REP TAGS: the JSON line on stdin, with rep and TAGS (key=value ...), into results.jsonl.
keep() {
    # shellcheck disable=SC2086 # TAGS are words
    python3 bench/cluster_summary.py tag "rep=$1" $2 >> "$out/results.jsonl"
}

# failed REP ERRFILE ARGS...: notes a run that printed no result.
failed() {
    local rep=$1 err=$2; shift 2
    # The error and its causes, without the backtrace RUST_BACKTRACE may add.
    sed -n '/^Stack backtrace:/q; /./p' "$err" | head -8 > "$tmp/why"
    echo "  failed: $(cat "$tmp/why")" >&2
    { echo "rep $rep: wsgate-bench $*"; sed 's/^/    /' "$tmp/why"; } >> "$out/failures.txt"
}

# run REP TAGS ARGS...: one wsgate-bench run, its line tagged into results.jsonl.
run() {
    local rep=$1 tags=$2; shift 2
    note "$rep" "$@"
    if "$bench" "$@" > "$tmp/line.json" 2> "$tmp/last.err"; then
        keep "$rep" "$tags" < "$tmp/line.json"
    else
        failed "$rep" "$tmp/last.err" "$@"
    fi
}

used_memory() { rcli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}'; }

# The connections the nodes registered in Redis: HLEN of every P:{nN}:conns, summed.
registered() {
    local total=0 key
    for key in $(rcli --scan --pattern "$prefix:*:conns"); do
        total=$((total + $(rcli hlen "$key")))
    done
    echo "$total"
}

# measure_memory REP: $conns idle connections spread over the three nodes (RSS summed over them
# and Redis); Redis's used_memory with no client, then once all are registered.
measure_memory() {
    local rep=$1 before after count=0 idle
    before=$(used_memory)
    local args=(idle --case idle --target wsgate-cluster --url "$cluster_urls"
        --server-pid "$cluster_pids,$redis_pid" --redis "127.0.0.1:$redis_port"
        --connections "$conns" --hold-until "$tmp/release")
    note "$rep" "${args[@]}"
    rm -f "$tmp/release"
    "$bench" "${args[@]}" > "$tmp/idle.json" 2> "$tmp/idle.err" &
    idle=$!
    pids+=("$idle")
    # Until all are registered, or the count stands still for 10 s (connections failed), or 120 s.
    local until=$((SECONDS + 120)) last=-1 moved=$SECONDS
    while [ "$SECONDS" -lt "$until" ] && [ $((SECONDS - moved)) -lt 10 ] && running "$idle"; do
        count=$(registered)
        [ "$count" -ge "$conns" ] && break
        if [ "$count" != "$last" ]; then last=$count; moved=$SECONDS; fi
        sleep 0.1
    done
    after=$(used_memory)
    touch "$tmp/release"
    local status=0
    wait "$idle" || status=$?
    unset 'pids[${#pids[@]}-1]'     # reaped: its PID is no longer ours to signal
    if [ "$status" = 0 ]; then
        keep "$rep" "nodes=3 placement=spread cpu_summed_over=gw-1+gw-2+gw-3+redis" < "$tmp/idle.json"
    else
        failed "$rep" "$tmp/idle.err" "${args[@]}"
    fi
    echo '{"scenario": "redis-memory", "case": "redis-memory", "target": "wsgate-cluster"}' | keep "$rep" \
        "nodes=3 connections=$conns registered=$count used_memory_before=$before used_memory_after=$after"
}

# post_pair REP CONCURRENCY REQUESTS: receivers on gw-1; POSTs to gw-1 (same node) and to gw-2
# (cross node), in turn first on odd and even repetitions; then the plain node.
post_pair() {
    local rep=$1 c=$2 n=$3 case=post-c$2
    local common=(--connections "$post_conns" --concurrency "$c" --requests "$n")
    local a=${node_addrs[0]} b=${node_addrs[1]}
    local same=(post --case "$case" --target wsgate-cluster --url "ws://$a/dev" --mgmt "http://$a/dev"
        --server-pid "${node_pids[0]},$redis_pid" --redis "127.0.0.1:$redis_port" "${common[@]}")
    local cross=(post --case "$case" --target wsgate-cluster --url "ws://$a/dev" --mgmt "http://$b/dev"
        --server-pid "${node_pids[0]},${node_pids[1]},$redis_pid" --redis "127.0.0.1:$redis_port" "${common[@]}")
    local same_tags="nodes=3 placement=same-node cpu_summed_over=gw-1+redis"
    local cross_tags="nodes=3 placement=cross-node cpu_summed_over=gw-1+gw-2+redis"
    if [ $((rep % 2)) = 1 ]; then
        run "$rep" "$same_tags" "${same[@]}"
        run "$rep" "$cross_tags" "${cross[@]}"
    else
        run "$rep" "$cross_tags" "${cross[@]}"
        run "$rep" "$same_tags" "${same[@]}"
    fi
    run "$rep" "nodes=1 placement=single cpu_summed_over=plain" post --case "$case" --target wsgate \
        --url "ws://$plain_addr/dev" --mgmt "http://$plain_addr/dev" --server-pid "$plain_pid" "${common[@]}"
}

# broadcasts REP: @broadcast to $conns receivers spread over three nodes (sent to gw-1), then to
# as many on the plain node.
broadcasts() {
    local rep=$1
    run "$rep" "nodes=3 placement=spread cpu_summed_over=gw-1+gw-2+gw-3+redis" broadcast --case broadcast \
        --target wsgate-cluster --url "$cluster_urls" --mgmt "http://${node_addrs[0]}/dev" \
        --server-pid "$cluster_pids,$redis_pid" --redis "127.0.0.1:$redis_port" \
        --receivers "$conns" --rounds "$rounds" --mode broadcast
    run "$rep" "nodes=1 placement=single cpu_summed_over=plain" broadcast --case broadcast \
        --target wsgate --url "ws://$plain_addr/dev" --mgmt "http://$plain_addr/dev" \
        --server-pid "$plain_pid" --receivers "$conns" --rounds "$rounds" --mode broadcast
}

for rep in $(seq 1 "$reps"); do
    echo "==> repetition $rep of $reps" >&2
    start_redis "$tmp/redis.log"
    start_nodes
    cluster_urls="ws://${node_addrs[0]}/dev,ws://${node_addrs[1]}/dev,ws://${node_addrs[2]}/dev"
    cluster_pids="${node_pids[0]},${node_pids[1]},${node_pids[2]}"
    # Memory first, on fresh processes.
    measure_memory "$rep"
    run "$rep" "nodes=1 placement=single cpu_summed_over=plain" idle --case idle --target wsgate \
        --url "ws://$plain_addr/dev" --server-pid "$plain_pid" --connections "$conns"
    post_pair "$rep" 64 "$post_n"
    post_pair "$rep" 1 "$post_c1_n"
    broadcasts "$rep"
    stop_all "$rep"
done

{
    machine_lines
    echo "redis:     $(redis-server --version)"
    echo "mode:      $([ "$quick" = 1 ] && echo quick || echo full), $reps repetitions, interleaved; run at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$out/machine.txt"
python3 bench/cluster_summary.py summary "$out"
echo "==> wrote $out/results.jsonl and $out/summary.md" >&2
# A full run also becomes the "Cluster" section of BENCHMARKS.md.
if [ "$quick" = 0 ]; then
    python3 bench/cluster_summary.py splice "$out" BENCHMARKS.md
    echo "==> updated the Cluster section of BENCHMARKS.md" >&2
fi
