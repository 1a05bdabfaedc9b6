//! # Replication lag to other zones
//!
//! A write is acknowledged once `w` replicas hold it; in a cluster spread
//! over data centers the replicas in far zones often answer after that.
//! How long after is what an operator wants to know ("if this data center
//! went dark now, how much acknowledged data would the others be
//! missing?"). [`ReplicationLag`] records, per peer zone, the time from a
//! write's acknowledgement to the moment the coordinator learns that the
//! replica in that zone holds it: 0 when it held it before the
//! acknowledgement. It is measured at the coordinator, so it includes the
//! reply's trip back: an upper bound of the true lag by one one-way delay.
//!
//! Memory: one histogram per zone of a member (bounded by the layout).

use crate::locks::Held;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Longest lag recorded: a minute (longer ones count as a minute).
const LAG_MICROS_MAX: u64 = 60_000_000;
/// Bucket bounds exported to Prometheus, in seconds.
pub const BUCKETS_SECONDS: [f64; 14] = [
    0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// One zone's lag, as exported.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ZoneLag {
    /// The peer zone.
    pub zone: String,
    /// Writes whose replica in that zone confirmed.
    pub count: u64,
    /// Sum of the lags, in seconds.
    pub sum_seconds: f64,
    /// Median lag, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile lag, in milliseconds.
    pub p99_ms: f64,
    /// Writes per bucket of [`BUCKETS_SECONDS`] (not cumulative), then
    /// the ones above the last bound.
    #[serde(skip)]
    pub buckets: Vec<u64>,
}

/// Lag histograms by peer zone.
#[derive(Default)]
pub(crate) struct ReplicationLag {
    zones: Mutex<BTreeMap<String, hdrhistogram::Histogram<u64>>>,
}

impl ReplicationLag {
    /// Record that the replica in `zone` confirmed `lag` after the ack.
    pub(crate) fn record(&self, zone: &str, lag: Duration) {
        let micros = (lag.as_micros() as u64).min(LAG_MICROS_MAX);
        let mut zones = self.zones.held();
        if !zones.contains_key(zone) {
            let Ok(h) = hdrhistogram::Histogram::new_with_max(LAG_MICROS_MAX, 2) else {
                return;
            };
            zones.insert(zone.to_string(), h);
        }
        if let Some(h) = zones.get_mut(zone) {
            h.saturating_record(micros);
        }
    }

    /// Every zone's lag so far.
    pub(crate) fn snapshot(&self) -> Vec<ZoneLag> {
        let zones = self.zones.held();
        zones
            .iter()
            .map(|(zone, h)| {
                let mut buckets = Vec::with_capacity(BUCKETS_SECONDS.len() + 1);
                let mut below = 0;
                for bound in BUCKETS_SECONDS {
                    let upto = h.count_between(0, (bound * 1e6) as u64);
                    buckets.push(upto - below);
                    below = upto;
                }
                buckets.push(h.len() - below);
                ZoneLag {
                    zone: zone.clone(),
                    count: h.len(),
                    sum_seconds: h.mean() * h.len() as f64 / 1e6,
                    p50_ms: h.value_at_quantile(0.5) as f64 / 1e3,
                    p99_ms: h.value_at_quantile(0.99) as f64 / 1e3,
                    buckets,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lags_land_in_their_buckets_and_quantiles() {
        let lag = ReplicationLag::default();
        for _ in 0..98 {
            lag.record("dc2", Duration::ZERO);
        }
        lag.record("dc2", Duration::from_millis(30));
        lag.record("dc2", Duration::from_secs(3600));
        let s = lag.snapshot();
        assert_eq!(s.len(), 1);
        let z = &s[0];
        assert_eq!((z.zone.as_str(), z.count), ("dc2", 100));
        assert_eq!(z.buckets.iter().sum::<u64>(), 100);
        assert_eq!(z.buckets[0], 98, "zero lag");
        assert_eq!(z.buckets[6], 1, "30 ms is in (20, 50] ms");
        assert_eq!(
            *z.buckets.last().unwrap(),
            1,
            "capped at a minute, above 10 s"
        );
        assert_eq!(z.p50_ms, 0.0);
        assert!(z.p99_ms >= 29.0 && z.p99_ms <= 31.0, "{}", z.p99_ms);
    }
}
