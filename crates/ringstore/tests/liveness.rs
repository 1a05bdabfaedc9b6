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
    let metrics = c
        .http
        .get(c.nodes[0].url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
