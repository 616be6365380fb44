//! This node's live connections: connection id → session handle, and each session's outbox.
//!
//! Every write to a client — route responses, error frames, `@connections` POSTs — goes through
//! the connection's [`Outbox`], which is bounded in bytes: a slow reader costs at most
//! `limits.outbox_bytes`, and the poster learns of it (429).

use std::collections::HashMap;
use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use wsgate_core::event::ConnectionContext;
use wsgate_core::id::ConnectionId;

/// What a session is asked to do by others.
#[derive(Debug)]
pub enum Command {
    /// Send a text message (already known to be UTF-8).
    Text(Utf8Bytes),
    /// Send a binary message.
    Binary(Bytes),
    /// Close the connection with this code and reason.
    Close(u16, &'static str),
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

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queue.queued.load(Ordering::Relaxed)
    }
}

impl Inbox {
    /// Polls for the next command, releasing its bytes from the bound.
    pub fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Command>> {
        let queue = &*self.queue;
        queue.waker.register(cx.waker());
        let mut commands = queue.commands.lock().unwrap_or_else(|e| e.into_inner());
        match commands.pop_front() {
            Some(command) => {
                if commands.is_empty() && commands.capacity() > KEEP_SLOTS {
                    *commands = VecDeque::new();
                }
                queue.queued.fetch_sub(command.cost(), Ordering::AcqRel);
                std::task::Poll::Ready(Some(command))
            }
            None => std::task::Poll::Pending,
        }
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
}

impl SessionHandle {
    /// A handle for a session that starts now.
    pub fn new(ctx: Arc<ConnectionContext>, outbox: Outbox) -> Self {
        let connected_at = ctx.connected_at;
        Self {
            ctx,
            outbox,
            last_active_ms: AtomicU64::new(connected_at),
        }
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

/// The live connections of this node, sharded to keep lock contention low.
#[derive(Debug)]
pub struct Hub {
    shards: Box<[Shard]>,
    hasher: RandomState,
    count: AtomicUsize,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            count: AtomicUsize::new(0),
        }
    }
}

impl Hub {
    fn shard(&self, id: &ConnectionId) -> &Shard {
        let index = (self.hasher.hash_one(id) as usize) % SHARDS;
        &self.shards[index]
    }

    /// Registers a live session; from now on `@connections` calls reach it.
    pub fn insert(&self, handle: Arc<SessionHandle>) {
        let id = handle.ctx.connection_id;
        let mut shard = self.shard(&id).write().unwrap_or_else(|e| e.into_inner());
        if shard.insert(id, handle).is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
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

    /// Unregisters a session; returns it if it was still registered.
    pub fn remove(&self, id: &ConnectionId) -> Option<Arc<SessionHandle>> {
        let removed = self
            .shard(id)
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if removed.is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        removed
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
mod tests {
    use super::*;

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
        assert_eq!(out.push(Command::Close(1000, "x")), Ok(()));
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
