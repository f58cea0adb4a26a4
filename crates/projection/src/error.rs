//! The projection crate's one error type.

use commitments_domain::DomainError;
use commitments_store::StoreError;
use thiserror::Error;

/// One rejected input line (for `import`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the input (blank lines counted).
    pub line: u64,
    /// The field, when the error is about one.
    pub field: Option<String>,
    /// The reason.
    pub reason: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) if !self.reason.contains(&format!("`{field}`")) => {
                write!(f, "line {}: field `{}`: {}", self.line, field, self.reason)
            }
            _ => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// Everything the projection layer can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// The store failed (locked, conflict, corrupt, I/O …).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event was refused by the domain.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Input lines were refused; nothing was written.
    #[error("{} line(s) rejected; nothing was written", .errors.len())]
    Rejected {
        /// Up to the first 20 bad lines.
        errors: Vec<LineError>,
        /// How many bad lines there were in all.
        total: u64,
    },
    /// The input held no event.
    #[error("the input holds no event")]
    Empty,
    /// No subject has this id (or prefix).
    #[error("no commitment, call, document or source matches `{0}`")]
    UnknownId(String),
    /// A prefix matches several subjects.
    #[error("`{prefix}` is ambiguous: it matches {}", .candidates.join(", "))]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// What it matches.
        candidates: Vec<String>,
    },
    /// A stored event or view row does not decode.
    #[error("stored data does not decode at seq {seq}: {reason}")]
    Decode {
        /// Where.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// Internal: a projection needed to read a stream back from the log, which does not hold
    /// the events being applied yet (the import then catches the views up after appending).
    #[error("the views must be caught up from the log")]
    NeedsLog,
    /// An I/O error while reading input or writing output.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias.
pub type Result<T, E = ProjectionError> = std::result::Result<T, E>;
