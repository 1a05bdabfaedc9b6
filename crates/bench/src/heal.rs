//! `ringstore bench heal`: the seeds' experiment 2. Start a few real
//! `ringstore server` processes, cut one off with fault injection, write
//! records to the others, heal, and time how long the cut-off node takes
//! to hold the last record and all of them (read from its own replica).

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use client::Client;
use futures::StreamExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Flags of `ringstore bench heal`.
#[derive(clap::Args, Debug)]
pub struct HealFlags {
    /// Nodes in the cluster (the last one is cut off).
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Records written while the node is cut off.
    #[arg(long, default_value_t = 1000)]
    records: usize,
    /// Record size in bytes.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Node i uses ports P+10i (http), P+10i+1 (s3), P+10i+2 (rpc).
    #[arg(long, default_value_t = 27000)]
    base_port: u16,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// The admin token of the servers a bench starts (they live as long as
/// the bench, on loopback).
pub(crate) const BENCH_ADMIN_TOKEN: &str = "ringstore-bench-admin-token";

/// Server processes, killed and cleaned up on drop.
pub(crate) struct Servers {
    pub(crate) children: Vec<Child>,
    pub(crate) dir: PathBuf,
}

impl Servers {
    /// Start node `i` of a benchmark cluster on ports `base+10i..`, joining
    /// node 0 unless it is node 0.
    pub(crate) fn spawn(&mut self, i: u16, base: u16, extra: &[&str]) -> Result<()> {
        let exe = std::env::current_exe().context("finding the ringstore binary")?;
        let port = |i: u16, k: u16| format!("127.0.0.1:{}", base + 10 * i + k);
        let mut cmd = Command::new(&exe);
        cmd.args([
            "server",
            "--http",
            &port(i, 0),
            "--s3",
            &port(i, 1),
            "--rpc",
            &port(i, 2),
            "--web",
            &port(i, 3),
        ])
        .arg("--data-dir")
        .arg(self.dir.join(format!("node-{i}")))
        .args(["--cluster-secret", "bench"])
        .env("RINGSTORE_ADMIN_TOKEN", BENCH_ADMIN_TOKEN)
        .args(extra)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if i > 0 {
            cmd.args(["--join", &port(0, 2)]);
        }
        self.children
            .push(cmd.spawn().context("starting a server")?);
        Ok(())
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const LIMIT: Duration = Duration::from_secs(120);

pub(crate) async fn wait_for<F, Fut>(what: &str, mut cond: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !cond().await {
        if started.elapsed() > LIMIT {
            bail!("{what}: not done after {LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(started.elapsed())
}

/// Run `ringstore bench heal` and print its figures.
///
/// # Errors
///
/// A server that does not start or answer, or a node that does not
/// catch up in time.
pub async fn run(f: HealFlags) -> Result<()> {
    if !(2..=5).contains(&f.nodes) || f.records == 0 {
        bail!("--nodes must be 2 to 5 and --records positive");
    }
    let dir = std::env::temp_dir().join(format!("ringstore-bench-heal-{}", std::process::id()));
    let port = |i: u16, k: u16| format!("127.0.0.1:{}", f.base_port + 10 * i + k);
    let mut servers = Servers {
        children: Vec::new(),
        dir: dir.clone(),
    };
    for i in 0..f.nodes {
        servers.spawn(i, f.base_port, &["--enable-fault-injection"])?;
    }
    let clients: Vec<Client> = (0..f.nodes)
        .map(|i| Client::new(&port(i, 0)).with_admin_token(Some(BENCH_ADMIN_TOKEN)))
        .collect();
    let n = usize::from(f.nodes);
    wait_for("cluster formation", || async {
        let mut ok = true;
        for c in &clients {
            let up = c.cluster_status().await.ok().and_then(|v| {
                v["nodes"].as_array().map(|ns| {
                    ns.iter()
                        .filter(|x| x["state"] == "member" && x["liveness"] == "up")
                        .count()
                })
            });
            ok &= up == Some(n);
        }
        ok
    })
    .await?;
    let mut ids = Vec::new();
    for c in &clients {
        ids.push(
            c.cluster_status().await?["node_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    let (cut, rest) = clients.split_last().context("no nodes")?;
    let (cut_id, rest_ids) = ids.split_last().context("no nodes")?;
    cut.drop_traffic(rest_ids).await?;
    for c in rest {
        c.drop_traffic(std::slice::from_ref(cut_id)).await?;
    }
    let value = Bytes::from(vec![b'x'; f.value_size]);
    let query = format!("w={0}&dw={0}", n - 1);
    let writes = futures::stream::iter(0..f.records)
        .map(|i| {
            let (c, v, q) = (&clients[i % rest.len()], value.clone(), &query);
            async move {
                c.put(
                    "heal",
                    &format!("r{i:06}"),
                    v,
                    "application/octet-stream",
                    None,
                    q,
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    if let Some(Err(e)) = writes.into_iter().find(|r| r.is_err()) {
        bail!("a write failed while the node was cut off: {e}");
    }
    for c in &clients {
        c.clear_faults().await?;
    }
    let healed = Instant::now();
    let last_key = format!("r{:06}", f.records - 1);
    wait_for("the last record", || async {
        cut.has_replica("heal", &last_key).await.unwrap_or(false)
    })
    .await?;
    let t_last = healed.elapsed();
    wait_for("every record", || async {
        let missing = futures::stream::iter(0..f.records)
            .map(|i| async move {
                cut.has_replica("heal", &format!("r{i:06}"))
                    .await
                    .unwrap_or(false)
            })
            .buffer_unordered(32)
            .filter(|present| std::future::ready(!present))
            .count()
            .await;
        missing == 0
    })
    .await?;
    let t_all = healed.elapsed();
    report(&f, t_last, t_all);
    Ok(())
}

fn report(f: &HealFlags, t_last: Duration, t_all: Duration) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if f.json {
        println!(
            "{}",
            serde_json::json!({"nodes": f.nodes, "records": f.records, "value_size": f.value_size,
                "last_record_ms": ms(t_last), "all_records_ms": ms(t_all)})
        );
    } else {
        println!(
            "{} nodes; {} records of {} B written while one node was cut off",
            f.nodes, f.records, f.value_size
        );
        println!("after heal, the cut-off node held the last record in {:.0} ms and all of them in {:.0} ms", ms(t_last), ms(t_all));
        println!("(anchors from the seeds' experiment: Riak 6 s, CouchDB 8 s, Cassandra 20 s, Garage not after 70 s)");
    }
}
