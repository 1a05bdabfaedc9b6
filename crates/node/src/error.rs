//! Node errors: one variant per failure a caller can act on, typed down
//! to why each replica did not count. The HTTP and S3 layers map each to
//! a status code.
//!
//! They do not cross the wire themselves: a peer's failure travels as a
//! [`WireError`] (frozen in `proto`, like every message), so changing a
//! message or adding a variant here never changes the protocol.

use crate::proto::{WireError, WireQuorum};
use ring::NodeId;
use std::fmt;
use store::StoreError;

/// Why a call to a peer failed ([`crate::Node`]'s `call`).
#[derive(Clone, Debug, thiserror::Error)]
pub enum CallError {
    /// The peer's address has not reached this node yet.
    #[error("address unknown (not gossiped yet)")]
    AddressUnknown,
    /// The call did not get through, or its answer did not come back.
    #[error(transparent)]
    Transport(#[from] net::RpcError),
    /// The peer answered with an error.
    #[error("{0}")]
    Remote(WireError),
    /// The peer answered with a message of the wrong kind.
    #[error("unexpected answer {0}")]
    Unexpected(&'static str),
    /// The peer's answer carried an object that breaks causal's invariants.
    #[error("malformed answer: {0}")]
    Malformed(causal::CausalError),
}

/// Why one replica did not count towards a quorum.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ReplicaFailure {
    /// The request's deadline passed first.
    #[error("no answer before the deadline")]
    NoAnswer,
    /// The quorum became impossible before it answered.
    #[error("not waited for: the quorum was already impossible")]
    NotWaitedFor,
    /// A read found nothing there (and `notfound_ok` is off).
    #[error("not found")]
    NotFound,
    /// A recent call failed, so the write went to a fallback at once.
    #[error("suspected down: a recent call failed")]
    Suspected,
    /// A write's primary did not answer within its patience.
    #[error("no answer within {patience_ms} ms")]
    Impatient {
        /// The patience, ms.
        patience_ms: u64,
    },
    /// The call failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// This node's own replica could not be read or written.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The write is held here as a hint for the replica.
    #[error("{0} (the coordinator keeps a hint for it)")]
    Hinted(Box<ReplicaFailure>),
    /// No fallback took the write, and keeping a hint here failed.
    #[error("{failure}; keeping a hint failed too: {error}")]
    HintFailed {
        /// Why the replica itself failed.
        failure: Box<ReplicaFailure>,
        /// Why the hint failed.
        error: Box<NodeError>,
    },
}

/// What a request needed, in numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Needed {
    /// Replies from replicas.
    Replies {
        /// Replies that count.
        total: usize,
        /// Of them, fsynced (writes).
        durable: usize,
        /// Of them, from primaries.
        primary: usize,
        /// Primaries that exist for the key.
        n: usize,
        /// As the client asked, e.g. `w=quorum (2) dw=2 pw=0 of n=3`.
        spelled: String,
    },
    /// One primary that takes a forwarded write to coordinate it.
    Coordinator,
}

impl fmt::Display for Needed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Needed::Replies { spelled, .. } => f.write_str(spelled),
            Needed::Coordinator => f.write_str("a reachable primary to coordinate the write"),
        }
    }
}

/// A quorum that was not met: what was needed, who counted, who failed
/// and why.
#[derive(Clone, Debug)]
pub struct QuorumError {
    /// `put`, `get` or `delete`.
    pub op: &'static str,
    /// What was required.
    pub needed: Needed,
    /// Replicas that answered in a way that counted.
    pub acked: Vec<NodeId>,
    /// Replicas asked.
    pub asked: usize,
    /// Replicas that failed, with why.
    pub failures: Vec<(NodeId, ReplicaFailure)>,
}

impl QuorumError {
    /// As it crosses the wire: the same words, as text.
    pub fn to_wire(&self) -> WireQuorum {
        WireQuorum {
            op: self.op.to_string(),
            required: self.needed.to_string(),
            acked: self.acked.iter().map(ToString::to_string).collect(),
            asked: self.asked,
            failures: self
                .failures
                .iter()
                .map(|(n, why)| (n.to_string(), why.to_string()))
                .collect(),
        }
    }
}

impl fmt::Display for QuorumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_wire().fmt(f)
    }
}

/// What went wrong with a request.
#[derive(Clone, Debug, thiserror::Error)]
pub enum NodeError {
    /// The request itself is wrong (a 400).
    #[error("{0}")]
    BadRequest(String),
    /// A quorum could not be met (a 503).
    #[error("{0}")]
    Quorum(Box<QuorumError>),
    /// `If-None-Match: *` and the key exists (a 412).
    #[error("the key already exists and the request asked If-None-Match: *")]
    PreconditionFailed,
    /// The cluster cannot serve the request now (a 503).
    #[error("{0}")]
    Unavailable(String),
    /// Local storage failed (a 500).
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// A call to a peer that this request needed failed.
    #[error("node {peer}: {error}")]
    Peer {
        /// The peer called.
        peer: NodeId,
        /// Why the call failed.
        error: Box<CallError>,
    },
    /// The node this request was forwarded to failed it; its error as it
    /// arrived (status by [`WireError::kind`]).
    #[error("{0}")]
    Remote(WireError),
}

/// The class of a failure, which decides its status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong (400).
    BadRequest,
    /// A precondition failed (412).
    PreconditionFailed,
    /// Try again later (503).
    Unavailable,
    /// This node failed (500).
    Internal,
}

impl NodeError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            NodeError::BadRequest(_) => ErrorKind::BadRequest,
            NodeError::PreconditionFailed => ErrorKind::PreconditionFailed,
            NodeError::Quorum(_) | NodeError::Unavailable(_) => ErrorKind::Unavailable,
            NodeError::Storage(_) => ErrorKind::Internal,
            NodeError::Remote(w) => w.kind(),
            NodeError::Peer { error, .. } => match &**error {
                CallError::Remote(w) => w.kind(),
                _ => ErrorKind::Unavailable,
            },
        }
    }

    /// A failed call to `peer`, for the request that needed it.
    pub fn peer(peer: NodeId) -> impl FnOnce(CallError) -> NodeError {
        move |error| NodeError::Peer {
            peer,
            error: Box::new(error),
        }
    }

    /// A peer's error as this node reports it: the plain kinds keep their
    /// variant, the rest stay as they arrived.
    pub fn from_wire(w: WireError) -> NodeError {
        match w {
            WireError::BadRequest(m) => NodeError::BadRequest(m),
            WireError::PreconditionFailed => NodeError::PreconditionFailed,
            WireError::Unavailable(m) => NodeError::Unavailable(m),
            other @ (WireError::Quorum(_) | WireError::Storage(_)) => NodeError::Remote(other),
        }
    }

    /// This error as it crosses the wire.
    pub fn to_wire(&self) -> WireError {
        match self {
            NodeError::BadRequest(m) => WireError::BadRequest(m.clone()),
            NodeError::Quorum(q) => WireError::Quorum(q.to_wire()),
            NodeError::PreconditionFailed => WireError::PreconditionFailed,
            NodeError::Unavailable(m) => WireError::Unavailable(m.clone()),
            NodeError::Storage(e) => WireError::Storage(e.to_string()),
            NodeError::Remote(w) => w.clone(),
            NodeError::Peer { .. } => WireError::Unavailable(self.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quorum_error_keeps_its_wording_in_numbers() {
        let e = QuorumError {
            op: "get",
            needed: Needed::Replies {
                total: 2,
                durable: 0,
                primary: 0,
                n: 3,
                spelled: "r=quorum (2) pr=0 of n=3".into(),
            },
            acked: vec![NodeId(0xa)],
            asked: 3,
            failures: vec![
                (NodeId(0xb), ReplicaFailure::NoAnswer),
                (
                    NodeId(0xc),
                    ReplicaFailure::Hinted(Box::new(ReplicaFailure::Impatient {
                        patience_ms: 300,
                    })),
                ),
            ],
        };
        assert_eq!(
            e.to_string(),
            "get needed r=quorum (2) pr=0 of n=3; 1 of 3 replicas answered (000000000000000a); \
             000000000000000b: no answer before the deadline; 000000000000000c: no answer \
             within 300 ms (the coordinator keeps a hint for it). Retry when the replicas are \
             back, or lower the quorum for this request."
        );
        let wire = NodeError::Quorum(Box::new(e)).to_wire();
        assert_eq!(NodeError::from_wire(wire).kind(), ErrorKind::Unavailable);
    }
}
