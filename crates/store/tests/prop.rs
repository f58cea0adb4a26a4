//! Random batches (small and past the chunk threshold) with reopens in between read back equal
//! to an in-memory model.
#![allow(clippy::unwrap_used)]

mod common;

use commitments_store::{NewEvent, Store};
use common::*;
use proptest::prelude::*;

const STREAMS: &[&str] = &["call-1", "call-10", "src-a", "doc.x", "c_1"];

#[derive(Debug, Clone)]
enum Op {
    /// Append a batch: (stream index, body padding) per event.
    Batch(Vec<(usize, usize)>),
    /// Re-append an earlier event (by index into the model, modulo its length).
    Retry(usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let ev = (0..STREAMS.len(), 0usize..300);
    prop_oneof![
        6 => proptest::collection::vec(ev.clone(), 1..8).prop_map(Op::Batch),
        2 => proptest::collection::vec(ev, 41..130).prop_map(Op::Batch),
        1 => any::<usize>().prop_map(Op::Retry),
        2 => Just(Op::Reopen),
    ]
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_batches_match_model(ops in proptest::collection::vec(op(), 1..10)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Some(Store::open(dir.path(), small_opts()).unwrap());
        let mut model: Vec<NewEvent> = Vec::new();
        let mut counter = 0u64;
        for op in ops {
            let s = store.as_ref().unwrap();
            match op {
                Op::Batch(evs) => {
                    let batch: Vec<NewEvent> = evs
                        .iter()
                        .map(|&(si, pad)| {
                            counter += 1;
                            let id = id(777, counter);
                            NewEvent { event_id: id, stream: STREAMS[si].to_string(), event_type: "CallHeld".into(), schema_version: 1, body: body(id, counter, pad) }
                        })
                        .collect();
                    let out = s.append(&batch, &[]).unwrap();
                    prop_assert_eq!(out.appended, batch.len() as u64);
                    prop_assert_eq!(out.first_seq, Some(model.len() as u64 + 1));
                    model.extend(batch);
                }
                Op::Retry(i) => {
                    if !model.is_empty() {
                        let e = model[i % model.len()].clone();
                        let out = s.append(std::slice::from_ref(&e), &[]).unwrap();
                        prop_assert_eq!(out.duplicates, 1);
                        prop_assert_eq!(out.positions[0].seq, (i % model.len()) as u64 + 1);
                    }
                }
                Op::Reopen => {
                    drop(store.take());
                    store = Some(Store::open(dir.path(), small_opts()).unwrap());
                }
            }
        }
        let s = store.as_ref().unwrap();
        let log = all(s);
        prop_assert_eq!(log.len(), model.len());
        for (i, (got, want)) in log.iter().zip(&model).enumerate() {
            prop_assert_eq!(got.seq, i as u64 + 1);
            prop_assert_eq!(&got.stream, &want.stream);
            prop_assert_eq!(got.body_json(), want.body.clone());
        }
        for st in STREAMS {
            let got: Vec<Vec<u8>> = s.read_stream(st, 0).unwrap().iter().map(|e| e.body_json()).collect();
            let want: Vec<Vec<u8>> = model.iter().filter(|e| e.stream == *st).map(|e| e.body.clone()).collect();
            prop_assert_eq!(s.stream_version(st).unwrap(), want.len() as u64);
            prop_assert_eq!(got, want);
        }
        for (i, e) in model.iter().enumerate() {
            let got = s.get_by_id(e.event_id).unwrap().unwrap();
            prop_assert_eq!(got.seq, i as u64 + 1);
        }
        let stats = s.stats().unwrap();
        prop_assert_eq!(stats.events, model.len() as u64);
        let streams = STREAMS.iter().filter(|st| model.iter().any(|e| e.stream == **st)).count();
        prop_assert_eq!(stats.streams, streams as u64);
        let r = s.verify(&ok_decode, &no_progress).unwrap();
        prop_assert!(r.is_ok(), "{:?}", r.first_problem);
    }
}
