//! Blocks on 3 real nodes (collection passes and scrubs every 300 ms, a
//! 1.5 s grace): blocks of a deleted object or an aborted upload are
//! collected from every replica, while blocks a live object, a copy or an
//! upload in progress references stay; a replica damaged on disk is
//! dropped and restored from a peer by anti-entropy.

mod common;

use bytes::Bytes;
use client::s3::S3Client;
use common::{s3py, wait_until, Cluster};
use std::time::Duration;

const CONFIG: &str = "s3_block_sweep_interval_ms = 300\ns3_block_collect_interval_ms = 300\n\
                      s3_block_grace_ms = 1500\naae_interval_ms = 300\n";

const BLOCK: usize = 1 << 20;

fn random(len: usize) -> Bytes {
    Bytes::from((0..len).map(|_| rand::random::<u8>()).collect::<Vec<u8>>())
}

/// The hex hashes of the 1 MiB blocks `body` is stored as.
fn block_names(body: &[u8]) -> Vec<String> {
    body.chunks(BLOCK)
        .map(|c| blake3::hash(c).to_hex().to_string())
        .collect()
}

/// This node's replica of a block: its bytes, or `None` if it holds none.
async fn replica(c: &Cluster, on: usize, name: &str) -> Option<Bytes> {
    let url = c.nodes[on].url(&format!(
        "/admin/replica/types/_s3b/buckets/blocks/keys/{name}"
    ));
    let r = c.http.get(url).send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    r.bytes().await.ok()
}

async fn everywhere(c: &Cluster, names: &[String]) -> bool {
    for on in 0..c.nodes.len() {
        for n in names {
            match replica(c, on, n).await {
                Some(b) if blake3::hash(&b).to_hex().as_str() == n => {}
                _ => return false,
            }
        }
    }
    true
}

async fn nowhere(c: &Cluster, names: &[String]) -> bool {
    for on in 0..c.nodes.len() {
        for n in names {
            if replica(c, on, n).await.is_some() {
                return false;
            }
        }
    }
    true
}

#[tokio::test]
async fn unreferenced_blocks_are_collected_and_damaged_ones_repaired() {
    let c = Cluster::start_configured(3, CONFIG, &["--enable-fault-injection"]).await;
    let (id, secret) = c.s3_key().await;
    let s3 = S3Client::new(&c.nodes[0].s3, &id, &secret, "us-east-1");
    s3.create_bucket("media").await.unwrap();
    let (kept, dropped) = (random(3 * BLOCK + 100), random(2 * BLOCK + 7));
    s3.put_object("media", "kept.bin", kept.clone())
        .await
        .unwrap();
    s3.put_object("media", "dropped.bin", dropped.clone())
        .await
        .unwrap();
    let (kept_blocks, dropped_blocks) = (block_names(&kept), block_names(&dropped));
    let all_blocks = [kept_blocks.clone(), dropped_blocks.clone()].concat();
    wait_until("every block on every node", Duration::from_secs(10), || {
        everywhere(&c, &all_blocks)
    })
    .await;

    // A client without the admin token's header: an unsigned request.
    let r = reqwest::Client::new()
        .delete(format!("http://{}/media/dropped.bin", c.nodes[1].s3))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "unsigned deletes are refused");
    S3Client::new(&c.nodes[2].s3, &id, &secret, "us-east-1")
        .delete_object("media", "dropped.bin")
        .await
        .unwrap();
    wait_until(
        "the deleted object's blocks are collected everywhere",
        Duration::from_secs(20),
        || nowhere(&c, &dropped_blocks),
    )
    .await;
    assert!(
        everywhere(&c, &kept_blocks).await,
        "a live object's blocks were collected"
    );

    // Bit rot on node 1's replica of one block of the live object.
    let victim = &kept_blocks[1];
    let r = c
        .http
        .put(c.nodes[1].url(&format!(
            "/admin/debug/replica/types/_s3b/buckets/blocks/keys/{victim}"
        )))
        .body(vec![0u8; BLOCK])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_ne!(
        replica(&c, 1, victim)
            .await
            .map(|b| blake3::hash(&b).to_hex().to_string()),
        Some(victim.clone()),
        "the damage took"
    );
    wait_until(
        "the damaged replica is restored",
        Duration::from_secs(20),
        || everywhere(&c, &kept_blocks),
    )
    .await;
    let s3 = S3Client::new(&c.nodes[1].s3, &id, &secret, "us-east-1");
    assert_eq!(
        s3.get_object("media", "kept.bin").await.unwrap(),
        kept.len() as u64
    );
}

/// Whether every node's collection log is empty: every block that lost a
/// reference or was written has been checked, and collected or kept.
async fn logs_empty(c: &Cluster) -> bool {
    for i in 0..c.nodes.len() {
        let v: serde_json::Value = c.cluster_json(i).await;
        if v["collect_log"].as_u64() != Some(0) {
            return false;
        }
    }
    true
}

#[tokio::test]
async fn blocks_a_copy_or_an_open_upload_references_outlive_their_source() {
    let Some(python) = s3py::client_or_skip() else {
        return;
    };
    let c = Cluster::start_configured(3, CONFIG, &[]).await;
    let key = c.s3_key().await;
    let dir = tempfile::tempdir().unwrap();
    let (src, part, aborted) = (
        random(2 * BLOCK + 11),
        random(5 * BLOCK + 3),
        random(BLOCK + 5),
    );
    let mut files = Vec::new();
    for (name, body) in [("src", &src), ("part", &part), ("aborted", &aborted)] {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        files.push(path.to_string_lossy().into_owned());
    }
    // Put src, copy it, delete it; one upload left open, one aborted.
    let args = [vec!["gc-refs".to_string(), c.nodes[1].s3.clone()], files].concat();
    s3py::run(&python, &key, args).await;
    let aborted_blocks = block_names(&aborted);
    wait_until(
        "the aborted upload's blocks are collected everywhere",
        Duration::from_secs(30),
        || nowhere(&c, &aborted_blocks),
    )
    .await;
    wait_until(
        "every collection log is worked through",
        Duration::from_secs(30),
        || logs_empty(&c),
    )
    .await;
    let kept = [block_names(&src), block_names(&part)].concat();
    assert!(
        everywhere(&c, &kept).await,
        "blocks of a copy whose source was deleted, or of an upload in progress, were collected"
    );
    let (id, secret) = &key;
    let s3 = S3Client::new(&c.nodes[2].s3, id, secret, "us-east-1");
    assert_eq!(
        s3.get_object("gcrefs", "copy.bin").await.unwrap(),
        src.len() as u64
    );
}
