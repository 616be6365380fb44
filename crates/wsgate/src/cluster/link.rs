//! What the bus, the calls and the heartbeat share: the Redis connection, the node's hub and
//! number, the requests waiting for answers, and whether Redis answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{self, UnboundedSender, unbounded_channel};
use tokio::time::Instant;

use super::store::{Keys, Store};
use crate::hub::Hub;
use bytes::Bytes;
use tracing::warn;
use wsgate_core::id::ConnectionId;

use crate::ops::{self, Answer, Op};

/// A node's link to the others.
pub(super) struct Link {
    /// The connection to Redis.
    pub store: Store,
    /// Key and channel names.
    pub keys: Keys,
    /// This node's connections.
    pub hub: Arc<Hub>,
    /// This node's number (changes only when the node joins again).
    pub number: Arc<AtomicU8>,
    /// Requests waiting for answers.
    pub pending: Pending,
    /// Whether Redis answers.
    pub health: Health,
    /// Lets a resumable session go to another node.
    pub released: super::sessions::Released,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("number", &self.number())
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Runs `op` on this node's connections. A POST (or batch) to resumable sessions the cluster
    /// keeps in Redis writes the message there before it is queued and answered: if this node
    /// dies before the session has numbered it, the node that takes the session over still sends
    /// it. (Without Redis, the message is queued all the same.)
    pub async fn execute(&self, op: &Op, data: Bytes) -> Answer {
        let ids: &[ConnectionId] = match op {
            Op::Post { id } => std::slice::from_ref(id),
            Op::Batch { ids, .. } => ids,
            _ => return ops::execute(&self.hub, op, data),
        };
        let kept: Vec<ConnectionId> = ids
            .iter()
            .filter(|id| self.hub.get(id).is_some_and(|h| h.mirrored()))
            .copied()
            .collect();
        if kept.is_empty() {
            return ops::execute(&self.hub, op, data);
        }
        let written = match super::sessions::post(&self.store, &self.keys, &kept, &data).await {
            Ok(written) => written,
            Err(error) => {
                warn!(%error, "a POST to resumable sessions could not be written to Redis first");
                vec![false; kept.len()]
            }
        };
        let answer = ops::execute(&self.hub, op, data.clone());
        let queued = |id: &ConnectionId| match &answer {
            Answer::Ok => true,
            Answer::Batch(result) => result.sent.contains(id),
            _ => false,
        };
        let taken_back: Vec<ConnectionId> = kept
            .iter()
            .zip(&written)
            .filter(|(id, written)| **written && !queued(id))
            .map(|(id, _)| *id)
            .collect();
        if !taken_back.is_empty()
            && let Err(error) =
                super::sessions::unpost(&self.store, &self.keys, &taken_back, &data).await
        {
            warn!(%error, "a POST not queued stays written down in Redis");
        }
        answer
    }

    /// This node's number.
    pub fn number(&self) -> u8 {
        self.number.load(Ordering::Relaxed)
    }
}

/// Whether Redis answered lately, and since when without a break.
#[derive(Debug, Default)]
pub(super) struct Health {
    up_since: Mutex<Option<Instant>>,
    /// Times Redis failed or did not answer in time, for `wsgate_redis_errors_total`.
    errors: AtomicU64,
}

impl Health {
    pub fn up(&self) {
        let mut since = self.up_since.lock().unwrap_or_else(|e| e.into_inner());
        if since.is_none() {
            *since = Some(Instant::now());
        }
    }

    pub fn down(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.up_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// How many times Redis failed.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// How long Redis has answered without a break; `None` while it does not.
    pub fn up_for(&self) -> Option<Duration> {
        self.up_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|since| since.elapsed())
    }
}

/// Requests waiting for answers, by number.
#[derive(Debug, Default)]
pub(super) struct Pending {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, UnboundedSender<Answer>>>,
}

/// A request's place in [`Pending`]; leaving it (answered, timed out, or the caller gone) frees it.
pub(super) struct Waiting<'a> {
    pending: &'a Pending,
    pub number: u64,
    pub answers: mpsc::UnboundedReceiver<Answer>,
}

impl Pending {
    pub fn open(&self) -> Waiting<'_> {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, answers) = unbounded_channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(number, sender);
        Waiting {
            pending: self,
            number,
            answers,
        }
    }

    pub fn answer(&self, number: u64, answer: Answer) {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = waiting.get(&number) {
            let _ = sender.send(answer);
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pending
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.number);
    }
}
