//! Optional key-value authentication (`kv_auth`): users made with
//! `ringstore user create`, HTTP basic credentials, grants per bucket type
//! and bucket, and no credentials over plain HTTP unless allowed.

mod common;

use common::{wait_until, Cluster, ADMIN_TOKEN};
use std::process::Command;
use std::time::Duration;

/// `ringstore user ARGS --node NODE --json`, as an operator runs it.
fn user_cli(node: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ringstore"))
        .arg("user")
        .args(args)
        .args(["--node", node, "--json"])
        .env("RINGSTORE_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "ringstore user {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn status(req: reqwest::RequestBuilder) -> (u16, String) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn users_with_grants_are_the_only_way_in() {
    let c =
        Cluster::start_configured(3, "kv_auth = true\nkv_auth_allow_plaintext = true\n", &[]).await;
    let created = user_cli(
        &c.nodes[0].http,
        &[
            "create",
            "app",
            "--write",
            "default/photos",
            "--read",
            "default/shared",
        ],
    );
    let password = created["password"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let url = |i: usize, path: &str| c.nodes[i].url(path);

    // No credentials, or wrong ones: 401, saying how.
    let (s, body) = status(http.put(url(0, "/buckets/photos/keys/k")).body("v")).await;
    assert_eq!(s, 401, "{body}");
    assert!(body.contains("ringstore user create"), "{body}");
    let (s, _) = status(
        http.put(url(0, "/buckets/photos/keys/k"))
            .basic_auth("app", Some("nope"))
            .body("v"),
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = status(
        http.put(url(0, "/buckets/photos/keys/k"))
            .basic_auth("ghost", Some(&password))
            .body("v"),
    )
    .await;
    assert_eq!(s, 401);

    // The right user: what its grants cover, on any node.
    let as_app = |r: reqwest::RequestBuilder| r.basic_auth("app", Some(password.clone()));
    let (s, body) = status(as_app(http.put(url(0, "/buckets/photos/keys/k"))).body("thumb")).await;
    assert_eq!(s, 204, "{body}");
    let (s, body) = status(as_app(http.get(url(2, "/buckets/photos/keys/k")))).await;
    assert_eq!((s, body.as_str()), (200, "thumb"));
    let (s, _) = status(as_app(http.get(url(1, "/buckets/shared/keys/none")))).await;
    assert_eq!(s, 404, "reading a granted bucket");
    for (what, req) in [
        (
            "write to a read-only bucket",
            as_app(http.put(url(1, "/buckets/shared/keys/k"))).body("x"),
        ),
        (
            "read another bucket",
            as_app(http.get(url(1, "/buckets/other/keys/k"))),
        ),
        (
            "list buckets without a * grant",
            as_app(http.get(url(1, "/buckets?buckets=true"))),
        ),
        (
            "another bucket type",
            as_app(http.get(url(1, "/types/maps/buckets/photos/keys/k"))),
        ),
    ] {
        let (s, body) = status(req).await;
        assert_eq!(s, 403, "{what}: {body}");
        assert!(body.contains("user app may not"), "{what}: {body}");
    }
    // curl, as a user would.
    let out = Command::new("curl")
        .args([
            "-s",
            "-u",
            &format!("app:{password}"),
            &url(1, "/buckets/photos/keys/k"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "thumb");
    // Open paths stay open.
    assert_eq!(status(http.get(url(0, "/ping"))).await.0, 200);

    // A deleted user is refused everywhere within the cache's lifetime.
    let listed = user_cli(&c.nodes[1].http, &["list"]);
    assert_eq!(listed["users"][0]["name"], "app");
    user_cli(&c.nodes[1].http, &["delete", "app"]);
    for i in 0..3 {
        wait_until(
            &format!("node {i} refuses the deleted user"),
            Duration::from_secs(10),
            || {
                let req = as_app(http.get(url(i, "/buckets/photos/keys/k")));
                async move { status(req).await.0 == 401 }
            },
        )
        .await;
    }
}

#[tokio::test]
async fn credentials_over_plain_http_are_refused_unless_allowed() {
    let c = Cluster::start_configured(1, "kv_auth = true\n", &[]).await;
    let created = user_cli(&c.nodes[0].http, &["create", "app", "--write", "*/*"]);
    let password = created["password"].as_str().unwrap();
    let http = reqwest::Client::new();
    let (s, body) = status(
        http.put(c.nodes[0].url("/buckets/b/keys/k"))
            .basic_auth("app", Some(password))
            .body("v"),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body.contains("tls_cert") && body.contains("kv_auth_allow_plaintext"),
        "{body}"
    );
    assert_eq!(status(http.get(c.nodes[0].url("/ping"))).await.0, 200);
}
