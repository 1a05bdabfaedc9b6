//! Tree exchanges between the primaries of a partition.

use super::tree::{digest, segment_of};
use crate::proto::{KeyDigest, Request, Response};
use crate::{BKey, Node, NodeError};
use bytes::Bytes;
use ring::{NodeId, PartitionId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use store::ObjectKey;

/// Primaries per partition whose trees are compared (the default `n_val`).
const REPLICAS_COMPARED: usize = 3;

impl Node {
    /// Digests of this node's keys in some segments of a partition.
    pub(crate) fn key_digests(
        &self,
        partition: u16,
        segments: &[u16],
    ) -> Result<Vec<KeyDigest>, NodeError> {
        let wanted: BTreeSet<u16> = segments.iter().copied().collect();
        Ok(self
            .inner
            .store
            .scan_partition(partition)?
            .into_iter()
            .filter(|(_, obj)| !obj.context().is_empty())
            .filter_map(|(okey, obj)| {
                let key = okey.encode();
                wanted
                    .contains(&segment_of(&key))
                    .then(|| (Bytes::from(key), digest(&obj)))
            })
            .collect())
    }

    /// Partitions this node is one of the first primaries of.
    fn partitions_held(&self) -> Vec<(u16, Vec<NodeId>)> {
        let layout = self.layout();
        (0..layout.partition_count() as u16)
            .filter_map(|p| {
                let owners: Vec<NodeId> = layout
                    .owners(PartitionId(p))
                    .iter()
                    .take(REPLICAS_COMPARED)
                    .copied()
                    .collect();
                owners.contains(&self.id()).then_some((p, owners))
            })
            .collect()
    }
}

/// Longest wait for one anti-entropy call; exchanges are background work
/// and must not stall on a silent peer.
const EXCHANGE_CALL_TIMEOUT_MAX: Duration = Duration::from_secs(1);

/// Compare every (held partition, other primary) pair once per
/// `aae_interval`, forever, one exchange at a time (the rate limit). Each
/// tick takes the pair whose last successful exchange is oldest, skipping
/// suspect peers: after a partition heals, the pairs with the healed node
/// are the oldest and go first.
pub(crate) async fn run(node: Node) {
    // (partition, peer) → uptime ms of the last successful exchange.
    // Bounded by: partitions × replicas.
    let mut last_ok: BTreeMap<(u16, NodeId), u64> = BTreeMap::new();
    let mut layout = node.layout();
    let mut pairs = held_pairs(&node);
    let mut tick = pacing(&node, pairs.len());
    loop {
        tick.tick().await;
        let current = node.layout();
        if !std::sync::Arc::ptr_eq(&current, &layout) {
            layout = current;
            pairs = held_pairs(&node);
            let keep: BTreeSet<(u16, NodeId)> = pairs.iter().copied().collect();
            last_ok.retain(|k, _| keep.contains(k));
            tick = pacing(&node, pairs.len());
        }
        let next = pairs
            .iter()
            .filter(|(_, peer)| !node.is_suspect(*peer))
            .min_by_key(|k| last_ok.get(*k).copied().unwrap_or(0))
            .copied();
        let Some((partition, peer)) = next else {
            continue;
        };
        match exchange(&node, partition, peer).await {
            Ok(repaired) => {
                last_ok.insert((partition, peer), node.uptime_ms().max(1));
                let s = &node.inner.stats;
                s.aae_exchanges
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                s.aae_keys_repaired
                    .fetch_add(repaired, std::sync::atomic::Ordering::Relaxed);
                if let Ok(mut last) = node.inner.aae_last.lock() {
                    last.insert(partition, node.inner.env.clock.wall_ms());
                }
            }
            Err(e) => tracing::debug!(partition, %peer, error = %e, "anti-entropy exchange failed"),
        }
    }
}

/// One tick per pair per interval. Why Burst: ticks keep to the schedule
/// whatever each exchange costs, so a cycle takes the interval, not the
/// interval plus the sum of the exchanges. With nothing to exchange (no
/// peers yet), look again soon.
fn pacing(node: &Node, pairs: usize) -> tokio::time::Interval {
    let period = if pairs == 0 {
        Duration::from_millis(100)
    } else {
        node.config().aae_interval() / pairs as u32
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    tick
}

/// Every (partition, other primary) pair this node exchanges.
fn held_pairs(node: &Node) -> Vec<(u16, NodeId)> {
    node.partitions_held()
        .into_iter()
        .flat_map(|(p, owners)| {
            owners
                .into_iter()
                .filter(|o| *o != node.id())
                .map(move |o| (p, o))
        })
        .collect()
}

/// One exchange of `partition` with `peer`; returns the keys synced.
async fn exchange(node: &Node, partition: u16, peer: NodeId) -> Result<u64, String> {
    let timeout = node
        .config()
        .request_timeout()
        .min(EXCHANGE_CALL_TIMEOUT_MAX);
    let theirs = match node
        .call(peer, Request::AaeSegments { partition }, timeout)
        .await?
    {
        Response::Segments(s) => s,
        other => return Err(format!("unexpected answer {other:?}")),
    };
    let ours = node.inner.trees.segments(partition);
    let differing: Vec<u16> = ours
        .iter()
        .zip(&theirs)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i as u16)
        .collect();
    if differing.is_empty() {
        return Ok(0);
    }
    let remote: BTreeMap<Bytes, u64> = match node
        .call(
            peer,
            Request::AaeKeys {
                partition,
                segments: differing.clone(),
            },
            timeout,
        )
        .await?
    {
        Response::KeyDigests(k) => k.into_iter().collect(),
        other => return Err(format!("unexpected answer {other:?}")),
    };
    let local: BTreeMap<Bytes, u64> = node
        .key_digests(partition, &differing)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let keys: BTreeSet<&Bytes> = remote
        .iter()
        .filter(|(k, d)| local.get(*k) != Some(d))
        .map(|(k, _)| k)
        .chain(local.keys().filter(|k| !remote.contains_key(*k)))
        .take(node.config().aae_keys_per_exchange_max)
        .collect();
    let mut repaired = 0;
    for raw in keys {
        let Some(okey) = ObjectKey::decode(raw) else {
            continue;
        };
        if sync_key(node, peer, okey, timeout).await? {
            repaired += 1;
        }
    }
    Ok(repaired)
}

/// Merge `peer`'s version of a key into ours and ours into theirs. Returns
/// whether anything changed on either side.
async fn sync_key(
    node: &Node,
    peer: NodeId,
    okey: ObjectKey,
    timeout: Duration,
) -> Result<bool, String> {
    let key = BKey {
        bucket_type: okey.bucket_type,
        bucket: okey.bucket,
        key: okey.key,
    };
    let props = node.bucket_props(&key.bucket_type, &key.bucket);
    // Why check ownership per key: a bucket with a smaller n_val must not
    // gain replicas just because its partition's trees are compared.
    let (_, pl) = node
        .preference_list(&key, props.n_val)
        .map_err(|e| e.to_string())?;
    if !pl.primaries.contains(&peer) || !pl.primaries.contains(&node.id()) {
        return Ok(false);
    }
    let collapse = props.last_write_wins || !props.allow_mult;
    let theirs = match node.call(peer, Request::Read(key.clone()), timeout).await? {
        Response::Read(o) => o,
        other => return Err(format!("unexpected answer {other:?}")),
    };
    let before = node.local_object(&key).map_err(|e| e.to_string())?;
    if let Some(t) = &theirs {
        node.apply_replica(&key, t, false, collapse)
            .await
            .map_err(|e| e.to_string())?;
    }
    let ours = node.local_object(&key).map_err(|e| e.to_string())?;
    let mut changed = ours != before;
    if let Some(o) = ours.filter(|o| theirs.as_ref() != Some(o)) {
        let req = Request::Replicate {
            key,
            object: o,
            durable: false,
            collapse,
        };
        node.call(peer, req, timeout).await?;
        changed = true;
    }
    Ok(changed)
}
