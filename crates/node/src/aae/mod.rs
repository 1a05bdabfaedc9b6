//! # Active anti-entropy
//!
//! Read repair fixes keys that are read; hinted handoff fixes writes a
//! replica missed while a coordinator noticed. Anything else (a hint lost
//! with its holder's disk, a write that reached one replica before a crash,
//! hints turned off) is found here.
//!
//! Each node keeps, per partition, a tree of 1024 segment hashes
//! (`Trees`): a key's contribution is a hash of the key and of its
//! object's causal state, and a segment is the XOR of its keys'
//! contributions (Riak's Tictac AAE). XOR makes each write an O(1) update
//! (remove the old contribution, add the new), so no rescan is needed in
//! steady state. A clean stop saves the trees and the next start loads
//! them; after a crash they are rebuilt from storage (`persist`).
//!
//! Every primary of a partition compares its tree with each other primary's
//! once per `aae_interval_ms` (`exchange`): equal segments are skipped, and
//! for differing ones the two sides list their keys' digests and sync the
//! keys that differ in both directions by causal merge (never overwrite),
//! at most `aae_keys_per_exchange_max` keys per exchange.
//!
//! ## Not guaranteed
//!
//! A key is synced only between nodes that are both primaries for it under
//! its bucket's `n_val`; a bucket with a smaller `n_val` than the default 3
//! leaves a difference the exchange sees and skips each time.

mod exchange;
mod persist;
mod tree;

pub(crate) use exchange::run;
pub(crate) use persist::TreesSource;
pub(crate) use tree::{contribution, digest, Trees};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

/// Everything anti-entropy keeps on a node: the trees (updated by every
/// local write), when each partition was last exchanged, and the
/// counters the admin API and metrics report.
#[derive(Default)]
pub(crate) struct AntiEntropy {
    /// One tree per partition this node holds data in.
    pub(crate) trees: Trees,
    /// Wall-clock ms of each partition's last completed exchange.
    /// Bounded by: partitions.
    pub(crate) last: Mutex<BTreeMap<u16, u64>>,
    /// Exchanges completed.
    pub(crate) exchanges: AtomicU64,
    /// Keys an exchange repaired.
    pub(crate) keys_repaired: AtomicU64,
    /// Whether the trees were loaded (not rebuilt) at start.
    pub(crate) loaded: AtomicBool,
    /// How long the last rebuild took (0: none yet).
    pub(crate) rebuild_ms: AtomicU64,
}
