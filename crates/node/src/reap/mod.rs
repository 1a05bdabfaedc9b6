//! Tombstone reaping: removing a deleted key's tombstone from every replica
//! once nothing can bring the key back.
//!
//! A delete writes a tombstone: a version that says "deleted" and whose
//! causal context covers every version it replaced. The tombstone must
//! stay while any older version may still arrive somewhere, or that
//! version would find an empty replica and come back to life (and
//! anti-entropy would spread it). Riak's answer is `delete_mode`: keep the
//! tombstone a few seconds after every primary holds it, then remove it.
//! ringstore does the same, and closes the ways an older version arrives:
//!
//! - **A replica that missed the delete**: every primary must hold the
//!   same tombstone (equal digests), so none holds an older version.
//! - **A hint**: a fallback may hold a write for a primary that was down.
//!   Every member is asked whether it holds a hint for the key, and a
//!   member that does not answer stops the reap. A hint is removed only
//!   after its target acknowledged it, so a hint in flight is still seen.
//! - **A layout change**: replicas are moving; nothing is reaped then.
//! - **A stray replica**: a node that is not a primary may hold a version
//!   (a read repair reached a fallback), and becomes a primary at the next
//!   layout change. Every member reports its replica's digest; a member
//!   holding anything but the tombstone is sent the tombstone (which
//!   replaces what it covers) and the key waits for the next pass.
//! - **Anything still in flight** (a read repair or an anti-entropy sync
//!   that read an older version before the reap, a write's replication
//!   delayed in the network): every member that answered the probe is
//!   told of the reap and remembers the tombstone's causal context for
//!   `reap_memory_ms`; a replica write that arrives meanwhile loses the
//!   versions that context covers ([`Reaper::screen`]), exactly as the
//!   tombstone would have removed them. The memory is bounded
//!   (`reap_memory_keys_max`); when it is full, reaps wait.
//! - **A write still replicating**: a write acknowledged before the delete
//!   may still be sending its (deleted) version to a slow primary or a
//!   fallback. Its coordinator marks the key busy until every replication
//!   task of the write has ended, and a busy key waits. What this leaves
//!   is a message that outlives its sender's deadline in the network; the
//!   grace period (seconds) is what covers that.
//! - **A write racing the reap**: each primary drops its replica under the
//!   key's lock only if its digest is still the one every primary had.
//!
//! The work follows deletes, not data: the reaper walks the store's
//! tombstone index (`store::tombstones`), at most
//! `reap_keys_per_pass_max` entries per pass, and only the first primary
//! of a key (its leader) coordinates its reap.
//!
//! ## Dots after a reap
//!
//! A replica's context is where its coordinator takes the next dot's
//! counter from. Once a node dropped a key, a replica that did not drop it
//! (its drop failed) may still hold counters the node already used. Each
//! node keeps a floor, the highest counter of its own actor in any context
//! it dropped, and new dots go above it ([`causal::Object::update_above`]).
//! The floor lives in memory: a restart starts a new epoch, a new actor.

mod plan;
mod state;

pub use plan::ProbeAnswer;
pub(crate) use plan::{plan, KeyPlan};
pub(crate) use state::{Reaper, Writing};

use crate::proto::{Request, Response};
use crate::{BKey, Node, NodeError};
use causal::{Object, VersionVector};
use ring::NodeId;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use store::{ObjectKey, TombstoneEntry};

/// Keys one probe or reap call carries at most.
pub(crate) const REAP_BATCH_MAX: usize = 256;
/// Graces after which a primary that does not lead a key reaps it itself.
const STAND_IN_GRACES: u64 = 4;
/// Bytes of the tombstone index read per page.
const INDEX_PAGE_BYTES: usize = 64 * 1024;

/// One key of a probe: the key, its primaries, the tombstone's context.
pub type ProbeKey = (BKey, Vec<u64>, VersionVector);

/// One key of a reap: the key, its tombstone's digest and context.
pub type ReapKey = (BKey, u64, VersionVector);

/// Run reaping passes every `reap_interval_ms` while `delete_mode` reaps.
pub(crate) async fn run(node: Node) {
    let Some(grace_ms) = node.config().delete_mode.grace_ms() else {
        return;
    };
    let mut tick = tokio::time::interval(node.config().reap_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cursor: Option<ObjectKey> = None;
    loop {
        tick.tick().await;
        cursor = match node.reap_pass(grace_ms, cursor.as_ref()).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "a tombstone reaping pass failed; retrying next pass");
                None
            }
        };
    }
}

impl Node {
    /// Walk up to `reap_keys_per_pass_max` tombstone index entries after
    /// `cursor`; forget stale ones and reap what is due. Returns where the
    /// next pass resumes (`None`: from the start).
    async fn reap_pass(
        &self,
        grace_ms: u64,
        cursor: Option<&ObjectKey>,
    ) -> Result<Option<ObjectKey>, NodeError> {
        let mut cursor = cursor.cloned();
        let mut walked = 0;
        while walked < self.config().reap_keys_per_pass_max {
            let page = self
                .store()
                .tombstones_page(cursor.as_ref(), INDEX_PAGE_BYTES)?;
            let Some(last) = page.last() else {
                let reaper = &self.reaper();
                let held = reaper.walk_held.swap(0, Ordering::Relaxed);
                reaper.held_last_walk.store(held, Ordering::Relaxed);
                return Ok(None);
            };
            cursor = Some(last.key.clone());
            let walked_now = page.len();
            walked += walked_now;
            let mut due = Vec::new();
            let mut stale = Vec::new();
            let now = self.env().clock.wall_ms();
            for entry in page {
                match self.judge(&entry, grace_ms, now)? {
                    Verdict::Stale => stale.push(entry.key),
                    Verdict::Due(key, obj) => due.push((entry.key.partition, key, obj)),
                    Verdict::Wait => {}
                }
            }
            self.store().forget_tombstones(&stale).await?;
            let held = (walked_now - stale.len()) as u64;
            self.reaper().walk_held.fetch_add(held, Ordering::Relaxed);
            for batch in due.chunk_by(|a, b| a.0 == b.0) {
                for chunk in batch.chunks(REAP_BATCH_MAX) {
                    let keys = chunk
                        .iter()
                        .map(|(_, k, o)| (k.clone(), o.clone()))
                        .collect();
                    self.reap_batch(chunk[0].0, keys).await;
                }
            }
        }
        Ok(cursor)
    }

    /// What to do with one index entry now.
    fn judge(&self, entry: &TombstoneEntry, grace_ms: u64, now: u64) -> Result<Verdict, NodeError> {
        let Some(obj) = self.store().get_object(&entry.key)? else {
            return Ok(Verdict::Stale);
        };
        let Some(since) = obj.tombstone_ms() else {
            return Ok(Verdict::Stale);
        };
        if since.saturating_add(grace_ms) > now || self.layouts().in_transition() {
            return Ok(Verdict::Wait);
        }
        let key = BKey {
            bucket_type: entry.key.bucket_type.clone(),
            bucket: entry.key.bucket.clone(),
            key: entry.key.key.clone(),
        };
        let n_val = self.bucket_props(&key.bucket_type, &key.bucket).n_val;
        let loc = self.locate(&key, n_val)?;
        let (partition, pl) = (loc.partition, loc.pl);
        if partition != entry.key.partition {
            // Written under another layout's partitioning; not ours to judge.
            return Ok(Verdict::Wait);
        }
        // The first primary leads; the others step in later, for a leader
        // that is down or lacks the tombstone (it lost it in a crash, or
        // dropped it while this replica's drop failed). Two reapers of one
        // key are safe: each checks everything, and drops are conditional.
        let leads = pl.primaries.first() == Some(&self.id());
        let stands_in = pl.primaries.contains(&self.id())
            && since.saturating_add(grace_ms.saturating_mul(STAND_IN_GRACES)) <= now;
        if !leads && !stands_in {
            return Ok(Verdict::Wait);
        }
        Ok(Verdict::Due(key, obj))
    }

    /// Probe every member about `keys` (tombstones this node leads), then
    /// act on each as [`plan`] decides: drop it on every holder, or send
    /// the tombstone to members that hold something else.
    async fn reap_batch(&self, partition: u16, keys: Vec<(BKey, Object)>) {
        let mut due = Vec::new();
        let mut primaries_of = Vec::new();
        for (key, obj) in keys {
            let n_val = self.bucket_props(&key.bucket_type, &key.bucket).n_val;
            let Ok(loc) = self.locate(&key, n_val) else {
                continue;
            };
            let pl = loc.pl;
            primaries_of.push(pl.primaries.clone());
            let digest = crate::aae::digest(&obj);
            due.push((key, obj, digest));
        }
        let probe: Vec<ProbeKey> = due
            .iter()
            .zip(&primaries_of)
            .map(|((k, o, _), ps)| {
                let ids = ps.iter().map(|p| p.0).collect();
                (k.clone(), ids, o.context().clone())
            })
            .collect();
        let Some(answers) = self.probe_members(partition, probe).await else {
            return;
        };
        let mut reaps: Vec<ReapKey> = Vec::new();
        let mut settle = Vec::new();
        for (i, (key, obj, digest)) in due.iter().enumerate() {
            let of_key: BTreeMap<NodeId, ProbeAnswer> =
                answers.iter().map(|(m, a)| (*m, a[i])).collect();
            match plan(*digest, &primaries_of[i], &of_key) {
                KeyPlan::Reap => reaps.push((key.clone(), *digest, obj.context().clone())),
                KeyPlan::Settle(strays) => settle.push((key, obj, strays)),
                KeyPlan::Wait => {}
            }
        }
        self.send_tombstones(&settle).await;
        if reaps.is_empty() {
            return;
        }
        // Every member, not only the holders: each remembers the context.
        let timeout = self.config().request_timeout();
        let calls = answers.keys().map(|member| {
            let keys = reaps.clone();
            async move {
                if *member == self.id() {
                    return self.reap_local(partition, &keys).await.map(|_| ());
                }
                let req = Request::Reap { partition, keys };
                self.call(*member, req, timeout)
                    .await
                    .map(|_| ())
                    .map_err(NodeError::peer(*member))
            }
        });
        for r in futures::future::join_all(calls).await {
            if let Err(e) = r {
                // The replicas that were not dropped are reaped next pass;
                // anti-entropy meanwhile copies the tombstone back, never
                // an older version (every holder had the tombstone).
                tracing::debug!(error = %e, partition, "a reap did not reach every member");
            }
        }
    }

    /// Send each stray holder the tombstone: merged into what it holds,
    /// it replaces every version it covers, and the next pass finds the
    /// stray holding the tombstone too.
    async fn send_tombstones(&self, settle: &[(&BKey, &Object, Vec<NodeId>)]) {
        let timeout = self.config().request_timeout();
        for (key, obj, strays) in settle {
            let props = self.bucket_props(&key.bucket_type, &key.bucket);
            let collapse = props.last_write_wins || !props.allow_mult;
            for stray in strays {
                let req = Request::Replicate {
                    key: (*key).clone(),
                    object: (*obj).clone(),
                    durable: false,
                    collapse,
                };
                if let Err(e) = self.call(*stray, req, timeout).await {
                    tracing::debug!(error = %e, node = %stray, "cannot send a tombstone to a stray replica");
                }
            }
        }
    }

    /// Every member's answers to a probe, or `None` if any member did not
    /// answer (it may hold a hint).
    async fn probe_members(
        &self,
        partition: u16,
        probe: Vec<ProbeKey>,
    ) -> Option<BTreeMap<NodeId, Vec<ProbeAnswer>>> {
        let asked = probe.len();
        let members = self.member_ids();
        let timeout = self.config().request_timeout();
        let calls = members.iter().map(|m| {
            let probe = probe.clone();
            async move {
                let answer = if *m == self.id() {
                    self.probe_local(partition, &probe).ok()
                } else {
                    let req = Request::ReapProbe {
                        partition,
                        keys: probe,
                    };
                    match self.call(*m, req, timeout).await {
                        Ok(Response::ReapProbe(a)) if a.len() == asked => Some(a),
                        _ => None,
                    }
                };
                (*m, answer)
            }
        });
        let mut out = BTreeMap::new();
        for (m, answer) in futures::future::join_all(calls).await {
            out.insert(m, answer?);
        }
        Some(out)
    }

    /// Answer a probe from this node's storage.
    pub(crate) fn probe_local(
        &self,
        partition: u16,
        keys: &[ProbeKey],
    ) -> Result<Vec<ProbeAnswer>, NodeError> {
        if keys.len() > REAP_BATCH_MAX {
            return Err(NodeError::BadRequest(format!(
                "a reap probe carries at most {REAP_BATCH_MAX} keys, not {}",
                keys.len()
            )));
        }
        keys.iter()
            .map(|(key, primaries, ctx)| {
                let okey = Self::object_key(key, partition);
                let digest = self
                    .store()
                    .get_object(&okey)?
                    .map(|o| crate::aae::digest(&o));
                let mut hinted = false;
                for p in primaries {
                    hinted |= self.store().get_hint(*p, &okey)?.is_some();
                }
                let busy = self.reaper().is_writing(key);
                let forgotten = digest.is_none() && self.reaper().remembers(key, ctx);
                Ok(ProbeAnswer {
                    digest,
                    hinted,
                    busy,
                    forgotten,
                })
            })
            .collect()
    }

    /// Drop this node's replicas of `keys` whose digest is still the one
    /// given; answers how many were dropped.
    pub(crate) async fn reap_local(
        &self,
        partition: u16,
        keys: &[ReapKey],
    ) -> Result<u32, NodeError> {
        if keys.len() > REAP_BATCH_MAX {
            return Err(NodeError::BadRequest(format!(
                "a reap carries at most {REAP_BATCH_MAX} keys, not {}",
                keys.len()
            )));
        }
        let reaper = &self.reaper();
        let mut dropped = 0;
        for (key, digest, ctx) in keys {
            // Remembered by every member, holder or not: what is still in
            // flight to it must not bring back what the tombstone covered.
            if !reaper.remember(key, ctx) {
                return Err(NodeError::Unavailable(format!(
                    "the memory of reaped tombstones is full (reap_memory_keys_max = {}); reaping waits",
                    reaper.memory_keys_max
                )));
            }
            let okey = Self::object_key(key, partition);
            // Held until the drop is applied: a write must not land between
            // the check and the drop.
            let _guard = self.key_lock(key).lock().await;
            let Some(obj) = self.store().get_object(&okey)? else {
                continue;
            };
            if obj.tombstone_ms().is_none() || crate::aae::digest(&obj) != *digest {
                continue;
            }
            reaper.raise_floor(obj.context().get(&self.actor()));
            self.aae()
                .trees
                .update(partition, &okey.encode(), &obj, &causal::Object::new());
            // Not synced: a drop lost to a crash leaves the tombstone,
            // which is reaped again.
            let was = store::IndexTerms::of(&obj);
            self.store().delete_objects(&[(okey, was)], false).await?;
            tracing::debug!(node = %self.id(), ?key, partition, "reaped a tombstone");
            dropped += 1;
        }
        reaper
            .reaped_total
            .fetch_add(u64::from(dropped), Ordering::Relaxed);
        Ok(dropped)
    }

    /// Tombstones this node held when its reaper last walked its whole
    /// index (`None`: no walk ended yet, or reaping is off).
    pub fn tombstones_held(&self) -> Option<u64> {
        let held = self.reaper().held_last_walk.load(Ordering::Relaxed);
        (held != u64::MAX).then_some(held)
    }

    /// Tombstones this node dropped since it started.
    pub fn tombstones_reaped(&self) -> u64 {
        self.reaper().reaped_total.load(Ordering::Relaxed)
    }
}

/// What the reaper does with one index entry.
enum Verdict {
    /// The entry no longer names a tombstone: forget it.
    Stale,
    /// Not yet, or not this node's to lead.
    Wait,
    /// Reap it: the key and its tombstone.
    Due(BKey, Object),
}
