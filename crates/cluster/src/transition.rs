//! # Layout transitions
//!
//! A membership change makes a new layout at once, but the new owners of a
//! partition do not hold its data yet. Serving from them straight away
//! would answer "not found" for data that exists, and dropping the old
//! owners' copies would lose it. So two layouts are active at a time:
//!
//! - **current**: the layout of the whole history (version `k`);
//! - **stable**: the newest layout whose every data-holding member has
//!   said it holds all it owns there (version `s ≤ k`).
//!
//! While `s < k`, writes go to the owners of both (a quorum in each), so
//! the stable owners keep holding every acknowledged write, and reads go to
//! owners that are *ready*: stable owners, and current owners that finished
//! pulling. New owners pull from stable owners; when the last one reports,
//! `s` becomes `k` everywhere (the reports spread by gossip), and owners
//! that lost a partition drop it.
//!
//! A node reports with [`ClusterState::record_synced`]: "I hold everything
//! I own in layout version `v`, whose fingerprint is `f`". The fingerprint
//! matters because versions are positions in a history that a late event
//! (a concurrent change made elsewhere) can still reorder; a report about
//! another layout with the same number counts only for earlier versions.

use crate::ClusterState;
use ring::{Layout, NodeId, PartitionId};
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

/// The stable and current layouts, with what readiness needs.
#[derive(Clone, Debug)]
pub struct Layouts {
    /// Version of the newest fully synced layout.
    pub stable_version: u64,
    /// The newest fully synced layout.
    pub stable: Arc<Layout>,
    /// Version of the layout of the whole history.
    pub current_version: u64,
    /// The layout of the whole history.
    pub current: Arc<Layout>,
    /// Nodes that reported holding everything they own in `current`.
    synced_current: Vec<NodeId>,
}

/// A layout's identity, for sync reports.
pub fn fingerprint(layout: &Layout) -> u64 {
    xxh3_64(&postcard::to_stdvec(layout).unwrap_or_default())
}

impl ClusterState {
    /// Record that `node` holds all it owns in layout `version` (with
    /// `fingerprint`). Reports only move forward.
    pub fn record_synced(&mut self, node: NodeId, version: u64, fingerprint: u64) {
        let entry = self.synced.entry(node).or_insert((version, fingerprint));
        if (version, fingerprint) > *entry {
            *entry = (version, fingerprint);
        }
    }

    /// The last sync report of `node`.
    pub fn synced(&self, node: NodeId) -> Option<(u64, u64)> {
        self.synced.get(&node).copied()
    }

    /// Whether `node`'s report covers layout `version` (fingerprint `f`).
    fn has_synced(&self, node: NodeId, version: u64, f: u64) -> bool {
        match self.synced.get(&node) {
            Some((v, fp)) => *v > version || (*v == version && *fp == f),
            None => false,
        }
    }

    /// The stable and current layouts for `bits` partitions.
    pub fn layouts(&self, bits: u8) -> Layouts {
        let versions = self.layout_versions(bits);
        let k = versions.len() - 1;
        let fully_synced = |v: usize| {
            let f = fingerprint(&versions[v]);
            versions[v]
                .members()
                .iter()
                .filter(|m| m.capacity > 0)
                .all(|m| self.has_synced(m.id, v as u64, f))
        };
        // Version 0 (no members) holds nothing and is trivially synced.
        let s = (1..=k).rev().find(|v| fully_synced(*v)).unwrap_or(0);
        let current = Arc::new(versions[k].clone());
        let f = fingerprint(&current);
        let synced_current = current
            .members()
            .iter()
            .filter(|m| self.has_synced(m.id, k as u64, f))
            .map(|m| m.id)
            .collect();
        Layouts {
            stable_version: s as u64,
            stable: Arc::new(versions[s].clone()),
            current_version: k as u64,
            current,
            synced_current,
        }
    }
}

impl Layouts {
    /// Layouts with nothing in transition (tests, single layouts).
    pub fn settled(layout: Layout, version: u64) -> Layouts {
        let layout = Arc::new(layout);
        Layouts {
            stable_version: version,
            stable: layout.clone(),
            current_version: version,
            current: layout,
            synced_current: Vec::new(),
        }
    }

    /// Whether new owners are still pulling data.
    pub fn in_transition(&self) -> bool {
        self.stable_version != self.current_version
    }

    /// Whether `node` holds `p`'s data for a bucket with `n_val`: a stable
    /// owner, or a current owner that finished pulling.
    pub fn is_ready(&self, node: NodeId, p: PartitionId, n_val: usize) -> bool {
        let owns = |l: &Layout| l.owners(p).iter().take(n_val).any(|o| *o == node);
        owns(&self.stable) || (owns(&self.current) && self.has_synced_current(node))
    }

    /// Whether `node` reported holding all it owns in the current layout.
    pub fn has_synced_current(&self, node: NodeId) -> bool {
        !self.in_transition() || self.synced_current.contains(&node)
    }

    /// The replicas to read `p` from, for a bucket with `n_val`: ready
    /// current owners first, then stable owners, at most `n_val`.
    pub fn read_owners(&self, p: PartitionId, n_val: usize) -> Vec<NodeId> {
        let current = self.current.owners(p).iter().take(n_val);
        let mut out: Vec<NodeId> = current
            .clone()
            .filter(|o| self.is_ready(**o, p, n_val))
            .copied()
            .collect();
        for o in self.stable.owners(p).iter().take(n_val) {
            if out.len() < n_val && !out.contains(o) {
                out.push(*o);
            }
        }
        // A cluster that has never synced anything reads where it writes.
        if out.is_empty() {
            out.extend(current);
        }
        out
    }

    /// Stable owners of `p` that a write must also reach while the layout
    /// is in transition (those not among the current owners).
    pub fn extra_write_owners(&self, p: PartitionId, n_val: usize) -> Vec<NodeId> {
        if !self.in_transition() {
            return Vec::new();
        }
        let current = &self.current.owners(p)[..n_val.min(self.current.owners(p).len())];
        self.stable
            .owners(p)
            .iter()
            .take(n_val)
            .filter(|o| !current.contains(o))
            .copied()
            .collect()
    }

    /// Partitions `node` must pull before it is ready: those where it is
    /// among the first `n_val_max` current owners but not among the first
    /// `n_val_max` stable owners, with the stable owners to pull from.
    pub fn to_pull(&self, node: NodeId, n_val_max: usize) -> Vec<(PartitionId, Vec<NodeId>)> {
        if self.has_synced_current(node) {
            return Vec::new();
        }
        (0..self.current.partition_count())
            .map(|p| PartitionId(p as u16))
            .filter_map(|p| {
                let rank = |l: &Layout| l.owners(p).iter().position(|o| *o == node);
                let now = rank(&self.current).filter(|r| *r < n_val_max)?;
                let before = rank(&self.stable).unwrap_or(usize::MAX);
                (now < before).then(|| {
                    let sources: Vec<NodeId> = self
                        .stable
                        .owners(p)
                        .iter()
                        .take(n_val_max)
                        .filter(|o| **o != node)
                        .copied()
                        .collect();
                    (p, sources)
                })
            })
            .filter(|(_, sources)| !sources.is_empty())
            .collect()
    }
}
