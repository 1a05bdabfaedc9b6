//! Layout transitions: new owners are not read from until they report,
//! writes reach old and new owners meanwhile, and the stable layout moves
//! only when every data-holding member has reported.

use ring::{NodeId, PartitionId};
use ringstore_cluster::{fingerprint, Change, ClusterState, Timestamp};

const BITS: u8 = 4;

fn join(s: &mut ClusterState, node: u64, t: u64) {
    let at = Timestamp {
        wall_ms: t,
        logical: 0,
        node,
    };
    s.record(
        at,
        Change::Join {
            node: NodeId(node),
            zone: format!("z{node}"),
            capacity: 1,
        },
    );
}

fn report(s: &mut ClusterState, node: u64) {
    let l = s.layouts(BITS);
    s.record_synced(NodeId(node), l.current_version, fingerprint(&l.current));
}

#[test]
fn a_joining_node_is_read_only_after_it_reports() {
    let mut s = ClusterState::new();
    join(&mut s, 1, 1);
    let l = s.layouts(BITS);
    assert!(l.in_transition(), "nobody reported yet");
    assert!(
        l.to_pull(NodeId(1), 3).is_empty(),
        "the first node pulls nothing"
    );
    report(&mut s, 1);
    assert!(!s.layouts(BITS).in_transition());

    join(&mut s, 2, 2);
    let l = s.layouts(BITS);
    assert!(l.in_transition());
    let pulls = l.to_pull(NodeId(2), 3);
    assert_eq!(
        pulls.len(),
        1 << BITS,
        "with n_val 3 node 2 owns every partition"
    );
    assert!(pulls.iter().all(|(_, from)| from == &[NodeId(1)]));
    let p = PartitionId(0);
    assert_eq!(
        l.read_owners(p, 3),
        [NodeId(1)],
        "only the old owner is read"
    );
    assert!(!l.is_ready(NodeId(2), p, 3));
    // Node 1 owns everything in both layouts: nothing to pull, and its
    // report alone does not finish the transition.
    assert!(l.to_pull(NodeId(1), 3).is_empty());
    report(&mut s, 1);
    assert!(s.layouts(BITS).in_transition());
    report(&mut s, 2);
    let l = s.layouts(BITS);
    assert!(!l.in_transition());
    assert_eq!(l.read_owners(p, 3).len(), 2);
}

#[test]
fn writes_in_transition_reach_owners_that_are_leaving() {
    let mut s = ClusterState::new();
    for n in 1..=4 {
        join(&mut s, n, n);
    }
    for n in 1..=4 {
        report(&mut s, n);
    }
    assert!(!s.layouts(BITS).in_transition());
    s.record(
        Timestamp {
            wall_ms: 10,
            logical: 0,
            node: 1,
        },
        Change::Leave { node: NodeId(4) },
    );
    let l = s.layouts(BITS);
    assert!(l.in_transition());
    let mut extra = 0;
    for p in 0..(1u16 << BITS) {
        let p = PartitionId(p);
        let stable_has_4 = l.stable.owners(p)[..3].contains(&NodeId(4));
        let e = l.extra_write_owners(p, 3);
        assert_eq!(e.contains(&NodeId(4)), stable_has_4);
        extra += e.len();
        // The leaving node is still read while it holds data the new
        // owner has not pulled yet.
        assert_eq!(l.read_owners(p, 3).contains(&NodeId(4)), stable_has_4);
        assert_eq!(l.read_owners(p, 3).len(), 3);
    }
    assert!(extra > 0);
    for n in 1..=3 {
        report(&mut s, n);
    }
    let l = s.layouts(BITS);
    assert!(!l.in_transition(), "the leaver need not report");
    assert!(l.current.member(NodeId(4)).is_none());
}

#[test]
fn a_report_about_another_history_does_not_count() {
    let mut s = ClusterState::new();
    join(&mut s, 1, 1);
    report(&mut s, 1);
    join(&mut s, 2, 5);
    report(&mut s, 1);
    report(&mut s, 2);
    assert!(!s.layouts(BITS).in_transition());
    // A concurrent join, stamped earlier, arrives late: version 2 is now
    // another layout, and the reports about the old version 2 are stale.
    join(&mut s, 3, 3);
    let l = s.layouts(BITS);
    assert!(l.in_transition());
    assert!(l.stable_version < l.current_version);
}
