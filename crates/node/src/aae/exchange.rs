//! Tree exchanges between the primaries of a partition.

use super::tree::{digest, segment_of};
use crate::error::CallError;
use crate::locks::Held;
use crate::proto::{KeyDigest, Request, Response};
use crate::{BKey, Node, NodeError};
use bytes::Bytes;
use ring::{NodeId, PartitionId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use store::ObjectKey;

/// Primaries per partition whose trees are compared (the default `n_val`).
const REPLICAS_COMPARED: usize = 3;
/// Digests in one page of an exchange, at most.
pub(crate) const DIGEST_PAGE_KEYS_MAX: usize = 4096;
/// Bytes one digest page reads from storage at most (values included: the
/// digest is of the stored object).
pub(crate) const DIGEST_SCAN_BYTES_MAX: usize = 1 << 20;

impl Node {
    /// A page of the digests of this node's keys in some segments of a
    /// partition, after the encoded object key `after`: at most
    /// `keys_max` digests (and [`DIGEST_PAGE_KEYS_MAX`]), from at most
    /// [`DIGEST_SCAN_BYTES_MAX`] bytes read. Returns the digests and where
    /// the scan stopped (`None` once the partition has no more). Whatever
    /// a peer asks, one request costs one bounded page.
    pub(crate) fn key_digest_page(
        &self,
        partition: u16,
        segments: &[u16],
        after: Option<&[u8]>,
        keys_max: u32,
    ) -> Result<(Vec<KeyDigest>, Option<Bytes>), NodeError> {
        let wanted: BTreeSet<u16> = segments.iter().copied().collect();
        let keys_max = (keys_max as usize).clamp(1, DIGEST_PAGE_KEYS_MAX);
        let mut digests = Vec::new();
        let mut resume: Option<Bytes> = after.map(Bytes::copy_from_slice);
        let mut scanned = 0;
        while digests.len() < keys_max && scanned < DIGEST_SCAN_BYTES_MAX {
            let from = resume.as_deref().and_then(ObjectKey::decode);
            if resume.is_some() && from.is_none() {
                return Err(NodeError::BadRequest(
                    "anti-entropy page cursor is not an object key".into(),
                ));
            }
            let page = self.store().scan_partition_page(
                partition,
                from.as_ref(),
                DIGEST_SCAN_BYTES_MAX - scanned,
            )?;
            if page.is_empty() {
                return Ok((digests, None));
            }
            for (okey, obj, size) in page {
                let key = Bytes::from(okey.encode());
                scanned += size;
                resume = Some(key.clone());
                if !obj.context().is_empty() && wanted.contains(&segment_of(&key)) {
                    digests.push((key, digest(&obj)));
                    if digests.len() >= keys_max {
                        break;
                    }
                }
            }
        }
        Ok((digests, resume))
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
            .filter(|(p, peer)| !node.is_suspect(*peer) && node.aae().trees.is_ready(*p))
            .min_by_key(|k| last_ok.get(*k).copied().unwrap_or(0))
            .copied();
        let Some((partition, peer)) = next else {
            continue;
        };
        match exchange(&node, partition, peer).await {
            Ok(repaired) => {
                last_ok.insert((partition, peer), node.uptime_ms().max(1));
                let aae = &node.aae();
                aae.exchanges
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                aae.keys_repaired
                    .fetch_add(repaired, std::sync::atomic::Ordering::Relaxed);
                let wall = node.env().clock.wall_ms();
                node.aae().last.held().insert(partition, wall);
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
/// Why one exchange with a peer stopped; logged, and the next round
/// tries again.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Local(#[from] NodeError),
    #[error("{0} sent key digests out of order")]
    OutOfOrder(NodeId),
}

async fn exchange(node: &Node, partition: u16, peer: NodeId) -> Result<u64, ExchangeError> {
    let timeout = node
        .config()
        .request_timeout()
        .min(EXCHANGE_CALL_TIMEOUT_MAX);
    let theirs = match node
        .call(peer, Request::AaeSegments { partition }, timeout)
        .await?
    {
        Response::Segments(s) => s,
        other => return Err(CallError::Unexpected(other.name()).into()),
    };
    let ours = node.aae().trees.segments(partition);
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
    let keys = differing_keys(node, partition, peer, &differing, timeout).await?;
    let mut repaired = 0;
    for raw in keys {
        let Some(okey) = ObjectKey::decode(&raw) else {
            continue;
        };
        if sync_key(node, peer, okey, timeout).await? {
            repaired += 1;
        }
    }
    Ok(repaired)
}

/// One side's digests of the differing segments, a page at a time.
#[derive(Default)]
struct Digests {
    buffer: std::collections::VecDeque<KeyDigest>,
    /// Where the next page starts.
    after: Option<Bytes>,
    /// Whether the side has no more pages.
    done: bool,
}

impl Digests {
    fn take(&mut self, (digests, resume): (Vec<KeyDigest>, Option<Bytes>)) {
        self.buffer = digests.into();
        self.done = resume.is_none();
        self.after = resume;
    }

    fn wants_page(&self) -> bool {
        self.buffer.is_empty() && !self.done
    }
}

/// The keys whose digests differ between this node and `peer` in some
/// segments of a partition (present on one side only, or with different
/// digests), at most `aae_keys_per_exchange_max`: a merge-join of both
/// sides' digest pages in key order, so neither side ever holds more than
/// a page.
async fn differing_keys(
    node: &Node,
    partition: u16,
    peer: NodeId,
    segments: &[u16],
    timeout: Duration,
) -> Result<BTreeSet<Bytes>, ExchangeError> {
    let (mut theirs, mut ours) = (Digests::default(), Digests::default());
    let mut keys = BTreeSet::new();
    let keys_max = node.config().aae_keys_per_exchange_max;
    while keys.len() < keys_max {
        if theirs.wants_page() {
            let req = Request::AaeKeyPage {
                partition,
                segments: segments.to_vec(),
                after: theirs.after.clone(),
                keys_max: DIGEST_PAGE_KEYS_MAX as u32,
            };
            match node.call(peer, req, timeout).await? {
                Response::KeyDigestPage { digests, resume } => {
                    if !digests.windows(2).all(|w| w[0].0 < w[1].0) {
                        return Err(ExchangeError::OutOfOrder(peer));
                    }
                    theirs.take((digests, resume));
                }
                other => return Err(CallError::Unexpected(other.name()).into()),
            }
            continue;
        }
        if ours.wants_page() {
            let page = node.key_digest_page(
                partition,
                segments,
                ours.after.as_deref(),
                DIGEST_PAGE_KEYS_MAX as u32,
            )?;
            ours.take(page);
            continue;
        }
        let (t, o) = (theirs.buffer.front(), ours.buffer.front());
        match (t, o) {
            (None, None) => break,
            (Some((k, _)), None) => {
                keys.insert(k.clone());
                theirs.buffer.pop_front();
            }
            (None, Some((k, _))) => {
                keys.insert(k.clone());
                ours.buffer.pop_front();
            }
            (Some((tk, td)), Some((ok, od))) => match tk.cmp(ok) {
                std::cmp::Ordering::Less => {
                    keys.insert(tk.clone());
                    theirs.buffer.pop_front();
                }
                std::cmp::Ordering::Greater => {
                    keys.insert(ok.clone());
                    ours.buffer.pop_front();
                }
                std::cmp::Ordering::Equal => {
                    if td != od {
                        keys.insert(tk.clone());
                    }
                    theirs.buffer.pop_front();
                    ours.buffer.pop_front();
                }
            },
        }
    }
    Ok(keys)
}

/// Merge `peer`'s version of a key into ours and ours into theirs. Returns
/// whether anything changed on either side.
async fn sync_key(
    node: &Node,
    peer: NodeId,
    okey: ObjectKey,
    timeout: Duration,
) -> Result<bool, ExchangeError> {
    let key = BKey {
        bucket_type: okey.bucket_type,
        bucket: okey.bucket,
        key: okey.key,
    };
    let props = node.bucket_props(&key.bucket_type, &key.bucket);
    // Why check ownership per key: a bucket with a smaller n_val must not
    // gain replicas just because its partition's trees are compared.
    let pl = node.locate(&key, props.n_val)?.pl;
    if !pl.primaries.contains(&peer) || !pl.primaries.contains(&node.id()) {
        return Ok(false);
    }
    let collapse = props.last_write_wins || !props.allow_mult;
    let theirs = match node.call(peer, Request::Read(key.clone()), timeout).await? {
        Response::Read(o) => o,
        other => return Err(CallError::Unexpected(other.name()).into()),
    };
    let before = node.local_object(&key)?;
    if let Some(t) = &theirs {
        node.apply_replica(&key, t, false, collapse).await?;
    }
    let ours = node.local_object(&key)?;
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
