//! The write coordinator: every decision of a quorum write, without I/O.
//!
//! A write goes to each target (the key's primaries, and during a layout
//! transition the previous owners too); each target's slot is a small
//! state machine of its own, and a [`QuorumTracker`] counts the slots'
//! outcomes against `w`, `dw` and `pw`. The driver (`put.rs`) performs
//! the [`WriteEffect`]s it is given and feeds back what happened as
//! [`WriteEvent`]s; it keeps doing so after the answer, until
//! [`WriteCoordinator::is_done`], because replication to the remaining
//! targets goes on after the client has its answer.
//!
//! One slot, with hinted handoff on (sloppy quorum):
//!
//! ```text
//!  start ──(primary suspect)──────────────┐
//!    │ Replicate                           ▼
//!  awaiting primary ──(error)────────▶ searching: take the next fallback,
//!    │ ack        │ patience expired       │   its zone first
//!    ▼            └─ suspect it, keep ─────┤
//!  done            the call as "late"      ├─▶ holding at fallback ──ack──▶ done
//!                                          │        └─(refused)─▶ searching
//!                                          └─(none left)─▶ keeping the hint here
//!                                                   └─▶ a late primary ack counts,
//!                                                       else the slot failed
//! ```
//!
//! Why a fallback's ack counts towards `w`: the write is on that many
//! distinct nodes; it does not count towards `pw`, and a read quorum may
//! miss it until the hint is delivered. Why a patience shorter than the
//! deadline: a partitioned primary never refuses, it just never answers;
//! waiting out the deadline would leave every write meanwhile without a
//! hint. Why wait on for a primary no other node stood in for: a slow
//! primary (a disk stalled under load) is not a lost one, and its late
//! answer may still make `w`.

use crate::error::{NodeError, QuorumError, ReplicaFailure};
use crate::quorum::{take_fallback, Progress, QuorumTracker, Requirement, Target};
use ring::NodeId;
use std::collections::VecDeque;

/// What the coordinator asks about peers when it picks a fallback.
pub(crate) trait PeerView {
    /// A recent call to `node` failed, or the detector declared it down.
    fn is_suspect(&self, node: NodeId) -> bool;
    /// The zone of `node` in the current layout.
    fn zone_of(&self, node: NodeId) -> Option<String>;
}

/// How this write treats a primary that does not answer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteRules {
    /// Sloppy quorum: fallbacks and hints stand in for missing primaries.
    pub(crate) hinted_handoff: bool,
    /// How long a primary has before a fallback is asked (scaled by the
    /// object's size), ms. Reported in failures.
    pub(crate) patience_ms: u64,
}

/// What happened, fed to [`WriteCoordinator::on_event`].
#[derive(Debug)]
pub(crate) enum WriteEvent {
    /// The primary of `slot` answered the replicate call (`Ok(durable)`).
    Replicated {
        /// The slot.
        slot: usize,
        /// Its answer.
        result: Result<bool, ReplicaFailure>,
    },
    /// The primary of `slot` did not answer within the patience.
    PatienceExpired {
        /// The slot.
        slot: usize,
    },
    /// A fallback asked to hold `slot`'s write as a hint answered.
    HintHeld {
        /// The slot.
        slot: usize,
        /// The fallback.
        fallback: NodeId,
        /// Its answer (`Ok(durable)`).
        result: Result<bool, ReplicaFailure>,
    },
    /// This node kept (or failed to keep) the hint for `slot`'s primary.
    HintKept {
        /// The slot.
        slot: usize,
        /// The outcome.
        result: Result<(), NodeError>,
    },
    /// This node's own replica (`slot`) was stored (`Ok(durable)`).
    LocalStored {
        /// The slot.
        slot: usize,
        /// The outcome.
        result: Result<bool, ReplicaFailure>,
    },
    /// The request's deadline passed.
    Deadline,
}

/// What the driver does, from [`WriteCoordinator::start`] and
/// [`WriteCoordinator::on_event`], in order.
#[derive(Debug)]
pub(crate) enum WriteEffect {
    /// Send the object to `to`, the primary of `slot`; with hinted
    /// handoff, also start its patience.
    Replicate {
        /// The slot.
        slot: usize,
        /// The primary.
        to: NodeId,
    },
    /// `node` did not answer in time: suspect it, so other writes go to
    /// a fallback at once.
    Suspect {
        /// The slot whose call it was.
        slot: usize,
        /// The primary.
        node: NodeId,
    },
    /// Ask `fallback` to hold the write as a hint for `target`.
    HoldHint {
        /// The slot.
        slot: usize,
        /// The fallback.
        fallback: NodeId,
        /// The primary it is for.
        target: NodeId,
    },
    /// Keep the write here as a hint for `target`.
    KeepHint {
        /// The slot.
        slot: usize,
        /// The primary it is for.
        target: NodeId,
    },
    /// `by` acknowledged the write (for replication lag).
    Acked {
        /// Who: the primary, or the fallback that stood in.
        by: Target,
    },
    /// Answer the client (given once).
    Answer(Result<(), Box<QuorumError>>),
}

/// A call to a primary that outlived its patience.
#[derive(Debug)]
enum Late {
    /// No such call (the primary failed or was suspect from the start).
    None,
    /// Still running.
    Pending,
    /// It answered while the slot was looking for a stand-in.
    Answered(Result<bool, ReplicaFailure>),
}

#[derive(Debug)]
enum Slot {
    /// This node's own replica, stored by the driver.
    Local,
    /// The replicate call to the primary is running within its patience.
    AwaitingPrimary,
    /// A fallback was asked to hold the hint.
    HoldingAt {
        fallback: NodeId,
        failure: ReplicaFailure,
        late: Late,
    },
    /// No fallback left: this node keeps the hint.
    Keeping {
        failure: ReplicaFailure,
        late: Late,
    },
    /// The hint is kept; the late call to the primary decides.
    AwaitingLate {
        failure: ReplicaFailure,
        hint: Result<(), NodeError>,
    },
    Done,
}

/// One quorum write, from the first call to the last replica's outcome.
pub(crate) struct WriteCoordinator {
    tracker: QuorumTracker,
    targets: Vec<Target>,
    slots: Vec<Slot>,
    /// Fallbacks not yet asked, shared by every slot so no two pick the
    /// same one.
    fallbacks: VecDeque<NodeId>,
    rules: WriteRules,
    answered: bool,
}

impl WriteCoordinator {
    /// A write to `targets` (this node, `me`, among them or not) that
    /// needs `req`, with `fallbacks` to stand in for primaries.
    pub(crate) fn new(
        req: Requirement,
        targets: Vec<Target>,
        fallbacks: &[NodeId],
        me: NodeId,
        rules: WriteRules,
    ) -> Self {
        assert!(req.total >= 1, "a write needs at least one ack");
        let slots = targets
            .iter()
            .map(|t| {
                if t.node == me {
                    Slot::Local
                } else {
                    Slot::AwaitingPrimary
                }
            })
            .collect();
        WriteCoordinator {
            tracker: QuorumTracker::new(req, targets.clone()),
            targets,
            slots,
            fallbacks: fallbacks.iter().copied().collect(),
            rules,
            answered: false,
        }
    }

    /// The first effects: a replicate call (or, for a suspect primary, a
    /// stand-in) per remote target. The local slot is the driver's.
    pub(crate) fn start(&mut self, peers: &dyn PeerView) -> Vec<WriteEffect> {
        let mut effects = Vec::new();
        for slot in 0..self.slots.len() {
            if !matches!(self.slots[slot], Slot::AwaitingPrimary) {
                continue;
            }
            let primary = self.targets[slot].node;
            if self.rules.hinted_handoff && peers.is_suspect(primary) {
                self.stand_in(
                    slot,
                    ReplicaFailure::Suspected,
                    Late::None,
                    peers,
                    &mut effects,
                );
            } else {
                effects.push(WriteEffect::Replicate { slot, to: primary });
            }
        }
        effects
    }

    /// Take in what happened; returns what to do next.
    pub(crate) fn on_event(&mut self, event: WriteEvent, peers: &dyn PeerView) -> Vec<WriteEffect> {
        let mut effects = Vec::new();
        match event {
            WriteEvent::Replicated { slot, result } => {
                self.on_replicated(slot, result, peers, &mut effects);
            }
            WriteEvent::PatienceExpired { slot } => {
                if matches!(self.slots.get(slot), Some(Slot::AwaitingPrimary)) {
                    let node = self.targets[slot].node;
                    effects.push(WriteEffect::Suspect { slot, node });
                    let failure = ReplicaFailure::Impatient {
                        patience_ms: self.rules.patience_ms,
                    };
                    self.stand_in(slot, failure, Late::Pending, peers, &mut effects);
                }
            }
            WriteEvent::HintHeld {
                slot,
                fallback,
                result,
            } => self.on_hint_held(slot, fallback, result, peers, &mut effects),
            WriteEvent::HintKept { slot, result } => self.on_hint_kept(slot, result, &mut effects),
            WriteEvent::LocalStored { slot, result } => {
                if matches!(self.slots.get(slot), Some(Slot::Local)) {
                    let by = self.targets[slot].clone();
                    self.settle(slot, by, result, &mut effects);
                }
            }
            WriteEvent::Deadline => {
                if !self.answered {
                    self.answered = true;
                    let error = self.tracker.error("put", true);
                    effects.push(WriteEffect::Answer(Err(Box::new(error))));
                }
            }
        }
        effects
    }

    /// Whether every slot has its outcome: nothing more will happen.
    pub(crate) fn is_done(&self) -> bool {
        self.slots.iter().all(|s| matches!(s, Slot::Done))
    }

    fn on_replicated(
        &mut self,
        slot: usize,
        result: Result<bool, ReplicaFailure>,
        peers: &dyn PeerView,
        effects: &mut Vec<WriteEffect>,
    ) {
        let Some(state) = self.slots.get_mut(slot) else {
            return;
        };
        match state {
            Slot::AwaitingPrimary => match result {
                Err(failure) if self.rules.hinted_handoff => {
                    self.stand_in(slot, failure, Late::None, peers, effects);
                }
                result => {
                    let by = self.targets[slot].clone();
                    self.settle(slot, by, result, effects);
                }
            },
            // Why not count it at once: the slot is asking a stand-in,
            // and the answer waits until the hint is kept, as a late
            // answer always has.
            Slot::HoldingAt { late, .. } | Slot::Keeping { late, .. } => {
                if matches!(late, Late::Pending) {
                    *late = Late::Answered(result);
                }
            }
            Slot::AwaitingLate { .. } => {
                let Slot::AwaitingLate { failure, hint } = std::mem::replace(state, Slot::Done)
                else {
                    unreachable!("matched above")
                };
                let by = self.targets[slot].clone();
                let result = result.map_err(|_| hinted(failure, hint));
                self.settle(slot, by, result, effects);
            }
            Slot::Local | Slot::Done => {}
        }
    }

    fn on_hint_held(
        &mut self,
        slot: usize,
        fallback: NodeId,
        result: Result<bool, ReplicaFailure>,
        peers: &dyn PeerView,
        effects: &mut Vec<WriteEffect>,
    ) {
        let Some(Slot::HoldingAt {
            fallback: asked, ..
        }) = self.slots.get(slot)
        else {
            return;
        };
        if *asked != fallback {
            return;
        }
        let Slot::HoldingAt { failure, late, .. } =
            std::mem::replace(&mut self.slots[slot], Slot::Done)
        else {
            unreachable!("matched above")
        };
        match result {
            Ok(durable) => {
                let by = Target {
                    node: fallback,
                    zone: peers.zone_of(fallback).unwrap_or_default(),
                    primary: false,
                };
                self.settle(slot, by, Ok(durable), effects);
            }
            Err(_) => self.stand_in(slot, failure, late, peers, effects),
        }
    }

    fn on_hint_kept(
        &mut self,
        slot: usize,
        hint: Result<(), NodeError>,
        effects: &mut Vec<WriteEffect>,
    ) {
        if !matches!(self.slots.get(slot), Some(Slot::Keeping { .. })) {
            return;
        }
        let Slot::Keeping { failure, late } = std::mem::replace(&mut self.slots[slot], Slot::Done)
        else {
            unreachable!("matched above")
        };
        let by = self.targets[slot].clone();
        match late {
            Late::Pending => self.slots[slot] = Slot::AwaitingLate { failure, hint },
            Late::Answered(Ok(durable)) => self.settle(slot, by, Ok(durable), effects),
            Late::Answered(Err(_)) | Late::None => {
                self.settle(slot, by, Err(hinted(failure, hint)), effects);
            }
        }
    }

    /// The primary of `slot` failed: ask the next fallback (its zone
    /// first), or keep the hint here when none is left.
    fn stand_in(
        &mut self,
        slot: usize,
        failure: ReplicaFailure,
        late: Late,
        peers: &dyn PeerView,
        effects: &mut Vec<WriteEffect>,
    ) {
        let target = self.targets[slot].node;
        let fallback = take_fallback(
            &mut self.fallbacks,
            &self.targets[slot].zone,
            |n| peers.zone_of(n),
            |n| peers.is_suspect(n),
        );
        self.slots[slot] = match fallback {
            Some(fallback) => {
                effects.push(WriteEffect::HoldHint {
                    slot,
                    fallback,
                    target,
                });
                Slot::HoldingAt {
                    fallback,
                    failure,
                    late,
                }
            }
            None => {
                effects.push(WriteEffect::KeepHint { slot, target });
                Slot::Keeping { failure, late }
            }
        };
    }

    /// `slot`'s outcome is known: count it, and answer once the quorum
    /// is met or cannot be.
    fn settle(
        &mut self,
        slot: usize,
        by: Target,
        result: Result<bool, ReplicaFailure>,
        effects: &mut Vec<WriteEffect>,
    ) {
        self.slots[slot] = Slot::Done;
        if result.is_ok() {
            effects.push(WriteEffect::Acked { by: by.clone() });
        }
        let progress = self.tracker.record_at(slot, by, result);
        if self.answered || progress == Progress::Pending {
            return;
        }
        self.answered = true;
        effects.push(WriteEffect::Answer(match progress {
            Progress::Met => Ok(()),
            _ => Err(Box::new(self.tracker.error("put", false))),
        }));
    }
}

/// A slot's failure once its hint was kept (or not).
fn hinted(failure: ReplicaFailure, hint: Result<(), NodeError>) -> ReplicaFailure {
    match hint {
        Ok(()) => ReplicaFailure::Hinted(Box::new(failure)),
        Err(error) => ReplicaFailure::HintFailed {
            failure: Box::new(failure),
            error: Box::new(error),
        },
    }
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
