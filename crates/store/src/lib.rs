//! # Node-local storage
//!
//! Each node keeps its replicas, the set of buckets it has seen and its own
//! metadata (node id, epoch, cluster state) here. Two engines sit behind the
//! [`Engine`] trait:
//!
//! - [`FjallEngine`]: the production engine, an LSM tree with key-value
//!   separation for large values. fjall only fsyncs when asked, so
//!   durability is explicit: see [`Store::put_object`].
//! - [`MemoryEngine`]: for tests and simulation. It keeps a synced and an
//!   unsynced layer, and [`MemoryEngine::crash`] drops the unsynced one, so
//!   a simulated crash loses exactly what a real one could.
//!
//! ## Group commit
//!
//! Every write goes through one writer per engine (`writer.rs`): a thread
//! that applies all queued batches, then runs one fsync for those that asked
//! for durability, so N concurrent durable writes cost about one fsync.
//! Beside it a pacing thread (`writeback.rs`) syncs fjall's flushes in
//! pieces as they are written, so no journal fsync waits for a whole one.

mod engine;
mod format;
pub mod geo;
pub mod index;
mod keys;
mod listing;
mod memory;
mod reclaim;

mod refs;
mod tombstones;
mod writeback;
mod writer;

pub use engine::{BatchItem, Engine, EngineSnapshot, Entries, FjallEngine, Space, Start};
pub use format::{decode_object, encode_object, OBJECT_VERSION_MARKER};
pub use index::{IndexQuery, TermError, TermKind};
pub use keys::{ObjectKey, BUCKET_BYTES_MAX, KEY_BYTES_MAX, TYPE_BYTES_MAX};
pub use listing::{ListQuery, ListStart, Listed, ListedPage, ListedVersion};
pub use memory::MemoryEngine;
pub use refs::{Candidate, CandidateStage, IndexTerms, COLLECT_INDEX, REF_INDEX};
pub use tombstones::TombstoneEntry;
pub use writer::PendingSync;

use causal::Object;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Storage failures. Every one names what was being done.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The engine reported an I/O or corruption error.
    #[error("storage engine failed while {doing}: {detail}; check the data directory's disk and permissions")]
    Engine {
        /// What the store was doing.
        doing: &'static str,
        /// The engine's message.
        detail: String,
    },
    /// Bytes on disk that do not decode: corruption or a newer format.
    #[error("stored {what} does not decode ({detail}); the data directory may be from a newer ringstore or corrupt")]
    Corrupt {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// A record did not encode (postcard refused it).
    #[error("encoding a {what} for storage failed ({detail}); this is a bug, please report it")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's message.
        detail: String,
    },
    /// The writer is gone (the node is shutting down).
    #[error("the storage writer stopped; the node is shutting down")]
    SyncStopped,
}

/// Where a page that resumes after `after` (if any) starts.
fn start_after(after: Option<&[u8]>) -> Start<'_> {
    after.map_or(Start::First, Start::After)
}

/// An engine read as a snapshot of the present (every write so far).
struct Live<'e>(&'e dyn Engine);

impl EngineSnapshot for Live<'_> {
    fn scan_page(
        &self,
        space: Space,
        prefix: &[u8],
        start: Start<'_>,
        bytes_max: usize,
    ) -> Result<Entries, StoreError> {
        self.0.scan_page(space, prefix, start, bytes_max)
    }
}

/// The objects of one partition after `after`, about `bytes_max` of them,
/// each with its stored size, read through `view`.
fn partition_page(
    view: &dyn EngineSnapshot,
    partition: u16,
    after: Option<&ObjectKey>,
    bytes_max: usize,
) -> Result<Vec<(ObjectKey, Object, usize)>, StoreError> {
    let after = after.map(ObjectKey::encode);
    let start = start_after(after.as_deref());
    view.scan_page(Space::Objects, &partition.to_be_bytes(), start, bytes_max)?
        .into_iter()
        .map(|(k, v)| {
            let key = ObjectKey::decode(&k).ok_or(StoreError::Corrupt {
                what: "object key",
                detail: format!("{} bytes", k.len()),
            })?;
            Ok((key, decode_object(&v)?, k.len() + v.len()))
        })
        .collect()
}

/// A read-only view of a node's objects at one instant.
pub struct StoreSnapshot {
    engine: Box<dyn EngineSnapshot>,
}

impl StoreSnapshot {
    /// As [`Store::scan_partition_page`], at the snapshot's instant.
    ///
    /// # Errors
    ///
    /// Engine failures and undecodable bytes.
    pub fn scan_partition_page(
        &self,
        partition: u16,
        after: Option<&ObjectKey>,
        bytes_max: usize,
    ) -> Result<Vec<(ObjectKey, Object, usize)>, StoreError> {
        partition_page(&*self.engine, partition, after, bytes_max)
    }
}

/// A (bucket type, bucket) pair.
pub type BucketId = (Vec<u8>, Vec<u8>);

/// Typed access to one node's data over an [`Engine`].
#[derive(Clone)]
pub struct Store {
    engine: Arc<dyn Engine>,
    writer: writer::Writer,
    /// Buckets already recorded, so each write does not rewrite the index.
    /// Bounded by: the number of buckets on this node.
    buckets_seen: Arc<Mutex<BTreeSet<BucketId>>>,
}

impl Store {
    /// Wrap an engine and start its writer (a thread, for disk engines).
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        let writer = writer::Writer::start(engine.clone());
        Store {
            engine,
            writer,
            buckets_seen: Arc::default(),
        }
    }

    /// The engine underneath.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// This node's replica of a key, if it has one.
    ///
    /// # Errors
    ///
    /// Engine failures and undecodable bytes.
    pub fn get_object(&self, key: &ObjectKey) -> Result<Option<Object>, StoreError> {
        match self.engine.get(Space::Objects, &key.encode())? {
            Some(bytes) => decode_object(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Store this node's replica of a key and return once reads see it; the
    /// returned [`PendingSync`] resolves once it is durable. Lets a caller
    /// release a lock before waiting for the fsync.
    ///
    /// `was` are the reference terms of the replica being replaced
    /// ([`IndexTerms::of`] the object read under the key's lock; empty for a
    /// new key): the reference index and the collection log are updated
    /// in the same batch (see `refs.rs`).
    ///
    /// # Errors
    ///
    /// Engine failures.
    pub async fn put_object_staged(
        &self,
        key: &ObjectKey,
        obj: &Object,
        was: &IndexTerms,
        durable: bool,
    ) -> Result<PendingSync, StoreError> {
        let mut batch = vec![(Space::Objects, key.encode(), Some(encode_object(obj)?))];
        batch.extend(tombstones::entry(key, obj));
        batch.extend(refs::changes(key, was, obj));
        let bucket_id = (key.bucket_type.to_vec(), key.bucket.to_vec());
        let new_bucket = !self
            .buckets_seen
            .lock()
            .map(|s| s.contains(&bucket_id))
            .unwrap_or(false);
        if new_bucket {
            batch.push((
                Space::Buckets,
                keys::bucket_index_key(&key.bucket_type, &key.bucket),
                Some(Vec::new()),
            ));
        }
        let pending = self.writer.write_staged(batch, durable).await?;
        if new_bucket {
            if let Ok(mut seen) = self.buckets_seen.lock() {
                seen.insert(bucket_id);
            }
        }
        Ok(pending)
    }

    /// Keys this node holds for a bucket in one partition, with their objects.
    ///
    /// # Errors
    ///
    /// Engine failures and undecodable bytes.
    pub fn scan_bucket(
        &self,
        partition: u16,
        bucket_type: &[u8],
        bucket: &[u8],
    ) -> Result<Vec<(Vec<u8>, Object)>, StoreError> {
        let prefix = ObjectKey::bucket_prefix(partition, bucket_type, bucket);
        self.engine
            .scan_prefix(Space::Objects, &prefix)?
            .into_iter()
            .map(|(k, v)| Ok((k[prefix.len()..].to_vec(), decode_object(&v)?)))
            .collect()
    }

    /// The objects of one bucket in one partition whose keys come after
    /// `after` (from the first if `None`), about `bytes_max` of them, as
    /// (key within the bucket, object).
    ///
    /// # Errors
    ///
    /// Engine failures and undecodable bytes.
    pub fn scan_bucket_page(
        &self,
        partition: u16,
        bucket_type: &[u8],
        bucket: &[u8],
        after: Option<&[u8]>,
        bytes_max: usize,
    ) -> Result<Vec<(Vec<u8>, Object)>, StoreError> {
        let prefix = ObjectKey::bucket_prefix(partition, bucket_type, bucket);
        let after = after.map(|a| [prefix.as_slice(), a].concat());
        self.engine
            .scan_page(
                Space::Objects,
                &prefix,
                start_after(after.as_deref()),
                bytes_max,
            )?
            .into_iter()
            .map(|(k, v)| Ok((k[prefix.len()..].to_vec(), decode_object(&v)?)))
            .collect()
    }

    /// Every object this node holds in one partition, all buckets.
    ///
    /// # Errors
    ///
    /// Engine failures and undecodable bytes.
    pub fn scan_partition(&self, partition: u16) -> Result<Vec<(ObjectKey, Object)>, StoreError> {
        self.engine
            .scan_prefix(Space::Objects, &partition.to_be_bytes())?
            .into_iter()
            .map(|(k, v)| {
                let key = ObjectKey::decode(&k).ok_or(StoreError::Corrupt {
                    what: "object key",
                    detail: format!("{} bytes", k.len()),
                })?;
                Ok((key, decode_object(&v)?))
            })
            .collect()
    }

    /// The objects of one partition after `after` (from the first if
    /// `None`), in key order, about `bytes_max` of them; each with its
    /// stored size. An empty page means the partition has no more.
    ///
    /// # Errors
    ///
    /// Engine failures and undecodable bytes.
    pub fn scan_partition_page(
        &self,
        partition: u16,
        after: Option<&ObjectKey>,
        bytes_max: usize,
    ) -> Result<Vec<(ObjectKey, Object, usize)>, StoreError> {
        partition_page(&Live(&*self.engine), partition, after, bytes_max)
    }

    /// A snapshot of this node's objects as they are now, to read while
    /// writes go on (the anti-entropy rebuild).
    ///
    /// # Errors
    ///
    /// Engine failures.
    pub fn snapshot(&self) -> Result<StoreSnapshot, StoreError> {
        Ok(StoreSnapshot {
            engine: self.engine.snapshot()?,
        })
    }

    /// Delete this node's replicas of `keys` (a partition handed off, a
    /// tombstone reaped), each with the reference terms it carries.
    ///
    /// # Errors
    ///
    /// Engine and fsync failures.
    pub async fn delete_objects(
        &self,
        keys: &[(ObjectKey, IndexTerms)],
        durable: bool,
    ) -> Result<(), StoreError> {
        // A replica's index entries go with it.
        let mut batch = Vec::with_capacity(keys.len() * 2);
        for (k, was) in keys {
            let encoded = k.encode();
            batch.push((Space::Tombstones, encoded.clone(), None));
            batch.push((Space::Objects, encoded, None));
            batch.extend(refs::removals(k, was));
        }
        self.writer.write(batch, durable).await
    }

    /// Every (type, bucket) this node has stored an object in.
    ///
    /// # Errors
    ///
    /// Engine failures and undecodable index entries.
    pub fn buckets(&self) -> Result<Vec<BucketId>, StoreError> {
        self.engine
            .scan_prefix(Space::Buckets, &[])?
            .into_iter()
            .map(|(k, _)| keys::decode_bucket_index_key(&k))
            .collect()
    }

    /// Wait for an fsync covering every write applied so far (group commit).
    ///
    /// # Errors
    ///
    /// The fsync failed or the node is shutting down.
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.writer.write(Vec::new(), true).await
    }

    fn hint_key(target: u64, key: &ObjectKey) -> Vec<u8> {
        let mut out = target.to_be_bytes().to_vec();
        out.extend(key.encode());
        out
    }

    /// The hint this node holds for `target` and `key`, if any, with its
    /// size as stored.
    ///
    /// # Errors
    ///
    /// Engine failures and undecodable bytes.
    pub fn get_hint(
        &self,
        target: u64,
        key: &ObjectKey,
    ) -> Result<Option<(Object, usize)>, StoreError> {
        match self
            .engine
            .get(Space::Hints, &Self::hint_key(target, key))?
        {
            Some(bytes) => decode_object(&bytes).map(|o| Some((o, bytes.len()))),
            None => Ok(None),
        }
    }

    /// Store the hint for `target` and `key` (the caller merged it with any
    /// previous one); with `durable`, fsynced before return. Returns its
    /// size as stored.
    ///
    /// # Errors
    ///
    /// Engine and fsync failures.
    pub async fn put_hint(
        &self,
        target: u64,
        key: &ObjectKey,
        obj: &Object,
        durable: bool,
    ) -> Result<usize, StoreError> {
        let encoded = encode_object(obj)?;
        let size = encoded.len();
        let batch = vec![(Space::Hints, Self::hint_key(target, key), Some(encoded))];
        self.writer.write(batch, durable).await?;
        Ok(size)
    }

    /// Forget a delivered hint.
    ///
    /// # Errors
    ///
    /// Engine failures.
    pub async fn remove_hint(&self, target: u64, key: &ObjectKey) -> Result<(), StoreError> {
        self.writer
            .write(
                vec![(Space::Hints, Self::hint_key(target, key), None)],
                false,
            )
            .await
    }

    /// Hints held for `target` after `after` (from the first if `None`), in
    /// key order, until their sizes reach `bytes_max` (at least one if any
    /// is left), each with its size as stored. A page of hints of large
    /// values holds one; the caller never has more than a page in memory.
    ///
    /// # Errors
    ///
    /// Engine failures and undecodable entries.
    pub fn hints_page(
        &self,
        target: u64,
        after: Option<&ObjectKey>,
        bytes_max: usize,
    ) -> Result<Vec<(ObjectKey, Object, usize)>, StoreError> {
        let prefix = target.to_be_bytes();
        let after = after.map(|k| Self::hint_key(target, k));
        let mut out = Vec::new();
        for (k, v) in self.engine.scan_page(
            Space::Hints,
            &prefix,
            start_after(after.as_deref()),
            bytes_max,
        )? {
            let key = ObjectKey::decode(&k[8..]).ok_or(StoreError::Corrupt {
                what: "hint key",
                detail: format!("{} bytes", k.len()),
            })?;
            out.push((key, decode_object(&v)?, v.len()));
        }
        Ok(out)
    }

    /// How many hints this node holds per target node, and their bytes as
    /// stored, read from the index without reading a value: one seek per
    /// target.
    ///
    /// # Errors
    ///
    /// Engine failures.
    pub fn hint_tallies(&self) -> Result<std::collections::BTreeMap<u64, (u64, u64)>, StoreError> {
        let mut tallies = std::collections::BTreeMap::new();
        let mut from = Vec::new();
        while let Some(key) = self.engine.first_key_from(Space::Hints, &from)? {
            let Some(target) = key
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
            else {
                return Err(StoreError::Corrupt {
                    what: "hint key",
                    detail: format!("{} bytes", key.len()),
                });
            };
            tallies.insert(
                target,
                self.engine
                    .count_prefix(Space::Hints, &target.to_be_bytes())?,
            );
            match target.checked_add(1) {
                Some(next) => from = next.to_be_bytes().to_vec(),
                None => break,
            }
        }
        Ok(tallies)
    }

    /// A node metadata record.
    ///
    /// # Errors
    ///
    /// Engine failures.
    pub fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.engine.get(Space::Meta, name.as_bytes())
    }

    /// Write a node metadata record; with `durable`, fsynced before return.
    ///
    /// # Errors
    ///
    /// Engine and fsync failures.
    pub async fn put_meta(
        &self,
        name: &str,
        value: Vec<u8>,
        durable: bool,
    ) -> Result<(), StoreError> {
        let batch = vec![(Space::Meta, name.as_bytes().to_vec(), Some(value))];
        self.writer.write(batch, durable).await
    }

    /// Delete a node metadata record; with `durable`, fsynced before return.
    ///
    /// # Errors
    ///
    /// Engine and fsync failures.
    pub async fn delete_meta(&self, name: &str, durable: bool) -> Result<(), StoreError> {
        let batch = vec![(Space::Meta, name.as_bytes().to_vec(), None)];
        self.writer.write(batch, durable).await
    }
}
