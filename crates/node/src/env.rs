//! The seams between a node and the world: wall clock, randomness, network
//! and disk. Production passes real ones; tests and the simulation pass
//! their own, and the node's code does not change.

use net::Network;
use std::sync::Arc;
use store::Engine;

/// Wall-clock time. Monotonic time comes from `tokio::time`, which a
/// simulation controls already.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn wall_ms(&self) -> u64;
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// Everything a node needs from outside itself.
#[derive(Clone)]
pub struct Env {
    /// Wall clock for timestamps.
    pub clock: Arc<dyn Clock>,
    /// Seed of every random choice the node makes (ids, gossip peers, nonces).
    pub seed: u64,
    /// How the node reaches peers and listens for them.
    pub network: Arc<dyn Network>,
    /// Where the node keeps its data.
    pub engine: Arc<dyn Engine>,
}
