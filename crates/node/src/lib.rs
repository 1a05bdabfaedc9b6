//! # A ringstore node
//!
//! A node is a library: [`Node::start`] takes a [`NodeConfig`] and an
//! [`Env`] (clock, seed, network, storage engine) and returns a handle that
//! the HTTP layer, the CLI and tests call. The binary only parses flags,
//! builds a production `Env` and calls it; tests build an `Env` over a
//! [`net::MemoryNetwork`] and a [`store::MemoryEngine`] and run several nodes
//! in one process.
//!
//! ## Organization
//!
//! Decisions are pure and tested by stepping them; the async code only
//! drives them.
//!
//! - `coord`: the request coordinator without I/O: `ReadCoordinator`
//!   and `WriteCoordinator` (events in, effects out) own every quorum
//!   decision, sloppy quorum included. [`quorum`] is their arithmetic
//!   ([`quorum::QuorumTracker`]).
//! - `locate`: where a key lives (partition, preference list, read and
//!   write targets during layout transitions), from one snapshot.
//! - `put` and `replicate`: the write path. The receiving node forwards a
//!   write to the first reachable primary of the key; that primary makes
//!   the dot, stores, and hands the write to a `WriteCoordinator`, which
//!   `replicate` drives in a task that outlives the client's answer.
//! - `get`: the read path. The receiving node asks every primary and
//!   drives a `ReadCoordinator`: it answers after `r` replies, merges by
//!   causality, and repairs stale replicas in the background.
//! - [`error`]: typed errors down to each replica; `proto` holds their
//!   frozen wire form ([`proto::WireError`]).
//! - `service`: answers other nodes' calls (replicate, read, list, gossip).
//! - Subsystems that own their state: `view` (`Membership`: cluster
//!   state, layouts, clock, seeded), `peers` (`PeerHealth`: last seen,
//!   suspects, the detector's verdicts), `hints` (`HintBook`), `aae`
//!   (`AntiEntropy`), `dots` (`Dots`: the epoch and key locks),
//!   `handoff` (`Transfers`), `reap` (`Reaper`), `lag`.
//! - `gossip`: spreads [`cluster::ClusterState`] by push-pull exchange.
//! - `swim`: runs the failure detector ([`cluster::Detector`], SWIM by
//!   foca) over sealed UDP datagrams; its verdicts are the node's view of
//!   which peers are up.
//! - `lag`: replication lag to other zones, measured at coordinators.
//! - `lab`: an emulated WAN between zones, for the lab only.
//! - `hints`: sloppy quorum's other half, hinted handoff: writes held for
//!   primaries that did not answer, delivered when they do.
//! - `handoff` and `release`: after a layout change, new owners pull
//!   their partitions and report; old owners drop what they lost once
//!   every owner has.
//! - `aae`: active anti-entropy, Merkle trees per partition compared
//!   between replicas on a schedule.
//! - `local`: a node's own replicas of a bucket, read and dropped without
//!   other nodes, for higher layers' maintenance (S3 block scrub and
//!   collection).
//! - `locks`: std locks taken so that poison aborts the process.
//! - `bucket_sample`: a bucket's objects and bytes, estimated at a
//!   bounded cost for the dashboard.
//! - `dashboard`, [`traffic`] and [`impact`]: what `/ui` shows beyond the
//!   admin API: each node's own figures and recent traffic, gathered from
//!   every node, and the plan a membership change or failure would cause.
//!
//! ## Two views of a peer
//!
//! A peer is *suspect* from a failed call until it next answers or calls,
//! so requests stop waiting on it at once; the failure detector's verdict
//! ("down") is slower but agreed on through gossip. Requests avoid a peer
//! that is either.

mod aae;
mod bucket_sample;
mod collect;
mod config;
mod coord;
mod dashboard;
mod dots;
mod env;
pub mod error;
mod get;
mod gossip;
mod handoff;
mod hints;
pub mod impact;
mod index_query;
mod lab;
mod lag;
mod list;
mod listing;
mod local;
mod locate;
mod locks;
mod membership;
mod merge;
mod nearby;
mod node;
mod peers;
pub mod proto;
mod put;
pub mod quorum;
mod reap;
mod release;
mod replicate;
mod request;
mod service;
mod status;
mod swim;
pub mod traffic;
mod view;

/// About the bytes an object takes on the wire and on disk: its values,
/// plus a little per sibling and per context entry. What deadlines that
/// cover its transfer (and hint budgets) are scaled by.
pub(crate) fn object_bytes(obj: &causal::Object) -> usize {
    let siblings: usize = obj.siblings().iter().map(|s| s.value.len() + 64).sum();
    siblings + 24 * obj.context().len()
}

pub use bucket_sample::{value_bytes, BucketSample, SAMPLE_ENTRIES_MAX};
pub use collect::{parse_ref_term, ref_term};
pub use config::{ConfigError, DeleteMode, NodeConfig, ADMIN_TOKEN_CHARS_MIN};
pub use dashboard::{GatheredStats, NodeStats, STATS_TIMEOUT};
pub use env::{Clock, Env, SystemClock};
pub use error::{CallError, ErrorKind, Needed, NodeError, QuorumError, ReplicaFailure};
pub use handoff::{Transfer, FINISHED_KEPT};
pub use index_query::IndexPageQuery;
pub use lag::{ZoneLag, BUCKETS_SECONDS as LAG_BUCKETS_SECONDS};
pub use listing::{resume_after, Page, PageQuery, VALUE_HEAD_BYTES_MAX};
pub use nearby::{local_read_allowed, NearbyRead, BACKGROUND_READS_MAX};
pub use node::Node;
pub use reap::ProbeAnswer;
pub use request::{BKey, PutCommand, RequestOptions};
pub use status::{ClusterStatus, LayoutStatus, NodeStatus, OwnerStatus, PartitionStatus};
pub use store::{ListStart, Listed, ListedVersion, COLLECT_INDEX, REF_INDEX};
