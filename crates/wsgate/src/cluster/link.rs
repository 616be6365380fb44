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
use crate::ops::Answer;

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
    /// This node's number.
    pub fn number(&self) -> u8 {
        self.number.load(Ordering::Relaxed)
    }
}

/// Whether Redis answered lately, and since when without a break.
#[derive(Debug, Default)]
pub(super) struct Health {
    up_since: Mutex<Option<Instant>>,
}

impl Health {
    pub fn up(&self) {
        let mut since = self.up_since.lock().unwrap_or_else(|e| e.into_inner());
        if since.is_none() {
            *since = Some(Instant::now());
        }
    }

    pub fn down(&self) {
        *self.up_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
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
