//! Fault injection over real TCP: cut a node off without root, see quorums
//! and liveness react, heal, and see the node catch up (by hinted handoff,
//! or with hints off, by read repair alone).

mod common;

use common::{wait_until, Cluster};
use serde_json::Value;
use std::time::Duration;

async fn liveness(c: &Cluster, on: usize, of: &str) -> String {
    let v: Value = c
        .http
        .get(c.nodes[on].url("/admin/cluster"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    let n = nodes.iter().find(|n| n["id"] == of).unwrap();
    n["liveness"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn faults_endpoint_is_404_without_the_flag() {
    let c = Cluster::start(1, &[]).await;
    let r = c
        .http
        .post(c.nodes[0].url("/admin/debug/faults"))
        .body(r#"{"drop": []}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .http
        .delete(c.nodes[0].url("/admin/debug/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn cut_off_node_misses_writes_then_catches_up_after_heal() {
    let c = Cluster::start(3, &["--enable-fault-injection"]).await;
    let ids = c.node_ids().await;
    c.cut_off(2).await;
    let r = c
        .http
        .post(c.nodes[0].url("/admin/debug/faults"))
        .body(r#"{"drop": ["not-a-node"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    assert_eq!(
        c.put(0, "/buckets/f/keys/k?w=2&timeout=1000", "v").await,
        204
    );
    let r = c
        .http
        .put(c.nodes[0].url("/buckets/f/keys/all?w=all&timeout=500"))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // The 503 names the replica that did not answer (its call's own
    // deadline and the request's may fire first: either message is right).
    let body = r.text().await.unwrap();
    assert!(body.contains(&ids[2]) && body.contains("w=all"), "{body}");
    let r = c
        .http
        .get(c.nodes[2].url("/admin/replica/buckets/f/keys/k"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the cut-off node must not have the write");
    let cut = ids[2].clone();
    wait_until(
        "node 0 sees the cut-off node down",
        Duration::from_secs(10),
        || {
            let cut = cut.clone();
            let c = &c;
            async move { liveness(c, 0, &cut).await == "down" }
        },
    )
    .await;

    c.heal().await;
    let r = c
        .http
        .get(c.nodes[0].url("/buckets/f/keys/k?r=all"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_until(
        "read repair gives the healed node the write",
        Duration::from_secs(5),
        || {
            let url = c.nodes[2].url("/admin/replica/buckets/f/keys/k");
            let http = c.http.clone();
            async move { http.get(url).send().await.is_ok_and(|r| r.status() == 200) }
        },
    )
    .await;
    wait_until(
        "node 0 sees the healed node up",
        Duration::from_secs(10),
        || {
            let cut = cut.clone();
            let c = &c;
            async move { liveness(c, 0, &cut).await == "up" }
        },
    )
    .await;
}

/// A primary slower than the replica patience (500 ms) is still a replica:
/// with three nodes and `n_val` 3 no other node can stand in for it, so its
/// answer within the request's deadline counts towards `w`.
#[tokio::test]
async fn slow_primaries_still_count_when_no_fallback_can_stand_in() {
    let c = Cluster::start(3, &["--enable-fault-injection"]).await;
    let ids = c.node_ids().await;
    // Every call from node 0 to the others waits 350 ms before it is sent
    // and again after its reply: ~700 ms, past the patience and well
    // inside the 3 s deadline asked for below.
    let delay: serde_json::Map<String, Value> = ids[1..]
        .iter()
        .map(|id| (id.clone(), Value::from(350)))
        .collect();
    let r = c
        .http
        .post(c.nodes[0].url("/admin/debug/faults"))
        .json(&serde_json::json!({ "delay_ms": delay }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let started = std::time::Instant::now();
    assert_eq!(
        c.put(0, "/buckets/slow/keys/k?w=all&timeout=3000", "v")
            .await,
        204,
        "w=all must wait for the slow primaries"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(600),
        "the delay was not in force: {took:?}"
    );
    c.heal().await;
    for i in 1..3 {
        let r = c
            .http
            .get(c.nodes[i].url("/admin/replica/buckets/slow/keys/k"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "node {i} holds the write");
    }
}

#[tokio::test]
async fn one_read_with_r_1_repairs_a_replica_that_missed_a_write() {
    // Neither hints nor anti-entropy: only the read may repair the replica.
    let c = Cluster::start_configured(
        3,
        "hinted_handoff = false\nanti_entropy = false\n",
        &["--enable-fault-injection"],
    )
    .await;
    c.cut_off(2).await;
    assert_eq!(c.put(0, "/buckets/rr/keys/k?w=2", "v").await, 204);
    c.heal().await;
    let replica = c.nodes[2].url("/admin/replica/buckets/rr/keys/k");
    assert_eq!(
        c.http.get(&replica).send().await.unwrap().status(),
        404,
        "no hints: the replica still misses the write"
    );
    let r = c
        .http
        .get(c.nodes[1].url("/buckets/rr/keys/k?r=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_until(
        "read repair gives the replica the write",
        Duration::from_secs(5),
        || {
            let (http, url) = (c.http.clone(), replica.clone());
            async move { http.get(url).send().await.is_ok_and(|r| r.status() == 200) }
        },
    )
    .await;
    // The coordinator counts the repair when the replica acknowledges it,
    // which may be a moment after the replica serves it.
    wait_until(
        "node 1 counts one read repair",
        Duration::from_secs(5),
        || async { c.metrics(1).await.contains("ringstore_read_repairs 1") },
    )
    .await;
}

#[tokio::test]
async fn anti_entropy_alone_converges_and_keeps_concurrent_versions_as_siblings() {
    let c = Cluster::start_configured(
        3,
        "hinted_handoff = false\naae_interval_ms = 2000\n",
        &["--enable-fault-injection"],
    )
    .await;
    c.cut_off(2).await;
    for k in 0..100 {
        assert_eq!(
            c.put(
                k % 2,
                &format!("/buckets/ae/keys/k{k}?w=2"),
                format!("v{k}")
            )
            .await,
            204
        );
    }
    // The same key written on both sides of the cut: concurrent versions.
    assert_eq!(
        c.put(0, "/buckets/ae/keys/both?w=2", "majority-side").await,
        204
    );
    assert_eq!(
        c.put(2, "/buckets/ae/keys/both?w=1&dw=1", "minority-side")
            .await,
        204
    );
    c.heal().await;
    let healed = std::time::Instant::now();
    let missing = |c: &Cluster| {
        let (http, base) = (c.http.clone(), c.nodes[2].url(""));
        async move {
            let mut missing = 0;
            for k in 0..100 {
                let r = http
                    .get(format!("{base}/admin/replica/buckets/ae/keys/k{k}"))
                    .send()
                    .await
                    .unwrap();
                missing += usize::from(r.status() != 200);
            }
            missing
        }
    };
    assert_eq!(
        missing(&c).await,
        100,
        "no hints, no reads: only anti-entropy can deliver"
    );
    wait_until(
        "anti-entropy gives the healed node every key",
        Duration::from_secs(10),
        || {
            let c = &c;
            async move { missing(c).await == 0 }
        },
    )
    .await;
    let took = healed.elapsed();
    eprintln!("anti-entropy converged 100 keys {took:?} after heal (interval 2 s)");
    assert!(
        took <= Duration::from_secs(4),
        "one interval (2 s) plus 2 s; took {took:?}"
    );
    for i in [0, 2] {
        let url = c.nodes[i].url("/admin/replica/buckets/ae/keys/both");
        wait_until(
            "both versions reach every replica",
            Duration::from_secs(10),
            || {
                let (http, url) = (c.http.clone(), url.clone());
                async move {
                    let Ok(r) = http
                        .get(url)
                        .header("accept", "multipart/mixed")
                        .send()
                        .await
                    else {
                        return false;
                    };
                    r.status() == 300
                        && r.text().await.is_ok_and(|t| {
                            t.contains("majority-side") && t.contains("minority-side")
                        })
                }
            },
        )
        .await;
    }
    let status: Value = c
        .http
        .get(c.nodes[2].url("/admin/cluster"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        status["aae_keys_repaired"].as_u64().unwrap() > 0,
        "{status}"
    );
    let metrics = c.metrics(2).await;
    assert!(
        metrics.contains("ringstore_aae_last_exchange_timestamp_seconds{partition="),
        "{metrics}"
    );
}
