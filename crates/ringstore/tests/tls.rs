//! Client-facing TLS, with real clients verifying the certificate:
//! `ringstore dev --tls` makes a throwaway CA, and curl, boto3 and awscli
//! trust it (and only it); the commands the dev cluster prints work as
//! printed.

mod common;

use common::{free_port, s3py, wait_until};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A `ringstore dev --tls` process and what it printed.
struct Dev {
    child: Child,
    dir: tempfile::TempDir,
    /// The lines under "try it:".
    commands: Vec<String>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_dev() -> Dev {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringstore"))
        .args(["dev", "--tls", "--nodes", "3"])
        .args(["--base-port", &free_port().to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut commands = Vec::new();
        let mut in_try = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("Ctrl-C") {
                let _ = tx.send(commands);
                return;
            }
            if in_try {
                commands.push(line.trim().to_string());
            }
            in_try |= line == "try it:";
        }
    });
    let commands = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the dev cluster did not finish starting");
    Dev {
        child,
        dir,
        commands,
    }
}

fn cluster_json(dev: &Dev) -> serde_json::Value {
    let text = std::fs::read_to_string(dev.dir.path().join("cluster.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl")
}

fn venv_path() -> String {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin");
    format!(
        "{}:{}",
        venv.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// One dev cluster for both checks: `ringstore dev` takes nine ports
/// from its base, and two at once could collide.
#[tokio::test]
async fn dev_tls_serves_real_clients_that_verify_it() {
    let Some(python) = s3py::client_or_skip() else {
        return;
    };
    let dev = start_dev();
    the_printed_commands_work_as_printed(&dev).await;
    curl_boto3_and_awscli_verify_the_certificate(&dev, python).await;
}

async fn curl_boto3_and_awscli_verify_the_certificate(dev: &Dev, python: PathBuf) {
    let v = cluster_json(dev);
    let ca = v["ca_cert"].as_str().expect("cluster.json names ca_cert");
    assert!(Path::new(ca).exists(), "{ca}");
    let http = v["nodes"][1]["http"].as_str().unwrap();
    let s3 = v["nodes"][2]["s3"].as_str().unwrap();

    // curl, trusting the dev CA: key-value and admin over HTTPS.
    let url = format!("https://{http}/buckets/tls/keys/k");
    let put = curl(&[
        "--cacert",
        ca,
        "-X",
        "PUT",
        "-d",
        "over-tls",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    assert_eq!(String::from_utf8_lossy(&put.stdout), "204", "{put:?}");
    let got = curl(&["--cacert", ca, &url]);
    assert_eq!(String::from_utf8_lossy(&got.stdout), "over-tls");
    let token = format!(
        "Authorization: Bearer {}",
        v["admin_token"].as_str().unwrap()
    );
    let admin = curl(&[
        "--cacert",
        ca,
        "-H",
        &token,
        &format!("https://{http}/admin/cluster"),
    ]);
    let admin: serde_json::Value = serde_json::from_slice(&admin.stdout).unwrap();
    assert_eq!(admin["nodes"].as_array().unwrap().len(), 3);

    // Without the CA the certificate does not verify (curl exit 60), and
    // plain HTTP to a TLS listener gets no answer.
    assert_eq!(curl(&[&url]).status.code(), Some(60));
    let plain = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{http}/ping"),
    ]);
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");

    // boto3 with verify=CA, then awscli with --ca-bundle.
    let key = (
        v["s3_access_key_id"].as_str().unwrap().to_string(),
        v["s3_secret_access_key"].as_str().unwrap().to_string(),
    );
    let script = format!(
        "import boto3\n\
         s3 = boto3.client('s3', endpoint_url='https://{s3}', verify='{ca}', region_name='us-east-1')\n\
         s3.create_bucket(Bucket='tls')\n\
         s3.put_object(Bucket='tls', Key='thumb.jpg', Body=b'jpeg-bytes')\n\
         assert s3.get_object(Bucket='tls', Key='thumb.jpg')['Body'].read() == b'jpeg-bytes'\n\
         print('boto3 ok')\n"
    );
    let (py, k) = (python.clone(), key.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py)
            .args(["-c", &script])
            .env("AWS_ACCESS_KEY_ID", &k.0)
            .env("AWS_SECRET_ACCESS_KEY", &k.1)
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "boto3: {out:?}");
    let (ca2, s3_url) = (ca.to_string(), format!("https://{s3}"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args([
                "-m",
                "awscli",
                "--endpoint-url",
                &s3_url,
                "--ca-bundle",
                &ca2,
            ])
            .args(["s3", "ls", "s3://tls"])
            .env("AWS_ACCESS_KEY_ID", &key.0)
            .env("AWS_SECRET_ACCESS_KEY", &key.1)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "awscli: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("thumb.jpg"));
}

async fn the_printed_commands_work_as_printed(dev: &Dev) {
    assert!(
        dev.commands.iter().any(|c| c.contains("--cacert")),
        "{:?}",
        dev.commands
    );
    let script = format!("set -euo pipefail\n{}\n", dev.commands.join("\n"));
    let path = venv_path();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-c", &script])
            .env("PATH", path)
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("hello"), "{stdout}");
    assert!(stdout.contains("hello.txt"), "{stdout}");
    // The cluster still answers after the demo.
    let v = cluster_json(dev);
    let ca = v["ca_cert"].as_str().unwrap().to_string();
    let url = format!("https://{}/ping", v["nodes"][0]["http"].as_str().unwrap());
    wait_until(
        "the node answers /ping over TLS",
        Duration::from_secs(10),
        || {
            let out = curl(&["--cacert", &ca, &url]);
            async move { out.status.success() }
        },
    )
    .await;
}
