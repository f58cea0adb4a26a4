//! Behaviour of the public API.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use commitments_store::{ExpectedVersion, OpenOptions, Store, StoreError, FORMAT_VERSION};
use common::*;

#[test]
fn append_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert_eq!(s.head().unwrap().seq, 0);
    assert_eq!(s.head().unwrap().recorded_at, None);
    let out = s
        .append(&[ev("call-1", id(1, 1), 1), ev("src-a", id(1, 2), 2)], &[])
        .unwrap();
    assert_eq!(out.appended, 2);
    assert_eq!((out.first_seq, out.last_seq), (Some(1), Some(2)));
    assert_eq!(out.positions[1].stream_version, 1);
    let evs = all(&s);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].prev_hash, [0; 32]);
    assert_eq!(evs[1].prev_hash, evs[0].hash());
    assert_eq!(evs[0].body_json(), ev("call-1", id(1, 1), 1).body);
    let line = evs[0].export_line();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["hash"], evs[0].hash_hex());
    assert_eq!(v["seq"], 1);
    assert_eq!(v["stream"], "call-1");
    assert_eq!(s.head().unwrap().hash, evs[1].hash());
    assert_eq!(s.get_by_id(id(1, 2)).unwrap().unwrap().seq, 2);
    assert!(s.get_by_id(id(9, 9)).unwrap().is_none());
    assert_eq!(s.stream_version("call-1").unwrap(), 1);
    assert_eq!(s.stream_version("nope").unwrap(), 0);
    let st = s.stats().unwrap();
    assert_eq!((st.events, st.streams, st.head_seq), (2, 2, 2));
    assert!(s.verify(&ok_decode, &no_progress).unwrap().is_ok());
}

#[test]
fn bytes_on_disk_are_read_without_opening() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(Store::bytes_on_disk_at(&dir.path().join("none")), 0);
    let s = open(dir.path());
    let evs: Vec<_> = (0..2_000u16)
        .map(|i| ev(&format!("call-{i}"), id(2, i.into()), 1))
        .collect();
    s.append(&evs, &[]).unwrap();
    let open_stats = s.stats().unwrap().bytes_on_disk;
    drop(s);
    let closed = Store::bytes_on_disk_at(dir.path());
    // The store's own count (sled's data file and blobs) and the directory walk see the
    // same data; the walk also counts sled's config and snapshot.
    assert!(closed >= open_stats, "{closed} < {open_stats}");
    assert!(closed > 0);
    // Nothing was opened or created by asking.
    let again = Store::bytes_on_disk_at(dir.path());
    assert_eq!(again, closed);
}

#[test]
fn stream_prefix_scan_does_not_alias() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.append(&[ev("call-1", id(2, 1), 1)], &[]).unwrap();
    s.append(&[ev("call-10", id(2, 2), 2)], &[]).unwrap();
    s.append(&[ev("call-1", id(2, 3), 3)], &[]).unwrap();
    let one = s.read_stream("call-1", 0).unwrap();
    assert_eq!(one.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(s.read_stream("call-1", 2).unwrap().len(), 1);
    assert_eq!(s.read_stream("call-10", 1).unwrap().len(), 1);
    assert_eq!(
        s.streams_with_prefix("call-1").unwrap(),
        vec!["call-1", "call-10"]
    );
    assert_eq!(s.streams_with_prefix("call-10").unwrap(), vec!["call-10"]);
}

#[test]
fn invalid_input_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut e = ev("Bad Stream", id(3, 1), 1);
    assert!(matches!(
        s.append(&[e.clone()], &[]),
        Err(StoreError::InvalidStream { .. })
    ));
    e.stream = "ok".into();
    e.body = b"{}".to_vec();
    assert!(matches!(
        s.append(&[e.clone()], &[]),
        Err(StoreError::InvalidEvent { .. })
    ));
    e.body = br#"{"type":"X"}"#.to_vec();
    assert!(matches!(
        s.append(&[e.clone()], &[]),
        Err(StoreError::InvalidEvent { .. })
    ));
    // The id must be the value of `event_id` itself: another event's id there, or this id
    // under another key that ends in `event_id`, is refused.
    for body in [
        format!(r#"{{"type":"X","event_id":"{}"}}"#, id(3, 2)),
        format!(r#"{{"type":"X","target_event_id":"{}"}}"#, e.event_id),
    ] {
        e.body = body.into_bytes();
        assert!(matches!(
            s.append(&[e.clone()], &[]),
            Err(StoreError::InvalidEvent { .. })
        ));
    }
    // Every occurrence of the key is tried: a later one, and one that overlaps the one
    // before (the store checks the body's shape, not that it is valid JSON).
    for (n, shape) in [
        r#"{{"type":"X","a":{{"event_id":"{other}"}},"event_id":"{id}"}}"#,
        r#"{{"type":"X","event_id":"event_id":"{id}"}}"#,
    ]
    .into_iter()
    .enumerate()
    {
        let mut f = ev("ok", id(4, n as u64), 1);
        f.body = shape
            .replace("{other}", &id(3, 2).to_string())
            .replace("{id}", &f.event_id.to_string())
            .replace("{{", "{")
            .replace("}}", "}")
            .into_bytes();
        s.append(&[f], &[]).unwrap();
    }
    e.body = format!(r#"{{"type":"X","event_id":"{}"}}"#, e.event_id).into_bytes();
    s.append(&[e], &[]).unwrap();
    assert_eq!(s.head().unwrap().seq, 3);
}

#[test]
fn expectations_and_multi_stream_atomicity() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.append(
        &[ev("b", id(4, 1), 1)],
        &[("b".into(), ExpectedVersion::NoStream)],
    )
    .unwrap();
    let err = s
        .append(
            &[ev("a", id(4, 2), 2), ev("b", id(4, 3), 3)],
            &[
                ("a".into(), ExpectedVersion::NoStream),
                ("b".into(), ExpectedVersion::Exact(5)),
            ],
        )
        .unwrap_err();
    match err {
        StoreError::Conflict {
            stream,
            expected,
            actual,
        } => {
            assert_eq!(stream, "b");
            assert_eq!(expected, ExpectedVersion::Exact(5));
            assert_eq!(actual, 1);
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(s.stream_version("a").unwrap(), 0);
    assert!(s.read_stream("a", 0).unwrap().is_empty());
    assert_eq!(s.head().unwrap().seq, 1);
    assert!(matches!(
        s.append(
            &[ev("c", id(4, 4), 4)],
            &[("c".into(), ExpectedVersion::StreamExists)]
        ),
        Err(StoreError::Conflict { .. })
    ));
    s.append(
        &[ev("b", id(4, 5), 5)],
        &[("b".into(), ExpectedVersion::StreamExists)],
    )
    .unwrap();
    assert_eq!(s.stream_version("b").unwrap(), 2);
}

#[test]
fn concurrent_exact_appends_one_winner_per_version() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(dir.path()));
    let rounds = 20u64;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut handles = Vec::new();
    for t in 0..4u64 {
        let s = Arc::clone(&s);
        let tx = tx.clone();
        handles.push(std::thread::spawn(move || {
            let mut wins = Vec::new();
            let mut conflicts = 0;
            for v in 0..rounds {
                let r = s.append(
                    &[ev("shared", id(100 + t, v), v)],
                    &[("shared".into(), ExpectedVersion::Exact(v))],
                );
                match r {
                    Ok(o) => wins.push(o.positions[0].stream_version),
                    Err(StoreError::Conflict { .. }) => conflicts += 1,
                    Err(e) => panic!("{e}"),
                }
                // Catch up before trying the next version.
                while s.stream_version("shared").unwrap() <= v {
                    std::thread::yield_now();
                }
            }
            tx.send((wins, conflicts)).unwrap();
        }));
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut results = Vec::new();
    while results.len() < 4 {
        let left = deadline.saturating_duration_since(Instant::now());
        results.push(rx.recv_timeout(left).expect("writers hung"));
    }
    for h in handles {
        h.join().unwrap();
    }
    let mut all_wins: Vec<u64> = results.iter().flat_map(|r| r.0.clone()).collect();
    all_wins.sort_unstable();
    assert_eq!(all_wins, (1..=rounds).collect::<Vec<_>>());
    let conflicts: u64 = results.iter().map(|r| r.1).sum();
    assert_eq!(conflicts, rounds * 3);
    assert!(s.verify(&ok_decode, &no_progress).unwrap().is_ok());
}

#[test]
fn idempotent_by_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let batch = vec![ev("x", id(5, 1), 1), ev("y", id(5, 2), 2)];
    {
        let s = open(dir.path());
        let first = s
            .append(&batch, &[("x".into(), ExpectedVersion::NoStream)])
            .unwrap();
        let again = s
            .append(&batch, &[("x".into(), ExpectedVersion::NoStream)])
            .unwrap();
        assert_eq!(again.appended, 0);
        assert_eq!(again.duplicates, 2);
        assert!(again.positions.iter().all(|p| p.duplicate));
        assert_eq!(again.positions[1].seq, first.positions[1].seq);
        assert_eq!(again.positions[1].stream_version, 1);
    }
    let s = open(dir.path());
    let again = s.append(&batch, &[]).unwrap();
    assert_eq!((again.appended, again.duplicates), (0, 2));
    assert_eq!(s.head().unwrap().seq, 2);
    // Same id, different body.
    let mut changed = ev("x", id(5, 1), 99);
    let err = s.append(&[changed.clone()], &[]).unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateEventId { seq: Some(1), .. }),
        "{err}"
    );
    // Inside one batch: same body twice = duplicate of the first; different = error.
    let e = ev("z", id(5, 3), 3);
    let out = s.append(&[e.clone(), e.clone()], &[]).unwrap();
    assert_eq!((out.appended, out.duplicates), (1, 1));
    assert_eq!(out.positions[0].seq, out.positions[1].seq);
    changed.event_id = id(5, 4);
    changed.body = body(id(5, 4), 1, 1);
    let mut other = changed.clone();
    other.body = body(id(5, 4), 2, 1);
    assert!(matches!(
        s.append(&[changed, other], &[]),
        Err(StoreError::DuplicateEventId { seq: None, .. })
    ));
    assert_eq!(s.head().unwrap().seq, 3);
}

#[test]
fn clock_is_clamped_and_known_at_searches() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(1_700_000_000_000_000));
    let s = Store::open(
        dir.path(),
        OpenOptions {
            tail_rewrite_limit: 300,
            ..opts_with_clock(Arc::clone(&clock))
        },
    )
    .unwrap();
    let set = |v: i64| clock.store(v, std::sync::atomic::Ordering::SeqCst);
    for i in 0..30u64 {
        set(1_700_000_000_000_000 + (i as i64) * 1_000_000);
        let o = s.append(&[ev("t", id(6, i), i)], &[]).unwrap();
        assert!(!o.clock_clamped);
    }
    set(1_600_000_000_000_000);
    let o = s.append(&[ev("t", id(6, 100), 100)], &[]).unwrap();
    assert!(o.clock_clamped);
    let evs = all(&s);
    assert_eq!(evs[30].recorded_at, evs[29].recorded_at);
    let at = |m: i64| chrono::DateTime::from_timestamp_micros(m).unwrap();
    assert_eq!(s.last_seq_known_at(at(1_600_000_000_000_000)).unwrap(), 0);
    assert_eq!(s.last_seq_known_at(at(1_700_000_000_000_000)).unwrap(), 1);
    assert_eq!(s.last_seq_known_at(at(1_700_000_010_500_000)).unwrap(), 11);
    assert_eq!(s.last_seq_known_at(at(1_700_000_029_000_000)).unwrap(), 31);
    assert_eq!(s.last_seq_known_at(at(1_800_000_000_000_000)).unwrap(), 31);
    assert_eq!(evs[0].recorded_at, "2023-11-14T22:13:20.000000Z");
    assert!(s.verify(&ok_decode, &no_progress).unwrap().is_ok());
}

#[test]
fn large_batches_and_tail_packs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), small_opts()).unwrap();
        for i in 0..10 {
            s.append(&[ev("one", id(7, i), i)], &[]).unwrap();
        }
        let big: Vec<_> = (0..500)
            .map(|i| ev(&format!("s{}", i % 7), id(8, i), i))
            .collect();
        let o = s.append(&big, &[]).unwrap();
        assert_eq!((o.first_seq, o.last_seq), (Some(11), Some(510)));
        s.append(&[ev("one", id(7, 99), 99)], &[]).unwrap();
        assert!(s.verify(&ok_decode, &no_progress).unwrap().is_ok());
    }
    let s = Store::open(dir.path(), small_opts()).unwrap();
    assert_eq!(all(&s).len(), 511);
    assert_eq!(s.read_stream("s3", 0).unwrap().len(), 71);
    assert_eq!(s.read_log(100, Some(105)).count(), 6);
    assert_eq!(s.stats().unwrap().streams, 8);
    assert!(s.verify(&ok_decode, &no_progress).unwrap().is_ok());
}

#[test]
fn huge_event_spans_parts() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut e = ev("big", id(9, 1), 1);
    e.body = body(id(9, 1), 1, 900_000);
    s.append(
        &[ev("a", id(9, 0), 0), e.clone(), ev("a", id(9, 2), 2)],
        &[],
    )
    .unwrap();
    let got = s.get_by_id(id(9, 1)).unwrap().unwrap();
    assert_eq!(got.body_json(), e.body);
    assert!(s.verify(&ok_decode, &no_progress).unwrap().is_ok());
}

#[test]
fn export_restore_roundtrip_is_byte_identical() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let s = Store::open(src.path(), small_opts()).unwrap();
    for r in 0..5u64 {
        let batch: Vec<_> = (0..(r * 30 + 1))
            .map(|i| ev(&format!("st{}", i % 3), id(10 + r, i), i))
            .collect();
        s.append(&batch, &[]).unwrap();
    }
    let mut out = Vec::new();
    let n = s.export(&mut out, &no_progress).unwrap();
    assert_eq!(n, s.head().unwrap().seq);
    let d = Store::open(dst.path(), small_opts()).unwrap();
    assert_eq!(d.restore(&mut out.as_slice(), &no_progress).unwrap(), n);
    let mut again = Vec::new();
    d.export(&mut again, &no_progress).unwrap();
    assert_eq!(out, again);
    assert_eq!(d.head().unwrap(), s.head().unwrap());
    assert_eq!(d.stats().unwrap().streams, 3);
    assert!(d.verify(&ok_decode, &no_progress).unwrap().is_ok());
    // Not into a non-empty store.
    assert!(matches!(
        d.restore(&mut out.as_slice(), &no_progress),
        Err(StoreError::NotEmpty { .. })
    ));
    // And appends continue the chain.
    d.append(&[ev("st0", id(20, 1), 1)], &[]).unwrap();
    assert!(d.verify(&ok_decode, &no_progress).unwrap().is_ok());
}

fn restore_err(lines: &[String]) -> (u64, String) {
    let dst = tempfile::tempdir().unwrap();
    let d = Store::open(dst.path(), small_opts()).unwrap();
    let text = lines.join("\n");
    match d.restore(&mut text.as_bytes(), &no_progress) {
        Err(StoreError::RestoreLine { line, reason }) => {
            assert_eq!(d.head().unwrap().seq, 0);
            assert_eq!(all(&d).len(), 0);
            assert!(d.verify(&ok_decode, &no_progress).unwrap().is_ok());
            (line, reason)
        }
        other => panic!("expected RestoreLine, got {other:?}"),
    }
}

#[test]
fn restore_rejects_tampered_lines() {
    let src = tempfile::tempdir().unwrap();
    let s = Store::open(src.path(), small_opts()).unwrap();
    let batch: Vec<_> = (0..60).map(|i| ev("r", id(30, i), i)).collect();
    s.append(&batch, &[]).unwrap();
    let mut out = Vec::new();
    s.export(&mut out, &no_progress).unwrap();
    let lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();

    let mut t = lines.clone();
    t[50] = t[50].replace("\"n\":50", "\"n\":51");
    let (line, reason) = restore_err(&t);
    assert_eq!(line, 51);
    assert!(reason.contains("hash mismatch"), "{reason}");

    let mut t = lines.clone();
    t.remove(10);
    let (line, reason) = restore_err(&t);
    assert_eq!(line, 11);
    assert!(reason.contains("seq 12"), "{reason}");

    // A line re-hashed after editing its prev_hash: the chain breaks.
    let mut t = lines.clone();
    let b = t[5].rfind(",\"hash\":").unwrap();
    let mut body = t[5][..b].to_string() + "}";
    let ph = body.find("\"prev_hash\":\"").unwrap() + 13;
    body.replace_range(ph..ph + 64, &"1".repeat(64));
    let h = {
        use sha2::Digest;
        commitments_store::to_hex(&sha2::Sha256::digest(body.as_bytes()))
    };
    t[5] = format!("{},\"hash\":\"{h}\"}}", &body[..body.len() - 1]);
    let (line, reason) = restore_err(&t);
    assert_eq!(line, 6);
    assert!(reason.contains("prev_hash"), "{reason}");

    let mut t = lines;
    t[2] = "garbage".into();
    assert_eq!(restore_err(&t).0, 3);
}

/// A store holding two packs of 30 events each (seqs 1-30, 31-60), verified sound.
fn two_packs(dir: &std::path::Path, salt: u64) -> Store {
    let s = Store::open(
        dir,
        OpenOptions {
            tail_rewrite_limit: 0,
            ..small_opts()
        },
    )
    .unwrap();
    for b in 0..2 {
        let batch: Vec<_> = (0..30).map(|i| ev("p", id(salt + b, i), i)).collect();
        s.append(&batch, &[]).unwrap();
        // Reading applies the pending tail to sled: the next append starts a second pack.
        assert!(s.verify(&ok_decode, &no_progress).unwrap().is_ok());
    }
    s
}

#[test]
fn tampered_pack_is_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let s = two_packs(dir.path(), 40);
    let tree = s.debug_raw_tree();
    let packs: Vec<_> = tree.scan_prefix(b"P").map(|kv| kv.unwrap()).collect();
    assert!(packs.len() >= 2, "{}", packs.len());
    let (k, v) = packs[1].clone();
    let first = u64::from_be_bytes(k[1..9].try_into().unwrap());

    // Rewrite one event's content inside a well-formed pack: the hash chain breaks.
    // (Decompress, edit, recompress by hand through the raw tree.)
    assert_eq!(v[0], 2, "a zstd pack");
    let raw = zstd::bulk::decompress(
        &v[27..],
        u32::from_be_bytes(v[5..9].try_into().unwrap()) as usize,
    )
    .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let edited = text.replacen("\"n\":", "\"m\":", 1).into_bytes();
    assert_eq!(edited.len(), raw.len());
    let mut nv = v[..27].to_vec();
    nv[0] = 0; // codec none
    nv[5..9].copy_from_slice(&(edited.len() as u32).to_be_bytes());
    nv.extend_from_slice(&edited);
    tree.insert(&k, nv).unwrap();
    let r = s.verify(&ok_decode, &no_progress).unwrap();
    let p = r.first_problem.expect("problem found");
    assert_eq!(p.seq, first + 1, "{}", p.detail);
    assert!(p.detail.contains("prev_hash"), "{}", p.detail);

    // Truncated pack: verify names the pack's first seq and range; reads give a typed error.
    tree.insert(&k, v[..40].to_vec()).unwrap();
    let r = s.verify(&ok_decode, &no_progress).unwrap();
    let p = r.first_problem.expect("problem found");
    assert_eq!(p.seq, first, "{}", p.detail);
    assert!(p.detail.contains(&format!("{first}..=")), "{}", p.detail);
    let err = s.read_log(1, None).find_map(|r| r.err()).expect("error");
    assert!(
        matches!(err, StoreError::Corrupt { seq, .. } if seq == first),
        "{err}"
    );
    assert!(matches!(
        s.get_by_id(id(40, 29)),
        Err(StoreError::Corrupt { .. }) | Ok(_)
    ));

    // Garbage pack.
    tree.insert(&k, vec![7u8; 100]).unwrap();
    let r = s.verify(&ok_decode, &no_progress).unwrap();
    assert_eq!(r.first_problem.expect("problem").seq, first);
    tree.insert(&k, Vec::<u8>::new()).unwrap();
    assert_eq!(
        s.verify(&ok_decode, &no_progress)
            .unwrap()
            .first_problem
            .expect("problem")
            .seq,
        first
    );
}

#[test]
fn decode_callback_failure_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.append(&[ev("a", id(50, 1), 1), ev("a", id(50, 2), 2)], &[])
        .unwrap();
    let r = s
        .verify(
            &|e| {
                if e.seq == 2 {
                    Err("bad type".into())
                } else {
                    Ok(())
                }
            },
            &no_progress,
        )
        .unwrap();
    let p = r.first_problem.unwrap();
    assert_eq!(p.seq, 2);
    assert!(p.detail.contains("bad type"));
}

#[test]
fn format_version_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        s.debug_raw_tree()
            .insert(b"Mformat", &7u32.to_be_bytes())
            .unwrap();
    }
    match Store::open(dir.path(), OpenOptions::default()) {
        Err(StoreError::UnsupportedFormat {
            found: 7,
            supported: FORMAT_VERSION,
        }) => {}
        other => panic!("{other:?}"),
    }
    let missing = dir.path().join("nope");
    assert!(matches!(
        Store::open(
            &missing,
            OpenOptions {
                create: false,
                ..OpenOptions::default()
            }
        ),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn views_commit_scan_swap_drop() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert!(s.view_meta("v").unwrap().is_none());
    let m = s
        .view_commit(
            "v",
            &[
                (b"a1".to_vec(), Some(b"x".to_vec())),
                (b"a2".to_vec(), Some(b"y".to_vec())),
                (b"b1".to_vec(), Some(b"z".to_vec())),
            ],
            5,
            1,
        )
        .unwrap();
    assert_eq!((m.rows, m.checkpoint, m.version), (3, 5, 1));
    assert_eq!(s.view_digest_recompute("v").unwrap(), m.digest);
    let m2 = s
        .view_commit(
            "v",
            &[
                (b"a2".to_vec(), None),
                (b"b1".to_vec(), Some(b"w".to_vec())),
            ],
            6,
            1,
        )
        .unwrap();
    assert_eq!(m2.rows, 2);
    assert_eq!(s.view_digest_recompute("v").unwrap(), m2.digest);
    let rows: Vec<_> = s.view_scan("v", b"a").map(|r| r.unwrap()).collect();
    assert_eq!(rows, vec![(b"a1".to_vec(), b"x".to_vec())]);
    assert_eq!(s.view_get("v", b"b1").unwrap(), Some(b"w".to_vec()));

    // Same rows in another order ⇒ same digest.
    let m3 = s
        .view_commit(
            "shadow",
            &[
                (b"b1".to_vec(), Some(b"w".to_vec())),
                (b"a1".to_vec(), Some(b"x".to_vec())),
            ],
            6,
            2,
        )
        .unwrap();
    assert_eq!(m3.digest, m2.digest);
    s.view_commit("shadow", &[(b"c".to_vec(), Some(b"1".to_vec()))], 7, 2)
        .unwrap();
    s.view_swap("v", "shadow").unwrap();
    assert!(s.view_meta("shadow").unwrap().is_none());
    let live = s.view_meta("v").unwrap().unwrap();
    assert_eq!((live.version, live.checkpoint, live.rows), (2, 7, 3));
    assert!(live.rebuilt_at.is_some());
    assert_eq!(s.view_get("v", b"c").unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.view_digest_recompute("v").unwrap(), live.digest);
    s.view_drop("v").unwrap();
    assert!(s.view_meta("v").unwrap().is_none());
    assert_eq!(s.view_scan("v", b"").count(), 0);
    assert_eq!(s.debug_views_len(), 1); // only the generation counter is left
}

fn rows_of(s: &Store, ns: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    s.view_scan(ns, b"").map(|r| r.unwrap()).collect()
}

#[test]
fn a_view_rewrite_writes_only_the_rows_that_differ() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let before: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..600u32)
        .map(|i| {
            (
                format!("k{i:04}").into_bytes(),
                Some(vec![b'a' + (i % 7) as u8; 300]),
            )
        })
        .collect();
    s.view_commit("v", &before, 10, 3).unwrap();
    // The new set: k0000..k0099 gone, every 50th value changed, k9xxx added.
    let mut new: Vec<(Vec<u8>, Vec<u8>)> = (100..600u32)
        .map(|i| {
            let v = if i % 50 == 0 {
                b"changed".to_vec()
            } else {
                vec![b'a' + (i % 7) as u8; 300]
            };
            (format!("k{i:04}").into_bytes(), v)
        })
        .collect();
    new.extend((0..5u32).map(|i| (format!("k9{i:03}").into_bytes(), b"new".to_vec())));
    let mut w = s.view_rewrite("v").unwrap();
    for (k, v) in &new {
        w.put(k, v).unwrap();
    }
    let r = w.finish(20, 4).unwrap();
    assert_eq!(r.changed, 100 + 10 + 5);
    assert_eq!(
        r.before.as_ref().map(|m| (m.version, m.rows)),
        Some((3, 600))
    );
    assert_eq!(
        (r.after.version, r.after.checkpoint, r.after.rows),
        (4, 20, 505)
    );
    assert_eq!(s.view_meta("v").unwrap().unwrap(), r.after);
    assert_eq!(s.view_digest_recompute("v").unwrap(), r.after.digest);
    assert_eq!(rows_of(&s, "v"), new);

    // The same set again changes nothing.
    let mut w = s.view_rewrite("v").unwrap();
    for (k, v) in &new {
        w.put(k, v).unwrap();
    }
    let again = w.finish(21, 4).unwrap();
    assert_eq!(again.changed, 0);
    assert_eq!(again.after.digest, r.after.digest);

    // An empty set deletes every row.
    let emptied = s.view_rewrite("v").unwrap().finish(22, 4).unwrap();
    assert_eq!((emptied.changed, emptied.after.rows), (505, 0));
    assert_eq!(s.view_scan("v", b"").count(), 0);
}

#[test]
fn a_view_rewrite_publishes_a_new_namespace_only_when_it_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut w = s.view_rewrite("fresh").unwrap();
    w.put(b"a", b"1").unwrap();
    w.put(b"b", b"2").unwrap();
    assert!(s.view_meta("fresh").unwrap().is_none());
    // A second new namespace rewritten at the same time gets its own generation.
    let mut w2 = s.view_rewrite("other").unwrap();
    w2.put(b"z", b"9").unwrap();
    let m2 = w2.finish(1, 1).unwrap();
    let m = w.finish(5, 2).unwrap();
    assert!(m.before.is_none());
    assert_eq!((m.after.rows, m.changed), (2, 2));
    assert_eq!(
        rows_of(&s, "fresh"),
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec())
        ]
    );
    assert_eq!(rows_of(&s, "other"), vec![(b"z".to_vec(), b"9".to_vec())]);
    assert_eq!(m2.after.rows, 1);
    // One abandoned before it finished is never published, and the next open drops its tree.
    let mut w3 = s.view_rewrite("abandoned").unwrap();
    for i in 0..300u32 {
        w3.put(format!("k{i:04}").as_bytes(), b"1").unwrap(); // the first 256 are written
    }
    drop(w3);
    assert_eq!(s.debug_views_len(), 3 + 3 + 2 + 256);
    assert!(s.view_meta("abandoned").unwrap().is_none());
    drop(s);
    let s = open(dir.path());
    assert!(s.view_meta("abandoned").unwrap().is_none());
    // The directory (C, two N) and the two generations (M + 2 rows, M + 1 row): no third tree.
    assert_eq!(s.debug_views_len(), 3 + 3 + 2);
}

#[test]
fn a_view_rewrite_cut_short_leaves_a_view_marked_for_rebuilding() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let rows: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..1_000u32)
        .map(|i| (format!("k{i:04}").into_bytes(), Some(b"old".to_vec())))
        .collect();
    s.view_commit("v", &rows, 10, 3).unwrap();
    // Unchanged rows only: nothing is written, the view keeps its version.
    let mut w = s.view_rewrite("v").unwrap();
    for (k, _) in rows.iter().take(10) {
        w.put(k, b"old").unwrap();
    }
    drop(w);
    assert_eq!(s.view_meta("v").unwrap().unwrap().version, 3);
    // Once a row changes in place, the view says it is being rewritten until `finish`.
    let mut w = s.view_rewrite("v").unwrap();
    for (k, _) in &rows {
        w.put(k, b"new").unwrap();
    }
    drop(w);
    let m = s.view_meta("v").unwrap().unwrap();
    assert_eq!(m.version, commitments_store::VERSION_REWRITING);
    assert_eq!(s.view_get("v", b"k0000").unwrap(), Some(b"new".to_vec()));
}

#[test]
fn a_view_rewrite_refuses_keys_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut w = s.view_rewrite("v").unwrap();
    w.put(b"b", b"1").unwrap();
    assert!(matches!(
        w.put(b"b", b"2"),
        Err(StoreError::RowOrder { .. })
    ));
    assert!(matches!(
        w.put(b"a", b"2"),
        Err(StoreError::RowOrder { .. })
    ));
}

/// Child mode for `second_process_gets_locked`: open the store and report.
#[test]
fn locked_child() {
    let Ok(path) = std::env::var("STORE_CHILD_LOCK_PATH") else {
        return;
    };
    match Store::open(std::path::Path::new(&path), OpenOptions::default()) {
        Err(StoreError::Locked { .. }) => println!("CHILD-RESULT locked"),
        Err(e) => println!("CHILD-RESULT error {e}"),
        Ok(_) => println!("CHILD-RESULT opened"),
    }
}

#[test]
fn second_process_gets_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _s = open(dir.path());
    let started = Instant::now();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "locked_child", "--nocapture", "--test-threads=1"])
        .env("STORE_CHILD_LOCK_PATH", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("CHILD-RESULT locked"),
        "child said: {stdout}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn many_small_appends_merge_index_runs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), small_opts()).unwrap();
        for i in 0..60u64 {
            let stream = format!("m{}", i % 4);
            s.append(
                &[ev(&stream, id(60, i), i)],
                &[("x".into(), ExpectedVersion::Any)],
            )
            .unwrap();
            if i == 30 {
                // A large batch in between (chunked path) followed by more singles.
                let big: Vec<_> = (0..100).map(|j| ev("m1", id(61, j), j)).collect();
                s.append(&big, &[]).unwrap();
            }
        }
        // Runs were merged: at most 12 remain (white-box: run headers under prefix R).
        let runs = s.debug_raw_tree().scan_prefix(b"R").count();
        assert!(runs <= 13, "{runs} run header parts");
        assert!(s.verify(&ok_decode, &no_progress).unwrap().is_ok());
    }
    let s = Store::open(dir.path(), small_opts()).unwrap();
    assert_eq!(s.stream_version("m1").unwrap(), 115);
    assert_eq!(s.read_stream("m1", 0).unwrap().len(), 115);
    assert_eq!(s.read_stream("m2", 10).unwrap().len(), 6);
    for i in 0..60u64 {
        assert!(s.get_by_id(id(60, i)).unwrap().is_some(), "{i}");
    }
    assert_eq!(
        s.streams_with_prefix("m").unwrap(),
        vec!["m0", "m1", "m2", "m3"]
    );
    assert_eq!(s.stats().unwrap().streams, 4);
    // Retrying everything is a no-op.
    let again: Vec<_> = (0..60u64)
        .map(|i| ev(&format!("m{}", i % 4), id(60, i), i))
        .collect();
    assert_eq!(s.append(&again, &[]).unwrap().duplicates, 60);
    assert!(s.verify(&ok_decode, &no_progress).unwrap().is_ok());
}

#[test]
fn nothing_is_written_as_an_unsynced_sled_blob() {
    // sled writes log items above segment_size/4 to blob files it never fsyncs.
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut e = ev("big", id(70, 1), 1);
    e.body = body(id(70, 1), 1, 700_000);
    s.append(&[e], &[]).unwrap();
    let batch: Vec<_> = (0..20_000)
        .map(|i| ev(&format!("b{}", i % 300), id(71, i), i))
        .collect();
    s.append(&batch, &[]).unwrap();
    s.flush_durable().unwrap();
    let blobs = dir.path().join("blobs");
    let n = std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(n, 0, "sled wrote {n} blob files");
}

#[test]
fn views_of_the_old_single_tree_layout_are_dropped_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        s.view_commit("v", &[(b"a".to_vec(), Some(b"x".to_vec()))], 1, 1)
            .unwrap();
        // What a format 1-2 store kept in the views tree: rows under `G ‖ gen`.
        let mut k = vec![b'G'];
        k.extend_from_slice(&7u64.to_be_bytes());
        k.extend_from_slice(b"Rkey");
        s.debug_views_tree().insert(k, &b"{}"[..]).unwrap();
    }
    let s = open(dir.path());
    // Derived data: dropped whole, the projections rebuild it.
    assert!(s.view_meta("v").unwrap().is_none());
    assert_eq!(s.debug_views_len(), 0);
    let m = s
        .view_commit("v", &[(b"a".to_vec(), Some(b"y".to_vec()))], 2, 1)
        .unwrap();
    assert_eq!((m.rows, m.checkpoint), (1, 2));
    assert_eq!(s.view_get("v", b"a").unwrap(), Some(b"y".to_vec()));
}

#[test]
fn a_pack_header_with_too_small_a_count_is_an_error_for_known_at() {
    let dir = tempfile::tempdir().unwrap();
    let s = two_packs(dir.path(), 50);
    let tree = s.debug_raw_tree();
    let (k, v) = tree.scan_prefix(b"P").next().unwrap().unwrap();
    let mut nv = v.to_vec();
    nv[1..5].copy_from_slice(&2u32.to_be_bytes()); // the first pack claims 2 events, not 30
    tree.insert(&k, nv).unwrap();
    let far = chrono::DateTime::<chrono::Utc>::from_timestamp(4_000_000_000, 0).unwrap();
    assert!(matches!(
        s.last_seq_known_at(far),
        Err(StoreError::Corrupt { .. })
    ));
}

/// sled's snapshot files in a store directory.
fn snapshots(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("snap."))
        .collect();
    v.sort();
    v
}

/// `close` after a session that wrote much has sled write its snapshot (which it otherwise
/// writes at the next open, after replaying the session); after a light session it does not
/// reopen the store. Either way the store reopens with everything in it.
#[test]
fn close_writes_sleds_snapshot_after_a_heavy_session_only() {
    let dir = tempfile::tempdir().unwrap();
    for k in 0..2 {
        let s = open(dir.path());
        s.append(&[ev("light", id(7, k), k)], &[]).unwrap();
        let during = snapshots(dir.path());
        s.close();
        assert_eq!(
            snapshots(dir.path()),
            during,
            "a light session reopened the store"
        );
    }
    let s = open(dir.path());
    let batch: Vec<commitments_store::NewEvent> = (0..25_000u64)
        .map(|k| ev(&format!("heavy{}", k % 50), id(8, k), k))
        .collect();
    s.append(&batch, &[]).unwrap();
    let during = snapshots(dir.path());
    s.close();
    let after_heavy = snapshots(dir.path());
    assert_ne!(after_heavy, during, "no new snapshot after 25,000 events");
    let s = open(dir.path());
    assert_eq!(s.head().unwrap().seq, 25_002);
    assert!(s.verify(&ok_decode, &no_progress).unwrap().is_ok());
    drop(s);
    // That open found nothing to replay, so it wrote no snapshot of its own.
    assert_eq!(snapshots(dir.path()), after_heavy);
}

/// After a heavy session, `close` has sled perform the node splits the bulk write deferred:
/// a first full read of the store then changes nothing in sled's file (before, it split
/// nodes and wrote them, at the peak of a rebuild's memory).
#[test]
fn a_first_full_read_after_a_heavy_session_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for chunk in 0..6u64 {
        let batch: Vec<commitments_store::NewEvent> = (0..5_000u64)
            .map(|k| {
                ev(
                    &format!("s{}", k % 500),
                    id(9, chunk * 5_000 + k),
                    chunk * 5_000 + k,
                )
            })
            .collect();
        s.append(&batch, &[]).unwrap();
    }
    s.close();
    let db = dir.path().join("db");
    let before = std::fs::read(&db).unwrap();
    let s = open(dir.path());
    assert_eq!(s.read_log(1, None).filter(|e| e.is_ok()).count(), 30_000);
    assert_eq!(s.read_stream("s7", 1).unwrap().len(), 60);
    drop(s);
    let after = std::fs::read(&db).unwrap();
    assert!(before == after, "the first full read changed sled's file");
}

/// A session that only reads closes without writing anything: the journal file is left as
/// the last writing session closed it (closing a session that wrote flushes and fsyncs sled,
/// then resets the journal).
#[test]
fn a_read_only_session_closes_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let mtime = || std::fs::metadata(&journal).unwrap().modified().unwrap();
    {
        let s = open(dir.path());
        s.append(&[ev("r", id(9, 0), 0)], &[]).unwrap();
    }
    let closed = mtime();
    std::thread::sleep(Duration::from_millis(20));
    {
        let s = open(dir.path());
        assert_eq!(s.head().unwrap().seq, 1);
        assert_eq!(all(&s).len(), 1);
        assert!(s.verify(&ok_decode, &no_progress).unwrap().is_ok());
    }
    assert_eq!(mtime(), closed, "a read-only session touched the journal");
    {
        let s = open(dir.path());
        s.append(&[ev("r", id(9, 1), 1)], &[]).unwrap();
    }
    assert_ne!(
        mtime(),
        closed,
        "a writing session left the journal as it was"
    );
    assert_eq!(open(dir.path()).head().unwrap().seq, 2);
}

/// How many view generation trees the store holds.
fn gen_trees(s: &Store) -> usize {
    s.debug_all_trees()
        .iter()
        .filter(|(name, _)| name.starts_with("view-gen-"))
        .count()
}

/// The first commit of a namespace writes its rows outside the view lock: two first commits
/// of one namespace racing each other both land, one on top of the other, with a row count
/// and digest that match the rows; and a first commit that names a row twice or deletes one
/// counts only what it leaves.
#[test]
fn racing_first_commits_of_a_namespace_both_land() {
    for round in 0..20u64 {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let rows = |side: u8| -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
            (0..300u32)
                .map(|i| {
                    let mut k = vec![side];
                    k.extend_from_slice(&i.to_be_bytes());
                    (
                        k,
                        Some(format!("row {side} {i} {round}").repeat(8).into_bytes()),
                    )
                })
                .collect()
        };
        let (a, b) = (rows(b'a'), rows(b'b'));
        std::thread::scope(|sc| {
            sc.spawn(|| s.view_commit("v", &a, 10, 1).unwrap());
            sc.spawn(|| s.view_commit("v", &b, 10, 1).unwrap());
        });
        let m = s.view_meta("v").unwrap().unwrap();
        assert_eq!(m.rows, 600, "round {round}");
        assert_eq!(s.view_digest_recompute("v").unwrap(), m.digest);
        assert_eq!(s.view_scan("v", b"").count(), 600);
        // Exactly one generation tree is left for the namespace (a loser's is dropped).
        assert_eq!(gen_trees(&s), 1, "round {round}");
    }

    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let m = s
        .view_commit(
            "w",
            &[
                (b"k1".to_vec(), Some(b"one".to_vec())),
                (b"k2".to_vec(), Some(b"two".to_vec())),
                (b"k1".to_vec(), Some(b"uno".to_vec())),
                (b"k2".to_vec(), None),
            ],
            3,
            1,
        )
        .unwrap();
    assert_eq!(m.rows, 1);
    assert_eq!(s.view_digest_recompute("w").unwrap(), m.digest);
    assert_eq!(s.view_get("w", b"k1").unwrap(), Some(b"uno".to_vec()));
    assert_eq!(s.view_get("w", b"k2").unwrap(), None);
}

/// A view reader reads what `view_get` reads, for the generation live when it was made.
#[test]
fn a_view_reader_reads_the_generation_it_was_made_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let before = s.view_reader("v").unwrap();
    let rows: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
        (b"a".to_vec(), Some(b"x".to_vec())),
        // Long and repetitive: stored compressed, read back decompressed.
        (b"b".to_vec(), Some(b"yz".repeat(200))),
    ];
    s.view_commit("v", &rows, 1, 1).unwrap();
    // Made before the namespace existed: it reads nothing.
    assert_eq!(before.get(b"a").unwrap(), None);
    let r = s.view_reader("v").unwrap();
    for key in [&b"a"[..], b"b", b"c"] {
        assert_eq!(r.get(key).unwrap(), s.view_get("v", key).unwrap());
    }
    assert_eq!(r.get(b"b").unwrap(), Some(b"yz".repeat(200)));
    // Later commits to the same generation are seen.
    s.view_commit("v", &[(b"c".to_vec(), Some(b"w".to_vec()))], 2, 1)
        .unwrap();
    assert_eq!(r.get(b"c").unwrap(), Some(b"w".to_vec()));
}

/// A namespace's first commit can be written ahead (staged) and published later: nothing is
/// visible before the publication, a discarded or abandoned stage leaves nothing behind, and
/// a stage whose namespace appeared meanwhile is refused at publication.
#[test]
fn a_staged_first_commit_is_invisible_until_published() {
    let rows: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..50u32)
        .map(|i| {
            (
                i.to_be_bytes().to_vec(),
                Some(format!("row {i}").repeat(20).into_bytes()),
            )
        })
        .collect();
    let enc = commitments_store::EncodedRows::of(&rows);
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let staged = s.view_stage("v", &rows, &enc, 3).unwrap().unwrap();
        assert!(s.view_meta("v").unwrap().is_none());
        assert_eq!(s.view_get("v", &rows[0].0).unwrap(), None);
        let m = s.view_publish(staged, 42).unwrap().unwrap();
        assert_eq!((m.rows, m.checkpoint, m.version), (50, 42, 3));
        assert_eq!(s.view_meta("v").unwrap().unwrap().checkpoint, 42);
        assert_eq!(s.view_digest_recompute("v").unwrap(), m.digest);
        assert_eq!(s.view_get("v", &rows[7].0).unwrap(), rows[7].1);
        // The namespace exists now: nothing to stage.
        assert!(s.view_stage("v", &rows, &enc, 3).unwrap().is_none());

        // Discarded: gone at once.
        let before = gen_trees(&s);
        let w = s.view_stage("w", &rows, &enc, 1).unwrap().unwrap();
        assert_eq!(gen_trees(&s), before + 1);
        s.view_discard(w).unwrap();
        assert_eq!(gen_trees(&s), before);
        assert!(s.view_meta("w").unwrap().is_none());

        // Created meanwhile by a commit: the stage is refused and dropped.
        let x = s.view_stage("x", &rows, &enc, 1).unwrap().unwrap();
        s.view_commit("x", &rows[..2], 5, 1).unwrap();
        assert!(s.view_publish(x, 9).unwrap().is_none());
        assert_eq!(s.view_meta("x").unwrap().unwrap().rows, 2);
        assert_eq!(gen_trees(&s), before + 1);

        // Published out of the order they were staged in: the generation counter keeps the
        // highest.
        let p = s.view_stage("p", &rows, &enc, 1).unwrap().unwrap();
        let q = s.view_stage("q", &rows, &enc, 1).unwrap().unwrap();
        s.view_publish(q, 1).unwrap().unwrap();
        s.view_publish(p, 1).unwrap().unwrap();
        let dir_tree = s.debug_views_tree();
        let gen_at = |k: &[u8]| {
            u64::from_be_bytes(
                dir_tree
                    .get(k)
                    .unwrap()
                    .unwrap()
                    .as_ref()
                    .try_into()
                    .unwrap(),
            )
        };
        assert!(gen_at(b"Nq") > gen_at(b"Np"));
        assert_eq!(gen_at(b"C"), gen_at(b"Nq"));

        // Abandoned (neither published nor discarded): the next open drops it.
        let _abandoned = s.view_stage("y", &rows, &enc, 1).unwrap().unwrap();
        assert_eq!(gen_trees(&s), before + 4);
    }
    let s = open(dir.path());
    assert!(s.view_meta("y").unwrap().is_none());
    assert_eq!(gen_trees(&s), 4, "v, x, p and q");
    assert_eq!(s.view_get("v", &rows[7].0).unwrap(), rows[7].1);
}

/// A format 5 store's view rows (`0x00 ‖ len ‖ zstd frame`, no dictionary) read the same after
/// the store opens as format 6, next to rows written since with the row dictionary.
#[test]
fn format_5_rows_read_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let long = |tag: &str| format!("{{\"id\":\"{tag}\",\"text\":\"{}\"}}", "abc ".repeat(60));
    {
        let s = open(dir.path());
        s.view_commit("v", &[(b"a".to_vec(), Some(long("a").into_bytes()))], 1, 1)
            .unwrap();
        // Rewrite the row as format 5 stored it, and the store's format as 5.
        let (_, gen) = s
            .debug_all_trees()
            .into_iter()
            .find(|(n, _)| n.starts_with("view-gen-"))
            .unwrap();
        let key = gen
            .iter()
            .keys()
            .map(|k| k.unwrap())
            .find(|k| k.ends_with(b"a"))
            .unwrap();
        assert_eq!(
            &gen.get(&key).unwrap().unwrap()[..2],
            &[1, 2],
            "a dictionary row"
        );
        let raw = long("a").into_bytes();
        let z = zstd::bulk::compress(&raw, 1).unwrap();
        let old = [&[0u8][..], &(raw.len() as u32).to_be_bytes(), &z].concat();
        gen.insert(&key, old).unwrap();
        s.debug_raw_tree()
            .insert(b"Mformat", &5u32.to_be_bytes())
            .unwrap();
    }
    let s = open(dir.path());
    assert_eq!(
        s.debug_raw_tree()
            .get(b"Mformat")
            .unwrap()
            .unwrap()
            .as_ref(),
        FORMAT_VERSION.to_be_bytes()
    );
    let meta = s
        .view_commit("v", &[(b"b".to_vec(), Some(long("b").into_bytes()))], 2, 1)
        .unwrap();
    assert_eq!(s.view_get("v", b"a").unwrap(), Some(long("a").into_bytes()));
    assert_eq!(s.view_get("v", b"b").unwrap(), Some(long("b").into_bytes()));
    assert_eq!(s.view_digest_recompute("v").unwrap(), meta.digest);
}
