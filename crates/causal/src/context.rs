//! Version vectors and their client-facing encoding (`X-Riak-Vclock`).

use crate::{Actor, Dot};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A causal context: for each actor, the highest counter seen. Contexts are
/// downward closed: seeing `(a, n)` implies having seen `(a, 1..n)`, because
/// an actor makes its dots in order and applies each locally before the next.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<Actor, u64>);

/// A causal context or update that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CausalError {
    /// Not base64, not our format, a version we do not know, or outside
    /// the bounds below.
    #[error("bad causal context (X-Riak-Vclock): {0}; send back the value returned by a fetch, unchanged")]
    BadContext(String),
    /// The coordinator's next dot for this key would overflow `u64`.
    /// Unreachable (see [`COUNTER_MAX`]); refused rather than wrapped,
    /// which would reuse a dot and silently drop a value.
    #[error("the key's write counter for this coordinator is exhausted; write the key through another node")]
    CounterExhausted,
    /// An object breaks an invariant every object this crate makes keeps
    /// (see [`crate::Object::check`]): corrupt storage or a hostile peer.
    #[error("malformed object: {0}")]
    Malformed(&'static str),
}

const CONTEXT_VERSION: u8 = 1;
/// Contexts larger than this are refused before decoding.
const CONTEXT_BYTES_MAX: usize = 64 * 1024;
/// Highest counter a client context may carry; the decoder refuses more.
/// No honest counter comes near it (it counts writes of one key through
/// one node epoch), and [`Object::update`](crate::Object::update) lets a
/// context lead the object by at most [`CONTEXT_LEAD_MAX`] per write, so
/// forged contexts would need 2^43 writes of one key to push a counter
/// here, let alone to `u64::MAX`.
pub const COUNTER_MAX: u64 = 1 << 63;
/// How far a client context's counter for an actor may lead what the
/// coordinator's replica has seen of that actor; the rest of the claim is
/// ignored (see [`Object::update`](crate::Object::update) for why that is
/// safe).
pub const CONTEXT_LEAD_MAX: u64 = 1 << 20;
/// Most actors (node, epoch) one context may name. Honest contexts hold
/// one entry per primary and epoch that wrote the key; this leaves room
/// for thousands of restarts while keeping a forged context small.
pub const CONTEXT_ACTORS_MAX: usize = 4096;

impl VersionVector {
    /// The empty context: a blind write.
    pub fn new() -> Self {
        Self::default()
    }

    /// Highest counter seen from `actor` (0 if none).
    pub fn get(&self, actor: &Actor) -> u64 {
        self.0.get(actor).copied().unwrap_or(0)
    }

    /// Whether this context has seen `dot`.
    pub fn contains(&self, dot: &Dot) -> bool {
        self.get(&dot.actor) >= dot.counter
    }

    /// Record `dot` as seen.
    pub fn add(&mut self, dot: &Dot) {
        let c = self.0.entry(dot.actor).or_insert(0);
        *c = (*c).max(dot.counter);
    }

    /// Pointwise maximum.
    pub fn join(&mut self, other: &VersionVector) {
        for (a, c) in &other.0 {
            let mine = self.0.entry(*a).or_insert(0);
            *mine = (*mine).max(*c);
        }
    }

    /// Whether every dot `other` has seen, this one has seen too.
    pub fn descends(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(a, c)| self.get(a) >= *c)
    }

    /// Why this context cannot come from us: a counter above
    /// [`COUNTER_MAX`] or more than [`CONTEXT_ACTORS_MAX`] actors.
    pub fn check_bounds(&self) -> Result<(), CausalError> {
        if self.0.len() > CONTEXT_ACTORS_MAX {
            return Err(CausalError::BadContext(format!(
                "{} actors, more than the {CONTEXT_ACTORS_MAX} allowed",
                self.0.len()
            )));
        }
        if let Some((a, c)) = self.0.iter().find(|(_, c)| **c > COUNTER_MAX) {
            return Err(CausalError::BadContext(format!(
                "counter {c} of node {:x} epoch {:x} is above the largest a node makes ({COUNTER_MAX})",
                a.node, a.epoch
            )));
        }
        Ok(())
    }

    /// This context with every counter lowered to at most `lead` above
    /// what `seen` has of the same actor.
    pub(crate) fn clamped_to(&self, seen: &VersionVector, lead: u64) -> VersionVector {
        VersionVector(
            self.0
                .iter()
                .map(|(a, c)| (*a, (*c).min(seen.get(a).saturating_add(lead))))
                .collect(),
        )
    }

    /// Number of actors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no dot was seen.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Encode a context for clients: base64 of a version byte and postcard.
pub fn encode_context(vv: &VersionVector) -> String {
    let mut bytes = vec![CONTEXT_VERSION];
    // Serialising a BTreeMap of plain integers cannot fail.
    bytes.extend(postcard::to_stdvec(vv).unwrap_or_default());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decode a context a client sent back.
///
/// # Errors
///
/// [`CausalError::BadContext`] when the text is not a context we made.
pub fn decode_context(text: &str) -> Result<VersionVector, CausalError> {
    let text = text.trim();
    if text.len() > CONTEXT_BYTES_MAX * 2 {
        return Err(CausalError::BadContext(format!(
            "{} bytes is too long",
            text.len()
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| CausalError::BadContext(format!("not base64 ({e})")))?;
    match bytes.split_first() {
        Some((&CONTEXT_VERSION, rest)) => {
            let (vv, tail): (VersionVector, &[u8]) = postcard::take_from_bytes(rest)
                .map_err(|e| CausalError::BadContext(format!("undecodable ({e})")))?;
            if !tail.is_empty() {
                return Err(CausalError::BadContext("trailing bytes".into()));
            }
            vv.check_bounds()?;
            Ok(vv)
        }
        Some((v, _)) => Err(CausalError::BadContext(format!("unknown version {v}"))),
        None => Err(CausalError::BadContext("empty".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_garbage() {
        let mut vv = VersionVector::new();
        vv.add(&Dot {
            actor: Actor { node: 7, epoch: 2 },
            counter: 9,
        });
        assert_eq!(decode_context(&encode_context(&vv)), Ok(vv));
        assert!(decode_context("!!!").is_err());
        assert!(decode_context("").is_err());
        assert!(decode_context("AgAA").is_err());
        assert!(decode_context("Af////////////8=").is_err());
    }

    #[test]
    fn counters_above_the_bound_are_refused() {
        let actor = Actor { node: 7, epoch: 2 };
        for (counter, ok) in [
            (COUNTER_MAX, true),
            (COUNTER_MAX + 1, false),
            (u64::MAX, false),
        ] {
            let mut vv = VersionVector::new();
            vv.add(&Dot { actor, counter });
            let decoded = decode_context(&encode_context(&vv));
            assert_eq!(decoded.is_ok(), ok, "counter {counter}: {decoded:?}");
        }
    }

    #[test]
    fn too_many_actors_are_refused() {
        let mut vv = VersionVector::new();
        for node in 0..=CONTEXT_ACTORS_MAX as u64 {
            vv.add(&Dot {
                actor: Actor { node, epoch: 0 },
                counter: 1,
            });
        }
        assert!(decode_context(&encode_context(&vv)).is_err());
    }
}
