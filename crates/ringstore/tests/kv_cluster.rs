//! The key-value API of a real 3-node cluster: replication, quorums under a
//! killed node, siblings, contexts, deletes, and crash durability.

mod common;

use common::{wait_until, Cluster};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn put_on_a_reads_on_b_and_c() {
    let c = Cluster::start(3, &[]).await;
    let r = c
        .http
        .put(c.nodes[0].url("/buckets/t/keys/k"))
        .header("content-type", "text/plain")
        .body("v1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    for n in &c.nodes[1..] {
        let r = c.http.get(n.url("/buckets/t/keys/k")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/plain");
        assert!(r.headers().contains_key("x-riak-vclock"));
        assert_eq!(r.text().await.unwrap(), "v1");
    }
}

#[tokio::test]
async fn quorums_with_one_node_killed() {
    let mut c = Cluster::start(3, &[]).await;
    let status: serde_json::Value = c
        .http
        .get(c.nodes[2].url("/admin/cluster"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let killed = status["node_id"].as_str().unwrap().to_string();
    c.nodes[2].kill9();
    let r = c
        .http
        .put(c.nodes[0].url("/buckets/t/keys/all?w=all"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    // It names the replica that failed (refused, or closed under a pooled
    // connection: which one depends on timing).
    assert!(body.contains("w=all") && body.contains(&killed), "{body}");
    assert_eq!(c.put(0, "/buckets/t/keys/two?w=2", "y").await, 204);
    let r = c
        .http
        .get(c.nodes[1].url("/buckets/t/keys/two?r=2"))
        .send()
        .await
        .unwrap();
    let (status, body) = (r.status(), r.text().await.unwrap());
    assert_eq!((status.as_u16(), body.as_str()), (200, "y"));
    // r=all cannot be met with a replica down, and says who answered.
    let r = c
        .http
        .get(c.nodes[1].url("/buckets/t/keys/two?r=all"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
}

#[tokio::test]
async fn blind_writes_are_siblings_and_a_context_resolves_them() {
    let c = Cluster::start(3, &[]).await;
    let url = |i: usize| c.nodes[i].url("/buckets/s/keys/k");
    let (a, b) = tokio::join!(
        c.http
            .put(url(0))
            .header("content-type", "text/plain")
            .body("from-a")
            .send(),
        c.http
            .put(url(1))
            .header("content-type", "text/plain")
            .body("from-b")
            .send(),
    );
    assert_eq!(a.unwrap().status(), 204);
    assert_eq!(b.unwrap().status(), 204);
    let r = c
        .http
        .get(url(2))
        .header("accept", "multipart/mixed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 300);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("multipart/mixed; boundary="));
    let vclock = r.headers()["x-riak-vclock"].to_str().unwrap().to_string();
    let body = r.text().await.unwrap();
    assert!(body.contains("from-a") && body.contains("from-b"), "{body}");
    // Without multipart, Riak lists vtags; each fetches one sibling.
    let r = c.http.get(url(2)).send().await.unwrap();
    assert_eq!(r.status(), 300);
    let list = r.text().await.unwrap();
    let vtags: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(vtags.len(), 2, "{list}");
    let one = c
        .http
        .get(format!("{}?vtag={}", url(0), vtags[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    // Writing with the context replaces both.
    let r = c
        .http
        .put(url(0))
        .header("x-riak-vclock", &vclock)
        .body("merged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c.http.get(url(1)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let vclock = r.headers()["x-riak-vclock"].to_str().unwrap().to_string();
    assert_eq!(r.text().await.unwrap(), "merged");
    let r = c
        .http
        .delete(url(2))
        .header("x-riak-vclock", &vclock)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c.http.get(url(0)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(!r.headers().contains_key("x-riak-vclock"));
    let r = c
        .http
        .get(format!("{}?deletedvclock=true", url(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-riak-deleted"], "true");
    assert!(r.headers().contains_key("x-riak-vclock"));
}

#[tokio::test]
async fn acknowledged_durable_writes_survive_kill_9_of_every_node() {
    let mut c = Cluster::start(3, &[]).await;
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (http, url, acked, stop) = (
                c.http.clone(),
                c.nodes[w % 3].url(""),
                acked.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("w{w}-{i}");
                    let r = http
                        .put(format!("{url}/buckets/d/keys/{key}?dw=quorum"))
                        .body(key.clone())
                        .send()
                        .await;
                    if r.is_ok_and(|r| r.status() == 204) {
                        acked.lock().unwrap().push(key);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    wait_until(
        "300 writes are acknowledged",
        Duration::from_secs(30),
        || {
            let n = acked.lock().unwrap().len();
            async move { n >= 300 }
        },
    )
    .await;
    for n in &mut c.nodes {
        n.kill9();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    for n in &mut c.nodes {
        n.restart();
    }
    c.wait_formed().await;
    let acked = acked.lock().unwrap().clone();
    for key in &acked {
        let r = c
            .http
            .get(c.nodes[0].url(&format!("/buckets/d/keys/{key}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "acknowledged write {key} lost after kill -9"
        );
        assert_eq!(r.text().await.unwrap(), *key);
    }
    eprintln!(
        "{} acknowledged writes all readable after kill -9 of every node",
        acked.len()
    );
}
