//! # Fault injection
//!
//! Tests need to cut a node off, or slow its links, without root. These
//! rules live in the transport, so they apply to every message between this
//! node and the named peers (requests, replies, gossip) in both directions:
//!
//! - **drop**: outbound calls to the peer are never sent (the caller sees
//!   its deadline pass, as in a real partition), and inbound requests from
//!   the peer are discarded unanswered.
//! - **delay**: every outbound call waits before it is sent and after its
//!   reply arrives, and every inbound request waits before it is handled.
//!
//! Rules are keyed by node id, which each connection learns in its
//! handshake. Nodes accept rules only when started with
//! `--enable-fault-injection`.
//!
//! Apart from the rules, an **emulated WAN** ([`FaultRules::set_links`]):
//! a one-way latency (plus jitter) on everything this node *sends* to a
//! peer, RPC frames and datagrams alike, and a loss rate for datagrams.
//! Set on every node for its peers in other zones, round trips between
//! zones take twice the one-way latency, as on a real WAN. Frames of one
//! connection keep their order (a FIFO delay line, as TCP would);
//! datagrams may be reordered by jitter, as UDP is. Why in the transport
//! and not netem: the lab must run where the kernel has no `sch_netem`
//! (this project's CI machine has none), without root.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::Duration;

/// What to do to traffic with some peers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Peers whose traffic disappears.
    pub drop: BTreeSet<u64>,
    /// Peers whose traffic is delayed, by milliseconds each way.
    pub delay_ms: BTreeMap<u64, u64>,
}

/// What happens to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    Drop,
    Delay(Duration),
}

/// One emulated WAN link: what is added to each message sent on it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Link {
    /// One-way latency.
    pub latency: Duration,
    /// Each message's latency is drawn from `latency ± jitter`.
    pub jitter: Duration,
    /// Fraction of datagrams dropped (0.001 is 0.1%).
    pub datagram_loss: f64,
}

impl Link {
    /// This message's one-way latency.
    pub(crate) fn sample(&self) -> Duration {
        if self.jitter.is_zero() {
            return self.latency;
        }
        let j = self.jitter.as_micros() as i64;
        let offset = rand::random_range(-j..=j);
        let micros = (self.latency.as_micros() as i64 + offset).max(0);
        Duration::from_micros(micros as u64)
    }

    /// Whether this datagram is lost.
    pub(crate) fn loses(&self) -> bool {
        self.datagram_loss > 0.0 && rand::random::<f64>() < self.datagram_loss
    }
}

/// The rules in force on one node. Cheap to check when there are none.
#[derive(Debug, Default)]
pub struct FaultRules {
    active: AtomicBool,
    rules: RwLock<Rules>,
    links_active: AtomicBool,
    /// Emulated WAN links by peer node id.
    links: RwLock<BTreeMap<u64, Link>>,
}

impl FaultRules {
    /// Replace the rules.
    pub fn set(&self, rules: Rules) {
        let active = !rules.drop.is_empty() || !rules.delay_ms.is_empty();
        if let Ok(mut r) = self.rules.write() {
            *r = rules;
        }
        self.active.store(active, Ordering::Release);
    }

    /// Remove every rule.
    pub fn clear(&self) {
        self.set(Rules::default());
    }

    /// The rules in force.
    pub fn get(&self) -> Rules {
        self.rules.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// Replace the emulated WAN links (by peer node id).
    pub fn set_links(&self, links: BTreeMap<u64, Link>) {
        let active = !links.is_empty();
        if let Ok(mut l) = self.links.write() {
            *l = links;
        }
        self.links_active.store(active, Ordering::Release);
    }

    /// The emulated link to `peer`, if any.
    pub(crate) fn link(&self, peer: u64) -> Option<Link> {
        if !self.links_active.load(Ordering::Acquire) {
            return None;
        }
        self.links.read().ok()?.get(&peer).copied()
    }

    pub(crate) fn verdict(&self, peer: u64) -> Verdict {
        if !self.active.load(Ordering::Acquire) {
            return Verdict::Pass;
        }
        let Ok(r) = self.rules.read() else {
            return Verdict::Pass;
        };
        if r.drop.contains(&peer) {
            Verdict::Drop
        } else if let Some(ms) = r.delay_ms.get(&peer) {
            Verdict::Delay(Duration::from_millis(*ms))
        } else {
            Verdict::Pass
        }
    }
}
