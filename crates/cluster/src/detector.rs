//! # Failure detection (SWIM, by foca)
//!
//! Which peers are up is not part of the [`crate::ClusterState`] CRDT:
//! liveness changes by the second and every node must judge it for
//! itself. A [`Detector`] runs the SWIM protocol through foca: every
//! `probe_period` it pings one member (round-robin over a shuffled list),
//! asks others to ping it indirectly when no ack arrives within
//! `probe_rtt`, suspects it when neither answers, and declares it down
//! when the suspicion is not refuted within `suspect_to_down_after`.
//! Suspicions and verdicts spread piggy-backed on the probes.
//!
//! The detector does no I/O, like foca itself: the caller feeds it
//! packets, timer events and announcements, then [`Detector::drain`]s
//! what it asked for (packets to send, timers to set) and learns whether
//! the set of live peers changed. The same code therefore runs over UDP
//! in production and over an in-memory or simulated network in tests,
//! with randomness from a seed.
//!
//! ## Identities and coming back
//!
//! SWIM never revives an identity it declared down, so a [`Peer`] carries
//! a generation (the node's start epoch, then a counter) on top of its
//! stable [`NodeId`](ring::NodeId): a node that restarts, or that learns
//! the others declared it down (after a partition), renews its generation
//! and rejoins under the new one, which wins over the old. Liveness is
//! therefore reported per node id, from whichever generation is current.
//!
//! A node that was partitioned away also believes everyone else is down,
//! and down members are not probed. The driver must therefore announce
//! itself now and then to members it does not see as up
//! ([`Detector::announce`]); the first message across a healed partition
//! starts the renewal dance above, which settles in a few round trips.

use bytes::Bytes;
use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec, State};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

/// A timer the detector asked for; hand it back when it is due.
pub type DetectorTimer = foca::Timer<Peer>;

/// One generation of a node, as the detector knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The node's stable id.
    pub node: u64,
    /// Increases on every restart and every rejoin; the higher wins.
    pub generation: u64,
    /// Where its detector listens (`host:port`).
    pub addr: String,
}

impl foca::Identity for Peer {
    type Addr = u64;

    fn renew(&self) -> Option<Self> {
        Some(Peer {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> u64 {
        self.node
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

impl Peer {
    /// The first generation of a node started for the `epoch`-th time.
    /// Why shift: a node renews its generation at most a few times per
    /// partition, so 2^32 renewals per start can never reach the next
    /// start's first generation.
    pub fn first(node: u64, epoch: u32, addr: String) -> Peer {
        Peer {
            node,
            generation: u64::from(epoch) << 32,
            addr,
        }
    }
}

/// Timing of the SWIM protocol.
#[derive(Clone, Debug)]
pub struct DetectorConfig {
    /// How often one member is probed.
    pub probe_period: Duration,
    /// How long a direct probe waits before asking others to help.
    pub probe_rtt: Duration,
    /// How long a suspicion may go unrefuted before the member is down.
    pub suspect_to_down_after: Duration,
    /// Largest packet produced or accepted.
    pub packet_bytes_max: usize,
}

impl DetectorConfig {
    fn foca(&self) -> foca::Config {
        let mut c = foca::Config::simple();
        c.probe_period = self.probe_period;
        c.probe_rtt = self.probe_rtt;
        c.suspect_to_down_after = self.suspect_to_down_after;
        c.max_packet_size = NonZeroUsize::new(self.packet_bytes_max).unwrap_or(NonZeroUsize::MIN);
        c.max_transmissions = NonZeroU8::new(8).unwrap_or(NonZeroU8::MIN);
        c.num_indirect_probes = NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN);
        // Why: a member declared down must learn it (and renew) as soon
        // as it talks to us again, or a healed partition never closes.
        c.notify_down_members = true;
        // Why gossip between probes: verdicts would otherwise ride only on
        // probes, one per member per period, and reach the last member of
        // a larger cluster seconds after the first.
        c.periodic_gossip = Some(foca::PeriodicParams {
            frequency: self.probe_period / 2,
            num_members: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
        });
        c
    }
}

/// What the detector asked for since the last [`Detector::drain`].
#[derive(Debug, Default)]
pub struct Drained {
    /// Packets to send, to the peer's `addr`.
    pub send: Vec<(Peer, Bytes)>,
    /// Timers to set.
    pub schedule: Vec<(Duration, DetectorTimer)>,
    /// Whether the set of live peers may have changed.
    pub membership_changed: bool,
    /// Whether this node just took a new generation (it was declared
    /// down): the caller should announce it to every peer it knows.
    pub renewed: bool,
}

/// The failure detector of one node.
pub struct Detector {
    foca: Foca<Peer, PostcardCodec, SmallRng, NoCustomBroadcast>,
    runtime: AccumulatingRuntime<Peer>,
}

/// A packet the detector could not use.
#[derive(Debug, thiserror::Error)]
#[error("failure detector rejected a packet or event: {0}")]
pub struct DetectorError(String);

impl Detector {
    /// A detector for `me`, with randomness from `seed`.
    pub fn new(me: Peer, config: &DetectorConfig, seed: u64) -> Detector {
        Detector {
            foca: Foca::new(
                me,
                config.foca(),
                SmallRng::seed_from_u64(seed),
                PostcardCodec,
            ),
            runtime: AccumulatingRuntime::new(),
        }
    }

    /// This node's current generation.
    pub fn me(&self) -> &Peer {
        self.foca.identity()
    }

    /// Feed a packet from the network.
    ///
    /// # Errors
    ///
    /// The packet is malformed, too big, or from ourselves; the detector's
    /// state is unchanged.
    pub fn handle_data(&mut self, packet: &[u8]) -> Result<(), DetectorError> {
        // Why look at the header first: foca drops packets addressed to a
        // generation of ours other than the current one, so a peer that
        // missed our renewal would probe the old one, hear nothing, and
        // declare us down. Announcing our current generation to it
        // corrects its view at once.
        let mut codec = PostcardCodec;
        let stale_sender = match foca::Codec::<Peer>::decode_header(&mut codec, packet) {
            Ok(h) if h.dst.node == self.me().node && h.dst != *self.me() => Some(h.src),
            _ => None,
        };
        let handled = self
            .foca
            .handle_data(packet, &mut self.runtime)
            .map_err(|e| DetectorError(e.to_string()));
        if let Some(peer) = stale_sender {
            self.foca
                .announce(peer, &mut self.runtime)
                .map_err(|e| DetectorError(e.to_string()))?;
        }
        handled
    }

    /// Feed a timer that fell due.
    ///
    /// # Errors
    ///
    /// Only on internal encoding failures; stale timers are ignored.
    pub fn handle_timer(&mut self, timer: DetectorTimer) -> Result<(), DetectorError> {
        self.foca
            .handle_timer(timer, &mut self.runtime)
            .map_err(|e| DetectorError(e.to_string()))
    }

    /// Introduce ourselves to `node` at `addr`; its reply teaches us the
    /// members it knows. Its generation need not be known.
    ///
    /// # Errors
    ///
    /// Only on internal encoding failures.
    pub fn announce(&mut self, node: u64, addr: &str) -> Result<(), DetectorError> {
        let to = Peer {
            node,
            generation: 0,
            addr: addr.to_string(),
        };
        self.foca
            .announce(to, &mut self.runtime)
            .map_err(|e| DetectorError(e.to_string()))
    }

    /// Take what the detector asked for.
    pub fn drain(&mut self) -> Drained {
        let mut out = Drained::default();
        while let Some(p) = self.runtime.to_send() {
            out.send.push(p);
        }
        while let Some(t) = self.runtime.to_schedule() {
            out.schedule.push(t);
        }
        while let Some(n) = self.runtime.to_notify() {
            match n {
                OwnedNotification::Rejoin(_) => {
                    out.renewed = true;
                    out.membership_changed = true;
                }
                OwnedNotification::MemberUp(_)
                | OwnedNotification::MemberDown(_)
                | OwnedNotification::Rename(..)
                | OwnedNotification::Idle
                | OwnedNotification::Defunct => out.membership_changed = true,
                _ => {}
            }
        }
        out
    }

    /// Nodes whose current generation is alive or merely suspected.
    pub fn up(&self) -> BTreeSet<u64> {
        self.foca.iter_members().map(|m| m.id().node).collect()
    }

    /// Nodes whose current generation the cluster declared down. A node
    /// the detector never heard of is in neither set.
    pub fn down(&self) -> BTreeSet<u64> {
        let up = self.up();
        self.foca
            .iter_membership_state()
            .filter(|m| m.state() == State::Down && !up.contains(&m.id().node))
            .map(|m| m.id().node)
            .collect()
    }
}
