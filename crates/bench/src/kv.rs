//! `ringstore bench`: load on a node's key-value API (the loop, progress
//! bar and figures are [`crate::load`]'s), spread over the given nodes. `get` first writes every key
//! once, so reads measure found values.

use crate::load;
use anyhow::{bail, Result};
use bytes::Bytes;
use client::Client;
use std::time::Duration;

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
pub struct BenchFlags {
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
    /// Index terms on every PUT: alternately a `_bin` and an `_int`
    /// index (`b0_bin`, `i1_int`, ...), random terms.
    #[arg(long, default_value_t = 0)]
    indexes: usize,
    /// Preload keys with the query benchmark's terms: `grp_int` = k / 10,
    /// `seq_int` = k, and `at_geo` on a 1000-wide grid of points about
    /// 110 m apart from 50°N 10°E (scripts/bench-queries.sh).
    #[arg(long)]
    query_terms: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Also print each second's throughput and latency percentiles (on
    /// stderr), to tell a steady tail from stalls.
    #[arg(long)]
    timeline: bool,
}

/// Run `ringstore bench` and print its figures.
///
/// # Errors
///
/// Bad flags, or nodes that do not answer.
pub async fn run(f: BenchFlags) -> Result<()> {
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
    let (bucket, query, workload, keys, rf, indexes) = (
        f.bucket.clone(),
        f.query.clone(),
        f.workload,
        f.keys,
        f.read_fraction,
        f.indexes,
    );
    let op = move |w: usize| {
        let c = clients[w % clients.len()].clone();
        let (bucket, query, value) = (bucket.clone(), query.clone(), value.clone());
        async move {
            let key = format!("k{}", rand::random_range(0..keys));
            let read = match workload {
                Workload::Put => false,
                Workload::Get => true,
                Workload::Mixed => rand::random::<f64>() < rf,
            };
            if read {
                match c.get(&bucket, &key, &query).await {
                    Ok(r) if r.status == 200 || r.status == 300 => Ok(r.body.len() as u64),
                    Ok(r) => Err(format!("GET {key} answered {}", r.status)),
                    Err(e) => Err(e.to_string()),
                }
            } else {
                let len = value.len() as u64;
                let written = if indexes == 0 {
                    c.put(
                        &bucket,
                        &key,
                        value,
                        "application/octet-stream",
                        None,
                        &query,
                    )
                    .await
                } else {
                    let terms = index_terms(indexes);
                    c.put_indexed(&bucket, &key, value, "application/octet-stream", &terms)
                        .await
                };
                written.map(|_| len).map_err(|e| e.to_string())
            }
        }
    };
    let length = Duration::from_secs(f.duration);
    let m = load::closed_loop(f.concurrency, length, f.timeline, op).await?;
    if f.json {
        let mut v = m.json();
        v["workload"] = format!("{:?}", f.workload).to_lowercase().into();
        v["nodes"] = f.nodes.clone().into();
        v["concurrency"] = f.concurrency.into();
        v["value_size"] = f.value_size.into();
        println!("{v}");
    } else {
        m.print(&format!(
            "{:?} x{} {}B on {}",
            f.workload,
            f.concurrency,
            f.value_size,
            f.nodes.join(",")
        ));
    }
    Ok(())
}

/// `n` random index terms: `b0_bin`, `i1_int`, `b2_bin`, ...
fn index_terms(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let v = rand::random_range(0..1_000_000u32);
            if i % 2 == 0 {
                (format!("b{i}_bin"), format!("term{v}"))
            } else {
                (format!("i{i}_int"), v.to_string())
            }
        })
        .collect()
}

async fn preload(clients: &[Client], f: &BenchFlags, value: &Bytes) -> Result<()> {
    let (clients, value) = (clients.to_vec(), value.clone());
    let (bucket, query) = (f.bucket.clone(), f.query.clone());
    let query_terms = f.query_terms;
    load::each_once(f.keys, f.concurrency.min(64), move |k| {
        let c = clients[k as usize % clients.len()].clone();
        let (bucket, query, value) = (bucket.clone(), query.clone(), value.clone());
        async move {
            if query_terms {
                let (row, col) = ((k / 1000) as f64, (k % 1000) as f64);
                let terms = [
                    ("grp_int".to_string(), (k / 10).to_string()),
                    ("seq_int".to_string(), k.to_string()),
                    (
                        "at_geo".to_string(),
                        format!("{:.6},{:.6}", 50.0 + row * 0.001, 10.0 + col * 0.0015),
                    ),
                ];
                let key = format!("k{k}");
                return c
                    .put_indexed(&bucket, &key, value, "application/octet-stream", &terms)
                    .await
                    .map(|_| ());
            }
            c.put(
                &bucket,
                &format!("k{k}"),
                value,
                "application/octet-stream",
                None,
                &query,
            )
            .await
            .map(|_| ())
        }
    })
    .await
}
