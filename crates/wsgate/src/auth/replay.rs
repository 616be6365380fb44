//! Signatures already used, for `management.reject_replayed_signatures`: AWS accepts the same
//! signed request again for as long as its date is within the skew; with this on, a signature
//! is accepted once.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Signatures are remembered up to this many at once: about 100 MB. Past it, new signed
/// requests are refused until old signatures expire, rather than memory growing without bound.
pub const MAX_REMEMBERED: usize = 1_000_000;

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Seen before, and still within its window.
    Seen,
    /// [`MAX_REMEMBERED`] signatures are within their window already.
    Full,
}

#[derive(Debug, Default)]
struct Seen {
    signatures: HashSet<String>,
    /// In the order they came, with when each expires (seconds since the epoch).
    order: VecDeque<(i64, String)>,
}

/// The signatures accepted and not yet expired.
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: Mutex<Seen>,
}

impl ReplayCache {
    /// Records `signature`, valid until `expires_at` (seconds since the epoch); an error when it
    /// was recorded before and has not expired, or when the cache is full.
    pub fn first_use(&self, signature: &str, expires_at: i64) -> Result<(), Replay> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.first_use_at(signature, expires_at, now)
    }

    fn first_use_at(&self, signature: &str, expires_at: i64, now: i64) -> Result<(), Replay> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // Expiries are almost in order (dates within the skew of arrival): dropping from the
        // front while expired keeps the set within about one window.
        while seen.order.front().is_some_and(|(at, _)| *at < now) {
            if let Some((_, old)) = seen.order.pop_front() {
                seen.signatures.remove(&old);
            }
        }
        if seen.signatures.contains(signature) {
            return Err(Replay::Seen);
        }
        if seen.signatures.len() >= MAX_REMEMBERED {
            return Err(Replay::Full);
        }
        seen.signatures.insert(signature.to_owned());
        seen.order.push_back((expires_at, signature.to_owned()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_accepted_once_within_its_window_and_forgotten_after() {
        let cache = ReplayCache::default();
        assert_eq!(cache.first_use_at("a", 100, 10), Ok(()));
        assert_eq!(cache.first_use_at("a", 100, 50), Err(Replay::Seen));
        assert_eq!(cache.first_use_at("b", 100, 50), Ok(()));
        // Past its expiry the entry is dropped (a request that old fails the skew check anyway).
        assert_eq!(cache.first_use_at("a", 200, 101), Ok(()));
        assert_eq!(cache.seen.lock().expect("lock").signatures.len(), 1);
    }
}
