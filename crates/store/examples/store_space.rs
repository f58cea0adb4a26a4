//! Live bytes per kind of key, against the size of the sled file: where a store's space goes.
//!
//! `cargo run --release -p commitments-store --example store_space -- STORE_DIR`
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: store_space STORE_DIR");
    let s = common::open_existing(&dir);
    let mut by: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
    for (name, tree) in s.debug_all_trees() {
        let name = if name.starts_with("view-gen-") {
            "view generations".to_string()
        } else {
            name
        };
        for kv in tree.iter() {
            let (k, v) = kv.unwrap();
            let kind = format!("{name} {}", k.first().map_or('-', |&c| c as char));
            let e = by.entry(kind).or_default();
            e.0 += 1;
            e.1 += k.len() as u64;
            e.2 += v.len() as u64;
            // What each value would take compressed on its own (zstd level 1).
            e.3 += zstd::bulk::compress(&v, 1).map_or(v.len(), |c| c.len().min(v.len())) as u64;
        }
    }
    let file = std::fs::metadata(Path::new(&dir).join("db")).unwrap().len();
    let mut live = 0;
    println!("| keys of kind | count | key bytes | value bytes | values zstd-1 one by one |");
    println!("|---|---|---|---|---|");
    for (kind, (n, kb, vb, zb)) in &by {
        live += kb + vb;
        println!("| {kind} | {n} | {kb} | {vb} | {zb} |");
    }
    println!(
        "\nlive in sled {live} B; sled file {file} B ({:.2}× live)",
        file as f64 / live as f64
    );
    // Large appends keep their packs' payloads in the pack file (format 5), written once.
    let packs = std::fs::metadata(Path::new(&dir).join("packs")).map_or(0, |m| m.len());
    println!("pack file {packs} B");
}
