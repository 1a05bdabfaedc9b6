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
//! Whether the load is heavy is judged by recent rounds, not only by the
//! one at hand. Replies leave a round together, so the next writes come
//! back in a burst too, and under 64 clients a third of the rounds began
//! with a single write: judged alone, each of those skipped the gather and
//! paid an fsync for one write. Judged by the average of recent rounds,
//! fsyncs per S3 PUT fell from 0.22 to 0.13, and the p99 (after key-value
//! PUTs) was lower in four interleaved pairs of five, 31.4 ms on average
//! against 35.9; with few clients the average stays under the threshold
//! and nothing waits (docs/BENCHMARKS.md).
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
/// How much one round moves the average of recent rounds (1/8: the last
/// few tens of rounds, tens of milliseconds under load).
const ROUND_WEIGHT: f64 = 1.0 / 8.0;

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

/// The durable writes of recent rounds, as a moving average: the load a
/// round is judged by when deciding whether to wait for more.
#[derive(Debug, Default)]
struct RecentRounds {
    durable_avg: f64,
}

impl RecentRounds {
    /// Whether a round that holds `durable` durable writes should wait for
    /// more: it holds enough itself, or recent rounds did (a round with
    /// none has no fsync to share).
    fn busy(&self, durable: usize) -> bool {
        durable >= GATHER_DURABLE_MIN
            || (durable > 0 && self.durable_avg >= GATHER_DURABLE_MIN as f64)
    }

    /// Count a round that fsynced `durable` writes.
    fn record(&mut self, durable: usize) {
        if durable > 0 {
            self.durable_avg += (durable as f64 - self.durable_avg) * ROUND_WEIGHT;
        }
    }
}

fn durable_count(jobs: &[Job]) -> usize {
    jobs.iter().filter(|j| j.synced.is_some()).count()
}

fn run(engine: Arc<dyn Engine>, mut rx: mpsc::Receiver<Job>) {
    let mut recent = RecentRounds::default();
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        take_queued(&mut rx, &mut jobs);
        if recent.busy(durable_count(&jobs)) {
            std::thread::sleep(GATHER_WAIT);
            take_queued(&mut rx, &mut jobs);
        }
        recent.record(durable_count(&jobs));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_write_waits_only_when_recent_rounds_were_busy() {
        let mut recent = RecentRounds::default();
        assert!(!recent.busy(1), "idle: a lone write goes at once");
        assert!(recent.busy(GATHER_DURABLE_MIN), "a full round waits");
        for _ in 0..40 {
            recent.record(20);
        }
        assert!(recent.busy(1), "after busy rounds a lone write waits");
        assert!(!recent.busy(0), "no durable write, no fsync to share");
        for _ in 0..40 {
            recent.record(1);
        }
        assert!(
            !recent.busy(1),
            "the load fell: lone writes go at once again"
        );
    }

    #[test]
    fn rounds_without_durable_writes_leave_the_average_alone() {
        let mut recent = RecentRounds::default();
        for _ in 0..40 {
            recent.record(20);
        }
        let before = recent.durable_avg;
        recent.record(0);
        assert_eq!(recent.durable_avg, before);
    }
}
