//! Hybrid logical clocks.
//!
//! A timestamp is the wall clock in milliseconds plus a logical counter, so
//! it never goes backwards on one node and always exceeds every timestamp
//! the node has observed, even when its wall clock is behind. Comparing two
//! timestamps from different nodes falls back to the node id on ties.

use serde::{Deserialize, Serialize};

/// A point in hybrid logical time.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Timestamp {
    /// Milliseconds since the Unix epoch (the larger of wall and observed).
    pub wall_ms: u64,
    /// Orders events within one millisecond.
    pub logical: u32,
    /// The node that made the timestamp.
    pub node: u64,
}

/// One node's clock. The caller supplies wall time (the clock seam).
#[derive(Debug, Clone)]
pub struct Hlc {
    node: u64,
    last: Timestamp,
}

impl Hlc {
    /// A clock for `node` that has seen nothing.
    pub fn new(node: u64) -> Self {
        Hlc {
            node,
            last: Timestamp {
                node,
                ..Timestamp::default()
            },
        }
    }

    /// A timestamp later than every one made or observed before.
    pub fn now(&mut self, wall_ms: u64) -> Timestamp {
        if wall_ms > self.last.wall_ms {
            self.last = Timestamp {
                wall_ms,
                logical: 0,
                node: self.node,
            };
        } else {
            self.last.logical = self.last.logical.saturating_add(1);
            self.last.node = self.node;
        }
        self.last
    }

    /// Move the clock past a timestamp seen in a message.
    pub fn observe(&mut self, seen: Timestamp) {
        if (seen.wall_ms, seen.logical) > (self.last.wall_ms, self.last.logical) {
            self.last = Timestamp {
                node: self.node,
                ..seen
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards_and_passes_observed() {
        let mut c = Hlc::new(1);
        let a = c.now(100);
        let b = c.now(50);
        assert!(b > a);
        c.observe(Timestamp {
            wall_ms: 1000,
            logical: 7,
            node: 2,
        });
        let d = c.now(60);
        assert!((d.wall_ms, d.logical) > (1000, 7));
    }
}
