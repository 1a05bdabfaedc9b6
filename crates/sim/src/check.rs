//! The checkers, run after healing: what the history says clients were
//! promised, against what the cluster holds once it is quiet.

use crate::history::{Op, OpKind, Outcome};
use crate::workload::{key, set_key, set_of};
use crate::world::World;
use node::{BKey, RequestOptions};
use ring::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long replicas may take to agree after healing, in virtual time.
/// Anti-entropy runs every second in the simulation; this is many rounds.
pub const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(300);

/// The set check (Jepsen's Riak set workload).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetCheck {
    /// Adds the client was told succeeded.
    pub acknowledged: usize,
    /// Acknowledged adds missing from the final read.
    pub lost: Vec<u64>,
    /// Adds not acknowledged that are in the final read anyway.
    pub unacknowledged_present: usize,
    /// Whether the final read succeeded at all.
    pub read: bool,
}

/// The durability check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableCheck {
    /// Writes acknowledged with `dw >= 1`.
    pub acknowledged: usize,
    /// Of those, keys missing or wrong in the final read.
    pub lost: Vec<String>,
}

/// Every acknowledged add against the final set; every other add found
/// counts as present-but-unacknowledged (a write that missed its quorum
/// but landed, which Dynamo allows).
pub fn check_set(ops: &[Op], set: usize, last: Option<&BTreeSet<u64>>) -> SetCheck {
    let empty = BTreeSet::new();
    let last_set = last.unwrap_or(&empty);
    let mut check = SetCheck {
        read: last.is_some(),
        ..SetCheck::default()
    };
    for op in ops {
        let OpKind::SetAdd { set: s, element } = op.kind else {
            continue;
        };
        if s != set {
            continue;
        }
        let present = last_set.contains(&element);
        match op.outcome {
            Outcome::Ok => {
                check.acknowledged += 1;
                if !present {
                    check.lost.push(element);
                }
            }
            _ if present => check.unacknowledged_present += 1,
            _ => {}
        }
    }
    check
}

/// Read-your-writes violations: reads after an acknowledged write (with
/// `pr + pw > n_val`) that did not return it.
pub fn ryw_violations(ops: &[Op]) -> Vec<(String, u64)> {
    ops.iter()
        .filter_map(|op| match &op.kind {
            OpKind::ReadYourWrite { key, value, seen } if op.outcome == Outcome::Ok && !seen => {
                Some((key.clone(), *value))
            }
            _ => None,
        })
        .collect()
}

/// Every key the run wrote or may have written.
pub fn keys_touched(ops: &[Op], sets: usize) -> Vec<BKey> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    for op in ops {
        match &op.kind {
            OpKind::DurableWrite { key, .. }
            | OpKind::ReadYourWrite { key, .. }
            | OpKind::Delete { key, .. }
            | OpKind::Link { record: key, .. }
            | OpKind::Unlink { record: key } => {
                names.insert(key.clone());
            }
            OpKind::SetAdd { .. } => {}
        }
    }
    let mut keys: Vec<BKey> = (0..sets).map(set_key).collect();
    keys.extend(names.iter().map(|n| key(n)));
    keys
}

/// Keys whose primary replicas do not all hold the same object (same
/// causal context, same siblings), as seen from each replica's storage.
pub fn diverged(world: &World, members: &[usize], keys: &[BKey]) -> Vec<BKey> {
    let by_id: BTreeMap<NodeId, usize> = members
        .iter()
        .filter_map(|&i| world.node(i).map(|n| (n.id(), i)))
        .collect();
    let Some(any) = members.first().and_then(|&i| world.node(i)) else {
        return keys.to_vec();
    };
    let layout = any.layout();
    keys.iter()
        .filter(|k| {
            let p = ring::partition_of(layout.bits(), &k.bucket_type, &k.bucket, &k.key);
            let Ok(pl) = layout.preference_list(p, 3) else {
                return true;
            };
            let replicas: Vec<_> = pl
                .primaries
                .iter()
                .map(|id| {
                    by_id
                        .get(id)
                        .and_then(|&i| world.node(i))
                        .and_then(|n| n.local_object(k).ok())
                })
                .collect();
            replicas.iter().any(|r| r.is_none()) || replicas.windows(2).any(|w| w[0] != w[1])
        })
        .cloned()
        .collect()
}

/// (machine, key) pairs whose index entries do not match the replica the
/// machine stores, once replicas converged.
pub fn index_mismatches(world: &World, members: &[usize], keys: &[BKey]) -> Vec<String> {
    let mut out = Vec::new();
    for &i in members {
        let Some(node) = world.node(i) else { continue };
        for k in keys {
            if !node.local_index_agrees(k).unwrap_or(false) {
                out.push(format!("machine {i}: {k:?}"));
            }
        }
    }
    out
}

/// What an index query through machine `at` gets wrong, once replicas
/// converged: it pages through every `sim_bin` entry of the workload's
/// bucket (a coverage query, pages of 50 with continuations) and compares
/// the (term, key) pairs with what a read of each touched key says its
/// live versions carry. Every acknowledged, undeleted write the reads
/// return must be found under its term, and nothing else.
pub async fn index_query_mismatches(world: &World, at: usize, keys: &[BKey]) -> Vec<String> {
    let Some(node) = world.node(at) else {
        return vec![format!("machine {at} is down; no query")];
    };
    let mut got = BTreeSet::new();
    let mut start = store::ListStart::First;
    for _ in 0..10_000 {
        let q = node::IndexPageQuery {
            bucket_type: bytes::Bytes::from_static(b"default"),
            bucket: bytes::Bytes::from_static(crate::workload::BUCKET.as_bytes()),
            index: "sim_bin".into(),
            ranges: vec![(bytes::Bytes::new(), None)],
            start: start.clone(),
            page_max: 50,
        };
        let page = match node.index_page(&q).await {
            Ok(page) => page,
            Err(e) => return vec![format!("index query at machine {at}: {e}")],
        };
        for e in &page.entries {
            match store::index::split_entry(store::TermKind::Bin, e.name()) {
                Some(pair) if got.insert(pair.clone()) => {}
                other => return vec![format!("index query answered {other:?} twice or garbled")],
            }
        }
        match (page.truncated, page.entries.last()) {
            (true, Some(last)) => start = store::ListStart::After(last.name().clone()),
            _ => break,
        }
    }
    let mut want = BTreeSet::new();
    // The touched keys and those the query found (writes whose outcome
    // the history does not hold, such as the deleter's puts, are found
    // only this way).
    let found = got.iter().map(|(_, k): &(String, bytes::Bytes)| k.clone());
    let to_read: BTreeSet<bytes::Bytes> = keys
        .iter()
        .filter(|k| k.bucket == crate::workload::BUCKET.as_bytes())
        .map(|k| k.key.clone())
        .chain(found)
        .collect();
    for name in to_read {
        let k = &BKey::new(crate::workload::BUCKET, name);
        match node.get(k, &RequestOptions::default()).await {
            Ok(Some(obj)) => {
                let terms = obj.live_siblings().flat_map(|s| s.meta.indexes.iter());
                want.extend(
                    terms
                        .filter(|(name, _)| name == "sim_bin")
                        .map(|(_, term)| (term.clone(), k.key.clone())),
                );
            }
            Ok(None) => {}
            Err(e) => return vec![format!("reading {k:?} at machine {at}: {e}")],
        }
    }
    let missing = want
        .difference(&got)
        .map(|p| format!("query at {at} misses {p:?}"));
    let extra = got
        .difference(&want)
        .map(|p| format!("query at {at} adds {p:?}"));
    missing.chain(extra).collect()
}

/// Wait until no key diverges; returns the keys still diverged at the
/// deadline (none on success) and how long it took.
pub async fn converge(world: &World, members: &[usize], keys: &[BKey]) -> (Vec<BKey>, u64) {
    let start = tokio::time::Instant::now();
    let mut left = keys.to_vec();
    loop {
        left = diverged(world, members, &left);
        let waited = start.elapsed();
        if left.is_empty() || waited > CONVERGENCE_DEADLINE {
            for k in &left {
                for &i in members {
                    let local = world.node(i).map(|n| (n.id(), n.local_object(k)));
                    tracing::warn!(?k, machine = i, ?local, "a diverged replica");
                }
            }
            return (left, waited.as_millis() as u64);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The final set as read through machine `at`, or `None` if it cannot be
/// read.
pub async fn read_set(world: &World, at: usize, set: usize) -> Option<BTreeSet<u64>> {
    let node = world.node(at)?;
    match node.get(&set_key(set), &RequestOptions::default()).await {
        Ok(Some(obj)) => Some(set_of(&obj)),
        Ok(None) => Some(BTreeSet::new()),
        Err(_) => None,
    }
}

/// Acknowledged deletes whose key, read after healing, still holds a
/// version the delete covered: a deleted key that came back.
pub async fn check_deletes(world: &World, at: usize, ops: &[Op]) -> DeleteCheck {
    let mut check = DeleteCheck::default();
    let Some(node) = world.node(at) else {
        return check;
    };
    for op in ops {
        let OpKind::Delete { key: name, context } = &op.kind else {
            continue;
        };
        if op.outcome != Outcome::Ok {
            continue;
        }
        check.acknowledged += 1;
        match node.get(&key(name), &RequestOptions::default()).await {
            Ok(Some(obj)) if obj.live_siblings().any(|s| context.contains(&s.dot)) => {
                tracing::warn!(key = %name, ?obj, "a deleted version came back");
                for i in world.up() {
                    let local = world.node(i).map(|n| (n.id(), n.local_object(&key(name))));
                    tracing::warn!(machine = i, ?local, "its replica");
                }
                check.resurrected.push(name.clone());
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(key = %name, error = %e, "cannot read a deleted key");
                check.resurrected.push(name.clone());
            }
        }
    }
    check
}

/// The delete check: acknowledged deletes stay deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteCheck {
    /// Deletes acknowledged.
    pub acknowledged: usize,
    /// Of those, keys where a deleted version came back (or that could
    /// not be read).
    pub resurrected: Vec<String>,
}

/// Every acknowledged durable write must read back with its value.
pub async fn check_durable(world: &World, at: usize, ops: &[Op]) -> DurableCheck {
    let mut check = DurableCheck::default();
    let Some(node) = world.node(at) else {
        return check;
    };
    for op in ops {
        let OpKind::DurableWrite { key: name, .. } = &op.kind else {
            continue;
        };
        if op.outcome != Outcome::Ok {
            continue;
        }
        check.acknowledged += 1;
        let found = node.get(&key(name), &RequestOptions::default()).await;
        let intact = matches!(&found, Ok(Some(obj))
            if obj.live_siblings().any(|s| s.value.as_ref() == name.as_bytes()));
        if !intact {
            tracing::warn!(key = %name, read = ?found, "durable write lost");
            for i in world.up() {
                let local = world.node(i).map(|n| n.local_object(&key(name)));
                tracing::warn!(machine = i, ?local, "its replica");
            }
            check.lost.push(name.clone());
        }
    }
    check
}

/// Every blob an acknowledged record still references (no delete of the
/// record was tried) must read back: the collector never drops a blob
/// something references.
pub async fn check_links(world: &World, at: usize, ops: &[Op]) -> LinkCheck {
    let mut check = LinkCheck::default();
    let Some(node) = world.node(at) else {
        return check;
    };
    let unlinked: BTreeSet<&String> = ops
        .iter()
        .filter_map(|op| match &op.kind {
            OpKind::Unlink { record } => Some(record),
            _ => None,
        })
        .collect();
    for op in ops {
        let OpKind::Link { record, blob } = &op.kind else {
            continue;
        };
        if op.outcome != Outcome::Ok || unlinked.contains(record) {
            continue;
        }
        check.standing += 1;
        let found = node.get(&key(blob), &RequestOptions::default()).await;
        if !matches!(&found, Ok(Some(obj)) if obj.live_siblings().next().is_some()) {
            tracing::warn!(%blob, %record, read = ?found, "a referenced blob was collected");
            check.collected.push(blob.clone());
        }
    }
    check
}

/// The reference check: referenced blobs stay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkCheck {
    /// Acknowledged records still referencing their blob at the end.
    pub standing: usize,
    /// Of their blobs, those gone (or that could not be read).
    pub collected: Vec<String>,
}
