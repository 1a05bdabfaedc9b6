//! Who makes the dots of the writes this node coordinates, and the key
//! locks they are made under.
//!
//! A dot is (node, epoch, counter); the counter comes from this node's
//! own replica of the key, read and updated under the key's lock, so two
//! writes of one key here never take the same counter. The epoch grows
//! at every start and whenever the node drops replicas (see
//! [`Dots::new_epoch`]), persisted before it is used.

use crate::BKey;
use causal::Actor;
use ring::NodeId;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use store::{Store, StoreError};
use tokio::sync::Mutex;

/// Lock stripes serialising read-modify-write of one key on its
/// coordinator (see `causal`'s note on dots).
const KEY_LOCK_STRIPES: usize = 4096;

/// The store's key for the current epoch.
pub(crate) const META_EPOCH: &str = "epoch";

/// This node's actor and its key locks.
pub(crate) struct Dots {
    node: NodeId,
    /// The `epoch` of every dot made now.
    epoch: AtomicU32,
    /// Serialises epoch changes, so each is persisted before it is used.
    change: Mutex<()>,
    key_locks: Vec<Arc<Mutex<()>>>,
}

impl Dots {
    /// Dots of `node` in `epoch` (already persisted).
    pub(crate) fn new(node: NodeId, epoch: u32) -> Self {
        assert!(epoch >= 1, "epochs start at 1");
        Dots {
            node,
            epoch: epoch.into(),
            change: Mutex::new(()),
            key_locks: (0..KEY_LOCK_STRIPES)
                .map(|_| Arc::new(Mutex::new(())))
                .collect(),
        }
    }

    /// Who makes the dots of writes this node coordinates now.
    pub(crate) fn actor(&self) -> Actor {
        Actor {
            node: self.node.0,
            epoch: self.epoch.load(Ordering::Acquire),
        }
    }

    /// The lock stripe of `key`.
    pub(crate) fn key_lock(&self, key: &BKey) -> &Arc<Mutex<()>> {
        let mut h = std::hash::DefaultHasher::new();
        key.hash(&mut h);
        &self.key_locks[(h.finish() as usize) % KEY_LOCK_STRIPES]
    }

    /// Move to a new epoch, persisted in `store` before it is used. Call
    /// it before dropping any replica this node may have coordinated
    /// writes to.
    ///
    /// Why: a dot's counter comes from the replica the coordinator holds.
    /// Once that replica is gone, a later write coordinated here under the
    /// same actor would take a counter it already used, and every replica
    /// holding the earlier write would take the new one for the same value
    /// and drop it (simulation, seed 4197). A new epoch is a new actor, so
    /// its dots cannot collide with the old ones. The cost is one more
    /// entry in the contexts of keys this node writes afterwards.
    pub(crate) async fn new_epoch(&self, store: &Store) -> Result<(), StoreError> {
        let _one_at_a_time = self.change.lock().await;
        let next = self.epoch.load(Ordering::Acquire) + 1;
        store
            .put_meta(META_EPOCH, next.to_be_bytes().to_vec(), true)
            .await?;
        self.epoch.store(next, Ordering::Release);
        Ok(())
    }

    /// Take every key lock and never give it back: no write changes
    /// storage or trees after this (a clean stop saves them next).
    pub(crate) async fn freeze(&self) {
        for lock in &self.key_locks {
            std::mem::forget(lock.lock().await);
        }
    }
}
