//! Secondary-index queries (Riak's 2i): a coverage query over one replica
//! of every partition, merged in (term, key) order.
//!
//! Index entries live beside the replicas they index (`store::index`), so
//! a partition's entries are on each of its replicas and one replica per
//! partition answers for it. The plan is a listing's
//! (`Node::coverage`: this node first, then peers not suspected), but the
//! unit of a round is a *node*, not a partition: a node's entries sort by
//! term and key across all its partitions, so it answers for every
//! partition the plan gives it with one scan per term range
//! (`Request::IndexScan`), skipping the entries of partitions it holds but
//! does not answer for. A query is then a merge of one ordered stream per
//! node (`Merge`, with streams for parts), a few small reads each, whatever
//! the number of partitions.
//!
//! A node that fails a round makes the page start over without it: its
//! partitions go to their next replicas, and a partition no replica
//! answers fails the query with 503 rather than return a result with a
//! hole in it. A page reads from where the previous page ended (the
//! continuation), so it costs what the page costs, not the index.
//!
//! `$key` (and `$bucket`) are the keys themselves: a listing page
//! (`Node::list_page`) cut at the range's end.

use crate::listing::{
    finish, no_replica, Page, PageQuery, ROUNDS_MAX, SCAN_BYTES_MAX, SCAN_ENTRIES_MAX,
};
use crate::merge::Merge;
use crate::proto::{Request, Response};
use crate::{Node, NodeError};
use bytes::Bytes;
use ring::NodeId;
use std::collections::BTreeMap;
use store::{IndexQuery, ListStart, ListedPage};

/// A page of an index query, as a client asked for it.
#[derive(Clone, Debug)]
pub struct IndexPageQuery {
    /// Bucket type.
    pub bucket_type: Bytes,
    /// Bucket.
    pub bucket: Bytes,
    /// The index (`$key` for the keys themselves).
    pub index: String,
    /// Ranges of encoded terms (`store::index::encode_term`), ascending
    /// and disjoint: (lowest, highest; `None`: no upper bound).
    pub ranges: Vec<(Bytes, Option<Bytes>)>,
    /// Where the page starts: after the previous page's last entry.
    pub start: ListStart,
    /// Entries in the page, at most.
    pub page_max: usize,
}

/// Why one attempt at a page stopped.
enum Attempt {
    /// This node failed its part; try again without it.
    NodeFailed(NodeId, NodeError),
    /// The page cannot be had (deadline, rounds).
    Failed(NodeError),
}

impl Node {
    /// One page of an index query's entries, named by encoded term and
    /// key, in that order. See the module docs.
    ///
    /// # Errors
    ///
    /// `Unavailable` when no replica of some partition answers, or the
    /// page takes longer than the listing deadline.
    pub async fn index_page(&self, q: &IndexPageQuery) -> Result<Page, NodeError> {
        self.ensure_seeded().await?;
        if q.index == "$key" {
            return self.key_index_page(q).await;
        }
        let n_val = usize::from(self.bucket_props(&q.bucket_type, &q.bucket).n_val);
        let mut plan = self.coverage(n_val);
        let deadline = tokio::time::Instant::now() + self.config().request_timeout() * 5;
        // Each failed attempt takes a node out of the plan, so attempts are
        // bounded by the nodes in it.
        let nodes = plan
            .values()
            .flatten()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let mut last_error = None;
        for _ in 0..=nodes {
            let mut streams: BTreeMap<NodeId, Vec<u16>> = BTreeMap::new();
            for (partition, candidates) in &plan {
                let Some(node) = candidates.first() else {
                    return Err(last_error.unwrap_or_else(|| no_replica(*partition)));
                };
                streams.entry(*node).or_default().push(*partition);
            }
            match self.index_streams(q, streams, deadline).await {
                Ok(page) => return Ok(page),
                Err(Attempt::Failed(e)) => return Err(e),
                Err(Attempt::NodeFailed(node, e)) => {
                    tracing::debug!(%node, error = %e, "index round failed; next replica");
                    for candidates in plan.values_mut() {
                        candidates.retain(|c| *c != node);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| no_replica(0)))
    }

    /// One attempt at a page: rounds over one stream per node until the
    /// merge has the page.
    async fn index_streams(
        &self,
        q: &IndexPageQuery,
        streams: BTreeMap<NodeId, Vec<u16>>,
        deadline: tokio::time::Instant,
    ) -> Result<Page, Attempt> {
        let streams: Vec<(NodeId, Vec<u16>)> = streams.into_iter().collect();
        let ids: Vec<u16> = (0..streams.len() as u16).collect();
        let mut merge = Merge::new(&ids, &q.start, q.page_max);
        for _ in 0..ROUNDS_MAX {
            if merge.done() {
                return Ok(finish(merge));
            }
            let rounds = merge.wanted().into_iter().map(|(id, start, ask)| {
                let (node, partitions) = &streams[usize::from(id)];
                let query = IndexQuery {
                    index: q.index.clone(),
                    ranges: q.ranges.clone(),
                    entries_max: ask,
                    bytes_max: SCAN_BYTES_MAX,
                };
                async move {
                    let page = self.index_scan_on(*node, q, query, partitions, start).await;
                    (id, *node, page)
                }
            });
            let replies = tokio::time::timeout_at(deadline, futures::future::join_all(rounds))
                .await
                .map_err(|_| {
                    Attempt::Failed(NodeError::Unavailable(
                        "the index query took longer than its deadline".into(),
                    ))
                })?;
            for (id, node, reply) in replies {
                match reply {
                    Ok(page) => merge.feed(id, page),
                    Err(e) => return Err(Attempt::NodeFailed(node, e)),
                }
            }
        }
        Err(Attempt::Failed(NodeError::Unavailable(format!(
            "the index query did not finish in {ROUNDS_MAX} rounds"
        ))))
    }

    /// `node`'s page of the index over `partitions`, from `start`; a
    /// peer's page is checked to be in order and after `start`.
    async fn index_scan_on(
        &self,
        node: NodeId,
        q: &IndexPageQuery,
        query: IndexQuery,
        partitions: &[u16],
        start: ListStart,
    ) -> Result<ListedPage, NodeError> {
        if node == self.id() {
            return self.local_index_scan(&q.bucket_type, &q.bucket, &query, partitions, &start);
        }
        let req = Request::IndexScan {
            bucket_type: q.bucket_type.clone(),
            bucket: q.bucket.clone(),
            query,
            partitions: partitions.to_vec(),
            start: start.clone(),
        };
        let timeout = self.config().request_timeout();
        match self.call(node, req, timeout).await {
            Ok(Response::IndexPage(page)) => {
                let after_start = |name: &Bytes| match &start {
                    ListStart::First => true,
                    ListStart::After(s) => name > s,
                    ListStart::At(s) => name >= s,
                };
                let well_formed = page.entries.windows(2).all(|w| w[0].name() < w[1].name())
                    && page.entries.first().is_none_or(|e| after_start(e.name()));
                if well_formed {
                    Ok(page)
                } else {
                    Err(NodeError::Unavailable(format!(
                        "node {node} answered an index scan out of order; skipping it"
                    )))
                }
            }
            Ok(other) => Err(NodeError::peer(node)(crate::error::CallError::Unexpected(
                other.name(),
            ))),
            Err(e) => Err(NodeError::peer(node)(e)),
        }
    }

    /// This node's page of an index over `partitions` (of any order, and
    /// from a peer: unknown partitions match nothing), budgets clamped to
    /// a scan's bounds.
    pub(crate) fn local_index_scan(
        &self,
        bucket_type: &[u8],
        bucket: &[u8],
        query: &IndexQuery,
        partitions: &[u16],
        start: &ListStart,
    ) -> Result<ListedPage, NodeError> {
        let mut covered = partitions.to_vec();
        covered.sort_unstable();
        covered.dedup();
        let covers = |p: u16| covered.binary_search(&p).is_ok();
        let query = IndexQuery {
            entries_max: query.entries_max.clamp(1, SCAN_ENTRIES_MAX),
            bytes_max: query.bytes_max.clamp(1, SCAN_BYTES_MAX),
            ..query.clone()
        };
        Ok(self
            .store()
            .index_scan(bucket_type, bucket, &query, &covers, start)?)
    }

    /// `$key`: a page of the bucket's keys from the range's start, cut at
    /// its end (keys are not prefix-free: the end is exact).
    async fn key_index_page(&self, q: &IndexPageQuery) -> Result<Page, NodeError> {
        let Some((lo, hi)) = q.ranges.first() else {
            return Ok(Page {
                entries: Vec::new(),
                truncated: false,
            });
        };
        let lo_start = ListStart::At(lo.clone());
        let start = if q.start > lo_start || lo.is_empty() {
            q.start.clone()
        } else {
            lo_start
        };
        let mut page = self
            .list_page(&PageQuery {
                bucket_type: q.bucket_type.clone(),
                bucket: q.bucket.clone(),
                prefix: Bytes::new(),
                delimiter: None,
                start,
                page_max: q.page_max,
                value_head_bytes: 0,
            })
            .await?;
        let past = |name: &[u8]| hi.as_ref().is_some_and(|hi| name > &hi[..]);
        if let Some(cut) = page.entries.iter().position(|e| past(e.name())) {
            page.entries.truncate(cut);
            page.truncated = false;
        }
        Ok(page)
    }
}
