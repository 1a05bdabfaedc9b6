//! # The read path
//!
//! The node that received the read coordinates it: it asks every primary
//! of the key, answers once `r` replies count (a "not found" counts when
//! `notfound_ok`), merges the objects it has by causality, and then keeps
//! listening in the background: when every replica has answered or the
//! deadline passed, it sends the merged object to each replica that lacked
//! part of it (read repair).
//!
//! Why `r + w > n` gives read-your-writes: any `r` primaries overlap any
//! `w` primaries that acknowledged the write. It does not hold when a
//! replica was replaced or substituted, which read repair then covers.

use crate::coord::read::{ReadCoordinator, ReadReply, ReadRules, ReadStep};
use crate::error::{CallError, ReplicaFailure};
use crate::proto::{Request, Response};
use crate::quorum::{self, Kind, Target};
use crate::{BKey, Node, NodeError, RequestOptions};
use causal::Object;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use ring::NodeId;
use std::time::Duration;

/// One replica's answer, with who gave it.
type Reply = (NodeId, ReadReply);

/// Replica reads still in flight. Polled by the request, then handed to the
/// read-repair task once the client has its answer (no task per replica:
/// dropping a read loses nothing but the repair).
type Inflight = FuturesUnordered<BoxFuture<'static, Reply>>;

impl Node {
    /// Read `key` from a quorum of its replicas. `Ok(None)` means no
    /// replica has anything; an object whose siblings are all tombstones is
    /// returned as is (the HTTP layer answers 404 with its context).
    ///
    /// # Errors
    ///
    /// Bad quorum values (400), quorum not met (503).
    pub async fn get(
        &self,
        key: &BKey,
        options: &RequestOptions,
    ) -> Result<Option<Object>, NodeError> {
        self.ensure_seeded().await?;
        let props = self.bucket_props(&key.bucket_type, &key.bucket);
        let targets = self.locate(key, props.n_val)?.read_targets();
        let req = quorum::requirement(Kind::Read, &props, options, &targets, &self.config().zone)?;
        let rules = ReadRules {
            notfound_ok: options.notfound_ok.unwrap_or(props.notfound_ok),
            basic_quorum: options.basic_quorum.unwrap_or(props.basic_quorum),
            collapse: props.last_write_wins || !props.allow_mult,
        };
        let timeout = options.timeout(self.config().request_timeout());
        // Why the deadline grows with what the replies carry: a read's size
        // is known only once a replica answers, and six concurrent reads
        // of 50 MiB values did not fit in the default 2 s. Without a
        // client timeout, each remote read may take as long as the largest
        // value needs, and the read's deadline moves to `timeout` plus the
        // largest reply's transfer allowance as replies arrive.
        let scaled = options.timeout_ms.is_none();
        let cfg = self.config();
        let call_timeout = if scaled {
            timeout + cfg.transfer_allowance(cfg.value_bytes_max)
        } else {
            timeout
        };
        let started = tokio::time::Instant::now();
        let mut rx = self.fan_out_reads(key, &targets, call_timeout);
        let mut coord = ReadCoordinator::new(req, targets, rules);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let answer = loop {
            let step = tokio::select! {
                // Biased: a fixed polling order, so a simulated run replays exactly.
                biased;
                reply = rx.next() => match reply {
                    Some((node, reply)) => coord.on_reply(node, reply),
                    None => coord.on_exhausted(),
                },
                () = &mut deadline => coord.on_deadline(),
            };
            match step {
                ReadStep::Answer(answer) => break answer,
                ReadStep::Wait if scaled => {
                    let bytes = coord.largest_reply_bytes();
                    deadline
                        .as_mut()
                        .reset(started + timeout + cfg.transfer_allowance(bytes));
                }
                ReadStep::Wait => {}
            }
        };
        self.spawn_read_repair(key.clone(), coord, rx, call_timeout, rules.collapse);
        answer
    }

    fn fan_out_reads(&self, key: &BKey, targets: &[Target], timeout: Duration) -> Inflight {
        targets
            .iter()
            .map(|t| {
                let (node, key, target) = (self.clone(), key.clone(), t.node);
                let read: BoxFuture<'static, Reply> = Box::pin(async move {
                    let result = node.read_replica(target, &key, timeout).await;
                    (target, result)
                });
                read
            })
            .collect()
    }

    async fn read_replica(&self, target: NodeId, key: &BKey, timeout: Duration) -> ReadReply {
        if target == self.id() {
            return self.local_replica(key).map_err(ReplicaFailure::Storage);
        }
        match self
            .call(target, Request::Read(key.clone()), timeout)
            .await?
        {
            Response::Read(obj) => Ok(obj),
            other => Err(CallError::Unexpected(other.name()).into()),
        }
    }

    /// This node's own replica of `key`, without asking any other node.
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub fn local_object(&self, key: &BKey) -> Result<Option<Object>, NodeError> {
        Ok(self.local_replica(key)?)
    }

    /// Whether this node's index entries for `key` match its replica
    /// (for checkers: see `store::index`).
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub fn local_index_agrees(&self, key: &BKey) -> Result<bool, NodeError> {
        let layout = self.layout();
        let p = ring::partition_of(layout.bits(), &key.bucket_type, &key.bucket, &key.key);
        Ok(self.store().index_agrees(&Self::object_key(key, p.0))?)
    }

    /// [`Node::local_object`], with the store's own error.
    fn local_replica(&self, key: &BKey) -> Result<Option<Object>, store::StoreError> {
        let layout = self.layout();
        let p = ring::partition_of(layout.bits(), &key.bucket_type, &key.bucket, &key.key);
        self.store().get_object(&Self::object_key(key, p.0))
    }

    /// After answering: wait for the remaining replies (until the deadline),
    /// then send the merged object to every replica that lacks part of it.
    fn spawn_read_repair(
        &self,
        key: BKey,
        mut coord: ReadCoordinator,
        mut rx: Inflight,
        timeout: Duration,
        collapse: bool,
    ) {
        let node = self.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(timeout, async {
                while let Some((target, reply)) = rx.next().await {
                    coord.on_reply(target, reply);
                }
            })
            .await;
            let Some((merged, stale)) = coord.repairs() else {
                return;
            };
            for target in stale {
                let ok = if target == node.id() {
                    node.apply_replica(&key, &merged, false, collapse)
                        .await
                        .is_ok()
                } else {
                    let req = Request::Replicate {
                        key: key.clone(),
                        object: merged.clone(),
                        durable: false,
                        collapse,
                    };
                    node.call(target, req, timeout).await.is_ok()
                };
                node.stats()
                    .read_repairs
                    .fetch_add(u64::from(ok), std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
}
