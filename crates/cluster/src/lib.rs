//! # Cluster state
//!
//! What every node must agree on without a master: who the members are
//! (and so the layout), where to reach them, and each bucket's properties.
//! All of it lives in one [`ClusterState`], a state-based CRDT: nodes send
//! each other their whole state and [`ClusterState::merge`] folds it in.
//! Merge is a union, so it is commutative, associative and idempotent, and
//! any node can be the seed a new node joins through.
//!
//! ## Why membership is an event log
//!
//! Layouts are computed from the *history* of membership changes, not from
//! the current member set, because [`ring::Layout::next`] starts from the
//! previous layout to keep data movement small. Events are ordered by
//! hybrid logical clock ([`Timestamp`]) with the origin node as tie-break,
//! so every node that holds the same events folds them in the same order and
//! computes the same layout, and the layout version is simply the number
//! of events folded.
//!
//! Addresses and bucket properties are last-writer-wins registers keyed by
//! node and bucket, stamped with the same clock.
//!
//! Liveness is the other half of membership and is not agreed on: each
//! node's [`Detector`] (SWIM, by foca) judges which peers are up.
//!
//! This crate is pure; the `node` crate drives the gossip exchange and
//! carries the detector's packets.

mod detector;
mod hlc;
mod props;
mod state;
mod transition;

pub use detector::{Detector, DetectorConfig, DetectorError, DetectorTimer, Drained, Peer};
pub use hlc::{Hlc, Timestamp};
pub use props::{BucketProps, QuorumValue, S3_TYPE_PREFIX};
pub use state::{Change, ClusterState, Event, MemberState, NodeAddrs};
pub use transition::{fingerprint, Layouts};
