//! # Deterministic whole-cluster simulation
//!
//! The question this crate answers: if the network splits, a node dies or
//! a clock jumps while an application writes, does ringstore lose anything
//! it said was saved? It answers it the way FoundationDB does: whole nodes
//! (the same `Node::start` the binary calls) run in one process on one
//! thread, on seams that are all simulated, so a seed decides everything.
//!
//! - **Time** is tokio's paused clock: it jumps to the next timer whenever
//!   every task waits, so a minute of cluster life takes milliseconds and
//!   timeouts fire exactly when the seed says.
//! - **Scheduling** is tokio's current-thread runtime: one thread, tasks
//!   polled in the order they were woken. The node's `select!`s are
//!   `biased`, so none draws on tokio's random branch order.
//! - **Network, disk, clocks** are [`seams`]: the in-memory network with
//!   cuttable links, a memory engine that forgets unsynced writes on a
//!   crash, and wall clocks the nemesis skews.
//!
//! A run ([`run`]) starts 3–5 members (plus up to two machines that may
//! join), lets the [`workload`] clients and the [`nemesis`] loose for a
//! while, heals everything, and then the [`check`]ers compare the
//! [`history`] with what the cluster holds. Same seed, same history: the
//! [`Report`] carries the history's digest to prove it.

pub mod check;
pub mod history;
pub mod nemesis;
mod report;
pub mod seams;
pub mod workload;
pub mod world;

pub use nemesis::FaultKind;
pub use report::{Report, SimConfig};

use history::History;
use nemesis::Nemesis;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use workload::Client;
use world::World;

/// Run seed `seed` to the end and check it. Everything in the run follows
/// from the seed and `cfg`.
pub fn run(seed: u64, cfg: &SimConfig) -> Report {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap_or_else(|e| panic!("cannot build the simulation runtime: {e}"));
    rt.block_on(simulate(seed, cfg))
}

async fn simulate(seed: u64, cfg: &SimConfig) -> Report {
    let mut rng = SmallRng::seed_from_u64(seed);
    let members = rng.random_range(3..=5usize);
    let machines = (members + rng.random_range(0..=2usize)).min(7);
    let mut world = World::start(seed, machines, members).await;
    if cfg.lww {
        set_last_write_wins(&world).await;
    }
    let history = History::new();
    let stop_ms = history.now_ms() + cfg.workload_ms;
    let mut clients = Vec::new();
    let (adders, writers, readers, deleters, linkers) = (
        rng.random_range(3..=5usize),
        rng.random_range(1..=2usize),
        rng.random_range(1..=2usize),
        rng.random_range(1..=2usize),
        rng.random_range(1..=2usize),
    );
    for id in 0..adders + writers + readers + deleters + linkers {
        let c = Client {
            id,
            handles: world.handles(),
            history: history.clone(),
            stop_ms,
        };
        let crng = SmallRng::seed_from_u64(rng.random());
        clients.push(if id < adders {
            tokio::spawn(workload::set_adder(c, 0, crng))
        } else if id < adders + writers {
            tokio::spawn(workload::durable_writer(c, crng))
        } else if id < adders + writers + readers {
            tokio::spawn(workload::read_your_writes(c, crng))
        } else if id < adders + writers + readers + deleters {
            tokio::spawn(workload::deleter(c, crng))
        } else {
            tokio::spawn(workload::linker(c, crng))
        });
    }
    let kinds = cfg.faults.clone();
    let nrng = SmallRng::seed_from_u64(rng.random());
    let mut nemesis = Nemesis::new(members, machines, kinds, nrng, history.clone());
    nemesis.run(&mut world, stop_ms).await;
    for c in clients {
        let _ = c.await;
    }
    nemesis.heal(&mut world).await;
    let members: Vec<usize> = nemesis.members.iter().copied().collect();
    let settled = world.settle(&members).await;
    let ops = history.ops();
    let keys = check::keys_touched(&ops, 1);
    let (diverged, converge_ms) = check::converge(&world, &members, &keys).await;
    let mut index_mismatches = check::index_mismatches(&world, &members, &keys);
    index_mismatches.extend(check::index_query_mismatches(&world, members[0], &keys).await);
    let final_set = check::read_set(&world, 0, 0).await;
    Report {
        seed,
        members: members.len(),
        machines,
        ops: ops.len(),
        faults: nemesis.injected.clone(),
        digest: history.digest(),
        settled,
        unsettled: if settled {
            Vec::new()
        } else {
            world.describe()
        },
        set: check::check_set(&ops, 0, final_set.as_ref()),
        durable: check::check_durable(&world, 0, &ops).await,
        deletes: check::check_deletes(&world, 0, &ops).await,
        reaped: world
            .up()
            .iter()
            .filter_map(|&i| world.node(i))
            .map(|n| n.tombstones_reaped())
            .sum(),
        links: check::check_links(&world, 0, &ops).await,
        collected: world
            .up()
            .iter()
            .filter_map(|&i| world.node(i))
            .map(|n| n.objects_collected())
            .sum(),
        ryw_violations: check::ryw_violations(&ops),
        diverged: diverged.iter().map(|k| format!("{k:?}")).collect(),
        index_mismatches,
        converge_ms,
        history: cfg.keep_history.then(|| (ops, history.faults())),
    }
}

/// Make the workload's bucket last-writer-wins without siblings, and wait
/// until every node knows.
async fn set_last_write_wins(world: &World) {
    let props = cluster::BucketProps {
        allow_mult: false,
        last_write_wins: true,
        ..cluster::BucketProps::default()
    };
    let bucket = workload::BUCKET.as_bytes();
    if let Some(n) = world.node(0) {
        n.set_bucket_props(b"default", bucket, Some(props.clone()))
            .await
            .unwrap_or_else(|e| panic!("cannot set the workload bucket's props: {e}"));
    }
    while !world
        .up()
        .iter()
        .filter_map(|&i| world.node(i))
        .all(|n| n.bucket_props(b"default", bucket) == props)
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
