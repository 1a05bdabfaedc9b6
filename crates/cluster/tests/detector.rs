//! The failure detector on a simulated network: virtual time, instant
//! delivery (1 ms), crashes and partitions decided by the test. Checks the
//! promises the admin API makes with default timings: a crashed or
//! cut-off node is down within 3 s, a restarted or healed one up within
//! 1 s.

use ringstore_cluster::{Detector, DetectorConfig, DetectorTimer, Peer};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The node crate's defaults.
fn config() -> DetectorConfig {
    DetectorConfig {
        probe_period: Duration::from_millis(400),
        probe_rtt: Duration::from_millis(150),
        suspect_to_down_after: Duration::from_millis(800),
        packet_bytes_max: 1300,
    }
}

/// How often the node driver announces to members it does not see up.
const ANNOUNCE_EVERY_MS: u64 = 250;

enum Event {
    Packet(usize, Vec<u8>),
    Timer(DetectorTimer),
    Announce,
}

struct Sim {
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), (usize, u64, Event)>,
    nodes: Vec<Detector>,
    /// Incremented per restart, so a crashed node's timers are ignored.
    incarnation: Vec<u64>,
    dead: BTreeSet<usize>,
    cut: BTreeSet<usize>,
    seed: u64,
}

fn addr(i: usize) -> String {
    format!("n{i}")
}

impl Sim {
    fn new(n: usize, seed: u64) -> Sim {
        let mut sim = Sim {
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            nodes: Vec::new(),
            incarnation: vec![0; n],
            dead: BTreeSet::new(),
            cut: BTreeSet::new(),
            seed,
        };
        for i in 0..n {
            let d = Detector::new(
                Peer::first(i as u64, 1, addr(i)),
                &config(),
                seed + i as u64,
            );
            sim.nodes.push(d);
            sim.push(i, 0, Event::Announce);
        }
        sim
    }

    fn push(&mut self, to: usize, after_ms: u64, ev: Event) {
        self.seq += 1;
        let inc = self.incarnation[to];
        self.queue
            .insert((self.now + after_ms, self.seq), (to, inc, ev));
    }

    fn restart(&mut self, i: usize, epoch: u32) {
        self.incarnation[i] += 1;
        self.dead.remove(&i);
        self.nodes[i] = Detector::new(
            Peer::first(i as u64, epoch, addr(i)),
            &config(),
            self.seed * 7 + epoch as u64,
        );
        self.push(i, 0, Event::Announce);
    }

    fn blocked(&self, a: usize, b: usize) -> bool {
        self.dead.contains(&a)
            || self.dead.contains(&b)
            || (self.cut.contains(&a) != self.cut.contains(&b))
    }

    fn flush(&mut self, i: usize) {
        let out = self.nodes[i].drain();
        for (peer, data) in out.send {
            let to = peer.node as usize;
            if !self.blocked(i, to) {
                self.push(to, 1, Event::Packet(i, data.to_vec()));
            }
        }
        for (after, t) in out.schedule {
            self.push(i, after.as_millis() as u64, Event::Timer(t));
        }
        if out.renewed {
            self.announce_to_all_not_up(i);
        }
    }

    fn announce_to_all_not_up(&mut self, i: usize) {
        let up = self.nodes[i].up();
        for j in 0..self.nodes.len() {
            if j != i && !up.contains(&(j as u64)) {
                let _ = self.nodes[i].announce(j as u64, &addr(j));
            }
        }
    }

    /// Run until `until_ms`, or until `done` holds; returns when it held.
    fn run(&mut self, until_ms: u64, done: impl Fn(&Sim) -> bool) -> Option<u64> {
        while let Some((&(at, seq), _)) = self.queue.first_key_value() {
            if done(self) {
                return Some(self.now);
            }
            if at > until_ms {
                break;
            }
            let Some((to, inc, ev)) = self.queue.remove(&(at, seq)) else {
                break;
            };
            self.now = at;
            if self.dead.contains(&to) || inc != self.incarnation[to] {
                continue;
            }
            match ev {
                Event::Packet(from, data) => {
                    if !self.blocked(from, to) {
                        let _ = self.nodes[to].handle_data(&data);
                    }
                }
                Event::Timer(t) => {
                    let _ = self.nodes[to].handle_timer(t);
                }
                Event::Announce => {
                    self.announce_to_all_not_up(to);
                    self.push(to, ANNOUNCE_EVERY_MS, Event::Announce);
                }
            }
            self.flush(to);
        }
        done(self).then_some(self.now)
    }

    fn sees(&self, viewer: usize, node: usize) -> bool {
        self.nodes[viewer].up().contains(&(node as u64))
    }

    fn all_up(&self, live: &[usize]) -> bool {
        live.iter()
            .all(|&a| live.iter().all(|&b| a == b || self.sees(a, b)))
    }
}

fn check_seed(n: usize, seed: u64) {
    let mut sim = Sim::new(n, seed);
    let everyone: Vec<usize> = (0..n).collect();
    let last = n - 1;
    let others = &everyone[..last];
    let t = sim.run(2_000, |s| s.all_up(&everyone));
    assert!(
        t.is_some(),
        "{n} nodes, seed {seed}: three nodes never all saw each other"
    );
    // Let the cluster settle into its probe rhythm.
    let settle = sim.now + 3_000;
    sim.run(settle, |_| false);

    // A crash: the others call it down within 3 s.
    sim.dead.insert(last);
    let crashed_at = sim.now;
    let t = sim.run(crashed_at + 3_000, |s| {
        others
            .iter()
            .all(|&o| s.nodes[o].down().contains(&(last as u64)))
    });
    assert!(
        t.is_some(),
        "{n} nodes, seed {seed}: crashed node not down within 3 s"
    );

    // A restart (higher epoch): up everywhere within 1 s.
    sim.restart(last, 2);
    let back_at = sim.now;
    let t = sim.run(back_at + 1_000, |s| s.all_up(&everyone));
    assert!(
        t.is_some(),
        "{n} nodes, seed {seed}: restarted node not up within 1 s"
    );
    let settle = sim.now + 3_000;
    sim.run(settle, |_| false);

    // A partition: the majority calls the cut-off node down within 3 s.
    // (The cut-off node must probe each of the others itself, one per
    // period, so in a larger cluster its own view takes longer.)
    sim.cut.insert(last);
    let cut_at = sim.now;
    let t = sim.run(cut_at + 3_000, |s| others.iter().all(|&o| !s.sees(o, last)));
    assert!(
        t.is_some(),
        "{n} nodes, seed {seed}: cut-off node not down within 3 s"
    );
    // Stay cut long enough for every timer to settle, then heal.
    let settle = sim.now + 5_000;
    sim.run(settle, |_| false);
    sim.cut.clear();
    let healed_at = sim.now;
    let t = sim.run(healed_at + 1_000, |s| s.all_up(&everyone));
    assert!(
        t.is_some(),
        "{n} nodes, seed {seed}: healed node not up within 1 s"
    );
    // And it stays that way: no flapping on a healthy network.
    let quiet_from = sim.now;
    let flapped = sim.run(quiet_from + 10_000, |s| !s.all_up(&everyone));
    assert!(
        flapped.is_none(),
        "{n} nodes, seed {seed}: a node flapped on a healthy network"
    );
}

#[test]
fn crash_restart_partition_heal_within_the_promised_times() {
    for n in [3, 5] {
        for seed in 0..100 {
            check_seed(n, seed);
        }
    }
}
