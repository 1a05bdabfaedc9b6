//! What the reaper keeps on each node: the dot floor, the memory of
//! reaped tombstones' contexts, and the keys this node is still writing.

use crate::locks::Held;
use crate::BKey;
use causal::{Object, VersionVector};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The reaper's state on one node.
pub(crate) struct Reaper {
    /// New dots of this node's actor go above this counter.
    dot_floor: AtomicU64,
    /// Contexts of tombstones reaped lately, and when each expires.
    memory: Mutex<Memory>,
    /// How long a reaped tombstone's context is remembered.
    memory_for: Duration,
    /// How many are remembered at most.
    pub(super) memory_keys_max: usize,
    /// Tombstones this node dropped.
    pub(crate) reaped_total: AtomicU64,
    /// Writes this node coordinates whose replication has not ended, by
    /// key hash. Bounded by: writes in flight.
    writing: Arc<Mutex<HashMap<u64, u32>>>,
    /// Tombstones seen so far in the index walk under way.
    pub(super) walk_held: AtomicU64,
    /// Tombstones this node held when its last whole walk of the index
    /// ended (`u64::MAX`: no walk ended yet).
    pub(super) held_last_walk: AtomicU64,
}

impl Reaper {
    pub(crate) fn new(memory_for: Duration, memory_keys_max: usize) -> Self {
        Reaper {
            dot_floor: AtomicU64::new(0),
            memory: Mutex::default(),
            memory_for,
            memory_keys_max,
            reaped_total: AtomicU64::new(0),
            writing: Arc::default(),
            walk_held: AtomicU64::new(0),
            held_last_walk: AtomicU64::new(u64::MAX),
        }
    }

    /// Mark `key` as written by this node until the returned guard drops.
    pub(crate) fn writing(&self, key: &BKey) -> Writing {
        let hash = key_hash(key);
        *self.writing.held().entry(hash).or_insert(0) += 1;
        Writing {
            hash,
            writing: self.writing.clone(),
        }
    }

    /// Whether a tombstone of `key` covering `ctx` was reaped here lately.
    pub(super) fn remembers(&self, key: &BKey, ctx: &VersionVector) -> bool {
        let mut memory = self.memory.held();
        memory.expire(Instant::now());
        memory
            .contexts
            .get(key)
            .is_some_and(|(known, _)| known.descends(ctx))
    }

    /// Whether this node is still replicating a write of `key`.
    pub(super) fn is_writing(&self, key: &BKey) -> bool {
        self.writing.held().contains_key(&key_hash(key))
    }

    /// The counter new dots of this node's actor must exceed.
    pub(crate) fn dot_floor(&self) -> u64 {
        self.dot_floor.load(Ordering::Acquire)
    }

    /// Remember `ctx`, the context of `key`'s reaped tombstone; false
    /// when the memory is full (then the key must not be reaped yet).
    pub(super) fn remember(&self, key: &BKey, ctx: &VersionVector) -> bool {
        let mut memory = self.memory.held();
        memory.expire(Instant::now());
        if let Some((known, _)) = memory.contexts.get_mut(key) {
            // Kept until the first reap's expiry: the deque holds one
            // entry per remembered key.
            known.join(ctx);
            return true;
        }
        if memory.contexts.len() >= self.memory_keys_max {
            return false;
        }
        let until = Instant::now() + self.memory_for;
        memory.contexts.insert(key.clone(), (ctx.clone(), until));
        memory.expiry.push_back((until, key.clone()));
        true
    }

    /// `incoming`, a version of `key` about to be merged into this node's
    /// replica, without what a tombstone reaped lately covers; `None` when
    /// nothing is left to store.
    pub(crate) fn screen(&self, key: &BKey, incoming: &Object) -> Option<Object> {
        let mut memory = self.memory.held();
        memory.expire(Instant::now());
        let Some((ctx, _)) = memory.contexts.get(key) else {
            return Some(incoming.clone());
        };
        let kept = incoming.without_covered(ctx);
        (!kept.siblings().is_empty()).then_some(kept)
    }

    pub(super) fn raise_floor(&self, counter: u64) {
        self.dot_floor.fetch_max(counter, Ordering::AcqRel);
    }
}

/// Reaped tombstones' contexts, with their expiry in order.
#[derive(Default)]
struct Memory {
    /// Bounded by: `reap_memory_keys_max`.
    contexts: HashMap<BKey, (VersionVector, Instant)>,
    /// (expiry, key), oldest first, one per key in `contexts`.
    expiry: VecDeque<(Instant, BKey)>,
}

impl Memory {
    fn expire(&mut self, now: Instant) {
        while let Some((until, _)) = self.expiry.front() {
            if *until > now {
                break;
            }
            let Some((until, key)) = self.expiry.pop_front() else {
                break;
            };
            if self.contexts.get(&key).is_some_and(|(_, u)| *u == until) {
                self.contexts.remove(&key);
            }
        }
    }
}

/// A write in flight on its coordinator (see [`Reaper::writing`]).
pub(crate) struct Writing {
    hash: u64,
    writing: Arc<Mutex<HashMap<u64, u32>>>,
}

impl Drop for Writing {
    fn drop(&mut self) {
        let mut writing = self.writing.held();
        if let Some(n) = writing.get_mut(&self.hash) {
            *n -= 1;
            if *n == 0 {
                writing.remove(&self.hash);
            }
        }
    }
}

fn key_hash(key: &BKey) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_remembered_tombstone_screens_what_it_covered_until_it_expires() {
        use bytes::Bytes;
        let reaper = Reaper::new(Duration::from_secs(60), 2);
        let key = BKey::new("b", "k".to_string());
        let actor = causal::Actor { node: 1, epoch: 1 };
        let mut old = Object::new();
        old.update(
            &VersionVector::new(),
            actor,
            Bytes::from_static(b"v"),
            causal::Meta::default(),
        )
        .unwrap();
        let tombstone_ctx = old.context().clone();
        assert!(reaper.remember(&key, &tombstone_ctx));
        assert_eq!(
            reaper.screen(&key, &old),
            None,
            "a covered version is not stored again"
        );
        let mut newer = old.clone();
        newer
            .update(
                old.context(),
                actor,
                Bytes::from_static(b"w"),
                causal::Meta::default(),
            )
            .unwrap();
        assert_eq!(
            reaper.screen(&key, &newer),
            Some(newer.clone()),
            "a later write passes"
        );
        // Bounded: a third key does not fit in a memory of two.
        assert!(reaper.remember(&BKey::new("b", "k2".to_string()), &tombstone_ctx));
        assert!(!reaper.remember(&BKey::new("b", "k3".to_string()), &tombstone_ctx));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(
            reaper.screen(&key, &old),
            Some(old.clone()),
            "forgotten after reap_memory_ms"
        );
        assert!(reaper.remember(&BKey::new("b", "k3".to_string()), &tombstone_ctx));
    }
}
