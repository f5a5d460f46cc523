//! What the bus already told its subscribers, so that news heard twice (a
//! re-read after the link to the other instances was down, and the
//! notification that crossed it) is told once.

use std::{
    collections::{HashSet, VecDeque},
    hash::{BuildHasher, Hash, RandomState},
};

/// The last [`Seen::CAPACITY`] keys, oldest forgotten first, each kept as a
/// 64-bit fingerprint (16 bytes or so a key, whatever its length). Two keys
/// sharing a fingerprint would hide the second: about one chance in 2^49 a
/// key when full.
pub(super) struct Seen {
    order: VecDeque<u64>,
    fingerprints: HashSet<u64>,
    /// Keyed at random per process.
    hasher: RandomState,
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            order: VecDeque::new(),
            fingerprints: HashSet::new(),
            hasher: RandomState::new(),
        }
    }
}

impl Seen {
    /// More than a re-read returns of each kind (`resync::LIMIT`), so what
    /// this instance told before the outage is still known after it.
    pub(super) const CAPACITY: usize = 32_768;

    /// Notes `key`; false if it was already known.
    pub(super) fn insert(&mut self, key: impl Hash) -> bool {
        let fingerprint = self.hasher.hash_one(key);
        if !self.fingerprints.insert(fingerprint) {
            return false;
        }
        if self.order.len() == Self::CAPACITY
            && let Some(oldest) = self.order.pop_front()
        {
            self.fingerprints.remove(&oldest);
        }
        self.order.push_back(fingerprint);
        true
    }

    /// Forgets `key`; false if it was not known. (Its place in the order
    /// stays, and forgets nothing else when its turn comes.)
    pub(super) fn remove(&mut self, key: impl Hash) -> bool {
        self.fingerprints.remove(&self.hasher.hash_one(key))
    }

    pub(super) fn contains(&self, key: impl Hash) -> bool {
        self.fingerprints.contains(&self.hasher.hash_one(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_forgets_the_oldest_beyond_capacity() {
        let mut seen = Seen::default();
        assert!(seen.insert("a"));
        assert!(!seen.insert("a"));
        for n in 0..Seen::CAPACITY {
            seen.insert(n.to_string());
        }
        assert!(!seen.contains("a"));
        assert!(seen.contains((Seen::CAPACITY - 1).to_string()));
        assert_eq!(seen.order.len(), Seen::CAPACITY);
        assert_eq!(seen.fingerprints.len(), Seen::CAPACITY);
    }

    #[test]
    fn a_key_removed_is_forgotten_once() {
        let mut seen = Seen::default();
        seen.insert("b");
        assert!(seen.remove("b"));
        assert!(!seen.contains("b"));
        assert!(!seen.remove("b"), "already forgotten");
    }
}
