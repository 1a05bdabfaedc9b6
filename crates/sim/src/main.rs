//! `sim`: run seeds of the whole-cluster simulation.
//!
//! ```text
//! cargo run -p sim --release -- --seeds 10000          # a soak
//! cargo run -p sim --release -- --seed 42 --history    # replay one seed
//! cargo run -p sim --release -- --seeds 50 --lww       # the checker sees loss
//! ```

use anyhow::{bail, Result};
use clap::Parser;
use sim::{FaultKind, Report, SimConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Deterministic whole-cluster simulation of ringstore under faults")]
struct Args {
    /// Run this many seeds, starting at --first.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// The first seed of a --seeds run.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Run exactly this seed (and print its report).
    #[arg(long, conflicts_with_all = ["seeds", "first"])]
    seed: Option<u64>,
    /// Make the workload bucket last-writer-wins: the set check should
    /// then report lost adds.
    #[arg(long)]
    lww: bool,
    /// Virtual milliseconds of workload and faults per seed.
    #[arg(long, default_value_t = 15_000)]
    workload_ms: u64,
    /// Fault kinds to draw from (default: all), comma-separated:
    /// isolate, split, one-way, crash, delay, loss, clock, join, leave.
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// Print the whole history of each seed run.
    #[arg(long)]
    history: bool,
    /// Seeds run at once (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
}

fn fault_kind(name: &str) -> Result<FaultKind> {
    let kind = FaultKind::ALL
        .into_iter()
        .find(|k| format!("{k:?}").to_lowercase() == name.replace('-', ""));
    match kind {
        Some(k) => Ok(k),
        None => bail!(
            "unknown fault kind {name:?}; use isolate, split, one-way, crash, delay, loss, clock, join or leave"
        ),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            // Off unless asked: nodes log errors on purpose under faults.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let faults = if args.faults.is_empty() {
        FaultKind::ALL.to_vec()
    } else {
        args.faults
            .iter()
            .map(|f| fault_kind(f))
            .collect::<Result<_>>()?
    };
    let cfg = SimConfig {
        lww: args.lww,
        faults,
        workload_ms: args.workload_ms,
        keep_history: args.history,
    };
    let (first, count) = match args.seed {
        Some(s) => (s, 1),
        None => (args.first, args.seeds),
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let started = Instant::now();
    let summary = run_seeds(first, count, jobs.max(1), &cfg, args.seed.is_some());
    let secs = started.elapsed().as_secs_f64();
    let s = summary.lock().map(|s| s.clone()).unwrap_or_default();
    println!(
        "{count} seeds ({first}..{}) in {secs:.1} s: {:.2} seeds/s, {} failed",
        first + count,
        count as f64 / secs,
        s.failed.len()
    );
    println!(
        "set: {} acknowledged adds, {} lost, {} unacknowledged but present; durable: {} acknowledged, {} lost; read-your-writes violations: {}; seeds not converged: {}",
        s.acknowledged, s.lost, s.unacked_present, s.durable, s.durable_lost, s.ryw, s.diverged
    );
    println!(
        "deletes: {} acknowledged, {} came back; {} tombstones reaped",
        s.deletes, s.resurrected, s.reaped
    );
    println!(
        "references: {} records standing, {} of their blobs collected; {} unreferenced blob replicas collected",
        s.links, s.links_broken, s.collected
    );
    let faults: Vec<String> = s.faults.iter().map(|(k, n)| format!("{k:?}×{n}")).collect();
    println!("faults injected: {}", faults.join(" "));
    if !s.failed.is_empty() {
        eprintln!("{} seeds failed: {:?}", s.failed.len(), s.failed);
        std::process::exit(1);
    }
    Ok(())
}

/// A soak prints a progress line to stderr after every this many seeds, so
/// a long run shows it is alive and how fast it goes.
const PROGRESS_EVERY: u64 = 250;

#[derive(Clone, Default)]
struct Summary {
    done: u64,
    failed: Vec<u64>,
    acknowledged: usize,
    lost: usize,
    unacked_present: usize,
    durable: usize,
    durable_lost: usize,
    ryw: usize,
    deletes: usize,
    resurrected: usize,
    reaped: u64,
    links: usize,
    links_broken: usize,
    collected: u64,
    diverged: usize,
    faults: Vec<(FaultKind, u32)>,
}

impl Summary {
    fn add(&mut self, r: &Report, ok: bool) {
        if !ok {
            self.failed.push(r.seed);
        }
        self.acknowledged += r.set.acknowledged;
        self.lost += r.set.lost.len();
        self.unacked_present += r.set.unacknowledged_present;
        self.durable += r.durable.acknowledged;
        self.durable_lost += r.durable.lost.len();
        self.ryw += r.ryw_violations.len();
        self.deletes += r.deletes.acknowledged;
        self.resurrected += r.deletes.resurrected.len();
        self.reaped += r.reaped;
        self.links += r.links.standing;
        self.links_broken += r.links.collected.len();
        self.collected += r.collected;
        self.diverged += usize::from(!r.diverged.is_empty());
        for &(kind, n) in &r.faults {
            match self.faults.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, m)) => *m += n,
                None => self.faults.push((kind, n)),
            }
        }
        self.faults.sort();
    }
}

/// Run seeds on `jobs` threads, each seed on its own single-threaded
/// runtime; print every failure with its replay command as it happens.
fn run_seeds(
    first: u64,
    count: u64,
    jobs: usize,
    cfg: &SimConfig,
    verbose: bool,
) -> Arc<Mutex<Summary>> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(first));
    let summary = Arc::new(Mutex::new(Summary::default()));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let (next, summary) = (next.clone(), summary.clone());
            scope.spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= first + count {
                    return;
                }
                let report = sim::run(seed, cfg);
                let ok = report.ok(cfg);
                if verbose || !ok {
                    print_report(&report, cfg, ok);
                }
                if let Ok(mut s) = summary.lock() {
                    s.add(&report, ok);
                    s.done += 1;
                    if !verbose && s.done % PROGRESS_EVERY == 0 {
                        eprintln!(
                            "progress: {}/{count} seeds, {} failed, {:.0} s",
                            s.done,
                            s.failed.len(),
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
            });
        }
    });
    summary
}

fn print_report(report: &Report, cfg: &SimConfig, ok: bool) {
    if let Some((ops, faults)) = &report.history {
        for (at, f) in faults {
            println!("{at:>8} ms  nemesis: {f}");
        }
        for op in ops {
            println!(
                "{:>8} ms  client {} on {}: {:?} -> {:?} at {} ms",
                op.invoked_ms, op.client, op.machine, op.kind, op.outcome, op.completed_ms
            );
        }
    }
    println!("{report}");
    if !ok {
        println!("  FAILED; replay with: {}", report.replay_command(cfg));
    }
}
