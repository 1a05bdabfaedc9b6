//! Tombstone reaping over real processes: deletes made while a node is cut
//! off stay deleted through hinted handoff, a kill -9 and a restart, and
//! once every replica holds them their tombstones leave every node's
//! storage.

mod common;

use common::{wait_until, Cluster};
use serde_json::Value;
use std::time::{Duration, Instant};

const KEYS: usize = 60;
const DELETED: usize = 30;
const GRACE_MS: u64 = 500;

fn config() -> String {
    format!("delete_mode = {GRACE_MS}\nreap_interval_ms = 200\n")
}

/// Every node's (tombstones held at its last index walk, reaped since start).
async fn tombstones(c: &Cluster) -> Vec<(Option<u64>, u64)> {
    let mut out = Vec::new();
    for i in 0..c.nodes.len() {
        let v: Value = c.cluster_json(i).await;
        out.push((
            v["tombstones_held"].as_u64(),
            v["tombstones_reaped"].as_u64().unwrap(),
        ));
    }
    out
}

/// The status of `GET` for key `k` through node `i` with `r=all`.
async fn read(c: &Cluster, i: usize, k: usize) -> u16 {
    let url = c.nodes[i].url(&format!("/buckets/reap/keys/k{k}?r=all"));
    c.http.get(url).send().await.unwrap().status().as_u16()
}

/// Node `j`'s local replica of key `k`: status and body.
async fn replica_body(c: &Cluster, j: usize, k: usize) -> (u16, String) {
    let url = c.nodes[j].url(&format!("/admin/replica/buckets/reap/keys/k{k}"));
    let r = c.http.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Wait until every running node walked its index and held no tombstone.
async fn wait_reaped(c: &Cluster, what: &str) {
    wait_until(what, Duration::from_secs(30), || async {
        tombstones(c).await.iter().all(|(held, _)| *held == Some(0))
    })
    .await;
}

#[tokio::test]
async fn deletes_made_during_a_partition_stay_deleted_and_their_tombstones_go() {
    let mut c = Cluster::start_configured(3, &config(), &["--enable-fault-injection"]).await;
    for k in 0..KEYS {
        let status = c
            .put(
                0,
                &format!("/buckets/reap/keys/k{k}?w=all"),
                format!("v{k}"),
            )
            .await;
        assert_eq!(status, 204, "writing k{k}");
    }
    c.cut_off(2).await;
    let deleted_at = Instant::now();
    for k in 0..DELETED {
        let url = c.nodes[0].url(&format!("/buckets/reap/keys/k{k}?w=2&timeout=1500"));
        let status = c.http.delete(url).send().await.unwrap().status();
        assert_eq!(status, 204, "deleting k{k} with node 2 cut off");
    }
    // Node 2 still holds the old values: nothing may be reaped, however
    // long the grace period has run, while a primary lacks the tombstone.
    wait_until(
        "node 0's reaper walked its index well past the grace period",
        Duration::from_secs(20),
        || async {
            deleted_at.elapsed() > Duration::from_millis(4 * GRACE_MS)
                && tombstones(&c).await[0].0 == Some(DELETED as u64)
        },
    )
    .await;
    for k in 0..DELETED {
        let (status, body) = replica_body(&c, 0, k).await;
        assert!(
            !body.contains("holds no replica"),
            "k{k}'s tombstone was reaped while node 2 still held the value: {status} {body}"
        );
    }

    c.heal().await;
    wait_reaped(
        &c,
        "hinted handoff brings node 2 the deletes and all are reaped",
    )
    .await;
    let reaped: u64 = tombstones(&c).await.iter().map(|(_, r)| r).sum();
    assert!(
        reaped >= (DELETED * 3) as u64,
        "every replica of every deleted key was reaped: {reaped}"
    );
    for j in 0..3 {
        for k in 0..DELETED {
            let (status, body) = replica_body(&c, j, k).await;
            assert!(
                status == 404 && body.contains("holds no replica"),
                "node {j} still stores k{k}: {status} {body}"
            );
        }
    }

    // A crash loses the unsynced drops; the tombstones come back, never
    // the values, and are reaped again.
    c.nodes[1].kill9();
    c.nodes[1].start();
    c.wait_formed().await;
    wait_reaped(&c, "after a kill -9, every node holds no tombstone again").await;
    for i in 0..3 {
        for k in 0..KEYS {
            let expected = if k < DELETED { 404 } else { 200 };
            assert_eq!(read(&c, i, k).await, expected, "k{k} read through node {i}");
        }
    }
}

#[tokio::test]
async fn s3_deletes_are_reaped_too() {
    let c = Cluster::start_configured(3, &config(), &[]).await;
    let key = c.s3_key().await;
    let s3 = client::s3::S3Client::new(&c.nodes[1].s3, &key.0, &key.1, "us-east-1");
    s3.create_bucket("thumbs").await.unwrap();
    for k in 0..20 {
        s3.put_object(
            "thumbs",
            &format!("t{k}.jpg"),
            bytes::Bytes::from(vec![7u8; 1000]),
        )
        .await
        .unwrap();
    }
    let before: u64 = tombstones(&c).await.iter().map(|(_, r)| r).sum();
    for k in 0..10 {
        s3.delete_object("thumbs", &format!("t{k}.jpg"))
            .await
            .unwrap();
    }
    wait_until(
        "the 10 deleted object records are reaped on all 3 replicas",
        Duration::from_secs(30),
        || async {
            let t = tombstones(&c).await;
            let reaped: u64 = t.iter().map(|(_, r)| r).sum();
            reaped >= before + 30 && t.iter().all(|(held, _)| *held == Some(0))
        },
    )
    .await;
    for k in 0..20 {
        let got = s3.get_object("thumbs", &format!("t{k}.jpg")).await;
        match got {
            Ok(bytes) => assert!(k >= 10 && bytes == 1000, "t{k}.jpg: {bytes} bytes"),
            Err(client::ClientError::Status { status: 404, .. }) => {
                assert!(k < 10, "t{k}.jpg was never deleted")
            }
            Err(e) => panic!("t{k}.jpg: {e}"),
        }
    }
}
