//! # Placement: partitions, layouts and preference lists
//!
//! This crate decides *where* data lives. It is pure: no clock, no
//! randomness, no I/O, so every node that folds the same membership history
//! computes byte-for-byte the same [`Layout`], and the property tests in
//! `tests/` can explore thousands of memberships quickly.
//!
//! ## Organization
//!
//! - [`partition`]: the key space cut into `2^bits` partitions by the top
//!   bits of `xxh3_64(type, bucket, key)`.
//! - [`layout`]: per partition, an ordered list of owners (ranks), computed
//!   from the previous layout and the current members so that owners are
//!   distinct, spread over zones, balanced by capacity, and moved as little
//!   as possible.
//! - [`PreferenceList`]: the first `n_val` owners of a partition (primaries)
//!   followed by every other member in a deterministic order (fallbacks).

mod assign;
pub mod layout;
pub mod partition;

pub use layout::{Layout, Member, PreferenceList, RANKS_MAX};
pub use partition::{partition_of, PartitionId, PARTITION_BITS_DEFAULT, PARTITION_BITS_MAX};

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's identity: 64 random bits drawn once when its data directory is
/// created, shown as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{:016x}", self.0)
    }
}

impl std::str::FromStr for NodeId {
    type Err = RingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.trim().trim_start_matches('n');
        if hex.is_empty() || hex.len() > 16 {
            return Err(RingError::BadNodeId(s.to_string()));
        }
        u64::from_str_radix(hex, 16)
            .map(NodeId)
            .map_err(|_| RingError::BadNodeId(s.to_string()))
    }
}

/// What can go wrong when asking the ring for placement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The layout has no members yet, so no partition has an owner.
    #[error("the cluster has no members yet; start a node or join one to a cluster")]
    NoMembers,
    /// A node id that is not 16 hex digits.
    #[error("{0:?} is not a node id (expected up to 16 hex digits, as shown by `ringstore cluster status`)")]
    BadNodeId(String),
    /// A layout that broke one of its invariants (a bug, or a corrupt decode).
    #[error("layout invariant broken: {0}")]
    Invariant(String),
}
