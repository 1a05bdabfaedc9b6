//! `ringstore_replication_lag_seconds`: the node's replication lag per
//! peer zone (`node::lag`), exported as a Prometheus histogram read from
//! the node at each scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ZoneLabel {
    zone: String,
}

/// Reads the lag from the node at each scrape.
pub(crate) struct LagCollector(pub(crate) node::Node);

impl std::fmt::Debug for LagCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LagCollector")
    }
}

/// One zone's histogram, in the shape the encoder wants.
#[derive(Debug)]
struct LagHistogram(node::ZoneLag);

impl EncodeMetric for LagHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let z = &self.0;
        let buckets: Vec<(f64, u64)> = node::LAG_BUCKETS_SECONDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(z.buckets.iter().copied())
            .collect();
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            z.sum_seconds,
            z.count,
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

impl Collector for LagCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "replication_lag_seconds",
            "Time from a write's acknowledgement at this coordinator until its replica in the peer zone confirmed it (0: before the acknowledgement)",
            None,
            MetricType::Histogram,
        )?;
        for z in self.0.replication_lag() {
            let label = ZoneLabel {
                zone: z.zone.clone(),
            };
            LagHistogram(z).encode(family.encode_family(&label)?)?;
        }
        Ok(())
    }
}
