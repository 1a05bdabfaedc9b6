//! A bucket's objects and bytes, estimated at a bounded cost.
//!
//! No node keeps a per-bucket counter: one would be a read-modify-write
//! on every PUT (the write path's cost, see docs/BENCHMARKS.md) and would
//! drift with every repair, handoff and reap. Counting by listing would
//! cost what the bucket holds. The dashboard needs neither precision nor
//! that cost, so a node reads the bucket in the partitions it owns, whole
//! partitions at a time, until a budget of entries is spent, and scales
//! up: keys spread evenly over partitions by hash, so the partitions read
//! are a random sample of the bucket. With every partition read the
//! figure is this node's replicas' exact count; with one partition of
//! 4,096 keys read, the relative error is about 1/√4096 ≈ 1.6%. A bucket
//! with more entries in one partition than the budget is reported as "at
//! least" what was read.

use crate::{Node, NodeError};
use causal::Object;
use ring::PartitionId;
use serde::Serialize;

/// Entries one bucket's sample reads at most (whole pages).
pub const SAMPLE_ENTRIES_MAX: usize = 4_096;
/// Bytes one page of the scan reads.
const PAGE_BYTES: usize = 256 * 1024;

/// What the sample found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BucketSample {
    /// Live objects, scaled to every partition (exact when `read ==
    /// partitions`).
    pub objects: u64,
    /// Their bytes, scaled likewise.
    pub bytes: u64,
    /// Partitions read whole.
    pub read: u32,
    /// Partitions in the layout.
    pub partitions: u32,
    /// The budget ran out inside the first partition: `objects` and
    /// `bytes` are what was read, a lower bound.
    pub at_least: bool,
}

impl Node {
    /// Estimate a bucket's live objects and their bytes from the
    /// partitions this node owns; `size_of` gives an object's bytes (the
    /// S3 layer reads its record's size), `None` for one that is not live.
    /// Blocking: reads storage.
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub fn bucket_sample(
        &self,
        bucket_type: &[u8],
        bucket: &[u8],
        size_of: &dyn Fn(&Object) -> Option<u64>,
    ) -> Result<BucketSample, NodeError> {
        let layout = self.layout();
        let me = self.id();
        let n_val = usize::from(self.bucket_props(bucket_type, bucket).n_val);
        let partitions = layout.partition_count();
        let mut sample = BucketSample {
            partitions: partitions as u32,
            ..BucketSample::default()
        };
        let (mut objects, mut bytes, mut entries) = (0u64, 0u64, 0usize);
        for p in 0..partitions as u16 {
            if !layout
                .owners(PartitionId(p))
                .iter()
                .take(n_val)
                .any(|o| *o == me)
            {
                continue;
            }
            let mut after: Option<Vec<u8>> = None;
            loop {
                let page = self.store().scan_bucket_page(
                    p,
                    bucket_type,
                    bucket,
                    after.as_deref(),
                    PAGE_BYTES,
                )?;
                let Some((last, _)) = page.last() else { break };
                after = Some(last.clone());
                entries += page.len();
                for (_, obj) in &page {
                    if let Some(size) = size_of(obj) {
                        objects += 1;
                        bytes += size;
                    }
                }
                if entries >= SAMPLE_ENTRIES_MAX && sample.read == 0 {
                    // Not one partition whole: no scale, a lower bound.
                    sample.objects = objects;
                    sample.bytes = bytes;
                    sample.at_least = true;
                    return Ok(sample);
                }
            }
            sample.read += 1;
            if entries >= SAMPLE_ENTRIES_MAX {
                break;
            }
        }
        if sample.read > 0 {
            let scale = partitions as f64 / f64::from(sample.read);
            sample.objects = (objects as f64 * scale).round() as u64;
            sample.bytes = (bytes as f64 * scale).round() as u64;
        }
        Ok(sample)
    }
}

/// An object's bytes as the key-value API stores them: its largest live
/// sibling; `None` for a tombstone.
pub fn value_bytes(obj: &Object) -> Option<u64> {
    obj.live_siblings().map(|s| s.value.len() as u64).max()
}
