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

/// The rules in force on one node. Cheap to check when there are none.
#[derive(Debug, Default)]
pub struct FaultRules {
    active: AtomicBool,
    rules: RwLock<Rules>,
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
