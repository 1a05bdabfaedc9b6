//! The reaper's decision about one tombstone, from every member's answer
//! to a probe: pure, so it is tested against its specification.

use ring::NodeId;
use std::collections::BTreeMap;

/// What one member answers about one key of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeAnswer {
    /// Digest of this member's replica in the partition, if it holds one.
    pub digest: Option<u64>,
    /// Whether this member is still replicating a write of the key.
    pub busy: bool,
    /// Whether this member holds no replica but remembers a reaped
    /// tombstone that covers this one: as good as holding it.
    pub forgotten: bool,
    /// Whether this member holds a hint for the key for any primary.
    pub hinted: bool,
}

/// What to do with one due tombstone, given every member's answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KeyPlan {
    /// Reap it: every member remembers it, holders drop it.
    Reap,
    /// These members hold something else: send them the tombstone first.
    Settle(Vec<NodeId>),
    /// Not now (a primary lacks it, or a hint for the key is held).
    Wait,
}

/// Decide about one tombstone with digest `digest`: reap only when every
/// primary holds exactly it, no member holds a hint for the key, and no
/// other member holds anything else of the key. `answers` must hold every
/// member's answer.
pub(crate) fn plan(
    digest: u64,
    primaries: &[NodeId],
    answers: &BTreeMap<NodeId, ProbeAnswer>,
) -> KeyPlan {
    let all_primaries_hold = primaries.iter().all(|p| {
        answers
            .get(p)
            .is_some_and(|a| a.digest == Some(digest) || a.forgotten)
    });
    if !all_primaries_hold || answers.values().any(|a| a.hinted || a.busy) {
        return KeyPlan::Wait;
    }
    let strays: Vec<NodeId> = answers
        .iter()
        .filter(|(_, a)| a.digest.is_some_and(|d| d != digest))
        .map(|(m, _)| *m)
        .collect();
    if !strays.is_empty() {
        return KeyPlan::Settle(strays);
    }
    KeyPlan::Reap
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn answer(kind: u8) -> ProbeAnswer {
        let (digest, forgotten) = match kind % 4 {
            0 => (None, false),
            1 => (Some(7), false),
            2 => (Some(8), false),
            _ => (None, true),
        };
        ProbeAnswer {
            digest,
            busy: kind == 4,
            hinted: kind == 5,
            forgotten,
        }
    }

    proptest! {
        /// A reap never goes ahead unless every primary holds the
        /// tombstone (or reaped one covering it), nobody holds a hint or is
        /// writing the key, and no member holds anything else of it.
        #[test]
        fn a_reap_needs_every_primary_and_no_stray(kinds in prop::collection::vec(0u8..6, 1..7), n in 1usize..4) {
            let answers: BTreeMap<NodeId, ProbeAnswer> = kinds
                .iter()
                .enumerate()
                .map(|(i, k)| (NodeId(i as u64 + 1), answer(*k)))
                .collect();
            let primaries: Vec<NodeId> = answers.keys().take(n).copied().collect();
            let decided = plan(7, &primaries, &answers);
            let held = |a: &ProbeAnswer| a.digest == Some(7) || a.forgotten;
            let all_hold = primaries.iter().all(|p| held(&answers[p]));
            let quiet = answers.values().all(|a| !a.hinted && !a.busy);
            let strays: Vec<NodeId> = answers
                .iter()
                .filter(|(_, a)| a.digest == Some(8))
                .map(|(m, _)| *m)
                .collect();
            match decided {
                KeyPlan::Reap => prop_assert!(all_hold && quiet && strays.is_empty()),
                KeyPlan::Settle(s) => prop_assert!(all_hold && quiet && s == strays),
                KeyPlan::Wait => prop_assert!(!all_hold || !quiet),
            }
        }
    }
}
