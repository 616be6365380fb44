#!/usr/bin/env python3
"""The helpers of bench/cluster.sh and bench/cluster-resume.sh (standard library only).

    cluster_summary.py tag KEY=VALUE ... < LINE   # adds fields to a JSON line (a VALUE that parses
                                                  # as JSON is taken as such, else as a string)
    cluster_summary.py summary DIR                # DIR/results.jsonl -> DIR/summary.md
    cluster_summary.py cluster-resume DIR CMD     # DIR/results.jsonl of bench/cluster-resume.sh,
                                                  # run as CMD -> DIR/README.md and DIR/summary.md
    cluster_summary.py splice DIR FILE [NAME]     # DIR/summary.md (README.md for upgrade) ->
                                                  # FILE's section NAME
                                                  # (cluster, the default, resume, cluster-resume
                                                  # or upgrade), between markers: replaced, or
                                                  # added at the end

The summary puts the medians over the repetitions side by side: POSTs to a connection on the same
node and on another node (and on one plain node), a broadcast over three nodes and on one node,
Redis messages per broadcast and Redis memory per connection.
"""

import json
import statistics
import sys
from functools import partial
from pathlib import Path

MIB = 1024 * 1024


def tag(pairs: list[str]) -> None:
    line = json.loads(sys.stdin.read())
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            line[key] = json.loads(value)
        except json.JSONDecodeError:
            line[key] = value
    print(json.dumps(line))


def median(runs: list[dict], field: str) -> float | None:
    values = [run[field] for run in runs if isinstance(run.get(field), (int, float))]
    return statistics.median(values) if values else None


def num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:,.0f}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a is not None and b else "–"


def diff(a: float | None, b: float | None) -> str:
    return f"{a - b:+.3f} ms" if a is not None and b is not None else "–"


class Results:
    """results.jsonl, by (case, placement)."""

    def __init__(self, lines: list[dict]) -> None:
        self.lines = lines

    def runs(self, case: str, placement: str | None = None) -> list[dict]:
        return [line for line in self.lines
                if line.get("case") == case and placement in (None, line.get("placement"))]

    def med(self, case: str, placement: str | None, field: str) -> float | None:
        return median(self.runs(case, placement), field)


POST_ROWS = [("single", "one node, no [cluster]", "plain"),
             ("same-node", "3 nodes, POST to the receivers' node", "gw-1 + Redis"),
             ("cross-node", "3 nodes, POST to another node", "gw-1 + gw-2 + Redis")]


def post_section(r: Results, concurrency: int) -> list[str]:
    case = f"post-c{concurrency}"
    if not r.runs(case):
        return []
    out = [f"## POST @connections, {concurrency} in flight", "",
           "| setup | runs | req/s | p50 ms | p99 ms | CPU µs / POST | CPU summed over "
           "| PUBLISH / POST | Redis commands / POST |",
           "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for placement, label, over in POST_ROWS:
        m = partial(r.med, case, placement)
        out.append(f"| {label} | {len(r.runs(case, placement))} | {num(m('req_per_s'), 0)} "
                   f"| {num(m('latency_p50_ms'))} | {num(m('latency_p99_ms'))} "
                   f"| {num(m('server_cpu_us_per_op'), 1)} | {over} "
                   f"| {num(m('redis_publishes_per_request'), 2)} "
                   f"| {num(m('redis_commands_per_request'), 2)} |")
    same, cross = partial(r.med, case, "same-node"), partial(r.med, case, "cross-node")
    added = diff(cross("latency_p50_ms"), same("latency_p50_ms"))
    out += ["", f"Cross-node minus same-node: p50 {added}, "
            f"p99 {diff(cross('latency_p99_ms'), same('latency_p99_ms'))}; CPU per POST (summed) "
            f"{ratio(cross('server_cpu_us_per_op'), same('server_cpu_us_per_op'))} of same-node's."]
    if concurrency == 1 and cross("latency_p50_ms") is not None and same("latency_p50_ms") is not None:
        met = cross("latency_p50_ms") - same("latency_p50_ms") <= 0.5
        out.append(f"Target: added p50 latency over same-node ≤ 0.5 ms: {'met' if met else '**missed**'}.")
    return out + [""]


def broadcast_section(r: Results) -> list[str]:
    if not r.runs("broadcast"):
        return []
    out = ["## Broadcast (one POST @broadcast, sent to gw-1 in the cluster)", "",
           "| setup | receivers | all delivered ms | delay p50 ms | delay p99 ms "
           "| CPU µs / delivery (summed) | PUBLISH / broadcast | Redis commands / broadcast "
           "| incomplete rounds |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [("single", "one node"), ("spread", "3 nodes (receivers spread evenly)")]
    for placement, label in rows:
        m = partial(r.med, "broadcast", placement)
        incomplete = sum(run.get("incomplete_rounds", 0) for run in r.runs("broadcast", placement))
        out.append(f"| {label} | {num(m('receivers'), 0)} | {num(m('all_delivered_ms_median'), 1)} "
                   f"| {num(m('delay_p50_ms'))} | {num(m('delay_p99_ms'))} "
                   f"| {num(m('server_cpu_us_per_op'), 2)} | {num(m('redis_publishes_per_round'), 2)} "
                   f"| {num(m('redis_commands_per_round'), 1)} | {incomplete} |")
    three = r.med("broadcast", "spread", "all_delivered_ms_median")
    one = r.med("broadcast", "single", "all_delivered_ms_median")
    out += ["", f"Time to the last delivery, 3 nodes / 1 node: {ratio(three, one)}. Redis commands per "
            "broadcast count everything Redis ran during the rounds, the nodes' heartbeats included.", ""]
    return out


def verdict(value: float | None, bound: float) -> str:
    if value is None:
        return "not measured"
    return "met" if value <= bound else "**missed**"


def targets_section(r: Results) -> list[str]:
    """Issue 13's figures, each against its bound."""
    def cpu_ratio(case: str) -> float | None:
        same = r.med(case, "same-node", "server_cpu_us_per_op")
        cross = r.med(case, "cross-node", "server_cpu_us_per_op")
        return cross / same if cross is not None and same else None

    def added(case: str) -> float | None:
        same = r.med(case, "same-node", "latency_p50_ms")
        cross = r.med(case, "cross-node", "latency_p50_ms")
        return cross - same if cross is not None and same is not None else None

    three = r.med("broadcast", "spread", "all_delivered_ms_median")
    one = r.med("broadcast", "single", "all_delivered_ms_median")
    slower = three / one if three is not None and one else None
    publishes = r.med("broadcast", "spread", "redis_publishes_per_round")
    show = lambda v, unit="": "–" if v is None else f"{v:.3g}{unit}"
    rows = [("POST to another node: added p50 over same-node, 1 in flight", "≤ 0.5 ms",
             show(added("post-c1"), " ms"), verdict(added("post-c1"), 0.5)),
            ("… and with 64 in flight (a loaded node; for comparison)", "–", show(added("post-c64"), " ms"), "–"),
            ("CPU per POST summed over both nodes and Redis, 64 in flight", "≤ 3× same-node",
             show(cpu_ratio("post-c64"), "×"), verdict(cpu_ratio("post-c64"), 3)),
            ("… and with 1 in flight (every hop wakes an idle process)", "≤ 3× same-node",
             show(cpu_ratio("post-c1"), "×"), verdict(cpu_ratio("post-c1"), 3)),
            ("Redis PUBLISH per broadcast to 15,000 over 3 nodes", "≤ 3 (the nodes)",
             show(publishes), verdict(publishes, 3)),
            ("Time to last delivery, 3 nodes / one node with as many", "≤ 1.5×",
             show(slower, "×"), verdict(slower, 1.5))]
    return ["## Targets", "", "| figure | target | measured | |", "|---|---|---:|---|",
            *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows], "",
            "With one POST in flight every process on the path (the node that takes the call, Redis, "
            "the node that holds the connection, Redis again) wakes from idle for each POST: Redis "
            "alone then spends about as much CPU on its two PUBLISHes as a whole same-node POST "
            "costs, so no request/reply over Redis can stay within 3× there. Under load (64 in "
            "flight) the wake-ups are shared by many POSTs and the ratio is the one above.", ""]


def memory_section(r: Results) -> list[str]:
    mem = r.runs("redis-memory")
    if not mem:
        return []
    per_conn = [(m["used_memory_after"] - m["used_memory_before"]) / m["registered"]
                for m in mem if m.get("registered")]
    bytes_per = statistics.median(per_conn) if per_conn else None
    million = bytes_per * 1e6 / MIB if bytes_per is not None else None
    def rss(placement: str) -> float | None:
        return r.med("idle", placement, "rss_per_connection_kib")

    return ["## Memory per connection", "",
            "| what | median |", "|---|---:|",
            f"| Redis used_memory per registered connection | {num(bytes_per, 0)} B |",
            f"| … extrapolated to 1,000,000 connections | {num(million, 0)} MiB |",
            f"| Redis commands per connection opened | {num(r.med('idle', 'spread', 'redis_commands_per_connection'), 2)} |",
            f"| RSS per connection, 3 nodes + Redis summed | {num(rss('spread'), 2)} KiB |",
            f"| RSS per connection, one node | {num(rss('single'), 2)} KiB |",
            "", f"Connections per run: {num(median(mem, 'connections'), 0)}; registered in Redis "
            f"when measured: {', '.join(str(m.get('registered')) for m in mem)}.", ""]


def problems(r: Results, folder: Path) -> list[str]:
    seen = []
    for run in r.lines:
        where = f"rep {run.get('rep')} {run.get('case')} {run.get('placement', '')}".strip()
        for field in ("errors", "failed", "incomplete_rounds"):
            if run.get(field):
                seen.append(f"- {where}: {field} = {run[field]}")
        if run.get("all_arrived") is False:
            seen.append(f"- {where}: {run.get('arrived')} of {run.get('requests')} POSTs arrived")
        if run.get("case") == "redis-memory" and run.get("registered") != run.get("connections"):
            seen.append(f"- {where}: {run.get('registered')} of {run.get('connections')} registered")
    failures = folder / "failures.txt"
    if failures.exists():
        seen.append(f"- runs that printed no result: see failures.txt ({failures.read_text().count('wsgate-bench')})")
    return ["## Problems seen", "", *(seen or ["None: every POST arrived, every round was complete."]), ""]


RESUME_ROWS = [("cross", "gw-2 (the session's node, gw-1, lets it go)"),
               ("same", "gw-1 (same node, in the same cluster)"),
               ("kill", "gw-2 after SIGKILL of gw-1 (taken from Redis)"),
               ("kill-now", "gw-2 after SIGKILL of gw-1 at once after the POSTs")]


def cluster_resume(folder: Path, invocation: str) -> None:
    """README.md of a bench/cluster-resume.sh run (medians over the repetitions, with the bench's
    commands), and summary.md, the same without the commands, for BENCHMARKS.md."""
    runs = [json.loads(l) for l in (folder / "results.jsonl").read_text().splitlines() if l.strip()]
    machine = (folder / "machine.txt").read_text().rstrip() if (folder / "machine.txt").exists() else ""
    commands = (folder / "commands.txt").read_text().strip()
    ms = lambda v: "–" if v is None else f"{v:,.0f} ms" if v >= 100 else f"{v:.1f} ms"
    made = (f"Made by `{invocation}`: medians over {len({r.get('rep') for r in runs})} repetitions, "
            "each run on fresh processes (one redis-server, two nodes gw-1 and gw-2 with "
            "`bench/wsgate.toml` and `bench/cluster-resume.toml`: heartbeat 200 ms, node_timeout 2 s, "
            f"release build), {runs[0]['connections'] if runs else 0:,} clients connected to gw-1.")
    out = ["", "```", machine, "```", "",
           "| resumed on | in flight | resumed (of) | failed (then resumed on retry) | all resumed in "
           "| resume p50 | resume p99 "
           "| server CPU / resume | CPU summed over | Redis commands / resume |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for placement, label in RESUME_ROWS:
        for q in ("all", "100"):
            rs = [r for r in runs if r.get("placement") == placement and str(r.get("in_flight")) == q]
            if not rs:
                continue
            m = partial(median, rs)
            out.append(f"| {label} | {q} | {min(r['resumed'] for r in rs):,} ({rs[0]['connections']:,}) "
                       f"| {sum(r['failed'] for r in rs):,} ({sum(r.get('failed_then_resumed_on_retry', 0) for r in rs):,}) "
                       f"| {ms(m('resume_all_ms'))} "
                       f"| {ms(m('resume_p50_ms'))} | {ms(m('resume_p99_ms'))} "
                       f"| {num(m('server_cpu_us_per_op'), 0)} µs | {rs[0].get('cpu_summed_over', '')} "
                       f"| {num(m('redis_commands_per_resume'), 1)} |")
    live = median(runs, "redis_bytes_per_live_connection")
    away = median(runs, "redis_bytes_per_suspended_session")
    out += ["", "`resumed` is the fewest over the repetitions, `failed` the sum. A client counts as "
            "resumed once it got its `resumed` frame naming its own connection id and then, as seq 1, "
            "the message posted to it while it was away (`POST @connections` to gw-1). A failed resume "
            "is tried once more a second later with the same token, to tell a refused session from a "
            "lost one (not counted as resumed: a real client gets close code 4410 and connects anew). "
            "Each client drops its socket with a reset, as a lost network does. With every client at "
            "once, their connection burst overflows the node's listen queue and many connects wait "
            "for a SYN retransmit (1 s): that sets the p50 and p99 of those rows on this machine, "
            "cross-node or not, so compare the rows with 100 in flight. With SIGKILL, the bench kills gw-1 "
            "1 s after the last POST was answered (gw-1 writes to Redis in batches, after answering), "
            "or at once (`kill-now`: does what gw-1 answered 200 for survive its death?), and times "
            "count from the kill: they include the wait for gw-1's entry to expire "
            "(node_timeout 2 s after its last heartbeat). CPU is user + system time of the processes "
            "named, summed; Redis commands come from `INFO commandstats` over the resumes (heartbeats "
            "included).", "",
            "| Redis memory (`used_memory`, after − before, / clients) | median |", "|---|---:|",
            f"| per live resumable connection (all {runs[0]['connections']:,} open at once) | "
            f"{num(live, 0)} B |" if runs else "| per live resumable connection | – |",
            f"| per suspended session (dropped, nothing posted yet) | {num(away, 0)} B |", "",
            "Both include the registry's entry that every connection of a cluster node has.", ""]
    seen = []
    for r in runs:
        where = f"rep {r.get('rep')} {r.get('case')}"
        if r.get("failed"):
            seen.append(f"- {where}: {r['failed']} failed ({r.get('failed_then_resumed_on_retry')} resumed on "
                        f"a retry 1 s later): {json.dumps(r.get('failure_reasons'))}")
        if r.get("posted_while_away") != r.get("connections"):
            seen.append(f"- {where}: {r.get('posted_while_away')} of {r.get('connections')} POSTs sent")
    reasons = {reason for r in runs for reason in (r.get("failure_reasons") or {})}
    if any("resume token" in reason for reason in reasons):
        seen.append("- `resume-failed unknown, used or expired resume token` (close 4410) for sessions that a "
                    "retry with the same token then resumed (see the counts): the session was there, "
                    "the resume was refused")
    if any("missed message did not come" in reason for reason in reasons):
        seen.append("- `resumed, but the missed message did not come`: the session came back without the "
                    "message gw-1 had answered 200 for: that message was lost")
    failures = folder / "failures.txt"
    if failures.exists():
        seen.append(f"- runs that printed no result: see failures.txt ({failures.read_text().count('wsgate-bench')})")
    log = folder / "gateway-log.txt"
    if log.exists() and log.read_text().strip():
        seen.append("- the nodes logged warnings or errors: see gateway-log.txt")
    out += ["## Problems seen", "", *(seen or ["None: every client resumed with its missed message."]), ""]
    title = ["# Resumable connections across nodes", ""]
    readme = [*title, made + " The bench's commands (addresses and PIDs are the first "
              "repetition's own):", "", "```", commands, "```", *out]
    (folder / "README.md").write_text("\n".join(readme))
    (folder / "summary.md").write_text("\n".join([*title, made + " The bench's exact commands are in "
                                                  "that folder's README.md.", *out]))


def summary(folder: Path) -> None:
    lines = [json.loads(l) for l in (folder / "results.jsonl").read_text().splitlines() if l.strip()]
    r = Results(lines)
    machine = (folder / "machine.txt").read_text() if (folder / "machine.txt").exists() else ""
    reps = len({line.get("rep") for line in lines})
    text = ["# Cluster mode vs one node", "",
            f"Made by `bench/cluster_summary.py` from `results.jsonl` here: medians over {reps} "
            "repetitions. CPU is user + system time of the processes named, summed, per operation; "
            "client and servers share the machine's cores.", "", "```", machine.rstrip(), "```", "",
            *targets_section(r), *post_section(r, 64), *post_section(r, 1), *broadcast_section(r), *memory_section(r),
            *problems(r, folder)]
    (folder / "summary.md").write_text("\n".join(text))


# What an earlier version wrote before the Cluster section (it then ran to the end of the file).
LEGACY_MARK = "## Cluster\n\n<!-- bench/cluster.sh writes this section: do not edit by hand -->"

# Each section: its title, the sentence under it, and the file in the results folder it comes from.
SECTIONS = {
    "cluster": ("Cluster", "`bench/cluster.sh` (results in `{folder}/`): one redis-server, three nodes and one "
                "plain node, fresh per repetition, all on this machine.", "summary.md"),
    "resume": ("Resumable connections", "`bench/resume.sh` (results in `{folder}/`): a fresh gateway per "
               "run, the clients on the same machine.", "summary.md"),
    "cluster-resume": ("Resumable connections across nodes", "`bench/cluster-resume.sh` (results in "
                       "`{folder}/`): clients of one node resume on another, on the same one, and on "
                       "another after the first was killed; the clients on the same machine.",
                       "summary.md"),
    "upgrade": ("Upgrade without closing a socket (USR2)", "`bench/upgrade.sh` (results in `{folder}/`): "
                "`kill -USR2` while every connection gets numbered POSTs, the clients on the same "
                "machine.", "README.md"),
}


def splice(folder: Path, target: Path, name: str = "cluster") -> None:
    """Puts the summary in `folder` into `target` (BENCHMARKS.md) as its section `name`, headings
    one level down, between markers: replaces what an earlier run put there, else appends it."""
    title, intro, source = SECTIONS[name]
    begin, end = f"<!-- {name}: written by bench/{name}.sh, do not edit by hand -->", f"<!-- end of {name} -->"
    if not (folder / source).exists():
        # A run that stopped before writing it: the section stays as the last complete run left it.
        print(f"{folder / source} does not exist: section {name} of {target} left as it was", file=sys.stderr)
        return
    summary_lines = (folder / source).read_text().splitlines()
    body = ["#" + line if line.startswith("#") else line for line in summary_lines[1:]]
    block = "\n".join([begin, f"## {title}", "", intro.format(folder=folder.as_posix()), *body, end])
    text = target.read_text() if target.exists() else ""
    if LEGACY_MARK in text:
        text = text.split(LEGACY_MARK)[0]
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    target.write_text(text)


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "tag":
        tag(sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "summary":
        summary(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "cluster-resume":
        cluster_resume(Path(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) in (4, 5) and sys.argv[1] == "splice":
        splice(Path(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
