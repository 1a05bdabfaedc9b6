//! The assignment algorithm behind [`crate::Layout::next`].
//!
//! It fills the owner table one rank at a time. For rank `r`:
//!
//! 1. **Quota.** Each member may hold rank `r` in `Q * capacity / total`
//!    partitions (largest-remainder rounding), so every rank, and therefore
//!    every prefix of ranks (every `n_val`), is balanced by capacity.
//! 2. **Keep.** A member keeps rank `r` wherever the previous layout gave it
//!    to them, up to its quota, unless that now repeats an owner or a zone.
//!    This is what keeps data movement small: adding the k-th equal node
//!    frees about `1/k` of each rank, and the new node takes those slots.
//! 3. **Fill.** Empty slots go to the eligible member furthest below quota,
//!    ties broken by a hash of (partition, node) so load spreads evenly.
//! 4. **Repair.** A member left above quota hands partitions to members
//!    below quota wherever that keeps owners and zones distinct.
//!
//! "Eligible" means not already an owner of the partition and, when the
//! cluster has more than `r` zones, from a zone the partition does not use
//! yet. Zone spread wins over balance: with too few nodes in a zone that
//! zone's nodes hold more than their share, because losing a zone must not
//! lose data.

use crate::{Member, NodeId, RANKS_MAX};
use std::collections::BTreeSet;
use xxhash_rust::xxh3::xxh3_64;

pub(crate) fn assign(bits: u8, prev: &[Vec<NodeId>], members: &[Member]) -> Vec<Vec<NodeId>> {
    let q = 1usize << bits;
    let holders: Vec<&Member> = members.iter().filter(|m| m.capacity > 0).collect();
    let ranks = holders.len().min(RANKS_MAX);
    let mut owners: Vec<Vec<NodeId>> = vec![Vec::with_capacity(ranks); q];
    if holders.is_empty() {
        return owners;
    }
    let quota = quotas(q, &holders);
    let zone_count = holders
        .iter()
        .map(|m| &m.zone)
        .collect::<BTreeSet<_>>()
        .len();
    for r in 0..ranks {
        let layer = Layer {
            r,
            spread_zones: zone_count > r,
            holders: &holders,
            quota: &quota,
        };
        let slots = layer.fill(prev, &owners);
        for (p, slot) in slots.into_iter().enumerate() {
            owners[p].push(holders[slot].id);
        }
    }
    owners
}

/// Largest-remainder split of `q` slots by capacity.
fn quotas(q: usize, holders: &[&Member]) -> Vec<usize> {
    let total: u64 = holders.iter().map(|m| u64::from(m.capacity)).sum();
    let exact: Vec<(usize, u64)> = holders
        .iter()
        .map(|m| {
            let num = q as u64 * u64::from(m.capacity);
            ((num / total) as usize, num % total)
        })
        .collect();
    let mut quota: Vec<usize> = exact.iter().map(|e| e.0).collect();
    let mut left = q - quota.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..holders.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(exact[i].1), holders[i].id));
    for i in order {
        if left == 0 {
            break;
        }
        quota[i] += 1;
        left -= 1;
    }
    quota
}

fn score(p: usize, id: NodeId, r: usize) -> u64 {
    let mut buf = [0u8; 24];
    buf[..8].copy_from_slice(&(p as u64).to_le_bytes());
    buf[8..16].copy_from_slice(&id.0.to_le_bytes());
    buf[16..].copy_from_slice(&(r as u64).to_le_bytes());
    xxh3_64(&buf)
}

struct Layer<'a> {
    r: usize,
    spread_zones: bool,
    holders: &'a [&'a Member],
    quota: &'a [usize],
}

impl Layer<'_> {
    fn eligible(&self, owners: &[NodeId], i: usize) -> bool {
        let m = self.holders[i];
        if owners.contains(&m.id) {
            return false;
        }
        !self.spread_zones
            || !owners
                .iter()
                .any(|o| self.holders.iter().any(|h| h.id == *o && h.zone == m.zone))
    }

    /// The member index chosen for rank `r` of every partition.
    fn fill(&self, prev: &[Vec<NodeId>], owners: &[Vec<NodeId>]) -> Vec<usize> {
        let q = owners.len();
        let mut slot: Vec<Option<usize>> = vec![None; q];
        let mut count = vec![0usize; self.holders.len()];
        // Keep.
        for (i, m) in self.holders.iter().enumerate() {
            let mut mine: Vec<usize> = (0..q)
                .filter(|&p| prev.get(p).and_then(|o| o.get(self.r)) == Some(&m.id))
                .filter(|&p| self.eligible(&owners[p], i))
                .collect();
            mine.sort_by_key(|&p| std::cmp::Reverse(score(p, m.id, self.r)));
            for p in mine.into_iter().take(self.quota[i]) {
                slot[p] = Some(i);
                count[i] += 1;
            }
        }
        // Fill.
        for p in 0..q {
            if slot[p].is_some() {
                continue;
            }
            let best = (0..self.holders.len())
                .filter(|&i| self.eligible(&owners[p], i))
                .max_by_key(|&i| {
                    let deficit = self.quota[i] as i64 - count[i] as i64;
                    (deficit, score(p, self.holders[i].id, self.r))
                });
            // Eligible always exists: fewer than `ranks <= holders` owners so
            // far, and when spreading zones there are more zones than `r`.
            let i = best.unwrap_or_else(|| unreachable!("no eligible owner for partition {p}"));
            slot[p] = Some(i);
            count[i] += 1;
        }
        let mut slot: Vec<usize> = slot.into_iter().map(|s| s.unwrap_or(0)).collect();
        self.repair(&mut slot, &mut count, owners);
        slot
    }

    /// Move partitions from members above quota to members below it.
    fn repair(&self, slot: &mut [usize], count: &mut [usize], owners: &[Vec<NodeId>]) {
        for p in 0..slot.len() {
            let a = slot[p];
            if count[a] <= self.quota[a] {
                continue;
            }
            let under = (0..self.holders.len())
                .filter(|&b| count[b] < self.quota[b] && self.eligible(&owners[p], b))
                .max_by_key(|&b| self.quota[b] - count[b]);
            if let Some(b) = under {
                slot[p] = b;
                count[a] -= 1;
                count[b] += 1;
            }
        }
    }
}
