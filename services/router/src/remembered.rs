//! Positive answers trusted for a while, so a hot path does not pay a store
//! round trip for a fact that rarely changes (a session is live, a user
//! exists). Bounded: past its capacity the memory starts over.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Entries kept at most; past it everything is forgotten at once.
const CAPACITY: usize = 100_000;

pub struct Remembered<K> {
    until: Mutex<HashMap<K, Instant>>,
    ttl: Duration,
}

impl<K: Eq + Hash> Remembered<K> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            until: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// Whether `key` was confirmed less than the TTL ago.
    pub fn holds(&self, key: &K) -> bool {
        self.until
            .lock()
            .get(key)
            .is_some_and(|until| *until > Instant::now())
    }

    pub fn remember(&self, key: K) {
        let mut until = self.until.lock();
        if until.len() >= CAPACITY {
            until.clear();
        }
        until.insert(key, Instant::now() + self.ttl);
    }

    pub fn forget(&self, key: &K) {
        self.until.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_expire_and_can_be_forgotten() {
        let remembered = Remembered::new(Duration::from_secs(60));
        assert!(!remembered.holds(&"alice"));
        remembered.remember("alice");
        assert!(remembered.holds(&"alice"));
        remembered.forget(&"alice");
        assert!(!remembered.holds(&"alice"));

        let brief = Remembered::new(Duration::ZERO);
        brief.remember("bob");
        assert!(!brief.holds(&"bob"), "a zero TTL trusts nothing");
    }
}
