//! A budget of bytes that tasks take from and give back: what bounds the
//! memory of messages queued on a peer connection (`rpc`) and of large
//! key-value bodies in flight on a node (the `http` crate).

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A budget of bytes, kept as KiB units of a semaphore (a semaphore holds
/// at most `u32::MAX` permits per acquire).
#[derive(Clone)]
pub struct ByteBudget {
    units: Arc<Semaphore>,
    total: u32,
}

impl ByteBudget {
    /// A budget of `bytes` (at least 1 KiB).
    pub fn new(bytes: usize) -> Self {
        let total = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(1);
        ByteBudget {
            units: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// Wait for `bytes` of room, held until the permit is dropped. A
    /// request larger than the whole budget takes all of it, so it goes
    /// alone rather than never.
    pub async fn take(&self, bytes: usize) -> OwnedSemaphorePermit {
        let want = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total);
        // The semaphore is never closed, so acquiring cannot fail.
        match self.units.clone().acquire_many_owned(want).await {
            Ok(p) => p,
            Err(_) => unreachable!("a ByteBudget's semaphore is never closed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn takes_wait_for_room_and_oversized_ones_go_alone() {
        let budget = ByteBudget::new(4096);
        let a = budget.take(3000).await;
        let blocked = tokio::time::timeout(Duration::from_secs(1), budget.take(2000)).await;
        assert!(blocked.is_err(), "3000 + 2000 bytes fit a 4096-byte budget");
        drop(a);
        let whole = budget.take(1 << 30).await;
        assert!(tokio::time::timeout(Duration::from_secs(1), budget.take(1))
            .await
            .is_err());
        drop(whole);
        drop(budget.take(1).await);
    }
}
