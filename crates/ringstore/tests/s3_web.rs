//! What browsers get from ringstore's S3: unsigned reads of what bucket
//! owners made public, CORS, and the website endpoint, driven by boto3,
//! awscli and plain HTTP (tests/python/s3_web_check.py), and one page
//! loaded by a real browser (Debian's headless Chromium).

mod common;

use common::s3py::{client_or_skip, run_script};
use common::Cluster;
use std::process::Command;

const SCRIPT: &str = "s3_web_check.py";

#[tokio::test]
async fn public_access_cors_and_the_website_endpoint_with_boto3_and_awscli() {
    let Some(python) = client_or_skip() else {
        return;
    };
    let c = Cluster::start(3, &[]).await;
    let owner = c.s3_key().await;
    let other = c.s3_key().await;
    let env = vec![
        ("OTHER_KEY_ID".to_string(), other.0.clone()),
        ("OTHER_SECRET".to_string(), other.1.clone()),
    ];
    // Settings are written through node 0 and read through node 2's S3
    // and website endpoints: they hold cluster-wide, not on one node.
    for phase in ["public", "cors", "website"] {
        let args = vec![
            phase.to_string(),
            c.nodes[0].s3.clone(),
            c.nodes[2].web.clone(),
            c.nodes[1].s3.clone(),
        ];
        let out = run_script(&python, SCRIPT, &owner, args, env.clone()).await;
        assert!(out.contains("ok"), "{phase}: {out}");
    }
}

/// Debian's Chromium, or `None` outside CI (where .ci/run installs it).
fn chromium_or_skip() -> Option<&'static str> {
    let found = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide chromium (.ci/run installs it)"
        );
        eprintln!("skipped: no chromium; run `bash .ci/run` once to install it");
    }
    found.then_some("chromium")
}

#[tokio::test]
async fn a_browser_shows_public_thumbnails_and_fetches_cross_origin() {
    let (Some(python), Some(chromium)) = (client_or_skip(), chromium_or_skip()) else {
        return;
    };
    let c = Cluster::start(3, &[]).await;
    let owner = c.s3_key().await;
    let args = vec!["page".into(), c.nodes[0].s3.clone(), c.nodes[1].web.clone()];
    let out = run_script(&python, SCRIPT, &owner, args, vec![]).await;
    let url = out.trim().to_string();
    assert!(url.starts_with("http://www.web.localhost:"), "{out}");
    // The page waits for its images and its fetch, then writes what it
    // saw into #result; --dump-dom prints the DOM once the page is idle.
    let dom = tokio::task::spawn_blocking(move || {
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=20000",
                "--dump-dom",
                &url,
            ])
            .output()
    })
    .await
    .unwrap()
    .expect("run chromium");
    let dom = String::from_utf8_lossy(&dom.stdout);
    // Three images with their natural widths (a broken image has 0), and
    // the JSON object read cross-origin from the S3 endpoint.
    assert!(
        dom.contains("widths=64,120,32 cors=count=3"),
        "the page did not show the thumbnails or the CORS fetch failed:\n{dom}"
    );
}
