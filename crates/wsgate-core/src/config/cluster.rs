//! `[cluster]`: several nodes sharing one API through Redis (standalone or Redis Cluster).
//! Without the section the gateway is one node and never talks to Redis.

use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, err};
use super::values::de_duration;

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// A standalone Redis: `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    #[serde(default)]
    pub redis: Option<String>,
    /// A Redis Cluster: some of its nodes' URLs (the rest are discovered).
    #[serde(default)]
    pub redis_cluster: Vec<String>,
    /// This node's name in `/@cluster` and the logs; default: generated at start.
    #[serde(default)]
    pub node_id: Option<String>,
    /// How often a node tells the others it is alive.
    #[serde(default = "default_heartbeat", deserialize_with = "de_duration")]
    pub heartbeat: Duration,
    /// A node silent this long is dead: a survivor fires `$disconnect` for its connections.
    #[serde(default = "default_node_timeout", deserialize_with = "de_duration")]
    pub node_timeout: Duration,
    /// How long a call that needs another node waits for it before answering 503.
    #[serde(default = "default_request_timeout", deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// The prefix of every Redis key and channel, so that several gateways can share a Redis.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

fn default_heartbeat() -> Duration {
    Duration::from_secs(1)
}

fn default_node_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_key_prefix() -> String {
    "wsgate".to_owned()
}

/// Where the cluster's Redis is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisTarget<'a> {
    /// One server.
    Standalone(&'a str),
    /// A Redis Cluster, by seed nodes.
    Cluster(&'a [String]),
}

impl Cluster {
    /// The Redis to use (after [`Cluster::validate`], exactly one is set).
    pub fn target(&self) -> RedisTarget<'_> {
        match &self.redis {
            Some(url) => RedisTarget::Standalone(url),
            None => RedisTarget::Cluster(&self.redis_cluster),
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        match (&self.redis, self.redis_cluster.is_empty()) {
            (Some(_), false) => {
                return Err(err(
                    "cluster.redis_cluster",
                    "give redis (one server) or redis_cluster (a Redis Cluster's nodes), not both",
                ));
            }
            (None, true) => {
                return Err(err(
                    "cluster.redis",
                    "give redis = \"redis://host:6379\" or redis_cluster = [\"redis://host:7000\", ...]",
                ));
            }
            _ => {}
        }
        let urls = self.redis.iter().map(|u| ("cluster.redis", u));
        let seeds = self
            .redis_cluster
            .iter()
            .map(|u| ("cluster.redis_cluster", u));
        for (key, url) in urls.chain(seeds) {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(err(
                    key,
                    format!("{:?} is not a redis:// or rediss:// URL", redacted(url)),
                ));
            }
        }
        if let Some(node) = &self.node_id
            && (node.is_empty()
                || node.len() > 64
                || !node
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            return Err(err(
                "cluster.node_id",
                "1 to 64 characters of letters, digits, '-', '_' and '.'",
            ));
        }
        let between = |key: &str, value: Duration, min_ms: u64, max_s: u64| {
            if value < Duration::from_millis(min_ms) || value > Duration::from_secs(max_s) {
                Err(err(key, format!("must be between {min_ms}ms and {max_s}s")))
            } else {
                Ok(())
            }
        };
        between("cluster.heartbeat", self.heartbeat, 50, 60)?;
        between("cluster.node_timeout", self.node_timeout, 200, 600)?;
        between("cluster.request_timeout", self.request_timeout, 50, 2)?;
        if self.node_timeout < self.heartbeat * 2 {
            return Err(err(
                "cluster.node_timeout",
                format!(
                    "must be at least twice the heartbeat ({:?}), or one late heartbeat kills a live node",
                    self.heartbeat
                ),
            ));
        }
        if self.key_prefix.is_empty()
            || self.key_prefix.len() > 64
            || self.key_prefix.contains(['{', '}', ' '])
        {
            return Err(err(
                "cluster.key_prefix",
                "1 to 64 characters, without braces or spaces",
            ));
        }
        Ok(())
    }
}

/// A Redis URL with its password hidden, for messages.
pub fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(at)) if at > scheme.len() => {
            let credentials = &rest[..at - scheme.len() - 3];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{}", &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn check(section: &str) -> Result<(), String> {
        let config = Config::from_toml(section).map_err(|e| e.to_string())?;
        config.validate().map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_standalone_redis_with_defaults_is_valid() {
        let config =
            Config::from_toml("[cluster]\nredis = \"redis://127.0.0.1:6379\"\n").expect("parses");
        let cluster = config.cluster.as_ref().expect("section");
        assert_eq!(cluster.heartbeat.as_secs(), 1);
        assert_eq!(cluster.node_timeout.as_secs(), 5);
        assert_eq!(cluster.key_prefix, "wsgate");
        assert!(config.validate().is_ok());
    }

    #[test]
    fn bad_cluster_settings_name_their_key() {
        for (text, key) in [
            ("[cluster]\n", "cluster.redis:"),
            (
                "[cluster]\nredis = \"redis://a:1\"\nredis_cluster = [\"redis://b:2\"]\n",
                "cluster.redis_cluster:",
            ),
            ("[cluster]\nredis = \"http://a:1\"\n", "cluster.redis:"),
            (
                "[cluster]\nredis = \"redis://a:1\"\nheartbeat = \"1s\"\nnode_timeout = \"1s\"\n",
                "cluster.node_timeout:",
            ),
            (
                "[cluster]\nredis = \"redis://a:1\"\nrequest_timeout = \"10s\"\n",
                "cluster.request_timeout:",
            ),
            (
                "[cluster]\nredis = \"redis://a:1\"\nnode_id = \"a b\"\n",
                "cluster.node_id:",
            ),
            (
                "[cluster]\nredis = \"redis://a:1\"\nkey_prefix = \"{x}\"\n",
                "cluster.key_prefix:",
            ),
        ] {
            let message = check(text).expect_err(text);
            assert!(message.starts_with(key), "{text}: {message}");
        }
    }

    #[test]
    fn passwords_are_hidden_in_messages() {
        assert_eq!(
            super::redacted("redis://app:s3cret@10.0.0.1:6379/0"),
            "redis://app:***@10.0.0.1:6379/0"
        );
        assert_eq!(
            super::redacted("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
