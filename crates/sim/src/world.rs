//! The simulated cluster: whole nodes started with `Node::start`, as the
//! binary starts them, on the seams of [`crate::seams`], and the operations
//! the nemesis performs on them (cut links, crash and restart, skew
//! clocks, add and remove members).

use crate::seams::{Incarnation, SimClock, SimEngine, SimNetwork};
use net::MemoryNetwork;
use node::{Env, Node, NodeConfig};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::MemoryEngine;

/// Partitions in a simulated cluster: few, so anti-entropy and handoff
/// finish quickly, but more than any node count so ownership spreads.
const PARTITION_BITS: u8 = 5;
/// How long starting or settling a cluster may take, in virtual time.
const SETTLE_DEADLINE: Duration = Duration::from_secs(120);

/// One simulated machine: a disk and a clock that outlive crashes, and the
/// node running on them, if any.
struct Machine {
    addr: String,
    disk: Arc<MemoryEngine>,
    clock: Arc<SimClock>,
    life: Incarnation,
    starts: u64,
}

/// The cluster under test. Clients share [`World::handles`], so after a
/// restart they reach the new incarnation.
pub struct World {
    seed: u64,
    /// The network every node is on; the nemesis cuts links in it.
    pub net: MemoryNetwork,
    machines: Vec<Machine>,
    handles: Arc<Mutex<Vec<Option<Node>>>>,
}

/// What clients use to find the node running on a machine.
#[derive(Clone)]
pub struct Handles(Arc<Mutex<Vec<Option<Node>>>>);

impl Handles {
    /// The node on machine `i`, unless it is down.
    pub fn get(&self, i: usize) -> Option<Node> {
        self.0.lock().ok().and_then(|h| h.get(i).cloned().flatten())
    }

    /// How many machines there are.
    pub fn len(&self) -> usize {
        self.0.lock().map(|h| h.len()).unwrap_or(0)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn config(addr: &str, seeds: Vec<String>) -> NodeConfig {
    NodeConfig {
        rpc: addr.to_string(),
        http: addr.replace(":7000", ":8098"),
        s3: addr.replace(":7000", ":9000"),
        join: seeds,
        partition_bits: PARTITION_BITS,
        request_timeout_ms: 1000,
        gossip_interval_ms: 200,
        aae_interval_ms: 1000,
        // Reaping on, and soon: deletes race every fault of the run.
        delete_mode: node::DeleteMode::GraceMs(1000),
        reap_interval_ms: 500,
        // Collection on, and soon: references go and come under every
        // fault of the run.
        s3_block_grace_ms: 1000,
        s3_block_collect_interval_ms: 500,
        enable_fault_injection: true,
        ..NodeConfig::default()
    }
}

impl World {
    /// `machines` machines, of which the first `members` start and form a
    /// cluster; the rest stay off until [`World::join`].
    pub async fn start(seed: u64, machines: usize, members: usize) -> World {
        let mut world = World {
            seed,
            net: MemoryNetwork::new(),
            machines: (0..machines)
                .map(|i| Machine {
                    addr: format!("n{i}:7000"),
                    disk: Arc::new(MemoryEngine::new()),
                    clock: Arc::new(SimClock::new()),
                    life: Incarnation::new(),
                    starts: 0,
                })
                .collect(),
            handles: Arc::new(Mutex::new(vec![None; machines])),
        };
        for i in 0..members {
            world.boot(i).await;
        }
        let first: Vec<usize> = (0..members).collect();
        assert!(
            world.settle(&first).await,
            "a new cluster of {members} did not form within {SETTLE_DEADLINE:?} of virtual time"
        );
        world
    }

    /// Handles for clients.
    pub fn handles(&self) -> Handles {
        Handles(self.handles.clone())
    }

    /// The node on machine `i`, unless it is down.
    pub fn node(&self, i: usize) -> Option<Node> {
        self.handles().get(i)
    }

    /// Number of machines, up or not.
    pub fn machines(&self) -> usize {
        self.machines.len()
    }

    /// Machine `i`'s address.
    pub fn addr(&self, i: usize) -> &str {
        &self.machines[i].addr
    }

    /// Start a node on machine `i` (first start or restart).
    async fn boot(&mut self, i: usize) {
        let seeds = if i == 0 {
            Vec::new()
        } else {
            vec![self.machines[0].addr.clone()]
        };
        let m = &mut self.machines[i];
        m.life = Incarnation::new();
        m.starts += 1;
        let env = Env {
            clock: m.clock.clone(),
            seed: self.seed ^ ((i as u64) << 48) ^ (m.starts << 32),
            network: Arc::new(SimNetwork::new(self.net.at(&m.addr), m.life.clone())),
            engine: Arc::new(SimEngine::new(m.disk.clone(), m.life.clone())),
        };
        // The listener of the last incarnation closes once its aborted task
        // is dropped; until then the address is taken.
        let mut tries = 0;
        let node = loop {
            match Node::start(config(&m.addr, seeds.clone()), env.clone()).await {
                Ok(n) => break n,
                Err(e) if tries < 100 => {
                    tries += 1;
                    tracing::debug!(machine = i, "start failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("machine {i} cannot start a node: {e}"),
            }
        };
        if let Ok(mut h) = self.handles.lock() {
            h[i] = Some(node);
        }
    }

    /// Whether machine `i` runs a node now.
    pub fn is_up(&self, i: usize) -> bool {
        self.node(i).is_some()
    }

    /// Power cut on machine `i`: the node stops at once, mid-request, and
    /// its disk forgets every write it had not synced.
    pub fn crash(&mut self, i: usize) {
        let Some(node) = self.handles.lock().ok().and_then(|mut h| h[i].take()) else {
            return;
        };
        node.shutdown();
        self.machines[i].life.kill();
        self.machines[i].disk.crash();
    }

    /// Start machine `i` again after a crash.
    pub async fn restart(&mut self, i: usize) {
        if !self.is_up(i) {
            self.boot(i).await;
        }
    }

    /// Add machine `i` to the cluster as a new member.
    pub async fn join(&mut self, i: usize) {
        self.boot(i).await;
    }

    /// Skew machine `i`'s wall clock by `ms`.
    pub fn set_clock_offset(&self, i: usize, ms: i64) {
        self.machines[i].clock.set_offset_ms(ms);
    }

    /// Machines whose node is up.
    pub fn up(&self) -> Vec<usize> {
        (0..self.machines()).filter(|&i| self.is_up(i)).collect()
    }

    /// Remove every network fault: cut links and per-node drop and delay
    /// rules.
    pub fn heal_network(&self) {
        if let Ok(mut f) = self.net.faults.lock() {
            f.heal();
        }
        for i in self.up() {
            if let Some(n) = self.node(i) {
                let _ = n.set_faults(&[], &[]);
            }
        }
    }

    /// Wait until every machine in `members` is up, sees exactly those
    /// members, and agrees on a stable layout; false if that takes longer
    /// than two minutes of virtual time.
    pub async fn settle(&self, members: &[usize]) -> bool {
        let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
        loop {
            let settled = members.iter().all(|&i| {
                self.node(i).is_some_and(|n| {
                    let l = n.layout_status();
                    n.layout().members().len() == members.len() && l.version == l.stable_version
                })
            });
            if settled {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One line per machine: up or down, members seen, layout versions,
    /// transfers in flight. For reports of runs that did not settle.
    pub fn describe(&self) -> Vec<String> {
        (0..self.machines())
            .map(|i| match self.node(i) {
                None => format!("machine {i}: down"),
                Some(n) => {
                    let l = n.layout_status();
                    format!(
                        "machine {i} ({}): {} members, layout {} stable {}, {} transfers",
                        n.id(),
                        n.layout().members().len(),
                        l.version,
                        l.stable_version,
                        n.transfers().len()
                    )
                }
            })
            .collect()
    }
}
