//! Public value types of the store API.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::codec;

/// The clock that stamps `recorded_at`.
pub type Clock = Box<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How a store is opened.
pub struct OpenOptions {
    /// Stamps `recorded_at` on appends (truncated to microseconds, never decreasing).
    /// Default: `Utc::now`.
    pub clock: Clock,
    /// sled page cache size in bytes. Default 64 MiB.
    pub cache_capacity: u64,
    /// Create the store when the directory does not hold one. Default true.
    pub create: bool,
    /// A batch with more events than this is written in chunks past the published head and
    /// published by one small step at the end. Default 4096.
    #[doc(hidden)]
    pub large_batch_threshold: usize,
    /// Events per chunk of a large batch (chunks are cut at pack boundaries). Default 4096.
    #[doc(hidden)]
    pub chunk_events: usize,
    /// The tail pack is extended in place (rewritten) while its raw payload is below this.
    /// Default 8 KiB (measured: 32 KiB cost ~30% of single-append throughput). 0 disables.
    #[doc(hidden)]
    pub tail_rewrite_limit: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            clock: Box::new(Utc::now),
            cache_capacity: 64 * 1024 * 1024,
            create: true,
            large_batch_threshold: 4096,
            chunk_events: 4096,
            tail_rewrite_limit: 8 * 1024,
        }
    }
}

impl fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenOptions")
            .field("cache_capacity", &self.cache_capacity)
            .field("create", &self.create)
            .field("large_batch_threshold", &self.large_batch_threshold)
            .field("chunk_events", &self.chunk_events)
            .field("tail_rewrite_limit", &self.tail_rewrite_limit)
            .finish_non_exhaustive()
    }
}

/// An event to append. `body` is a compact JSON object starting with `{"type":…` that carries
/// `"event_id":"<event_id>"` (lower-case hyphenated) among its top-level fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Identity; appending the same id with the same body again is a no-op.
    pub event_id: Uuid,
    /// The stream (subject id), a slug `[a-z0-9][a-z0-9._-]{0,79}`.
    pub stream: String,
    /// The event type (informational; the body carries it too).
    pub event_type: String,
    /// Schema version written into the envelope.
    pub schema_version: u32,
    /// The event as a compact JSON object.
    pub body: Vec<u8>,
}

/// An optimistic-concurrency expectation on one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist (version 0).
    NoStream,
    /// The stream must exist (version ≥ 1).
    StreamExists,
    /// The stream must be at exactly this version (0 = no stream).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `actual` satisfies this expectation.
    pub fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::StreamExists => actual > 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("an existing stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// Where one input event ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Global sequence number.
    pub seq: u64,
    /// Version within its stream (1-based).
    pub stream_version: u64,
    /// True when the event was already stored (or earlier in the batch) and nothing was written.
    pub duplicate: bool,
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// One per input event, in input order.
    pub positions: Vec<Position>,
    /// Events written.
    pub appended: u64,
    /// Events skipped as duplicates.
    pub duplicates: u64,
    /// First seq written (None when nothing was written).
    pub first_seq: Option<u64>,
    /// Last seq written (None when nothing was written).
    pub last_seq: Option<u64>,
    /// True when the clock was behind the head's `recorded_at` and was clamped to it.
    pub clock_clamped: bool,
    /// The `recorded_at` stamped on the written events (None when nothing was written).
    pub recorded_at: Option<String>,
}

/// The published head of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Last seq (0 when empty).
    pub seq: u64,
    /// Hash of the last event (64 zeros when empty).
    pub hash: [u8; 32],
    /// `recorded_at` of the last event (None when empty).
    pub recorded_at: Option<String>,
}

impl Head {
    /// The head hash in lower-case hex.
    pub fn hash_hex(&self) -> String {
        codec::to_hex(&self.hash)
    }
}

/// One stored event: the envelope fields parsed out of its bytes B, plus B itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Global sequence number.
    pub seq: u64,
    /// Stream (subject id).
    pub stream: String,
    /// Version within the stream.
    pub stream_version: u64,
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub recorded_at: String,
    /// Schema version of the body.
    pub schema_version: u32,
    /// Hash of the previous event (zeros for seq 1).
    pub prev_hash: [u8; 32],
    bytes: Vec<u8>,
    body_start: usize,
}

impl StoredEvent {
    /// Parses B (strictly) and hashes it.
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Result<StoredEvent, String> {
        let env = codec::parse_envelope(&bytes)?;
        let (seq, stream_version, schema_version, prev_hash, body_start) = (
            env.seq,
            env.stream_version,
            env.schema_version,
            env.prev_hash,
            env.body_start,
        );
        let stream = env.stream.to_owned();
        let recorded_at = env.recorded_at.to_owned();
        Ok(StoredEvent {
            seq,
            stream,
            stream_version,
            recorded_at,
            schema_version,
            prev_hash,
            bytes,
            body_start,
        })
    }

    /// SHA-256 of [`StoredEvent::bytes`], computed from the bytes read at each call (a pass
    /// that folds the log does not need it: hashing was 5 % of a rebuild).
    pub fn hash(&self) -> [u8; 32] {
        codec::sha256(&self.bytes)
    }

    /// The exact stored bytes B (what the hash covers).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The event's own JSON object, without the store's fields: `{` + the body part of B.
    pub fn body_json(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.bytes.len() - self.body_start + 1);
        v.push(b'{');
        v.extend_from_slice(&self.bytes[self.body_start..]);
        v
    }

    /// The body part of B (after the leading `{` of the caller's body).
    pub(crate) fn body_tail(&self) -> &[u8] {
        &self.bytes[self.body_start..]
    }

    /// B with `,"hash":"<hex>"` inserted before its final `}` (no newline).
    pub fn export_line(&self) -> String {
        let mut v = Vec::with_capacity(self.bytes.len() + 76);
        v.extend_from_slice(&self.bytes[..self.bytes.len() - 1]);
        v.extend_from_slice(b",\"hash\":\"");
        codec::push_hex(&mut v, &self.hash());
        v.extend_from_slice(b"\"}");
        String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The hash in lower-case hex.
    pub fn hash_hex(&self) -> String {
        codec::to_hex(&self.hash())
    }

    /// The previous hash in lower-case hex.
    pub fn prev_hash_hex(&self) -> String {
        codec::to_hex(&self.prev_hash)
    }

    /// `recorded_at` as a timestamp.
    pub fn recorded_at_utc(&self) -> Option<DateTime<Utc>> {
        codec::parse_recorded_at(&self.recorded_at).and_then(DateTime::<Utc>::from_timestamp_micros)
    }

    /// The top-level `event_id` of the event (parses the JSON).
    pub fn event_id(&self) -> Option<Uuid> {
        extract_event_id(&self.bytes)
    }
}

#[derive(serde::Deserialize)]
struct IdOnly {
    event_id: Option<Uuid>,
}

/// The top-level `event_id` of a JSON object, if it parses.
pub(crate) fn extract_event_id(b: &[u8]) -> Option<Uuid> {
    serde_json::from_slice::<IdOnly>(b)
        .ok()
        .and_then(|x| x.event_id)
}

/// Counters and sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Events in the log.
    pub events: u64,
    /// Distinct streams.
    pub streams: u64,
    /// Last seq.
    pub head_seq: u64,
    /// `recorded_at` of the head.
    pub last_recorded_at: Option<String>,
    /// sled's `size_on_disk` plus the pack file's length.
    pub bytes_on_disk: u64,
}

/// The first problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyProblem {
    /// The first bad seq (for a damaged pack: its first seq).
    pub seq: u64,
    /// What is wrong.
    pub detail: String,
}

/// What `verify` checked and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events read and checked.
    pub events_checked: u64,
    /// Packs read.
    pub packs_checked: u64,
    /// Streams checked.
    pub streams_checked: u64,
    /// The first problem, `None` when the store is sound.
    pub first_problem: Option<VerifyProblem>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.first_problem.is_none()
    }
}

/// Metadata of one view namespace, written atomically with its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewMeta {
    /// The projection's version.
    pub version: u32,
    /// Last seq applied.
    pub checkpoint: u64,
    /// Order-independent digest of all (key, value) rows.
    pub digest: [u8; 32],
    /// Row count.
    pub rows: u64,
    /// When this namespace's rows were last swapped in by `view_swap` (store clock).
    pub rebuilt_at: Option<String>,
    /// When the namespace was created (store clock).
    pub created_at: String,
}
