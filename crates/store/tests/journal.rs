//! The append journal: small appends are durable through `<dir>/journal`, and opening a store
//! whose sled state lost its unflushed tail re-applies the journal's records past the head.
//!
//! "sled lost its tail" is reproduced deterministically: two stores with the same clock get
//! the same first events (so identical bytes and hashes); the journal written by the longer one
//! is then placed next to the shorter one, as if a crash had left it there.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use commitments_store::{Store, StoreError, FORMAT_VERSION};
use common::*;

const T0: i64 = 1_700_000_000_000_000;

fn fixed(dir: &Path) -> Store {
    Store::open(dir, opts_with_clock(Arc::new(AtomicI64::new(T0)))).unwrap()
}

/// A store with events 1..=n, each its own (journaled) append; returns the journal's bytes as
/// they were before the store closed.
fn source(dir: &Path, n: u64) -> (Vec<u8>, Vec<Vec<u8>>) {
    let s = fixed(dir);
    for i in 1..=n {
        s.append(&[ev(&format!("s{}", i % 3), id(9, i), i)], &[])
            .unwrap();
    }
    let journal = std::fs::read(dir.join("journal")).unwrap();
    let bytes = all(&s).iter().map(|e| e.bytes().to_vec()).collect();
    (journal, bytes)
}

/// A store holding only events 1..=k of `source`, with `journal` put in place after it closed.
fn lagging(dir: &Path, k: u64, journal: &[u8]) {
    {
        let s = fixed(dir);
        for i in 1..=k {
            s.append(&[ev(&format!("s{}", i % 3), id(9, i), i)], &[])
                .unwrap();
        }
    }
    std::fs::write(dir.join("journal"), journal).unwrap();
}

/// Byte offsets where each record of a journal starts.
fn record_starts(j: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 28 <= j.len() && &j[off..off + 2] == b"CJ" {
        out.push(off);
        let len = u32::from_be_bytes(j[off + 4..off + 8].try_into().unwrap()) as usize;
        off += 28 + len;
    }
    out
}

fn verify_ok(s: &Store) {
    let r = s.verify(&|_| Ok(()), &|_| {}).unwrap();
    assert!(r.is_ok(), "{:?}", r.first_problem);
}

#[test]
fn lost_tail_is_replayed_from_the_journal() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (journal, want) = source(a.path(), 6);
    assert_eq!(record_starts(&journal).len(), 6, "one record per append");
    lagging(b.path(), 2, &journal);
    let s = fixed(b.path());
    assert_eq!(s.replayed_from_journal(), 4);
    let got: Vec<Vec<u8>> = all(&s).iter().map(|e| e.bytes().to_vec()).collect();
    assert_eq!(got, want);
    assert_eq!(s.stream_version("s0").unwrap(), 2);
    verify_ok(&s);
    // The replay was made durable in sled: the next open has nothing to replay.
    drop(s);
    let s = fixed(b.path());
    assert_eq!(s.replayed_from_journal(), 0);
    assert_eq!(all(&s).len(), 6);
}

#[test]
fn a_torn_or_damaged_record_ends_the_replay() {
    let a = tempfile::tempdir().unwrap();
    let (journal, want) = source(a.path(), 5);
    let starts = record_starts(&journal);

    // Torn: the last record is cut short.
    let end = starts[4] + 40;
    let b = tempfile::tempdir().unwrap();
    lagging(b.path(), 2, &journal[..end]);
    let s = fixed(b.path());
    assert_eq!(s.replayed_from_journal(), 2);
    assert_eq!(all(&s).len(), 4);
    assert_eq!(all(&s)[3].bytes().to_vec(), want[3]);
    verify_ok(&s);

    // Damaged: one byte of the 4th record flipped; records after it are not trusted either.
    let mut bad = journal.clone();
    bad[starts[3] + 60] ^= 0x20;
    let c = tempfile::tempdir().unwrap();
    lagging(c.path(), 2, &bad);
    let s = fixed(c.path());
    assert_eq!(s.replayed_from_journal(), 1);
    assert_eq!(all(&s).len(), 3);
    verify_ok(&s);
}

#[test]
fn a_journal_that_does_not_reach_the_head_is_corruption() {
    let a = tempfile::tempdir().unwrap();
    let (journal, _) = source(a.path(), 5);
    let starts = record_starts(&journal);
    let b = tempfile::tempdir().unwrap();
    // The log ends at seq 2 but the journal only holds seqs 4 and 5: seq 3 is missing.
    lagging(b.path(), 2, &journal[starts[3]..]);
    let before = std::fs::read(b.path().join("journal")).unwrap();
    // Twice: the failed open must leave the journal as it found it (it used to reset it on
    // the way out, and the second open then "succeeded" without seqs 4 and 5).
    for _ in 0..2 {
        match Store::open(b.path(), opts_with_clock(Arc::new(AtomicI64::new(T0)))) {
            Err(StoreError::Corrupt { seq: 4, detail }) => {
                assert!(detail.contains("journal"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(b.path().join("journal")).unwrap(), before);
    }
}

#[test]
fn a_clean_close_leaves_nothing_to_replay_and_little_space() {
    let a = tempfile::tempdir().unwrap();
    {
        let s = fixed(a.path());
        // Enough appends to pass a checkpoint (8 MiB of records) at least once.
        for i in 0..300u64 {
            let batch: Vec<_> = (0..40)
                .map(|j| {
                    let n = i * 40 + j;
                    let e = id(3, n);
                    commitments_store::NewEvent {
                        event_id: e,
                        stream: format!("s{}", n % 50),
                        event_type: "CallHeld".into(),
                        schema_version: 1,
                        body: body(e, n, 600),
                    }
                })
                .collect();
            s.append(&batch, &[]).unwrap();
        }
        assert!(std::fs::metadata(a.path().join("journal")).unwrap().len() > 1 << 20);
    }
    assert!(std::fs::metadata(a.path().join("journal")).unwrap().len() <= 1 << 20);
    let s = fixed(a.path());
    assert_eq!(s.replayed_from_journal(), 0);
    assert_eq!(all(&s).len(), 12_000);
    verify_ok(&s);
}

#[test]
fn a_version_1_store_is_upgraded_in_place() {
    let a = tempfile::tempdir().unwrap();
    {
        let s = fixed(a.path());
        s.append(&[ev("s1", id(1, 1), 1)], &[]).unwrap();
        s.debug_raw_tree()
            .insert(b"Mformat", &1u32.to_be_bytes())
            .unwrap();
    }
    std::fs::remove_file(a.path().join("journal")).unwrap();
    let s = fixed(a.path());
    assert_eq!(all(&s).len(), 1);
    let v = s.debug_raw_tree().get(b"Mformat").unwrap().unwrap();
    assert_eq!(v.as_ref(), FORMAT_VERSION.to_be_bytes());
    verify_ok(&s);
}

#[test]
fn an_unclean_close_makes_open_flush_sled_even_with_nothing_to_replay() {
    // sled recovered every event (they were settled into it, but maybe only into the page
    // cache) while the journal still holds them: the next session will overwrite those
    // records, so open must make sled durable first.
    let a = tempfile::tempdir().unwrap();
    let (journal, _) = source(a.path(), 3);
    let b = tempfile::tempdir().unwrap();
    lagging(b.path(), 3, &journal);
    let s = fixed(b.path());
    assert_eq!(s.replayed_from_journal(), 0);
    assert!(s.flushed_after_unclean_close());
    drop(s);
    // A clean close leaves nothing behind: no flush needed.
    let s = fixed(b.path());
    assert!(!s.flushed_after_unclean_close());
    assert_eq!(all(&s).len(), 3);
}
