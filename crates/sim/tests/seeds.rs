//! The simulation in CI: a fixed set of seeds that exercises every fault
//! kind, exact replay, the checker's ability to see loss, and the bugs
//! seeds have found.

use sim::world::World;
use sim::{FaultKind, SimConfig};
use std::collections::BTreeMap;

/// Seeds run by every CI build: enough that each fault kind is drawn
/// several times (asserted below), few enough to take about a minute.
const CI_SEEDS: u64 = 64;

fn run_parallel(seeds: std::ops::Range<u64>, cfg: &SimConfig) -> Vec<sim::Report> {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let mut reports: Vec<sim::Report> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|j| {
                let seeds = seeds.clone();
                s.spawn(move || {
                    seeds
                        .filter(|seed| seed % jobs == j)
                        .map(|seed| sim::run(seed, cfg))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a seed panicked"))
            .collect()
    });
    reports.sort_by_key(|r| r.seed);
    reports
}

#[test]
fn fixed_seeds_lose_no_acknowledged_write_and_converge() {
    let cfg = SimConfig::default();
    let reports = run_parallel(0..CI_SEEDS, &cfg);
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.ok(&cfg))
        .map(|r| format!("{r}\n  replay: {}", r.replay_command(&cfg)))
        .collect();
    assert!(failed.is_empty(), "failing seeds:\n{}", failed.join("\n"));
    let mut kinds: BTreeMap<FaultKind, u32> = BTreeMap::new();
    for r in &reports {
        for &(k, n) in &r.faults {
            *kinds.entry(k).or_default() += n;
        }
    }
    for k in FaultKind::ALL {
        assert!(
            kinds.get(&k).copied().unwrap_or(0) >= 3,
            "fault kind {k:?} was injected fewer than 3 times in {CI_SEEDS} seeds: {kinds:?}"
        );
    }
    let acknowledged: usize = reports.iter().map(|r| r.set.acknowledged).sum();
    let durable: usize = reports.iter().map(|r| r.durable.acknowledged).sum();
    let deletes: usize = reports.iter().map(|r| r.deletes.acknowledged).sum();
    let reaped: u64 = reports.iter().map(|r| r.reaped).sum();
    let links: usize = reports.iter().map(|r| r.links.standing).sum();
    let collected: u64 = reports.iter().map(|r| r.collected).sum();
    assert!(
        acknowledged > 100 * CI_SEEDS as usize
            && durable > 50 * CI_SEEDS as usize
            && deletes > 50 * CI_SEEDS as usize
            && reaped > 100 * CI_SEEDS
            && links > 50 * CI_SEEDS as usize
            && collected > 100 * CI_SEEDS,
        "the workload did too little to prove anything: {acknowledged} set adds, {durable} durable writes, {deletes} deletes, {reaped} tombstones reaped, {links} records referencing blobs, {collected} blob replicas collected"
    );
}

#[test]
fn a_seed_replays_to_the_same_history() {
    let cfg = SimConfig {
        keep_history: true,
        ..SimConfig::default()
    };
    let a = sim::run(5, &cfg);
    let b = sim::run(5, &cfg);
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.history, b.history);
    assert!(!a.faults.is_empty() && a.ops > 100, "{a}");
}

#[test]
fn with_last_write_wins_the_set_check_sees_lost_adds() {
    let cfg = SimConfig {
        lww: true,
        ..SimConfig::default()
    };
    let reports = run_parallel(0..4, &cfg);
    let lost: usize = reports.iter().map(|r| r.set.lost.len()).sum();
    assert!(
        lost > 0,
        "last-writer-wins must drop concurrent adds, and the checker must see it"
    );
    for r in &reports {
        assert!(r.ok(&cfg), "{r}");
    }
}

/// Found by seed 28: a node that had left the cluster rejoined it when it
/// restarted after a crash, undoing the operator's leave.
#[test]
fn a_node_that_left_stays_out_after_a_crash_and_restart() {
    scenario(async {
        let mut world = World::start(28, 4, 4).await;
        let leaver = world.node(3).expect("up").id();
        leave_through_node_0(&world, leaver).await;
        assert!(world.settle(&[0, 1, 2]).await, "{:#?}", world.describe());
        world.crash(3);
        world.restart(3).await;
        assert!(
            world.settle(&[0, 1, 2]).await,
            "the leaver came back: {:#?}",
            world.describe()
        );
        let restarted = world.node(3).expect("up");
        assert!(restarted.layout().member(leaver).is_none());
    });
}

async fn leave_through_node_0(world: &World, leaver: ring::NodeId) {
    let coordinator = world.node(0).expect("node 0 is up");
    coordinator.leave(leaver).await.expect("leave is recorded");
}

fn scenario(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
        .block_on(f);
}

/// Found by seed 1557: a node started with join seeds served a write
/// before it had met its cluster, as a cluster of one; once it merged the
/// real cluster's layout the write's partition belonged to others, and
/// the acknowledged write was gone.
#[test]
fn a_node_refuses_clients_until_it_has_met_its_cluster() {
    scenario(async {
        let mut world = World::start(1557, 4, 3).await;
        for i in 0..3 {
            if let Ok(mut f) = world.net.faults.lock() {
                f.cut(world.addr(3), world.addr(i));
            }
        }
        world.join(3).await;
        let newcomer = world.node(3).expect("up");
        let (value, meta) = (bytes::Bytes::from_static(b"v"), causal::Meta::default());
        let err = newcomer
            .put(
                sim::workload::key("early"),
                value.clone(),
                meta.clone(),
                causal::VersionVector::new(),
                node::RequestOptions::default(),
            )
            .await
            .expect_err("a node that has not met its cluster must refuse writes");
        assert!(err.to_string().contains("not joined"), "{err}");
        world.heal_network();
        assert!(world.settle(&[0, 1, 2, 3]).await, "{:#?}", world.describe());
        newcomer
            .put(
                sim::workload::key("later"),
                value,
                meta,
                causal::VersionVector::new(),
                node::RequestOptions::default(),
            )
            .await
            .expect("after joining it serves");
    });
}

/// Found by seed 1368: a leave recorded on a node whose clock ran 34 s
/// behind was stamped before the join it followed, so the layout kept the
/// node as a member.
#[test]
fn a_leave_from_a_slow_clock_orders_after_the_join_it_follows() {
    scenario(async {
        let mut world = World::start(1368, 4, 3).await;
        world.set_clock_offset(0, -60_000);
        world.join(3).await;
        assert!(world.settle(&[0, 1, 2, 3]).await, "{:#?}", world.describe());
        let leaver = world.node(3).expect("up").id();
        leave_through_node_0(&world, leaver).await;
        assert!(
            world.settle(&[0, 1, 2]).await,
            "the leave did not take: {:#?}",
            world.describe()
        );
    });
}
