//! The in-memory engine, with crash semantics for simulation.

use crate::engine::{BatchItem, Engine, EngineSnapshot, Entries, Space, Start};
use crate::StoreError;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

type Map = BTreeMap<(Space, Vec<u8>), Vec<u8>>;

#[derive(Default)]
struct Layers {
    /// What a crash keeps.
    synced: Map,
    /// What reads see: `synced` plus every write since the last sync.
    current: Map,
    /// Writes since the last sync, in order. Bounded by: writes between two
    /// syncs, which group commit issues back to back.
    unsynced: Vec<BatchItem>,
}

/// An engine in memory. Cheap to create; [`MemoryEngine::crash`] simulates a
/// power cut.
#[derive(Default)]
pub struct MemoryEngine {
    layers: Mutex<Layers>,
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Layers> {
        // A panic while holding this lock is a bug in this file; keep going
        // with whatever state it left rather than poisoning every caller.
        self.layers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget every write that was not synced, as a power cut would.
    pub fn crash(&self) {
        let mut l = self.lock();
        l.current = l.synced.clone();
        l.unsynced.clear();
    }
}

fn apply(map: &mut Map, item: &BatchItem) {
    let (space, key, value) = item;
    match value {
        Some(v) => map.insert((*space, key.clone()), v.clone()),
        None => map.remove(&(*space, key.clone())),
    };
}

impl Engine for MemoryEngine {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().current.get(&(space, key.to_vec())).cloned())
    }

    fn write(&self, batch: Vec<BatchItem>) -> Result<(), StoreError> {
        let mut l = self.lock();
        for item in batch {
            apply(&mut l.current, &item);
            l.unsynced.push(item);
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        let mut l = self.lock();
        let pending = std::mem::take(&mut l.unsynced);
        for item in &pending {
            apply(&mut l.synced, item);
        }
        Ok(())
    }

    fn sync_blocks(&self) -> bool {
        false
    }

    fn scan_prefix(&self, space: Space, prefix: &[u8]) -> Result<Entries, StoreError> {
        let l = self.lock();
        Ok(l.current
            .range((space, prefix.to_vec())..)
            .take_while(|((s, k), _)| *s == space && k.starts_with(prefix))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn footprint(&self) -> (u64, u64) {
        let l = self.lock();
        let objects = l
            .current
            .keys()
            .filter(|(s, _)| *s == Space::Objects)
            .count();
        (0, objects as u64)
    }

    fn count_prefix(&self, space: Space, prefix: &[u8]) -> Result<(u64, u64), StoreError> {
        let l = self.lock();
        Ok(l.current
            .range((space, prefix.to_vec())..)
            .take_while(|((s, k), _)| *s == space && k.starts_with(prefix))
            .fold((0, 0), |(n, b), (_, v)| (n + 1, b + v.len() as u64)))
    }

    fn first_key_from(&self, space: Space, from: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let l = self.lock();
        Ok(l.current
            .range((space, from.to_vec())..)
            .next()
            .filter(|((s, _), _)| *s == space)
            .map(|((_, k), _)| k.clone()))
    }

    fn scan_page(
        &self,
        space: Space,
        prefix: &[u8],
        start: Start<'_>,
        bytes_max: usize,
    ) -> Result<Entries, StoreError> {
        scan_map(&self.lock().current, space, prefix, start, bytes_max)
    }

    fn snapshot(&self) -> Result<Box<dyn EngineSnapshot>, StoreError> {
        Ok(Box::new(MemorySnapshot(self.lock().current.clone())))
    }
}

/// A copy of what reads saw at one instant.
struct MemorySnapshot(Map);

impl EngineSnapshot for MemorySnapshot {
    fn scan_page(
        &self,
        space: Space,
        prefix: &[u8],
        start: Start<'_>,
        bytes_max: usize,
    ) -> Result<Entries, StoreError> {
        scan_map(&self.0, space, prefix, start, bytes_max)
    }
}

fn scan_map(
    map: &Map,
    space: Space,
    prefix: &[u8],
    start: Start<'_>,
    bytes_max: usize,
) -> Result<Entries, StoreError> {
    use std::ops::Bound;
    let from = match start.clamped_to(prefix) {
        Start::After(a) => Bound::Excluded((space, a.to_vec())),
        Start::At(a) => Bound::Included((space, a.to_vec())),
        Start::First => Bound::Included((space, prefix.to_vec())),
    };
    let page = map
        .range((from, Bound::Unbounded))
        .take_while(|((s, k), _)| *s == space && k.starts_with(prefix))
        .map(|((_, k), v)| Ok::<_, StoreError>((k.clone(), v.clone())));
    crate::engine::take_page(page, bytes_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_only_synced_writes() {
        let e = MemoryEngine::new();
        e.write(vec![(Space::Meta, b"a".to_vec(), Some(b"1".to_vec()))])
            .unwrap();
        e.sync().unwrap();
        e.write(vec![(Space::Meta, b"b".to_vec(), Some(b"2".to_vec()))])
            .unwrap();
        assert!(e.get(Space::Meta, b"b").unwrap().is_some());
        e.crash();
        assert!(e.get(Space::Meta, b"a").unwrap().is_some());
        assert!(e.get(Space::Meta, b"b").unwrap().is_none());
    }
}
