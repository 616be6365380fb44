#!/usr/bin/env bash
# Measures a binary upgrade that closes no socket (SIGUSR2): 10,000 plain connections get
# numbered POSTs at 3,000 a second while the gateway hands its listeners and every connection to
# a new process of the same binary. How long the handover takes, and that no connection closed
# and no message answered 200 was lost, doubled or reordered. A fresh gateway per run, 127.0.0.1
# only.
#
#   bench/upgrade.sh                        # one run: 10,000 connections, 3,000 POSTs/s
#   bench/upgrade.sh --reps 3 --connections 2000 --rate 1000
#   bench/upgrade.sh --no-signal            # the same run without the signal: a dry run of the
#                                           # bench against a gateway without USR2 (the signal
#                                           # would kill it); results in <date>-upgrade-dry,
#                                           # BENCHMARKS.md untouched
#
# Results: bench/results/<UTC date>-upgrade/results.jsonl (the bench's JSON line of each run, with
# the old process's exit status), bench.txt (the bench's own summary of each run), commands.txt,
# machine.txt, gateway-log.txt (the gateway's warnings and errors), failures.txt (runs that
# printed no result, if any) and README.md, which also becomes the "Upgrade without closing a
# socket (USR2)" section of BENCHMARKS.md. Exits non-zero when a run found a fault.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh

reps=1
connections=10000
rate=3000
signal=1
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps=${2:-}; shift ;;
        --connections) connections=${2:-}; shift ;;
        --rate) rate=${2:-}; shift ;;
        --no-signal) signal=0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
invocation="bench/upgrade.sh"
[ "$reps" != 1 ] && invocation+=" --reps $reps"
[ "$connections" != 10000 ] && invocation+=" --connections $connections"
[ "$rate" != 3000 ] && invocation+=" --rate $rate"
[ "$signal" = 0 ] && invocation+=" --no-signal"

tmp=$(mktemp -d)
pidfile="$tmp/wsgate.pid"
pids=()

# Whether PID runs this script's gateway: the binary on this script's own config file. The pid
# file names a process this script did not start itself (the old gateway did), so it is looked at
# before it is stopped.
started_here() {
    { tr '\0' ' ' < "/proc/$1/cmdline"; } 2>/dev/null | grep -qF -- "$tmp/wsgate.toml"
}

# Whether PID has exited: gone from /proc, or a zombie nobody has collected yet.
exited() {
    [ ! -e "/proc/$1/stat" ] || [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" = Z ]
}

# stop_gateway: ends the gateway of this run: the process the pid file names now (after an
# upgrade, the one the first process started) and the first one, if it still runs.
stop_gateway() {
    local current
    current=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$current" ] && started_here "$current"; then
        kill "$current" 2>/dev/null || true
        # Not this script's child after an upgrade: no `wait`, only a look at /proc.
        for _ in $(seq 1 150); do exited "$current" && break; sleep 0.1; done
        exited "$current" || echo "pid $current still running 15 s after SIGTERM" >&2
    fi
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    pids=()
}

cleanup() {
    stop_gateway
    rm -rf "$tmp"
}
trap cleanup EXIT
# The bench holds a socket per connection and per POST in flight (3,000 at most), and so does
# each gateway process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((connections + 4000)) ]; then
    echo "ulimit -n is $(ulimit -n): too few open files for $connections connections" >&2
    exit 1
fi

echo "==> building release binaries" >&2
cargo build --release --locked -p wsgate -p wsgate-bench >&2
bin=$(release_dir)
sed "s/STUB_ADDR/127.0.0.1:9/" bench/wsgate.toml > "$tmp/wsgate.toml"
# A gateway without the feature refuses --pid-file; then only the dry run can run, with a pid
# file written here.
if "$bin/wsgate" serve --help | grep -q -- --pid-file; then
    has_pid_file=1
elif [ "$signal" = 0 ]; then
    has_pid_file=0
else
    echo "$bin/wsgate has no --pid-file (no USR2 upgrade): only --no-signal can run" >&2
    exit 1
fi

# Read before this run empties its results folder: a rerun on the same day would otherwise count
# the emptied, committed files as uncommitted changes of the code measured.
machine=$(machine_lines)
out="bench/results/$(date -u +%Y-%m-%d)-upgrade"
[ "$signal" = 0 ] && out="$out-dry"
mkdir -p "$out"
for f in results.jsonl commands.txt bench.txt gateway-log.txt; do : > "$out/$f"; done
rm -f "$out/failures.txt"

# The load before the runs: the clients and the gateway share the cores with whatever else runs.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
faults=0
for rep in $(seq 1 "$reps"); do
    echo "==> run $rep of $reps" >&2
    rm -f "$pidfile"
    # A port of its own rather than 0: the new process gets the same arguments, and the clients
    # keep the one address.
    port=$(free_port)
    serve=("$bin/wsgate" serve --config "$tmp/wsgate.toml" --listen "127.0.0.1:$port")
    [ "$has_pid_file" = 1 ] && serve+=(--pid-file "$pidfile")
    start_listener "$tmp/gw.log" "${serve[@]}"
    first=$pid
    [ "$has_pid_file" = 0 ] && echo "$first" > "$pidfile"
    for _ in $(seq 1 100); do [ -s "$pidfile" ] && break; sleep 0.1; done
    cmd=("$bin/wsgate-bench" upgrade --url "ws://$addr/dev" --mgmt "http://$addr/dev"
         --pid-file "$pidfile" --connections "$connections" --rate "$rate" --deadline-secs 300)
    [ "$signal" = 0 ] && cmd+=(--no-signal)
    [ "$rep" = 1 ] && echo "${cmd[*]}" >> "$out/commands.txt"
    bench_exit=0
    timeout 400 "${cmd[@]}" > "$tmp/line.json" 2> "$tmp/bench.err" || bench_exit=$?
    cat "$tmp/bench.err" >&2
    { echo "run $rep:"; cat "$tmp/bench.err"; echo; } >> "$out/bench.txt"
    # The first process is this script's child: its exit status, if the upgrade ended it.
    if [ "$signal" = 1 ] && exited "$first"; then
        old_exit=0; wait "$first" || old_exit=$?
    else
        old_exit=running
    fi
    stop_gateway
    # Both processes write to the log the first one was given (the second inherits it).
    sed 's/\x1b\[[0-9;]*m//g' "$tmp/gw.log.err" 2>/dev/null | grep -E 'WARN|ERROR' | sed "s#^#run $rep: #" >> "$out/gateway-log.txt" || true
    if [ -s "$tmp/line.json" ]; then
        python3 bench/cluster_summary.py tag rep="$rep" old_exit_status="$old_exit" bench_exit="$bench_exit" \
            < "$tmp/line.json" >> "$out/results.jsonl"
    else
        { echo "run $rep printed no result (exit $bench_exit): ${cmd[*]}"; tail -5 "$tmp/bench.err"; } >> "$out/failures.txt"
    fi
    [ "$bench_exit" = 0 ] || faults=$((faults + 1))
done
{
    echo "$machine"
    echo "load:      $load_before before the runs (1, 5, 15 min)"
    echo "mode:      $reps run(s) of $connections connections at $rate POSTs/s; run at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$out/machine.txt"

python3 - "$out" "$invocation" <<'PY'
import json, sys
from pathlib import Path
folder, invocation = Path(sys.argv[1]), sys.argv[2]
runs = [json.loads(l) for l in (folder / "results.jsonl").read_text().splitlines() if l.strip()]
n = lambda v: "–" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"
ms = lambda v: "–" if v is None else f"{v:,.0f} ms" if v >= 10 else f"{v:.1f} ms"
def retried(r, prefix=""):
    statuses = ", ".join(f"{s}: {c:,}" for s, c in r[prefix + "retried_statuses"].items()) or "no status"
    return f"{n(r[prefix + 'posts_retried'])} ({statuses}; connection errors: {n(r[prefix + 'connection_errors'])})"
rows = [
    ("connections held through the upgrade", lambda r: n(r["connections"])),
    ("signal", lambda r: "SIGUSR2" if r["signal_sent"] else "none (--no-signal)"),
    ("new pid in the pid file after the signal", lambda r: ms(r["new_pid_after_ms"])),
    ("old process exited after the signal (exit status)", lambda r: f"{ms(r['old_exit_after_ms'])} ({r.get('old_exit_status')})"),
    ("the upgrade window (signal → both done)", lambda r: ms(r["window_ms"])),
    ("POSTs/s asked / sent; most in flight at once", lambda r: f"{n(r['rate_per_s'])} / {n(r['posts_per_s'])}; {n(r.get('max_in_flight'))}"),
    ("POSTs due but not sent: connection still retrying / in-flight cap", lambda r: f"{n(r['passed_over_busy'])} / {n(r['passed_over_in_flight_cap'])}"),
    ("POSTs made during the window", lambda r: n(r["window_posts"])),
    ("… answered 200", lambda r: n(r["window_posts_ok"])),
    ("… that needed a retry", lambda r: retried(r, "window_")),
    ("… first attempt → 200: p50 / p99 / slowest", lambda r: f"{ms(r['window_post_p50_ms'])} / {ms(r['window_post_p99_ms'])} / {ms(r['window_post_max_ms'])}"),
    ("POSTs of the whole run / answered 200 / retried", lambda r: f"{n(r['posts'])} / {n(r['posts_ok'])} / {n(r['posts_retried'])}"),
    ("messages answered 200 that arrived (whole run)", lambda r: n(r["delivered"])),
    ("… lost / doubled / out of order / arrived without a 200", lambda r: f"{n(r['lost'])} / {n(r['duplicates'])} / {n(r['out_of_order'])} / {n(r['arrived_without_200'])}"),
    ("connections closed or failed during the run", lambda r: n(r["closed"])),
    ("afterwards: connections that answered an echo", lambda r: n(r["echoes_answered"])),
    ("afterwards: connections that got a POST (answered 200)", lambda r: f"{n(r['check_delivered'])} ({n(r['check_posts_ok'])})"),
    ("gateway RSS before (old) / after (new)", lambda r: f"{n(r['rss_before_kib'])} / {n(r['rss_after_kib'])} KiB"),
]
commands = (folder / "commands.txt").read_text().strip()
lines = ["# Upgrade without closing a socket (USR2)", "",
         f"Made by `{invocation}`: {len(runs)} run(s), each on a fresh gateway (`bench/wsgate.toml`, "
         "release build); the bench's exact command (its address and pid file are the run's own):", "",
         "```", commands, "```", "", "```", (folder / "machine.txt").read_text().rstrip(), "```", "",
         "| | " + " | ".join(f"run {r['rep']}" for r in runs) + " |",
         "|---|" + "---:|" * len(runs)]
lines += [f"| {label} | " + " | ".join(cell(r) for r in runs) + " |" for label, cell in rows]
lines += ["", "Each connection gets numbered messages (`POST @connections/{id}`, round-robin over "
          "all connections, the next number only once the previous one was answered), retried on "
          "429/5xx and on a connection error as boto3 would, with 10–200 ms waits. The window runs "
          "from the signal until the pid file names the new process and the old one has exited; "
          "posting goes on 2 s before and after it. Afterwards every connection must answer an "
          "echo on its socket and get one more POST.", ""]
problems = [f"- run {r['rep']}: {p}" for r in runs for p in r.get("problems", [])]
problems += [f"- run {r['rep']}: the old process exited with {r['old_exit_status']}" for r in runs
             if r.get("signal_sent") and r.get("old_exit_status") not in (0, "running")]
failures = folder / "failures.txt"
if failures.exists():
    problems.append("- runs that printed no result: see failures.txt")
if (folder / "gateway-log.txt").read_text().strip():
    problems.append("- the gateway logged warnings or errors: see gateway-log.txt")
lines += ["## Problems seen", "", *(problems or ["None: no connection closed, every message answered 200 arrived once and in order."]), ""]
(folder / "README.md").write_text("\n".join(lines))
PY
if [ "$signal" = 1 ]; then
    python3 bench/cluster_summary.py splice "$out" BENCHMARKS.md upgrade
    echo "==> wrote $out/README.md and the Upgrade section of BENCHMARKS.md" >&2
else
    echo "==> wrote $out/README.md (dry run: BENCHMARKS.md untouched)" >&2
fi
[ "$faults" = 0 ] || { echo "==> $faults run(s) found faults: see $out/README.md" >&2; exit 1; }
