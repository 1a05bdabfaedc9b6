//! # The write path
//!
//! 1. The node that received the client's write resolves the bucket's
//!    properties and forwards the write to the first primary of the key it
//!    can reach (itself when it is one). Only a primary makes dots, so the
//!    version vector holds at most one entry per primary and epoch.
//! 2. The coordinating primary, holding the key's lock, reads its replica
//!    and applies the write with a fresh dot.
//! 3. It sends the new object to the other primaries, which merge it into
//!    theirs, and meanwhile stores it in its own replica. It answers once
//!    the [`QuorumTracker`] says `w` acks arrived (`dw` of them after
//!    fsync, `pw` from primaries). Replication to the remaining primaries
//!    continues after the answer.
//!
//! Why a write forwarded once is never re-sent to another primary after a
//! timeout: the first may have applied it, and a second coordinator would
//! make a second dot for the same client write, a spurious sibling.

use crate::coord::write::{WriteCoordinator, WriteRules};
use crate::error::{CallError, Needed, NodeError, QuorumError};
use crate::locate::Located;
use crate::proto::{Request, Response};
use crate::quorum::{self, Kind, Target};
use crate::replicate::ReplicaWrite;
use crate::{BKey, Node, PutCommand, RequestOptions};
use bytes::Bytes;
use causal::{Meta, Object, VersionVector};
use net::RpcError;
use ring::NodeId;
use std::sync::Arc;
use store::ObjectKey;
use tokio::sync::oneshot;

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

    async fn route_put(&self, cmd: PutCommand) -> Result<Object, NodeError> {
        self.ensure_seeded().await?;
        let loc = self.locate(&cmd.key, cmd.props.n_val)?;
        if loc.pl.primaries.contains(&self.id()) {
            return self.coordinate_located(cmd, loc).await;
        }
        let pl = loc.pl;
        let timeout = self.write_timeout(&cmd);
        let started = tokio::time::Instant::now();
        let mut failures = Vec::new();
        // Primaries the failure detector declared down go last: a paused
        // process takes the forward and never answers, and a forward that
        // timed out cannot be retried elsewhere (see the module doc).
        // Among the live ones, those in this node's zone go first: the
        // coordinator's zone is the one `local_quorum` counts in, and a
        // forward to another data center costs a WAN round trip before
        // the write even starts.
        let mut primaries = pl.primaries.clone();
        let layout = self.layout();
        let zone = &self.config().zone;
        let elsewhere = |p: &NodeId| layout.member(*p).is_none_or(|m| &m.zone != zone);
        primaries.sort_by_key(|p| (self.is_down(*p), elsewhere(p)));
        for primary in &primaries {
            let left = timeout.saturating_sub(started.elapsed());
            let req = Request::CoordinatePut(Box::new(cmd.clone()));
            match self.call(*primary, req, left).await {
                Ok(Response::Put(obj)) => return Ok(obj),
                Err(CallError::Remote(e)) => return Err(NodeError::from_wire(e)),
                Ok(other) => failures.push((*primary, CallError::Unexpected(other.name()).into())),
                // Never delivered: safe to try the next primary.
                Err(
                    e @ (CallError::AddressUnknown
                    | CallError::Transport(RpcError::Connect { .. } | RpcError::Handshake(_))),
                ) => failures.push((*primary, e.into())),
                Err(e) => {
                    failures.push((*primary, e.into()));
                    break;
                }
            }
        }
        Err(NodeError::Quorum(Box::new(QuorumError {
            op: "put",
            needed: Needed::Coordinator,
            acked: Vec::new(),
            asked: pl.primaries.len(),
            failures,
        })))
    }

    /// What a write needs: the requirement over the primaries (the first
    /// `primaries` targets), and during a layout transition the same
    /// quorum among the stable owners (`stable_slots`) too.
    fn write_requirement(
        &self,
        cmd: &PutCommand,
        targets: &[Target],
        primaries: usize,
        stable_slots: Option<Vec<usize>>,
    ) -> Result<quorum::Requirement, NodeError> {
        let zone = &self.config().zone;
        let current = &targets[..primaries];
        let mut req = quorum::requirement(Kind::Write, &cmd.props, &cmd.options, current, zone)?;
        let Some(stable_slots) = stable_slots else {
            return Ok(req);
        };
        let stable_targets: Vec<Target> =
            stable_slots.iter().map(|i| targets[*i].clone()).collect();
        let stable_req =
            quorum::requirement(Kind::Write, &cmd.props, &cmd.options, &stable_targets, zone)?;
        req.groups = vec![
            quorum::SlotGroup {
                slots: (0..primaries).collect(),
                need: req.total,
            },
            quorum::SlotGroup {
                slots: stable_slots,
                need: stable_req.total,
            },
        ];
        req.described = format!("{} (and as many of the previous owners)", req.described);
        Ok(req)
    }

    /// A write's deadline: the client's `timeout`, or `request_timeout_ms`
    /// plus the time its value takes at `transfer_floor_bytes_per_sec`, so
    /// a 50 MiB value is not a 503 for being 50 MiB.
    fn write_timeout(&self, cmd: &PutCommand) -> std::time::Duration {
        let cfg = self.config();
        cmd.options
            .timeout(cfg.request_timeout() + cfg.transfer_allowance(cmd.value.len()))
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

    /// Coordinate a write forwarded here by another node.
    pub(crate) async fn coordinate_put(&self, cmd: PutCommand) -> Result<Object, NodeError> {
        self.ensure_seeded().await?;
        let loc = self.locate(&cmd.key, cmd.props.n_val)?;
        self.coordinate_located(cmd, loc).await
    }

    /// Coordinate a write as one of the key's primaries (`loc`).
    async fn coordinate_located(&self, cmd: PutCommand, loc: Located) -> Result<Object, NodeError> {
        let (targets, stable_slots) = loc.write_targets();
        let req = self.write_requirement(&cmd, &targets, loc.pl.primaries.len(), stable_slots)?;
        let partition = loc.partition;
        let pl = &loc.pl;
        let durable = req.durable > 0;
        let collapse = cmd.props.last_write_wins || !cmd.props.allow_mult;
        let okey = loc.object_key(&cmd.key);
        let timeout = self.write_timeout(&cmd);
        // Owned: the guard goes on with the local write's task below.
        let guard = self.key_lock(&cmd.key).clone().lock_owned().await;
        let mut object = self.store().get_object(&okey)?.unwrap_or_default();
        let tree_key = okey.encode();
        let old = crate::aae::contribution(&tree_key, &object);
        let was = store::IndexTerms::of(&object);
        let meta = Meta {
            last_modified_ms: self.timestamp_after(&object),
            ..cmd.meta
        };
        // An exhausted counter (unreachable: see `Object::update`) leaves
        // the object untouched, and the key's lock goes with this return.
        object
            .update_above(
                &cmd.context,
                self.actor(),
                self.reaper().dot_floor(),
                cmd.value,
                meta,
            )
            .map_err(|e| NodeError::Unavailable(e.to_string()))?;
        if collapse {
            object.keep_newest();
        }
        self.aae()
            .trees
            .update_from(partition, &tree_key, old, &object);
        // Why the other replicas are sent the object before this node has
        // stored it: storing waits for the writer thread's current round
        // (its gather and fsync, a few ms under load), and the remote
        // replicas need not wait for that. Merging is commutative, so the
        // order in which replicas apply it does not matter.
        let cfg = self.config();
        // Scaled by the object's size: a primary that is receiving a
        // large value is answering, and must not be handed off for it.
        let patience = (cfg.replica_patience()
            + cfg.transfer_allowance(crate::object_bytes(&object)))
        .min(timeout);
        let rules = WriteRules {
            hinted_handoff: cfg.hinted_handoff,
            patience_ms: patience.as_millis() as u64,
        };
        let coord = WriteCoordinator::new(req, targets.clone(), &pl.fallbacks, self.id(), rules);
        let write = Arc::new(ReplicaWrite {
            key: cmd.key.clone(),
            obj: object.clone(),
            durable,
            collapse,
            timeout,
            patience,
            _writing: self.reaper().writing(&cmd.key),
        });
        let (local_tx, local_rx) = match targets.iter().position(|t| t.node == self.id()) {
            Some(slot) => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some((slot, rx)))
            }
            None => (None, None),
        };
        let (answer_tx, answer_rx) = oneshot::channel();
        tokio::spawn(self.clone().drive_write(coord, write, local_rx, answer_tx));
        self.spawn_local_write(okey, object.clone(), was, durable, guard, local_tx);
        match answer_rx.await {
            Ok(Ok(())) => Ok(object),
            Ok(Err(quorum)) => Err(NodeError::Quorum(quorum)),
            Err(_) => Err(NodeError::Unavailable(
                "the write's replication task stopped (the node is shutting down)".into(),
            )),
        }
    }

    /// Store `object` in this node's replica, in a task of its own that
    /// holds the key's lock until the write is applied (so the next write
    /// of the key here reads it), then reports its ack on `local`'s channel
    /// once it is durable, as a remote replica's task does.
    ///
    /// Why a task, and not awaited before the quorum: storing waits for the
    /// writer thread's current round, and a round stalls now and then (an
    /// fsync of 10-25 ms, fjall rotating its journal). Awaited, that stall
    /// held up every write this node coordinated, even once the other
    /// replicas had acknowledged; as one ack among `n`, a slow local disk
    /// is masked like a slow peer's.
    fn spawn_local_write(
        &self,
        okey: ObjectKey,
        object: Object,
        was: store::IndexTerms,
        durable: bool,
        guard: tokio::sync::OwnedMutexGuard<()>,
        local: Option<oneshot::Sender<Result<bool, store::StoreError>>>,
    ) {
        let node = self.clone();
        tokio::spawn(async move {
            let staged = node
                .store()
                .put_object_staged(&okey, &object, &was, durable)
                .await;
            drop(guard);
            let reply = match staged {
                Ok(pending) => pending.wait().await.map(|()| durable),
                Err(e) => {
                    // Other replicas may hold the new dot while this one
                    // does not: without a new epoch the next write here
                    // would take the same counter (see `Node::new_epoch`).
                    if let Err(epoch) = node.new_epoch().await {
                        tracing::error!(error = %epoch, "cannot move to a new epoch after a failed write");
                    }
                    Err(e)
                }
            };
            if let Some(tx) = local {
                let _ = tx.send(reply);
            }
        });
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
            let mut obj = self.store().get_object(&okey)?.unwrap_or_default();
            let before = obj.clone();
            // Without what a tombstone reaped lately covered (see `reap`).
            if let Some(screened) = self.reaper().screen(key, incoming) {
                obj.merge(&screened);
            }
            if collapse {
                obj.keep_newest();
            }
            if obj == before {
                None
            } else {
                self.aae()
                    .trees
                    .update(partition, &okey.encode(), &before, &obj);
                Some(
                    self.store()
                        .put_object_staged(&okey, &obj, &store::IndexTerms::of(&before), durable)
                        .await?,
                )
            }
        };
        if durable {
            match pending {
                Some(p) => p.wait().await?,
                // Nothing new, but what we hold may not be fsynced yet.
                None => self.store().sync().await?,
            }
        }
        Ok(durable)
    }
}
