//! The load loop under every `ringstore bench` mode: closed-loop workers
//! (each sends its next request when the previous one answered), a
//! progress bar, an HDR latency histogram, and the bench process's own CPU
//! share, because on a 2-core machine the load generator competes with the
//! cluster it measures and a figure without that share misleads.
//!
//! With a timeline, each second of the run also gets its own histogram: a
//! run's p99 does not say whether every request was a little slow or one
//! second in ten was very slow (a memtable flush, a compaction), and the
//! cure differs.

use anyhow::Result;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Latencies are recorded in microseconds up to this bound (a minute).
const LATENCY_US_MAX: u64 = 60_000_000;

/// What a run measured.
pub(crate) struct Measured {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    /// Payload bytes moved by successful operations.
    pub(crate) bytes: u64,
    pub(crate) elapsed: Duration,
    pub(crate) latency_us: Histogram<u64>,
    /// CPU seconds this process used during the run, if the OS says.
    pub(crate) cpu_secs: Option<f64>,
    /// The first failure, to tell the user why operations failed.
    pub(crate) first_error: Option<String>,
    /// Latencies of each second of the run (empty without a timeline).
    pub(crate) timeline: Vec<Histogram<u64>>,
}

struct Totals {
    /// One histogram per second of the run, when asked for.
    /// Bounded by: the run's length in seconds, at 136 KiB a second (three
    /// significant digits up to a minute): a 10-minute run holds 80 MB.
    timeline: Option<Mutex<Vec<Histogram<u64>>>>,
    ok: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
    first_error: Mutex<Option<String>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
        .unwrap_or_else(|_| unreachable!("valid bounds"))
}

/// Run `op(worker)` from `concurrency` workers for `duration`; `op`
/// answers the payload bytes it moved, or why it failed. With `timeline`,
/// each second's figures are printed on stderr at the end.
pub(crate) async fn closed_loop<F, Fut>(
    concurrency: usize,
    duration: Duration,
    timeline: bool,
    op: F,
) -> Result<Measured>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64, String>> + Send,
{
    let secs = duration.as_secs().max(1);
    let totals = Arc::new(Totals {
        timeline: timeline.then(|| Mutex::new(vec![histogram(); secs as usize])),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        latency_us: Mutex::new(histogram()),
        first_error: Mutex::new(None),
    });
    let op = Arc::new(op);
    let bar = ProgressBar::new(secs);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len}s {msg}",
    )?);
    let cpu_before = cpu_secs();
    let started = Instant::now();
    let stop_at = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (totals, op) = (totals.clone(), op.clone());
            tokio::spawn(async move {
                let mut local = histogram();
                while Instant::now() < stop_at {
                    let t = Instant::now();
                    let result = op(w).await;
                    let us = (t.elapsed().as_micros() as u64).clamp(1, LATENCY_US_MAX);
                    let _ = local.record(us);
                    if let Some(timeline) = &totals.timeline {
                        let second = t.duration_since(started).as_secs() as usize;
                        if let Ok(mut seconds) = timeline.lock() {
                            if let Some(h) = seconds.get_mut(second) {
                                let _ = h.record(us);
                            }
                        }
                    }
                    match result {
                        Ok(bytes) => {
                            totals.ok.fetch_add(1, Ordering::Relaxed);
                            totals.bytes.fetch_add(bytes, Ordering::Relaxed);
                        }
                        Err(e) => {
                            totals.failed.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut first) = totals.first_error.lock() {
                                first.get_or_insert(e);
                            }
                        }
                    }
                }
                if let Ok(mut h) = totals.latency_us.lock() {
                    let _ = h.add(&local);
                }
            })
        })
        .collect();
    while Instant::now() < stop_at {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let s = started.elapsed().as_secs_f64();
        bar.set_position(started.elapsed().as_secs().min(secs));
        bar.set_message(format!(
            "{:.0} ops/s, {:.1} MB/s, {} failed",
            totals.ok.load(Ordering::Relaxed) as f64 / s,
            totals.bytes.load(Ordering::Relaxed) as f64 / s / 1e6,
            totals.failed.load(Ordering::Relaxed)
        ));
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let latency_us = totals
        .latency_us
        .lock()
        .map_err(|_| anyhow::anyhow!("a worker panicked"))?
        .clone();
    let m = Measured {
        ok: totals.ok.load(Ordering::Relaxed),
        failed: totals.failed.load(Ordering::Relaxed),
        bytes: totals.bytes.load(Ordering::Relaxed),
        elapsed,
        latency_us,
        cpu_secs: cpu_before.zip(cpu_secs()).map(|(a, b)| b - a),
        first_error: totals.first_error.lock().ok().and_then(|e| e.clone()),
        timeline: match &totals.timeline {
            Some(t) => t
                .lock()
                .map_err(|_| anyhow::anyhow!("a worker panicked"))?
                .clone(),
            None => Vec::new(),
        },
    };
    m.print_timeline();
    Ok(m)
}

/// Run `op(i)` once for every `i` in `0..count`, at most `concurrency` at
/// a time, with a progress bar: how the read modes write what they read.
pub(crate) async fn each_once<F, Fut>(count: u64, concurrency: usize, op: F) -> Result<()>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), client::ClientError>> + Send,
{
    let bar = ProgressBar::new(count);
    bar.set_message("writing every key once");
    let next = Arc::new(AtomicU64::new(0));
    let op = Arc::new(op);
    let loaders: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (next, bar, op) = (next.clone(), bar.clone(), op.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok::<(), client::ClientError>(());
                    }
                    op(i).await?;
                    bar.inc(1);
                }
            })
        })
        .collect();
    for l in loaders {
        l.await??;
    }
    bar.finish_and_clear();
    Ok(())
}

/// User plus system CPU seconds of this process (Linux `/proc`; `None`
/// elsewhere). Clock ticks are 100 a second on every Linux we run on.
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

impl Measured {
    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn ms(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// The bench process's share of the machine's CPU during the run.
    pub(crate) fn cpu_share(&self) -> Option<f64> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        self.cpu_secs
            .map(|c| c / (self.elapsed.as_secs_f64() * cores))
    }

    /// The figures as JSON fields, to merge with a mode's own.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": self.ok, "failed": self.failed, "ops_per_sec": self.ops_per_sec(),
            "mb_per_sec": self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6,
            "p50_ms": self.ms(0.5), "p99_ms": self.ms(0.99), "p999_ms": self.ms(0.999),
            "max_ms": self.latency_us.max() as f64 / 1000.0,
            "bench_cpu_share": self.cpu_share(), "first_error": self.first_error,
        })
    }

    /// Each second's requests and latencies, a line each, on stderr (so a
    /// `--json` result on stdout stays one line).
    fn print_timeline(&self) {
        if self.timeline.is_empty() {
            return;
        }
        eprintln!("second   ops/s      p50      p99      max");
        for (i, h) in self.timeline.iter().enumerate() {
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            eprintln!(
                "{:>6} {:>7} {:>6.1} ms {:>6.1} ms {:>6.1} ms",
                i,
                h.len(),
                ms(0.5),
                ms(0.99),
                h.max() as f64 / 1000.0
            );
        }
    }

    /// The figures as two lines of text under `title`.
    pub(crate) fn print(&self, title: &str) {
        println!(
            "{title}: {} ok, {} failed in {:.1}s",
            self.ok,
            self.failed,
            self.elapsed.as_secs_f64()
        );
        println!(
            "throughput {:.1} ops/s, {:.1} MB/s; latency p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms",
            self.ops_per_sec(),
            self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6,
            self.ms(0.5),
            self.ms(0.99),
            self.ms(0.999),
            self.latency_us.max() as f64 / 1000.0
        );
        if let Some(share) = self.cpu_share() {
            println!(
                "the bench process itself used {:.0}% of the machine's CPU",
                share * 100.0
            );
        }
        if let Some(e) = &self.first_error {
            println!("first failure: {e}");
        }
    }
}
