//! The id and stream indexes as immutable sorted runs (a small log-structured merge tree kept
//! inside sled), so an append writes a handful of sled values instead of one key per event.
//!
//! Index entries (logical keys, sorted bytewise, each mapped to a seq):
//! - `i ‖ uuid (16)` — the event-id index;
//! - `s ‖ stream ‖ 0x00 ‖ version BE` — the stream index (the 0x00 terminator keeps `call-1`
//!   from matching `call-10`); a stream's version is its greatest entry.
//!
//! A run is stored in the `log` tree as
//! - `R ‖ run_id BE ‖ part u16 BE` → header: `count u64 ‖ nblocks u32 ‖ (klen u8 ‖ first key)
//!   per block ‖ klen u8 ‖ last key`, split into parts of ≤ 60 KiB;
//! - `Q ‖ run_id BE ‖ block u32 BE` → block: `codec u8 ‖ raw_len u32 BE ‖ payload`, raw =
//!   per entry `klen u8 ‖ key ‖ seq u64 BE`, about 16 KiB raw.
//!
//! `Mruns` lists the live runs (oldest first). A run becomes visible only when the list that
//! names it is written, in the same atomic batch as the head it belongs to; runs not in the list
//! are leftovers and are removed on open. Runs are merged binary-counter style (when a run is
//! at least as large as the one before it), so there are at most ~log2(events) runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::codec::{be_u64, CODEC_LZ4, CODEC_NONE, MAX_PART};
use crate::error::{corrupt, Result};

pub(crate) const K_RUNS: &[u8] = b"Mruns";
pub(crate) const P_RUN_HEADER: u8 = b'R';
pub(crate) const P_RUN_BLOCK: u8 = b'Q';
const BLOCK_RAW_CAP: usize = 4 * 1024;
/// Decoded blocks kept per run (cleared when full).
const BLOCK_CACHE_PER_RUN: usize = 256;

/// One logical index entry.
pub(crate) type Entry = (Vec<u8>, u64);

/// Raw sled writes (key, value).
pub(crate) type Writes = Vec<(Vec<u8>, Vec<u8>)>;

pub(crate) fn id_entry(id: &Uuid) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b'i');
    k.extend_from_slice(id.as_bytes());
    k
}

pub(crate) fn stream_prefix(stream: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.len() + 10);
    k.push(b's');
    k.extend_from_slice(stream.as_bytes());
    k.push(0);
    k
}

pub(crate) fn stream_entry(stream: &str, version: u64) -> Vec<u8> {
    let mut k = stream_prefix(stream);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// The upper bound of a stream's entries (greater than every version key).
pub(crate) fn stream_upper(stream: &str) -> Vec<u8> {
    let mut k = stream_prefix(stream);
    k.extend_from_slice(&[0xff; 9]);
    k
}

/// Splits a stream entry key into (stream, version).
pub(crate) fn parse_stream_entry(key: &[u8]) -> Option<(&str, u64)> {
    if key.len() < 11 || key[0] != b's' || key[key.len() - 9] != 0 {
        return None;
    }
    let s = std::str::from_utf8(&key[1..key.len() - 9]).ok()?;
    Some((s, be_u64(&key[key.len() - 8..])))
}

fn header_key(run: u64, part: u16) -> [u8; 11] {
    let mut k = [0u8; 11];
    k[0] = P_RUN_HEADER;
    k[1..9].copy_from_slice(&run.to_be_bytes());
    k[9..].copy_from_slice(&part.to_be_bytes());
    k
}

fn block_key(run: u64, block: u32) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = P_RUN_BLOCK;
    k[1..9].copy_from_slice(&run.to_be_bytes());
    k[9..].copy_from_slice(&block.to_be_bytes());
    k
}

/// A decoded block: its raw bytes and entry offsets.
#[derive(Debug)]
pub(crate) struct Block {
    raw: Vec<u8>,
    offs: Vec<(u32, u8)>,
}

impl Block {
    fn decode(v: &[u8]) -> Result<Block, String> {
        if v.len() < 5 {
            return Err("index block too short".into());
        }
        let raw_len = u32::from_be_bytes([v[1], v[2], v[3], v[4]]) as usize;
        if raw_len > 16 * BLOCK_RAW_CAP {
            return Err("implausible index block length".into());
        }
        let raw = match v[0] {
            CODEC_NONE => v[5..].to_vec(),
            CODEC_LZ4 => lz4_flex::block::decompress(&v[5..], raw_len)
                .map_err(|e| format!("index block: {e}"))?,
            c => return Err(format!("unknown index block codec {c}")),
        };
        if raw.len() != raw_len {
            return Err("index block length mismatch".into());
        }
        let mut offs = Vec::with_capacity(raw_len / 24);
        let mut pos = 0usize;
        while pos < raw.len() {
            let kl = raw[pos] as usize;
            if raw.len() - pos < 1 + kl + 8 {
                return Err("truncated index entry".into());
            }
            offs.push(((pos + 1) as u32, kl as u8));
            pos += 1 + kl + 8;
        }
        Ok(Block { raw, offs })
    }

    pub(crate) fn len(&self) -> usize {
        self.offs.len()
    }

    pub(crate) fn key(&self, i: usize) -> &[u8] {
        let (o, l) = self.offs[i];
        &self.raw[o as usize..o as usize + l as usize]
    }

    pub(crate) fn seq(&self, i: usize) -> u64 {
        let (o, l) = self.offs[i];
        let s = o as usize + l as usize;
        be_u64(&self.raw[s..s + 8])
    }

    /// Index of the first entry with key ≥ `key` (may be `len()`).
    fn lower_bound(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0usize, self.offs.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.key(mid) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// An immutable sorted run: its id, entry count and block fences (first key of each block).
#[derive(Debug)]
pub(crate) struct Run {
    pub id: u64,
    pub count: u64,
    pub fences: Vec<Vec<u8>>,
    pub last_key: Vec<u8>,
    cache: Mutex<HashMap<u32, Arc<Block>>>,
}

impl Run {
    fn decode_header(id: u64, b: &[u8]) -> Result<Run, String> {
        let mut pos = 0usize;
        let take = |pos: &mut usize, n: usize| -> Result<&[u8], String> {
            let s = b.get(*pos..*pos + n).ok_or("truncated run header")?;
            *pos += n;
            Ok(s)
        };
        let count = be_u64(take(&mut pos, 8)?);
        let n = be_u64(take(&mut pos, 4)?) as usize;
        if n > b.len() {
            return Err("implausible block count".into());
        }
        let mut fences = Vec::with_capacity(n);
        for _ in 0..n {
            let kl = take(&mut pos, 1)?[0] as usize;
            fences.push(take(&mut pos, kl)?.to_vec());
        }
        let kl = take(&mut pos, 1)?[0] as usize;
        let last_key = take(&mut pos, kl)?.to_vec();
        Ok(Run {
            id,
            count,
            fences,
            last_key,
            cache: Mutex::default(),
        })
    }

    fn encode_header(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16 + self.fences.len() * 24);
        v.extend_from_slice(&self.count.to_be_bytes());
        v.extend_from_slice(&(self.fences.len() as u32).to_be_bytes());
        for f in &self.fences {
            v.push(f.len() as u8);
            v.extend_from_slice(f);
        }
        v.push(self.last_key.len() as u8);
        v.extend_from_slice(&self.last_key);
        v
    }

    /// Block `i`, through the run's cache of decoded blocks.
    pub(crate) fn block(&self, tree: &sled::Tree, i: usize) -> Result<Option<Arc<Block>>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = cache.get(&(i as u32)) {
            return Ok(Some(Arc::clone(b)));
        }
        drop(cache);
        let Some(b) = self.block_uncached(tree, i)? else {
            return Ok(None);
        };
        let b = Arc::new(b);
        cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= BLOCK_CACHE_PER_RUN {
            cache.clear();
        }
        cache.insert(i as u32, Arc::clone(&b));
        Ok(Some(b))
    }

    /// Block `i`, read and decoded from sled.
    pub(crate) fn block_uncached(&self, tree: &sled::Tree, i: usize) -> Result<Option<Block>> {
        match tree.get(block_key(self.id, i as u32))? {
            Some(v) => Block::decode(&v)
                .map(Some)
                .map_err(|d| corrupt(0, format!("index run {} block {i}: {d}", self.id))),
            None => Ok(None),
        }
    }

    /// The block that could hold `key` (last fence ≤ key), if any.
    fn block_for(&self, key: &[u8]) -> Option<usize> {
        let p = self.fences.partition_point(|f| f.as_slice() <= key);
        p.checked_sub(1)
    }
}

/// Encodes sorted, unique entries as run `id`. Returns the run and the sled writes.
pub(crate) fn encode_run(id: u64, entries: &[Entry]) -> (Run, Writes) {
    assemble_run(id, vec![RunPart::encode(entries)])
}

/// A stretch of a run's sorted entries encoded into blocks, before the run's block numbers
/// are known: the parts of one run can be encoded on different threads and then put
/// together in key order by [`assemble_run`].
#[derive(Debug, Default)]
pub(crate) struct RunPart {
    count: u64,
    fences: Vec<Vec<u8>>,
    /// Each block's stored value (codec byte, raw length, payload), in order.
    blocks: Vec<Vec<u8>>,
    last_key: Option<Vec<u8>>,
}

impl RunPart {
    /// Encodes sorted, unique entries.
    pub(crate) fn encode(entries: &[Entry]) -> RunPart {
        let mut part = RunPart {
            count: entries.len() as u64,
            last_key: entries.last().map(|e| e.0.clone()),
            ..RunPart::default()
        };
        let mut raw = Vec::with_capacity(BLOCK_RAW_CAP + 128);
        let flush = |raw: &mut Vec<u8>, blocks: &mut Vec<Vec<u8>>| {
            let c = lz4_flex::block::compress(raw);
            let (codec, payload) = if c.len() < raw.len() {
                (CODEC_LZ4, c)
            } else {
                (CODEC_NONE, raw.clone())
            };
            let mut v = Vec::with_capacity(5 + payload.len());
            v.push(codec);
            v.extend_from_slice(&(raw.len() as u32).to_be_bytes());
            v.extend_from_slice(&payload);
            blocks.push(v);
            raw.clear();
        };
        for (k, seq) in entries {
            if raw.is_empty() {
                part.fences.push(k.clone());
            }
            raw.push(k.len() as u8);
            raw.extend_from_slice(k);
            raw.extend_from_slice(&seq.to_be_bytes());
            if raw.len() >= BLOCK_RAW_CAP {
                flush(&mut raw, &mut part.blocks);
            }
        }
        if !raw.is_empty() {
            flush(&mut raw, &mut part.blocks);
        }
        part
    }
}

/// Puts run `id` together from parts whose keys ascend from one part to the next (each
/// part's blocks numbered after the previous part's). Returns the run and the sled writes.
pub(crate) fn assemble_run(id: u64, parts: Vec<RunPart>) -> (Run, Writes) {
    let mut writes = Vec::new();
    let mut fences = Vec::new();
    let mut count = 0;
    let mut last_key = Vec::new();
    for part in parts {
        count += part.count;
        for v in part.blocks {
            // Only blocks are written before the header: the next block's number.
            let n = writes.len() as u32;
            writes.push((block_key(id, n).to_vec(), v));
        }
        fences.extend(part.fences);
        if let Some(k) = part.last_key {
            last_key = k;
        }
    }
    let run = Run {
        id,
        count,
        fences,
        last_key,
        cache: Mutex::default(),
    };
    let header = run.encode_header();
    for (i, chunk) in header.chunks(MAX_PART).enumerate() {
        writes.push((header_key(id, i as u16).to_vec(), chunk.to_vec()));
    }
    if header.is_empty() {
        writes.push((header_key(id, 0).to_vec(), Vec::new()));
    }
    (run, writes)
}

/// Sled keys of a run (for deletion): its header parts and blocks.
pub(crate) fn run_keys(tree: &sled::Tree, id: u64) -> Result<Vec<sled::IVec>> {
    let mut out = Vec::new();
    for p in [P_RUN_HEADER, P_RUN_BLOCK] {
        let mut lo = vec![p];
        lo.extend_from_slice(&id.to_be_bytes());
        let mut hi = vec![p];
        hi.extend_from_slice(&id.saturating_add(1).to_be_bytes());
        for kv in tree.range(lo..hi) {
            out.push(kv?.0);
        }
    }
    Ok(out)
}

/// The in-memory view of the live runs.
#[derive(Debug, Default)]
pub(crate) struct IndexState {
    pub next_id: u64,
    /// Oldest first.
    pub runs: Vec<Arc<Run>>,
}

impl IndexState {
    pub(crate) fn encode_list(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(8 + 8 * self.runs.len());
        v.extend_from_slice(&self.next_id.to_be_bytes());
        for r in &self.runs {
            v.extend_from_slice(&r.id.to_be_bytes());
        }
        v
    }

    pub(crate) fn load(tree: &sled::Tree) -> Result<IndexState> {
        let Some(list) = tree.get(K_RUNS)? else {
            return Ok(IndexState::default());
        };
        if list.len() < 8 || list.len() % 8 != 0 {
            return Err(corrupt(0, "malformed run list"));
        }
        let next_id = be_u64(&list[..8]);
        let mut runs = Vec::new();
        for c in list[8..].chunks(8) {
            let id = be_u64(c);
            let mut header = Vec::new();
            let mut lo = vec![P_RUN_HEADER];
            lo.extend_from_slice(&id.to_be_bytes());
            for kv in tree.scan_prefix(&lo) {
                header.extend_from_slice(&kv?.1);
            }
            let run = Run::decode_header(id, &header)
                .map_err(|d| corrupt(0, format!("index run {id}: {d}")))?;
            runs.push(Arc::new(run));
        }
        Ok(IndexState { next_id, runs })
    }

    /// The ids of the live runs.
    pub(crate) fn ids(&self) -> Vec<u64> {
        self.runs.iter().map(|r| r.id).collect()
    }
}

/// For each sorted query key, the greatest entry ≤ it across all runs (newest run wins ties).
/// `None` when no run has an entry ≤ the key... restricted to entries for which `keep(query,
/// entry_key)` holds.
pub(crate) fn floor_many(
    tree: &sled::Tree,
    runs: &[Arc<Run>],
    queries: &[Vec<u8>],
    keep: &dyn Fn(&[u8], &[u8]) -> bool,
) -> Result<Option<Vec<Option<Entry>>>> {
    let mut out: Vec<Option<Entry>> = vec![None; queries.len()];
    for run in runs.iter().rev() {
        let mut cur: Option<(usize, Arc<Block>)> = None;
        for (qi, q) in queries.iter().enumerate() {
            let Some(bi) = run.block_for(q) else { continue };
            if cur.as_ref().map(|c| c.0) != Some(bi) {
                match run.block(tree, bi)? {
                    Some(b) => cur = Some((bi, b)),
                    None => return Ok(None), // run vanished under us (merged); caller retries
                }
            }
            let Some((_, b)) = cur.as_ref() else { continue };
            let lb = b.lower_bound(q);
            let idx = if lb < b.len() && b.key(lb) == q.as_slice() {
                Some(lb)
            } else {
                lb.checked_sub(1)
            };
            if let Some(i) = idx {
                let k = b.key(i);
                if keep(q, k) && out[qi].as_ref().is_none_or(|e| k > e.0.as_slice()) {
                    out[qi] = Some((k.to_vec(), b.seq(i)));
                }
            }
        }
    }
    Ok(Some(out))
}

/// All entries with `lo ≤ key < hi` across runs, sorted by key. `None` if a run vanished.
pub(crate) fn range_all(
    tree: &sled::Tree,
    runs: &[Arc<Run>],
    lo: &[u8],
    hi: &[u8],
    limit: usize,
) -> Result<Option<Vec<Entry>>> {
    let mut out = Vec::new();
    for run in runs {
        let start = run.block_for(lo).unwrap_or(0);
        let mut taken = 0usize;
        'blocks: for bi in start..run.fences.len() {
            if run.fences[bi].as_slice() >= hi {
                break;
            }
            let Some(b) = run.block(tree, bi)? else {
                return Ok(None);
            };
            for i in b.lower_bound(lo)..b.len() {
                let k = b.key(i);
                if k >= hi {
                    break 'blocks;
                }
                out.push((k.to_vec(), b.seq(i)));
                taken += 1;
                if taken >= limit {
                    break 'blocks;
                }
            }
        }
    }
    out.sort();
    Ok(Some(out))
}

/// Every entry of a run, in order (for merges and verify).
pub(crate) fn run_entries(tree: &sled::Tree, run: &Run) -> Result<Vec<Entry>> {
    let mut out = Vec::with_capacity(run.count as usize);
    for bi in 0..run.fences.len() {
        let b = run
            .block_uncached(tree, bi)?
            .ok_or_else(|| corrupt(0, format!("index run {} block {bi} missing", run.id)))?;
        for i in 0..b.len() {
            out.push((b.key(i).to_vec(), b.seq(i)));
        }
    }
    Ok(out)
}

/// Merges sorted entry lists (later lists win on equal keys).
pub(crate) fn merge(lists: Vec<Vec<Entry>>) -> Vec<Entry> {
    let mut all: Vec<Entry> = lists.into_iter().flatten().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.dedup_by(|later, earlier| {
        if later.0 == earlier.0 {
            earlier.1 = later.1;
            true
        } else {
            false
        }
    });
    all
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stream_entries_do_not_alias_and_sort_by_version() {
        assert!(stream_entry("call-1", 2) < stream_entry("call-1", 10));
        assert!(!stream_entry("call-10", 1).starts_with(&stream_prefix("call-1")));
        assert!(stream_entry("call-1", u64::MAX) < stream_upper("call-1"));
        assert!(stream_upper("call-1") < stream_prefix("call-10"));
        assert_eq!(
            parse_stream_entry(&stream_entry("a.b", 7)),
            Some(("a.b", 7))
        );
        assert_eq!(parse_stream_entry(b"sx"), None);
    }

    #[test]
    fn run_roundtrip_floor_and_range() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sled::open(tmp.path()).unwrap();
        let t = db.open_tree("t").unwrap();
        let mut entries: Vec<Entry> = (0..5000u64)
            .map(|i| (stream_entry(&format!("s{}", i % 50), i / 50 + 1), i + 1))
            .collect();
        entries.sort();
        let (run, writes) = encode_run(1, &entries);
        assert!(run.fences.len() > 1);
        for (k, v) in writes {
            assert!(v.len() <= MAX_PART);
            t.insert(k, v).unwrap();
        }
        t.insert(
            K_RUNS,
            IndexState {
                next_id: 2,
                runs: vec![Arc::new(run)],
            }
            .encode_list(),
        )
        .unwrap();
        let st = IndexState::load(&t).unwrap();
        assert_eq!(st.runs[0].count, 5000);
        assert_eq!(run_entries(&t, &st.runs[0]).unwrap(), entries);
        let q = vec![stream_upper("s1"), stream_upper("s10"), stream_upper("zz")];
        let keep = |q: &[u8], k: &[u8]| k.starts_with(&q[..q.len() - 9]);
        let r = floor_many(&t, &st.runs, &q, &keep).unwrap().unwrap();
        assert_eq!(
            parse_stream_entry(&r[0].as_ref().unwrap().0),
            Some(("s1", 100))
        );
        assert_eq!(
            parse_stream_entry(&r[1].as_ref().unwrap().0),
            Some(("s10", 100))
        );
        assert!(r[2].is_none());
        let got = range_all(
            &t,
            &st.runs,
            &stream_entry("s1", 98),
            &stream_upper("s1"),
            usize::MAX,
        )
        .unwrap()
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(run_keys(&t, 1).unwrap().len(), t.len() - 1);
    }

    #[test]
    fn merge_prefers_later_lists() {
        let m = merge(vec![
            vec![(b"a".to_vec(), 1), (b"c".to_vec(), 3)],
            vec![(b"a".to_vec(), 9), (b"b".to_vec(), 2)],
        ]);
        assert_eq!(
            m,
            vec![(b"a".to_vec(), 9), (b"b".to_vec(), 2), (b"c".to_vec(), 3)]
        );
    }

    #[test]
    fn damaged_blocks_and_headers_are_errors() {
        assert!(Block::decode(b"").is_err());
        assert!(Block::decode(&[1, 0, 0, 0, 10, 1, 2]).is_err());
        assert!(Block::decode(&[0, 0, 0, 0, 3, 5, 1, 2]).is_err());
        assert!(Run::decode_header(1, &[0; 5]).is_err());
        assert!(Run::decode_header(1, &[0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
