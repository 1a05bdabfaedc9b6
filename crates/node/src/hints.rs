//! # Hinted handoff
//!
//! When a primary does not acknowledge a write, the write must still reach
//! it. The coordinator asks the next fallback node (one that is not a
//! primary of the key) to hold the write as a *hint* naming the primary;
//! the fallback's acknowledgement counts towards `w` and `dw` but not `pw`
//! (sloppy quorum). When no fallback can take it (a cluster of exactly
//! `n_val` nodes has none), the coordinator keeps the hint itself; that
//! counts towards nothing, but the primary still gets the write.
//!
//! Hints live in their own keyspace, one per (primary, key), merged by
//! causality like replicas, and are fsynced like the write they carry.
//! Unlike Cassandra's, they do not expire: every `hint_delivery_interval`
//! the node sends each primary it holds hints for what it holds, and
//! deletes a hint only after the primary acknowledged it durably and only
//! if the hint did not change meanwhile.
//!
//! ## Bounds, at any value size
//!
//! A delivery round reads hints a page of at most [`HINT_PAGE_BYTES`] at
//! a time (one hint if it is larger), so a node never holds more than a
//! page of hint values per target in memory. Each call's deadline is the
//! replica patience plus the time the hint's bytes take at
//! `transfer_floor_bytes_per_sec`, so a 50 MiB hint is not abandoned
//! half-sent and retried forever (it was, with a fixed 500 ms; the frames
//! of abandoned calls also stayed queued on the connection, and the
//! coordinator's memory grew by 70-85 MB/s). A round goes on past a
//! failed delivery and ends after [`FAILURES_PER_ROUND_MAX`] failures; the
//! next round resumes where it ended, so no hint blocks the ones behind
//! it. All deliveries of a node share `hint_bytes_per_sec`, so a drain
//! after a long outage does not starve client traffic. And each target
//! has a budget of `hint_bytes_max_per_target` stored bytes: past it a
//! node refuses new hints for that target (logged once, counted in
//! `ringstore_hints_refused`), the coordinator tries the next
//! fallback, and the write reaches the primary through anti-entropy.
//!
//! Delivery does not wait for the failure detector to call the primary up:
//! trying costs one refused connection (or one timeout) per target and
//! interval, in the background, and a primary back from a crash gets its
//! hints within one interval of listening again. Only a primary the
//! detector declared down is skipped, and when the detector sees it come
//! up, a round starts at once.

use crate::locks::Held;
use crate::proto::{Request, Response};
use crate::{BKey, Node, NodeError};
use causal::Object;
use futures::StreamExt;
use ring::NodeId;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Hint deliveries in flight to one target; the target group-commits
/// their fsyncs.
const DELIVERIES_INFLIGHT_MAX: usize = 32;
/// Bytes of hints read from storage at once per target.
pub(crate) const HINT_PAGE_BYTES: usize = 4 << 20;
/// Failed deliveries after which a round to one target ends.
const FAILURES_PER_ROUND_MAX: usize = 4;

/// What this node holds in hints, per target: how many, how many bytes
/// as stored, and whether the target's budget was hit; hints delivered;
/// and the signal that wakes delivery early. The one owner of those;
/// the store holds the hints themselves.
#[derive(Default)]
pub(crate) struct HintBook {
    tallies: Mutex<BTreeMap<NodeId, Tally>>,
    refused: AtomicU64,
    delivered: AtomicU64,
    /// Wakes hint delivery early (a peer came up).
    wake: tokio::sync::Notify,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    count: u64,
    bytes: u64,
    /// The budget refused a hint since the tally was last under it.
    full: bool,
}

impl HintBook {
    /// The book of what `store` holds (read from its index).
    pub(crate) fn load(store: &store::Store) -> Result<Self, store::StoreError> {
        let tallies = store
            .hint_tallies()?
            .into_iter()
            .map(|(t, (count, bytes))| {
                let tally = Tally {
                    count,
                    bytes,
                    full: false,
                };
                (NodeId(t), tally)
            })
            .collect();
        Ok(HintBook {
            tallies: Mutex::new(tallies),
            ..HintBook::default()
        })
    }

    /// A peer came up: deliver what is held for it now, not at the next
    /// round.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Hints delivered since start.
    pub(crate) fn delivered_total(&self) -> u64 {
        self.delivered.load(Relaxed)
    }

    fn tallies(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Tally>> {
        // A poisoned book would count wrong forever: crash, and the next
        // start counts again from storage.
        self.tallies.held()
    }

    /// Whether `grow` more bytes for `target` stay within `budget`. A
    /// refusal is counted, and logged once until the target's hints fall
    /// under the budget again.
    fn admit(&self, target: NodeId, grow: u64, budget: u64) -> bool {
        let mut tallies = self.tallies();
        let tally = tallies.entry(target).or_default();
        if tally.bytes.saturating_add(grow) <= budget {
            return true;
        }
        self.refused.fetch_add(1, Relaxed);
        if !tally.full {
            tally.full = true;
            tracing::warn!(
                %target,
                held_bytes = tally.bytes,
                budget,
                "hint budget for this target is full; refusing new hints for it \
                 (anti-entropy repairs what they would have carried; raise \
                 hint_bytes_max_per_target to keep more)"
            );
        }
        false
    }

    /// A hint for `target` of `old` bytes (0 if new) is now `new` bytes.
    fn stored(&self, target: NodeId, old: Option<usize>, new: usize) {
        let mut tallies = self.tallies();
        let tally = tallies.entry(target).or_default();
        tally.count += u64::from(old.is_none());
        tally.bytes = tally.bytes - (old.unwrap_or(0) as u64).min(tally.bytes) + new as u64;
    }

    /// A hint of `size` bytes for `target` was delivered and removed.
    fn removed(&self, target: NodeId, size: usize, budget: u64) {
        let mut tallies = self.tallies();
        let tally = tallies.entry(target).or_default();
        tally.count = tally.count.saturating_sub(1);
        tally.bytes = tally.bytes.saturating_sub(size as u64);
        if tally.full && tally.bytes < budget / 2 {
            tally.full = false;
            tracing::info!(%target, "hint budget for this target has room again");
        }
    }

    /// Hints and their bytes held for `target`.
    pub(crate) fn held(&self, target: NodeId) -> (u64, u64) {
        self.tallies()
            .get(&target)
            .map_or((0, 0), |t| (t.count, t.bytes))
    }

    /// Targets with hints held, with how many.
    pub(crate) fn targets(&self) -> Vec<(NodeId, u64)> {
        self.tallies()
            .iter()
            .filter(|(_, t)| t.count > 0)
            .map(|(n, t)| (*n, t.count))
            .collect()
    }

    /// Hints refused for a full budget since start.
    pub(crate) fn refused_total(&self) -> u64 {
        self.refused.load(Relaxed)
    }
}

/// Spaces sends so their bytes stay under a rate: each send is scheduled
/// after the previous ones' bytes have had their time. No burst credit
/// builds up while idle.
pub(crate) struct Pacer {
    per_sec: u64,
    next_free: Mutex<Option<Instant>>,
}

impl Pacer {
    pub(crate) fn new(per_sec: u64) -> Self {
        assert!(per_sec > 0, "a pacer needs a positive rate");
        Pacer {
            per_sec,
            next_free: Mutex::new(None),
        }
    }

    /// Wait for `bytes`' turn.
    pub(crate) async fn wait(&self, bytes: usize) {
        let start = {
            let mut next = self.next_free.held();
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + Duration::from_secs_f64(bytes as f64 / self.per_sec as f64));
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

impl Node {
    /// Hold `obj` for `target` (merged into any hint already held).
    ///
    /// # Errors
    ///
    /// [`NodeError::Unavailable`] when the target's hint budget is full,
    /// and storage failures.
    pub(crate) async fn store_hint(
        &self,
        target: NodeId,
        key: &BKey,
        obj: &Object,
        durable: bool,
    ) -> Result<(), NodeError> {
        let partition = ring::partition_of(
            self.layout().bits(),
            &key.bucket_type,
            &key.bucket,
            &key.key,
        )
        .0;
        let okey = Self::object_key(key, partition);
        let budget = self.config().hint_bytes_max_per_target;
        let _guard = self.key_lock(key).lock().await;
        let existing = self.store().get_hint(target.0, &okey)?;
        let old = existing.as_ref().map(|(_, size)| *size);
        let mut merged = existing.map(|(o, _)| o).unwrap_or_default();
        merged.merge(obj);
        let grow = (crate::object_bytes(&merged) as u64).saturating_sub(old.unwrap_or(0) as u64);
        if !self.hint_book().admit(target, grow, budget) {
            return Err(NodeError::Unavailable(format!(
                "the hints held for {target} reached hint_bytes_max_per_target ({budget} bytes); \
                 anti-entropy will bring it this write"
            )));
        }
        let size = self
            .store()
            .put_hint(target.0, &okey, &merged, durable)
            .await?;
        self.hint_book().stored(target, old, size);
        Ok(())
    }

    /// Hints this node holds for `target`.
    pub fn hints_pending(&self, target: NodeId) -> u64 {
        self.hint_book().held(target).0
    }

    /// Bytes of the hints this node holds for `target`, as stored.
    pub fn hint_bytes_pending(&self, target: NodeId) -> u64 {
        self.hint_book().held(target).1
    }

    /// Hints this node holds, per target.
    pub fn hints_pending_all(&self) -> Vec<(NodeId, u64)> {
        self.hint_book().targets()
    }

    /// Hints this node refused since start because their target's budget
    /// (`hint_bytes_max_per_target`) was full.
    pub fn hints_refused(&self) -> u64 {
        self.hint_book().refused_total()
    }
}

/// Deliver hints forever, one round per interval.
pub(crate) async fn run(node: Node) {
    let mut tick = tokio::time::interval(node.config().hint_delivery_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let pacer = Pacer::new(node.config().hint_bytes_per_sec);
    // Where each target's last round stopped (None: at the start).
    let mut cursors: HashMap<NodeId, Option<store::ObjectKey>> = HashMap::new();
    loop {
        tokio::select! {
            // Biased: a fixed polling order, so a simulated run replays exactly.
            biased;
            _ = tick.tick() => {}
            () = node.hint_book().wake.notified() => {}
        }
        // Why skip down targets: a call into a partition is swallowed and
        // holds the round until its timeout, which would then delay the
        // delivery that the detector's "up" is about to trigger.
        let targets: Vec<NodeId> = node
            .hints_pending_all()
            .into_iter()
            .map(|(t, _)| t)
            .filter(|t| !node.is_down(*t))
            .collect();
        cursors.retain(|t, _| targets.contains(t));
        let rounds = targets.iter().map(|t| {
            let cursor = cursors.remove(t).flatten();
            let (node, pacer) = (&node, &pacer);
            async move { (*t, deliver(node, *t, cursor, pacer).await) }
        });
        for (t, cursor) in futures::future::join_all(rounds).await {
            cursors.insert(t, cursor);
        }
    }
}

/// Send `target` its hints, a page at a time from `cursor`, several in
/// flight, until every hint was tried or [`FAILURES_PER_ROUND_MAX`]
/// deliveries failed (the target is still away). Returns where the next
/// round should resume.
async fn deliver(
    node: &Node,
    target: NodeId,
    mut cursor: Option<store::ObjectKey>,
    pacer: &Pacer,
) -> Option<store::ObjectKey> {
    let failures = AtomicU64::new(0);
    let mut wrapped = cursor.is_none();
    loop {
        let page = match node
            .store()
            .hints_page(target.0, cursor.as_ref(), HINT_PAGE_BYTES)
        {
            Ok(mut p) => {
                p.truncate(node.config().hint_batch_max);
                p
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read hints");
                return cursor;
            }
        };
        let Some((last, _, _)) = page.last() else {
            if wrapped {
                return None;
            }
            // Past the end: the round goes on from the start, once.
            (cursor, wrapped) = (None, true);
            continue;
        };
        let next = Some(last.clone());
        futures::stream::iter(page)
            .for_each_concurrent(DELIVERIES_INFLIGHT_MAX, |(okey, obj, size)| {
                let failures = &failures;
                async move {
                    if failures.load(Relaxed) >= FAILURES_PER_ROUND_MAX as u64 {
                        return;
                    }
                    pacer.wait(size).await;
                    if !deliver_one(node, target, okey, obj, size).await {
                        failures.fetch_add(1, Relaxed);
                    }
                }
            })
            .await;
        cursor = next;
        if failures.load(Relaxed) >= FAILURES_PER_ROUND_MAX as u64 {
            return cursor;
        }
    }
}

/// Deliver one hint of `size` stored bytes; on a durable acknowledgement,
/// delete it. Returns whether the target acknowledged.
async fn deliver_one(
    node: &Node,
    target: NodeId,
    okey: store::ObjectKey,
    obj: Object,
    size: usize,
) -> bool {
    let timeout = node.config().replica_patience() + node.config().transfer_allowance(size);
    let key = BKey {
        bucket_type: okey.bucket_type.clone(),
        bucket: okey.bucket.clone(),
        key: okey.key.clone(),
    };
    let props = node.bucket_props(&key.bucket_type, &key.bucket);
    let collapse = props.last_write_wins || !props.allow_mult;
    let req = Request::Replicate {
        key: key.clone(),
        object: obj.clone(),
        durable: true,
        collapse,
    };
    match node.call(target, req, timeout).await {
        Ok(Response::Replicated { durable: true }) => {}
        _ => return false,
    }
    // Why compare before deleting: a write may have merged more into the
    // hint while it was in flight; that version must be sent too.
    let removed = {
        let _guard = node.key_lock(&key).lock().await;
        match node.store().get_hint(target.0, &okey) {
            Ok(Some((current, size))) if current == obj => node
                .store()
                .remove_hint(target.0, &okey)
                .await
                .is_ok()
                .then_some(size),
            _ => None,
        }
    };
    if let Some(size) = removed {
        let budget = node.config().hint_bytes_max_per_target;
        node.hint_book().removed(target, size, budget);
        node.hint_book().delivered.fetch_add(1, Relaxed);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_pacer_spaces_sends_by_their_bytes() {
        let pacer = Pacer::new(1 << 20);
        let started = Instant::now();
        for _ in 0..4 {
            pacer.wait(512 << 10).await;
        }
        // Four half-MiB sends at 1 MiB/s: the fourth starts at 1.5 s.
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
        // No credit for idle time.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let again = Instant::now();
        pacer.wait(1 << 20).await;
        pacer.wait(1).await;
        assert_eq!(again.elapsed(), Duration::from_secs(1));
    }

    #[test]
    fn the_book_keeps_a_target_within_its_budget() {
        let book = HintBook::default();
        let t = NodeId(7);
        assert!(book.admit(t, 600, 1000));
        book.stored(t, None, 600);
        assert!(!book.admit(t, 600, 1000));
        assert_eq!(book.refused_total(), 1);
        // Merging into the held hint grows it in place.
        assert!(book.admit(t, 300, 1000));
        book.stored(t, Some(600), 900);
        assert_eq!(book.held(t), (1, 900));
        book.removed(t, 900, 1000);
        assert_eq!(book.held(t), (0, 0));
        assert!(book.admit(t, 1000, 1000));
    }
}
