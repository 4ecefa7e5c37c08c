//! [`OncePerKey`]: says yes the first time it sees a key, so that an
//! adapter logs something once per chat rather than once per message.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

/// Keys seen before, at most `capacity` of them: past it the oldest is
/// forgotten (and would be reported again). Shared by reference; the lock
/// is a `std` mutex, held for a set lookup and never across an `.await`.
#[derive(Debug)]
pub struct OncePerKey<K> {
    capacity: usize,
    seen: Mutex<Seen<K>>,
}

#[derive(Debug)]
struct Seen<K> {
    keys: HashSet<K>,
    /// The same keys, oldest first.
    order: VecDeque<K>,
}

impl<K: Eq + Hash + Clone> OncePerKey<K> {
    /// Remembers at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            seen: Mutex::new(Seen {
                keys: HashSet::new(),
                order: VecDeque::new(),
            }),
        }
    }

    /// Whether `key` is new (then it is remembered).
    pub fn first(&self, key: K) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.keys.contains(&key) {
            return false;
        }
        if seen.order.len() >= self.capacity
            && let Some(oldest) = seen.order.pop_front()
        {
            seen.keys.remove(&oldest);
        }
        seen.keys.insert(key.clone());
        seen.order.push_back(key);
        true
    }
}

impl<K: Eq + Hash + Clone> Default for OncePerKey<K> {
    /// Remembers 4096 keys.
    fn default() -> Self {
        Self::new(4096)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_is_first_once_and_the_oldest_is_forgotten_past_the_capacity() {
        let once = OncePerKey::new(2);
        assert!(once.first(1));
        assert!(!once.first(1));
        assert!(once.first(2));
        assert!(!once.first(1) && !once.first(2));
        // A third key pushes out the oldest, 1.
        assert!(once.first(3));
        assert!(!once.first(2) && !once.first(3));
        assert!(once.first(1));
    }
}
