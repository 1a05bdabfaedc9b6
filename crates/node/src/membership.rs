//! Membership operations: join, leave, replace, and merging a peer's
//! cluster state. Each records an event in the cluster state, persists it
//! and pushes it to every peer; layout transitions follow from the events.

use crate::gossip;
use crate::proto::{Request, Response};
use crate::{Node, NodeError};
use cluster::{Change, ClusterState};
use ring::NodeId;

impl Node {
    /// Join the cluster that `seed` (an RPC address) belongs to.
    ///
    /// # Errors
    ///
    /// [`NodeError::Unavailable`] when the seed cannot be reached.
    pub async fn join(&self, seed: &str) -> Result<(), NodeError> {
        let state = self.cluster_state();
        let reply = self
            .inner
            .rpc
            .call(
                seed,
                Request::Gossip(state),
                self.inner.cfg.request_timeout(),
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

    /// Merge a peer's cluster state; persist and observe its clock if it
    /// taught us anything.
    pub(crate) async fn merge_state(&self, theirs: &ClusterState) -> Result<bool, NodeError> {
        let changed = self.update_state(|s| s.merge(theirs));
        if changed {
            self.persist_state().await?;
        }
        Ok(changed)
    }
}
