//! `ringstore cluster transfers`: what a node is pulling, once or until done.

use anyhow::{Context, Result};
use client::Client;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

/// Sum of (done, left) bytes and the number of partitions in flight.
fn totals(v: &Value) -> (u64, u64, usize) {
    let list = v["transfers"].as_array().cloned().unwrap_or_default();
    let sum = |k: &str| list.iter().map(|t| t[k].as_u64().unwrap_or(0)).sum::<u64>();
    (sum("bytes_done"), sum("bytes_left"), list.len())
}

pub(crate) async fn show(c: &Client, watch: bool, as_json: bool) -> Result<ExitCode> {
    let ask = || async {
        c.transfers()
            .await
            .with_context(|| format!("asking {} for its transfers", c.base()))
    };
    let value = ask().await?;
    if as_json {
        println!("{value}");
        return Ok(ExitCode::SUCCESS);
    }
    if !watch {
        let list = value["transfers"].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            println!("no handoff in progress");
        }
        println!(
            "{:>9} {:<18} {:>12} {:>12} {:>14} {:>14}",
            "PARTITION", "FROM", "OBJECTS", "LEFT", "BYTES", "BYTES LEFT"
        );
        for t in list {
            println!(
                "{:>9} {:<18} {:>12} {:>12} {:>14} {:>14}",
                t["partition"],
                t["from"].as_str().unwrap_or(""),
                t["objects_done"],
                t["objects_left"],
                t["bytes_done"],
                t["bytes_left"]
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut value = value;
    loop {
        let (done, left, partitions) = totals(&value);
        bar.set_length(done + left);
        bar.set_position(done);
        bar.set_message(format!("{partitions} partitions in flight"));
        if partitions == 0 {
            bar.finish_with_message("no handoff in progress");
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        value = ask().await?;
    }
}
