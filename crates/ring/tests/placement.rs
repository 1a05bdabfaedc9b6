//! Property tests for placement: distinct owners, zone spread, balance by
//! capacity, and small movement when members change.

use proptest::prelude::*;
use ringstore_ring::{partition_of, Layout, Member, NodeId, PartitionId, RANKS_MAX};
use std::collections::{BTreeMap, BTreeSet};

fn equal_members(n: usize, zones: usize) -> Vec<Member> {
    (0..n)
        .map(|i| Member {
            id: NodeId(0x1000 + i as u64 * 7919),
            zone: format!("z{}", i % zones.max(1)),
            capacity: 1,
        })
        .collect()
}

fn load(layout: &Layout, n_val: usize) -> BTreeMap<NodeId, usize> {
    let mut load = BTreeMap::new();
    for p in 0..layout.partition_count() {
        for o in layout.owners(PartitionId(p as u16)).iter().take(n_val) {
            *load.entry(*o).or_insert(0) += 1;
        }
    }
    load
}

fn moved(a: &Layout, b: &Layout, n_val: usize) -> usize {
    (0..a.partition_count())
        .map(|p| {
            let p = PartitionId(p as u16);
            let before: BTreeSet<_> = a.owners(p).iter().take(n_val).collect();
            b.owners(p)
                .iter()
                .take(n_val)
                .filter(|o| !before.contains(o))
                .count()
        })
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn owners_are_distinct_members(n in 1usize..12, zones in 1usize..5, bits in 4u8..9) {
        let layout = Layout::empty(bits).next(&equal_members(n, zones));
        prop_assert_eq!(layout.check(), Ok(()));
        for p in 0..layout.partition_count() {
            let owners = layout.owners(PartitionId(p as u16));
            prop_assert_eq!(owners.len(), n.min(RANKS_MAX));
        }
    }

    #[test]
    fn load_within_ten_percent_of_share(n in 3usize..=16, n_val in 1usize..=3) {
        let layout = Layout::empty(8).next(&equal_members(n, 1));
        let share = 256.0 * n_val as f64 / n as f64;
        for (node, l) in load(&layout, n_val) {
            let ratio = l as f64 / share;
            prop_assert!((0.9..=1.1).contains(&ratio), "{node:?} holds {l}, share {share}");
        }
    }

    #[test]
    fn load_follows_capacity(caps in prop::collection::vec(1u32..4, 3..8)) {
        let members: Vec<Member> = caps.iter().enumerate().map(|(i, c)| Member {
            id: NodeId(i as u64 + 1), zone: "z".into(), capacity: *c,
        }).collect();
        let layout = Layout::empty(8).next(&members);
        let total: u32 = caps.iter().sum();
        let l = load(&layout, 1);
        for m in &members {
            let share = 256.0 * f64::from(m.capacity) / f64::from(total);
            let got = *l.get(&m.id).unwrap_or(&0) as f64;
            prop_assert!((got - share).abs() <= share * 0.1 + 1.0, "{:?} holds {got}, share {share}", m.id);
        }
    }

    #[test]
    fn distinct_zones_when_enough_zones(per_zone in 1usize..4, zones in 3usize..5) {
        let layout = Layout::empty(8).next(&equal_members(per_zone * zones, zones));
        for p in 0..layout.partition_count() {
            let zs: BTreeSet<_> = layout.owners(PartitionId(p as u16)).iter().take(3)
                .map(|o| layout.member(*o).map(|m| m.zone.clone())).collect();
            prop_assert_eq!(zs.len(), 3.min(per_zone * zones));
        }
    }

    #[test]
    fn adding_kth_node_moves_little(k in 2usize..12) {
        let before = Layout::empty(8).next(&equal_members(k - 1, 1));
        let after = before.next(&equal_members(k, 1));
        let n_val = 3usize.min(k - 1);
        let replicas = 256 * 3usize.min(k);
        let m = moved(&before, &after, n_val.max(1));
        // The new node must receive 1/k of the replicas; allow 30% churn on top.
        prop_assert!(m as f64 <= 1.3 * replicas as f64 / k as f64 + 1.0, "moved {m} of {replicas} for k={k}");
    }

    #[test]
    fn removing_a_node_moves_only_its_replicas(n in 4usize..12, gone in 0usize..4) {
        let members = equal_members(n, 1);
        let before = Layout::empty(8).next(&members);
        let mut fewer = members.clone();
        let removed = fewer.remove(gone % n).id;
        let after = before.next(&fewer);
        let held = before.partitions_owned(removed, 3);
        prop_assert!(moved(&before, &after, 3) <= held + held / 10 + 2);
    }

    #[test]
    fn same_history_same_layout(n in 1usize..10) {
        let a = Layout::empty(8).next(&equal_members(n, 2));
        let mut shuffled = equal_members(n, 2);
        shuffled.reverse();
        let b = Layout::empty(8).next(&shuffled);
        prop_assert_eq!(a, b);
    }
}

#[test]
fn preference_list_has_primaries_then_fallbacks() {
    let layout = Layout::empty(8).next(&equal_members(5, 1));
    let p = partition_of(8, b"default", b"b", b"k");
    let pl = layout.preference_list(p, 3).unwrap();
    assert_eq!(pl.primaries.len(), 3);
    assert_eq!(pl.fallbacks.len(), 2);
    let all: BTreeSet<_> = pl.primaries.iter().chain(&pl.fallbacks).collect();
    assert_eq!(all.len(), 5);
}

#[test]
fn small_cluster_has_fewer_primaries() {
    let layout = Layout::empty(8).next(&equal_members(1, 1));
    let pl = layout.preference_list(PartitionId(3), 3).unwrap();
    assert_eq!(pl.primaries.len(), 1);
    assert!(Layout::empty(8).preference_list(PartitionId(0), 3).is_err());
}
