//! # Causality: dotted version vector sets
//!
//! An [`Object`] is what one key holds: a set of [`Sibling`]s, each tagged
//! with the [`Dot`] of the write that made it, plus a causal context (a
//! [`VersionVector`]) summarising every write the object has seen. This is
//! the "dotted version vector set" of Preguiça et al., in the
//! context-plus-dot-store form used by delta-state CRDTs:
//!
//! - **Write** ([`Object::update`]): the coordinating replica makes a fresh
//!   dot, drops exactly the siblings the client's context covers (what the
//!   client saw), and keeps everything else as siblings.
//! - **Merge** ([`Object::merge`]): a sibling survives unless the other side
//!   has seen its dot and dropped it. Merge is commutative, associative and
//!   idempotent, so replicas converge whatever order updates arrive in.
//!
//! ## Why dots come from replicas, with an epoch
//!
//! Dots are made by the replica that coordinates the write, never by
//! clients, so vectors hold at most one entry per coordinating replica and
//! interleaved clients cannot cause sibling explosion. An [`Actor`] is a node
//! *and an epoch* that grows at every restart: a node that crashes before
//! fsyncing a dot it already sent to other replicas must never hand out the
//! same dot for a different value, or one of the two would silently vanish.
//!
//! ## What is not guaranteed
//!
//! A coordinator must serialise writes to one key while it reads its local
//! object and makes a dot (the node crate holds a per-key lock); two
//! concurrent updates of the same in-memory object with the same actor would
//! otherwise share a dot.

mod context;
mod object;

pub use context::{
    decode_context, encode_context, CausalError, VersionVector, CONTEXT_ACTORS_MAX,
    CONTEXT_LEAD_MAX, COUNTER_MAX,
};
pub use object::{Actor, Dot, Meta, Object, Sibling};
