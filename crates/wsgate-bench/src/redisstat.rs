//! The commands a Redis server ran over one measured phase, from `INFO commandstats` before and
//! after it (a cluster's Redis: how many PUBLISHes and commands in all an operation costs), and
//! the memory it holds (`INFO memory`). One RESP request on a fresh connection, no Redis client
//! library.

use std::collections::HashMap;

use anyhow::{Context, anyhow};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::stats::round3;

/// Calls per command name (lower case, as `cmdstat_NAME`).
type Calls = HashMap<String, u64>;

/// `INFO commandstats` of the Redis at `addr` (`HOST:PORT`).
async fn command_calls(addr: &str) -> anyhow::Result<Calls> {
    Ok(parse(&info(addr, "commandstats").await?))
}

/// `used_memory` of `INFO memory` of the Redis at `addr`: the bytes its allocator holds.
pub async fn used_memory(addr: &str) -> anyhow::Result<u64> {
    parse_used_memory(&info(addr, "memory").await?)
}

/// The `used_memory:N` line of `INFO memory` → N.
fn parse_used_memory(info: &str) -> anyhow::Result<u64> {
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .ok_or_else(|| anyhow!("no used_memory in INFO memory"))?
        .trim()
        .parse()
        .context("used_memory is not a number")
}

/// The text of `INFO SECTION` of the Redis at `addr`.
async fn info(addr: &str, section: &str) -> anyhow::Result<String> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to Redis at {addr}"))?;
    let mut stream = BufReader::new(stream);
    let request = format!("*2\r\n$4\r\nINFO\r\n${}\r\n{section}\r\n", section.len());
    stream.write_all(request.as_bytes()).await?;
    let mut header = String::new();
    stream.read_line(&mut header).await?;
    let len: usize = header
        .trim_end()
        .strip_prefix('$')
        .ok_or_else(|| anyhow!("Redis answered INFO with {header:?}"))?
        .parse()?;
    let mut body = vec![0; len + 2];
    stream.read_exact(&mut body).await?;
    body.truncate(len);
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// `cmdstat_publish:calls=3,usec=...` lines → `{"publish": 3}`.
fn parse(info: &str) -> Calls {
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// What Redis ran over a phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisUsed {
    /// PUBLISH and SPUBLISH calls.
    pub publishes: u64,
    /// Every command but INFO (this meter's own), scripts' inner commands included.
    pub commands: u64,
}

/// Counts a Redis's commands over one phase; does nothing without an address.
#[derive(Debug, Clone)]
pub struct RedisMeter {
    addr: Option<String>,
    before: Calls,
}

impl RedisMeter {
    /// Reads the counts before the phase.
    pub async fn start(addr: Option<&str>) -> anyhow::Result<Self> {
        let before = match addr {
            Some(addr) => command_calls(addr).await?,
            None => Calls::new(),
        };
        Ok(Self {
            addr: addr.map(str::to_owned),
            before,
        })
    }

    /// The commands since `start`; `None` without an address.
    pub async fn stop(&self) -> anyhow::Result<Option<RedisUsed>> {
        let Some(addr) = &self.addr else {
            return Ok(None);
        };
        let after = command_calls(addr).await?;
        let delta = |name: &str| {
            let was = self.before.get(name).copied().unwrap_or(0);
            after.get(name).copied().unwrap_or(0).saturating_sub(was)
        };
        Ok(Some(RedisUsed {
            publishes: delta("publish") + delta("spublish"),
            commands: after
                .keys()
                .filter(|n| *n != "info")
                .map(|n| delta(n))
                .sum(),
        }))
    }
}

/// `redis_publishes`, `redis_commands` and both per `unit` (`redis_publishes_per_request`, ...)
/// into `out`, when a Redis was measured.
pub fn redis_fields(out: &mut Map<String, Value>, used: Option<RedisUsed>, ops: usize, unit: &str) {
    let Some(used) = used else { return };
    let ops = ops.max(1) as f64;
    out.insert("redis_publishes".into(), json!(used.publishes));
    out.insert("redis_commands".into(), json!(used.commands));
    out.insert(
        format!("redis_publishes_per_{unit}"),
        json!(round3(used.publishes as f64 / ops)),
    );
    out.insert(
        format!("redis_commands_per_{unit}"),
        json!(round3(used.commands as f64 / ops)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_calls_of_every_command() {
        let info = "# Commandstats\r\ncmdstat_publish:calls=12,usec=40,usec_per_call=3.33,\
                    rejected_calls=0,failed_calls=0\r\ncmdstat_hset:calls=5,usec=9\r\n";
        let calls = parse(info);
        assert_eq!(calls.get("publish"), Some(&12));
        assert_eq!(calls.get("hset"), Some(&5));
        assert_eq!(calls.len(), 2);
    }

    #[test]
    fn reads_used_memory_not_its_neighbours() {
        let info = "# Memory\r\nused_memory:1056784\r\nused_memory_human:1.01M\r\n\
                    used_memory_rss:7340032\r\n";
        assert_eq!(parse_used_memory(info).expect("a figure"), 1_056_784);
        assert!(parse_used_memory("# Memory\r\nused_memory_rss:1\r\n").is_err());
    }
}
