//! The real Riak Python client (riak 2.7.0) against a 3-node cluster.
//!
//! `.ci/run` installs the client in `.venv`. Locally without it the test
//! says how to get it and passes; under CI (`CI` set) a missing client is a
//! failure, so CI cannot silently skip it.

mod common;

use common::Cluster;
use std::path::PathBuf;
use std::process::Command;

fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("RINGSTORE_RIAK_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    venv.exists().then_some(venv)
}

#[tokio::test]
async fn riak_python_client_ping_store_fetch_siblings_resolve_delete() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide the Riak Python client (.ci/run installs it in .venv)"
        );
        eprintln!("skipped: no .venv with the riak client; run `bash .ci/run` once to create it");
        return;
    };
    let c = Cluster::start(3, &[]).await;
    let (host, port) = c.nodes[1].http.rsplit_once(':').unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/riak_client_check.py");
    let out = tokio::task::spawn_blocking({
        let (python, host, port) = (python.clone(), host.to_string(), port.to_string());
        move || {
            Command::new(python)
                .arg(script)
                .arg(host)
                .arg(port)
                .output()
        }
    })
    .await
    .unwrap()
    .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "riak client check failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok"), "{stdout}");
}
