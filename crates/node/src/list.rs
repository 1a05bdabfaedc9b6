//! Listing keys and buckets, and bucket properties.
//!
//! Key listing uses a coverage plan, as Riak does: each partition is asked
//! of one replica only (its first reachable primary), so a listing holds no
//! duplicates and the coordinator never buffers the whole key set; each
//! node's answer is passed on as one chunk. Like Riak's, it is expensive
//! (every node scans) and reflects one replica per partition.

use crate::proto::{Request, Response};
use crate::{Node, NodeError};
use bytes::Bytes;
use cluster::BucketProps;
use ring::{NodeId, PartitionId};
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::mpsc;

/// Chunks of keys in flight between the listing task and the client.
const KEY_CHUNKS_MAX: usize = 4;

impl Node {
    /// The properties of a bucket (defaults unless set).
    pub fn bucket_props(&self, bucket_type: &[u8], bucket: &[u8]) -> BucketProps {
        self.inner
            .view
            .read()
            .map(|v| v.state.bucket_props(bucket_type, bucket))
            .unwrap_or_default()
    }

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

    /// Stream the keys of a bucket, one chunk per node asked.
    pub fn list_keys(
        &self,
        bucket_type: Bytes,
        bucket: Bytes,
    ) -> mpsc::Receiver<Result<Vec<Bytes>, NodeError>> {
        let (tx, rx) = mpsc::channel(KEY_CHUNKS_MAX);
        let node = self.clone();
        tokio::spawn(async move {
            let layout = node.layout();
            let n_val = usize::from(node.bucket_props(&bucket_type, &bucket).n_val);
            // Partition → its primaries still to try, in order.
            let mut todo: BTreeMap<u16, Vec<NodeId>> = (0..layout.partition_count() as u16)
                .map(|p| {
                    let owners = layout.owners(PartitionId(p));
                    (p, owners.iter().take(n_val).rev().copied().collect())
                })
                .collect();
            while !todo.is_empty() {
                let mut plan: BTreeMap<NodeId, Vec<u16>> = BTreeMap::new();
                for (p, owners) in todo.iter_mut() {
                    match owners.pop() {
                        Some(o) => plan.entry(o).or_default().push(*p),
                        None => {
                            let msg = format!(
                                "no replica of partition {p} answered; the listing is incomplete"
                            );
                            let _ = tx.send(Err(NodeError::Unavailable(msg))).await;
                            return;
                        }
                    }
                }
                for (target, partitions) in plan {
                    let req = Request::ListKeys {
                        bucket_type: bucket_type.clone(),
                        bucket: bucket.clone(),
                        partitions: partitions.clone(),
                    };
                    let reply = if target == node.id() {
                        node.local_keys(&bucket_type, &bucket, &partitions)
                    } else {
                        match node
                            .call(target, req, node.config().request_timeout() * 5)
                            .await
                        {
                            Ok(Response::Keys(k)) => Ok(k),
                            Ok(other) => Err(NodeError::Unavailable(format!(
                                "unexpected answer {other:?}"
                            ))),
                            Err(e) => Err(NodeError::Unavailable(e)),
                        }
                    };
                    if let Ok(keys) = reply {
                        for p in &partitions {
                            todo.remove(p);
                        }
                        if tx.send(Ok(keys)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        rx
    }

    /// Live keys this node holds for a bucket in the given partitions.
    pub(crate) fn local_keys(
        &self,
        bucket_type: &[u8],
        bucket: &[u8],
        partitions: &[u16],
    ) -> Result<Vec<Bytes>, NodeError> {
        let mut keys = Vec::new();
        for p in partitions {
            for (k, obj) in self.inner.store.scan_bucket(*p, bucket_type, bucket)? {
                if !obj.is_absent() {
                    keys.push(Bytes::from(k));
                }
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
            .inner
            .store
            .buckets()?
            .into_iter()
            .filter(|(t, _)| t == bucket_type)
            .map(|(_, b)| Bytes::from(b))
            .collect())
    }
}
