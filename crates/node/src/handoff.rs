//! # Ownership handoff
//!
//! When the layout changes, a node that became an owner of a partition
//! pulls it from the partition's stable owners, a page at a time, merging
//! each object into its replica by causality (writes arriving meanwhile
//! are merged, not overwritten). When it holds every partition it gained,
//! it fsyncs and reports "synced" for the current layout in the cluster
//! state; once every member has reported, the layout is stable everywhere
//! (see `cluster::Layouts`). Then, and only then, nodes drop the data of
//! partitions they no longer own.
//!
//! Limits: `handoff_bytes_per_sec` over all pulls of a node (default
//! 200 MB/s), `HANDOFF_PARTITIONS_MAX` partitions in flight, pages of
//! `PAGE_BYTES_MAX`, a deadline per page; a failed page is retried from
//! the next source (or the same after a pause), resuming after the last
//! key applied, so an orphaned transfer cannot hold a slot forever.

use crate::locks::Held;
use crate::proto::{Request, Response};
use crate::{BKey, Node, NodeError};
use futures::StreamExt;
use ring::{NodeId, PartitionId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use store::ObjectKey;
use tokio::time::Instant;

/// Partitions pulled at once.
const HANDOFF_PARTITIONS_MAX: usize = 4;
/// Bytes asked for per page.
const PAGE_BYTES_MAX: usize = 1024 * 1024;
/// How often the node checks whether it has something to pull or drop.
const CHECK_INTERVAL: Duration = Duration::from_millis(200);
/// Pause before retrying a partition whose every source failed.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// One partition being pulled, for `GET /admin/transfers`.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct Transfer {
    /// The partition.
    pub partition: u16,
    /// The node it is pulled from.
    pub from: String,
    /// The node pulling (this one).
    pub to: String,
    /// Objects applied so far.
    pub objects_done: u64,
    /// Objects the source reported, minus those done.
    pub objects_left: u64,
    /// Bytes applied so far.
    pub bytes_done: u64,
    /// Bytes the source reported, minus those done.
    pub bytes_left: u64,
}

/// This node's pulls in progress, and the partitions it finished for the
/// current layout. Bounded by: partitions.
#[derive(Default)]
pub(crate) struct Transfers {
    pub(crate) active: std::sync::Mutex<BTreeMap<u16, Transfer>>,
    /// (layout version, fingerprint) → partitions already pulled for it.
    done: std::sync::Mutex<(u64, u64, std::collections::BTreeSet<u16>)>,
    /// Bytes received by handoff since start.
    pub(crate) bytes_total: std::sync::atomic::AtomicU64,
    /// The last [`FINISHED_KEPT`] pulls finished, newest last, with when
    /// (wall-clock ms), for the dashboard.
    finished: std::sync::Mutex<std::collections::VecDeque<(Transfer, u64)>>,
}

/// Finished pulls a node remembers for the dashboard.
pub const FINISHED_KEPT: usize = 64;

/// Spreads pulls over time so they stay under the configured rate.
struct RateLimit {
    started: Instant,
    bytes: u64,
    per_sec: u64,
}

impl RateLimit {
    fn delay_after(&mut self, bytes: u64) -> Duration {
        self.bytes += bytes;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.per_sec.max(1) as f64);
        due.saturating_sub(self.started.elapsed())
    }
}

/// Pull what this node gained, report it, and drop what it lost, forever.
pub(crate) async fn run(node: Node) {
    let limit = std::sync::Arc::new(tokio::sync::Mutex::new(RateLimit {
        started: Instant::now(),
        bytes: 0,
        per_sec: node.config().handoff_bytes_per_sec,
    }));
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let layouts = node.layouts();
        let me = node.id();
        let result = if layouts.current.member(me).is_some() && !layouts.has_synced_current(me) {
            pull_gained(&node, &layouts, &limit).await
        } else if !layouts.in_transition() {
            node.drop_lost(&layouts).await
        } else {
            Ok(())
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "ownership handoff step failed; retrying");
        }
    }
}

/// Pull every partition gained in the current layout, then report.
async fn pull_gained(
    node: &Node,
    layouts: &cluster::Layouts,
    limit: &std::sync::Arc<tokio::sync::Mutex<RateLimit>>,
) -> Result<(), NodeError> {
    let version = (
        layouts.current_version,
        cluster::fingerprint(&layouts.current),
    );
    let done = {
        let mut d = node.handoffs().done.held();
        if (d.0, d.1) != version {
            *d = (version.0, version.1, Default::default());
        }
        d.2.clone()
    };
    let n_val_max = node.cluster_state().n_vals().into_iter().max().unwrap_or(3);
    let pulls: Vec<(PartitionId, Vec<NodeId>)> = layouts
        .to_pull(node.id(), usize::from(n_val_max))
        .into_iter()
        .filter(|(p, _)| !done.contains(&p.0))
        .collect();
    let results: Vec<Result<u16, NodeError>> = futures::stream::iter(pulls)
        .map(|(p, sources)| async move {
            node.pull_partition(p, &sources, limit).await?;
            Ok(p.0)
        })
        .buffer_unordered(HANDOFF_PARTITIONS_MAX)
        .collect()
        .await;
    let mut all_ok = true;
    for r in results {
        match r {
            Ok(p) => {
                let mut d = node.handoffs().done.held();
                if (d.0, d.1) == version {
                    d.2.insert(p);
                }
            }
            Err(e) => {
                all_ok = false;
                tracing::warn!(error = %e, "partition pull failed; retrying");
            }
        }
    }
    // Report only if the layout did not move meanwhile: a newer one may
    // give this node partitions the pulls above did not cover.
    let still = node.layouts();
    if all_ok && (still.current_version, cluster::fingerprint(&still.current)) == version {
        node.store().sync().await?;
        node.update_state(|s| {
            s.record_synced(node.id(), version.0, version.1);
            true
        });
        node.persist_state().await?;
        tracing::info!(
            version = version.0,
            "holds every partition it owns; reported synced"
        );
        crate::gossip::push_to_all(node).await;
    }
    Ok(())
}

impl Node {
    /// Pull one partition from the first source that answers, resuming
    /// after the last applied key when a source fails.
    async fn pull_partition(
        &self,
        p: PartitionId,
        sources: &[NodeId],
        limit: &std::sync::Arc<tokio::sync::Mutex<RateLimit>>,
    ) -> Result<(), NodeError> {
        let mut after: Option<Vec<u8>> = None;
        let timeout = self.config().request_timeout() * 5;
        let mut failures = 0usize;
        loop {
            let Some(from) = self.pick_source(sources, failures) else {
                return Err(NodeError::Unavailable(format!(
                    "no source for partition {} is up",
                    p.0
                )));
            };
            if after.is_none() {
                self.start_transfer(p, from, timeout).await;
            }
            let req = Request::PullPartition {
                partition: p.0,
                after: after.clone(),
                bytes_max: PAGE_BYTES_MAX,
            };
            let page = match self.call(from, req, timeout).await {
                Ok(Response::PartitionPage(page)) => page,
                Ok(other) => return Err(NodeError::Unavailable(format!("unexpected {other:?}"))),
                Err(e) => {
                    failures += 1;
                    tracing::debug!(partition = p.0, %from, error = %e, "pull failed");
                    if failures.is_multiple_of(sources.len().max(1)) {
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    if failures > 20 * sources.len().max(1) {
                        return Err(NodeError::Unavailable(format!(
                            "pulling partition {} failed {failures} times: {e}",
                            p.0
                        )));
                    }
                    continue;
                }
            };
            let Some((last, _, _)) = page.last() else {
                self.finish_transfer(p);
                return Ok(());
            };
            after = Some(last.clone());
            let bytes = self.apply_page(p, page).await?;
            let delay = limit.lock().await.delay_after(bytes);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
    }

    fn pick_source(&self, sources: &[NodeId], failures: usize) -> Option<NodeId> {
        let up: Vec<NodeId> = sources
            .iter()
            .copied()
            .filter(|s| !self.is_down(*s))
            .collect();
        let pool = if up.is_empty() { sources } else { &up };
        pool.get(failures % pool.len().max(1)).copied()
    }

    async fn start_transfer(&self, p: PartitionId, from: NodeId, timeout: Duration) {
        let (objects, bytes) = match self
            .call(from, Request::PartitionSize { partition: p.0 }, timeout)
            .await
        {
            Ok(Response::PartitionSize { objects, bytes }) => (objects, bytes),
            _ => (0, 0),
        };
        self.handoffs().active.held().insert(
            p.0,
            Transfer {
                partition: p.0,
                from: from.to_string(),
                to: self.id().to_string(),
                objects_left: objects,
                bytes_left: bytes,
                ..Transfer::default()
            },
        );
    }

    fn finish_transfer(&self, p: PartitionId) {
        let Some(done) = self.handoffs().active.held().remove(&p.0) else {
            return;
        };
        let mut finished = self.handoffs().finished.held();
        if finished.len() >= FINISHED_KEPT {
            finished.pop_front();
        }
        finished.push_back((done, crate::traffic::wall_ms()));
    }

    /// The last pulls this node finished, with when (wall-clock ms).
    pub fn finished_transfers(&self) -> Vec<(Transfer, u64)> {
        self.handoffs().finished.held().iter().cloned().collect()
    }

    /// Merge a pulled page into the local replicas; returns its bytes.
    async fn apply_page(
        &self,
        p: PartitionId,
        page: Vec<(Vec<u8>, causal::Object, u64)>,
    ) -> Result<u64, NodeError> {
        let (mut objects, mut bytes) = (0u64, 0u64);
        for (okey, obj, size) in page {
            let Some(okey) = ObjectKey::decode(&okey) else {
                continue;
            };
            let key = BKey {
                bucket_type: okey.bucket_type,
                bucket: okey.bucket,
                key: okey.key,
            };
            let props = self.bucket_props(&key.bucket_type, &key.bucket);
            let collapse = props.last_write_wins || !props.allow_mult;
            self.apply_replica(&key, &obj, false, collapse).await?;
            objects += 1;
            bytes += size;
        }
        if let Some(t) = self.handoffs().active.held().get_mut(&p.0) {
            t.objects_done += objects;
            t.bytes_done += bytes;
            t.objects_left = t.objects_left.saturating_sub(objects);
            t.bytes_left = t.bytes_left.saturating_sub(bytes);
        }
        self.handoffs()
            .bytes_total
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        Ok(bytes)
    }

    /// Pulls in progress on this node.
    pub fn transfers(&self) -> Vec<Transfer> {
        self.handoffs().active.held().values().cloned().collect()
    }

    /// Bytes pulled by handoff since start.
    pub fn handoff_bytes_received(&self) -> u64 {
        self.handoffs()
            .bytes_total
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Answer [`Request::PartitionSize`].
    pub(crate) fn partition_size(&self, partition: u16) -> Result<Response, NodeError> {
        let (mut objects, mut bytes, mut after) = (0u64, 0u64, None);
        loop {
            let page =
                self.store()
                    .scan_partition_page(partition, after.as_ref(), 16 * PAGE_BYTES_MAX)?;
            let Some((last, _, _)) = page.last() else {
                return Ok(Response::PartitionSize { objects, bytes });
            };
            after = Some(last.clone());
            objects += page.len() as u64;
            bytes += page.iter().map(|(_, _, s)| *s as u64).sum::<u64>();
        }
    }

    /// Answer [`Request::PullPartition`].
    pub(crate) fn partition_page(
        &self,
        partition: u16,
        after: Option<Vec<u8>>,
        bytes_max: usize,
    ) -> Result<Response, NodeError> {
        let after =
            match after {
                Some(b) => Some(ObjectKey::decode(&b).ok_or_else(|| {
                    NodeError::BadRequest("pull cursor is not an object key".into())
                })?),
                None => None,
            };
        let page = self.store().scan_partition_page(
            partition,
            after.as_ref(),
            bytes_max.min(PAGE_BYTES_MAX * 4),
        )?;
        Ok(Response::PartitionPage(
            page.into_iter()
                .map(|(k, o, s)| (k.encode(), o, s as u64))
                .collect(),
        ))
    }
}
