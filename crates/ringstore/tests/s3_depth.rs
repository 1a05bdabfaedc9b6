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
    for phase in ["versioning", "lock", "tagging", "post"] {
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
