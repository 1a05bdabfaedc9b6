//! `ringstore_request_duration_seconds`: every request this node served
//! since start, per operation (key-value and S3 GET/PUT/DELETE, the rest
//! as `other`), read from the node's traffic totals at each scrape.
//!
//! It counts what the dashboard's traffic view draws, so a Grafana board
//! (docs/grafana/) shows the same operations. `ringstore_http_requests`
//! stays for the key-value listener's status classes.

use node::traffic::{TrafficOp, TrafficTotals, OPS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;

/// Bucket bounds are powers of two of microseconds, from 2^6 (64 µs) to
/// 2^24 (16.8 s): exact, as the node's buckets never straddle one.
const FIRST_POWER: usize = 6;
const LAST_POWER: usize = 24;

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

/// Reads the totals from the node at each scrape.
pub(crate) struct TrafficCollector(pub(crate) node::Node);

impl std::fmt::Debug for TrafficCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrafficCollector")
    }
}

/// One operation's histogram, in the shape the encoder wants.
#[derive(Debug)]
struct OpHistogram<'a>(&'a TrafficTotals, TrafficOp);

impl EncodeMetric for OpHistogram<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (totals, op) = (self.0, self.1);
        let count = totals.count(op);
        // The encoder wants per-bucket counts and sums them itself.
        let mut below_previous = 0;
        let mut buckets: Vec<(f64, u64)> = (FIRST_POWER..=LAST_POWER)
            .map(|power| {
                let below = totals.below_power_of_two(op, power);
                let here = below - below_previous;
                below_previous = below;
                ((1u64 << power) as f64 / 1e6, here)
            })
            .collect();
        buckets.push((f64::INFINITY, count - below_previous));
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            totals.sum_micros(op) as f64 / 1e6,
            count,
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

impl Collector for TrafficCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals = self.0.traffic().totals();
        let mut family = encoder.encode_descriptor(
            "request_duration_seconds",
            "Requests this node served since start and their latency, by operation (kv_get, kv_put, kv_delete, s3_get, s3_put, s3_delete, other); the admin API and /ui are left out",
            None,
            MetricType::Histogram,
        )?;
        for op in OPS {
            let label = OpLabel { op: op.name() };
            OpHistogram(&totals, op).encode(family.encode_family(&label)?)?;
        }
        Ok(())
    }
}
