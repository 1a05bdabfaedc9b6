//! The dashboard at `/ui` in a real browser: headless Chromium (Debian's,
//! driven by Playwright from `tests/ui`) against a real 3-node cluster.
//! It must list the nodes up, show a killed node down within 10 s and up
//! again after its restart, without a reload, bring a fourth node in from
//! its actions view (preview, then confirm), show that node's transfers
//! progressing and then finished, and log no console error.
//! A screenshot of each view goes to `target/dashboard-shots/`.
//!
//! `.ci/run` installs Playwright (`npm ci` in tests/ui). Without it
//! locally the test says how and passes; under CI it fails.

mod common;

use common::{Cluster, ADMIN_TOKEN};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

struct Browser {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Browser {
    fn open(url: &str) -> Browser {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/ui");
        let mut child = Command::new("node")
            .arg(dir.join("dashboard_check.mjs"))
            .arg(url)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run node");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Browser {
            child,
            stdin,
            lines,
        }
    }

    /// Send one command and wait (with a deadline) for its answer.
    fn ask(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").unwrap();
        let line = self
            .lines
            .recv_timeout(std::time::Duration::from_secs(180))
            .unwrap_or_else(|e| panic!("{cmd}: no answer from the browser: {e}"));
        assert!(line.starts_with("ok "), "{cmd}: {line}");
        eprintln!("{cmd}: {line}");
        line
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn playwright_ready() -> bool {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/ui/node_modules/playwright-core")
        .exists()
        && Command::new("chromium").arg("--version").output().is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_follows_a_failure_a_restart_and_a_join_live() {
    if !playwright_ready() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide Playwright and chromium (.ci/run installs them)"
        );
        eprintln!("skipped: run `npm ci --prefix tests/ui` and install chromium");
        return;
    }
    let mut c = Cluster::start(3, &[]).await;
    c.wait_formed().await;
    let url = format!("http://{}/ui?token={ADMIN_TOKEN}", c.nodes[0].http);
    let mut browser = tokio::task::block_in_place(|| Browser::open(&url));
    let victim = c.node_id(2).await;
    tokio::task::block_in_place(|| browser.ask("nodes-up 3"));

    c.nodes[2].kill9();
    tokio::task::block_in_place(|| browser.ask(&format!("liveness {victim} down 10")));
    c.nodes[2].start();
    tokio::task::block_in_place(|| browser.ask(&format!("liveness {victim} up 20")));

    // Data to move, then a fourth node.
    for i in 0..300 {
        let status = c
            .put(0, &format!("/buckets/photos/keys/k{i}"), vec![7u8; 4096])
            .await;
        assert!(status < 300, "put {i}: {status}");
    }
    // Pulls slowed to 400 KB/s so the page sees them in progress.
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), "handoff_bytes_per_sec = 400000\n").unwrap();
    // Started alone, it is brought in from the actions view.
    let fourth = c.add_alone(&["--config", cfg.path().to_str().unwrap()]);
    let rpc = c.nodes[fourth].rpc.clone();
    c.wait_listening(fourth).await;
    tokio::task::block_in_place(|| browser.ask(&format!("join {rpc}")));
    let seen = tokio::task::block_in_place(|| browser.ask("transfers"));
    assert!(
        !seen.contains("active 0 seen"),
        "no transfer seen in progress: {seen}"
    );

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-shots");
    std::fs::create_dir_all(&shots).unwrap();
    tokio::task::block_in_place(|| browser.ask(&format!("shots {}", shots.display())));
    tokio::task::block_in_place(|| browser.ask("errors"));
}

/// The buckets view's objects and bytes: with three nodes and n_val 3
/// every node holds every partition, so the sample reads them all and the
/// figures are exact; a deleted key does not count. Writes wait for
/// every replica, so the node asked has them all.
#[tokio::test(flavor = "multi_thread")]
async fn the_buckets_view_counts_objects_and_bytes() {
    let c = Cluster::start(3, &[]).await;
    c.wait_formed().await;
    for i in 0..51 {
        let status = c
            .put(
                i % 3,
                &format!("/buckets/sampled/keys/k{i}?w=all"),
                vec![1u8; 100],
            )
            .await;
        assert!(status < 300, "put {i}: {status}");
    }
    let deleted = c
        .http
        .delete(c.nodes[0].url("/buckets/sampled/keys/k50?w=all&rw=all"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{deleted:?}");
    let state = c.get_json(1, "/admin/ui/state").await;
    let bucket = state["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "sampled")
        .unwrap_or_else(|| panic!("no bucket sampled in {}", state["buckets"]));
    let s = &bucket["sample"];
    assert_eq!(s["objects"], 50, "{bucket}");
    assert_eq!(s["bytes"], 5000, "{bucket}");
    assert_eq!(s["read"], s["partitions"], "{bucket}");
    assert_eq!(s["at_least"], false, "{bucket}");
}

/// Where a tool lives, if it is installed.
fn installed(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// The PromQL of every panel of the committed Grafana board, with the
/// board's variables replaced as Grafana would (all nodes, a 5 s window).
fn grafana_queries() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/grafana/ringstore.json");
    let board: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for panel in board["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            out.push(
                expr.replace("$__rate_interval", "5s")
                    .replace("$instance", ".*"),
            );
        }
    }
    out
}

/// Every `ringstore_*` family a query names.
fn families(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("ringstore_"))
        .map(|w| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .fold(w.to_string(), |w, s| {
                    w.strip_suffix(s).map_or(w.clone(), str::to_string)
                })
        })
        .collect()
}

/// `/metrics` passes `promtool check metrics`, and every panel of the
/// Grafana board names families `/metrics` has and is a query a real
/// Prometheus, scraping the cluster, answers; the traffic panels see the
/// key-value and S3 requests made here.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool_and_feed_the_grafana_board() {
    if !installed("promtool") || !installed("prometheus") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide promtool and prometheus (.ci/run installs Debian's prometheus)"
        );
        eprintln!("skipped: install Debian's prometheus package for promtool");
        return;
    }
    let c = Cluster::start(3, &[]).await;
    c.wait_formed().await;
    assert!(c.put(0, "/buckets/m/keys/k", "v").await < 300);
    c.http
        .get(c.nodes[0].url("/buckets/m/keys/k"))
        .send()
        .await
        .unwrap();
    // Unsigned, so refused, but served and counted as an S3 GET.
    c.http
        .get(format!("http://{}/some-bucket/key", c.nodes[0].s3))
        .send()
        .await
        .unwrap();
    let text = c.metrics(0).await;
    assert!(
        text.contains("ringstore_request_duration_seconds_count{op=\"s3_get\"} 1"),
        "{text}"
    );

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&checked.stdout).to_string()
        + &String::from_utf8_lossy(&checked.stderr);
    assert!(
        checked.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );

    let queries = grafana_queries();
    assert!(queries.len() >= 15, "{queries:?}");
    for q in &queries {
        for family in families(q) {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family} (in {q}) is not in /metrics"
            );
        }
    }
    let prometheus =
        Prometheus::scrape(&c.nodes.iter().map(|n| n.http.clone()).collect::<Vec<_>>());
    for q in &queries {
        prometheus.query(&c.http, q).await;
    }
    // Requests keep coming until the first panel (requests per second by
    // operation) draws both kinds above zero.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        c.http
            .get(c.nodes[1].url("/buckets/m/keys/k"))
            .send()
            .await
            .unwrap();
        c.http
            .get(format!("http://{}/some-bucket/key", c.nodes[1].s3))
            .send()
            .await
            .unwrap();
        let by_op = prometheus.query(&c.http, &queries[0]).await;
        let rate = |op: &str| {
            by_op
                .iter()
                .filter(|s| s["metric"]["op"] == op)
                .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
                .sum::<f64>()
        };
        if rate("kv_get") > 0.0 && rate("s3_get") > 0.0 {
            eprintln!("requests per second by op: {by_op:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{by_op:?}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// A real Prometheus scraping the cluster every second, from a temporary
/// directory.
struct Prometheus {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn scrape(targets: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ringstore\n    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", common::free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run prometheus");
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    /// Run `q`; it must be valid PromQL. The result vector.
    async fn query(&self, http: &reqwest::Client, q: &str) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let answer = http
                .get(format!(
                    "http://{}/api/v1/query?query={}",
                    self.addr,
                    encode(q)
                ))
                .send()
                .await;
            if let Ok(resp) = answer {
                let v: serde_json::Value = resp.json().await.unwrap();
                assert_eq!(v["status"], "success", "{q}: {v}");
                return v["data"]["result"].as_array().cloned().unwrap_or_default();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "prometheus did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// `s` as a URL query value: every byte but letters and digits escaped.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
