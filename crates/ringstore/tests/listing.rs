//! Listings against 3 real nodes: S3 ListObjectsV2 paging exactly once
//! under concurrent writes and deletes, delimiters over nested prefixes,
//! continuation tokens across a restart and against forgery, and the
//! key-value `keys=true` / `keys=stream` listings and their limit.

mod common;

use client::s3::{ListRequest, ListedObjects, S3Client};
use common::Cluster;
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn clients(c: &Cluster, key: &(String, String)) -> Vec<S3Client> {
    c.nodes
        .iter()
        .map(|n| S3Client::new(&n.s3, &key.0, &key.1, "us-east-1"))
        .collect()
}

/// Put `keys` with `concurrency` requests in flight, spread over clients.
async fn put_all(s3: &[S3Client], bucket: &str, keys: Vec<String>, concurrency: usize) {
    use futures::StreamExt;
    futures::stream::iter(keys.into_iter().enumerate())
        .map(|(i, k)| {
            let s3 = s3[i % s3.len()].clone();
            let bucket = bucket.to_string();
            async move {
                s3.put_object(&bucket, &k, bytes::Bytes::from_static(b"x"))
                    .await
                    .unwrap_or_else(|e| panic!("put {k}: {e}"));
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
}

/// Every entry of a listing, page by page, each page from the next node.
async fn list_all(s3: &[S3Client], bucket: &str, req: ListRequest<'_>) -> Vec<ListedObjects> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    for i in 0.. {
        let page = s3[i % s3.len()]
            .list_objects_v2(
                bucket,
                &ListRequest {
                    token: token.as_deref(),
                    ..req
                },
            )
            .await
            .unwrap_or_else(|e| panic!("page {i}: {e}"));
        token = page.next_token.clone();
        pages.push(page);
        if token.is_none() {
            break;
        }
        assert!(i < 100_000, "the listing does not end");
    }
    pages
}

/// The exactly-once property: a key present before the listing started and
/// not deleted during it appears exactly once, in order, while other
/// clients write new keys and delete others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_lists_each_stable_key_once_under_concurrent_writes() {
    const KEYS: usize = 100_000;
    let c = Cluster::start(3, &[]).await;
    let key = c.s3_key().await;
    let s3 = clients(&c, &key);
    s3[0].create_bucket("thumbs").await.unwrap();
    // Keys interleave: stable ones stay, doomed ones are deleted during
    // the listing, and writers add fresh ones between both.
    let name = |i: usize| format!("v{:05}/t{}.jpg", i / 4, i % 4);
    put_all(&s3, "thumbs", (0..KEYS).map(name).collect(), 64).await;
    let doomed = |i: usize| i % 10 == 3;

    let stop = Arc::new(AtomicBool::new(false));
    let mut churn = Vec::new();
    for w in 0..4usize {
        let (s3, stop) = (s3.clone(), stop.clone());
        churn.push(tokio::spawn(async move {
            let mut n = 0usize;
            for i in (w..KEYS).step_by(4).filter(|i| doomed(*i)) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let client = &s3[n % s3.len()];
                client.delete_object("thumbs", &name(i)).await.unwrap();
                client
                    .put_object(
                        "thumbs",
                        &format!("{}-new{w}", name(i)),
                        bytes::Bytes::from_static(b"y"),
                    )
                    .await
                    .unwrap();
                n += 1;
            }
            n
        }));
    }
    let pages = list_all(&s3, "thumbs", ListRequest::default()).await;
    stop.store(true, Ordering::Relaxed);
    let mut churned = 0;
    for t in churn {
        churned += t.await.unwrap();
    }
    assert!(churned > 100, "the writers barely ran ({churned} deletes)");

    let listed: Vec<&String> = pages.iter().flat_map(|p| &p.keys).collect();
    assert!(
        listed.windows(2).all(|w| w[0] < w[1]),
        "keys out of order or repeated across pages"
    );
    let seen: HashSet<&str> = listed.iter().map(|k| k.as_str()).collect();
    for i in (0..KEYS).filter(|i| !doomed(*i)) {
        assert!(
            seen.contains(name(i).as_str()),
            "stable key {} is missing",
            name(i)
        );
    }
    assert!(pages.iter().all(|p| p.keys.len() <= 1000));
    assert!(pages.len() >= KEYS * 9 / 10 / 1000, "{} pages", pages.len());
}

#[tokio::test]
async fn delimiters_list_folders_at_every_level() {
    let c = Cluster::start(3, &[]).await;
    let key = c.s3_key().await;
    let s3 = clients(&c, &key);
    s3[0].create_bucket("tree").await.unwrap();
    let mut keys = vec!["top.txt".to_string(), "z/last".to_string()];
    for a in 0..30 {
        for b in 0..4 {
            keys.push(format!("photos/{a:02}/{b}.jpg"));
            keys.push(format!("photos/{a:02}/thumbs/{b}.jpg"));
        }
    }
    keys.push("photos/readme".to_string());
    put_all(&s3, "tree", keys.clone(), 32).await;

    for max_keys in [1, 7, 1000] {
        let top = list_all(
            &s3,
            "tree",
            ListRequest {
                delimiter: Some("/"),
                max_keys: Some(max_keys),
                ..Default::default()
            },
        )
        .await;
        let prefixes: Vec<&String> = top.iter().flat_map(|p| &p.prefixes).collect();
        let files: Vec<&String> = top.iter().flat_map(|p| &p.keys).collect();
        assert_eq!(prefixes, ["photos/", "z/"], "max-keys {max_keys}");
        assert_eq!(files, ["top.txt"], "max-keys {max_keys}");

        let photos = list_all(
            &s3,
            "tree",
            ListRequest {
                prefix: Some("photos/"),
                delimiter: Some("/"),
                max_keys: Some(max_keys),
                ..Default::default()
            },
        )
        .await;
        let prefixes: Vec<String> = photos.iter().flat_map(|p| p.prefixes.clone()).collect();
        let expected: Vec<String> = (0..30).map(|a| format!("photos/{a:02}/")).collect();
        assert_eq!(prefixes, expected, "max-keys {max_keys}");
        let files: Vec<&String> = photos.iter().flat_map(|p| &p.keys).collect();
        assert_eq!(files, ["photos/readme"]);
        assert!(photos
            .iter()
            .all(|p| p.keys.len() + p.prefixes.len() <= max_keys as usize));

        let one = list_all(
            &s3,
            "tree",
            ListRequest {
                prefix: Some("photos/07/"),
                delimiter: Some("/"),
                max_keys: Some(max_keys),
                ..Default::default()
            },
        )
        .await;
        let files: Vec<&String> = one.iter().flat_map(|p| &p.keys).collect();
        assert_eq!(
            files,
            [
                "photos/07/0.jpg",
                "photos/07/1.jpg",
                "photos/07/2.jpg",
                "photos/07/3.jpg"
            ]
        );
        let prefixes: Vec<&String> = one.iter().flat_map(|p| &p.prefixes).collect();
        assert_eq!(prefixes, ["photos/07/thumbs/"]);
    }
    // Without a delimiter, everything, in order.
    let all = list_all(
        &s3,
        "tree",
        ListRequest {
            max_keys: Some(50),
            ..Default::default()
        },
    )
    .await;
    let listed: Vec<String> = all.iter().flat_map(|p| p.keys.clone()).collect();
    let expected: Vec<String> = keys
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn continuation_tokens_survive_a_restart_and_refuse_forgery() {
    let mut c = Cluster::start(3, &[]).await;
    let key = c.s3_key().await;
    let s3 = clients(&c, &key);
    for b in ["one", "two"] {
        s3[0].create_bucket(b).await.unwrap();
    }
    let keys: Vec<String> = (0..120).map(|i| format!("k{i:03}")).collect();
    put_all(&s3, "one", keys.clone(), 32).await;
    put_all(&s3, "two", keys.clone(), 32).await;
    let first = s3[0]
        .list_objects_v2(
            "one",
            &ListRequest {
                max_keys: Some(50),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let token = first.next_token.clone().expect("a truncated first page");

    // The token opens on a restarted node and on any other.
    c.nodes[0].restart();
    c.wait_listening(0).await;
    c.wait_formed().await;
    for client in [&s3[0], &s3[1]] {
        let next = client
            .list_objects_v2(
                "one",
                &ListRequest {
                    token: Some(&token),
                    max_keys: Some(50),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(next.keys, keys[50..100]);
    }

    // Forged, truncated, altered or foreign tokens: 400 InvalidArgument.
    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let forged = base64_url(b"\x01\x00k099aaaaaaaaaaaaaaaa");
    let cases = [
        ("another bucket", "two", token.as_str()),
        ("truncated", "one", &token[..token.len() / 2]),
        ("altered", "one", altered.as_str()),
        ("forged", "one", forged.as_str()),
        ("not base64", "one", "k099"),
    ];
    for (what, bucket, t) in cases {
        let err = s3[1]
            .list_objects_v2(
                bucket,
                &ListRequest {
                    token: Some(t),
                    ..Default::default()
                },
            )
            .await
            .expect_err(what);
        let text = err.to_string();
        assert!(
            text.contains("400") && text.contains("InvalidArgument"),
            "{what}: {text}"
        );
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `keys=stream` streams any bucket; `keys=true` answers up to its limit
/// and past it says to stream.
#[tokio::test]
async fn key_value_listings_stream_and_refuse_to_buffer_past_the_limit() {
    let c = Cluster::start_configured(3, "list_keys_buffered_max = 1500\n", &[]).await;
    let n = &c.nodes[1];
    use futures::StreamExt;
    futures::stream::iter(0..2500)
        .map(|i| {
            let url = c.nodes[i % 3].url(&format!("/buckets/kv/keys/k{i:05}"));
            let http = c.http.clone();
            async move {
                let r = http.put(url).body("v").send().await.unwrap();
                assert_eq!(r.status(), 204);
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let r = c
        .http
        .get(n.url("/buckets/kv/keys?keys=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("keys=stream"), "{text}");

    let body = c
        .http
        .get(n.url("/buckets/kv/keys?keys=stream"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut keys = Vec::new();
    for chunk in serde_json::Deserializer::from_str(&body).into_iter::<serde_json::Value>() {
        let chunk = chunk.unwrap();
        keys.extend(
            chunk["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string()),
        );
    }
    let expected: Vec<String> = (0..2500).map(|i| format!("k{i:05}")).collect();
    assert_eq!(keys, expected);

    let r = c
        .http
        .get(n.url("/buckets/small/keys?keys=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["keys"],
        serde_json::json!([])
    );
}
