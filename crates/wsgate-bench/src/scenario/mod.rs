//! The scenarios. Each is bounded in count and time and returns one JSON object.

pub mod broadcast;
pub mod connect;
pub mod echo;
pub mod idle;
pub mod post;
pub mod resume;
pub mod upgrade;

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::redisstat::RedisMeter;

/// Arguments every scenario takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// WebSocket URL of the target, e.g. ws://127.0.0.1:8080/dev; several separated by commas
    /// (a cluster's nodes): connection i goes to the (i mod n)-th.
    #[arg(long)]
    pub url: String,
    /// Name of the target in the results (wsgate, baseline, serverless-offline, ...).
    #[arg(long, default_value = "wsgate")]
    pub target: String,
    /// PID of the server process, for its CPU time and RSS; several separated by commas (a
    /// cluster's nodes and its Redis): their CPU time and RSS are summed.
    #[arg(long)]
    pub server_pid: Option<String>,
    /// How many source addresses (127.0.0.2, ...) to spread connections over.
    #[arg(long, default_value_t = 4)]
    pub sources: usize,
    /// The case this run belongs to in the report (default: the scenario's name).
    #[arg(long)]
    pub case: Option<String>,
    /// A Redis (HOST:PORT) whose commands to count over the measured phase (`INFO
    /// commandstats`): a cluster's, for its PUBLISHes and commands per operation.
    #[arg(long)]
    pub redis: Option<String>,
    /// Gives up on the whole scenario after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub deadline_secs: u64,
}

impl Common {
    /// The scenario's time bound.
    pub fn deadline(&self) -> Duration {
        Duration::from_secs(self.deadline_secs)
    }

    /// The fields every result starts with.
    pub fn header(&self, scenario: &str) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("scenario".into(), json!(scenario));
        out.insert(
            "case".into(),
            json!(self.case.as_deref().unwrap_or(scenario)),
        );
        out.insert("target".into(), json!(self.target));
        out
    }

    /// Starts counting the Redis's commands, if one was given.
    pub async fn redis_meter(&self) -> anyhow::Result<RedisMeter> {
        RedisMeter::start(self.redis.as_deref()).await
    }

    /// The server PID, if given.
    pub fn pid(&self) -> Option<&str> {
        self.server_pid.as_deref()
    }
}

/// Runs `futures` with at most `limit` in flight, in order of index, collecting results.
pub async fn bounded<T, F, Fut>(count: usize, limit: usize, make: F) -> Vec<anyhow::Result<T>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(limit.max(1)));
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        let permit = semaphore.clone().acquire_owned().await;
        let work = make(i);
        handles.push(tokio::spawn(async move {
            let result = work.await;
            drop(permit);
            result
        }));
    }
    let mut results = Vec::with_capacity(count);
    for handle in handles {
        results.push(
            handle
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("task failed: {e}"))),
        );
    }
    results
}
