//! The tombstone index: which of this node's replicas are tombstones, and
//! since when.
//!
//! The reaper (in `node`) removes tombstones once every replica holds
//! them and a grace period has passed. Walking every object to find them
//! would cost what the node stores; walking this index costs what was
//! deleted. An entry is written in the same batch as the tombstone it
//! names, so a crash never leaves a tombstone unindexed.
//!
//! Entries are not removed when a later write brings the key back to
//! life: that would add a delete to every write. An entry may therefore
//! be stale (the key is live again, or already gone); the reaper reads the
//! object, and [`Store::forget_tombstones`] removes entries that no longer
//! name a tombstone. Dropping a replica removes its entry with it.

use crate::engine::{BatchItem, Space};
use crate::{start_after, ObjectKey, Store, StoreError};

/// The index entry for `key` if `obj` is a tombstone.
pub(crate) fn entry(key: &ObjectKey, obj: &causal::Object) -> Option<BatchItem> {
    let since_ms = obj.tombstone_ms()?;
    Some((
        Space::Tombstones,
        key.encode(),
        Some(since_ms.to_be_bytes().to_vec()),
    ))
}

/// An index entry: a replica that was a tombstone when written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TombstoneEntry {
    /// The replica's key.
    pub key: ObjectKey,
    /// Wall-clock ms of the newest delete it held when indexed.
    pub since_ms: u64,
}

impl Store {
    /// Index entries after `after` (from the first if `None`), in key
    /// order (so partition by partition), about `bytes_max` of them. An
    /// empty page means no more.
    ///
    /// # Errors
    ///
    /// Engine failures and undecodable entries.
    pub fn tombstones_page(
        &self,
        after: Option<&ObjectKey>,
        bytes_max: usize,
    ) -> Result<Vec<TombstoneEntry>, StoreError> {
        let after = after.map(ObjectKey::encode);
        self.engine
            .scan_page(
                Space::Tombstones,
                &[],
                start_after(after.as_deref()),
                bytes_max,
            )?
            .into_iter()
            .map(|(k, v)| {
                let corrupt = |what| StoreError::Corrupt {
                    what,
                    detail: format!("{} key bytes, {} value bytes", k.len(), v.len()),
                };
                let key = ObjectKey::decode(&k).ok_or(corrupt("tombstone index key"))?;
                let since: [u8; 8] = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| corrupt("tombstone index entry"))?;
                Ok(TombstoneEntry {
                    key,
                    since_ms: u64::from_be_bytes(since),
                })
            })
            .collect()
    }

    /// Remove the index entries of `keys` (they no longer name
    /// tombstones). Not synced: an entry that comes back after a crash is
    /// found stale again.
    ///
    /// # Errors
    ///
    /// Engine failures.
    pub async fn forget_tombstones(&self, keys: &[ObjectKey]) -> Result<(), StoreError> {
        let batch = keys
            .iter()
            .map(|k| (Space::Tombstones, k.encode(), None))
            .collect();
        self.writer.write(batch, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IndexTerms, MemoryEngine};
    use bytes::Bytes;
    use causal::{Actor, Meta, Object};
    use std::sync::Arc;

    fn key(k: &str) -> ObjectKey {
        ObjectKey {
            partition: 3,
            bucket_type: Bytes::from_static(b"t"),
            bucket: Bytes::from_static(b"b"),
            key: Bytes::copy_from_slice(k.as_bytes()),
        }
    }

    fn write(obj: &mut Object, deleted: bool, at: u64) {
        let meta = Meta {
            deleted,
            last_modified_ms: at,
            ..Meta::default()
        };
        let ctx = obj.context().clone();
        obj.update(&ctx, Actor { node: 1, epoch: 1 }, Bytes::new(), meta)
            .unwrap();
    }

    #[tokio::test]
    async fn tombstones_are_indexed_with_their_time_and_leave_with_their_replica() {
        let store = Store::new(Arc::new(MemoryEngine::default()));
        let (mut live, mut gone) = (Object::new(), Object::new());
        write(&mut live, false, 10);
        write(&mut gone, false, 10);
        write(&mut gone, true, 20);
        store
            .put_object_staged(&key("live"), &live, &IndexTerms::default(), false)
            .await
            .unwrap();
        store
            .put_object_staged(&key("gone"), &gone, &IndexTerms::default(), false)
            .await
            .unwrap();
        let page = store.tombstones_page(None, 1 << 16).unwrap();
        assert_eq!(
            page,
            vec![TombstoneEntry {
                key: key("gone"),
                since_ms: 20
            }]
        );
        // A later write does not remove the entry (it would cost every
        // write a delete); the reaper finds it stale and forgets it.
        write(&mut gone, false, 30);
        store
            .put_object_staged(&key("gone"), &gone, &IndexTerms::default(), false)
            .await
            .unwrap();
        assert_eq!(store.tombstones_page(None, 1 << 16).unwrap().len(), 1);
        store.forget_tombstones(&[key("gone")]).await.unwrap();
        assert!(store.tombstones_page(None, 1 << 16).unwrap().is_empty());
        // Dropping a tombstone's replica drops its entry.
        write(&mut gone, true, 40);
        store
            .put_object_staged(&key("gone"), &gone, &IndexTerms::default(), false)
            .await
            .unwrap();
        assert_eq!(
            store.tombstones_page(None, 1 << 16).unwrap()[0].since_ms,
            40
        );
        store
            .delete_objects(&[(key("gone"), IndexTerms::default())], false)
            .await
            .unwrap();
        assert!(store.tombstones_page(None, 1 << 16).unwrap().is_empty());
    }
}
