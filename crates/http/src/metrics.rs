//! Request counters and latency histograms, exported as Prometheus text at
//! `/metrics` and as Riak-style figures at `/stats`.
//!
//! One registry per node (not a global), so several nodes in one process
//! keep their own counters.

use crate::App;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpStatus {
    op: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HintTarget {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Peer {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabel {
    partition: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Op {
    op: &'static str,
}

/// Longest latency the `/stats` histograms record: 60 s in microseconds.
const LATENCY_US_MAX: u64 = 60_000_000;

/// The node's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<OpStatus, Counter>,
    latency: Family<Op, Histogram>,
    under_replicated: Gauge,
    members: Gauge,
    layout_version: Gauge,
    read_repairs: Gauge,
    nearby_reads_local: Gauge,
    nearby_reads_quorum: Gauge,
    hints_pending: Family<HintTarget, Gauge>,
    hint_bytes_pending: Family<HintTarget, Gauge>,
    hints_refused: Gauge,
    peer_up: Family<Peer, Gauge>,
    hints_delivered: Gauge,
    aae_exchanges: Gauge,
    aae_keys_repaired: Gauge,
    aae_trees_loaded: Gauge,
    aae_partitions_rebuilding: Gauge,
    aae_rebuild_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    tombstones_held: Gauge,
    tombstones_reaped: Gauge,
    handoff_partitions: Gauge,
    handoff_bytes_left: Gauge,
    handoff_bytes: Gauge,
    aae_last_exchange: Family<PartitionLabel, Gauge>,
    /// Per operation, latencies in microseconds, for percentiles in /stats.
    hdr: Mutex<HashMap<&'static str, hdrhistogram::Histogram<u64>>>,
}

impl Metrics {
    pub(crate) fn new(node: node::Node) -> Self {
        let mut registry = Registry::with_prefix("ringstore");
        registry.register_collector(Box::new(crate::lag_metrics::LagCollector(node.clone())));
        registry.register_collector(Box::new(crate::traffic_metrics::TrafficCollector(node)));
        let requests = Family::<OpStatus, Counter>::default();
        let latency = Family::<Op, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        let (under_replicated, members, layout_version, read_repairs) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        registry.register(
            "http_requests",
            "Client HTTP requests by operation and status class",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Client HTTP request latency by operation",
            latency.clone(),
        );
        registry.register(
            "under_replicated_partitions",
            "Partitions with fewer owners than n_val 3",
            under_replicated.clone(),
        );
        registry.register(
            "ring_members",
            "Members in this node's layout",
            members.clone(),
        );
        registry.register(
            "layout_version",
            "Layout version (membership events folded)",
            layout_version.clone(),
        );
        let hints_pending = Family::<HintTarget, Gauge>::default();
        let peer_up = Family::<Peer, Gauge>::default();
        registry.register(
            "peer_up",
            "1 if this node heard from the peer within 2.5 gossip intervals, else 0",
            peer_up.clone(),
        );
        let hints_delivered = Gauge::default();
        registry.register(
            "hints_pending",
            "Hints this node holds, per target node",
            hints_pending.clone(),
        );
        let hint_bytes_pending = Family::<HintTarget, Gauge>::default();
        registry.register(
            "hint_bytes_pending",
            "Bytes of the hints this node holds, per target node (bounded by hint_bytes_max_per_target)",
            hint_bytes_pending.clone(),
        );
        let hints_refused = Gauge::default();
        registry.register(
            "hints_refused",
            "Hints this node refused since start because the target's hint budget was full",
            hints_refused.clone(),
        );
        registry.register(
            "hints_delivered",
            "Hints this node delivered since start",
            hints_delivered.clone(),
        );
        let (aae_exchanges, aae_keys_repaired) = (Gauge::default(), Gauge::default());
        let aae_trees_loaded = Gauge::default();
        let aae_partitions_rebuilding = Gauge::default();
        let aae_rebuild_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "aae_partitions_rebuilding",
            "Partitions whose anti-entropy tree is being rebuilt beside service (exchanges skip them)",
            aae_partitions_rebuilding.clone(),
        );
        registry.register(
            "aae_rebuild_seconds",
            "How long the last anti-entropy tree rebuild took (0: none since start)",
            aae_rebuild_seconds.clone(),
        );
        let (tombstones_held, tombstones_reaped) = (Gauge::default(), Gauge::default());
        registry.register(
            "tombstones_held",
            "Tombstones this node held when its reaper last walked its whole index (-1: no walk yet, or delete_mode keep)",
            tombstones_held.clone(),
        );
        registry.register(
            "tombstones_reaped",
            "Tombstones this node reaped since start",
            tombstones_reaped.clone(),
        );
        let (handoff_partitions, handoff_bytes_left, handoff_bytes) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "handoff_partitions_in_flight",
            "Partitions this node is pulling from their previous owners",
            handoff_partitions.clone(),
        );
        registry.register(
            "handoff_bytes_left",
            "Bytes left to pull in the partitions in flight",
            handoff_bytes_left.clone(),
        );
        registry.register(
            "handoff_bytes_received",
            "Bytes this node pulled by ownership handoff since start",
            handoff_bytes.clone(),
        );
        registry.register(
            "aae_trees_loaded",
            "1 if the anti-entropy trees were loaded as a clean stop saved them, 0 if rebuilt from storage",
            aae_trees_loaded.clone(),
        );
        let aae_last_exchange = Family::<PartitionLabel, Gauge>::default();
        registry.register(
            "aae_exchanges",
            "Anti-entropy exchanges completed since start",
            aae_exchanges.clone(),
        );
        registry.register(
            "aae_keys_repaired",
            "Keys anti-entropy synced since start",
            aae_keys_repaired.clone(),
        );
        registry.register(
            "aae_last_exchange_timestamp_seconds",
            "Unix time of each partition's last completed anti-entropy exchange",
            aae_last_exchange.clone(),
        );
        let (nearby_reads_local, nearby_reads_quorum) = (Gauge::default(), Gauge::default());
        registry.register(
            "nearby_reads_local",
            "Website reads answered by this node's own replica since start",
            nearby_reads_local.clone(),
        );
        registry.register(
            "nearby_reads_quorum",
            "Website reads that needed a quorum read since start",
            nearby_reads_quorum.clone(),
        );
        registry.register(
            "read_repairs",
            "Replicas repaired by reads since start",
            read_repairs.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            under_replicated,
            members,
            layout_version,
            read_repairs,
            nearby_reads_local,
            nearby_reads_quorum,
            hints_pending,
            hint_bytes_pending,
            hints_refused,
            peer_up,
            hints_delivered,
            aae_exchanges,
            aae_keys_repaired,
            aae_trees_loaded,
            aae_partitions_rebuilding,
            aae_rebuild_seconds,
            tombstones_held,
            tombstones_reaped,
            handoff_partitions,
            handoff_bytes_left,
            handoff_bytes,
            aae_last_exchange,
            hdr: Mutex::default(),
        }
    }

    fn record(&self, op: &'static str, status: u16, seconds: f64) {
        let class = match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&OpStatus { op, status: class })
            .inc();
        self.latency.get_or_create(&Op { op }).observe(seconds);
        if let Ok(mut h) = self.hdr.lock() {
            let hist = h.entry(op).or_insert_with(|| {
                hdrhistogram::Histogram::new_with_max(LATENCY_US_MAX, 3)
                    .unwrap_or_else(|_| unreachable!("valid bounds"))
            });
            let _ = hist.record(((seconds * 1e6) as u64).clamp(1, LATENCY_US_MAX));
        }
    }

    /// Count of requests and latency percentiles (µs) for an operation.
    pub(crate) fn summary(&self, op: &str) -> (u64, [u64; 4]) {
        let Ok(h) = self.hdr.lock() else {
            return (0, [0; 4]);
        };
        match h.get(op) {
            Some(x) => (
                x.len(),
                [
                    x.value_at_quantile(0.5),
                    x.value_at_quantile(0.95),
                    x.value_at_quantile(0.99),
                    x.max(),
                ],
            ),
            None => (0, [0; 4]),
        }
    }

    pub(crate) fn encode(&self, app: &App) -> String {
        let node = &app.node;
        self.under_replicated
            .set(node.under_replicated_partitions() as i64);
        self.members.set(node.layout().members().len() as i64);
        let status = node.cluster_status();
        self.layout_version.set(status.layout_version as i64);
        self.read_repairs.set(status.read_repairs as i64);
        self.nearby_reads_local
            .set(status.nearby_reads_local as i64);
        self.nearby_reads_quorum
            .set(status.nearby_reads_quorum as i64);
        self.hints_delivered.set(status.hints_delivered as i64);
        self.aae_exchanges.set(status.aae_exchanges as i64);
        self.aae_keys_repaired.set(status.aae_keys_repaired as i64);
        self.aae_trees_loaded
            .set(i64::from(status.aae_trees_loaded));
        self.aae_partitions_rebuilding
            .set(status.aae_partitions_rebuilding as i64);
        self.aae_rebuild_seconds
            .set(status.aae_rebuild_ms as f64 / 1000.0);
        self.tombstones_held
            .set(status.tombstones_held.map_or(-1, |h| h as i64));
        self.tombstones_reaped.set(status.tombstones_reaped as i64);
        let transfers = node.transfers();
        self.handoff_partitions.set(transfers.len() as i64);
        self.handoff_bytes_left
            .set(transfers.iter().map(|t| t.bytes_left as i64).sum());
        self.handoff_bytes.set(node.handoff_bytes_received() as i64);
        for (partition, ms) in node.aae_last_exchanges() {
            self.aae_last_exchange
                .get_or_create(&PartitionLabel { partition })
                .set((ms / 1000) as i64);
        }
        // Every known node gets a series, so a drained target reads 0.
        for n in &status.nodes {
            self.peer_up
                .get_or_create(&Peer { peer: n.id.clone() })
                .set(i64::from(n.liveness == "up"));
            self.hints_pending
                .get_or_create(&HintTarget {
                    target: n.id.clone(),
                })
                .set(n.hints_pending as i64);
            self.hint_bytes_pending
                .get_or_create(&HintTarget {
                    target: n.id.clone(),
                })
                .set(n.hint_bytes_pending as i64);
        }
        self.hints_refused.set(status.hints_refused as i64);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.push_str("# encoding failed\n");
        }
        prometheus_text(&out)
    }
}

/// prometheus-client writes OpenMetrics; `/metrics` answers in the
/// Prometheus text format (0.0.4) that its content type names and every
/// scraper and `promtool check metrics` read. The two differ, for what
/// we export, only in counters (OpenMetrics names the family without
/// `_total`, its samples with it; 0.0.4 names both with it) and in the
/// closing `# EOF`.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod text_tests {
    use super::prometheus_text;

    #[test]
    fn counters_are_named_with_total_and_eof_goes() {
        let om = "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total{op=\"get\"} 1\n# HELP b Bytes.\n# TYPE b gauge\nb 2\n# EOF\n";
        assert_eq!(
            prometheus_text(om),
            "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total{op=\"get\"} 1\n# HELP b Bytes.\n# TYPE b gauge\nb 2\n"
        );
    }
}

fn classify(method: &Method, path: &str) -> &'static str {
    let object = path.ends_with("/keys/{key}");
    match (method.as_str(), path) {
        ("GET", p) if p.starts_with("/admin/replica") => "replica",
        ("GET", _) if object => "get",
        ("PUT" | "POST", _) if object => "put",
        ("POST", p) if p.ends_with("/keys") => "put",
        ("DELETE", _) if object => "delete",
        ("GET", p) if p.ends_with("/keys") => "list_keys",
        ("GET", p) if p.ends_with("/buckets") => "list_buckets",
        (_, p) if p.ends_with("/props") => "props",
        (_, p) if p.starts_with("/admin") => "admin",
        (_, p) if p.starts_with("/ui") => "ui",
        _ => "other",
    }
}

/// Middleware: time every request and count it by operation and status.
pub(crate) async fn track(State(app): State<App>, req: Request, next: Next) -> Response {
    let op = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |p| classify(req.method(), p.as_str()));
    let started = tokio::time::Instant::now();
    let resp = next.run(req).await;
    let elapsed = started.elapsed();
    app.metrics
        .record(op, resp.status().as_u16(), elapsed.as_secs_f64());
    // The dashboard's traffic leaves out the admin API (its own polling).
    let traffic = match op {
        "get" => Some(node::traffic::TrafficOp::KvGet),
        "put" => Some(node::traffic::TrafficOp::KvPut),
        "delete" => Some(node::traffic::TrafficOp::KvDelete),
        "admin" | "ui" => None,
        _ => Some(node::traffic::TrafficOp::Other),
    };
    if let Some(op) = traffic {
        app.node.traffic().record(op, elapsed);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named() {
        assert_eq!(
            classify(&Method::GET, "/buckets/{bucket}/keys/{key}"),
            "get"
        );
        assert_eq!(
            classify(&Method::PUT, "/types/{type}/buckets/{bucket}/keys/{key}"),
            "put"
        );
        assert_eq!(classify(&Method::POST, "/buckets/{bucket}/keys"), "put");
        assert_eq!(
            classify(&Method::GET, "/buckets/{bucket}/keys"),
            "list_keys"
        );
        assert_eq!(
            classify(&Method::GET, "/admin/replica/buckets/{bucket}/keys/{key}"),
            "replica"
        );
    }
}
