//! The nemesis: faults drawn from the seed, one at a time, each held for a
//! while and then healed, until the workload stops.
//!
//! One fault at a time keeps every history explainable (a failing seed
//! names the fault in force), while the random order, targets and
//! durations still reach the interleavings that matter: a crash during a
//! partition's heal, a skewed clock across a restart, a join while a node
//! is isolated.

use crate::history::History;
use crate::world::World;
use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::RngExt;
use ring::NodeId;
use std::collections::BTreeSet;
use std::time::Duration;

/// The kinds of fault the nemesis draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// One node cut off from every other, both ways.
    Isolate,
    /// The nodes split into a minority and a majority.
    Split,
    /// One node's outbound traffic lost; what others send it arrives.
    OneWay,
    /// A power cut: the node stops mid-request, unsynced writes are lost,
    /// and it restarts later.
    Crash,
    /// Every message between one node and some peers delayed.
    Delay,
    /// Every message between one node and one peer lost, for a while.
    Loss,
    /// One node's wall clock skewed or jumped, forwards or back; clocks
    /// are not healed.
    Clock,
    /// A new machine joins the cluster.
    Join,
    /// A member leaves; its partitions are handed off.
    Leave,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Isolate,
        FaultKind::Split,
        FaultKind::OneWay,
        FaultKind::Crash,
        FaultKind::Delay,
        FaultKind::Loss,
        FaultKind::Clock,
        FaultKind::Join,
        FaultKind::Leave,
    ];
}

/// The nemesis's view of the cluster's membership.
pub struct Nemesis {
    /// Machines that are members (joined and not left).
    pub members: BTreeSet<usize>,
    /// Machines never started yet, free to join.
    spare: Vec<usize>,
    /// Machines crashed and not yet restarted.
    crashed: BTreeSet<usize>,
    kinds: Vec<FaultKind>,
    rng: SmallRng,
    history: History,
    /// How many faults of each kind were injected.
    pub injected: Vec<(FaultKind, u32)>,
}

impl Nemesis {
    /// A nemesis over `members` started machines out of `machines`.
    pub fn new(
        members: usize,
        machines: usize,
        kinds: Vec<FaultKind>,
        rng: SmallRng,
        history: History,
    ) -> Self {
        Nemesis {
            members: (0..members).collect(),
            spare: (members..machines).collect(),
            crashed: BTreeSet::new(),
            kinds,
            rng,
            history,
            injected: Vec::new(),
        }
    }

    /// Inject faults until virtual millisecond `stop_ms`, then heal.
    pub async fn run(&mut self, world: &mut World, stop_ms: u64) {
        while self.history.now_ms() < stop_ms && !self.kinds.is_empty() {
            let gap = self.rng.random_range(100..1500);
            tokio::time::sleep(Duration::from_millis(gap)).await;
            let kind = self.kinds[self.rng.random_range(0..self.kinds.len())];
            if self.inject(world, kind).await {
                match self.injected.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, n)) => *n += 1,
                    None => self.injected.push((kind, 1)),
                }
            }
            let hold = self.rng.random_range(200..3000);
            tokio::time::sleep(Duration::from_millis(hold)).await;
            self.heal(world).await;
        }
        self.heal(world).await;
    }

    fn pick(&mut self, from: &[usize]) -> Option<usize> {
        from.choose(&mut self.rng).copied()
    }

    /// Apply one fault of `kind`; false if none applies now.
    async fn inject(&mut self, world: &mut World, kind: FaultKind) -> bool {
        let up = world.up();
        let Some(victim) = self.pick(&up) else {
            return false;
        };
        let others: Vec<usize> = up.iter().copied().filter(|&i| i != victim).collect();
        match kind {
            FaultKind::Isolate => self.cut(world, &[victim], &others, false),
            FaultKind::OneWay => self.cut(world, &[victim], &others, true),
            FaultKind::Split => {
                let mut all = up.clone();
                all.shuffle(&mut self.rng);
                let (minority, majority) = all.split_at(all.len() / 2);
                self.cut(world, minority, majority, false);
            }
            FaultKind::Crash => {
                self.history.fault(format!("crash {victim}"));
                world.crash(victim);
                self.crashed.insert(victim);
            }
            FaultKind::Delay => {
                let ms = self.rng.random_range(20..800);
                let peers = ids(world, &others);
                let delays: Vec<(NodeId, u64)> = peers.iter().map(|&p| (p, ms)).collect();
                self.history.fault(format!("delay {victim} by {ms} ms"));
                if let Some(n) = world.node(victim) {
                    let _ = n.set_faults(&[], &delays);
                }
            }
            FaultKind::Loss => {
                let Some(peer) = self.pick(&others) else {
                    return false;
                };
                self.history
                    .fault(format!("lose messages {victim} <-> {peer}"));
                if let Some(n) = world.node(victim) {
                    let _ = n.set_faults(&ids(world, &[peer]), &[]);
                }
            }
            FaultKind::Clock => {
                let ms = self.rng.random_range(-60_000..60_000i64);
                self.history
                    .fault(format!("clock of {victim} off by {ms} ms"));
                world.set_clock_offset(victim, ms);
            }
            FaultKind::Join => return self.join(world).await,
            FaultKind::Leave => return self.leave(world).await,
        }
        true
    }

    fn cut(&mut self, world: &World, a: &[usize], b: &[usize], one_way: bool) {
        let arrow = if one_way { "->" } else { "<->" };
        self.history.fault(format!("cut {a:?} {arrow} {b:?}"));
        if let Ok(mut f) = world.net.faults.lock() {
            for &x in a {
                for &y in b {
                    if one_way {
                        f.cut_one_way(world.addr(x), world.addr(y));
                    } else {
                        f.cut(world.addr(x), world.addr(y));
                    }
                }
            }
        }
    }

    async fn join(&mut self, world: &mut World) -> bool {
        if self.spare.is_empty() {
            return false;
        }
        let i = self.spare.remove(0);
        self.history.fault(format!("join {i}"));
        world.join(i).await;
        self.members.insert(i);
        true
    }

    async fn leave(&mut self, world: &mut World) -> bool {
        // Machine 0 stays: it is every restart's join seed. Three members
        // stay, so n_val = 3 keeps three distinct owners.
        let candidates: Vec<usize> = self
            .members
            .iter()
            .copied()
            .filter(|&i| i != 0 && world.is_up(i))
            .collect();
        if self.members.len() <= 3 {
            return false;
        }
        let (Some(i), Some(coordinator)) = (self.pick(&candidates), world.node(0)) else {
            return false;
        };
        let Some(id) = world.node(i).map(|n| n.id()) else {
            return false;
        };
        self.history.fault(format!("leave {i}"));
        if coordinator.leave(id).await.is_err() {
            return false;
        }
        self.members.remove(&i);
        true
    }

    /// Undo network faults and restart crashed machines.
    pub async fn heal(&mut self, world: &mut World) {
        world.heal_network();
        for i in std::mem::take(&mut self.crashed) {
            self.history.fault(format!("restart {i}"));
            world.restart(i).await;
        }
        self.history.fault("heal".into());
    }
}

fn ids(world: &World, machines: &[usize]) -> Vec<NodeId> {
    machines
        .iter()
        .filter_map(|&i| world.node(i).map(|n| n.id()))
        .collect()
}
