//! Recent traffic for the dashboard: requests and latency per operation
//! over the last 15 minutes, in 5-second slots, in a fixed ring.
//!
//! Prometheus keeps history for those who run it; an operator who opens
//! `/ui` on a fresh cluster has none, so each node keeps a small ring of
//! its own: per slot and operation, a latency histogram with four
//! sub-buckets per power of two of microseconds (percentiles within
//! about 12%). Slots are numbered by wall-clock time (`ms / 5000`) so the
//! dashboard can add up the same slot from every node: histograms merge
//! exactly, percentiles would not. Memory is fixed: [`SLOTS`] × [`OPS`] ×
//! [`BUCKETS`] counters, about 480 KiB per node.
//!
//! Beside the ring, [`TrafficTotals`] counts every request since start in
//! the same buckets: `/metrics` exports it as a Prometheus histogram, so a
//! Grafana board draws the same operations (S3 included) as `/ui`.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// Milliseconds one slot covers.
pub const SLOT_MS: u64 = 5_000;
/// Slots kept: 15 minutes.
pub const SLOTS: usize = 180;
/// Powers of two of microseconds the histogram covers (1 µs to ~16 s;
/// slower requests count in the last bucket).
const POWERS: usize = 24;
/// Sub-buckets per power of two.
const SUB: usize = 4;
/// Buckets per histogram.
pub const BUCKETS: usize = POWERS * SUB;

/// The operations the dashboard draws.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrafficOp {
    /// Key-value fetch.
    KvGet,
    /// Key-value store.
    KvPut,
    /// Key-value delete.
    KvDelete,
    /// S3 GET and HEAD.
    S3Get,
    /// S3 PUT and POST (uploads, copies, multipart).
    S3Put,
    /// S3 DELETE.
    S3Delete,
    /// Listings, queries, admin and the rest.
    #[default]
    Other,
}

/// Operations, in the order of [`TrafficOp`].
pub const OPS: [TrafficOp; 7] = [
    TrafficOp::KvGet,
    TrafficOp::KvPut,
    TrafficOp::KvDelete,
    TrafficOp::S3Get,
    TrafficOp::S3Put,
    TrafficOp::S3Delete,
    TrafficOp::Other,
];

impl TrafficOp {
    fn index(self) -> usize {
        self as usize
    }

    /// The name the dashboard shows.
    pub fn name(self) -> &'static str {
        match self {
            TrafficOp::KvGet => "kv_get",
            TrafficOp::KvPut => "kv_put",
            TrafficOp::KvDelete => "kv_delete",
            TrafficOp::S3Get => "s3_get",
            TrafficOp::S3Put => "s3_put",
            TrafficOp::S3Delete => "s3_delete",
            TrafficOp::Other => "other",
        }
    }
}

/// The bucket a latency falls in.
pub fn bucket_of(micros: u64) -> usize {
    let v = micros.max(1);
    let power = 63 - v.leading_zeros() as usize;
    if power >= POWERS {
        return BUCKETS - 1;
    }
    // The two bits below the leading one pick the sub-bucket.
    let sub = if power >= 2 {
        ((v >> (power - 2)) & 0b11) as usize
    } else {
        ((v << (2 - power)) & 0b11) as usize
    };
    power * SUB + sub
}

/// The latency a bucket stands for: the middle of its range, µs.
pub fn bucket_micros(bucket: usize) -> f64 {
    let (power, sub) = (bucket / SUB, bucket % SUB);
    (1u64 << power) as f64 * (1.0 + (sub as f64 + 0.5) / SUB as f64)
}

/// One slot of one operation: counts per latency bucket, sparse on the
/// wire.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SlotOp {
    /// Slot number (`ms / SLOT_MS`).
    pub slot: u64,
    /// The operation.
    pub op: TrafficOp,
    /// (bucket, count), buckets ascending, counts non-zero.
    pub buckets: Vec<(u8, u32)>,
}

impl SlotOp {
    /// Requests in the slot.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, c)| u64::from(*c)).sum()
    }

    /// The latency (ms) below which fraction `q` of the requests fell.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.count();
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, c) in &self.buckets {
            seen += u64::from(*c);
            if seen >= rank {
                return bucket_micros(usize::from(*b)) / 1000.0;
            }
        }
        0.0
    }

    /// Add another node's counts of the same slot and operation.
    pub fn merge(&mut self, other: &SlotOp) {
        let mut dense = [0u32; BUCKETS];
        for (b, c) in self.buckets.iter().chain(&other.buckets) {
            if let Some(d) = dense.get_mut(usize::from(*b)) {
                *d = d.saturating_add(*c);
            }
        }
        self.buckets = sparse(&dense);
    }
}

fn sparse(dense: &[u32; BUCKETS]) -> Vec<(u8, u32)> {
    dense
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(b, c)| (b as u8, *c))
        .collect()
}

/// The ring itself (pure: time comes in as arguments).
pub struct TrafficRing {
    /// Per ring position: the slot number it holds and a histogram per op.
    slots: Vec<(u64, [[u32; BUCKETS]; OPS.len()])>,
}

impl Default for TrafficRing {
    fn default() -> Self {
        TrafficRing {
            slots: vec![(u64::MAX, [[0; BUCKETS]; OPS.len()]); SLOTS],
        }
    }
}

impl TrafficRing {
    /// Count one request of `op` that took `micros`, at `now_ms`.
    pub fn record(&mut self, op: TrafficOp, micros: u64, now_ms: u64) {
        let slot = now_ms / SLOT_MS;
        let at = &mut self.slots[(slot % SLOTS as u64) as usize];
        if at.0 != slot {
            *at = (slot, [[0; BUCKETS]; OPS.len()]);
        }
        let count = &mut at.1[op.index()][bucket_of(micros)];
        *count = count.saturating_add(1);
    }

    /// Every non-empty (slot, op) of the last 15 minutes at `now_ms`.
    pub fn snapshot(&self, now_ms: u64) -> Vec<SlotOp> {
        let newest = now_ms / SLOT_MS;
        let oldest = newest.saturating_sub(SLOTS as u64 - 1);
        let mut out = Vec::new();
        for (slot, ops) in &self.slots {
            if *slot < oldest || *slot > newest {
                continue;
            }
            for op in OPS {
                let buckets = sparse(&ops[op.index()]);
                if !buckets.is_empty() {
                    out.push(SlotOp {
                        slot: *slot,
                        op,
                        buckets,
                    });
                }
            }
        }
        out.sort_by_key(|s| (s.slot, s.op.index()));
        out
    }
}

/// Every request since start, per operation, in the ring's buckets.
#[derive(Clone, Debug)]
pub struct TrafficTotals {
    counts: [[u64; BUCKETS]; OPS.len()],
    sum_micros: [u64; OPS.len()],
}

impl Default for TrafficTotals {
    fn default() -> Self {
        TrafficTotals {
            counts: [[0; BUCKETS]; OPS.len()],
            sum_micros: [0; OPS.len()],
        }
    }
}

impl TrafficTotals {
    /// Count one request.
    pub fn record(&mut self, op: TrafficOp, micros: u64) {
        let count = &mut self.counts[op.index()][bucket_of(micros)];
        *count = count.saturating_add(1);
        let sum = &mut self.sum_micros[op.index()];
        *sum = sum.saturating_add(micros);
    }

    /// Requests of `op` since start.
    pub fn count(&self, op: TrafficOp) -> u64 {
        self.counts[op.index()].iter().sum()
    }

    /// Microseconds spent in requests of `op` since start.
    pub fn sum_micros(&self, op: TrafficOp) -> u64 {
        self.sum_micros[op.index()]
    }

    /// Requests of `op` that took less than 2^`power` µs: exact, as a
    /// bucket never straddles a power of two.
    pub fn below_power_of_two(&self, op: TrafficOp, power: usize) -> u64 {
        let end = (power * SUB).min(BUCKETS);
        self.counts[op.index()][..end].iter().sum()
    }
}

/// A node's traffic ring and totals behind a lock, recorded into by the
/// HTTP and S3 listeners.
#[derive(Default)]
pub struct Traffic(Mutex<(TrafficRing, TrafficTotals)>);

impl Traffic {
    /// Count one request.
    pub fn record(&self, op: TrafficOp, elapsed: std::time::Duration) {
        let now_ms = wall_ms();
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if let Ok(mut guard) = self.0.lock() {
            guard.0.record(op, micros, now_ms);
            guard.1.record(op, micros);
        }
    }

    /// Every request since start (a copy of about 5 KiB).
    pub fn totals(&self) -> TrafficTotals {
        self.0
            .lock()
            .map(|guard| guard.1.clone())
            .unwrap_or_default()
    }

    /// The last 15 minutes.
    pub fn snapshot(&self) -> Vec<SlotOp> {
        let now_ms = wall_ms();
        self.0
            .lock()
            .map(|guard| guard.0.snapshot(now_ms))
            .unwrap_or_default()
    }
}

/// Milliseconds since the Unix epoch (slots line up across nodes whose
/// clocks agree; the dashboard shows what each node counted).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_ring_keeps_15_minutes_and_forgets_older_slots() {
        let mut ring = TrafficRing::default();
        let t0 = 1_000_000 * SLOT_MS;
        ring.record(TrafficOp::KvGet, 1_000, t0);
        ring.record(TrafficOp::KvGet, 1_000, t0 + 1);
        ring.record(TrafficOp::S3Put, 20_000, t0 + SLOT_MS);
        let snap = ring.snapshot(t0 + SLOT_MS);
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].count(), 2);
        assert_eq!(snap[1].op, TrafficOp::S3Put);
        // 15 minutes later the first slot is gone; its ring position is
        // reused by a new slot without its counts. The second slot is
        // still within the 15 minutes.
        let later = t0 + SLOTS as u64 * SLOT_MS;
        ring.record(TrafficOp::KvGet, 5, later);
        let snap = ring.snapshot(later);
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].op, TrafficOp::S3Put);
        assert_eq!((snap[1].op, snap[1].count()), (TrafficOp::KvGet, 1));
        // One slot later the second is gone too.
        assert_eq!(ring.snapshot(later + SLOT_MS).len(), 1);
    }

    #[test]
    fn merged_slots_add_up() {
        let mut a = TrafficRing::default();
        let mut b = TrafficRing::default();
        for i in 0..100 {
            a.record(TrafficOp::KvPut, 1_000, i);
            b.record(TrafficOp::KvPut, 100_000, i);
        }
        let mut merged = a.snapshot(0)[0].clone();
        merged.merge(&b.snapshot(0)[0]);
        assert_eq!(merged.count(), 200);
        assert!((merged.quantile_ms(0.5) - 1.0).abs() < 0.15);
        assert!((merged.quantile_ms(0.99) - 100.0).abs() < 15.0);
    }

    #[test]
    fn totals_split_exactly_at_powers_of_two() {
        let mut t = TrafficTotals::default();
        for micros in [1, 63, 64, 65, 127, 128, 1_000_000] {
            t.record(TrafficOp::S3Get, micros);
        }
        assert_eq!(t.count(TrafficOp::S3Get), 7);
        assert_eq!(t.count(TrafficOp::KvGet), 0);
        assert_eq!(t.below_power_of_two(TrafficOp::S3Get, 6), 2);
        assert_eq!(t.below_power_of_two(TrafficOp::S3Get, 7), 5);
        assert_eq!(t.below_power_of_two(TrafficOp::S3Get, POWERS), 7);
        assert_eq!(t.sum_micros(TrafficOp::S3Get), 1_000_448);
    }

    proptest! {
        #[test]
        fn a_bucket_stands_for_its_latencies_within_an_eighth(micros in 1u64..(1 << POWERS)) {
            let b = bucket_of(micros);
            prop_assert!(b < BUCKETS);
            let mid = bucket_micros(b);
            prop_assert!((mid - micros as f64).abs() <= micros as f64 / 8.0 + 1.0, "{micros} → {b} → {mid}");
            prop_assert!(bucket_of(micros + 1) >= b);
        }
    }
}
