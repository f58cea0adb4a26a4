//! The one error type of the store.

use std::path::PathBuf;

use uuid::Uuid;

use crate::ExpectedVersion;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process has the store open (sled holds an exclusive `flock` on `<dir>/db`).
    #[error("the store at {path} is locked: another commitments process is using it")]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// The store directory does not exist and `create` was false.
    #[error("no store at {path}")]
    NotFound {
        /// The store directory.
        path: PathBuf,
    },
    /// An expected-version check failed; nothing was written.
    #[error("version conflict on stream {stream}: expected {expected}, actual version {actual}")]
    Conflict {
        /// The stream whose expectation failed.
        stream: String,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's current version (0 = no stream).
        actual: u64,
    },
    /// The same event id was given with different content; nothing was written.
    #[error("{}", match .seq {
        Some(seq) => format!("event id {event_id} is already stored at seq {seq} with different content"),
        None => format!("event id {event_id} appears twice in the batch with different content"),
    })]
    DuplicateEventId {
        /// The clashing id.
        event_id: Uuid,
        /// Where it is stored, `None` when the clash is inside one batch.
        seq: Option<u64>,
    },
    /// A stream id that is not a slug `[a-z0-9][a-z0-9._-]{0,79}`.
    #[error("invalid stream id {stream:?}: expected [a-z0-9][a-z0-9._-]{{0,79}}")]
    InvalidStream {
        /// The offending stream id.
        stream: String,
    },
    /// An event body the store cannot envelope.
    #[error("invalid event {event_id}: {reason}")]
    InvalidEvent {
        /// The event's id.
        event_id: Uuid,
        /// What is wrong.
        reason: String,
    },
    /// The store was written by another (newer or unknown) format version.
    #[error("unsupported store format version {found} (this build supports {supported})")]
    UnsupportedFormat {
        /// The format version found in the metadata.
        found: u32,
        /// The format version this build reads and writes.
        supported: u32,
    },
    /// Stored data is damaged.
    #[error("store corrupt at seq {seq}: {detail}")]
    Corrupt {
        /// The first affected seq (for a damaged pack: the pack's first seq).
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// A restore input line was rejected; nothing was published.
    #[error("restore rejected line {line}: {reason}")]
    RestoreLine {
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// `restore` only writes into an empty store.
    #[error("restore needs an empty store, this one holds {events} events")]
    NotEmpty {
        /// Events already in the store.
        events: u64,
    },
    /// A write failed in a way that leaves the in-memory state unsure (a large append whose
    /// leftovers could not be removed, a journal write or `fdatasync` that failed); reopen the
    /// store, which recovers from what is on disk.
    #[error("store needs to be reopened after a failed write: {0}")]
    Poisoned(String),
    /// No view namespace of that name.
    #[error("no view namespace {ns:?}")]
    NoView {
        /// The namespace.
        ns: String,
    },
    /// A view rewrite was handed a key not above the previous one.
    #[error("view {ns:?}: rows must be written in ascending key order")]
    RowOrder {
        /// The namespace.
        ns: String,
    },
    /// An error from sled.
    #[error("storage engine error: {0}")]
    Sled(#[from] sled::Error),
    /// An I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand for `Result<T, StoreError>`.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn corrupt(seq: u64, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        seq,
        detail: detail.into(),
    }
}
