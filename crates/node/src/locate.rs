//! Where a key lives, looked up once per request: its partition, its
//! preference list, and the replicas a read or a write goes to, all from
//! one snapshot of the layouts (two lookups could straddle a layout
//! change and disagree). Also a bucket's properties, the other half of
//! what a request needs before it sends anything.

use crate::quorum::Target;
use crate::{BKey, Node, NodeError};
use cluster::{BucketProps, Layouts};
use ring::{NodeId, PartitionId, PreferenceList};
use store::ObjectKey;

/// A key's place in one snapshot of the layouts.
pub(crate) struct Located {
    /// The key's partition.
    pub(crate) partition: u16,
    /// Its primaries, then fallbacks, in the current layout.
    pub(crate) pl: PreferenceList,
    layouts: Layouts,
    n_val: usize,
}

impl Located {
    /// The replicas a read asks: the primaries, unless the layout is in
    /// transition, when new owners that still pull are replaced by the
    /// stable owners that hold the data (see `cluster::Layouts`).
    pub(crate) fn read_targets(&self) -> Vec<Target> {
        if !self.layouts.in_transition() {
            return self.targets(&self.pl.primaries);
        }
        let owners = self
            .layouts
            .read_owners(PartitionId(self.partition), self.n_val);
        self.targets(&owners)
    }

    /// The replicas a write goes to, and during a layout transition the
    /// slots among them of the stable owners, which need a quorum of
    /// their own: the primaries, plus the stable owners that are not
    /// current owners, so the owners that new ones pull from hold every
    /// acknowledged write.
    ///
    /// Why the stable slots even when every stable owner is also a current
    /// owner: they are the ones reads go to. (A cluster whose first layout
    /// is not synced yet has no stable owners.)
    pub(crate) fn write_targets(&self) -> (Vec<Target>, Option<Vec<usize>>) {
        let mut targets = self.targets(&self.pl.primaries);
        let p = PartitionId(self.partition);
        let stable: Vec<NodeId> = self
            .layouts
            .stable
            .owners(p)
            .iter()
            .take(self.n_val)
            .copied()
            .collect();
        if !self.layouts.in_transition() || stable.is_empty() {
            return (targets, None);
        }
        let extra = self.layouts.extra_write_owners(p, self.n_val);
        targets.extend(self.targets(&extra));
        let stable_slots = (0..targets.len())
            .filter(|i| stable.contains(&targets[*i].node))
            .collect();
        (targets, Some(stable_slots))
    }

    /// The key as the store names it.
    pub(crate) fn object_key(&self, key: &BKey) -> ObjectKey {
        Node::object_key(key, self.partition)
    }

    /// `nodes` as primary quorum targets, with their zones.
    fn targets(&self, nodes: &[NodeId]) -> Vec<Target> {
        nodes.iter().map(|n| target(&self.layouts, *n)).collect()
    }
}

impl Node {
    /// Locate `key` for a request over `n_val` replicas.
    ///
    /// # Errors
    ///
    /// [`NodeError::Unavailable`] before this node has joined its cluster,
    /// or when the layout has no owners for the key.
    pub(crate) fn locate(&self, key: &BKey, n_val: u8) -> Result<Located, NodeError> {
        self.check_seeded()?;
        let layouts = self.layouts();
        let layout = &layouts.current;
        let p = ring::partition_of(layout.bits(), &key.bucket_type, &key.bucket, &key.key);
        let pl = layout
            .preference_list(p, usize::from(n_val))
            .map_err(|e| NodeError::Unavailable(e.to_string()))?;
        Ok(Located {
            partition: p.0,
            pl,
            layouts,
            n_val: usize::from(n_val),
        })
    }

    /// The key as the store names it, in `partition`.
    pub(crate) fn object_key(key: &BKey, partition: u16) -> ObjectKey {
        ObjectKey {
            partition,
            bucket_type: key.bucket_type.clone(),
            bucket: key.bucket.clone(),
            key: key.key.clone(),
        }
    }

    /// The properties of a bucket (defaults unless set).
    pub fn bucket_props(&self, bucket_type: &[u8], bucket: &[u8]) -> BucketProps {
        self.membership()
            .read(|s| s.bucket_props(bucket_type, bucket))
    }
}

/// `node` as a primary quorum target, with its zone from the current
/// layout (or the stable one, for a node that is leaving).
fn target(layouts: &Layouts, node: NodeId) -> crate::quorum::Target {
    crate::quorum::Target {
        node,
        zone: layouts
            .current
            .member(node)
            .or_else(|| layouts.stable.member(node))
            .map(|m| m.zone.clone())
            .unwrap_or_default(),
        primary: true,
    }
}
