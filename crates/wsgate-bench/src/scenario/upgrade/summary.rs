//! The `upgrade` result: one JSON line like every scenario's, the faults it shows in
//! `problems`, and a few lines for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::inbox::Delivery;
use super::poster::{Notes, Outcome, Pacing, Phase, Post};
use super::{Args, Upgrade};
use crate::scenario::Common;
use crate::stats::{Latencies, round3};

/// Everything the run saw.
pub struct Seen {
    pub connections: usize,
    pub connect: Latencies,
    pub upgrade: Upgrade,
    pub pacing: Pacing,
    /// Every POST ended before the bench stopped waiting for it.
    pub drained: bool,
    /// Connections the gateway closed or that failed, before the bench closed any.
    pub closed: usize,
    pub first_close: Option<String>,
    pub echoes_sent: usize,
    /// Connections that answered the echo afterwards.
    pub echoed: usize,
    pub delivery: Delivery,
    pub notes: Notes,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    pub posts: Vec<Post>,
}

/// What a set of POSTs went through.
#[derive(Default)]
struct Tally {
    posts: usize,
    ok: usize,
    retried: usize,
    statuses: BTreeMap<u16, usize>,
    connection_errors: usize,
    refused: usize,
    gave_up: usize,
    /// From the first attempt to the 200, of those answered 200.
    latency: Latencies,
}

impl Tally {
    fn of<'a>(posts: impl Iterator<Item = &'a Post>) -> Self {
        let mut tally = Self::default();
        for post in posts {
            tally.posts += 1;
            match post.outcome {
                Outcome::Delivered => {
                    tally.ok += 1;
                    tally.latency.push(post.took);
                }
                Outcome::Refused(_) => tally.refused += 1,
                Outcome::GaveUp => tally.gave_up += 1,
            }
            if post.retries() > 0 {
                tally.retried += 1;
            }
            for status in &post.retried_statuses {
                *tally.statuses.entry(*status).or_default() += 1;
            }
            tally.connection_errors += post.connection_errors as usize;
        }
        tally
    }

    /// `{prefix}posts`, `{prefix}posts_ok`, … into `out`.
    fn write(mut self, prefix: &str, out: &mut Map<String, Value>) {
        let statuses: Map<String, Value> = self
            .statuses
            .iter()
            .map(|(status, n)| (status.to_string(), json!(n)))
            .collect();
        out.insert(format!("{prefix}posts"), json!(self.posts));
        out.insert(format!("{prefix}posts_ok"), json!(self.ok));
        out.insert(format!("{prefix}posts_retried"), json!(self.retried));
        out.insert(format!("{prefix}retried_statuses"), Value::Object(statuses));
        out.insert(
            format!("{prefix}connection_errors"),
            json!(self.connection_errors),
        );
        out.insert(format!("{prefix}refused"), json!(self.refused));
        out.insert(format!("{prefix}gave_up"), json!(self.gave_up));
        if self.latency.len() == 0 {
            // None answered 200: no latency, rather than a 0 that reads as a fast one.
            for q in ["p50", "p90", "p99", "max"] {
                out.insert(format!("{prefix}post_{q}_ms"), Value::Null);
            }
        } else {
            self.latency.write(&format!("{prefix}post"), out);
        }
    }
}

fn ms(d: std::time::Duration) -> f64 {
    round3(d.as_secs_f64() * 1000.0)
}

/// The JSON line.
pub fn result_line(common: &Common, args: &Args, seen: Seen) -> Value {
    let Seen {
        connections,
        mut connect,
        upgrade,
        pacing,
        drained,
        closed,
        first_close,
        echoes_sent,
        echoed,
        delivery,
        notes,
        rss_before_kib,
        rss_after_kib,
        posts,
    } = seen;
    let mut out = common.header("upgrade");
    out.insert("connections".into(), json!(connections));
    connect.write("connect", &mut out);

    out.insert("signal_sent".into(), json!(upgrade.signalled));
    out.insert("old_pid".into(), json!(upgrade.old_pid));
    let handover = upgrade.handover;
    out.insert(
        "new_pid".into(),
        json!(handover.new_pid.map(|(pid, _)| pid)),
    );
    out.insert(
        "new_pid_after_ms".into(),
        json!(handover.new_pid.map(|(_, at)| ms(at))),
    );
    out.insert(
        "old_exit_after_ms".into(),
        json!(handover.old_exited.map(ms)),
    );
    out.insert("upgraded".into(), json!(handover.done()));
    out.insert(
        "window_ms".into(),
        json!(ms(upgrade.ended.saturating_duration_since(upgrade.began))),
    );

    out.insert("rate_per_s".into(), json!(args.rate));
    out.insert(
        "posts_per_s".into(),
        json!(round3(
            pacing.sent as f64 / pacing.wall.as_secs_f64().max(1e-9)
        )),
    );
    out.insert("in_flight_cap".into(), json!(args.in_flight));
    out.insert("max_in_flight".into(), json!(pacing.max_in_flight));
    out.insert("passed_over_busy".into(), json!(pacing.busy));
    out.insert("passed_over_in_flight_cap".into(), json!(pacing.capped));
    let steady = || posts.iter().filter(|p| p.phase == Phase::Steady);
    Tally::of(steady()).write("", &mut out);
    let in_window = |p: &&Post| p.first_sent >= upgrade.began && p.first_sent <= upgrade.ended;
    Tally::of(steady().filter(in_window)).write("window_", &mut out);
    Tally::of(posts.iter().filter(|p| p.phase == Phase::Sweep)).write("check_", &mut out);
    out.insert("all_posts_ended".into(), json!(drained));

    out.insert("closed".into(), json!(closed));
    out.insert("first_close".into(), json!(first_close));
    out.insert("delivered".into(), json!(delivery.delivered));
    out.insert("lost".into(), json!(delivery.lost));
    out.insert("duplicates".into(), json!(delivery.duplicates));
    out.insert(
        "duplicates_after_connection_error".into(),
        json!(delivery.duplicates_after_connection_error),
    );
    out.insert("out_of_order".into(), json!(delivery.out_of_order));
    out.insert(
        "arrived_without_200".into(),
        json!(delivery.arrived_without_200),
    );
    out.insert("misdelivered".into(), json!(delivery.misdelivered));
    out.insert("unexpected_frames".into(), json!(delivery.unexpected));
    out.insert("echoes_sent".into(), json!(echoes_sent));
    out.insert("echoes_answered".into(), json!(echoed));
    out.insert(
        "check_delivered".into(),
        json!(delivery.delivered_afterwards),
    );
    out.insert(
        "first_connection_error".into(),
        json!(notes.first_connection_error),
    );
    out.insert("first_refusal".into(), json!(notes.first_refusal));
    out.insert("rss_before_kib".into(), json!(rss_before_kib));
    out.insert("rss_after_kib".into(), json!(rss_after_kib));

    let problems = problems(&out, args);
    out.insert("passed".into(), json!(problems.is_empty()));
    out.insert("problems".into(), json!(problems));
    Value::Object(out)
}

fn count(out: &Map<String, Value>, key: &str) -> u64 {
    out.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Each fault the line shows, in words.
fn problems(out: &Map<String, Value>, args: &Args) -> Vec<String> {
    let mut seen = Vec::new();
    let n = count(out, "connections");
    if out["signal_sent"] == true && out["upgraded"] != true {
        seen.push(format!(
            "the upgrade did not finish within {} s: new pid {}, old process exited after {} ms",
            args.upgrade_timeout_secs, out["new_pid"], out["old_exit_after_ms"]
        ));
    }
    if count(out, "closed") > 0 {
        seen.push(format!(
            "{} connections closed or failed; the first: {}",
            out["closed"],
            out["first_close"].as_str().unwrap_or("?")
        ));
    }
    let faults = [
        ("lost", "messages answered 200 never arrived"),
        ("duplicates", "extra copies of messages arrived"),
        ("out_of_order", "messages arrived after a later one"),
        (
            "arrived_without_200",
            "messages arrived whose POST was never answered 200",
        ),
        ("misdelivered", "messages arrived at the wrong connection"),
        ("refused", "POSTs were refused"),
        (
            "check_refused",
            "POSTs of the check afterwards were refused",
        ),
        (
            "gave_up",
            "POSTs were still retried when the retry time ran out",
        ),
        (
            "check_gave_up",
            "POSTs of the check afterwards were given up",
        ),
    ];
    for (key, what) in faults {
        if count(out, key) > 0 {
            seen.push(format!("{} {what}", out[key]));
        }
    }
    if count(out, "refused") + count(out, "check_refused") > 0 {
        seen.push(format!(
            "the first refusal: {}",
            out["first_refusal"].as_str().unwrap_or("?")
        ));
    }
    if out["all_posts_ended"] != true {
        seen.push("POSTs still had no answer when the bench stopped waiting".to_owned());
    }
    if count(out, "echoes_answered") < n {
        seen.push(format!(
            "{} of {n} connections did not answer an echo afterwards",
            n - count(out, "echoes_answered")
        ));
    }
    if count(out, "check_delivered") < n {
        seen.push(format!(
            "{} of {n} connections did not get the POST of the check afterwards",
            n - count(out, "check_delivered")
        ));
    }
    seen
}

/// A few lines for people, from the JSON line.
pub fn human(line: &Value) -> String {
    let v = |key: &str| line[key].clone();
    let num = |key: &str| match &line[key] {
        Value::Null => "–".to_owned(),
        other => other.to_string(),
    };
    let mut text = String::new();
    let _ = writeln!(
        text,
        "upgrade: {} connections, {} POSTs/s asked, {} sent",
        num("connections"),
        num("rate_per_s"),
        num("posts_per_s")
    );
    if v("signal_sent") == true {
        let _ = writeln!(
            text,
            "  SIGUSR2 to {}: new pid {} in the pid file after {} ms; old process exited after {} ms",
            num("old_pid"),
            num("new_pid"),
            num("new_pid_after_ms"),
            num("old_exit_after_ms")
        );
    } else {
        let _ = writeln!(
            text,
            "  no signal sent (--no-signal): a window of {} ms where the upgrade would be",
            num("window_ms")
        );
    }
    let _ = writeln!(
        text,
        "  POSTs in the window ({} ms): {}, answered 200: {}, retried: {} (statuses {}, connection errors {}), slowest {} ms",
        num("window_ms"),
        num("window_posts"),
        num("window_posts_ok"),
        num("window_posts_retried"),
        v("window_retried_statuses"),
        num("window_connection_errors"),
        num("window_post_max_ms")
    );
    let _ = writeln!(
        text,
        "  whole run: {} POSTs, {} answered 200, {} of them delivered; lost {}, duplicates {}, out of order {}; connections closed: {}",
        num("posts"),
        num("posts_ok"),
        num("delivered"),
        num("lost"),
        num("duplicates"),
        num("out_of_order"),
        num("closed")
    );
    let _ = writeln!(
        text,
        "  afterwards: {} of {} connections answered an echo, {} got their POST",
        num("echoes_answered"),
        num("connections"),
        num("check_delivered")
    );
    match line["problems"].as_array() {
        Some(problems) if !problems.is_empty() => {
            let _ = writeln!(text, "  FAILED:");
            for problem in problems {
                let _ = writeln!(text, "  - {}", problem.as_str().unwrap_or_default());
            }
        }
        _ => {
            let _ = writeln!(text, "  passed: nothing lost, nothing closed");
        }
    }
    text
}
