//! Positive answers trusted for a while, so a hot path does not pay a store
//! round trip for a fact that rarely changes (a session is live, a user
//! exists). Bounded: past its capacity the memory starts over.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Entries kept at most; past it everything is forgotten at once.
const CAPACITY: usize = 100_000;

/// Facts about `K` (with what was learnt, `V`), each trusted for the TTL.
pub struct Remembered<K, V = ()> {
    until: Mutex<HashMap<K, (Instant, V)>>,
    ttl: Duration,
}

impl<K: Eq + Hash, V: Clone> Remembered<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            until: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// What was learnt about `key` less than the TTL ago.
    pub fn get(&self, key: &K) -> Option<V> {
        self.until
            .lock()
            .get(key)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, value)| value.clone())
    }

    /// Whether `key` was confirmed less than the TTL ago.
    pub fn holds(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    pub fn remember_with(&self, key: K, value: V) {
        let mut until = self.until.lock();
        if until.len() >= CAPACITY {
            until.clear();
        }
        until.insert(key, (Instant::now() + self.ttl, value));
    }

    pub fn forget(&self, key: &K) {
        self.until.lock().remove(key);
    }

    /// Forgets everything (the facts belonged to a store that is gone).
    pub fn clear(&self) {
        self.until.lock().clear();
    }
}

impl<K: Eq + Hash> Remembered<K, ()> {
    pub fn remember(&self, key: K) {
        self.remember_with(key, ());
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

        remembered.remember("carol");
        remembered.clear();
        assert!(!remembered.holds(&"carol"));
        let brief = Remembered::new(Duration::ZERO);
        brief.remember("bob");
        assert!(!brief.holds(&"bob"), "a zero TTL trusts nothing");
    }
}
