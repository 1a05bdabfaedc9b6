use super::*;
use crate::{IndexQuery, ListStart, MemoryEngine, TermKind};
use bytes::Bytes;
use causal::{Actor, Meta};
use std::sync::Arc;

fn key(partition: u16, k: &str) -> ObjectKey {
    ObjectKey {
        partition,
        bucket_type: Bytes::from_static(b"t"),
        bucket: Bytes::from_static(b"b"),
        key: Bytes::copy_from_slice(k.as_bytes()),
    }
}

/// A new version of `obj` at `at` carrying `terms` (`deleted`: a delete).
fn write(obj: &mut Object, at: u64, terms: &[(&str, &str)], deleted: bool) {
    let meta = Meta {
        deleted,
        last_modified_ms: at,
        indexes: terms
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        ..Meta::default()
    };
    let ctx = obj.context().clone();
    obj.update(&ctx, Actor { node: 1, epoch: 1 }, Bytes::new(), meta)
        .unwrap();
}

async fn store(s: &Store, k: &ObjectKey, before: &Object, after: &Object) {
    s.put_object_staged(k, after, &IndexTerms::of(before), false)
        .await
        .unwrap();
}

fn terms(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn check(due_ms: u64, term: &str) -> Candidate {
    Candidate {
        due_ms,
        term: term.into(),
        stage: CandidateStage::Check,
    }
}

#[tokio::test]
async fn references_are_indexed_and_losing_one_logs_a_check() {
    let s = Store::new(Arc::new(MemoryEngine::default()));
    let k = key(7, "record");
    let mut obj = Object::new();
    write(
        &mut obj,
        10,
        &[(REF_INDEX, "A"), (REF_INDEX, "B"), ("x_bin", "A")],
        false,
    );
    store(&s, &k, &Object::new(), &obj).await;
    assert_eq!(
        s.holds_refs(&terms(&["A", "B", "C"])).unwrap(),
        [true, true, false]
    );
    assert!(s.candidates_due(u64::MAX, 1 << 16).unwrap().is_empty());

    // An overwrite that drops A: A's entry goes and A is logged.
    let before = obj.clone();
    write(&mut obj, 20, &[(REF_INDEX, "B")], false);
    store(&s, &k, &before, &obj).await;
    assert_eq!(s.holds_refs(&terms(&["A", "B"])).unwrap(), [false, true]);
    assert_eq!(
        s.candidates_due(u64::MAX, 1 << 16).unwrap(),
        [check(20, "A")]
    );

    // A delete drops B; entries not yet due stay in the log unread.
    let before = obj.clone();
    write(&mut obj, 30, &[], true);
    store(&s, &k, &before, &obj).await;
    assert_eq!(s.holds_refs(&terms(&["B"])).unwrap(), [false]);
    assert_eq!(s.candidates_due(25, 1 << 16).unwrap(), [check(20, "A")]);
    assert_eq!(
        s.candidates_due(30, 1 << 16).unwrap(),
        [check(20, "A"), check(30, "B")]
    );
}

#[tokio::test]
async fn collectables_log_a_check_when_written_and_drops_log_nothing() {
    let s = Store::new(Arc::new(MemoryEngine::default()));
    let block = key(3, "block");
    let mut obj = Object::new();
    write(&mut obj, 5, &[(COLLECT_INDEX, "A")], false);
    store(&s, &block, &Object::new(), &obj).await;
    assert_eq!(
        s.candidates_due(u64::MAX, 1 << 16).unwrap(),
        [check(5, "A")]
    );

    // Handled: the check leads to a collection due later.
    let later = Candidate {
        due_ms: 1005,
        term: "A".into(),
        stage: CandidateStage::Collect,
    };
    s.replace_candidates(&[check(5, "A")], std::slice::from_ref(&later))
        .await
        .unwrap();
    assert!(s.candidates_due(1000, 1 << 16).unwrap().is_empty());
    assert_eq!(
        s.candidates_due(1005, 1 << 16).unwrap(),
        std::slice::from_ref(&later)
    );

    // A replica dropped takes its reference entries, and logs nothing.
    let record = key(4, "record");
    let mut rec = Object::new();
    write(&mut rec, 6, &[(REF_INDEX, "A")], false);
    store(&s, &record, &Object::new(), &rec).await;
    assert_eq!(s.holds_refs(&terms(&["A"])).unwrap(), [true]);
    s.delete_objects(&[(record, IndexTerms::of(&rec))], false)
        .await
        .unwrap();
    assert_eq!(s.holds_refs(&terms(&["A"])).unwrap(), [false]);
    assert_eq!(s.candidates_due(u64::MAX, 1 << 16).unwrap(), [later]);
}

#[tokio::test]
async fn one_reference_among_many_replicas_keeps_a_term_held() {
    let s = Store::new(Arc::new(MemoryEngine::default()));
    let (k1, k2) = (key(1, "one"), key(9, "two"));
    let (mut a, mut b) = (Object::new(), Object::new());
    write(&mut a, 1, &[(REF_INDEX, "A")], false);
    write(&mut b, 1, &[(REF_INDEX, "A")], false);
    store(&s, &k1, &Object::new(), &a).await;
    store(&s, &k2, &Object::new(), &b).await;
    let before = a.clone();
    write(&mut a, 2, &[], true);
    store(&s, &k1, &before, &a).await;
    assert_eq!(s.holds_refs(&terms(&["A"])).unwrap(), [true]);
    // A term that is a prefix of another is its own term.
    assert_eq!(s.holds_refs(&terms(&["", "AB"])).unwrap(), [false, false]);
}

/// Entries of several partitions come out in (term, key) order from one
/// scan; partitions not covered are skipped, and a page resumes after
/// the last entry it read even when that entry was skipped.
#[tokio::test]
async fn index_scans_cross_partitions_and_skip_uncovered_ones() {
    let s = Store::new(Arc::new(MemoryEngine::default()));
    for (p, k, term) in [
        (1, "a", "x"),
        (2, "b", "x"),
        (3, "c", "x"),
        (2, "d", "y"),
        (1, "e", "z"),
    ] {
        let mut obj = Object::new();
        write(&mut obj, 10, &[("n_bin", term)], false);
        store(&s, &key(p, k), &Object::new(), &obj).await;
    }
    let q = |entries_max| IndexQuery {
        index: "n_bin".into(),
        ranges: vec![(
            Bytes::from(crate::index::escape(b"x")),
            Some(Bytes::from(crate::index::escape(b"y"))),
        )],
        entries_max,
        bytes_max: 1 << 20,
    };
    let names = |page: &crate::ListedPage| -> Vec<String> {
        page.entries
            .iter()
            .map(|e| {
                let (t, k) = crate::index::split_entry(TermKind::Bin, e.name()).unwrap();
                format!("{t}/{}", String::from_utf8_lossy(&k))
            })
            .collect()
    };
    let all = s
        .index_scan(b"t", b"b", &q(100), &|_| true, &ListStart::First)
        .unwrap();
    assert_eq!(names(&all), ["x/a", "x/b", "x/c", "y/d"]);
    assert_eq!(all.resume, None);
    let not_two = |p: u16| p != 2;
    let first = s
        .index_scan(b"t", b"b", &q(1), &not_two, &ListStart::First)
        .unwrap();
    assert_eq!(names(&first), ["x/a"]);
    let rest = s
        .index_scan(
            b"t",
            b"b",
            &q(100),
            &not_two,
            first.resume.as_ref().unwrap(),
        )
        .unwrap();
    assert_eq!(names(&rest), ["x/c"]);
    // An overwrite moves the entry; a delete removes it.
    let mut obj = Object::new();
    write(&mut obj, 10, &[("n_bin", "x")], false);
    let before = obj.clone();
    write(&mut obj, 20, &[("n_bin", "z")], false);
    store(&s, &key(1, "a"), &before, &obj).await;
    let after = s
        .index_scan(b"t", b"b", &q(100), &|_| true, &ListStart::First)
        .unwrap();
    assert_eq!(names(&after), ["x/b", "x/c", "y/d"]);
}
