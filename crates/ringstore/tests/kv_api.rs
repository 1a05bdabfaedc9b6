//! Every row of the key-value API and the admin endpoints, and bad input:
//! each malformed request gets a 4xx with a message, and the node serves on.

mod common;

use common::Cluster;
use serde_json::Value;

async fn json(r: reqwest::Response) -> Value {
    r.json().await.expect("JSON body")
}

#[tokio::test]
async fn discovery_ping_stats_health_metrics() {
    let c = Cluster::start(1, &[]).await;
    let n = &c.nodes[0];
    let r = c
        .http
        .get(n.url("/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let v = json(r).await;
    assert_eq!(v["riak_kv_wm_buckets"], "/buckets");
    assert_eq!(v["riak_kv_wm_ping"], "/ping");
    assert_eq!(
        c.http
            .get(n.url("/ping"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "OK"
    );
    let stats = json(c.http.get(n.url("/stats")).send().await.unwrap()).await;
    assert!(stats["riak_kv_version"].is_string());
    assert_eq!(stats["ring_members"].as_array().unwrap().len(), 1);
    assert!(stats["connected_nodes"].is_array());
    assert_eq!(
        c.http
            .get(n.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.http
            .get(n.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    c.http
        .put(n.url("/buckets/m/keys/k"))
        .body("v")
        .send()
        .await
        .unwrap();
    c.http.get(n.url("/buckets/m/keys/k")).send().await.unwrap();
    let metrics = c
        .http
        .get(n.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ringstore_http_requests_total{op=\"put\",status=\"2xx\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ringstore_http_request_duration_seconds_bucket{le="),
        "{metrics}"
    );
    assert!(
        metrics.contains("ringstore_under_replicated_partitions 256"),
        "{metrics}"
    );
    let stats = json(c.http.get(n.url("/stats")).send().await.unwrap()).await;
    assert_eq!(stats["node_puts"], 1);
    assert!(stats["node_get_fsm_time_99"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn store_fetch_headers_returnbody_post_and_if_none_match() {
    let c = Cluster::start(1, &[]).await;
    let n = &c.nodes[0];
    let r = c
        .http
        .put(n.url("/buckets/a/keys/k%20one?returnbody=true"))
        .header("content-type", "application/json")
        .header("x-riak-meta-color", "blue")
        .header("x-riak-index-age_int", "42")
        .body("{\"x\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-riak-meta-color"], "blue");
    assert_eq!(r.text().await.unwrap(), "{\"x\":1}");
    // `+` decodes to a space, as with Riak and quote_plus clients.
    let r = c
        .http
        .get(n.url("/buckets/a/keys/k+one"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["x-riak-index-age_int"], "42");
    assert!(r.headers().contains_key("etag") && r.headers().contains_key("last-modified"));
    // A reserved index name (the store's reference terms) is refused.
    let r = c
        .http
        .put(n.url("/buckets/a/keys/forged"))
        .header("x-riak-index-$ref", "_s3b/blocks/00")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("reserved"));
    let r = c
        .http
        .put(n.url("/buckets/a/keys/k%20one"))
        .header("if-none-match", "*")
        .body("again")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = c
        .http
        .post(n.url("/buckets/a/keys"))
        .body("new")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/buckets/a/keys/"), "{location}");
    let r = c.http.get(n.url(&location)).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "new");
    // Bucket types are separate namespaces.
    let r = c
        .http
        .get(n.url("/types/other/buckets/a/keys/k%20one"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    c.http
        .put(n.url("/types/other/buckets/a/keys/t"))
        .body("typed")
        .send()
        .await
        .unwrap();
    let r = c
        .http
        .get(n.url("/types/other/buckets/a/keys/t"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "typed");
    let r = c
        .http
        .get(n.url("/admin/replica/buckets/a/keys/k%20one"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .http
        .get(n.url("/admin/replica/buckets/a/keys/absent"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn props_and_listing() {
    let c = Cluster::start(1, &[]).await;
    let n = &c.nodes[0];
    let props = json(c.http.get(n.url("/buckets/p/props")).send().await.unwrap()).await;
    assert_eq!(props["props"]["n_val"], 3);
    assert_eq!(props["props"]["allow_mult"], true);
    let r = c
        .http
        .put(n.url("/buckets/p/props"))
        .header("content-type", "application/json")
        .body(r#"{"props":{"n_val":1,"allow_mult":false,"r":"one"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let props = json(c.http.get(n.url("/buckets/p/props")).send().await.unwrap()).await;
    assert_eq!(
        (
            props["props"]["n_val"].clone(),
            props["props"]["allow_mult"].clone(),
            props["props"]["r"].clone()
        ),
        (1.into(), false.into(), "one".into())
    );
    // allow_mult=false: blind writes do not make siblings.
    for v in ["1", "2"] {
        c.http
            .put(n.url("/buckets/p/keys/k"))
            .body(v)
            .send()
            .await
            .unwrap();
    }
    let r = c.http.get(n.url("/buckets/p/keys/k")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "2".to_string())
    );
    // A quorum above n_val is a 400.
    let r = c
        .http
        .get(n.url("/buckets/p/keys/k?r=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("n_val=1"));
    assert_eq!(
        c.http
            .delete(n.url("/buckets/p/props"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let props = json(c.http.get(n.url("/buckets/p/props")).send().await.unwrap()).await;
    assert_eq!(props["props"]["n_val"], 3);
    for i in 0..50 {
        c.http
            .put(n.url(&format!("/buckets/list/keys/k{i}")))
            .body("x")
            .send()
            .await
            .unwrap();
    }
    c.http
        .delete(n.url("/buckets/list/keys/k0"))
        .send()
        .await
        .unwrap();
    let keys = json(
        c.http
            .get(n.url("/buckets/list/keys?keys=true"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut keys: Vec<String> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    keys.sort();
    assert_eq!(keys.len(), 49);
    assert!(!keys.contains(&"k0".to_string()));
    let streamed = c
        .http
        .get(n.url("/buckets/list/keys?keys=stream"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count: usize = serde_json::Deserializer::from_str(&streamed)
        .into_iter::<Value>()
        .map(|v| v.unwrap()["keys"].as_array().unwrap().len())
        .sum();
    assert_eq!(count, 49);
    let buckets = json(
        c.http
            .get(n.url("/buckets?buckets=true"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let names: Vec<&str> = buckets["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains(&"list") && names.contains(&"p"), "{names:?}");
}

#[tokio::test]
async fn malformed_requests_get_4xx_and_lose_nothing() {
    let c = Cluster::start_configured(1, "value_bytes_max = 1048576\n", &[]).await;
    let n = &c.nodes[0];
    c.http
        .put(n.url("/buckets/safe/keys/k"))
        .body("kept")
        .send()
        .await
        .unwrap();
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            c.http
                .put(n.url("/buckets/b/keys/k"))
                .header("x-riak-vclock", "not base64!!")
                .body("x"),
            400,
            "X-Riak-Vclock",
        ),
        (
            c.http
                .put(n.url("/buckets/b/keys/k"))
                .header("x-riak-vclock", "AQID")
                .body("x"),
            400,
            "causal context",
        ),
        (
            c.http.get(n.url("/buckets/b/keys/k?r=lots")),
            400,
            "quorum value",
        ),
        (c.http.get(n.url("/buckets/b/keys/k?r=9")), 400, "n_val"),
        (
            c.http
                .put(n.url("/buckets/b/keys/k?returnbody=maybe"))
                .body("x"),
            400,
            "true or false",
        ),
        (
            c.http.get(n.url("/buckets/b/keys/bad%zzescape")),
            400,
            "%-escape",
        ),
        (
            c.http
                .get(n.url(&format!("/buckets/b/keys/{}", "k".repeat(20_000)))),
            400,
            "limit",
        ),
        (
            c.http.put(n.url("/buckets/b/props")).body("{not json"),
            400,
            "JSON",
        ),
        (
            c.http
                .put(n.url("/buckets/b/props"))
                .body(r#"{"props":{"n_val":"three"}}"#),
            400,
            "n_val",
        ),
        (
            c.http
                .put(n.url("/buckets/b/props"))
                .body(r#"{"props":{"n_val":9}}"#),
            400,
            "n_val",
        ),
        (c.http.get(n.url("/buckets/b/keys")), 400, "keys=true"),
        (
            c.http.post(n.url("/admin/cluster/join")).body("{}"),
            400,
            "seed",
        ),
        (
            c.http
                .post(n.url("/admin/cluster/join"))
                .body(r#"{"seed": "nonsense"}"#),
            400,
            "not host:rpc_port",
        ),
        (
            c.http.get(n.url("/buckets/b/nothing/k")),
            404,
            "no such path",
        ),
        (c.http.get(n.url("/admin/ui/plan")), 400, "a plan takes"),
        (
            c.http.get(n.url("/admin/ui/plan?action=leave&node=1")),
            400,
            "not a member",
        ),
        (
            c.http.patch(n.url("/buckets/b/keys/k")),
            405,
            "PATCH is not served",
        ),
    ];
    for (req, status, needle) in cases {
        let r = req.send().await.unwrap();
        let got = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!(got, status, "body: {body}");
        assert!(body.contains(needle), "expected {needle:?} in {body:?}");
    }
    let big = vec![b'x'; 1024 * 1024 + 10];
    let r = c
        .http
        .put(n.url("/buckets/b/keys/big"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("value_bytes_max"));
    let r = c
        .http
        .get(n.url("/buckets/safe/keys/k"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "kept");
}

#[tokio::test]
async fn admin_cluster_and_layout() {
    let c = Cluster::start(2, &[]).await;
    let v = json(
        c.http
            .get(c.nodes[0].url("/admin/cluster"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["layout_version"], 2);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(v["under_replicated_partitions"], 256);
    let node = &v["nodes"][0];
    for field in [
        "id",
        "http",
        "s3",
        "rpc",
        "zone",
        "capacity",
        "state",
        "liveness",
        "partitions",
        "hints_pending",
    ] {
        assert!(!node[field].is_null(), "missing {field} in {node}");
    }
    let layout = json(
        c.http
            .get(c.nodes[1].url("/admin/layout"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(layout["version"], 2);
    let parts = layout["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 256);
    assert_eq!(parts[0]["owners"].as_array().unwrap().len(), 2);
    assert_eq!(parts[0]["owners"][0]["ready"], true);
}

/// The admin API answers only with the admin token; health, ping, stats
/// and (by default) metrics stay open.
#[tokio::test]
async fn the_admin_api_needs_the_admin_token() {
    let c = Cluster::start_configured(2, "metrics_require_token = true\n", &[]).await;
    let anonymous = reqwest::Client::new();
    let n = &c.nodes[0];
    for path in ["/admin/cluster", "/admin/keys", "/admin/layout", "/metrics"] {
        let r = anonymous.get(n.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert!(r.headers().contains_key("www-authenticate"));
        let why = r.text().await.unwrap();
        assert!(why.contains("Authorization: Bearer"), "{why}");
        let r = anonymous
            .get(n.url(path))
            .bearer_auth("test-admin-token-0124")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "a wrong token on {path}");
        assert!(r.text().await.unwrap().contains("wrong"));
        let r = c.http.get(n.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "the right token on {path}");
    }
    // Nothing changes without the token.
    let r = anonymous
        .post(n.url("/admin/keys"))
        .json(&serde_json::json!({ "name": "intruder" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let keys = json(c.http.get(n.url("/admin/keys")).send().await.unwrap()).await;
    assert!(!keys.to_string().contains("intruder"), "{keys}");
    for path in ["/ping", "/health/live", "/health/ready", "/stats"] {
        let r = anonymous.get(n.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} stays open");
    }
    // The CLI finds the token in the environment.
    let cli = |token: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ringstore"));
        cmd.args(["cluster", "status", "--node", &n.http])
            .args(["--cluster-file", "/nonexistent/cluster.json"])
            .env_remove("RINGSTORE_ADMIN_TOKEN");
        if let Some(t) = token {
            cmd.env("RINGSTORE_ADMIN_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    assert!(cli(Some(common::ADMIN_TOKEN)).status.success());
    let refused = cli(None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Bearer"),
        "{refused:?}"
    );
}
