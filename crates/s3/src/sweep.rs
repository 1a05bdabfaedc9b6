//! # The block sweep: scrub and collection
//!
//! Every `s3_block_sweep_interval_ms` each node walks its own replicas of
//! blocks (`_s3b`), a partition and a page at a time, and:
//!
//! - **scrubs**: a replica whose bytes no longer hash to its key (bit rot,
//!   a torn write) is dropped. Dropping updates the anti-entropy tree, so
//!   the next exchange with a replica that holds a good copy sends it back.
//! - **collects**: a block no object and no part of an upload in progress
//!   references is dropped once it has gone unreferenced, and unwritten,
//!   for `s3_block_grace_ms`. The first owner of a partition collects for
//!   all its owners at once (`Node::drop_replicas`): a replica dropped
//!   alone would be copied back by anti-entropy from one not yet dropped.
//!
//! Why each node drops only its own replica instead of writing a
//! tombstone: a tombstone would get a fresh timestamp and beat a PUT that
//! re-uploaded the same block (identical blocks are one object) a moment
//! earlier. A drop is checked on each replica under the key lock against
//! the block's own timestamp, and every upload rewrites its blocks, so a
//! block in use again is never dropped.
//!
//! Why "unreferenced in two sweeps a grace period apart" and not one look:
//! the references are read from quorum listings that a lagging replica can
//! leave incomplete, and a copy (`CopyObject`) references existing blocks
//! without rewriting them, so a copy made as its source is deleted could
//! slip between one listing and the drop. Sightings are kept in memory: a
//! restart only postpones collection. Collection also waits while any
//! member is down, since its records may be missing from the listings.
//!
//! Cost: the referenced set is built from the cluster's object and part
//! records once per sweep per node, reading the object keys a listing
//! page at a time; 32 bytes per referenced block (about 32 MiB per TiB
//! of 1 MiB blocks). The work still grows with the number of objects,
//! not with what changed: tracking blocks by reference is open work
//! (docs/ARCHITECTURE.md).

use crate::catalog::{s3_err, Catalog};
use crate::keys::now_ms;
use crate::records::{
    Data, ObjectRecord, PartRecord, BLOCKS, BUCKETS, TYPE_BLOCKS, TYPE_META, TYPE_OBJECTS,
    TYPE_PARTS, TYPE_UPLOADS,
};
use bytes::Bytes;
use node::BKey;
use s3s::S3Error;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Bytes of block replicas read per page.
const PAGE_BYTES_MAX: usize = 8 << 20;
/// Unreferenced blocks remembered at most; more wait for a later sweep.
const SIGHTINGS_MAX: usize = 1 << 20;

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Block replicas looked at.
    pub blocks: u64,
    /// Replicas dropped because their bytes did not match their hash.
    pub damaged: u64,
    /// Replicas (on every owner) dropped because nothing referenced them
    /// for the grace.
    pub collected: u64,
}

/// The sweep of one node, with what it remembers between runs.
pub struct BlockSweep {
    catalog: Catalog,
    /// Block → when a sweep first found it unreferenced (ms since epoch).
    unreferenced_since: HashMap<[u8; 32], u64>,
}

/// Sweep forever at the configured interval (not at all if it is 0).
pub async fn run(catalog: Catalog) {
    let every = catalog.node().config().s3_block_sweep_interval_ms;
    if every == 0 {
        return;
    }
    let mut sweep = BlockSweep::new(catalog);
    let mut tick = tokio::time::interval(Duration::from_millis(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match sweep.once().await {
            Ok(r) if r.damaged + r.collected > 0 => {
                tracing::info!(
                    blocks = r.blocks,
                    damaged = r.damaged,
                    collected = r.collected,
                    "block sweep"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "block sweep stopped early; the next one retries"),
        }
    }
}

impl BlockSweep {
    /// A sweep over `catalog`'s node that has seen nothing yet.
    pub fn new(catalog: Catalog) -> Self {
        BlockSweep {
            catalog,
            unreferenced_since: HashMap::new(),
        }
    }

    /// One pass over this node's block replicas.
    ///
    /// # Errors
    ///
    /// A failed listing or record read (nothing is collected then) or a
    /// storage failure.
    pub async fn once(&mut self) -> Result<SweepReport, S3Error> {
        let node = self.catalog.node().clone();
        let now = now_ms();
        let all_up = node
            .cluster_status()
            .nodes
            .iter()
            .all(|n| n.liveness == "up");
        let mut pass = Pass {
            now,
            cutoff: now.saturating_sub(node.config().s3_block_grace_ms),
            referenced: if all_up {
                Some(referenced_blocks(&self.catalog).await?)
            } else {
                None
            },
            report: SweepReport::default(),
            still_unreferenced: HashMap::new(),
        };
        for p in node.local_partitions() {
            let mut after: Option<Bytes> = None;
            loop {
                let page = node
                    .local_page(p, TYPE_BLOCKS, BLOCKS, after.as_deref(), PAGE_BYTES_MAX)
                    .map_err(s3_err)?;
                let Some((last, _)) = page.last() else { break };
                after = Some(last.clone());
                for (name, obj) in page {
                    self.visit(&mut pass, p, &name, &obj).await?;
                }
            }
        }
        if pass.referenced.is_some() {
            self.unreferenced_since = pass.still_unreferenced;
        }
        Ok(pass.report)
    }

    /// Scrub one replica, then collect it if its time has come.
    async fn visit(
        &self,
        pass: &mut Pass,
        p: u16,
        name: &Bytes,
        obj: &causal::Object,
    ) -> Result<(), S3Error> {
        let node = self.catalog.node();
        let newest = obj
            .siblings()
            .iter()
            .max_by_key(|s| s.meta.last_modified_ms);
        let (Some(hash), Some(newest)) = (block_hash(name), newest) else {
            return Ok(());
        };
        pass.report.blocks += 1;
        let key = block_key(name);
        if !newest.meta.deleted && blake3::hash(&newest.value).as_bytes() != &hash {
            tracing::warn!(block = %hex::encode(hash), partition = p, "damaged block replica dropped; anti-entropy restores it from a peer");
            if node
                .drop_local_replica(p, &key, u64::MAX)
                .await
                .map_err(s3_err)?
            {
                pass.report.damaged += 1;
            }
            return Ok(());
        }
        let Some(referenced) = &pass.referenced else {
            return Ok(());
        };
        if !node.leads_partition(p) {
            return Ok(());
        }
        if referenced.contains(&hash) {
            return Ok(());
        }
        let since = self
            .unreferenced_since
            .get(&hash)
            .copied()
            .unwrap_or(pass.now);
        let written = newest.meta.last_modified_ms;
        if since <= pass.cutoff && written <= pass.cutoff {
            let dropped = node
                .drop_replicas(&key, pass.cutoff)
                .await
                .map_err(s3_err)?;
            pass.report.collected += dropped as u64;
        } else if pass.still_unreferenced.len() < SIGHTINGS_MAX {
            pass.still_unreferenced.insert(hash, since);
        }
        Ok(())
    }
}

/// The state of one sweep.
struct Pass {
    now: u64,
    /// Blocks written, or first found unreferenced, after this are kept.
    cutoff: u64,
    /// `None` when some member is down: scrub only.
    referenced: Option<HashSet<[u8; 32]>>,
    report: SweepReport,
    still_unreferenced: HashMap<[u8; 32], u64>,
}

fn block_hash(name: &[u8]) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(name, &mut hash).ok()?;
    Some(hash)
}

fn block_key(name: &Bytes) -> BKey {
    BKey::typed(
        Bytes::from_static(TYPE_BLOCKS),
        Bytes::from_static(BLOCKS),
        name.clone(),
    )
}

/// Every block an object or a part of an upload in progress references,
/// in buckets that have a record or hold objects or uploads anywhere.
async fn referenced_blocks(catalog: &Catalog) -> Result<HashSet<[u8; 32]>, S3Error> {
    let node = catalog.node();
    let mut buckets: HashSet<Bytes> = catalog
        .keys(TYPE_META, BUCKETS)
        .await?
        .into_iter()
        .collect();
    for t in [TYPE_OBJECTS, TYPE_UPLOADS] {
        let found = node
            .list_buckets(Bytes::from_static(t))
            .await
            .map_err(s3_err)?;
        buckets.extend(found);
    }
    let mut referenced = HashSet::new();
    let mut add = |data: Data| {
        if let Data::Blocks(refs) = data {
            referenced.extend(refs.into_iter().map(|r| r.hash));
        }
    };
    for bucket in &buckets {
        // A page of keys at a time: memory stays at a page (plus the
        // referenced set) whatever the bucket holds.
        let mut pages = node.list_keys(Bytes::from_static(TYPE_OBJECTS), bucket.clone());
        while let Some(page) = pages.recv().await {
            for key in page.map_err(s3_err)? {
                if let Some(r) = catalog
                    .get::<ObjectRecord>(TYPE_OBJECTS, bucket, &key)
                    .await?
                {
                    add(r.data);
                }
            }
        }
        for upload in catalog.keys(TYPE_UPLOADS, bucket).await? {
            for part in catalog.keys(TYPE_PARTS, &upload).await? {
                if let Some(r) = catalog
                    .get::<PartRecord>(TYPE_PARTS, &upload, &part)
                    .await?
                {
                    add(r.data);
                }
            }
        }
    }
    Ok(referenced)
}
