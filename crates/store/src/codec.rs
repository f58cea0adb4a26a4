//! Byte-level encodings: keys, packs, the event envelope, timestamps, hex.
//!
//! Nothing here touches sled; everything is pure and unit-tested.

use chrono::{DateTime, NaiveDateTime, Utc};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------- keys (tree "log")

/// Metadata keys.
pub(crate) const K_FORMAT: &[u8] = b"Mformat";
pub(crate) const K_HEAD: &[u8] = b"Mhead";
pub(crate) const K_COUNTS: &[u8] = b"Mcounts";
pub(crate) const K_PENDING: &[u8] = b"Mpending";
/// Published length of the pack file `<dir>/packs` (u64 BE; absent = 0).
pub(crate) const K_PACK_FILE: &[u8] = b"Mpackfile";

pub(crate) const P_PACK: u8 = b'P';
pub(crate) const P_PART: u8 = b'X';

pub(crate) fn pack_key(first_seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = P_PACK;
    k[1..].copy_from_slice(&first_seq.to_be_bytes());
    k
}

pub(crate) fn pack_key_seq(key: &[u8]) -> Option<u64> {
    if key.len() == 9 && key[0] == P_PACK {
        Some(be_u64(&key[1..]))
    } else {
        None
    }
}

pub(crate) fn part_key(first_seq: u64, part: u16) -> [u8; 11] {
    let mut k = [0u8; 11];
    k[0] = P_PART;
    k[1..9].copy_from_slice(&first_seq.to_be_bytes());
    k[9..].copy_from_slice(&part.to_be_bytes());
    k
}

pub(crate) fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[8 - n..].copy_from_slice(&b[..n]);
    u64::from_be_bytes(a)
}

pub(crate) fn be_u32(b: &[u8]) -> u32 {
    be_u64(&b[..b.len().min(4)]) as u32
}

/// Reads a u64 value that must be exactly 8 bytes.
pub(crate) fn be_u64_exact(b: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes)
}

// ---------------------------------------------------------------- head metadata

/// The published head: `seq BE ‖ hash (32) ‖ recorded_at micros (i64 BE)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct HeadRec {
    pub seq: u64,
    pub hash: [u8; 32],
    pub rec_micros: i64,
}

impl HeadRec {
    pub(crate) fn encode(&self) -> [u8; 48] {
        let mut v = [0u8; 48];
        v[..8].copy_from_slice(&self.seq.to_be_bytes());
        v[8..40].copy_from_slice(&self.hash);
        v[40..].copy_from_slice(&self.rec_micros.to_be_bytes());
        v
    }
    pub(crate) fn decode(b: &[u8]) -> Option<HeadRec> {
        if b.len() != 48 {
            return None;
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[8..40]);
        Some(HeadRec {
            seq: be_u64(&b[..8]),
            hash,
            rec_micros: be_u64(&b[40..]) as i64,
        })
    }
}

pub(crate) fn encode_counts(events: u64, streams: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&events.to_be_bytes());
    v[8..].copy_from_slice(&streams.to_be_bytes());
    v
}

pub(crate) fn decode_counts(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() != 16 {
        return None;
    }
    Some((be_u64(&b[..8]), be_u64(&b[8..])))
}

// ---------------------------------------------------------------- packs

/// Codec byte: payload stored as is.
pub(crate) const CODEC_NONE: u8 = 0;
/// Codec byte: payload compressed with LZ4 (block format, lz4_flex). Written by format 1 and 2
/// stores; still read.
pub(crate) const CODEC_LZ4: u8 = 1;
/// Codec byte: payload compressed with zstd (level [`ZSTD_LEVEL`], one frame). Since format 3.
/// Any level reads back the same way, so stores written at level 1 (until this level
/// changed) and at -1 are both read.
pub(crate) const CODEC_ZSTD: u8 = 2;
/// Flag on the codec byte: the payload is not in the sled value but in the pack file, and the
/// value is the header followed by a [`PackPointer`]. Since format 5.
pub(crate) const EXTERNAL: u8 = 0x80;
/// zstd level for packs. At negative levels zstd leaves literals unencoded (no Huffman
/// stage), which is most of level 1's work on these packs: a 100k import's pack file grows
/// from 13.0 to 18.2 MB (the store from ~1.0× to ~1.1× the JSON Lines), and the import got
/// 1.7 % faster in alternating runs (`docs/performance.md`). Level 3 was 1 % smaller than
/// level 1 and slower.
const ZSTD_LEVEL: i32 = -1;

type Compressor = zstd::bulk::Compressor<'static>;
type Decompressor = zstd::bulk::Decompressor<'static>;
/// A zstd context per thread, made at its first use.
type Ctx<T> = std::cell::RefCell<Option<T>>;

thread_local! {
    static ZSTD_C: Ctx<Compressor> = const { std::cell::RefCell::new(None) };
    static ZSTD_D: Ctx<Decompressor> = const { std::cell::RefCell::new(None) };
    static ROW_C: Ctx<Compressor> = const { std::cell::RefCell::new(None) };
    static ROW_D: Ctx<Decompressor> = const { std::cell::RefCell::new(None) };
}

/// The raw-content dictionary of compressed view rows (since format 6): the rows of the
/// bundled example's views, written by `examples/row_dictionary.rs`. Stored rows name it only
/// by their tag, so these bytes must never change (a unit test pins their SHA-256).
pub(crate) const ROW_DICT: &[u8] = include_bytes!("row_dict.bin");
/// zstd level for view rows. Rows are small (~450 bytes on the benchmark's workload), so a
/// frame's cost is mostly building its entropy tables; on the 22,393 compressible rows of a
/// 100k import, level -1 with the dictionary made them 2.66× smaller in 43 ms, level 1
/// without one 1.58× in 82 ms, level 1 with it 2.76× in 81 ms (`examples/row_compression.rs`).
const ROW_LEVEL: i32 = -1;

/// Compresses `raw` with this thread's context in `ctx` (made by `make`); `None` if zstd
/// fails.
fn compress_with(
    ctx: &'static std::thread::LocalKey<Ctx<Compressor>>,
    make: fn() -> std::io::Result<Compressor>,
    raw: &[u8],
) -> Option<Vec<u8>> {
    ctx.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = make().ok();
        }
        c.as_mut()?.compress(raw).ok()
    })
}

/// Decompresses `payload` to `raw_len` bytes with this thread's context in `ctx`.
fn decompress_with(
    ctx: &'static std::thread::LocalKey<Ctx<Decompressor>>,
    make: fn() -> std::io::Result<Decompressor>,
    payload: &[u8],
    raw_len: usize,
) -> Result<Vec<u8>, String> {
    ctx.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(make().map_err(|e| format!("zstd decompressor unavailable: {e}"))?);
        }
        let d = d
            .as_mut()
            .ok_or_else(|| "zstd decompressor unavailable".to_string())?;
        d.decompress(payload, raw_len)
            .map_err(|e| format!("zstd decompression failed: {e}"))
    })
}

/// zstd-compresses a view row with [`ROW_DICT`]; `None` if zstd fails.
pub(crate) fn zstd_compress_row(raw: &[u8]) -> Option<Vec<u8>> {
    compress_with(
        &ROW_C,
        || Compressor::with_dictionary(ROW_LEVEL, ROW_DICT),
        raw,
    )
}

/// Decompresses a view row made by [`zstd_compress_row`].
pub(crate) fn zstd_decompress_row(payload: &[u8], raw_len: usize) -> Result<Vec<u8>, String> {
    decompress_with(
        &ROW_D,
        || Decompressor::with_dictionary(ROW_DICT),
        payload,
        raw_len,
    )
}

/// zstd-compresses `raw` with a per-thread context; `None` if zstd fails.
pub(crate) fn zstd_compress(raw: &[u8]) -> Option<Vec<u8>> {
    compress_with(&ZSTD_C, || Compressor::new(ZSTD_LEVEL), raw)
}

pub(crate) fn zstd_decompress(payload: &[u8], raw_len: usize) -> Result<Vec<u8>, String> {
    decompress_with(&ZSTD_D, Decompressor::new, payload, raw_len)
}

/// Pack header length in bytes.
pub(crate) const PACK_HEADER_LEN: usize = 27;
/// A pack stops taking events once its raw payload would exceed this.
pub(crate) const PACK_RAW_CAP: usize = 64 * 1024;
/// Largest sled value we write (well under sled's ~128 KiB blob threshold: blobs are never fsynced).
pub(crate) const MAX_PART: usize = 60 * 1024;
/// A decoded raw payload larger than this is treated as corrupt (guards allocations).
const MAX_RAW_LEN: u32 = 256 * 1024 * 1024;

/// The fixed header at the start of a pack's first part.
///
/// Layout: `codec u8 ‖ count u32 BE ‖ raw_len u32 BE ‖ first_recorded_at i64 BE (µs) ‖
/// last_recorded_at i64 BE (µs) ‖ extra_parts u16 BE`, then the (compressed) payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackHeader {
    pub codec: u8,
    pub count: u32,
    pub raw_len: u32,
    pub first_rec: i64,
    pub last_rec: i64,
    pub extra_parts: u16,
}

impl PackHeader {
    pub(crate) fn decode(b: &[u8]) -> Result<PackHeader, String> {
        if b.len() < PACK_HEADER_LEN {
            return Err(format!("pack shorter than its header ({} bytes)", b.len()));
        }
        let h = PackHeader {
            codec: b[0],
            count: u32::from_be_bytes([b[1], b[2], b[3], b[4]]),
            raw_len: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
            first_rec: be_u64(&b[9..17]) as i64,
            last_rec: be_u64(&b[17..25]) as i64,
            extra_parts: u16::from_be_bytes([b[25], b[26]]),
        };
        if !matches!(h.codec & !EXTERNAL, CODEC_NONE | CODEC_LZ4 | CODEC_ZSTD) {
            return Err(format!("unknown pack codec {}", h.codec));
        }
        if h.is_external() && (h.extra_parts != 0 || b.len() != PACK_HEADER_LEN + PACK_POINTER_LEN)
        {
            return Err(format!(
                "malformed pack file pointer ({} bytes, {} extra parts)",
                b.len(),
                h.extra_parts
            ));
        }
        if h.count == 0 {
            return Err("pack with zero events".into());
        }
        if h.raw_len > MAX_RAW_LEN {
            return Err(format!("implausible raw length {}", h.raw_len));
        }
        Ok(h)
    }

    /// Whether the payload is in the pack file (the value holds a [`PackPointer`]).
    pub(crate) fn is_external(&self) -> bool {
        self.codec & EXTERNAL != 0
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.codec);
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.raw_len.to_be_bytes());
        out.extend_from_slice(&self.first_rec.to_be_bytes());
        out.extend_from_slice(&self.last_rec.to_be_bytes());
        out.extend_from_slice(&self.extra_parts.to_be_bytes());
    }
}

/// Accumulates consecutive events for one pack. Raw payload: per event `len u32 BE ‖ B`.
#[derive(Debug, Clone)]
pub(crate) struct PackBuilder {
    pub first_seq: u64,
    pub count: u32,
    pub raw: Vec<u8>,
    pub first_rec: i64,
    pub last_rec: i64,
}

impl PackBuilder {
    pub(crate) fn new(first_seq: u64) -> PackBuilder {
        PackBuilder {
            first_seq,
            count: 0,
            raw: Vec::with_capacity(PACK_RAW_CAP + 1024),
            first_rec: 0,
            last_rec: 0,
        }
    }

    /// Rebuilds a builder from a decoded pack (for appending to the tail pack).
    pub(crate) fn from_decoded(first_seq: u64, header: &PackHeader, raw: Vec<u8>) -> PackBuilder {
        PackBuilder {
            first_seq,
            count: header.count,
            raw,
            first_rec: header.first_rec,
            last_rec: header.last_rec,
        }
    }

    /// Whether adding an event of `len` bytes would overflow the cap (an empty pack takes anything).
    pub(crate) fn would_overflow(&self, len: usize) -> bool {
        self.count > 0 && self.raw.len() + 4 + len > PACK_RAW_CAP
    }

    pub(crate) fn push(&mut self, b: &[u8], rec_micros: i64) {
        if self.count == 0 {
            self.first_rec = rec_micros;
        }
        self.last_rec = rec_micros;
        self.count += 1;
        self.raw.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.raw.extend_from_slice(b);
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count)
    }

    /// The payload as stored: zstd-compressed when that is smaller. Returns (codec, payload).
    fn compress(&self) -> (u8, Vec<u8>) {
        match zstd_compress(&self.raw) {
            Some(z) if z.len() < self.raw.len() => (CODEC_ZSTD, z),
            _ => (CODEC_NONE, self.raw.clone()),
        }
    }

    fn header(&self, codec: u8, extra_parts: u16) -> PackHeader {
        PackHeader {
            codec,
            count: self.count,
            raw_len: self.raw.len() as u32,
            first_rec: self.first_rec,
            last_rec: self.last_rec,
            extra_parts,
        }
    }

    /// Encodes for the pack file: the payload to write there, and a function of its offset
    /// giving the sled value (header flagged [`EXTERNAL`] + [`PackPointer`]).
    pub(crate) fn encode_external(&self) -> ExternalPack {
        let (codec, payload) = self.compress();
        ExternalPack {
            first_seq: self.first_seq,
            header: self.header(codec | EXTERNAL, 0),
            payload,
        }
    }

    /// Encodes into sled values: the first part (header + payload start) and extra parts.
    pub(crate) fn encode(&self) -> Vec<Vec<u8>> {
        let (codec, payload) = self.compress();
        let first_cap = MAX_PART - PACK_HEADER_LEN;
        let extra = if payload.len() > first_cap {
            (payload.len() - first_cap).div_ceil(MAX_PART)
        } else {
            0
        };
        let header = self.header(codec, extra as u16);
        let mut first = Vec::with_capacity(PACK_HEADER_LEN + payload.len().min(first_cap));
        header.encode_into(&mut first);
        first.extend_from_slice(&payload[..payload.len().min(first_cap)]);
        let mut parts = vec![first];
        if extra > 0 {
            for chunk in payload[first_cap..].chunks(MAX_PART) {
                parts.push(chunk.to_vec());
            }
        }
        parts
    }
}

/// A compressed pack bound for the pack file.
#[derive(Debug)]
pub(crate) struct ExternalPack {
    pub first_seq: u64,
    pub header: PackHeader,
    pub payload: Vec<u8>,
}

impl ExternalPack {
    /// The sled value for this pack once its payload is at `offset` in the pack file.
    pub(crate) fn value(&self, offset: u64) -> Vec<u8> {
        let mut v = Vec::with_capacity(PACK_HEADER_LEN + PACK_POINTER_LEN);
        self.header.encode_into(&mut v);
        PackPointer {
            offset,
            len: self.payload.len() as u64,
        }
        .encode_into(&mut v);
        v
    }
}

/// Length of a [`PackPointer`].
pub(crate) const PACK_POINTER_LEN: usize = 16;

/// Where an external pack's payload lies in the pack file: `offset u64 BE ‖ len u64 BE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackPointer {
    pub offset: u64,
    pub len: u64,
}

impl PackPointer {
    /// Reads the pointer that follows the header of an external pack's value (the header
    /// decoder has checked the value's length).
    pub(crate) fn decode(value: &[u8]) -> Result<PackPointer, String> {
        let b = value
            .get(PACK_HEADER_LEN..PACK_HEADER_LEN + PACK_POINTER_LEN)
            .ok_or_else(|| "truncated pack file pointer".to_string())?;
        let p = PackPointer {
            offset: be_u64(&b[..8]),
            len: be_u64(&b[8..]),
        };
        if p.len > u64::from(MAX_RAW_LEN) || p.offset.checked_add(p.len).is_none() {
            return Err(format!(
                "implausible pack file range {} + {}",
                p.offset, p.len
            ));
        }
        Ok(p)
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
    }
}

/// Decompresses a pack's payload (all parts concatenated after the header) to its raw form.
pub(crate) fn decompress_payload(header: &PackHeader, payload: &[u8]) -> Result<Vec<u8>, String> {
    let raw = match header.codec & !EXTERNAL {
        CODEC_NONE => payload.to_vec(),
        CODEC_LZ4 => lz4_flex::block::decompress(payload, header.raw_len as usize)
            .map_err(|e| format!("lz4 decompression failed: {e}"))?,
        CODEC_ZSTD => zstd_decompress(payload, header.raw_len as usize)?,
        c => return Err(format!("unknown pack codec {c}")),
    };
    if raw.len() != header.raw_len as usize {
        return Err(format!(
            "raw payload is {} bytes, header says {}",
            raw.len(),
            header.raw_len
        ));
    }
    Ok(raw)
}

/// Splits a raw payload into its events' byte ranges; checks the count and that nothing is left over.
pub(crate) fn split_raw(raw: &[u8], count: u32) -> Result<Vec<std::ops::Range<usize>>, String> {
    // A damaged count must not size the allocation: every event takes at least 4 bytes.
    let mut out = Vec::with_capacity((count as usize).min(raw.len() / 4));
    let mut pos = 0usize;
    while pos < raw.len() {
        if raw.len() - pos < 4 {
            return Err(format!("truncated event length at raw offset {pos}"));
        }
        let len = u32::from_be_bytes([raw[pos], raw[pos + 1], raw[pos + 2], raw[pos + 3]]) as usize;
        pos += 4;
        if raw.len() - pos < len {
            return Err(format!(
                "event of {len} bytes overruns the pack at raw offset {pos}"
            ));
        }
        out.push(pos..pos + len);
        pos += len;
    }
    if out.len() != count as usize {
        return Err(format!(
            "pack holds {} events, header says {count}",
            out.len()
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------- envelope

/// Whether `s` is a stream slug `[a-z0-9][a-z0-9._-]{0,79}`.
pub fn is_valid_stream(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 80
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..].iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'_' || c == b'-'
        })
}

/// Builds the stored bytes B of one event.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_envelope(
    out: &mut Vec<u8>,
    seq: u64,
    stream: &str,
    stream_version: u64,
    recorded_at: &str,
    schema_version: u32,
    prev_hash: &[u8; 32],
    body: &[u8],
) {
    out.clear();
    out.reserve(160 + stream.len() + body.len());
    // Pieces appended directly: `write!` with its formatting machinery was ~15 % of the
    // writing thread's loop in a 100k import.
    out.extend_from_slice(b"{\"seq\":");
    push_decimal(out, seq);
    out.extend_from_slice(b",\"stream\":\"");
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(b"\",\"stream_version\":");
    push_decimal(out, stream_version);
    out.extend_from_slice(b",\"recorded_at\":\"");
    out.extend_from_slice(recorded_at.as_bytes());
    out.extend_from_slice(b"\",\"schema_version\":");
    push_decimal(out, u64::from(schema_version));
    out.extend_from_slice(b",\"prev_hash\":\"");
    push_hex(out, prev_hash);
    out.extend_from_slice(b"\",");
    out.extend_from_slice(&body[1..]);
}

/// The store fields parsed out of B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub seq: u64,
    pub stream: &'a str,
    pub stream_version: u64,
    pub recorded_at: &'a str,
    pub schema_version: u32,
    pub prev_hash: [u8; 32],
    /// Offset in B where the event's own fields start (just after `"prev_hash":"…",`).
    pub body_start: usize,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn lit(&mut self, s: &str) -> Result<(), String> {
        let s = s.as_bytes();
        if self.b.len() >= self.pos + s.len() && &self.b[self.pos..self.pos + s.len()] == s {
            self.pos += s.len();
            Ok(())
        } else {
            Err(format!(
                "expected {:?} at byte {}",
                String::from_utf8_lossy(s),
                self.pos
            ))
        }
    }
    fn num(&mut self) -> Result<u64, String> {
        let start = self.pos;
        while self.pos < self.b.len() && self.b[self.pos].is_ascii_digit() {
            self.pos += 1;
        }
        let digits = &self.b[start..self.pos];
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
            return Err(format!("expected a number at byte {start}"));
        }
        std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| format!("number out of range at byte {start}"))
    }
    fn until_quote(&mut self) -> Result<&'a str, String> {
        let start = self.pos;
        while self.pos < self.b.len() && self.b[self.pos] != b'"' {
            self.pos += 1;
        }
        if self.pos >= self.b.len() {
            return Err(format!("unterminated string at byte {start}"));
        }
        let s = std::str::from_utf8(&self.b[start..self.pos])
            .map_err(|_| format!("invalid UTF-8 at byte {start}"))?;
        self.pos += 1;
        Ok(s)
    }
}

/// Parses the store fields at the start of B (strictly: exactly the layout the store writes).
pub(crate) fn parse_envelope(b: &[u8]) -> Result<Envelope<'_>, String> {
    let mut c = Cursor { b, pos: 0 };
    c.lit("{\"seq\":")?;
    let seq = c.num()?;
    c.lit(",\"stream\":\"")?;
    let stream = c.until_quote()?;
    if !is_valid_stream(stream) {
        return Err(format!("invalid stream id {stream:?}"));
    }
    c.lit(",\"stream_version\":")?;
    let stream_version = c.num()?;
    c.lit(",\"recorded_at\":\"")?;
    let recorded_at = c.until_quote()?;
    if recorded_at.len() != 27 {
        return Err(format!("malformed recorded_at {recorded_at:?}"));
    }
    c.lit(",\"schema_version\":")?;
    let schema_version =
        u32::try_from(c.num()?).map_err(|_| "schema_version out of range".to_string())?;
    c.lit(",\"prev_hash\":\"")?;
    let hex = c.until_quote()?;
    let prev_hash = parse_hex32(hex).ok_or_else(|| format!("malformed prev_hash {hex:?}"))?;
    c.lit(",\"")?;
    let body_start = c.pos - 1;
    if b.last() != Some(&b'}') {
        return Err("event bytes do not end with '}'".into());
    }
    if seq == 0 || stream_version == 0 {
        return Err("seq and stream_version start at 1".into());
    }
    Ok(Envelope {
        seq,
        stream,
        stream_version,
        recorded_at,
        schema_version,
        prev_hash,
        body_start,
    })
}

/// Lower-case hex SHA-256.
pub(crate) fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `n` in decimal, as `{n}` formats it.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for &x in bytes {
        out.push(HEX[(x >> 4) as usize]);
        out.push(HEX[(x & 15) as usize]);
    }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut v = Vec::with_capacity(bytes.len() * 2);
    push_hex(&mut v, bytes);
    String::from_utf8(v).unwrap_or_default()
}

/// Parses 64 lower-case hex digits.
pub(crate) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUE[usize::from(pair[0])],
            HEX_VALUE[usize::from(pair[1])],
        );
        bad |= (hi | lo) & 0x10;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (bad == 0).then_some(out)
}

/// The value of each lower-case hex digit; 0x10 marks every other byte. Read once per event
/// on every log read (the `prev_hash` field), where a table beats a `match` per nibble.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0x10u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

// ---------------------------------------------------------------- time

/// Formats as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub(crate) fn format_micros(micros: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(micros) {
        Some(dt) => dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        None => "1970-01-01T00:00:00.000000Z".to_string(),
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS.ffffffZ` to microseconds since the epoch.
pub(crate) fn parse_recorded_at(s: &str) -> Option<i64> {
    if s.len() != 27 {
        return None;
    }
    let dt = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.6fZ").ok()?;
    let micros = dt.and_utc().timestamp_micros();
    // Only the canonical spelling round-trips.
    (format_micros(micros) == s).then_some(micros)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_as_format_writes_them() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            12345,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut v = b"x".to_vec();
            push_decimal(&mut v, n);
            assert_eq!(v, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn stream_slugs() {
        assert!(is_valid_stream("call-1"));
        assert!(is_valid_stream("0a._-z"));
        assert!(is_valid_stream(&"a".repeat(80)));
        assert!(!is_valid_stream(&"a".repeat(81)));
        assert!(!is_valid_stream(""));
        assert!(!is_valid_stream("-a"));
        assert!(!is_valid_stream("Call"));
        assert!(!is_valid_stream("a b"));
        assert!(!is_valid_stream("a\"b"));
    }

    #[test]
    fn pack_keys_are_ordered_by_seq() {
        assert!(pack_key(255) < pack_key(256));
        assert_eq!(pack_key_seq(&pack_key(77)), Some(77));
        assert_eq!(pack_key_seq(b"Pshort"), None);
        assert!(part_key(1, 2) < part_key(2, 0));
    }

    #[test]
    fn head_and_counts_roundtrip() {
        let h = HeadRec {
            seq: 9,
            hash: [7; 32],
            rec_micros: 1_700_000_000_000_000,
        };
        assert_eq!(HeadRec::decode(&h.encode()), Some(h));
        assert_eq!(HeadRec::decode(b"short"), None);
        assert_eq!(decode_counts(&encode_counts(3, 4)), Some((3, 4)));
    }

    fn decode_all(parts: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
        let h = PackHeader::decode(&parts[0])?;
        assert_eq!(h.extra_parts as usize, parts.len() - 1);
        let mut payload = parts[0][PACK_HEADER_LEN..].to_vec();
        for p in &parts[1..] {
            payload.extend_from_slice(p);
        }
        let raw = decompress_payload(&h, &payload)?;
        Ok(split_raw(&raw, h.count)?
            .into_iter()
            .map(|r| raw[r].to_vec())
            .collect())
    }

    #[test]
    fn pack_roundtrip_small_and_compressed() {
        let mut p = PackBuilder::new(5);
        let evs: Vec<Vec<u8>> = (0..100)
            .map(|i| {
                format!("{{\"type\":\"X\",\"n\":{i},\"pad\":\"aaaaaaaaaaaaaaaaaaaaaaa\"}}")
                    .into_bytes()
            })
            .collect();
        for (i, e) in evs.iter().enumerate() {
            p.push(e, 1000 + i as i64);
        }
        let parts = p.encode();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0][0], CODEC_ZSTD);
        let h = PackHeader::decode(&parts[0]).unwrap();
        assert_eq!((h.count, h.first_rec, h.last_rec), (100, 1000, 1099));
        assert_eq!(decode_all(&parts).unwrap(), evs);
        assert_eq!(p.next_seq(), 105);
    }

    #[test]
    fn lz4_packs_of_older_stores_still_decode() {
        let evs: Vec<Vec<u8>> = (0..40)
            .map(|i| {
                format!("{{\"type\":\"X\",\"n\":{i},\"pad\":\"bbbbbbbbbbbbbbbb\"}}").into_bytes()
            })
            .collect();
        let mut raw = Vec::new();
        for e in &evs {
            raw.extend_from_slice(&(e.len() as u32).to_be_bytes());
            raw.extend_from_slice(e);
        }
        let payload = lz4_flex::block::compress(&raw);
        let header = PackHeader {
            codec: CODEC_LZ4,
            count: 40,
            raw_len: raw.len() as u32,
            first_rec: 5,
            last_rec: 9,
            extra_parts: 0,
        };
        let mut v = Vec::new();
        header.encode_into(&mut v);
        v.extend_from_slice(&payload);
        assert_eq!(decode_all(&[v]).unwrap(), evs);
    }

    #[test]
    fn pack_with_huge_incompressible_event_is_split_into_parts() {
        // Pseudo-random bytes: zstd cannot shrink them, so the codec falls back to none.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let big: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let mut p = PackBuilder::new(1);
        p.push(&big, 1);
        let parts = p.encode();
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|v| v.len() <= MAX_PART));
        assert_eq!(parts[0][0], CODEC_NONE);
        assert_eq!(decode_all(&parts).unwrap(), vec![big]);
    }

    #[test]
    fn damaged_packs_give_errors_not_panics() {
        let mut p = PackBuilder::new(1);
        for i in 0..50 {
            p.push(format!("{{\"type\":\"X\",\"i\":{i}}}").as_bytes(), 0);
        }
        let parts = p.encode();
        let good = &parts[0];
        for cut in 0..good.len() {
            let _ = decode_all(&[good[..cut].to_vec()]);
        }
        let mut garbage = good.clone();
        for (i, b) in garbage.iter_mut().enumerate().skip(PACK_HEADER_LEN) {
            *b = b.wrapping_mul(31).wrapping_add(i as u8);
        }
        assert!(decode_all(&[garbage]).is_err());
        assert!(PackHeader::decode(&[9; 40]).is_err());
    }

    #[test]
    fn envelope_roundtrip() {
        let mut b = Vec::new();
        let body = br#"{"type":"CallHeld","event_id":"x"}"#;
        build_envelope(
            &mut b,
            12,
            "call-1",
            3,
            "2024-01-02T03:04:05.000006Z",
            1,
            &[0xab; 32],
            body,
        );
        let s = std::str::from_utf8(&b).unwrap();
        assert!(s.starts_with("{\"seq\":12,\"stream\":\"call-1\",\"stream_version\":3,"));
        assert!(s.ends_with(",\"type\":\"CallHeld\",\"event_id\":\"x\"}"));
        let e = parse_envelope(&b).unwrap();
        assert_eq!(e.seq, 12);
        assert_eq!(e.stream, "call-1");
        assert_eq!(e.stream_version, 3);
        assert_eq!(e.recorded_at, "2024-01-02T03:04:05.000006Z");
        assert_eq!(e.schema_version, 1);
        assert_eq!(e.prev_hash, [0xab; 32]);
        let mut body_json = vec![b'{'];
        body_json.extend_from_slice(&b[e.body_start..]);
        assert_eq!(body_json, body);
        let _: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert!(parse_envelope(b"{\"seq\":01,").is_err());
        assert!(parse_envelope(b"").is_err());
    }

    #[test]
    fn time_format_roundtrip() {
        let m = 1_706_000_000_123_456;
        let s = format_micros(m);
        assert_eq!(s.len(), 27);
        assert_eq!(parse_recorded_at(&s), Some(m));
        assert_eq!(parse_recorded_at("2024-01-02T03:04:05Z"), None);
    }

    #[test]
    fn a_damaged_event_count_does_not_size_an_allocation() {
        // One 1-byte event; the header would claim four billion.
        let raw = [0, 0, 0, 1, b'x'];
        assert_eq!(split_raw(&raw, 1).unwrap(), vec![4..5]);
        let err = split_raw(&raw, u32::MAX).unwrap_err();
        assert!(err.contains("header says 4294967295"), "{err}");
    }

    #[test]
    fn hex_roundtrip() {
        let h = sha256(b"abc");
        assert_eq!(
            to_hex(&h),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_hex32(&to_hex(&h)), Some(h));
        assert_eq!(parse_hex32(&to_hex(&h).to_uppercase()), None);
        assert_eq!(parse_hex32(&to_hex(&h)[1..]), None);
        // Every byte that is not a lower-case hex digit is refused, first or last.
        for c in 0..=255u8 {
            let digit = c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
            for at in [0, 63] {
                let mut s = to_hex(&h).into_bytes();
                s[at] = c;
                let parsed = std::str::from_utf8(&s).ok().and_then(parse_hex32);
                assert_eq!(parsed.is_some(), digit, "byte {c:#04x} at {at}");
            }
        }
    }
}
