//! Local replicas: reading and dropping what this node itself holds of a
//! bucket, without asking any other node.
//!
//! For maintenance that a higher layer runs over its own data: the S3
//! layer scrubs its blocks (a replica whose bytes no longer match their
//! hash is dropped) and collects unreferenced ones. Dropping a replica
//! updates the anti-entropy tree, so a peer that still holds a good copy
//! sends it back at the next exchange: that is how a scrubbed block is
//! repaired, with no repair path of its own. A collector drops every
//! owner's replica at once ([`Node::drop_replicas`]), or anti-entropy would
//! copy a dropped replica back from an owner that has not dropped it yet.

use crate::error::CallError;
use crate::proto::{Request, Response};
use crate::{BKey, Node, NodeError};
use bytes::Bytes;
use causal::Object;

impl Node {
    /// Partitions this node holds replicas in (owned or being handed off).
    pub fn local_partitions(&self) -> Vec<u16> {
        self.aae().trees.partitions()
    }

    /// This node's replicas of `bucket_type`/`bucket` in `partition` whose
    /// keys come after `after` (from the first if `None`), about
    /// `bytes_max` of them, in key order. An empty page means no more.
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub fn local_page(
        &self,
        partition: u16,
        bucket_type: &[u8],
        bucket: &[u8],
        after: Option<&[u8]>,
        bytes_max: usize,
    ) -> Result<Vec<(Bytes, Object)>, NodeError> {
        Ok(self
            .store()
            .scan_bucket_page(partition, bucket_type, bucket, after, bytes_max)?
            .into_iter()
            .map(|(k, o)| (Bytes::from(k), o))
            .collect())
    }

    /// Drop this node's replica of `key` in `partition` if no version of it
    /// was written after `modified_ms_max`; answers whether it did.
    ///
    /// Why the bound: it is checked under the key's lock, so a write that
    /// raced the caller's decision (a block re-uploaded as the collector
    /// judged it unreferenced) keeps its replica.
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub async fn drop_local_replica(
        &self,
        partition: u16,
        key: &BKey,
        modified_ms_max: u64,
    ) -> Result<bool, NodeError> {
        let okey = Self::object_key(key, partition);
        let _guard = self.key_lock(key).lock().await;
        let Some(obj) = self.store().get_object(&okey)? else {
            return Ok(false);
        };
        if obj
            .siblings()
            .iter()
            .any(|s| s.meta.last_modified_ms > modified_ms_max)
        {
            return Ok(false);
        }
        // Before the replica goes: see `Node::new_epoch`.
        self.new_epoch().await?;
        self.aae()
            .trees
            .update(partition, &okey.encode(), &obj, &Object::new());
        let was = store::IndexTerms::of(&obj);
        self.store().delete_objects(&[(okey, was)], true).await?;
        Ok(true)
    }

    /// Whether this node is the first owner of `partition` in the current
    /// layout: the one that runs cluster-wide chores for it, so that they
    /// run once and not on every replica.
    pub fn leads_partition(&self, partition: u16) -> bool {
        self.layout()
            .owners(ring::PartitionId(partition))
            .first()
            .is_some_and(|o| *o == self.id())
    }

    /// Drop every owner's replica of `key` (as [`Node::drop_local_replica`]
    /// on each), at once, so anti-entropy between them has no copy left to
    /// send back; answers how many were dropped. Drops nothing while the
    /// layout is in transition (replicas are moving).
    ///
    /// # Errors
    ///
    /// The first failure of a local drop or a call; the other owners'
    /// drops still happen.
    pub async fn drop_replicas(
        &self,
        key: &BKey,
        modified_ms_max: u64,
    ) -> Result<usize, NodeError> {
        if self.layouts().in_transition() {
            return Ok(0);
        }
        let n_val = self.bucket_props(&key.bucket_type, &key.bucket).n_val;
        let loc = self.locate(key, n_val)?;
        let (p, pl) = (loc.partition, loc.pl);
        let drops = pl.primaries.iter().map(|owner| async move {
            if *owner == self.id() {
                return self.drop_local_replica(p, key, modified_ms_max).await;
            }
            let req = Request::DropReplica {
                key: key.clone(),
                partition: p,
                modified_ms_max,
            };
            match self
                .call(*owner, req, self.config().request_timeout())
                .await
            {
                Ok(Response::Dropped(d)) => Ok(d),
                Ok(other) => Err(NodeError::peer(*owner)(CallError::Unexpected(other.name()))),
                Err(e) => Err(NodeError::peer(*owner)(e)),
            }
        });
        let mut dropped = 0;
        for r in futures::future::join_all(drops).await {
            dropped += usize::from(r?);
        }
        Ok(dropped)
    }

    /// Overwrite the bytes of this node's replica of `key` in place,
    /// keeping its versions and its anti-entropy tree entry: simulated bit
    /// rot, for tests of scrubbing. Answers whether a replica was there.
    ///
    /// # Errors
    ///
    /// [`NodeError::BadRequest`] unless the node runs with
    /// `enable_fault_injection`; storage failures.
    pub async fn damage_local_replica(&self, key: &BKey, value: Bytes) -> Result<bool, NodeError> {
        if !self.config().enable_fault_injection {
            return Err(NodeError::BadRequest(
                "fault injection is off; start the node with --enable-fault-injection".into(),
            ));
        }
        let layout = self.layout();
        let p = ring::partition_of(layout.bits(), &key.bucket_type, &key.bucket, &key.key);
        let okey = Self::object_key(key, p.0);
        let _guard = self.key_lock(key).lock().await;
        let Some(mut obj) = self.store().get_object(&okey)? else {
            return Ok(false);
        };
        obj.overwrite_values(&value);
        self.store()
            .put_object_staged(&okey, &obj, &store::IndexTerms::of(&obj), true)
            .await?
            .wait()
            .await?;
        tracing::warn!(?key, "replica damaged on purpose (fault injection)");
        Ok(true)
    }
}
