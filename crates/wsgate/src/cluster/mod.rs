//! Several nodes, one API, on Redis (`[cluster]`). A node holds its own sockets, as on one node;
//! the first byte of a connection id is the number of the node that holds it, so a management
//! call for one connection goes straight to that node's channel and waits for its answer. Sends
//! to many go once per node (a group's, to the nodes that hold members), never once per
//! connection. A heartbeat renews the node's entry in the node table; a survivor reaps a node
//! that stopped renewing (see [`nodes`]), and the registry ([`registry`]) keeps in Redis what
//! that takes.
//!
//! Without `[cluster]` none of this runs: the management API works on the hub directly.

mod bus;
mod link;
mod nodes;
mod reaper;
mod registry;
mod sessions;
mod store;
mod wire;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::sync::mpsc::{self, unbounded_channel};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wsgate_core::clock;
use wsgate_core::config::{Cluster as ClusterConfig, RedisTarget, redacted};
use wsgate_core::error::MgmtError;

use self::link::{Health, Link, Pending, Waiting};
use self::nodes::{Beat, Table};
pub use self::reaper::Reaped;
use crate::resume::Mirror;
use wsgate_core::id::ConnectionId;

pub use self::sessions::{Released, Taken};

/// Where a session a resume asks for is.
#[derive(Debug)]
pub enum Found {
    /// Taken over by this node.
    Taken(Box<Taken>),
    /// Held by this node (a number), which may not have it in its hub yet: ask again shortly.
    Held(u8),
    /// Nowhere: it ended, or its window passed.
    Nowhere,
}
use self::store::{Keys, Store};
use crate::hub::Hub;
use crate::ops::{Answer, Op};

/// A node's timing, from `[cluster]`.
#[derive(Debug, Clone, Copy)]
struct Timing {
    heartbeat: Duration,
    node_timeout: Duration,
    request: Duration,
}

/// This node's membership of the cluster.
pub struct Cluster {
    link: Arc<Link>,
    table: Table,
    name: String,
    /// The process's id in the node table; new when the node joins again.
    instance: Mutex<String>,
    timing: Timing,
    resync: Arc<AtomicBool>,
    nudge: Arc<Notify>,
    reaping: AtomicBool,
    reaped: Reaped,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Where sessions send what is kept of them in Redis.
    mirrors: mpsc::UnboundedSender<Mirror>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("number", &self.number())
            .finish_non_exhaustive()
    }
}

fn unavailable(why: impl Into<String>) -> MgmtError {
    MgmtError::ServiceUnavailable(why.into())
}

/// The 503 of a Redis command that failed.
fn redis_failed(error: &redis::RedisError) -> MgmtError {
    unavailable(format!("the cluster's Redis does not answer ({error})"))
}

impl Cluster {
    /// Connects to Redis, takes a node number, and starts the heartbeat, the bus and the
    /// registry; they stop with `stopping`.
    pub async fn start(
        config: &ClusterConfig,
        hub: Arc<Hub>,
        (reaped, released): (Reaped, Released),
        stopping: CancellationToken,
    ) -> Result<Arc<Self>, String> {
        let (pushes, pushed) = unbounded_channel();
        let store = Store::connect(config, pushes).await?;
        let keys = Keys::new(&config.key_prefix);
        let table = Table::new(&keys);
        let instance = hex::encode(rand::random::<[u8; 8]>());
        let name = config
            .node_id
            .clone()
            .unwrap_or_else(|| format!("node-{}", &instance[..6]));
        let timing = Timing {
            heartbeat: config.heartbeat,
            node_timeout: config.node_timeout,
            request: config.request_timeout,
        };
        let number = table
            .claim(&store, &instance, &name, ms(timing.node_timeout))
            .await?;
        store
            .subscribe(&[keys.channel(number), keys.all()])
            .await
            .map_err(|e| format!("cannot subscribe: {e}"))?;
        let link = Arc::new(Link {
            store,
            keys,
            hub,
            number: Arc::new(AtomicU8::new(number)),
            pending: Pending::default(),
            health: Health::default(),
            released,
        });
        let (mirrors, mirrored) = unbounded_channel();
        let cluster = Arc::new(Self {
            link,
            table,
            name,
            instance: Mutex::new(instance),
            timing,
            resync: Arc::new(AtomicBool::new(true)),
            nudge: Arc::new(Notify::new()),
            reaping: AtomicBool::new(false),
            reaped,
            tasks: Mutex::new(Vec::new()),
            mirrors,
        });
        cluster.link.health.up();
        cluster.spawn_tasks(pushed, stopping);
        tokio::spawn(sessions::write(
            cluster.link.store.clone(),
            cluster.link.keys.clone(),
            mirrored,
        ));
        info!(
            node = cluster.name,
            number,
            redis = describe(config),
            "joined the cluster"
        );
        Ok(cluster)
    }

    fn spawn_tasks(
        self: &Arc<Self>,
        pushed: mpsc::UnboundedReceiver<redis::PushInfo>,
        stopping: CancellationToken,
    ) {
        let (changes, received) = unbounded_channel();
        self.link.hub.watch(changes);
        let writer = registry::Writer {
            store: self.link.store.clone(),
            keys: self.link.keys.clone(),
            hub: self.link.hub.clone(),
            resync: self.resync.clone(),
            number: self.link.number.clone(),
            nudge: self.nudge.clone(),
        };
        self.nudge.notify_one();
        let tasks = vec![
            tokio::spawn(writer.run(received)),
            tokio::spawn(bus::listen(self.link.clone(), pushed)),
            tokio::spawn(self.clone().beat_until(stopping)),
        ];
        *self.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
    }

    /// This node's number: the first byte of the ids of connections it holds.
    pub fn number(&self) -> u8 {
        self.link.number()
    }

    async fn beat_until(self: Arc<Self>, stopping: CancellationToken) {
        let mut ticker = tokio::time::interval(self.timing.heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.beat().await,
                () = stopping.cancelled() => return,
            }
        }
    }

    async fn beat(self: &Arc<Self>) {
        let instance = self.instance();
        let beat = self.table.heartbeat(
            &self.link.store,
            self.number(),
            &instance,
            &self.name,
            ms(self.timing.node_timeout),
            self.link.hub.len(),
        );
        match tokio::time::timeout(self.timing.request, beat).await {
            Ok(Ok(Beat::Renewed)) => self.link.health.up(),
            Ok(Ok(Beat::Restored)) => {
                self.link.health.up();
                warn!(
                    "Redis had lost this node's entry (restarted or flushed): registering it again"
                );
                self.resync.store(true, Ordering::Release);
            }
            Ok(Ok(Beat::DeclaredDead)) => self.rejoin().await,
            Ok(Err(error)) => {
                warn!(%error, "cluster heartbeat failed");
                self.link.health.down();
            }
            Err(_) => {
                warn!("cluster heartbeat: Redis did not answer in time");
                self.link.health.down();
            }
        }
        if self.resync.load(Ordering::Acquire) {
            self.nudge.notify_one();
        }
        // After an outage, every live node gets a node_timeout to renew its entry before any
        // node is taken for dead.
        if self
            .link
            .health
            .up_for()
            .is_some_and(|up| up >= self.timing.node_timeout)
            && !self.reaping.swap(true, Ordering::AcqRel)
        {
            let cluster = self.clone();
            tokio::spawn(async move {
                let reaper = reaper::Reaper {
                    number: cluster.number(),
                    store: &cluster.link.store,
                    keys: &cluster.link.keys,
                    table: &cluster.table,
                    reaped: &cluster.reaped,
                    instance: cluster.instance(),
                    lock_ms: ms(cluster.timing.node_timeout * 6),
                };
                reaper.run().await;
                cluster.reaping.store(false, Ordering::Release);
            });
        }
    }

    /// The cluster took this node for dead (it could not reach Redis for longer than
    /// `node_timeout`) and told `$disconnect` of its connections: they are closed with 1012 so
    /// their clients reconnect, and the node joins again under a new number.
    async fn rejoin(&self) {
        let sessions = self.link.hub.sessions();
        warn!(
            connections = sessions.len(),
            "the cluster took this node for dead (Redis was out of reach for longer than \
             cluster.node_timeout) and told $disconnect of its connections: closing them with \
             1012 so their clients reconnect, and joining again"
        );
        for session in sessions {
            // The survivor told those the registry held; the others (accepted just before the
            // node lost Redis) get their `$disconnect` from here, as they close.
            if session.registered() {
                session.mark_reported();
            }
            session.outbox.close_now(1012, "Service Restart");
        }
        // The old instance has a tombstone: the node comes back as a new one.
        let instance = hex::encode(rand::random::<[u8; 8]>());
        let claimed = self
            .table
            .claim(
                &self.link.store,
                &instance,
                &self.name,
                ms(self.timing.node_timeout),
            )
            .await;
        match claimed {
            Ok(number) => {
                *self.instance.lock().unwrap_or_else(|e| e.into_inner()) = instance;
                if let Err(error) = self
                    .link
                    .store
                    .subscribe(&[self.link.keys.channel(number)])
                    .await
                {
                    warn!(%error, "cannot subscribe to the new node channel");
                }
                let old = self.link.number.swap(number, Ordering::Relaxed);
                // Another node may take the old number: its requests are not this node's. (The
                // node may also get its old number back: then it stays on that channel.)
                if old != number
                    && let Err(error) = self
                        .link
                        .store
                        .unsubscribe(&self.link.keys.channel(old))
                        .await
                {
                    warn!(%error, "cannot leave the old node channel");
                }
                self.resync.store(true, Ordering::Release);
                info!(number, "joined the cluster again");
            }
            Err(error) => warn!(%error, "cannot join the cluster again"),
        }
    }

    fn instance(&self) -> String {
        self.instance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A 503 while Redis is known not to answer: a send to many then delivers nothing rather than
    /// reaching this node's connections alone.
    pub fn available(&self) -> Result<(), MgmtError> {
        match self.link.health.up_for() {
            Some(_) => Ok(()),
            None => Err(unavailable(
                "the cluster's Redis does not answer; connections held by other nodes cannot be reached",
            )),
        }
    }

    /// Runs `op` on node `node` and waits for its answer; `None` when no node has that number.
    pub async fn call(&self, node: u8, op: &Op, data: &[u8]) -> Result<Option<Answer>, MgmtError> {
        let answers = self.call_each(&[node], op, data).await?;
        if let Some(answer) = answers.into_iter().next() {
            return Ok(Some(answer));
        }
        // Nobody listens on that channel: no such node, or a dead one — unless the node is alive
        // and only reconnecting to Redis, when "gone" would make the caller forget a live
        // connection.
        match self.table.alive(&self.link.store, node).await {
            Ok(false) => Ok(None),
            Ok(true) => Err(unavailable(format!(
                "node {node} is alive but not listening (reconnecting to Redis); try again"
            ))),
            Err(error) => Err(redis_failed(&error)),
        }
    }

    /// Runs `op` on each of `nodes` (not this one) and gathers their answers.
    pub async fn call_each(
        &self,
        nodes: &[u8],
        op: &Op,
        data: &[u8],
    ) -> Result<Vec<Answer>, MgmtError> {
        let mut waiting = self.link.pending.open();
        let message = wire::request(self.number(), waiting.number, op, data);
        let publishes = nodes.iter().map(|node| {
            let channel = self.link.keys.channel(*node);
            let message = message.clone();
            async move { self.link.store.publish(&channel, message).await }
        });
        let all = async {
            let mut receivers = 0;
            for published in futures_util::future::join_all(publishes).await {
                receivers += published?;
            }
            Ok(receivers)
        };
        self.gather(&mut waiting, all, 0).await
    }

    /// Runs `op` on every other node and gathers their answers.
    pub async fn call_all(&self, op: &Op, data: &[u8]) -> Result<Vec<Answer>, MgmtError> {
        let mut waiting = self.link.pending.open();
        let message = wire::request(self.number(), waiting.number, op, data);
        let channel = self.link.keys.all();
        // This node listens to the channel too, and leaves its own requests alone.
        self.gather(&mut waiting, self.link.store.publish(&channel, message), 1)
            .await
    }

    /// Publishes (`publish` yields how many nodes listened), then waits for an answer from
    /// each but `own` of them, all within `cluster.request_timeout`.
    async fn gather(
        &self,
        waiting: &mut Waiting<'_>,
        publish: impl Future<Output = redis::RedisResult<usize>>,
        own: usize,
    ) -> Result<Vec<Answer>, MgmtError> {
        let deadline = tokio::time::Instant::now() + self.timing.request;
        let receivers = match tokio::time::timeout_at(deadline, publish).await {
            Ok(Ok(receivers)) => receivers,
            Ok(Err(error)) => {
                self.link.health.down();
                return Err(redis_failed(&error));
            }
            Err(_) => {
                self.link.health.down();
                return Err(unavailable(format!(
                    "the cluster's Redis did not answer within {:?}",
                    self.timing.request
                )));
            }
        };
        let expected = receivers.saturating_sub(own);
        let mut answers = Vec::with_capacity(expected);
        while answers.len() < expected {
            match tokio::time::timeout_at(deadline, waiting.answers.recv()).await {
                Ok(Some(answer)) => answers.push(answer),
                _ => {
                    return Err(unavailable(format!(
                        "{} of {expected} nodes did not answer within {:?}",
                        expected - answers.len(),
                        self.timing.request
                    )));
                }
            }
        }
        Ok(answers)
    }

    /// Where sessions send what a cluster keeps of them while they are suspended.
    pub fn mirrors(&self) -> mpsc::UnboundedSender<Mirror> {
        self.mirrors.clone()
    }

    /// Takes over the session `token` resumes, held by another node: that node lets it go, or,
    /// when it is dead, the session is taken from Redis.
    pub async fn take_session(&self, id: ConnectionId, token: &str) -> Result<Found, MgmtError> {
        self.available()?;
        let (store, keys) = (&self.link.store, &self.link.keys);
        let holder = sessions::holder(store, keys, &id)
            .await
            .map_err(|e| redis_failed(&e))?
            .unwrap_or(id.node());
        if holder != self.number() {
            let op = Op::Release {
                id,
                token: token.to_owned(),
            };
            // A node that has just died still looks alive until its entry expires: the resume
            // waits for that (at most `node_timeout`), then takes the session from Redis.
            let deadline = tokio::time::Instant::now() + self.timing.node_timeout;
            loop {
                match self.call(holder, &op, &[]).await {
                    Ok(Some(Answer::Released(Some(saved)))) => {
                        return Ok(Found::Taken(Box::new((*saved, Vec::new()))));
                    }
                    Ok(_) => break,
                    Err(error) if tokio::time::Instant::now() >= deadline => return Err(error),
                    Err(_) => tokio::time::sleep(self.timing.heartbeat).await,
                }
            }
        }
        let taken = sessions::take(store, keys, &id, token, self.number())
            .await
            .map_err(|e| redis_failed(&e))?;
        if let Some(taken) = taken {
            return Ok(Found::Taken(Box::new(taken)));
        }
        // Taken from Redis by another node (the survivor reaping a dead one) a moment ago, and
        // not in its hub yet; or gone.
        let holder = sessions::holder(store, keys, &id)
            .await
            .map_err(|e| redis_failed(&e))?;
        Ok(match holder {
            Some(holder) => Found::Held(holder),
            None => Found::Nowhere,
        })
    }

    /// Runs `op` on this node's connections; a POST to a resumable session kept in Redis is
    /// written there first (see [`link::Link::execute`]).
    pub async fn execute_here(&self, op: &Op, data: bytes::Bytes) -> Answer {
        self.link.execute(op, data).await
    }

    /// Records that this node holds `id` now (taken over from another node).
    pub async fn holds(&self, id: ConnectionId) -> Result<(), MgmtError> {
        sessions::moved(&self.link.store, &self.link.keys, &id, self.number())
            .await
            .map_err(|e| redis_failed(&e))
    }

    /// A call for `id` that the node its id names answered "gone" (or that node is dead): the
    /// answer of the node that took the connection over, if one did; a POST kept for a suspended
    /// session whose node died; a 503 for another call to such a session (a survivor is taking
    /// it over); else gone.
    pub async fn after_gone(
        &self,
        id: ConnectionId,
        op: &Op,
        data: &[u8],
    ) -> Result<Answer, MgmtError> {
        let (store, keys) = (&self.link.store, &self.link.keys);
        let holder = sessions::holder(store, keys, &id)
            .await
            .map_err(|e| redis_failed(&e))?;
        match holder {
            Some(holder) if holder == self.number() => {
                return Ok(crate::ops::execute(
                    &self.link.hub,
                    op,
                    bytes::Bytes::copy_from_slice(data),
                ));
            }
            Some(holder) if holder != id.node() => {
                return Ok(self.call(holder, op, data).await?.unwrap_or(Answer::Gone));
            }
            Some(_) => return Ok(Answer::Gone),
            None => {}
        }
        if let Op::Post { .. } = op {
            let kept = sessions::post(store, keys, &[id], data)
                .await
                .map_err(|e| redis_failed(&e))?;
            return Ok(if kept.first() == Some(&true) {
                Answer::Ok
            } else {
                Answer::Gone
            });
        }
        let suspended = sessions::suspended(store, keys, &id)
            .await
            .map_err(|e| redis_failed(&e))?;
        match suspended {
            true => Err(unavailable(
                "the node that held this connection stopped; another node is taking it over: retry",
            )),
            false => Ok(Answer::Gone),
        }
    }

    /// The nodes other than this one that hold members of `group` (or of `user`).
    pub async fn holders(&self, key: Holders<'_>) -> Result<Vec<u8>, MgmtError> {
        let key = match key {
            Holders::Group(group) => self.link.keys.group(group),
            Holders::User(user) => self.link.keys.user(user),
        };
        let smembers = redis::cmd("SMEMBERS").arg(key).take();
        let read = self.link.store.query::<Vec<u8>>(&smembers);
        let nodes = tokio::time::timeout(self.timing.request, read)
            .await
            .map_err(|_| unavailable("the cluster's Redis did not answer in time"))?
            .map_err(|e| {
                self.link.health.down();
                redis_failed(&e)
            })?;
        let me = self.number();
        Ok(nodes.into_iter().filter(|n| *n != me).collect())
    }

    /// This node's name (`cluster.node_id`, or the one it was given).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether Redis answered the latest heartbeat (or request) of this node.
    pub fn redis_up(&self) -> bool {
        self.link.health.up_for().is_some()
    }

    /// How many times a request to Redis failed or timed out on this node.
    pub fn redis_errors(&self) -> u64 {
        self.link.health.errors()
    }

    /// How many nodes are alive, this one included; 0 when Redis does not answer.
    pub async fn live_nodes(&self) -> usize {
        self.view().await["nodes"].as_array().map_or(0, Vec::len)
    }

    /// `GET @cluster`'s body: this node, whether Redis answers, and the live nodes.
    pub async fn view(&self) -> Value {
        let read = async {
            let time: (u64, u64) = self.link.store.query(&redis::cmd("TIME")).await?;
            let entries = self.table.entries(&self.link.store).await?;
            redis::RedisResult::Ok((time.0 * 1000 + time.1 / 1000, entries))
        };
        let me = self.number();
        let (redis, nodes) = match tokio::time::timeout(self.timing.request, read).await {
            Ok(Ok((now, mut entries))) => {
                entries.retain(|e| e.deadline >= now);
                entries.sort_by_key(|e| e.number);
                let nodes = entries
                    .iter()
                    .map(|e| {
                        json!({
                            "nodeId": e.name,
                            "number": e.number,
                            "connections": if e.number == me { self.link.hub.len() as u64 } else { e.connections },
                            "lastHeartbeat": clock::iso8601(e.heartbeat),
                            "self": e.number == me,
                        })
                    })
                    .collect::<Vec<_>>();
                ("up", nodes)
            }
            _ => ("down", Vec::new()),
        };
        json!({"node": self.name, "number": me, "redis": redis, "nodes": nodes})
    }

    /// Leaves the cluster cleanly (the node is stopping and its sessions have ended): its
    /// entries go, so no survivor reaps it.
    pub async fn leave(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
        let number = self.number();
        let forget = async {
            reaper::forget(&self.link.store, &self.link.keys, number).await?;
            self.table.leave(&self.link.store, number).await
        };
        match tokio::time::timeout(self.timing.request * 2, forget).await {
            Ok(Ok(())) => info!(number, "left the cluster"),
            Ok(Err(error)) => {
                warn!(%error, "could not leave the cluster cleanly; survivors will reap this node")
            }
            Err(_) => warn!(
                "Redis did not answer while leaving the cluster; survivors will reap this node"
            ),
        }
    }
}

/// Whose holders [`Cluster::holders`] reads.
#[derive(Debug, Clone, Copy)]
pub enum Holders<'a> {
    /// A group's.
    Group(&'a str),
    /// A user's.
    User(&'a str),
}

/// Where the cluster's Redis is, passwords hidden.
fn describe(config: &ClusterConfig) -> String {
    match config.target() {
        RedisTarget::Standalone(url) => redacted(url),
        RedisTarget::Cluster(seeds) => seeds
            .iter()
            .map(|s| redacted(s))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
