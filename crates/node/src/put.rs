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

use crate::error::{CallError, Needed, NodeError, QuorumError, ReplicaFailure};
use crate::locks::Held;
use crate::proto::{Request, Response};
use crate::quorum::{self, Kind, Progress, QuorumTracker, Target};
use crate::{BKey, Node, PutCommand, RequestOptions};
use bytes::Bytes;
use causal::{Meta, Object, VersionVector};
use net::RpcError;
use ring::{NodeId, PreferenceList};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use store::ObjectKey;
use tokio::sync::mpsc;

/// Fallback nodes not yet used by this write.
type FallbackPool = Arc<Mutex<VecDeque<NodeId>>>;

/// Where a replica's task sends `(slot, who answered, reply)`.
type ReplySender = mpsc::Sender<(usize, Target, Result<bool, ReplicaFailure>)>;

/// One replica's share of a write.
#[derive(Clone)]
struct ReplicaWrite {
    key: BKey,
    obj: Object,
    durable: bool,
    collapse: bool,
    timeout: std::time::Duration,
    /// When the write was acknowledged (unset until then): replicas in
    /// other zones that confirm later record their lag (`node::lag`).
    acked: Arc<std::sync::OnceLock<tokio::time::Instant>>,
    /// Marks the key as written here until every replication task of the
    /// write has ended (the tombstone reaper waits for those).
    _writing: Arc<crate::reap::Writing>,
}

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
        self.check_seeded()?;
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
        self.ensure_seeded().await?;
        let (_, pl) = self.preference_list(&cmd.key, cmd.props.n_val)?;
        if pl.primaries.contains(&self.id()) {
            return self.coordinate_put(cmd).await;
        }
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

    /// Who a write goes to and what it needs. In a layout transition the
    /// stable owners that are not current owners are added, and the write
    /// needs the same quorum among the stable owners as among the current
    /// ones, so the owners that new ones pull from hold every acknowledged
    /// write.
    fn write_targets(
        &self,
        cmd: &PutCommand,
        partition: u16,
        pl: &PreferenceList,
    ) -> Result<(Vec<Target>, quorum::Requirement), NodeError> {
        let zone = &self.config().zone;
        let layouts = self.layouts();
        let mut targets: Vec<Target> = pl
            .primaries
            .iter()
            .map(|n| crate::node::target(&layouts, *n))
            .collect();
        let mut req = quorum::requirement(Kind::Write, &cmd.props, &cmd.options, &targets, zone)?;
        let p = ring::PartitionId(partition);
        let n_val = usize::from(cmd.props.n_val);
        let stable: Vec<NodeId> = layouts
            .stable
            .owners(p)
            .iter()
            .take(n_val)
            .copied()
            .collect();
        // Why not only when stable owners are missing from the targets: the
        // stable owners are the ones reads go to, so they need their quorum
        // even when every one of them is also a current owner. (A cluster
        // whose first layout is not synced yet has no stable owners.)
        if !layouts.in_transition() || stable.is_empty() {
            return Ok((targets, req));
        }
        let current_slots: Vec<usize> = (0..targets.len()).collect();
        let extra = layouts.extra_write_owners(p, n_val);
        targets.extend(extra.iter().map(|n| crate::node::target(&layouts, *n)));
        let stable_slots: Vec<usize> = (0..targets.len())
            .filter(|i| stable.contains(&targets[*i].node))
            .collect();
        let stable_targets: Vec<Target> =
            stable_slots.iter().map(|i| targets[*i].clone()).collect();
        let stable_req =
            quorum::requirement(Kind::Write, &cmd.props, &cmd.options, &stable_targets, zone)?;
        req.groups = vec![
            quorum::SlotGroup {
                slots: current_slots,
                need: req.total,
            },
            quorum::SlotGroup {
                slots: stable_slots,
                need: stable_req.total,
            },
        ];
        req.described = format!("{} (and as many of the previous owners)", req.described);
        Ok((targets, req))
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

    pub(crate) async fn coordinate_put(&self, cmd: PutCommand) -> Result<Object, NodeError> {
        self.ensure_seeded().await?;
        let (partition, pl) = self.preference_list(&cmd.key, cmd.props.n_val)?;
        let (targets, req) = self.write_targets(&cmd, partition, &pl)?;
        let durable = req.durable > 0;
        let collapse = cmd.props.last_write_wins || !cmd.props.allow_mult;
        let okey = Self::object_key(&cmd.key, partition);
        let timeout = self.write_timeout(&cmd);
        // Bounded by: one reply per target.
        let (tx, mut rx) = mpsc::channel(targets.len().max(1));
        // Owned: the guard goes on with the local write's task below.
        let guard = self.key_lock(&cmd.key).clone().lock_owned().await;
        let mut object = self.inner.store.get_object(&okey)?.unwrap_or_default();
        let tree_key = okey.encode();
        let old = crate::aae::contribution(&tree_key, &object);
        let was = store::RefTerms::of(&object);
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
                self.inner.reaper.dot_floor(),
                cmd.value,
                meta,
            )
            .map_err(|e| NodeError::Unavailable(e.to_string()))?;
        if collapse {
            object.keep_newest();
        }
        self.inner
            .trees
            .update_from(partition, &tree_key, old, &object);
        // Why the other replicas are sent the object before this node has
        // stored it: storing waits for the writer thread's current round
        // (its gather and fsync, a few ms under load), and the remote
        // replicas need not wait for that. Merging is commutative, so the
        // order in which replicas apply it does not matter.
        let write = ReplicaWrite {
            key: cmd.key.clone(),
            obj: object.clone(),
            durable,
            collapse,
            timeout,
            acked: Arc::default(),
            _writing: Arc::new(self.inner.reaper.writing(&cmd.key)),
        };
        let acked = write.acked.clone();
        self.spawn_replication(&targets, &pl.fallbacks, &write, &tx);
        let local = targets
            .iter()
            .position(|t| t.node == self.id())
            .map(|slot| (slot, targets[slot].clone(), tx.clone()));
        self.spawn_local_write(okey, write.obj, was, durable, guard, local);
        drop(tx);
        let mut tracker = QuorumTracker::new(req, targets);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let timed_out = loop {
            tokio::select! {
                // Biased: a fixed polling order, so a simulated run replays exactly.
                biased;
                reply = rx.recv() => {
                    let Some((slot, answered_by, reply)) = reply else { break false };
                    match tracker.record_at(slot, answered_by, reply) {
                        Progress::Met => {
                            let _ = acked.set(tokio::time::Instant::now());
                            return Ok(object);
                        }
                        Progress::Impossible => break false,
                        Progress::Pending => {}
                    }
                }
                () = &mut deadline => break true,
            }
        };
        Err(NodeError::Quorum(Box::new(tracker.error("put", timed_out))))
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
        was: store::RefTerms,
        durable: bool,
        guard: tokio::sync::OwnedMutexGuard<()>,
        local: Option<(usize, Target, ReplySender)>,
    ) {
        let node = self.clone();
        tokio::spawn(async move {
            let staged = node
                .inner
                .store
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
            if let Some((slot, t, tx)) = local {
                let _ = tx
                    .send((slot, t, reply.map_err(ReplicaFailure::Storage)))
                    .await;
            }
        });
    }

    /// Start one replication task per target other than this node; each
    /// sends `(slot, who answered, reply)` on `tx`.
    fn spawn_replication(
        &self,
        targets: &[Target],
        fallbacks: &[NodeId],
        write: &ReplicaWrite,
        tx: &ReplySender,
    ) {
        // Fallbacks still free to stand in for a primary, shared by the
        // replication tasks so no two pick the same one.
        let fallbacks: FallbackPool = Arc::new(Mutex::new(fallbacks.iter().copied().collect()));
        for (slot, t) in targets.iter().enumerate() {
            if t.node == self.id() {
                continue;
            }
            let (node, tx, t, fallbacks) = (self.clone(), tx.clone(), t.clone(), fallbacks.clone());
            let write = write.clone();
            tokio::spawn(async move {
                let acked = write.acked.clone();
                let (answered_by, reply) = node.replicate_or_hint(t, write, &fallbacks).await;
                if reply.is_ok() && answered_by.primary && answered_by.zone != node.config().zone {
                    let now = tokio::time::Instant::now();
                    let lag = acked
                        .get()
                        .map_or(std::time::Duration::ZERO, |at| now - *at);
                    node.inner.lag.record(&answered_by.zone, lag);
                }
                let _ = tx.send((slot, answered_by, reply)).await;
            });
        }
    }

    /// Write to `primary`; if it does not answer (or a recent call to it
    /// failed), have a fallback hold the write as a hint for it, or, with no
    /// fallback left, hold the hint here. Returns who acknowledged.
    ///
    /// Why a fallback's ack counts towards `w`: the write is on that many
    /// distinct nodes (sloppy quorum); it does not count towards `pw`, and
    /// a read quorum may miss it until the hint is delivered.
    async fn replicate_or_hint(
        &self,
        primary: Target,
        w: ReplicaWrite,
        fallbacks: &FallbackPool,
    ) -> (Target, Result<bool, ReplicaFailure>) {
        let handoff = self.config().hinted_handoff;
        // The call to the primary, if it outlived its patience: with no
        // fallback to stand in, it keeps the rest of the deadline.
        let mut late = None;
        let failure = if handoff && self.is_suspect(primary.node) {
            ReplicaFailure::Suspected
        } else {
            let req = Request::Replicate {
                key: w.key.clone(),
                object: w.obj.clone(),
                durable: w.durable,
                collapse: w.collapse,
            };
            let started = self.uptime_ms();
            let mut call = Box::pin(self.call(primary.node, req, w.timeout));
            // Why a patience shorter than the deadline: a partitioned
            // primary never refuses, it just never answers; waiting out the
            // deadline would leave every write meanwhile without a hint.
            // Abandoning the call is safe: the primary may still apply it,
            // and the hint delivers the same object again.
            // Scaled by the object's size: a primary that is receiving a
            // large value is answering, and must not be handed off for it.
            let patience = if handoff {
                let allowance = self
                    .config()
                    .transfer_allowance(crate::object_bytes(&w.obj));
                (self.config().replica_patience() + allowance).min(w.timeout)
            } else {
                w.timeout
            };
            match tokio::time::timeout(patience, &mut call).await {
                Ok(Ok(Response::Replicated { durable })) => return (primary, Ok(durable)),
                Ok(Ok(other)) => CallError::Unexpected(other.name()).into(),
                Ok(Err(e)) => e.into(),
                Err(_) => {
                    self.mark_failed(primary.node, started);
                    late = Some(call);
                    ReplicaFailure::Impatient {
                        patience_ms: patience.as_millis() as u64,
                    }
                }
            }
        };
        if !handoff {
            return (primary, Err(failure));
        }
        let layout = self.layout();
        let zone_of = |n: NodeId| layout.member(n).map(|m| m.zone.as_str());
        loop {
            let next = quorum::take_fallback(&mut fallbacks.held(), &primary.zone, zone_of, |n| {
                self.is_suspect(n)
            });
            let Some(fallback) = next else { break };
            let req = Request::StoreHint {
                target: primary.node.0,
                key: w.key.clone(),
                object: w.obj.clone(),
                durable: w.durable,
            };
            if let Ok(Response::Replicated { durable }) = self.call(fallback, req, w.timeout).await
            {
                let zone = self
                    .layout()
                    .member(fallback)
                    .map(|m| m.zone.clone())
                    .unwrap_or_default();
                return (
                    Target {
                        node: fallback,
                        zone,
                        primary: false,
                    },
                    Ok(durable),
                );
            }
        }
        let hinted = self
            .store_hint(primary.node, &w.key, &w.obj, w.durable)
            .await;
        // Why wait on for a primary that no other node can stand in for: a
        // slow primary (a disk stalled for half a second under load) is not
        // a lost one, and its answer may still make `w`. The hint kept here
        // covers the case where it never answers.
        if let Some(call) = late {
            if let Ok(Response::Replicated { durable }) = call.await {
                return (primary, Ok(durable));
            }
        }
        match hinted {
            Ok(()) => (primary, Err(ReplicaFailure::Hinted(Box::new(failure)))),
            Err(e) => {
                tracing::error!(error = %e, primary = %primary.node, "cannot keep a hint");
                let failure = ReplicaFailure::HintFailed {
                    failure: Box::new(failure),
                    error: Box::new(e),
                };
                (primary, Err(failure))
            }
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
            // Without what a tombstone reaped lately covered (see `reap`).
            if let Some(screened) = self.inner.reaper.screen(key, incoming) {
                obj.merge(&screened);
            }
            if collapse {
                obj.keep_newest();
            }
            if obj == before {
                None
            } else {
                self.inner
                    .trees
                    .update(partition, &okey.encode(), &before, &obj);
                Some(
                    self.inner
                        .store
                        .put_object_staged(&okey, &obj, &store::RefTerms::of(&before), durable)
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
