//! Writes the rows of a store's views, concatenated, as a zstd raw-content dictionary: how
//! `crates/store/src/row_dict.bin` was made (from the bundled example, not the benchmark's
//! workload). That file must never change: stored rows name it only by their tag, and a test
//! pins its SHA-256. A different dictionary would need a new tag and a new format version.
//!
//! ```text
//! cargo run --release -- --store /tmp/example -q import docs/examples/aleinik-2024-01-20.jsonl
//! cargo run --release -p commitments-store --example row_dictionary -- /tmp/example OUT \
//!     sources documents calls commitments
//! ```
//!
//! Namespaces are written in the order given: zstd reaches the end of a raw dictionary with the
//! shortest offsets, so the most common kind of row (commitments) goes last.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, out, namespaces @ ..] = args.as_slice() else {
        panic!("usage: row_dictionary STORE_DIR OUT NAMESPACE...");
    };
    let s = common::open_existing(dir);
    let mut dict = Vec::new();
    for ns in namespaces {
        for kv in s.view_scan(ns, b"") {
            let (_, v) = kv.unwrap();
            dict.extend_from_slice(&v);
        }
    }
    std::fs::write(out, &dict).unwrap();
    println!("{} bytes", dict.len());
}
