//! Liveness as every node reports it: a killed node is seen down within
//! 3 s (default settings) and up again within 1 s of listening again.

mod common;

use common::{wait_until, Cluster};
use serde_json::Value;
use std::time::{Duration, Instant};

async fn liveness_of(c: &Cluster, on: usize, id: &str) -> String {
    let Ok(r) = c.http.get(c.nodes[on].url("/admin/cluster")).send().await else {
        return String::new();
    };
    let v: Value = r.json().await.unwrap_or_default();
    v["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["id"] == id))
        .and_then(|n| n["liveness"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn killed_node_is_down_within_3s_and_up_within_1s_of_restart() {
    let mut c = Cluster::start(3, &[]).await;
    let id = c.node_id(2).await;
    c.nodes[2].kill9();
    let killed = Instant::now();
    wait_until(
        "both survivors see the killed node down",
        Duration::from_secs(10),
        || {
            let (c, id) = (&c, id.clone());
            async move {
                liveness_of(c, 0, &id).await == "down" && liveness_of(c, 1, &id).await == "down"
            }
        },
    )
    .await;
    let down_after = killed.elapsed();
    let metrics = c.metrics(0).await;
    assert!(
        metrics.contains(&format!("ringstore_peer_up{{peer=\"{id}\"}} 0")),
        "{metrics}"
    );
    c.nodes[2].restart();
    c.wait_listening(2).await;
    let back = Instant::now();
    wait_until("both survivors see it up again", Duration::from_secs(10), || {
        let (c, id) = (&c, id.clone());
        async move { liveness_of(c, 0, &id).await == "up" && liveness_of(c, 1, &id).await == "up" }
    })
    .await;
    let up_after = back.elapsed();
    eprintln!("seen down {down_after:?} after kill -9, up {up_after:?} after restart");
    // Polling adds up to ~50 ms to each figure.
    assert!(
        down_after <= Duration::from_secs(3),
        "down after {down_after:?}"
    );
    assert!(up_after <= Duration::from_secs(1), "up after {up_after:?}");
}

/// Rules set on the cut-off node alone: its peers only see it down if the
/// fault rules drop the detector's datagrams in both directions.
#[tokio::test]
async fn cut_off_node_is_down_within_3s_and_up_within_1s_of_heal() {
    let c = Cluster::start(3, &["--enable-fault-injection"]).await;
    let ids = c.node_ids().await;
    let cut = ids[2].clone();
    let r = c
        .http
        .post(c.nodes[2].url("/admin/debug/faults"))
        .json(&serde_json::json!({ "drop": [&ids[0], &ids[1]] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let cut_at = Instant::now();
    wait_until(
        "both peers see the cut-off node down",
        Duration::from_secs(10),
        || {
            let (c, cut) = (&c, cut.clone());
            async move {
                liveness_of(c, 0, &cut).await == "down" && liveness_of(c, 1, &cut).await == "down"
            }
        },
    )
    .await;
    let down_after = cut_at.elapsed();
    wait_until(
        "the cut-off node sees its peers down",
        Duration::from_secs(10),
        || {
            let (c, ids) = (&c, ids.clone());
            async move {
                liveness_of(c, 2, &ids[0]).await == "down"
                    && liveness_of(c, 2, &ids[1]).await == "down"
            }
        },
    )
    .await;

    c.heal().await;
    let healed_at = Instant::now();
    wait_until(
        "every node sees every other up",
        Duration::from_secs(10),
        || {
            let (c, ids) = (&c, ids.clone());
            async move {
                for on in 0..3 {
                    for id in &ids {
                        if liveness_of(c, on, id).await != "up" {
                            return false;
                        }
                    }
                }
                true
            }
        },
    )
    .await;
    let up_after = healed_at.elapsed();
    eprintln!("cut-off node seen down {down_after:?} after the cut, up {up_after:?} after heal");
    assert!(
        down_after <= Duration::from_secs(3),
        "down after {down_after:?}"
    );
    assert!(up_after <= Duration::from_secs(1), "up after {up_after:?}");
}
