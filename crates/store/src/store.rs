//! The store: open, append, read.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use uuid::Uuid;

use crate::codec::{self, ExternalPack, HeadRec, PackBuilder, PackHeader, PackPointer};
use crate::error::{corrupt, Result, StoreError};
use crate::index::{self, Entry, IndexState};
use crate::journal::{Journal, Record};
use crate::types::*;

/// `HashMap` for in-memory maps of local data (ids, stream names), with foldhash's fixed-seed
/// hasher: fast, and deterministic from run to run. (A hand-written FxHash mixed too little for
/// hashbrown, which takes the bucket from the low bits: stream names that differ only in their
/// last digits collided, and a 100k import spent ~40 ms probing in the stream-version map.)
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// The store format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 6;
/// Older format versions this build opens and upgrades in place: version 1 had no journal
/// (a version-1 store is a valid store with an empty journal); versions 1 and 2 wrote LZ4
/// packs, which are still read (new packs are zstd); versions 1 to 3 kept view rows in the
/// `views` tree, uncompressed: those views are dropped on open and rebuilt by the projections
/// (since version 4 each generation is its own tree and rows may be compressed). Version 4
/// kept every pack in sled; its packs are read as they are (since version 5 large appends
/// put their packs' payloads in the pack file). Version 5 compressed view rows without a
/// dictionary; those rows are read as they are (since version 6 rows are compressed with the
/// row dictionary, under a tag no older version wrote).
const UPGRADABLE_FROM: &[u32] = &[1, 2, 3, 4, 5];

/// sled segment size (fixed when a store is created; recorded in sled's `conf`).
const SEGMENT_SIZE: usize = 8 << 20;

/// Index runs beyond this trigger a merge (see `maybe_merge_runs`).
const MAX_RUNS: usize = 12;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the writer knows about the published log.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Published {
    pub head: HeadRec,
    pub events: u64,
    pub streams: u64,
}

/// Small appends that are durable in the journal but not yet applied to sled. Applying each
/// small append to sled at once cost two sled IO-buffer writes (each a `pwrite` +
/// `sync_file_range`) per append, which queued in front of the journal's `fdatasync`; now they
/// are applied in one batch when a reader needs them ([`Store::settle`]), when the tail grows
/// past [`PENDING_EVENTS`] / [`PENDING_BYTES`], at a checkpoint or a large append, and on close.
///
/// `Store::published` stays the state sled holds, so every read path is unchanged: public
/// reads settle first. `head()`, `stats()`, duplicate detection and stream versions also see
/// the pending tail.
#[derive(Debug, Default)]
struct Pending {
    events: Vec<PendingEvent>,
    /// The logical state: `published` plus these events.
    state: Published,
    /// Event id → seq, stream → version, of the pending events.
    ids: FastMap<Uuid, u64>,
    versions: HashMap<String, u64>,
    new_streams: u64,
    bytes: usize,
}

#[derive(Debug)]
struct PendingEvent {
    bytes: Vec<u8>,
    stream: String,
    version: u64,
    id: Uuid,
    rec_micros: i64,
}

/// A small append whose events take more than this (bodies plus envelopes) is written as a
/// large one instead of one journal record (records carry u32 lengths).
const JOURNAL_RECORD_MAX: usize = 256 << 20;

/// How long an appender yields, waiting for another's group `fdatasync`, before it sleeps.
const SPIN: std::time::Duration = std::time::Duration::from_millis(2);

/// How long a group-commit leader waits for in-flight appends to join its `fdatasync`. When
/// the last group had k records, the next leader waits for k (the writers it released are
/// likely coming back): an occasional lone append after a burst pays this once.
const GATHER: std::time::Duration = std::time::Duration::from_micros(200);

/// Counts an append as in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(c: &'a AtomicUsize) -> InFlight<'a> {
        c.fetch_add(1, Ordering::SeqCst);
        InFlight(c)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The pending tail is applied to sled once it holds this many events…
const PENDING_EVENTS: usize = 4096;
/// …or this many bytes.
const PENDING_BYTES: usize = 4 << 20;

#[derive(Debug, Default)]
struct SyncState {
    synced: u64,
    leader: bool,
    /// Set when a journal write or `fdatasync` failed: every ticket not yet synced fails from
    /// then on (a later `fdatasync` that succeeds proves nothing about the pages the failed
    /// one dropped), and the writer is poisoned.
    failed: Option<String>,
}

/// An event store on sled. `Send + Sync`; appends are serialised by an internal writer mutex,
/// durability is shared between concurrent appenders (group commit).
pub struct Store {
    pub(crate) path: PathBuf,
    /// The sled cache size it was opened with (for [`Store::close`]).
    cache_capacity: u64,
    /// Events and view rows this handle wrote to sled (see [`Store::close`]).
    session_writes: AtomicU64,
    /// This handle changed something in sled (see [`Store::note_write`]); a handle that did
    /// not, and found the journal clean, closes without a flush and an fsync.
    dirty: AtomicBool,
    /// Open completed. A handle whose open failed (say, a journal it cannot replay) is
    /// dropped without touching anything, so that the journal stays for the next open.
    opened: AtomicBool,
    pub(crate) db: sled::Db,
    pub(crate) log: sled::Tree,
    pub(crate) views: sled::Tree,
    db_file: File,
    /// The pack file `<dir>/packs`: payloads of the packs large appends write (see the crate
    /// docs), read with `pread`, written with `pwrite` past [`Store::packs_len`].
    packs: File,
    /// The pack file's published length (`Mpackfile`): bytes past it belong to no pack.
    packs_len: AtomicU64,
    /// The append journal (written under the writer mutex).
    journal: Mutex<Journal>,
    /// A second handle on the journal file for the group-commit leader's `fdatasync`.
    journal_sync: File,
    /// Events re-applied from the journal when this handle opened the store.
    replayed: AtomicU64,
    /// Whether opening found the last session unclosed and flushed sled for it.
    flushed_unclean: AtomicBool,
    /// Journaled appends not yet applied to sled (see [`Pending`]).
    pending: Mutex<Pending>,
    has_pending: AtomicBool,
    /// Appends in progress (from entering `append` until durable): a group-commit leader
    /// briefly waits until each has written its journal record, so one `fdatasync` covers all.
    in_flight: AtomicUsize,
    /// How many records the last group-commit `fdatasync` covered: the writers it released
    /// are likely to append again, so the next leader waits (at most GATHER) for as many.
    last_group: AtomicU64,
    /// Mirrors of `SyncState::synced` and `SyncState::leader`, read by waiting appenders
    /// without the lock (see `sync_through`).
    synced_fast: AtomicU64,
    leading: AtomicBool,
    writer: Mutex<Option<String>>, // Some(reason) = poisoned
    pub(crate) published: RwLock<Published>,
    pub(crate) index: RwLock<Arc<IndexState>>,
    pub(crate) view_lock: Mutex<()>,
    commits: AtomicU64,
    sync: Mutex<SyncState>,
    sync_cv: Condvar,
    pub(crate) clock: Clock,
    large_batch_threshold: usize,
    chunk_events: usize,
    tail_rewrite_limit: usize,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("published", &self.published())
            .finish_non_exhaustive()
    }
}

fn map_open_error(e: sled::Error, path: &Path) -> StoreError {
    match e {
        sled::Error::Io(ref io) if io.to_string().contains("could not acquire lock") => {
            StoreError::Locked {
                path: path.to_path_buf(),
            }
        }
        other => StoreError::Sled(other),
    }
}

/// Stores this process has closed. sled's background threads may hold the lock file for a
/// moment after the last handle is dropped, so reopening a store *this process* just closed
/// can fail with the lock error although no other process holds it (sled#1234, #1289). Such
/// an open is retried for up to [`REOPEN_GRACE`]; a store held by another process still
/// reports [`StoreError::Locked`] at once.
static CLOSED_HERE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// How long a reopen of a store this process closed waits for sled to let go of its lock.
const REOPEN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The same wait for [`Store::close`]'s reopen, which is only worth a short one.
const CLOSE_REOPEN_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

fn open_sled(config: &sled::Config, path: &Path) -> Result<sled::Db> {
    open_sled_within(config, path, REOPEN_GRACE)
}

/// [`open_sled`] with another bound on the wait for this process's own sled threads.
fn open_sled_within(
    config: &sled::Config,
    path: &Path,
    grace: std::time::Duration,
) -> Result<sled::Db> {
    let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let closed_here = lock(&CLOSED_HERE).contains(&key);
    let started = std::time::Instant::now();
    loop {
        match config.open().map_err(|e| map_open_error(e, path)) {
            Err(StoreError::Locked { .. }) if closed_here && started.elapsed() < grace => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// The pack file's name in the store's directory.
const PACK_FILE: &str = "packs";
/// sled's data file's name in the store's directory (sled 0.34 names it so).
const SLED_FILE: &str = "db";

/// Opens (or creates) the pack file `<dir>/packs` and cuts off anything past its published
/// length `published` (the payloads of a large append that never published). The directory
/// is fsynced by the first large append that publishes payloads in it.
fn open_pack_file(dir: &Path, published: u64) -> Result<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(PACK_FILE))?;
    if f.metadata()?.len() > published {
        f.set_len(published)?;
    }
    Ok(f)
}

/// sled's configuration for the store in `path`.
fn sled_config(path: &Path, cache_capacity: u64) -> sled::Config {
    sled::Config::new()
        .path(path)
        .cache_capacity(cache_capacity)
        // sled writes any log item above segment_size / 4 (a value, or a whole leaf node when
        // it is consolidated) to a blob file that it never fsyncs. Leaves hold up to 17
        // entries of ≤ 60 KiB each, so 8 MiB segments keep every item inline (≤ 2 MiB).
        .segment_size(SEGMENT_SIZE)
        // No periodic background flush: appends are durable through the journal, and sled
        // writes its IO buffer at every batch anyway. The timer's extra writes only competed
        // with the journal's fdatasync (measured: 2.0k → 2.8k durable appends/s).
        .flush_every_ms(None)
}

/// Events and view rows a session must write for [`Store::close`] to have sled write its
/// snapshot before the next open.
const SNAPSHOT_AFTER_WRITES: u64 = 20_000;

impl Store {
    /// The bytes of the files of the store in directory `path`, read from the file system
    /// without opening it (0 when there is none): for a caller that sets up its memory
    /// before the open.
    pub fn bytes_on_disk_at(path: &Path) -> u64 {
        fn walk(dir: &Path, depth: u32) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_file() => m.len(),
                    Ok(m) if m.is_dir() && depth > 0 => walk(&e.path(), depth - 1),
                    _ => 0,
                })
                .sum()
        }
        // sled keeps its files at the top and its blobs one directory down.
        walk(path, 1)
    }

    /// Opens (or creates) the store in directory `path`.
    ///
    /// Fails with [`StoreError::Locked`] when another process has it open and with
    /// [`StoreError::UnsupportedFormat`] when it was written by another format version.
    /// Removes leftovers of an interrupted large append (anything past the published head).
    pub fn open(path: &Path, opts: OpenOptions) -> Result<Store> {
        if !opts.create && !path.join(SLED_FILE).exists() {
            return Err(StoreError::NotFound {
                path: path.to_path_buf(),
            });
        }
        let config = sled_config(path, opts.cache_capacity);
        let db = open_sled(&config, path)?;
        let log = db.open_tree("log")?;
        let views = db.open_tree("views")?;
        let db_file = File::open(path.join(SLED_FILE))?;

        match log.get(codec::K_FORMAT)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .unwrap_or(0);
                if UPGRADABLE_FROM.contains(&found) {
                    log.insert(codec::K_FORMAT, &FORMAT_VERSION.to_be_bytes())?;
                    db.flush()?;
                    db_file.sync_all()?;
                } else if found != FORMAT_VERSION {
                    return Err(StoreError::UnsupportedFormat {
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
            }
            None => {
                if !log.is_empty() {
                    return Err(StoreError::UnsupportedFormat {
                        found: 0,
                        supported: FORMAT_VERSION,
                    });
                }
                log.insert(codec::K_FORMAT, &FORMAT_VERSION.to_be_bytes())?;
                db.flush()?;
                db_file.sync_all()?;
            }
        }
        let head = match log.get(codec::K_HEAD)? {
            Some(v) => HeadRec::decode(&v).ok_or_else(|| corrupt(0, "malformed head metadata"))?,
            None => HeadRec::default(),
        };
        let (events, streams) = match log.get(codec::K_COUNTS)? {
            Some(v) => {
                codec::decode_counts(&v).ok_or_else(|| corrupt(0, "malformed counts metadata"))?
            }
            None => (0, 0),
        };
        let index = IndexState::load(&log)?;
        let packs_len = match log.get(codec::K_PACK_FILE)? {
            Some(v) => {
                codec::be_u64_exact(&v).ok_or_else(|| corrupt(0, "malformed pack file metadata"))?
            }
            None => 0,
        };
        let packs = open_pack_file(path, packs_len)?;
        let mut journal = Journal::open(path)?;
        let journal_sync = journal.sync_handle()?;
        let (replay, unclean) = journal.recover(head.seq)?;
        let store = Store {
            path: path.to_path_buf(),
            cache_capacity: opts.cache_capacity,
            session_writes: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            opened: AtomicBool::new(false),
            db,
            log,
            views,
            db_file,
            packs,
            packs_len: AtomicU64::new(packs_len),
            journal: Mutex::new(journal),
            journal_sync,
            replayed: AtomicU64::new(0),
            flushed_unclean: AtomicBool::new(unclean),
            pending: Mutex::new(Pending::default()),
            has_pending: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_group: AtomicU64::new(1),
            synced_fast: AtomicU64::new(0),
            leading: AtomicBool::new(false),
            writer: Mutex::new(None),
            published: RwLock::new(Published {
                head,
                events,
                streams,
            }),
            index: RwLock::new(Arc::new(index)),
            view_lock: Mutex::new(()),
            commits: AtomicU64::new(0),
            sync: Mutex::new(SyncState::default()),
            sync_cv: Condvar::new(),
            clock: opts.clock,
            large_batch_threshold: opts.large_batch_threshold.max(1),
            chunk_events: opts.chunk_events.max(1),
            tail_rewrite_limit: opts.tail_rewrite_limit,
        };
        let pending = store.log.get(codec::K_PENDING)?.is_some();
        let discarded = store.discard_leftovers(head.seq, pending)?;
        let replayed = store.replay_journal(replay)?;
        store.replayed.store(replayed, Ordering::Relaxed);
        // After an unclean shutdown, sled may hold events (settled from the pending tail) that
        // reached only the page cache; the journal records that also hold them are about to be
        // overwritten, so sled must be durable first, replay or not.
        if discarded || replayed > 0 || unclean {
            store.flush_durable()?;
        }
        store.views_cleanup()?;
        store.opened.store(true, Ordering::SeqCst);
        Ok(store)
    }

    pub(crate) fn published(&self) -> Published {
        *self.published.read().unwrap_or_else(|e| e.into_inner())
    }

    fn set_published(&self, p: Published) {
        *self.published.write().unwrap_or_else(|e| e.into_inner()) = p;
    }

    /// Removes leftovers of an interrupted large append or index merge: packs and parts past
    /// `head_seq` (always checked; O(1) when there are none) and, when `full`, index runs that
    /// the run list does not name. Returns whether anything was removed.
    pub(crate) fn discard_leftovers(&self, head_seq: u64, full: bool) -> Result<bool> {
        let mut batch = sled::Batch::default();
        let mut any = false;
        let start = codec::pack_key(head_seq.saturating_add(1));
        let end = [codec::P_PACK + 1];
        for kv in self.log.range(start.as_slice()..end.as_slice()) {
            batch.remove(kv?.0);
            any = true;
        }
        let pstart = codec::part_key(head_seq.saturating_add(1), 0);
        let pend = [codec::P_PART + 1];
        for kv in self.log.range(pstart.as_slice()..pend.as_slice()) {
            batch.remove(kv?.0);
            any = true;
        }
        if full {
            let live: std::collections::HashSet<u64> =
                self.index_state().ids().into_iter().collect();
            for p in [index::P_RUN_HEADER, index::P_RUN_BLOCK] {
                for k in self.log.scan_prefix([p]).keys() {
                    let k = k?;
                    if k.len() < 9 || !live.contains(&codec::be_u64(&k[1..9])) {
                        batch.remove(k);
                    }
                }
            }
            batch.remove(codec::K_PENDING);
            any = true;
        }
        if any {
            self.note_write(0);
            self.log.apply_batch(batch)?;
        }
        Ok(any)
    }

    /// Re-applies journal records past the recovered head (a crash lost sled's unflushed
    /// tail): each record's events, with their exact bytes B, through the same writer as an
    /// append, after checking that they continue the chain. Returns how many events were
    /// applied; the caller flushes sled.
    fn replay_journal(&self, records: Vec<Record>) -> Result<u64> {
        let mut any = 0;
        for rec in records {
            let mut guard = self.writer_lock()?;
            let publ = self.published();
            if rec.first_seq != publ.head.seq + 1 {
                return Err(corrupt(
                    rec.first_seq,
                    format!(
                        "the journal continues at seq {} but the log ends at seq {}",
                        rec.first_seq, publ.head.seq
                    ),
                ));
            }
            let mut w = LogWriter::new(self, publ, self.index_state(), false)?;
            let mut new_streams = 0u64;
            let mut rest = rec.payload.as_slice();
            let bad = |seq: u64, d: &str| corrupt(seq, format!("journal record: {d}"));
            for _ in 0..rec.count {
                let seq = w.head.seq + 1;
                if rest.len() < 4 {
                    return Err(bad(seq, "truncated"));
                }
                let n = codec::be_u32(&rest[..4]) as usize;
                let Some(b) = rest.get(4..4 + n) else {
                    return Err(bad(seq, "truncated"));
                };
                rest = &rest[4 + n..];
                let env = codec::parse_envelope(b).map_err(|d| bad(seq, &d))?;
                if env.seq != seq || env.prev_hash != w.head.hash {
                    return Err(bad(seq, "does not continue the hash chain"));
                }
                let rec_micros = codec::parse_recorded_at(env.recorded_at)
                    .ok_or_else(|| bad(seq, "malformed recorded_at"))?;
                let id =
                    crate::types::extract_event_id(b).ok_or_else(|| bad(seq, "no event_id"))?;
                if env.stream_version == 1 {
                    new_streams += 1;
                }
                let stream = env.stream.to_owned();
                if let Err(e) = w.push(b, &stream, env.stream_version, &id, rec_micros) {
                    drop(w);
                    return Err(self.fail_large(&mut guard, e, false));
                }
            }
            if !rest.is_empty() {
                return Err(bad(w.head.seq, "trailing bytes"));
            }
            w.finish(new_streams)?;
            self.maybe_merge_runs()?;
            any += u64::from(rec.count);
        }
        Ok(any)
    }

    /// The logical state: what sled holds plus the pending tail.
    pub(crate) fn logical(&self) -> Published {
        if self.has_pending.load(Ordering::SeqCst) {
            let p = lock(&self.pending);
            if !p.events.is_empty() {
                return p.state;
            }
        }
        self.published()
    }

    /// Applies the pending tail to sled, so that reads see every acknowledged append. Public
    /// reads call this first; it is a no-op (one atomic load) when nothing is pending.
    pub(crate) fn settle(&self) -> Result<()> {
        if !self.has_pending.load(Ordering::SeqCst) {
            return Ok(());
        }
        let _g = self.writer_lock()?;
        self.apply_pending_locked()
    }

    /// [`Self::settle`] with the writer lock held: one sled batch for the whole tail (the same
    /// writer as an append and as a journal replay).
    fn apply_pending_locked(&self) -> Result<()> {
        let mut p = lock(&self.pending);
        if p.events.is_empty() {
            return Ok(());
        }
        let mut w = LogWriter::new(self, self.published(), self.index_state(), false)?;
        for e in &p.events {
            w.push(&e.bytes, &e.stream, e.version, &e.id, e.rec_micros)?;
        }
        w.finish(p.new_streams)?;
        *p = Pending::default();
        self.has_pending.store(false, Ordering::SeqCst);
        drop(p);
        if self.maybe_merge_runs().is_err() {
            let _ = self.discard_leftovers(self.published().head.seq, true);
        }
        Ok(())
    }

    /// The event at `seq` (≤ the logical head), from the pending tail or sled. Writer lock held.
    fn event_locked(&self, seq: u64) -> Result<StoredEvent> {
        {
            let p = lock(&self.pending);
            let base = self.published().head.seq;
            if seq > base {
                let e = p
                    .events
                    .get((seq - base - 1) as usize)
                    .ok_or_else(|| corrupt(seq, "past the head"))?;
                return StoredEvent::from_bytes(e.bytes.clone()).map_err(|d| corrupt(seq, d));
            }
        }
        self.event_at(seq)
    }

    pub(crate) fn index_state(&self) -> Arc<IndexState> {
        Arc::clone(&self.index.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn set_index_state(&self, st: IndexState) {
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(st);
    }

    /// Runs an index query against the live runs, retrying when a concurrent merge removed a run
    /// it was reading (the query returns `None` then).
    fn with_index<T>(&self, f: impl Fn(&IndexState) -> Result<Option<T>>) -> Result<T> {
        for _ in 0..1000 {
            let st = self.index_state();
            if let Some(v) = f(&st)? {
                return Ok(v);
            }
            std::thread::yield_now();
        }
        Err(corrupt(0, "index runs keep disappearing while being read"))
    }

    /// Where each id is stored (absent = not stored).
    pub(crate) fn lookup_ids(&self, ids: &[Uuid]) -> Result<FastMap<Uuid, u64>> {
        let mut out = self.lookup_ids_applied(ids)?;
        if self.has_pending.load(Ordering::SeqCst) {
            let p = lock(&self.pending);
            for id in ids {
                if let Some(&seq) = p.ids.get(id) {
                    out.insert(*id, seq);
                }
            }
        }
        Ok(out)
    }

    fn lookup_ids_applied(&self, ids: &[Uuid]) -> Result<FastMap<Uuid, u64>> {
        if self.index_state().runs.is_empty() {
            return Ok(FastMap::default());
        }
        let mut keys: Vec<Vec<u8>> = ids.iter().map(index::id_entry).collect();
        keys.sort_unstable();
        keys.dedup();
        let found =
            self.with_index(|st| index::floor_many(&self.log, &st.runs, &keys, &|q, k| q == k))?;
        let mut out = FastMap::default();
        for (k, e) in keys.iter().zip(found) {
            if let (Some((_, seq)), Ok(id)) = (e, Uuid::from_slice(&k[1..])) {
                out.insert(id, seq);
            }
        }
        Ok(out)
    }

    /// Current versions of streams (0 = no stream). Keyed by inline strings: the map is
    /// probed once per event of a large append, and a `&str` key sent each probe to the heap
    /// string of the stream's first event (a cache miss; ~33 ms of a 100k import).
    pub(crate) fn lookup_versions<'a>(
        &self,
        streams: impl Iterator<Item = &'a str>,
    ) -> Result<FastMap<CompactString, u64>> {
        let mut out = self.lookup_versions_applied(streams)?;
        if self.has_pending.load(Ordering::SeqCst) {
            let p = lock(&self.pending);
            for (s, v) in out.iter_mut() {
                if let Some(&pv) = p.versions.get(s.as_str()) {
                    *v = pv;
                }
            }
        }
        Ok(out)
    }

    fn lookup_versions_applied<'a>(
        &self,
        streams: impl Iterator<Item = &'a str>,
    ) -> Result<FastMap<CompactString, u64>> {
        let mut out: FastMap<CompactString, u64> = FastMap::default();
        for s in streams {
            if !out.contains_key(s) {
                out.insert(CompactString::from(s), 0);
            }
        }
        if self.index_state().runs.is_empty() {
            return Ok(out);
        }
        let mut names: Vec<CompactString> = out.keys().cloned().collect();
        names.sort_unstable();
        let keys: Vec<Vec<u8>> = names.iter().map(|s| index::stream_upper(s)).collect();
        let keep = |q: &[u8], k: &[u8]| k.starts_with(&q[..q.len() - 9]);
        let found = self.with_index(|st| index::floor_many(&self.log, &st.runs, &keys, &keep))?;
        for (s, e) in names.iter().zip(found) {
            if let Some(v) = e.and_then(|(k, _)| index::parse_stream_entry(&k).map(|x| x.1)) {
                if let Some(slot) = out.get_mut(s.as_str()) {
                    *slot = v;
                }
            }
        }
        Ok(out)
    }

    /// Merges index runs when there are more than [`MAX_RUNS`]: the newest runs whose older
    /// neighbour is at most 4× their combined size are merged into one, so sizes stay roughly
    /// geometric (a leveled LSM with ratio 4) and merges happen about once per `MAX_RUNS`
    /// small appends. The merged run is written first (invisible, under the pending marker),
    /// then one atomic batch swaps the run list and deletes the old runs. Called with the writer
    /// lock held.
    pub(crate) fn maybe_merge_runs(&self) -> Result<()> {
        let st = self.index_state();
        let n = st.runs.len();
        if n <= MAX_RUNS {
            return Ok(());
        }
        let mut j = n - 1;
        let mut acc = st.runs[j].count;
        while j > 0 && st.runs[j - 1].count <= 4 * acc {
            j -= 1;
            acc += st.runs[j].count;
        }
        let j = j.min(n - 2);
        let mut lists = Vec::with_capacity(n - j);
        for r in &st.runs[j..] {
            lists.push(index::run_entries(&self.log, r)?);
        }
        let merged = index::merge(lists);
        let id = st.next_id;
        let (run, writes) = index::encode_run(id, &merged);
        drop(merged);
        let mut batch = sled::Batch::default();
        batch.insert(codec::K_PENDING, &[][..]);
        let mut bytes = 0usize;
        for (k, v) in writes {
            bytes += v.len();
            batch.insert(k, v);
            if bytes > 4 << 20 {
                self.note_write(0);
                self.log.apply_batch(std::mem::take(&mut batch))?;
                bytes = 0;
            }
        }
        let mut runs: Vec<Arc<index::Run>> = st.runs[..j].to_vec();
        runs.push(Arc::new(run));
        let new_state = IndexState {
            next_id: id + 1,
            runs,
        };
        // Small merges need only this one batch; large ones were chunked above.
        for old in &st.runs[j..] {
            for k in index::run_keys(&self.log, old.id)? {
                batch.remove(k);
            }
        }
        batch.insert(index::K_RUNS, new_state.encode_list());
        batch.remove(codec::K_PENDING);
        self.note_write(0);
        self.log.apply_batch(batch)?;
        self.set_index_state(new_state);
        Ok(())
    }

    // ------------------------------------------------------------------ durability

    /// Makes everything written so far durable in sled itself: `db.flush()` (which on Linux is
    /// only `sync_file_range`) plus an fsync of `<dir>/db`. Appends do not need this (they are
    /// durable through the journal once `append` returns); view swaps, large appends and
    /// closing the store use it.
    pub fn flush_durable(&self) -> Result<()> {
        self.db.flush()?;
        self.db_file.sync_all()?;
        Ok(())
    }

    /// Marks every journal record written so far as durable (sled was just flushed and
    /// fsynced past them).
    fn mark_all_synced(&self) {
        let mut st = lock(&self.sync);
        st.synced = st.synced.max(self.commits.load(Ordering::SeqCst));
        self.synced_fast.store(st.synced, Ordering::SeqCst);
        self.sync_cv.notify_all();
    }

    /// Group commit: returns once an `fdatasync` of the journal that started after journal
    /// record `ticket` was written has finished (ticket 0: nothing to wait for).
    pub(crate) fn sync_through(&self, ticket: u64) -> Result<()> {
        let mut st = lock(&self.sync);
        loop {
            if st.synced >= ticket {
                return Ok(());
            }
            if let Some(f) = &st.failed {
                return Err(StoreError::Poisoned(f.clone()));
            }
            if st.leader {
                // Another appender's fdatasync is under way. Yield until it covers this
                // ticket rather than sleep on the condvar: a group's fdatasync takes ~100 µs,
                // and waking a whole group through the condvar's mutex, one thread after
                // another, cost more than that on 2 cores. A long one falls back to sleeping.
                drop(st);
                let started = std::time::Instant::now();
                while self.leading.load(Ordering::SeqCst)
                    && self.synced_fast.load(Ordering::SeqCst) < ticket
                    && started.elapsed() < SPIN
                {
                    std::thread::yield_now();
                }
                st = lock(&self.sync);
                if st.leader && st.synced < ticket {
                    st = self.sync_cv.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                continue;
            }
            st.leader = true;
            self.leading.store(true, Ordering::SeqCst);
            let synced = st.synced;
            drop(st);
            // Concurrent appends are a few µs from writing their records: one fdatasync for
            // all of them beats one each. Wait until every append in flight has written its
            // record, and until as many records as the last group had are there (the writers
            // it released are coming back), for at most GATHER. A lone writer never waits.
            let started = std::time::Instant::now();
            let expect = self.last_group.load(Ordering::Relaxed);
            loop {
                let gathered = self.commits.load(Ordering::SeqCst) - synced;
                let in_flight = self.in_flight.load(Ordering::SeqCst) as u64;
                if (gathered >= in_flight && gathered >= expect) || started.elapsed() >= GATHER {
                    break;
                }
                std::thread::yield_now();
            }
            // Under the journal lock every ticket up to `target` is buffered or written, and
            // no checkpoint can restart the journal between the write and its offset.
            let r = {
                let mut j = lock(&self.journal);
                let target = self.commits.load(Ordering::SeqCst);
                j.write_out().map(|()| target)
            };
            let r = r.and_then(|target| Journal::sync(&self.journal_sync).map(|()| target));
            st = lock(&self.sync);
            st.leader = false;
            self.leading.store(false, Ordering::SeqCst);
            match r {
                Ok(target) => {
                    self.last_group
                        .store(target.saturating_sub(synced).max(1), Ordering::Relaxed);
                    st.synced = st.synced.max(target);
                    self.synced_fast.store(st.synced, Ordering::SeqCst);
                }
                Err(e) => {
                    let why = format!("the append journal could not be made durable: {e}");
                    st.failed = Some(why.clone());
                    self.sync_cv.notify_all();
                    drop(st);
                    // Not under the sync lock: the writer mutex is taken before it elsewhere.
                    *lock(&self.writer) = Some(why.clone());
                    return Err(StoreError::Poisoned(why));
                }
            }
            self.sync_cv.notify_all();
        }
    }

    pub(crate) fn next_ticket(&self) -> u64 {
        self.commits.fetch_add(1, Ordering::SeqCst) + 1
    }

    // ------------------------------------------------------------------ reads

    /// The head: the last event appended, including appends not yet applied to sled (and, while
    /// concurrent appenders wait for their `fdatasync`, not yet acknowledged to them).
    pub fn head(&self) -> Result<Head> {
        let p = self.logical();
        Ok(Head {
            seq: p.head.seq,
            hash: p.head.hash,
            recorded_at: (p.head.seq > 0).then(|| codec::format_micros(p.head.rec_micros)),
        })
    }

    /// The current version of `stream` (0 = no stream).
    pub fn stream_version(&self, stream: &str) -> Result<u64> {
        // Settled first: reading the index and then the pending tail could miss an append that
        // another thread settles in between.
        self.settle()?;
        Ok(self
            .lookup_versions(std::iter::once(stream))?
            .get(stream)
            .copied()
            .unwrap_or(0))
    }

    /// Up to 50 stream ids starting with `prefix`, in order (for unique-prefix resolution).
    pub fn streams_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        self.settle()?;
        let mut lo = vec![b's'];
        lo.extend_from_slice(prefix.as_bytes());
        let mut hi = lo.clone();
        hi.push(0xff);
        let mut out: Vec<String> = Vec::new();
        while out.len() < 50 {
            let first = self.with_index(|st| index::range_all(&self.log, &st.runs, &lo, &hi, 1))?;
            let Some((k, _)) = first.into_iter().next() else {
                break;
            };
            let Some((stream, _)) = index::parse_stream_entry(&k) else {
                return Err(corrupt(0, "malformed stream index entry"));
            };
            out.push(stream.to_owned());
            lo = index::stream_upper(stream);
        }
        Ok(out)
    }

    /// Counters and sizes (no scans).
    pub fn stats(&self) -> Result<Stats> {
        let p = self.logical();
        Ok(Stats {
            events: p.events,
            streams: p.streams,
            head_seq: p.head.seq,
            last_recorded_at: (p.head.seq > 0).then(|| codec::format_micros(p.head.rec_micros)),
            bytes_on_disk: self.db.size_on_disk()? + self.packs.metadata()?.len(),
        })
    }

    /// Reads a pack's value (plus extra parts) and decodes its events.
    pub(crate) fn decode_pack_value(&self, first_seq: u64, v: &[u8]) -> Result<Vec<StoredEvent>> {
        let (header, raw) = self.decode_pack_raw(first_seq, v)?;
        let ranges = codec::split_raw(&raw, header.count)
            .map_err(|d| pack_corrupt(first_seq, header.count, &d))?;
        let mut out = Vec::with_capacity(ranges.len());
        for (i, r) in ranges.into_iter().enumerate() {
            let seq = first_seq + i as u64;
            let e = StoredEvent::from_bytes(raw[r].to_vec())
                .map_err(|d| pack_corrupt(first_seq, header.count, &format!("event {seq}: {d}")))?;
            if e.seq != seq {
                return Err(pack_corrupt(
                    first_seq,
                    header.count,
                    &format!("event at position {seq} says seq {}", e.seq),
                ));
            }
            out.push(e);
        }
        Ok(out)
    }

    pub(crate) fn decode_pack_raw(
        &self,
        first_seq: u64,
        v: &[u8],
    ) -> Result<(PackHeader, Vec<u8>)> {
        let header = PackHeader::decode(v).map_err(|d| pack_corrupt(first_seq, 0, &d))?;
        let mut payload;
        let payload_ref: &[u8] = if header.is_external() {
            payload = self.read_external(first_seq, &header, v)?;
            &payload
        } else if header.extra_parts == 0 {
            &v[codec::PACK_HEADER_LEN..]
        } else {
            payload = v[codec::PACK_HEADER_LEN..].to_vec();
            for part in 1..=header.extra_parts {
                match self.log.get(codec::part_key(first_seq, part))? {
                    Some(p) => payload.extend_from_slice(&p),
                    None => {
                        return Err(pack_corrupt(
                            first_seq,
                            header.count,
                            &format!("missing part {part}"),
                        ))
                    }
                }
            }
            &payload
        };
        let raw = codec::decompress_payload(&header, payload_ref)
            .map_err(|d| pack_corrupt(first_seq, header.count, &d))?;
        Ok((header, raw))
    }

    /// Reads an external pack's payload from the pack file.
    fn read_external(&self, first_seq: u64, header: &PackHeader, v: &[u8]) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let ptr = PackPointer::decode(v).map_err(|d| pack_corrupt(first_seq, header.count, &d))?;
        let published = self.packs_len.load(Ordering::Acquire);
        if ptr.offset + ptr.len > published {
            return Err(pack_corrupt(
                first_seq,
                header.count,
                &format!(
                    "its payload ({} bytes at {}) lies past the pack file's published length {published}",
                    ptr.len, ptr.offset
                ),
            ));
        }
        let mut buf = vec![0u8; ptr.len as usize];
        match self.packs.read_exact_at(&mut buf, ptr.offset) {
            Ok(()) => Ok(buf),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(pack_corrupt(
                first_seq,
                header.count,
                &format!(
                    "the pack file ends before its payload ({} bytes at {})",
                    ptr.len, ptr.offset
                ),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The pack holding `seq`: (first_seq, value).
    pub(crate) fn pack_containing(&self, seq: u64) -> Result<Option<(u64, sled::IVec)>> {
        let lo = codec::pack_key(0);
        let hi = codec::pack_key(seq);
        match self.log.range(lo.as_slice()..=hi.as_slice()).next_back() {
            Some(kv) => {
                let (k, v) = kv?;
                Ok(codec::pack_key_seq(&k).map(|s| (s, v)))
            }
            None => Ok(None),
        }
    }

    /// The event at `seq` (must be ≤ the head).
    pub(crate) fn event_at(&self, seq: u64) -> Result<StoredEvent> {
        let (first, v) = self
            .pack_containing(seq)?
            .ok_or_else(|| corrupt(seq, "no pack holds this seq"))?;
        let events = self.decode_pack_value(first, &v)?;
        events
            .into_iter()
            .nth((seq - first) as usize)
            .ok_or_else(|| corrupt(seq, format!("pack at {first} does not reach seq {seq}")))
    }

    /// Streams the log from `from_seq` to `to_seq` (inclusive; default the head), one pack
    /// decompressed at a time.
    pub fn read_log(&self, from_seq: u64, to_seq: Option<u64>) -> LogIter<'_> {
        let error = self.settle().err();
        let head = self.published().head.seq;
        let to = to_seq.map_or(head, |t| t.min(head));
        LogIter {
            store: self,
            next: from_seq.max(1),
            to,
            buf: std::collections::VecDeque::new(),
            done: false,
            error,
        }
    }

    /// The events of `stream` from version `from_version` (1-based; 0 or 1 = all), in order.
    pub fn read_stream(&self, stream: &str, from_version: u64) -> Result<Vec<StoredEvent>> {
        self.settle()?;
        let head = self.published().head.seq;
        let lo = index::stream_entry(stream, from_version.max(1));
        let hi = index::stream_upper(stream);
        let entries =
            self.with_index(|st| index::range_all(&self.log, &st.runs, &lo, &hi, usize::MAX))?;
        let mut out = Vec::with_capacity(entries.len());
        let mut cache: Option<(u64, Vec<StoredEvent>)> = None;
        for (k, seq) in entries {
            if seq == 0 || seq > head {
                continue;
            }
            let hit = matches!(&cache, Some((first, evs)) if seq >= *first && seq < *first + evs.len() as u64);
            if !hit {
                let (first, pv) = self
                    .pack_containing(seq)?
                    .ok_or_else(|| corrupt(seq, "no pack holds this seq"))?;
                cache = Some((first, self.decode_pack_value(first, &pv)?));
            }
            let Some((first, evs)) = &cache else { continue };
            let e = evs
                .get((seq - first) as usize)
                .ok_or_else(|| corrupt(seq, "pack does not reach this seq"))?;
            let version = index::parse_stream_entry(&k).map_or(0, |x| x.1);
            if e.stream != stream || e.stream_version != version {
                return Err(corrupt(
                    seq,
                    format!(
                        "stream index {stream}/{version} points at an event of {}/{}",
                        e.stream, e.stream_version
                    ),
                ));
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    /// The event with this id, if stored.
    pub fn get_by_id(&self, id: Uuid) -> Result<Option<StoredEvent>> {
        self.settle()?;
        let head = self.published().head.seq;
        match self.lookup_ids(&[id])?.get(&id) {
            Some(&seq) if seq >= 1 && seq <= head => Ok(Some(self.event_at(seq)?)),
            _ => Ok(None),
        }
    }

    /// The greatest seq whose `recorded_at` ≤ `t` (0 if none): a binary search over pack headers.
    pub fn last_seq_known_at(&self, t: DateTime<Utc>) -> Result<u64> {
        self.settle()?;
        let tm = t.timestamp_micros();
        let head = self.published().head.seq;
        let (mut lo, mut hi) = (1u64, head);
        let mut cand: Option<(u64, PackHeader, sled::IVec)> = None;
        while lo <= hi {
            let mid = lo + (hi - lo) / 2;
            let (first, v) = self
                .pack_containing(mid)?
                .ok_or_else(|| corrupt(mid, "no pack holds this seq"))?;
            let h = PackHeader::decode(&v).map_err(|d| pack_corrupt(first, 0, &d))?;
            if first + u64::from(h.count) <= mid {
                // A pack that does not reach the seq it was found for: damaged (and the search
                // would stop making progress).
                return Err(pack_corrupt(
                    first,
                    h.count,
                    "does not reach the seq it holds",
                ));
            }
            if h.first_rec <= tm {
                lo = first + u64::from(h.count);
                cand = Some((first, h, v));
            } else {
                if first == 0 {
                    break;
                }
                hi = first - 1;
            }
        }
        let Some((first, h, v)) = cand else {
            return Ok(0);
        };
        let last = (first + u64::from(h.count) - 1).min(head);
        if h.last_rec <= tm {
            return Ok(last);
        }
        let mut best = 0;
        for e in self.decode_pack_value(first, &v)? {
            if e.seq > last {
                break;
            }
            match codec::parse_recorded_at(&e.recorded_at) {
                Some(m) if m <= tm => best = e.seq,
                Some(_) => break,
                None => return Err(corrupt(e.seq, "malformed recorded_at")),
            }
        }
        Ok(best)
    }

    // ------------------------------------------------------------------ append

    /// Appends `events` atomically (all or nothing, also across a crash) after checking
    /// `expectations`, and returns once they are durable: a small append once its journal record
    /// is `fdatasync`ed (shared with concurrent appenders), a large one once sled is flushed and
    /// fsynced. A retry whose events are all stored returns once the originals are durable.
    ///
    /// Events whose id is already stored with the same body are returned as duplicates and not
    /// written; when every event is such a duplicate the expectations are not checked (a retry of
    /// a successful append succeeds).
    pub fn append(
        &self,
        events: &[NewEvent],
        expectations: &[(String, ExpectedVersion)],
    ) -> Result<AppendOutcome> {
        for e in events {
            validate_new_event(e)?;
        }
        for (s, _) in expectations {
            if !codec::is_valid_stream(s) {
                return Err(StoreError::InvalidStream { stream: s.clone() });
            }
        }
        let in_flight = InFlight::enter(&self.in_flight);
        let mut guard = self.writer_lock()?;
        if self.pending_over_limit() {
            self.apply_pending_locked()?;
        }
        let publ = self.logical();

        // Duplicates: in the store, then within the batch.
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let stored = self.lookup_ids(&ids)?;
        let mut positions: Vec<Option<Position>> = vec![None; events.len()];
        let mut in_batch: FastMap<Uuid, usize> = FastMap::default();
        in_batch.reserve(events.len());
        let mut fresh = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            if let Some(&seq) = stored.get(&e.event_id) {
                if seq >= 1 && seq <= publ.head.seq {
                    let old = self.event_locked(seq)?;
                    if old.body_tail() != &e.body[1..] {
                        return Err(StoreError::DuplicateEventId {
                            event_id: e.event_id,
                            seq: Some(seq),
                        });
                    }
                    positions[i] = Some(Position {
                        seq,
                        stream_version: old.stream_version,
                        duplicate: true,
                    });
                    continue;
                }
            }
            match in_batch.get(&e.event_id) {
                Some(&j) => {
                    if events[j].body != e.body || events[j].stream != e.stream {
                        return Err(StoreError::DuplicateEventId {
                            event_id: e.event_id,
                            seq: None,
                        });
                    }
                }
                None => {
                    in_batch.insert(e.event_id, i);
                    fresh.push(i);
                }
            }
        }

        if fresh.is_empty() {
            // The originals may be in the pending tail, journaled by an append that is still
            // waiting for its fdatasync: a retry is acknowledged only once they are durable.
            let ticket = self.commits.load(Ordering::SeqCst);
            drop(guard);
            drop(in_flight);
            self.sync_through(ticket)?;
            let positions = fill_batch_dups(events, positions, &in_batch);
            let duplicates = positions.len() as u64;
            return Ok(AppendOutcome {
                positions,
                appended: 0,
                duplicates,
                first_seq: None,
                last_seq: None,
                clock_clamped: false,
                recorded_at: None,
            });
        }

        // Expectations and stream versions.
        let mut versions = self.lookup_versions(
            fresh
                .iter()
                .map(|&i| events[i].stream.as_str())
                .chain(expectations.iter().map(|(s, _)| s.as_str())),
        )?;
        for (s, exp) in expectations {
            let actual = versions.get(s.as_str()).copied().unwrap_or(0);
            if !exp.matches(actual) {
                return Err(StoreError::Conflict {
                    stream: s.clone(),
                    expected: *exp,
                    actual,
                });
            }
        }
        let new_streams = versions
            .iter()
            .filter(|(s, v)| {
                **v == 0
                    && (!expectations.iter().any(|(e, _)| e == s.as_str())
                        || fresh.iter().any(|&i| events[i].stream == s.as_str()))
            })
            .count() as u64;

        let clock_now = (self.clock)().timestamp_micros();
        let (rec_micros, clock_clamped) = if publ.head.seq > 0 && clock_now < publ.head.rec_micros {
            (publ.head.rec_micros, true)
        } else {
            (clock_now, false)
        };
        let recorded_at = codec::format_micros(rec_micros);
        // Journal records carry u32 lengths: anything near that goes the large way.
        let bytes: usize = fresh.iter().map(|&i| events[i].body.len() + 512).sum();
        let large = fresh.len() > self.large_batch_threshold || bytes > JOURNAL_RECORD_MAX;
        let mut head = publ.head;
        // Only a small append keeps its events in memory (for the journal and the pending tail).
        let mut built: Vec<PendingEvent> = Vec::with_capacity(if large { 0 } else { fresh.len() });
        let mut b = Vec::new();
        let mut w = if large {
            // A large append goes to sled directly, after the pending tail.
            self.apply_pending_locked()?;
            Some(LogWriter::new(self, publ, self.index_state(), true)?)
        } else {
            None
        };
        for &i in &fresh {
            let e = &events[i];
            let v = versions
                .get_mut(e.stream.as_str())
                .ok_or_else(|| corrupt(0, "stream version missing"))?;
            *v += 1;
            let seq = head.seq + 1;
            codec::build_envelope(
                &mut b,
                seq,
                &e.stream,
                *v,
                &recorded_at,
                e.schema_version,
                &head.hash,
                &e.body,
            );
            positions[i] = Some(Position {
                seq,
                stream_version: *v,
                duplicate: false,
            });
            match w.as_mut() {
                Some(w) => {
                    if let Err(err) = w.push(&b, &e.stream, *v, &e.event_id, rec_micros) {
                        return Err(self.fail_large(&mut guard, err, true));
                    }
                    head = w.head;
                }
                None => {
                    head.seq = seq;
                    head.hash = codec::sha256(&b);
                    head.rec_micros = rec_micros;
                    built.push(PendingEvent {
                        bytes: std::mem::take(&mut b),
                        stream: e.stream.clone(),
                        version: *v,
                        id: e.event_id,
                        rec_micros,
                    });
                }
            }
        }
        let ticket = match w {
            Some(w) => {
                if let Err(err) = w.finish(new_streams) {
                    return Err(self.fail_large(&mut guard, err, true));
                }
                if self.maybe_merge_runs().is_err() {
                    // The append itself is published; a failed merge only leaves garbage.
                    let _ = self.discard_leftovers(self.published().head.seq, true);
                }
                0
            }
            None => self.journal_append(publ, head, built, new_streams)?,
        };
        drop(guard);
        self.sync_through(ticket)?;
        drop(in_flight);

        let positions = fill_batch_dups(events, positions, &in_batch);
        let appended = fresh.len() as u64;
        Ok(AppendOutcome {
            duplicates: positions.len() as u64 - appended,
            positions,
            appended,
            first_seq: Some(publ.head.seq + 1),
            last_seq: Some(head.seq),
            clock_clamped,
            recorded_at: Some(recorded_at),
        })
    }

    fn pending_over_limit(&self) -> bool {
        if !self.has_pending.load(Ordering::SeqCst) {
            return false;
        }
        let p = lock(&self.pending);
        p.events.len() >= PENDING_EVENTS || p.bytes >= PENDING_BYTES
    }

    /// A small append's second half (writer lock held): one journal record for `built`, then
    /// the events join the pending tail. Returns the group-commit ticket to sync through.
    fn journal_append(
        &self,
        start: Published,
        head: HeadRec,
        built: Vec<PendingEvent>,
        new_streams: u64,
    ) -> Result<u64> {
        let mut payload = Vec::with_capacity(built.iter().map(|e| e.bytes.len() + 4).sum());
        for e in &built {
            payload.extend_from_slice(&(e.bytes.len() as u32).to_be_bytes());
            payload.extend_from_slice(&e.bytes);
        }
        let mut j = lock(&self.journal);
        if j.wants_checkpoint() {
            // Everything journaled so far goes to sled durably; the journal restarts.
            self.apply_pending_locked()?;
            self.flush_durable()?;
            self.mark_all_synced();
            j.restart();
        }
        j.write(start.head.seq + 1, built.len() as u32, &payload)?;
        let ticket = self.next_ticket();
        drop(j);
        let mut p = lock(&self.pending);
        if p.events.is_empty() {
            p.state = self.published();
        }
        let first = start.head.seq + 1;
        for (k, e) in built.iter().enumerate() {
            p.ids.insert(e.id, first + k as u64);
            p.versions.insert(e.stream.clone(), e.version);
        }
        p.bytes += payload.len();
        p.new_streams += new_streams;
        p.state.head = head;
        p.state.events += built.len() as u64;
        p.state.streams += new_streams;
        p.events.extend(built);
        self.has_pending.store(true, Ordering::SeqCst);
        Ok(ticket)
    }

    /// After a failed write: remove leftovers past the head published *now* (a write that
    /// failed after its publishing step keeps what it published), or poison the writer.
    pub(crate) fn fail_large(
        &self,
        poisoned: &mut MutexGuard<'_, Option<String>>,
        err: StoreError,
        large: bool,
    ) -> StoreError {
        if large {
            if let Err(e2) = self.discard_leftovers(self.published().head.seq, true) {
                **poisoned = Some(format!("{err}; cleanup failed: {e2}"));
            }
        }
        err
    }

    pub(crate) fn writer_lock(&self) -> Result<MutexGuard<'_, Option<String>>> {
        let g = lock(&self.writer);
        if let Some(reason) = g.as_ref() {
            return Err(StoreError::Poisoned(reason.clone()));
        }
        Ok(g)
    }

    /// How many events opening this handle re-applied from the journal (sled had lost them in a
    /// crash; see the `journal` module). For tests and diagnostics.
    #[doc(hidden)]
    pub fn replayed_from_journal(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }

    /// Diagnostics hook: every sled tree of the store, by name (the log, the views directory and
    /// one tree per view generation).
    #[doc(hidden)]
    pub fn debug_all_trees(&self) -> Vec<(String, sled::Tree)> {
        let _ = self.settle();
        self.db
            .tree_names()
            .iter()
            .filter_map(|n| {
                let name = String::from_utf8_lossy(n).into_owned();
                self.db.open_tree(n).ok().map(|t| (name, t))
            })
            .collect()
    }

    /// Diagnostics hook: the raw sled tree holding the views.
    #[doc(hidden)]
    pub fn debug_views_tree(&self) -> &sled::Tree {
        &self.views
    }

    /// Whether opening this handle found intact journal records (the last session did not
    /// close cleanly) and therefore flushed sled before the journal could be overwritten.
    #[doc(hidden)]
    pub fn flushed_after_unclean_close(&self) -> bool {
        self.flushed_unclean.load(Ordering::Relaxed)
    }

    /// Test hook: the raw sled tree holding the log (packs, indexes, metadata).
    #[doc(hidden)]
    pub fn debug_raw_tree(&self) -> &sled::Tree {
        let _ = self.settle();
        &self.log
    }
}

impl Store {
    /// Closes the store, as dropping it does. After a session that wrote much (an import, a
    /// rebuild: at least 20,000 events and view rows), also has sled write its snapshot now:
    /// sled 0.34 writes one only when it opens a store, by replaying everything written
    /// since the last one (~0.2 s after importing 1M events), so without this the next
    /// command to open the store, typically a read, would pay for it. Best effort: if the
    /// store cannot be reopened (another process took it meanwhile), that open pays instead.
    pub fn close(self) {
        let heavy = self.session_writes.load(Ordering::Relaxed) >= SNAPSHOT_AFTER_WRITES;
        let (path, cache_capacity) = (self.path.clone(), self.cache_capacity);
        if heavy {
            // Before dropping, whose flush then writes the splits, so that the snapshot below
            // covers them.
            split_deferred_nodes(&self.db);
        }
        drop(self);
        if heavy {
            // A short wait: long enough for sled's own threads to let go of the lock, not
            // for another process that took the store meanwhile (its open pays instead).
            let config = sled_config(&path, cache_capacity);
            if let Ok(db) = open_sled_within(&config, &path, CLOSE_REOPEN_GRACE) {
                drop(db);
            }
        }
    }
}

impl Store {
    /// Notes that this handle is about to change sled (called before every write), writing
    /// `rows` events or view rows (counted for [`Store::close`]).
    pub(crate) fn note_write(&self, rows: u64) {
        self.dirty.store(true, Ordering::SeqCst);
        self.session_writes.fetch_add(rows, Ordering::Relaxed);
    }

    /// Whether closing must apply, flush and fsync: something was written, appended or
    /// journaled in this session, or the journal was not clean when it began.
    fn close_needs_sync(&self) -> bool {
        self.dirty.load(Ordering::SeqCst)
            || self.commits.load(Ordering::SeqCst) > 0
            || self.has_pending.load(Ordering::SeqCst)
            || self.replayed.load(Ordering::SeqCst) > 0
            || self.flushed_unclean.load(Ordering::SeqCst)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // A session that only read (a `show`, a `list`) has nothing to make durable: no
        // flush, no fsync (~10 ms of a read command on this machine's disk).
        // If the tail cannot be applied, the journal keeps it for the next open.
        if self.opened.load(Ordering::SeqCst)
            && self.close_needs_sync()
            && self.settle().is_ok()
            && self.flush_durable().is_ok()
        {
            let _ = lock(&self.journal).close_clean();
        }
        let key = self
            .path
            .canonicalize()
            .unwrap_or_else(|_| self.path.clone());
        let mut closed = lock(&CLOSED_HERE);
        if !closed.contains(&key) {
            closed.push(key);
        }
    }
}

fn fill_batch_dups(
    events: &[NewEvent],
    mut positions: Vec<Option<Position>>,
    in_batch: &FastMap<Uuid, usize>,
) -> Vec<Position> {
    for i in 0..events.len() {
        if positions[i].is_none() {
            if let Some(&j) = in_batch.get(&events[i].event_id) {
                if let Some(p) = positions[j] {
                    positions[i] = Some(Position {
                        duplicate: true,
                        ..p
                    });
                }
            }
        }
    }
    positions
        .into_iter()
        .map(|p| {
            p.unwrap_or(Position {
                seq: 0,
                stream_version: 0,
                duplicate: true,
            })
        })
        .collect()
}

fn validate_new_event(e: &NewEvent) -> Result<()> {
    if !codec::is_valid_stream(&e.stream) {
        return Err(StoreError::InvalidStream {
            stream: e.stream.clone(),
        });
    }
    let b = &e.body;
    let bad = |reason: &str| StoreError::InvalidEvent {
        event_id: e.event_id,
        reason: reason.to_string(),
    };
    if b.len() < 3 || b[0] != b'{' || b[1] != b'"' || b.last() != Some(&b'}') {
        return Err(bad("body must be a non-empty compact JSON object"));
    }
    // `"event_id":"<id>"` anywhere in the body. The finder for the fixed prefix is built once:
    // building one for the whole needle per event was ~3 % of an import.
    static PREFIX: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"event_id\":\""));
    let mut id = [0u8; 37];
    e.event_id.hyphenated().encode_lower(&mut id[..36]);
    id[36] = b'"';
    // Every occurrence, overlapping ones too (`find_iter` skips those).
    let mut from = 0;
    let mut found = false;
    while let Some(at) = b.get(from..).and_then(|rest| PREFIX.find(rest)) {
        let at = from + at;
        if b.get(at + 12..at + 49) == Some(&id[..]) {
            found = true;
            break;
        }
        from = at + 1;
    }
    if !found {
        return Err(bad("body must carry \"event_id\" equal to the event's id"));
    }
    Ok(())
}

pub(crate) fn pack_corrupt(first_seq: u64, count: u32, detail: &str) -> StoreError {
    let range = if count > 0 {
        format!("seqs {first_seq}..={}", first_seq + u64::from(count) - 1)
    } else {
        format!("starting at seq {first_seq}")
    };
    corrupt(first_seq, format!("damaged pack {range}: {detail}"))
}

/// Builds packs and index entries for a run of new events, in one atomic step (small) or in
/// chunks past the published head then one publishing step (large). `finish` publishes the new
/// head, counters and index run list, and updates the store's in-memory state.
pub(crate) struct LogWriter<'s> {
    store: &'s Store,
    large: bool,
    batch: sled::Batch,
    batch_events: usize,
    pack: PackBuilder,
    pub(crate) head: HeadRec,
    start: Published,
    index: Arc<IndexState>,
    id_entries: Vec<([u8; 16], u64)>,
    entries: Vec<Entry>,
    sealed: Vec<PackBuilder>,
    /// A large write's pack compression, one chunk behind the loop that builds the packs.
    zstd: PackPipeline,
    wrote_pending: bool,
    /// Where a large write's next pack payload goes in the pack file (starts at the
    /// published length).
    pack_pos: u64,
    /// A large write's early writeback of the pack file and sled's file.
    writeback: Option<Writeback>,
}

impl<'s> LogWriter<'s> {
    pub(crate) fn new(
        store: &'s Store,
        start: Published,
        index: Arc<IndexState>,
        large: bool,
    ) -> Result<LogWriter<'s>> {
        if large {
            let published = store.packs_len.load(Ordering::Acquire);
            let on_disk = store.packs.metadata()?.len();
            if on_disk < published {
                // Damaged from outside: writing past the published length would leave a hole
                // where published payloads were. `verify` names the packs it lost.
                return Err(corrupt(
                    start.head.seq,
                    format!(
                        "the pack file is {on_disk} bytes, shorter than its published length \
                         {published}: a large append would write past a hole"
                    ),
                ));
            }
        }
        let mut pack = PackBuilder::new(start.head.seq + 1);
        if !large && store.tail_rewrite_limit > 0 && start.head.seq > 0 {
            if let Some((first, v)) = store.pack_containing(start.head.seq)? {
                if let Ok(h) = PackHeader::decode(&v) {
                    if h.extra_parts == 0
                        && (h.raw_len as usize) < store.tail_rewrite_limit
                        && first + u64::from(h.count) == start.head.seq + 1
                    {
                        if let Ok((h, raw)) = store.decode_pack_raw(first, &v) {
                            pack = PackBuilder::from_decoded(first, &h, raw);
                        }
                    }
                }
            }
        }
        Ok(LogWriter {
            store,
            large,
            batch: sled::Batch::default(),
            batch_events: 0,
            pack,
            head: start.head,
            start,
            index,
            id_entries: Vec::new(),
            entries: Vec::new(),
            sealed: Vec::new(),
            zstd: PackPipeline::default(),
            wrote_pending: false,
            pack_pos: store.packs_len.load(Ordering::Acquire),
            writeback: large.then(|| Writeback::start(&store.path)).flatten(),
        })
    }

    /// Closes the current pack (a new one starts at the next seq). Large writes hand their
    /// packs to the compression thread when the chunk is written ([`PackPipeline`]); small
    /// ones encode it right away.
    fn seal_pack(&mut self) {
        let next = PackBuilder::new(self.head.seq + 1);
        let pack = std::mem::replace(&mut self.pack, next);
        if self.large {
            self.sealed.push(pack);
        } else {
            insert_pack(&mut self.batch, pack.first_seq, pack.encode());
        }
    }

    pub(crate) fn push(
        &mut self,
        b: &[u8],
        stream: &str,
        version: u64,
        id: &Uuid,
        rec_micros: i64,
    ) -> Result<()> {
        if self.pack.would_overflow(b.len()) {
            self.seal_pack();
            if self.large && self.batch_events >= self.store.chunk_events {
                self.write_chunk(false)?;
            }
        }
        self.head.seq += 1;
        self.head.hash = codec::sha256(b);
        self.head.rec_micros = rec_micros;
        self.pack.push(b, rec_micros);
        self.id_entries.push((*id.as_bytes(), self.head.seq));
        self.entries
            .push((index::stream_entry(stream, version), self.head.seq));
        self.batch_events += 1;
        Ok(())
    }

    /// Writes a chunk: hands the sealed packs to the compression thread, writes the packs it
    /// has finished (the previous chunk's; with `drain`, all of them) to the pack file, and
    /// applies the batch with their pointers.
    fn write_chunk(&mut self, drain: bool) -> Result<()> {
        let packs = std::mem::take(&mut self.sealed);
        self.zstd.send(packs);
        while let Some(encoded) = self.zstd.receive(drain)? {
            self.write_external(&encoded)?;
        }
        let mut batch = std::mem::take(&mut self.batch);
        if !self.wrote_pending {
            batch.insert(codec::K_PENDING, &self.start.head.seq.to_be_bytes()[..]);
            self.wrote_pending = true;
        }
        self.store.note_write(0);
        self.store.log.apply_batch(batch)?;
        self.batch_events = 0;
        if let Some(w) = &self.writeback {
            w.kick();
        }
        Ok(())
    }

    /// Syncs the pack file when this write put payloads in it.
    fn sync_pack_file(&self) -> Result<()> {
        if let Some(w) = &self.writeback {
            w.check()?;
        }
        if self.pack_pos > self.start_pack_len() {
            self.store.packs.sync_data()?;
            if self.start_pack_len() == 0 {
                // The first payloads the store relies on: the file's name (created at open)
                // must be durable too.
                File::open(&self.store.path)?.sync_all()?;
            }
        }
        Ok(())
    }

    /// Writes what is left, publishes the new head and run list, and updates the store's
    /// in-memory state. Returns the new published state. A large write is durable when this
    /// returns; a small one is not (its caller journals it or flushes sled).
    pub(crate) fn finish(mut self, new_streams: u64) -> Result<Published> {
        if self.pack.count > 0 && self.pack.next_seq() > self.start.head.seq + 1 {
            self.seal_pack();
        }
        let ids = std::mem::take(&mut self.id_entries);
        let streams = std::mem::take(&mut self.entries);
        let run_id = self.index.next_id;
        let (run, writes) = if self.large {
            // The run is sorted and encoded on a thread of its own while the last packs are
            // written and the pack file is synced: it was ~30 ms of a 100k import's tail,
            // with the other core idle.
            let builder = std::thread::Builder::new()
                .name("index-run".into())
                .spawn(move || encode_index_run(run_id, ids, streams))?;
            let written = self.write_chunk(true).and_then(|()| self.sync_pack_file());
            let run = builder
                .join()
                .map_err(|_| StoreError::Poisoned("index run thread panicked".into()));
            written?;
            run?
        } else {
            encode_index_run(run_id, ids, streams)
        };
        let mut bytes = 0usize;
        for (k, v) in writes {
            bytes += v.len();
            self.batch.insert(k, v);
            if self.large && bytes > 4 << 20 {
                self.write_chunk(false)?;
                bytes = 0;
            }
        }
        let mut runs = self.index.runs.clone();
        runs.push(Arc::new(run));
        let new_index = IndexState {
            next_id: run_id + 1,
            runs,
        };
        if self.large {
            // One fsync for all chunks (the pack file's, synced above, then sled's), then the
            // small publishing step.
            self.write_chunk(true)?;
            self.store.flush_durable()?;
        }
        let events = self.start.events + (self.head.seq - self.start.head.seq);
        let streams = self.start.streams + new_streams;
        let mut batch = if self.large {
            let mut b = sled::Batch::default();
            b.remove(codec::K_PENDING);
            if self.pack_pos > self.start_pack_len() {
                b.insert(codec::K_PACK_FILE, &self.pack_pos.to_be_bytes()[..]);
            }
            b
        } else {
            std::mem::take(&mut self.batch)
        };
        batch.insert(index::K_RUNS, new_index.encode_list());
        batch.insert(codec::K_HEAD, &self.head.encode()[..]);
        batch.insert(codec::K_COUNTS, &codec::encode_counts(events, streams)[..]);
        self.store.note_write(self.head.seq - self.start.head.seq);
        self.store.log.apply_batch(batch)?;
        // Published in sled: from here on the in-memory state must say so, even if the flush
        // below fails (a failed append's cleanup discards only what lies past this head).
        let published = Published {
            head: self.head,
            events,
            streams,
        };
        self.store.set_index_state(new_index);
        if self.large {
            self.store.packs_len.store(self.pack_pos, Ordering::Release);
        }
        self.store.set_published(published);
        if self.large {
            // sled now holds everything durably, so the journal restarts: its records must
            // stay contiguous in seq, and this append's events are not in it.
            let mut j = lock(&self.store.journal);
            self.store.flush_durable()?;
            self.store.mark_all_synced();
            j.restart();
        }
        Ok(published)
    }
}

impl LogWriter<'_> {
    /// The pack file's published length when this write started (nothing past it is live).
    fn start_pack_len(&self) -> u64 {
        self.store.packs_len.load(Ordering::Acquire)
    }

    /// Writes compressed packs' payloads to the pack file past everything published (one
    /// `pwrite`), and their pointers into the batch.
    fn write_external(&mut self, packs: &[ExternalPack]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let total: usize = packs.iter().map(|p| p.payload.len()).sum();
        let mut buf = Vec::with_capacity(total);
        let mut pos = self.pack_pos;
        for p in packs {
            self.batch
                .insert(&codec::pack_key(p.first_seq)[..], p.value(pos));
            buf.extend_from_slice(&p.payload);
            pos += p.payload.len() as u64;
        }
        self.store.packs.write_all_at(&buf, self.pack_pos)?;
        self.pack_pos = pos;
        Ok(())
    }
}

/// Sorts a write's index entries and encodes them as run `run_id`. Id entries (`i…`) sort
/// before stream entries (`s…`), so the two kinds are sorted and encoded apart, and for a
/// large write (at least [`PARALLEL_RUN_MIN`] entries of each) on two threads: the run was
/// ~30 ms of a 100k import's tail, on one thread while the other core idled.
fn encode_index_run(
    run_id: u64,
    ids: Vec<([u8; 16], u64)>,
    streams: Vec<Entry>,
) -> (index::Run, index::Writes) {
    fn id_entries(mut ids: Vec<([u8; 16], u64)>) -> Vec<Entry> {
        ids.sort_unstable();
        ids.into_iter()
            .map(|(id, seq)| (index::id_entry(&Uuid::from_bytes(id)), seq))
            .collect()
    }
    fn stream_entries(mut streams: Vec<Entry>) -> Vec<Entry> {
        streams.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        streams
    }
    let parts = if ids.len().min(streams.len()) >= PARALLEL_RUN_MIN {
        // The ids go through a cell so that, if no thread can be started, they are still here
        // to be encoded on this one.
        let ids = Mutex::new(Some(ids));
        let take = || {
            lock(&ids)
                .take()
                .map(|ids| index::RunPart::encode(&id_entries(ids)))
        };
        std::thread::scope(|s| {
            let ids_thread = std::thread::Builder::new()
                .name("index-run-ids".into())
                .spawn_scoped(s, take)
                .ok();
            let streams = index::RunPart::encode(&stream_entries(streams));
            let ids = match ids_thread {
                Some(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                None => take(),
            };
            vec![ids.unwrap_or_default(), streams]
        })
    } else {
        let mut entries = id_entries(ids);
        entries.append(&mut stream_entries(streams));
        vec![index::RunPart::encode(&entries)]
    };
    index::assemble_run(run_id, parts)
}

/// Entries of each kind from which [`encode_index_run`] sorts and encodes the two kinds on
/// two threads.
const PARALLEL_RUN_MIN: usize = 16 * 1024;

fn insert_pack(batch: &mut sled::Batch, first: u64, parts: Vec<Vec<u8>>) {
    for (i, p) in parts.into_iter().enumerate() {
        if i == 0 {
            batch.insert(&codec::pack_key(first)[..], p);
        } else {
            batch.insert(&codec::part_key(first, i as u16)[..], p);
        }
    }
}

/// A large write's pack compression on a thread of its own, pipelined one chunk behind the
/// writer: while the thread compresses chunk k, the writer hashes and packs chunk k+1 (an
/// import's views are prepared on the other core meanwhile). Chunks come back in the order
/// they were sent. Started at the first chunk; if no thread can be started, chunks are
/// compressed on the writer's thread.
#[derive(Default)]
struct PackPipeline {
    worker: Option<PackWorker>,
    /// Chunks compressed on the writer's thread (no worker), not yet written.
    inline: std::collections::VecDeque<Vec<ExternalPack>>,
    /// Chunks sent to the worker and not yet received.
    in_flight: usize,
    started: bool,
}

struct PackWorker {
    to: std::sync::mpsc::Sender<Vec<PackBuilder>>,
    from: std::sync::mpsc::Receiver<Vec<ExternalPack>>,
}

impl PackPipeline {
    /// Hands a chunk's sealed packs over for compression.
    fn send(&mut self, packs: Vec<PackBuilder>) {
        if packs.is_empty() {
            return;
        }
        if !self.started {
            self.started = true;
            self.worker = PackWorker::spawn();
        }
        let packs = match self.worker.as_ref() {
            Some(w) => match w.to.send(packs) {
                Ok(()) => {
                    self.in_flight += 1;
                    return;
                }
                // The worker is gone (it panicked): `receive` reports it; compress here.
                Err(std::sync::mpsc::SendError(packs)) => packs,
            },
            None => packs,
        };
        self.inline
            .push_back(packs.iter().map(PackBuilder::encode_external).collect());
    }

    /// The next compressed chunk, in order: one is left with the worker unless `drain`.
    fn receive(&mut self, drain: bool) -> Result<Option<Vec<ExternalPack>>> {
        if let Some(done) = self.inline.pop_front() {
            return Ok(Some(done));
        }
        if self.in_flight == 0 || (!drain && self.in_flight == 1) {
            return Ok(None);
        }
        let w = self
            .worker
            .as_ref()
            .ok_or_else(|| StoreError::Poisoned("pack compression thread missing".into()))?;
        match w.from.recv() {
            Ok(done) => {
                self.in_flight -= 1;
                Ok(Some(done))
            }
            Err(_) => Err(StoreError::Poisoned(
                "pack compression thread panicked".into(),
            )),
        }
    }
}

/// A large write's early writeback: after each chunk, a thread of its own `fdatasync`s the
/// pack file and sled's file, so that the disk writes them while the append goes on. The
/// kernel would otherwise hold every dirty page until the append's final syncs, which then
/// waited for the whole write (at ~1.5 GB/s on this machine's disk, 12 ms for 16 MiB).
///
/// It changes nothing about durability: the append's own syncs still come after the last
/// write and are what an acknowledgement rests on. The files are opened anew (their own open
/// file descriptions), so a writeback error that a background sync meets is still reported to
/// the store's own handles' syncs (Linux reports it to every open file description), and is
/// also checked by [`Writeback::check`].
struct Writeback {
    to: Option<std::sync::mpsc::Sender<()>>,
    failed: Arc<Mutex<Option<String>>>,
    /// Rounds of syncs done (for tests).
    rounds: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writeback {
    /// Starts the thread for the store at `dir`; `None` if a file cannot be opened or no
    /// thread started (the append then syncs everything at its end, as without it).
    fn start(dir: &Path) -> Option<Writeback> {
        let files = [
            File::open(dir.join(PACK_FILE)).ok()?,
            File::open(dir.join(SLED_FILE)).ok()?,
        ];
        let (to, kicks) = std::sync::mpsc::channel::<()>();
        let failed = Arc::new(Mutex::new(None));
        let rounds = Arc::new(AtomicU64::new(0));
        let (failed_in, rounds_in) = (Arc::clone(&failed), Arc::clone(&rounds));
        let thread = std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || {
                while kicks.recv().is_ok() {
                    // Kicks that came meanwhile are covered by this round.
                    while kicks.try_recv().is_ok() {}
                    for f in &files {
                        if let Err(e) = f.sync_data() {
                            *lock(&failed_in) = Some(e.to_string());
                            return;
                        }
                    }
                    rounds_in.fetch_add(1, Ordering::Relaxed);
                }
            })
            .ok()?;
        Some(Writeback {
            to: Some(to),
            failed,
            rounds,
            thread: Some(thread),
        })
    }

    /// Asks for a writeback round (kicks that come during a round are covered by the next
    /// one; never blocks the writer).
    fn kick(&self) {
        if let Some(to) = &self.to {
            let _ = to.send(());
        }
    }

    /// Fails if a background sync failed: the disk could not write what the append wrote.
    fn check(&self) -> Result<()> {
        match lock(&self.failed).as_ref() {
            Some(e) => Err(StoreError::Io(std::io::Error::other(format!(
                "writing the append back to disk failed: {e}"
            )))),
            None => Ok(()),
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        drop(self.to.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl fmt::Debug for Writeback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writeback")
            .field("rounds", &self.rounds.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl PackWorker {
    fn spawn() -> Option<PackWorker> {
        let (to, jobs) = std::sync::mpsc::channel::<Vec<PackBuilder>>();
        let (done, from) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("pack-zstd".into())
            .spawn(move || {
                for packs in jobs {
                    let encoded: Vec<ExternalPack> =
                        packs.iter().map(PackBuilder::encode_external).collect();
                    // The raw packs are freed here, not on the writer's thread.
                    drop(packs);
                    if done.send(encoded).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(PackWorker { to, from })
    }
}

impl fmt::Debug for PackPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackPipeline")
            .field("worker", &self.worker.is_some())
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

/// Streaming iterator over the log, decompressing one pack at a time.
pub struct LogIter<'a> {
    store: &'a Store,
    next: u64,
    to: u64,
    buf: std::collections::VecDeque<StoredEvent>,
    done: bool,
    /// A failure to settle the pending tail, yielded first.
    error: Option<StoreError>,
}

impl fmt::Debug for LogIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogIter")
            .field("next", &self.next)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl LogIter<'_> {
    fn fill(&mut self) -> Result<()> {
        let (first, v) = self
            .store
            .pack_containing(self.next)?
            .ok_or_else(|| corrupt(self.next, "no pack holds this seq"))?;
        let end_hint = self
            .store
            .next_pack_start(first)?
            .map(|n| n - 1)
            .unwrap_or(self.to);
        let events = self
            .store
            .decode_pack_value(first, &v)
            .map_err(|e| match e {
                StoreError::Corrupt { detail, .. } if !detail.contains("..=") => corrupt(
                    first,
                    format!("damaged pack seqs {first}..={end_hint}: {detail}"),
                ),
                other => other,
            })?;
        nudge_lru(&self.store.log, &codec::pack_key(first));
        let last = first + events.len() as u64 - 1;
        if last < self.next {
            return Err(corrupt(
                self.next,
                format!("missing events: pack at {first} ends at {last}"),
            ));
        }
        for e in events {
            if e.seq >= self.next && e.seq <= self.to {
                self.buf.push_back(e);
            }
        }
        Ok(())
    }
}

/// Makes sled 0.34's page cache act on the accesses it has queued for the page holding `key`,
/// so that a long scan keeps about `cache_capacity` of pages instead of all it read.
///
/// sled's LRU is split into 256 shards (by page id), and a shard only processes the accesses
/// it queued (and evicts down to its share of the capacity) once it has 64 of them. A scan
/// that reads each leaf once fills hardly any queue before ~16,000 page-ins: on a 1M-event
/// rebuild it kept every log page it read (~70 MB). Reading the key again 64 times (the page
/// is cached) fills its shard's queue; a 1M-event rebuild took as long with it (5.8 s).
pub(crate) fn nudge_lru(tree: &sled::Tree, key: &[u8]) {
    for _ in 0..SLED_LRU_QUEUE {
        if tree.get(key).is_err() {
            return;
        }
    }
}

/// Walks every tree of `db` but the views' generation trees once, so that sled performs now
/// the node splits a bulk write deferred (the caller flushes them). sled 0.34 splits a node
/// only when a traversal finds it oversized, and after an import many are: the first full
/// scan (a rebuild) then did the splits, and with them allocated sled's two 8 MiB IO buffers
/// at its peak of memory (first rebuild after a 1M-event import: 280–295 → ~242 MiB). The
/// generation trees are left out: walking their rows was ~13 ms of a 100k import's close,
/// and without it the rebuilds after a 1M import peaked the same (213–218 against 216–219
/// MiB in alternating runs). Errors are left to the next open.
fn split_deferred_nodes(db: &sled::Db) {
    for name in db.tree_names() {
        if name.starts_with(crate::views::GEN_TREE_PREFIX.as_bytes()) {
            continue;
        }
        if let Ok(tree) = db.open_tree(name) {
            for key in tree.iter().keys() {
                if key.is_err() {
                    break;
                }
            }
        }
    }
}

/// The accesses one shard of sled 0.34's LRU queues before it processes them.
const SLED_LRU_QUEUE: usize = 64;

impl Store {
    pub(crate) fn next_pack_start(&self, first: u64) -> Result<Option<u64>> {
        let start = codec::pack_key(first.saturating_add(1));
        let end = [codec::P_PACK + 1];
        match self.log.range(start.as_slice()..end.as_slice()).next() {
            Some(kv) => Ok(codec::pack_key_seq(&kv?.0)),
            None => Ok(None),
        }
    }
}

impl Iterator for LogIter<'_> {
    type Item = Result<StoredEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(e) = self.error.take() {
            self.done = true;
            return Some(Err(e));
        }
        if self.buf.is_empty() {
            if self.next > self.to {
                self.done = true;
                return None;
            }
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
            if self.buf.is_empty() {
                self.done = true;
                return Some(Err(corrupt(self.next, "missing event")));
            }
        }
        let e = self.buf.pop_front()?;
        self.next = e.seq + 1;
        Some(Ok(e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chunk(first: u64, packs: u64) -> Vec<PackBuilder> {
        (0..packs)
            .map(|i| {
                let mut p = PackBuilder::new(first + i);
                p.push(format!("{{\"n\":{}}}", first + i).as_bytes(), 0);
                p
            })
            .collect()
    }

    fn seqs(done: &[ExternalPack]) -> Vec<u64> {
        done.iter().map(|p| p.first_seq).collect()
    }

    #[test]
    fn pack_pipeline_keeps_one_chunk_in_flight_and_returns_chunks_in_order() {
        let mut p = PackPipeline::default();
        p.send(chunk(1, 3));
        assert!(
            p.receive(false).unwrap().is_none(),
            "the first chunk stays in flight"
        );
        p.send(Vec::new());
        p.send(chunk(4, 2));
        assert_eq!(seqs(&p.receive(false).unwrap().unwrap()), [1, 2, 3]);
        assert!(p.receive(false).unwrap().is_none());
        p.send(chunk(6, 1));
        p.send(chunk(7, 2));
        let mut drained = Vec::new();
        while let Some(done) = p.receive(true).unwrap() {
            drained.extend(seqs(&done));
        }
        assert_eq!(drained, [4, 5, 6, 7, 8]);
        assert_eq!(p.in_flight, 0);
    }

    /// The index run of a large write, sorted and encoded in two parts on two threads, holds
    /// every entry and finds each as a run encoded in one pass does; a small write's run is
    /// byte for byte the one-pass run.
    #[test]
    fn an_index_run_encoded_in_two_parts_finds_what_one_pass_finds() {
        for n in [10usize, PARALLEL_RUN_MIN + 4_321] {
            let mut ids = Vec::new();
            let mut streams = Vec::new();
            for i in 0..n as u64 {
                // Ids in no particular order; streams interleaved, versions ascending.
                let id = Uuid::from_u128(u128::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
                ids.push((*id.as_bytes(), i + 1));
                let stream = format!("stream-{}", (i * 7919) % 997);
                streams.push((index::stream_entry(&stream, i / 997 + 1), i + 1));
            }
            let mut whole: Vec<Entry> = ids
                .iter()
                .map(|(id, seq)| (index::id_entry(&Uuid::from_bytes(*id)), *seq))
                .chain(streams.iter().cloned())
                .collect();
            whole.sort();
            let (one_pass, one_pass_writes) = index::encode_run(7, &whole);
            let (run, writes) = encode_index_run(7, ids, streams);
            assert_eq!(
                (run.count, &run.last_key),
                (2 * n as u64, &one_pass.last_key)
            );
            if n < PARALLEL_RUN_MIN {
                assert_eq!(writes, one_pass_writes);
                continue;
            }
            // Two parts: the ids' last block ends early, so there is one block more at most.
            assert!(run.fences.len() - one_pass.fences.len() <= 1);
            let tmp = tempfile::tempdir().unwrap();
            let db = sled::open(tmp.path()).unwrap();
            let t = db.open_tree("t").unwrap();
            for (k, v) in writes {
                t.insert(k, v).unwrap();
            }
            assert_eq!(index::run_entries(&t, &run).unwrap(), whole);
            let keys: Vec<Vec<u8>> = whole.iter().map(|e| e.0.clone()).collect();
            let found = index::floor_many(&t, &[Arc::new(run)], &keys, &|q, k| q == k)
                .unwrap()
                .unwrap();
            assert_eq!(
                found.into_iter().map(Option::unwrap).collect::<Vec<_>>(),
                whole
            );
        }
    }

    #[test]
    fn writeback_needs_the_pack_file_and_sleds_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Writeback::start(dir.path()).is_none());
        std::fs::write(dir.path().join(PACK_FILE), b"p").unwrap();
        assert!(Writeback::start(dir.path()).is_none(), "no db file yet");
        std::fs::write(dir.path().join(SLED_FILE), b"d").unwrap();
        assert!(Writeback::start(dir.path()).is_some());
    }

    #[test]
    fn writeback_syncs_after_kicks_and_reports_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PACK_FILE), b"p").unwrap();
        std::fs::write(dir.path().join(SLED_FILE), b"d").unwrap();
        let w = Writeback::start(dir.path()).unwrap();
        for _ in 0..50 {
            w.kick();
        }
        let rounds = Arc::clone(&w.rounds);
        w.check().unwrap();
        *lock(&w.failed) = Some("injected EIO".into());
        let err = w.check().unwrap_err().to_string();
        assert!(
            err.contains("writing the append back to disk failed: injected EIO"),
            "{err}"
        );
        // Dropping waits for the kicks sent: at least one round, and kicks that came
        // during a round are covered by it.
        drop(w);
        let n = rounds.load(Ordering::Relaxed);
        assert!((1..=50).contains(&n), "{n} rounds");
    }

    #[test]
    fn pack_pipeline_without_a_thread_compresses_inline() {
        let mut p = PackPipeline {
            started: true,
            ..PackPipeline::default()
        };
        p.send(chunk(1, 2));
        let done = p.receive(false).unwrap().unwrap();
        assert_eq!(seqs(&done), [1, 2]);
        assert!(done.iter().all(|e| e.header.is_external()));
        assert!(p.receive(true).unwrap().is_none());
    }
}
