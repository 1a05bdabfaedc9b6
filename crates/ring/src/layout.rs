//! Layouts: the owners of every partition, in preference order.
//!
//! A [`Layout`] stores, for every partition, up to [`RANKS_MAX`] distinct
//! owners. Rank 0 is the first primary. A bucket with `n_val = n` uses the
//! first `n` ranks as its primaries; every other member, in an order derived
//! from a hash of the partition, is a fallback for sloppy quorum.
//!
//! Layouts are never built from scratch on a live cluster: [`Layout::next`]
//! starts from the previous layout so that a membership change moves only
//! the replicas it has to (see `assign.rs` for the algorithm).

use crate::{assign, NodeId, PartitionId, RingError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use xxhash_rust::xxh3::xxh3_64;

/// The most owners a layout records per partition, and so the largest
/// `n_val` a bucket may use.
pub const RANKS_MAX: usize = 5;

/// A cluster member as placement sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node.
    pub id: NodeId,
    /// Data center or rack; replicas of a partition go to distinct zones
    /// whenever there are enough zones.
    pub zone: String,
    /// Relative weight: a node with capacity 2 owns twice the partitions of
    /// a node with capacity 1. Zero means "holds no data".
    pub capacity: u32,
}

/// Owners of every partition, computed deterministically from membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    bits: u8,
    members: Vec<Member>,
    owners: Vec<Vec<NodeId>>,
}

/// Where a key's replicas live: primaries first, then fallbacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreferenceList {
    /// The first `n_val` owners (fewer when the cluster is smaller).
    pub primaries: Vec<NodeId>,
    /// Every other member, in the order sloppy quorum should try them.
    pub fallbacks: Vec<NodeId>,
}

impl Layout {
    /// A layout with no members: every lookup fails with
    /// [`RingError::NoMembers`] until [`Layout::next`] adds some.
    pub fn empty(bits: u8) -> Self {
        Layout {
            bits,
            members: Vec::new(),
            owners: vec![Vec::new(); 1usize << bits],
        }
    }

    /// The layout after a membership change: `members` is the complete new
    /// member list (order does not matter). Members with capacity 0 own
    /// nothing.
    pub fn next(&self, members: &[Member]) -> Layout {
        let mut members: Vec<Member> = members.to_vec();
        members.sort_by_key(|m| m.id);
        members.dedup_by_key(|m| m.id);
        let owners = assign::assign(self.bits, &self.owners, &members);
        let layout = Layout {
            bits: self.bits,
            members,
            owners,
        };
        debug_assert_eq!(layout.check(), Ok(()));
        layout
    }

    /// This layout with `new` in every place of `old` (where `new` was not
    /// an owner already), as the start of a replace: the next layout then
    /// moves `old`'s partitions to `new` and little else.
    pub fn renamed(&self, old: NodeId, new: NodeId) -> Layout {
        let owners = self
            .owners
            .iter()
            .map(|o| {
                if o.contains(&new) {
                    o.iter().copied().filter(|x| *x != old).collect()
                } else {
                    o.iter().map(|x| if *x == old { new } else { *x }).collect()
                }
            })
            .collect();
        Layout {
            bits: self.bits,
            members: self.members.clone(),
            owners,
        }
    }

    /// Partition bits this layout was built for.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> usize {
        self.owners.len()
    }

    /// Members sorted by id.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member record of `id`, if it is a member.
    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// All owners of `p` in preference order (up to [`RANKS_MAX`]).
    pub fn owners(&self, p: PartitionId) -> &[NodeId] {
        self.owners
            .get(usize::from(p.0))
            .map_or(&[], |v| v.as_slice())
    }

    /// How many partitions list `id` among their first `n` owners.
    pub fn partitions_owned(&self, id: NodeId, n: usize) -> usize {
        self.owners
            .iter()
            .filter(|o| o.iter().take(n).any(|x| *x == id))
            .count()
    }

    /// Primaries and fallbacks of partition `p` for a bucket with `n_val`.
    ///
    /// # Errors
    ///
    /// [`RingError::NoMembers`] when the layout has no owners.
    pub fn preference_list(
        &self,
        p: PartitionId,
        n_val: usize,
    ) -> Result<PreferenceList, RingError> {
        let owners = self.owners(p);
        if owners.is_empty() {
            return Err(RingError::NoMembers);
        }
        let n = n_val.min(owners.len());
        let primaries = owners[..n].to_vec();
        // Why a hash order for fallbacks: spreads the extra load of a dead
        // node's partitions over all survivors instead of its ring neighbour.
        let mut rest: Vec<NodeId> = owners[n..].to_vec();
        let mut others: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| m.capacity > 0 && !owners.contains(&m.id))
            .collect();
        others.sort_by_key(|m| {
            (
                xxh3_64(&[p.0.to_le_bytes(), [0, 0]].concat()) ^ m.id.0,
                m.id,
            )
        });
        rest.extend(others.into_iter().map(|m| m.id));
        Ok(PreferenceList {
            primaries,
            fallbacks: rest,
        })
    }

    /// Verify the invariants every layout must keep: each partition has
    /// `min(RANKS_MAX, data-holding members)` distinct owners, all members.
    ///
    /// # Errors
    ///
    /// [`RingError::Invariant`] naming the first broken rule.
    pub fn check(&self) -> Result<(), RingError> {
        let holders: BTreeSet<NodeId> = self
            .members
            .iter()
            .filter(|m| m.capacity > 0)
            .map(|m| m.id)
            .collect();
        let want = holders.len().min(RANKS_MAX);
        if self.owners.len() != 1usize << self.bits {
            return Err(RingError::Invariant(format!(
                "{} partitions for {} bits",
                self.owners.len(),
                self.bits
            )));
        }
        for (p, owners) in self.owners.iter().enumerate() {
            let distinct: BTreeSet<_> = owners.iter().collect();
            if owners.len() != want || distinct.len() != want {
                return Err(RingError::Invariant(format!(
                    "partition {p} has owners {owners:?}, wanted {want} distinct"
                )));
            }
            if let Some(stranger) = owners.iter().find(|o| !holders.contains(o)) {
                return Err(RingError::Invariant(format!(
                    "partition {p} is owned by {stranger:?}, not a data-holding member"
                )));
            }
        }
        Ok(())
    }
}
