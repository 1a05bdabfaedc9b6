//! Node configuration: every setting with its default, readable from TOML.
//!
//! `docs/CONFIG.md` documents each key; keep the two in step.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The shortest admin token accepted: long enough not to be guessed.
pub const ADMIN_TOKEN_CHARS_MIN: usize = 16;

/// Settings of one node. Unknown keys in a config file are an error, so a
/// typo is caught at start rather than silently ignored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the node keeps its data.
    pub data_dir: PathBuf,
    /// Client HTTP listener (key-value and admin API); also what peers are
    /// told to use.
    pub http: String,
    /// S3 listener.
    pub s3: String,
    /// Inter-node RPC listener.
    pub rpc: String,
    /// Data center or rack name.
    pub zone: String,
    /// Relative share of partitions this node holds (0 holds none).
    pub capacity: u32,
    /// RPC addresses of members to join at start (any member will do).
    pub join: Vec<String>,
    /// Shared secret every node of the cluster must know.
    pub cluster_secret: String,
    /// Encrypt node-to-node traffic (RPC and gossip) with keys from the
    /// handshake. Links authenticate either way; every node must agree.
    pub internode_encryption: bool,
    /// `2^partition_bits` partitions; fixed when the cluster is created.
    pub partition_bits: u8,
    /// Deadline of a client request, all remote calls included.
    pub request_timeout_ms: u64,
    /// How often the node exchanges cluster state with a random peer.
    pub gossip_interval_ms: u64,
    /// Failure detector (SWIM): how often this node probes one member.
    pub probe_interval_ms: u64,
    /// How long a probe waits for a direct answer before asking other
    /// members to probe indirectly; above the network's round trip.
    pub probe_rtt_ms: u64,
    /// How long a suspected member has to refute the suspicion before it
    /// is declared down.
    pub suspect_timeout_ms: u64,
    /// Largest value the key-value API accepts.
    pub value_bytes_max: usize,
    /// Bytes of key-value bodies above 64 KiB this node accepts at once;
    /// further large writes wait (up to the request timeout), then get 503.
    pub values_in_flight_bytes_max: usize,
    /// Keys `?keys=true` answers at most; a larger bucket gets a 400 that
    /// points to `?keys=stream`.
    pub list_keys_buffered_max: usize,
    /// Bytes of the storage engine's block cache (index, filter and data
    /// blocks): lookups and listing seeks in a large data set read fewer
    /// blocks again. fjall's default, 32 MiB; 256 MiB measured no faster
    /// at a million objects per node (docs/BENCHMARKS.md).
    pub storage_cache_bytes: u64,
    /// Largest inter-node message.
    pub rpc_frame_bytes_max: usize,
    /// Calls in flight per peer connection before callers wait.
    pub rpc_inflight_max: usize,
    /// Bytes of messages one peer connection holds in each direction
    /// (requests queued to send, requests being answered, replies queued)
    /// before callers wait; a larger message goes alone.
    pub rpc_queue_bytes_max: usize,
    /// Most client connections the HTTP (key-value, admin) listener keeps
    /// open; past it, new connections wait until some close.
    pub http_connections_max: usize,
    /// Most client connections the S3 listener keeps open.
    pub s3_connections_max: usize,
    /// A client's request head must arrive within this long of its
    /// connection being ready for one (idle keep-alive time included).
    pub client_header_timeout_ms: u64,
    /// A client connection waiting to read that moves no byte for this
    /// long is closed (stalled bodies, dead clients).
    pub client_io_timeout_ms: u64,
    /// Accept `POST /admin/debug/faults` (tests only).
    pub enable_fault_injection: bool,
    /// The admin API's bearer token: every `/admin/*` request must carry
    /// `Authorization: Bearer <token>`. `None`: the admin API refuses
    /// every request (with a 401 saying how to set one).
    pub admin_token: Option<String>,
    /// The key-value API needs HTTP basic credentials of a user with a
    /// grant on the bucket (`ringstore user create`). Off: Riak's open API.
    pub kv_auth: bool,
    /// With `kv_auth`, accept credentials over plain HTTP (a trusted
    /// network); otherwise only over TLS.
    pub kv_auth_allow_plaintext: bool,
    /// Lab only: one-way latency (ms) added to everything this node sends
    /// to peers in the named zones, an emulated WAN (`node::lab`).
    pub lab_zone_latency_ms: std::collections::BTreeMap<String, u64>,
    /// Lab only: each message's latency is drawn from latency ± this.
    pub lab_latency_jitter_ms: u64,
    /// Lab only: fraction of gossip datagrams to those zones dropped.
    pub lab_datagram_loss: f64,
    /// PEM certificate chain (leaf first) the HTTP and S3 listeners serve
    /// TLS with; with `tls_key`. `None`: plain HTTP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Whether `/metrics` needs the admin token too (open by default, for
    /// scrapers).
    pub metrics_require_token: bool,
    /// Keep writes for unreachable primaries as hints and deliver them when
    /// the primary answers again. Off only to test anti-entropy alone.
    pub hinted_handoff: bool,
    /// How long a write waits for one primary before a fallback (or a
    /// hint) stands in for it and the primary becomes suspect. The request
    /// deadline still bounds the whole write.
    pub replica_patience_ms: u64,
    /// Active anti-entropy: compare Merkle trees with other replicas and
    /// sync the keys that differ.
    pub anti_entropy: bool,
    /// Every partition this node is a primary of is compared with each
    /// other primary once per interval.
    pub aae_interval_ms: u64,
    /// Keys one exchange syncs at most (the rest wait for the next one).
    pub aae_keys_per_exchange_max: usize,
    /// How often the node tries to deliver the hints it holds.
    pub hint_delivery_interval_ms: u64,
    /// Hints read from storage at once for one target (at most 4 MiB of
    /// them, or one larger hint).
    pub hint_batch_max: usize,
    /// Hint deliveries of this node, all targets together, send at most
    /// this many bytes per second.
    pub hint_bytes_per_sec: u64,
    /// Stored bytes of hints one node keeps for one target; past it, new
    /// hints for that target are refused and anti-entropy repairs them.
    pub hint_bytes_max_per_target: u64,
    /// The slowest rate at which a value is expected to cross a link and
    /// reach a replica's disk. Every deadline and patience that covers a
    /// value's transfer grows by its size at this rate, so a large value
    /// is not timed out (or handed off) for being large.
    pub transfer_floor_bytes_per_sec: u64,
    /// Ownership handoff: bytes per second this node pulls at most.
    pub handoff_bytes_per_sec: u64,
    /// How long a block must have gone unreferenced, and unwritten,
    /// before the collector drops it (see `collect`).
    pub s3_block_grace_ms: u64,
    /// How often the collector works through its log of blocks that may
    /// have lost their last reference; 0 turns collection off.
    pub s3_block_collect_interval_ms: u64,
    /// Log entries one collection pass handles at most.
    pub s3_block_collect_per_pass_max: usize,
    /// Riak's `delete_mode`: how long after a delete its tombstone is
    /// kept once every primary holds it (ms), or `"keep"` to keep
    /// tombstones forever.
    pub delete_mode: DeleteMode,
    /// How often the tombstone reaper walks its index.
    pub reap_interval_ms: u64,
    /// Tombstone index entries one reaping pass reads at most.
    pub reap_keys_per_pass_max: usize,
    /// How long every node remembers a reaped tombstone's causal context,
    /// so versions it covered that are still in flight (a delayed repair
    /// or replication) are not stored again.
    pub reap_memory_ms: u64,
    /// Reaped tombstones one node remembers at most; when full, reaping
    /// waits for the oldest to expire.
    pub reap_memory_keys_max: usize,
}

/// When tombstones are removed: Riak's `delete_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "DeleteModeText", into = "DeleteModeText")]
pub enum DeleteMode {
    /// Never: every tombstone stays.
    Keep,
    /// This many ms after the newest delete, once every primary holds it.
    GraceMs(u64),
}

impl DeleteMode {
    /// The grace period, or `None` when tombstones are kept.
    pub fn grace_ms(self) -> Option<u64> {
        match self {
            DeleteMode::Keep => None,
            DeleteMode::GraceMs(ms) => Some(ms),
        }
    }
}

/// How `delete_mode` is written: `"keep"`, `"immediate"` (0) or ms.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum DeleteModeText {
    Ms(u64),
    Word(String),
}

impl TryFrom<DeleteModeText> for DeleteMode {
    type Error = String;

    fn try_from(text: DeleteModeText) -> Result<Self, String> {
        match text {
            DeleteModeText::Ms(ms) => Ok(DeleteMode::GraceMs(ms)),
            DeleteModeText::Word(w) if w == "keep" => Ok(DeleteMode::Keep),
            DeleteModeText::Word(w) if w == "immediate" => Ok(DeleteMode::GraceMs(0)),
            DeleteModeText::Word(w) => Err(format!(
                "delete_mode {w:?} is not \"keep\", \"immediate\" or a number of milliseconds"
            )),
        }
    }
}

impl From<DeleteMode> for DeleteModeText {
    fn from(mode: DeleteMode) -> Self {
        match mode {
            DeleteMode::Keep => DeleteModeText::Word("keep".into()),
            DeleteMode::GraceMs(ms) => DeleteModeText::Ms(ms),
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            data_dir: PathBuf::from("./ringstore-data"),
            http: "127.0.0.1:8098".into(),
            s3: "127.0.0.1:9000".into(),
            rpc: "127.0.0.1:7000".into(),
            zone: "default".into(),
            capacity: 1,
            join: Vec::new(),
            cluster_secret: "ringstore-insecure-default-secret".into(),
            internode_encryption: true,
            partition_bits: ring::PARTITION_BITS_DEFAULT,
            request_timeout_ms: 2000,
            gossip_interval_ms: 1000,
            probe_interval_ms: 400,
            probe_rtt_ms: 150,
            suspect_timeout_ms: 800,
            value_bytes_max: 50 * 1024 * 1024,
            values_in_flight_bytes_max: 256 * 1024 * 1024,
            list_keys_buffered_max: 100_000,
            storage_cache_bytes: 32 << 20,
            rpc_frame_bytes_max: 64 * 1024 * 1024,
            rpc_inflight_max: 1024,
            rpc_queue_bytes_max: 64 * 1024 * 1024,
            http_connections_max: 2048,
            s3_connections_max: 2048,
            client_header_timeout_ms: 30_000,
            client_io_timeout_ms: 60_000,
            enable_fault_injection: false,
            admin_token: None,
            tls_cert: None,
            tls_key: None,
            kv_auth: false,
            kv_auth_allow_plaintext: false,
            lab_zone_latency_ms: Default::default(),
            lab_latency_jitter_ms: 0,
            lab_datagram_loss: 0.0,
            metrics_require_token: false,
            hinted_handoff: true,
            anti_entropy: true,
            aae_interval_ms: 60_000,
            aae_keys_per_exchange_max: 1000,
            replica_patience_ms: 500,
            hint_delivery_interval_ms: 200,
            hint_batch_max: 256,
            hint_bytes_per_sec: 64 * 1024 * 1024,
            hint_bytes_max_per_target: 1 << 30,
            transfer_floor_bytes_per_sec: 8 * 1024 * 1024,
            handoff_bytes_per_sec: 200_000_000,
            s3_block_grace_ms: 86_400_000,
            s3_block_collect_interval_ms: 10_000,
            s3_block_collect_per_pass_max: 10_000,
            delete_mode: DeleteMode::GraceMs(3000),
            reap_interval_ms: 2000,
            reap_keys_per_pass_max: 10_000,
            reap_memory_ms: 60_000,
            reap_memory_keys_max: 200_000,
        }
    }
}

/// A setting out of range.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid setting {key}: {problem}")]
pub struct ConfigError {
    /// The config key.
    pub key: &'static str,
    /// What is wrong and what would be right.
    pub problem: String,
}

impl NodeConfig {
    /// Check every range the rest of the node relies on.
    ///
    /// # Errors
    ///
    /// The first setting out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, problem: String| Err(ConfigError { key, problem });
        if !(1..=ring::PARTITION_BITS_MAX).contains(&self.partition_bits) {
            return bad(
                "partition_bits",
                format!("{} is outside 1..=16", self.partition_bits),
            );
        }
        if self.request_timeout_ms == 0 || self.gossip_interval_ms == 0 {
            return bad(
                "request_timeout_ms/gossip_interval_ms",
                "must be above 0".into(),
            );
        }
        if self.probe_rtt_ms == 0
            || self.suspect_timeout_ms == 0
            || self.probe_interval_ms < 2 * self.probe_rtt_ms
        {
            return bad(
                "probe_interval_ms/probe_rtt_ms/suspect_timeout_ms",
                format!(
                    "need probe_interval_ms ({}) at least twice probe_rtt_ms ({}), both above 0, and suspect_timeout_ms above 0",
                    self.probe_interval_ms, self.probe_rtt_ms
                ),
            );
        }
        if self.value_bytes_max + 1024 * 1024 > self.rpc_frame_bytes_max {
            return bad(
                "rpc_frame_bytes_max",
                format!(
                    "{} must exceed value_bytes_max ({}) by at least 1 MiB so any accepted value can be replicated",
                    self.rpc_frame_bytes_max, self.value_bytes_max
                ),
            );
        }
        if self.values_in_flight_bytes_max < self.value_bytes_max {
            return bad(
                "values_in_flight_bytes_max",
                format!(
                    "{} must be at least value_bytes_max ({}) so the largest value can be written",
                    self.values_in_flight_bytes_max, self.value_bytes_max
                ),
            );
        }
        if self.aae_interval_ms == 0 || self.aae_keys_per_exchange_max == 0 {
            return bad(
                "aae_interval_ms/aae_keys_per_exchange_max",
                "must be above 0".into(),
            );
        }
        if self.hint_delivery_interval_ms == 0 || self.hint_batch_max == 0 {
            return bad(
                "hint_delivery_interval_ms/hint_batch_max",
                "must be above 0".into(),
            );
        }
        if self.hint_bytes_per_sec == 0
            || self.hint_bytes_max_per_target == 0
            || self.transfer_floor_bytes_per_sec == 0
        {
            return bad(
                "hint_bytes_per_sec/hint_bytes_max_per_target/transfer_floor_bytes_per_sec",
                "must be above 0".into(),
            );
        }
        if self.handoff_bytes_per_sec == 0 {
            return bad("handoff_bytes_per_sec", "must be above 0".into());
        }
        if self.rpc_inflight_max == 0 || self.rpc_queue_bytes_max < 1024 * 1024 {
            return bad(
                "rpc_inflight_max/rpc_queue_bytes_max",
                "need rpc_inflight_max above 0 and rpc_queue_bytes_max at least 1 MiB".into(),
            );
        }
        if self.http_connections_max == 0 || self.s3_connections_max == 0 {
            return bad(
                "http_connections_max/s3_connections_max",
                "must be above 0".into(),
            );
        }
        if self.client_header_timeout_ms == 0 || self.client_io_timeout_ms == 0 {
            return bad(
                "client_header_timeout_ms/client_io_timeout_ms",
                "must be above 0".into(),
            );
        }
        if self.s3_block_collect_per_pass_max == 0 {
            return bad("s3_block_collect_per_pass_max", "must be above 0".into());
        }
        if self.reap_interval_ms == 0
            || self.reap_keys_per_pass_max == 0
            || self.reap_memory_keys_max == 0
        {
            return bad(
                "reap_interval_ms/reap_keys_per_pass_max/reap_memory_keys_max",
                "must be above 0".into(),
            );
        }
        if self.cluster_secret.is_empty() {
            return bad("cluster_secret", "must not be empty".into());
        }
        if !(0.0..1.0).contains(&self.lab_datagram_loss) {
            return bad("lab_datagram_loss", "must be in [0, 1)".into());
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad(
                "tls_cert/tls_key",
                "set both (a PEM certificate chain and its private key) or neither".into(),
            );
        }
        if let Some(t) = &self.admin_token {
            if t.len() < ADMIN_TOKEN_CHARS_MIN || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return bad(
                    "admin_token",
                    format!("must be at least {ADMIN_TOKEN_CHARS_MIN} visible ASCII characters (for example 32 hex digits from `openssl rand -hex 16`)"),
                );
            }
        }
        Ok(())
    }

    /// The client request deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// How long a write waits for one primary before handing off.
    pub fn replica_patience(&self) -> Duration {
        Duration::from_millis(self.replica_patience_ms)
    }

    /// The time `bytes` take at `transfer_floor_bytes_per_sec`: added to
    /// every deadline and patience that covers their transfer.
    pub fn transfer_allowance(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.transfer_floor_bytes_per_sec.max(1) as f64)
    }

    /// The limits of the client-facing listener `name` ("http" or "s3").
    pub fn listener_limits(&self, name: &'static str) -> net::listen::ListenerLimits {
        net::listen::ListenerLimits {
            name,
            connections_max: if name == "s3" {
                self.s3_connections_max
            } else {
                self.http_connections_max
            },
            header_timeout: Duration::from_millis(self.client_header_timeout_ms),
            io_timeout: Duration::from_millis(self.client_io_timeout_ms),
        }
    }

    /// The anti-entropy period.
    pub fn aae_interval(&self) -> Duration {
        Duration::from_millis(self.aae_interval_ms)
    }

    /// The hint delivery period.
    pub fn hint_delivery_interval(&self) -> Duration {
        Duration::from_millis(self.hint_delivery_interval_ms)
    }

    /// The tombstone reaper's period.
    pub fn reap_interval(&self) -> Duration {
        Duration::from_millis(self.reap_interval_ms)
    }

    /// How long reaped tombstones' contexts are remembered.
    pub fn reap_memory(&self) -> Duration {
        Duration::from_millis(self.reap_memory_ms)
    }

    /// The gossip period.
    pub fn gossip_interval(&self) -> Duration {
        Duration::from_millis(self.gossip_interval_ms)
    }

    /// The failure detector's timing.
    pub fn detector(&self) -> cluster::DetectorConfig {
        cluster::DetectorConfig {
            probe_period: Duration::from_millis(self.probe_interval_ms),
            probe_rtt: Duration::from_millis(self.probe_rtt_ms),
            suspect_to_down_after: Duration::from_millis(self.suspect_timeout_ms),
            packet_bytes_max: net::PAYLOAD_BYTES_MAX,
        }
    }
}
