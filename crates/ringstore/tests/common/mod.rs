//! A harness for tests that run real `ringstore server` processes on
//! 127.0.0.1: free ports, temporary data directories, kill -9 and restart,
//! and waits on conditions with deadlines (never bare sleeps).

#![allow(dead_code)]

pub mod netns;

/// The admin token every test server is started with; [`Cluster::http`]
/// sends it.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123";

/// An HTTP client that sends [`ADMIN_TOKEN`] on every request.
pub fn admin_http() -> reqwest::Client {
    admin_http_builder().build().unwrap()
}

/// A builder of [`admin_http`] clients, to set more.
pub fn admin_http_builder() -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&bearer).unwrap(),
    );
    reqwest::Client::builder().default_headers(headers)
}
pub mod s3py;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port no other test of this process was given, free for TCP and UDP
/// (a node listens on both at its RPC port).
///
/// Why not port 0: the OS hands those out from the ephemeral range, where
/// the nodes' own outgoing connections take ports too, so one could grab
/// a port between this call and the node binding it. These come from
/// 12000–31999, below Linux's ephemeral range (32768+), a different
/// stretch for each test process. The benchmarks' default ports (27000,
/// 28000) are in it too; do not run them alongside the tests.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 12_000;
    const SPAN: u32 = 20_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (start + n) % SPAN) as u16;
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN);
}

/// One server process.
pub struct Proc {
    pub http: String,
    pub s3: String,
    /// The website endpoint.
    pub web: String,
    pub rpc: String,
    pub dir: PathBuf,
    join: Option<String>,
    extra: Vec<String>,
    child: Option<Child>,
    /// Network namespace to run in (see [`netns`]); the host's if `None`.
    netns: Option<String>,
}

impl Proc {
    fn spawn(&mut self) {
        let bin = env!("CARGO_BIN_EXE_ringstore");
        let mut cmd = match &self.netns {
            // `ip netns exec` execs the server in place, so the child's pid
            // is the server's: kill -9 and SIGSTOP reach it directly.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        cmd.args([
            "server", "--http", &self.http, "--rpc", &self.rpc, "--s3", &self.s3, "--web",
            &self.web,
        ])
        .arg("--data-dir")
        .arg(&self.dir)
        .args(["--cluster-secret", "test-secret"])
        .env("RINGSTORE_ADMIN_TOKEN", ADMIN_TOKEN)
        .args(&self.extra)
        // RINGSTORE_TEST_LOG raises the servers' log level when a test
        // needs reading.
        .env(
            "RUST_LOG",
            std::env::var("RINGSTORE_TEST_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        if let Some(seed) = &self.join {
            cmd.args(["--join", seed]);
        }
        self.child = Some(cmd.spawn().expect("spawn ringstore server"));
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for the process to exit: a clean stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -TERM failed");
            let exit = c.wait().expect("wait for the stopped node");
            assert!(exit.success(), "a cleanly stopped node exited with {exit}");
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a process paused as by a
    /// long GC pause or a stalled VM, its sockets open and silent.
    pub fn pause(&self, stop: bool) {
        if let Some(c) = &self.child {
            let sig = if stop { "-STOP" } else { "-CONT" };
            let status = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill {sig} failed");
        }
    }

    /// Start again after [`Proc::stop`] or [`Proc::kill9`].
    pub fn start(&mut self) {
        self.spawn();
    }

    /// Start again with the same data directory and addresses.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// The server's resident memory now (VmRSS), in bytes.
    pub fn rss(&self) -> u64 {
        self.status_kib("VmRSS:") * 1024
    }

    fn status_kib(&self, field: &str) -> u64 {
        let pid = self.child.as_ref().expect("a running node").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The server's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let pid = self.child.as_ref().expect("a running node").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A cluster of server processes.
pub struct Cluster {
    pub nodes: Vec<Proc>,
    _dir: tempfile::TempDir,
    /// The config file of [`Cluster::start_configured`], kept for restarts.
    _config: Option<tempfile::NamedTempFile>,
    pub http: reqwest::Client,
}

impl Cluster {
    /// Start `n` nodes; nodes 1.. join node 0. Waits until every node sees
    /// every member up.
    pub async fn start(n: usize, extra: &[&str]) -> Cluster {
        Self::start_each(n, extra, |_| Vec::new()).await
    }

    /// As [`Cluster::start`], every node reading `toml` as its config file.
    pub async fn start_configured(n: usize, toml: &str, extra: &[&str]) -> Cluster {
        let cfg = tempfile::NamedTempFile::new().expect("config file");
        std::fs::write(cfg.path(), toml).expect("write the config file");
        let path = cfg.path().to_str().expect("a UTF-8 temp path").to_string();
        let flags: Vec<&str> = ["--config", path.as_str()]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        let mut c = Self::start(n, &flags).await;
        c._config = Some(cfg);
        c
    }

    /// As [`Cluster::start`], with `per_node(i)` added to node `i`'s flags.
    pub async fn start_each(
        n: usize,
        extra: &[&str],
        per_node: impl Fn(usize) -> Vec<String>,
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nodes: Vec<Proc> = Vec::new();
        for i in 0..n {
            let rpc = format!("127.0.0.1:{}", free_port());
            let mut p = Proc {
                http: format!("127.0.0.1:{}", free_port()),
                s3: format!("127.0.0.1:{}", free_port()),
                web: format!("127.0.0.1:{}", free_port()),
                join: nodes.first().map(|f: &Proc| f.rpc.clone()),
                rpc,
                dir: dir.path().join(format!("node-{i}")),
                extra: extra
                    .iter()
                    .map(|s| s.to_string())
                    .chain(per_node(i))
                    .collect(),
                child: None,
                netns: None,
            };
            p.spawn();
            nodes.push(p);
        }
        let c = Cluster {
            nodes,
            _dir: dir,
            _config: None,
            http: admin_http(),
        };
        c.wait_formed().await;
        c
    }

    /// Start one more node that joins node 0; returns its index.
    pub fn add(&mut self, extra: &[&str]) -> usize {
        let seed = self.nodes[0].rpc.clone();
        self.add_joining(Some(seed), extra)
    }

    /// Start one more node with the cluster's secret that joins no one
    /// (a cluster of its own until a member brings it in); its index.
    pub fn add_alone(&mut self, extra: &[&str]) -> usize {
        self.add_joining(None, extra)
    }

    fn add_joining(&mut self, join: Option<String>, extra: &[&str]) -> usize {
        let i = self.nodes.len();
        let mut p = Proc {
            http: format!("127.0.0.1:{}", free_port()),
            s3: format!("127.0.0.1:{}", free_port()),
            web: format!("127.0.0.1:{}", free_port()),
            join,
            rpc: format!("127.0.0.1:{}", free_port()),
            dir: self._dir.path().join(format!("node-{i}")),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            netns: None,
        };
        p.spawn();
        self.nodes.push(p);
        i
    }

    /// Wait until every running node lists every node as an up member.
    pub async fn wait_formed(&self) {
        let n = self.nodes.len();
        let idx: Vec<usize> = (0..n).collect();
        self.wait_members_up(&idx, n).await;
    }

    /// Wait until each node in `which` sees `count` members up.
    pub async fn wait_members_up(&self, which: &[usize], count: usize) {
        for &i in which {
            let url = self.nodes[i].url("/admin/cluster");
            let http = self.http.clone();
            wait_until(
                &format!("node {i} sees {count} members up"),
                Duration::from_secs(20),
                || {
                    let (http, url) = (http.clone(), url.clone());
                    async move {
                        let Ok(r) = http.get(&url).send().await else {
                            return false;
                        };
                        let Ok(v) = r.json::<serde_json::Value>().await else {
                            return false;
                        };
                        v["nodes"].as_array().is_some_and(|ns| {
                            ns.iter()
                                .filter(|x| x["state"] == "member" && x["liveness"] == "up")
                                .count()
                                == count
                        })
                    }
                },
            )
            .await;
        }
    }
}

/// Poll `cond` until it holds, failing the test after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Cluster {
    /// Node `i`'s `GET /admin/cluster`.
    pub async fn cluster_json(&self, i: usize) -> serde_json::Value {
        self.get_json(i, "/admin/cluster").await
    }

    /// `GET path` on node `i`, parsed as JSON.
    pub async fn get_json(&self, i: usize, path: &str) -> serde_json::Value {
        self.http
            .get(self.nodes[i].url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Node `i`'s id, as its admin API reports it.
    pub async fn node_id(&self, i: usize) -> String {
        let v = self.cluster_json(i).await;
        v["node_id"].as_str().unwrap().to_string()
    }

    /// PUT `body` at `path` on node `i`; the status, as a number.
    pub async fn put(&self, i: usize, path: &str, body: impl Into<reqwest::Body>) -> u16 {
        self.http
            .put(self.nodes[i].url(path))
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Node `i`'s `/metrics` text.
    pub async fn metrics(&self, i: usize) -> String {
        self.http
            .get(self.nodes[i].url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Every node's id, in node order.
    pub async fn node_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..self.nodes.len() {
            ids.push(self.node_id(i).await);
        }
        ids
    }

    /// Drop all traffic between node `i` and every other node, both ways
    /// (nodes must run with `--enable-fault-injection`).
    pub async fn cut_off(&self, i: usize) {
        self.cut_off_group(&[i]).await
    }

    /// Cut the nodes in `dark` off from the others (both directions);
    /// they still reach each other.
    pub async fn cut_off_group(&self, dark: &[usize]) {
        let ids = self.node_ids().await;
        for (j, n) in self.nodes.iter().enumerate() {
            let inside = dark.contains(&j);
            let drop: Vec<&String> = (0..ids.len())
                .filter(|k| dark.contains(k) != inside)
                .map(|k| &ids[k])
                .collect();
            let r = self
                .http
                .post(n.url("/admin/debug/faults"))
                .json(&serde_json::json!({ "drop": drop }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204, "setting faults on node {j}");
        }
    }

    /// A fresh S3 access key, through node 0's admin API, once every node sees
    /// the same settled layout (so all agree where the key's replicas are).
    pub async fn s3_key(&self) -> (String, String) {
        let c = self;
        wait_until(
            "every node sees one settled layout",
            std::time::Duration::from_secs(20),
            || async {
                let mut versions = Vec::new();
                for n in &c.nodes {
                    let Ok(r) = c.http.get(n.url("/admin/layout")).send().await else {
                        return false;
                    };
                    let v: serde_json::Value = r.json().await.unwrap_or_default();
                    if v["version"] != v["stable_version"] {
                        return false;
                    }
                    versions.push(v["version"].clone());
                }
                versions.windows(2).all(|w| w[0] == w[1])
            },
        )
        .await;
        let r = c
            .http
            .post(c.nodes[0].url("/admin/keys"))
            .json(&serde_json::json!({ "name": "test" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: serde_json::Value = r.json().await.unwrap();
        (
            v["access_key_id"].as_str().unwrap().to_string(),
            v["secret_access_key"].as_str().unwrap().to_string(),
        )
    }

    /// Clear every injected fault on every node.
    pub async fn heal(&self) {
        for (j, n) in self.nodes.iter().enumerate() {
            let r = self
                .http
                .delete(n.url("/admin/debug/faults"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204, "clearing faults on node {j}");
        }
    }

    /// Wait until node `i` answers HTTP (after a start or restart).
    pub async fn wait_listening(&self, i: usize) {
        let url = self.nodes[i].url("/health/live");
        wait_until(
            &format!("node {i} listens"),
            Duration::from_secs(30),
            || {
                let (http, url) = (self.http.clone(), url.clone());
                async move { http.get(url).send().await.is_ok() }
            },
        )
        .await;
    }
}
