//! # An emulated WAN, for the lab
//!
//! `scripts/wan-lab.sh` and `tests/wan.rs` run a cluster of three data
//! centers on one machine. Each node is told the one-way latency to every
//! other zone (`lab_zone_latency_ms`), and this module keeps the
//! transport's links ([`net::FaultRules::set_links`]) in step with the
//! membership: every peer in a named zone gets that latency on all this
//! node sends it (RPC frames and gossip datagrams), with jitter and
//! datagram loss. Peers in zones not named (this node's own) are local.
//!
//! Why not netem: the lab must run without root and on kernels without
//! `sch_netem` (CI's has none). Never set these settings in production.

use crate::Node;
use std::collections::BTreeMap;
use std::time::Duration;

/// How often the links follow the membership.
const REFRESH: Duration = Duration::from_millis(250);

/// The links this node should have, from its settings and the members.
fn links(node: &Node) -> BTreeMap<u64, net::Link> {
    let cfg = node.config();
    let layout = node.layout();
    layout
        .members()
        .iter()
        .filter(|m| m.id != node.id())
        .filter_map(|m| {
            let ms = *cfg.lab_zone_latency_ms.get(&m.zone)?;
            Some((
                m.id.0,
                net::Link {
                    latency: Duration::from_millis(ms),
                    jitter: Duration::from_millis(cfg.lab_latency_jitter_ms),
                    datagram_loss: cfg.lab_datagram_loss,
                },
            ))
        })
        .collect()
}

/// Keep the emulated links in step with the membership, if any are set.
pub(crate) async fn run(node: Node) {
    if node.config().lab_zone_latency_ms.is_empty() {
        return;
    }
    tracing::warn!(
        zones = ?node.config().lab_zone_latency_ms,
        "emulating WAN latency to other zones (lab settings; never in production)"
    );
    let mut last = BTreeMap::new();
    loop {
        let now = links(&node);
        if now != last {
            node.faults().set_links(now.clone());
            last = now;
        }
        tokio::time::sleep(REFRESH).await;
    }
}
