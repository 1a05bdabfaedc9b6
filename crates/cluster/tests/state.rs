//! Cluster state merges like a CRDT and folds to one layout everywhere.

use proptest::prelude::*;
use ring::NodeId;
use ringstore_cluster::{BucketProps, Change, ClusterState, NodeAddrs, Timestamp};

#[derive(Clone, Debug)]
enum Op {
    Join(u64, u64),
    Leave(u64, u64),
    Props(u64, u64, u8),
    Addr(u64, u64, u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u64..6, 0u64..50).prop_map(|(n, t)| Op::Join(n, t)),
        (1u64..6, 0u64..50).prop_map(|(n, t)| Op::Leave(n, t)),
        (1u64..3, 0u64..3, 1u8..5).prop_map(|(n, t, v)| Op::Props(n, t, v)),
        (1u64..3, 0u64..3, 1u16..9).prop_map(|(n, t, p)| Op::Addr(n, t, p)),
    ]
}

fn state(ops: &[Op]) -> ClusterState {
    let mut s = ClusterState::new();
    for op in ops {
        let at = |node, t| Timestamp {
            wall_ms: t,
            logical: 0,
            node,
        };
        match *op {
            Op::Join(n, t) => s.record(
                at(n, t),
                Change::Join {
                    node: NodeId(n),
                    zone: "z".into(),
                    capacity: 1,
                },
            ),
            Op::Leave(n, t) => s.record(at(n, t), Change::Leave { node: NodeId(n) }),
            Op::Props(n, t, v) => {
                let p = BucketProps {
                    n_val: v,
                    ..BucketProps::default()
                };
                s.set_bucket_props(at(n, t), b"default", b"b", Some(p));
            }
            Op::Addr(n, t, p) => s.set_addrs(
                at(n, t),
                NodeId(n),
                NodeAddrs {
                    rpc: format!("h:{p}"),
                    ..NodeAddrs::default()
                },
            ),
        }
    }
    s
}

fn merged(a: &ClusterState, b: &ClusterState) -> ClusterState {
    let mut m = a.clone();
    m.merge(b);
    m
}

proptest! {
    #[test]
    fn merge_is_a_semilattice(a in prop::collection::vec(op(), 0..12), b in prop::collection::vec(op(), 0..12), c in prop::collection::vec(op(), 0..12)) {
        let (a, b, c) = (state(&a), state(&b), state(&c));
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        prop_assert_eq!(merged(&a, &a), a.clone());
        let m = merged(&a, &b);
        prop_assert_eq!(m.layout(6), merged(&b, &a).layout(6));
    }
}

#[test]
fn merge_reports_changes() {
    let a = state(&[Op::Join(1, 1)]);
    let mut b = ClusterState::new();
    assert!(b.merge(&a));
    assert!(!b.merge(&a));
    assert_eq!(b.layout(4).members().len(), 1);
}
