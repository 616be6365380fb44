#!/usr/bin/env bash
# Measures resumable connections (wsgate.reliable.v1): memory per suspended session, and the time
# and CPU to resume many clients at once. Fresh gateway per run, three repetitions, 127.0.0.1 only.
#
#   bench/resume.sh            # 1,000 resumes all at once; 1,000 and 10,000 with 100 in flight
#   bench/resume.sh --reps 5
#
# Results: bench/results/<UTC date>-resume/results.jsonl (one JSON line per run), machine.txt,
# commands.txt and summary.md (medians), which also becomes a section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh

reps=3
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps=${2:-}; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

out="bench/results/$(date -u +%Y-%m-%d)-resume"
mkdir -p "$out"
: > "$out/results.jsonl"
: > "$out/commands.txt"
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

echo "==> building release binaries" >&2
cargo build --release --locked -p wsgate -p wsgate-bench >&2
bin=$(release_dir)
sed "s/STUB_ADDR/127.0.0.1:9/" bench/wsgate.toml > "$tmp/wsgate.toml"

# case CONNECTIONS CONCURRENCY (empty: all at once)
cases=("1000 " "1000 100" "10000 100")
for rep in $(seq 1 "$reps"); do
    for spec in "${cases[@]}"; do
        read -r n q <<< "$spec"
        start_listener "$tmp/gw.log" "$bin/wsgate" serve --config "$tmp/wsgate.toml" --listen 127.0.0.1:0
        gw=$pid
        cmd=("$bin/wsgate-bench" resume --url "ws://$addr/dev" --mgmt "http://$addr/dev" --server-pid "$gw" --connections "$n")
        [ -n "$q" ] && cmd+=(--concurrency "$q")
        echo "  ${cmd[*]}" >> "$out/commands.txt"
        "${cmd[@]}" --case "resume-$n-${q:-all}" | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); d['rep']=$rep; d['in_flight']='${q:-all}'; print(json.dumps(d))" >> "$out/results.jsonl"
        kill "$gw"; wait "$gw" 2>/dev/null || true
    done
done
{ machine_lines; echo "mode:      $reps repetitions; run at $(date -u +%Y-%m-%dT%H:%M:%SZ)"; } > "$out/machine.txt"
python3 - "$out" <<'PY'
import json, statistics, sys
from pathlib import Path
folder = Path(sys.argv[1])
runs = [json.loads(l) for l in (folder / "results.jsonl").read_text().splitlines() if l.strip()]
cases = sorted({r["case"] for r in runs}, key=lambda c: (int(c.split("-")[1]), c.split("-")[2] != "all"))
med = lambda rs, k: statistics.median(r[k] for r in rs)
lines = ["# Resumable connections", "", "Made by `bench/resume.sh`: medians over the repetitions.", "",
         "```", (folder / "machine.txt").read_text().rstrip(), "```", "",
         "| clients | resumes in flight | resumed (of) | all resumed in | resume p50 | resume p99 | server CPU / resume | RSS per suspended session |",
         "|---:|---:|---:|---:|---:|---:|---:|---:|"]
for case in cases:
    rs = [r for r in runs if r["case"] == case]
    lines.append(f"| {rs[0]['connections']:,} | {rs[0]['in_flight']} | {min(r['resumed'] for r in rs):,} ({rs[0]['connections']:,}) "
                 f"| {med(rs, 'resume_all_ms'):.0f} ms | {med(rs, 'resume_p50_ms'):.1f} ms | {med(rs, 'resume_p99_ms'):.1f} ms "
                 f"| {med(rs, 'server_cpu_us_per_op'):.0f} µs | {med(rs, 'rss_per_suspended_session_kib'):.2f} KiB |")
lines += ["", "Each client drops its socket with a reset, gets one message posted while away, and resumes: "
          "`resumed` counts those that got their `resumed` frame and that message. With every client at "
          "once, the client's connection burst overflows the listen queue and some connects wait for a "
          "SYN retransmit (1 s), which sets the p99. The memory figure is the server's RSS growth over "
          "the sessions, opened and dropped 100 at a time.", ""]
(folder / "summary.md").write_text("\n".join(lines))
PY
python3 bench/cluster_summary.py splice "$out" BENCHMARKS.md resume
echo "==> wrote $out/results.jsonl and $out/summary.md, and the Resumable connections section of BENCHMARKS.md" >&2
