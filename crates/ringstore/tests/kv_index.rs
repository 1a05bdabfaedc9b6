//! Secondary indexes on a real cluster: every matching key with a node
//! killed and while a fourth node joins, pages that stay exact while
//! writes go on, and malformed headers and queries answered 400.

mod common;

use common::Cluster;
use std::collections::BTreeSet;

const OBJECTS: usize = 200;

/// Store `OBJECTS` objects in bucket `b` through node `via`, `grp_int` =
/// i % 10 and `tag_bin` = t(i % 5).
async fn load(c: &Cluster, via: usize) {
    for i in 0..OBJECTS {
        let r = c
            .http
            .put(c.nodes[via].url(&format!("/buckets/b/keys/k{i:03}")))
            .header("x-riak-index-grp_int", (i % 10).to_string())
            .header("x-riak-index-tag_bin", format!("t{}", i % 5))
            .body(format!("v{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    }
}

/// Every key a query returns through node `via`, page by page
/// (`max_results` = `page`), in the order returned.
async fn all_pages(
    c: &Cluster,
    via: usize,
    query: &str,
    page: usize,
) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    let mut continuation: Option<String> = None;
    for _ in 0..1000 {
        let mut url = c.nodes[via].url(&format!("{query}?max_results={page}"));
        if let Some(cont) = &continuation {
            url.push_str(&format!("&continuation={cont}"));
        }
        let r = c.http.get(&url).send().await.map_err(|e| e.to_string())?;
        if r.status() != 200 {
            return Err(format!(
                "{}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ));
        }
        let body: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
        for k in body["keys"].as_array().ok_or("no keys")? {
            keys.push(k.as_str().ok_or("a key that is not text")?.to_string());
        }
        match body["continuation"].as_str() {
            Some(cont) => continuation = Some(cont.to_string()),
            None => return Ok(keys),
        }
    }
    Err("more than 1000 pages".into())
}

fn expected(pred: impl Fn(usize) -> bool) -> Vec<String> {
    (0..OBJECTS)
        .filter(|i| pred(*i))
        .map(|i| format!("k{i:03}"))
        .collect()
}

/// Sorted, and no key twice.
fn exact(mut keys: Vec<String>) -> Vec<String> {
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "a key came back twice");
    keys
}

#[tokio::test]
async fn every_match_with_a_node_killed_and_during_a_join() {
    let mut c = Cluster::start(3, &[]).await;
    load(&c, 0).await;
    let range = "/buckets/b/index/grp_int/3/5";
    let want_range = expected(|i| (3..=5).contains(&(i % 10)));
    let eq = "/buckets/b/index/tag_bin/t2";
    let want_eq = expected(|i| i % 5 == 2);
    assert_eq!(
        exact(all_pages(&c, 1, range, 17).await.unwrap()),
        want_range
    );
    assert_eq!(exact(all_pages(&c, 2, eq, 9).await.unwrap()), want_eq);

    // One node killed: its partitions are read from other replicas.
    c.nodes[2].kill9();
    for via in [0, 1] {
        assert_eq!(
            exact(all_pages(&c, via, range, 23).await.unwrap()),
            want_range
        );
        assert_eq!(exact(all_pages(&c, via, eq, 1000).await.unwrap()), want_eq);
    }
    c.nodes[2].start();
    c.wait_listening(2).await;
    c.wait_formed().await;

    // A fourth node joins and pulls its partitions; queries during the
    // pull and after it return every match through every node.
    let joined = c.add(&[]);
    c.wait_listening(joined).await;
    for _ in 0..8 {
        for via in [0, joined] {
            match all_pages(&c, via, range, 31).await {
                Ok(keys) => assert_eq!(exact(keys), want_range, "through node {via}"),
                // Before it met the cluster the new node says so (503).
                Err(e) if via == joined && e.starts_with("503") => {}
                Err(e) => panic!("through node {via}: {e}"),
            }
        }
    }
    c.wait_formed().await;
    assert_eq!(
        exact(all_pages(&c, joined, range, 50).await.unwrap()),
        want_range
    );
}

#[tokio::test]
async fn pages_stay_exact_while_writes_go_on() {
    let c = Cluster::start(3, &[]).await;
    load(&c, 1).await;
    // A writer adds keys under the same term while a reader pages.
    let http = c.http.clone();
    let url = c.nodes[0].url("/buckets/b/keys");
    let writer = tokio::spawn(async move {
        for i in 0..150 {
            let r = http
                .put(format!("{url}/new{i:03}"))
                .header("x-riak-index-tag_bin", "t1")
                .body("new")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
        }
    });
    let keys = all_pages(&c, 2, "/buckets/b/index/tag_bin/t1", 7)
        .await
        .unwrap();
    writer.await.unwrap();
    let keys: BTreeSet<String> = exact(keys).into_iter().collect();
    // Every key that existed before the pages began is there, once; new
    // ones may or may not be, depending on where the pages were.
    for k in expected(|i| i % 5 == 1) {
        assert!(keys.contains(&k), "{k} missing");
    }
    assert!(keys
        .iter()
        .all(|k| k.starts_with('k') || k.starts_with("new")));
}

#[tokio::test]
async fn malformed_indexes_and_queries_answer_400_with_a_message() {
    let c = Cluster::start(3, &[]).await;
    let put = |header: &'static str, value: &'static str| {
        c.http
            .put(c.nodes[0].url("/buckets/b/keys/bad"))
            .header(header, value)
            .body("x")
            .send()
    };
    for (header, value, says) in [
        ("x-riak-index-age_int", "forty", "not an integer"),
        (
            "x-riak-index-age_int",
            "99999999999999999999",
            "not an integer",
        ),
        ("x-riak-index-age", "1", "must end in _bin, _int or _geo"),
        ("x-riak-index-here_geo", "91,0", "latitude in [-90, 90]"),
        (
            "x-riak-index-here_geo",
            "10,-181",
            "longitude in [-180, 180]",
        ),
        ("x-riak-index-here_geo", "10", "not a point"),
        ("x-riak-index-$ref", "x", "reserved"),
    ] {
        let r = put(header, value).await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(
            status == 400 && text.contains(says),
            "{header}: {value} → {status} {text}"
        );
    }
    assert_eq!(
        c.http
            .get(c.nodes[0].url("/buckets/b/keys/bad"))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "a refused write stored nothing"
    );
    for (query, says) in [
        ("/buckets/b/index/age/1", "must end in _bin or _int"),
        ("/buckets/b/index/age_int/x", "not an integer"),
        ("/buckets/b/index/age_int/1?max_results=0", "max_results"),
        ("/buckets/b/index/age_int/1?continuation=@@", "continuation"),
        (
            "/buckets/b/index/age_int/1?term_regex=a",
            "term_regex applies",
        ),
        ("/buckets/b/index/t_bin/a?term_regex=(", "does not compile"),
        (
            "/buckets/b/index/t_bin/a?colour=blue",
            "unknown index query parameter",
        ),
    ] {
        let r = c.http.get(c.nodes[1].url(query)).send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(
            status == 400 && text.contains(says),
            "{query} → {status} {text}"
        );
    }
}
