//! # The write path
//!
//! 1. The node that received the client's write resolves the bucket's
//!    properties and forwards the write to the first primary of the key it
//!    can reach (itself when it is one). Only a primary makes dots, so the
//!    version vector holds at most one entry per primary and epoch.
//! 2. The coordinating primary, holding the key's lock, reads its replica,
//!    applies the write with a fresh dot, and stores the result.
//! 3. It sends the merged object to the other primaries, which merge it
//!    into theirs, and answers once the [`QuorumTracker`] says `w` acks
//!    arrived (`dw` of them after fsync, `pw` from primaries). Replication
//!    to the remaining primaries continues after the answer.
//!
//! Why a write forwarded once is never re-sent to another primary after a
//! timeout: the first may have applied it, and a second coordinator would
//! make a second dot for the same client write, a spurious sibling.

use crate::error::{NodeError, QuorumError};
use crate::proto::{Request, Response};
use crate::quorum::{self, Kind, Progress, QuorumTracker};
use crate::{BKey, Node, PutCommand, RequestOptions};
use bytes::Bytes;
use causal::{Meta, Object, VersionVector};
use net::RpcError;
use ring::{NodeId, PreferenceList};
use store::ObjectKey;
use tokio::sync::mpsc;

impl Node {
    /// Store `value` under `key`, replacing what `context` covers.
    ///
    /// # Errors
    ///
    /// Bad quorum values (400), quorum not met (503), storage failures.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future after the write was forwarded does not stop it:
    /// the coordinator finishes (and replicates) on its own.
    pub async fn put(
        &self,
        key: BKey,
        value: Bytes,
        meta: Meta,
        context: VersionVector,
        options: RequestOptions,
    ) -> Result<Object, NodeError> {
        let props = self.bucket_props(&key.bucket_type, &key.bucket);
        let cmd = PutCommand {
            key,
            value,
            meta,
            context,
            options,
            props,
        };
        self.route_put(cmd).await
    }

    /// Delete `key`: write a tombstone covering `context`, or, without a
    /// context, covering whatever a quorum read finds (as Riak does).
    ///
    /// # Errors
    ///
    /// As [`Node::put`].
    pub async fn delete(
        &self,
        key: BKey,
        context: Option<VersionVector>,
        options: RequestOptions,
    ) -> Result<(), NodeError> {
        let context = match context {
            Some(c) => c,
            None => match self.get(&key, &options).await? {
                Some(obj) => obj.context().clone(),
                None => return Ok(()),
            },
        };
        let meta = Meta {
            deleted: true,
            ..Meta::default()
        };
        self.put(key, Bytes::new(), meta, context, options)
            .await
            .map(|_| ())
    }

    pub(crate) fn preference_list(
        &self,
        key: &BKey,
        n_val: u8,
    ) -> Result<(u16, PreferenceList), NodeError> {
        let layout = self.layout();
        let p = ring::partition_of(layout.bits(), &key.bucket_type, &key.bucket, &key.key);
        let pl = layout
            .preference_list(p, usize::from(n_val))
            .map_err(|e| NodeError::Unavailable(e.to_string()))?;
        Ok((p.0, pl))
    }

    pub(crate) fn object_key(key: &BKey, partition: u16) -> ObjectKey {
        ObjectKey {
            partition,
            bucket_type: key.bucket_type.clone(),
            bucket: key.bucket.clone(),
            key: key.key.clone(),
        }
    }

    async fn route_put(&self, cmd: PutCommand) -> Result<Object, NodeError> {
        let (_, pl) = self.preference_list(&cmd.key, cmd.props.n_val)?;
        if pl.primaries.contains(&self.id()) {
            return self.coordinate_put(cmd).await;
        }
        let timeout = cmd.options.timeout(self.config().request_timeout());
        let started = tokio::time::Instant::now();
        let mut failures = Vec::new();
        for primary in &pl.primaries {
            let left = timeout.saturating_sub(started.elapsed());
            let Some(addr) = self.rpc_addr(*primary) else {
                failures.push((primary.to_string(), "address unknown".to_string()));
                continue;
            };
            match self
                .inner
                .rpc
                .call(&addr, Request::CoordinatePut(Box::new(cmd.clone())), left)
                .await
            {
                Ok(Response::Put(obj)) => return Ok(obj),
                Ok(Response::Error(e)) => return Err(e),
                Ok(other) => {
                    failures.push((primary.to_string(), format!("unexpected answer {other:?}")))
                }
                // Never delivered: safe to try the next primary.
                Err(e @ (RpcError::Connect { .. } | RpcError::Handshake(_))) => {
                    failures.push((primary.to_string(), e.to_string()));
                }
                Err(e) => {
                    failures.push((primary.to_string(), e.to_string()));
                    break;
                }
            }
        }
        Err(NodeError::Quorum(QuorumError {
            op: "put".into(),
            required: "a reachable primary to coordinate the write".into(),
            acked: Vec::new(),
            asked: pl.primaries.len(),
            failures,
        }))
    }

    /// A timestamp for a new sibling: after every sibling already stored, so
    /// a node with a slow clock cannot make its write lose to older ones.
    fn timestamp_after(&self, obj: &Object) -> u64 {
        let newest = obj
            .siblings()
            .iter()
            .map(|s| s.meta.last_modified_ms)
            .max()
            .unwrap_or(0);
        self.now().wall_ms.max(newest + 1)
    }

    pub(crate) async fn coordinate_put(&self, cmd: PutCommand) -> Result<Object, NodeError> {
        let (partition, pl) = self.preference_list(&cmd.key, cmd.props.n_val)?;
        let targets = self.primary_targets(&pl);
        let req = quorum::requirement(
            Kind::Write,
            &cmd.props,
            &cmd.options,
            &targets,
            &self.config().zone,
        )?;
        let durable = req.durable > 0;
        let collapse = cmd.props.last_write_wins || !cmd.props.allow_mult;
        let okey = Self::object_key(&cmd.key, partition);
        let object = {
            let _guard = self.key_lock(&cmd.key).lock().await;
            let mut obj = self.inner.store.get_object(&okey)?.unwrap_or_default();
            let meta = Meta {
                last_modified_ms: self.timestamp_after(&obj),
                ..cmd.meta
            };
            obj.update(&cmd.context, self.inner.actor, cmd.value, meta);
            if collapse {
                obj.keep_newest();
            }
            // The lock covers only read-modify-apply; the fsync is awaited
            // below, outside it, as this node's own acknowledgement.
            let pending = self
                .inner
                .store
                .put_object_staged(&okey, &obj, durable)
                .await?;
            (obj, pending)
        };
        let (object, mut local_sync) = (object.0, Some(object.1));
        let timeout = cmd.options.timeout(self.config().request_timeout());
        // Bounded by: one reply per primary.
        let (tx, mut rx) = mpsc::channel(targets.len().max(1));
        for t in &targets {
            let (node, tx, obj, key) = (self.clone(), tx.clone(), object.clone(), cmd.key.clone());
            let target = t.node;
            if target == self.id() {
                let Some(pending) = local_sync.take() else {
                    continue;
                };
                tokio::spawn(async move {
                    let reply = pending
                        .wait()
                        .await
                        .map(|()| durable)
                        .map_err(|e| e.to_string());
                    let _ = tx.send((target, reply)).await;
                });
                continue;
            }
            tokio::spawn(async move {
                let reply = node
                    .replicate_to(target, key, obj, durable, collapse, timeout)
                    .await;
                let _ = tx.send((target, reply)).await;
            });
        }
        drop(tx);
        let mut tracker = QuorumTracker::new(req, targets);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let timed_out = loop {
            tokio::select! {
                reply = rx.recv() => {
                    let Some((node, reply)) = reply else { break false };
                    match tracker.record(node, reply) {
                        Progress::Met => return Ok(object),
                        Progress::Impossible => break false,
                        Progress::Pending => {}
                    }
                }
                () = &mut deadline => break true,
            }
        };
        Err(NodeError::Quorum(tracker.error("put", timed_out)))
    }

    /// Make another node hold `obj` (merged into what it has).
    async fn replicate_to(
        &self,
        target: NodeId,
        key: BKey,
        obj: Object,
        durable: bool,
        collapse: bool,
        timeout: std::time::Duration,
    ) -> Result<bool, String> {
        let req = Request::Replicate {
            key,
            object: obj,
            durable,
            collapse,
        };
        match self.call(target, req, timeout).await? {
            Response::Replicated { durable } => Ok(durable),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    /// Merge a replicated object into the local replica.
    pub(crate) async fn apply_replica(
        &self,
        key: &BKey,
        incoming: &Object,
        durable: bool,
        collapse: bool,
    ) -> Result<bool, NodeError> {
        let layout = self.layout();
        let partition =
            ring::partition_of(layout.bits(), &key.bucket_type, &key.bucket, &key.key).0;
        let okey = Self::object_key(key, partition);
        let pending = {
            let _guard = self.key_lock(key).lock().await;
            let mut obj = self.inner.store.get_object(&okey)?.unwrap_or_default();
            let before = obj.clone();
            obj.merge(incoming);
            if collapse {
                obj.keep_newest();
            }
            if obj == before {
                None
            } else {
                Some(
                    self.inner
                        .store
                        .put_object_staged(&okey, &obj, durable)
                        .await?,
                )
            }
        };
        if durable {
            match pending {
                Some(p) => p.wait().await?,
                // Nothing new, but what we hold may not be fsynced yet.
                None => self.inner.store.sync().await?,
            }
        }
        Ok(durable)
    }
}
