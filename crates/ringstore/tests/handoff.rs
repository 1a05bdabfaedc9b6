//! Hinted handoff and sloppy quorum with real processes: writes made while
//! a replica is dead or cut off reach it soon after it is back.

mod common;

use common::{wait_until, Cluster};
use serde_json::Value;
use std::time::{Duration, Instant};

const KEYS: usize = 200;

async fn cluster_json(c: &Cluster, i: usize) -> Value {
    c.http
        .get(c.nodes[i].url("/admin/cluster"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn write_keys(c: &Cluster, via: usize, query: &str) {
    for k in 0..KEYS {
        let r = c
            .http
            .put(c.nodes[via].url(&format!("/buckets/h/keys/k{k}?{query}")))
            .body(format!("v{k}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "write k{k}: {}", r.text().await.unwrap());
    }
}

async fn replica_count(c: &Cluster, i: usize) -> usize {
    let mut n = 0;
    for k in 0..KEYS {
        let r = c
            .http
            .get(c.nodes[i].url(&format!("/admin/replica/buckets/h/keys/k{k}")))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn killed_replica_gets_every_write_after_restart() {
    let mut c = Cluster::start(3, &[]).await;
    let dead = c.node_id(2).await;
    c.nodes[2].kill9();
    write_keys(&c, 0, "w=2").await;
    // Hints are stored just after each write answers (the quorum did not
    // wait for them), so wait for the count rather than read it once.
    wait_until(
        "node 0 holds a hint for every write",
        Duration::from_secs(5),
        || {
            let (c, dead) = (&c, dead.clone());
            async move {
                let status = cluster_json(c, 0).await;
                let pending: u64 = status["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|n| n["id"] == dead.as_str())
                    .map(|n| n["hints_pending"].as_u64().unwrap())
                    .sum();
                pending == KEYS as u64
            }
        },
    )
    .await;
    let metrics = c.metrics(0).await;
    assert!(
        metrics.contains(&format!(
            "ringstore_hints_pending{{target=\"{dead}\"}} {KEYS}"
        )),
        "{metrics}"
    );

    c.nodes[2].restart();
    c.wait_listening(2).await;
    let back = Instant::now();
    wait_until(
        "every write reaches the restarted node",
        Duration::from_secs(10),
        || {
            let c = &c;
            async move { replica_count(c, 2).await == KEYS }
        },
    )
    .await;
    let took = back.elapsed();
    eprintln!("hinted handoff delivered {KEYS} writes {took:?} after the node listened again");
    assert!(took <= Duration::from_secs(2), "took {took:?}");
    wait_until("no hints left", Duration::from_secs(5), || {
        let c = &c;
        let dead = dead.clone();
        async move {
            let s = cluster_json(c, 0).await;
            s["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["id"] != dead.as_str() || n["hints_pending"] == 0)
        }
    })
    .await;
}

#[tokio::test]
async fn cut_off_replica_converges_after_heal() {
    let c = Cluster::start(3, &["--enable-fault-injection"]).await;
    c.cut_off(2).await;
    // The first write waits out its call to the cut-off node; after that
    // the node is suspect and writes hint for it at once.
    write_keys(&c, 0, "w=2&timeout=3000").await;
    assert_eq!(replica_count(&c, 2).await, 0);
    c.heal().await;
    let healed = Instant::now();
    wait_until(
        "the healed node holds every write",
        Duration::from_secs(10),
        || {
            let c = &c;
            async move { replica_count(c, 2).await == KEYS }
        },
    )
    .await;
    let took = healed.elapsed();
    eprintln!("cut-off node converged {took:?} after heal");
    assert!(took <= Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn fallback_stands_in_for_a_dead_primary() {
    let mut c = Cluster::start(4, &[]).await;
    // Find the primaries of one key: a w=all write lands on exactly them.
    assert_eq!(c.put(0, "/buckets/s/keys/probe?w=all", "p").await, 204);
    let mut holders = Vec::new();
    for i in 0..4 {
        let r = c
            .http
            .get(c.nodes[i].url("/admin/replica/buckets/s/keys/probe"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            holders.push(i);
        }
    }
    assert_eq!(holders.len(), 3, "n_val 3: three primaries hold the key");
    // A live primary coordinates; the last primary dies; the fourth node is
    // the fallback.
    let (via, victim) = (holders[0], holders[2]);
    c.nodes[victim].kill9();
    // w=all is met by the two live primaries and the fallback...
    let r = c
        .http
        .put(c.nodes[via].url("/buckets/s/keys/probe?w=all"))
        .body("q")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    // ...but pw=all counts primaries only.
    assert_eq!(
        c.put(via, "/buckets/s/keys/probe?w=all&pw=all", "r").await,
        503
    );
    c.nodes[victim].restart();
    wait_until(
        "the dead primary receives the write it missed",
        Duration::from_secs(10),
        || {
            let (http, url) = (
                c.http.clone(),
                c.nodes[victim].url("/admin/replica/buckets/s/keys/probe"),
            );
            async move {
                match http
                    .get(url)
                    .header("accept", "multipart/mixed")
                    .send()
                    .await
                {
                    Ok(r) => r.text().await.is_ok_and(|t| t.contains('q')),
                    Err(_) => false,
                }
            }
        },
    )
    .await;
}
