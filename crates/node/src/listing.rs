//! Paged listings of a bucket's keys: the coverage plan and the rounds that
//! drive [`Merge`].
//!
//! Each partition is read from one replica (a coverage plan, as Riak's): a
//! replica that holds its data (during a transition, an owner that finished
//! pulling), this node first, then peers not suspected, in preference
//! order. A listing page is a few *rounds*: each round asks every node,
//! in parallel, for the next small page of each partition the merge needs
//! (`Request::ListPages`), and a node answers as many as fit in one reply.
//! A node that does not answer loses its partitions to their next replica
//! for the rest of the page; a partition no replica answers fails the page
//! with 503 rather than return a listing with a hole in it.
//!
//! The cost of a page is bounded by the page: rounds ask about the page's
//! share of each partition, every scan seeks to its start and stops at its
//! byte budget (`store::listing`), and nothing is read from the start of
//! the bucket. See docs/ARCHITECTURE.md, "Listing".

use crate::error::CallError;
use crate::merge::{Merge, Want};
use crate::proto::{Request, Response};
use crate::{Node, NodeError};
use bytes::Bytes;
use ring::{NodeId, PartitionId};
use std::collections::BTreeMap;
use store::{ListQuery, ListStart, Listed, ListedPage};

/// Bytes one partition scan reads at most in one round (keys and stored
/// values, tombstones included).
pub(crate) const SCAN_BYTES_MAX: u32 = 64 * 1024;
/// Entries one partition scan returns at most, whatever is asked.
pub(crate) const SCAN_ENTRIES_MAX: u32 = 1024;
/// Bytes of entries one `ListPages` reply carries, about; parts beyond are
/// left for the next round.
const REPLY_BYTES_MAX: usize = 1 << 20;
/// Bytes of a value a listing entry carries, at most.
pub const VALUE_HEAD_BYTES_MAX: u32 = 4096;
/// Parts one `ListPages` reply answers at most, so one request reads at
/// most this many times [`SCAN_BYTES_MAX`].
const REPLY_PARTS_MAX: usize = 128;
/// Rounds one page may take before it fails: far more than a page needs
/// (each round either emits entries or advances a scan past its budget),
/// a bound against a peer that keeps answering nothing.
pub(crate) const ROUNDS_MAX: usize = 100_000;

/// A page of a listing, as a client asked for it.
#[derive(Clone, Debug)]
pub struct PageQuery {
    /// Bucket type.
    pub bucket_type: Bytes,
    /// Bucket.
    pub bucket: Bytes,
    /// Only keys that begin with this.
    pub prefix: Bytes,
    /// Roll keys up into common prefixes at this.
    pub delimiter: Option<Bytes>,
    /// Where the page starts (from the previous page's last entry).
    pub start: ListStart,
    /// Entries in the page, at most.
    pub page_max: usize,
    /// Bytes of each version's value that entries carry (0: none).
    pub value_head_bytes: u32,
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page {
    /// Keys and common prefixes, in order.
    pub entries: Vec<Listed>,
    /// Whether more entries follow.
    pub truncated: bool,
}

/// Where the page after `last` starts.
pub fn resume_after(last: &Listed) -> Option<ListStart> {
    match last {
        Listed::Key { key, .. } => Some(ListStart::After(key.clone())),
        Listed::Prefix(p) => ListStart::past_prefix(p),
    }
}

impl Node {
    /// One page of a bucket's live keys in key order. See the module docs.
    ///
    /// # Errors
    ///
    /// `Unavailable` when no replica of some partition answers, or the
    /// page takes longer than the listing deadline.
    pub async fn list_page(&self, q: &PageQuery) -> Result<Page, NodeError> {
        self.ensure_seeded().await?;
        let n_val = usize::from(self.bucket_props(&q.bucket_type, &q.bucket).n_val);
        let query = ListQuery {
            prefix: q.prefix.clone(),
            delimiter: q.delimiter.clone(),
            entries_max: 0,
            bytes_max: SCAN_BYTES_MAX,
            value_head_bytes: q.value_head_bytes,
        };
        self.coverage_page(n_val, &q.start, q.page_max, |node, parts| {
            self.list_round(node, q, query.clone(), parts)
        })
        .await
    }

    /// One page merged from one replica of every partition: rounds of
    /// `fetch` (a node's pages of the partitions it is asked for) until
    /// the merge has the page. Listings and index queries share it.
    pub(crate) async fn coverage_page<F, Fut>(
        &self,
        n_val: usize,
        start: &ListStart,
        page_max: usize,
        fetch: F,
    ) -> Result<Page, NodeError>
    where
        F: Fn(NodeId, Vec<Want>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<(u16, ListedPage)>, NodeError>>,
    {
        let mut plan = self.coverage(n_val);
        let partitions: Vec<u16> = plan.keys().copied().collect();
        let mut merge = Merge::new(&partitions, start, page_max);
        let deadline = tokio::time::Instant::now() + self.config().request_timeout() * 5;
        for _ in 0..ROUNDS_MAX {
            if merge.done() {
                return Ok(finish(merge));
            }
            let mut by_node: BTreeMap<NodeId, Vec<Want>> = BTreeMap::new();
            for want in merge.wanted() {
                let Some(node) = plan.get(&want.0).and_then(|c| c.first()) else {
                    return Err(no_replica(want.0));
                };
                by_node.entry(*node).or_default().push(want);
            }
            let rounds = by_node.into_iter().map(|(node, parts)| {
                let round = fetch(node, parts);
                async move { (node, round.await) }
            });
            let replies = tokio::time::timeout_at(deadline, futures::future::join_all(rounds))
                .await
                .map_err(|_| {
                    NodeError::Unavailable("the listing took longer than its deadline".into())
                })?;
            for (node, reply) in replies {
                match reply {
                    Ok(pages) => {
                        for (p, page) in pages {
                            merge.feed(p, page);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(%node, error = %e, "listing round failed; next replica");
                        for candidates in plan.values_mut() {
                            candidates.retain(|c| *c != node);
                        }
                    }
                }
            }
        }
        Err(NodeError::Unavailable(format!(
            "the listing did not finish in {ROUNDS_MAX} rounds"
        )))
    }

    /// One node's part of a round: its pages of the wanted partitions.
    async fn list_round(
        &self,
        node: NodeId,
        q: &PageQuery,
        query: ListQuery,
        parts: Vec<Want>,
    ) -> Result<Vec<(u16, ListedPage)>, NodeError> {
        if node == self.id() {
            return self.local_list_pages(&q.bucket_type, &q.bucket, &query, &parts);
        }
        let asked: Vec<u16> = parts.iter().map(|w| w.0).collect();
        let req = Request::ListPages {
            bucket_type: q.bucket_type.clone(),
            bucket: q.bucket.clone(),
            query,
            parts,
        };
        self.remote_round(node, req, &asked, |e| e.name().starts_with(&q.prefix))
            .await
    }

    /// Send a round's request to `node` and check its pages: a reply may
    /// answer fewer parts than `asked`, never others or out of order, and
    /// every entry must pass `entry_ok`; anything else is a broken peer.
    pub(crate) async fn remote_round(
        &self,
        node: NodeId,
        req: Request,
        asked: &[u16],
        entry_ok: impl Fn(&Listed) -> bool,
    ) -> Result<Vec<(u16, ListedPage)>, NodeError> {
        match self.call(node, req, self.config().request_timeout()).await {
            Ok(Response::ListPages(pages)) => {
                let mut expected = asked.iter();
                let well_formed = pages.iter().all(|(p, page)| {
                    expected.any(|a| a == p)
                        && page.entries.windows(2).all(|w| w[0].name() < w[1].name())
                        && page.entries.iter().all(&entry_ok)
                });
                if well_formed {
                    Ok(pages)
                } else {
                    Err(NodeError::Unavailable(format!(
                        "node {node} answered a round out of order; skipping it"
                    )))
                }
            }
            Ok(other) => Err(NodeError::peer(node)(CallError::Unexpected(other.name()))),
            Err(e) => Err(NodeError::peer(node)(e)),
        }
    }

    /// This node's pages of some partitions of a bucket, in the order
    /// asked, as many as fit in one reply (at least one).
    pub(crate) fn local_list_pages(
        &self,
        bucket_type: &[u8],
        bucket: &[u8],
        query: &ListQuery,
        parts: &[Want],
    ) -> Result<Vec<(u16, ListedPage)>, NodeError> {
        local_pages(parts, |partition, start, entries_max| {
            let query = ListQuery {
                entries_max,
                bytes_max: query.bytes_max.clamp(1, SCAN_BYTES_MAX),
                value_head_bytes: query.value_head_bytes.min(VALUE_HEAD_BYTES_MAX),
                ..query.clone()
            };
            Ok(self
                .store()
                .list_page(partition, bucket_type, bucket, &query, start)?)
        })
    }

    /// Partition → the replicas to read it from, best first.
    pub(crate) fn coverage(&self, n_val: usize) -> BTreeMap<u16, Vec<NodeId>> {
        let layouts = self.layouts();
        (0..layouts.current.partition_count() as u16)
            .map(|p| {
                let mut owners: Vec<NodeId> = if layouts.in_transition() {
                    layouts.read_owners(PartitionId(p), n_val)
                } else {
                    layouts
                        .current
                        .owners(PartitionId(p))
                        .iter()
                        .take(n_val)
                        .copied()
                        .collect()
                };
                owners.sort_by_key(|o| (*o != self.id(), self.is_suspect(*o)));
                (p, owners)
            })
            .collect()
    }
}

/// A node's pages of some partitions, in the order asked, as many as fit
/// in one reply (at least one): `scan` reads one partition's page from
/// where it starts, at most the entries given (clamped to a scan's bound).
pub(crate) fn local_pages(
    parts: &[Want],
    scan: impl Fn(u16, &ListStart, u32) -> Result<ListedPage, NodeError>,
) -> Result<Vec<(u16, ListedPage)>, NodeError> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for (partition, start, entries_max) in parts.iter().take(REPLY_PARTS_MAX) {
        if bytes >= REPLY_BYTES_MAX {
            break;
        }
        let page = scan(*partition, start, (*entries_max).clamp(1, SCAN_ENTRIES_MAX))?;
        bytes += page.entries.iter().map(entry_bytes).sum::<usize>();
        out.push((*partition, page));
    }
    Ok(out)
}

pub(crate) fn finish(merge: Merge) -> Page {
    let (entries, truncated) = merge.finish();
    Page { entries, truncated }
}

pub(crate) fn no_replica(partition: u16) -> NodeError {
    NodeError::Unavailable(format!(
        "no replica of partition {partition} answered; the listing would be incomplete, try again"
    ))
}

/// About how many bytes an entry takes in a reply.
fn entry_bytes(e: &Listed) -> usize {
    match e {
        Listed::Prefix(p) => p.len() + 8,
        Listed::Key { key, versions } => {
            key.len() + 8 + versions.iter().map(|v| v.head.len() + 16).sum::<usize>()
        }
    }
}
