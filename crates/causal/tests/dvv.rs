//! Property tests for dotted version vector sets.

use bytes::Bytes;
use proptest::prelude::*;
use ringstore_causal::{Actor, Meta, Object, VersionVector};

fn actor(i: usize) -> Actor {
    Actor {
        node: i as u64 + 1,
        epoch: 1,
    }
}

fn write(obj: &mut Object, ctx: &VersionVector, who: usize, v: u32) {
    obj.update(
        ctx,
        actor(who),
        Bytes::from(v.to_le_bytes().to_vec()),
        Meta::default(),
    )
    .unwrap();
}

#[derive(Clone, Debug)]
enum Op {
    /// Replica `r` coordinates a write whose context is what replica `seen`
    /// held (a client that read there), or nothing.
    Write { r: usize, seen: Option<usize> },
    /// Replica `to` merges replica `from`'s object.
    Sync { from: usize, to: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3, prop::option::of(0usize..3)).prop_map(|(r, seen)| Op::Write { r, seen }),
        (0usize..3, 0usize..3).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

/// Replay a history on three replicas and return their objects.
fn run(ops: &[Op]) -> Vec<Object> {
    let mut reps = vec![Object::new(); 3];
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Write { r, seen } => {
                let ctx = seen.map(|s| reps[s].context().clone()).unwrap_or_default();
                write(&mut reps[r], &ctx, r, i as u32);
            }
            Op::Sync { from, to } => {
                let src = reps[from].clone();
                reps[to].merge(&src);
            }
        }
    }
    reps
}

fn merged(a: &Object, b: &Object) -> Object {
    let mut m = a.clone();
    m.merge(b);
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn updates_and_merges_keep_the_object_invariants(ops in prop::collection::vec(op(), 0..40)) {
        let r = run(&ops);
        for o in r.iter().chain([merged(&r[0], &r[1]), merged(&r[1], &r[2])].iter()) {
            prop_assert_eq!(o.check(), Ok(()));
            let mut newest = o.clone();
            newest.keep_newest();
            prop_assert_eq!(newest.check(), Ok(()));
        }
    }

    #[test]
    fn merge_is_a_semilattice(ops in prop::collection::vec(op(), 0..40)) {
        let r = run(&ops);
        prop_assert_eq!(merged(&r[0], &r[1]), merged(&r[1], &r[0]));
        prop_assert_eq!(merged(&merged(&r[0], &r[1]), &r[2]), merged(&r[0], &merged(&r[1], &r[2])));
        prop_assert_eq!(merged(&r[0], &r[0]), r[0].clone());
    }

    #[test]
    fn write_replaces_exactly_what_its_context_covers(ops in prop::collection::vec(op(), 0..40), seen in 0usize..3) {
        let mut r = run(&ops);
        let ctx = r[seen].context().clone();
        let before = r[0].clone();
        write(&mut r[0], &ctx, 0, 9999);
        let after = &r[0];
        for s in before.siblings() {
            let kept = after.siblings().iter().any(|x| x.dot == s.dot);
            prop_assert_eq!(kept, !ctx.contains(&s.dot));
        }
        prop_assert_eq!(after.siblings().len(), before.siblings().iter().filter(|s| !ctx.contains(&s.dot)).count() + 1);
    }

    #[test]
    fn acknowledged_writes_survive_until_replaced(ops in prop::collection::vec(op(), 0..40)) {
        // Merging every replica loses no write that no later write saw.
        let r = run(&ops);
        let all = merged(&merged(&r[0], &r[1]), &r[2]);
        for rep in &r {
            for s in rep.siblings() {
                let superseded = r.iter().any(|o| o.context().contains(&s.dot) && !o.siblings().iter().any(|x| x.dot == s.dot));
                let present = all.siblings().iter().any(|x| x.dot == s.dot);
                prop_assert_eq!(present, !superseded);
            }
        }
    }

    #[test]
    fn no_sibling_explosion(order in prop::collection::vec(0usize..4, 1..60)) {
        // Four clients interleave read-modify-write on one key through one
        // coordinator, each sending the context of its previous write's
        // result (the Riak "sibling explosion" workload). Siblings stay at
        // most one per client.
        let mut obj = Object::new();
        let mut ctx = vec![VersionVector::new(); 4];
        for (i, c) in order.iter().enumerate() {
            write(&mut obj, &ctx[*c], 0, i as u32);
            ctx[*c] = obj.context().clone();
            prop_assert!(obj.siblings().len() <= 4, "{} siblings", obj.siblings().len());
        }
    }
}

#[test]
fn concurrent_blind_writes_become_siblings() {
    let (mut a, mut b) = (Object::new(), Object::new());
    write(&mut a, &VersionVector::new(), 0, 1);
    write(&mut b, &VersionVector::new(), 1, 2);
    a.merge(&b);
    assert_eq!(a.siblings().len(), 2);
    let ctx = a.context().clone();
    write(&mut a, &ctx, 0, 3);
    assert_eq!(a.siblings().len(), 1);
    // The resolved value wins on every replica it reaches.
    b.merge(&a);
    assert_eq!(a, b);
}

#[test]
fn keep_newest_picks_latest_timestamp() {
    let mut a = Object::new();
    let m = |t| Meta {
        last_modified_ms: t,
        ..Meta::default()
    };
    a.update(
        &VersionVector::new(),
        actor(0),
        Bytes::from_static(b"old"),
        m(5),
    )
    .unwrap();
    a.update(
        &VersionVector::new(),
        actor(1),
        Bytes::from_static(b"new"),
        m(9),
    )
    .unwrap();
    a.keep_newest();
    assert_eq!(a.siblings().len(), 1);
    assert_eq!(&a.siblings()[0].value[..], b"new");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// A context is client input (`X-Riak-Vclock`): any text gives a
    /// context or an error, never a panic, and what decodes re-encodes to
    /// the same context.
    #[test]
    fn any_context_text_decodes_or_fails(text in ".{0,200}") {
        if let Ok(vv) = ringstore_causal::decode_context(&text) {
            prop_assert_eq!(ringstore_causal::decode_context(&ringstore_causal::encode_context(&vv)), Ok(vv));
        }
    }

    /// Well-formed base64 of a version byte and arbitrary bytes: the
    /// postcard decoder behind it sees every shape.
    #[test]
    fn any_context_payload_decodes_or_fails(payload in prop::collection::vec(any::<u8>(), 0..300)) {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode([&[1u8][..], &payload].concat());
        if let Ok(vv) = ringstore_causal::decode_context(&text) {
            prop_assert_eq!(ringstore_causal::decode_context(&ringstore_causal::encode_context(&vv)), Ok(vv));
        }
    }

    /// A client controls every counter of the context it sends. Whatever
    /// contexts hostile clients send, in any number of writes, a write
    /// through any coordinator makes a fresh dot above everything the
    /// object had seen from that coordinator, and an honest client that
    /// fetches the object afterwards gets a context the decoder accepts
    /// and can write with it: no input poisons the key.
    #[test]
    fn no_context_poisons_a_key(
        forged in prop::collection::vec(
            (prop::collection::vec((0u64..4, 0u32..3, any::<u64>(), 0u8..3), 0..6), 0usize..3),
            0..12,
        ),
        honest in prop::collection::vec((0usize..3, any::<bool>()), 0..4),
    ) {
        let mut obj = Object::new();
        for (entries, who) in &forged {
            // Counters near the decoder's bound, near u64::MAX, or any.
            let mut ctx = VersionVector::new();
            for (node, epoch, counter, edge) in entries {
                let counter = match edge {
                    0 => ringstore_causal::COUNTER_MAX - (counter % 3),
                    1 => u64::MAX - (counter % 3),
                    _ => *counter,
                };
                ctx.add(&ringstore_causal::Dot { actor: Actor { node: *node, epoch: *epoch }, counter });
            }
            let before = obj.clone();
            let dot = obj.update(&ctx, actor(*who), Bytes::from_static(b"forged"), Meta::default());
            let dot = dot.map_err(|e| TestCaseError::fail(format!("forged write refused: {e}")))?;
            prop_assert!(dot.counter > before.context().get(&actor(*who)));
            prop_assert!(dot.counter <= before.context().get(&actor(*who)) + ringstore_causal::CONTEXT_LEAD_MAX + 1);
        }
        for (who, blind) in &honest {
            let fetched = ringstore_causal::encode_context(obj.context());
            let ctx = ringstore_causal::decode_context(&fetched)
                .map_err(|e| TestCaseError::fail(format!("fetched context refused: {e}")))?;
            let ctx = if *blind { VersionVector::new() } else { ctx };
            let before = obj.context().get(&actor(*who));
            let dot = obj.update(&ctx, actor(*who), Bytes::from_static(b"honest"), Meta::default());
            let dot = dot.map_err(|e| TestCaseError::fail(format!("honest write refused: {e}")))?;
            prop_assert!(dot.counter > before);
            if !*blind {
                // A read-modify-write replaces everything it saw.
                prop_assert_eq!(obj.live_siblings().count(), 1);
            }
        }
    }
}
