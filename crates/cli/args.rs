//! The command line: global flags and one struct per command (clap derive).

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use commitments_domain::values::CommitmentKind;
use commitments_domain::Status;

const ABOUT: &str =
    "An event-sourced tracker of diplomatic commitments on an append-only, hash-chained log";

const LONG_ABOUT: &str = "\
An event-sourced tracker of diplomatic commitments.

Every fact is an event appended to a hash-chained log (a sled directory, the \"store\"); the \
commitment board, the contact log and the audit trails are views folded from it. Deadlines are \
judged at read time against --as-of, and any read can travel back in record time with \
--known-at.";

const MAIN_AFTER: &str = "\
Exit codes: 0 success; 1 rejected input or domain rule; 2 usage error; 3 concurrency conflict; \
4 store in use by another process; 5 verify found a fault; 70 internal error.

Environment: COMMITMENTS_STORE (default store), COMMITMENTS_NOW (RFC 3339: the store's clock and \
the default --as-of), COMMITMENTS_ACTOR (default recorded_by, else $USER), \
COMMITMENTS_HORIZON_DAYS, NO_COLOR.

Examples:
  commitments import docs/examples/aleinik-2024-01-20.jsonl
  commitments agenda --as-of 2024-03-15
  commitments show zwe
  commitments --json list --country ZWE";

/// `commitments`: track diplomatic commitments on an append-only log.
#[derive(Debug, Parser)]
#[command(
    name = "commitments",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = MAIN_AFTER,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// When stdout is a terminal and NO_COLOR is unset or empty.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Flags accepted at any position.
#[derive(Debug, Args)]
pub struct Global {
    /// The store directory [env: COMMITMENTS_STORE] [default: ./commitments.db]
    #[arg(long, global = true, value_name = "PATH")]
    pub store: Option<PathBuf>,

    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,

    /// Colour the output
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,

    /// The date deadlines are judged against (YYYY-MM-DD) [default: the date of COMMITMENTS_NOW, else today (UTC)]
    #[arg(long, global = true, value_name = "DATE", value_parser = parse_date)]
    pub as_of: Option<NaiveDate>,

    /// Use only events recorded at or before this time (RFC 3339, or YYYY-MM-DD meaning the end of that day, UTC) [default: everything]
    #[arg(long, global = true, value_name = "TIMESTAMP", value_parser = parse_known_at)]
    pub known_at: Option<DateTime<Utc>>,

    /// Print nothing on success (errors still go to stderr)
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Seconds to wait for a store held by another process (0 = do not wait)
    #[arg(long, global = true, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub lock_timeout: f64,

    /// Policy horizon for open-ended dues, in days
    #[arg(
        long,
        global = true,
        value_name = "N",
        env = "COMMITMENTS_HORIZON_DAYS",
        hide_env_values = true,
        default_value_t = 180
    )]
    pub horizon_days: u32,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a JSON Lines file of events and append all of it, or nothing
    #[command(after_help = "\
Every line is checked (JSON, the catalogue's contract, countries, EDTF, the state machine over \
the whole file in order) before anything is written. Up to 20 bad lines are listed. \
Re-importing a file is a no-op: events already stored (same event_id, same content) are skipped.

Examples:
  commitments import docs/examples/aleinik-2024-01-20.jsonl
  commitments import --dry-run new-events.jsonl
  cat events.jsonl | commitments import -")]
    Import(ImportArgs),

    /// Append one event, given by flags or as JSON
    #[command(after_help = "\
TYPE is the event type in kebab-case (consultation-agreed, invitation-extended, \
invitation-accepted, invitation-declined, meeting-scheduled, commitment-postponed, \
commitment-cancelled, commitment-fulfilled, commitment-reaffirmed, commitment-assessed, \
call-held, agreement-signed, roadmap-reviewed, source-registered, event-corrected, \
event-retracted) or as in the catalogue (ConsultationAgreed). Flags that a type does not know \
are refused. Any field can be set with --set FIELD=JSON.

`record --json '{...}'` takes the whole event as one JSON object (the same as --event); the \
output is then human-readable unless --json is also given before the command.

Examples:
  commitments record commitment-fulfilled --commitment-id zwe-cooperation-committee \\
      --extent full --occurred 2024-02-20 --source src-aleinik-2024-01-20:paragraph 7
  commitments record meeting-scheduled --commitment-id bgd-trade --due 2024-05 \\
      --occurred 2024-03-01 --source src-x --expect-version 1
  commitments record --json '{\"type\":\"CommitmentCancelled\", ...}'")]
    Record(Box<RecordArgs>),

    /// The commitment board: every commitment, filtered
    #[command(after_help = "\
Filters take comma-separated values; a commitment must match every filter given.

Examples:
  commitments list
  commitments list --status open,scheduled --country ZWE
  commitments list --overdue --as-of 2024-03-15
  commitments --json list --due-before 2024-12-31")]
    List(ListArgs),

    /// One commitment, call, document or source, with its history
    #[command(after_help = "\
ID may be any unique prefix of a subject id.

Examples:
  commitments show zwe-cooperation-committee
  commitments show zwe-c
  commitments --json show call-blr-bgd")]
    Show(IdArg),

    /// The audit trail of a subject: one row per event
    #[command(after_help = "\
Examples:
  commitments history zwe-cooperation-committee
  commitments history zwe-c --known-at 2024-01-31")]
    History(IdArg),

    /// The global log in order, with the status change each event caused
    #[command(after_help = "\
Examples:
  commitments replay
  commitments replay --from 10 --to 20 --type ConsultationAgreed,MeetingScheduled
  commitments --json replay --stream zwe-cooperation-committee
  commitments replay --follow --interval 2")]
    Replay(ReplayArgs),

    /// The contact log: date, mode, participants, commitments opened
    #[command(after_help = "\
Examples:
  commitments calls
  commitments --json calls --known-at 2024-02-01")]
    Calls,

    /// Signed documents (roadmaps, agreements) and their reviews
    #[command(after_help = "\
Examples:
  commitments documents")]
    Documents,

    /// Open commitments by due window: overdue first, then in window, then not yet due
    #[command(after_help = "\
Examples:
  commitments agenda
  commitments agenda --as-of 2024-03-15")]
    Agenda,

    /// Rebuild views from the log (all if none named)
    #[command(after_help = "\
Each view is rebuilt into a shadow namespace and swapped in atomically; the report says whether \
its digest changed.

Examples:
  commitments rebuild
  commitments rebuild commitments calls")]
    Rebuild(RebuildArgs),

    /// Check the log and the views; exit 5 on any fault
    #[command(after_help = "\
Checks the hash chain, the gap-free sequence, stream versions, indexes, that every event \
decodes, and that each view equals a fresh fold of the log.

Examples:
  commitments verify
  commitments --json verify")]
    Verify,

    /// Events, streams, head, views and size on disk
    #[command(after_help = "\
Examples:
  commitments status
  commitments --json status")]
    Status,

    /// Write every event as JSON Lines, chain fields included
    #[command(after_help = "\
Examples:
  commitments export > backup.jsonl
  commitments export backup.jsonl")]
    Export(ExportArgs),

    /// Load an export into an empty store, checking the chain
    #[command(after_help = "\
The result exports byte-identically to the input.

Examples:
  commitments --store new.db restore backup.jsonl")]
    Restore(RestoreArgs),
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The JSON Lines file (`-` = stdin)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Validate only; write nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The event type (kebab-case or CamelCase); not needed with --event
    #[arg(value_name = "TYPE")]
    pub event_type: Option<String>,

    /// The whole event as a JSON object (also spelled `record --json '{...}'`; `-` reads stdin)
    #[arg(long, value_name = "JSON")]
    pub event: Option<String>,

    /// Refuse (exit 3) unless the stream is at this version (0 = a new stream)
    #[arg(long, value_name = "N")]
    pub expect_version: Option<u64>,

    /// Set a field to a JSON value (a bare word is taken as a string); repeatable
    #[arg(long = "set", value_name = "FIELD=JSON")]
    pub set: Vec<String>,

    #[command(flatten)]
    pub fields: RecordFields,
}

/// The field flags of `record`.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Event fields")]
pub struct RecordFields {
    /// event_id (a UUID; default: a new v7 id)
    #[arg(long, value_name = "UUID")]
    pub event_id: Option<String>,
    /// occurred: when it happened (EDTF)
    #[arg(long, value_name = "EDTF")]
    pub occurred: Option<String>,
    /// occurred_note
    #[arg(long, value_name = "TEXT")]
    pub occurred_note: Option<String>,
    /// recorded_by [default: $COMMITMENTS_ACTOR, else $USER]
    #[arg(long, value_name = "WHO")]
    pub recorded_by: Option<String>,
    /// Evidence: a registered source id, optionally with a locator; repeatable
    #[arg(long = "source", value_name = "SRC[:LOCATOR]")]
    pub sources: Vec<String>,
    /// confidence (Admiralty grade such as F3)
    #[arg(long, value_name = "GRADE")]
    pub confidence: Option<String>,
    /// note
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// commitment_id
    #[arg(long, value_name = "ID")]
    pub commitment_id: Option<String>,
    /// call_id
    #[arg(long, value_name = "ID")]
    pub call_id: Option<String>,
    /// document_id
    #[arg(long, value_name = "ID")]
    pub document_id: Option<String>,
    /// source_id (of a source-registered event)
    #[arg(long, value_name = "ID")]
    pub source_id: Option<String>,
    /// parties (comma-separated ISO 3166-1 alpha-3 codes)
    #[arg(long, value_name = "CODES")]
    pub parties: Option<String>,
    /// kind of commitment
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// strength (expressed_intent, planned, agreed)
    #[arg(long, value_name = "STRENGTH")]
    pub strength: Option<String>,
    /// description
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// The type's due (due, proposed, scheduled_for or new_due), as EDTF
    #[arg(long, value_name = "EDTF")]
    pub due: Option<String>,
    /// basis of --due [default: explicit, or open_ended for `DATE/..`]
    #[arg(long, value_name = "BASIS", requires = "due")]
    pub due_basis: Option<String>,
    /// expression of --due: the source's own words
    #[arg(long, value_name = "TEXT", requires = "due")]
    pub due_expression: Option<String>,
    /// origin: the call it was agreed in
    #[arg(long, value_name = "CALL")]
    pub origin: Option<String>,
    /// extent (full, partial)
    #[arg(long, value_name = "EXTENT")]
    pub extent: Option<String>,
    /// by_call
    #[arg(long, value_name = "CALL")]
    pub by_call: Option<String>,
    /// summary
    #[arg(long, value_name = "TEXT")]
    pub summary: Option<String>,
    /// rating (on_track, stalled, lapsed)
    #[arg(long, value_name = "RATING")]
    pub rating: Option<String>,
    /// rationale
    #[arg(long, value_name = "TEXT")]
    pub rationale: Option<String>,
    /// as_of of an assessment (YYYY-MM-DD)
    #[arg(long, value_name = "DATE")]
    pub as_of_date: Option<String>,
    /// reason
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// target_event_id (corrections, retractions)
    #[arg(long, value_name = "EVENT_ID")]
    pub target: Option<String>,
    /// mode of a call (phone, video, in_person, unspecified)
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
    /// participants of a call, each a country code with an optional :NAME; repeatable
    #[arg(long = "participant", value_name = "COUNTRY[:NAME]")]
    pub participants: Vec<String>,
    /// topics (comma-separated)
    #[arg(long, value_name = "LIST")]
    pub topics: Option<String>,
    /// inviter: a country code with an optional :NAME
    #[arg(long, value_name = "COUNTRY[:NAME]")]
    pub inviter: Option<String>,
    /// invitee: a country code with an optional :NAME
    #[arg(long, value_name = "COUNTRY[:NAME]")]
    pub invitee: Option<String>,
    /// visit_type (official, state, working, unspecified)
    #[arg(long, value_name = "TYPE")]
    pub visit_type: Option<String>,
    /// destination country
    #[arg(long, value_name = "COUNTRY")]
    pub destination: Option<String>,
    /// cancelled_by country
    #[arg(long, value_name = "COUNTRY")]
    pub cancelled_by: Option<String>,
    /// url of a source
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// title of a source or document
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// language of a source (BCP 47)
    #[arg(long, value_name = "LANG")]
    pub language: Option<String>,
    /// publisher of a source
    #[arg(long, value_name = "TEXT")]
    pub publisher: Option<String>,
    /// published: publication date of a source (EDTF)
    #[arg(long, value_name = "EDTF")]
    pub published: Option<String>,
    /// doc_type of a document
    #[arg(long, value_name = "TYPE")]
    pub doc_type: Option<String>,
    /// reviewed_in: the call a roadmap was reviewed in
    #[arg(long, value_name = "CALL")]
    pub reviewed_in: Option<String>,
    /// progress reported in a review
    #[arg(long, value_name = "TEXT")]
    pub progress: Option<String>,
    /// format of a meeting
    #[arg(long, value_name = "TEXT")]
    pub format: Option<String>,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only these statuses
    #[arg(long, value_name = "STATUS", value_delimiter = ',',
          value_parser = PossibleValuesParser::new(Status::ALL.iter().map(|s| s.as_str())))]
    pub status: Vec<String>,
    /// Only commitments with one of these parties (ISO alpha-3)
    #[arg(long, value_name = "CODE", value_delimiter = ',')]
    pub country: Vec<String>,
    /// Only these kinds
    #[arg(long, value_name = "KIND", value_delimiter = ',',
          value_parser = PossibleValuesParser::new(CommitmentKind::ALL.iter().map(|s| s.as_str())))]
    pub kind: Vec<String>,
    /// Only overdue ones (as of --as-of)
    #[arg(long)]
    pub overdue: bool,
    /// Only those whose window ends on or before DATE
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub due_before: Option<NaiveDate>,
    /// Only those whose window ends on or after DATE
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub due_after: Option<NaiveDate>,
}

/// `show`, `history`.
#[derive(Debug, Args)]
pub struct IdArg {
    /// A subject id or a unique prefix of one
    #[arg(value_name = "ID")]
    pub id: String,
}

/// `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// First seq
    #[arg(long, value_name = "SEQ", default_value_t = 1)]
    pub from: u64,
    /// Last seq
    #[arg(long, value_name = "SEQ")]
    pub to: Option<u64>,
    /// Only this stream (a subject id or unique prefix)
    #[arg(long, value_name = "ID")]
    pub stream: Option<String>,
    /// Only these event types (comma-separated, CamelCase or kebab-case)
    #[arg(long = "type", value_name = "TYPE", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Keep printing events as other processes append them (Ctrl-C ends)
    #[arg(long)]
    pub follow: bool,
    /// Seconds between polls with --follow
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_seconds, requires = "follow")]
    pub interval: f64,
}

/// `rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Views to rebuild (default: all)
    #[arg(value_name = "VIEW", value_parser = PossibleValuesParser::new(["commitments", "calls", "documents", "sources"]))]
    pub views: Vec<String>,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write here instead of stdout
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// An export (`-` = stdin)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("`{s}` is not a date YYYY-MM-DD ({e})"))
}

/// Parses RFC 3339, or a date meaning the end of that day in UTC.
pub fn parse_known_at(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let end = NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap_or(NaiveTime::MIN);
        return Ok(d.and_time(end).and_utc());
    }
    Err(format!(
        "`{s}` is neither an RFC 3339 timestamp (2024-03-01T12:00:00Z) nor a date (2024-03-01)"
    ))
}

/// Parses a non-negative number of seconds.
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1e7).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds (>= 0)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn known_at_date_is_end_of_day() {
        let t = parse_known_at("2024-03-01").expect("date");
        assert_eq!(t.to_rfc3339(), "2024-03-01T23:59:59.999999+00:00");
        assert!(parse_known_at("yesterday").is_err());
    }

    #[test]
    fn globals_anywhere() {
        let c = Cli::try_parse_from(["commitments", "list", "--json", "--store", "x", "-q"])
            .expect("parse");
        assert!(c.global.json && c.global.quiet);
        assert_eq!(c.global.store, Some(PathBuf::from("x")));
    }
}
