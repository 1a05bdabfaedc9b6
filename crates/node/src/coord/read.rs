//! The read coordinator: every decision of a quorum read, without I/O.
//!
//! The driver (`get.rs`) asks the targets, feeds each answer to
//! [`ReadCoordinator::on_reply`] and the deadline to
//! [`ReadCoordinator::on_deadline`], and does what the returned
//! [`ReadStep`] says. After answering it keeps feeding late replies, then
//! asks [`ReadCoordinator::repairs`] which replicas to send the merged
//! object to (read repair).
//!
//! Decisions made here:
//! - when `r` (and `pr`, per zone) is met, or can no longer be met;
//! - `notfound_ok`: whether "not found" counts towards `r`;
//! - `basic_quorum`: a majority of misses settles a read early;
//! - whether a read that missed `r` is an authoritative "not found" (only
//!   "not found" answers stood in its way) or a 503 (replicas failed, so
//!   what is stored cannot be told);
//! - the answer's merge (by causality, or newest-only for buckets that
//!   collapse siblings) and which replicas are stale.

use crate::error::{NodeError, ReplicaFailure};
use crate::quorum::{Progress, QuorumTracker, Requirement, Target};
use causal::Object;
use ring::NodeId;

/// One replica's answer: its object (`None`: it has nothing) or why it
/// did not answer.
pub(crate) type ReadReply = Result<Option<Object>, ReplicaFailure>;

/// What the driver does next.
#[derive(Debug)]
pub(crate) enum ReadStep {
    /// Keep waiting for replies.
    Wait,
    /// Answer the client with this (once; later replies feed repair only).
    Answer(Result<Option<Object>, NodeError>),
}

/// The bucket settings and request options a read decides by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadRules {
    /// "Not found" counts towards `r`.
    pub(crate) notfound_ok: bool,
    /// A majority of misses answers "not found" without waiting for more.
    pub(crate) basic_quorum: bool,
    /// Keep only the newest sibling (last_write_wins or !allow_mult).
    pub(crate) collapse: bool,
}

/// One quorum read, from the first reply to the read repair.
#[derive(Debug)]
pub(crate) struct ReadCoordinator {
    tracker: QuorumTracker,
    rules: ReadRules,
    /// Replies that count needed (`r`, raised by `pr` and zones).
    need: usize,
    /// Replicas asked.
    asked: usize,
    replies: Vec<(NodeId, ReadReply)>,
    answered: bool,
}

impl ReadCoordinator {
    /// A read of `targets` that needs `req`.
    pub(crate) fn new(req: Requirement, targets: Vec<Target>, rules: ReadRules) -> Self {
        assert!(req.total >= 1, "a read needs at least one reply");
        let (need, asked) = (req.total, targets.len());
        ReadCoordinator {
            tracker: QuorumTracker::new(req, targets),
            rules,
            need,
            asked,
            replies: Vec::with_capacity(asked),
            answered: false,
        }
    }

    /// A replica answered (or its call failed).
    pub(crate) fn on_reply(&mut self, node: NodeId, reply: ReadReply) -> ReadStep {
        let counted = match &reply {
            Ok(Some(o)) if !o.is_absent() => Ok(true),
            Ok(_) if self.rules.notfound_ok => Ok(true),
            Ok(_) => Err(ReplicaFailure::NotFound),
            Err(e) => Err(e.clone()),
        };
        self.replies.push((node, reply));
        assert!(
            self.replies.len() <= self.asked,
            "more replies than replicas asked"
        );
        let progress = self.tracker.record(node, counted);
        if self.answered {
            return ReadStep::Wait;
        }
        if progress != Progress::Pending {
            return self.answer(progress);
        }
        // Why: with basic_quorum a majority of misses settles the read
        // early instead of waiting for every replica.
        let found = self.found();
        let misses = self.replies.len() - usize::from(found);
        if self.rules.basic_quorum && !self.rules.notfound_ok && !found && misses > self.asked / 2 {
            return self.answer(Progress::Impossible);
        }
        ReadStep::Wait
    }

    /// The deadline passed. Answers if the read has not yet.
    pub(crate) fn on_deadline(&mut self) -> ReadStep {
        if self.answered {
            return ReadStep::Wait;
        }
        self.answer(Progress::Pending)
    }

    /// No reply is pending, yet the read is not settled: only when no
    /// replica was asked (the last reply always settles a read).
    pub(crate) fn on_exhausted(&mut self) -> ReadStep {
        if self.answered {
            return ReadStep::Wait;
        }
        self.answer(Progress::Impossible)
    }

    /// The largest object among the replies, in bytes: a read's size is
    /// known only once a replica answers, and the driver's deadline grows
    /// with it.
    pub(crate) fn largest_reply_bytes(&self) -> usize {
        self.replies
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().and_then(Option::as_ref))
            .map(crate::object_bytes)
            .max()
            .unwrap_or(0)
    }

    /// After the last reply or the deadline: the merged object and the
    /// replicas that lack part of it (failed replicas are left to
    /// anti-entropy). `None` when no replica holds anything.
    pub(crate) fn repairs(&self) -> Option<(Object, Vec<NodeId>)> {
        let merged = self.merged()?;
        let stale = self
            .replies
            .iter()
            .filter(|(_, r)| match r {
                // `merged` includes every reply, so a replica lacks
                // nothing exactly when it equals it.
                Ok(Some(obj)) => *obj != merged,
                Ok(None) => true,
                Err(_) => false,
            })
            .map(|(n, _)| *n)
            .collect();
        Some((merged, stale))
    }

    fn answer(&mut self, verdict: Progress) -> ReadStep {
        self.answered = true;
        let failed = self.replies.iter().filter(|(_, r)| r.is_err()).count();
        // Why: r was missed either because replicas failed (then what is
        // stored cannot be told: 503) or only because "not found" answers
        // do not count (notfound_ok=false): then the answer is what was
        // found, or an authoritative not-found. `need > asked`: a request
        // asked for more replicas (say pr=2) than the key has owners.
        let too_many_failed = self.need > self.asked || failed > self.asked - self.need;
        let answer = match verdict {
            Progress::Met => Ok(self.merged()),
            Progress::Impossible if !too_many_failed => Ok(self.merged()),
            _ => Err(NodeError::Quorum(Box::new(
                self.tracker.error("get", verdict == Progress::Pending),
            ))),
        };
        ReadStep::Answer(answer.map(|o| {
            o.map(|mut o| {
                if self.rules.collapse {
                    o.keep_newest();
                }
                o
            })
        }))
    }

    fn found(&self) -> bool {
        self.replies
            .iter()
            .any(|(_, r)| matches!(r, Ok(Some(o)) if !o.is_absent()))
    }

    fn merged(&self) -> Option<Object> {
        let mut merged: Option<Object> = None;
        for (_, r) in &self.replies {
            if let Ok(Some(obj)) = r {
                match &mut merged {
                    Some(m) => m.merge(obj),
                    None => merged = Some(obj.clone()),
                }
            }
        }
        merged
    }
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
