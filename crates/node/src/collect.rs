//! Collection by reference: dropping objects (S3 blocks) that nothing
//! references any more, with work that follows the references that went
//! away rather than the objects that exist.
//!
//! A collectable object carries the term `$collect: T` and every version
//! that references it carries `$ref: T` ([`ref_term`] names a key as a
//! term). Each node's store indexes the `$ref` terms of its replicas and
//! logs a check when a replica loses its last `$ref: T` or when a `$collect`
//! object is written (`store::refs`). This module works through the log:
//!
//! 1. **Check** (due when logged): ask every member whether it holds any
//!    replica referencing `T`. Referenced: forget the entry (the reference
//!    that goes next logs again). Unreferenced: log a collection due one
//!    grace (`s3_block_grace_ms`) later.
//! 2. **Collect** (due a grace after the check): ask again; still
//!    unreferenced: drop every owner's replica of `T`, each under its key
//!    lock and only if it was not written in the grace
//!    (`Node::drop_replicas`).
//!
//! Why this is safe, path by path:
//!
//! - **Replicas that lag**: the check asks every member, and every
//!   replica logs its own removal. Whichever replica drops the last
//!   reference checks after its own removal, when every other removal has
//!   happened, so the last check sees the truth; an earlier one saw a
//!   reference and stood down.
//! - **Hints and down nodes**: a hint is not in the index until delivered,
//!   and a down member cannot answer. A pass only runs while every member
//!   is up and no member holds a hint; otherwise the log waits.
//! - **Layout changes**: replicas are moving; passes wait.
//! - **A copy** (`CopyObject`) references blocks without rewriting them,
//!   from a source that may be deleted meanwhile: the two looks a grace
//!   apart cover a copy that takes less than the grace between reading its
//!   source and storing its record.
//! - **An upload in progress** has written blocks but not yet the record
//!   that references them: a block written within the grace is never
//!   dropped, which is why the grace must exceed the longest upload.
//! - **A re-upload of a block being collected** rewrites it: the drop's
//!   timestamp check keeps it, and the write logs a new check.
//!
//! The work per pass is bounded (`s3_block_collect_per_pass_max` entries,
//! [`COLLECT_BATCH_MAX`] terms per question) and is nil while the log holds
//! nothing due.

use crate::proto::{Request, Response};
use crate::{BKey, Node, NodeError};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use store::{Candidate, CandidateStage};

/// Terms one question to the members carries at most.
pub(crate) const COLLECT_BATCH_MAX: usize = 256;
/// Bytes of the collection log read per page.
const LOG_PAGE_BYTES: usize = 64 * 1024;

/// The term naming `key` as a collectable: its type, bucket and key,
/// percent-encoded and joined by `/`.
pub fn ref_term(key: &BKey) -> String {
    [&key.bucket_type, &key.bucket, &key.key]
        .iter()
        .map(|part| escape(part))
        .collect::<Vec<_>>()
        .join("/")
}

/// The key a term names; `None` for a term [`ref_term`] did not make.
pub fn parse_ref_term(term: &str) -> Option<BKey> {
    let mut parts = term.split('/');
    let (t, b, k) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(BKey::typed(unescape(t)?, unescape(b)?, unescape(k)?))
}

fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unescape(s: &str) -> Option<Bytes> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    Some(Bytes::from(out))
}

/// What one log entry leads to, given whether anything references it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Referenced: forget the entry.
    Forget,
    /// Unreferenced at the check: look again a grace later.
    Recheck(Candidate),
    /// Unreferenced a grace after the check: drop every replica of the
    /// key written before `written_max_ms`, then forget the entry.
    Drop {
        /// The collectable.
        key: BKey,
        /// Replicas written after this are kept.
        written_max_ms: u64,
    },
}

/// The decision for `entry`, pure: `referenced` is every member's answer.
pub(crate) fn step(entry: &Candidate, referenced: bool, now_ms: u64, grace_ms: u64) -> Step {
    if referenced {
        return Step::Forget;
    }
    match entry.stage {
        CandidateStage::Check => Step::Recheck(Candidate {
            due_ms: now_ms.saturating_add(grace_ms),
            term: entry.term.clone(),
            stage: CandidateStage::Collect,
        }),
        CandidateStage::Collect => match parse_ref_term(&entry.term) {
            Some(key) => Step::Drop {
                key,
                written_max_ms: now_ms.saturating_sub(grace_ms),
            },
            // Not a term we name: nothing to drop.
            None => Step::Forget,
        },
    }
}

/// Work through the collection log every `s3_block_collect_interval_ms`.
pub(crate) async fn run(node: Node) {
    let every = node.config().s3_block_collect_interval_ms;
    if every == 0 {
        return;
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = node.collect_pass().await {
            tracing::warn!(error = %e, "a collection pass failed; the next pass retries");
        }
    }
}

impl Node {
    /// Handle the due log entries, at most `s3_block_collect_per_pass_max`;
    /// stop at the first batch the members cannot answer.
    async fn collect_pass(&self) -> Result<(), NodeError> {
        let grace = self.config().s3_block_grace_ms;
        let mut handled = 0;
        while handled < self.config().s3_block_collect_per_pass_max {
            if self.layouts().in_transition() || !self.every_member_up() {
                return Ok(());
            }
            let now = self.env().clock.wall_ms();
            let due = self.store().candidates_due(now, LOG_PAGE_BYTES)?;
            if due.is_empty() {
                return Ok(());
            }
            for batch in due.chunks(COLLECT_BATCH_MAX) {
                let terms: Vec<String> = batch.iter().map(|c| c.term.clone()).collect();
                let Some(referenced) = self.referenced_anywhere(&terms).await else {
                    return Ok(());
                };
                let mut next = Vec::new();
                for (entry, referenced) in batch.iter().zip(referenced) {
                    match step(entry, referenced, now, grace) {
                        Step::Forget => {}
                        Step::Recheck(c) => next.push(c),
                        Step::Drop {
                            key,
                            written_max_ms,
                        } => {
                            // `drop_replicas` drops nothing while replicas
                            // move: keep the batch's entries for later.
                            if self.layouts().in_transition() {
                                return Ok(());
                            }
                            let dropped = self.drop_replicas(&key, written_max_ms).await?;
                            if dropped > 0 {
                                tracing::debug!(?key, dropped, "collected an unreferenced object");
                            }
                            self.stats()
                                .objects_collected
                                .fetch_add(dropped as u64, Ordering::Relaxed);
                        }
                    }
                }
                self.store().replace_candidates(batch, &next).await?;
                handled += batch.len();
                self.stats()
                    .collect_handled
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Whether every member is up by the failure detector.
    fn every_member_up(&self) -> bool {
        self.member_ids()
            .iter()
            .all(|m| *m == self.id() || self.is_up(*m))
    }

    /// For each term, whether any member holds a replica referencing it;
    /// `None` if a member did not answer or holds hints (which the
    /// reference index does not cover).
    async fn referenced_anywhere(&self, terms: &[String]) -> Option<Vec<bool>> {
        let timeout = self.config().request_timeout();
        let calls = self.member_ids().into_iter().map(|m| async move {
            if m == self.id() {
                return self.refs_held_local(terms).ok();
            }
            let req = Request::RefsHeld {
                terms: terms.to_vec(),
            };
            match self.call(m, req, timeout).await {
                Ok(Response::RefsHeld { held, hints }) if held.len() == terms.len() => {
                    Some((held, hints))
                }
                _ => None,
            }
        });
        let mut referenced = vec![false; terms.len()];
        for answer in futures::future::join_all(calls).await {
            let (held, hints) = answer?;
            if hints {
                return None;
            }
            for (r, h) in referenced.iter_mut().zip(held) {
                *r |= h;
            }
        }
        Some(referenced)
    }

    /// Answer [`Request::RefsHeld`] from this node's reference index.
    pub(crate) fn refs_held_local(&self, terms: &[String]) -> Result<(Vec<bool>, bool), NodeError> {
        if terms.len() > COLLECT_BATCH_MAX {
            return Err(NodeError::BadRequest(format!(
                "a reference question carries at most {COLLECT_BATCH_MAX} terms, not {}",
                terms.len()
            )));
        }
        let store = &self.store();
        Ok((store.holds_refs(terms)?, store.holds_hints()?))
    }

    /// Objects this node's collector dropped (counting every owner's
    /// replica) since start.
    pub fn objects_collected(&self) -> u64 {
        self.stats().objects_collected.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(stage: CandidateStage) -> Candidate {
        Candidate {
            due_ms: 100,
            term: ref_term(&BKey::typed(
                Bytes::from_static(b"_s3b"),
                Bytes::from_static(b"blocks"),
                Bytes::from_static(b"ab12"),
            )),
            stage,
        }
    }

    #[test]
    fn a_referenced_entry_is_forgotten_at_either_stage() {
        for stage in [CandidateStage::Check, CandidateStage::Collect] {
            assert_eq!(step(&entry(stage), true, 500, 1000), Step::Forget);
        }
    }

    #[test]
    fn an_unreferenced_check_looks_again_a_grace_later() {
        let Step::Recheck(next) = step(&entry(CandidateStage::Check), false, 500, 1000) else {
            panic!("expected a recheck");
        };
        assert_eq!(next.due_ms, 1500);
        assert_eq!(next.stage, CandidateStage::Collect);
        assert_eq!(next.term, "_s3b/blocks/ab12");
    }

    #[test]
    fn an_unreferenced_collection_drops_what_was_not_written_in_the_grace() {
        assert_eq!(
            step(&entry(CandidateStage::Collect), false, 5000, 1000),
            Step::Drop {
                key: parse_ref_term("_s3b/blocks/ab12").unwrap(),
                written_max_ms: 4000
            }
        );
        let mut bad = entry(CandidateStage::Collect);
        bad.term = "no-slashes".into();
        assert_eq!(step(&bad, false, 5000, 1000), Step::Forget);
    }

    proptest! {
        #[test]
        fn terms_name_their_key_exactly(
            t in proptest::collection::vec(any::<u8>(), 0..20),
            b in proptest::collection::vec(any::<u8>(), 0..20),
            k in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let key = BKey::typed(Bytes::from(t), Bytes::from(b), Bytes::from(k));
            prop_assert_eq!(parse_ref_term(&ref_term(&key)), Some(key));
        }
    }
}
