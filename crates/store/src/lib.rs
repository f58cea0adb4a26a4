//! `commitments-store`: an append-only, hash-chained event log on sled 0.34, plus key/value
//! storage for projections ("views"). Only this crate knows sled; it deals in bytes: the domain
//! serialises each event to a compact JSON object and the store wraps it in its envelope.
//!
//! # The event bytes and the hash chain
//!
//! For each event the store builds, once, the bytes `B`:
//! `{"seq":N,"stream":"S","stream_version":V,"recorded_at":"YYYY-MM-DDTHH:MM:SS.ffffffZ",
//! "schema_version":X,"prev_hash":"<64 hex>",` followed by the caller's body without its `{`.
//! `hash` = hex SHA-256 of `B`; `prev_hash` of seq 1 is 64 zeros. Exactly `B` is stored; hashes
//! are not stored per event but recomputed when read (the next event's `prev_hash` and the head
//! hash in the metadata make the chain tamper-evident). An export line is `B` with
//! `,"hash":"<hex>"` before its final `}`. The body must carry `"event_id":"<its id>"` (it is
//! what `restore` and `verify` index by).
//!
//! # On-disk layout
//!
//! One sled database (8 MiB segments, see below) with two trees, the append journal
//! `<dir>/journal` (format in `journal.rs`) and the pack file `<dir>/packs` (since format 5).
//!
//! Tree `log` (key prefixes; everything an append must change is in this one tree so that one
//! `Tree::apply_batch` is one atomic step):
//! - `Mformat` → store format version (u32 BE, currently [`FORMAT_VERSION`]);
//! - `Mhead` → `seq u64 ‖ hash [32] ‖ recorded_at µs i64` (BE) of the published head;
//! - `Mcounts` → `events u64 ‖ streams u64`;
//! - `Mruns` → `next_run_id u64 ‖ live index run ids u64…` (oldest first);
//! - `Mpending` → present while a large append, restore or index merge is writing past the
//!   published state;
//! - `Mpackfile` → the pack file's published length (u64 BE; absent = 0);
//! - `P ‖ first_seq u64 BE` → a **pack**: many consecutive events. Header (27 bytes):
//!   `codec u8 (0 none, 1 lz4 (read only), 2 zstd) ‖ count u32 ‖ raw_len u32 ‖ first_recorded_at i64 µs ‖
//!   last_recorded_at i64 µs ‖ extra_parts u16`, then the payload; raw payload = per event
//!   `len u32 BE ‖ B`. A pack closes at 64 KiB raw; a sled value never exceeds 60 KiB, the
//!   remainder of a bigger compressed payload (a single huge event) goes to
//!   `X ‖ first_seq ‖ part u16`. Packs written by a **large** append (import, restore) keep
//!   their payload in the pack file instead: the codec byte carries the flag `0x80`, and the
//!   value is the header followed by `offset u64 ‖ len u64` into `<dir>/packs`. sled rewrites
//!   a leaf whenever it consolidates or splits it, so a 13 MB log of 64 KiB packs in sled cost
//!   ~45 MB of its file at 100k events; in the pack file each payload is written once. The
//!   file only grows: a small append that extends an external tail pack rewrites it inline
//!   (below 8 KiB raw), leaving those payload bytes unreferenced;
//! - `R ‖ run_id ‖ part u16` / `Q ‖ run_id ‖ block u32` → an **index run** (see `index.rs`):
//!   an immutable sorted list of index entries `i ‖ uuid → seq` (event ids) and
//!   `s ‖ stream ‖ 0x00 ‖ version BE → seq` (stream index; the 0x00 terminator keeps `call-1`
//!   from seeing `call-10`; a stream's version is its greatest entry), in lz4 blocks of 4 KiB raw
//!   with a fence header. Every append writes one run; runs are merged when there are more than
//!   12 (leveled, ratio 4), so lookups touch at most ~12 runs.
//!
//! Tree `views` (the directory): `N ‖ ns` → generation; `C` → last generation; `D ‖ gen` →
//! generation awaiting deletion. One tree per generation, `view-gen-<gen>`: `M` → view
//! metadata; `R ‖ key` → row (stored zstd-compressed with the row dictionary when that is
//! smaller). A commit writes rows, checkpoint, version and the order-independent digest in one
//! batch of the generation's tree; a swap is one pointer write; a replaced generation goes
//! with one `drop_tree`.
//!
//! # Atomicity and durability rules
//!
//! - A large append writes packs and its run in chunks *past* the published state (under
//!   `Mpending`; payloads past the pack file's published length), `fdatasync`s the pack file,
//!   flushes and fsyncs sled once, then publishes run list + head + counts + pack file length
//!   in one small batch.
//!   Readers never see unpublished data (they bound reads by the head; runs are visible only
//!   through `Mruns`). Open removes packs past the head, cuts the pack file to its published
//!   length and, when `Mpending` is present, removes runs not in the list. A failed large
//!   append cleans up in-process, or poisons the writer.
//! - A small append (≤ 4096 new events) is written as one record to the append journal
//!   `<dir>/journal` (see `journal.rs`) and joins an in-memory pending tail; `append` returns
//!   after an `fdatasync` of the journal, shared by concurrent appenders (group commit). The
//!   tail is applied to sled in one `apply_batch` (packs, the tail pack rewritten in place while
//!   below 8 KiB raw, its index run, the run list, head and counts) when a public read needs it,
//!   at the next append once it holds 4096 events or 4 MiB, at a checkpoint, before a large
//!   append and on close. sled is flushed (its `flush()`, on Linux only `sync_file_range`,
//!   **and** an fsync of `<dir>/db`) when the journal passes 8 MiB (a checkpoint, after which
//!   the journal restarts at offset 0), by every large append, by view swaps, when the store
//!   closes, and on open after an unclean close. Open re-applies the journal's records past the
//!   head sled recovered. A failed journal write or `fdatasync` poisons the writer.
//! - A large append returns after sled is flushed and fsynced twice (chunks, then the
//!   publishing step).
//! - sled writes any log item larger than `segment_size / 4` to a blob file it never fsyncs, and
//!   consolidated leaf nodes can hold ~17 values of up to 60 KiB, so stores are created with
//!   8 MiB segments (2 MiB threshold); a test asserts no blob file appears.
//! - Expected-version checks, duplicate detection by event id (same body ⇒ the original
//!   position, flagged duplicate; different body ⇒ [`StoreError::DuplicateEventId`]) and seq
//!   assignment happen under one writer mutex; seqs are gap-free from 1.
//! - Dropping the store applies the pending tail, flushes and fsyncs sled, then empties the
//!   journal. Never `process::exit` with a store open.

mod codec;
mod error;
mod index;
mod journal;
mod ops;
mod store;
mod synth;
mod types;
mod views;

pub use codec::{is_valid_stream, to_hex};
pub use error::{Result, StoreError};
pub use store::{LogIter, Store, FORMAT_VERSION};
#[doc(hidden)]
pub use synth::synthetic_event;
pub use types::*;
pub use views::{
    EncodedRows, Rewritten, RowDigest, StagedView, ViewReader, ViewRewrite, ViewScan,
    VERSION_REWRITING,
};
