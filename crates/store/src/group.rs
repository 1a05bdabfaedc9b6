//! Group commit: many durable writers, one fsync.

use crate::{Engine, StoreError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Writers waiting for the next fsync at most; more wait for a slot.
const SYNC_WAITERS_MAX: usize = 8192;

type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// Handle to the fsync task of one engine.
#[derive(Clone)]
pub struct SyncGroup {
    tx: mpsc::Sender<Waiter>,
}

impl SyncGroup {
    /// Spawn the fsync task on the current runtime. It stops when every
    /// handle is dropped.
    pub fn start(engine: Arc<dyn Engine>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Waiter>(SYNC_WAITERS_MAX);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Why this covers every waiter: each one applied its batch
                // before queueing, and the fsync below starts after we
                // dequeued it, so the fsync includes its batch.
                let mut waiters = vec![first];
                while let Ok(w) = rx.try_recv() {
                    waiters.push(w);
                }
                let result = if engine.sync_blocks() {
                    let e = engine.clone();
                    tokio::task::spawn_blocking(move || e.sync())
                        .await
                        .unwrap_or(Err(StoreError::SyncStopped))
                } else {
                    engine.sync()
                };
                if let Err(e) = &result {
                    tracing::error!(error = %e, "fsync failed; durable writes waiting on it fail");
                }
                for w in waiters {
                    let _ = w.send(result.clone());
                }
            }
        });
        SyncGroup { tx }
    }

    /// Wait until an fsync that started after this call has finished.
    ///
    /// # Errors
    ///
    /// The fsync failed, or the task stopped.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .await
            .map_err(|_| StoreError::SyncStopped)?;
        rx.await.map_err(|_| StoreError::SyncStopped)?
    }
}
