//! The registry: what Redis knows of this node's connections — each one's context (for a
//! survivor's `$disconnect`), and which groups and users have members here (so that a send to a
//! group goes only to the nodes that hold members). The hub tells of every change; one task
//! copies them to Redis in batches. After a failure, or when Redis lost its data, the task writes
//! the node's whole state again from the hub, so Redis comes back complete without a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redis::Cmd;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{info, warn};
use wsgate_core::id::ConnectionId;

use super::store::{Keys, Store};

use crate::hub::{Change, Hub, SessionHandle};

/// Changes copied per round trip, at most.
const BATCH: usize = 512;
/// Connections written per command when the whole state is written again.
const CHUNK: usize = 1000;

/// What the writer is given.
pub struct Writer {
    /// Where to write.
    pub store: Store,
    /// Key names.
    pub keys: Keys,
    /// This node's connections.
    pub hub: Arc<Hub>,
    /// Set (by the writer on a failure, by the heartbeat when Redis lost the node) when the
    /// whole state must be written again.
    pub resync: Arc<AtomicBool>,
    /// Its number, read at each write (it changes if the cluster let the node go).
    pub number: Arc<std::sync::atomic::AtomicU8>,
    /// Rung by the heartbeat while `resync` is up: all writes go through this one task, so a
    /// whole-state write never lands between a change and the one before it.
    pub nudge: Arc<tokio::sync::Notify>,
}

impl Writer {
    /// Copies changes until the hub stops sending them (the node is stopping).
    pub async fn run(self, mut changes: UnboundedReceiver<Change>) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                received = changes.recv_many(&mut batch, BATCH) => if received == 0 {
                    return;
                },
                () = self.nudge.notified() => {}
            }
            if self.resync.load(Ordering::Acquire) {
                // The whole state is written from the hub, which already holds every change
                // queued so far: they are dropped, so an outage cannot pile them up. Tries again
                // at the next heartbeat's nudge.
                batch.clear();
                while changes.try_recv().is_ok() {}
                self.write_all().await;
                continue;
            }
            let connected: Vec<ConnectionId> = batch
                .iter()
                .filter_map(|change| match change {
                    Change::Connected(ctx) => Some(ctx.connection_id),
                    _ => None,
                })
                .collect();
            let cmds = self.commands(batch.drain(..));
            match self.store.run_all(cmds).await {
                Ok(()) => {
                    for id in &connected {
                        if let Some(session) = self.hub.get(id) {
                            session.mark_registered();
                        }
                    }
                }
                Err(error) => {
                    warn!(%error, "cluster registry: a write failed; the whole state is written again when Redis answers");
                    self.resync.store(true, Ordering::Release);
                }
            }
        }
    }

    /// Writes the whole state when the flag is up (a failed attempt leaves it up).
    async fn write_all(&self) {
        if !self.resync.load(Ordering::Acquire) {
            return;
        }
        let sessions = self.hub.sessions();
        match self.store.run_all(self.snapshot(&sessions)).await {
            Ok(()) => {
                sessions.iter().for_each(|s| s.mark_registered());
                self.resync.store(false, Ordering::Release);
                info!(
                    connections = self.hub.len(),
                    "cluster registry: this node's connections, groups and users are registered"
                );
            }
            Err(error) => warn!(%error, "cluster registry: Redis does not answer yet"),
        }
    }

    fn commands(&self, changes: impl Iterator<Item = Change>) -> Vec<Cmd> {
        let n = self.number.load(Ordering::Relaxed);
        let mut cmds = Vec::new();
        for change in changes {
            match change {
                Change::Connected(ctx) => {
                    let json = serde_json::to_string(&*ctx).unwrap_or_default();
                    cmds.push(
                        redis::cmd("HSET")
                            .arg(self.keys.conns(n))
                            .arg(ctx.connection_id.as_str())
                            .arg(json)
                            .take(),
                    );
                }
                Change::Disconnected(id) => cmds.push(
                    redis::cmd("HDEL")
                        .arg(self.keys.conns(n))
                        .arg(id.as_str())
                        .take(),
                ),
                Change::Group(group) => {
                    let held = self.hub.has_group(&group);
                    cmds.extend(index(
                        held,
                        &self.keys.group(&group),
                        &self.keys.node_groups(n),
                        &group,
                        n,
                    ));
                }
                Change::Member(id) => {
                    if let Some(session) = self.hub.get(&id) {
                        let membership = session.membership();
                        cmds.push(super::sessions::member(
                            &self.keys,
                            &id,
                            membership.groups.iter().map(|g| g.to_string()).collect(),
                            membership.user.as_deref().map(str::to_owned),
                        ));
                    }
                }
                Change::User(user) => {
                    let held = self.hub.has_user(&user);
                    cmds.extend(index(
                        held,
                        &self.keys.user(&user),
                        &self.keys.node_users(n),
                        &user,
                        n,
                    ));
                }
            }
        }
        cmds
    }

    /// Commands that replace what Redis holds of this node with what the hub holds now.
    fn snapshot(&self, sessions: &[Arc<SessionHandle>]) -> Vec<Cmd> {
        let n = self.number.load(Ordering::Relaxed);
        let mut cmds = vec![
            redis::cmd("DEL").arg(self.keys.conns(n)).take(),
            redis::cmd("DEL").arg(self.keys.node_groups(n)).take(),
            redis::cmd("DEL").arg(self.keys.node_users(n)).take(),
        ];
        for chunk in sessions.chunks(CHUNK) {
            let mut hset = redis::cmd("HSET");
            hset.arg(self.keys.conns(n));
            for session in chunk {
                let json = serde_json::to_string(&*session.ctx).unwrap_or_default();
                hset.arg(session.ctx.connection_id.as_str()).arg(json);
            }
            cmds.push(hset);
        }
        let (groups, users) = self.hub.names();
        for group in &groups {
            cmds.extend(index(
                true,
                &self.keys.group(group),
                &self.keys.node_groups(n),
                group,
                n,
            ));
        }
        for user in &users {
            cmds.extend(index(
                true,
                &self.keys.user(user),
                &self.keys.node_users(n),
                user,
                n,
            ));
        }
        cmds
    }
}

/// Adds node `n` to (or takes it out of) the nodes of `name`, and `name` to the node's list.
fn index(held: bool, nodes_key: &str, node_key: &str, name: &str, n: u8) -> [Cmd; 2] {
    let verb = if held { "SADD" } else { "SREM" };
    [
        redis::cmd(verb).arg(nodes_key).arg(n).take(),
        redis::cmd(verb).arg(node_key).arg(name).take(),
    ]
}
