//! # The block scrub
//!
//! Every `s3_block_sweep_interval_ms` each node walks its own replicas of
//! blocks (`_s3b`), a partition and a page at a time, and drops a replica
//! whose bytes no longer hash to its key (bit rot, a torn write). Dropping
//! updates the anti-entropy tree, so the next exchange with a replica that
//! holds a good copy sends it back: bit rot is invisible to the trees
//! otherwise.
//!
//! Collecting blocks nothing references is not done here: a block is
//! collected by reference (`node::collect`), with work that follows the
//! references that went away. The scrub reads every block, so its cost is
//! what the node stores; its default period is a week.

use crate::catalog::{block_key, s3_err, Catalog};
use crate::records::{BLOCKS, TYPE_BLOCKS};
use bytes::Bytes;
use s3s::S3Error;
use std::time::Duration;

/// Bytes of block replicas read per page.
const PAGE_BYTES_MAX: usize = 8 << 20;

/// What one scrub did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Block replicas looked at.
    pub blocks: u64,
    /// Replicas dropped because their bytes did not match their hash.
    pub damaged: u64,
}

/// Scrub forever, `every` apart (not at all if it is zero).
pub async fn run(catalog: Catalog, every: Duration) {
    if every.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match scrub(&catalog).await {
            Ok(r) if r.damaged > 0 => {
                tracing::info!(blocks = r.blocks, damaged = r.damaged, "block scrub");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "block scrub stopped early; the next one retries"),
        }
    }
}

/// One pass over this node's block replicas.
///
/// # Errors
///
/// A storage failure.
pub async fn scrub(catalog: &Catalog) -> Result<ScrubReport, S3Error> {
    let node = catalog.node();
    let mut report = ScrubReport::default();
    for p in node.local_partitions() {
        let mut after: Option<Bytes> = None;
        loop {
            let page = node
                .local_page(p, TYPE_BLOCKS, BLOCKS, after.as_deref(), PAGE_BYTES_MAX)
                .map_err(s3_err)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (name, obj) in page {
                let Some(hash) = block_hash(&name) else {
                    continue;
                };
                report.blocks += 1;
                let damaged = obj
                    .siblings()
                    .iter()
                    .any(|s| !s.meta.deleted && blake3::hash(&s.value).as_bytes() != &hash);
                if !damaged {
                    continue;
                }
                tracing::warn!(block = %hex::encode(hash), partition = p, "damaged block replica dropped; anti-entropy restores it from a peer");
                let key = block_key(&hash);
                if node
                    .drop_local_replica(p, &key, u64::MAX)
                    .await
                    .map_err(s3_err)?
                {
                    report.damaged += 1;
                }
            }
        }
    }
    Ok(report)
}

fn block_hash(name: &[u8]) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(name, &mut hash).ok()?;
    Some(hash)
}
