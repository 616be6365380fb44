//! Latency percentiles and the JSON line every scenario prints.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::procstat::CpuUsed;

/// Latencies of one kind of operation.
#[derive(Debug, Default, Clone)]
pub struct Latencies(Vec<u64>);

impl Latencies {
    /// Records one latency.
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u128::from(u64::MAX)) as u64);
    }

    /// Adds another set.
    pub fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    /// One latency.
    pub fn one(d: Duration) -> Self {
        let mut latencies = Self::default();
        latencies.push(d);
        latencies
    }

    /// The latencies of the runs that succeeded, and how many failed.
    pub fn gather(results: impl IntoIterator<Item = anyhow::Result<Latencies>>) -> (Self, usize) {
        let mut all = Self::default();
        let mut failed = 0;
        for result in results {
            match result {
                Ok(latencies) => all.extend(latencies),
                Err(_) => failed += 1,
            }
        }
        (all, failed)
    }

    /// How many were recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `{prefix}_p50_ms`, `_p90_ms`, `_p99_ms`, `_max_ms` into `out`.
    pub fn write(&mut self, prefix: &str, out: &mut Map<String, Value>) {
        self.0.sort_unstable();
        let at = |q: f64| -> f64 {
            if self.0.is_empty() {
                return 0.0;
            }
            let index = ((self.0.len() as f64 - 1.0) * q).round() as usize;
            self.0[index] as f64 / 1000.0
        };
        out.insert(format!("{prefix}_p50_ms"), json!(round3(at(0.5))));
        out.insert(format!("{prefix}_p90_ms"), json!(round3(at(0.9))));
        out.insert(format!("{prefix}_p99_ms"), json!(round3(at(0.99))));
        out.insert(format!("{prefix}_max_ms"), json!(round3(at(1.0))));
    }
}

/// Rounds to three decimals for readable output.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The common fields of a result line: CPU per operation on both sides and who was the limit.
pub fn cpu_fields(out: &mut Map<String, Value>, cpu: CpuUsed, operations: usize, wall: Duration) {
    let ops = operations.max(1) as f64;
    let wall = wall.as_secs_f64().max(1e-9);
    out.insert(
        "server_cpu_us_per_op".into(),
        json!(round3(cpu.server * 1e6 / ops)),
    );
    out.insert(
        "client_cpu_us_per_op".into(),
        json!(round3(cpu.client * 1e6 / ops)),
    );
    out.insert("server_cpu_share".into(), json!(round3(cpu.server / wall)));
    out.insert("client_cpu_share".into(), json!(round3(cpu.client / wall)));
    // Two cores are shared: when the client burns at least as much CPU as the server, the
    // measured rate says more about the client than about the server.
    out.insert("client_limited".into(), json!(cpu.client >= cpu.server));
}
