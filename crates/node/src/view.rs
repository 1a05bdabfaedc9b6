//! This node's view of its cluster: the cluster state, the layouts it
//! folds to, the hybrid logical clock that orders membership events, and
//! whether this node has met its cluster yet (see
//! [`crate::Node::check_seeded`]).
//!
//! [`Membership`] owns that state; gossip, joins and leaves change it
//! through [`Membership::update`], and every request reads a snapshot.

use crate::locks::{Held, Shared};
use cluster::{ClusterState, Hlc, Layouts, Timestamp};
use ring::{Layout, NodeId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Cluster state with the layouts it folds to, recomputed on change.
struct ClusterView {
    state: ClusterState,
    /// The current layout (`layouts.current`).
    layout: Arc<Layout>,
    /// The stable and current layouts (see `cluster::Layouts`).
    layouts: Layouts,
}

/// The cluster as this node sees it.
pub(crate) struct Membership {
    view: RwLock<ClusterView>,
    hlc: Mutex<Hlc>,
    /// False while a node started with join seeds has not yet met its
    /// cluster.
    seeded: AtomicBool,
    partition_bits: u8,
}

impl Membership {
    /// The view of node `me`, from its stored `state`.
    pub(crate) fn new(me: NodeId, state: ClusterState, partition_bits: u8, seeded: bool) -> Self {
        let layouts = state.layouts(partition_bits);
        Membership {
            view: RwLock::new(ClusterView {
                layout: layouts.current.clone(),
                layouts,
                state,
            }),
            hlc: Mutex::new(Hlc::new(me.0)),
            seeded: seeded.into(),
            partition_bits,
        }
    }

    /// A copy of the cluster state.
    pub(crate) fn state(&self) -> ClusterState {
        self.view.shared().state.clone()
    }

    /// The current layout.
    pub(crate) fn layout(&self) -> Arc<Layout> {
        self.view.shared().layout.clone()
    }

    /// The stable and current layouts.
    pub(crate) fn layouts(&self) -> Layouts {
        self.view.shared().layouts.clone()
    }

    /// `f` over the state without copying it.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&ClusterState) -> T) -> T {
        f(&self.view.shared().state)
    }

    /// Apply `f` to the cluster state; if it reports a change, fold the
    /// layouts again, and assert they are valid (a broken layout would
    /// send writes to the wrong owners). Returns what `f` returned.
    pub(crate) fn update(&self, f: impl FnOnce(&mut ClusterState) -> bool) -> bool {
        let mut view = self.view.held();
        let changed = f(&mut view.state);
        if changed {
            view.layouts = view.state.layouts(self.partition_bits);
            view.layout = view.layouts.current.clone();
            if let Err(e) = view.layout.check() {
                panic!("the cluster state folded to an invalid layout: {e}");
            }
        }
        changed
    }

    /// A fresh timestamp at wall time `wall_ms`.
    pub(crate) fn now(&self, wall_ms: u64) -> Timestamp {
        self.hlc.held().now(wall_ms)
    }

    /// Move the clock past `t`, a timestamp another node made.
    pub(crate) fn observe(&self, t: Timestamp) {
        self.hlc.held().observe(t);
    }

    /// Whether this node has met its cluster.
    pub(crate) fn is_seeded(&self) -> bool {
        self.seeded.load(Ordering::Acquire)
    }

    /// This node has met its cluster (persisted by the caller first).
    pub(crate) fn mark_seeded(&self) {
        self.seeded.store(true, Ordering::Release);
    }
}
