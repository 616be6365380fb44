//! `wsgate-bench report`: medians of a results folder's repetitions, side-by-side tables with
//! ratios against the baseline and the peer, the targets met or missed, and PNG charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;
use serde_json::Value;

/// `report` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder with results.jsonl (and machine.txt, commands.txt) written by bench/run.sh.
    #[arg(long)]
    pub results: PathBuf,
    /// The Markdown file to write.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// Hand-written analysis (profiles, why a target is missed) included after the targets.
    #[arg(long, default_value = "bench/analysis.md")]
    pub notes: PathBuf,
}

/// The targets, in the order tables show them.
const TARGETS: [&str; 3] = ["wsgate", "baseline", "serverless-offline"];

/// A case of the report: its title, the metrics shown (key, heading), and the metric charted.
struct Case {
    name: &'static str,
    title: &'static str,
    metrics: &'static [(&'static str, &'static str)],
    /// The throughput metric compared with serverless-offline's (higher is better).
    rate: &'static str,
    /// The case of the baseline's runs that wsgate's figures are divided by, when the baseline
    /// runs one: the signed POSTs are set against the baseline's plain ones (it has no auth).
    baseline: Option<&'static str>,
    /// The metrics followed by a "× baseline" column: wsgate's median over the baseline's.
    against_baseline: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "idle",
        title: "Idle connections: memory per connection",
        metrics: &[
            ("connections", "connections"),
            ("rss_per_connection_kib", "RSS KiB / conn"),
            (
                "kernel_socket_slab_bytes_per_end",
                "kernel socket slabs B / end",
            ),
            ("kernel_tcp_mem_bytes_per_end", "kernel TCP buffers B / end"),
            ("connect_rate_per_s", "connects/s"),
            ("connect_p50_ms", "connect p50 ms"),
            ("connect_p99_ms", "connect p99 ms"),
            ("server_cpu_us_per_op", "server CPU µs / connect"),
        ],
        rate: "connect_rate_per_s",
        baseline: Some("idle"),
        against_baseline: &["rss_per_connection_kib", "connect_rate_per_s"],
    },
    Case {
        name: "connect",
        title: "Connect + close (no $connect route)",
        metrics: &[
            ("connections", "connections"),
            ("connects_per_s", "connects/s"),
            ("connect_close_p50_ms", "p50 ms"),
            ("connect_close_p99_ms", "p99 ms"),
            ("server_cpu_us_per_op", "server CPU µs / op"),
            ("client_cpu_us_per_op", "client CPU µs / op"),
        ],
        rate: "connects_per_s",
        baseline: Some("connect"),
        against_baseline: &["connects_per_s", "server_cpu_us_per_op"],
    },
    Case {
        name: "echo-mock",
        title: "Echo through a route response (mock integration)",
        metrics: &[
            ("messages", "messages"),
            ("msgs_per_s", "msgs/s"),
            ("latency_p50_ms", "p50 ms"),
            ("latency_p90_ms", "p90 ms"),
            ("latency_p99_ms", "p99 ms"),
            ("latency_max_ms", "max ms"),
            ("server_cpu_us_per_op", "server CPU µs / msg"),
            ("client_cpu_us_per_op", "client CPU µs / msg"),
        ],
        rate: "msgs_per_s",
        baseline: Some("echo-mock"),
        against_baseline: &["msgs_per_s", "server_cpu_us_per_op"],
    },
    Case {
        name: "echo-http",
        title: "Echo through the http integration and a stub backend",
        metrics: &[
            ("messages", "messages"),
            ("msgs_per_s", "msgs/s"),
            ("latency_p50_ms", "p50 ms"),
            ("latency_p99_ms", "p99 ms"),
            ("server_cpu_us_per_op", "server CPU µs / msg"),
            ("client_cpu_us_per_op", "client CPU µs / msg"),
        ],
        rate: "msgs_per_s",
        baseline: None,
        against_baseline: &[],
    },
    Case {
        name: "function-echo",
        title: "The same Node handler behind a route: wsgate dev vs serverless-offline (same serverless.yml)",
        metrics: &[
            ("messages", "messages"),
            ("first_message_ms", "first message (cold) ms"),
            ("msgs_per_s", "msgs/s"),
            ("latency_p50_ms", "warm p50 ms"),
            ("latency_p99_ms", "warm p99 ms"),
            (
                "server_cpu_us_per_op",
                "server CPU µs / msg (with children)",
            ),
        ],
        rate: "msgs_per_s",
        baseline: None,
        against_baseline: &[],
    },
    Case {
        name: "post",
        title: "POST @connections (64 in flight)",
        metrics: &[
            ("requests", "requests"),
            ("req_per_s", "req/s"),
            ("latency_p50_ms", "p50 ms"),
            ("latency_p99_ms", "p99 ms"),
            ("server_cpu_us_per_op", "server CPU µs / POST"),
            ("client_cpu_us_per_op", "client CPU µs / POST"),
            ("all_arrived", "all arrived"),
        ],
        rate: "req_per_s",
        baseline: Some("post"),
        against_baseline: &["req_per_s", "server_cpu_us_per_op"],
    },
    Case {
        name: "post-sigv4",
        title: "POST @connections, SigV4-signed (64 in flight)",
        metrics: &[
            ("requests", "requests"),
            ("req_per_s", "req/s"),
            ("latency_p50_ms", "p50 ms"),
            ("latency_p99_ms", "p99 ms"),
            ("server_cpu_us_per_op", "server CPU µs / POST"),
            ("client_cpu_us_per_op", "client CPU µs / POST"),
            ("all_arrived", "all arrived"),
        ],
        rate: "req_per_s",
        baseline: Some("post"),
        against_baseline: &["req_per_s", "server_cpu_us_per_op"],
    },
    Case {
        name: "broadcast",
        title: "Broadcast: one sender, N receivers",
        metrics: &[
            ("receivers", "receivers"),
            ("all_delivered_ms_median", "all delivered ms"),
            ("deliveries_per_s", "deliveries/s"),
            ("delay_p50_ms", "delay p50 ms"),
            ("delay_p99_ms", "delay p99 ms"),
            ("server_cpu_us_per_op", "server CPU µs / delivery"),
        ],
        rate: "deliveries_per_s",
        baseline: Some("broadcast"),
        against_baseline: &["deliveries_per_s", "server_cpu_us_per_op"],
    },
    Case {
        name: "broadcast-posts",
        title: "The same broadcast as one POST @connections per receiver (64 in flight)",
        metrics: &[
            ("receivers", "receivers"),
            ("all_delivered_ms_median", "all delivered ms"),
            ("deliveries_per_s", "deliveries/s"),
            ("delay_p50_ms", "delay p50 ms"),
            ("delay_p99_ms", "delay p99 ms"),
            ("server_cpu_us_per_op", "server CPU µs / delivery"),
        ],
        rate: "deliveries_per_s",
        baseline: None,
        against_baseline: &[],
    },
    Case {
        name: "group",
        title: "Send to a group while the other connections idle",
        metrics: &[
            ("receivers", "members"),
            ("idle", "idle connections"),
            ("all_delivered_ms_median", "all delivered ms"),
            ("delay_p50_ms", "delay p50 ms"),
            ("delay_p99_ms", "delay p99 ms"),
            ("server_cpu_us_per_op", "server CPU µs / delivery"),
        ],
        rate: "deliveries_per_s",
        baseline: None,
        against_baseline: &[],
    },
];

/// Results of one case and target: every repetition's line.
type Runs = Vec<Value>;

fn median(runs: &Runs, key: &str) -> Option<f64> {
    let mut values: Vec<f64> = runs.iter().filter_map(|r| r.get(key)?.as_f64()).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

fn cell(runs: &Runs, key: &str) -> String {
    if runs
        .iter()
        .any(|r| r.get(key).is_some_and(Value::is_boolean))
    {
        let all = runs
            .iter()
            .all(|r| r.get(key).and_then(Value::as_bool).unwrap_or(false));
        return if all { "yes".into() } else { "**no**".into() };
    }
    median(runs, key).map_or_else(|| "–".into(), fmt_number)
}

fn fmt_number(x: f64) -> String {
    if x >= 1000.0 {
        let whole = x.round() as u64;
        let digits = whole.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn read_text(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// The results of a `results.jsonl`, by case and target, in the order of the file.
fn read_results(results: &Path) -> anyhow::Result<BTreeMap<(String, String), Runs>> {
    let jsonl = results.join("results.jsonl");
    let text = std::fs::read_to_string(&jsonl)
        .with_context(|| format!("cannot read {}", jsonl.display()))?;
    let mut by_case: BTreeMap<(String, String), Runs> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value =
            serde_json::from_str(line).with_context(|| format!("bad line: {line}"))?;
        let case = value["case"].as_str().unwrap_or_default().to_owned();
        let target = value["target"].as_str().unwrap_or_default().to_owned();
        by_case.entry((case, target)).or_default().push(value);
    }
    Ok(by_case)
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let by_case = read_results(&args.results)?;
    let runs = |case: &str, target: &str| by_case.get(&(case.to_owned(), target.to_owned()));
    let out_dir = args.out.parent().map(Path::to_path_buf).unwrap_or_default();
    let relative = args
        .results
        .strip_prefix(&out_dir)
        .unwrap_or(&args.results)
        .to_path_buf();

    let mut md = String::new();
    preamble(&mut md, &args.results, &relative);
    let _ = writeln!(md, "## Targets (issue: measure it)\n");
    targets_table(&mut md, &runs);
    if let Ok(notes) = std::fs::read_to_string(&args.notes) {
        md.push_str(notes.trim_end());
        md.push_str("\n\n");
    }
    for case in CASES {
        case_section(&mut md, case, &runs, &args.results, &relative);
    }
    std::fs::write(&args.out, md)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    Ok(())
}

/// The title, what the figures are, and the machine and commands of the run, where saved.
fn preamble(md: &mut String, results: &Path, relative: &Path) {
    let folder = results
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `wsgate-bench report` from `{}` ({folder}). Every figure is the median of the \
         repetitions; client and server share the machine's cores, so **CPU per operation and memory \
         per connection are the fair comparisons**, and a rate marked *client-limited* says more \
         about the load generator than about the server.\n",
        relative.join("results.jsonl").display()
    );
    let machine = read_text(results, "machine.txt");
    if !machine.is_empty() {
        let _ = writeln!(
            md,
            "## Machine and versions\n\n```\n{}\n```\n",
            machine.trim_end()
        );
    }
    let commands = read_text(results, "commands.txt");
    if !commands.is_empty() {
        let _ = writeln!(md, "## Commands\n\n```sh\n{}\n```\n", commands.trim_end());
    }
}

/// A case's section: its title, how wsgate sends, the side-by-side table and its charts; nothing
/// when no target has results for it.
fn case_section<'a>(
    md: &mut String,
    case: &Case,
    runs: &dyn Fn(&str, &str) -> Option<&'a Runs>,
    results: &Path,
    relative: &Path,
) {
    let present: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| runs(case.name, t).is_some())
        .collect();
    if present.is_empty() {
        return;
    }
    let _ = writeln!(md, "## {}\n", case.title);
    if let Some(method) = runs(case.name, "wsgate")
        .and_then(|r| r.first())
        .and_then(|r| r["method"].as_str())
    {
        let _ = writeln!(md, "wsgate sends with: {method}.\n");
    }
    case_table(md, case, &present, runs);
    case_charts(md, case, &present, runs, results, relative);
}

/// The table of a case: a row per target with its metrics, on wsgate's row the figures compared
/// with the baseline's ("× baseline" after each) and its rate against serverless-offline's, and
/// whether the client limited the rate.
fn case_table<'a>(
    md: &mut String,
    case: &Case,
    present: &[&str],
    runs: &dyn Fn(&str, &str) -> Option<&'a Runs>,
) {
    let compared = |key: &str| case.baseline.is_some() && case.against_baseline.contains(&key);
    let mut header = String::from("| target |");
    let mut rule = String::from("|---|");
    for (key, heading) in case.metrics {
        let _ = write!(header, " {heading} |");
        rule.push_str("---:|");
        if compared(key) {
            header.push_str(" × baseline |");
            rule.push_str("---:|");
        }
    }
    header.push_str(" vs serverless-offline | client-limited |");
    rule.push_str("---:|---|");
    let _ = writeln!(md, "{header}\n{rule}");
    let baseline = case.baseline.and_then(|name| runs(name, "baseline"));
    for target in present {
        let Some(r) = runs(case.name, target) else {
            continue;
        };
        let ours = *target == "wsgate";
        let mut row = format!("| {target} |");
        for (key, _) in case.metrics {
            let _ = write!(row, " {} |", cell(r, key));
            if compared(key) {
                let theirs = baseline.and_then(|b| median(b, key));
                let ratio = if ours {
                    fmt_ratio(ratio(median(r, key), theirs))
                } else {
                    String::new()
                };
                let _ = write!(row, " {ratio} |");
            }
        }
        let peer = if ours {
            fmt_ratio(ratio(
                median(r, case.rate),
                runs(case.name, "serverless-offline").and_then(|o| median(o, case.rate)),
            ))
        } else {
            String::new()
        };
        let limited = r
            .iter()
            .any(|x| x["client_limited"].as_bool().unwrap_or(false));
        let _ = writeln!(row, " {peer} | {} |", if limited { "yes" } else { "no" });
        md.push_str(&row);
    }
    if let Some(name) = case.baseline.filter(|name| *name != case.name) {
        let _ = writeln!(
            md,
            "\n× baseline: against the baseline's `{name}` runs (it has no such case of its own)."
        );
    }
}

/// `ours / theirs`, when both were measured and `theirs` is not zero.
fn ratio(ours: Option<f64>, theirs: Option<f64>) -> Option<f64> {
    match (ours, theirs) {
        (Some(ours), Some(theirs)) if theirs > 0.0 => Some(ours / theirs),
        _ => None,
    }
}

fn fmt_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "–".into(), |r| format!("{r:.2}×"))
}

/// Each present target's median of `key` in a case, for a chart.
fn medians<'a>(
    case: &Case,
    present: &[&str],
    runs: &dyn Fn(&str, &str) -> Option<&'a Runs>,
    key: &str,
) -> Vec<(String, f64)> {
    present
        .iter()
        .filter_map(|t| Some(((*t).to_owned(), median(runs(case.name, t)?, key)?)))
        .collect()
}

/// A case's chart of server CPU per operation (with idle, of memory per connection too), drawn
/// into the results folder and linked from the section.
fn case_charts<'a>(
    md: &mut String,
    case: &Case,
    present: &[&str],
    runs: &dyn Fn(&str, &str) -> Option<&'a Runs>,
    results: &Path,
    relative: &Path,
) {
    let chart = format!("{}.png", case.name);
    let chart_path = results.join(&chart);
    let bars = medians(case, present, runs, "server_cpu_us_per_op");
    match bar_chart(
        &chart_path,
        &format!("{}: server CPU µs per operation", case.name),
        &bars,
    ) {
        Ok(()) => {
            let _ = writeln!(
                md,
                "\n![{}]({})\n",
                case.name,
                relative.join(&chart).display()
            );
        }
        Err(e) => {
            let _ = writeln!(md, "\n(chart not drawn: {e})\n");
        }
    }
    if case.name == "idle" {
        let bars = medians(case, present, runs, "rss_per_connection_kib");
        let chart = "idle-memory.png";
        if bar_chart(
            &results.join(chart),
            "idle: server RSS KiB per connection",
            &bars,
        )
        .is_ok()
        {
            let _ = writeln!(md, "![idle memory]({})\n", relative.join(chart).display());
        }
    }
}

/// A target's bound on one measured figure.
#[derive(Clone, Copy)]
enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

impl Bound {
    fn met(self, value: f64) -> bool {
        match self {
            Self::AtMost(limit) => value <= limit,
            Self::AtLeast(limit) => value >= limit,
        }
    }
}

/// Whether a target is met.
#[derive(Debug, Clone, PartialEq)]
enum Met {
    Yes,
    No,
    /// Nothing was measured.
    Unknown,
    /// Measured at a smaller scale than the target names (`--quick`): how many there were.
    Smaller(String),
    /// wsgate was measured, the baseline it is compared with was not.
    NoBaseline,
    /// A figure stated beside a target, with no bound of its own.
    Stated,
    /// Missed, and why.
    NoBecause(String),
}

impl Met {
    fn from(ok: Option<bool>) -> Self {
        match ok {
            Some(true) => Self::Yes,
            Some(false) => Self::No,
            None => Self::Unknown,
        }
    }

    /// For a target that holds only at `full` (receivers, members): a run with fewer, `n`,
    /// says so instead of anything else.
    fn at_scale(self, n: Option<f64>, full: f64, what: &str) -> Self {
        match n {
            Some(n) if n < full => Self::Smaller(format!(
                "not measured at full size ({} {what})",
                fmt_number(n)
            )),
            _ => self,
        }
    }

    /// A missed absolute target says what the raw baseline measured on the same run, and
    /// whether the baseline itself meets it: a bound the hardware cannot reach is missed for a
    /// different reason than one wsgate alone misses.
    fn beside_baseline(self, theirs: Option<f64>, bound: Bound, unit: &str) -> Self {
        match (self, theirs) {
            (Self::No, Some(b)) if bound.met(b) => {
                Self::NoBecause(format!("the raw baseline: {} {unit}", fmt_number(b)))
            }
            (Self::No, Some(b)) => Self::NoBecause(format!(
                "out of reach here: the raw baseline itself measures {} {unit}",
                fmt_number(b)
            )),
            (met, _) => met,
        }
    }

    /// A ratio to the baseline, `ours / theirs`, against `bound` (`None`: stated only).
    fn of_ratio(
        ours: Option<f64>,
        theirs: Option<f64>,
        bound: Option<Bound>,
    ) -> (Option<f64>, Self) {
        match (ours, ratio(ours, theirs)) {
            (_, Some(r)) => (
                Some(r),
                bound.map_or(Self::Stated, |b| Self::from(Some(b.met(r)))),
            ),
            (Some(_), None) => (None, Self::NoBaseline),
            (None, None) => (None, Self::Unknown),
        }
    }
}

/// One row of the targets table.
fn target_row(
    md: &mut String,
    what: &str,
    wanted: &str,
    measured: Option<f64>,
    unit: &str,
    met: Met,
) {
    let measured = measured.map_or_else(
        || "not measured".to_owned(),
        |m| format!("{} {unit}", fmt_number(m)),
    );
    let met = match met {
        Met::Yes => "yes".to_owned(),
        Met::No => "**no**".to_owned(),
        Met::Unknown => "–".to_owned(),
        Met::Smaller(why) => why,
        Met::NoBaseline => "not measured: no baseline run".to_owned(),
        Met::Stated => "no bound (stated)".to_owned(),
        Met::NoBecause(why) => format!("**no**: {why}"),
    };
    let _ = writeln!(md, "| {what} | {wanted} | {measured} | {met} |");
}

fn targets_table<'a>(md: &mut String, runs: &dyn Fn(&str, &str) -> Option<&'a Runs>) {
    let _ = writeln!(
        md,
        "| target | wanted | measured (wsgate) | met |\n|---|---|---|---|"
    );
    let mut table = TargetsTable { md, runs };
    table.idle_and_echo_rows();
    table.post_and_connect_rows();
    table.scale_rows();
    table.limit_beside_baseline(
        ("connect", "connects_per_s"),
        "connect: new connections/s",
        "≥ 10,000 (client allowing)",
        "/s",
        Bound::AtLeast(10_000.0),
    );
    md.push('\n');
}

/// The targets table as it is written: wsgate's figures against the targets, row by row.
struct TargetsTable<'m, 'r, 'a> {
    md: &'m mut String,
    runs: &'r dyn Fn(&str, &str) -> Option<&'a Runs>,
}

impl TargetsTable<'_, '_, '_> {
    /// wsgate's median of `key` in `case`.
    fn get(&self, case: &str, key: &str) -> Option<f64> {
        (self.runs)(case, "wsgate").and_then(|r| median(r, key))
    }

    /// The baseline's median of `key` in `case`.
    fn baseline(&self, case: &str, key: &str) -> Option<f64> {
        (self.runs)(case, "baseline").and_then(|r| median(r, key))
    }

    /// wsgate's `key` in `case` over the baseline's, against `bound` (`None`: stated only).
    fn against_baseline(
        &self,
        case: &str,
        baseline_case: &str,
        key: &str,
        bound: Option<Bound>,
    ) -> (Option<f64>, Met) {
        Met::of_ratio(
            self.get(case, key),
            self.baseline(baseline_case, key),
            bound,
        )
    }

    /// A figure of wsgate's against a bound.
    fn limit(&mut self, case: &str, key: &str, what: &str, wanted: &str, unit: &str, bound: Bound) {
        let value = self.get(case, key);
        target_row(
            self.md,
            what,
            wanted,
            value,
            unit,
            Met::from(value.map(|v| bound.met(v))),
        );
    }

    /// A figure of wsgate's against a bound that the baseline measures too: missed, it says
    /// what the baseline measured.
    fn limit_beside_baseline(
        &mut self,
        (case, key): (&str, &str),
        what: &str,
        wanted: &str,
        unit: &str,
        bound: Bound,
    ) {
        let value = self.get(case, key);
        let met = Met::from(value.map(|v| bound.met(v)));
        let met = met.beside_baseline(self.baseline(case, key), bound, unit);
        target_row(self.md, what, wanted, value, unit, met);
    }

    /// Idle connections and their memory; echo's CPU per message and its rate against the
    /// baseline's.
    fn idle_and_echo_rows(&mut self) {
        self.limit(
            "idle",
            "connections",
            "idle: connections held",
            "≥ 15,000",
            "",
            Bound::AtLeast(15_000.0),
        );
        self.limit(
            "idle",
            "rss_per_connection_kib",
            "idle: RSS per connection",
            "≤ 8 KiB",
            "KiB",
            Bound::AtMost(8.0),
        );
        // Userspace only: the kernel's socket buffers are not in the process's RSS.
        let rss = self.get("idle", "rss_per_connection_kib");
        let held = self.get("idle", "connections");
        target_row(
            self.md,
            "idle: RSS per connection at 15,000 (userspace)",
            "≤ 4 KiB",
            rss,
            "KiB",
            Met::from(rss.map(|kib| Bound::AtMost(4.0).met(kib))).at_scale(
                held,
                15_000.0,
                "connections",
            ),
        );
        self.limit(
            "echo-mock",
            "server_cpu_us_per_op",
            "echo (mock): server CPU per message",
            "≤ 15 µs",
            "µs",
            Bound::AtMost(15.0),
        );
        let (rate, met) = self.against_baseline(
            "echo-mock",
            "echo-mock",
            "msgs_per_s",
            Some(Bound::AtLeast(0.8)),
        );
        target_row(
            self.md,
            "echo (mock): msgs/s vs the raw baseline",
            "≥ 0.8×",
            rate,
            "×",
            met,
        );
    }

    /// POST @connections: CPU (alone and against the baseline's), rate and p99; connect + close:
    /// CPU.
    fn post_and_connect_rows(&mut self) {
        self.limit_beside_baseline(
            ("post", "server_cpu_us_per_op"),
            "post: server CPU per POST",
            "≤ 10 µs (where the baseline allows)",
            "µs",
            Bound::AtMost(10.0),
        );
        let (cpu, met) = self.against_baseline(
            "post",
            "post",
            "server_cpu_us_per_op",
            Some(Bound::AtMost(1.25)),
        );
        target_row(
            self.md,
            "post: server CPU per POST vs the raw baseline",
            "≤ 1.25×",
            cpu,
            "×",
            met,
        );
        self.limit(
            "post",
            "req_per_s",
            "post: req/s at 64 in flight",
            "≥ 30,000 (client allowing)",
            "req/s",
            Bound::AtLeast(30_000.0),
        );
        self.limit(
            "post",
            "latency_p99_ms",
            "post: p99 latency",
            "≤ 5 ms",
            "ms",
            Bound::AtMost(5.0),
        );
        self.limit_beside_baseline(
            ("connect", "server_cpu_us_per_op"),
            "connect: server CPU per connect + close",
            "≤ 50 µs",
            "µs",
            Bound::AtMost(50.0),
        );
    }

    /// Broadcast to all receivers (alone and against the baseline) and send to a group.
    fn scale_rows(&mut self) {
        // These two only count at the scale the target names: a smaller run (`--quick`) says
        // so rather than yes or no.
        let bcast = self.get("broadcast", "all_delivered_ms_median");
        let bcast_n = self.get("broadcast", "receivers");
        target_row(
            self.md,
            "broadcast: all of 15,000 delivered",
            "≤ 30 ms (≥ 500,000/s)",
            bcast,
            "ms",
            Met::from(bcast.map(|ms| ms <= 30.0))
                .beside_baseline(
                    self.baseline("broadcast", "all_delivered_ms_median"),
                    Bound::AtMost(30.0),
                    "ms",
                )
                .at_scale(bcast_n, 15_000.0, "receivers"),
        );
        // Both at the same count: bench/run.sh gives the two the same --receivers.
        let (rate, met) = self.against_baseline(
            "broadcast",
            "broadcast",
            "deliveries_per_s",
            Some(Bound::AtLeast(0.8)),
        );
        target_row(
            self.md,
            "broadcast to 15,000: deliveries/s vs the raw baseline",
            "≥ 0.8×",
            rate,
            "×",
            met.at_scale(bcast_n, 15_000.0, "receivers"),
        );
        let (cpu, met) =
            self.against_baseline("broadcast", "broadcast", "server_cpu_us_per_op", None);
        target_row(
            self.md,
            "broadcast to 15,000: server CPU per delivery vs the raw baseline",
            "stated beside the rate",
            cpu,
            "×",
            met.at_scale(bcast_n, 15_000.0, "receivers"),
        );
        let group_p99 = self.get("group", "delay_p99_ms");
        let group_n = self.get("group", "receivers");
        target_row(
            self.md,
            "group of 1,000 (14,000 idle): p99 delivery",
            "≤ 20 ms",
            group_p99,
            "ms",
            Met::from(group_p99.map(|p| p <= 20.0)).at_scale(group_n, 1000.0, "members"),
        );
    }
}

fn bar_chart(path: &Path, title: &str, bars: &[(String, f64)]) -> anyhow::Result<()> {
    if bars.is_empty() {
        anyhow::bail!("no data");
    }
    let root = BitMapBackend::new(path, (720, 360)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = bars
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.2;
    let n = bars.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(12)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..n, 0.0..top)?;
    // Each bar is labelled on itself (name and value), so no x labels are needed.
    chart.configure_mesh().disable_x_mesh().x_labels(0).draw()?;
    let colors = [
        RGBColor(38, 110, 190),
        RGBColor(120, 120, 120),
        RGBColor(220, 120, 40),
    ];
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
        let color = colors[i % colors.len()];
        let x = i as f64;
        Rectangle::new([(x + 0.1, 0.0), (x + 0.9, *v)], color.filled())
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (name, v))| {
        Text::new(
            format!("{name}: {}", fmt_number(*v)),
            (i as f64 + 0.12, *v + top * 0.04),
            ("sans-serif", 16),
        )
    }))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Results as `read_results` gives them: one line per (case, target, fields).
    fn results(lines: &[(&str, &str, Value)]) -> BTreeMap<(String, String), Runs> {
        let mut by_case: BTreeMap<(String, String), Runs> = BTreeMap::new();
        for (case, target, fields) in lines {
            by_case
                .entry(((*case).to_owned(), (*target).to_owned()))
                .or_default()
                .push(fields.clone());
        }
        by_case
    }

    fn targets(by_case: &BTreeMap<(String, String), Runs>) -> String {
        let runs = |case: &str, target: &str| by_case.get(&(case.to_owned(), target.to_owned()));
        let mut md = String::new();
        targets_table(&mut md, &runs);
        md
    }

    /// The targets table's row that starts with `what`.
    fn row<'a>(md: &'a str, what: &str) -> &'a str {
        md.lines()
            .find(|l| l.starts_with(&format!("| {what} |")))
            .unwrap_or_else(|| panic!("no row {what} in\n{md}"))
    }

    fn case(name: &str) -> &'static Case {
        CASES
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case {name}"))
    }

    #[test]
    fn signed_posts_are_set_against_the_baselines_plain_posts() {
        let by_case = results(&[
            (
                "post",
                "baseline",
                json!({"req_per_s": 40000.0, "server_cpu_us_per_op": 5.0}),
            ),
            (
                "post-sigv4",
                "wsgate",
                json!({"req_per_s": 20000.0, "server_cpu_us_per_op": 15.0}),
            ),
        ]);
        let runs = |case: &str, target: &str| by_case.get(&(case.to_owned(), target.to_owned()));
        let mut md = String::new();
        case_table(&mut md, case("post-sigv4"), &["wsgate"], &runs);
        let header = md.lines().next().unwrap_or_default();
        assert!(
            header.contains("| req/s | × baseline |")
                && header.contains("| server CPU µs / POST | × baseline |"),
            "{md}"
        );
        let wsgate = md.lines().nth(2).unwrap_or_default();
        assert!(wsgate.contains("| 0.50× |"), "{md}");
        assert!(wsgate.contains("| 3.00× |"), "{md}");
        assert!(md.contains("against the baseline's `post` runs"), "{md}");
    }

    #[test]
    fn idle_shows_the_kernels_bytes_per_end_and_a_dash_where_slabinfo_was_unreadable() {
        let by_case = results(&[
            (
                "idle",
                "wsgate",
                json!({"rss_per_connection_kib": 3.6, "kernel_socket_slab_bytes_per_end": 3950.0,
                       "kernel_tcp_mem_bytes_per_end": 0.0}),
            ),
            (
                "idle",
                "baseline",
                json!({"rss_per_connection_kib": 2.2, "kernel_socket_slab_bytes_per_end": null,
                       "kernel_tcp_mem_bytes_per_end": 0.0}),
            ),
        ]);
        let runs = |case: &str, target: &str| by_case.get(&(case.to_owned(), target.to_owned()));
        let mut md = String::new();
        case_table(&mut md, case("idle"), &["wsgate", "baseline"], &runs);
        let rows: Vec<&str> = md.lines().collect();
        assert!(
            rows[0].contains("| kernel socket slabs B / end | kernel TCP buffers B / end |"),
            "{md}"
        );
        assert!(rows[2].contains("| 3,950 | 0.00 |"), "{md}");
        assert!(rows[3].contains("| – | 0.00 |"), "{md}");
    }

    #[test]
    fn only_wsgates_row_carries_ratios_and_a_case_without_baseline_has_no_column() {
        let by_case = results(&[
            (
                "echo-mock",
                "wsgate",
                json!({"msgs_per_s": 900.0, "server_cpu_us_per_op": 6.0}),
            ),
            (
                "echo-mock",
                "baseline",
                json!({"msgs_per_s": 1000.0, "server_cpu_us_per_op": 4.0}),
            ),
            ("echo-http", "wsgate", json!({"msgs_per_s": 500.0})),
        ]);
        let runs = |case: &str, target: &str| by_case.get(&(case.to_owned(), target.to_owned()));
        let mut md = String::new();
        case_table(&mut md, case("echo-mock"), &["wsgate", "baseline"], &runs);
        let rows: Vec<&str> = md.lines().collect();
        assert!(
            rows[2].contains("| 0.90× |") && rows[2].contains("| 1.50× |"),
            "{md}"
        );
        assert!(!rows[3].contains('×'), "{md}");
        let mut md = String::new();
        case_table(&mut md, case("echo-http"), &["wsgate"], &runs);
        assert!(!md.contains("× baseline"), "{md}");
    }

    #[test]
    fn a_missed_bound_says_what_the_baseline_measured_and_whether_it_reaches_it() {
        let post = |ours: f64, theirs: f64| {
            results(&[
                ("post", "wsgate", json!({"server_cpu_us_per_op": ours})),
                ("post", "baseline", json!({"server_cpu_us_per_op": theirs})),
            ])
        };
        let what = "post: server CPU per POST";
        let md = targets(&post(17.0, 16.0));
        assert!(
            row(&md, what).ends_with(
                "| 17.0 µs | **no**: out of reach here: the raw baseline itself measures 16.0 µs |"
            ),
            "{md}"
        );
        let md = targets(&post(12.0, 8.0));
        assert!(
            row(&md, what).ends_with("| 12.0 µs | **no**: the raw baseline: 8.00 µs |"),
            "{md}"
        );
        assert!(row(&targets(&post(9.0, 8.0)), what).ends_with("| 9.00 µs | yes |"));
        let alone = results(&[("post", "wsgate", json!({"server_cpu_us_per_op": 12.0}))]);
        assert!(row(&targets(&alone), what).ends_with("| 12.0 µs | **no** |"));
    }

    #[test]
    fn post_cpu_over_a_quarter_above_the_baseline_misses_its_target() {
        let post = |cpu: f64| {
            results(&[
                ("post", "wsgate", json!({"server_cpu_us_per_op": cpu})),
                ("post", "baseline", json!({"server_cpu_us_per_op": 8.0})),
            ])
        };
        let what = "post: server CPU per POST vs the raw baseline";
        assert!(row(&targets(&post(10.4)), what).ends_with("| 1.30 × | **no** |"));
        assert!(row(&targets(&post(9.6)), what).ends_with("| 1.20 × | yes |"));
        let alone = results(&[("post", "wsgate", json!({"server_cpu_us_per_op": 9.0}))]);
        assert!(
            row(&targets(&alone), what)
                .ends_with("| not measured | not measured: no baseline run |")
        );
    }

    #[test]
    fn broadcast_against_the_baseline_is_judged_at_15000_receivers_only() {
        let bcast = |n: f64, ours: f64| {
            results(&[
                (
                    "broadcast",
                    "wsgate",
                    json!({"receivers": n, "deliveries_per_s": ours, "server_cpu_us_per_op": 0.6}),
                ),
                (
                    "broadcast",
                    "baseline",
                    json!({"receivers": n, "deliveries_per_s": 1_000_000.0, "server_cpu_us_per_op": 0.4}),
                ),
            ])
        };
        let rate = "broadcast to 15,000: deliveries/s vs the raw baseline";
        let cpu = "broadcast to 15,000: server CPU per delivery vs the raw baseline";
        let full = targets(&bcast(15_000.0, 700_000.0));
        assert!(row(&full, rate).ends_with("| 0.70 × | **no** |"), "{full}");
        assert!(
            row(&full, cpu).ends_with("| 1.50 × | no bound (stated) |"),
            "{full}"
        );
        let met = targets(&bcast(15_000.0, 850_000.0));
        assert!(row(&met, rate).ends_with("| 0.85 × | yes |"), "{met}");
        let quick = targets(&bcast(2000.0, 700_000.0));
        assert!(
            row(&quick, rate).ends_with("| 0.70 × | not measured at full size (2,000 receivers) |"),
            "{quick}"
        );
        assert!(
            row(&quick, cpu).contains("not measured at full size"),
            "{quick}"
        );
    }

    #[test]
    fn idle_memory_is_held_to_4_kib_at_15000_connections() {
        let idle = |n: f64, kib: f64| {
            targets(&results(&[(
                "idle",
                "wsgate",
                json!({"connections": n, "rss_per_connection_kib": kib}),
            )]))
        };
        let what = "idle: RSS per connection at 15,000 (userspace)";
        assert!(row(&idle(15_000.0, 3.9), what).ends_with("| 3.90 KiB | yes |"));
        assert!(row(&idle(15_000.0, 6.7), what).ends_with("| 6.70 KiB | **no** |"));
        assert!(
            row(&idle(2000.0, 3.9), what)
                .ends_with("| not measured at full size (2,000 connections) |")
        );
    }

    #[test]
    fn a_zero_or_missing_baseline_gives_no_ratio() {
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(ratio(Some(1.0), Some(2.0)), Some(0.5));
        assert_eq!(Met::of_ratio(None, Some(2.0), None), (None, Met::Unknown));
        assert_eq!(
            Met::of_ratio(Some(1.0), None, Some(Bound::AtMost(1.25))),
            (None, Met::NoBaseline)
        );
    }

    #[test]
    fn a_run_smaller_than_the_target_says_so_instead_of_no() {
        let small = Met::No.at_scale(Some(2000.0), 15_000.0, "receivers");
        assert!(matches!(&small, Met::Smaller(why) if why.contains("not measured at full size")));
        assert_eq!(
            Met::No.at_scale(Some(15_000.0), 15_000.0, "receivers"),
            Met::No
        );
        assert_eq!(
            Met::Yes.at_scale(Some(20_000.0), 15_000.0, "receivers"),
            Met::Yes
        );
        let mut md = String::new();
        target_row(&mut md, "broadcast", "≤ 30 ms", Some(16.4), "ms", small);
        assert!(!md.contains("**no**"), "{md}");
        assert!(
            md.contains("not measured at full size (2,000 receivers)"),
            "{md}"
        );
    }
}
