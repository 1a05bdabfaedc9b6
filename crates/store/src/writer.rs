//! The write path to an engine, with group commit.
//!
//! For a disk engine one dedicated thread applies every batch and runs
//! every fsync. It takes all queued writes at once, commits them, answers
//! the non-durable ones, runs one fsync for the durable ones and answers
//! them. So N concurrent durable writes share one fsync, and no async
//! worker ever blocks on the engine: fjall holds its journal lock while it
//! fsyncs, and a tokio worker blocked on that lock stalls every request it
//! would have served (measured: three in-process nodes on two workers
//! averaged 2.2 writes per fsync and 44 ms per write before this thread).
//!
//! Under heavy concurrency the thread waits a moment before it fsyncs, to
//! gather more writes into that fsync (PostgreSQL's `commit_delay` with
//! `commit_siblings`): an fsync costs the same kernel CPU however many
//! writes it covers, and with three nodes on two cores that CPU is what
//! bounds throughput. Measured on the dev cluster, 4 KiB S3 PUTs with 64
//! clients: 433-469 µs of cluster CPU per PUT with a 2 ms gather against
//! 494-520 µs without; with 1 and 4 clients p50 moved by under 0.2 ms
//! (docs/BENCHMARKS.md).
//!
//! An engine whose I/O does not block (the in-memory engine, used by the
//! simulation, which must not start threads) is written inline instead.

use crate::engine::BatchItem;
use crate::{Engine, StoreError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Writes waiting for the writer thread; more wait for a slot.
const WRITES_QUEUED_MAX: usize = 8192;
/// Writes one round of the thread takes before it fsyncs.
const WRITES_PER_ROUND_MAX: usize = 1024;
/// Durable writes a round must already hold before the thread waits for
/// more: fewer means little concurrency, where waiting only adds latency.
const GATHER_DURABLE_MIN: usize = 4;
/// How long a busy round waits for more writes before its fsync. Bounded
/// well below a request's latency under that load (~20 ms at 64 clients).
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_millis(2);

type Reply = oneshot::Sender<Result<(), StoreError>>;

struct Job {
    batch: Vec<BatchItem>,
    /// Answered once the batch is applied (visible to reads).
    applied: Reply,
    /// Answered once an fsync covers the batch; `None`: no fsync wanted.
    synced: Option<Reply>,
}

/// An fsync still to come for a write that is already applied.
pub struct PendingSync(Option<oneshot::Receiver<Result<(), StoreError>>>);

impl PendingSync {
    /// Wait until the write is durable (at once if no fsync was asked).
    ///
    /// # Errors
    ///
    /// The fsync failed, or the writer stopped.
    pub async fn wait(self) -> Result<(), StoreError> {
        match self.0 {
            Some(rx) => rx.await.map_err(|_| StoreError::SyncStopped)?,
            None => Ok(()),
        }
    }
}

/// Handle to an engine's writer.
#[derive(Clone)]
pub(crate) struct Writer {
    engine: Arc<dyn Engine>,
    /// `None` for engines written inline.
    tx: Option<mpsc::Sender<Job>>,
}

impl Writer {
    pub(crate) fn start(engine: Arc<dyn Engine>) -> Self {
        if !engine.sync_blocks() {
            return Writer { engine, tx: None };
        }
        let (tx, rx) = mpsc::channel(WRITES_QUEUED_MAX);
        let e = engine.clone();
        let spawned = std::thread::Builder::new()
            .name("ringstore-writer".into())
            .spawn(move || run(e, rx));
        if let Err(err) = spawned {
            tracing::error!(error = %err, "cannot start the writer thread; writing inline");
            return Writer { engine, tx: None };
        }
        Writer {
            engine,
            tx: Some(tx),
        }
    }

    /// Apply `batch` and return once it is visible to reads; with
    /// `durable`, the returned [`PendingSync`] resolves after an fsync that
    /// covers it. An empty batch with `durable` waits for an fsync of
    /// everything written before.
    pub(crate) async fn write_staged(
        &self,
        batch: Vec<BatchItem>,
        durable: bool,
    ) -> Result<PendingSync, StoreError> {
        let Some(tx) = &self.tx else {
            if !batch.is_empty() {
                self.engine.write(batch)?;
            }
            if durable {
                self.engine.sync()?;
            }
            return Ok(PendingSync(None));
        };
        let (applied, applied_rx) = oneshot::channel();
        let (synced, synced_rx) = if durable {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        tx.send(Job {
            batch,
            applied,
            synced,
        })
        .await
        .map_err(|_| StoreError::SyncStopped)?;
        applied_rx.await.map_err(|_| StoreError::SyncStopped)??;
        Ok(PendingSync(synced_rx))
    }

    /// Apply `batch`; with `durable`, return after an fsync that covers it.
    pub(crate) async fn write(
        &self,
        batch: Vec<BatchItem>,
        durable: bool,
    ) -> Result<(), StoreError> {
        self.write_staged(batch, durable).await?.wait().await
    }
}

/// Move queued jobs into `jobs`, up to a round's limit, without waiting.
fn take_queued(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
    while jobs.len() < WRITES_PER_ROUND_MAX {
        match rx.try_recv() {
            Ok(j) => jobs.push(j),
            Err(_) => break,
        }
    }
}

fn run(engine: Arc<dyn Engine>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        take_queued(&mut rx, &mut jobs);
        if jobs.iter().filter(|j| j.synced.is_some()).count() >= GATHER_DURABLE_MIN {
            std::thread::sleep(GATHER_WAIT);
            take_queued(&mut rx, &mut jobs);
        }
        let mut durable = Vec::new();
        for job in jobs {
            let applied = if job.batch.is_empty() {
                Ok(())
            } else {
                engine.write(job.batch)
            };
            match job.synced {
                Some(synced) if applied.is_ok() => durable.push(synced),
                Some(synced) => {
                    let _ = synced.send(applied.clone());
                }
                None => {}
            }
            let _ = job.applied.send(applied);
        }
        if durable.is_empty() {
            continue;
        }
        // Why one fsync answers them all: every batch above was applied
        // before this fsync started.
        let synced = engine.sync();
        if let Err(e) = &synced {
            tracing::error!(error = %e, "fsync failed; durable writes waiting on it fail");
        }
        for reply in durable {
            let _ = reply.send(synced.clone());
        }
    }
}
