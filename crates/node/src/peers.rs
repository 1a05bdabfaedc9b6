//! What this node believes about each peer: when it last heard from it,
//! whether a call to it failed (suspect), and the failure detector's
//! verdict. Requests avoid a peer that is suspect or down.

use crate::Node;
use ring::NodeId;

impl Node {
    /// Record that `node` just answered or called. Runs on every RPC, so
    /// the common case takes only a read lock and an atomic store.
    pub(crate) fn mark_seen(&self, node: NodeId) {
        let now = self.uptime_ms();
        let suspected = self
            .inner
            .suspects
            .read()
            .is_ok_and(|s| s.contains_key(&node));
        if suspected {
            if let Ok(mut s) = self.inner.suspects.write() {
                s.remove(&node);
            }
        }
        if let Some(seen) = self
            .inner
            .last_seen
            .read()
            .ok()
            .as_ref()
            .and_then(|m| m.get(&node))
        {
            seen.store(now, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        if let Ok(mut m) = self.inner.last_seen.write() {
            m.entry(node)
                .or_default()
                .store(now, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A call to `node` that started at `started_ms` (uptime) failed:
    /// suspect it until it answers or calls again, so writes stop waiting
    /// on it. Why the start time: a call sent before a partition healed
    /// may time out after the peer answered newer ones; it proves nothing.
    pub(crate) fn mark_failed(&self, node: NodeId, started_ms: u64) {
        if self
            .last_seen_ms(node)
            .is_some_and(|seen| seen > started_ms)
        {
            return;
        }
        let now = self.uptime_ms();
        if let Ok(mut s) = self.inner.suspects.write() {
            s.insert(node, now);
        }
    }

    /// Whether a recent call to `node` failed and it has not answered
    /// since, or the failure detector declared it down.
    pub(crate) fn is_suspect(&self, node: NodeId) -> bool {
        self.inner
            .suspects
            .read()
            .is_ok_and(|s| s.contains_key(&node))
            || self.is_down(node)
    }

    /// Whether the failure detector declared `node` down.
    pub(crate) fn is_down(&self, node: NodeId) -> bool {
        self.inner
            .liveness
            .read()
            .is_ok_and(|l| l.down.contains(&node.0))
    }

    /// Trust `node` again (the failure detector saw it come up).
    pub(crate) fn clear_suspect(&self, node: NodeId) {
        if let Ok(mut s) = self.inner.suspects.write() {
            s.remove(&node);
        }
    }

    /// Whether the failure detector sees `node` up (this node always is).
    pub(crate) fn is_up(&self, node: NodeId) -> bool {
        node == self.id()
            || self
                .inner
                .liveness
                .read()
                .is_ok_and(|l| l.up.contains(&node.0))
    }

    /// When `node` was last seen, in [`Node::uptime_ms`] terms.
    pub(crate) fn last_seen_ms(&self, node: NodeId) -> Option<u64> {
        let m = self.inner.last_seen.read().ok()?;
        m.get(&node)
            .map(|t| t.load(std::sync::atomic::Ordering::Relaxed))
    }
}
