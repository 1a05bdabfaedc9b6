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

use crate::proto::{Request, Response};
use crate::quorum::{self, Kind, Progress, QuorumTracker, Target};
use crate::{BKey, Node, NodeError, RequestOptions};
use causal::Object;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use ring::NodeId;
use std::time::Duration;

/// One replica's answer: its object (`None`: has nothing) or why it failed.
type Reply = (NodeId, Result<Option<Object>, String>);

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
        let (partition, pl) = self.preference_list(key, props.n_val)?;
        let targets = self.read_targets(partition, &pl, usize::from(props.n_val));
        let req = quorum::requirement(Kind::Read, &props, options, &targets, &self.config().zone)?;
        let notfound_ok = options.notfound_ok.unwrap_or(props.notfound_ok);
        let basic_quorum = options.basic_quorum.unwrap_or(props.basic_quorum);
        let majority = targets.len() / 2 + 1;
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
        let (need, asked) = (req.total, targets.len());
        let mut rx = self.fan_out_reads(key, &targets, call_timeout);
        let mut tracker = QuorumTracker::new(req, targets);
        let mut replies: Vec<Reply> = Vec::new();
        let mut largest = 0;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let verdict = loop {
            tokio::select! {
                // Biased: a fixed polling order, so a simulated run replays exactly.
                biased;
                reply = rx.next() => {
                    let Some((node, result)) = reply else { break Progress::Impossible };
                    let counted = match &result {
                        Ok(Some(o)) if !o.is_absent() => Ok(true),
                        Ok(_) if notfound_ok => Ok(true),
                        Ok(_) => Err("not found".to_string()),
                        Err(e) => Err(e.clone()),
                    };
                    if let (true, Ok(Some(o))) = (scaled, &result) {
                        let bytes = crate::object_bytes(o);
                        if bytes > largest {
                            largest = bytes;
                            deadline.as_mut().reset(started + timeout + cfg.transfer_allowance(bytes));
                        }
                    }
                    replies.push((node, result));
                    let progress = tracker.record(node, counted);
                    let found = replies.iter().any(|(_, r)| matches!(r, Ok(Some(o)) if !o.is_absent()));
                    let misses = replies.len() - usize::from(found);
                    if progress != Progress::Pending {
                        break progress;
                    }
                    // Why: with basic_quorum a majority of misses settles the
                    // read early instead of waiting for every replica.
                    if basic_quorum && !notfound_ok && !found && misses >= majority {
                        break Progress::Impossible;
                    }
                }
                () = &mut deadline => break Progress::Pending,
            }
        };
        let merged = merge_replies(&replies);
        let failed = replies.iter().filter(|(_, r)| r.is_err()).count();
        // Why: r was missed either because replicas failed (then we cannot
        // tell what is stored: 503) or only because "not found" answers do
        // not count (notfound_ok=false): then the answer is what was found,
        // or an authoritative not-found.
        // `need > asked`: a request asked for more replicas (say pr=2)
        // than this cluster has owners for the key; it can never be met.
        let too_many_failed = need > asked || failed > asked - need;
        let answer = match verdict {
            Progress::Met => Ok(merged.clone()),
            Progress::Impossible if !too_many_failed => Ok(merged.clone()),
            _ => Err(NodeError::Quorum(
                tracker.error("get", verdict == Progress::Pending),
            )),
        };
        let collapse = props.last_write_wins || !props.allow_mult;
        self.spawn_read_repair(key.clone(), replies, rx, call_timeout, collapse);
        answer.map(|o| {
            o.map(|mut o| {
                if collapse {
                    o.keep_newest();
                }
                o
            })
        })
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

    async fn read_replica(
        &self,
        target: NodeId,
        key: &BKey,
        timeout: Duration,
    ) -> Result<Option<Object>, String> {
        if target == self.id() {
            return self.local_object(key).map_err(|e| e.to_string());
        }
        match self
            .call(target, Request::Read(key.clone()), timeout)
            .await?
        {
            Response::Read(obj) => Ok(obj),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    /// This node's own replica of `key`, without asking any other node.
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub fn local_object(&self, key: &BKey) -> Result<Option<Object>, NodeError> {
        let layout = self.layout();
        let p = ring::partition_of(layout.bits(), &key.bucket_type, &key.bucket, &key.key);
        Ok(self.inner.store.get_object(&Self::object_key(key, p.0))?)
    }

    /// After answering: wait for the remaining replies (until the deadline),
    /// then send the merged object to every replica that lacks part of it.
    fn spawn_read_repair(
        &self,
        key: BKey,
        mut replies: Vec<Reply>,
        mut rx: Inflight,
        timeout: Duration,
        collapse: bool,
    ) {
        let node = self.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(timeout, async {
                while let Some(r) = rx.next().await {
                    replies.push(r);
                }
            })
            .await;
            let Some(merged) = merge_replies(&replies) else {
                return;
            };
            for (target, reply) in &replies {
                let stale = match reply {
                    // `merged` includes every reply, so a replica lacks
                    // nothing exactly when it equals it.
                    Ok(Some(obj)) => *obj != merged,
                    Ok(None) => true,
                    Err(_) => false,
                };
                if !stale {
                    continue;
                }
                let ok = if *target == node.id() {
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
                    node.call(*target, req, timeout).await.is_ok()
                };
                node.inner
                    .stats
                    .read_repairs
                    .fetch_add(u64::from(ok), std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
}

fn merge_replies(replies: &[Reply]) -> Option<Object> {
    let mut merged: Option<Object> = None;
    for (_, r) in replies {
        if let Ok(Some(obj)) = r {
            match &mut merged {
                Some(m) => m.merge(obj),
                None => merged = Some(obj.clone()),
            }
        }
    }
    merged
}
