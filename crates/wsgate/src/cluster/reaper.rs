//! Reaping a dead node: `$disconnect` (1006) for each of its connections, from the context it
//! registered, then its keys. The node table's lock makes one survivor do it; the survivor takes
//! each connection out of Redis once its `$disconnect` is told, so a survivor that takes over a
//! stalled reaping goes on where the first one stopped.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tracing::{info, warn};
use wsgate_core::event::ConnectionContext;

use super::nodes::Table;
use super::store::{Keys, Store};

/// What becomes of a connection of a dead node: `$disconnect` (code 1006) — or, for a suspended
/// resumable session kept in Redis, taken over by this node to wait for its client's resume.
pub type Reaped = Arc<
    dyn Fn(ConnectionContext, Option<super::sessions::Taken>) -> BoxFuture<'static, ()>
        + Send
        + Sync,
>;

/// Connections told per round.
const ROUND: usize = 256;

/// A survivor about to reap.
pub(super) struct Reaper<'a> {
    /// The survivor's number.
    pub number: u8,
    /// The connection to Redis.
    pub store: &'a Store,
    /// Key names.
    pub keys: &'a Keys,
    /// The node table.
    pub table: &'a Table,
    /// Tells `$disconnect`.
    pub reaped: &'a Reaped,
    /// The survivor's instance, which holds the lock.
    pub instance: String,
    /// How long the lock holds between renewals, in ms.
    pub lock_ms: u64,
}

impl Reaper<'_> {
    /// Reaps dead nodes until none is left.
    pub async fn run(&self) {
        loop {
            let taken = self
                .table
                .take_dead(self.store, &self.instance, self.lock_ms)
                .await;
            let (number, dead) = match taken {
                Ok(Some(taken)) => taken,
                Ok(None) => return,
                Err(error) => {
                    warn!(%error, "cluster: cannot look for dead nodes");
                    return;
                }
            };
            warn!(
                number,
                "a node stopped renewing its heartbeat: taking over its resumable sessions and telling $disconnect of its other connections"
            );
            match self.reap_node(number, &dead).await {
                Ok(told) => info!(number, connections = told, "reaped a dead node"),
                Err(error) => warn!(
                    number,
                    %error,
                    "reaping a dead node failed; another survivor takes over"
                ),
            }
        }
    }

    async fn reap_node(&self, number: u8, dead: &str) -> redis::RedisResult<usize> {
        let conns = self.keys.conns(number);
        let mut told = 0;
        loop {
            let scan = redis::cmd("HSCAN")
                .arg(&conns)
                .arg(0)
                .arg("COUNT")
                .arg(ROUND)
                .take();
            let (_, flat): (String, Vec<String>) = self.store.query(&scan).await?;
            if flat.is_empty() {
                break;
            }
            let mut ids = Vec::with_capacity(flat.len() / 2);
            let mut tells = Vec::with_capacity(flat.len() / 2);
            for pair in flat.chunks_exact(2) {
                ids.push(pair[0].clone());
                match serde_json::from_str::<ConnectionContext>(&pair[1]) {
                    Ok(ctx) => match self.take_suspended(&ctx.connection_id, number).await? {
                        // Resumed on another node already: it lives on there.
                        Suspension::Elsewhere => {}
                        // Registered at once: its client may be resuming right now.
                        Suspension::Taken(taken) => (self.reaped)(ctx, Some(*taken)).await,
                        Suspension::None => tells.push((self.reaped)(ctx, None)),
                    },
                    Err(error) => {
                        warn!(id = pair[0], %error, "a registered connection could not be read")
                    }
                }
            }
            told += tells.len();
            futures_util::future::join_all(tells).await;
            self.store
                .query::<()>(redis::cmd("HDEL").arg(&conns).arg(&ids))
                .await?;
            let held = self
                .table
                .extend(self.store, number, dead, &self.instance, self.lock_ms);
            if !held.await? {
                return Ok(told);
            }
        }
        forget(self.store, self.keys, number).await?;
        self.table.bury(self.store, number, dead).await?;
        Ok(told)
    }
}

/// What became of a dead node's connection, as Redis tells it.
enum Suspension {
    /// A suspended session, taken over by this node.
    Taken(Box<super::sessions::Taken>),
    /// Taken over by another node (its client resumed there).
    Elsewhere,
    /// Nothing kept: it is over.
    None,
}

impl Reaper<'_> {
    /// A dead node's connection: a suspended session kept in Redis is taken over by this node;
    /// one another node took over already is left alone.
    async fn take_suspended(
        &self,
        id: &wsgate_core::id::ConnectionId,
        dead: u8,
    ) -> redis::RedisResult<Suspension> {
        let taken = super::sessions::take(self.store, self.keys, id, "", self.number).await?;
        if let Some(taken) = taken {
            return Ok(Suspension::Taken(Box::new(taken)));
        }
        let holder = super::sessions::holder(self.store, self.keys, id).await?;
        Ok(match holder {
            Some(holder) if holder != dead => Suspension::Elsewhere,
            _ => Suspension::None,
        })
    }
}

/// Takes node `number` out of the registry: its connections, and its place among the holders
/// of its groups and users.
pub(super) async fn forget(store: &Store, keys: &Keys, number: u8) -> redis::RedisResult<()> {
    let groups: Vec<String> = store
        .query(redis::cmd("SMEMBERS").arg(keys.node_groups(number)))
        .await?;
    let users: Vec<String> = store
        .query(redis::cmd("SMEMBERS").arg(keys.node_users(number)))
        .await?;
    let mut cmds = Vec::with_capacity(groups.len() + users.len() + 3);
    for group in &groups {
        cmds.push(redis::cmd("SREM").arg(keys.group(group)).arg(number).take());
    }
    for user in &users {
        cmds.push(redis::cmd("SREM").arg(keys.user(user)).arg(number).take());
    }
    for key in [
        keys.conns(number),
        keys.node_groups(number),
        keys.node_users(number),
    ] {
        cmds.push(redis::cmd("DEL").arg(key).take());
    }
    store.run_all(cmds).await
}
