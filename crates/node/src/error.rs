//! Node errors: one variant per failure a caller can act on. They cross
//! the wire (a forwarded write's failure reaches the client's node intact)
//! and the HTTP layer maps each to a status code.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Replies a quorum operation received, for the error message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumError {
    /// `put`, `get` or `delete`.
    pub op: String,
    /// What was required, e.g. `w=3 (dw=2, pw=0) of n=3`.
    pub required: String,
    /// Replicas that answered in a way that counted.
    pub acked: Vec<String>,
    /// Replicas asked.
    pub asked: usize,
    /// Replicas that failed, with why.
    pub failures: Vec<(String, String)>,
}

impl fmt::Display for QuorumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} needed {}; {} of {} replicas answered",
            self.op,
            self.required,
            self.acked.len(),
            self.asked
        )?;
        if !self.acked.is_empty() {
            write!(f, " ({})", self.acked.join(", "))?;
        }
        for (node, why) in &self.failures {
            write!(f, "; {node}: {why}")?;
        }
        write!(
            f,
            ". Retry when the replicas are back, or lower the quorum for this request."
        )
    }
}

/// What went wrong with a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NodeError {
    /// The request itself is wrong (a 400).
    #[error("{0}")]
    BadRequest(String),
    /// A quorum could not be met (a 503).
    #[error("{0}")]
    Quorum(QuorumError),
    /// `If-None-Match: *` and the key exists (a 412).
    #[error("the key already exists and the request asked If-None-Match: *")]
    PreconditionFailed,
    /// The cluster cannot serve the request now (a 503).
    #[error("{0}")]
    Unavailable(String),
    /// Local storage failed (a 500).
    #[error("{0}")]
    Storage(String),
}

impl From<store::StoreError> for NodeError {
    fn from(e: store::StoreError) -> Self {
        NodeError::Storage(e.to_string())
    }
}
