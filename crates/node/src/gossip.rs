//! # Gossip of cluster state
//!
//! Every `gossip_interval` the node sends its whole [`cluster::ClusterState`]
//! to one random peer that the failure detector sees up, which merges it
//! and answers with its own (push-pull), over RPC.
//! A node that learns something from a gossip message pushes to every peer
//! at once, so a join or a bucket property spreads in one round trip
//! instead of `log n` intervals. The push stops on its own: a peer that
//! learns nothing pushes nothing.
//!
//! Peers under suspicion (a recent call failed) are also probed every
//! 250 ms, so a node that comes back is trusted again quickly.
//!
//! The state is small (membership events, addresses, bucket properties),
//! so sending it whole keeps the protocol trivially convergent. It does
//! not ride on the failure detector's datagrams because it grows with
//! buckets and history, and a datagram does not.
//!
//! Liveness is not decided here but by the failure detector (`swim`).

use crate::locks::Held;
use crate::proto::{Request, Response};
use crate::Node;
use rand::seq::IndexedRandom;
use ring::NodeId;

/// How often suspect peers are probed, and how long a probe waits.
const SUSPECT_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Probe every suspect peer a few times a second, so one that is back is
/// trusted again (and gets writes, hints and exchanges) within a fraction
/// of a second. Costs nothing while no peer is suspect.
pub(crate) async fn probe_suspects(node: Node) {
    let mut tick = tokio::time::interval(SUSPECT_PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let suspects = node.peer_health().suspects();
        let probes = suspects.into_iter().map(|peer| {
            let node = node.clone();
            async move {
                let req = Request::Gossip(node.cluster_state());
                if let Ok(Response::Gossip(theirs)) =
                    node.call(peer, req, SUSPECT_PROBE_INTERVAL).await
                {
                    let _ = node.merge_state(&theirs).await;
                }
            }
        });
        futures::future::join_all(probes).await;
    }
}

pub(crate) async fn run(node: Node) {
    let mut tick = tokio::time::interval(node.config().gossip_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let peers = peers(&node);
        let up: Vec<NodeId> = peers.iter().copied().filter(|p| node.is_up(*p)).collect();
        // Why fall back to any peer: a node that just started sees nobody
        // up yet, and the state must still flow.
        let candidates = if up.is_empty() { &peers } else { &up };
        let peer = candidates.choose(&mut *node.rng().held()).copied();
        if let Some(peer) = peer {
            exchange(&node, peer).await;
        }
        retry_join(&node).await;
    }
}

/// Every other node that is a member and whose address we know.
fn peers(node: &Node) -> Vec<NodeId> {
    node.layout()
        .members()
        .iter()
        .map(|m| m.id)
        .filter(|id| *id != node.id())
        .collect()
}

async fn exchange(node: &Node, peer: NodeId) {
    let req = Request::Gossip(node.cluster_state());
    let timeout = node.config().request_timeout();
    if let Ok(Response::Gossip(theirs)) = node.call(peer, req, timeout).await {
        if let Err(e) = node.merge_state(&theirs).await {
            tracing::warn!(error = %e, "could not store gossiped cluster state");
        }
    }
}

/// Send our state to every peer now.
pub(crate) async fn push_to_all(node: &Node) {
    let calls = peers(node).into_iter().map(|p| exchange(node, p));
    futures::future::join_all(calls).await;
}

/// How long a start waits for its peers to hear from it.
const GREETING_PATIENCE: std::time::Duration = std::time::Duration::from_millis(500);

/// Tell every peer this node is back, and wait (briefly) until they heard.
///
/// Why before the node serves: a peer that failed to call this node while
/// it was down suspects it until it hears from it again (`peers`), and
/// skips it in writes meanwhile. Without the greeting a `w=all` write in
/// the first probe interval after a quick restart would fail although
/// every node is up. Bounded, so unreachable peers delay a start by at
/// most [`GREETING_PATIENCE`].
pub(crate) async fn greet_peers(node: &Node) {
    let _ = tokio::time::timeout(GREETING_PATIENCE, push_to_all(node)).await;
}

/// While the node knows no other member, keep trying its join seeds.
async fn retry_join(node: &Node) {
    if !peers(node).is_empty() {
        return;
    }
    for seed in node.config().join.clone() {
        match node.join(&seed).await {
            Ok(()) => {
                tracing::info!(%seed, "joined the cluster");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "join failed; retrying"),
        }
    }
}
