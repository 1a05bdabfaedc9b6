//! What a membership change or a failure would do, before it is done
//! (pure): the dashboard shows it before an operator confirms an action.
//!
//! A change (join, leave, a new zone or capacity) is a new layout from
//! the same deterministic assignment every node runs
//! (`ring::Layout::next`), so the preview is exactly the plan the nodes
//! will carry out: per partition, the owners among the first `n_val` it
//! gains and loses. A failure moves nothing at once (fallbacks take the
//! writes); what matters is which partitions would have fewer than a
//! quorum of their primaries up, and so refuse `pw`/`pr` quorum requests
//! and serve strict reads from fewer copies.

use ring::{Layout, Member, NodeId, PartitionId};
use serde::Serialize;

/// One partition whose owners change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Move {
    /// The partition.
    pub partition: u16,
    /// Owners (among the first `n_val`) that will pull it.
    pub gains: Vec<String>,
    /// Owners that will hand it off and drop it.
    pub loses: Vec<String>,
}

/// The change a plan is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new member.
    Join(Member),
    /// A member leaves (its partitions move to the others).
    Leave(NodeId),
    /// A member's zone or capacity changes.
    Update(Member),
}

/// The partition moves `change` would cause in `current`.
pub fn plan(current: &Layout, change: &Change, n_val: usize) -> Vec<Move> {
    let mut members: Vec<Member> = current.members().to_vec();
    match change {
        Change::Join(m) => {
            members.retain(|x| x.id != m.id);
            members.push(m.clone());
        }
        Change::Leave(id) => members.retain(|x| x.id != *id),
        Change::Update(m) => {
            for x in members.iter_mut().filter(|x| x.id == m.id) {
                *x = m.clone();
            }
        }
    }
    members.sort_by_key(|m| m.id);
    let next = current.next(&members);
    moves(current, &next, n_val)
}

/// Per partition, the owners `next` adds and drops among the first
/// `n_val`.
pub fn moves(current: &Layout, next: &Layout, n_val: usize) -> Vec<Move> {
    (0..current.partition_count() as u16)
        .filter_map(|p| {
            let was: Vec<NodeId> = current
                .owners(PartitionId(p))
                .iter()
                .take(n_val)
                .copied()
                .collect();
            let now: Vec<NodeId> = next
                .owners(PartitionId(p))
                .iter()
                .take(n_val)
                .copied()
                .collect();
            let gains: Vec<String> = now
                .iter()
                .filter(|o| !was.contains(o))
                .map(|o| o.to_string())
                .collect();
            let loses: Vec<String> = was
                .iter()
                .filter(|o| !now.contains(o))
                .map(|o| o.to_string())
                .collect();
            (!gains.is_empty() || !loses.is_empty()).then_some(Move {
                partition: p,
                gains,
                loses,
            })
        })
        .collect()
}

/// Partitions that would have fewer than a quorum (`n_val / 2 + 1`) of
/// their first `n_val` owners up if the nodes in `down` were down.
pub fn quorum_lost(layout: &Layout, down: &[NodeId], n_val: usize) -> Vec<u16> {
    let quorum = n_val / 2 + 1;
    (0..layout.partition_count() as u16)
        .filter(|p| {
            let owners = layout.owners(PartitionId(*p));
            let up = owners
                .iter()
                .take(n_val)
                .filter(|o| !down.contains(o))
                .count();
            up < quorum.min(owners.len().min(n_val).max(1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, zone: &str) -> Member {
        Member {
            id: NodeId(id),
            zone: zone.into(),
            capacity: 1,
        }
    }

    fn layout(members: &[Member]) -> Layout {
        Layout::empty(6).next(members)
    }

    #[test]
    fn a_leave_moves_exactly_the_leavers_partitions() {
        let l = layout(&[
            member(1, "a"),
            member(2, "b"),
            member(3, "c"),
            member(4, "a"),
        ]);
        let owned = l.partitions_owned(NodeId(4), 3);
        let plan = plan(&l, &Change::Leave(NodeId(4)), 3);
        let lost: usize = plan
            .iter()
            .filter(|m| m.loses.contains(&NodeId(4).to_string()))
            .count();
        assert_eq!(lost, owned);
        assert!(plan
            .iter()
            .all(|m| !m.gains.contains(&NodeId(4).to_string())));
        // The plan is what the nodes will do: the next layout's moves.
        let next = l.next(&[member(1, "a"), member(2, "b"), member(3, "c")]);
        assert_eq!(plan, moves(&l, &next, 3));
    }

    #[test]
    fn a_join_only_gives_partitions_to_the_new_node() {
        let l = layout(&[member(1, "a"), member(2, "b"), member(3, "c")]);
        let plan = plan(&l, &Change::Join(member(9, "a")), 3);
        assert!(!plan.is_empty());
        assert!(plan.iter().all(|m| m.gains == vec![NodeId(9).to_string()]));
    }

    #[test]
    fn one_node_down_of_three_keeps_quorum_two_do_not() {
        let l = layout(&[member(1, "a"), member(2, "b"), member(3, "c")]);
        assert!(quorum_lost(&l, &[NodeId(1)], 3).is_empty());
        assert_eq!(
            quorum_lost(&l, &[NodeId(1), NodeId(2)], 3).len(),
            l.partition_count()
        );
    }
}
