//! Append throughput: the store (batched and durable single) against raw sled, one key per
//! event, in the same process. `cargo bench -p commitments-store --bench append`
#![allow(clippy::unwrap_used, missing_docs)]

use std::fs::File;
use std::time::{Duration, Instant};

use commitments_store::{synthetic_event, NewEvent, OpenOptions, Store};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn events(offset: u64, n: u64) -> Vec<NewEvent> {
    (offset..offset + n).map(synthetic_event).collect()
}

fn store_batched(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_batched_1000");
    g.throughput(Throughput::Elements(1000));
    g.sample_size(20);
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), OpenOptions::default()).unwrap();
    let mut next = 0u64;
    g.bench_function("store", |b| {
        b.iter_batched(
            || {
                next += 1000;
                events(next, 1000)
            },
            |batch| s.append(&batch, &[]).unwrap(),
            BatchSize::LargeInput,
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let f = File::open(dir.path().join("db")).unwrap();
    let mut seq = 0u64;
    g.bench_function("sled_one_key_per_event", |b| {
        b.iter_batched(
            || {
                next += 1000;
                events(next, 1000)
            },
            |batch| {
                let mut bt = sled::Batch::default();
                for e in &batch {
                    seq += 1;
                    bt.insert(&seq.to_be_bytes()[..], e.body.as_slice());
                }
                db.apply_batch(bt).unwrap();
                db.flush().unwrap();
                f.sync_all().unwrap();
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn store_single(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_single_durable");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), OpenOptions::default()).unwrap();
    let mut next = 50_000_000u64;
    g.bench_function("store", |b| {
        b.iter_custom(|iters| {
            let evs = events(next, iters);
            next += iters;
            let t = Instant::now();
            for e in &evs {
                s.append(std::slice::from_ref(e), &[]).unwrap();
            }
            t.elapsed()
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let f = File::open(dir.path().join("db")).unwrap();
    let mut seq = 0u64;
    g.bench_function("sled_one_key_per_event", |b| {
        b.iter_custom(|iters| {
            let evs = events(next, iters);
            next += iters;
            let t = Instant::now();
            for e in &evs {
                seq += 1;
                db.insert(seq.to_be_bytes(), e.body.as_slice()).unwrap();
                db.flush().unwrap();
                f.sync_all().unwrap();
            }
            t.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, store_batched, store_single);
criterion_main!(benches);
