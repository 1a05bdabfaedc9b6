//! # Quorum bookkeeping
//!
//! Pure: which replies a request needs, and whether the replies so far meet
//! it, cannot meet it any more, or must wait. The async fan-out in `put.rs`
//! and `get.rs` only feeds [`QuorumTracker::record`] and stops when it says
//! so, which keeps the arithmetic here, where property tests reach it.

use crate::error::{Needed, NodeError, QuorumError, ReplicaFailure};
use cluster::{BucketProps, QuorumValue};
use ring::NodeId;
use std::collections::BTreeMap;

/// One replica a request was sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The node.
    pub node: NodeId,
    /// Its zone.
    pub zone: String,
    /// Whether it is a primary owner (not a fallback).
    pub primary: bool,
}

/// What a request needs before it can answer the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// Replies that count (acks for writes, answers for reads).
    pub total: usize,
    /// Of them, fsynced.
    pub durable: usize,
    /// Of them, from primaries.
    pub primary: usize,
    /// Per zone, replies needed (local_quorum, each_quorum).
    pub per_zone: BTreeMap<String, usize>,
    /// Primaries that exist for the key (`n_val`, capped by members).
    pub n: usize,
    /// For messages: the requirement as the client asked it.
    pub described: String,
    /// Sets of target slots that must each reach their own count too: a
    /// write during a layout transition needs a quorum of the old owners
    /// and one of the new.
    pub groups: Vec<SlotGroup>,
}

/// Target slots that must give `need` successful replies among them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotGroup {
    /// Indexes into the tracker's targets.
    pub slots: Vec<usize>,
    /// Replies needed from them.
    pub need: usize,
}

/// The state of a quorum request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// More replies may still meet the requirement.
    Pending,
    /// Met: answer the client.
    Met,
    /// Cannot be met even if every pending reply succeeds.
    Impossible,
}

/// Counts replies against a [`Requirement`].
#[derive(Debug)]
pub struct QuorumTracker {
    req: Requirement,
    targets: Vec<Target>,
    /// Per target: None while pending, Some(Ok(durable)) or Some(Err(why)).
    replies: Vec<Option<Result<bool, ReplicaFailure>>>,
}

impl QuorumTracker {
    /// Track `req` over replies from `targets`.
    ///
    /// # Panics
    ///
    /// If the requirement contradicts itself: more durable or primary
    /// replies than replies in all, or a group naming a slot that does
    /// not exist. `requirement` never builds one; such a tracker would
    /// count wrong.
    pub fn new(req: Requirement, targets: Vec<Target>) -> Self {
        assert!(
            req.durable <= req.total && req.primary <= req.total,
            "a requirement of {} replies with {} durable and {} from primaries",
            req.total,
            req.durable,
            req.primary
        );
        assert!(
            req.groups
                .iter()
                .flat_map(|g| &g.slots)
                .all(|s| *s < targets.len()),
            "a slot group names a slot beyond the {} targets",
            targets.len()
        );
        let replies = vec![None; targets.len()];
        QuorumTracker {
            req,
            targets,
            replies,
        }
    }

    /// Record a success (`durable` if fsynced) or failure from `node`. A
    /// second reply from the same node is ignored.
    pub fn record(&mut self, node: NodeId, reply: Result<bool, ReplicaFailure>) -> Progress {
        if let Some(i) = self.targets.iter().position(|t| t.node == node) {
            if self.replies[i].is_none() {
                self.replies[i] = Some(reply);
            }
        }
        self.progress()
    }

    /// Record the reply for slot `slot`, which `target` answered in place of
    /// the node first asked (a fallback standing in for a primary).
    pub fn record_at(
        &mut self,
        slot: usize,
        target: Target,
        reply: Result<bool, ReplicaFailure>,
    ) -> Progress {
        if slot < self.targets.len() && self.replies[slot].is_none() {
            self.targets[slot] = target;
            self.replies[slot] = Some(reply);
        }
        self.progress()
    }

    /// Whether the requirement is met, impossible, or pending.
    pub fn progress(&self) -> Progress {
        if self.met(false) {
            Progress::Met
        } else if self.met(true) {
            Progress::Pending
        } else {
            Progress::Impossible
        }
    }

    /// Whether the requirement holds counting the replies so far, and, with
    /// `optimistic`, every pending reply as a durable success.
    fn met(&self, optimistic: bool) -> bool {
        let mut total = 0;
        let mut durable = 0;
        let mut primary = 0;
        let mut zones: BTreeMap<&str, usize> = BTreeMap::new();
        let mut groups = vec![0usize; self.req.groups.len()];
        for (i, (t, r)) in self.targets.iter().zip(&self.replies).enumerate() {
            let (ok, dur) = match r {
                Some(Ok(d)) => (true, *d),
                None if optimistic => (true, true),
                _ => (false, false),
            };
            if ok {
                for (g, count) in self.req.groups.iter().zip(groups.iter_mut()) {
                    *count += usize::from(g.slots.contains(&i));
                }
                total += 1;
                durable += usize::from(dur);
                primary += usize::from(t.primary);
                *zones.entry(&t.zone).or_default() += 1;
            }
        }
        total >= self.req.total
            && durable >= self.req.durable
            && primary >= self.req.primary
            && self
                .req
                .per_zone
                .iter()
                .all(|(z, need)| zones.get(z.as_str()).copied().unwrap_or(0) >= *need)
            && self
                .req
                .groups
                .iter()
                .zip(&groups)
                .all(|(g, count)| *count >= g.need)
    }

    /// The error to return when the requirement was not met; `timed_out`
    /// says whether the deadline passed or the quorum became impossible
    /// first (replies still pending then are not failures).
    pub fn error(&self, op: &'static str, timed_out: bool) -> QuorumError {
        let mut acked = Vec::new();
        let mut failures = Vec::new();
        for (t, r) in self.targets.iter().zip(&self.replies) {
            match r {
                Some(Ok(_)) => acked.push(t.node),
                Some(Err(why)) => failures.push((t.node, why.clone())),
                None if timed_out => failures.push((t.node, ReplicaFailure::NoAnswer)),
                None => failures.push((t.node, ReplicaFailure::NotWaitedFor)),
            }
        }
        QuorumError {
            op,
            needed: Needed::Replies {
                total: self.req.total,
                durable: self.req.durable,
                primary: self.req.primary,
                n: self.req.n,
                spelled: self.req.described.clone(),
            },
            acked,
            asked: self.targets.len(),
            failures,
        }
    }
}

/// Which quorum a request resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A read: `r` and `pr`.
    Read,
    /// A write: `w`, `dw` and `pw`.
    Write,
}

/// Resolve one quorum value to a count over `n` primaries (`n_val` capped
/// by the members that exist).
fn count(
    name: &str,
    v: QuorumValue,
    fallback: QuorumValue,
    n_val: usize,
    n: usize,
) -> Result<usize, NodeError> {
    let v = if v == QuorumValue::Default {
        fallback
    } else {
        v
    };
    Ok(match v {
        QuorumValue::One => 1,
        // Why over n, not n_val: a cluster smaller than n_val (a one-node dev
        // cluster) must still serve default requests; it reports itself as
        // under-replicated instead.
        QuorumValue::Quorum | QuorumValue::Default => n / 2 + 1,
        QuorumValue::All => n,
        QuorumValue::LocalQuorum | QuorumValue::EachQuorum => 0,
        QuorumValue::Number(k) => {
            let k = k as usize;
            if k > n_val {
                return Err(NodeError::BadRequest(format!(
                    "{name}={k} is larger than the bucket's n_val={n_val}; use at most {n_val} or one/quorum/all"
                )));
            }
            k
        }
    })
}

/// The requirement of a read or write, from the bucket's properties, the
/// request's overrides, and the primaries (with zones) that exist. The
/// coordinator's zone is `home_zone`.
///
/// # Errors
///
/// [`NodeError::BadRequest`] for a value above `n_val`.
pub fn requirement(
    kind: Kind,
    props: &BucketProps,
    opts: &crate::RequestOptions,
    primaries: &[Target],
    home_zone: &str,
) -> Result<Requirement, NodeError> {
    let n_val = usize::from(props.n_val);
    let n = primaries.len();
    let (main_name, main, main_default, extra) = match kind {
        Kind::Read => ("r", opts.rw.or(opts.r), props.r, None),
        Kind::Write => (
            "w",
            opts.rw.or(opts.w),
            props.w,
            Some(opts.dw.unwrap_or(props.dw)),
        ),
    };
    let main = main.unwrap_or(main_default);
    let (prim_name, prim) = match kind {
        Kind::Read => ("pr", opts.pr.unwrap_or(props.pr)),
        Kind::Write => ("pw", opts.pw.unwrap_or(props.pw)),
    };
    let total = count(main_name, main, props_main(kind, props), n_val, n)?;
    let durable = match extra {
        Some(dw) => count("dw", dw, props.dw, n_val, n)?,
        None => 0,
    };
    let primary = count(prim_name, prim, QuorumValue::Number(0), n_val, n)?;
    let mut per_zone = BTreeMap::new();
    let resolved = if main == QuorumValue::Default {
        props_main(kind, props)
    } else {
        main
    };
    let mut zone_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in primaries {
        *zone_counts.entry(&t.zone).or_default() += 1;
    }
    match resolved {
        QuorumValue::LocalQuorum => {
            let k = zone_counts.get(home_zone).copied().unwrap_or(0);
            // No replica in this zone: need one anyway, so the request fails
            // loudly instead of succeeding with no local copy.
            per_zone.insert(home_zone.to_string(), (k / 2 + 1).max(1));
        }
        QuorumValue::EachQuorum => {
            for (z, k) in &zone_counts {
                per_zone.insert((*z).to_string(), k / 2 + 1);
            }
        }
        _ => {}
    }
    // Why: `local_quorum` asks for an answer in local time, and the
    // bucket's `dw` (quorum by default) would send every write to another
    // data center for its second durable ack. Unless the request sets `dw`
    // itself, the local replies that make `w` must be durable, and that is
    // all.
    let durable =
        if kind == Kind::Write && opts.dw.is_none() && resolved == QuorumValue::LocalQuorum {
            per_zone.values().sum()
        } else {
            durable
        };
    let total = total
        .max(durable)
        .max(primary)
        .max(per_zone.values().sum())
        .max(1);
    let described = match kind {
        Kind::Read => format!("{main_name}={main} ({total}) pr={prim} of n={n}"),
        Kind::Write => format!("{main_name}={main} ({total}) dw={durable} pw={primary} of n={n}"),
    };
    Ok(Requirement {
        total,
        durable,
        primary,
        per_zone,
        n,
        described,
        groups: Vec::new(),
    })
}

/// Take the fallback that stands in for a primary in `zone`: the first
/// live one in that zone if there is one, else the first live one. Why
/// the zone first: a partition whose replicas span zones should keep
/// spanning them while a node is down (a dead node's neighbour in its own
/// data center, not a second copy in another). Suspected fallbacks are
/// skipped and dropped from the pool, as they were before.
pub fn take_fallback<Z: AsRef<str>>(
    pool: &mut std::collections::VecDeque<NodeId>,
    zone: &str,
    zone_of: impl Fn(NodeId) -> Option<Z>,
    suspect: impl Fn(NodeId) -> bool,
) -> Option<NodeId> {
    pool.retain(|n| !suspect(*n));
    let at = pool
        .iter()
        .position(|n| zone_of(*n).is_some_and(|z| z.as_ref() == zone))
        .unwrap_or(0);
    pool.remove(at)
}

fn props_main(kind: Kind, props: &BucketProps) -> QuorumValue {
    match kind {
        Kind::Read => props.r,
        Kind::Write => props.w,
    }
}

#[cfg(test)]
mod tests;
