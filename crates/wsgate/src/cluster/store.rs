//! The Redis connection a node uses for everything — commands, publishing, and the pushes of
//! its subscriptions (RESP3, so one connection carries all three) — to a standalone server or a
//! Redis Cluster, and the names of its keys and channels.
//!
//! Key layout (`P` is `cluster.key_prefix`, `N` a node's number). Keys that change together
//! share a hash tag, so each command touches one Redis Cluster slot:
//!
//! | key | type | what |
//! |---|---|---|
//! | `P:nodes` | hash | node number → its entry (instance, name, deadline); `dead:{instance}` → tombstone |
//! | `P:{nN}:conns` | hash | connection id → its context (what `$disconnect` needs) |
//! | `P:{nN}:groups`, `P:{nN}:users` | set | the groups and users with members on node N |
//! | `P:{g:NAME}:nodes`, `P:{u:NAME}:nodes` | set | the nodes holding a group's or user's connections |
//! | channel `P:{nN}:bus` | pub/sub | requests to node N and answers to its requests |
//! | channel `P:all` | pub/sub | requests to every node (broadcast, listings) |

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, IntoConnectionInfo, ProtocolVersion, PushInfo, RedisResult};
use tokio::sync::mpsc::UnboundedSender;
use wsgate_core::config::{Cluster as ClusterConfig, RedisTarget, redacted};

/// Names of keys and channels under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The node table.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// Node `n`'s connections and their contexts.
    pub fn conns(&self, n: u8) -> String {
        format!("{}:{{n{n}}}:conns", self.prefix)
    }

    /// The groups with members on node `n`.
    pub fn node_groups(&self, n: u8) -> String {
        format!("{}:{{n{n}}}:groups", self.prefix)
    }

    /// The users with connections on node `n`.
    pub fn node_users(&self, n: u8) -> String {
        format!("{}:{{n{n}}}:users", self.prefix)
    }

    /// The nodes holding members of `group`.
    pub fn group(&self, group: &str) -> String {
        format!("{}:{{g:{group}}}:nodes", self.prefix)
    }

    /// The nodes holding connections of `user`.
    pub fn user(&self, user: &str) -> String {
        format!("{}:{{u:{user}}}:nodes", self.prefix)
    }

    /// Node `n`'s channel.
    pub fn channel(&self, n: u8) -> String {
        format!("{}:{{n{n}}}:bus", self.prefix)
    }

    /// The channel every node listens to.
    pub fn all(&self) -> String {
        format!("{}:all", self.prefix)
    }

    /// A suspended session's state, and the messages kept for it since (same slot).
    pub fn session(&self, id: &str) -> (String, String) {
        (
            format!("{}:{{s:{id}}}:state", self.prefix),
            format!("{}:{{s:{id}}}:queue", self.prefix),
        )
    }

    /// Messages POSTed to a kept session and not yet numbered by it (written before the POST is
    /// answered, so that a node's crash does not lose them).
    pub fn posted(&self, id: &str) -> String {
        format!("{}:{{s:{id}}}:posted", self.prefix)
    }

    /// A kept session's groups and user, when they changed since its state was written.
    pub fn member(&self, id: &str) -> String {
        format!("{}:{{s:{id}}}:member", self.prefix)
    }

    /// The node that holds a connection taken over from another node.
    pub fn moved(&self, id: &str) -> String {
        format!("{}:{{s:{id}}}:node", self.prefix)
    }
}

/// A connection to the cluster's Redis. Cloning shares it.
#[derive(Clone)]
pub enum Store {
    /// A standalone server, reconnected and resubscribed by the connection manager.
    Standalone(ConnectionManager),
    /// A Redis Cluster, which follows slot moves and resubscribes by itself.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Standalone(_) => "Store::Standalone",
            Self::Cluster(_) => "Store::Cluster",
        })
    }
}

/// How long connecting may take, and a command.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl Store {
    /// Connects; the pushes of its subscriptions (and disconnections) go to `pushes`.
    pub async fn connect(
        config: &ClusterConfig,
        pushes: UnboundedSender<PushInfo>,
    ) -> Result<Self, String> {
        let response = config.request_timeout;
        match config.target() {
            RedisTarget::Standalone(url) => {
                let describe = |e: redis::RedisError| format!("{}: {e}", redacted(url));
                let info = url.into_connection_info().map_err(describe)?;
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                let info = info.set_redis_settings(settings);
                let client = redis::Client::open(info).map_err(describe)?;
                let manager = redis::aio::ConnectionManagerConfig::new()
                    .set_push_sender(pushes)
                    .set_automatic_resubscription()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT.min(response * 2)))
                    .set_response_timeout(Some(response))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                let manager = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    client.get_connection_manager_with_config(manager),
                )
                .await
                .map_err(|_| format!("{}: no answer within {CONNECT_TIMEOUT:?}", redacted(url)))?
                .map_err(describe)?;
                Ok(Self::Standalone(manager))
            }
            RedisTarget::Cluster(seeds) => {
                let names = seeds.iter().map(|s| redacted(s)).collect::<Vec<_>>();
                let describe = |e: redis::RedisError| format!("{}: {e}", names.join(", "));
                let client = redis::cluster::ClusterClientBuilder::new(seeds.to_vec())
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(pushes)
                    .connection_timeout(CONNECT_TIMEOUT.min(response * 2))
                    .response_timeout(response)
                    .retries(1)
                    .build()
                    .map_err(describe)?;
                let connection =
                    tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_connection())
                        .await
                        .map_err(|_| {
                            format!("{}: no answer within {CONNECT_TIMEOUT:?}", names.join(", "))
                        })?
                        .map_err(describe)?;
                Ok(Self::Cluster(connection))
            }
        }
    }

    /// Runs one command.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Self::Standalone(c) => cmd.query_async(&mut c.clone()).await,
            Self::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }

    /// Runs a Lua script.
    pub async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        match self {
            Self::Standalone(c) => invocation.invoke_async(&mut c.clone()).await,
            Self::Cluster(c) => invocation.invoke_async(&mut c.clone()).await,
        }
    }

    /// Runs commands, in order on a standalone server (one round trip); on a Redis Cluster each
    /// goes to its own slot's server, all at once.
    pub async fn run_all(&self, cmds: Vec<Cmd>) -> RedisResult<()> {
        match self {
            Self::Standalone(c) => {
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd).ignore();
                }
                pipe.query_async::<()>(&mut c.clone()).await
            }
            Self::Cluster(_) => {
                let runs = cmds.iter().map(|cmd| self.query::<redis::Value>(cmd));
                for result in futures_util::future::join_all(runs).await {
                    result?;
                }
                Ok(())
            }
        }
    }

    /// Runs commands and returns their replies, in order (one round trip on a standalone
    /// server; on a Redis Cluster each goes to its own slot's server, all at once).
    pub async fn query_all<T: FromRedisValue>(&self, cmds: Vec<Cmd>) -> RedisResult<Vec<T>> {
        match self {
            Self::Standalone(c) => {
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd);
                }
                pipe.query_async(&mut c.clone()).await
            }
            Self::Cluster(_) => {
                let runs = cmds.iter().map(|cmd| self.query::<T>(cmd));
                futures_util::future::join_all(runs)
                    .await
                    .into_iter()
                    .collect()
            }
        }
    }

    /// Publishes `message` on `channel` (sharded pub/sub on a Redis Cluster); the number of
    /// subscribers that got it.
    pub async fn publish(&self, channel: &str, message: Vec<u8>) -> RedisResult<usize> {
        let verb = match self {
            Self::Standalone(_) => "PUBLISH",
            Self::Cluster(_) => "SPUBLISH",
        };
        self.query(redis::cmd(verb).arg(channel).arg(message)).await
    }

    /// Leaves `channel` (a number this node no longer has).
    pub async fn unsubscribe(&self, channel: &str) -> RedisResult<()> {
        match self {
            Self::Standalone(c) => c.clone().unsubscribe(channel).await,
            Self::Cluster(c) => c.clone().sunsubscribe(channel).await,
        }
    }

    /// Subscribes to `channels` (sharded on a Redis Cluster); kept across reconnections.
    pub async fn subscribe(&self, channels: &[String]) -> RedisResult<()> {
        match self {
            Self::Standalone(c) => {
                let mut c = c.clone();
                for channel in channels {
                    c.subscribe(channel).await?;
                }
            }
            Self::Cluster(c) => {
                let mut c = c.clone();
                for channel in channels {
                    c.ssubscribe(channel).await?;
                }
            }
        }
        Ok(())
    }
}
