//! S3 beyond the basics with boto3 and awscli against three nodes:
//! versioning (overwrites keep versions, deletes leave markers), object
//! lock refusing deletes, tags, browser form uploads and lifecycle rules
//! (tests/python/s3_depth_check.py).

mod common;

use common::s3py::{client_or_skip, run_script};
use common::Cluster;

#[tokio::test]
async fn versioning_object_lock_tagging_and_form_uploads_with_boto3_and_awscli() {
    let Some(python) = client_or_skip() else {
        return;
    };
    let c = Cluster::start(3, &[]).await;
    let owner = c.s3_key().await;
    // Writes through node 0, reads through node 2: what a versioned
    // write or a lock leaves holds cluster-wide.
    for phase in ["versioning", "lock", "tagging", "post", "metadata"] {
        let args = vec![
            phase.to_string(),
            c.nodes[0].s3.clone(),
            c.nodes[2].s3.clone(),
        ];
        let out = run_script(&python, "s3_depth_check.py", &owner, args, vec![]).await;
        assert!(out.contains("ok"), "{phase}: {out}");
    }
}

/// A lifecycle "day" of one second (`lab_lifecycle_day_ms`, as Ceph's
/// `rgw_lc_debug_interval`) and a sweep every 200 ms: the rules' effects
/// show within seconds.
const SHORT_DAYS: &str = "lab_lifecycle_day_ms = 1000\ns3_lifecycle_interval_ms = 200\n";

#[tokio::test]
async fn lifecycle_rules_expire_versions_markers_and_uploads() {
    let Some(python) = client_or_skip() else {
        return;
    };
    let c = Cluster::start_configured(3, SHORT_DAYS, &[]).await;
    let owner = c.s3_key().await;
    let args = vec![
        "lifecycle".to_string(),
        c.nodes[0].s3.clone(),
        c.nodes[2].s3.clone(),
    ];
    let out = run_script(&python, "s3_depth_check.py", &owner, args, vec![]).await;
    assert!(out.contains("ok"), "lifecycle: {out}");
}

/// curl signing with SigV4, streaming `body` from a pipe (so it sends
/// `Transfer-Encoding: chunked` and no length); the status and body.
fn curl_s3(key: &(String, String), args: &[&str], body: Option<Vec<u8>>) -> (u16, Vec<u8>) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let user = format!("{}:{}", key.0, key.1);
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &user])
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if body.is_some() {
        cmd.args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-T", "-"]);
    } else {
        // SHA-256 of the empty body.
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        cmd.args(["-H", &format!("x-amz-content-sha256: {empty}")]);
    }
    let mut child = cmd.spawn().expect("run curl");
    let mut stdin = child.stdin.take().expect("curl's stdin");
    let feeder = std::thread::spawn(move || {
        // curl may stop reading once the server has answered 413.
        let _ = stdin.write_all(&body.unwrap_or_default());
    });
    let out = child.wait_with_output().expect("wait for curl");
    feeder.join().expect("feed curl");
    let split = out
        .stdout
        .iter()
        .rposition(|b| *b == b'\n')
        .expect("curl's status line");
    let status = String::from_utf8_lossy(&out.stdout[split + 1..])
        .parse()
        .expect("a status");
    (status, out.stdout[..split].to_vec())
}

/// A PUT streamed without a length (chunked transfer encoding, as from a
/// pipe) is stored whole up to 16 MiB, and refused past it with a 413
/// that says to send Content-Length.
#[tokio::test]
async fn a_put_without_a_length_is_stored_or_refused_with_413() {
    let c = Cluster::start(3, &[]).await;
    let key = c.s3_key().await;
    let s3 = c.nodes[0].s3.clone();
    let blocking = tokio::task::spawn_blocking(move || {
        let url = |p: &str| format!("http://{s3}{p}");
        assert_eq!(curl_s3(&key, &["-X", "PUT", &url("/piped")], None).0, 200);
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (st, msg) = curl_s3(&key, &[&url("/piped/obj")], Some(body.clone()));
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&msg));
        let (st, got) = curl_s3(&key, &[&url("/piped/obj")], None);
        assert!(
            st == 200 && got == body,
            "read back {st}, {} bytes",
            got.len()
        );
        let big = vec![0u8; 17 << 20];
        let (st, msg) = curl_s3(&key, &[&url("/piped/big")], Some(big));
        let msg = String::from_utf8_lossy(&msg);
        assert!(st == 413 && msg.contains("Content-Length"), "{st} {msg}");
        assert_eq!(curl_s3(&key, &[&url("/piped/big")], None).0, 404);
    });
    blocking.await.expect("the curl checks");
}
