//! A short-lived cache of records that nearly every request reads (access
//! keys, bucket records), so those quorum reads stay off the hot path.
//!
//! Bounded: at [`TtlCache::new`]'s limit it starts over rather than evict
//! one by one, which is cheap and fine for sets this small (keys and
//! buckets of one cluster). What a stale entry may cost is each user's to
//! say (see `keys` and `service`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Values by name, each trusted for `ttl` after it was stored.
pub struct TtlCache<V> {
    entries: Arc<Mutex<HashMap<String, (Instant, V)>>>,
    ttl: Duration,
    len_max: usize,
}

impl<V> Clone for TtlCache<V> {
    fn clone(&self) -> Self {
        TtlCache {
            entries: self.entries.clone(),
            ttl: self.ttl,
            len_max: self.len_max,
        }
    }
}

impl<V: Clone> TtlCache<V> {
    /// Entries live `ttl`; at most `len_max` are kept.
    pub fn new(ttl: Duration, len_max: usize) -> Self {
        TtlCache {
            entries: Arc::default(),
            ttl,
            len_max,
        }
    }

    /// The value stored under `name` less than the TTL ago.
    pub fn get(&self, name: &str) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        let (at, v) = entries.get(name)?;
        (at.elapsed() < self.ttl).then(|| v.clone())
    }

    /// Store `value` under `name`, from now.
    pub fn put(&self, name: &str, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.len_max {
                entries.clear();
            }
            entries.insert(name.to_string(), (Instant::now(), value));
        }
    }

    /// Forget `name`.
    pub fn remove(&self, name: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_are_removed_and_the_size_is_bounded() {
        let c = TtlCache::new(Duration::from_secs(60), 2);
        c.put("a", 1);
        c.put("b", 2);
        assert_eq!((c.get("a"), c.get("b")), (Some(1), Some(2)));
        c.remove("a");
        assert_eq!(c.get("a"), None);
        c.put("c", 3);
        c.put("d", 4);
        assert_eq!(c.get("b"), None, "full: started over");
        assert_eq!(c.get("d"), Some(4));
        let short = TtlCache::new(Duration::ZERO, 2);
        short.put("a", 1);
        assert_eq!(short.get("a"), None, "expired");
    }
}
