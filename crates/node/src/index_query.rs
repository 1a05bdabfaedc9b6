//! Secondary-index queries (Riak's 2i): a coverage query over one replica
//! of every partition, merged in (term, key) order.
//!
//! Index entries live beside the replicas they index (`store::index`), so
//! a partition's entries are on each of its replicas and one replica per
//! partition answers for it. The plan and the rounds are a listing's
//! (`listing::coverage_page`): each round asks every node for the next
//! small page of the partitions it covers (`Request::IndexPages`), a node
//! that fails loses its partitions to their next replica, and a partition
//! no replica answers fails the query with 503 rather than return a
//! result with a hole in it. A page reads about its share of each
//! partition from where the previous page ended (the continuation), so it
//! costs what the page costs, not the index.

use crate::listing::{local_pages, Page, SCAN_BYTES_MAX};
use crate::merge::Want;
use crate::proto::Request;
use crate::{Node, NodeError};
use bytes::Bytes;
use ring::NodeId;
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
        let n_val = usize::from(self.bucket_props(&q.bucket_type, &q.bucket).n_val);
        let query = IndexQuery {
            index: q.index.clone(),
            ranges: q.ranges.clone(),
            entries_max: 0,
            bytes_max: SCAN_BYTES_MAX,
        };
        self.coverage_page(n_val, &q.start, q.page_max, |node, parts| {
            self.index_round(node, q, query.clone(), parts)
        })
        .await
    }

    /// One node's part of a round: its pages of the wanted partitions.
    async fn index_round(
        &self,
        node: NodeId,
        q: &IndexPageQuery,
        query: IndexQuery,
        parts: Vec<Want>,
    ) -> Result<Vec<(u16, ListedPage)>, NodeError> {
        if node == self.id() {
            return self.local_index_pages(&q.bucket_type, &q.bucket, &query, &parts);
        }
        let asked: Vec<u16> = parts.iter().map(|w| w.0).collect();
        let req = Request::IndexPages {
            bucket_type: q.bucket_type.clone(),
            bucket: q.bucket.clone(),
            query,
            parts,
        };
        self.remote_round(node, req, &asked, |_| true).await
    }

    /// This node's pages of an index in some partitions, in the order
    /// asked, as many as fit in one reply (at least one).
    pub(crate) fn local_index_pages(
        &self,
        bucket_type: &[u8],
        bucket: &[u8],
        query: &IndexQuery,
        parts: &[Want],
    ) -> Result<Vec<(u16, ListedPage)>, NodeError> {
        local_pages(parts, |partition, start, entries_max| {
            let query = IndexQuery {
                entries_max,
                bytes_max: query.bytes_max.clamp(1, SCAN_BYTES_MAX),
                ..query.clone()
            };
            Ok(self
                .store()
                .index_page(partition, bucket_type, bucket, &query, start)?)
        })
    }
}
