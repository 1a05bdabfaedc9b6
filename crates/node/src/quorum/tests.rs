use super::*;
use crate::RequestOptions;
use proptest::prelude::*;

fn targets(n: usize, zones: usize) -> Vec<Target> {
    (0..n)
        .map(|i| Target {
            node: NodeId(i as u64 + 1),
            zone: format!("z{}", i % zones),
            primary: true,
        })
        .collect()
}

fn write_req(w: QuorumValue, dw: QuorumValue, n: usize) -> Requirement {
    let opts = RequestOptions {
        w: Some(w),
        dw: Some(dw),
        ..RequestOptions::default()
    };
    requirement(
        Kind::Write,
        &BucketProps::default(),
        &opts,
        &targets(n, 1),
        "z0",
    )
    .unwrap()
}

proptest! {
    #[test]
    fn verdict_does_not_depend_on_reply_order(
        outcomes in prop::collection::vec(prop::option::of(any::<bool>()), 3),
        w in 1u32..=3, dw in 0u32..=3, seed in any::<u64>()
    ) {
        let req = write_req(QuorumValue::Number(w), QuorumValue::Number(dw), 3);
        let mut order: Vec<usize> = (0..3).collect();
        order.sort_by_key(|i| (seed >> (i * 8)) & 0xff);
        let mut a = QuorumTracker::new(req.clone(), targets(3, 1));
        let mut b = QuorumTracker::new(req, targets(3, 1));
        for (i, o) in outcomes.iter().enumerate() {
            let r = o.ok_or(ReplicaFailure::NoAnswer);
            a.record(NodeId(i as u64 + 1), r);
        }
        for &i in &order {
            let r = outcomes[i].ok_or(ReplicaFailure::NoAnswer);
            b.record(NodeId(i as u64 + 1), r);
        }
        prop_assert_eq!(a.progress(), b.progress());
        // Every reply is in: the verdict is final, never Pending.
        prop_assert_ne!(a.progress(), Progress::Pending);
        let oks = outcomes.iter().filter(|o| o.is_some()).count();
        let durable = outcomes.iter().filter(|o| **o == Some(true)).count();
        let met = oks >= (w.max(dw).max(1)) as usize && durable >= dw as usize;
        prop_assert_eq!(a.progress() == Progress::Met, met);
    }

    #[test]
    fn impossible_as_soon_as_too_many_fail(w in 1u32..=3) {
        let req = write_req(QuorumValue::Number(w), QuorumValue::Number(0), 3);
        let mut t = QuorumTracker::new(req, targets(3, 1));
        let mut failures = 0;
        for i in 1..=3u64 {
            failures += 1;
            let p = t.record(NodeId(i), Err(ReplicaFailure::NoAnswer));
            // 3 - failures replies left can still make w.
            let possible = 3 - failures >= w as usize;
            prop_assert_eq!(p == Progress::Impossible, !possible);
        }
    }
}

#[test]
fn quorum_over_existing_owners_and_limits() {
    // One-node cluster, n_val 3: default quorum means 1 of 1.
    let r = write_req(QuorumValue::Quorum, QuorumValue::Quorum, 1);
    assert_eq!((r.total, r.durable), (1, 1));
    let r = write_req(QuorumValue::All, QuorumValue::Number(0), 3);
    assert_eq!(r.total, 3);
    let opts = RequestOptions {
        w: Some(QuorumValue::Number(4)),
        ..RequestOptions::default()
    };
    let err = requirement(
        Kind::Write,
        &BucketProps::default(),
        &opts,
        &targets(3, 1),
        "z0",
    )
    .unwrap_err();
    assert!(matches!(err, NodeError::BadRequest(m) if m.contains("n_val=3")));
}

#[test]
fn each_quorum_needs_every_zone() {
    let opts = RequestOptions {
        w: Some(QuorumValue::EachQuorum),
        ..RequestOptions::default()
    };
    let ts = targets(3, 3);
    let req = requirement(Kind::Write, &BucketProps::default(), &opts, &ts, "z0").unwrap();
    let mut t = QuorumTracker::new(req, ts);
    t.record(NodeId(1), Ok(true));
    assert_eq!(t.record(NodeId(2), Ok(true)), Progress::Pending);
    assert_eq!(t.record(NodeId(3), Ok(true)), Progress::Met);
}

#[test]
fn error_names_every_replica() {
    let mut t = QuorumTracker::new(
        write_req(QuorumValue::All, QuorumValue::Number(0), 3),
        targets(3, 1),
    );
    t.record(NodeId(1), Ok(true));
    t.record(NodeId(2), Err(ReplicaFailure::Suspected));
    let msg = t.error("put", true).to_string();
    assert!(msg.contains("put needed w=all (3)"), "{msg}");
    assert!(msg.contains("1 of 3 replicas answered"), "{msg}");
    assert!(
        msg.contains("suspected down") && msg.contains("no answer before the deadline"),
        "{msg}"
    );
}

#[test]
fn a_transition_write_needs_a_quorum_of_old_and_of_new_owners() {
    // Slots 0..3 are the new owners, 1..4 the old ones (3 leaves, 0 joins).
    let mut req = write_req(QuorumValue::Quorum, QuorumValue::Number(0), 3);
    req.groups = vec![
        SlotGroup {
            slots: vec![0, 1, 2],
            need: 2,
        },
        SlotGroup {
            slots: vec![1, 2, 3],
            need: 2,
        },
    ];
    let t = targets(4, 1);
    let mut tracker = QuorumTracker::new(req.clone(), t.clone());
    assert_eq!(tracker.record(t[0].node, Ok(true)), Progress::Pending);
    assert_eq!(tracker.record(t[3].node, Ok(true)), Progress::Pending);
    assert_eq!(
        tracker.record(t[1].node, Ok(true)),
        Progress::Met,
        "0,1 are two new owners and 1,3 two old ones"
    );
    let mut tracker = QuorumTracker::new(req, t.clone());
    tracker.record(t[0].node, Ok(true));
    tracker.record(t[1].node, Err(ReplicaFailure::NoAnswer));
    assert_eq!(
        tracker.record(t[2].node, Err(ReplicaFailure::NoAnswer)),
        Progress::Impossible,
        "old owners 1 and 2 failed: only 3 is left of the three"
    );
}

#[test]
fn local_quorum_writes_need_only_local_durable_acks_unless_dw_is_given() {
    let three_zones = targets(3, 3);
    let opts = RequestOptions {
        w: Some(QuorumValue::LocalQuorum),
        ..RequestOptions::default()
    };
    let props = BucketProps::default();
    let req = requirement(Kind::Write, &props, &opts, &three_zones, "z1").unwrap();
    assert_eq!((req.total, req.durable), (1, 1));
    assert_eq!(req.per_zone.get("z1"), Some(&1));
    let mut t = QuorumTracker::new(req, three_zones.clone());
    assert_eq!(
        t.record(NodeId(2), Ok(true)),
        Progress::Met,
        "z1's own durable ack"
    );
    let explicit = RequestOptions {
        dw: Some(QuorumValue::Quorum),
        ..opts
    };
    let req = requirement(Kind::Write, &props, &explicit, &three_zones, "z1").unwrap();
    assert_eq!((req.total, req.durable), (2, 2));
}

#[test]
fn a_fallback_in_the_primary_zone_is_taken_first() {
    let zones = |n: NodeId| Some(["a", "b", "c", "c"][n.0 as usize]);
    let mut pool: std::collections::VecDeque<NodeId> = [0, 1, 2, 3].map(NodeId).into();
    let suspect = |n: NodeId| n == NodeId(2);
    assert_eq!(
        take_fallback(&mut pool, "c", zones, suspect),
        Some(NodeId(3))
    );
    assert_eq!(
        take_fallback(&mut pool, "c", zones, suspect),
        Some(NodeId(0)),
        "none left in c"
    );
    assert_eq!(
        take_fallback(&mut pool, "b", zones, suspect),
        Some(NodeId(1))
    );
    assert_eq!(take_fallback(&mut pool, "b", zones, suspect), None);
}
