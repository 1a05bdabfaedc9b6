//! The cluster state CRDT.

use crate::{BucketProps, Timestamp};
use ring::{Layout, Member, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How to reach a node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct NodeAddrs {
    /// Client HTTP (key-value, admin).
    pub http: String,
    /// S3 API.
    pub s3: String,
    /// Inter-node RPC.
    pub rpc: String,
}

/// A membership change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Change {
    /// A node becomes a member.
    Join {
        /// The node.
        node: NodeId,
        /// Its zone.
        zone: String,
        /// Its capacity.
        capacity: u32,
    },
    /// A node's zone or capacity changed.
    Update {
        /// The node.
        node: NodeId,
        /// New zone.
        zone: String,
        /// New capacity.
        capacity: u32,
    },
    /// A node stops being a member.
    Leave {
        /// The node.
        node: NodeId,
    },
    /// `old` leaves and `new` takes its places in the layout.
    Replace {
        /// The node that leaves (usually dead).
        old: NodeId,
        /// The member that takes over its partitions.
        new: NodeId,
    },
}

/// One membership change, stamped when and where it was made.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Event {
    /// When (hybrid logical clock; its `node` field is the origin).
    pub at: Timestamp,
    /// What.
    pub change: Change,
}

/// A node's membership as the event history leaves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// In the layout.
    Member,
    /// Left the cluster.
    Removed,
}

/// (type, bucket) → when set and the props; `None` means "reset to defaults".
type PropsMap = BTreeMap<(Vec<u8>, Vec<u8>), (Timestamp, Option<BucketProps>)>;

/// Everything nodes gossip: membership history, addresses, bucket props.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    events: BTreeSet<Event>,
    addrs: BTreeMap<NodeId, (Timestamp, NodeAddrs)>,
    props: PropsMap,
    /// Per node, the newest (layout version, fingerprint) it holds all
    /// its data for (see `transition`).
    pub(crate) synced: BTreeMap<NodeId, (u64, u64)>,
}

/// The persisted form before sync reports existed.
#[derive(Deserialize)]
struct LegacyState {
    events: BTreeSet<Event>,
    addrs: BTreeMap<NodeId, (Timestamp, NodeAddrs)>,
    props: PropsMap,
}

impl ClusterState {
    /// Decode a state stored by this or an earlier version.
    ///
    /// # Errors
    ///
    /// Bytes that are neither.
    pub fn decode(bytes: &[u8]) -> Result<ClusterState, postcard::Error> {
        postcard::from_bytes(bytes).or_else(|e| {
            let legacy: LegacyState = postcard::from_bytes(bytes).map_err(|_| e)?;
            Ok(ClusterState {
                events: legacy.events,
                addrs: legacy.addrs,
                props: legacy.props,
                synced: BTreeMap::new(),
            })
        })
    }

    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fold in another node's state. Returns whether anything changed.
    pub fn merge(&mut self, other: &ClusterState) -> bool {
        let before = (
            self.events.len(),
            self.addrs.clone(),
            self.props.len(),
            self.synced.clone(),
        );
        for (node, (v, f)) in &other.synced {
            self.record_synced(*node, *v, *f);
        }
        self.events.extend(other.events.iter().cloned());
        for (node, (at, a)) in &other.addrs {
            let mine = self.addrs.entry(*node).or_insert_with(|| (*at, a.clone()));
            // Why compare values too: equal stamps must pick the same winner
            // on every node, or merge would not commute.
            if (*at, a) > (mine.0, &mine.1) {
                *mine = (*at, a.clone());
            }
        }
        let mut props_changed = false;
        for (b, (at, p)) in &other.props {
            match self.props.get_mut(b) {
                Some(mine) if (mine.0, props_key(&mine.1)) >= (*at, props_key(p)) => {}
                Some(mine) => {
                    *mine = (*at, p.clone());
                    props_changed = true;
                }
                None => {
                    self.props.insert(b.clone(), (*at, p.clone()));
                    props_changed = true;
                }
            }
        }
        props_changed
            || before
                != (
                    self.events.len(),
                    self.addrs.clone(),
                    self.props.len(),
                    self.synced.clone(),
                )
    }

    /// Record a membership change.
    pub fn record(&mut self, at: Timestamp, change: Change) {
        self.events.insert(Event { at, change });
    }

    /// Set where a node listens.
    pub fn set_addrs(&mut self, at: Timestamp, node: NodeId, addrs: NodeAddrs) {
        let entry = self
            .addrs
            .entry(node)
            .or_insert_with(|| (at, addrs.clone()));
        if (at, &addrs) >= (entry.0, &entry.1) {
            *entry = (at, addrs);
        }
    }

    /// Where a node listens, if known.
    pub fn addrs(&self, node: NodeId) -> Option<&NodeAddrs> {
        self.addrs.get(&node).map(|(_, a)| a)
    }

    /// Every node ever heard of, with its membership state.
    pub fn nodes(&self) -> BTreeMap<NodeId, MemberState> {
        let mut out = BTreeMap::new();
        for e in &self.events {
            match &e.change {
                Change::Join { node, .. } | Change::Update { node, .. } => {
                    out.insert(*node, MemberState::Member);
                }
                Change::Leave { node } | Change::Replace { old: node, .. } => {
                    out.insert(*node, MemberState::Removed);
                }
            }
        }
        out
    }

    /// The newest timestamp anywhere in this state. A node merging a
    /// peer's state moves its clock past it, so the next change it records
    /// orders after everything it has seen, however slow its wall clock.
    pub fn newest_timestamp(&self) -> Option<Timestamp> {
        let events = self.events.iter().map(|e| e.at);
        let addrs = self.addrs.values().map(|(t, _)| *t);
        let props = self.props.values().map(|(t, _)| *t);
        events
            .chain(addrs)
            .chain(props)
            .max_by_key(|t| (t.wall_ms, t.logical))
    }

    /// Number of membership events: the layout version.
    pub fn layout_version(&self) -> u64 {
        self.events.len() as u64
    }

    /// The layout after folding every event in order, from `bits` partitions.
    pub fn layout(&self, bits: u8) -> Layout {
        self.layout_versions(bits)
            .pop()
            .unwrap_or_else(|| Layout::empty(bits))
    }

    /// The layout after each prefix of the history: version 0 (no members)
    /// first, the current layout last.
    pub fn layout_versions(&self, bits: u8) -> Vec<Layout> {
        let mut members: BTreeMap<NodeId, Member> = BTreeMap::new();
        let mut layout = Layout::empty(bits);
        let mut versions = vec![layout.clone()];
        for e in &self.events {
            match &e.change {
                Change::Join {
                    node,
                    zone,
                    capacity,
                }
                | Change::Update {
                    node,
                    zone,
                    capacity,
                } => {
                    members.insert(
                        *node,
                        Member {
                            id: *node,
                            zone: zone.clone(),
                            capacity: *capacity,
                        },
                    );
                }
                Change::Leave { node } => {
                    members.remove(node);
                }
                Change::Replace { old, new } => {
                    if members.contains_key(new) && members.remove(old).is_some() {
                        layout = layout.renamed(*old, *new);
                    }
                }
            }
            let list: Vec<Member> = members.values().cloned().collect();
            layout = layout.next(&list);
            versions.push(layout.clone());
        }
        versions
    }

    /// Every `n_val` some bucket uses (the default 3 included).
    pub fn n_vals(&self) -> BTreeSet<u8> {
        let mut out: BTreeSet<u8> = self
            .props
            .values()
            .filter_map(|(_, p)| p.as_ref().map(|p| p.n_val))
            .collect();
        out.insert(BucketProps::default().n_val);
        out
    }

    /// A bucket's properties, or the defaults.
    pub fn bucket_props(&self, bucket_type: &[u8], bucket: &[u8]) -> BucketProps {
        self.props
            .get(&(bucket_type.to_vec(), bucket.to_vec()))
            .and_then(|(_, p)| p.clone())
            .unwrap_or_else(|| BucketProps::defaults_for(bucket_type))
    }

    /// Set (or with `None`, reset) a bucket's properties.
    pub fn set_bucket_props(
        &mut self,
        at: Timestamp,
        bucket_type: &[u8],
        bucket: &[u8],
        props: Option<BucketProps>,
    ) {
        let key = (bucket_type.to_vec(), bucket.to_vec());
        match self.props.get(&key) {
            Some((mine, p)) if (*mine, props_key(p)) > (at, props_key(&props)) => {}
            _ => {
                self.props.insert(key, (at, props));
            }
        }
    }
}

/// A total order on property values, to break timestamp ties.
fn props_key(p: &Option<BucketProps>) -> Vec<u8> {
    postcard::to_stdvec(p).unwrap_or_default()
}
