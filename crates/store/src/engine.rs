//! The engine trait and the fjall engine.

use crate::StoreError;
use std::path::Path;

/// Separate key spaces, one per concern, so scans never cross them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    /// Replicas: `ObjectKey` → encoded `Object`.
    Objects,
    /// (type, bucket) pairs this node has stored objects in.
    Buckets,
    /// Node metadata: id, epoch, cluster state.
    Meta,
    /// Hinted handoff: writes held for an unreachable owner, keyed by the
    /// owner's node id then the object key.
    Hints,
    /// The tombstones this node stores: object key → wall-clock ms of the
    /// newest delete. What the reaper walks, so its work tracks deletes
    /// rather than data (see `tombstones.rs`).
    Tombstones,
    /// The reference index: (referenced term, object key) for every
    /// `$ref` term a stored replica's versions carry (see `refs.rs`).
    Refs,
    /// The collection log: (due ms, term) of objects that may have lost
    /// their last reference (see `refs.rs`).
    Candidates,
    /// Secondary indexes: (bucket, index, term, key) → partition for
    /// every 2i term of a stored replica's live versions (see `index.rs`;
    /// named `term_index` on disk since its layout changed).
    Index,
}

impl Space {
    const ALL: [Space; 8] = [
        Space::Objects,
        Space::Buckets,
        Space::Meta,
        Space::Hints,
        Space::Tombstones,
        Space::Refs,
        Space::Candidates,
        Space::Index,
    ];

    fn name(self) -> &'static str {
        match self {
            Space::Objects => "objects",
            Space::Buckets => "buckets",
            Space::Meta => "meta",
            Space::Hints => "hints",
            Space::Tombstones => "tombstones",
            Space::Refs => "refs",
            Space::Candidates => "candidates",
            Space::Index => "term_index",
        }
    }
}

/// One write in a batch: `None` removes the key.
pub type BatchItem = (Space, Vec<u8>, Option<Vec<u8>>);

/// Keys with their values, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Where a page scan starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start<'a> {
    /// At the first key with the prefix.
    First,
    /// Strictly after this key (where the previous page ended).
    After(&'a [u8]),
    /// At this key or the first after it (a seek past a skipped range).
    At(&'a [u8]),
}

impl<'a> Start<'a> {
    /// `First` when the start key sorts before `prefix`: a scan from there
    /// would meet keys without the prefix first and stop at once.
    pub fn clamped_to(self, prefix: &[u8]) -> Start<'a> {
        match self {
            Start::After(k) | Start::At(k) if k < prefix => Start::First,
            other => other,
        }
    }
}

/// A key-value engine. Writes are atomic per batch and visible at once, but
/// durable only after [`Engine::sync`].
pub trait Engine: Send + Sync + 'static {
    /// Read one key.
    ///
    /// # Errors
    ///
    /// I/O failures.
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Apply a batch atomically, without fsync.
    ///
    /// # Errors
    ///
    /// I/O failures; nothing of the batch is applied then.
    fn write(&self, batch: Vec<BatchItem>) -> Result<(), StoreError>;
    /// Make every write applied so far durable.
    ///
    /// # Errors
    ///
    /// I/O failures.
    fn sync(&self) -> Result<(), StoreError>;
    /// Whether `sync` blocks the calling thread on disk I/O (run it on a
    /// blocking thread) or returns at once (run it inline; the simulation
    /// has no threads to spare).
    fn sync_blocks(&self) -> bool;
    /// Every key with `prefix`, in key order, with its value.
    ///
    /// # Errors
    ///
    /// I/O failures.
    fn scan_prefix(&self, space: Space, prefix: &[u8]) -> Result<Entries, StoreError>;
    /// How many keys start with `prefix`, and their values' total size,
    /// without reading the values.
    ///
    /// # Errors
    ///
    /// I/O failures.
    fn count_prefix(&self, space: Space, prefix: &[u8]) -> Result<(u64, u64), StoreError>;
    /// Bytes on disk (all spaces, journal included) and about how many
    /// keys the objects space holds, without reading them (the
    /// dashboard's figures; 0 where the engine cannot tell cheaply).
    fn footprint(&self) -> (u64, u64);
    /// The first key at or after `from`, without its value.
    ///
    /// # Errors
    ///
    /// I/O failures.
    fn first_key_from(&self, space: Space, from: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keys with `prefix` from `start`, in key order, until their keys and
    /// values reach `bytes_max` (at least one entry is returned if any is
    /// left).
    ///
    /// # Errors
    ///
    /// I/O failures.
    fn scan_page(
        &self,
        space: Space,
        prefix: &[u8],
        start: Start<'_>,
        bytes_max: usize,
    ) -> Result<Entries, StoreError>;
    /// A snapshot of everything written so far.
    ///
    /// # Errors
    ///
    /// I/O failures.
    fn snapshot(&self) -> Result<Box<dyn EngineSnapshot>, StoreError>;
}

/// A consistent read-only view of an engine at one instant: writes after
/// it are not seen. Held briefly (a disk engine keeps the versions it
/// needs from compaction while it lives).
pub trait EngineSnapshot: Send + Sync {
    /// As [`Engine::scan_page`], at the snapshot's instant.
    ///
    /// # Errors
    ///
    /// I/O failures.
    fn scan_page(
        &self,
        space: Space,
        prefix: &[u8],
        start: Start<'_>,
        bytes_max: usize,
    ) -> Result<Entries, StoreError>;
}

/// Take entries until their values reach `bytes_max` (at least one).
pub(crate) fn take_page<E>(
    entries: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), E>>,
    bytes_max: usize,
) -> Result<Entries, E> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for e in entries {
        if bytes >= bytes_max {
            break;
        }
        let (k, v) = e?;
        bytes += k.len() + v.len();
        out.push((k, v));
    }
    Ok(out)
}

/// The smallest and the span of the objects memtable's size.
const OBJECTS_MEMTABLE_BYTES_MIN: u64 = 40 << 20;
const OBJECTS_MEMTABLE_BYTES_SPAN: u64 = 32 << 20;

/// The objects memtable's size, drawn once when the keyspace is created
/// (fjall keeps it with the keyspace): between 40 and 72 MiB.
///
/// Why not one size for all: the replicas of a key receive the same writes,
/// so with equal memtables every node of a cluster flushes at the same
/// moment, and a flush holds back the journal fsyncs behind it for a few
/// hundred milliseconds. A write needs `w` replicas: when the replicas stall
/// one at a time the others still answer. Measured with 4 KiB S3 PUTs on
/// the dev cluster (three nodes, one disk): the per-second p99 jumped from
/// ~35 ms to 60-117 ms every ~5 s with equal sizes, and stayed at 23-49 ms
/// with drawn ones, the run's last second aside (docs/BENCHMARKS.md).
fn objects_memtable_bytes() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    OBJECTS_MEMTABLE_BYTES_MIN + random % OBJECTS_MEMTABLE_BYTES_SPAN
}

/// How stale (overwritten or deleted values) a blob file must be before a
/// compaction rewrites its live values to reclaim the rest; fjall's default
/// is 0.25.
///
/// Rewriting a file that is a quarter stale copies three bytes for each
/// byte it frees, and the copy (reading, writing and checksumming tens of
/// MiB, then deleting the old file) lands in the middle of the write load.
/// At 0.6 a rewrite copies at most two bytes for three freed, and
/// overwrites pay much less. The price is space: blob files may hold up to
/// 2.5 times their live values, against 1.33 times. What ringstore stores
/// most is rarely overwritten (media files; large objects' blocks are
/// content-addressed and never overwritten), so the space is mostly live.
/// Measured with 15 s of 4 KiB key-value PUTs then 15 s of 4 KiB S3 PUTs,
/// each overwriting 10,000 keys: 1 relocating compaction against 6; nine
/// interleaved pairs, S3 PUT p99 41.0 ms against 44.4 on average, 427 µs
/// of cluster CPU per PUT against 449 (docs/BENCHMARKS.md).
///
/// fjall stores this with the keyspace when it creates it: a data
/// directory created before keeps the threshold it was created with.
const BLOB_STALENESS_REWRITE: f32 = 0.6;

/// The fjall engine: one database per node, one keyspace per [`Space`].
pub struct FjallEngine {
    db: fjall::Database,
    spaces: Vec<fjall::Keyspace>,
    /// Starts the writeback of flushes as they are written; stops with
    /// the engine.
    _pacer: crate::writeback::WritebackPacer,
}

fn engine_err(doing: &'static str) -> impl Fn(fjall::Error) -> StoreError {
    move |e| StoreError::Engine {
        doing,
        detail: e.to_string(),
    }
}

impl FjallEngine {
    /// Open or create the database in `dir`, with a block cache of
    /// `cache_bytes` (index, filter and data blocks read from disk).
    ///
    /// # Errors
    ///
    /// The directory cannot be created, is locked by another process, or is
    /// not a fjall database.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Engine {
            doing: "creating the data directory",
            detail: format!("{}: {e}", dir.display()),
        })?;
        // No lz4, in the journal or in blob files: what ringstore stores most
        // by volume is media (JPEG, MP4, already compressed), on which lz4
        // only spends CPU, three times per write (once per replica) and
        // again at each flush. Measured: 64 KiB S3 PUTs cost 1,519-1,686
        // µs of cluster CPU without it against 2,010-2,015 with it, 889-973
        // PUT/s against 745-823 (docs/BENCHMARKS.md). Clients that store
        // text can compress it themselves (Content-Encoding).
        let db = fjall::Database::builder(dir)
            .journal_compression(fjall::CompressionType::None)
            .cache_size(cache_bytes)
            .open()
            .map_err(engine_err("opening the database"))?;
        let mut spaces = Vec::new();
        for space in Space::ALL {
            let opts = move || {
                let o = fjall::KeyspaceCreateOptions::default();
                if space == Space::Objects {
                    o.max_memtable_size(objects_memtable_bytes())
                        .with_kv_separation(Some(
                            fjall::KvSeparationOptions::default()
                                .compression(fjall::CompressionType::None)
                                .staleness_threshold(BLOB_STALENESS_REWRITE),
                        ))
                } else {
                    o
                }
            };
            spaces.push(
                db.keyspace(space.name(), opts)
                    .map_err(engine_err("opening a keyspace"))?,
            );
        }
        Ok(FjallEngine {
            db,
            spaces,
            _pacer: crate::writeback::WritebackPacer::start(dir),
        })
    }

    fn space(&self, space: Space) -> &fjall::Keyspace {
        &self.spaces[space as usize]
    }
}

impl Engine for FjallEngine {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .space(space)
            .get(key)
            .map_err(engine_err("reading"))?
            .map(|v| v.to_vec()))
    }

    fn write(&self, batch: Vec<BatchItem>) -> Result<(), StoreError> {
        let mut b = self.db.batch();
        for (space, key, value) in batch {
            match value {
                Some(v) => b.insert(self.space(space), key, v),
                None => b.remove(self.space(space), key),
            }
        }
        b.commit().map_err(engine_err("writing a batch"))
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db
            .persist(fjall::PersistMode::SyncAll)
            .map_err(engine_err("fsyncing the journal"))
    }

    fn sync_blocks(&self) -> bool {
        true
    }

    fn scan_prefix(&self, space: Space, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.space(space)
            .prefix(prefix)
            .map(|g| {
                let (k, v) = g.into_inner().map_err(engine_err("scanning"))?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn footprint(&self) -> (u64, u64) {
        let disk = self.db.disk_space().unwrap_or(0);
        (disk, self.space(Space::Objects).approximate_len() as u64)
    }

    fn count_prefix(&self, space: Space, prefix: &[u8]) -> Result<(u64, u64), StoreError> {
        let (mut keys, mut bytes) = (0, 0);
        for g in self.space(space).prefix(prefix) {
            // The value's size comes from the index; a separated value's
            // blob is not read.
            bytes += u64::from(g.size().map_err(engine_err("scanning"))?);
            keys += 1;
        }
        Ok((keys, bytes))
    }

    fn first_key_from(&self, space: Space, from: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let range = (
            std::ops::Bound::Included(from.to_vec()),
            std::ops::Bound::<Vec<u8>>::Unbounded,
        );
        match self.space(space).range(range).next() {
            Some(g) => Ok(Some(g.key().map_err(engine_err("scanning"))?.to_vec())),
            None => Ok(None),
        }
    }

    fn scan_page(
        &self,
        space: Space,
        prefix: &[u8],
        start: Start<'_>,
        bytes_max: usize,
    ) -> Result<Entries, StoreError> {
        let ks = self.space(space);
        fjall_page(
            || ks.prefix(prefix),
            |r| ks.range(r),
            prefix,
            start,
            bytes_max,
        )
    }

    fn snapshot(&self) -> Result<Box<dyn EngineSnapshot>, StoreError> {
        Ok(Box::new(FjallSnapshot {
            snapshot: self.db.snapshot(),
            spaces: self.spaces.clone(),
        }))
    }
}

/// A fjall snapshot with the keyspaces to read through it.
struct FjallSnapshot {
    snapshot: fjall::Snapshot,
    spaces: Vec<fjall::Keyspace>,
}

impl EngineSnapshot for FjallSnapshot {
    fn scan_page(
        &self,
        space: Space,
        prefix: &[u8],
        start: Start<'_>,
        bytes_max: usize,
    ) -> Result<Entries, StoreError> {
        use fjall::Readable;
        let ks = &self.spaces[space as usize];
        let snap = &self.snapshot;
        fjall_page(
            || snap.prefix(ks, prefix),
            |r| snap.range(ks, r),
            prefix,
            start,
            bytes_max,
        )
    }
}

type KeyRange = (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>);

/// A page of a fjall scan from `start`, through a keyspace or a snapshot.
fn fjall_page<P, R>(
    prefix_iter: impl FnOnce() -> P,
    range_iter: impl FnOnce(KeyRange) -> R,
    prefix: &[u8],
    start: Start<'_>,
    bytes_max: usize,
) -> Result<Entries, StoreError>
where
    P: Iterator<Item = fjall::Guard>,
    R: Iterator<Item = fjall::Guard>,
{
    use std::ops::Bound;
    let entries = |g: fjall::Guard| {
        let (k, v) = g.into_inner().map_err(engine_err("scanning"))?;
        Ok((k.to_vec(), v.to_vec()))
    };
    let from = match start.clamped_to(prefix) {
        Start::First => return take_page(prefix_iter().map(entries), bytes_max),
        Start::After(k) => Bound::Excluded(k.to_vec()),
        Start::At(k) => Bound::Included(k.to_vec()),
    };
    let page = range_iter((from, Bound::Unbounded))
        .map(entries)
        .take_while(|e| e.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)));
    take_page(page, bytes_max)
}
