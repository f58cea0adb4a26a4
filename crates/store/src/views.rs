//! View storage for projections: namespaced key/value rows with an atomically maintained
//! checkpoint, version and order-independent digest.
//!
//! Tree `views` (the directory):
//! - `N ‖ ns` → generation (u64 BE): the namespace's live generation (the swap pointer)
//! - `C` → last generation allocated (u64 BE)
//! - `D ‖ gen BE` → empty: an unreferenced generation whose tree still needs dropping
//!
//! One sled tree per generation, named `view-gen-<gen>` (so a replaced generation goes with one
//! `drop_tree`, which frees its pages, instead of one removal per row: at 1M events deleting the
//! old rows was most of a rebuild's swap):
//! - `M` → [`ViewMeta`] (binary)
//! - `R ‖ key` → value (see [`encode_row`])
//!
//! A generation's rows and metadata are one tree, so one batch commits both atomically.

use std::fmt;

use crate::codec::{self, be_u64};
use crate::error::{corrupt, Result, StoreError};
use crate::store::{lock, FastMap, Store};
use crate::types::ViewMeta;

const K_GEN_COUNTER: &[u8] = b"C";

fn ns_key(ns: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(ns.len() + 1);
    k.push(b'N');
    k.extend_from_slice(ns.as_bytes());
    k
}

pub(crate) const GEN_TREE_PREFIX: &str = "view-gen-";
const K_META: &[u8] = b"M";
const P_ROW: u8 = b'R';

fn gen_tree_name(gen: u64) -> String {
    format!("{GEN_TREE_PREFIX}{gen}")
}

fn row_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(P_ROW);
    k.extend_from_slice(key);
    k
}

fn garbage_key(gen: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'D';
    k[1..].copy_from_slice(&gen.to_be_bytes());
    k
}

/// Hash of one row: `sha256(len(key) u64 BE ‖ key ‖ value)` as 4 little-endian u64 lanes.
fn row_lanes(key: &[u8], value: &[u8]) -> [u64; 4] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update((key.len() as u64).to_be_bytes());
    h.update(key);
    h.update(value);
    let d: [u8; 32] = h.finalize().into();
    to_lanes(&d)
}

fn to_lanes(d: &[u8; 32]) -> [u64; 4] {
    let mut l = [0u64; 4];
    for (i, lane) in l.iter_mut().enumerate() {
        let mut a = [0u8; 8];
        a.copy_from_slice(&d[i * 8..i * 8 + 8]);
        *lane = u64::from_le_bytes(a);
    }
    l
}

fn from_lanes(l: &[u64; 4]) -> [u8; 32] {
    let mut d = [0u8; 32];
    for (i, lane) in l.iter().enumerate() {
        d[i * 8..i * 8 + 8].copy_from_slice(&lane.to_le_bytes());
    }
    d
}

fn add_lanes(a: &mut [u64; 4], b: &[u64; 4]) {
    for i in 0..4 {
        a[i] = a[i].wrapping_add(b[i]);
    }
}

fn sub_lanes(a: &mut [u64; 4], b: &[u64; 4]) {
    for i in 0..4 {
        a[i] = a[i].wrapping_sub(b[i]);
    }
}

fn encode_meta(m: &ViewMeta) -> Vec<u8> {
    let mut v = Vec::with_capacity(128);
    v.extend_from_slice(&m.version.to_be_bytes());
    v.extend_from_slice(&m.checkpoint.to_be_bytes());
    v.extend_from_slice(&m.digest);
    v.extend_from_slice(&m.rows.to_be_bytes());
    v.push(m.created_at.len() as u8);
    v.extend_from_slice(m.created_at.as_bytes());
    match &m.rebuilt_at {
        Some(r) => {
            v.push(r.len() as u8);
            v.extend_from_slice(r.as_bytes());
        }
        None => v.push(0xff),
    }
    v
}

fn decode_meta(b: &[u8]) -> Option<ViewMeta> {
    if b.len() < 54 {
        return None;
    }
    let version = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let checkpoint = be_u64(&b[4..12]);
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&b[12..44]);
    let rows = be_u64(&b[44..52]);
    let mut pos = 52;
    let clen = *b.get(pos)? as usize;
    pos += 1;
    let created_at = std::str::from_utf8(b.get(pos..pos + clen)?)
        .ok()?
        .to_owned();
    pos += clen;
    let rlen = *b.get(pos)?;
    pos += 1;
    let rebuilt_at = if rlen == 0xff {
        None
    } else {
        Some(
            std::str::from_utf8(b.get(pos..pos + rlen as usize)?)
                .ok()?
                .to_owned(),
        )
    };
    Some(ViewMeta {
        version,
        checkpoint,
        digest,
        rows,
        rebuilt_at,
        created_at,
    })
}

fn bad_view(ns: &str, what: &str) -> StoreError {
    StoreError::Corrupt {
        seq: 0,
        detail: format!("view {ns:?}: {what}"),
    }
}

/// Row values of at least this many bytes are stored zstd-compressed when that is smaller.
const ROW_COMPRESS_MIN: usize = 64;
/// Stored row value tags (a value whose first byte is neither is stored as is: JSON rows and
/// id lists never start with 0x00 or 0x01).
const ROW_ZSTD: u8 = 0;
const ROW_RAW_ESCAPED: u8 = 1;
/// The second byte after [`ROW_RAW_ESCAPED`] that marks a row compressed with the row
/// dictionary. An escaped value always starts with 0x00 or 0x01, so `0x01 0x02` was never
/// written by an older format, and rows of format 5 stores need no rewriting.
const ROW_DICT_MARK: u8 = 2;

/// How a row value is stored. Since format 6: `0x01 0x02 ‖ raw_len u32 BE ‖ zstd frame` made
/// with the row dictionary ([`codec::ROW_DICT`]) when that is smaller, else as is (`0x01 ‖
/// value` when the value itself starts with 0x00 or 0x01). Formats 4 and 5 wrote `0x00 ‖
/// raw_len u32 BE ‖ zstd frame` (no dictionary), still read; formats 1 and 2 raw values only,
/// which decode as is. Digests are over the values, not their stored form.
fn encode_row(v: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    if v.len() >= ROW_COMPRESS_MIN {
        if let Some(z) = codec::zstd_compress_row(v) {
            if z.len() + 6 < v.len() {
                let mut out = Vec::with_capacity(z.len() + 6);
                out.push(ROW_RAW_ESCAPED);
                out.push(ROW_DICT_MARK);
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(&z);
                return Cow::Owned(out);
            }
        }
    }
    match v.first() {
        Some(&(ROW_ZSTD | ROW_RAW_ESCAPED)) => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.push(ROW_RAW_ESCAPED);
            out.extend_from_slice(v);
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(v),
    }
}

/// Rows in their stored form (compressed when that is smaller) with their digest
/// contributions, made from a list of changes without the store, for
/// [`Store::view_commit_encoded`].
#[derive(Debug, Default)]
pub struct EncodedRows {
    stored: Vec<Option<Vec<u8>>>,
    lanes: Vec<Option<[u64; 4]>>,
}

impl EncodedRows {
    /// Encodes the rows of `changes` (`None` = a deletion, nothing to encode).
    pub fn of(changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> EncodedRows {
        let mut out = EncodedRows {
            stored: Vec::with_capacity(changes.len()),
            lanes: Vec::with_capacity(changes.len()),
        };
        for (k, v) in changes {
            out.stored
                .push(v.as_deref().map(|v| encode_row(v).into_owned()));
            out.lanes.push(v.as_deref().map(|v| row_lanes(k, v)));
        }
        out
    }

    /// Refuses rows that were not made from `changes` (by their count).
    fn check(&self, ns: &str, changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        if self.stored.len() == changes.len() {
            return Ok(());
        }
        Err(bad_view(
            ns,
            &format!(
                "{} encoded rows for {} changes",
                self.stored.len(),
                changes.len()
            ),
        ))
    }
}

/// Where [`fold_changes`] puts each stored row (`None` = delete).
type RowPut<'a> = dyn FnMut(Vec<u8>, Option<&[u8]>) -> Result<()> + 'a;

/// Folds `changes` into `meta` (row count, digest) and hands each stored row key and value
/// (`None` = delete) to `put`. Old values come from earlier changes in the list, else from
/// `tree` (`None`: a new, empty tree).
fn fold_changes(
    ns: &str,
    changes: &[(Vec<u8>, Option<Vec<u8>>)],
    encoded: &EncodedRows,
    tree: Option<&sled::Tree>,
    meta: &mut ViewMeta,
    put: &mut RowPut<'_>,
) -> Result<()> {
    let mut lanes = to_lanes(&meta.digest);
    let mut overlay: FastMap<&[u8], Option<&[u8]>> = FastMap::default();
    overlay.reserve(changes.len());
    for (((k, v), enc), new_lanes) in changes.iter().zip(&encoded.stored).zip(&encoded.lanes) {
        let rk = row_key(k);
        let old: Option<Vec<u8>> = match (overlay.get(k.as_slice()), tree) {
            (Some(o), _) => o.map(|x| x.to_vec()),
            (None, None) => None,
            (None, Some(tree)) => read_row(ns, tree, &rk)?,
        };
        if let Some(o) = &old {
            sub_lanes(&mut lanes, &row_lanes(k, o));
            meta.rows -= 1;
        }
        match (v, enc, new_lanes) {
            (Some(_), Some(e), Some(l)) => {
                add_lanes(&mut lanes, l);
                meta.rows += 1;
                put(rk, Some(e.as_slice()))?;
            }
            _ => put(rk, None)?,
        }
        overlay.insert(k.as_slice(), v.as_deref());
    }
    meta.digest = from_lanes(&lanes);
    Ok(())
}

/// A namespace's first commit, written but not published (see [`Store::view_stage`]).
#[derive(Debug)]
pub struct StagedView {
    ns: String,
    gen: u64,
    meta: ViewMeta,
}

/// Point reads of one namespace's rows (see [`Store::view_reader`]).
#[derive(Debug)]
pub struct ViewReader {
    ns: String,
    /// The generation's tree; `None` when the namespace did not exist.
    tree: Option<sled::Tree>,
}

impl ViewReader {
    /// The row at `key` (its stored form decoded).
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match &self.tree {
            Some(tree) => read_row(&self.ns, tree, &row_key(key)),
            None => Ok(None),
        }
    }
}

/// The row stored at row key `rk` of namespace `ns`'s generation `tree`, decoded.
fn read_row(ns: &str, tree: &sled::Tree, rk: &[u8]) -> Result<Option<Vec<u8>>> {
    match tree.get(rk)? {
        Some(v) => Ok(Some(
            decode_row(&v).map_err(|d| bad_view(ns, &format!("damaged row: {d}")))?,
        )),
        None => Ok(None),
    }
}

/// The value of a stored row.
fn decode_row(stored: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let compressed = |at: usize, dict: bool| {
        let len = stored
            .get(at..at + 4)
            .map(codec::be_u32)
            .ok_or_else(|| "truncated compressed row".to_string())?;
        if len > 64 << 20 {
            return Err(format!("compressed row claims {len} bytes"));
        }
        let payload = &stored[at + 4..];
        let raw = if dict {
            codec::zstd_decompress_row(payload, len as usize)?
        } else {
            codec::zstd_decompress(payload, len as usize)?
        };
        if raw.len() != len as usize {
            return Err("compressed row has the wrong length".into());
        }
        Ok(raw)
    };
    match stored {
        [ROW_ZSTD, ..] => compressed(1, false),
        [ROW_RAW_ESCAPED, ROW_DICT_MARK, ..] => compressed(2, true),
        [ROW_RAW_ESCAPED, rest @ ..] => Ok(rest.to_vec()),
        _ => Ok(stored.to_vec()),
    }
}

/// Iterator over a view's rows in key order, keys without the store's prefix.
pub struct ViewScan {
    iter: Option<sled::Iter>,
    strip: usize,
    err: Option<StoreError>,
}

impl fmt::Debug for ViewScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewScan").finish_non_exhaustive()
    }
}

impl Iterator for ViewScan {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.err.take() {
            self.iter = None;
            return Some(Err(e));
        }
        let it = self.iter.as_mut()?;
        match it.next()? {
            Ok((k, v)) => match decode_row(&v) {
                Ok(v) => Some(Ok((k[self.strip..].to_vec(), v))),
                Err(d) => {
                    self.iter = None;
                    Some(Err(corrupt(0, format!("damaged view row: {d}"))))
                }
            },
            Err(e) => {
                self.iter = None;
                Some(Err(e.into()))
            }
        }
    }
}

/// The order-independent digest of a set of rows, as [`ViewMeta::digest`] keeps it: the sum,
/// lane by lane, of `sha256(len(key) u64 BE ‖ key ‖ value)` read as 4 little-endian u64s.
#[derive(Debug, Clone, Default)]
pub struct RowDigest {
    lanes: [u64; 4],
    rows: u64,
}

impl RowDigest {
    /// Adds one row.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        add_lanes(&mut self.lanes, &row_lanes(key, value));
        self.rows += 1;
    }

    /// The digest of the rows added so far.
    pub fn digest(&self) -> [u8; 32] {
        from_lanes(&self.lanes)
    }

    /// How many rows were added.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

/// Changes per sled batch when a [`ViewRewrite`] writes rows. Small, because sled keeps every
/// page a batch replaces until the batch ends.
const REWRITE_CHUNK: usize = 256;

/// Live rows a [`ViewRewrite`] compares between two nudges of sled's cache.
const LIVE_ROWS_PER_NUDGE: u64 = 32;

/// The metadata version a view carries while a [`ViewRewrite`] is changing its rows in place:
/// no projection has version 0, so a crash part-way leaves a view the next open rebuilds.
pub const VERSION_REWRITING: u32 = 0;

/// Replaces a namespace's rows with a complete new set handed over in key order, writing only
/// the rows that differ (see [`Store::view_rewrite`]).
pub struct ViewRewrite<'a> {
    store: &'a Store,
    ns: String,
    gen: u64,
    tree: sled::Tree,
    /// Whether the namespace still has to be published (it did not exist).
    publish: bool,
    /// The live rows not yet compared, in key order (`None` for a new namespace).
    live: Option<std::iter::Peekable<sled::Iter>>,
    /// The metadata before the rewrite.
    before: Option<ViewMeta>,
    /// Whether the in-place marker is written.
    marked: bool,
    batch: sled::Batch,
    pending: usize,
    live_read: u64,
    digest: RowDigest,
    changed: u64,
    last: Option<Vec<u8>>,
}

impl fmt::Debug for ViewRewrite<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewRewrite")
            .field("ns", &self.ns)
            .field("rows", &self.digest.rows())
            .field("changed", &self.changed)
            .finish_non_exhaustive()
    }
}

/// What a [`ViewRewrite`] did.
#[derive(Debug, Clone)]
pub struct Rewritten {
    /// The metadata before (`None`: the namespace did not exist).
    pub before: Option<ViewMeta>,
    /// The metadata after.
    pub after: ViewMeta,
    /// Rows written or deleted (the rows whose stored value differed from the new one, plus
    /// the new rows and the rows no longer present).
    pub changed: u64,
}

impl ViewRewrite<'_> {
    /// The next row (its key above every earlier one).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if self.last.as_deref().is_some_and(|l| l >= key) {
            return Err(StoreError::RowOrder {
                ns: self.ns.clone(),
            });
        }
        self.last = Some(key.to_vec());
        let rk = row_key(key);
        self.digest.add(key, value);
        // Live rows below this key are gone from the new set.
        let mut same = false;
        while let Some(live) = self.live.as_mut() {
            let lk = match live.peek() {
                None => break,
                Some(Ok((lk, _))) => lk.clone(),
                Some(Err(_)) => match live.next() {
                    Some(Err(e)) => return Err(e.into()),
                    _ => continue,
                },
            };
            match lk.as_ref().cmp(rk.as_slice()) {
                std::cmp::Ordering::Less => {
                    live.next();
                    self.read_live(&lk);
                    self.change(lk.to_vec(), None)?;
                }
                std::cmp::Ordering::Equal => {
                    let next = live.next();
                    self.read_live(&lk);
                    if let Some(Ok((_, stored))) = next {
                        // A row that does not decode differs (a rewrite repairs it).
                        same = decode_row(&stored).is_ok_and(|old| old == value);
                    }
                    break;
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        if !same {
            let stored = encode_row(value).into_owned();
            self.change(rk, Some(stored))?;
        }
        Ok(())
    }

    /// Counts a live row read, and every [`LIVE_ROWS_PER_NUDGE`] rows lets sled's cache drop
    /// the pages already compared (see `nudge_lru`).
    fn read_live(&mut self, key: &[u8]) {
        self.live_read += 1;
        if self.live_read % LIVE_ROWS_PER_NUDGE == 0 {
            crate::store::nudge_lru(&self.tree, key);
        }
    }

    fn change(&mut self, rk: Vec<u8>, stored: Option<Vec<u8>>) -> Result<()> {
        if !self.marked && !self.publish {
            // Before the first row changes in place: a crash from here on leaves a view the
            // next open rebuilds. (sled recovers batches of one tree in order: no changed row
            // survives without this marker.)
            if let Some(before) = &self.before {
                let mut m = before.clone();
                m.version = VERSION_REWRITING;
                self.tree.insert(K_META, encode_meta(&m))?;
            }
            self.marked = true;
        }
        match stored {
            Some(v) => self.batch.insert(rk, v),
            None => self.batch.remove(rk),
        }
        self.changed += 1;
        self.pending += 1;
        if self.pending >= REWRITE_CHUNK {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.pending > 0 {
            self.store.note_write(self.pending as u64);
            self.tree.apply_batch(std::mem::take(&mut self.batch))?;
            self.pending = 0;
        }
        Ok(())
    }

    /// Deletes the live rows after the last one handed over, then writes the metadata
    /// (`checkpoint`, `version`, the digest of the new rows, `rebuilt_at` = now) and, for a
    /// new namespace, publishes it. Not flushed: [`Store::flush_durable`] (or closing the
    /// store) makes it durable, once for however many namespaces were rewritten; a crash
    /// before leaves the view marked or as it was.
    pub fn finish(mut self, checkpoint: u64, version: u32) -> Result<Rewritten> {
        while let Some(live) = self.live.as_mut() {
            match live.next() {
                None => break,
                Some(Err(e)) => return Err(e.into()),
                Some(Ok((lk, _))) => self.change(lk.to_vec(), None)?,
            }
        }
        self.flush_batch()?;
        let now = codec::format_micros((self.store.clock)().timestamp_micros());
        let after = ViewMeta {
            version,
            checkpoint,
            digest: self.digest.digest(),
            rows: self.digest.rows(),
            rebuilt_at: Some(now.clone()),
            created_at: self.before.as_ref().map_or(now, |b| b.created_at.clone()),
        };
        let _g = lock(&self.store.view_lock);
        self.store.note_write(1);
        self.tree.insert(K_META, encode_meta(&after))?;
        if self.publish {
            self.store.publish_generation(&self.ns, self.gen)?;
        }
        drop(_g);
        Ok(Rewritten {
            before: self.before,
            after,
            changed: self.changed,
        })
    }
}

impl Store {
    /// Starts replacing namespace `ns`'s rows with a complete new set, handed to
    /// [`ViewRewrite::put`] in ascending key order; [`ViewRewrite::finish`] sets the
    /// checkpoint and version.
    ///
    /// Only rows whose stored value differs are written, in place, so a rebuild that changes
    /// little writes little (and frees no pages that each later open of the store would
    /// zero: see `docs/performance.md`). While rows change, the namespace's metadata carries
    /// version [`VERSION_REWRITING`]: a crash part-way leaves a view whose version no
    /// projection has, which the next open rebuilds. A namespace that does not exist yet is
    /// written into a fresh generation and published by `finish` (a crash before leaves an
    /// unreferenced generation, dropped on the next open). The digest is computed from the
    /// new rows, so a rewrite also repairs rows damaged on disk.
    pub fn view_rewrite(&self, ns: &str) -> Result<ViewRewrite<'_>> {
        let _g = lock(&self.view_lock);
        let (gen, publish, before) = match self.view_gen(ns)? {
            Some(g) => (g, false, Some(self.view_meta_of(ns, g)?)),
            None => {
                let g = self.next_generation()?;
                self.note_write(0);
                (g, true, None)
            }
        };
        // Opened under the lock: an open generation tree is what the next allocation skips.
        let tree = self.gen_tree(gen)?;
        let live = (!publish).then(|| tree.scan_prefix([P_ROW]).peekable());
        Ok(ViewRewrite {
            store: self,
            ns: ns.to_owned(),
            gen,
            tree,
            publish,
            live,
            before,
            marked: false,
            batch: sled::Batch::default(),
            pending: 0,
            live_read: 0,
            digest: RowDigest::default(),
            changed: 0,
            last: None,
        })
    }

    fn view_gen(&self, ns: &str) -> Result<Option<u64>> {
        match self.views.get(ns_key(ns))? {
            Some(v) => codec::be_u64_exact(&v)
                .map(Some)
                .ok_or_else(|| bad_view(ns, "malformed generation pointer")),
            None => Ok(None),
        }
    }

    /// The tree holding generation `gen` (created empty when missing).
    fn gen_tree(&self, gen: u64) -> Result<sled::Tree> {
        Ok(self.db.open_tree(gen_tree_name(gen))?)
    }

    fn view_meta_of(&self, ns: &str, gen: u64) -> Result<ViewMeta> {
        let v = self
            .gen_tree(gen)?
            .get(K_META)?
            .ok_or_else(|| bad_view(ns, "metadata missing"))?;
        decode_meta(&v).ok_or_else(|| bad_view(ns, "malformed metadata"))
    }

    /// The namespace's metadata, `None` when it does not exist.
    pub fn view_meta(&self, ns: &str) -> Result<Option<ViewMeta>> {
        match self.view_gen(ns)? {
            Some(g) => Ok(Some(self.view_meta_of(ns, g)?)),
            None => Ok(None),
        }
    }

    /// One row.
    pub fn view_get(&self, ns: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.view_reader(ns)?.get(key)
    }

    /// A reader of namespace `ns` for many point reads ([`ViewReader::get`]): its generation
    /// is looked up once, here. It reads the generation live now, and does not follow a later
    /// swap, nor see a namespace created after it (it then reads nothing): for a caller that
    /// writes no views while it reads (say, validating a batch before committing anything).
    pub fn view_reader(&self, ns: &str) -> Result<ViewReader> {
        let tree = match self.view_gen(ns)? {
            Some(g) => Some(self.gen_tree(g)?),
            None => None,
        };
        Ok(ViewReader {
            ns: ns.to_owned(),
            tree,
        })
    }

    /// Rows whose key starts with `prefix`, in key order (empty when the namespace is missing).
    pub fn view_scan(&self, ns: &str, prefix: &[u8]) -> ViewScan {
        match self.view_gen(ns) {
            Ok(Some(g)) => match self.gen_tree(g) {
                Ok(tree) => ViewScan {
                    iter: Some(tree.scan_prefix(row_key(prefix))),
                    strip: 1,
                    err: None,
                },
                Err(e) => ViewScan {
                    iter: None,
                    strip: 0,
                    err: Some(e),
                },
            },
            Ok(None) => ViewScan {
                iter: None,
                strip: 0,
                err: None,
            },
            Err(e) => ViewScan {
                iter: None,
                strip: 0,
                err: Some(e),
            },
        }
    }

    /// Applies `changes` (`None` = delete) and sets checkpoint and version, all in one atomic
    /// sled batch (not fsynced: see the comment inside). Creates the namespace when missing.
    /// Returns the new metadata.
    pub fn view_commit(
        &self,
        ns: &str,
        changes: &[(Vec<u8>, Option<Vec<u8>>)],
        checkpoint: u64,
        version: u32,
    ) -> Result<ViewMeta> {
        // Compressing rows is a third of a commit (an import's four views, measured) and
        // needs nothing the lock guards: done first, the views committing in parallel
        // compress in parallel.
        let encoded = EncodedRows::of(changes);
        self.view_commit_encoded(ns, changes, &encoded, checkpoint, version)
    }

    /// [`Store::view_commit`] with the rows' stored form made ahead by
    /// [`EncodedRows::of`]`(changes)` (say, on another thread while the log is appended).
    /// `encoded` must have been made from these `changes`: one that does not match their
    /// count is refused.
    pub fn view_commit_encoded(
        &self,
        ns: &str,
        changes: &[(Vec<u8>, Option<Vec<u8>>)],
        encoded: &EncodedRows,
        checkpoint: u64,
        version: u32,
    ) -> Result<ViewMeta> {
        encoded.check(ns, changes)?;
        let guard = lock(&self.view_lock);
        self.note_write(changes.len() as u64);
        let Some(gen) = self.view_gen(ns)? else {
            return self.view_commit_new(guard, ns, changes, encoded, checkpoint, version);
        };
        let mut meta = self.view_meta_of(ns, gen)?;
        let tree = self.gen_tree(gen)?;
        let mut batch = sled::Batch::default();
        fold_changes(ns, changes, encoded, Some(&tree), &mut meta, &mut |k, v| {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
            Ok(())
        })?;
        meta.checkpoint = checkpoint;
        meta.version = version;
        batch.insert(K_META, encode_meta(&meta));
        // Atomic, but not fsynced here: a view is derived data, and its rows and checkpoint are
        // one batch, which sled recovers whole or not at all. A commit lost in a crash leaves
        // the view at an older checkpoint, from which the next open catches it up. A journal
        // checkpoint, a large append, a swap or closing the store makes it durable. (Fsyncing
        // every view commit cost a `record` four extra fsyncs.)
        tree.apply_batch(batch)?;
        Ok(meta)
    }

    /// The first commit of a namespace: its rows go into a new generation tree that nothing
    /// references until the commit publishes it, so they need no batch to be atomic. sled
    /// 0.34 runs every batch under one global lock (and this store's view lock is held across
    /// a commit), while single inserts run concurrently: the four views of a first import
    /// write their rows in parallel. A crash before the publishing step leaves an unreferenced
    /// generation tree, dropped on the next open; sled recovers a prefix of its log, so a
    /// published generation has every row written before it.
    fn view_commit_new(
        &self,
        guard: std::sync::MutexGuard<'_, ()>,
        ns: &str,
        changes: &[(Vec<u8>, Option<Vec<u8>>)],
        encoded: &EncodedRows,
        checkpoint: u64,
        version: u32,
    ) -> Result<ViewMeta> {
        let staged = self.stage_locked(guard, ns, changes, encoded, version)?;
        match self.view_publish(staged, checkpoint)? {
            Some(meta) => Ok(meta),
            // Another commit created the namespace meanwhile: the changes go on top of it.
            None => self.view_commit_encoded(ns, changes, encoded, checkpoint, version),
        }
    }

    /// Writes `changes` as the first commit of namespace `ns`, ahead of its checkpoint, into a
    /// new generation tree that nothing references until [`Store::view_publish`] (say, while
    /// the log that the checkpoint will name is still being appended). `None` when the
    /// namespace exists: commit to it with [`Store::view_commit_encoded`]. A staged view that
    /// is never published is dropped by [`Store::view_discard`], or by the next open.
    pub fn view_stage(
        &self,
        ns: &str,
        changes: &[(Vec<u8>, Option<Vec<u8>>)],
        encoded: &EncodedRows,
        version: u32,
    ) -> Result<Option<StagedView>> {
        encoded.check(ns, changes)?;
        let guard = lock(&self.view_lock);
        if self.view_gen(ns)?.is_some() {
            return Ok(None);
        }
        self.note_write(changes.len() as u64);
        self.stage_locked(guard, ns, changes, encoded, version)
            .map(Some)
    }

    /// Allocates a generation and creates its tree under the view lock, then writes the rows
    /// without it.
    fn stage_locked(
        &self,
        guard: std::sync::MutexGuard<'_, ()>,
        ns: &str,
        changes: &[(Vec<u8>, Option<Vec<u8>>)],
        encoded: &EncodedRows,
        version: u32,
    ) -> Result<StagedView> {
        let gen = self.next_generation()?;
        // Opening the tree creates it, so later allocations (which look at the tree names)
        // pass over this generation.
        let tree = self.gen_tree(gen)?;
        drop(guard);
        let now = codec::format_micros((self.clock)().timestamp_micros());
        let mut meta = ViewMeta {
            version,
            checkpoint: 0,
            digest: [0; 32],
            rows: 0,
            rebuilt_at: None,
            created_at: now,
        };
        fold_changes(ns, changes, encoded, None, &mut meta, &mut |k, v| {
            match v {
                Some(v) => tree.insert(k, v)?,
                None => tree.remove(k)?,
            };
            Ok(())
        })?;
        Ok(StagedView {
            ns: ns.to_owned(),
            gen,
            meta,
        })
    }

    /// Publishes a staged view with `checkpoint`: from here on it is the namespace. `None`
    /// when the namespace was created meanwhile; the staged generation is then dropped.
    pub fn view_publish(&self, staged: StagedView, checkpoint: u64) -> Result<Option<ViewMeta>> {
        let StagedView { ns, gen, mut meta } = staged;
        meta.checkpoint = checkpoint;
        let tree = self.gen_tree(gen)?;
        tree.insert(K_META, encode_meta(&meta))?;
        let _g = lock(&self.view_lock);
        if self.view_gen(&ns)?.is_some() {
            drop(tree);
            self.db.drop_tree(gen_tree_name(gen))?;
            return Ok(None);
        }
        self.publish_generation(&ns, gen)?;
        Ok(Some(meta))
    }

    /// Makes generation `gen` the namespace `ns` (one batch of the directory). The caller
    /// holds the view lock. New namespaces (rewritten or staged) may publish out of
    /// allocation order: the counter never goes back.
    fn publish_generation(&self, ns: &str, gen: u64) -> Result<()> {
        let counter = self
            .views
            .get(K_GEN_COUNTER)?
            .map_or(0, |v| be_u64(&v))
            .max(gen);
        let mut b = sled::Batch::default();
        b.insert(K_GEN_COUNTER, &counter.to_be_bytes()[..]);
        b.insert(ns_key(ns), &gen.to_be_bytes()[..]);
        self.views.apply_batch(b)?;
        Ok(())
    }

    /// Drops a staged view that will not be published.
    pub fn view_discard(&self, staged: StagedView) -> Result<()> {
        let _g = lock(&self.view_lock);
        self.db.drop_tree(gen_tree_name(staged.gen))?;
        Ok(())
    }

    /// Atomically makes `shadow`'s rows and metadata the `live` namespace (one pointer write),
    /// removes the `shadow` name, then deletes the old live rows.
    pub fn view_swap(&self, live: &str, shadow: &str) -> Result<()> {
        let _g = lock(&self.view_lock);
        self.note_write(0);
        let sg = self.view_gen(shadow)?.ok_or_else(|| StoreError::NoView {
            ns: shadow.to_string(),
        })?;
        let lg = self.view_gen(live)?;
        let mut meta = self.view_meta_of(shadow, sg)?;
        meta.rebuilt_at = Some(codec::format_micros((self.clock)().timestamp_micros()));
        self.gen_tree(sg)?.insert(K_META, encode_meta(&meta))?;
        let mut batch = sled::Batch::default();
        batch.insert(ns_key(live), &sg.to_be_bytes()[..]);
        batch.remove(ns_key(shadow));
        if let Some(l) = lg {
            batch.insert(&garbage_key(l)[..], &[][..]);
        }
        self.views.apply_batch(batch)?;
        drop(_g);
        self.flush_durable()?;
        if let Some(l) = lg {
            self.delete_generation(l)?;
        }
        Ok(())
    }

    /// Removes a namespace (no error when missing).
    pub fn view_drop(&self, ns: &str) -> Result<()> {
        let _g = lock(&self.view_lock);
        let Some(g) = self.view_gen(ns)? else {
            return Ok(());
        };
        self.note_write(0);
        let mut batch = sled::Batch::default();
        batch.remove(ns_key(ns));
        batch.insert(&garbage_key(g)[..], &[][..]);
        self.views.apply_batch(batch)?;
        drop(_g);
        self.flush_durable()?;
        self.delete_generation(g)
    }

    /// Recomputes the digest from all rows (for verification against `ViewMeta::digest`).
    pub fn view_digest_recompute(&self, ns: &str) -> Result<[u8; 32]> {
        let mut d = RowDigest::default();
        for kv in self.view_scan(ns, b"") {
            let (k, v) = kv?;
            d.add(&k, &v);
        }
        Ok(d.digest())
    }

    /// Drops generation `gen`'s tree (freeing its pages) and its garbage marker.
    fn delete_generation(&self, gen: u64) -> Result<()> {
        self.note_write(0);
        self.db.drop_tree(gen_tree_name(gen))?;
        self.views.remove(&garbage_key(gen)[..])?;
        Ok(())
    }

    /// A generation number no tree has used: one past both the counter and every existing
    /// generation tree (a crash may have lost the counter's update but kept the tree).
    fn next_generation(&self) -> Result<u64> {
        let counter = self
            .views
            .get(K_GEN_COUNTER)?
            .map(|v| be_u64(&v))
            .unwrap_or(0);
        let trees = self
            .db
            .tree_names()
            .iter()
            .filter_map(|n| {
                std::str::from_utf8(n)
                    .ok()?
                    .strip_prefix(GEN_TREE_PREFIX)?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        Ok(counter.max(trees) + 1)
    }

    /// Test hook: number of raw entries in the views directory and all generation trees.
    #[doc(hidden)]
    pub fn debug_views_len(&self) -> usize {
        self.views.len()
            + self
                .db
                .tree_names()
                .iter()
                .filter(|n| n.starts_with(GEN_TREE_PREFIX.as_bytes()))
                .filter_map(|n| self.db.open_tree(n).ok())
                .map(|t| t.len())
                .sum::<usize>()
    }

    /// Finishes deletions of unreferenced generations (interrupted swaps and drops) and drops
    /// generation trees no namespace points at (a first commit interrupted before it was
    /// published).
    pub(crate) fn views_cleanup(&self) -> Result<()> {
        // Stores written before generation trees (format 1 and 2) kept rows in this tree under
        // `G ‖ gen`. Views are derived: they are dropped and the projections rebuild them.
        if self.views.scan_prefix(b"G").next().is_some() {
            self.note_write(0);
            self.views.clear()?;
        }
        let mut gens = Vec::new();
        for kv in self.views.scan_prefix(b"D") {
            let (k, _) = kv?;
            if k.len() == 9 {
                gens.push(be_u64(&k[1..]));
            }
        }
        for g in gens {
            self.delete_generation(g)?;
        }
        let mut live = std::collections::HashSet::new();
        for kv in self.views.scan_prefix(b"N") {
            let (_, v) = kv?;
            if let Some(g) = codec::be_u64_exact(&v) {
                live.insert(g);
            }
        }
        for name in self.db.tree_names() {
            let gen = std::str::from_utf8(&name)
                .ok()
                .and_then(|n| n.strip_prefix(GEN_TREE_PREFIX))
                .and_then(|g| g.parse::<u64>().ok());
            if let Some(g) = gen {
                if !live.contains(&g) {
                    self.note_write(0);
                    self.db.drop_tree(&name)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_roundtrip() {
        let m = ViewMeta {
            version: 3,
            checkpoint: 99,
            digest: [5; 32],
            rows: 7,
            rebuilt_at: Some("2024-01-01T00:00:00.000000Z".into()),
            created_at: "2023-01-01T00:00:00.000000Z".into(),
        };
        assert_eq!(decode_meta(&encode_meta(&m)), Some(m.clone()));
        let n = ViewMeta {
            rebuilt_at: None,
            ..m
        };
        assert_eq!(decode_meta(&encode_meta(&n)), Some(n));
        assert_eq!(decode_meta(b"short"), None);
    }

    #[test]
    fn rows_round_trip_through_their_stored_form() {
        let long_json = format!("{{\"id\":\"cmt-1\",\"text\":\"{}\"}}", "abc ".repeat(100));
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"{}".to_vec(),
            long_json.clone().into_bytes(),
            vec![0u8; 300],
            vec![1u8, 2, 3],
            vec![0u8, 9],
            (0..200u32).map(|i| (i * 97 % 251) as u8 + 2).collect(),
        ];
        for v in cases {
            let stored = encode_row(&v);
            assert_eq!(decode_row(&stored).expect("decodes"), v, "{v:?}");
        }
        assert!(encode_row(long_json.as_bytes()).len() < long_json.len() / 2);
        // Rows are compressed with the dictionary, under its two-byte tag.
        assert_eq!(
            &encode_row(long_json.as_bytes())[..2],
            &[ROW_RAW_ESCAPED, ROW_DICT_MARK]
        );
        // A value that starts with the dictionary's tag is escaped, not mistaken for it.
        let tagged = [vec![ROW_RAW_ESCAPED, ROW_DICT_MARK], b"x".repeat(10)].concat();
        assert_eq!(decode_row(&encode_row(&tagged)).expect("escaped"), tagged);
        // Rows of format 4 and 5 stores (`0x00 ‖ len ‖ zstd frame`, no dictionary) still read.
        let old = codec::zstd_compress(long_json.as_bytes()).expect("zstd");
        let stored = [
            &[ROW_ZSTD][..],
            &(long_json.len() as u32).to_be_bytes(),
            &old,
        ]
        .concat();
        assert_eq!(
            decode_row(&stored).expect("format 5 row"),
            long_json.as_bytes()
        );
        // Values written by format 1 and 2 stores (raw JSON) read as they are.
        assert_eq!(decode_row(b"{\"a\":1}").expect("raw"), b"{\"a\":1}");
        // Damage is an error, not a panic.
        assert!(decode_row(&[0, 0, 0]).is_err());
        assert!(decode_row(&[0, 0, 0, 1, 0, 7, 7, 7]).is_err());
        assert!(decode_row(&[0, 255, 255, 255, 255, 1]).is_err());
        assert!(decode_row(&[1, 2, 0, 0]).is_err());
        assert!(decode_row(&[1, 2, 0, 0, 0, 40, 7, 7, 7]).is_err());
    }

    #[test]
    fn the_row_dictionary_never_changes() {
        // Stored rows name the dictionary only by their tag: other bytes would misread them.
        use sha2::{Digest, Sha256};
        let d: [u8; 32] = Sha256::digest(codec::ROW_DICT).into();
        assert_eq!(
            codec::to_hex(&d),
            "d1be893bfb733aea1077e61786437766558f9e111759d2c0b9feb4a2f82a213f"
        );
    }

    #[test]
    fn digest_lanes_are_order_independent() {
        let mut a = [0u64; 4];
        let mut b = [0u64; 4];
        add_lanes(&mut a, &row_lanes(b"k1", b"v1"));
        add_lanes(&mut a, &row_lanes(b"k2", b"v2"));
        add_lanes(&mut b, &row_lanes(b"k2", b"v2"));
        add_lanes(&mut b, &row_lanes(b"k1", b"v1"));
        assert_eq!(a, b);
        sub_lanes(&mut a, &row_lanes(b"k1", b"v1"));
        assert_eq!(a, row_lanes(b"k2", b"v2"));
        // The key length is hashed: ("ab","c") differs from ("a","bc").
        assert_ne!(row_lanes(b"ab", b"c"), row_lanes(b"a", b"bc"));
    }
}
