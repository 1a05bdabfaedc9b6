//! Live membership: a node joins and another leaves while clients write
//! and read at quorum; no request fails, nothing acknowledged is lost, and
//! afterwards every key is held by exactly its owners.

mod common;

use common::{wait_until, Cluster};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn get_json(c: &Cluster, on: usize, path: &str) -> Value {
    c.http
        .get(c.nodes[on].url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Whether every node in `on` sees a stable layout with `members` members.
async fn settled(c: &Cluster, on: &[usize], members: usize) -> bool {
    for &i in on {
        let Ok(r) = c.http.get(c.nodes[i].url("/admin/layout")).send().await else {
            return false;
        };
        let v: Value = r.json().await.unwrap_or_default();
        if v["version"] != v["stable_version"] {
            return false;
        }
        let st = get_json(c, i, "/admin/cluster").await;
        let n = st["nodes"]
            .as_array()
            .map_or(0, |ns| ns.iter().filter(|n| n["state"] == "member").count());
        if n != members {
            return false;
        }
    }
    true
}

struct Load {
    acked: Mutex<Vec<String>>,
    failures: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// One client: write a new key at quorum, read the previous one back.
async fn client(c: Arc<Vec<String>>, http: reqwest::Client, load: Arc<Load>, id: usize) {
    let mut i = 0usize;
    let mut last: Option<String> = None;
    while !load.stop.load(Ordering::Relaxed) {
        let base = &c[i % c.len()];
        let key = format!("c{id}-{i}");
        let url = format!("http://{base}/buckets/m/keys/{key}?w=quorum&timeout=3000");
        match http.put(&url).body(format!("v{i}")).send().await {
            Ok(r) if r.status() == 204 => load.acked.lock().unwrap().push(key.clone()),
            Ok(r) => {
                let s = r.status();
                let body = r.text().await.unwrap_or_default();
                load.failures
                    .lock()
                    .unwrap()
                    .push(format!("put {key}: {s} {body}"));
            }
            Err(e) => load
                .failures
                .lock()
                .unwrap()
                .push(format!("put {key}: {e}")),
        }
        if let Some(prev) = last.replace(key) {
            let url = format!("http://{base}/buckets/m/keys/{prev}?r=quorum&timeout=3000");
            match http.get(&url).send().await {
                Ok(r) if r.status() == 200 => {}
                Ok(r) => load
                    .failures
                    .lock()
                    .unwrap()
                    .push(format!("get {prev}: {}", r.status())),
                Err(e) => load
                    .failures
                    .lock()
                    .unwrap()
                    .push(format!("get {prev}: {e}")),
            }
        }
        i += 1;
    }
}

/// The first `n` owners of `key`'s partition, by node id.
fn owners(layout: &Value, bits: u8, key: &str, n: usize) -> Vec<String> {
    let p = ring::partition_of(bits, b"default", b"m", key.as_bytes()).0 as usize;
    layout["partitions"][p]["owners"]
        .as_array()
        .unwrap()
        .iter()
        .take(n)
        .map(|o| o["node"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn join_then_leave_under_load_fails_nothing_and_loses_nothing() {
    let mut c = Cluster::start(3, &[]).await;
    let load = Arc::new(Load {
        acked: Mutex::default(),
        failures: Mutex::default(),
        stop: AtomicBool::new(false),
    });
    // Clients talk to the nodes that stay.
    let bases = Arc::new(vec![c.nodes[0].http.clone(), c.nodes[2].http.clone()]);
    let clients: Vec<_> = (0..4)
        .map(|id| tokio::spawn(client(bases.clone(), c.http.clone(), load.clone(), id)))
        .collect();
    let some_acked = |n: usize| {
        let load = load.clone();
        move || {
            let load = load.clone();
            async move { load.acked.lock().unwrap().len() >= n }
        }
    };
    wait_until(
        "clients wrote 100 keys",
        Duration::from_secs(20),
        some_acked(100),
    )
    .await;

    let joined = c.add(&[]);
    wait_until(
        "the 4th node joined and pulled its partitions",
        Duration::from_secs(60),
        || {
            let c = &c;
            async move { settled(c, &[0, 2, joined], 4).await }
        },
    )
    .await;
    let before_leave = load.acked.lock().unwrap().len();
    wait_until(
        "more keys written after the join",
        Duration::from_secs(20),
        some_acked(before_leave + 100),
    )
    .await;

    let leaver = c.node_id(1).await;
    let r = c
        .http
        .post(c.nodes[0].url("/admin/cluster/leave"))
        .json(&serde_json::json!({ "node": leaver }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    wait_until(
        "node 1 handed off and left",
        Duration::from_secs(60),
        || {
            let c = &c;
            async move { settled(c, &[0, 2, joined], 3).await }
        },
    )
    .await;
    let after_leave = load.acked.lock().unwrap().len();
    wait_until(
        "more keys written after the leave",
        Duration::from_secs(20),
        some_acked(after_leave + 100),
    )
    .await;
    load.stop.store(true, Ordering::Relaxed);
    for t in clients {
        t.await.unwrap();
    }
    let failures = load.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );

    // Every acknowledged write is held by exactly its owners (node 1 by
    // none), once the old owners have dropped what they handed off.
    let acked = load.acked.lock().unwrap().clone();
    eprintln!(
        "{} writes acknowledged ({before_leave} before the leave, {after_leave} before it completed)",
        acked.len()
    );
    let layout = get_json(&c, 0, "/admin/layout").await;
    let bits = (layout["partitions"].as_array().unwrap().len() as f64).log2() as u8;
    let ids = c.node_ids().await;
    wait_until(
        "every key is held by exactly its owners",
        Duration::from_secs(30),
        || {
            let (c, acked, layout, ids) = (&c, &acked, &layout, &ids);
            async move {
                for key in acked.iter().step_by(7) {
                    let own = owners(layout, bits, key, 3);
                    for (i, id) in ids.iter().enumerate() {
                        let url = c.nodes[i].url(&format!("/admin/replica/buckets/m/keys/{key}"));
                        let has = c
                            .http
                            .get(url)
                            .send()
                            .await
                            .is_ok_and(|r| r.status() == 200);
                        if has != own.contains(id) {
                            return false;
                        }
                    }
                }
                true
            }
        },
    )
    .await;
    for key in &acked {
        let r = c
            .http
            .get(c.nodes[joined].url(&format!("/buckets/m/keys/{key}?r=quorum")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged {key} lost");
    }
}

async fn put(c: &Cluster, on: usize, key: &str) -> u16 {
    c.http
        .put(c.nodes[on].url(&format!("/buckets/m/keys/{key}?w=quorum&timeout=3000")))
        .body(key.to_string())
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn get(c: &Cluster, on: usize, key: &str) -> u16 {
    c.http
        .get(c.nodes[on].url(&format!("/buckets/m/keys/{key}?r=quorum&timeout=3000")))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test]
async fn six_nodes_in_three_zones_survive_losing_a_zone() {
    let zones = ["a", "a", "b", "b", "c", "c"];
    let mut c = Cluster::start_each(6, &[], |i| vec!["--zone".into(), zones[i].into()]).await;
    let layout = get_json(&c, 0, "/admin/layout").await;
    for p in layout["partitions"].as_array().unwrap() {
        let mut z: Vec<&str> = p["owners"].as_array().unwrap()[..3]
            .iter()
            .map(|o| o["zone"].as_str().unwrap())
            .collect();
        z.sort_unstable();
        assert_eq!(
            z,
            ["a", "b", "c"],
            "partition {} is not spread over the zones",
            p["id"]
        );
    }
    for i in 0..200 {
        assert_eq!(put(&c, i % 6, &format!("z{i}")).await, 204);
    }
    let with = |q: &str| format!("/buckets/m/keys/q?w={q}&timeout=2000");
    for q in ["each_quorum", "local_quorum"] {
        assert_eq!(
            c.put(0, &with(q), "x").await,
            204,
            "w={q} with every zone up"
        );
    }
    c.nodes[4].kill9();
    c.nodes[5].kill9();
    let r = c
        .http
        .put(c.nodes[0].url(&with("each_quorum")))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        503,
        "w=each_quorum cannot be met without zone c"
    );
    assert_eq!(
        c.put(0, &with("local_quorum"), "x").await,
        204,
        "w=local_quorum needs only zone a"
    );
    for i in 200..400 {
        assert_eq!(
            put(&c, i % 4, &format!("z{i}")).await,
            204,
            "write z{i} with zone c down"
        );
    }
    for i in 0..400 {
        assert_eq!(
            get(&c, i % 4, &format!("z{i}")).await,
            200,
            "read z{i} with zone c down"
        );
    }
}

#[tokio::test]
async fn replace_of_a_killed_node_restores_every_replica() {
    let mut c = Cluster::start(3, &[]).await;
    for i in 0..100 {
        assert_eq!(put(&c, i % 3, &format!("r{i}")).await, 204);
    }
    let ids = c.node_ids().await;
    c.nodes[2].kill9();
    let new = c.add(&[]);
    c.wait_listening(new).await;
    let new_id = c.node_id(new).await;
    wait_until(
        "node 0 knows the new member",
        Duration::from_secs(10),
        || {
            let (c, new_id) = (&c, new_id.clone());
            async move {
                let st = get_json(c, 0, "/admin/cluster").await;
                st["nodes"]
                    .as_array()
                    .is_some_and(|ns| ns.iter().any(|n| n["id"] == new_id.as_str()))
            }
        },
    )
    .await;
    let r = c
        .http
        .post(c.nodes[0].url("/admin/cluster/replace"))
        .json(&serde_json::json!({ "old": ids[2], "new": new_id }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    wait_until(
        "the replacement pulled its partitions",
        Duration::from_secs(60),
        || {
            let c = &c;
            async move { settled(c, &[0, 1, new], 3).await }
        },
    )
    .await;
    // With n_val 3 on three live nodes, every key is on every one of them.
    for i in 0..100 {
        for on in [0, 1, new] {
            let url = c.nodes[on].url(&format!("/admin/replica/buckets/m/keys/r{i}"));
            let r = c.http.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200, "r{i} missing on node {on} after replace");
        }
    }
}

/// Partitions each node owns and its zone and capacity, as node `on` sees them.
async fn placement(c: &Cluster, on: usize) -> Vec<(String, u64, u64)> {
    let st = get_json(c, on, "/admin/cluster").await;
    st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["zone"].as_str().unwrap_or("").to_string(),
                n["capacity"].as_u64().unwrap_or(u64::MAX),
                n["partitions"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

#[tokio::test]
async fn capacity_and_zone_changes_move_partitions_and_outlive_a_restart() {
    let mut c = Cluster::start(4, &[]).await;
    for i in 0..100 {
        assert_eq!(put(&c, i % 4, &format!("u{i}")).await, 204);
    }
    let ids = c.node_ids().await;
    let pos = |id: &str| {
        let id = id.to_string();
        move |st: &Value| -> usize {
            st["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .position(|n| n["id"] == id.as_str())
                .unwrap()
        }
    };
    let r = c
        .http
        .post(c.nodes[0].url("/admin/cluster/update"))
        .json(&serde_json::json!({ "node": ids[3], "capacity": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let drained = || {
        let c = &c;
        let at = pos(&ids[3]);
        async move {
            let st = get_json(c, 0, "/admin/cluster").await;
            settled(c, &[0, 1, 2, 3], 4).await && placement(c, 0).await[at(&st)].2 == 0
        }
    };
    wait_until(
        "node 3 drained to capacity 0",
        Duration::from_secs(60),
        drained,
    )
    .await;
    for i in 0..100 {
        assert_eq!(get(&c, 1, &format!("u{i}")).await, 200, "u{i} after drain");
    }
    wait_until(
        "the drained node dropped every key",
        Duration::from_secs(10),
        || {
            let c = &c;
            async move {
                for i in 0..100 {
                    let url = c.nodes[3].url(&format!("/admin/replica/buckets/m/keys/u{i}"));
                    if c.http.get(url).send().await.unwrap().status() != 404 {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;

    // A clean restart with the same config keeps the change made through
    // the API instead of announcing the configured capacity again.
    c.nodes[3].stop();
    c.nodes[3].start();
    c.wait_formed().await;
    let st = get_json(&c, 3, "/admin/cluster").await;
    assert_eq!(
        placement(&c, 3).await[pos(&ids[3])(&st)].1,
        0,
        "a restart undid the capacity change"
    );

    // The CLI: back to capacity 1, in a zone of its own.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringstore"))
        .args(["cluster", "--node", &c.nodes[2].http, "update", &ids[3]])
        .args(["--capacity", "1", "--zone", "z2"])
        .env("RINGSTORE_ADMIN_TOKEN", common::ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("zone \"z2\""),
        "{out:?}"
    );
    wait_until(
        "node 3 owns partitions again, in zone z2, on every node",
        Duration::from_secs(60),
        || {
            let c = &c;
            let at = pos(&ids[3]);
            async move {
                if !settled(c, &[0, 1, 2, 3], 4).await {
                    return false;
                }
                for on in 0..4 {
                    let st = get_json(c, on, "/admin/cluster").await;
                    let (zone, cap, parts) = placement(c, on).await[at(&st)].clone();
                    if zone != "z2" || cap != 1 || parts == 0 {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
    for i in 0..100 {
        assert_eq!(
            get(&c, 3, &format!("u{i}")).await,
            200,
            "u{i} after the move"
        );
    }
}
