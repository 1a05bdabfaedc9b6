//! What this node believes about each peer: when it last heard from it,
//! whether a call to it failed (suspect), and the failure detector's
//! verdict. Requests avoid a peer that is suspect or down.
//!
//! [`PeerHealth`] owns that state; the node's methods of the same names
//! pass this node's clock and id to it.

use crate::locks::{Held, Shared};
use crate::Node;
use ring::NodeId;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// Which peers the failure detector sees up, and which it saw go down.
#[derive(Default)]
pub(crate) struct Liveness {
    pub(crate) up: BTreeSet<u64>,
    pub(crate) down: BTreeSet<u64>,
}

/// Two views of every peer, each bounded by the nodes in the cluster
/// state: calls (last seen, suspect after a failed call) and the failure
/// detector (up, down). Times are ms of the node's uptime.
#[derive(Default)]
pub(crate) struct PeerHealth {
    /// When each peer last called or answered.
    last_seen: RwLock<HashMap<NodeId, AtomicU64>>,
    /// Peers whose last call failed, with when; cleared when they next
    /// answer or call, or the detector sees them come up.
    suspects: RwLock<HashMap<NodeId, u64>>,
    liveness: RwLock<Liveness>,
    /// When a call last failed or the detector last saw a peer down: the
    /// moments this node's replicas may have missed writes (see `nearby`).
    last_trouble: AtomicU64,
}

impl PeerHealth {
    /// `node` answered or called at `now`. Runs on every RPC, so the
    /// common case takes only read locks and an atomic store.
    pub(crate) fn seen(&self, node: NodeId, now: u64) {
        if self.suspects.shared().contains_key(&node) {
            self.suspects.held().remove(&node);
        }
        if let Some(seen) = self.last_seen.shared().get(&node) {
            seen.store(now, Ordering::Relaxed);
            return;
        }
        self.last_seen
            .held()
            .entry(node)
            .or_default()
            .store(now, Ordering::Relaxed);
    }

    /// A call to `node` that started at `started` failed at `now`.
    /// Why the start time: a call sent before a partition healed may time
    /// out after the peer answered newer ones; it proves nothing.
    pub(crate) fn failed(&self, node: NodeId, started: u64, now: u64) {
        if self.last_seen(node).is_some_and(|seen| seen > started) {
            return;
        }
        self.suspects.held().insert(node, now);
        self.last_trouble.fetch_max(now, Ordering::Relaxed);
    }

    /// Whether a call to `node` failed and it has not answered since, or
    /// the detector declared it down.
    pub(crate) fn is_suspect(&self, node: NodeId) -> bool {
        self.suspects.shared().contains_key(&node) || self.is_down(node)
    }

    /// Whether the failure detector declared `node` down.
    pub(crate) fn is_down(&self, node: NodeId) -> bool {
        self.liveness.shared().down.contains(&node.0)
    }

    /// Whether the failure detector sees `node` up.
    pub(crate) fn is_up(&self, node: NodeId) -> bool {
        self.liveness.shared().up.contains(&node.0)
    }

    /// Trust `node` again (the failure detector saw it come up).
    pub(crate) fn clear_suspect(&self, node: NodeId) {
        self.suspects.held().remove(&node);
    }

    /// The peers suspected now.
    pub(crate) fn suspects(&self) -> Vec<NodeId> {
        self.suspects.shared().keys().copied().collect()
    }

    /// When `node` was last seen.
    pub(crate) fn last_seen(&self, node: NodeId) -> Option<u64> {
        self.last_seen
            .shared()
            .get(&node)
            .map(|t| t.load(Ordering::Relaxed))
    }

    /// How long before `now` nothing went wrong (see `last_trouble`).
    pub(crate) fn quiet_for(&self, now: u64) -> u64 {
        now.saturating_sub(self.last_trouble.load(Ordering::Relaxed))
    }

    /// Take the detector's verdicts at `now`; returns the peers that came up.
    pub(crate) fn publish(&self, verdicts: Liveness, now: u64) -> Vec<u64> {
        let mut l = self.liveness.held();
        let came_up = verdicts.up.difference(&l.up).copied().collect();
        if verdicts.down.difference(&l.down).next().is_some() {
            self.last_trouble.fetch_max(now, Ordering::Relaxed);
        }
        *l = verdicts;
        came_up
    }
}

impl Node {
    /// Record that `node` just answered or called.
    pub(crate) fn mark_seen(&self, node: NodeId) {
        self.peer_health().seen(node, self.uptime_ms());
    }

    /// A call to `node` that started at `started_ms` (uptime) failed:
    /// suspect it until it answers or calls again, so writes stop waiting
    /// on it.
    pub(crate) fn mark_failed(&self, node: NodeId, started_ms: u64) {
        self.peer_health()
            .failed(node, started_ms, self.uptime_ms());
    }

    /// Whether a recent call to `node` failed and it has not answered
    /// since, or the failure detector declared it down.
    pub(crate) fn is_suspect(&self, node: NodeId) -> bool {
        self.peer_health().is_suspect(node)
    }

    /// Whether the failure detector declared `node` down.
    pub(crate) fn is_down(&self, node: NodeId) -> bool {
        self.peer_health().is_down(node)
    }

    /// Trust `node` again (the failure detector saw it come up).
    pub(crate) fn clear_suspect(&self, node: NodeId) {
        self.peer_health().clear_suspect(node);
    }

    /// How long nothing went wrong: no failed call, no new down verdict,
    /// and this node up (ms).
    pub(crate) fn quiet_for_ms(&self) -> u64 {
        self.peer_health().quiet_for(self.uptime_ms())
    }

    /// Whether the failure detector sees `node` up (this node always is).
    pub(crate) fn is_up(&self, node: NodeId) -> bool {
        node == self.id() || self.peer_health().is_up(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_call_suspects_a_peer_until_it_is_seen() {
        let h = PeerHealth::default();
        let peer = NodeId(7);
        h.failed(peer, 10, 20);
        assert!(h.is_suspect(peer));
        h.seen(peer, 30);
        assert!(!h.is_suspect(peer));
        // A call that started before the peer was last seen proves nothing.
        h.failed(peer, 25, 40);
        assert!(!h.is_suspect(peer));
        assert_eq!(h.last_seen(peer), Some(30));
    }

    #[test]
    fn the_detector_decides_up_and_down() {
        let h = PeerHealth::default();
        let came_up = h.publish(
            Liveness {
                up: [1, 2].into(),
                down: [3].into(),
            },
            50,
        );
        assert_eq!(came_up, vec![1, 2]);
        assert_eq!(h.quiet_for(80), 30, "a new down verdict is trouble");
        assert!(h.is_up(NodeId(1)) && h.is_down(NodeId(3)) && h.is_suspect(NodeId(3)));
        let came_up = h.publish(
            Liveness {
                up: [1, 2, 3].into(),
                down: BTreeSet::new(),
            },
            90,
        );
        assert_eq!(came_up, vec![3]);
        assert_eq!(h.quiet_for(100), 50, "coming up is not");
    }
}
