//! # Nearby reads: one replica, when this node can vouch for it
//!
//! A quorum read asks every replica and waits for `r` of them: on a
//! 3-node cluster that is two RPC round trips, two remote store reads and
//! the encryption of both replies for every GET, and it costs about 2.7×
//! the read of the local replica alone (the website benchmark in
//! docs/BENCHMARKS.md). For public, cacheable content (thumbnails behind a
//! website endpoint) that price buys little: a browser or CDN already
//! serves copies up to `Cache-Control: max-age` old.
//!
//! A nearby read answers from this node's own replica, as Riak's `r=1`
//! with a local primary would, but only when that replica can be trusted
//! to hold every acknowledged write ([`local_read_allowed`]):
//!
//! - this node is a primary (ready) owner of the key, and every owner the
//!   read would ask is a primary that this node sees up and not suspect:
//!   no fallback holds writes this replica missed;
//! - nothing went wrong for a quiet period: no call to a peer failed and
//!   no peer was declared down (a partition or crash is when a replica
//!   misses writes), and this node has been up that long (after a restart
//!   the hints for it drain in seconds; the quiet period covers that).
//!
//! And the answer is checked where a stale replica would hurt most:
//!
//! - a key the replica does not have is read again with a quorum (a new
//!   thumbnail is visible on every node as soon as its PUT returned, and a
//!   404 is never served from one replica);
//! - one nearby read in `repair_every` also runs a quorum read in the
//!   background, whose read repair fixes a stale replica of a hot key
//!   within a few reads (at most [`BACKGROUND_READS_MAX`] in flight; one
//!   more is skipped, not queued).
//!
//! What is left is an overwrite racing the read on the third replica (the
//! write was acknowledged by two replicas and the third applies it a
//! moment later) or a replica that lost hints, which anti-entropy repairs.

use crate::quorum::Target;
use crate::{BKey, Node, NodeError, RequestOptions};
use causal::Object;
use ring::NodeId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Background quorum reads started by nearby reads, at most, per node.
pub const BACKGROUND_READS_MAX: usize = 32;

/// How a nearby read may answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NearbyRead {
    /// How long nothing must have gone wrong before the local replica is
    /// trusted alone.
    pub quiet: Duration,
    /// One nearby read in this many also runs a background quorum read
    /// (its read repair); 0 never does.
    pub repair_every: u64,
}

/// Whether a read of a key whose read targets are `targets` may be
/// answered by `me`'s replica alone. Pure: the caller passes what it
/// knows about peers (`trusted`: seen up and not suspect) and how long
/// nothing has gone wrong.
pub fn local_read_allowed(
    targets: &[Target],
    me: NodeId,
    quiet_for: Duration,
    quiet: Duration,
    trusted: impl Fn(NodeId) -> bool,
) -> bool {
    quiet_for >= quiet
        && targets.iter().any(|t| t.node == me)
        && targets.iter().all(|t| t.primary && trusted(t.node))
}

/// The node's nearby-read counters and its bound on background reads.
pub(crate) struct NearbyReads {
    /// Answered by the local replica.
    pub(crate) local: AtomicU64,
    /// Handed to a quorum read (not allowed, or the replica lacked the key).
    pub(crate) quorum: AtomicU64,
    background: Arc<Semaphore>,
}

impl Default for NearbyReads {
    fn default() -> Self {
        NearbyReads {
            local: AtomicU64::new(0),
            quorum: AtomicU64::new(0),
            background: Arc::new(Semaphore::new(BACKGROUND_READS_MAX)),
        }
    }
}

impl Node {
    /// Read `key` from this node's replica when [`local_read_allowed`],
    /// else (or when the replica lacks the key) with a default quorum read.
    ///
    /// # Errors
    ///
    /// As [`Node::get`], and storage failures of the local read.
    pub async fn get_nearby(
        &self,
        key: &BKey,
        how: NearbyRead,
    ) -> Result<Option<Object>, NodeError> {
        if self.nearby_allowed(key, how.quiet) {
            if let Some(obj) = self.local_object(key)? {
                self.maybe_check_in_background(key, how.repair_every);
                return Ok(Some(obj));
            }
        }
        self.nearby_reads().quorum.fetch_add(1, Ordering::Relaxed);
        self.get(key, &RequestOptions::default()).await
    }

    /// Whether [`local_read_allowed`] for `key` now; not before this node
    /// joined its cluster (the quorum read then answers why).
    fn nearby_allowed(&self, key: &BKey, quiet: Duration) -> bool {
        let props = self.bucket_props(&key.bucket_type, &key.bucket);
        let Ok(located) = self.locate(key, props.n_val) else {
            return false;
        };
        let quiet_for = Duration::from_millis(self.quiet_for_ms());
        local_read_allowed(&located.read_targets(), self.id(), quiet_for, quiet, |n| {
            self.is_up(n) && !self.is_suspect(n)
        })
    }

    fn maybe_check_in_background(&self, key: &BKey, every: u64) {
        let nearby = self.nearby_reads();
        let n = nearby.local.fetch_add(1, Ordering::Relaxed);
        if every == 0 || !n.is_multiple_of(every) {
            return;
        }
        let Ok(permit) = nearby.background.clone().try_acquire_owned() else {
            return;
        };
        let (node, key) = (self.clone(), key.clone());
        tokio::spawn(async move {
            let _ = node.get(&key, &RequestOptions::default()).await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(node: u64, primary: bool) -> Target {
        Target {
            node: NodeId(node),
            zone: "z".into(),
            primary,
        }
    }

    const Q: Duration = Duration::from_secs(30);

    #[test]
    fn a_healthy_primary_reads_alone() {
        let targets = [t(1, true), t(2, true), t(3, true)];
        assert!(local_read_allowed(&targets, NodeId(2), Q, Q, |_| true));
    }

    #[test]
    fn not_an_owner_fallbacks_suspects_or_recent_trouble_mean_quorum() {
        let targets = [t(1, true), t(2, true), t(3, true)];
        assert!(!local_read_allowed(&targets, NodeId(4), Q, Q, |_| true));
        let short = Q - Duration::from_millis(1);
        assert!(!local_read_allowed(&targets, NodeId(1), short, Q, |_| true));
        assert!(!local_read_allowed(&targets, NodeId(1), Q, Q, |n| n != NodeId(3)));
        let with_fallback = [t(1, true), t(2, true), t(4, false)];
        assert!(!local_read_allowed(&with_fallback, NodeId(1), Q, Q, |_| {
            true
        }));
    }
}
