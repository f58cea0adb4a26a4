//! Quick throughput/size figures for the store.
//!
//! `cargo run --release -p commitments-store --example store_perf -- [events] [singles]`
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::Write;
use std::time::Instant;

use commitments_store::{synthetic_event, NewEvent, OpenOptions, Store};

fn du(path: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(path).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() { du(&e.path()) } else { m.len() };
    }
    total
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(100_000);
    let singles = args.get(1).copied().unwrap_or(2_000);
    let events: Vec<NewEvent> = (0..n).map(synthetic_event).collect();
    let jsonl: u64 = events.iter().map(|e| e.body.len() as u64 + 1).sum();
    println!(
        "{n} synthetic events, mean body {} bytes",
        jsonl / n.max(1) - 1
    );

    let only_big = std::env::var("STORE_PERF_ONLY_BIG").is_ok();
    let only_single = std::env::var("STORE_PERF_ONLY_SINGLE").is_ok();
    // Batched appends, 1000 per durable commit.
    let dir = tempfile::tempdir().unwrap();
    if !only_big && !only_single {
        let s = Store::open(dir.path(), OpenOptions::default()).unwrap();
        let t = Instant::now();
        for c in events.chunks(1000) {
            s.append(c, &[]).unwrap();
        }
        let el = t.elapsed();
        println!(
            "append 1000/commit: {:.0} ev/s ({el:.2?})",
            n as f64 / el.as_secs_f64()
        );
    }
    // One big batch (import path: chunked past the head, two fsyncs).
    let dir2 = tempfile::tempdir().unwrap();
    if !only_single {
        let s = Store::open(dir2.path(), OpenOptions::default()).unwrap();
        let t = Instant::now();
        s.append(&events, &[]).unwrap();
        let el = t.elapsed();
        println!(
            "append one batch of {n}: {:.0} ev/s ({el:.2?})",
            n as f64 / el.as_secs_f64()
        );
        let export_len: u64 = s
            .read_log(1, None)
            .map(|e| e.unwrap().export_line().len() as u64 + 1)
            .sum();
        let t = Instant::now();
        let cnt = s.read_log(1, None).count();
        println!(
            "read_log: {:.0} ev/s",
            cnt as f64 / t.elapsed().as_secs_f64()
        );
        let stats = s.stats().unwrap();
        let mut pack_bytes = 0u64;
        let mut idx_entries = 0u64;
        for kv in s.debug_raw_tree().iter() {
            let (k, v) = kv.unwrap();
            if k[0] == b'P' || k[0] == b'X' {
                pack_bytes += v.len() as u64;
            } else {
                idx_entries += 1;
            }
        }
        println!(
            "packs {pack_bytes} B ({:.2} of input), {idx_entries} other entries",
            pack_bytes as f64 / jsonl as f64
        );
        drop(s);
        let blobs = dir2.path().join("blobs");
        if blobs.exists() {
            println!(
                "blobs dir: {} B in {} files",
                du(&blobs),
                std::fs::read_dir(&blobs).unwrap().count()
            );
        }
        let disk = du(dir2.path());
        println!(
            "disk: sled size_on_disk {} B, du {} B; input JSONL {} B (ratio {:.2}); export JSONL {} B (ratio {:.2})",
            stats.bytes_on_disk,
            disk,
            jsonl,
            disk as f64 / jsonl as f64,
            export_len,
            disk as f64 / export_len as f64
        );
        let t = Instant::now();
        let s = Store::open(dir2.path(), OpenOptions::default()).unwrap();
        println!("reopen {n}-event store: {:.1?}", t.elapsed());
        let st = &events[n as usize / 2].stream;
        let t = Instant::now();
        let k = s.read_stream(st, 0).unwrap().len();
        println!("read_stream({st}) {k} events: {:.1?}", t.elapsed());
    }

    if only_big {
        return;
    }
    // Durable single appends vs plain file append + fdatasync, after the earlier phases'
    // dirty pages are written back (their writeback would queue in front of every fsync).
    let _ = std::process::Command::new("sync").status();
    let dir3 = tempfile::tempdir().unwrap();
    {
        let mut o = OpenOptions::default();
        if let Some(v) = std::env::var("STORE_PERF_TAIL")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            o.tail_rewrite_limit = v;
        }
        let s = Store::open(dir3.path(), o).unwrap();
        let t = Instant::now();
        let mut lat = Vec::with_capacity(singles as usize);
        for e in events.iter().take(singles as usize) {
            let t1 = Instant::now();
            s.append(std::slice::from_ref(e), &[]).unwrap();
            lat.push(t1.elapsed().as_micros() as u64);
        }
        let el = t.elapsed();
        lat.sort_unstable();
        let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
        println!(
            "durable single append: {:.0} ev/s (p50 {} µs, p90 {} µs, p99 {} µs, max {} µs)",
            singles as f64 / el.as_secs_f64(),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            pct(1.0)
        );
    }
    {
        let p = dir3.path().join("plain.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap();
        let t = Instant::now();
        for e in events.iter().take(singles as usize) {
            f.write_all(&e.body).unwrap();
            f.write_all(b"\n").unwrap();
            f.sync_data().unwrap();
        }
        let el = t.elapsed();
        println!(
            "plain file append+fdatasync: {:.0} ev/s",
            singles as f64 / el.as_secs_f64()
        );
    }
    // 8 concurrent single-event writers.
    let dir4 = tempfile::tempdir().unwrap();
    {
        let s = std::sync::Arc::new(Store::open(dir4.path(), OpenOptions::default()).unwrap());
        let per = singles / 8;
        let t = Instant::now();
        let hs: Vec<_> = (0..8u64)
            .map(|w| {
                let s = std::sync::Arc::clone(&s);
                std::thread::spawn(move || {
                    for i in 0..per {
                        let e = synthetic_event(10_000_000 + w * per + i);
                        s.append(&[e], &[]).unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let el = t.elapsed();
        println!(
            "8 writers, single appends: {:.0} ev/s",
            (per * 8) as f64 / el.as_secs_f64()
        );
    }
}
