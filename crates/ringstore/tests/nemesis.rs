//! Jepsen's Riak set test against five real `ringstore server` processes,
//! each in its own network namespace: concurrent clients add unique
//! elements to one key over HTTP by read-modify-write with the causal
//! context (merging siblings by union), while a nemesis partitions the
//! network 2|3, kills nodes with `kill -9` and restarts them, or pauses
//! them with SIGSTOP. After healing, every acknowledged element must be in
//! the set every node returns.
//!
//! Needs root (namespaces); skips with a message otherwise, unless
//! `RINGSTORE_REQUIRE_NETNS` is set (as `.ci/run` does). Each nemesis
//! runs `RINGSTORE_NEMESIS_SECS` seconds (default 20); for a longer run:
//! `RINGSTORE_NEMESIS_SECS=300 cargo test --release -p ringstore --test nemesis -- --nocapture`.

mod common;

use common::netns::Netns;
use common::{wait_until, Cluster};
use rand::{RngExt, SeedableRng};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NODES: usize = 5;
const CLIENTS: usize = 10;
const BUCKET: &str = "nemesis";

#[derive(Default)]
struct Outcomes {
    acknowledged: BTreeSet<u64>,
    unknown: BTreeSet<u64>,
}

fn set_url(node: &common::Proc, key: &str) -> String {
    node.url(&format!("/types/default/buckets/{BUCKET}/keys/{key}"))
}

/// Every element in a GET answer: one value, or every sibling of a
/// `multipart/mixed` answer.
fn elements(content_type: &str, body: &str) -> BTreeSet<u64> {
    let values: Vec<&str> = match content_type.split_once("boundary=") {
        Some((_, boundary)) => body
            .split(&format!("--{boundary}"))
            .filter_map(|part| part.split_once("\r\n\r\n").map(|(_, v)| v.trim_end()))
            .collect(),
        None => vec![body],
    };
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|e| e.trim().parse().ok())
        .collect()
}

/// Read the set: its elements and causal context, or `None` on failure.
async fn read(
    http: &reqwest::Client,
    url: &str,
    query: &str,
) -> Option<(BTreeSet<u64>, Option<String>)> {
    let r = http
        .get(format!("{url}{query}"))
        .header("accept", "multipart/mixed, */*")
        .send()
        .await
        .ok()?;
    if r.status() == 404 {
        return Some((BTreeSet::new(), None));
    }
    if !(r.status() == 200 || r.status() == 300) {
        return None;
    }
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (ct, vclock) = (
        header("content-type").unwrap_or_default(),
        header("x-riak-vclock"),
    );
    let body = r.text().await.ok()?;
    Some((elements(&ct, &body), vclock))
}

async fn adder(
    http: reqwest::Client,
    url: String,
    client: u64,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Outcomes>>,
) {
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some((mut set, vclock)) = read(&http, &url, "").await else {
            continue;
        };
        seq += 1;
        let element = (client << 32) | seq;
        set.insert(element);
        let text: Vec<String> = set.iter().map(u64::to_string).collect();
        let mut req = http
            .put(&url)
            .header("content-type", "text/plain")
            .body(text.join(","));
        if let Some(v) = vclock {
            req = req.header("x-riak-vclock", v);
        }
        let ok = req.send().await.is_ok_and(|r| r.status().is_success());
        if let Ok(mut o) = out.lock() {
            if ok {
                o.acknowledged.insert(element);
            } else {
                o.unknown.insert(element);
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Partition,
    Kill,
    Pause,
}

/// Whether the node at `url` sees fewer than `n` members up: proof that a
/// partition really cuts it off.
async fn members_up_below(http: &reqwest::Client, url: &str, n: usize) -> bool {
    let Ok(r) = http.get(url).send().await else {
        return false;
    };
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    v["nodes"].as_array().is_some_and(|ns| {
        ns.iter()
            .filter(|x| x["state"] == "member" && x["liveness"] == "up")
            .count()
            < n
    })
}

/// Inject `fault` in rounds until `until`, healing after each.
async fn nemesis(c: &mut Cluster, net: &Netns, fault: Fault, until: tokio::time::Instant) {
    let seed = u64::from(std::process::id()) ^ ((fault as u64) << 32);
    eprintln!("nemesis {fault:?}: seed {seed}");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    while tokio::time::Instant::now() < until {
        let victim = rng.random_range(0..NODES);
        match fault {
            Fault::Partition => {
                let mut all: Vec<usize> = (0..NODES).collect();
                for i in (1..all.len()).rev() {
                    all.swap(i, rng.random_range(0..=i));
                }
                let (minority, majority) = all.split_at(2);
                eprintln!("nemesis: partition {minority:?} | {majority:?}");
                net.partition(minority, majority);
                let watcher = c.nodes[minority[0]].url("/admin/cluster");
                wait_until(
                    &format!("node {} sees the partition", minority[0]),
                    Duration::from_secs(10),
                    || members_up_below(&c.http, &watcher, NODES),
                )
                .await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                net.heal();
            }
            Fault::Kill => {
                eprintln!("nemesis: kill -9 node {victim}");
                c.nodes[victim].kill9();
                tokio::time::sleep(Duration::from_secs(3)).await;
                c.nodes[victim].start();
            }
            Fault::Pause => {
                eprintln!("nemesis: SIGSTOP node {victim}");
                c.nodes[victim].pause(true);
                tokio::time::sleep(Duration::from_secs(4)).await;
                c.nodes[victim].pause(false);
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// One nemesis against a fresh set key; returns (acknowledged, lost,
/// unacknowledged but present).
async fn run(c: &mut Cluster, net: &Netns, fault: Fault, secs: u64) -> (usize, usize, usize) {
    let key = format!("set-{fault:?}").to_lowercase();
    let (stop, out) = (Arc::new(AtomicBool::new(false)), Arc::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let url = set_url(&c.nodes[i % NODES], &key);
            let args = (
                c.http.clone(),
                url,
                i as u64,
                stop.clone(),
                Arc::clone(&out),
            );
            tokio::spawn(adder(args.0, args.1, args.2, args.3, args.4))
        })
        .collect();
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    nemesis(c, net, fault, until).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client task");
    }
    c.wait_formed().await;
    // Converged: every node returns the same set (read repair and
    // anti-entropy carry the last writes everywhere).
    let urls: Vec<String> = c.nodes.iter().map(|n| set_url(n, &key)).collect();
    let last = Arc::new(Mutex::new(BTreeSet::new()));
    let http = c.http.clone();
    wait_until(
        &format!("every node returns the same set after {fault:?}"),
        Duration::from_secs(90),
        || {
            let (urls, http, last) = (urls.clone(), http.clone(), last.clone());
            async move {
                let mut seen = Vec::new();
                for url in &urls {
                    match read(&http, url, "?r=all").await {
                        Some((set, _)) => seen.push(set),
                        None => return false,
                    }
                }
                let same = seen.windows(2).all(|w| w[0] == w[1]);
                if let (true, Ok(mut l)) = (same, last.lock()) {
                    *l = seen.swap_remove(0);
                }
                same
            }
        },
    )
    .await;
    let last = last.lock().expect("final set").clone();
    let o = out.lock().expect("outcomes");
    let lost = o.acknowledged.difference(&last).count();
    let present = o.unknown.intersection(&last).count();
    (o.acknowledged.len(), lost, present)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_adds_survive_partitions_kills_and_pauses() {
    let net = match Netns::create(NODES) {
        Ok(net) => net,
        Err(why) if std::env::var_os("RINGSTORE_REQUIRE_NETNS").is_none() => {
            eprintln!("skipping the real-process nemesis: it needs root and iproute2 ({why})");
            return;
        }
        Err(why) => panic!("RINGSTORE_REQUIRE_NETNS is set but namespaces cannot be made: {why}"),
    };
    let secs: u64 = std::env::var("RINGSTORE_NEMESIS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(config.path(), "aae_interval_ms = 2000\n").expect("write config");
    let path = config.path().to_str().expect("UTF-8 path");
    let mut c = Cluster::start_in(&net, &["--config", path]).await;
    let mut report = Vec::new();
    for fault in [Fault::Partition, Fault::Kill, Fault::Pause] {
        let (acked, lost, present) = run(&mut c, &net, fault, secs).await;
        let line = format!(
            "{fault:?}: {acked} acknowledged, {lost} lost, {present} unacknowledged but present"
        );
        eprintln!("{line}");
        report.push((line, acked, lost));
    }
    for (line, acked, lost) in &report {
        assert!(
            *acked > 10,
            "too few acknowledged adds to prove anything: {line}"
        );
        assert_eq!(*lost, 0, "acknowledged adds were lost: {line}");
    }
}
