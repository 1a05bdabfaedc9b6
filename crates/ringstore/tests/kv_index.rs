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

/// Great-circle metres on the sphere the API documents.
fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((b.1 - a.1).to_radians() / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * h.sqrt().min(1.0).asin()
}

/// A geo query's keys through node `via`, every page of `page`.
async fn geo_keys(c: &Cluster, via: usize, params: &str, page: usize) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut cont = String::new();
    loop {
        let url = c.nodes[via].url(&format!(
            "/buckets/places/geo/at_geo?{params}&max_results={page}{cont}"
        ));
        let r = c.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{params}");
        let body: serde_json::Value = r.json().await.unwrap();
        for item in body["results"].as_array().unwrap() {
            let key = item["key"].as_str().unwrap().to_string();
            out.push((key, item["distance_m"].as_f64().unwrap()));
        }
        match body["continuation"].as_str() {
            Some(next) => cont = format!("&continuation={next}"),
            None => return out,
        }
    }
}

#[tokio::test]
async fn geo_queries_match_brute_force_near_poles_and_the_antimeridian() {
    let c = Cluster::start(3, &[]).await;
    // A deterministic spread: a grid over the globe, dense clusters at
    // Berlin, at the antimeridian on the equator, and near the north pole.
    let mut points = Vec::new();
    for i in 0..18 {
        for j in 0..36 {
            points.push((-85.0 + 10.0 * i as f64, -175.0 + 10.0 * j as f64));
        }
    }
    for k in 0..60 {
        let t = k as f64;
        points.push((
            52.52 + (t * 0.37).sin() * 0.05,
            13.40 + (t * 0.53).cos() * 0.08,
        ));
        points.push((
            (t * 0.41).sin() * 0.2,
            if k % 2 == 0 { 179.95 } else { -179.95 } + (t * 0.1).sin() * 0.04,
        ));
        points.push((89.5 + (t * 0.29).sin() * 0.45, -180.0 + 6.0 * t));
    }
    points.push((90.0, 0.0));
    for (i, p) in points.iter().enumerate() {
        let r = c
            .http
            .put(c.nodes[i % 3].url(&format!("/buckets/places/keys/p{i:04}")))
            .header("x-riak-index-at_geo", format!("{},{}", p.0, p.1))
            .body("place")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let radius = |center: (f64, f64), radius_m: f64| {
        let mut want: Vec<(String, f64)> = points
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("p{i:04}"), distance(center, *p)))
            .filter(|(_, d)| *d <= radius_m)
            .collect();
        want.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        want
    };
    for (center, radius_m) in [
        ((52.52, 13.405), 5_000.0),
        ((0.0, 180.0), 30_000.0),
        ((0.1, -179.99), 15_000.0),
        ((89.9, 45.0), 80_000.0),
        ((-60.0, 100.0), 1_500_000.0),
    ] {
        let params = format!("lat={}&lon={}&radius_m={radius_m}", center.0, center.1);
        let got = geo_keys(&c, 1, &params, 7).await;
        let want = radius(center, radius_m);
        assert!(!want.is_empty(), "{params} holds points");
        let keys = |v: &[(String, f64)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        assert_eq!(
            keys(&got),
            keys(&want),
            "{params}: nearest first, all, no other"
        );
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g.1 - w.1).abs() < 0.01,
                "{params}: {} at {} vs {}",
                g.0,
                g.1,
                w.1
            );
        }
    }
    // Boxes, one across the antimeridian.
    for (b, lon_in) in [
        (
            (52.0, 13.0, 53.0, 14.0),
            Box::new(|l: f64| (13.0..=14.0).contains(&l)) as Box<dyn Fn(f64) -> bool>,
        ),
        (
            (-1.0, 179.9, 1.0, -179.9),
            Box::new(|l: f64| l >= 179.9 || l <= -179.9),
        ),
    ] {
        let params = format!("bbox={},{},{},{}", b.0, b.1, b.2, b.3);
        let mut got: Vec<String> = geo_keys(&c, 2, &params, 50)
            .await
            .into_iter()
            .map(|x| x.0)
            .collect();
        got.sort();
        let want: Vec<String> = points
            .iter()
            .enumerate()
            .filter(|(_, p)| (b.0..=b.2).contains(&p.0) && lon_in(p.1))
            .map(|(i, _)| format!("p{i:04}"))
            .collect();
        assert!(!want.is_empty());
        assert_eq!(got, want, "{params}");
    }
    for bad in [
        "lat=91&lon=0&radius_m=5",
        "lat=0&lon=0&radius_m=-1",
        "bbox=1,2,3",
        "lat=0&lon=0",
        "lat=0&lon=0&radius_m=1e300",
        "lat=1e300&lon=0&radius_m=5",
        "lat=0&lon=0&radius_m=NaN",
        "bbox=50,10,40,20",
    ] {
        let url = c.nodes[0].url(&format!("/buckets/places/geo/at_geo?{bad}"));
        let r = c.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let message = r.text().await.unwrap();
        // A message that says what is wrong, short whatever the input.
        assert!((10..200).contains(&message.len()), "{bad}: {message}");
    }
}
