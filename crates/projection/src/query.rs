//! What reads return: the JSON shapes of catalogue section 6 and the CLI's other outputs.

use chrono::NaiveDate;
use commitments_domain::values::Evidence;
use commitments_domain::{window, DueSpec, OverdueBasis, WindowState};
use serde::Serialize;

use crate::rows::CommitmentRow;

/// A commitment as `list` and `show` print it (catalogue section 6).
#[derive(Debug, Clone, Serialize)]
pub struct CommitmentView {
    /// Id.
    pub commitment_id: String,
    /// Kind.
    pub kind: String,
    /// Status.
    pub status: String,
    /// Parties, in the order given.
    pub parties: Vec<String>,
    /// What was promised.
    pub description: String,
    /// The effective due.
    pub due: Option<DueSpec>,
    /// First day of the window.
    pub due_earliest: Option<NaiveDate>,
    /// Last day of the window.
    pub due_latest: Option<NaiveDate>,
    /// Window state, null for finished and lapsed commitments.
    pub window: Option<WindowState>,
    /// Overdue as of `as_of`.
    pub overdue: bool,
    /// Why overdue.
    pub overdue_basis: Option<OverdueBasis>,
    /// Days overdue.
    pub overdue_days: Option<i64>,
    /// Stalled flag.
    pub stalled: bool,
    /// The call it was agreed in.
    pub origin: Option<String>,
    /// Seq of its opener.
    pub opened_seq: u64,
    /// Seq of its last event.
    pub last_seq: u64,
    /// Events in its stream.
    pub event_count: u64,
    /// The date deadlines were judged against.
    pub as_of: NaiveDate,
    /// The record-time cut-off.
    pub known_at: String,
    /// How firmly it was stated.
    pub strength: Option<String>,
    /// Evidence of the events that count (filled by `show`, which reads the stream; omitted
    /// from `list`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// Sources cited.
    pub sources: Vec<String>,
}

impl CommitmentView {
    /// Builds the view of a row as of `as_of`.
    pub fn from_row(
        row: &CommitmentRow,
        as_of: NaiveDate,
        known_at: &str,
        horizon_days: u32,
    ) -> CommitmentView {
        let s = &row.state;
        let w = window(s.status, s.due.as_ref(), as_of, horizon_days);
        CommitmentView {
            commitment_id: s.commitment_id.to_string(),
            kind: s.kind.to_string(),
            status: s.status.to_string(),
            parties: s.parties.iter().map(|p| p.to_string()).collect(),
            description: s.description.clone(),
            due: s.due.as_ref().map(|d| d.spec.clone()),
            due_earliest: w.due_earliest,
            due_latest: w.due_latest,
            window: w.window,
            overdue: w.overdue,
            overdue_basis: w.overdue_basis,
            overdue_days: w.overdue_days,
            stalled: s.stalled,
            origin: s.origin.as_ref().map(|o| o.to_string()),
            opened_seq: row.opened_seq,
            last_seq: row.last_seq,
            event_count: row.event_count,
            as_of,
            known_at: known_at.to_owned(),
            strength: s.strength.map(|x| x.to_string()),
            evidence: Vec::new(),
            sources: row.sources.clone(),
        }
    }
}

/// One row of an audit trail (`history`, and `show --json`'s `history`).
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    /// Global position.
    pub seq: u64,
    /// Event id.
    pub event_id: Option<String>,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Valid time (EDTF).
    pub occurred: Option<String>,
    /// Record time.
    pub recorded_at: String,
    /// Who recorded it.
    pub recorded_by: Option<String>,
    /// Status before.
    pub status_before: Option<String>,
    /// Status after.
    pub status_after: Option<String>,
    /// Due before.
    pub due_before: Option<DueSpec>,
    /// Due after.
    pub due_after: Option<DueSpec>,
    /// Evidence cited by the event.
    pub evidence: Vec<Evidence>,
    /// Hash of the stored event.
    pub hash: String,
    /// For corrections and retractions: the event targeted.
    pub target_event_id: Option<String>,
    /// `applied`, `invalidated`, `retracted`, `correction` or `retraction`.
    pub effect: String,
    /// Why the event was invalidated, or which event retracted it.
    pub effect_reason: Option<String>,
    /// Corrections applied to this event.
    pub corrected_by: Vec<String>,
}

/// One line of `replay` (cli.md).
#[derive(Debug, Clone, Serialize)]
pub struct ReplayRow {
    /// Global position.
    pub seq: u64,
    /// Event id.
    pub event_id: Option<String>,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Stream.
    pub stream: String,
    /// Valid time.
    pub occurred: Option<String>,
    /// Record time.
    pub recorded_at: String,
    /// Who recorded it.
    pub recorded_by: Option<String>,
    /// Commitment status before (null for events not about a commitment).
    pub status_before: Option<String>,
    /// Commitment status after.
    pub status_after: Option<String>,
    /// Hash.
    pub hash: String,
}

/// Health of one view (`status`).
#[derive(Debug, Clone, Serialize)]
pub struct ViewHealth {
    /// View name.
    pub name: String,
    /// Version of its stored rows.
    pub version: u32,
    /// Version of the code.
    pub code_version: u32,
    /// Last applied seq.
    pub checkpoint: u64,
    /// Events behind the head.
    pub lag: u64,
    /// Rows stored.
    pub rows: u64,
    /// Order-independent digest of its rows (hex).
    pub digest: String,
    /// When it was last rebuilt.
    pub last_rebuild: Option<String>,
}

/// `status --json`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Store path.
    pub store: String,
    /// Events in the log.
    pub events: u64,
    /// Streams.
    pub streams: u64,
    /// Last seq.
    pub head_seq: u64,
    /// Hash of the last event.
    pub head_hash: Option<String>,
    /// recorded_at of the last event.
    pub last_recorded_at: Option<String>,
    /// Size on disk.
    pub bytes_on_disk: u64,
    /// Store format version.
    pub format_version: u32,
    /// Views.
    pub views: Vec<ViewHealth>,
}

/// What one view's rebuild did.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    /// View name.
    pub view: String,
    /// Events folded.
    pub events: u64,
    /// Checkpoint after.
    pub checkpoint: u64,
    /// Digest of the live view before (hex), if there was one.
    pub digest_before: Option<String>,
    /// Digest after (hex).
    pub digest: String,
    /// Whether the rebuilt rows equal the previous live rows.
    pub unchanged: bool,
    /// Rows added, removed or changed compared with the previous live view.
    pub rows_changed: u64,
    /// Rows after.
    pub rows: u64,
}
