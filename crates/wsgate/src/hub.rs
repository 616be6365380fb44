//! This node's live connections: connection id → session handle, and each session's outbox.
//!
//! Every write to a client — route responses, error frames, `@connections` POSTs — goes through
//! the connection's [`Outbox`], which is bounded in bytes: a slow reader costs at most
//! `limits.outbox_bytes`, and the poster learns of it (429).

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use wsgate_core::close::Close;
use wsgate_core::config::FanoutOverflow;
use wsgate_core::event::ConnectionContext;
use wsgate_core::id::ConnectionId;

/// A close frame's reason: the gateway's own are static; one a caller chose (at most 123 bytes,
/// see [`Close`]) is owned.
pub type Reason = Cow<'static, str>;

/// What a session is asked to do by others. Cloning shares the frame's bytes.
///
/// 40 bytes, as before a close could carry a caller's reason: the reason's `Cow` (24) beside
/// the code fits in a frame's `Bytes` (32), and only a close asked for by a caller allocates.
#[derive(Debug, Clone)]
pub enum Command {
    /// Send a text message (already known to be UTF-8).
    Text(Utf8Bytes),
    /// Send a binary message.
    Binary(Bytes),
    /// Close the connection with this code and reason.
    Close(u16, Reason),
}

impl Command {
    fn cost(&self) -> usize {
        match self {
            Self::Text(t) => t.len(),
            Self::Binary(b) => b.len(),
            Self::Close(..) => 0,
        }
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The outbox holds `limits.outbox_bytes` already.
    #[error("outbox full")]
    Full,
    /// The session has ended.
    #[error("connection closed")]
    Closed,
}

/// The queue between producers (routes, the management API) and one session.
///
/// A `VecDeque` behind a mutex rather than a channel: an idle connection's empty queue allocates
/// nothing (a tokio channel allocates a block of 32 slots up front, ~1.3 KiB per connection).
#[derive(Debug, Default)]
struct Queue {
    commands: Mutex<VecDeque<Command>>,
    queued: AtomicUsize,
    waker: AtomicWaker,
    closed: AtomicBool,
    /// A close that jumps the queue (a slow reader dropped by a fan-out).
    urgent: Mutex<Option<(u16, &'static str)>>,
    /// Set when the session is asked to move to a new process (`kill -USR2`).
    hand_over: AtomicBool,
    /// Set while the session moves: its socket stops reading and never makes a write wait.
    moving: AtomicBool,
}

/// The sending half of a session's queue, bounded in bytes.
#[derive(Debug, Clone)]
pub struct Outbox {
    queue: Arc<Queue>,
    limit: usize,
}

/// The receiving half, owned by the session. Dropping it refuses further pushes.
#[derive(Debug)]
pub struct Inbox {
    queue: Arc<Queue>,
}

/// A new outbox holding at most `limit` bytes.
pub fn outbox(limit: usize) -> (Outbox, Inbox) {
    let queue = Arc::new(Queue::default());
    (
        Outbox {
            queue: queue.clone(),
            limit,
        },
        Inbox { queue },
    )
}

/// Past this many slots an emptied queue gives its memory back (after a burst to a slow reader).
const KEEP_SLOTS: usize = 16;

impl Outbox {
    /// Queues a message unless that would pass the byte bound, and wakes the session.
    pub fn push(&self, command: Command) -> Result<(), PushError> {
        self.enqueue(command)?;
        self.queue.waker.wake();
        Ok(())
    }

    /// Queues a message without waking the session: for the session itself, which drains its
    /// outbox on its next turn anyway (a wake would cost it a second, empty poll per message).
    pub fn push_from_session(&self, command: Command) -> Result<(), PushError> {
        self.enqueue(command)
    }

    fn enqueue(&self, command: Command) -> Result<(), PushError> {
        let queue = &*self.queue;
        if queue.closed.load(Ordering::Acquire) {
            return Err(PushError::Closed);
        }
        let cost = command.cost();
        let mut current = queue.queued.load(Ordering::Relaxed);
        loop {
            if cost > 0 && current + cost > self.limit {
                return Err(PushError::Full);
            }
            match queue.queued.compare_exchange_weak(
                current,
                current + cost,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        queue
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(command);
        Ok(())
    }

    /// Asks the session to close now, ahead of whatever is queued (which is dropped): for a
    /// reader so slow that its queue will not drain.
    pub fn close_now(&self, code: u16, reason: &'static str) {
        *self.queue.urgent.lock().unwrap_or_else(|e| e.into_inner()) = Some((code, reason));
        self.queue.waker.wake();
    }

    /// Asks the session to move to the new process (see [`crate::handoff`]).
    pub fn hand_over(&self) {
        self.queue.hand_over.store(true, Ordering::Release);
        self.queue.waker.wake();
    }

    /// Puts the session's socket in (or out of) the mode of moving to a new process.
    pub fn set_moving(&self, moving: bool) {
        self.queue.moving.store(moving, Ordering::Release);
    }

    /// What the session's socket reads that mode from.
    pub fn move_switch(&self) -> MoveSwitch {
        MoveSwitch(self.queue.clone())
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queue.queued.load(Ordering::Relaxed)
    }
}

/// Whether a session is moving to a new process, as its socket reads it (see
/// [`Outbox::set_moving`]). It shares the outbox's allocation: no extra memory per connection.
#[derive(Debug, Clone)]
pub struct MoveSwitch(Arc<Queue>);

impl MoveSwitch {
    /// Whether the session is moving.
    pub fn on(&self) -> bool {
        self.0.moving.load(Ordering::Acquire)
    }
}

impl Inbox {
    /// A close requested with [`Outbox::close_now`], if any. Registers `cx` to be woken when
    /// one is, even while the session is not reading its queue (its socket is full).
    pub fn take_urgent(&mut self, cx: &mut std::task::Context<'_>) -> Option<(u16, &'static str)> {
        self.queue.waker.register(cx.waker());
        self.queue
            .urgent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Whether the session was asked to move to a new process (once per ask). Only after
    /// [`Inbox::take_urgent`] registered the session's waker in the same poll.
    pub fn take_hand_over(&mut self) -> bool {
        // A load first: this runs on every turn of every session, and a swap would write.
        self.queue.hand_over.load(Ordering::Acquire)
            && self.queue.hand_over.swap(false, Ordering::AcqRel)
    }

    /// Polls for the next command, releasing its bytes from the bound.
    pub fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Command>> {
        self.queue.waker.register(cx.waker());
        match self.try_recv() {
            Some(command) => std::task::Poll::Ready(Some(command)),
            None => std::task::Poll::Pending,
        }
    }

    /// The next command, if one is queued. Only after [`Inbox::take_urgent`] or
    /// [`Inbox::poll_recv`] registered the session's waker in the same poll: a push between
    /// that registration and this read still wakes it.
    pub fn try_recv(&mut self) -> Option<Command> {
        let queue = &*self.queue;
        let mut commands = queue.commands.lock().unwrap_or_else(|e| e.into_inner());
        let command = commands.pop_front()?;
        if commands.is_empty() && commands.capacity() > KEEP_SLOTS {
            *commands = VecDeque::new();
        }
        queue.queued.fetch_sub(command.cost(), Ordering::AcqRel);
        Some(command)
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::Release);
        let dropped = std::mem::take(
            &mut *self
                .queue
                .commands
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        drop(dropped);
    }
}

/// What the hub knows of one live session.
#[derive(Debug)]
pub struct SessionHandle {
    /// The connection's fixed context (ids, identity, authorizer).
    pub ctx: Arc<ConnectionContext>,
    /// Where to queue writes and commands.
    pub outbox: Outbox,
    last_active_ms: AtomicU64,
    /// Groups and user. Empty (no allocation) until the connection joins something.
    membership: Mutex<Membership>,
    /// Set when a cluster already told `$disconnect` that this connection is gone (this node was
    /// declared dead): its session then closes without telling it twice.
    reported: AtomicBool,
    /// Set once a cluster's registry holds this connection: only then can a survivor tell
    /// `$disconnect` of it.
    registered: AtomicBool,
    /// Set while a cluster keeps this (resumable) session in Redis: a POST to it is written
    /// there before it is answered.
    mirrored: AtomicBool,
}

/// What a connection belongs to.
#[derive(Debug, Default, Clone)]
pub struct Membership {
    /// Its groups, in joining order.
    pub groups: Vec<Arc<str>>,
    /// Its user.
    pub user: Option<Arc<str>>,
    /// Set when the connection leaves the hub: nothing joins it after that.
    closed: bool,
}

impl SessionHandle {
    /// A handle for a session that starts now.
    pub fn new(ctx: Arc<ConnectionContext>, outbox: Outbox) -> Self {
        let connected_at = ctx.connected_at;
        Self {
            ctx,
            outbox,
            last_active_ms: AtomicU64::new(connected_at),
            membership: Mutex::new(Membership::default()),
            reported: AtomicBool::new(false),
            registered: AtomicBool::new(false),
            mirrored: AtomicBool::new(false),
        }
    }

    /// Marks the session as kept in the cluster's Redis (or no longer).
    pub fn set_mirrored(&self, mirrored: bool) {
        self.mirrored.store(mirrored, Ordering::Release);
    }

    /// Whether the cluster keeps this session in Redis.
    pub fn mirrored(&self) -> bool {
        self.mirrored.load(Ordering::Acquire)
    }

    /// Marks `$disconnect` as told already (see [`SessionHandle::reported`]).
    pub fn mark_reported(&self) {
        self.reported.store(true, Ordering::Relaxed);
    }

    /// Marks the connection as held by a cluster's registry.
    pub fn mark_registered(&self) {
        self.registered.store(true, Ordering::Relaxed);
    }

    /// Whether a cluster's registry holds the connection (a survivor that reaps this node tells
    /// its `$disconnect`).
    pub fn registered(&self) -> bool {
        self.registered.load(Ordering::Relaxed)
    }

    /// Whether `$disconnect` was told already, by a cluster that took this node for dead.
    pub fn reported(&self) -> bool {
        self.reported.load(Ordering::Relaxed)
    }

    /// Its groups and user, now.
    pub fn membership(&self) -> Membership {
        self.membership
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records activity (a data message either way) at `ms`.
    pub fn touch(&self, ms: u64) {
        self.last_active_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Epoch ms of the latest activity.
    pub fn last_active_ms(&self) -> u64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }
}

const SHARDS: usize = 32;

type Shard = RwLock<HashMap<ConnectionId, Arc<SessionHandle>>>;
type Index = RwLock<HashMap<Arc<str>, HashSet<ConnectionId>>>;

/// Why a membership change failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection gone")]
pub struct Gone;

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The connection is gone.
    #[error("connection gone")]
    Gone,
    /// The connection is in this many groups already.
    #[error("the connection is in {0} groups already (limits.max_groups_per_connection)")]
    TooMany(usize),
}

/// The close reason for a reader dropped because its outbox stayed full.
pub const SLOW_CONSUMER: &str = "Slow consumer: outbound buffer full";

/// What a send to many did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Frames queued.
    pub recipients: usize,
    /// Recipients left out because their outbox was full (`skip` policy).
    pub skipped: usize,
    /// Recipients closed because their outbox was full (`close` policy).
    pub closed: usize,
}

fn add(index: &Index, name: &Arc<str>, id: ConnectionId) {
    index
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(name.clone())
        .or_default()
        .insert(id);
}

fn drop_from(index: &Index, name: &str, id: &ConnectionId) {
    let mut index = index.write().unwrap_or_else(|e| e.into_inner());
    if let Some(members) = index.get_mut(name) {
        members.remove(id);
        if members.is_empty() {
            index.remove(name);
        }
    }
}

/// A change to the hub that a cluster's registry copies to Redis.
#[derive(Debug, Clone)]
pub enum Change {
    /// A connection was registered.
    Connected(Arc<ConnectionContext>),
    /// A connection left.
    Disconnected(ConnectionId),
    /// A group gained or lost a member here.
    Group(Arc<str>),
    /// A user gained or lost a connection here.
    User(Arc<str>),
    /// A connection's groups or user changed.
    Member(ConnectionId),
}

/// The live connections of this node, sharded to keep lock contention low.
#[derive(Debug)]
pub struct Hub {
    shards: Box<[Shard]>,
    hasher: RandomState,
    count: AtomicUsize,
    groups: Index,
    users: Index,
    /// Where changes go when a cluster watches (never set on one node).
    changes: OnceLock<tokio::sync::mpsc::UnboundedSender<Change>>,
    /// Messages that found a full outbox here, for `wsgate_outbox_overflows_total`.
    pub overflows: Overflows,
}

/// Messages that found a full outbox: a POST refused with 429, a fan-out that skipped the
/// connection or closed it with 1008.
#[derive(Debug, Default)]
pub struct Overflows {
    /// POSTs answered 429.
    pub refused: AtomicU64,
    /// Fan-out recipients skipped.
    pub skipped: AtomicU64,
    /// Fan-out recipients closed.
    pub closed: AtomicU64,
}

impl Overflows {
    /// The three counts: refused, skipped, closed.
    pub fn counts(&self) -> [u64; 3] {
        [&self.refused, &self.skipped, &self.closed].map(|n| n.load(Ordering::Relaxed))
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            count: AtomicUsize::new(0),
            groups: Index::default(),
            users: Index::default(),
            changes: OnceLock::new(),
            overflows: Overflows::default(),
        }
    }
}

impl Hub {
    fn shard(&self, id: &ConnectionId) -> &Shard {
        let index = (self.hasher.hash_one(id) as usize) % SHARDS;
        &self.shards[index]
    }

    /// Sends every later change to `changes` (a cluster's registry); the first watcher stays.
    pub fn watch(&self, changes: tokio::sync::mpsc::UnboundedSender<Change>) {
        let _ = self.changes.set(changes);
    }

    fn changed(&self, change: impl FnOnce() -> Change) {
        if let Some(changes) = self.changes.get() {
            let _ = changes.send(change());
        }
    }

    /// Registers a live session; from now on `@connections` calls reach it.
    pub fn insert(&self, handle: Arc<SessionHandle>) {
        let id = handle.ctx.connection_id;
        let watched = self.changes.get().map(|_| handle.ctx.clone());
        let mut shard = self.shard(&id).write().unwrap_or_else(|e| e.into_inner());
        if shard.insert(id, handle).is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        drop(shard);
        if let Some(ctx) = watched {
            self.changed(|| Change::Connected(ctx));
        }
    }

    /// The session of a live connection.
    pub fn get(&self, id: &ConnectionId) -> Option<Arc<SessionHandle>> {
        self.shard(id)
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Unregisters a session and takes it out of its groups and user; returns it if it was
    /// still registered. Every close path comes through here.
    pub fn remove(&self, id: &ConnectionId) -> Option<Arc<SessionHandle>> {
        let removed = self
            .shard(id)
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        let handle = removed?;
        self.count.fetch_sub(1, Ordering::Relaxed);
        let membership = {
            let mut membership = handle.membership.lock().unwrap_or_else(|e| e.into_inner());
            membership.closed = true;
            std::mem::take(&mut *membership)
        };
        self.changed(|| Change::Disconnected(*id));
        for group in membership.groups {
            drop_from(&self.groups, &group, id);
            self.changed(|| Change::Group(group));
        }
        if let Some(user) = membership.user {
            drop_from(&self.users, &user, id);
            self.changed(|| Change::User(user));
        }
        Some(handle)
    }

    /// Removes a connection at once, so that a call right after it gets 410, and asks its
    /// session to close with `close` once what is queued before it is written. False when it
    /// was not live.
    pub fn close(&self, id: &ConnectionId, close: Close) -> bool {
        let (code, reason) = close.into_parts();
        self.remove(id)
            .is_some_and(|session| session.outbox.push(Command::Close(code, reason)).is_ok())
    }

    /// Adds a connection to a group (idempotent).
    pub fn join(&self, id: &ConnectionId, group: &str) -> Result<(), Gone> {
        self.join_at_most(id, group, usize::MAX).map_err(|_| Gone)
    }

    /// [`Hub::join`] unless the connection is in `max` groups already
    /// (`limits.max_groups_per_connection`): the membership list is scanned on every join and
    /// removal, so it stays short.
    pub fn join_at_most(
        &self,
        id: &ConnectionId,
        group: &str,
        max: usize,
    ) -> Result<(), JoinError> {
        let handle = self.get(id).ok_or(JoinError::Gone)?;
        // The membership lock is held while the index changes, so a concurrent `remove`
        // either sees this group or makes this join fail.
        let mut membership = handle.membership.lock().unwrap_or_else(|e| e.into_inner());
        if membership.closed {
            return Err(JoinError::Gone);
        }
        if !membership.groups.iter().any(|g| &**g == group) {
            if membership.groups.len() >= max {
                return Err(JoinError::TooMany(max));
            }
            let name: Arc<str> = Arc::from(group);
            add(&self.groups, &name, *id);
            membership.groups.push(name.clone());
            self.changed(|| Change::Group(name));
            self.changed(|| Change::Member(*id));
        }
        Ok(())
    }

    /// Takes a connection out of a group; a gone connection or a missing group is fine.
    pub fn leave(&self, id: &ConnectionId, group: &str) {
        if let Some(handle) = self.get(id) {
            let mut membership = handle.membership.lock().unwrap_or_else(|e| e.into_inner());
            let before = membership.groups.len();
            membership.groups.retain(|g| &**g != group);
            if membership.groups.len() != before {
                drop_from(&self.groups, group, id);
                self.changed(|| Change::Group(Arc::from(group)));
                self.changed(|| Change::Member(*id));
            }
        }
    }

    /// Sets (or clears) a connection's user.
    pub fn set_user(&self, id: &ConnectionId, user: Option<&str>) -> Result<(), Gone> {
        let handle = self.get(id).ok_or(Gone)?;
        let mut membership = handle.membership.lock().unwrap_or_else(|e| e.into_inner());
        if membership.closed {
            return Err(Gone);
        }
        if let Some(old) = membership.user.take() {
            drop_from(&self.users, &old, id);
            self.changed(|| Change::User(old));
        }
        if let Some(user) = user {
            let name: Arc<str> = Arc::from(user);
            add(&self.users, &name, *id);
            membership.user = Some(name.clone());
            self.changed(|| Change::User(name));
        }
        self.changed(|| Change::Member(*id));
        Ok(())
    }

    /// The members of a group (empty when there is no such group).
    pub fn group_members(&self, group: &str) -> Vec<ConnectionId> {
        let index = self.groups.read().unwrap_or_else(|e| e.into_inner());
        index
            .get(group)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default()
    }

    /// A user's connections.
    pub fn user_connections(&self, user: &str) -> Vec<ConnectionId> {
        let index = self.users.read().unwrap_or_else(|e| e.into_inner());
        index
            .get(user)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether any connection here is in `group`.
    pub fn has_group(&self, group: &str) -> bool {
        let index = self.groups.read().unwrap_or_else(|e| e.into_inner());
        index.contains_key(group)
    }

    /// Whether any connection here is `user`'s.
    pub fn has_user(&self, user: &str) -> bool {
        let index = self.users.read().unwrap_or_else(|e| e.into_inner());
        index.contains_key(user)
    }

    /// The groups and users that have members here.
    pub fn names(&self) -> (Vec<Arc<str>>, Vec<Arc<str>>) {
        let keys = |index: &Index| {
            let index = index.read().unwrap_or_else(|e| e.into_inner());
            index.keys().cloned().collect::<Vec<_>>()
        };
        (keys(&self.groups), keys(&self.users))
    }

    /// Every live session.
    pub fn sessions(&self) -> Vec<Arc<SessionHandle>> {
        let mut sessions = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            sessions.extend(
                shard
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned(),
            );
        }
        sessions
    }

    /// Every live connection's id.
    pub fn ids(&self) -> Vec<ConnectionId> {
        let mut ids = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            ids.extend(
                shard
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .copied(),
            );
        }
        ids
    }

    /// Queues one frame, shared, to each connection `ids` names (all when `None`), leaving out
    /// `except`. A full outbox is skipped or closed with 1008, as `overflow` says.
    pub fn fan_out(
        &self,
        ids: Option<&[ConnectionId]>,
        command: &Command,
        except: &[ConnectionId],
        overflow: FanoutOverflow,
    ) -> Delivery {
        let mut delivery = Delivery::default();
        let mut deliver = |handle: &SessionHandle| {
            if except.contains(&handle.ctx.connection_id) {
                return;
            }
            match handle.outbox.push(command.clone()) {
                Ok(()) => delivery.recipients += 1,
                Err(PushError::Full) => match overflow {
                    FanoutOverflow::Skip => delivery.skipped += 1,
                    FanoutOverflow::Close => {
                        handle.outbox.close_now(1008, SLOW_CONSUMER);
                        delivery.closed += 1;
                    }
                },
                Err(PushError::Closed) => {}
            }
        };
        let count = |n: usize, counter: &AtomicU64| {
            if n > 0 {
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        };
        match ids {
            Some(ids) => {
                for id in ids {
                    if let Some(handle) = self.get(id) {
                        deliver(&handle);
                    }
                }
            }
            None => {
                for shard in self.shards.iter() {
                    let shard = shard.read().unwrap_or_else(|e| e.into_inner());
                    for handle in shard.values() {
                        deliver(handle);
                    }
                }
            }
        }
        count(delivery.skipped, &self.overflows.skipped);
        count(delivery.closed, &self.overflows.closed);
        delivery
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A connection's context as tests need one: a fresh id, the rest fixed.
    pub(crate) fn context() -> ConnectionContext {
        ConnectionContext {
            connection_id: ConnectionId::generate(0),
            connected_at: 0,
            source_ip: "127.0.0.1".into(),
            user_agent: None,
            domain_name: "d".into(),
            stage: "dev".into(),
            api_id: "local".into(),
            authorizer: None,
        }
    }

    fn handle(hub: &Hub) -> (Arc<SessionHandle>, Inbox) {
        let ctx = context();
        let (out, inbox) = outbox(16);
        let handle = Arc::new(SessionHandle::new(Arc::new(ctx), out));
        hub.insert(handle.clone());
        (handle, inbox)
    }

    #[test]
    fn groups_and_users_are_indexed_and_cleaned_on_remove() {
        let hub = Hub::default();
        let (a, _ia) = handle(&hub);
        let (b, _ib) = handle(&hub);
        let (ida, idb) = (a.ctx.connection_id, b.ctx.connection_id);
        hub.join(&ida, "room").expect("joins");
        hub.join(&ida, "room").expect("idempotent");
        hub.join(&idb, "room").expect("joins");
        hub.set_user(&ida, Some("alice")).expect("sets");
        assert_eq!(hub.group_members("room").len(), 2);
        assert_eq!(hub.user_connections("alice"), vec![ida]);
        hub.leave(&idb, "room");
        assert_eq!(hub.group_members("room"), vec![ida]);
        hub.remove(&ida);
        assert!(hub.group_members("room").is_empty());
        assert!(hub.user_connections("alice").is_empty());
        assert_eq!(hub.join(&ida, "room"), Err(Gone));
        assert!(
            hub.groups.read().expect("lock").is_empty(),
            "no empty group is left behind"
        );
    }

    #[test]
    fn a_watcher_hears_every_change_and_a_hub_without_one_sends_nothing() {
        let hub = Hub::default();
        let (quiet, _iq) = handle(&hub);
        hub.join(&quiet.ctx.connection_id, "unheard")
            .expect("joins");
        let (changes, mut heard) = tokio::sync::mpsc::unbounded_channel();
        hub.watch(changes);
        let (one, _inbox) = handle(&hub);
        let id = one.ctx.connection_id;
        hub.join(&id, "room").expect("joins");
        hub.join(&id, "room")
            .expect("a second join changes nothing");
        hub.set_user(&id, Some("alice")).expect("sets");
        hub.leave(&id, "nowhere");
        hub.remove(&id);
        let mut told = Vec::new();
        while let Ok(change) = heard.try_recv() {
            told.push(match change {
                Change::Connected(ctx) => format!("connected {}", ctx.connection_id == id),
                Change::Disconnected(gone) => format!("disconnected {}", gone == id),
                Change::Group(group) => format!("group {group}"),
                Change::User(user) => format!("user {user}"),
                Change::Member(member) => format!("member {}", member == id),
            });
        }
        assert_eq!(
            told,
            [
                "connected true",
                "group room",
                "member true",
                "user alice",
                "member true",
                "disconnected true",
                "group room",
                "user alice"
            ]
        );
    }

    #[test]
    fn a_connection_joins_at_most_max_groups() {
        let hub = Hub::default();
        let (one, _inbox) = handle(&hub);
        let id = one.ctx.connection_id;
        hub.join_at_most(&id, "a", 2).expect("first");
        hub.join_at_most(&id, "b", 2).expect("second");
        hub.join_at_most(&id, "a", 2)
            .expect("a group it is in already");
        assert_eq!(hub.join_at_most(&id, "c", 2), Err(JoinError::TooMany(2)));
        hub.leave(&id, "a");
        hub.join_at_most(&id, "c", 2).expect("a place freed");
    }

    #[test]
    fn fan_out_shares_one_frame_skips_full_outboxes_and_honours_except() {
        let hub = Hub::default();
        let (a, _ia) = handle(&hub);
        let (b, _ib) = handle(&hub);
        let (c, _ic) = handle(&hub);
        let frame = Command::Text(Utf8Bytes::from_static("0123456789"));
        b.outbox
            .push(Command::Text(Utf8Bytes::from_static("0123456789")))
            .expect("fills b");
        let delivery = hub.fan_out(None, &frame, &[c.ctx.connection_id], FanoutOverflow::Skip);
        assert_eq!(
            delivery,
            Delivery {
                recipients: 1,
                skipped: 1,
                closed: 0
            }
        );
        assert_eq!(a.outbox.queued_bytes(), 10);
        let delivery = hub.fan_out(
            Some(&[b.ctx.connection_id]),
            &frame,
            &[],
            FanoutOverflow::Close,
        );
        assert_eq!(delivery.closed, 1);
    }

    #[test]
    fn a_close_with_a_reason_costs_a_command_no_more_memory() {
        assert_eq!(std::mem::size_of::<Command>(), 40);
    }

    #[test]
    fn outbox_is_bounded_in_bytes_and_released_on_receive() {
        let (out, mut inbox) = outbox(10);
        assert_eq!(
            out.push(Command::Text(Utf8Bytes::from_static("123456"))),
            Ok(())
        );
        assert_eq!(
            out.push(Command::Text(Utf8Bytes::from_static("12345"))),
            Err(PushError::Full)
        );
        assert_eq!(out.push(Command::Close(1000, "x".into())), Ok(()));
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(matches!(
            inbox.poll_recv(&mut cx),
            std::task::Poll::Ready(Some(Command::Text(_)))
        ));
        assert_eq!(out.queued_bytes(), 0);
        assert_eq!(
            out.push(Command::Text(Utf8Bytes::from_static("12345"))),
            Ok(())
        );
        drop(inbox);
        assert_eq!(
            out.push(Command::Text(Utf8Bytes::from_static("1"))),
            Err(PushError::Closed)
        );
    }
}
