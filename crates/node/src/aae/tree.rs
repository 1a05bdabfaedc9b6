//! Per-partition trees of XOR-combined segment hashes (pure).

use crate::locks::Held;
use causal::Object;
use std::collections::HashMap;
use std::sync::Mutex;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Segments per partition tree.
pub(crate) const SEGMENTS: usize = 1024;

/// The segment of an encoded object key.
pub(crate) fn segment_of(key: &[u8]) -> u16 {
    (xxh3_64_with_seed(key, 0x5e6) % SEGMENTS as u64) as u16
}

/// A digest of an object's causal state: equal for equal objects. Dots
/// identify values, so value bytes need not be hashed.
pub(crate) fn digest(obj: &Object) -> u64 {
    let mut bytes = postcard::to_stdvec(obj.context()).unwrap_or_default();
    for s in obj.siblings() {
        bytes.extend_from_slice(&s.dot.actor.node.to_le_bytes());
        bytes.extend_from_slice(&s.dot.actor.epoch.to_le_bytes());
        bytes.extend_from_slice(&s.dot.counter.to_le_bytes());
        bytes.push(u8::from(s.meta.deleted));
    }
    xxh3_64(&bytes)
}

/// A key's contribution to its segment; 0 for an object that saw nothing.
pub(crate) fn contribution(key: &[u8], obj: &Object) -> u64 {
    if obj.context().is_empty() {
        return 0;
    }
    xxh3_64_with_seed(key, digest(obj))
}

/// Every partition's tree on this node.
#[derive(Default)]
pub(crate) struct Trees {
    /// Partition → segment hashes. Bounded by: partitions × SEGMENTS.
    trees: Mutex<HashMap<u16, Vec<u64>>>,
    /// Partitions whose rebuild from a snapshot has not finished: their
    /// tree holds only the writes since the snapshot. Bounded by:
    /// partitions.
    rebuilding: Mutex<std::collections::BTreeSet<u16>>,
}

/// A partition's segment hashes as a snapshot's scan adds them up.
pub(crate) fn scanned_segments() -> Vec<u64> {
    vec![0; SEGMENTS]
}

/// Add a scanned key's contribution to `segments`.
pub(crate) fn add_scanned(segments: &mut [u64], key: &[u8], obj: &Object) {
    segments[usize::from(segment_of(key))] ^= contribution(key, obj);
}

impl Trees {
    /// Record that `key` (encoded, in `partition`) went from `old` to `new`.
    pub(crate) fn update(&self, partition: u16, key: &[u8], old: &Object, new: &Object) {
        self.update_from(partition, key, contribution(key, old), new);
    }

    /// As [`Trees::update`], with the old object's [`contribution`] taken
    /// before it was changed in place (so the writer need not copy it).
    pub(crate) fn update_from(&self, partition: u16, key: &[u8], old: u64, new: &Object) {
        let delta = old ^ contribution(key, new);
        if delta == 0 {
            return;
        }
        let mut t = self.trees.held();
        let tree = t.entry(partition).or_insert_with(|| vec![0; SEGMENTS]);
        tree[usize::from(segment_of(key))] ^= delta;
    }

    /// Start rebuilding `partitions` from a snapshot taken now: until each
    /// is finished, its tree holds the XOR of the writes after the
    /// snapshot only.
    pub(crate) fn begin_rebuild(&self, partitions: impl IntoIterator<Item = u16>) {
        self.rebuilding.held().extend(partitions);
    }

    /// A partition's snapshot scan is done: XOR it into the tree.
    ///
    /// Why this is exact: the live tree holds, per key, c(at snapshot) ^
    /// c(now) for every key written since (the XOR of each write's old and
    /// new contributions telescopes), and the scan holds c(at snapshot);
    /// their XOR is c(now) for every key, the tree a full rescan would
    /// build. The snapshot must have been taken before any write after it
    /// updated a tree, which `persist` ensures by taking it before the
    /// node serves anything.
    pub(crate) fn finish_rebuild(&self, partition: u16, scanned: &[u64]) {
        assert_eq!(scanned.len(), SEGMENTS, "a scan of another tree shape");
        {
            let mut t = self.trees.held();
            let tree = t.entry(partition).or_insert_with(|| vec![0; SEGMENTS]);
            for (seg, s) in tree.iter_mut().zip(scanned) {
                *seg ^= s;
            }
        }
        self.rebuilding.held().remove(&partition);
    }

    /// Whether a partition's tree is complete (not being rebuilt).
    pub(crate) fn is_ready(&self, partition: u16) -> bool {
        !self.rebuilding.held().contains(&partition)
    }

    /// Partitions still being rebuilt.
    pub(crate) fn rebuilding(&self) -> usize {
        self.rebuilding.held().len()
    }

    /// Partitions whose tree is not empty (the node holds data there).
    pub(crate) fn partitions(&self) -> Vec<u16> {
        let t = self.trees.held();
        let mut out: Vec<u16> = t
            .iter()
            .filter(|(_, segs)| segs.iter().any(|s| *s != 0))
            .map(|(p, _)| *p)
            .collect();
        out.sort_unstable();
        out
    }

    /// Every non-empty tree, for saving.
    pub(crate) fn snapshot(&self) -> Vec<(u16, Vec<u64>)> {
        let t = self.trees.held();
        let mut all: Vec<(u16, Vec<u64>)> = t
            .iter()
            .filter(|(_, segs)| segs.iter().any(|s| *s != 0))
            .map(|(p, segs)| (*p, segs.clone()))
            .collect();
        all.sort_unstable_by_key(|(p, _)| *p);
        all
    }

    /// Replace every tree with saved ones.
    pub(crate) fn restore(&self, saved: Vec<(u16, Vec<u64>)>) {
        *self.trees.held() = saved.into_iter().collect();
    }

    /// The segment hashes of a partition (all zero if it holds nothing).
    pub(crate) fn segments(&self, partition: u16) -> Vec<u64> {
        self.trees
            .held()
            .get(&partition)
            .cloned()
            .unwrap_or_else(|| vec![0; SEGMENTS])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use causal::{Actor, Meta, VersionVector};
    use proptest::prelude::*;

    fn obj(writes: &[u64]) -> Object {
        let mut o = Object::new();
        for w in writes {
            o.update(
                &VersionVector::new(),
                Actor { node: *w, epoch: 1 },
                Bytes::new(),
                Meta::default(),
            )
            .unwrap();
        }
        o
    }

    proptest! {
        #[test]
        fn incremental_updates_equal_a_rebuild(history in prop::collection::vec((0u8..20, prop::collection::vec(1u64..4, 0..3)), 0..60)) {
            // Apply a history of writes key by key, then compare with a tree
            // built from the final objects only.
            let live = Trees::default();
            let mut last: HashMap<u8, Object> = HashMap::new();
            for (k, writes) in &history {
                let new = obj(writes);
                let old = last.insert(*k, new.clone()).unwrap_or_default();
                live.update(0, &[*k], &old, &new);
            }
            let rebuilt = Trees::default();
            for (k, o) in &last {
                rebuilt.update(0, &[*k], &Object::new(), o);
            }
            prop_assert_eq!(live.segments(0), rebuilt.segments(0));
        }
    }

    proptest! {
        #[test]
        fn a_rebuild_beside_writes_equals_a_rescan(
            before in prop::collection::vec((0u8..20, prop::collection::vec(1u64..4, 0..3)), 0..40),
            after in prop::collection::vec((0u8..20, prop::collection::vec(1u64..4, 0..3)), 0..40),
        ) {
            // Storage holds `before` at the snapshot; `after` is written
            // while the rebuild runs; the result must equal a rescan.
            let mut stored: HashMap<u8, Object> = HashMap::new();
            for (k, w) in &before {
                stored.insert(*k, obj(w));
            }
            let snapshot = stored.clone();
            let live = Trees::default();
            live.begin_rebuild([0]);
            prop_assert!(!live.is_ready(0));
            for (k, w) in &after {
                let new = obj(w);
                let old = stored.insert(*k, new.clone()).unwrap_or_default();
                live.update(0, &[*k], &old, &new);
            }
            let mut scanned = scanned_segments();
            for (k, o) in &snapshot {
                add_scanned(&mut scanned, &[*k], o);
            }
            live.finish_rebuild(0, &scanned);
            prop_assert!(live.is_ready(0));
            let rescan = Trees::default();
            for (k, o) in &stored {
                rescan.update(0, &[*k], &Object::new(), o);
            }
            prop_assert_eq!(live.segments(0), rescan.segments(0));
        }
    }

    #[test]
    fn differing_objects_differ_in_their_segment() {
        let (a, b) = (Trees::default(), Trees::default());
        a.update(3, b"k", &Object::new(), &obj(&[1]));
        b.update(3, b"k", &Object::new(), &obj(&[2]));
        let seg = usize::from(segment_of(b"k"));
        assert_ne!(a.segments(3)[seg], b.segments(3)[seg]);
        assert_eq!(a.segments(3).iter().filter(|s| **s != 0).count(), 1);
        assert_eq!(a.segments(4), vec![0; SEGMENTS]);
    }
}
