//! `ringstore bench join`: the seeds' experiment 1. One node holds some
//! records; a second node joins; time until the newcomer's own replica
//! holds the last record written and until its handoff is complete (it
//! reports ready), and the handoff's throughput.

use crate::heal::{wait_for, Servers};
use anyhow::{bail, Result};
use bytes::Bytes;
use client::Client;
use futures::StreamExt;
use std::time::{Duration, Instant};

/// Flags of `ringstore bench join`.
#[derive(clap::Args, Debug)]
pub struct JoinFlags {
    /// Records the first node holds before the second joins.
    #[arg(long, default_value_t = 1000)]
    records: usize,
    /// Record size in bytes.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Node i uses ports P+10i (http), P+10i+1 (s3), P+10i+2 (rpc).
    #[arg(long, default_value_t = 28000)]
    base_port: u16,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Run `ringstore bench join` and print its figures.
///
/// # Errors
///
/// A server that does not start or answer, or a handoff that does not
/// finish in time.
pub async fn run(f: JoinFlags) -> Result<()> {
    if f.records == 0 || f.value_size == 0 {
        bail!("--records and --value-size must be positive");
    }
    let dir = std::env::temp_dir().join(format!("ringstore-bench-join-{}", std::process::id()));
    let mut servers = Servers {
        children: Vec::new(),
        dir,
    };
    let http = |i: u16| format!("127.0.0.1:{}", f.base_port + 10 * i);
    let token = Some(crate::heal::BENCH_ADMIN_TOKEN);
    let (first, second) = (
        Client::new(&http(0)).with_admin_token(token),
        Client::new(&http(1)).with_admin_token(token),
    );
    servers.spawn(0, f.base_port, &[])?;
    wait_for("the first node", || first.is_ready()).await?;
    let value = Bytes::from(vec![b'x'; f.value_size]);
    let writes = futures::stream::iter(0..f.records)
        .map(|i| {
            let (c, v) = (&first, value.clone());
            async move {
                c.put(
                    "join",
                    &format!("r{i:07}"),
                    v,
                    "application/octet-stream",
                    None,
                    "w=1",
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    if let Some(Err(e)) = writes.into_iter().find(|r| r.is_err()) {
        bail!("loading the first node failed: {e}");
    }
    let last_key = format!("r{:07}", f.records - 1);
    let started = Instant::now();
    servers.spawn(1, f.base_port, &[])?;
    wait_for("the last record on the new node", || async {
        second.has_replica("join", &last_key).await.unwrap_or(false)
    })
    .await?;
    let t_last = started.elapsed();
    wait_for("the new node's handoff", || second.is_ready()).await?;
    let t_ready = started.elapsed();
    let metrics = second.metrics().await?;
    let bytes: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ringstore_handoff_bytes_received "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    report(&f, t_last, t_ready, bytes);
    Ok(())
}

fn report(f: &JoinFlags, t_last: Duration, t_ready: Duration, bytes: f64) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mb_s = bytes / 1e6 / t_ready.as_secs_f64();
    if f.json {
        println!(
            "{}",
            serde_json::json!({"records": f.records, "value_size": f.value_size,
                "last_record_ms": ms(t_last), "handoff_done_ms": ms(t_ready),
                "handoff_bytes": bytes, "handoff_mb_per_s": mb_s})
        );
    } else {
        println!(
            "1 node with {} records of {} B; a second node joins (times from its start)",
            f.records, f.value_size
        );
        println!(
            "the new node held the last record after {:.0} ms; its handoff was done after {:.0} ms ({:.1} MB in, {:.1} MB/s)",
            ms(t_last),
            ms(t_ready),
            bytes / 1e6,
            mb_s
        );
        println!("(anchors from the seeds' experiment: Riak 1 s, CouchDB 1 s, MongoDB 2 s, Cassandra 20 s)");
    }
}
