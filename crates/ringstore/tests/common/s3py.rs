//! Real S3 clients from Python: boto3 and awscli, installed in `.venv` by
//! `.ci/run`, driving tests/python/s3_check.py.

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let python = std::env::var("RINGSTORE_RIAK_PYTHON").map_or(venv, PathBuf::from);
    let has_boto3 = Command::new(&python)
        .args(["-c", "import boto3, awscli"])
        .output()
        .is_ok_and(|o| o.status.success());
    has_boto3.then_some(python)
}

/// Run one phase of s3_check.py with `key`'s credentials and return its
/// stdout; panics with its output if it fails.
pub async fn run(python: &Path, key: &(String, String), args: Vec<String>) -> String {
    run_script(python, "s3_check.py", key, args, vec![]).await
}

/// Run one phase of tests/python/`script` with `key`'s credentials and
/// `env`, and return its stdout; panics with its output if it fails.
pub async fn run_script(
    python: &Path,
    script: &str,
    key: &(String, String),
    args: Vec<String>,
    env: Vec<(String, String)>,
) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python")
        .join(script);
    let (python, key) = (python.to_path_buf(), key.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(&args)
            .env("AWS_ACCESS_KEY_ID", &key.0)
            .env("AWS_SECRET_ACCESS_KEY", &key.1)
            .envs(env)
            .env_remove("AWS_CA_BUNDLE")
            .output()
    })
    .await
    .unwrap()
    .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "S3 check failed:\n{stdout}\n{stderr}");
    stdout
}

/// The Python with boto3 and awscli, or `None` (outside CI only: CI
/// must have them) to skip.
pub fn client_or_skip() -> Option<PathBuf> {
    let p = python();
    if p.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide boto3 and awscli (.ci/run installs them in .venv)"
        );
        eprintln!("skipped: no .venv with boto3 and awscli; run `bash .ci/run` once to create it");
    }
    p
}
