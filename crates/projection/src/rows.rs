//! The rows each view stores, and the typed, cached access to a view namespace that
//! projections write through.

use std::collections::{BTreeMap, BTreeSet};

use compact_str::CompactString;
use foldhash::HashMap;

use commitments_domain::event::Event;
use commitments_domain::values::{CallMode, Country, DocType, Evidence, Participant, Place};
use commitments_domain::{CommitmentState, Edtf};
use commitments_store::Store;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ProjectionError, Result};

/// One event as read back from the log and decoded.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Global position.
    pub seq: u64,
    /// Stream (subject id).
    pub stream: String,
    /// Position in the stream, from 1.
    pub stream_version: u64,
    /// When the store appended it.
    pub recorded_at: String,
    /// The event (boxed: it is ~560 bytes, and folds move records around).
    pub event: Box<Event>,
    /// Its hash (hex); empty when decoded for the views, which do not use it.
    pub hash: String,
}

/// A commitment as the `commitments` view keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitmentRow {
    /// The folded state (None only transiently).
    pub state: CommitmentState,
    /// Seq of the opener.
    pub opened_seq: u64,
    /// Seq of the last event of the stream.
    pub last_seq: u64,
    /// Events in the stream, corrections, retractions and invalidated ones included.
    pub event_count: u64,
    /// Sources cited by the events that count, sorted. (Their evidence entries are read from
    /// the stream by `show`, which reads the stream for the history anyway: rows stay small.)
    pub sources: Vec<String>,
    /// True once the stream holds a correction or retraction (later events refold it).
    pub refolded: bool,
}

/// A contact in the `calls` view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRow {
    /// Call id.
    pub call_id: String,
    /// When (EDTF).
    pub occurred: Option<Edtf>,
    /// How.
    pub mode: CallMode,
    /// Who.
    pub participants: Vec<Participant>,
    /// Topics.
    pub topics: Vec<String>,
    /// Where.
    pub location: Option<Place>,
    /// Commitments whose `origin` is this call.
    pub commitments: Vec<String>,
    /// Seq of the `CallHeld`.
    pub seq: u64,
    /// Seq of the stream's last event.
    pub last_seq: u64,
    /// Events in the stream.
    pub event_count: u64,
    /// True when its `CallHeld` was retracted.
    pub retracted: bool,
}

/// A review of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewRow {
    /// Seq of the `RoadmapReviewed`.
    pub seq: u64,
    /// When.
    pub occurred: Option<Edtf>,
    /// Who.
    pub parties: Vec<Country>,
    /// What was said.
    pub summary: String,
    /// In which call.
    pub reviewed_in: Option<String>,
    /// Progress reported.
    pub progress: Option<String>,
}

/// A signed document in the `documents` view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRow {
    /// Document id.
    pub document_id: String,
    /// Title.
    pub title: String,
    /// Kind.
    pub doc_type: DocType,
    /// Parties.
    pub parties: Vec<Country>,
    /// When it was signed (EDTF).
    pub signed: Option<Edtf>,
    /// Its reviews, in order.
    pub reviews: Vec<ReviewRow>,
    /// Seq of the `AgreementSigned`.
    pub seq: u64,
    /// Seq of the stream's last event.
    pub last_seq: u64,
    /// Events in the stream.
    pub event_count: u64,
    /// True when its `AgreementSigned` was retracted.
    pub retracted: bool,
}

/// A source in the `sources` view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRow {
    /// Source id.
    pub source_id: String,
    /// URL.
    pub url: String,
    /// Title.
    pub title: String,
    /// Language.
    pub language: String,
    /// Publisher.
    pub publisher: Option<String>,
    /// Publication date (EDTF).
    pub published: Option<Edtf>,
    /// Retrieval time.
    pub retrieved_at: Option<String>,
    /// Seq of the `SourceRegistered`.
    pub seq: u64,
    /// Seq of the stream's last event.
    pub last_seq: u64,
    /// Events in the stream.
    pub event_count: u64,
    /// True when its registration was retracted.
    pub retracted: bool,
}

/// Adds the sources of evidence entries not already listed.
pub fn merge_sources(sources: &mut Vec<String>, add: &[Evidence]) {
    for e in add {
        let s = e.source_id.as_str();
        // Most evidence cites a source already listed: copy the id only to insert it.
        if let Err(i) = sources.binary_search_by(|x| x.as_str().cmp(s)) {
            sources.insert(i, s.to_owned());
        }
    }
}

/// Typed, cached rows of one namespace: reads fall through to the store (when there is one),
/// writes stay in memory until [`Rows::take_changes`]. Primary rows are keyed `r` + id;
/// secondary index entries `i` + key, derived from each row by `index` and kept in step.
#[derive(Debug)]
pub struct Rows<T> {
    ns: String,
    /// Rows by id (boxed: the map's spare capacity then costs a pointer per slot, not a row).
    cache: HashMap<CompactString, Option<Box<T>>>,
    /// The committed value of each row changed since the last commit (boxed: most rows of a
    /// rebuild are new, and `None` then costs a pointer, not a whole row).
    original: HashMap<CompactString, Option<Box<T>>>,
    index: fn(&str, &T) -> Vec<Vec<u8>>,
    /// Keep every row cached across commits (no [`ROW_CACHE_LIMIT`]): the caller bounds
    /// memory itself, with [`Rows::approx_bytes`] and [`Rows::evict`].
    keep_all: bool,
    /// The namespace holds no row yet (a full build into a dropped namespace, before its first
    /// write): reads need not ask the store.
    store_empty: bool,
    /// Encoded length of sampled rows: (rows, bytes).
    sampled: (u64, u64),
    /// Rows put so far (every [`SAMPLE_EVERY`]th is sampled).
    puts: u64,
}

/// Row changes for the store: `(key, Some(value))` to write, `(key, None)` to delete.
pub type Changes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Receives stored rows `(key, value)` in key order (see [`Rows::drain_sorted`]).
pub type RowSink<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

/// Row key of a primary row.
pub fn row_key(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 1);
    k.push(b'r');
    k.extend_from_slice(id.as_bytes());
    k
}

impl<T: Serialize + DeserializeOwned + Clone + PartialEq> Rows<T> {
    /// Rows of namespace `ns`, with secondary keys from `index`.
    pub fn new(ns: &str, index: fn(&str, &T) -> Vec<Vec<u8>>) -> Self {
        Rows {
            ns: ns.to_owned(),
            cache: HashMap::default(),
            original: HashMap::default(),
            index,
            keep_all: false,
            store_empty: false,
            sampled: (0, 0),
            puts: 0,
        }
    }

    /// Keeps every row cached across commits, for a full build into an empty (just dropped)
    /// namespace that bounds memory itself.
    pub fn keep_all(mut self) -> Self {
        self.keep_all = true;
        self.store_empty = true;
        self
    }

    /// An estimate of the memory the cached rows take, in bytes: the rows times the average
    /// encoded length of sampled rows plus the per-entry overhead of the typed row and maps.
    pub fn approx_bytes(&self) -> u64 {
        let (n, bytes) = self.sampled;
        let avg = bytes.checked_div(n).unwrap_or(0);
        let entry = (std::mem::size_of::<T>() + ROW_ENTRY_OVERHEAD) as u64;
        self.cache.len() as u64 * (avg + entry)
    }

    /// Rows changed since the last commit.
    pub fn pending_changes(&self) -> usize {
        if self.all_new() {
            return self.cache.len();
        }
        self.original.len()
    }

    /// Drops every cached row (call only with no uncommitted change).
    pub fn evict(&mut self) {
        debug_assert!(self.original.is_empty());
        self.cache = HashMap::default();
    }

    /// The namespace.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    fn load(&mut self, store: Option<&Store>, id: &str) -> Result<()> {
        if self.cache.contains_key(id) {
            return Ok(());
        }
        let row = match store {
            Some(_) if self.store_empty => None,
            Some(s) => match s.view_get(&self.ns, &row_key(id))? {
                Some(bytes) => Some(Box::new(serde_json::from_slice::<T>(&bytes).map_err(
                    |e| ProjectionError::Decode {
                        seq: 0,
                        reason: format!("view {} row {id}: {e}", self.ns),
                    },
                )?)),
                None => None,
            },
            None => None,
        };
        self.cache.insert(CompactString::from(id), row);
        Ok(())
    }

    /// Whether every cached row is new: a full build that has written nothing yet, whose
    /// change list is the cache itself (no committed values to remember).
    fn all_new(&self) -> bool {
        self.keep_all && self.store_empty
    }

    /// Remembers the committed value of `id` the first time it changes in a batch.
    fn dirty(&mut self, id: &str) {
        let all_new = self.all_new();
        let committed = self.cache.get(id).and_then(Option::as_deref);
        remember(&mut self.original, all_new, id, committed);
    }

    /// The row for `id`.
    pub fn get(&mut self, store: Option<&Store>, id: &str) -> Result<Option<&T>> {
        self.load(store, id)?;
        Ok(self.cache.get(id).and_then(Option::as_deref))
    }

    /// The row for `id`, mutable (marks it changed).
    pub fn get_mut(&mut self, store: Option<&Store>, id: &str) -> Result<Option<&mut T>> {
        self.load(store, id)?;
        let all_new = self.all_new();
        let Rows {
            cache, original, ..
        } = self;
        let Some(Some(row)) = cache.get_mut(id) else {
            return Ok(None);
        };
        // One lookup per map.
        remember(original, all_new, id, Some(row));
        Ok(Some(&mut **row))
    }

    /// Sets (or with `None` deletes) the row for `id`.
    pub fn put(&mut self, store: Option<&Store>, id: &str, row: Option<T>) -> Result<()> {
        self.load(store, id)?;
        self.dirty(id);
        if let Some(r) = &row {
            if self.keep_all && self.puts % SAMPLE_EVERY == 0 {
                let mut w = ByteCount(0);
                if serde_json::to_writer(&mut w, r).is_ok() {
                    self.sampled.0 += 1;
                    self.sampled.1 += w.0;
                }
            }
            self.puts += 1;
        }
        let row = row.map(Box::new);
        match self.cache.get_mut(id) {
            Some(slot) => *slot = row,
            None => {
                self.cache.insert(CompactString::from(id), row);
            }
        }
        Ok(())
    }

    /// Every cached row (for in-memory folds).
    pub fn cached(&self) -> impl Iterator<Item = (&str, &T)> {
        self.cache
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (k.as_str(), v)))
    }

    /// The changed rows and index entries as store changes, in key order. Clears the cache
    /// when it holds more than [`ROW_CACHE_LIMIT`] rows (unless [`Rows::keep_all`]).
    ///
    /// Index entries are grouped into bucket rows (`i` + index key + bucket, value: the sorted
    /// ids, one per line), [`INDEX_BUCKETS`] per index value, so a batch touches a few
    /// hundred index rows instead of one key per entry. Bucket rows are read from `store`;
    /// without a store (in-memory folds) no index is kept.
    pub fn take_changes(&mut self, store: Option<&Store>) -> Result<Changes> {
        let mut out = Vec::new();
        self.take_changes_chunked(store, usize::MAX, false, &mut |mut c| {
            out.append(&mut c);
            Ok(())
        })?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Hands every row of a full build that kept all its rows in memory ([`Rows::keep_all`],
    /// nothing written yet) to `sink` in key order, index buckets (`i…`) first, then the rows
    /// (`r…`), as the stored values [`Rows::take_changes`] would have written; each row leaves
    /// the cache as it is encoded. The pending changes are taken with them.
    pub fn drain_sorted(&mut self, sink: &mut RowSink<'_>) -> Result<()> {
        debug_assert!(self.all_new());
        self.original.clear();
        let mut rows: Vec<(CompactString, Box<T>)> = std::mem::take(&mut self.cache)
            .into_iter()
            .filter_map(|(id, r)| r.map(|r| (id, r)))
            .collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        {
            // Bucket rows, built as (bucket, row index) pairs (8 bytes an entry: this runs
            // before any row is freed, at the build's peak of memory).
            let mut bucket_of: HashMap<Vec<u8>, u32> = HashMap::default();
            let mut pairs: Vec<(u32, u32)> = Vec::new();
            for (i, (id, row)) in rows.iter().enumerate() {
                let keys: BTreeSet<Vec<u8>> = (self.index)(id, row).into_iter().collect();
                for k in keys {
                    let next = bucket_of.len() as u32;
                    let b = *bucket_of.entry(bucket_key(&k, id)).or_insert(next);
                    pairs.push((b, i as u32));
                }
            }
            let mut buckets: Vec<(Vec<u8>, u32)> = bucket_of.into_iter().collect();
            buckets.sort_unstable();
            let mut rank = vec![0u32; buckets.len()];
            for (r, (_, b)) in buckets.iter().enumerate() {
                rank[*b as usize] = r as u32;
            }
            for p in &mut pairs {
                p.0 = rank[p.0 as usize];
            }
            // By bucket in key order, then by row: `rows` is sorted, so ids come out sorted.
            pairs.sort_unstable();
            let mut value = Vec::new();
            for group in pairs.chunk_by(|a, b| a.0 == b.0) {
                value.clear();
                for (n, (_, i)) in group.iter().enumerate() {
                    if n > 0 {
                        value.push(b'\n');
                    }
                    value.extend_from_slice(rows[*i as usize].0.as_bytes());
                }
                sink(&buckets[group[0].0 as usize].0, &value)?;
            }
        }
        let mut bytes = Vec::new();
        for (id, row) in rows {
            bytes.clear();
            serde_json::to_writer(&mut bytes, &*row).map_err(|e| ProjectionError::Decode {
                seq: 0,
                reason: format!("cannot encode row {id}: {e}"),
            })?;
            drop(row);
            sink(&row_key(&id), &bytes)?;
        }
        Ok(())
    }

    /// [`Rows::take_changes`] handed to `sink` in chunks of at most `chunk` changes (each in
    /// key order: the rows, then the index buckets), so that encoding every row of a large
    /// view does not hold all of them in memory at once. The chunks are separate commits,
    /// not one atomic change: only for namespaces a crash discards. With `evict`, each changed
    /// row leaves the cache as it is encoded, so that the rows' memory is free for the store's
    /// writes instead of adding to them (call [`Rows::evict`] afterwards for the clean ones).
    pub fn take_changes_chunked(
        &mut self,
        store: Option<&Store>,
        chunk: usize,
        evict: bool,
        sink: &mut dyn FnMut(Changes) -> Result<()>,
    ) -> Result<()> {
        let chunk = chunk.max(1);
        let store_empty = self.store_empty;
        let mut wrote = false;
        let mut sink = |changes: Changes| -> Result<()> {
            wrote |= !changes.is_empty();
            sink(changes)
        };
        let index = self.index;
        let mut dirty: Vec<(CompactString, Option<Box<T>>)> = match self.all_new() {
            true => self
                .cache
                .iter()
                .filter(|(_, r)| r.is_some())
                .map(|(id, _)| (id.clone(), None))
                .collect(),
            false => self.original.drain().collect(),
        };
        dirty.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // bucket row key -> (ids to remove, ids to add)
        let mut buckets: BTreeMap<Vec<u8>, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
        let mut out: Changes = Vec::new();
        for (id, orig) in &dirty {
            let orig = orig.as_deref();
            let taken;
            let row = if evict {
                taken = self.cache.remove(id.as_str()).flatten();
                taken.as_deref()
            } else {
                self.cache.get(id.as_str()).and_then(Option::as_deref)
            };
            if orig == row {
                continue;
            }
            let old_keys: BTreeSet<Vec<u8>> = orig
                .map(|o| index(id, o).into_iter().collect())
                .unwrap_or_default();
            let new_keys: BTreeSet<Vec<u8>> = row
                .map(|r| index(id, r).into_iter().collect())
                .unwrap_or_default();
            for k in old_keys.difference(&new_keys) {
                buckets.entry(bucket_key(k, id)).or_default().0.insert(id);
            }
            for k in new_keys.difference(&old_keys) {
                buckets.entry(bucket_key(k, id)).or_default().1.insert(id);
            }
            match row {
                Some(r) => {
                    let bytes = serde_json::to_vec(r).map_err(|e| ProjectionError::Decode {
                        seq: 0,
                        reason: format!("cannot encode row {id}: {e}"),
                    })?;
                    out.push((row_key(id), Some(bytes)));
                }
                None => out.push((row_key(id), None)),
            }
            if out.len() >= chunk {
                sink(std::mem::take(&mut out))?;
            }
        }
        if let Some(store) = store {
            for (key, (del, add)) in buckets {
                let stored = match store_empty {
                    true => None,
                    false => store.view_get(&self.ns, &key)?,
                };
                let mut ids: BTreeSet<String> = match stored {
                    Some(v) => String::from_utf8_lossy(&v)
                        .lines()
                        .map(str::to_owned)
                        .collect(),
                    None => BTreeSet::new(),
                };
                for d in del {
                    ids.remove(d);
                }
                ids.extend(add.into_iter().map(str::to_owned));
                if ids.is_empty() {
                    out.push((key, None));
                } else {
                    let v: Vec<&str> = ids.iter().map(String::as_str).collect();
                    out.push((key, Some(v.join("\n").into_bytes())));
                }
                if out.len() >= chunk {
                    sink(std::mem::take(&mut out))?;
                }
            }
        }
        drop(dirty);
        // Clean rows stay cached for the next batch (a commitment's events are spread over the
        // log), up to a bound that keeps memory flat on large logs.
        if !self.keep_all && self.cache.len() > ROW_CACHE_LIMIT {
            self.cache.clear();
        }
        if !out.is_empty() {
            sink(out)?;
        }
        if wrote && store.is_some() {
            self.store_empty = false;
        }
        Ok(())
    }
}

/// Counts the bytes written to it.
struct ByteCount(u64);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Rows put between two samples of the encoded row length.
const SAMPLE_EVERY: u64 = 64;

/// Bytes a cached row costs besides its typed value and its encoded length: the id (key and
/// heap), the hash map slots, allocator rounding. Measured on the benchmark workload.
const ROW_ENTRY_OVERHEAD: usize = 64;

/// Rows a backed view keeps cached between batches.
pub const ROW_CACHE_LIMIT: usize = 100_000;

/// Records `committed` as the committed value of `id` the first time the row changes in a
/// batch (a full build that has written nothing, `all_new`, has none to remember).
fn remember<T: Clone>(
    original: &mut HashMap<CompactString, Option<Box<T>>>,
    all_new: bool,
    id: &str,
    committed: Option<&T>,
) {
    if !all_new && !original.contains_key(id) {
        original.insert(
            CompactString::from(id),
            committed.map(|r| Box::new(r.clone())),
        );
    }
}

/// Index entries of one index value are spread over this many bucket rows (by a hash of the
/// id), which keeps each row small (well under sled's blob threshold) as the store grows.
pub const INDEX_BUCKETS: u64 = 64;

/// The bucket row holding index entry `index_key` for `id`: `i` + index key + 2 hex digits.
pub fn bucket_key(index_key: &[u8], id: &str) -> Vec<u8> {
    // FNV-1a: stable across builds and platforms (the bucket is part of the stored key).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut k = Vec::with_capacity(index_key.len() + 3);
    k.push(b'i');
    k.extend_from_slice(index_key);
    k.extend_from_slice(format!("{:02x}", h % INDEX_BUCKETS).as_bytes());
    k
}
