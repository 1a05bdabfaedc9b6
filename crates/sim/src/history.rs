//! The record of a run: every client operation with its outcome, and every
//! fault, stamped with virtual time. Checkers read it; its digest proves a
//! replay did the same thing.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

/// What a client tried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Read-modify-write adding `element` to the set in `set`.
    SetAdd {
        /// Which set key.
        set: usize,
        /// The element, unique in the run.
        element: u64,
    },
    /// A blind write of a fresh key, acknowledged after `dw` fsyncs.
    DurableWrite {
        /// The key.
        key: String,
        /// Durable-write quorum asked for.
        dw: u8,
    },
    /// A write then a read of the client's own key with `pr + pw > n_val`;
    /// `seen` says whether the read returned the value written.
    ReadYourWrite {
        /// The key.
        key: String,
        /// The value written, a counter per client.
        value: u64,
        /// Whether the read that followed saw it.
        seen: bool,
    },
    /// A delete of a key the client wrote, with the context of the read
    /// that found it: every version that context covers is deleted.
    Delete {
        /// The key.
        key: String,
        /// What the delete covered.
        context: causal::VersionVector,
    },
    /// A write of a fresh record referencing the blob `blob` (an
    /// acknowledged write of a collectable object).
    Link {
        /// The record's key.
        record: String,
        /// The blob's key.
        blob: String,
    },
    /// A delete of a record a `Link` wrote.
    Unlink {
        /// The record's key.
        record: String,
    },
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: the client was told it succeeded.
    Ok,
    /// Definitely not applied (it failed before anything was written).
    Fail,
    /// Not acknowledged, but it may have been applied (a missed quorum, a
    /// timeout, a crash mid-request).
    Unknown,
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// Client number.
    pub client: usize,
    /// Machine the client sent it to.
    pub machine: usize,
    /// What it was.
    pub kind: OpKind,
    /// Virtual milliseconds since the run began.
    pub invoked_ms: u64,
    /// When the outcome was known.
    pub completed_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// Operations and faults in the order they happened.
#[derive(Clone, Default)]
pub struct History {
    inner: Arc<Mutex<Entries>>,
    start: Option<tokio::time::Instant>,
}

#[derive(Default)]
struct Entries {
    ops: Vec<Op>,
    faults: Vec<(u64, String)>,
}

impl History {
    /// An empty history whose clock starts now.
    pub fn new() -> Self {
        History {
            inner: Arc::default(),
            start: Some(tokio::time::Instant::now()),
        }
    }

    /// Virtual milliseconds since the run began.
    pub fn now_ms(&self) -> u64 {
        self.start.map_or(0, |s| s.elapsed().as_millis() as u64)
    }

    /// Record a finished operation.
    pub fn op(&self, op: Op) {
        if let Ok(mut e) = self.inner.lock() {
            e.ops.push(op);
        }
    }

    /// Record a fault (or its healing).
    pub fn fault(&self, what: String) {
        let at = self.now_ms();
        tracing::debug!(at, "{what}");
        if let Ok(mut e) = self.inner.lock() {
            e.faults.push((at, what));
        }
    }

    /// Every operation so far.
    pub fn ops(&self) -> Vec<Op> {
        self.inner.lock().map(|e| e.ops.clone()).unwrap_or_default()
    }

    /// Every fault so far, with when.
    pub fn faults(&self) -> Vec<(u64, String)> {
        self.inner
            .lock()
            .map(|e| e.faults.clone())
            .unwrap_or_default()
    }

    /// A hash of everything recorded: two runs of one seed must agree.
    pub fn digest(&self) -> u64 {
        let mut text = String::new();
        for op in self.ops() {
            let _ = writeln!(text, "{op:?}");
        }
        for f in self.faults() {
            let _ = writeln!(text, "{f:?}");
        }
        xxhash_rust::xxh3::xxh3_64(text.as_bytes())
    }
}
