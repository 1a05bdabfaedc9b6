//! What browsers get from ringstore's S3: unsigned reads of what bucket
//! owners made public, CORS, and the website endpoint, driven by boto3,
//! awscli and plain HTTP (tests/python/s3_web_check.py), and one page
//! loaded by a real browser (Debian's headless Chromium).

mod common;

use common::s3py::{client_or_skip, run_script};
use common::{wait_until, Cluster};
use std::process::Command;
use std::time::Duration;

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

/// Node `i`'s count of website reads its own replica answered, and of
/// those that needed a quorum read (`nearby_reads_*` in /metrics).
async fn nearby_counts(c: &Cluster, i: usize) -> (u64, u64) {
    let text = c.metrics(i).await;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing from node {i}'s metrics"))
    };
    (
        value("ringstore_nearby_reads_local ") as u64,
        value("ringstore_nearby_reads_quorum ") as u64,
    )
}

/// Every `near/kI` through node `i`'s website endpoint has body
/// "VERSION-I" (`Err` with the first that does not).
async fn website_holds(c: &Cluster, i: usize, version: &str, keys: usize) -> Result<(), String> {
    let http = reqwest::Client::new();
    for k in 0..keys {
        let url = format!("http://{}/k{k}", c.nodes[i].web);
        let r = http
            .get(&url)
            .header("Host", "near.web.localhost")
            .send()
            .await
            .map_err(|e| format!("k{k}: {e}"))?;
        let status = r.status();
        let body = r.text().await.map_err(|e| format!("k{k}: {e}"))?;
        if status != 200 || body != format!("{version}-{k}") {
            return Err(format!("k{k}: {status} {body:?}, want {version}-{k}"));
        }
    }
    Ok(())
}

/// Wait until node 2 serves `version` of every key and has answered
/// reads from its own replica.
async fn wait_local_reads(c: &Cluster, version: &str) {
    let what = format!("node 2 reads {version} from its own replica");
    wait_until(&what, Duration::from_secs(30), || async {
        website_holds(c, 2, version, 20).await.is_ok() && nearby_counts(c, 2).await.0 > 0
    })
    .await;
}

/// The website endpoint answers from one replica only once the node can
/// vouch for it: a node restarted after missing overwrites (kill -9, then
/// writes with it down) serves the new values at once, through quorum
/// reads, and returns to local reads after its quiet period.
#[tokio::test]
async fn website_reads_use_one_replica_only_when_it_holds_every_write() {
    let Some(python) = client_or_skip() else {
        return;
    };
    let toml = "web_read_quiet_ms = 3000\nweb_read_repair_every = 4\n";
    let mut c = Cluster::start_configured(3, toml, &[]).await;
    let owner = c.s3_key().await;
    let put = |version: &str, c: &Cluster| {
        let env = vec![
            ("NEARBY_VERSION".to_string(), version.to_string()),
            ("NEARBY_KEYS".to_string(), "20".to_string()),
        ];
        let args = vec![
            "nearby_put".into(),
            c.nodes[0].s3.clone(),
            c.nodes[2].web.clone(),
        ];
        run_script(&python, SCRIPT, &owner, args, env)
    };
    put("v1", &c).await;
    wait_local_reads(&c, "v1").await;

    c.nodes[2].kill9();
    put("v2", &c).await;
    c.nodes[2].start();
    c.wait_listening(2).await;
    // Within its quiet period the restarted node reads with a quorum,
    // so the overwrites it missed are served at once.
    let served = website_holds(&c, 2, "v2", 20).await;
    let (local, quorum) = nearby_counts(&c, 2).await;
    assert_eq!(served, Ok(()), "a restarted node served a stale object");
    assert!(local == 0 && quorum >= 20, "local {local}, quorum {quorum}");
    wait_local_reads(&c, "v2").await;
    // A key written a moment ago is found, local reads or not.
    let args = vec![
        "nearby_new".into(),
        c.nodes[0].s3.clone(),
        c.nodes[2].web.clone(),
    ];
    let out = run_script(&python, SCRIPT, &owner, args, vec![]).await;
    assert!(out.contains("ok"), "{out}");
}
