//! Measures how a store's view rows compress, one zstd frame per row as the store writes
//! them: at level 1 without a dictionary (format 5), at level -1 against the row dictionary
//! `crates/store/src/row_dict.bin` (format 6, `ROW_LEVEL` in `codec.rs`), and at level 1
//! against it. Prints the rows, their raw and compressed bytes, and the best of 5 timings of
//! each.
//!
//! ```text
//! cargo run --release -- --store /tmp/s100k -q import target/bench-work/events-100000.jsonl
//! cargo run --release -p commitments-store --example row_compression -- /tmp/s100k
//! ```
//!
//! Only rows of 64 bytes or more are counted (`ROW_COMPRESS_MIN`: shorter ones are stored as
//! they are).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::time::Instant;

const DICT: &[u8] = include_bytes!("../src/row_dict.bin");

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, namespaces @ ..] = args.as_slice() else {
        panic!("usage: row_compression STORE_DIR [NAMESPACE...]");
    };
    let default = ["commitments", "calls", "documents", "sources"].map(String::from);
    let namespaces = if namespaces.is_empty() {
        &default[..]
    } else {
        namespaces
    };
    let s = common::open_existing(dir);
    let mut rows: Vec<Vec<u8>> = Vec::new();
    for ns in namespaces {
        for kv in s.view_scan(ns, b"") {
            let (_, v) = kv.unwrap();
            if v.len() >= 64 {
                rows.push(v);
            }
        }
    }
    let raw: usize = rows.iter().map(Vec::len).sum();
    println!("{} rows, {raw} bytes raw", rows.len());
    let mut plain = zstd::bulk::Compressor::new(1).unwrap();
    let mut dict = zstd::bulk::Compressor::with_dictionary(-1, DICT).unwrap();
    let mut dict1 = zstd::bulk::Compressor::with_dictionary(1, DICT).unwrap();
    for (name, c) in [
        ("level 1, no dictionary", &mut plain),
        ("level -1, row dictionary", &mut dict),
        ("level 1, row dictionary", &mut dict1),
    ] {
        let mut best = f64::MAX;
        let mut out = 0;
        for _ in 0..5 {
            let t = Instant::now();
            out = rows.iter().map(|r| c.compress(r).unwrap().len()).sum();
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{name}: {out} bytes ({:.2}x smaller), {:.1} ms",
            raw as f64 / out as f64,
            best * 1e3
        );
    }
}
