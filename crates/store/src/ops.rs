//! Whole-store operations: verify, export, restore.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};

use uuid::Uuid;

use crate::codec;
use crate::error::{Result, StoreError};
use crate::store::{LogWriter, Store};
use crate::types::*;

const PROGRESS_EVERY: u64 = 10_000;

struct Checker {
    report: VerifyReport,
}

impl Checker {
    fn fail(&mut self, seq: u64, detail: impl Into<String>) -> bool {
        if self.report.first_problem.is_none() {
            self.report.first_problem = Some(VerifyProblem {
                seq,
                detail: detail.into(),
            });
        }
        true
    }
}

impl Store {
    /// Checks everything that can be checked from the stored bytes and reports the first problem:
    /// every hash recomputed from B and the chain, seq contiguity, pack headers, stream versions
    /// (1..n, contiguous), stream index and id index in both directions, stream counters, head and
    /// counts metadata, and that every event decodes via `decode`. Never panics on damaged data;
    /// `Err` only for engine/I/O failures.
    pub fn verify(
        &self,
        decode: &dyn Fn(&StoredEvent) -> Result<(), String>,
        progress: &dyn Fn(u64),
    ) -> Result<VerifyReport> {
        self.settle()?;
        let publ = self.published();
        let head = publ.head.seq;
        let mut c = Checker {
            report: VerifyReport {
                events_checked: 0,
                packs_checked: 0,
                streams_checked: 0,
                first_problem: None,
            },
        };
        let mut expected = 1u64;
        let mut prev_hash = [0u8; 32];
        let mut last_rec = i64::MIN;
        let mut last_rec_str = String::new();
        let mut by_stream: HashMap<String, Vec<u64>> = HashMap::new();
        let mut ids: HashMap<Uuid, u64> = HashMap::new();

        let start = codec::pack_key(0);
        let end = [codec::P_PACK + 1];
        let mut packs = self.log.range(start.as_slice()..end.as_slice()).peekable();
        'packs: while let Some(kv) = packs.next() {
            let (k, v) = kv?;
            let Some(first) = codec::pack_key_seq(&k) else {
                c.fail(expected, format!("malformed pack key {k:?}"));
                break;
            };
            if first > head {
                break;
            }
            c.report.packs_checked += 1;
            if first != expected {
                c.fail(
                    expected.min(first),
                    format!("pack starts at seq {first}, expected {expected}"),
                );
                break;
            }
            let next_first = match packs.peek() {
                Some(Ok((nk, _))) => codec::pack_key_seq(nk),
                _ => None,
            };
            let range_end = next_first.map_or(head, |n| n.saturating_sub(1)).min(head);
            let events = match self.decode_pack_value(first, &v) {
                Ok(e) => e,
                Err(StoreError::Corrupt { detail, .. }) => {
                    c.fail(
                        first,
                        format!("pack seqs {first}..={range_end} unreadable: {detail}"),
                    );
                    break;
                }
                Err(e) => return Err(e),
            };
            let header = match codec::PackHeader::decode(&v) {
                Ok(h) => h,
                Err(d) => {
                    c.fail(first, format!("pack seqs {first}..={range_end}: {d}"));
                    break;
                }
            };
            let mut pack_first_rec = None;
            let mut pack_last_rec = 0;
            for e in &events {
                if e.seq > head {
                    break;
                }
                c.report.events_checked += 1;
                if c.report.events_checked % PROGRESS_EVERY == 0 {
                    progress(c.report.events_checked);
                }
                let seq = e.seq;
                if seq != expected {
                    c.fail(
                        expected,
                        format!("seq {seq} found where {expected} was expected"),
                    );
                    break 'packs;
                }
                if e.prev_hash != prev_hash {
                    c.fail(
                        seq,
                        format!(
                            "prev_hash {} does not match the hash of seq {} ({})",
                            e.prev_hash_hex(),
                            seq - 1,
                            codec::to_hex(&prev_hash)
                        ),
                    );
                    break 'packs;
                }
                let vers = by_stream.entry(e.stream.clone()).or_default();
                if e.stream_version != vers.len() as u64 + 1 {
                    c.fail(
                        seq,
                        format!(
                            "stream {} version {} follows version {}",
                            e.stream,
                            e.stream_version,
                            vers.len()
                        ),
                    );
                    break 'packs;
                }
                vers.push(seq);
                let Some(rec) = codec::parse_recorded_at(&e.recorded_at) else {
                    c.fail(seq, format!("malformed recorded_at {:?}", e.recorded_at));
                    break 'packs;
                };
                if rec < last_rec {
                    c.fail(
                        seq,
                        format!("recorded_at {} is before {}", e.recorded_at, last_rec_str),
                    );
                    break 'packs;
                }
                pack_first_rec.get_or_insert(rec);
                pack_last_rec = rec;
                last_rec = rec;
                last_rec_str.clone_from(&e.recorded_at);
                match e.event_id() {
                    Some(id) => {
                        if let Some(other) = ids.insert(id, seq) {
                            c.fail(seq, format!("event id {id} also at seq {other}"));
                            break 'packs;
                        }
                    }
                    None => {
                        c.fail(
                            seq,
                            "no top-level event_id (or the event is not valid JSON)",
                        );
                        break 'packs;
                    }
                }
                if let Err(d) = decode(e) {
                    c.fail(seq, format!("does not decode: {d}"));
                    break 'packs;
                }
                prev_hash = e.hash();
                expected = seq + 1;
            }
            if header.first_rec != pack_first_rec.unwrap_or(header.first_rec)
                || (events.last().is_some_and(|e| e.seq <= head)
                    && header.last_rec != pack_last_rec)
            {
                c.fail(first, format!("pack seqs {first}..={range_end}: header recorded_at bounds disagree with its events"));
                break;
            }
        }
        if c.report.first_problem.is_some() {
            return Ok(c.report);
        }
        progress(c.report.events_checked);

        // Head and counters.
        if expected - 1 != head {
            c.fail(
                expected,
                format!("log ends at seq {} but the head is {head}", expected - 1),
            );
        } else if head > 0 && (publ.head.hash != prev_hash || publ.head.rec_micros != last_rec) {
            c.fail(
                head,
                "head metadata (hash or recorded_at) does not match the last event",
            );
        } else if publ.events != head {
            c.fail(
                head,
                format!("event counter {} but {head} events", publ.events),
            );
        } else if publ.streams != by_stream.len() as u64 {
            c.fail(
                head,
                format!(
                    "stream counter {} but {} streams",
                    publ.streams,
                    by_stream.len()
                ),
            );
        }
        if c.report.first_problem.is_some() {
            return Ok(c.report);
        }

        // Index runs, both directions: every entry must match the log, and every event must
        // have exactly one id entry and one stream entry.
        let st = self.index_state();
        let (mut id_entries, mut stream_entries) = (0u64, 0u64);
        for run in &st.runs {
            let entries = match crate::index::run_entries(&self.log, run) {
                Ok(e) => e,
                Err(StoreError::Corrupt { detail, .. }) => {
                    c.fail(0, format!("index: {detail}"));
                    return Ok(c.report);
                }
                Err(e) => return Err(e),
            };
            if entries.len() as u64 != run.count || entries.windows(2).any(|w| w[0].0 >= w[1].0) {
                c.fail(
                    0,
                    format!(
                        "index run {} is not a sorted run of {} entries",
                        run.id, run.count
                    ),
                );
                return Ok(c.report);
            }
            for (k, seq) in entries {
                let ok = match k.first() {
                    Some(b'i') => {
                        id_entries += 1;
                        Uuid::from_slice(&k[1..]).ok().and_then(|id| ids.get(&id)) == Some(&seq)
                    }
                    Some(b's') => {
                        stream_entries += 1;
                        crate::index::parse_stream_entry(&k).is_some_and(|(s, v)| {
                            by_stream
                                .get(s)
                                .and_then(|l| l.get((v as usize).wrapping_sub(1)))
                                == Some(&seq)
                        })
                    }
                    _ => false,
                };
                if !ok {
                    c.fail(
                        seq,
                        format!(
                            "index entry {} → seq {seq} disagrees with the log",
                            String::from_utf8_lossy(&k)
                        ),
                    );
                    return Ok(c.report);
                }
            }
        }
        if id_entries != ids.len() as u64 || stream_entries != head {
            c.fail(
                0,
                format!("index holds {id_entries} id and {stream_entries} stream entries for {head} events"),
            );
        }
        c.report.streams_checked = by_stream.len() as u64;
        Ok(c.report)
    }

    /// Writes every event as an export line (JSON Lines). Returns the number of lines.
    pub fn export(&self, out: &mut dyn Write, progress: &dyn Fn(u64)) -> Result<u64> {
        let mut n = 0u64;
        for e in self.read_log(1, None) {
            let e = e?;
            out.write_all(e.export_line().as_bytes())?;
            out.write_all(b"\n")?;
            n += 1;
            if n % PROGRESS_EVERY == 0 {
                progress(n);
            }
        }
        out.flush()?;
        progress(n);
        Ok(n)
    }

    /// Loads an export into an EMPTY store, keeping each line's exact bytes B, after checking each
    /// line's hash, the chain, seq contiguity, stream versions, `recorded_at` order and unique
    /// event ids. All or nothing: nothing is published unless every line is accepted.
    pub fn restore(&self, input: &mut dyn BufRead, progress: &dyn Fn(u64)) -> Result<u64> {
        let mut guard = self.writer_lock()?;
        let publ = self.logical();
        if publ.head.seq != 0 || publ.events != 0 {
            return Err(StoreError::NotEmpty {
                events: publ.events.max(publ.head.seq),
            });
        }
        let mut w = LogWriter::new(self, publ, self.index_state(), true)?;
        let mut versions: HashMap<String, u64> = HashMap::new();
        let mut ids: HashSet<Uuid> = HashSet::new();
        let mut prev = [0u8; 32];
        let mut last_rec = i64::MIN;
        let mut line_no = 0u64;
        let mut buf = Vec::new();
        let mut b = Vec::new();
        let result: Result<()> = (|| loop {
            buf.clear();
            if input.read_until(b'\n', &mut buf)? == 0 {
                return Ok(());
            }
            line_no += 1;
            let bad = |reason: String| StoreError::RestoreLine {
                line: line_no,
                reason,
            };
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            let l = buf.len();
            if l < 77 || !buf.ends_with(b"\"}") || &buf[l - 75..l - 66] != b",\"hash\":\"" {
                return Err(bad("not an export line (no trailing \"hash\" field)".into()));
            }
            let hash_hex = std::str::from_utf8(&buf[l - 66..l - 2]).unwrap_or("");
            let Some(hash) = codec::parse_hex32(hash_hex) else {
                return Err(bad(format!("malformed hash {hash_hex:?}")));
            };
            b.clear();
            b.extend_from_slice(&buf[..l - 75]);
            b.push(b'}');
            if codec::sha256(&b) != hash {
                return Err(bad(
                    "hash mismatch: the line's content does not hash to its \"hash\"".into(),
                ));
            }
            let env =
                codec::parse_envelope(&b).map_err(|d| bad(format!("malformed envelope: {d}")))?;
            let expected = w.head.seq + 1;
            if env.seq != expected {
                return Err(bad(format!(
                    "seq {} where {expected} was expected",
                    env.seq
                )));
            }
            if env.prev_hash != prev {
                return Err(bad(
                    "prev_hash does not match the previous line's hash".into()
                ));
            }
            let cur = versions.get(env.stream).copied().unwrap_or(0);
            if env.stream_version != cur + 1 {
                return Err(bad(format!(
                    "stream {} version {} follows version {cur}",
                    env.stream, env.stream_version
                )));
            }
            let rec = codec::parse_recorded_at(env.recorded_at)
                .ok_or_else(|| bad(format!("malformed recorded_at {:?}", env.recorded_at)))?;
            if rec < last_rec {
                return Err(bad("recorded_at goes backwards".into()));
            }
            let id = crate::types::extract_event_id(&b)
                .ok_or_else(|| bad("not valid JSON with a top-level event_id".into()))?;
            if !ids.insert(id) {
                return Err(bad(format!("event id {id} appears twice")));
            }
            let stream = env.stream.to_owned();
            let version = env.stream_version;
            w.push(&b, &stream, version, &id, rec)?;
            versions.insert(stream, version);
            prev = hash;
            last_rec = rec;
            if line_no % PROGRESS_EVERY == 0 {
                progress(line_no);
            }
        })();
        if let Err(e) = result {
            drop(w);
            return Err(self.fail_large(&mut guard, e, true));
        }
        if w.head.seq == 0 {
            return Ok(0);
        }
        // A large write: durable (flushed and fsynced) when `finish` returns.
        let new_pub = match w.finish(versions.len() as u64) {
            Ok(x) => x,
            Err(e) => return Err(self.fail_large(&mut guard, e, true)),
        };
        drop(guard);
        progress(new_pub.head.seq);
        Ok(new_pub.head.seq)
    }
}
