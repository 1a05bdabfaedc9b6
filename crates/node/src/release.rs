//! Dropping the data of partitions a node no longer owns.
//!
//! Runs only when the layout is stable, that is, after every owner of the
//! current layout reported holding its partitions, so the copies dropped
//! here exist elsewhere. Each key is re-checked under its lock against the
//! layout of that moment: a newer change that made this node an owner
//! again (and started a transition) stops the drop.

use crate::locks::Held;
use crate::{BKey, Node, NodeError};
use cluster::Layouts;
use ring::PartitionId;
use store::ObjectKey;

/// Bytes scanned per page while dropping.
const PAGE_BYTES_MAX: usize = 1024 * 1024;

impl Node {
    /// Delete every object this node holds but does not own in the stable
    /// layout. Does the work once per layout.
    pub(crate) async fn drop_lost(&self, layouts: &Layouts) -> Result<(), NodeError> {
        let version = (
            layouts.current_version,
            cluster::fingerprint(&layouts.current),
        );
        if self.released_for().held().is_some_and(|r| r == version) {
            return Ok(());
        }
        let n_min = self.cluster_state().n_vals().into_iter().min().unwrap_or(3);
        let mut dropped = 0u64;
        let lost: Vec<u16> = self
            .aae()
            .trees
            .partitions()
            .into_iter()
            .filter(|&p| {
                self.rank_in(layouts, p)
                    .is_none_or(|r| r >= usize::from(n_min))
            })
            .collect();
        if !lost.is_empty() {
            // Before any replica goes: see `Node::new_epoch`.
            self.new_epoch().await?;
        }
        for p in lost {
            match self.drop_partition(p).await? {
                Some(n) => dropped += n,
                None => return Ok(()), // the layout moved: next round
            }
        }
        if dropped > 0 {
            tracing::info!(
                objects = dropped,
                "dropped replicas of partitions handed off"
            );
        }
        *self.released_for().held() = Some(version);
        Ok(())
    }

    fn rank_in(&self, layouts: &Layouts, p: u16) -> Option<usize> {
        layouts
            .current
            .owners(PartitionId(p))
            .iter()
            .position(|o| *o == self.id())
    }

    /// Drop the objects of `p` this node does not own; `None` if the layout
    /// changed under it.
    async fn drop_partition(&self, p: u16) -> Result<Option<u64>, NodeError> {
        let mut after: Option<ObjectKey> = None;
        let mut dropped = 0;
        loop {
            let page = self
                .store()
                .scan_partition_page(p, after.as_ref(), PAGE_BYTES_MAX)?;
            let Some((last, _, _)) = page.last() else {
                return Ok(Some(dropped));
            };
            after = Some(last.clone());
            for (okey, _, _) in page {
                let key = BKey {
                    bucket_type: okey.bucket_type.clone(),
                    bucket: okey.bucket.clone(),
                    key: okey.key.clone(),
                };
                let n_val = usize::from(self.bucket_props(&key.bucket_type, &key.bucket).n_val);
                let _guard = self.key_lock(&key).lock().await;
                let now = self.layouts();
                if now.in_transition() {
                    return Ok(None);
                }
                if self.rank_in(&now, p).is_some_and(|r| r < n_val) {
                    continue;
                }
                let Some(obj) = self.store().get_object(&okey)? else {
                    continue;
                };
                self.aae()
                    .trees
                    .update(p, &okey.encode(), &obj, &causal::Object::new());
                let was = store::IndexTerms::of(&obj);
                self.store().delete_objects(&[(okey, was)], false).await?;
                dropped += 1;
            }
        }
    }
}
