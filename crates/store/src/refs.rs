//! The reference index and the collection log: what lets objects be
//! collected when nothing references them, at a cost that follows what
//! changed rather than what is stored.
//!
//! An object's versions may carry two reserved index terms in their
//! metadata (`Meta::indexes`, the same list Riak's 2i headers fill):
//!
//! - `$ref: T`: this version references the collectable object named `T`
//!   (an S3 object record references its blocks);
//! - `$collect: T`: this object *is* `T`, and may be collected once no
//!   version anywhere references it (an S3 block).
//!
//! The store keeps, in the same batch as the replica it describes:
//!
//! - an entry `(T, object key)` in [`Space::Refs`] for every `$ref` term of
//!   the replica's live versions, so "does this node hold anything that
//!   references `T`?" is one seek, whatever the node stores;
//! - an entry `(due ms, T)` in [`Space::Candidates`] when a write removes
//!   the replica's last `$ref: T` (an overwrite or a delete), and when an
//!   object carrying `$collect: T` is written (an upload that never writes
//!   its record leaves an orphan that nothing else would point to).
//!
//! The collector (in `node`) reads the log from its oldest due entry and
//! stops at the first that is not due: its work follows the references
//! that went away, not the objects that exist. Because entries are written
//! with the replica they describe, a crash at any instant leaves the index
//! and the log as true as the replica.
//!
//! Dropping a replica (a handoff's release, a collection) removes its
//! reference entries but logs nothing: the versions live on elsewhere, or
//! are the collectable itself.

use crate::engine::{BatchItem, Space};
use crate::keys::push_field;
use crate::{ObjectKey, Store, StoreError};
use causal::Object;
use std::collections::BTreeSet;

/// The index term: "this version references `T`".
pub const REF_INDEX: &str = "$ref";
/// The index term: "this object is `T`, collect it when unreferenced".
pub const COLLECT_INDEX: &str = "$collect";

/// The index terms of one replica's live versions: the reserved
/// reference terms, and the secondary-index entries (see `index`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexTerms {
    refs: BTreeSet<String>,
    collectable: BTreeSet<String>,
    /// Secondary-index entries: index name and encoded term.
    secondary: BTreeSet<Vec<u8>>,
}

impl IndexTerms {
    /// The terms `obj`'s live versions carry (none for a tombstone).
    pub fn of(obj: &Object) -> IndexTerms {
        let mut terms = IndexTerms::default();
        for s in obj.siblings().iter().filter(|s| !s.meta.deleted) {
            for (name, value) in &s.meta.indexes {
                match name.as_str() {
                    REF_INDEX => terms.refs.insert(value.clone()),
                    COLLECT_INDEX => terms.collectable.insert(value.clone()),
                    _ => false,
                };
            }
            let secondary = s.meta.indexes.iter().filter(|(n, _)| !n.starts_with('$'));
            terms.secondary.extend(crate::index::entries_of(secondary));
        }
        terms
    }

    /// The secondary-index entries (index name and encoded term).
    pub(crate) fn secondary(&self) -> &BTreeSet<Vec<u8>> {
        &self.secondary
    }

    /// Whether the replica carries no term at all (most objects).
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty() && self.collectable.is_empty() && self.secondary.is_empty()
    }
}

/// What the collection log asks for an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CandidateStage {
    /// A reference went away or the collectable was written: check
    /// whether anything still references it.
    Check,
    /// Found unreferenced at `due - grace`: collect it if it still is.
    Collect,
}

/// One entry of the collection log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Wall-clock ms from which the entry is due.
    pub due_ms: u64,
    /// The collectable's term.
    pub term: String,
    /// What is due.
    pub stage: CandidateStage,
}

impl Candidate {
    fn key(&self) -> Vec<u8> {
        [&self.due_ms.to_be_bytes()[..], self.term.as_bytes()].concat()
    }

    fn item(&self) -> BatchItem {
        let stage = match self.stage {
            CandidateStage::Check => 0u8,
            CandidateStage::Collect => 1u8,
        };
        (Space::Candidates, self.key(), Some(vec![stage]))
    }

    fn decode(k: &[u8], v: &[u8]) -> Option<Candidate> {
        let due_ms = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
        let term = String::from_utf8(k.get(8..)?.to_vec()).ok()?;
        let stage = match v {
            [0] => CandidateStage::Check,
            [1] => CandidateStage::Collect,
            _ => return None,
        };
        Some(Candidate {
            due_ms,
            term,
            stage,
        })
    }
}

fn ref_prefix(term: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + term.len());
    push_field(&mut out, term.as_bytes());
    out
}

fn ref_key(term: &str, key: &ObjectKey) -> Vec<u8> {
    [ref_prefix(term), key.encode()].concat()
}

/// The index and log changes of replacing a replica whose terms were
/// `was` with `obj`.
pub(crate) fn changes(key: &ObjectKey, was: &IndexTerms, obj: &Object) -> Vec<BatchItem> {
    let now = IndexTerms::of(obj);
    if was.is_empty() && now.is_empty() {
        return Vec::new();
    }
    let written_ms = obj
        .siblings()
        .iter()
        .map(|s| s.meta.last_modified_ms)
        .max()
        .unwrap_or(0);
    let check = |term: &String| {
        Candidate {
            due_ms: written_ms,
            term: term.clone(),
            stage: CandidateStage::Check,
        }
        .item()
    };
    let mut batch = crate::index::changes(key, &was.secondary, &now.secondary);
    for term in now.refs.difference(&was.refs) {
        batch.push((Space::Refs, ref_key(term, key), Some(Vec::new())));
    }
    for term in was.refs.difference(&now.refs) {
        batch.push((Space::Refs, ref_key(term, key), None));
        batch.push(check(term));
    }
    batch.extend(now.collectable.iter().map(check));
    batch
}

/// The index entries of a replica being dropped.
pub(crate) fn removals<'a>(
    key: &'a ObjectKey,
    was: &'a IndexTerms,
) -> impl Iterator<Item = BatchItem> + 'a {
    let refs = was
        .refs
        .iter()
        .map(move |term| (Space::Refs, ref_key(term, key), None));
    let secondary = was
        .secondary
        .iter()
        .map(move |e| (Space::Index, crate::index::entry_key(key, e), None));
    refs.chain(secondary)
}

impl Store {
    /// For each term, whether this node stores a replica (in any
    /// partition) whose live versions reference it: one seek per term.
    ///
    /// # Errors
    ///
    /// Engine failures.
    pub fn holds_refs(&self, terms: &[String]) -> Result<Vec<bool>, StoreError> {
        terms
            .iter()
            .map(|t| {
                let prefix = ref_prefix(t);
                Ok(self
                    .engine
                    .first_key_from(Space::Refs, &prefix)?
                    .is_some_and(|k| k.starts_with(&prefix)))
            })
            .collect()
    }

    /// Whether this node holds any hint (a write kept for an unreachable
    /// owner, not in the reference index until it is delivered).
    ///
    /// # Errors
    ///
    /// Engine failures.
    pub fn holds_hints(&self) -> Result<bool, StoreError> {
        Ok(self.engine.first_key_from(Space::Hints, &[])?.is_some())
    }

    /// Log entries due at `now_ms`, oldest first, about `bytes_max` of
    /// them; the scan stops at the first entry not yet due.
    ///
    /// # Errors
    ///
    /// Engine failures and undecodable entries.
    pub fn candidates_due(
        &self,
        now_ms: u64,
        bytes_max: usize,
    ) -> Result<Vec<Candidate>, StoreError> {
        let page = self
            .engine
            .scan_page(Space::Candidates, &[], crate::Start::First, bytes_max)?;
        let mut due = Vec::with_capacity(page.len());
        for (k, v) in page {
            let c = Candidate::decode(&k, &v).ok_or_else(|| StoreError::Corrupt {
                what: "collection log entry",
                detail: format!("{} key bytes, {} value bytes", k.len(), v.len()),
            })?;
            if c.due_ms > now_ms {
                break;
            }
            due.push(c);
        }
        Ok(due)
    }

    /// How many entries the collection log holds, due or not (reads the
    /// keys, not the values: the log holds what changed lately).
    ///
    /// # Errors
    ///
    /// Engine failures.
    pub fn candidates_count(&self) -> Result<u64, StoreError> {
        Ok(self.engine.count_prefix(Space::Candidates, &[])?.0)
    }

    /// Remove handled log entries and add the ones they lead to, in one
    /// batch. Not synced: a crash brings back the handled entries, which
    /// are handled again.
    ///
    /// # Errors
    ///
    /// Engine failures.
    pub async fn replace_candidates(
        &self,
        done: &[Candidate],
        next: &[Candidate],
    ) -> Result<(), StoreError> {
        let batch = done
            .iter()
            .map(|c| (Space::Candidates, c.key(), None))
            .chain(next.iter().map(Candidate::item))
            .collect();
        self.writer.write(batch, false).await
    }
}

#[cfg(test)]
#[path = "refs_tests.rs"]
mod tests;
