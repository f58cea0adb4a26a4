//! The pack file `<dir>/packs`: where large appends put their packs' payloads (format 5).
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::OpenOptions as FsOpen;
use std::io::Write;
use std::path::Path;

use commitments_store::{NewEvent, OpenOptions, Store, StoreError};
use common::*;

/// The codec byte's flag for a payload kept in the pack file.
const EXTERNAL: u8 = 0x80;

fn big(n: u64, salt: u64) -> NewEvent {
    let event_id = id(salt, n);
    NewEvent {
        event_id,
        stream: format!("s-{}", n % 7),
        event_type: "CallHeld".into(),
        schema_version: 1,
        // Varied text, so that zstd leaves each ~2 KB body at several hundred bytes.
        body: body(event_id, n, 0)
            .into_iter()
            .take_while(|b| *b != b'}')
            .chain(format!(",\"text\":\"{}\"}}", text(n)).into_bytes())
            .collect(),
    }
}

fn text(n: u64) -> String {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..2000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

fn batch(range: std::ops::Range<u64>, salt: u64) -> Vec<NewEvent> {
    range.map(|n| big(n, salt)).collect()
}

fn packs_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("packs")).unwrap().len()
}

/// (first seq, sled value) of every pack.
fn pack_values(s: &Store) -> Vec<(u64, Vec<u8>)> {
    s.debug_raw_tree()
        .scan_prefix(b"P")
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (u64::from_be_bytes(k[1..9].try_into().unwrap()), v.to_vec())
        })
        .collect()
}

fn assert_bodies(s: &Store, expected: &[NewEvent]) {
    let got = all(s);
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g.body_json(), e.body, "seq {}", g.seq);
    }
    assert!(s.verify(&ok_decode, &no_progress).unwrap().is_ok());
}

#[test]
fn a_large_append_keeps_its_packs_payloads_in_the_pack_file() {
    let dir = tempfile::tempdir().unwrap();
    let events = batch(0..300, 1);
    {
        let s = Store::open(dir.path(), small_opts()).unwrap();
        s.append(&events, &[]).unwrap();
        let packs = pack_values(&s);
        assert!(packs.len() >= 5, "{} packs", packs.len());
        // In sled: a 27-byte header and a 16-byte pointer per pack, nothing more.
        for (first, v) in &packs {
            assert_eq!(v[0] & EXTERNAL, EXTERNAL, "pack {first} is external");
            assert_eq!(v.len(), 43, "pack {first}");
        }
        assert!(s.debug_raw_tree().scan_prefix(b"X").next().is_none());
        assert!(s.stats().unwrap().bytes_on_disk >= packs_len(dir.path()));
        assert_bodies(&s, &events);
    }
    // The payloads are in the file, durably: a second open reads the same events.
    let written = packs_len(dir.path());
    assert!(written > 100_000, "{written} bytes");
    let s = Store::open(dir.path(), small_opts()).unwrap();
    assert_eq!(packs_len(dir.path()), written);
    assert_bodies(&s, &events);
}

/// A large append killed after writing payloads but before publishing them leaves bytes past
/// the published length: the next open cuts them off, and the next large append writes there.
#[test]
fn bytes_past_the_published_length_are_cut_off_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = batch(0..100, 2);
    drop(Store::open(dir.path(), small_opts()).map(|s| s.append(&events, &[]).unwrap()));
    let published = packs_len(dir.path());
    let mut f = FsOpen::new()
        .append(true)
        .open(dir.path().join("packs"))
        .unwrap();
    f.write_all(&[0xAB; 5000]).unwrap();
    drop(f);

    let s = Store::open(dir.path(), small_opts()).unwrap();
    assert_eq!(packs_len(dir.path()), published);
    assert_bodies(&s, &events);
    let more = batch(100..200, 2);
    s.append(&more, &[]).unwrap();
    events.extend(more);
    assert!(packs_len(dir.path()) > published);
    assert_bodies(&s, &events);
}

/// Damage to the pack file is a named problem for `verify` (and a cut file a typed error for
/// readers), never a panic, and the store still opens.
#[test]
fn a_damaged_pack_file_is_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let events = batch(0..300, 3);
    drop(Store::open(dir.path(), small_opts()).map(|s| s.append(&events, &[]).unwrap()));
    let len = packs_len(dir.path());

    // One byte flipped in the middle of the file.
    let mut bytes = std::fs::read(dir.path().join("packs")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5A;
    std::fs::write(dir.path().join("packs"), &bytes).unwrap();
    {
        let s = Store::open(dir.path(), small_opts()).unwrap();
        let r = s.verify(&ok_decode, &no_progress).unwrap();
        let p = r.first_problem.expect("a problem");
        // (Reads do not check the chain; what the flip does to a read depends on where it
        // lands in zstd's stream. `verify` is the check.)
        assert!(p.seq > 1 && p.seq <= 300, "{p:?}");
    }

    // The file cut to half its length: the packs past the cut cannot be read.
    bytes[mid] ^= 0x5A;
    std::fs::write(dir.path().join("packs"), &bytes[..(len / 2) as usize]).unwrap();
    let s = Store::open(dir.path(), small_opts()).unwrap();
    let r = s.verify(&ok_decode, &no_progress).unwrap();
    let p = r.first_problem.expect("a problem");
    assert!(p.detail.contains("pack file ends"), "{}", p.detail);
    let first_bad = p.seq;
    let err = all_or_error(&s).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { seq, .. } if seq == first_bad),
        "{err}"
    );
    // Everything before the damaged pack still reads.
    let before: Vec<_> = s
        .read_log(1, Some(first_bad - 1))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(before.len() as u64, first_bad - 1);

    // A large append would write past the hole: refused, and nothing changes.
    let head = s.head().unwrap().seq;
    let err = s.append(&batch(300..400, 3), &[]).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { .. }) && err.to_string().contains("shorter"),
        "{err}"
    );
    assert_eq!(s.head().unwrap().seq, head);
    assert_eq!(packs_len(dir.path()), len / 2);
}

fn all_or_error(s: &Store) -> Result<Vec<commitments_store::StoredEvent>, StoreError> {
    s.read_log(1, None).collect()
}

/// A small append after a large one extends a small tail pack in place: the rewritten pack
/// goes back into sled, and the events of both appends read back.
#[test]
fn a_small_append_rewrites_an_external_tail_pack_inline() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(
        dir.path(),
        OpenOptions {
            large_batch_threshold: 40,
            chunk_events: 16,
            tail_rewrite_limit: 64 * 1024,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let mut events = batch(0..100, 4);
    s.append(&events, &[]).unwrap();
    let (last_first, last) = pack_values(&s).pop().unwrap();
    assert_eq!(last[0] & EXTERNAL, EXTERNAL);
    let raw_len = u32::from_be_bytes(last[5..9].try_into().unwrap());
    assert!(
        raw_len < 60 * 1024,
        "the tail pack has room ({raw_len} bytes)"
    );

    let one = batch(100..101, 4);
    s.append(&one, &[]).unwrap();
    events.extend(one);
    assert_bodies(&s, &events);
    let (first, v) = pack_values(&s).pop().unwrap();
    assert_eq!(first, last_first, "the same pack, extended");
    assert_eq!(v[0] & EXTERNAL, 0, "now inline");
    drop(s);
    let s = Store::open(dir.path(), small_opts()).unwrap();
    assert_bodies(&s, &events);
}
