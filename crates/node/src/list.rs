//! Listing keys and buckets, and bucket properties.
//!
//! Key listing streams the pages of `listing` (a coverage plan, one
//! replica per partition, merged in key order), a page per chunk: no node
//! ever holds more than a few pages, and the client's pace sets the
//! listing's. Like Riak's, it reflects one replica per partition.

use crate::listing::{resume_after, PageQuery};
use crate::proto::{Request, Response};
use crate::{Node, NodeError};
use bytes::Bytes;
use cluster::BucketProps;
use ring::NodeId;
use std::collections::BTreeSet;
use store::{ListQuery, ListStart};
use tokio::sync::mpsc;

/// Chunks of keys in flight between the listing task and the client.
const KEY_CHUNKS_MAX: usize = 4;
/// Keys per chunk of a streamed key listing (one listing page).
const KEYS_PER_CHUNK: usize = 1000;
/// Keys one legacy `ListKeys` answer may hold.
const LEGACY_KEYS_MAX: usize = 100_000;

impl Node {
    /// Set (or, with `None`, reset) a bucket's properties cluster-wide.
    ///
    /// # Errors
    ///
    /// Invalid properties (400) or storage failures.
    pub async fn set_bucket_props(
        &self,
        bucket_type: &[u8],
        bucket: &[u8],
        props: Option<BucketProps>,
    ) -> Result<(), NodeError> {
        if let Some(p) = &props {
            if p.n_val == 0 || usize::from(p.n_val) > ring::RANKS_MAX {
                return Err(NodeError::BadRequest(format!(
                    "n_val={} is out of range; use 1 to {}",
                    p.n_val,
                    ring::RANKS_MAX
                )));
            }
        }
        let at = self.now();
        self.update_state(|s| {
            s.set_bucket_props(at, bucket_type, bucket, props);
            true
        });
        self.persist_state().await?;
        crate::gossip::push_to_all(self).await;
        Ok(())
    }

    /// Stream the live keys of a bucket in key order, a page per chunk.
    ///
    /// Pages are read one after another as the receiver takes them (the
    /// channel holds [`KEY_CHUNKS_MAX`]), so a slow client slows the
    /// listing and memory stays at a few pages on every node.
    pub fn list_keys(
        &self,
        bucket_type: Bytes,
        bucket: Bytes,
    ) -> mpsc::Receiver<Result<Vec<Bytes>, NodeError>> {
        let (tx, rx) = mpsc::channel(KEY_CHUNKS_MAX);
        let node = self.clone();
        tokio::spawn(async move {
            let mut query = PageQuery {
                bucket_type,
                bucket,
                prefix: Bytes::new(),
                delimiter: None,
                start: ListStart::First,
                page_max: KEYS_PER_CHUNK,
                value_head_bytes: 0,
            };
            loop {
                let page = match node.list_page(&query).await {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let next = page.entries.last().and_then(resume_after);
                let keys = page.entries.into_iter().map(|e| e.name().clone()).collect();
                if tx.send(Ok(keys)).await.is_err() {
                    return;
                }
                match next.filter(|_| page.truncated) {
                    Some(start) => query.start = start,
                    None => return,
                }
            }
        });
        rx
    }

    /// Live keys this node holds for a bucket in the given partitions, for
    /// peers that still send `ListKeys` (before `ListPages`): refused once
    /// they pass [`LEGACY_KEYS_MAX`], so no request allocates a bucket.
    pub(crate) fn local_keys(
        &self,
        bucket_type: &[u8],
        bucket: &[u8],
        partitions: &[u16],
    ) -> Result<Vec<Bytes>, NodeError> {
        let query = ListQuery {
            prefix: Bytes::new(),
            delimiter: None,
            entries_max: 1024,
            bytes_max: crate::listing::SCAN_BYTES_MAX,
            value_head_bytes: 0,
        };
        let mut keys = Vec::new();
        for p in partitions {
            let mut start = Some(ListStart::First);
            while let Some(from) = start {
                let page = self
                    .store()
                    .list_page(*p, bucket_type, bucket, &query, &from)?;
                keys.extend(page.entries.into_iter().map(|e| e.name().clone()));
                if keys.len() > LEGACY_KEYS_MAX {
                    return Err(NodeError::BadRequest(format!(
                        "more than {LEGACY_KEYS_MAX} keys; upgrade the asking node to list by pages"
                    )));
                }
                start = page.resume;
            }
        }
        Ok(keys)
    }

    /// Buckets of a bucket type that hold objects on any reachable node.
    ///
    /// # Errors
    ///
    /// Storage failures on this node.
    pub async fn list_buckets(&self, bucket_type: Bytes) -> Result<Vec<Bytes>, NodeError> {
        let mut all: BTreeSet<Bytes> = self.local_buckets(&bucket_type)?.into_iter().collect();
        let peers: Vec<NodeId> = self
            .layout()
            .members()
            .iter()
            .map(|m| m.id)
            .filter(|id| *id != self.id())
            .collect();
        let calls = peers.into_iter().map(|p| {
            let req = Request::ListBuckets {
                bucket_type: bucket_type.clone(),
            };
            self.call(p, req, self.config().request_timeout())
        });
        for reply in futures::future::join_all(calls).await {
            if let Ok(Response::Buckets(b)) = reply {
                all.extend(b);
            }
        }
        Ok(all.into_iter().collect())
    }

    pub(crate) fn local_buckets(&self, bucket_type: &[u8]) -> Result<Vec<Bytes>, NodeError> {
        Ok(self
            .store()
            .buckets()?
            .into_iter()
            .filter(|(t, _)| t == bucket_type)
            .map(|(_, b)| Bytes::from(b))
            .collect())
    }
}
