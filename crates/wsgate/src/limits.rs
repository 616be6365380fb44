//! Abuse limits kept in memory: token buckets by key (new connections per IP, management calls
//! per credential) and the count of open connections, in all and per IP.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// Shards of each map, so that callers from many cores rarely wait on one lock.
const SHARDS: usize = 16;
/// Past this many keys in one shard, full buckets are dropped (a full bucket is the same as none).
const PRUNE_AT: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key: `rate` tokens a second, at most `rate` saved up.
#[derive(Debug)]
pub struct RateLimiter<K> {
    shards: Vec<Mutex<HashMap<K, Bucket>>>,
    hasher: RandomState,
}

impl<K: Hash + Eq + Clone> Default for RateLimiter<K> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// Takes one token for `key`; false when it has none left. A `rate` of 0 is unlimited.
    pub fn allow(&self, key: &K, rate: u32) -> bool {
        self.allow_at(key, rate, Instant::now())
    }

    fn allow_at(&self, key: &K, rate: u32, now: Instant) -> bool {
        if rate == 0 {
            return true;
        }
        let rate = f64::from(rate);
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        let mut map = shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= PRUNE_AT {
            map.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < rate);
        }
        let bucket = map.entry(key.clone()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let refilled = bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = refilled.min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `limits.max_connections` are open (503).
    Full,
    /// `limits.max_connections_per_ip` are open from this address (429).
    PerIp,
}

/// Open connections, in all and per IP address.
#[derive(Debug)]
pub struct ConnectionCount {
    total: AtomicUsize,
    by_ip: Vec<Mutex<HashMap<IpAddr, usize>>>,
    hasher: RandomState,
}

impl ConnectionCount {
    /// A counter with nothing open.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            total: AtomicUsize::new(0),
            by_ip: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        })
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    fn shard(&self, ip: &IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.by_ip[self.hasher.hash_one(ip) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one more connection from `ip` unless a limit (0 = none) is reached; the slot is
    /// given back when the returned guard drops.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<Admission, Refusal> {
        let previous = self.total.fetch_add(1, Ordering::AcqRel);
        if max_total != 0 && previous >= max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Full);
        }
        let mut shard = self.shard(&ip);
        let count = shard.entry(ip).or_insert(0);
        if max_per_ip != 0 && *count >= max_per_ip {
            drop(shard);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::PerIp);
        }
        *count += 1;
        Ok(Admission {
            count: self.clone(),
            ip,
        })
    }

    fn release(&self, ip: IpAddr) {
        let mut shard = self.shard(&ip);
        if let Some(count) = shard.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                shard.remove(&ip);
            }
        }
        drop(shard);
        self.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether `ip` is a loopback address, IPv4-mapped ones (`::ffff:127.0.0.1`) included.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// A flag that is set once: for a warning logged the first time something happens.
#[derive(Debug, Default)]
pub struct FirstTime(std::sync::atomic::AtomicBool);

impl FirstTime {
    /// True the first time only.
    pub fn first(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }
}

/// One admitted connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Admission {
    count: Arc<ConnectionCount>,
    ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.count.release(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn buckets_allow_a_burst_then_the_rate() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        let allowed = (0..20).filter(|_| limiter.allow_at(&"a", 10, t0)).count();
        assert_eq!(allowed, 10);
        assert!(limiter.allow_at(&"b", 10, t0), "keys are separate");
        assert!(!limiter.allow_at(&"a", 10, t0 + Duration::from_millis(50)));
        assert!(limiter.allow_at(&"a", 10, t0 + Duration::from_millis(110)));
        assert!(
            (0..1000).all(|_| limiter.allow_at(&"c", 0, t0)),
            "0 is unlimited"
        );
    }

    #[test]
    fn admissions_count_per_ip_and_in_all() {
        let count = ConnectionCount::new();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let first = count.admit(a, 3, 2).expect("first");
        let second = count.admit(a, 3, 2).expect("second");
        assert_eq!(count.admit(a, 3, 2).err(), Some(Refusal::PerIp));
        let third = count.admit(b, 3, 2).expect("other ip");
        assert_eq!(count.admit(b, 3, 2).err(), Some(Refusal::Full));
        assert_eq!(count.open(), 3);
        drop(first);
        assert!(count.admit(a, 3, 2).is_ok(), "a freed slot is reused");
        drop((second, third));
        assert_eq!(count.open(), 0);
    }
}
