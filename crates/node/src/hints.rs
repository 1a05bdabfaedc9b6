//! # Hinted handoff
//!
//! When a primary does not acknowledge a write, the write must still reach
//! it. The coordinator asks the next fallback node (one that is not a
//! primary of the key) to hold the write as a *hint* naming the primary;
//! the fallback's acknowledgement counts towards `w` and `dw` but not `pw`
//! (sloppy quorum). When no fallback can take it (a cluster of exactly
//! `n_val` nodes has none), the coordinator keeps the hint itself; that
//! counts towards nothing, but the primary still gets the write.
//!
//! Hints live in their own keyspace, one per (primary, key), merged by
//! causality like replicas, and are fsynced like the write they carry.
//! Unlike Cassandra's, they do not expire: every `hint_delivery_interval`
//! the node sends each primary it holds hints for batches of
//! `hint_batch_max` (32 in flight) until the primary has them all or stops
//! answering, and deletes a hint only after the primary acknowledged it
//! durably and only if the hint did not change meanwhile.
//!
//! Delivery does not wait for the failure detector to call the primary up:
//! trying costs one refused connection (or one timeout) per target and
//! interval, in the background, and a primary back from a crash gets its
//! hints within one interval of listening again. Only a primary the
//! detector declared down is skipped, and when the detector sees it come
//! up, a round starts at once.

use crate::proto::{Request, Response};
use crate::{BKey, Node, NodeError};
use causal::Object;
use futures::StreamExt;
use ring::NodeId;
use std::time::Duration;

/// Longest wait for one hint delivery call: short, because a call that
/// was swallowed by a partition holds up the next round until it expires.
const DELIVERY_TIMEOUT_MAX: Duration = Duration::from_millis(500);
/// Hint deliveries in flight to one target; the target group-commits
/// their fsyncs.
const DELIVERIES_INFLIGHT_MAX: usize = 32;

impl Node {
    /// Hold `obj` for `target` (merged into any hint already held).
    pub(crate) async fn store_hint(
        &self,
        target: NodeId,
        key: &BKey,
        obj: &Object,
        durable: bool,
    ) -> Result<(), NodeError> {
        let partition = ring::partition_of(
            self.layout().bits(),
            &key.bucket_type,
            &key.bucket,
            &key.key,
        )
        .0;
        let okey = Self::object_key(key, partition);
        let created = {
            let _guard = self.key_lock(key).lock().await;
            let existing = self.inner.store.get_hint(target.0, &okey)?;
            let created = existing.is_none();
            let mut merged = existing.unwrap_or_default();
            merged.merge(obj);
            self.inner
                .store
                .put_hint(target.0, &okey, &merged, durable)
                .await?;
            created
        };
        if created {
            if let Ok(mut counts) = self.inner.hint_counts.lock() {
                *counts.entry(target).or_insert(0) += 1;
            }
        }
        Ok(())
    }

    /// Hints this node holds for `target`.
    pub fn hints_pending(&self, target: NodeId) -> u64 {
        self.inner
            .hint_counts
            .lock()
            .map(|c| c.get(&target).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Hints this node holds, per target.
    pub fn hints_pending_all(&self) -> Vec<(NodeId, u64)> {
        self.inner
            .hint_counts
            .lock()
            .map(|c| {
                c.iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(t, n)| (*t, *n))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Deliver hints forever, one round per interval.
pub(crate) async fn run(node: Node) {
    let mut tick = tokio::time::interval(node.config().hint_delivery_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Biased: a fixed polling order, so a simulated run replays exactly.
            biased;
            _ = tick.tick() => {}
            () = node.inner.hints_wake.notified() => {}
        }
        // Why skip down targets: a call into a partition is swallowed and
        // holds the round until its timeout, which would then delay the
        // delivery that the detector's "up" is about to trigger.
        let targets = node.hints_pending_all();
        let rounds = targets
            .into_iter()
            .filter(|(t, _)| !node.is_down(*t))
            .map(|(t, _)| deliver(&node, t));
        futures::future::join_all(rounds).await;
    }
}

/// Send `target` its hints, a batch at a time, several in flight: batch
/// after batch while it acknowledges them all, so a long partition drains
/// at the target's speed rather than one batch per interval. The round ends
/// at the first failure (the target is still away) or when a batch
/// delivers nothing (every hint in it changed meanwhile: next round).
async fn deliver(node: &Node, target: NodeId) {
    loop {
        let batch = match node
            .inner
            .store
            .hints_for(target.0, node.config().hint_batch_max)
        {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read hints");
                return;
            }
        };
        let full = batch.len() == node.config().hint_batch_max;
        let before = node.hints_pending(target);
        let failed = std::sync::atomic::AtomicBool::new(false);
        futures::stream::iter(batch)
            .for_each_concurrent(DELIVERIES_INFLIGHT_MAX, |(okey, obj)| {
                let failed = &failed;
                async move {
                    if failed.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    if !deliver_one(node, target, okey, obj).await {
                        failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            })
            .await;
        let progressed = node.hints_pending(target) < before;
        if !full || !progressed || failed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
    }
}

/// Deliver one hint; on a durable acknowledgement, delete it. Returns
/// whether the target acknowledged.
async fn deliver_one(node: &Node, target: NodeId, okey: store::ObjectKey, obj: Object) -> bool {
    let timeout = node.config().request_timeout().min(DELIVERY_TIMEOUT_MAX);
    let key = BKey {
        bucket_type: okey.bucket_type.clone(),
        bucket: okey.bucket.clone(),
        key: okey.key.clone(),
    };
    let props = node.bucket_props(&key.bucket_type, &key.bucket);
    let collapse = props.last_write_wins || !props.allow_mult;
    let req = Request::Replicate {
        key: key.clone(),
        object: obj.clone(),
        durable: true,
        collapse,
    };
    match node.call(target, req, timeout).await {
        Ok(Response::Replicated { durable: true }) => {}
        _ => return false,
    }
    // Why compare before deleting: a write may have merged more into the
    // hint while it was in flight; that version must be sent too.
    let removed = {
        let _guard = node.key_lock(&key).lock().await;
        match node.inner.store.get_hint(target.0, &okey) {
            Ok(Some(current)) if current == obj => {
                node.inner.store.remove_hint(target.0, &okey).await.is_ok()
            }
            _ => false,
        }
    };
    if removed {
        if let Ok(mut counts) = node.inner.hint_counts.lock() {
            if let Some(n) = counts.get_mut(&target) {
                *n = n.saturating_sub(1);
            }
        }
        node.inner
            .stats
            .hints_delivered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    true
}
