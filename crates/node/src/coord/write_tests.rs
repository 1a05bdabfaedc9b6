//! Hand-stepped writes, one decision each, and a property test over
//! random reply orders.

use super::*;
use crate::error::CallError;
use crate::quorum::{requirement, Kind};
use crate::RequestOptions;
use cluster::{BucketProps, QuorumValue};
use proptest::prelude::*;
use std::collections::BTreeSet;

const ME: NodeId = NodeId(1);

/// Effects compare by what they print: an answer's error holds
/// transport errors, which have no equality of their own.
impl PartialEq for WriteEffect {
    fn eq(&self, other: &Self) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

/// Nodes 1..=5: 1-3 primaries in zones a, b, a; 4 (zone b) and 5
/// (zone a) fallbacks.
struct Peers {
    suspects: BTreeSet<u64>,
}

impl PeerView for Peers {
    fn is_suspect(&self, node: NodeId) -> bool {
        self.suspects.contains(&node.0)
    }
    fn zone_of(&self, node: NodeId) -> Option<String> {
        Some(if node.0.is_multiple_of(2) { "b" } else { "a" }.to_string())
    }
}

fn peers(suspects: &[u64]) -> Peers {
    Peers {
        suspects: suspects.iter().copied().collect(),
    }
}

fn targets() -> Vec<Target> {
    (1..=3)
        .map(|i| Target {
            node: NodeId(i),
            zone: if i.is_multiple_of(2) { "b" } else { "a" }.into(),
            primary: true,
        })
        .collect()
}

const SLOPPY: WriteRules = WriteRules {
    hinted_handoff: true,
    patience_ms: 300,
};

fn write(w: QuorumValue, dw: QuorumValue, pw: QuorumValue, rules: WriteRules) -> WriteCoordinator {
    let opts = RequestOptions {
        w: Some(w),
        dw: Some(dw),
        pw: Some(pw),
        ..RequestOptions::default()
    };
    let req = requirement(Kind::Write, &BucketProps::default(), &opts, &targets(), "a").unwrap();
    WriteCoordinator::new(req, targets(), &[NodeId(4), NodeId(5)], ME, rules)
}

fn quorum(rules: WriteRules) -> WriteCoordinator {
    write(
        QuorumValue::Quorum,
        QuorumValue::Number(0),
        QuorumValue::Number(0),
        rules,
    )
}

fn refused() -> ReplicaFailure {
    ReplicaFailure::Call(CallError::AddressUnknown)
}

fn answer(effects: &[WriteEffect]) -> Option<&Result<(), Box<QuorumError>>> {
    effects.iter().find_map(|e| match e {
        WriteEffect::Answer(a) => Some(a),
        _ => None,
    })
}

/// This node's own replica is stored, durably.
fn stored_here() -> WriteEvent {
    WriteEvent::LocalStored {
        slot: 0,
        result: Ok(true),
    }
}

/// Fallback `fallback` holds slot `slot`'s hint, durably.
fn held(slot: usize, fallback: u64) -> WriteEvent {
    WriteEvent::HintHeld {
        slot,
        fallback: NodeId(fallback),
        result: Ok(true),
    }
}

fn replicated(slot: usize, result: Result<bool, ReplicaFailure>) -> WriteEvent {
    WriteEvent::Replicated { slot, result }
}

#[test]
fn replicates_to_every_remote_primary_and_answers_at_w() {
    let mut c = quorum(SLOPPY);
    let p = peers(&[]);
    assert_eq!(
        c.start(&p),
        vec![
            WriteEffect::Replicate {
                slot: 1,
                to: NodeId(2)
            },
            WriteEffect::Replicate {
                slot: 2,
                to: NodeId(3)
            },
        ]
    );
    assert!(answer(&c.on_event(stored_here(), &p)).is_none());
    let fx = c.on_event(replicated(2, Ok(true)), &p);
    assert!(matches!(answer(&fx), Some(Ok(()))));
    assert!(!c.is_done(), "slot 1 still replicating after the answer");
    let fx = c.on_event(replicated(1, Ok(true)), &p);
    assert!(answer(&fx).is_none(), "answers once");
    assert!(c.is_done());
}

#[test]
fn a_suspect_primary_goes_straight_to_a_fallback_in_its_zone() {
    let mut c = quorum(SLOPPY);
    let fx = c.start(&peers(&[2]));
    // Node 2 is in zone b, so fallback 4 (zone b) stands in, not 5.
    assert_eq!(
        fx[0],
        WriteEffect::HoldHint {
            slot: 1,
            fallback: NodeId(4),
            target: NodeId(2)
        }
    );
}

#[test]
fn a_primary_slow_past_its_patience_is_suspected_and_handed_off() {
    let mut c = quorum(SLOPPY);
    let p = peers(&[]);
    c.start(&p);
    let fx = c.on_event(WriteEvent::PatienceExpired { slot: 2 }, &p);
    assert_eq!(
        fx[0],
        WriteEffect::Suspect {
            slot: 2,
            node: NodeId(3)
        }
    );
    // Node 3 is in zone a: fallback 5.
    assert_eq!(
        fx[1],
        WriteEffect::HoldHint {
            slot: 2,
            fallback: NodeId(5),
            target: NodeId(3)
        }
    );
    c.on_event(stored_here(), &p);
    let fx = c.on_event(held(2, 5), &p);
    // The fallback's ack is one of w=2, and not a primary's.
    assert!(fx.contains(&WriteEffect::Acked {
        by: Target {
            node: NodeId(5),
            zone: "a".into(),
            primary: false
        }
    }));
    assert!(matches!(answer(&fx), Some(Ok(()))));
    // The late answer of the primary changes nothing now.
    assert!(c.on_event(replicated(2, Ok(true)), &p).is_empty());
}

#[test]
fn a_fallback_refusing_passes_the_hint_to_the_next_then_to_this_node() {
    let mut c = quorum(SLOPPY);
    let p = peers(&[]);
    c.start(&p);
    let fx = c.on_event(replicated(1, Err(refused())), &p);
    assert_eq!(
        fx,
        vec![WriteEffect::HoldHint {
            slot: 1,
            fallback: NodeId(4),
            target: NodeId(2)
        }]
    );
    let no = |fallback| WriteEvent::HintHeld {
        slot: 1,
        fallback: NodeId(fallback),
        result: Err(refused()),
    };
    let fx = c.on_event(no(4), &p);
    assert_eq!(
        fx,
        vec![WriteEffect::HoldHint {
            slot: 1,
            fallback: NodeId(5),
            target: NodeId(2)
        }]
    );
    let fx = c.on_event(no(5), &p);
    assert_eq!(
        fx,
        vec![WriteEffect::KeepHint {
            slot: 1,
            target: NodeId(2)
        }]
    );
    let kept = WriteEvent::HintKept {
        slot: 1,
        result: Ok(()),
    };
    assert!(c.on_event(kept, &p).is_empty(), "w=2 still possible");
    // Slot 2 fails too, and the fallbacks are used up: a hint here.
    let fx = c.on_event(replicated(2, Err(refused())), &p);
    assert_eq!(
        fx,
        vec![WriteEffect::KeepHint {
            slot: 2,
            target: NodeId(3)
        }]
    );
    let kept = WriteEvent::HintKept {
        slot: 2,
        result: Ok(()),
    };
    let fx = c.on_event(kept, &p);
    let Some(Err(e)) = answer(&fx) else {
        panic!("{fx:?}")
    };
    let text = e.to_string();
    assert!(
        text.contains("(the coordinator keeps a hint for it)"),
        "{text}"
    );
}

#[test]
fn a_late_durable_ack_counts_once_the_hint_is_kept() {
    let mut c = write(
        QuorumValue::All,
        QuorumValue::Number(0),
        QuorumValue::Number(0),
        WriteRules {
            hinted_handoff: true,
            patience_ms: 300,
        },
    );
    // No fallbacks reachable: both are suspect.
    let p = peers(&[4, 5]);
    c.start(&p);
    c.on_event(stored_here(), &p);
    c.on_event(replicated(1, Ok(true)), &p);
    let fx = c.on_event(WriteEvent::PatienceExpired { slot: 2 }, &p);
    assert_eq!(
        fx,
        vec![
            WriteEffect::Suspect {
                slot: 2,
                node: NodeId(3)
            },
            WriteEffect::KeepHint {
                slot: 2,
                target: NodeId(3)
            }
        ]
    );
    // The primary answers while the hint is being kept: it waits.
    assert!(c.on_event(replicated(2, Ok(true)), &p).is_empty());
    let kept = WriteEvent::HintKept {
        slot: 2,
        result: Ok(()),
    };
    let fx = c.on_event(kept, &p);
    assert!(matches!(answer(&fx), Some(Ok(()))), "{fx:?}");
    assert!(c.is_done());
}

#[test]
fn a_quorum_that_becomes_impossible_answers_at_once_with_why() {
    let rules = WriteRules {
        hinted_handoff: false,
        patience_ms: 300,
    };
    let mut c = write(
        QuorumValue::All,
        QuorumValue::Number(0),
        QuorumValue::Number(0),
        rules,
    );
    let p = peers(&[]);
    c.start(&p);
    let fx = c.on_event(replicated(1, Err(refused())), &p);
    let Some(Err(e)) = answer(&fx) else {
        panic!("{fx:?}")
    };
    let text = e.to_string();
    assert!(text.contains("address unknown"), "{text}");
    assert!(text.contains("not waited for"), "{text}");
}

#[test]
fn pw_is_not_met_by_fallbacks() {
    let mut c = write(
        QuorumValue::Quorum,
        QuorumValue::Number(0),
        QuorumValue::All,
        SLOPPY,
    );
    let p = peers(&[2]);
    c.start(&p);
    c.on_event(stored_here(), &p);
    let fx = c.on_event(held(1, 4), &p);
    assert!(
        matches!(answer(&fx), Some(Err(_))),
        "pw=3 needs three primaries: {fx:?}"
    );
}

#[test]
fn the_deadline_answers_with_who_did_not() {
    let mut c = quorum(SLOPPY);
    let p = peers(&[]);
    c.start(&p);
    let fx = c.on_event(WriteEvent::Deadline, &p);
    let Some(Err(e)) = answer(&fx) else {
        panic!("{fx:?}")
    };
    assert!(e.to_string().contains("no answer before the deadline"));
    assert!(
        c.on_event(WriteEvent::Deadline, &p).is_empty(),
        "answers once"
    );
}

/// What one remote replica will do when asked.
#[derive(Clone, Copy, Debug)]
enum Fate {
    Ack(bool),
    Refuse,
    Slow(bool),
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        any::<bool>().prop_map(Fate::Ack),
        Just(Fate::Refuse),
        any::<bool>().prop_map(Fate::Slow),
    ]
}

proptest! {
    /// Drive random fates in a random order to the end: the write
    /// answers exactly once, every slot settles, an `Ok` answer had `w`
    /// acks with `dw` durable and `pw` from primaries among them, and the
    /// same acks in another order give the same verdict.
    #[test]
    fn writes_follow_the_quorum_rules_in_any_order(
        fates in prop::collection::vec(fate(), 2),
        fallbacks_ok in prop::collection::vec(any::<bool>(), 2),
        local_durable: bool,
        w in 1u32..=3, dw in 0u32..=3, pw in 0u32..=3,
        handoff: bool,
        seed: u64,
    ) {
        let rules = WriteRules { hinted_handoff: handoff, patience_ms: 300 };
        let n = QuorumValue::Number;
        let mut c = write(n(w), n(dw), n(pw), rules);
        let p = peers(&[]);
        let mut queue: VecDeque<WriteEvent> = VecDeque::new();
        let mut answers = Vec::new();
        let mut acks: Vec<(bool, bool)> = Vec::new();
        let mut rng = seed;
        let handle = |fx: Vec<WriteEffect>, queue: &mut VecDeque<WriteEvent>, answers: &mut Vec<_>, acks: &mut Vec<(bool, bool)>| {
            for e in fx {
                match e {
                    WriteEffect::Replicate { slot, .. } => match fates[slot - 1] {
                        Fate::Ack(d) => queue.push_back(replicated(slot, Ok(d))),
                        Fate::Refuse => queue.push_back(replicated(slot, Err(refused()))),
                        Fate::Slow(d) => {
                            if handoff {
                                queue.push_back(WriteEvent::PatienceExpired { slot });
                            }
                            queue.push_back(replicated(slot, Ok(d)));
                        }
                    },
                    WriteEffect::HoldHint { slot, fallback, .. } => {
                        let ok = fallbacks_ok[(fallback.0 - 4) as usize];
                        let result = if ok { Ok(true) } else { Err(refused()) };
                        queue.push_back(WriteEvent::HintHeld { slot, fallback, result });
                    }
                    WriteEffect::KeepHint { slot, .. } => {
                        queue.push_back(WriteEvent::HintKept { slot, result: Ok(()) });
                    }
                    WriteEffect::Acked { by } => acks.push((by.primary, true)),
                    WriteEffect::Answer(a) => answers.push(a.is_ok()),
                    WriteEffect::Suspect { .. } => {}
                }
            }
        };
        let fx = c.start(&p);
        handle(fx, &mut queue, &mut answers, &mut acks);
        queue.push_back(WriteEvent::LocalStored { slot: 0, result: Ok(local_durable) });
        let mut steps = 0;
        while !queue.is_empty() {
            steps += 1;
            prop_assert!(steps < 100, "the write never settles");
            // Take a random pending event, as replies arrive in any order.
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let at = (rng >> 33) as usize % queue.len();
            let ev = queue.remove(at).unwrap();
            let fx = c.on_event(ev, &p);
            handle(fx, &mut queue, &mut answers, &mut acks);
        }
        prop_assert!(c.is_done());
        prop_assert_eq!(answers.len(), 1);
        if answers[0] {
            let total = acks.len();
            let primaries = acks.iter().filter(|(p, _)| *p).count();
            prop_assert!(total >= w.max(dw).max(pw) as usize);
            prop_assert!(primaries >= pw as usize);
        }
    }
}
