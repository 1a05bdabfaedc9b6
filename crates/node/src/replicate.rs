//! Drives a [`WriteCoordinator`]: performs its effects (replicate calls,
//! patience timers, hints at fallbacks or here, replication lag) and feeds
//! their outcomes back, in one task per write that outlives the client's
//! answer until every replica's outcome is known.
//!
//! Why a task of its own: replication to the remaining replicas (and the
//! hints for those that do not answer) must go on when the client has
//! its answer, or has gone away.

use crate::coord::write::{PeerView, WriteCoordinator, WriteEffect, WriteEvent};
use crate::error::{CallError, QuorumError, ReplicaFailure};
use crate::proto::{Request, Response};
use crate::{BKey, Node};
use causal::Object;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use ring::NodeId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// One write's object and settings, as every replica gets them.
pub(crate) struct ReplicaWrite {
    pub(crate) key: BKey,
    pub(crate) obj: Object,
    pub(crate) durable: bool,
    pub(crate) collapse: bool,
    /// The request's deadline (each call's too).
    pub(crate) timeout: Duration,
    /// How long a primary has before a fallback stands in.
    pub(crate) patience: Duration,
    /// Marks the key as written here until every replica's outcome is
    /// known (the tombstone reaper waits for those).
    pub(crate) _writing: crate::reap::Writing,
}

/// The local replica's outcome, from the task that stores it.
pub(crate) type LocalStored = oneshot::Receiver<Result<bool, store::StoreError>>;

/// The client's answer.
pub(crate) type Answer = oneshot::Sender<Result<(), Box<QuorumError>>>;

impl PeerView for Node {
    fn is_suspect(&self, node: NodeId) -> bool {
        Node::is_suspect(self, node)
    }
    fn zone_of(&self, node: NodeId) -> Option<String> {
        self.layout().member(node).map(|m| m.zone.clone())
    }
}

/// Calls, timers and hints of one write still running.
struct Inflight {
    events: FuturesUnordered<BoxFuture<'static, WriteEvent>>,
    /// When each slot's replicate call started (uptime ms): a call sent
    /// before a partition healed proves nothing (`Node::mark_failed`).
    started: Vec<u64>,
}

impl Node {
    /// Run `coord` to the end: answer on `answer` once it decides, then
    /// go on until every replica's outcome is known.
    pub(crate) async fn drive_write(
        self,
        mut coord: WriteCoordinator,
        w: Arc<ReplicaWrite>,
        local: Option<(usize, LocalStored)>,
        answer: Answer,
    ) {
        let mut inflight = Inflight {
            events: FuturesUnordered::new(),
            started: Vec::new(),
        };
        if let Some((slot, stored)) = local {
            inflight.events.push(Box::pin(async move {
                let result = match stored.await {
                    Ok(r) => r.map_err(ReplicaFailure::Storage),
                    // The storing task ended without a word: a shutdown.
                    Err(_) => Err(ReplicaFailure::NoAnswer),
                };
                WriteEvent::LocalStored { slot, result }
            }));
        }
        let mut answer = Some(answer);
        let mut acked_at = None;
        let effects = coord.start(&self);
        self.perform(effects, &w, &mut inflight, &mut answer, &mut acked_at);
        let deadline = tokio::time::sleep(w.timeout);
        tokio::pin!(deadline);
        while !coord.is_done() {
            let event = tokio::select! {
                // Biased: a fixed polling order, so a simulated run replays exactly.
                biased;
                event = inflight.events.next() => match event {
                    Some(event) => event,
                    None => break,
                },
                () = &mut deadline, if answer.is_some() => WriteEvent::Deadline,
            };
            let effects = coord.on_event(event, &self);
            self.perform(effects, &w, &mut inflight, &mut answer, &mut acked_at);
        }
    }

    fn perform(
        &self,
        effects: Vec<WriteEffect>,
        w: &Arc<ReplicaWrite>,
        inflight: &mut Inflight,
        answer: &mut Option<Answer>,
        acked_at: &mut Option<Instant>,
    ) {
        for effect in effects {
            match effect {
                WriteEffect::Replicate { slot, to } => self.replicate(slot, to, w, inflight),
                WriteEffect::Suspect { slot, node } => {
                    let started = inflight.started.get(slot).copied().unwrap_or(0);
                    self.mark_failed(node, started);
                }
                WriteEffect::HoldHint {
                    slot,
                    fallback,
                    target,
                } => {
                    let req = Request::StoreHint {
                        target: target.0,
                        key: w.key.clone(),
                        object: w.obj.clone(),
                        durable: w.durable,
                    };
                    let (node, timeout) = (self.clone(), w.timeout);
                    inflight.events.push(Box::pin(async move {
                        let result = replicated(node.call(fallback, req, timeout).await);
                        WriteEvent::HintHeld {
                            slot,
                            fallback,
                            result,
                        }
                    }));
                }
                WriteEffect::KeepHint { slot, target } => {
                    let (node, w) = (self.clone(), w.clone());
                    inflight.events.push(Box::pin(async move {
                        let result = node.store_hint(target, &w.key, &w.obj, w.durable).await;
                        if let Err(e) = &result {
                            tracing::error!(error = %e, primary = %target, "cannot keep a hint");
                        }
                        WriteEvent::HintKept { slot, result }
                    }));
                }
                WriteEffect::Acked { by } => {
                    if by.primary && by.zone != self.config().zone {
                        let lag = acked_at.map_or(Duration::ZERO, |at| at.elapsed());
                        self.lag().record(&by.zone, lag);
                    }
                }
                WriteEffect::Answer(result) => {
                    if result.is_ok() {
                        *acked_at = Some(Instant::now());
                    }
                    if let Some(tx) = answer.take() {
                        let _ = tx.send(result);
                    }
                }
            }
        }
    }

    /// Send the object to the primary of `slot`, and with hinted handoff
    /// start its patience.
    fn replicate(&self, slot: usize, to: NodeId, w: &Arc<ReplicaWrite>, inflight: &mut Inflight) {
        if inflight.started.len() <= slot {
            inflight.started.resize(slot + 1, 0);
        }
        inflight.started[slot] = self.uptime_ms();
        let req = Request::Replicate {
            key: w.key.clone(),
            object: w.obj.clone(),
            durable: w.durable,
            collapse: w.collapse,
        };
        let (node, timeout) = (self.clone(), w.timeout);
        inflight.events.push(Box::pin(async move {
            let result = replicated(node.call(to, req, timeout).await);
            WriteEvent::Replicated { slot, result }
        }));
        if self.config().hinted_handoff {
            let patience = w.patience;
            inflight.events.push(Box::pin(async move {
                tokio::time::sleep(patience).await;
                WriteEvent::PatienceExpired { slot }
            }));
        }
    }
}

/// A replicate or hint call's answer as a replica's outcome.
fn replicated(answer: Result<Response, CallError>) -> Result<bool, ReplicaFailure> {
    match answer {
        Ok(Response::Replicated { durable }) => Ok(durable),
        Ok(other) => Err(CallError::Unexpected(other.name()).into()),
        Err(e) => Err(e.into()),
    }
}
