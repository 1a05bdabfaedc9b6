//! What the admin API reports: nodes, layout, replication health.

use crate::locks::Held;
use crate::Node;
use cluster::MemberState;
use ring::{NodeId, PartitionId};
use serde::Serialize;
use std::sync::atomic::Ordering::Relaxed;

/// One node as `GET /admin/cluster` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    /// Node id.
    pub id: String,
    /// HTTP address.
    pub http: String,
    /// S3 address.
    pub s3: String,
    /// RPC address.
    pub rpc: String,
    /// Zone.
    pub zone: String,
    /// Capacity.
    pub capacity: u32,
    /// `member` or `removed`.
    pub state: &'static str,
    /// `up` or `down`, as this node sees it.
    pub liveness: &'static str,
    /// Partitions for which the node is one of the first `n_val` (default 3) owners.
    pub partitions: usize,
    /// Hints the answering node holds for this node, waiting for delivery.
    pub hints_pending: u64,
    /// Their bytes as stored (bounded by `hint_bytes_max_per_target`).
    pub hint_bytes_pending: u64,
}

/// `GET /admin/cluster`.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    /// The answering node.
    pub node_id: String,
    /// Layout version: membership events folded.
    pub layout_version: u64,
    /// Every node known.
    pub nodes: Vec<NodeStatus>,
    /// Partitions with fewer owners than the default `n_val`.
    pub under_replicated_partitions: usize,
    /// Replicas repaired by reads since start.
    pub read_repairs: u64,
    /// Nearby reads (the website endpoint's) answered by this node's own
    /// replica since start.
    pub nearby_reads_local: u64,
    /// Nearby reads handed to a quorum read since start.
    pub nearby_reads_quorum: u64,
    /// Hints this node delivered since start.
    pub hints_delivered: u64,
    /// Hints this node refused since start because their target's budget
    /// was full (anti-entropy repairs those writes).
    pub hints_refused: u64,
    /// Per peer zone, the time from a write's acknowledgement here to its
    /// replica in that zone confirming it (`node::lag`).
    pub replication_lag: Vec<crate::ZoneLag>,
    /// Anti-entropy exchanges this node completed since start.
    pub aae_exchanges: u64,
    /// Keys anti-entropy synced since start.
    pub aae_keys_repaired: u64,
    /// Whether this node's anti-entropy trees were loaded as a clean stop
    /// saved them (`false`: rebuilt by reading every object).
    pub aae_trees_loaded: bool,
    /// Partitions whose anti-entropy tree is still being rebuilt beside
    /// service (0 once done).
    pub aae_partitions_rebuilding: usize,
    /// How long the last tree rebuild took, ms (0: none since start).
    pub aae_rebuild_ms: u64,
    /// Tombstones this node held when its reaper last walked its whole
    /// tombstone index (`null`: no walk ended yet, or `delete_mode` is
    /// `keep`).
    pub tombstones_held: Option<u64>,
    /// Tombstones this node reaped since start.
    pub tombstones_reaped: u64,
    /// Replicas of unreferenced objects (S3 blocks) this node's collector
    /// dropped since start, every owner's counted.
    pub objects_collected: u64,
    /// Entries in this node's collection log (blocks that may have lost
    /// their last reference, waiting for a check); `null` if unreadable.
    pub collect_log: Option<u64>,
    /// Collection log entries this node handled since start: its
    /// collector's work, which follows blocks written and references
    /// dropped, not blocks stored.
    pub collect_handled: u64,
}

/// One owner of a partition.
#[derive(Clone, Debug, Serialize)]
pub struct OwnerStatus {
    /// Node id.
    pub node: String,
    /// Its zone.
    pub zone: String,
    /// Whether it holds the partition's data and serves reads.
    pub ready: bool,
}

/// One partition in `GET /admin/layout`.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionStatus {
    /// Partition number.
    pub id: u16,
    /// Owners in preference order.
    pub owners: Vec<OwnerStatus>,
}

/// `GET /admin/layout`.
#[derive(Clone, Debug, Serialize)]
pub struct LayoutStatus {
    /// Layout version (the current layout).
    pub version: u64,
    /// The newest version every owner holds its data for; below `version`
    /// while new owners pull their partitions.
    pub stable_version: u64,
    /// Every partition.
    pub partitions: Vec<PartitionStatus>,
}

/// The `n_val` the cluster-level health figures assume.
const N_VAL_DEFAULT: usize = 3;

impl Node {
    /// Replication lag to each other zone (`node::lag`).
    pub fn replication_lag(&self) -> Vec<crate::ZoneLag> {
        self.lag().snapshot()
    }

    /// The cluster as this node sees it.
    pub fn cluster_status(&self) -> ClusterStatus {
        let state = self.cluster_state();
        let layout = self.layout();
        let nodes = state
            .nodes()
            .into_iter()
            .map(|(id, ms)| {
                let addrs = state.addrs(id).cloned().unwrap_or_default();
                let member = layout.member(id);
                let up = self.is_up(id);
                NodeStatus {
                    id: id.to_string(),
                    http: addrs.http,
                    s3: addrs.s3,
                    rpc: addrs.rpc,
                    zone: member.map(|m| m.zone.clone()).unwrap_or_default(),
                    capacity: member.map_or(0, |m| m.capacity),
                    state: match ms {
                        MemberState::Member if !self.is_ready_node(id) => "joining",
                        MemberState::Member => "member",
                        MemberState::Removed if self.holds_stable(id) => "leaving",
                        MemberState::Removed => "removed",
                    },
                    liveness: if up { "up" } else { "down" },
                    partitions: layout.partitions_owned(id, N_VAL_DEFAULT),
                    hints_pending: self.hints_pending(id),
                    hint_bytes_pending: self.hint_bytes_pending(id),
                }
            })
            .collect();
        ClusterStatus {
            node_id: self.id().to_string(),
            layout_version: state.layout_version(),
            nodes,
            under_replicated_partitions: self.under_replicated_partitions(),
            read_repairs: self
                .stats()
                .read_repairs
                .load(std::sync::atomic::Ordering::Relaxed),
            nearby_reads_local: self.nearby_reads().local.load(Relaxed),
            nearby_reads_quorum: self.nearby_reads().quorum.load(Relaxed),
            hints_delivered: self.hint_book().delivered_total(),
            hints_refused: self.hints_refused(),
            replication_lag: self.lag().snapshot(),
            aae_exchanges: self.aae().exchanges.load(Relaxed),
            aae_keys_repaired: self.aae().keys_repaired.load(Relaxed),
            aae_trees_loaded: self.aae().loaded.load(Relaxed),
            aae_partitions_rebuilding: self.aae().trees.rebuilding(),
            aae_rebuild_ms: self.aae().rebuild_ms.load(Relaxed),
            tombstones_held: self.tombstones_held(),
            tombstones_reaped: self.tombstones_reaped(),
            objects_collected: self.objects_collected(),
            collect_log: self.store().candidates_count().ok(),
            collect_handled: self.stats().collect_handled.load(Relaxed),
        }
    }

    /// Whether `node` holds every partition it owns (not still pulling).
    pub fn is_ready_node(&self, node: NodeId) -> bool {
        self.layouts().has_synced_current(node)
    }

    /// Whether `node` still owns data in the stable layout (a leaving node
    /// that has not handed everything off).
    fn holds_stable(&self, node: NodeId) -> bool {
        let l = self.layouts();
        l.in_transition() && l.stable.member(node).is_some_and(|m| m.capacity > 0)
    }

    /// Partitions with fewer owners than the default `n_val`: a cluster
    /// smaller than 3 nodes serves, but cannot keep 3 copies.
    pub fn under_replicated_partitions(&self) -> usize {
        let layout = self.layout();
        (0..layout.partition_count())
            .filter(|p| layout.owners(PartitionId(*p as u16)).len() < N_VAL_DEFAULT)
            .count()
    }

    /// Each partition's last completed anti-entropy exchange, as wall-clock
    /// milliseconds since the Unix epoch.
    pub fn aae_last_exchanges(&self) -> Vec<(u16, u64)> {
        self.aae()
            .last
            .held()
            .iter()
            .map(|(p, t)| (*p, *t))
            .collect()
    }

    /// The layout as the admin API shows it: current owners, each ready
    /// once it holds the partition (a stable owner, or done pulling).
    pub fn layout_status(&self) -> LayoutStatus {
        let layouts = self.layouts();
        let layout = layouts.current.clone();
        let partitions = (0..layout.partition_count() as u16)
            .map(|p| PartitionStatus {
                id: p,
                owners: layout
                    .owners(PartitionId(p))
                    .iter()
                    .enumerate()
                    .map(|(rank, o)| OwnerStatus {
                        node: o.to_string(),
                        zone: layout
                            .member(*o)
                            .map(|m| m.zone.clone())
                            .unwrap_or_default(),
                        ready: layouts.is_ready(*o, PartitionId(p), rank + 1),
                    })
                    .collect(),
            })
            .collect();
        LayoutStatus {
            version: layouts.current_version,
            stable_version: layouts.stable_version,
            partitions,
        }
    }
}
