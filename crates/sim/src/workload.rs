//! The clients: what they do, through the same node API the HTTP layer
//! calls, and how each outcome is recorded.
//!
//! Three kinds run side by side:
//! - **set adders** (the Jepsen Riak workload): read a set key, merge its
//!   siblings by union, add a unique element, write it back with the
//!   read's causal context. Concurrent adders make siblings; none may lose
//!   an acknowledged element.
//! - **durable writers**: blind writes of fresh keys with `dw` of 1 or 2.
//! - **read-your-writes clients**: each owns a key and writes then reads it
//!   with `pw = pr = 2` on `n_val = 3`, so the read must see the write.
//! - **deleters**: write a fresh key, read it, delete what the read found.
//!   With tombstone reaping on, a deleted version must never come back.
//! - **linkers**: write a fresh blob (a collectable, as an S3 block), then
//!   usually a record referencing it (as an S3 object), sometimes a second
//!   one (a copy), then sometimes delete the first. With collection on, a
//!   blob an acknowledged record references must never be dropped.

use crate::history::{History, Op, OpKind, Outcome};
use crate::world::Handles;
use bytes::Bytes;
use causal::{Meta, Object, VersionVector};
use cluster::QuorumValue;
use node::{BKey, Node, NodeError, RequestOptions};
use rand::rngs::SmallRng;
use rand::RngExt;
use std::collections::BTreeSet;
use std::time::Duration;

/// The bucket every workload key lives in.
pub const BUCKET: &str = "sim";
/// How long a client waits for any one call before calling it unknown.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The key of set number `i`.
pub fn set_key(i: usize) -> BKey {
    BKey::new(BUCKET, format!("set-{i}"))
}

/// A workload key by name.
pub fn key(name: &str) -> BKey {
    BKey::new(BUCKET, name.to_string())
}

/// Elements of a set value: decimal numbers separated by commas.
pub fn decode_set(value: &[u8]) -> BTreeSet<u64> {
    String::from_utf8_lossy(value)
        .split(',')
        .filter_map(|e| e.parse().ok())
        .collect()
}

fn encode_set(set: &BTreeSet<u64>) -> Bytes {
    let text: Vec<String> = set.iter().map(u64::to_string).collect();
    Bytes::from(text.join(","))
}

/// The union of every live sibling's elements.
pub fn set_of(obj: &Object) -> BTreeSet<u64> {
    obj.live_siblings()
        .flat_map(|s| decode_set(&s.value))
        .collect()
}

fn meta() -> Meta {
    Meta {
        content_type: "text/plain".into(),
        ..Meta::default()
    }
}

fn quorum(n: u8) -> Option<QuorumValue> {
    Some(QuorumValue::Number(u32::from(n)))
}

/// What every client shares: where the nodes are, the history, and when
/// to stop.
#[derive(Clone)]
pub struct Client {
    /// Client number; also picks its first machine.
    pub id: usize,
    /// Nodes by machine.
    pub handles: Handles,
    /// Where outcomes go.
    pub history: History,
    /// Virtual millisecond at which to stop starting operations.
    pub stop_ms: u64,
}

impl Client {
    /// The first machine up, starting from this client's own.
    fn node(&self, rng: &mut SmallRng) -> Option<(usize, Node)> {
        let n = self.handles.len();
        let first = (self.id + rng.random_range(0..2)) % n;
        (0..n)
            .map(|k| (first + k) % n)
            .find_map(|i| self.handles.get(i).map(|node| (i, node)))
    }

    fn record(&self, machine: usize, kind: OpKind, invoked_ms: u64, outcome: Outcome) {
        self.history.op(Op {
            client: self.id,
            machine,
            kind,
            invoked_ms,
            completed_ms: self.history.now_ms(),
            outcome,
        });
    }

    async fn think(&self, rng: &mut SmallRng) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..=100))).await;
    }

    /// Think, pick a machine, and name the next fresh key `PREFIX-ID-SEQ`
    /// (`seq` counts keys named); `None` when no machine is up.
    async fn next_fresh_key(
        &self,
        rng: &mut SmallRng,
        prefix: &str,
        seq: &mut u64,
    ) -> Option<(usize, Node, String)> {
        self.think(rng).await;
        let (machine, node) = self.node(rng)?;
        *seq += 1;
        Some((machine, node, format!("{prefix}-{}-{seq}", self.id)))
    }

    fn running(&self) -> bool {
        self.history.now_ms() < self.stop_ms
    }
}

async fn get(node: &Node, key: &BKey, opts: &RequestOptions) -> Result<Option<Object>, String> {
    match tokio::time::timeout(CALL_TIMEOUT, node.get(key, opts)).await {
        Ok(Ok(o)) => Ok(o),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

async fn put(
    node: &Node,
    key: BKey,
    value: Bytes,
    ctx: VersionVector,
    opts: RequestOptions,
) -> Outcome {
    // Every write carries index terms that change with what it writes,
    // so overwrites, siblings and deletes move index entries, which the
    // index check (`check::index_mismatches`) then compares with the
    // replicas.
    let indexed = Meta {
        indexes: vec![
            ("len_int".to_string(), value.len().to_string()),
            (
                "sim_bin".to_string(),
                format!("w{}", value.first().copied().unwrap_or(0)),
            ),
        ],
        ..meta()
    };
    put_with(node, key, value, indexed, ctx, opts).await
}

async fn put_with(
    node: &Node,
    key: BKey,
    value: Bytes,
    meta: Meta,
    ctx: VersionVector,
    opts: RequestOptions,
) -> Outcome {
    let put = tokio::time::timeout(CALL_TIMEOUT, node.put(key, value, meta, ctx, opts)).await;
    outcome(put.map(|r| r.map(|_| ())))
}

/// Delete `key` with `context` (blind if `None`).
async fn delete(
    node: &Node,
    key: BKey,
    context: Option<VersionVector>,
    opts: RequestOptions,
) -> Outcome {
    outcome(tokio::time::timeout(CALL_TIMEOUT, node.delete(key, context, opts)).await)
}

/// How a write ended: any error may still have landed, so it is unknown;
/// a bad request is the workload's own bug.
fn outcome(result: Result<Result<(), NodeError>, tokio::time::error::Elapsed>) -> Outcome {
    match result {
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(NodeError::BadRequest(e))) => panic!("the workload sent a bad request: {e}"),
        Ok(Err(_)) | Err(_) => Outcome::Unknown,
    }
}

/// Add unique elements to set `set` until the stop time.
pub async fn set_adder(c: Client, set: usize, mut rng: SmallRng) {
    let key = set_key(set);
    let mut seq = 0u64;
    while c.running() {
        c.think(&mut rng).await;
        let Some((machine, node)) = c.node(&mut rng) else {
            continue;
        };
        let invoked = c.history.now_ms();
        let Ok(found) = get(&node, &key, &RequestOptions::default()).await else {
            continue;
        };
        let (mut elements, ctx) = match &found {
            Some(obj) => (set_of(obj), obj.context().clone()),
            None => (BTreeSet::new(), VersionVector::new()),
        };
        seq += 1;
        let element = ((c.id as u64) << 32) | seq;
        elements.insert(element);
        let outcome = put(
            &node,
            key.clone(),
            encode_set(&elements),
            ctx,
            RequestOptions::default(),
        )
        .await;
        c.record(machine, OpKind::SetAdd { set, element }, invoked, outcome);
    }
}

/// Write fresh keys with `dw` of 1 or 2 until the stop time.
pub async fn durable_writer(c: Client, mut rng: SmallRng) {
    let mut seq = 0u64;
    while c.running() {
        let Some((machine, node, name)) = c.next_fresh_key(&mut rng, "d", &mut seq).await else {
            continue;
        };
        let dw = rng.random_range(1..=2u8);
        let opts = RequestOptions {
            w: quorum(dw),
            dw: quorum(dw),
            ..RequestOptions::default()
        };
        let invoked = c.history.now_ms();
        let value = Bytes::from(name.clone());
        let outcome = put(&node, key(&name), value, VersionVector::new(), opts).await;
        c.record(
            machine,
            OpKind::DurableWrite { key: name, dw },
            invoked,
            outcome,
        );
    }
}

/// Write fresh keys, read each back and delete what the read found,
/// until the stop time.
pub async fn deleter(c: Client, mut rng: SmallRng) {
    let mut seq = 0u64;
    while c.running() {
        let Some((machine, node, name)) = c.next_fresh_key(&mut rng, "x", &mut seq).await else {
            continue;
        };
        let value = Bytes::from(name.clone());
        let opts = RequestOptions::default();
        if put(&node, key(&name), value, VersionVector::new(), opts.clone()).await != Outcome::Ok {
            continue;
        }
        let Ok(Some(found)) = get(&node, &key(&name), &opts).await else {
            continue;
        };
        let context = found.context().clone();
        let invoked = c.history.now_ms();
        let outcome = delete(&node, key(&name), Some(context.clone()), opts).await;
        c.record(
            machine,
            OpKind::Delete { key: name, context },
            invoked,
            outcome,
        );
    }
}

/// Write then read the client's own key with `pw = dw = pr = 2`.
pub async fn read_your_writes(c: Client, mut rng: SmallRng) {
    let name = format!("ryw-{}", c.id);
    let strict = RequestOptions {
        r: quorum(2),
        pr: quorum(2),
        w: quorum(2),
        pw: quorum(2),
        dw: quorum(2),
        ..RequestOptions::default()
    };
    let mut value = 0u64;
    while c.running() {
        c.think(&mut rng).await;
        let Some((machine, node)) = c.node(&mut rng) else {
            continue;
        };
        let Ok(found) = get(&node, &key(&name), &strict).await else {
            continue;
        };
        let ctx = found.map(|o| o.context().clone()).unwrap_or_default();
        value += 1;
        let invoked = c.history.now_ms();
        let bytes = Bytes::from(value.to_string());
        if put(&node, key(&name), bytes.clone(), ctx, strict.clone()).await != Outcome::Ok {
            continue;
        }
        let (seen, outcome) = match get(&node, &key(&name), &strict).await {
            Ok(Some(obj)) => (obj.live_siblings().any(|s| s.value == bytes), Outcome::Ok),
            Ok(None) => (false, Outcome::Ok),
            Err(_) => (false, Outcome::Unknown),
        };
        let kind = OpKind::ReadYourWrite {
            key: name.clone(),
            value,
            seen,
        };
        c.record(machine, kind, invoked, outcome);
    }
}

/// Metadata carrying one reserved index term.
fn meta_with(index: &str, term: &str) -> Meta {
    Meta {
        indexes: vec![(index.to_string(), term.to_string())],
        ..meta()
    }
}

/// Write fresh blobs and records that reference them, copy and delete
/// some records, until the stop time.
pub async fn linker(c: Client, mut rng: SmallRng) {
    let mut seq = 0u64;
    while c.running() {
        let Some((machine, node, name)) = c.next_fresh_key(&mut rng, "l", &mut seq).await else {
            continue;
        };
        let blob = format!("{name}-blob");
        let term = node::ref_term(&key(&blob));
        let opts = RequestOptions::default();
        let collectable = meta_with(node::COLLECT_INDEX, &term);
        let value = Bytes::from(name.clone());
        let new = VersionVector::new;
        if put_with(
            &node,
            key(&blob),
            value.clone(),
            collectable,
            new(),
            opts.clone(),
        )
        .await
            != Outcome::Ok
        {
            continue;
        }
        // A quarter stay orphans, as a block whose upload never wrote
        // its record.
        if rng.random_range(0..4) == 0 {
            continue;
        }
        let link = |record: String, outcome: Outcome, invoked: u64| {
            let blob = blob.clone();
            c.record(machine, OpKind::Link { record, blob }, invoked, outcome);
        };
        let first = format!("{name}-rec");
        let invoked = c.history.now_ms();
        let referencing = meta_with(node::REF_INDEX, &term);
        let outcome = put_with(
            &node,
            key(&first),
            value.clone(),
            referencing.clone(),
            new(),
            opts.clone(),
        )
        .await;
        link(first.clone(), outcome.clone(), invoked);
        if outcome != Outcome::Ok || rng.random_range(0..2) == 0 {
            continue;
        }
        if rng.random_range(0..2) == 0 {
            let copy = format!("{name}-copy");
            let invoked = c.history.now_ms();
            // `w = dw = 1`: acknowledged once one replica holds it
            // durably, while the others may catch up only through
            // hinted handoff and anti-entropy.
            let sloppy = RequestOptions {
                w: quorum(1),
                dw: quorum(1),
                ..RequestOptions::default()
            };
            let outcome = put_with(&node, key(&copy), value, referencing, new(), sloppy).await;
            link(copy, outcome, invoked);
        }
        let invoked = c.history.now_ms();
        let outcome = delete(&node, key(&first), None, opts).await;
        c.record(machine, OpKind::Unlink { record: first }, invoked, outcome);
    }
}
