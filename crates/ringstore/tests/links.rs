//! The links between nodes, as an attacker on the network sees them:
//! what crosses the wire, and who may join.
//!
//! The capture test needs tcpdump and root (to capture on `lo`); it skips
//! loudly without them unless `RINGSTORE_REQUIRE_NETNS` is set (as
//! `.ci/run` does, which installs tcpdump).

mod common;

use common::{wait_until, Cluster};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// tcpdump on the loopback interface, writing every packet to or from the
/// given ports (TCP and UDP) to a file.
struct Capture {
    child: Child,
    /// Kept open: tcpdump's last words go here, not to a closed pipe.
    _stderr: BufReader<std::process::ChildStderr>,
    file: tempfile::NamedTempFile,
}

impl Capture {
    /// Start capturing; returns once tcpdump says it is listening, or
    /// `Err` if it cannot run here.
    fn start(ports: &[u16]) -> Result<Capture, String> {
        let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        let filter = ports
            .iter()
            .map(|p| format!("port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let mut child = Command::new("tcpdump")
            // -Z root: write the file as root (tcpdump otherwise drops
            // to its own user, who cannot write our temp file).
            .args([
                "-i",
                "lo",
                "--immediate-mode",
                "-U",
                "-s",
                "0",
                "-Z",
                "root",
                "-w",
            ])
            .arg(file.path())
            .arg(&filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run tcpdump: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        // Blocks until tcpdump prints its first line (or exits): it says
        // "listening on lo" once the capture is open.
        let mut first = String::new();
        let mut stderr = BufReader::new(stderr);
        stderr.read_line(&mut first).map_err(|e| e.to_string())?;
        if !first.contains("listening on") {
            let _ = child.kill();
            return Err(format!("tcpdump did not start: {first}"));
        }
        Ok(Capture {
            child,
            _stderr: stderr,
            file,
        })
    }

    /// Stop capturing once every packet sent so far is in the file;
    /// return the captured bytes (pcap).
    ///
    /// Why the marker: tcpdump writes packets in the order the kernel saw
    /// them, a little after; once a datagram sent now (to a captured port,
    /// where the node discards it as unsealed) is in the file, so is
    /// everything before it.
    async fn finish(mut self, port: u16) -> Vec<u8> {
        let marker = format!("capture-marker-{}", std::process::id());
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .send_to(marker.as_bytes(), ("127.0.0.1", port))
            .unwrap();
        let path = self.file.path().to_path_buf();
        wait_until("tcpdump wrote the marker", Duration::from_secs(10), || {
            let file = std::fs::read(&path).unwrap_or_default();
            let seen = contains(&file, marker.as_bytes());
            async move { seen }
        })
        .await;
        // SIGTERM: tcpdump flushes the file and exits.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read(self.file.path()).expect("read the capture")
    }
}

fn port(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Write a value to every replica while capturing the nodes' RPC and
/// gossip ports; returns the capture, or `None` when it cannot run here.
async fn capture_a_replicated_write(toml: &str, value: &[u8]) -> Option<Vec<u8>> {
    let c = Cluster::start_configured(3, toml, &[]).await;
    let ports: Vec<u16> = c.nodes.iter().map(|n| port(&n.rpc)).collect();
    let capture = match Capture::start(&ports) {
        Ok(cap) => cap,
        Err(why) if std::env::var_os("RINGSTORE_REQUIRE_NETNS").is_none() => {
            eprintln!("skipping the wire capture: it needs tcpdump and root ({why})");
            return None;
        }
        Err(why) => panic!("RINGSTORE_REQUIRE_NETNS is set but tcpdump cannot capture: {why}"),
    };
    // w=3: acknowledged only once every replica holds it, so its bytes
    // crossed two links before the capture stops.
    let status = c.put(0, "/buckets/wire/keys/k?w=3", value.to_vec()).await;
    assert_eq!(status, 204, "PUT with w=3");
    for i in 1..3 {
        let got = c
            .http
            .get(c.nodes[i].url("/buckets/wire/keys/k?r=1"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.bytes().await.unwrap(), value, "read from node {i}");
    }
    Some(capture.finish(ports[0]).await)
}

#[tokio::test]
async fn a_written_value_never_crosses_the_wire_in_the_clear() {
    let value = format!("wire-canary-{}-", std::process::id()).repeat(40);
    let Some(sealed) = capture_a_replicated_write("", value.as_bytes()).await else {
        return;
    };
    assert!(
        sealed.len() > 1000,
        "the capture saw no inter-node traffic: {} bytes",
        sealed.len()
    );
    let canary = &value.as_bytes()[..24];
    assert!(
        !contains(&sealed, canary),
        "the value's bytes appear on the wire between nodes"
    );
    // The control: with encryption off the same capture does see the
    // value, so the test above can fail.
    let plain = capture_a_replicated_write("internode_encryption = false\n", value.as_bytes())
        .await
        .expect("the capture ran once");
    assert!(
        contains(&plain, canary),
        "with internode_encryption off the capture should show the value"
    );
}

#[tokio::test]
async fn a_node_without_the_cluster_secret_cannot_join() {
    let c = Cluster::start(3, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let http = format!("127.0.0.1:{}", common::free_port());
    let mut stranger = Command::new(env!("CARGO_BIN_EXE_ringstore"))
        .args(["server", "--http", &http])
        .args(["--s3", &format!("127.0.0.1:{}", common::free_port())])
        .args(["--web", &format!("127.0.0.1:{}", common::free_port())])
        .args(["--rpc", &format!("127.0.0.1:{}", common::free_port())])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--cluster-secret", "not-the-cluster-secret"])
        .args(["--join", &c.nodes[0].rpc])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the stranger's own account of its refusal.
    let stderr = stranger.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("cluster secret") {
                let _ = tx.send(line);
                return;
            }
        }
    });
    let refusal = rx.recv_timeout(Duration::from_secs(30));
    let _ = stranger.kill();
    let _ = stranger.wait();
    let refusal = refusal.expect("the stranger never reported a refused handshake");
    assert!(refusal.contains("cluster_secret"), "{refusal}");
    for i in 0..3 {
        let v = c.cluster_json(i).await;
        let nodes = v["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 3, "node {i} lists a stranger: {v}");
    }
    // And the cluster still serves.
    wait_until("the cluster answers", Duration::from_secs(10), || async {
        c.put(1, "/buckets/b/keys/k", "v").await == 204
    })
    .await;
}
