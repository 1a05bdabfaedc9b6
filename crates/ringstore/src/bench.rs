//! `ringstore bench`: load on a node's key-value API, with a progress bar,
//! throughput and latency percentiles from an HDR histogram.
//!
//! Workers run closed-loop (each sends its next request when the previous
//! one answered), spread over the given nodes. `get` first writes every key
//! once, so reads measure found values.

use anyhow::{bail, Result};
use bytes::Bytes;
use client::Client;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the workers send.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Only writes.
    Put,
    /// Only reads (after writing each key once).
    Get,
    /// Reads with probability --read-fraction, writes otherwise.
    Mixed,
}

/// Flags of `ringstore bench`.
#[derive(clap::Args, Debug)]
pub(crate) struct BenchFlags {
    /// HTTP addresses of nodes to spread requests over (repeatable).
    #[arg(long = "node", default_value = "127.0.0.1:8098")]
    nodes: Vec<String>,
    /// Workload.
    #[arg(long, value_enum, default_value = "mixed")]
    workload: Workload,
    /// Fraction of reads in the mixed workload.
    #[arg(long, default_value_t = 0.5)]
    read_fraction: f64,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// How long to measure, in seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Bucket to use.
    #[arg(long, default_value = "bench")]
    bucket: String,
    /// Extra query string for every request, e.g. "w=2&r=2".
    #[arg(long, default_value = "")]
    query: String,
    /// Set the bucket's n_val before starting.
    #[arg(long)]
    n_val: Option<u8>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

struct Totals {
    ok: AtomicU64,
    failed: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

pub(crate) async fn run(f: BenchFlags) -> Result<()> {
    if f.concurrency == 0
        || f.keys == 0
        || f.nodes.is_empty()
        || !(0.0..=1.0).contains(&f.read_fraction)
    {
        bail!("--concurrency, --keys and --node must be positive and --read-fraction within 0..=1");
    }
    let clients: Vec<Client> = f.nodes.iter().map(|n| Client::new(n)).collect();
    if let Some(n) = f.n_val {
        clients[0]
            .set_props(&f.bucket, serde_json::json!({ "n_val": n }))
            .await?;
    }
    let value = Bytes::from(vec![b'x'; f.value_size]);
    if f.workload != Workload::Put {
        preload(&clients, &f, &value).await?;
    }
    let totals = Arc::new(Totals {
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        latency_us: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
    });
    let bar = ProgressBar::new(f.duration);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len}s {msg}",
    )?);
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(f.duration);
    let workers: Vec<_> = (0..f.concurrency)
        .map(|w| {
            let (c, totals, value) = (
                clients[w % clients.len()].clone(),
                totals.clone(),
                value.clone(),
            );
            let (bucket, query, workload, keys, rf) = (
                f.bucket.clone(),
                f.query.clone(),
                f.workload,
                f.keys,
                f.read_fraction,
            );
            tokio::spawn(async move {
                let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                    .unwrap_or_else(|_| unreachable!("valid bounds"));
                while Instant::now() < stop_at {
                    let key = format!("k{}", rand::random_range(0..keys));
                    let read = match workload {
                        Workload::Put => false,
                        Workload::Get => true,
                        Workload::Mixed => rand::random::<f64>() < rf,
                    };
                    let t = Instant::now();
                    let ok = if read {
                        c.get(&bucket, &key, &query)
                            .await
                            .is_ok_and(|r| r.status == 200 || r.status == 300)
                    } else {
                        c.put(
                            &bucket,
                            &key,
                            value.clone(),
                            "application/octet-stream",
                            None,
                            &query,
                        )
                        .await
                        .is_ok()
                    };
                    let us = (t.elapsed().as_micros() as u64).clamp(1, 60_000_000);
                    let _ = local.record(us);
                    let counter = if ok { &totals.ok } else { &totals.failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(mut h) = totals.latency_us.lock() {
                    let _ = h.add(&local);
                }
            })
        })
        .collect();
    while Instant::now() < stop_at {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let secs = started.elapsed().as_secs_f64();
        bar.set_position(started.elapsed().as_secs().min(f.duration));
        bar.set_message(format!(
            "{:.0} ops/s, {} failed",
            totals.ok.load(Ordering::Relaxed) as f64 / secs,
            totals.failed.load(Ordering::Relaxed)
        ));
    }
    for w in workers {
        let _ = w.await;
    }
    bar.finish_and_clear();
    report(&f, &totals, started.elapsed())
}

async fn preload(clients: &[Client], f: &BenchFlags, value: &Bytes) -> Result<()> {
    let bar = ProgressBar::new(f.keys);
    bar.set_message("writing every key once");
    let next = Arc::new(AtomicU64::new(0));
    let loaders: Vec<_> = (0..f.concurrency.min(64))
        .map(|w| {
            let (c, next, value, bucket, query, keys, bar) = (
                clients[w % clients.len()].clone(),
                next.clone(),
                value.clone(),
                f.bucket.clone(),
                f.query.clone(),
                f.keys,
                bar.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= keys {
                        return Ok::<(), client::ClientError>(());
                    }
                    c.put(
                        &bucket,
                        &format!("k{k}"),
                        value.clone(),
                        "application/octet-stream",
                        None,
                        &query,
                    )
                    .await?;
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

fn report(f: &BenchFlags, t: &Totals, elapsed: Duration) -> Result<()> {
    let h = t
        .latency_us
        .lock()
        .map_err(|_| anyhow::anyhow!("a worker panicked"))?;
    let ok = t.ok.load(Ordering::Relaxed);
    let failed = t.failed.load(Ordering::Relaxed);
    let rate = ok as f64 / elapsed.as_secs_f64();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    if f.json {
        println!(
            "{}",
            serde_json::json!({
                "workload": format!("{:?}", f.workload).to_lowercase(), "nodes": f.nodes, "concurrency": f.concurrency,
                "value_size": f.value_size, "ok": ok, "failed": failed, "ops_per_sec": rate,
                "p50_ms": ms(0.5), "p99_ms": ms(0.99), "p999_ms": ms(0.999), "max_ms": h.max() as f64 / 1000.0,
            })
        );
    } else {
        println!(
            "{:?} x{} {}B on {}: {ok} ok, {failed} failed in {:.1}s",
            f.workload,
            f.concurrency,
            f.value_size,
            f.nodes.join(","),
            elapsed.as_secs_f64()
        );
        println!("throughput {rate:.0} ops/s; latency p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms", ms(0.5), ms(0.99), ms(0.999), h.max() as f64 / 1000.0);
    }
    Ok(())
}
