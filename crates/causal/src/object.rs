//! Objects: siblings with dots, and the update and merge rules.

use crate::{CausalError, VersionVector, CONTEXT_LEAD_MAX};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Who made a dot: a node during one epoch (one run of its process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The node's id.
    pub node: u64,
    /// Grows at every start of the node, persisted before it serves.
    pub epoch: u32,
}

/// The identity of one write: the `counter`-th write coordinated by `actor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// Who coordinated the write.
    pub actor: Actor,
    /// 1-based sequence number within the actor.
    pub counter: u64,
}

impl Dot {
    /// The sibling's version tag as clients see it (`ETag`, `?vtag=`).
    pub fn vtag(&self) -> String {
        format!(
            "{:x}.{:x}.{:x}",
            self.actor.node, self.actor.epoch, self.counter
        )
    }
}

/// What a client stored besides the value bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// `Content-Type` as the client sent it.
    pub content_type: String,
    /// `X-Riak-Meta-*` pairs, names lower-cased, in the order sent.
    pub user_meta: Vec<(String, String)>,
    /// `X-Riak-Index-*` pairs, stored and returned.
    pub indexes: Vec<(String, String)>,
    /// Milliseconds since the Unix epoch, from the coordinator's hybrid
    /// logical clock; orders last-write-wins decisions.
    pub last_modified_ms: u64,
    /// A tombstone: the write was a delete.
    pub deleted: bool,
}

/// One concurrent version of a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling {
    /// The write that made it.
    pub dot: Dot,
    /// The value bytes.
    pub value: Bytes,
    /// Content type, user metadata, timestamp, deleted flag.
    pub meta: Meta,
}

/// Everything one replica knows about one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    context: VersionVector,
    /// Sorted by dot, no two with the same dot.
    siblings: Vec<Sibling>,
}

impl Object {
    /// An object that has seen nothing (a key never written).
    pub fn new() -> Self {
        Self::default()
    }

    /// Every write this object has seen; clients get it as their context.
    pub fn context(&self) -> &VersionVector {
        &self.context
    }

    /// All siblings, tombstones included, ordered by dot.
    pub fn siblings(&self) -> &[Sibling] {
        &self.siblings
    }

    /// Siblings that are not tombstones.
    pub fn live_siblings(&self) -> impl Iterator<Item = &Sibling> {
        self.siblings.iter().filter(|s| !s.meta.deleted)
    }

    /// Overwrite every sibling's bytes with `value`, keeping dots and
    /// metadata: what bit rot does to a stored replica. For fault
    /// injection only; a real write goes through [`Object::update`].
    pub fn overwrite_values(&mut self, value: &Bytes) {
        for s in &mut self.siblings {
            s.value = value.clone();
        }
    }

    /// The invariants every object made by [`Object::update`] and
    /// [`Object::merge`] keeps: siblings strictly ordered by dot (so no
    /// two share one), and every sibling's dot in the context (a write
    /// is part of what its holder has seen). Cheap: one pass.
    ///
    /// # Errors
    ///
    /// [`CausalError::Malformed`] naming the broken invariant.
    pub fn check(&self) -> Result<(), CausalError> {
        if self.siblings.windows(2).any(|w| w[0].dot >= w[1].dot) {
            return Err(CausalError::Malformed("siblings out of dot order"));
        }
        if self.siblings.iter().any(|s| !self.context.contains(&s.dot)) {
            return Err(CausalError::Malformed("a sibling outside the context"));
        }
        Ok(())
    }

    /// Whether a read should answer "not found": nothing live.
    pub fn is_absent(&self) -> bool {
        self.live_siblings().next().is_none()
    }

    /// If this object is a tombstone (it holds versions and every one is a
    /// delete), the wall-clock ms of its newest delete: what the reaper's
    /// grace period counts from. `None` for a live or an empty object.
    pub fn tombstone_ms(&self) -> Option<u64> {
        if self.siblings.is_empty() || !self.is_absent() {
            return None;
        }
        self.siblings.iter().map(|s| s.meta.last_modified_ms).max()
    }

    /// This object without the siblings `ctx` covers (versions a delete
    /// with that context replaced); the context is kept.
    pub fn without_covered(&self, ctx: &VersionVector) -> Object {
        Object {
            context: self.context.clone(),
            siblings: self
                .siblings
                .iter()
                .filter(|s| !ctx.contains(&s.dot))
                .cloned()
                .collect(),
        }
    }

    /// Apply a client write coordinated by `actor`: drop the siblings that
    /// `ctx` covers (what the client saw), add the new value with a fresh dot,
    /// and return that dot.
    ///
    /// `ctx` is client input. Each of its counters is first lowered to at
    /// most [`CONTEXT_LEAD_MAX`] above what this object has seen of the
    /// same actor. Why: a forged context could otherwise push the key's
    /// counters to `u64::MAX` in one write (the next dot overflows, and
    /// every context fetched after it names counters no decoder takes), and
    /// through replication the poisoned context reaches every replica.
    /// Lowering a claim is always safe: the write drops fewer siblings and
    /// records less as seen, so at worst a sibling the client did see
    /// survives as a concurrent one; nothing is lost, and the new dot still
    /// lies above everything this replica has seen from `actor`, which is
    /// every dot `actor` made for this key (the coordinator applies each of
    /// its writes locally, under the key's lock, before the next). An
    /// honest context leads the coordinator's replica only by the writes
    /// that replica missed, far fewer than 2^20 of one key.
    ///
    /// # Errors
    ///
    /// [`CausalError::CounterExhausted`] if the next dot would overflow
    /// (unreachable, see above). The object is unchanged on error.
    pub fn update(
        &mut self,
        ctx: &VersionVector,
        actor: Actor,
        value: Bytes,
        meta: Meta,
    ) -> Result<Dot, CausalError> {
        self.update_above(ctx, actor, 0, value, meta)
    }

    /// As [`Object::update`], with the new dot's counter above `floor`
    /// too.
    ///
    /// Why a floor: a node that drops its replica of a key (a reaped
    /// tombstone) forgets the counters its actor used for that key, and a
    /// replica that missed the drop may still hold them in its context.
    /// Counters above the highest the node dropped cannot collide with
    /// one it used. Skipping counters is harmless: every dot of `actor`
    /// for this key is made here, in order, so none lies in the gap.
    ///
    /// # Errors
    ///
    /// As [`Object::update`].
    pub fn update_above(
        &mut self,
        ctx: &VersionVector,
        actor: Actor,
        floor: u64,
        value: Bytes,
        meta: Meta,
    ) -> Result<Dot, CausalError> {
        let ctx = &ctx.clamped_to(&self.context, CONTEXT_LEAD_MAX);
        let counter = self.context.get(&actor).max(ctx.get(&actor)).max(floor);
        let dot = Dot {
            actor,
            counter: counter
                .checked_add(1)
                .ok_or(CausalError::CounterExhausted)?,
        };
        self.siblings.retain(|s| !ctx.contains(&s.dot));
        self.context.join(ctx);
        self.context.add(&dot);
        let at = self.siblings.partition_point(|s| s.dot < dot);
        self.siblings.insert(at, Sibling { dot, value, meta });
        Ok(dot)
    }

    /// Merge another replica's version of the same key into this one.
    pub fn merge(&mut self, other: &Object) {
        // Why: a sibling on one side that the other side has seen (its dot is
        // in the other's context) but no longer holds was replaced by a
        // later write there; otherwise it is concurrent and must survive.
        let mut merged = Vec::with_capacity(self.siblings.len().max(other.siblings.len()));
        let (mut a, mut b) = (
            self.siblings.iter().peekable(),
            other.siblings.iter().peekable(),
        );
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.dot == y.dot => {
                    merged.push((*x).clone());
                    a.next();
                    b.next();
                }
                (Some(x), Some(y)) if x.dot < y.dot => {
                    if !other.context.contains(&x.dot) {
                        merged.push((*x).clone());
                    }
                    a.next();
                }
                (Some(_), Some(y)) => {
                    if !self.context.contains(&y.dot) {
                        merged.push((*y).clone());
                    }
                    b.next();
                }
                (Some(x), None) => {
                    if !other.context.contains(&x.dot) {
                        merged.push((*x).clone());
                    }
                    a.next();
                }
                (None, Some(y)) => {
                    if !self.context.contains(&y.dot) {
                        merged.push((*y).clone());
                    }
                    b.next();
                }
                (None, None) => break,
            }
        }
        self.siblings = merged;
        self.context.join(&other.context);
    }

    /// Keep only the newest sibling by timestamp (ties broken by dot), for
    /// buckets with `last_write_wins` or without `allow_mult`. This can drop
    /// concurrent writes: that is what those settings ask for.
    pub fn keep_newest(&mut self) {
        if let Some(newest) = self
            .siblings
            .iter()
            .max_by_key(|s| (s.meta.last_modified_ms, s.dot))
            .cloned()
        {
            self.siblings = vec![newest];
        }
    }
}
