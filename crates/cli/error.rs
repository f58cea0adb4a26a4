//! What a command can fail with, the exit code of each failure and how it is printed.

use std::io;
use std::path::PathBuf;

use commitments_domain::DomainError;
use commitments_projection::{LineError, ProjectionError};
use commitments_store::StoreError;

/// Exit codes (documented in docs/cli.md).
pub mod code {
    /// Success.
    pub const OK: u8 = 0;
    /// Rejected input or a domain rule.
    pub const INPUT: u8 = 1;
    /// Usage error (clap's).
    pub const USAGE: u8 = 2;
    /// Concurrency conflict (`--expect-version`).
    pub const CONFLICT: u8 = 3;
    /// The store is in use by another process.
    pub const BUSY: u8 = 4;
    /// `verify` found a fault.
    pub const FAULT: u8 = 5;
    /// Internal error.
    pub const INTERNAL: u8 = 70;
}

/// A failed command.
#[derive(Debug)]
pub enum CliError {
    /// From the projection layer (and through it the store and the domain).
    Projection(ProjectionError),
    /// Rejected input with an explanation (exit 1).
    Input(String),
    /// A usage error found after parsing (exit 2).
    Usage(String),
    /// The store stayed locked for the whole `--lock-timeout` (exit 4).
    Busy {
        /// The store.
        path: PathBuf,
        /// Seconds waited.
        waited: f64,
    },
    /// `verify` found a fault (exit 5); the report was already printed.
    Fault(String),
    /// I/O on stdout/stderr or files.
    Io(io::Error),
    /// A bug (exit 70).
    Internal(String),
}

impl From<ProjectionError> for CliError {
    fn from(e: ProjectionError) -> Self {
        match e {
            ProjectionError::Io(io) => CliError::Io(io),
            ProjectionError::Store(StoreError::Io(io))
                if io.kind() == io::ErrorKind::BrokenPipe =>
            {
                CliError::Io(io)
            }
            e => CliError::Projection(e),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        CliError::from(ProjectionError::Store(e))
    }
}

impl From<DomainError> for CliError {
    fn from(e: DomainError) -> Self {
        CliError::Projection(ProjectionError::Domain(e))
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        CliError::Io(e)
    }
}

/// Result alias.
pub type CliResult<T = ()> = Result<T, CliError>;

impl CliError {
    /// True for a closed stdout (`| head`): exit quietly with 0.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }

    /// The exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Projection(e) => projection_code(e),
            CliError::Input(_) => code::INPUT,
            CliError::Usage(_) => code::USAGE,
            CliError::Busy { .. } => code::BUSY,
            CliError::Fault(_) => code::FAULT,
            CliError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe => code::OK,
            CliError::Io(_) => code::INTERNAL,
            CliError::Internal(_) => code::INTERNAL,
        }
    }

    /// The lines printed on stderr (the first prefixed `error: `).
    pub fn render(&self) -> Vec<String> {
        match self {
            CliError::Projection(e) => render_projection(e),
            CliError::Input(m) | CliError::Usage(m) | CliError::Fault(m) => vec![m.clone()],
            CliError::Busy { path, waited } => {
                let mut m = format!(
                    "the store at {} is in use by another commitments process",
                    path.display()
                );
                if *waited > 0.0 {
                    m.push_str(&format!(
                        " (waited {} s; see --lock-timeout)",
                        fmt_secs(*waited)
                    ));
                } else {
                    m.push_str(" (not waiting: --lock-timeout 0)");
                }
                vec![m]
            }
            CliError::Io(e) => vec![format!("I/O error: {e}")],
            CliError::Internal(m) => vec![format!("internal error: {m}")],
        }
    }
}

fn fmt_secs(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

fn projection_code(e: &ProjectionError) -> u8 {
    match e {
        ProjectionError::Store(s) => match s {
            StoreError::Locked { .. } => code::BUSY,
            StoreError::Conflict { .. } => code::CONFLICT,
            StoreError::NotFound { .. }
            | StoreError::DuplicateEventId { .. }
            | StoreError::InvalidStream { .. }
            | StoreError::InvalidEvent { .. }
            | StoreError::RestoreLine { .. }
            | StoreError::NotEmpty { .. }
            | StoreError::UnsupportedFormat { .. } => code::INPUT,
            StoreError::Io(io) if io.kind() == io::ErrorKind::BrokenPipe => code::OK,
            _ => code::INTERNAL,
        },
        ProjectionError::Domain(_)
        | ProjectionError::Rejected { .. }
        | ProjectionError::Empty
        | ProjectionError::UnknownId(_)
        | ProjectionError::Ambiguous { .. } => code::INPUT,
        ProjectionError::Io(io) if io.kind() == io::ErrorKind::BrokenPipe => code::OK,
        _ => code::INTERNAL,
    }
}

/// serde_json's positions are within one line ("at line 1 column 7"): keep the column only.
pub fn tidy_reason(reason: &str) -> String {
    // Lines refused before decoding are not about JSON syntax.
    let reason = reason
        .strip_prefix("malformed JSON: ")
        .filter(|r| r.starts_with("the line ") || r.starts_with("cannot read"))
        .unwrap_or(reason);
    match reason.find(" at line 1 column ") {
        Some(i) => format!("{} at column {}", &reason[..i], &reason[i + 18..]),
        None => reason.to_owned(),
    }
}

/// One bad input line as printed under `error:`.
pub fn render_line_error(e: &LineError) -> String {
    let reason = tidy_reason(&e.reason);
    match &e.field {
        Some(f) if !reason.contains(&format!("`{f}`")) => {
            format!("  line {}: field `{f}`: {reason}", e.line)
        }
        _ => format!("  line {}: {reason}", e.line),
    }
}

fn render_projection(e: &ProjectionError) -> Vec<String> {
    match e {
        ProjectionError::Rejected { errors, total } => {
            let mut out = vec![format!(
                "{total} line{} rejected; nothing was written",
                if *total == 1 { "" } else { "s" }
            )];
            out.extend(errors.iter().map(render_line_error));
            if *total > errors.len() as u64 {
                out.push(format!(
                    "  … and {} more (only the first {} are listed)",
                    *total - errors.len() as u64,
                    errors.len()
                ));
            }
            out
        }
        ProjectionError::Empty => vec!["the input holds no event; nothing was written".into()],
        ProjectionError::Ambiguous { prefix, candidates } => {
            let mut out = vec![format!(
                "`{prefix}` is ambiguous: it matches {} subjects",
                candidates.len()
            )];
            out.extend(candidates.iter().map(|c| format!("  {c}")));
            out
        }
        ProjectionError::Domain(d) => vec![tidy_reason(&d.to_string())],
        ProjectionError::Store(StoreError::Conflict {
            stream,
            expected,
            actual,
        }) => vec![format!(
            "conflict: stream `{stream}` is at version {actual}, not {expected} \
             (another write came first); nothing was written"
        )],
        ProjectionError::Store(StoreError::Locked { path }) => vec![format!(
            "the store at {} is in use by another commitments process",
            path.display()
        )],
        ProjectionError::Store(StoreError::NotFound { path }) => vec![format!(
            "no store at {} (import or record something first, or pass --store)",
            path.display()
        )],
        ProjectionError::Store(s @ StoreError::Corrupt { .. }) => {
            vec![format!("{s} (run `commitments verify` for a full check)")]
        }
        other => vec![other.to_string()],
    }
}
