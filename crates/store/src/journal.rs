//! The append journal: what makes a small append durable with one `fdatasync` of a
//! preallocated file instead of a sled flush.
//!
//! sled 0.34's `flush()` issues several `pwrite` + `sync_file_range` calls and still needs an
//! fsync of its data file after them; per small append that costs ~3× a plain file's
//! append + `fdatasync` on this project's machine. So a small append's events' exact bytes B
//! are written to `<dir>/journal` as one record, made durable by `fdatasync` (shared between
//! concurrent appenders: group commit), and applied to sled later without a flush (the
//! store's pending tail). sled is flushed at checkpoints (the journal is full), on large
//! appends, on close, and on open after an unclean close (sled may then hold settled events
//! that only reached the page cache, and their records are about to be overwritten); its
//! periodic background flush is off. After a crash, sled recovers a prefix of its batches and
//! [`Journal::recover`] hands back the records past the recovered head, which the store
//! re-applies through the same code path (the bytes B, hence the hash chain, are identical).
//!
//! # Format
//!
//! The file is a sequence of records from offset 0:
//! `magic "CJ" ‖ version u8 (1) ‖ 0u8 ‖ payload_len u32 ‖ first_seq u64 ‖ count u32 ‖
//! check [8] ‖ payload`, all big-endian, where the payload is `len u32 ‖ B` per event (the
//! pack's raw layout) and `check` is the first 8 bytes of SHA-256 over the 20 header bytes
//! before it and the payload.
//!
//! The journal's space is reused: after a checkpoint (sled flushed and fsynced through the
//! head) writing restarts at offset 0 over the old records. Recovery reads records while they
//! are intact **and** contiguous (each starts at the seq after the previous one ends); a torn
//! record ends the scan, and so does a stale record from before a checkpoint, because its seqs
//! are lower than the ones the chain expects. Records at or below sled's recovered head are
//! skipped. A clean close zeroes the first header, so a normal open reads 24 bytes.
//!
//! The file only ever grows by whole zero-filled [`GROW`] steps, each followed by an fsync, so
//! a record's write never changes the file's size or allocation and its `fdatasync` only has
//! the data to flush (the trick SQLite's WAL relies on).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::codec;
use crate::error::Result;

/// Bytes of a record header.
pub(crate) const HEADER: usize = 28;
const MAGIC: [u8; 4] = [b'C', b'J', 1, 0];
/// The file grows by this much, zero-filled, at a time.
pub(crate) const GROW: u64 = 1 << 20;
/// When the write offset passes this, the next small append checkpoints (flushes sled) and
/// restarts the journal at offset 0.
pub(crate) const CHECKPOINT_AT: u64 = 8 << 20;
/// A clean close shrinks the file back to this (the space is reused by the next session).
const KEEP: u64 = GROW;

/// One record read back by [`Journal::recover`].
#[derive(Debug)]
pub(crate) struct Record {
    pub first_seq: u64,
    pub count: u32,
    /// `len u32 ‖ B` per event.
    pub payload: Vec<u8>,
}

/// The open journal file. Records are buffered by [`Self::write`] (under the store's writer
/// mutex) and written out in one `write` by the group-commit leader ([`Self::write_out`]) just
/// before its `fdatasync`, so concurrent appends cost one system call each, not two.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    /// Where the next record goes.
    len: u64,
    /// Bytes of the file known to be allocated and zero-filled or written (its size).
    allocated: u64,
    /// Records not yet written to the file, and the offset where they start.
    buf: Vec<u8>,
    buf_at: u64,
}

fn check(header: &[u8], payload: &[u8]) -> [u8; 8] {
    let mut b = Vec::with_capacity(20 + payload.len());
    b.extend_from_slice(&header[..20]);
    b.extend_from_slice(payload);
    let h = codec::sha256(&b);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h[..8]);
    out
}

impl Journal {
    /// Opens (or creates) `<dir>/journal`. Writing starts at offset 0; call [`Self::recover`]
    /// first to read what a crashed session left.
    pub(crate) fn open(dir: &Path) -> Result<Journal> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("journal"))?;
        let allocated = file.metadata()?.len();
        Ok(Journal {
            file,
            len: 0,
            allocated,
            buf: Vec::new(),
            buf_at: 0,
        })
    }

    /// The intact, contiguous records from offset 0 whose events lie past `head_seq`, in order,
    /// and whether any intact record was found at all. Stops at the first torn, stale or
    /// non-contiguous record.
    ///
    /// Any intact record means the last session did not close cleanly, so sled's recovered
    /// state may include events it never flushed (applied to sled, still in the page cache):
    /// the caller must flush sled before the journal is overwritten.
    pub(crate) fn recover(&mut self, head_seq: u64) -> Result<(Vec<Record>, bool)> {
        let mut out = Vec::new();
        let mut any = false;
        let mut off = 0u64;
        let mut expect: Option<u64> = None;
        let size = self.file.metadata()?.len();
        loop {
            if off + HEADER as u64 > size {
                break;
            }
            let mut h = [0u8; HEADER];
            self.file.seek(SeekFrom::Start(off))?;
            self.file.read_exact(&mut h)?;
            if h[..4] != MAGIC {
                break;
            }
            let plen = codec::be_u32(&h[4..8]) as u64;
            let first_seq = codec::be_u64(&h[8..16]);
            let count = codec::be_u32(&h[16..20]);
            let Some(end_seq) = first_seq.checked_add(u64::from(count)) else {
                break;
            };
            if count == 0 || first_seq == 0 || off + HEADER as u64 + plen > size {
                break;
            }
            if expect.is_some_and(|e| e != first_seq) {
                break;
            }
            let mut payload = vec![0u8; plen as usize];
            self.file.read_exact(&mut payload)?;
            if check(&h, &payload) != h[20..28] {
                break;
            }
            any = true;
            expect = Some(end_seq);
            off += HEADER as u64 + plen;
            if end_seq - 1 > head_seq {
                out.push(Record {
                    first_seq,
                    count,
                    payload,
                });
            }
        }
        Ok((out, any))
    }

    /// Whether the next record should wait for a checkpoint first.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.len >= CHECKPOINT_AT
    }

    /// Buffers one record (neither written nor durable: see [`Self::write_out`] and
    /// [`Self::sync`]).
    pub(crate) fn write(&mut self, first_seq: u64, count: u32, payload: &[u8]) -> Result<()> {
        let start = self.len;
        let end = start + (HEADER + payload.len()) as u64;
        if end > self.allocated {
            // Zeros go past `allocated`; every buffered record lies below it.
            self.grow(end)?;
        }
        if self.buf.is_empty() {
            self.buf_at = start;
        }
        let at = self.buf.len();
        self.buf.extend_from_slice(&MAGIC);
        self.buf
            .extend_from_slice(&(payload.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(&first_seq.to_be_bytes());
        self.buf.extend_from_slice(&count.to_be_bytes());
        let c = check(&self.buf[at..], payload);
        self.buf.extend_from_slice(&c);
        self.buf.extend_from_slice(payload);
        self.len = end;
        Ok(())
    }

    /// Writes the buffered records to the file (one `write`; not yet durable).
    pub(crate) fn write_out(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.seek(SeekFrom::Start(self.buf_at))?;
        self.file.write_all(&self.buf)?;
        self.buf.clear();
        if self.buf.capacity() > 4 << 20 {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// Zero-fills the file up to a multiple of [`GROW`] at or past `end` and fsyncs it, so later
    /// record writes are pure overwrites.
    fn grow(&mut self, end: u64) -> Result<()> {
        let target = end.div_ceil(GROW) * GROW;
        let zeros = vec![0u8; GROW as usize];
        self.file.seek(SeekFrom::Start(self.allocated))?;
        let mut at = self.allocated;
        while at < target {
            let n = (target - at).min(GROW) as usize;
            self.file.write_all(&zeros[..n])?;
            at += n as u64;
        }
        self.file.sync_all()?;
        self.allocated = target;
        Ok(())
    }

    /// Makes every written record durable (`fdatasync`).
    pub(crate) fn sync(file: &File) -> Result<()> {
        file.sync_data()?;
        Ok(())
    }

    /// A handle for [`Self::sync`] that a group-commit leader can use without the writer lock.
    pub(crate) fn sync_handle(&self) -> Result<File> {
        Ok(self.file.try_clone()?)
    }

    /// After sled was flushed and fsynced through the head: later records start at offset 0,
    /// and buffered ones are no longer needed.
    pub(crate) fn restart(&mut self) {
        self.len = 0;
        self.buf.clear();
    }

    /// On a clean close (sled flushed and fsynced): invalidates the first record so the next
    /// open has nothing to read, and gives back space beyond [`KEEP`]. Not fsynced: should a
    /// crash undo it, the records it hid are all at or below the head and are skipped anyway.
    pub(crate) fn close_clean(&mut self) -> Result<()> {
        if self.allocated >= HEADER as u64 {
            self.file.seek(SeekFrom::Start(0))?;
            self.file.write_all(&[0u8; HEADER])?;
        }
        if self.allocated > KEEP {
            self.file.set_len(KEEP)?;
            self.allocated = KEEP;
        }
        self.len = 0;
        self.buf.clear();
        Ok(())
    }
}
