//! Membership operations: join, leave, replace, zone and capacity
//! changes, and merging a peer's cluster state. Each records an event in
//! the cluster state, persists it and pushes it to every peer; layout
//! transitions follow from the events.
//!
//! A node's zone and capacity come from two places: its configuration at
//! start, and `update` through the admin API of any node. The newer one
//! wins, so a start only records its configured values when they differ
//! from what the previous start configured (the operator edited them);
//! otherwise a restart would undo every change made through the API.

use crate::gossip;
use crate::proto::{Request, Response};
use crate::{Node, NodeError};
use cluster::{Change, ClusterState, MemberState, NodeAddrs};
use ring::NodeId;

/// Meta key: the (zone, capacity) the last start announced from config.
const META_CONFIGURED_PLACEMENT: &str = "configured_placement";

/// Longest zone name accepted (it is gossiped in every state message).
const ZONE_BYTES_MAX: usize = 64;

impl Node {
    /// The nodes that are members now (not removed), this one included:
    /// the ones a cluster-wide question must hear from.
    pub(crate) fn member_ids(&self) -> Vec<NodeId> {
        self.cluster_state()
            .nodes()
            .into_iter()
            .filter(|(_, s)| *s == MemberState::Member)
            .map(|(id, _)| id)
            .collect()
    }

    /// Join the cluster that `seed` (an RPC address) belongs to.
    ///
    /// # Errors
    ///
    /// [`NodeError::Unavailable`] when the seed cannot be reached.
    pub async fn join(&self, seed: &str) -> Result<(), NodeError> {
        let state = self.cluster_state();
        let reply = self
            .rpc()
            .call(
                seed,
                Request::Gossip(state),
                self.config().request_timeout(),
            )
            .await
            .map_err(|e| NodeError::Unavailable(format!("cannot join through {seed}: {e}")))?;
        match reply {
            Response::Gossip(theirs) => {
                self.merge_state(&theirs).await?;
                gossip::push_to_all(self).await;
                Ok(())
            }
            other => Err(NodeError::Unavailable(format!(
                "seed {seed} answered {other:?} to a join"
            ))),
        }
    }

    /// Start handing `node`'s partitions off; it stops owning them once
    /// their new owners hold them, and leaves the layout.
    ///
    /// # Errors
    ///
    /// [`NodeError::BadRequest`] if `node` is not a member or is the last
    /// one; storage failures.
    pub async fn leave(&self, node: NodeId) -> Result<(), NodeError> {
        let layout = self.layout();
        if layout.member(node).is_none() {
            return Err(NodeError::BadRequest(format!(
                "{node} is not a member of the layout (see GET /admin/cluster)"
            )));
        }
        if layout
            .members()
            .iter()
            .all(|m| m.id == node || m.capacity == 0)
        {
            return Err(NodeError::BadRequest(format!(
                "{node} is the last node holding data; add another before it leaves"
            )));
        }
        let at = self.now();
        self.update_state(|s| {
            s.record(at, Change::Leave { node });
            true
        });
        self.persist_state().await?;
        gossip::push_to_all(self).await;
        tracing::info!(%node, "leave recorded; its partitions are being handed off");
        Ok(())
    }

    /// Give the partitions of `old` (usually dead) to `new`, a member
    /// already (start it with `--join`): `old` leaves, and the new layout
    /// starts from the old one with `new` in `old`'s places, so mostly
    /// `new` receives them, copied from the surviving replicas.
    ///
    /// # Errors
    ///
    /// [`NodeError::BadRequest`] unless `old` and `new` are distinct
    /// members; storage failures.
    pub async fn replace(&self, old: NodeId, new: NodeId) -> Result<(), NodeError> {
        let layout = self.layout();
        if old == new || layout.member(old).is_none() || layout.member(new).is_none() {
            return Err(NodeError::BadRequest(format!(
                "replace needs two distinct members; {old} or {new} is not one (start the new node with --join first)"
            )));
        }
        let at = self.now();
        self.update_state(|s| {
            s.record(at, Change::Replace { old, new });
            true
        });
        self.persist_state().await?;
        gossip::push_to_all(self).await;
        tracing::info!(%old, %new, "replace recorded");
        Ok(())
    }

    /// Change a member's zone and/or capacity; the layout moves the
    /// partitions this affects like any other membership change.
    ///
    /// # Errors
    ///
    /// [`NodeError::BadRequest`] if `node` is not a member, the zone is
    /// empty or too long, or no member would keep a capacity above 0;
    /// storage failures.
    pub async fn update_member(
        &self,
        node: NodeId,
        zone: Option<String>,
        capacity: Option<u32>,
    ) -> Result<(), NodeError> {
        let layout = self.layout();
        let Some(member) = layout.member(node) else {
            return Err(NodeError::BadRequest(format!(
                "{node} is not a member of the layout (see GET /admin/cluster)"
            )));
        };
        let zone = zone.unwrap_or_else(|| member.zone.clone());
        let capacity = capacity.unwrap_or(member.capacity);
        check_zone(&zone)?;
        if capacity == 0
            && layout
                .members()
                .iter()
                .all(|m| m.id == node || m.capacity == 0)
        {
            return Err(NodeError::BadRequest(format!(
                "{node} is the last node with capacity; capacity 0 would leave no node to hold data"
            )));
        }
        if zone == member.zone && capacity == member.capacity {
            return Ok(());
        }
        let at = self.now();
        self.update_state(|s| {
            s.record(
                at,
                Change::Update {
                    node,
                    zone: zone.clone(),
                    capacity,
                },
            );
            true
        });
        self.persist_state().await?;
        gossip::push_to_all(self).await;
        tracing::info!(%node, %zone, capacity, "zone/capacity change recorded");
        Ok(())
    }

    /// Record this node's membership and addresses where the state lacks
    /// them, and its configured zone and capacity if the operator changed
    /// them since the previous start (see the module doc).
    pub(crate) async fn announce_self(&self) -> Result<(), NodeError> {
        let cfg = &self.config();
        check_zone(&cfg.zone)?;
        let addrs = NodeAddrs {
            http: cfg.http.clone(),
            s3: cfg.s3.clone(),
            rpc: cfg.rpc.clone(),
        };
        let configured = (cfg.zone.clone(), cfg.capacity);
        let previous: Option<(String, u32)> = self
            .store()
            .get_meta(META_CONFIGURED_PLACEMENT)?
            .and_then(|b| postcard::from_bytes(&b).ok());
        let at = self.now();
        let id = self.id();
        let changed = self.update_state(|s| {
            let layout = s.layout(cfg.partition_bits);
            let mut changed = false;
            // Why not rejoin a node that left: the operator removed it
            // (leave or replace) and its partitions went elsewhere. A
            // restart, even one in the middle of its handoff, must not undo
            // that; a node that should come back starts with an empty data
            // directory and joins as a new node.
            let removed = s.nodes().get(&id) == Some(&MemberState::Removed);
            if removed {
                tracing::warn!(
                    node = %id,
                    "this node left the cluster and serves no data; to bring it back, \
                     start it with an empty data directory and --join"
                );
            }
            let change = match layout.member(id) {
                None if removed => None,
                None => Some(Change::Join {
                    node: id,
                    zone: cfg.zone.clone(),
                    capacity: cfg.capacity,
                }),
                Some(m)
                    if previous.as_ref() != Some(&configured)
                        && (m.zone != cfg.zone || m.capacity != cfg.capacity) =>
                {
                    Some(Change::Update {
                        node: id,
                        zone: cfg.zone.clone(),
                        capacity: cfg.capacity,
                    })
                }
                Some(_) => None,
            };
            if let Some(change) = change {
                s.record(at, change);
                changed = true;
            }
            if s.addrs(id) != Some(&addrs) {
                s.set_addrs(at, id, addrs.clone());
                changed = true;
            }
            changed
        });
        if changed {
            self.persist_state().await?;
        }
        if previous.as_ref() != Some(&configured) {
            let bytes =
                postcard::to_stdvec(&configured).map_err(|e| store::StoreError::Encode {
                    what: "placement",
                    detail: e.to_string(),
                })?;
            self.store()
                .put_meta(META_CONFIGURED_PLACEMENT, bytes, true)
                .await?;
        }
        Ok(())
    }

    /// Refuse client requests while this node, started with join seeds,
    /// has not met its cluster yet.
    ///
    /// Why: until then it is a cluster of one. A write it took would land
    /// in partitions it owns only in that one-node layout; once it merges
    /// the real cluster's state, those partitions belong to others, nothing
    /// hands the write over, and an acknowledged write is gone (found by
    /// the simulation, seed 1557).
    pub(crate) fn check_seeded(&self) -> Result<(), NodeError> {
        if self.membership().is_seeded() {
            return Ok(());
        }
        Err(NodeError::Unavailable(format!(
            "this node has not joined its cluster yet (join seeds: {}); retry shortly or use another node",
            self.config().join.join(", ")
        )))
    }

    /// As [`Node::check_seeded`], but first try the join seeds once.
    ///
    /// Why: a seed merges a newcomer's state one reply before the newcomer
    /// merges the seed's, and in that moment the seed may already route a
    /// write to it. Joining right then, instead of refusing, closes the
    /// window; a newcomer whose seeds cannot be reached still refuses.
    pub(crate) async fn ensure_seeded(&self) -> Result<(), NodeError> {
        if self.membership().is_seeded() {
            return Ok(());
        }
        for seed in &self.config().join {
            if self.join(seed).await.is_ok() {
                break;
            }
        }
        self.check_seeded()
    }

    /// Merge a peer's cluster state; persist and observe its clock if it
    /// taught us anything.
    pub(crate) async fn merge_state(&self, theirs: &ClusterState) -> Result<bool, NodeError> {
        // Why observe: a leave recorded here by a node whose clock runs
        // behind must still order after the join it follows; without this
        // it sorted first and the leave was undone (simulation, seed 1368).
        if let Some(t) = theirs.newest_timestamp() {
            self.membership().observe(t);
        }
        let changed = self.update_state(|s| s.merge(theirs));
        if changed {
            self.persist_state().await?;
        }
        let membership = &self.membership();
        if !membership.is_seeded() && theirs.nodes().keys().any(|n| *n != self.id()) {
            self.store()
                .put_meta(crate::node::META_SEEDED, vec![1], true)
                .await?;
            membership.mark_seeded();
            tracing::info!("met the cluster; serving clients");
        }
        Ok(changed)
    }
}

fn check_zone(zone: &str) -> Result<(), NodeError> {
    if zone.is_empty() || zone.len() > ZONE_BYTES_MAX {
        return Err(NodeError::BadRequest(format!(
            "zone name must be 1 to {ZONE_BYTES_MAX} bytes, got {}",
            zone.len()
        )));
    }
    Ok(())
}
