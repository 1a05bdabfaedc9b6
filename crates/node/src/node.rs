//! The node handle: start-up, shared state, and small accessors.

use crate::error::CallError;
use crate::gossip;
use crate::locks::Held;
use crate::proto::{Request, Response};
use crate::{Env, NodeConfig, NodeError};
use causal::Actor;
use cluster::{ClusterState, Layouts, Timestamp};
use net::{RpcClient, RpcConfig};
use rand::{RngExt, SeedableRng};
use ring::{Layout, NodeId};
use std::sync::{Arc, Mutex};
use store::Store;
use tokio::task::JoinHandle;

const META_NODE_ID: &str = "node_id";
use crate::dots::META_EPOCH;
/// The data directory's format: what its indexes hold.
const META_FORMAT: &str = "data_format";
/// Format 2: replicas' `$ref` terms are in the reference index, which the
/// collector trusts (`collect`). A format-1 directory holds S3 records
/// without terms, whose blocks would look unreferenced.
const DATA_FORMAT: u32 = 2;
const META_CLUSTER: &str = "cluster_state";
/// Present once this node has seen another member: it has joined its
/// cluster and may serve clients.
pub(crate) const META_SEEDED: &str = "seeded";

/// Counters the admin API and metrics report.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) read_repairs: std::sync::atomic::AtomicU64,
    /// Replicas of unreferenced objects the collector dropped.
    pub(crate) objects_collected: std::sync::atomic::AtomicU64,
    /// Collection log entries handled (checked or collected).
    pub(crate) collect_handled: std::sync::atomic::AtomicU64,
}

/// A node: its infrastructure (identity, config, seams, storage, the RPC
/// client, its tasks) and the subsystems that each own their state.
struct Inner {
    id: NodeId,
    /// This node's actor (epoch) and key locks (see `dots`).
    dots: crate::dots::Dots,
    cfg: NodeConfig,
    env: Env,
    store: Store,
    rpc: RpcClient<Request, Response>,
    /// The cluster as this node sees it (see `view`).
    membership: crate::view::Membership,
    /// Every random choice (gossip peers), seeded by `env.seed`.
    rng: Mutex<rand::rngs::SmallRng>,
    /// What this node believes about each peer (see `peers`).
    peers: crate::peers::PeerHealth,
    /// What uptimes (`Node::uptime_ms`) count from.
    started: tokio::time::Instant,
    /// Background tasks, aborted by `Node::shutdown`.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    stats: Stats,
    /// Replication lag to other zones, for the admin API and metrics.
    lag: crate::lag::ReplicationLag,
    /// Anti-entropy: trees, schedule, counters (see `aae`).
    aae: crate::aae::AntiEntropy,
    /// Hints held per target (the hints themselves are in the store).
    /// Bounded by: the nodes in the cluster state.
    hints: crate::hints::HintBook,
    /// Injected transport faults, shared with the RPC client and server.
    faults: Arc<net::FaultRules>,
    /// Ownership handoff in progress.
    transfers: crate::handoff::Transfers,
    /// The layout (version, fingerprint) whose lost partitions were dropped.
    released_for: Mutex<Option<(u64, u64)>>,
    /// Tombstone reaping: the dot floor and when partitions were reaped.
    reaper: crate::reap::Reaper,
    /// Nearby reads: their count and the bound on their background checks.
    nearby: crate::nearby::NearbyReads,
    /// Recent requests per operation, for the dashboard (fixed size).
    traffic: crate::traffic::Traffic,
}

/// A running node. Cheap to clone; every clone is the same node.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl Node {
    /// Start a node: load or create its identity, bump its epoch, listen for
    /// peers, start gossip, and join `cfg.join` if given.
    ///
    /// # Errors
    ///
    /// Invalid config, storage failures, or an RPC address that cannot be
    /// bound. Failing to reach join seeds is not an error: the node keeps
    /// retrying in the background.
    pub async fn start(mut cfg: NodeConfig, env: Env) -> Result<Node, NodeError> {
        cfg.validate()
            .map_err(|e| NodeError::BadRequest(e.to_string()))?;
        let store = Store::new(env.engine.clone());
        let mut rng = rand::rngs::SmallRng::seed_from_u64(env.seed);
        let id = match store.get_meta(META_NODE_ID)? {
            Some(b) if b.len() == 8 => NodeId(u64::from_be_bytes(b.try_into().unwrap_or_default())),
            _ => NodeId(rng.random::<u64>() | 1),
        };
        check_data_format(&store, store.get_meta(META_NODE_ID)?.is_some()).await?;
        let epoch = match store.get_meta(META_EPOCH)? {
            Some(b) if b.len() == 4 => u32::from_be_bytes(b.try_into().unwrap_or_default()) + 1,
            _ => 1,
        };
        // Why durable before serving: an epoch reused after a crash would let
        // this node hand out a dot it already used for another value.
        store
            .put_meta(META_NODE_ID, id.0.to_be_bytes().to_vec(), false)
            .await?;
        store
            .put_meta(META_EPOCH, epoch.to_be_bytes().to_vec(), true)
            .await?;

        let listener = env.network.bind(&cfg.rpc).await.map_err(|e| {
            NodeError::Unavailable(format!("cannot listen for peers on {}: {e}", cfg.rpc))
        })?;
        cfg.rpc = listener.local_addr();
        // Why the same port: operators open one port per node, and the
        // detector's view of a peer's address is its RPC address.
        let datagrams = env.network.bind_datagram(&cfg.rpc).await.map_err(|e| {
            NodeError::Unavailable(format!(
                "cannot open the gossip UDP socket on {}: {e}",
                cfg.rpc
            ))
        })?;

        let rpc_cfg = RpcConfig {
            node: id.0,
            secret: cfg.cluster_secret.as_bytes().to_vec(),
            sealed: cfg.internode_encryption,
            frame_bytes_max: cfg.rpc_frame_bytes_max,
            inflight_max: cfg.rpc_inflight_max,
            queue_bytes_max: cfg.rpc_queue_bytes_max,
            faults: Arc::default(),
        };
        let state: ClusterState = match store.get_meta(META_CLUSTER)? {
            Some(b) => ClusterState::decode(&b).map_err(|e| store::StoreError::Corrupt {
                what: "cluster state",
                detail: e.to_string(),
            })?,
            None => ClusterState::new(),
        };
        let seeded = cfg.join.is_empty()
            || store.get_meta(META_SEEDED)?.is_some()
            || state.nodes().keys().any(|n| *n != id);
        let hints = crate::hints::HintBook::load(&store)?;
        let inner = Arc::new(Inner {
            id,
            dots: crate::dots::Dots::new(id, epoch),
            rpc: RpcClient::new(env.network.clone(), rpc_cfg.clone()),
            membership: crate::view::Membership::new(id, state, cfg.partition_bits, seeded),
            rng: Mutex::new(rng),
            peers: crate::peers::PeerHealth::default(),
            started: tokio::time::Instant::now(),
            tasks: Mutex::default(),
            stats: Stats::default(),
            lag: crate::lag::ReplicationLag::default(),
            faults: rpc_cfg.faults.clone(),
            hints,
            aae: crate::aae::AntiEntropy::default(),
            reaper: crate::reap::Reaper::new(cfg.reap_memory(), cfg.reap_memory_keys_max),
            nearby: crate::nearby::NearbyReads::default(),
            traffic: crate::traffic::Traffic::default(),
            transfers: crate::handoff::Transfers::default(),
            released_for: Mutex::default(),
            store,
            cfg,
            env,
        });
        let node = Node { inner };
        let trees = node.load_or_rebuild_trees().await?;
        node.inner.aae.loaded.store(
            trees == crate::aae::TreesSource::Loaded,
            std::sync::atomic::Ordering::Relaxed,
        );
        node.announce_self().await?;
        let handler = crate::service::handler(node.clone());
        node.spawn(net::serve(listener, rpc_cfg, handler));
        gossip::greet_peers(&node).await;
        node.spawn(gossip::run(node.clone()));
        node.spawn(gossip::probe_suspects(node.clone()));
        let socket = net::GossipSocket::new(
            datagrams,
            node.inner.cfg.cluster_secret.as_bytes(),
            id.0,
            node.inner.faults.clone(),
        );
        crate::swim::start(&node, socket, epoch);
        node.spawn(crate::hints::run(node.clone()));
        node.spawn(crate::handoff::run(node.clone()));
        if node.inner.cfg.anti_entropy {
            node.spawn(crate::aae::run(node.clone()));
        }
        node.spawn(crate::reap::run(node.clone()));
        node.spawn(crate::collect::run(node.clone()));
        node.spawn(crate::lab::run(node.clone()));
        tracing::info!(node = %id, epoch, rpc = %node.inner.cfg.rpc, "node started");
        Ok(node)
    }

    pub(crate) fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(fut);
        self.inner.tasks.held().push(handle);
    }

    /// Stop every background task and listener of this node. Requests in
    /// flight may fail; acknowledged writes are already durable as promised.
    /// The next start rebuilds the anti-entropy trees; [`Node::stop`]
    /// saves them instead.
    pub fn shutdown(&self) {
        for t in self.inner.tasks.held().drain(..) {
            t.abort();
        }
    }

    /// Stop cleanly: shut down, let writes in flight finish, refuse any
    /// more (they wait forever), fsync, and save the anti-entropy trees so
    /// the next start need not rebuild them.
    ///
    /// # Errors
    ///
    /// Storage failures; the next start then rebuilds the trees.
    pub async fn stop(&self) -> Result<(), NodeError> {
        self.shutdown();
        // Why keep the locks: every local write updates its tree under its
        // key lock, so holding them all freezes trees and storage together.
        // The process is about to exit; a write still arriving must not
        // change storage behind the saved trees.
        self.inner.dots.freeze().await;
        self.inner.store.sync().await?;
        self.save_trees().await
    }

    /// Who makes the dots of writes this node coordinates now.
    pub(crate) fn actor(&self) -> Actor {
        self.inner.dots.actor()
    }

    /// Move to a new epoch (see [`crate::dots::Dots::new_epoch`]).
    pub(crate) async fn new_epoch(&self) -> Result<(), NodeError> {
        Ok(self.inner.dots.new_epoch(&self.inner.store).await?)
    }

    /// A fresh hybrid-logical-clock timestamp.
    pub(crate) fn now(&self) -> Timestamp {
        let wall = self.inner.env.clock.wall_ms();
        self.inner.membership.now(wall)
    }

    /// Apply `f` to the cluster state; recompute the layout if it reports a
    /// change. Returns what `f` returned.
    pub(crate) fn update_state(&self, f: impl FnOnce(&mut ClusterState) -> bool) -> bool {
        self.inner.membership.update(f)
    }

    pub(crate) async fn persist_state(&self) -> Result<(), NodeError> {
        let bytes =
            postcard::to_stdvec(&self.cluster_state()).map_err(|e| store::StoreError::Encode {
                what: "cluster state",
                detail: e.to_string(),
            })?;
        self.inner.store.put_meta(META_CLUSTER, bytes, true).await?;
        Ok(())
    }

    /// Drop or delay all traffic between this node and the named peers
    /// (tests only; see `net::faults`).
    ///
    /// # Errors
    ///
    /// [`NodeError::BadRequest`] unless the node runs with
    /// `enable_fault_injection`.
    pub fn set_faults(&self, drop: &[NodeId], delay_ms: &[(NodeId, u64)]) -> Result<(), NodeError> {
        if !self.inner.cfg.enable_fault_injection {
            return Err(NodeError::BadRequest(
                "fault injection is off; start the node with --enable-fault-injection".into(),
            ));
        }
        self.inner.faults.set(net::FaultRuleSet {
            drop: drop.iter().map(|n| n.0).collect(),
            delay_ms: delay_ms.iter().map(|(n, ms)| (n.0, *ms)).collect(),
        });
        tracing::warn!(?drop, ?delay_ms, "fault injection rules set");
        Ok(())
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The configuration the node runs with (with bound addresses filled in).
    pub fn config(&self) -> &NodeConfig {
        &self.inner.cfg
    }

    /// A copy of the cluster state.
    pub fn cluster_state(&self) -> ClusterState {
        self.inner.membership.state()
    }

    /// The current layout.
    pub fn layout(&self) -> Arc<Layout> {
        self.inner.membership.layout()
    }

    /// The stable and current layouts.
    pub(crate) fn layouts(&self) -> Layouts {
        self.inner.membership.layouts()
    }

    pub(crate) fn rpc_addr(&self, node: NodeId) -> Option<String> {
        self.inner
            .membership
            .read(|s| s.addrs(node).map(|a| a.rpc.clone()))
    }

    /// This node's storage.
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The RPC client, for calls by address (a join seed); calls to a
    /// known node go through [`Node::call`].
    pub(crate) fn rpc(&self) -> &RpcClient<Request, Response> {
        &self.inner.rpc
    }

    /// The seams this node runs on.
    pub(crate) fn env(&self) -> &Env {
        &self.inner.env
    }

    /// Anti-entropy's state (see `aae`).
    pub(crate) fn aae(&self) -> &crate::aae::AntiEntropy {
        &self.inner.aae
    }

    /// The hints this node holds, by target (see `hints`).
    pub(crate) fn hint_book(&self) -> &crate::hints::HintBook {
        &self.inner.hints
    }

    /// Tombstone reaping's state (see `reap`).
    pub(crate) fn reaper(&self) -> &crate::reap::Reaper {
        &self.inner.reaper
    }

    /// The cluster as this node sees it (see `view`).
    pub(crate) fn membership(&self) -> &crate::view::Membership {
        &self.inner.membership
    }

    /// What this node believes about each peer (see `peers`).
    pub(crate) fn nearby_reads(&self) -> &crate::nearby::NearbyReads {
        &self.inner.nearby
    }

    pub(crate) fn peer_health(&self) -> &crate::peers::PeerHealth {
        &self.inner.peers
    }

    /// Partitions being pulled here (see `handoff`).
    pub(crate) fn handoffs(&self) -> &crate::handoff::Transfers {
        &self.inner.transfers
    }

    /// Replication lag to other zones (see `lag`).
    pub(crate) fn lag(&self) -> &crate::lag::ReplicationLag {
        &self.inner.lag
    }

    /// Injected transport faults, shared with the RPC client and server.
    pub(crate) fn faults(&self) -> &Arc<net::FaultRules> {
        &self.inner.faults
    }

    /// Counters the admin API and metrics report.
    pub(crate) fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// The layout (version, fingerprint) whose lost partitions were dropped.
    pub(crate) fn released_for(&self) -> &Mutex<Option<(u64, u64)>> {
        &self.inner.released_for
    }

    /// Every random choice (gossip peers).
    pub(crate) fn rng(&self) -> &Mutex<rand::rngs::SmallRng> {
        &self.inner.rng
    }

    /// This node's recent traffic, recorded by its listeners (`traffic`).
    pub fn traffic(&self) -> &crate::traffic::Traffic {
        &self.inner.traffic
    }

    /// Milliseconds since this node started (tokio time).
    pub(crate) fn uptime_ms(&self) -> u64 {
        self.inner.started.elapsed().as_millis() as u64
    }

    /// The lock stripe of `key` (see `dots`).
    pub(crate) fn key_lock(&self, key: &crate::BKey) -> &Arc<tokio::sync::Mutex<()>> {
        self.inner.dots.key_lock(key)
    }

    /// Call a peer with the request deadline. Every call to a peer goes
    /// through here: an answer marks the peer seen, a failed transport
    /// marks it suspect, and objects in the answer are checked before
    /// anyone merges them.
    ///
    /// # Errors
    ///
    /// [`CallError`]: no address, transport, the peer's error, or a
    /// malformed answer.
    pub(crate) async fn call(
        &self,
        node: NodeId,
        req: Request,
        timeout: std::time::Duration,
    ) -> Result<Response, CallError> {
        let addr = self.rpc_addr(node).ok_or(CallError::AddressUnknown)?;
        let started = self.uptime_ms();
        match self.inner.rpc.call(&addr, req, timeout).await {
            Ok(Response::Error(e)) => {
                self.mark_seen(node);
                Err(CallError::Remote(e))
            }
            Ok(r) => {
                self.mark_seen(node);
                match r.malformed() {
                    Some(e) => Err(CallError::Malformed(e)),
                    None => Ok(r),
                }
            }
            Err(e) => {
                self.mark_failed(node, started);
                Err(CallError::Transport(e))
            }
        }
    }
}

/// Refuse a data directory of another format; mark a new one as ours.
async fn check_data_format(store: &Store, existing: bool) -> Result<(), NodeError> {
    let format = store
        .get_meta(META_FORMAT)?
        .and_then(|b| b.try_into().ok().map(u32::from_be_bytes));
    match format {
        Some(DATA_FORMAT) => Ok(()),
        None if !existing => Ok(store
            .put_meta(META_FORMAT, DATA_FORMAT.to_be_bytes().to_vec(), true)
            .await?),
        other => Err(NodeError::BadRequest(format!(
            "the data directory has format {} but this ringstore reads format {DATA_FORMAT} \
             (S3 block references are indexed since format 2); start it with the ringstore \
             that wrote it, or give this node an empty data directory and let it join",
            other.unwrap_or(1)
        ))),
    }
}
