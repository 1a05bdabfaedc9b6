//! Three data centers on one machine (the WAN lab of scripts/wan-lab.sh):
//! six real processes, two per zone, each delaying what it sends to the
//! other zones (`node::lab`): dc1-dc2 30 ms one way, dc1-dc3 45 ms,
//! dc2-dc3 60 ms, jitter ±2 ms, 0.1% of gossip datagrams lost.
//!
//! One test, in phases, so that only one six-node cluster runs at a time:
//! latency by consistency level from a client in dc1, replication lag in
//! the admin API and /metrics, then dc3 going dark under load and healing.

mod common;

use common::{wait_until, Cluster};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DCS: [&str; 3] = ["dc1", "dc2", "dc3"];

fn dc_config(dc: &str) -> String {
    let latency = match dc {
        "dc1" => "dc2 = 30, dc3 = 45",
        "dc2" => "dc1 = 30, dc3 = 60",
        _ => "dc1 = 45, dc2 = 60",
    };
    // SWIM's direct-probe wait must exceed the longest round trip.
    format!(
        "lab_zone_latency_ms = {{ {latency} }}\nlab_latency_jitter_ms = 2\n\
         lab_datagram_loss = 0.001\nprobe_interval_ms = 1000\nprobe_rtt_ms = 400\nsuspect_timeout_ms = 3000\n"
    )
}

async fn start_lab() -> (Cluster, Vec<tempfile::NamedTempFile>) {
    let files: Vec<tempfile::NamedTempFile> = DCS
        .iter()
        .map(|dc| {
            let f = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(f.path(), dc_config(dc)).unwrap();
            f
        })
        .collect();
    let paths: Vec<String> = files
        .iter()
        .map(|f| f.path().to_str().unwrap().to_string())
        .collect();
    let c = Cluster::start_each(6, &["--enable-fault-injection"], |i| {
        vec![
            "--config".into(),
            paths[i / 2].clone(),
            "--zone".into(),
            DCS[i / 2].into(),
        ]
    })
    .await;
    (c, files)
}

/// Milliseconds of `n` requests, four at a time, sorted.
async fn latencies(n: usize, req: impl Fn(usize) -> reqwest::RequestBuilder) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    let mut batch = Vec::new();
    for i in 0..n {
        let r = req(i);
        batch.push(tokio::spawn(async move {
            let t = Instant::now();
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            (t.elapsed().as_secs_f64() * 1e3, status)
        }));
        if batch.len() == 4 || i + 1 == n {
            for h in batch.drain(..) {
                let (ms, status) = h.await.unwrap();
                assert!(status < 300, "request {i} answered {status}");
                out.push(ms);
            }
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Phase 1: latency follows locality.
async fn latency_by_level(c: &Cluster) {
    let mut table = Vec::new();
    for level in ["one", "local_quorum", "quorum", "all"] {
        let put = latencies(60, |i| {
            let url = c.nodes[i % 2].url(&format!("/buckets/wan-{level}/keys/k{i}?w={level}"));
            c.http.put(url).body(vec![b'v'; 1024])
        })
        .await;
        let get = latencies(60, |i| {
            let url = c.nodes[i % 2].url(&format!("/buckets/wan-{level}/keys/k{i}?r={level}"));
            c.http.get(url)
        })
        .await;
        eprintln!(
            "| {level} | PUT p50 {:.1} ms | p99 {:.1} ms | GET p50 {:.1} ms | p99 {:.1} ms |",
            pct(&put, 0.5),
            pct(&put, 0.99),
            pct(&get, 0.5),
            pct(&get, 0.99)
        );
        table.push((level, pct(&put, 0.5), pct(&get, 0.5), pct(&put, 0.99)));
    }
    let p50 = |level: &str| {
        table
            .iter()
            .find(|t| t.0 == level)
            .map(|t| (t.1, t.2))
            .unwrap()
    };
    let (put, get) = p50("local_quorum");
    assert!(
        put < 5.0 && get < 5.0,
        "local_quorum p50 PUT {put:.1} GET {get:.1} ms: not local"
    );
    // Every local_quorum write stays local, also for keys whose dc1
    // replica is on the other dc1 node (the forward stays in the zone).
    let put_p99 = table[1].3;
    assert!(
        put_p99 < 25.0,
        "local_quorum PUT p99 {put_p99:.1} ms: some went to another zone"
    );
    // quorum: one round trip to the nearest other data center (60 ms),
    // not to the farthest (90 ms).
    let (put, get) = p50("quorum");
    for (what, ms) in [("PUT", put), ("GET", get)] {
        assert!((55.0..85.0).contains(&ms), "quorum {what} p50 {ms:.1} ms");
    }
    let (put, _) = p50("all");
    assert!(
        put >= 85.0,
        "w=all p50 {put:.1} ms: faster than the farthest round trip?"
    );
}

/// Phase 2: replication lag is visible.
async fn replication_lag_is_reported(c: &Cluster) {
    let status = c.cluster_json(0).await;
    let lag = status["replication_lag"].as_array().unwrap().clone();
    let zone = |z: &str| lag.iter().find(|l| l["zone"] == z).cloned();
    let dc3 = zone("dc3").unwrap_or_else(|| panic!("no lag to dc3: {lag:?}"));
    assert!(
        zone("dc1").is_none(),
        "lag reported for the node's own zone"
    );
    assert!(dc3["count"].as_u64().unwrap() > 0);
    // After a quorum write (acked by dc2 at ~60 ms), dc3 confirms ~30 ms
    // later; after w=all, at once. So some lags are tens of ms.
    let p99 = dc3["p99_ms"].as_f64().unwrap();
    assert!((15.0..200.0).contains(&p99), "dc3 lag p99 {p99} ms");
    let metrics = c.metrics(0).await;
    assert!(
        metrics.lines().any(
            |l| l.starts_with("ringstore_replication_lag_seconds_bucket{")
                && l.contains("zone=\"dc3\"")
        ),
        "no lag histogram in /metrics:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("lag"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Keys a writer had acknowledged, and when requests failed.
#[derive(Default)]
struct Outcomes {
    acked: BTreeSet<String>,
    failures: Vec<(Duration, u16)>,
}

/// Write a key every 20 ms through `nodes` with `level` until `stop`.
fn writer(
    c: &Cluster,
    name: &'static str,
    nodes: [usize; 2],
    level: &'static str,
    started: Instant,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Arc<Mutex<Outcomes>>, tokio::task::JoinHandle<()>) {
    let out = Arc::new(Mutex::new(Outcomes::default()));
    let urls: Vec<String> = nodes.iter().map(|&i| c.nodes[i].url("")).collect();
    let (http, o) = (c.http.clone(), out.clone());
    let task = tokio::spawn(async move {
        let mut i = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let key = format!("{name}-{i}");
            let url = format!("{}/buckets/dark/keys/{key}?w={level}", urls[i % 2]);
            let status = match http.put(url).body(key.clone()).send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            {
                let mut o = o.lock().unwrap();
                if status == 204 {
                    o.acked.insert(key);
                } else {
                    o.failures.push((started.elapsed(), status));
                }
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (out, task)
}

/// Whether node `i` finds every key in `keys` among its own zone's replicas.
async fn zone_holds(c: &Cluster, i: usize, keys: &BTreeSet<String>) -> bool {
    for key in keys {
        let url = c.nodes[i].url(&format!("/buckets/dark/keys/{key}?r=local_quorum"));
        match c.http.get(url).send().await {
            Ok(r) if r.status() == 200 => {}
            _ => return false,
        }
    }
    true
}

/// Phase 3: a data center goes dark under load, and heals.
async fn a_data_center_goes_dark_and_heals(c: &Cluster) {
    let started = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (dc1, t1) = writer(c, "dc1", [0, 1], "quorum", started, stop.clone());
    let (dc2, t2) = writer(c, "dc2", [2, 3], "quorum", started, stop.clone());
    wait_until("writes flow", Duration::from_secs(10), || async {
        dc1.lock().unwrap().acked.len() > 20
    })
    .await;
    c.cut_off_group(&[4, 5]).await;
    let cut_at = started.elapsed();
    // dc3's own clients: local_quorum from their local replicas.
    let (dc3, t3) = writer(c, "dc3", [4, 5], "local_quorum", started, stop.clone());
    let before = dc1.lock().unwrap().acked.len();
    wait_until(
        "writes go on while dc3 is dark",
        Duration::from_secs(30),
        || async {
            dc1.lock().unwrap().acked.len() > before + 150 && dc3.lock().unwrap().acked.len() > 50
        },
    )
    .await;
    // Inside the dark data center, a read that needs replicas elsewhere
    // gets a clear 503, not a wait past the client's patience.
    let t = Instant::now();
    let r = c
        .http
        .get(c.nodes[4].url("/buckets/dark/keys/dc1-0?r=quorum"))
        .send()
        .await
        .unwrap();
    let (status, body) = (r.status().as_u16(), r.text().await.unwrap());
    assert_eq!(status, 503, "r=quorum inside the dark zone: {body}");
    assert!(body.contains("quorum") || body.contains("r="), "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the 503 took {:?}",
        t.elapsed()
    );
    c.heal().await;
    let healed_at = Instant::now();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in [t1, t2, t3] {
        t.await.unwrap();
    }
    // No failed request beyond the detection window (5 s after the cut).
    let window = cut_at + Duration::from_secs(5);
    for (name, o) in [("dc1", &dc1), ("dc2", &dc2)] {
        let late: Vec<_> = o
            .lock()
            .unwrap()
            .failures
            .iter()
            .filter(|(at, _)| *at > window)
            .cloned()
            .collect();
        assert!(
            late.is_empty(),
            "{name} quorum writes failed after the detection window: {late:?}"
        );
    }
    let local_fail = dc3.lock().unwrap().failures.len();
    assert_eq!(
        local_fail, 0,
        "dc3's local_quorum writes failed while it was dark"
    );
    // After the heal every zone holds every acknowledged write.
    let mut all: BTreeSet<String> = BTreeSet::new();
    for o in [&dc1, &dc2, &dc3] {
        all.extend(o.lock().unwrap().acked.iter().cloned());
    }
    for i in [4, 0, 2] {
        wait_until(
            &format!(
                "node {i}'s zone holds all {} acknowledged writes",
                all.len()
            ),
            Duration::from_secs(90),
            || zone_holds(c, i, &all),
        )
        .await;
    }
    eprintln!(
        "dc3 dark for {:.1} s; {} acknowledged writes; every zone held all of them {:.1} s after the heal",
        (healed_at - started).as_secs_f64() - cut_at.as_secs_f64(),
        all.len(),
        healed_at.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_data_centers_on_an_emulated_wan() {
    let (c, _files) = start_lab().await;
    latency_by_level(&c).await;
    replication_lag_is_reported(&c).await;
    a_data_center_goes_dark_and_heals(&c).await;
}
