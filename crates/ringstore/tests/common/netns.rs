//! Real network partitions for real processes: each node in its own
//! network namespace, on a bridge, at 10.77.0.(i+1). A partition is a
//! blackhole route on each side, so packets between the two sides are
//! dropped by the kernel, TCP and UDP alike, while the test (in the host
//! namespace, on the bridge) still reaches every node.
//!
//! Needs root and `ip` (iproute2). `.ci/run` runs as root; elsewhere
//! [`Netns::create`] says why it cannot, and the test skips.

use super::{Cluster, Proc};
use std::process::Command;

const BRIDGE: &str = "rsnem-br";
const HOST_ADDR: &str = "10.77.0.254/24";

fn ns_name(i: usize) -> String {
    format!("rsnem{i}")
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Namespaces, veth pairs and a bridge; removed on drop.
pub struct Netns {
    n: usize,
}

impl Netns {
    /// Node `i`'s address.
    pub fn addr(i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }

    /// `n` namespaces on one bridge, or why they cannot be made here.
    pub fn create(n: usize) -> Result<Netns, String> {
        // Leftovers of a run that was killed would hold the names.
        Self::remove(8);
        let net = Netns { n };
        ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        ip(&["addr", "add", HOST_ADDR, "dev", BRIDGE])?;
        ip(&["link", "set", BRIDGE, "up"])?;
        for i in 0..n {
            let (ns, host, inner) = (ns_name(i), format!("rsnem{i}h"), format!("rsnem{i}n"));
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &inner])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &host, "master", BRIDGE, "up"])?;
            let cidr = format!("{}/24", Self::addr(i));
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", &inner])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn remove(n: usize) {
        for i in 0..n {
            let _ = ip(&["netns", "del", &ns_name(i)]);
        }
        let _ = ip(&["link", "del", BRIDGE]);
    }

    /// Drop every packet between nodes in `a` and nodes in `b`.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        for (&x, &y) in a.iter().flat_map(|x| b.iter().map(move |y| (x, y))) {
            for (from, to) in [(x, y), (y, x)] {
                let dst = format!("{}/32", Self::addr(to));
                ip(&["-n", &ns_name(from), "route", "add", "blackhole", &dst])
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }

    /// Remove every partition.
    pub fn heal(&self) {
        for from in 0..self.n {
            for to in 0..self.n {
                let dst = format!("{}/32", Self::addr(to));
                // Absent routes are fine: not every pair was cut.
                let _ = ip(&["-n", &ns_name(from), "route", "del", "blackhole", &dst]);
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        Self::remove(self.n);
    }
}

impl Cluster {
    /// Start `net`'s nodes, one per namespace, on fixed ports of their own
    /// addresses; nodes 1.. join node 0.
    pub async fn start_in(net: &Netns, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes: Vec<Proc> = (0..net.n)
            .map(|i| {
                let host = Netns::addr(i);
                let mut p = Proc {
                    http: format!("{host}:8098"),
                    s3: format!("{host}:9000"),
                    web: format!("{host}:9001"),
                    rpc: format!("{host}:7000"),
                    join: (i > 0).then(|| format!("{}:7000", Netns::addr(0))),
                    dir: dir.path().join(format!("node-{i}")),
                    extra: extra.iter().map(|s| s.to_string()).collect(),
                    child: None,
                    netns: Some(ns_name(i)),
                };
                p.spawn();
                p
            })
            .collect();
        let c = Cluster {
            nodes,
            _dir: dir,
            _config: None,
            http: super::admin_http_builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
                .expect("HTTP client"),
        };
        c.wait_formed().await;
        c
    }
}
