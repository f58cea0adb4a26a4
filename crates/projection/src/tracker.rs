//! The facade the CLI uses: open a store with its views caught up, import and record events
//! through the domain's validator, and answer every read from the views (or, for a past
//! `known_at`, from a fold of the log prefix).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};
use commitments_domain::event::Event;
use commitments_domain::{
    fold_stream, CommitmentState, Context, DomainError, Effect, Encoded, EventId, Status,
    SubjectKind, Upcasters, Validator, Verdict, DEFAULT_HORIZON_DAYS,
};
use commitments_store::{
    ExpectedVersion, NewEvent, OpenOptions, Store, StoreError, ViewMeta, VERSION_REWRITING,
};
use serde::Serialize;

use crate::error::{LineError, ProjectionError, Result};
use crate::query::*;
use crate::rows::*;
use crate::views::*;

/// How to open a tracker.
pub struct TrackerOptions {
    /// The store's clock (stamps `recorded_at`).
    pub clock: commitments_store::Clock,
    /// Who records events that do not say (`recorded_by`).
    pub actor: String,
    /// Create the store if missing.
    pub create: bool,
    /// Events applied between two view commits during catch-up and rebuild.
    pub view_batch: u64,
    /// Estimated bytes of rows a rebuild or verify keeps in memory; above it, rows go to
    /// shadow namespaces on disk (default [`SHADOW_ROW_BUDGET`]).
    pub row_budget: u64,
    /// sled's page cache, in bytes (default [`OpenOptions`]'s 64 MiB).
    pub cache_capacity: u64,
}

impl std::fmt::Debug for TrackerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerOptions")
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

impl Default for TrackerOptions {
    fn default() -> Self {
        TrackerOptions {
            clock: Box::new(Utc::now),
            actor: "unknown".into(),
            create: true,
            view_batch: BATCH_EVENTS,
            row_budget: SHADOW_ROW_BUDGET,
            cache_capacity: OpenOptions::default().cache_capacity,
        }
    }
}

/// What opening did to the views.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpenReport {
    /// Views rebuilt on open, with why.
    pub rebuilt: Vec<(String, String)>,
    /// Events applied to catch the views up.
    pub caught_up: u64,
}

/// An open store with its views.
#[derive(Debug)]
pub struct Tracker {
    store: Store,
    upcasters: Upcasters,
    actor: String,
    view_batch: u64,
    row_budget: u64,
    /// A fault to inject into the next import's view preparation (tests only; see
    /// [`Tracker::inject_view_preparation_fault`]).
    preparation_fault: std::sync::atomic::AtomicU8,
    /// Set by [`Tracker::leave_memory_to_exit`].
    leave_to_exit: std::sync::atomic::AtomicBool,
    /// What imports were done with, kept for [`Tracker::close`] to leave to the exit.
    parked: Mutex<Vec<Box<dyn std::any::Any + Send>>>,
}

/// [`Tracker::preparation_fault`]: none, fail before preparing, fail after staging.
const FAULT_NONE: u8 = 0;
const FAULT_PREPARE: u8 = 1;
const FAULT_AFTER_STAGE: u8 = 2;

/// A read's time axes.
#[derive(Debug, Clone)]
pub struct ReadAt {
    /// The date deadlines are judged against.
    pub as_of: NaiveDate,
    /// Only events recorded at or before this (None = everything).
    pub known_at: Option<DateTime<Utc>>,
    /// The policy horizon for open-ended dues.
    pub horizon_days: u32,
}

impl ReadAt {
    /// Everything known, judged on `as_of`, default horizon.
    pub fn now(as_of: NaiveDate) -> ReadAt {
        ReadAt {
            as_of,
            known_at: None,
            horizon_days: DEFAULT_HORIZON_DAYS,
        }
    }
}

/// Filters of `list`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only these statuses.
    pub status: Vec<String>,
    /// Only commitments with this party.
    pub country: Vec<String>,
    /// Only these kinds.
    pub kind: Vec<String>,
    /// Only overdue ones.
    pub overdue: bool,
    /// Only those whose window ends on or before this day.
    pub due_before: Option<NaiveDate>,
    /// Only those whose window ends on or after this day.
    pub due_after: Option<NaiveDate>,
}

impl ListFilter {
    /// Whether `v` passes every filter.
    fn admits(&self, v: &CommitmentView) -> bool {
        (self.status.is_empty() || self.status.contains(&v.status))
            && (self.country.is_empty() || v.parties.iter().any(|p| self.country.contains(p)))
            && (self.kind.is_empty() || self.kind.contains(&v.kind))
            && (!self.overdue || v.overdue)
            && self
                .due_before
                .is_none_or(|d| v.due_latest.is_some_and(|l| l <= d))
            && self
                .due_after
                .is_none_or(|d| v.due_latest.is_some_and(|l| l >= d))
    }
}

/// What `import` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// Lines read (blank ones included).
    pub lines: u64,
    /// Events in the input.
    pub events: u64,
    /// Events appended.
    pub appended: u64,
    /// Events already stored (same id, same content): no-ops.
    pub duplicates: u64,
    /// First seq appended.
    pub first_seq: Option<u64>,
    /// Last seq appended.
    pub last_seq: Option<u64>,
    /// Commitments the input touched, in first-touch order.
    pub commitments: Vec<String>,
    /// True when the store's clock was behind the head and was clamped.
    pub clock_clamped: bool,
    /// True for `--dry-run`: nothing was written.
    pub dry_run: bool,
}

/// What `record` did.
#[derive(Debug, Clone, Serialize)]
pub struct RecordReport {
    /// Its seq.
    pub seq: u64,
    /// Its event id.
    pub event_id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Its stream.
    pub stream: String,
    /// Its version in the stream.
    pub stream_version: u64,
    /// Commitment status before (null if not about a commitment).
    pub status_before: Option<String>,
    /// Commitment status after.
    pub status_after: Option<String>,
    /// True when the same event was already stored (a no-op).
    pub duplicate: bool,
    /// True when the clock was clamped.
    pub clock_clamped: bool,
}

/// What `show` finds.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "subject", rename_all = "snake_case")]
pub enum Shown {
    /// A commitment and its history.
    Commitment {
        /// The view.
        #[serde(flatten)]
        view: Box<CommitmentView>,
        /// Its audit trail.
        history: Vec<HistoryRow>,
    },
    /// A call.
    Call {
        /// The row.
        #[serde(flatten)]
        row: Box<CallRow>,
        /// Its audit trail.
        history: Vec<HistoryRow>,
    },
    /// A document.
    Document {
        /// The row.
        #[serde(flatten)]
        row: Box<DocumentRow>,
        /// Its audit trail.
        history: Vec<HistoryRow>,
    },
    /// A source.
    Source {
        /// The row.
        #[serde(flatten)]
        row: Box<SourceRow>,
        /// Its audit trail.
        history: Vec<HistoryRow>,
    },
}

/// The outcome of `verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyOutcome {
    /// Events checked.
    pub events: u64,
    /// Packs checked.
    pub packs: u64,
    /// Streams checked.
    pub streams: u64,
    /// First problem in the log, as `(seq, what)`.
    pub log_problem: Option<(u64, String)>,
    /// Per view: (name, live digest, fresh-fold digest, matches).
    pub views: Vec<(String, String, String, bool)>,
}

impl VerifyOutcome {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.log_problem.is_none() && self.views.iter().all(|v| v.3)
    }
}

fn hex(d: &[u8; 32]) -> String {
    commitments_store::to_hex(d)
}

/// The validator's view of the store. A read that fails is kept here (typed) and reported to
/// the validator as [`DomainError::Unavailable`], so the import or record fails with the
/// store's own error instead of a wrong verdict such as "unknown commitment".
struct StoreContext<'a> {
    t: &'a Tracker,
    failure: std::cell::RefCell<Option<ProjectionError>>,
    /// One reader per view namespace, opened at its first read (a validator reads a view up
    /// to four times per event; nothing commits views while it runs).
    readers: std::cell::RefCell<HashMap<&'static str, commitments_store::ViewReader>>,
}

impl<'a> StoreContext<'a> {
    fn new(t: &'a Tracker) -> Self {
        StoreContext {
            t,
            failure: std::cell::RefCell::new(None),
            readers: std::cell::RefCell::new(HashMap::new()),
        }
    }

    fn fail(&self, e: impl Into<ProjectionError>) -> DomainError {
        let e = e.into();
        let msg = e.to_string();
        self.failure.borrow_mut().get_or_insert(e);
        DomainError::Unavailable(msg)
    }

    /// The error to report for a validator error: the store's own when a read failed.
    fn error(&self, e: DomainError) -> ProjectionError {
        match (e, self.failure.borrow_mut().take()) {
            (DomainError::Unavailable(_), Some(store)) => store,
            (e, _) => e.into(),
        }
    }

    fn row(&self, ns: &'static str, id: &str) -> Result<Option<Vec<u8>>, DomainError> {
        let mut readers = self.readers.borrow_mut();
        let reader = match readers.entry(ns) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(self.t.store.view_reader(ns).map_err(|e| self.fail(e))?)
            }
        };
        reader.get(&row_key(id)).map_err(|e| self.fail(e))
    }
}

impl Context for StoreContext<'_> {
    fn subject_kind(&self, id: &str) -> Result<Option<SubjectKind>, DomainError> {
        for (ns, kind) in [
            (CommitmentsView::NAME, SubjectKind::Commitment),
            (CallsView::NAME, SubjectKind::Call),
            (DocumentsView::NAME, SubjectKind::Document),
            (SourcesView::NAME, SubjectKind::Source),
        ] {
            if self.row(ns, id)?.is_some() {
                return Ok(Some(kind));
            }
        }
        Ok(None)
    }
    fn commitment(&self, id: &str) -> Result<Option<CommitmentState>, DomainError> {
        match self.row(CommitmentsView::NAME, id)? {
            Some(bytes) => decode_row::<CommitmentRow>(&bytes)
                .map(|r| Some(r.state))
                .map_err(|e| self.fail(e)),
            None => Ok(None),
        }
    }
    fn event(&self, id: &EventId) -> Result<Option<(String, Event)>, DomainError> {
        match self.t.store.get_by_id(id.0).map_err(|e| self.fail(e))? {
            Some(se) => {
                let rec = decode(&se, &self.t.upcasters).map_err(|e| self.fail(e))?;
                Ok(Some((rec.stream, *rec.event)))
            }
            None => Ok(None),
        }
    }
    fn stream_events(&self, stream: &str) -> Result<Vec<Event>, DomainError> {
        let stored = self
            .t
            .store
            .read_stream(stream, 1)
            .map_err(|e| self.fail(e))?;
        stored
            .iter()
            .map(|se| {
                decode(se, &self.t.upcasters)
                    .map(|r| *r.event)
                    .map_err(|e| self.fail(e))
            })
            .collect()
    }
}

/// Cap on the bad lines an import lists.
pub const MAX_LISTED_ERRORS: usize = 20;

impl Tracker {
    /// Closes the store (see [`Store::close`]: after a session that wrote much, sled's
    /// snapshot is written now rather than by the next open).
    pub fn close(self) {
        let Tracker {
            store,
            parked,
            leave_to_exit,
            ..
        } = self;
        store.close();
        let parked = parked.into_inner().unwrap_or_else(|p| p.into_inner());
        if leave_to_exit.into_inner() {
            // The process exits next and returns all its memory at once (see
            // `leave_memory_to_exit`).
            std::mem::forget(parked);
        }
    }

    /// Tells the tracker that the process exits right after [`Tracker::close`], so that the
    /// large structures an import is done with (the appended batch, the views' rows and
    /// their encoded changes) are not freed one by one but left to the exit, which returns
    /// the process's memory at once. Freeing them took ~20 ms of the last ~120 ms of a 100k
    /// import, while the other core was mostly idle (`docs/performance.md`). The store is
    /// closed as always. Without this call (a process that goes on), they are freed as usual.
    pub fn leave_memory_to_exit(&self) {
        self.leave_to_exit
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Keeps `what` until [`Tracker::close`] when the memory is left to the exit (see
    /// [`Tracker::leave_memory_to_exit`]); otherwise hands it back, for the caller to free.
    fn park<T: Send + 'static>(&self, what: T) -> Option<T> {
        if !self
            .leave_to_exit
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Some(what);
        }
        self.parked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(what));
        None
    }

    /// Opens the store at `path` and brings its views up to date: a view whose stored version
    /// differs from the code's is rebuilt (reported in [`OpenReport::rebuilt`]); the others
    /// catch up from their checkpoints (healing a crash between an append and its views).
    pub fn open(path: &Path, opts: TrackerOptions) -> Result<(Tracker, OpenReport)> {
        let store = Store::open(
            path,
            OpenOptions {
                clock: opts.clock,
                create: opts.create,
                cache_capacity: opts.cache_capacity,
                ..OpenOptions::default()
            },
        )?;
        let t = Tracker {
            store,
            upcasters: Upcasters::standard(),
            actor: opts.actor,
            view_batch: opts.view_batch.max(1),
            row_budget: opts.row_budget,
            preparation_fault: std::sync::atomic::AtomicU8::new(FAULT_NONE),
            leave_to_exit: std::sync::atomic::AtomicBool::new(false),
            parked: Mutex::new(Vec::new()),
        };
        let report = t.refresh(&|_| {})?;
        Ok((t, report))
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Rebuilds stale views and catches the others up.
    pub fn refresh(&self, progress: &dyn Fn(u64)) -> Result<OpenReport> {
        let mut report = OpenReport::default();
        let mut stale = Vec::new();
        for (name, version) in VIEWS {
            match self.store.view_meta(name)? {
                Some(m) if m.version == *version => {}
                Some(m) if m.version == VERSION_REWRITING => stale.push((
                    name.to_string(),
                    format!("view `{name}` was being rebuilt when a process stopped: rebuilding it"),
                )),
                Some(m) => stale.push((
                    name.to_string(),
                    format!("view `{name}` is at version {}, the code at {version}: rebuilding views after changes", m.version),
                )),
                None if self.store.head()?.seq > 0 => {
                    stale.push((name.to_string(), format!("view `{name}` is missing: rebuilding it")))
                }
                None => {}
            }
        }
        if !stale.is_empty() {
            let names: Vec<&str> = stale.iter().map(|(n, _)| n.as_str()).collect();
            self.rebuild(&names, progress)?;
            report.rebuilt = stale;
        }
        report.caught_up = self.catch_up(progress)?;
        Ok(report)
    }

    /// Catches every view up to the head.
    pub fn catch_up(&self, progress: &dyn Fn(u64)) -> Result<u64> {
        let head = self.store.head()?.seq;
        let mut set = ViewSet::new("");
        for (i, (name, _)) in VIEWS.iter().enumerate() {
            set.from[i] = Some(
                self.store
                    .view_meta(name)?
                    .map(|m| m.checkpoint)
                    .unwrap_or(0),
            );
        }
        run(
            &self.store,
            &mut set,
            head,
            self.view_batch,
            &self.upcasters,
            progress,
        )
    }

    /// Rebuilds the named views (all when empty) into shadow namespaces from seq 1, then swaps
    /// each in atomically. Reports digests before and after and how many rows changed.
    pub fn rebuild(&self, names: &[&str], progress: &dyn Fn(u64)) -> Result<Vec<RebuildReport>> {
        let head = self.store.head()?.seq;
        let mut set = ViewSet::shadow(".rebuild");
        set.row_budget = self.row_budget;
        let mut chosen = [false; 4];
        for (i, (name, _)) in VIEWS.iter().enumerate() {
            chosen[i] = names.is_empty() || names.contains(name);
            set.from[i] = chosen[i].then_some(0);
            if chosen[i] {
                self.store.view_drop(set.ns(i))?;
            }
        }
        // A full build keeps its rows in memory (see `ViewSet::shadow`); `batch` only paces
        // the progress reports.
        let batch = self.view_batch.saturating_mul(5);
        let events = run(
            &self.store,
            &mut set,
            head,
            batch,
            &self.upcasters,
            progress,
        )?;
        let live: [&str; 4] = [VIEWS[0].0, VIEWS[1].0, VIEWS[2].0, VIEWS[3].0];
        let mut done: Vec<(String, Option<ViewMeta>, ViewMeta, u64)> = Vec::new();
        if !set.spilled {
            // Every row is in memory: write only those that differ from the live view's.
            for (i, r) in set
                .rewrite_into(&self.store, live, head)?
                .into_iter()
                .enumerate()
            {
                if let Some(r) = r {
                    done.push((live[i].to_string(), r.before, r.after, r.changed));
                }
            }
        } else {
            // The rows outgrew memory and were written to shadow namespaces: swap them in.
            for (i, name) in live.iter().enumerate() {
                if !chosen[i] {
                    continue;
                }
                let shadow = set.ns(i).to_owned();
                if self.store.view_meta(&shadow)?.is_none() {
                    self.store
                        .view_commit(&shadow, &[], head, set.versions[i])?;
                }
                let before = self.store.view_meta(name)?;
                // Counted by reading both trees, not inferred from the digests: the live
                // view's recorded digest says what was committed, not what its rows are now
                // (a row damaged on disk behind its digest is exactly what a rebuild repairs).
                let changed = self.diff_rows(name, &shadow)?;
                self.store.view_swap(name, &shadow)?;
                let after = self
                    .store
                    .view_meta(name)?
                    .ok_or_else(|| StoreError::NoView {
                        ns: name.to_string(),
                    })?;
                done.push((name.to_string(), before, after, changed));
            }
        }
        Ok(done
            .into_iter()
            .map(|(view, before, after, rows_changed)| RebuildReport {
                view,
                events,
                checkpoint: after.checkpoint,
                digest_before: before.as_ref().map(|m| hex(&m.digest)),
                digest: hex(&after.digest),
                unchanged: rows_changed == 0,
                rows_changed,
                rows: after.rows,
            })
            .collect())
    }

    fn diff_rows(&self, a: &str, b: &str) -> Result<u64> {
        let mut ia = self.store.view_scan(a, b"").peekable();
        let mut ib = self.store.view_scan(b, b"").peekable();
        let mut changed = 0u64;
        loop {
            match (ia.peek(), ib.peek()) {
                (None, None) => break,
                (Some(Err(_)), _) | (_, Some(Err(_))) => {
                    let e = ia
                        .next()
                        .and_then(|r| r.err())
                        .or_else(|| ib.next().and_then(|r| r.err()));
                    if let Some(e) = e {
                        return Err(e.into());
                    }
                }
                (Some(Ok((ka, va))), Some(Ok((kb, vb)))) => match ka.cmp(kb) {
                    std::cmp::Ordering::Equal => {
                        if va != vb {
                            changed += 1;
                        }
                        ia.next();
                        ib.next();
                    }
                    std::cmp::Ordering::Less => {
                        changed += 1;
                        ia.next();
                    }
                    std::cmp::Ordering::Greater => {
                        changed += 1;
                        ib.next();
                    }
                },
                (Some(_), None) => {
                    changed += 1;
                    ia.next();
                }
                (None, Some(_)) => {
                    changed += 1;
                    ib.next();
                }
            }
        }
        Ok(changed)
    }

    fn new_event_id(&self) -> EventId {
        EventId(uuid::Uuid::now_v7())
    }

    /// Test hook: makes the next import's view preparation fail, before it prepares anything
    /// or after it has staged the new views' rows (`after_staging`), so that tests can check
    /// that the import still succeeds and the views catch up from the log. Returns whether
    /// a fault set earlier was still pending (not yet met by an import).
    #[doc(hidden)]
    pub fn inject_view_preparation_fault(&self, after_staging: bool) -> bool {
        let f = if after_staging {
            FAULT_AFTER_STAGE
        } else {
            FAULT_PREPARE
        };
        self.preparation_fault
            .swap(f, std::sync::atomic::Ordering::SeqCst)
            != FAULT_NONE
    }

    /// Whether a fault set by [`Tracker::inject_view_preparation_fault`] is still pending.
    #[doc(hidden)]
    pub fn view_preparation_fault_pending(&self) -> bool {
        self.preparation_fault
            .load(std::sync::atomic::Ordering::SeqCst)
            != FAULT_NONE
    }

    /// Validates events (each with its 1-based line number) against the store plus the earlier
    /// events, then appends all of them atomically, or nothing. `Err` items are lines that
    /// did not decode. With `dry_run`, validates only. Items are [`Event`]s, or [`Encoded`]
    /// events whose canonical JSON a decoding thread encoded ahead.
    pub fn import<I, E>(
        &self,
        lines: I,
        dry_run: bool,
        progress: &dyn Fn(u64),
    ) -> Result<ImportReport>
    where
        I: IntoIterator<Item = (u64, std::result::Result<E, DomainError>)>,
        E: Into<Encoded>,
    {
        let ctx = StoreContext::new(self);
        let mut validator = Validator::new(&ctx);
        let mut errors: Vec<LineError> = Vec::new();
        let mut total_errors = 0u64;
        let mut report = ImportReport {
            dry_run,
            ..ImportReport::default()
        };
        // Inline keys: a `String` key sent each probe to an earlier event's heap string.
        let mut touched: foldhash::HashSet<compact_str::CompactString> =
            foldhash::HashSet::default();
        // The views follow the validation in memory (rows loaded from the live views, which
        // `open` brought to the head): the accepted events are applied once, as typed events,
        // and the rows are committed right after the append, so the log is not read back.
        // A correction or retraction in the batch refolds streams from the store, which does
        // not hold the batch yet: then the views catch up from the log after the append.
        let head = self.store.head()?.seq;
        let mut views = Some(ViewSet::new(""));
        if let Some(set) = views.as_mut() {
            for (i, (name, _)) in VIEWS.iter().enumerate() {
                let cp = self
                    .store
                    .view_meta(name)?
                    .map(|m| m.checkpoint)
                    .unwrap_or(0);
                set.from[i] = Some(cp);
                if cp != head {
                    views = None;
                    break;
                }
            }
        }
        let env = Env {
            store: &self.store,
            backed: true,
            upcasters: &self.upcasters,
            log_complete: false,
        };
        let mut next_seq = head;
        let mut spent = Disposal::default();
        for (line, item) in lines {
            report.lines = report.lines.max(line);
            report.events += 1;
            let res = item.and_then(|ev| {
                let mut ev: Encoded = ev.into();
                if ev.event().event_id().is_none() {
                    ev.set_event_id(self.new_event_id());
                }
                if ev.event().common().recorded_by.is_none() {
                    ev.set_recorded_by(self.actor.clone());
                }
                validator.check_encoded(ev)
            });
            match res {
                Ok((ev, Verdict::Append { stream })) => {
                    if errors.is_empty() {
                        if ev.commitment_id().is_some() && !touched.contains(stream.as_str()) {
                            touched.insert(stream.as_str().into());
                            report.commitments.push(stream.clone());
                        }
                        if matches!(*ev, Event::EventCorrected(_) | Event::EventRetracted(_)) {
                            views = None;
                        }
                        if let Some(set) = views.as_mut().filter(|_| !dry_run) {
                            next_seq += 1;
                            let rec = Recorded {
                                seq: next_seq,
                                stream,
                                stream_version: 0,
                                recorded_at: String::new(),
                                event: ev,
                                hash: String::new(),
                            };
                            match set.apply(&rec, &env) {
                                Ok(()) => {}
                                // A stream must be refolded from the log: catch up after the append.
                                Err(ProjectionError::NeedsLog) => views = None,
                                Err(e) => return Err(e),
                            }
                            spent.put(rec);
                        }
                    }
                }
                Ok((_, Verdict::Duplicate)) => report.duplicates += 1,
                // The store could not be read: not a bad line, a failed import.
                Err(e @ DomainError::Unavailable(_)) => return Err(ctx.error(e)),
                Err(e) => {
                    total_errors += 1;
                    if errors.len() < MAX_LISTED_ERRORS {
                        let (field, reason) = match e {
                            DomainError::Field { field, reason }
                            | DomainError::Reference { field, reason } => (Some(field), reason),
                            other => (other.field_path().map(str::to_owned), other.to_string()),
                        };
                        errors.push(LineError {
                            line,
                            field,
                            reason,
                        });
                    }
                    views = None;
                }
            }
            if report.events % 10_000 == 0 {
                progress(report.events);
            }
        }
        drop(spent);
        if report.events == 0 {
            return Err(ProjectionError::Empty);
        }
        if !errors.is_empty() {
            return Err(ProjectionError::Rejected {
                errors,
                total: total_errors,
            });
        }
        if dry_run || validator.accepted().is_empty() {
            return Ok(report);
        }
        let accepted = validator.into_accepted();
        let to_batch = move || -> Vec<NewEvent> {
            accepted
                .into_iter()
                .map(|a| NewEvent {
                    event_id: a.event_id.0,
                    stream: a.stream,
                    event_type: a.type_name.to_owned(),
                    schema_version: commitments_domain::current_schema_version(a.type_name),
                    body: a.body,
                })
                .collect()
        };
        // The views' rows are taken and encoded (serialised, compressed, hashed for the
        // digest) on a second thread while the log is appended: that work needs only the
        // views, and the append leaves a core idle for most of its time. Views that do not
        // exist yet (a first import) are also written there, into generations that are
        // published only once the append is durable. The preparation starts before the
        // accepted events become the store's batch, so that it has the other core meanwhile.
        let (batch, outcome, views) = match views {
            Some(set) => std::thread::scope(|s| {
                let prepare = s.spawn(|| {
                    let fault = self
                        .preparation_fault
                        .swap(FAULT_NONE, std::sync::atomic::Ordering::SeqCst);
                    let injected = || {
                        ProjectionError::Store(commitments_store::StoreError::Poisoned(
                            "injected view preparation fault (a test hook)".into(),
                        ))
                    };
                    if fault == FAULT_PREPARE {
                        return Err(injected());
                    }
                    let mut prepared = set.prepare(&self.store)?;
                    prepared.stage(&self.store)?;
                    if fault == FAULT_AFTER_STAGE {
                        // As a failing stage does: what was staged is dropped.
                        prepared.discard(&self.store)?;
                        return Err(injected());
                    }
                    Ok::<_, ProjectionError>(prepared)
                });
                let batch = to_batch();
                let outcome = self.store.append(&batch, &[]);
                let prepared = prepare
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
                (batch, outcome, Some(prepared))
            }),
            None => {
                let batch = to_batch();
                let outcome = self.store.append(&batch, &[]);
                (batch, outcome, None)
            }
        };
        // Views prepared for the events exactly where the store placed them are committed;
        // otherwise (a failed append too) what was staged is dropped, best effort: what is
        // left is dropped by the next open.
        let prepared = match (views, &outcome) {
            (Some(Ok(prepared)), Ok(o))
                if o.first_seq == Some(head + 1) && o.last_seq == Some(next_seq) =>
            {
                Some(prepared)
            }
            (Some(Ok(prepared)), _) => {
                let _ = prepared.discard(&self.store);
                None
            }
            _ => None,
        };
        let outcome = outcome?;
        // Freeing ~100k bodies is ~1 % of a 100k import: a thread of its own does it while
        // the views are committed (or, if no thread can be started, the batch is freed here),
        // unless it is left to the process's exit.
        let freeing = self.park(batch).and_then(|batch| {
            std::thread::Builder::new()
                .name("import-free".into())
                .spawn(move || drop(batch))
                .ok()
        });
        report.appended = outcome.appended;
        report.duplicates += outcome.duplicates;
        report.first_seq = outcome.first_seq;
        report.last_seq = outcome.last_seq;
        report.clock_clamped = outcome.clock_clamped;
        // The events are appended and durable from here on: views that could not be prepared
        // are caught up from the log instead, never reported as a failed import.
        let views_done = match prepared {
            Some(prepared) => prepared.commit(&self.store, next_seq).map(|spent| {
                drop(self.park(spent));
                progress(report.events)
            }),
            None => self.catch_up(progress).map(|_| ()),
        };
        if let Some(f) = freeing {
            let _ = f.join();
        }
        views_done?;
        Ok(report)
    }

    /// Validates and appends one event. `expect_version` is the stream's current version
    /// (0 = a new stream); a mismatch is a store `Conflict`.
    pub fn record(&self, mut ev: Event, expect_version: Option<u64>) -> Result<RecordReport> {
        if ev.event_id().is_none() {
            ev.set_event_id(self.new_event_id());
        }
        if ev.common().recorded_by.is_none() {
            ev.set_recorded_by(self.actor.clone());
        }
        let status_of = |ctx: &StoreContext<'_>, id: &str| -> Result<Option<String>> {
            let state = ctx.commitment(id).map_err(|e| ctx.error(e))?;
            Ok(state.map(|s| s.status.to_string()))
        };
        let ctx = StoreContext::new(self);
        let status_before = match ev.commitment_id() {
            Some(id) => status_of(&ctx, id.as_str())?,
            None => None,
        };
        let mut validator = Validator::new(&ctx);
        let verdict = validator.check(&ev).map_err(|e| ctx.error(e))?;
        let id = ev.event_id().map(|i| i.to_string()).unwrap_or_default();
        let (stream, duplicate) = match verdict {
            Verdict::Append { stream } => (stream, false),
            Verdict::Duplicate => {
                let se = self
                    .store
                    .get_by_id(ev.event_id().map(|i| i.0).unwrap_or_default())?
                    .ok_or_else(|| ProjectionError::UnknownId(id.clone()))?;
                (se.stream.clone(), true)
            }
        };
        let expectations: Vec<(String, ExpectedVersion)> = match expect_version {
            Some(0) => vec![(stream.clone(), ExpectedVersion::NoStream)],
            Some(n) => vec![(stream.clone(), ExpectedVersion::Exact(n))],
            None => Vec::new(),
        };
        let outcome = self
            .store
            .append(&[to_new_event(&ev, stream.clone())?], &expectations)?;
        self.catch_up(&|_| {})?;
        let pos = outcome
            .positions
            .first()
            .copied()
            .ok_or_else(|| ProjectionError::UnknownId(id.clone()))?;
        // None for a stream that is not a commitment. (A fresh context: the first one's view
        // readers were opened before the catch-up, which may have created namespaces.)
        let status_after = status_of(&StoreContext::new(self), &stream)?;
        Ok(RecordReport {
            seq: pos.seq,
            event_id: id,
            event_type: ev.type_name().to_owned(),
            stream,
            stream_version: pos.stream_version,
            status_before,
            status_after,
            duplicate: duplicate || pos.duplicate,
            clock_clamped: outcome.clock_clamped,
        })
    }

    /// Resolves a subject id given in full or as a unique prefix (an exact id wins).
    pub fn resolve(&self, prefix: &str) -> Result<String> {
        let candidates = self.store.streams_with_prefix(prefix)?;
        if candidates.iter().any(|c| c == prefix) {
            return Ok(prefix.to_owned());
        }
        match candidates.len() {
            0 => Err(ProjectionError::UnknownId(prefix.to_owned())),
            1 => Ok(candidates.into_iter().next().unwrap_or_default()),
            _ => Err(ProjectionError::Ambiguous {
                prefix: prefix.to_owned(),
                candidates,
            }),
        }
    }

    /// The seq bound of a read: the last seq recorded at or before `known_at`.
    pub fn seq_limit(&self, known_at: Option<DateTime<Utc>>) -> Result<(u64, bool)> {
        let head = self.store.head()?.seq;
        match known_at {
            None => Ok((head, true)),
            Some(t) => {
                let s = self.store.last_seq_known_at(t)?;
                Ok((s, s >= head))
            }
        }
    }

    /// An environment for folds that read rows from the live views (`backed`) or keep
    /// them in memory only.
    fn env(&self, backed: bool) -> Env<'_> {
        Env {
            store: &self.store,
            backed,
            upcasters: &self.upcasters,
            log_complete: true,
        }
    }

    /// Folds stored events into views held in memory (for a past `known_at`).
    fn fold_in_memory(
        &self,
        events: impl IntoIterator<Item = Result<Recorded>>,
    ) -> Result<ViewSet> {
        let mut set = ViewSet::new("");
        let env = self.env(false);
        for rec in events {
            set.apply(&rec?, &env)?;
        }
        Ok(set)
    }

    /// The views as they stood at `limit`: a fold of the log prefix, rows in memory.
    fn fold_prefix(&self, limit: u64) -> Result<ViewSet> {
        self.fold_in_memory(
            self.store
                .read_log(1, Some(limit))
                .map(|se| decode(&se?, &self.upcasters)),
        )
    }

    fn known_at_label(&self, at: &ReadAt) -> Result<String> {
        if let Some(t) = at.known_at {
            return Ok(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        }
        Ok(self.store.head()?.recorded_at.unwrap_or_default())
    }

    /// Hands every commitment row known at `at.known_at` that the filter's indexes do not rule
    /// out to `visit`, in id order, one at a time: a `list` of a large store keeps only the
    /// rows it shows (at 1M, collecting all 100,000 rows first was a tenth of
    /// `list --overdue`, growing the vector).
    fn visit_commitment_rows(
        &self,
        at: &ReadAt,
        filter: &ListFilter,
        visit: &mut dyn FnMut(&CommitmentRow),
    ) -> Result<()> {
        let (limit, live) = self.seq_limit(at.known_at)?;
        if !live {
            let set = self.fold_prefix(limit)?;
            let mut rows: Vec<&CommitmentRow> = set.commitments.cached().map(|(_, r)| r).collect();
            rows.sort_by(|a, b| a.state.commitment_id.cmp(&b.state.commitment_id));
            rows.into_iter().for_each(visit);
            return Ok(());
        }
        // Narrow by the most selective index the filter allows, then read the rows. Only a
        // commitment in a state that can be overdue can be: `--overdue` narrows by status too.
        let may_be_overdue: Vec<String> = match filter.overdue {
            true => Status::ALL
                .iter()
                .filter(|s| s.can_be_overdue())
                .map(|s| s.as_str().to_owned())
                .collect(),
            false => Vec::new(),
        };
        let narrowing = [
            (&filter.country, index_keys::country as fn(&str) -> Vec<u8>),
            (&filter.status, index_keys::status),
            (&filter.kind, index_keys::kind),
            (&may_be_overdue, index_keys::status),
        ];
        let ids: Option<Vec<String>> = if narrowing.iter().any(|(vals, _)| !vals.is_empty()) {
            let mut sets: Vec<std::collections::BTreeSet<String>> = Vec::new();
            for (vals, f) in narrowing {
                if vals.is_empty() {
                    continue;
                }
                let mut set = std::collections::BTreeSet::new();
                for v in vals {
                    let mut prefix = vec![b'i'];
                    prefix.extend_from_slice(&f(v));
                    for kv in self.store.view_scan(CommitmentsView::NAME, &prefix) {
                        let (_, ids) = kv?;
                        set.extend(String::from_utf8_lossy(&ids).lines().map(str::to_owned));
                    }
                }
                sets.push(set);
            }
            let mut it = sets.into_iter();
            let first = it.next().unwrap_or_default();
            Some(
                it.fold(first, |acc, s| acc.intersection(&s).cloned().collect())
                    .into_iter()
                    .collect(),
            )
        } else {
            None
        };
        match ids {
            Some(ids) => {
                for id in ids {
                    if let Some(b) = self.store.view_get(CommitmentsView::NAME, &row_key(&id))? {
                        visit(&decode_row::<CommitmentRow>(&b)?);
                    }
                }
            }
            None => {
                for kv in self.store.view_scan(CommitmentsView::NAME, b"r") {
                    let (_, v) = kv?;
                    visit(&decode_row::<CommitmentRow>(&v)?);
                }
            }
        }
        Ok(())
    }

    /// The commitment board, filtered.
    pub fn list(&self, at: &ReadAt, filter: &ListFilter) -> Result<Vec<CommitmentView>> {
        let label = self.known_at_label(at)?;
        let mut out = Vec::new();
        self.visit_commitment_rows(at, filter, &mut |row| {
            let v = CommitmentView::from_row(row, at.as_of, &label, at.horizon_days);
            if filter.admits(&v) {
                out.push(v);
            }
        })?;
        Ok(out)
    }

    /// One subject: its current view and its history.
    pub fn show(&self, id: &str, at: &ReadAt) -> Result<Shown> {
        let id = self.resolve(id)?;
        let (limit, live) = self.seq_limit(at.known_at)?;
        let label = self.known_at_label(at)?;
        let events = self.env(false).stream_upto(&id, limit)?;
        if events.is_empty() {
            return Err(ProjectionError::UnknownId(id));
        }
        let history = history_rows(&events);
        // The live views answer for now; for a past known_at, a fold of this stream alone
        // (a call's `commitments` then lists none: they are other streams).
        let (mut set, backing) = if live {
            (ViewSet::new(""), Some(&self.store))
        } else {
            (self.fold_in_memory(events.into_iter().map(Ok))?, None)
        };
        if let Some(row) = set.commitments.get(backing, &id)?.cloned() {
            let view = CommitmentView::from_row(&row, at.as_of, &label, at.horizon_days);
            return Ok(Shown::Commitment {
                view: Box::new(with_evidence(view, &history)),
                history,
            });
        }
        if let Some(row) = set.calls.get(backing, &id)?.cloned() {
            return Ok(Shown::Call {
                row: Box::new(row),
                history,
            });
        }
        if let Some(row) = set.documents.get(backing, &id)?.cloned() {
            return Ok(Shown::Document {
                row: Box::new(row),
                history,
            });
        }
        if let Some(row) = set.sources.get(backing, &id)?.cloned() {
            return Ok(Shown::Source {
                row: Box::new(row),
                history,
            });
        }
        Err(ProjectionError::UnknownId(id))
    }

    /// The audit trail of a subject, in stream order, up to `at.known_at`.
    pub fn history(&self, id: &str, at: &ReadAt) -> Result<Vec<HistoryRow>> {
        let id = self.resolve(id)?;
        let (limit, _) = self.seq_limit(at.known_at)?;
        Ok(history_rows(&self.env(false).stream_upto(&id, limit)?))
    }

    /// The contact log, by date then id.
    pub fn calls(&self, at: &ReadAt) -> Result<Vec<CallRow>> {
        let (limit, live) = self.seq_limit(at.known_at)?;
        let mut rows: Vec<CallRow> = if live {
            let mut v = Vec::new();
            for kv in self.store.view_scan(CallsView::NAME, b"r") {
                let (_, b) = kv?;
                v.push(decode_row::<CallRow>(&b)?);
            }
            v
        } else {
            self.fold_prefix(limit)?
                .calls
                .cached()
                .map(|(_, r)| r.clone())
                .collect()
        };
        rows.sort_by(|a, b| {
            let ka = a.occurred.as_ref().and_then(|o| o.default_anchor());
            let kb = b.occurred.as_ref().and_then(|o| o.default_anchor());
            ka.cmp(&kb).then(a.seq.cmp(&b.seq))
        });
        Ok(rows)
    }

    /// Documents (agreements and reviews).
    pub fn documents(&self, at: &ReadAt) -> Result<Vec<DocumentRow>> {
        let (limit, live) = self.seq_limit(at.known_at)?;
        if live {
            let mut v = Vec::new();
            for kv in self.store.view_scan(DocumentsView::NAME, b"r") {
                let (_, b) = kv?;
                v.push(decode_row::<DocumentRow>(&b)?);
            }
            return Ok(v);
        }
        Ok(self
            .fold_prefix(limit)?
            .documents
            .cached()
            .map(|(_, r)| r.clone())
            .collect())
    }

    /// Open commitments by due window: overdue first (most overdue first), then in window
    /// (soonest end first), then not yet due, then no deadline.
    pub fn agenda(&self, at: &ReadAt) -> Result<Vec<CommitmentView>> {
        let mut v: Vec<CommitmentView> = self
            .list(at, &ListFilter::default())?
            .into_iter()
            .filter(|c| c.window.is_some())
            .collect();
        let rank = |c: &CommitmentView| match c.window {
            Some(commitments_domain::WindowState::Overdue) => 0,
            Some(commitments_domain::WindowState::InWindow) => 1,
            Some(commitments_domain::WindowState::NotYetDue) => 2,
            _ => 3,
        };
        v.sort_by(|a, b| {
            rank(a)
                .cmp(&rank(b))
                .then_with(|| {
                    b.overdue_days
                        .unwrap_or(0)
                        .cmp(&a.overdue_days.unwrap_or(0))
                })
                .then_with(|| a.due_latest.cmp(&b.due_latest))
                .then_with(|| a.commitment_id.cmp(&b.commitment_id))
        });
        Ok(v)
    }

    /// The log in order with the status change each event caused. `sink` returns false to
    /// stop early (a closed pipe).
    pub fn replay(
        &self,
        from: u64,
        to: Option<u64>,
        stream: Option<&str>,
        types: &[String],
        known_at: Option<DateTime<Utc>>,
        sink: &mut dyn FnMut(ReplayRow) -> Result<bool>,
    ) -> Result<u64> {
        let (limit, _) = self.seq_limit(known_at)?;
        let to = Some(to.map_or(limit, |t| t.min(limit)));
        let from = from.max(1);
        // The status change of each event comes from the `commitments` projection itself,
        // folded in memory alongside the replay: one row per commitment (not its events), and
        // a stream is refolded only when it holds a correction or retraction, exactly as the
        // view does it. A stream first met after `from` is seeded with its earlier events.
        let env = self.env(false);
        let mut rows: Rows<CommitmentRow> =
            Rows::new(CommitmentsView::NAME, CommitmentsView::index);
        let mut seen: HashSet<String> = HashSet::new();
        let mut n = 0;
        for se in self.store.read_log(from, to) {
            let rec = decode(&se?, &self.upcasters)?;
            if stream.is_some_and(|s| s != rec.stream) {
                continue;
            }
            let maybe_commitment = rec.event.commitment_id().is_some()
                || matches!(
                    *rec.event,
                    Event::EventCorrected(_) | Event::EventRetracted(_)
                );
            if maybe_commitment && from > 1 && seen.insert(rec.stream.clone()) {
                for earlier in env.stream_upto(&rec.stream, rec.seq - 1)? {
                    CommitmentsView::apply(&earlier, &mut rows, &env)?;
                }
            }
            let status = |rows: &mut Rows<CommitmentRow>| -> Result<Option<String>> {
                Ok(rows
                    .get(None, &rec.stream)?
                    .map(|r| r.state.status.to_string()))
            };
            let (before, after) = if maybe_commitment {
                let before = status(&mut rows)?;
                CommitmentsView::apply(&rec, &mut rows, &env)?;
                (before, status(&mut rows)?)
            } else {
                (None, None)
            };
            if !types.is_empty() && !types.iter().any(|t| t == rec.event.type_name()) {
                continue;
            }
            let c = rec.event.common();
            let row = ReplayRow {
                seq: rec.seq,
                event_id: c.event_id.map(|i| i.to_string()),
                event_type: rec.event.type_name().to_owned(),
                stream: rec.stream.clone(),
                occurred: c.occurred.map(|o| o.to_string()),
                recorded_at: rec.recorded_at.clone(),
                recorded_by: c.recorded_by.map(str::to_owned),
                status_before: before,
                status_after: after,
                hash: rec.hash.clone(),
            };
            n += 1;
            if !sink(row)? {
                break;
            }
        }
        Ok(n)
    }

    /// Events, streams, head, size on disk and each view's health.
    pub fn status(&self, path: &Path) -> Result<StatusReport> {
        let stats = self.store.stats()?;
        let head = self.store.head()?;
        let mut views = Vec::new();
        for (name, version) in VIEWS {
            let m: Option<ViewMeta> = self.store.view_meta(name)?;
            views.push(ViewHealth {
                name: name.to_string(),
                version: m.as_ref().map_or(0, |m| m.version),
                code_version: *version,
                checkpoint: m.as_ref().map_or(0, |m| m.checkpoint),
                lag: stats
                    .head_seq
                    .saturating_sub(m.as_ref().map_or(0, |m| m.checkpoint)),
                rows: m.as_ref().map_or(0, |m| m.rows),
                digest: m.as_ref().map(|m| hex(&m.digest)).unwrap_or_default(),
                last_rebuild: m.as_ref().and_then(|m| m.rebuilt_at.clone()),
            });
        }
        Ok(StatusReport {
            store: path.display().to_string(),
            events: stats.events,
            streams: stats.streams,
            head_seq: stats.head_seq,
            head_hash: (head.seq > 0).then(|| head.hash_hex()),
            last_recorded_at: stats.last_recorded_at,
            bytes_on_disk: stats.bytes_on_disk,
            format_version: commitments_store::FORMAT_VERSION,
            views,
        })
    }

    /// Checks the log (hashes, chain, sequence, stream versions, indexes, decoding) and
    /// compares each view with a fresh fold of the log.
    pub fn verify(&self, progress: &dyn Fn(u64)) -> Result<VerifyOutcome> {
        let up = &self.upcasters;
        let decode_check =
            |se: &commitments_store::StoredEvent| -> std::result::Result<(), String> {
                Event::from_stored(&se.body_json(), se.schema_version, up)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
        let report = self.store.verify(&decode_check, progress)?;
        let mut out = VerifyOutcome {
            events: report.events_checked,
            packs: report.packs_checked,
            streams: report.streams_checked,
            log_problem: report.first_problem.map(|p| (p.seq, p.detail)),
            views: Vec::new(),
        };
        if out.log_problem.is_some() {
            return Ok(out);
        }
        let head = self.store.head()?.seq;
        let mut set = ViewSet::shadow(".verify");
        set.row_budget = self.row_budget;
        for i in 0..4 {
            self.store.view_drop(set.ns(i))?;
        }
        run(&self.store, &mut set, head, self.view_batch, up, &|_| {})?;
        // The fresh fold's digests: from memory, or from the shadow namespaces when the rows
        // outgrew memory.
        let in_memory = match set.spilled {
            false => set.digests()?,
            true => [None, None, None, None],
        };
        for (i, (name, _)) in VIEWS.iter().enumerate() {
            let ns = set.ns(i).to_owned();
            let fresh = match &in_memory[i] {
                Some(d) => d.digest(),
                None => self
                    .store
                    .view_meta(&ns)?
                    .map(|m| m.digest)
                    .unwrap_or([0; 32]),
            };
            let live_meta = self.store.view_meta(name)?;
            let live = live_meta.as_ref().map(|m| m.digest).unwrap_or([0; 32]);
            let recomputed = self.store.view_digest_recompute(name)?;
            let ok = fresh == live
                && recomputed == live
                && live_meta.is_none_or(|m| m.checkpoint == head);
            out.views
                .push((name.to_string(), hex(&live), hex(&fresh), ok));
            self.store.view_drop(&ns)?;
        }
        Ok(out)
    }

    /// Writes every event as JSON Lines.
    pub fn export(&self, out: &mut dyn std::io::Write, progress: &dyn Fn(u64)) -> Result<u64> {
        Ok(self.store.export(out, progress)?)
    }

    /// Loads an export into this (empty) store, then builds the views.
    pub fn restore(&self, input: &mut dyn std::io::BufRead, progress: &dyn Fn(u64)) -> Result<u64> {
        let n = self.store.restore(input, progress)?;
        self.catch_up(&|_| {})?;
        Ok(n)
    }
}

/// The audit trail of one stream's events: status and due before and after each, what
/// became of it (applied, invalidated, retracted), and the corrections against it.
fn history_rows(recs: &[Recorded]) -> Vec<HistoryRow> {
    let refs: Vec<&Event> = recs.iter().map(|r| &*r.event).collect();
    let fold = fold_stream(&refs);
    let is_commitment = recs
        .first()
        .is_some_and(|r| r.event.commitment_id().is_some());
    let mut out = Vec::with_capacity(recs.len());
    for (r, step) in recs.iter().zip(fold.steps) {
        let c = r.event.common();
        let target = match &*r.event {
            Event::EventCorrected(e) => Some(e.target_event_id.to_string()),
            Event::EventRetracted(e) => Some(e.target_event_id.to_string()),
            _ => None,
        };
        let (effect, reason) = match &step.effect {
            Effect::Applied => ("applied".to_owned(), None),
            Effect::Invalidated(why) => ("invalidated".to_owned(), Some(why.clone())),
            Effect::Retracted(by) => ("retracted".to_owned(), Some(format!("retracted by {by}"))),
            Effect::Meta if matches!(*r.event, Event::EventCorrected(_)) => {
                ("correction".to_owned(), None)
            }
            Effect::Meta => ("retraction".to_owned(), None),
        };
        let st = |s: Option<commitments_domain::Status>| {
            if is_commitment {
                s.map(|s| s.to_string())
            } else {
                None
            }
        };
        out.push(HistoryRow {
            seq: r.seq,
            event_id: c.event_id.map(|i| i.to_string()),
            event_type: r.event.type_name().to_owned(),
            occurred: c.occurred.map(|o| o.to_string()),
            recorded_at: r.recorded_at.clone(),
            recorded_by: c.recorded_by.map(str::to_owned),
            status_before: st(step.status_before),
            status_after: st(step.status_after),
            due_before: if is_commitment { step.due_before } else { None },
            due_after: if is_commitment { step.due_after } else { None },
            evidence: c.evidence.to_vec(),
            hash: r.hash.clone(),
            target_event_id: target,
            effect,
            effect_reason: reason,
            corrected_by: step.corrected_by.iter().map(|i| i.to_string()).collect(),
        });
    }
    out
}

/// The evidence of the events that count (applied ones, and corrections and retractions), in
/// stream order, without repeats.
fn with_evidence(mut v: CommitmentView, history: &[HistoryRow]) -> CommitmentView {
    for h in history {
        if matches!(h.effect.as_str(), "applied" | "correction" | "retraction") {
            for e in &h.evidence {
                if !v.evidence.contains(e) {
                    v.evidence.push(e.clone());
                }
            }
        }
    }
    v
}

fn decode_row<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| ProjectionError::Decode {
        seq: 0,
        reason: format!("view row: {e}"),
    })
}

fn to_new_event(ev: &Event, stream: String) -> Result<NewEvent> {
    let body = ev
        .to_json()
        .map_err(|e| DomainError::Malformed(e.to_string()))?;
    Ok(NewEvent {
        event_id: ev.event_id().map(|i| i.0).unwrap_or_default(),
        stream,
        event_type: ev.type_name().to_owned(),
        schema_version: commitments_domain::current_schema_version(ev.type_name()),
        body,
    })
}

/// Frees the events an import has folded on a thread of its own, in batches. They were
/// allocated on the decoding thread, so freeing them on the validating thread (the busier of
/// the two) was a cross-thread free each: ~6 % of that thread's samples in a 100k import.
struct Disposal<T: Send + 'static = Recorded> {
    batch: Vec<T>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<T>>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl<T: Send + 'static> Default for Disposal<T> {
    fn default() -> Self {
        Disposal {
            batch: Vec::new(),
            tx: None,
            worker: None,
        }
    }
}

impl<T: Send + 'static> Disposal<T> {
    const BATCH: usize = 1024;

    fn put(&mut self, rec: T) {
        if self.batch.capacity() == 0 {
            self.batch.reserve_exact(Self::BATCH);
        }
        self.batch.push(rec);
        if self.batch.len() < Self::BATCH {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        if self.tx.is_none() {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<T>>(4);
            // Without a thread (none could be started), the batch is freed here.
            if let Ok(h) = std::thread::Builder::new()
                .name("import-free".into())
                .spawn(move || rx.into_iter().for_each(drop))
            {
                self.tx = Some(tx);
                self.worker = Some(h);
            }
        }
        if let Some(tx) = &self.tx {
            // A worker that is gone (it cannot panic while dropping) hands the batch back.
            let _ = tx.send(batch);
        }
    }
}

impl<T: Send + 'static> Drop for Disposal<T> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod disposal_tests {
    use super::Disposal;
    use std::sync::Arc;

    #[test]
    fn everything_put_is_freed_by_the_time_it_is_dropped() {
        let token = Arc::new(());
        for n in [0, 1, 1023, 1024, 1025, 5000] {
            let mut d = Disposal::default();
            for _ in 0..n {
                d.put(Arc::clone(&token));
            }
            let spawned = d.worker.is_some();
            drop(d);
            assert_eq!(Arc::strong_count(&token), 1, "{n} put");
            assert_eq!(spawned, n >= 1024, "{n} put");
        }
    }
}
