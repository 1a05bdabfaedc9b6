//! The dashboard's per-node figures, gathered from every node.
//!
//! The admin API answers from the receiving node's point of view (its
//! cluster state, its hints). The dashboard also needs what only each
//! node knows of itself: uptime, memory, disk, keys stored, the pulls it
//! is running or finished, anti-entropy, and its recent traffic
//! (`traffic`). [`Node::gather_stats`] asks every node it sees up for
//! its [`NodeStats`] (`Request::NodeStats`) in parallel, with a short
//! deadline, so one slow node delays the page by at most that; nodes it
//! sees down are not asked.

use crate::handoff::Transfer;
use crate::proto::{Request, Response};
use crate::traffic::SlotOp;
use crate::{Node, NodeError};
use ring::NodeId;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// How long the dashboard waits for a node's figures.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// One node's own figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeStats {
    /// Node id.
    pub id: String,
    /// Milliseconds since the node started.
    pub uptime_ms: u64,
    /// Resident memory of the node's process, bytes (nodes that share a
    /// process, as `ringstore dev`'s do, report the same figure).
    pub rss_bytes: u64,
    /// Bytes its storage takes on disk.
    pub disk_bytes: u64,
    /// About how many replicas (keys, tombstones and S3 blocks) it stores.
    pub keys_stored: u64,
    /// Replicas repaired by reads it coordinated, since start.
    pub read_repairs: u64,
    /// Anti-entropy exchanges completed, since start.
    pub aae_exchanges: u64,
    /// Keys anti-entropy synced, since start.
    pub aae_keys_repaired: u64,
    /// Per partition, its last anti-entropy exchange (wall-clock ms).
    pub aae_last: Vec<(u16, u64)>,
    /// Hints it holds per target node: (node, hints, bytes).
    pub hints: Vec<(String, u64, u64)>,
    /// Pulls in progress.
    pub transfers: Vec<Transfer>,
    /// Pulls finished lately, with when (wall-clock ms).
    pub finished: Vec<(Transfer, u64)>,
    /// Requests of the last 15 minutes (`traffic`).
    pub traffic: Vec<SlotOp>,
}

/// One node's figures, or why there are none.
#[derive(Clone, Debug, Serialize)]
pub struct GatheredStats {
    /// Node id.
    pub id: String,
    /// Its figures, when it answered.
    pub stats: Option<NodeStats>,
    /// Why not, when it did not.
    pub error: Option<String>,
}

impl Node {
    /// This node's own figures.
    pub fn node_stats(&self) -> NodeStats {
        let (disk_bytes, keys_stored) = self.store().engine().footprint();
        let state = self.cluster_state();
        let hints = state
            .nodes()
            .keys()
            .map(|id| {
                (
                    id.to_string(),
                    self.hints_pending(*id),
                    self.hint_bytes_pending(*id),
                )
            })
            .filter(|(_, n, _)| *n > 0)
            .collect();
        NodeStats {
            id: self.id().to_string(),
            uptime_ms: self.uptime_ms(),
            rss_bytes: rss_bytes(),
            disk_bytes,
            keys_stored,
            read_repairs: self.stats().read_repairs.load(Relaxed),
            aae_exchanges: self.aae().exchanges.load(Relaxed),
            aae_keys_repaired: self.aae().keys_repaired.load(Relaxed),
            aae_last: self.aae_last_exchanges(),
            hints,
            transfers: self.transfers(),
            finished: self.finished_transfers(),
            traffic: self.traffic().snapshot(),
        }
    }

    /// Every known node's figures: this node's own, and those of the
    /// others it sees up, asked in parallel (each within
    /// [`STATS_TIMEOUT`]).
    pub async fn gather_stats(&self) -> Vec<GatheredStats> {
        let ids: Vec<NodeId> = self.cluster_state().nodes().keys().copied().collect();
        let asks = ids.into_iter().map(|id| async move {
            let result = if id == self.id() {
                Ok(self.node_stats())
            } else if !self.is_up(id) {
                Err("down".to_string())
            } else {
                self.remote_stats(id).await.map_err(|e| e.to_string())
            };
            let (stats, error) = match result {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e)),
            };
            GatheredStats {
                id: id.to_string(),
                stats,
                error,
            }
        });
        futures::future::join_all(asks).await
    }

    async fn remote_stats(&self, id: NodeId) -> Result<NodeStats, NodeError> {
        match self.call(id, Request::NodeStats, STATS_TIMEOUT).await {
            Ok(Response::NodeStats(s)) => Ok(*s),
            Ok(other) => Err(NodeError::peer(id)(crate::error::CallError::Unexpected(
                other.name(),
            ))),
            Err(e) => Err(NodeError::peer(id)(e)),
        }
    }

    /// How long since `node` last called or answered this node (ms), if
    /// it ever did.
    pub fn silent_for_ms(&self, node: NodeId) -> Option<u64> {
        let seen = self.peer_health().last_seen(node)?;
        Some(self.uptime_ms().saturating_sub(seen))
    }
}

/// The process's resident memory, from `/proc/self/statm` (0 elsewhere).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
