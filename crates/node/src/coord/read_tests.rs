//! Hand-stepped reads, one decision each, and a property test over
//! random reply orders.

use super::*;
use crate::error::CallError;
use crate::quorum::{requirement, Kind};
use crate::RequestOptions;
use bytes::Bytes;
use causal::{Actor, Meta, VersionVector};
use cluster::{BucketProps, QuorumValue};
use proptest::prelude::*;

fn targets(n: usize) -> Vec<Target> {
    (1..=n as u64)
        .map(|i| Target {
            node: NodeId(i),
            zone: "z".into(),
            primary: true,
        })
        .collect()
}

fn read(n: usize, r: QuorumValue, rules: ReadRules) -> ReadCoordinator {
    let opts = RequestOptions {
        r: Some(r),
        ..RequestOptions::default()
    };
    let props = BucketProps {
        n_val: n as u8,
        ..BucketProps::default()
    };
    let req = requirement(Kind::Read, &props, &opts, &targets(n), "z").unwrap();
    ReadCoordinator::new(req, targets(n), rules)
}

const STRICT: ReadRules = ReadRules {
    notfound_ok: false,
    basic_quorum: false,
    collapse: false,
};
const RIAK: ReadRules = ReadRules {
    notfound_ok: true,
    basic_quorum: false,
    collapse: false,
};

/// An object holding `value`, written by node `by` with no context.
fn object(by: u64, value: &'static str) -> Object {
    let mut o = Object::new();
    let actor = Actor { node: by, epoch: 1 };
    o.update(
        &VersionVector::new(),
        actor,
        Bytes::from(value),
        Meta::default(),
    )
    .unwrap();
    o
}

fn down() -> ReadReply {
    Err(ReplicaFailure::Call(CallError::AddressUnknown))
}

fn answer(step: ReadStep) -> Result<Option<Object>, NodeError> {
    match step {
        ReadStep::Answer(a) => a,
        ReadStep::Wait => panic!("expected an answer"),
    }
}

#[test]
fn answers_once_r_replicas_found_it() {
    let mut c = read(3, QuorumValue::Quorum, RIAK);
    assert!(matches!(
        c.on_reply(NodeId(1), Ok(Some(object(1, "a")))),
        ReadStep::Wait
    ));
    let got = answer(c.on_reply(NodeId(2), Ok(Some(object(1, "a"))))).unwrap();
    assert_eq!(got.unwrap().siblings()[0].value, "a");
    // Late replies never answer again.
    assert!(matches!(c.on_reply(NodeId(3), Ok(None)), ReadStep::Wait));
    assert!(matches!(c.on_deadline(), ReadStep::Wait));
}

#[test]
fn concurrent_versions_come_back_as_siblings() {
    let mut c = read(3, QuorumValue::Quorum, RIAK);
    c.on_reply(NodeId(1), Ok(Some(object(1, "a"))));
    let got = answer(c.on_reply(NodeId(2), Ok(Some(object(2, "b"))))).unwrap();
    assert_eq!(got.unwrap().siblings().len(), 2);
}

#[test]
fn collapsing_buckets_answer_the_newest_only() {
    let rules = ReadRules {
        collapse: true,
        ..RIAK
    };
    let mut c = read(3, QuorumValue::Quorum, rules);
    c.on_reply(NodeId(1), Ok(Some(object(1, "a"))));
    let got = answer(c.on_reply(NodeId(2), Ok(Some(object(2, "b"))))).unwrap();
    assert_eq!(got.unwrap().siblings().len(), 1);
}

#[test]
fn with_notfound_ok_misses_count_and_answer_not_found() {
    let mut c = read(3, QuorumValue::Quorum, RIAK);
    c.on_reply(NodeId(1), Ok(None));
    assert!(answer(c.on_reply(NodeId(2), Ok(None))).unwrap().is_none());
}

#[test]
fn without_notfound_ok_a_miss_waits_for_a_value() {
    let mut c = read(3, QuorumValue::Quorum, STRICT);
    assert!(matches!(c.on_reply(NodeId(1), Ok(None)), ReadStep::Wait));
    assert!(matches!(
        c.on_reply(NodeId(2), Ok(Some(object(1, "a")))),
        ReadStep::Wait
    ));
    // Two misses of three: r=2 found values can no longer be met, but
    // only misses stood in the way, so the value found is the answer.
    let got = answer(c.on_reply(NodeId(3), Ok(None))).unwrap();
    assert_eq!(got.unwrap().siblings()[0].value, "a");
}

#[test]
fn basic_quorum_settles_on_a_majority_of_misses() {
    let rules = ReadRules {
        basic_quorum: true,
        ..STRICT
    };
    let mut c = read(3, QuorumValue::One, rules);
    assert!(matches!(c.on_reply(NodeId(1), Ok(None)), ReadStep::Wait));
    // The third replica is never waited for.
    assert!(answer(c.on_reply(NodeId(2), Ok(None))).unwrap().is_none());
}

#[test]
fn without_basic_quorum_r_one_waits_for_every_miss() {
    let mut c = read(3, QuorumValue::One, STRICT);
    assert!(matches!(c.on_reply(NodeId(1), Ok(None)), ReadStep::Wait));
    assert!(matches!(c.on_reply(NodeId(2), Ok(None)), ReadStep::Wait));
    assert!(answer(c.on_reply(NodeId(3), Ok(None))).unwrap().is_none());
}

#[test]
fn failures_that_make_the_quorum_impossible_are_a_503() {
    let mut c = read(3, QuorumValue::Quorum, RIAK);
    c.on_reply(NodeId(1), down());
    let err = answer(c.on_reply(NodeId(2), down())).unwrap_err();
    let NodeError::Quorum(q) = &err else {
        panic!("{err}")
    };
    assert_eq!((q.acked.len(), q.failures.len()), (0, 3));
    assert!(matches!(q.failures[2].1, ReplicaFailure::NotWaitedFor));
    assert!(err.to_string().contains("address unknown"), "{err}");
}

#[test]
fn a_failure_within_what_r_allows_does_not_hide_a_not_found() {
    // r=2 of 3 tolerates one failure, so a miss settles it: not found.
    let mut c = read(3, QuorumValue::Quorum, STRICT);
    assert!(matches!(c.on_reply(NodeId(1), down()), ReadStep::Wait));
    assert!(answer(c.on_reply(NodeId(2), Ok(None))).unwrap().is_none());
    // Two failures are more than it tolerates: a 503.
    let mut c = read(3, QuorumValue::Quorum, STRICT);
    c.on_reply(NodeId(1), down());
    assert!(answer(c.on_reply(NodeId(2), down())).is_err());
}

#[test]
fn the_deadline_answers_with_who_did_not() {
    let mut c = read(3, QuorumValue::Quorum, RIAK);
    c.on_reply(NodeId(1), Ok(Some(object(1, "a"))));
    let err = answer(c.on_deadline()).unwrap_err().to_string();
    assert!(err.contains("1 of 3 replicas answered"), "{err}");
    assert!(err.contains("no answer before the deadline"), "{err}");
}

#[test]
fn pr_above_the_owners_can_never_be_met() {
    let opts = RequestOptions {
        pr: Some(QuorumValue::All),
        ..RequestOptions::default()
    };
    let req = requirement(Kind::Read, &BucketProps::default(), &opts, &targets(3), "z").unwrap();
    // The key has two owners left: the first reply settles it, a 503.
    let mut c = ReadCoordinator::new(req, targets(2), STRICT);
    assert!(answer(c.on_reply(NodeId(1), Ok(Some(object(1, "a"))))).is_err());
}

#[test]
fn repair_goes_to_replicas_that_lack_part_of_the_answer() {
    let mut c = read(3, QuorumValue::Quorum, RIAK);
    let mut both = object(1, "a");
    both.merge(&object(2, "b"));
    c.on_reply(NodeId(1), Ok(Some(both.clone())));
    c.on_reply(NodeId(2), Ok(Some(object(1, "a"))));
    c.on_reply(NodeId(3), down());
    let (merged, stale) = c.repairs().unwrap();
    assert_eq!(merged, both);
    // The failed replica is left to anti-entropy.
    assert_eq!(stale, vec![NodeId(2)]);
    assert_eq!(c.largest_reply_bytes(), crate::object_bytes(&both));
}

#[derive(Clone, Debug)]
enum Outcome {
    Found(u64),
    Missing,
    Failed,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        (1u64..4).prop_map(Outcome::Found),
        Just(Outcome::Missing),
        Just(Outcome::Failed),
    ]
}

proptest! {
    /// Whatever the order replies arrive in: the read answers exactly
    /// once, a value it answers was found, a 503 means too many replicas
    /// failed for `r` to tell, and with every reply in, the answer holds
    /// every value found.
    #[test]
    fn reads_follow_the_quorum_rules_in_any_order(
        outcomes in prop::collection::vec(outcome(), 1..6),
        r in 1usize..6,
        notfound_ok: bool,
        basic_quorum: bool,
        seed: u64,
    ) {
        let n = outcomes.len();
        let r = r.min(n);
        let rules = ReadRules { notfound_ok, basic_quorum, collapse: false };
        let mut c = read(n, QuorumValue::Number(r as u32), rules);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|i| seed.rotate_left(*i as u32 * 7) & 0xffff);
        let mut answers = Vec::new();
        let mut fed = 0;
        for &i in &order {
            let reply = match outcomes[i] {
                Outcome::Found(by) => Ok(Some(object(by, "v"))),
                Outcome::Missing => Ok(None),
                Outcome::Failed => down(),
            };
            fed += 1;
            if let ReadStep::Answer(a) = c.on_reply(NodeId(i as u64 + 1), reply) {
                answers.push((fed, a));
            }
        }
        if let ReadStep::Answer(a) = c.on_deadline() {
            answers.push((fed, a));
        }
        prop_assert_eq!(answers.len(), 1);
        let (at, answer) = answers.pop().unwrap();
        let is_failed = |i: &usize| matches!(outcomes[*i], Outcome::Failed);
        // Failures among the replies the answer was given on.
        let failed_then = order[..at].iter().filter(|i| is_failed(i)).count();
        let failed = order.iter().filter(|i| is_failed(i)).count();
        let found = outcomes.iter().filter(|o| matches!(o, Outcome::Found(_))).count();
        // A 503 exactly when too many replicas had failed for r to tell.
        prop_assert_eq!(answer.is_err(), failed_then > n - r);
        match answer {
            Ok(Some(o)) => prop_assert!(found > 0 && !o.is_absent()),
            Ok(None) if at == n => prop_assert_eq!(found, 0),
            _ => {}
        }
        if failed == 0 && found > 0 {
            let (merged, _) = c.repairs().unwrap();
            let writers: std::collections::BTreeSet<u64> = outcomes
                .iter()
                .filter_map(|o| if let Outcome::Found(by) = o { Some(*by) } else { None })
                .collect();
            prop_assert_eq!(merged.siblings().len(), writers.len());
        }
    }
}
