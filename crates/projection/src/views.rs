//! The projections (one per view) and the runner that catches views up from their
//! checkpoints and folds the whole log for rebuilds (rewriting the live views where rows
//! differ, or, past the row budget, through shadow namespaces swapped in).

use commitments_domain::event::Event;
use commitments_domain::{decide, evolve, evolve_in_place, fold_stream, StreamFold, Upcasters};
use commitments_store::{EncodedRows, Rewritten, RowDigest, StagedView, Store, StoredEvent};

use crate::error::{ProjectionError, Result};
use crate::rows::*;

/// What a projection's `apply` may use besides its rows.
#[derive(Debug)]
pub struct Env<'a> {
    /// The store, to read a stream when a correction makes it refold.
    pub store: &'a Store,
    /// Whether rows are read from the store (false for in-memory time-travel folds).
    pub backed: bool,
    /// Upcasters for stored events.
    pub upcasters: &'a Upcasters,
    /// False while applying events that are not in the log yet (an import in progress):
    /// a projection that would have to read a stream back then fails with
    /// [`ProjectionError::NeedsLog`], and the caller catches up from the log instead.
    pub log_complete: bool,
}

impl Env<'_> {
    fn backing(&self) -> Option<&Store> {
        self.backed.then_some(self.store)
    }

    /// The events of `stream` with `seq <= upto`, decoded.
    pub fn stream_upto(&self, stream: &str, upto: u64) -> Result<Vec<Recorded>> {
        if !self.log_complete {
            return Err(ProjectionError::NeedsLog);
        }
        let mut out = Vec::new();
        for se in self.store.read_stream(stream, 1)? {
            if se.seq > upto {
                break;
            }
            out.push(decode(&se, self.upcasters)?);
        }
        Ok(out)
    }
}

/// A stream read back and refolded (after a correction or retraction).
#[derive(Debug)]
pub struct Refolded {
    /// The stream's events up to the bound, in order.
    pub events: Vec<Recorded>,
    /// Their fold: state, per-event effects, patched events.
    pub fold: StreamFold,
}

impl Refolded {
    /// The stream's opening event as it counts now (patched by corrections), or as recorded
    /// when it was retracted, with `true` for retracted.
    pub fn opener(&self) -> Option<(Event, bool)> {
        let first = self.events.first()?;
        match self.fold.effective.first().cloned().flatten() {
            Some(patched) => Some((patched, false)),
            None => Some(((*first.event).clone(), true)),
        }
    }

    /// Seq of the first event.
    pub fn first_seq(&self) -> Option<u64> {
        self.events.first().map(|r| r.seq)
    }
}

impl Env<'_> {
    /// Reads `stream` up to `upto` and folds it.
    pub fn refold(&self, stream: &str, upto: u64) -> Result<Refolded> {
        let events = self.stream_upto(stream, upto)?;
        let refs: Vec<&Event> = events.iter().map(|r| &*r.event).collect();
        let fold = fold_stream(&refs);
        Ok(Refolded { events, fold })
    }
}

/// Decodes a stored event.
pub fn decode(se: &StoredEvent, upcasters: &Upcasters) -> Result<Recorded> {
    let mut rec = decode_for_views(se, upcasters)?;
    rec.hash = se.hash_hex();
    Ok(rec)
}

/// [`decode`] without the hash (empty): what the views need, for passes over the log.
fn decode_for_views(se: &StoredEvent, upcasters: &Upcasters) -> Result<Recorded> {
    let event = Event::from_stored(&se.body_json(), se.schema_version, upcasters).map_err(|e| {
        ProjectionError::Decode {
            seq: se.seq,
            reason: e.to_string(),
        }
    })?;
    Ok(Recorded {
        seq: se.seq,
        stream: se.stream.clone(),
        stream_version: se.stream_version,
        recorded_at: se.recorded_at.clone(),
        event: Box::new(event),
        hash: String::new(),
    })
}

/// A view: a name, a version (bumped whenever its logic changes, which makes every store
/// rebuild it on open) and how one event changes its rows.
pub trait Projection {
    /// The row type.
    type Row: serde::Serialize + serde::de::DeserializeOwned + Clone + PartialEq;
    /// The view's name (its namespace).
    const NAME: &'static str;
    /// The version of its logic.
    const VERSION: u32;
    /// Secondary index keys of a row.
    fn index(_id: &str, _row: &Self::Row) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// Applies one event.
    fn apply(rec: &Recorded, rows: &mut Rows<Self::Row>, env: &Env<'_>) -> Result<()>;
}

fn is_meta(e: &Event) -> bool {
    matches!(e, Event::EventCorrected(_) | Event::EventRetracted(_))
}

/// `commitments`: one row per commitment, indexed by status, country and kind.
#[derive(Debug)]
pub struct CommitmentsView;

/// Index key helpers for the `commitments` view.
pub mod index_keys {
    /// `s\0<status>\0`
    pub fn status(status: &str) -> Vec<u8> {
        format!("s\0{status}\0").into_bytes()
    }
    /// `c\0<country>\0`
    pub fn country(country: &str) -> Vec<u8> {
        format!("c\0{country}\0").into_bytes()
    }
    /// `k\0<kind>\0`
    pub fn kind(kind: &str) -> Vec<u8> {
        format!("k\0{kind}\0").into_bytes()
    }
}

impl CommitmentsView {
    fn refold(stream: &str, upto: &Recorded, env: &Env<'_>) -> Result<Option<CommitmentRow>> {
        let Refolded { events, fold } = env.refold(stream, upto.seq)?;
        let Some(state) = fold.state else {
            return Ok(None);
        };
        let mut sources = Vec::new();
        for (i, ev) in fold.effective.iter().enumerate() {
            match ev {
                Some(e) => merge_sources(&mut sources, e.common().evidence),
                None if is_meta(&events[i].event) => {
                    merge_sources(&mut sources, events[i].event.common().evidence)
                }
                None => {}
            }
        }
        Ok(Some(CommitmentRow {
            state,
            opened_seq: events.first().map(|r| r.seq).unwrap_or(upto.seq),
            last_seq: upto.seq,
            event_count: events.len() as u64,
            sources,
            refolded: true,
        }))
    }
}

impl Projection for CommitmentsView {
    type Row = CommitmentRow;
    const NAME: &'static str = "commitments";
    /// 2: rows no longer copy evidence (show reads it from the stream).
    const VERSION: u32 = 2;

    fn index(_id: &str, row: &CommitmentRow) -> Vec<Vec<u8>> {
        let mut keys = vec![
            index_keys::status(row.state.status.as_str()),
            index_keys::kind(row.state.kind.as_str()),
        ];
        for p in &row.state.parties {
            keys.push(index_keys::country(p.as_str()));
        }
        keys
    }

    fn apply(rec: &Recorded, rows: &mut Rows<CommitmentRow>, env: &Env<'_>) -> Result<()> {
        let backing = env.backing();
        let id = rec.stream.as_str();
        let e = &rec.event;
        if is_meta(e) {
            if rows.get(backing, id)?.is_some() {
                let row = Self::refold(id, rec, env)?;
                rows.put(backing, id, row)?;
            }
            return Ok(());
        }
        if e.commitment_id().is_none() {
            return Ok(());
        }
        let existing = rows.get_mut(backing, id)?;
        match existing {
            None => {
                if let Some(state) = evolve(None, e) {
                    let mut row = CommitmentRow {
                        state,
                        opened_seq: rec.seq,
                        last_seq: rec.seq,
                        event_count: 1,
                        sources: Vec::new(),
                        refolded: false,
                    };
                    merge_sources(&mut row.sources, e.common().evidence);
                    rows.put(backing, id, Some(row))?;
                }
            }
            Some(row) if !row.refolded && decide(Some(&row.state), e).is_ok() => {
                evolve_in_place(&mut row.state, e);
                row.last_seq = rec.seq;
                row.event_count += 1;
                merge_sources(&mut row.sources, e.common().evidence);
            }
            Some(_) => {
                let row = Self::refold(id, rec, env)?;
                rows.put(backing, id, row)?;
            }
        }
        Ok(())
    }
}

/// `calls`: the contact log.
#[derive(Debug)]
pub struct CallsView;

impl CallsView {
    fn rebuild_row(
        id: &str,
        rec: &Recorded,
        env: &Env<'_>,
        old: Option<&CallRow>,
    ) -> Result<Option<CallRow>> {
        let stream = env.refold(id, rec.seq)?;
        let Some((Event::CallHeld(c), retracted)) = stream.opener() else {
            return Ok(old.cloned());
        };
        let mut row = call_row(&c, stream.first_seq().unwrap_or(rec.seq));
        row.commitments = old.map(|o| o.commitments.clone()).unwrap_or_default();
        row.last_seq = rec.seq;
        row.event_count = stream.events.len() as u64;
        row.retracted = retracted;
        Ok(Some(row))
    }
}

fn call_row(c: &commitments_domain::event::CallHeld, seq: u64) -> CallRow {
    CallRow {
        call_id: c.call_id.to_string(),
        occurred: c.occurred.clone(),
        mode: c.mode,
        participants: c.participants.clone(),
        topics: c.topics.clone().unwrap_or_default(),
        location: c.location.clone(),
        commitments: Vec::new(),
        seq,
        last_seq: seq,
        event_count: 1,
        retracted: false,
    }
}

impl Projection for CallsView {
    type Row = CallRow;
    const NAME: &'static str = "calls";
    /// 2: rows no longer copy evidence.
    const VERSION: u32 = 2;

    fn apply(rec: &Recorded, rows: &mut Rows<CallRow>, env: &Env<'_>) -> Result<()> {
        let backing = env.backing();
        match &*rec.event {
            Event::CallHeld(c) => rows.put(backing, &rec.stream, Some(call_row(c, rec.seq)))?,
            Event::ConsultationAgreed(_) | Event::InvitationExtended(_) => {
                let origin = match &*rec.event {
                    Event::ConsultationAgreed(e) => e.origin.as_ref(),
                    Event::InvitationExtended(e) => e.origin.as_ref(),
                    _ => None,
                };
                if let Some(origin) = origin {
                    if let Some(row) = rows.get_mut(backing, origin.as_str())? {
                        if !row.commitments.iter().any(|c| c == &rec.stream) {
                            row.commitments.push(rec.stream.clone());
                        }
                    }
                }
            }
            e if is_meta(e) => {
                if let Some(old) = rows.get(backing, &rec.stream)?.cloned() {
                    let row = Self::rebuild_row(&rec.stream, rec, env, Some(&old))?;
                    rows.put(backing, &rec.stream, row)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `documents`: agreements and their reviews.
#[derive(Debug)]
pub struct DocumentsView;

impl DocumentsView {
    fn fold_rows(id: &str, rec: &Recorded, env: &Env<'_>) -> Result<Option<DocumentRow>> {
        let Refolded { events, fold } = env.refold(id, rec.seq)?;
        let mut row: Option<DocumentRow> = None;
        for (i, eff) in fold.effective.iter().enumerate() {
            let seq = events[i].seq;
            match (eff, &*events[i].event) {
                (Some(Event::AgreementSigned(a)), _) => row = Some(signed_row(a, seq)),
                (None, Event::AgreementSigned(a)) if !is_meta(&events[i].event) => {
                    let mut r = signed_row(a, seq);
                    r.retracted = true;
                    row = Some(r);
                }
                (Some(Event::RoadmapReviewed(r)), _) => {
                    if let Some(d) = row.as_mut() {
                        d.reviews.push(review_row(r, seq));
                    }
                }
                _ => {}
            }
        }
        if let Some(r) = row.as_mut() {
            r.last_seq = rec.seq;
            r.event_count = events.len() as u64;
        }
        Ok(row)
    }
}

fn signed_row(a: &commitments_domain::event::AgreementSigned, seq: u64) -> DocumentRow {
    DocumentRow {
        document_id: a.document_id.to_string(),
        title: a.title.clone(),
        doc_type: a.doc_type,
        parties: a.parties.clone(),
        signed: a.occurred.clone(),
        reviews: Vec::new(),
        seq,
        last_seq: seq,
        event_count: 1,
        retracted: false,
    }
}

fn review_row(r: &commitments_domain::event::RoadmapReviewed, seq: u64) -> ReviewRow {
    ReviewRow {
        seq,
        occurred: r.occurred.clone(),
        parties: r.parties.clone(),
        summary: r.summary.clone(),
        reviewed_in: r.reviewed_in.as_ref().map(|c| c.to_string()),
        progress: r.progress.clone(),
    }
}

impl Projection for DocumentsView {
    type Row = DocumentRow;
    const NAME: &'static str = "documents";
    /// 2: rows no longer copy evidence.
    const VERSION: u32 = 2;

    fn apply(rec: &Recorded, rows: &mut Rows<DocumentRow>, env: &Env<'_>) -> Result<()> {
        let backing = env.backing();
        match &*rec.event {
            Event::AgreementSigned(a) => {
                rows.put(backing, &rec.stream, Some(signed_row(a, rec.seq)))?
            }
            Event::RoadmapReviewed(r) => {
                if let Some(d) = rows.get_mut(backing, &rec.stream)? {
                    d.reviews.push(review_row(r, rec.seq));
                    d.last_seq = rec.seq;
                    d.event_count += 1;
                }
            }
            e if is_meta(e) && rows.get(backing, &rec.stream)?.is_some() => {
                let row = Self::fold_rows(&rec.stream, rec, env)?;
                rows.put(backing, &rec.stream, row)?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// `sources`: registered sources.
#[derive(Debug)]
pub struct SourcesView;

fn source_row(s: &commitments_domain::event::SourceRegistered, seq: u64) -> SourceRow {
    SourceRow {
        source_id: s.source_id.to_string(),
        url: s.url.clone(),
        title: s.title.clone(),
        language: s.language.clone(),
        publisher: s.publisher.clone(),
        published: s.published.clone(),
        retrieved_at: s.retrieved_at.clone(),
        seq,
        last_seq: seq,
        event_count: 1,
        retracted: false,
    }
}

impl Projection for SourcesView {
    type Row = SourceRow;
    const NAME: &'static str = "sources";
    const VERSION: u32 = 1;

    fn apply(rec: &Recorded, rows: &mut Rows<SourceRow>, env: &Env<'_>) -> Result<()> {
        let backing = env.backing();
        match &*rec.event {
            Event::SourceRegistered(s) => {
                rows.put(backing, &rec.stream, Some(source_row(s, rec.seq)))?
            }
            e if is_meta(e) && rows.get(backing, &rec.stream)?.is_some() => {
                let stream = env.refold(&rec.stream, rec.seq)?;
                let row = match (stream.opener(), stream.first_seq()) {
                    (Some((Event::SourceRegistered(s), retracted)), Some(first)) => {
                        let mut r = source_row(&s, first);
                        r.retracted = retracted;
                        r.last_seq = rec.seq;
                        r.event_count = stream.events.len() as u64;
                        Some(r)
                    }
                    _ => None,
                };
                rows.put(backing, &rec.stream, row)?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The names and versions of every view, in the order they are reported.
pub const VIEWS: &[(&str, u32)] = &[
    (CommitmentsView::NAME, CommitmentsView::VERSION),
    (CallsView::NAME, CallsView::VERSION),
    (DocumentsView::NAME, DocumentsView::VERSION),
    (SourcesView::NAME, SourcesView::VERSION),
];

/// The rows of every view, for one pass over the log.
#[derive(Debug)]
pub struct ViewSet {
    /// `commitments`
    pub commitments: Rows<CommitmentRow>,
    /// `calls`
    pub calls: Rows<CallRow>,
    /// `documents`
    pub documents: Rows<DocumentRow>,
    /// `sources`
    pub sources: Rows<SourceRow>,
    /// Per view: apply events with seq above this (its checkpoint); `None` = view not in this pass.
    pub from: [Option<u64>; 4],
    /// Per view: the version its namespace is written with.
    pub versions: [u32; 4],
    /// A full build into shadow namespaces (see [`ViewSet::shadow`]).
    pub full_build: bool,
    /// A full build's budget for cached rows, in estimated bytes (default
    /// [`SHADOW_ROW_BUDGET`]).
    pub row_budget: u64,
    /// Whether a full build outgrew its budget and wrote rows to its shadow namespaces
    /// before the end (then [`run`] writes the rest there too; otherwise every row is still
    /// in memory for [`ViewSet::rewrite_into`] or [`ViewSet::digests`]).
    pub spilled: bool,
}

impl ViewSet {
    /// Rows over namespaces named `<view><suffix>` (suffix "" = live).
    pub fn new(suffix: &str) -> ViewSet {
        ViewSet {
            commitments: Rows::new(
                &format!("{}{suffix}", CommitmentsView::NAME),
                CommitmentsView::index,
            ),
            calls: Rows::new(&format!("{}{suffix}", CallsView::NAME), CallsView::index),
            documents: Rows::new(
                &format!("{}{suffix}", DocumentsView::NAME),
                DocumentsView::index,
            ),
            sources: Rows::new(
                &format!("{}{suffix}", SourcesView::NAME),
                SourcesView::index,
            ),
            from: [Some(0); 4],
            versions: [
                CommitmentsView::VERSION,
                CallsView::VERSION,
                DocumentsView::VERSION,
                SourcesView::VERSION,
            ],
            full_build: false,
            row_budget: SHADOW_ROW_BUDGET,
            spilled: false,
        }
    }

    /// Rows over shadow namespaces `<view><suffix>` that a full build (a rebuild, a verify)
    /// fills from seq 1 and a crash simply discards: [`run`] keeps every row in memory while
    /// they fit in [`SHADOW_ROW_BUDGET`] and writes each row once at the end, in key order
    /// and in chunks, instead of re-writing every row that changed in each batch (a
    /// commitment's events are spread over the whole log). Over the budget, the rows are
    /// written and dropped from memory, and read back as later events need them. The
    /// namespaces must be empty (dropped) to start with.
    pub fn shadow(suffix: &str) -> ViewSet {
        let mut set = ViewSet::new(suffix);
        set.commitments = set.commitments.keep_all();
        set.calls = set.calls.keep_all();
        set.documents = set.documents.keep_all();
        set.sources = set.sources.keep_all();
        set.full_build = true;
        set
    }

    /// An estimate of the memory the cached rows of every view take, in bytes.
    pub fn approx_bytes(&self) -> u64 {
        self.commitments.approx_bytes()
            + self.calls.approx_bytes()
            + self.documents.approx_bytes()
            + self.sources.approx_bytes()
    }

    /// Writes every view's changes in chunks of `SHADOW_CHUNK` (separate commits: for shadow
    /// namespaces only), then its checkpoint `seq`, dropping the cached rows as they are
    /// written (later events read them back). The four views are written on parallel threads
    /// when there is enough to write.
    pub fn write_shadow(&mut self, store: &Store, seq: u64) -> Result<()> {
        self.write(store, seq, Write::Shadow, Prepared::default())
            .map(drop)
    }

    /// For a full build that kept every row in memory (not [`ViewSet::spilled`]): makes each
    /// view in this pass hold exactly the built rows, at checkpoint `seq`, in the namespace
    /// `live[i]`, writing only the rows that differ ([`Store::view_rewrite`]). The views are
    /// written on parallel threads when there is enough to write, and not so much that memory
    /// matters more (see [`REWRITE_PARALLEL_MAX_BYTES`]), then made durable with one flush.
    /// The rows leave memory.
    pub fn rewrite_into(
        &mut self,
        store: &Store,
        live: [&str; 4],
        seq: u64,
    ) -> Result<[Option<Rewritten>; 4]> {
        let (from, versions) = (self.from, self.versions);
        let parallel = self.pending_changes() >= PARALLEL_WRITE_MIN
            && self.approx_bytes() <= REWRITE_PARALLEL_MAX_BYTES;
        let ViewSet {
            commitments,
            calls,
            documents,
            sources,
            ..
        } = self;
        let [a, b, c, d] = four(
            parallel,
            || rewrite_view(commitments, store, live[0], from[0], seq, versions[0]),
            || rewrite_view(calls, store, live[1], from[1], seq, versions[1]),
            || rewrite_view(documents, store, live[2], from[2], seq, versions[2]),
            || rewrite_view(sources, store, live[3], from[3], seq, versions[3]),
        );
        let out = [a?, b?, c?, d?];
        store.flush_durable()?;
        Ok(out)
    }

    /// For a full build that kept every row in memory: each view's digest and row count, as
    /// its namespace would record them, without writing anything (`None` for a view not in
    /// this pass). The rows leave memory.
    pub fn digests(&mut self) -> Result<[Option<RowDigest>; 4]> {
        fn one<T: serde::Serialize + serde::de::DeserializeOwned + Clone + PartialEq>(
            rows: &mut Rows<T>,
            from: Option<u64>,
        ) -> Result<Option<RowDigest>> {
            if from.is_none() {
                return Ok(None);
            }
            let mut d = RowDigest::default();
            rows.drain_sorted(&mut |k, v| {
                d.add(k, v);
                Ok(())
            })?;
            Ok(Some(d))
        }
        let from = self.from;
        Ok([
            one(&mut self.commitments, from[0])?,
            one(&mut self.calls, from[1])?,
            one(&mut self.documents, from[2])?,
            one(&mut self.sources, from[3])?,
        ])
    }

    /// Row changes not yet written, over every view.
    fn pending_changes(&self) -> usize {
        self.commitments.pending_changes()
            + self.calls.pending_changes()
            + self.documents.pending_changes()
            + self.sources.pending_changes()
    }

    /// The namespace of view `i`.
    pub fn ns(&self, i: usize) -> &str {
        match i {
            0 => self.commitments.ns(),
            1 => self.calls.ns(),
            2 => self.documents.ns(),
            _ => self.sources.ns(),
        }
    }

    /// Applies one event to every view in this pass whose checkpoint is below it.
    pub fn apply(&mut self, rec: &Recorded, env: &Env<'_>) -> Result<()> {
        let due = |i: usize| self.from[i].is_some_and(|f| rec.seq > f);
        let (d0, d1, d2, d3) = (due(0), due(1), due(2), due(3));
        if d0 {
            CommitmentsView::apply(rec, &mut self.commitments, env)?;
        }
        if d1 {
            CallsView::apply(rec, &mut self.calls, env)?;
        }
        if d2 {
            DocumentsView::apply(rec, &mut self.documents, env)?;
        }
        if d3 {
            SourcesView::apply(rec, &mut self.sources, env)?;
        }
        Ok(())
    }

    /// Writes every view's changes with checkpoint `seq`, each view atomically (the four views
    /// on parallel threads when there is enough to write).
    pub fn commit(&mut self, store: &Store, seq: u64) -> Result<()> {
        self.write(store, seq, Write::Atomic, Prepared::default())
            .map(drop)
    }

    /// Takes every view's changes and encodes their rows as [`ViewSet::commit`] would, without
    /// writing anything, so that this CPU work can run beside something else (an import runs
    /// it while the log is appended). Reads rows from the store only for views that already
    /// hold some; the log is not touched. The set is consumed, so nothing can change between
    /// this and [`PreparedViews::commit`].
    pub fn prepare(mut self, store: &Store) -> Result<PreparedViews> {
        fn one<T: serde::Serialize + serde::de::DeserializeOwned + Clone + PartialEq>(
            rows: &mut Rows<T>,
            store: &Store,
            from: Option<u64>,
        ) -> Result<Option<PreparedView>> {
            if from.is_none() {
                return Ok(None);
            }
            let changes = rows.take_changes(Some(store))?;
            let encoded = EncodedRows::of(&changes);
            Ok(Some(PreparedView {
                changes,
                encoded,
                staged: None,
            }))
        }
        let from = self.from;
        let prepared = [
            one(&mut self.commitments, store, from[0])?,
            one(&mut self.calls, store, from[1])?,
            one(&mut self.documents, store, from[2])?,
            one(&mut self.sources, store, from[3])?,
        ];
        Ok(PreparedViews {
            set: self,
            prepared,
        })
    }

    /// Writes every view in this pass (see [`write_view`]) and advances its checkpoint.
    /// Returns the written changes, for the caller to free (or leave to the process's exit).
    fn write(
        &mut self,
        store: &Store,
        seq: u64,
        how: Write,
        prepared: Prepared,
    ) -> Result<Vec<Written>> {
        let (from, versions) = (self.from, self.versions);
        let parallel = self.pending_changes()
            + prepared
                .iter()
                .flatten()
                .map(|p| p.changes.len())
                .sum::<usize>()
            >= PARALLEL_WRITE_MIN;
        let ViewSet {
            commitments,
            calls,
            documents,
            sources,
            ..
        } = self;
        let [p0, p1, p2, p3] = prepared;
        let out = four(
            parallel,
            || write_view(commitments, store, from[0], seq, versions[0], how, p0),
            || write_view(calls, store, from[1], seq, versions[1], how, p1),
            || write_view(documents, store, from[2], seq, versions[2], how, p2),
            || write_view(sources, store, from[3], seq, versions[3], how, p3),
        );
        let mut written = Vec::new();
        for (i, r) in out.into_iter().enumerate() {
            let (cp, w) = r?;
            if let Some(cp) = cp {
                self.from[i] = Some(cp);
            }
            written.extend(w);
        }
        Ok(written)
    }
}

/// Above this estimate of a full build's rows in memory, [`ViewSet::rewrite_into`] writes the
/// views one after the other: each writing thread allocates (encoded rows, the live view's
/// pages) before the rows it drains are freed, and in parallel that came on top of the
/// build's peak. Measured on 1M events (rows ~150 MB): peak RSS 254–256 → 243–247 MiB; the
/// rebuild 0.5 s slower (of ~5.5 s) in one A/B, the same within the noise in another.
pub const REWRITE_PARALLEL_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Below this many changed rows (over all views), views are written one after the other:
/// four threads cost more than they save on a `record`'s handful of rows.
const PARALLEL_WRITE_MIN: usize = 2_048;

/// Runs the four closures, the last three on scoped threads when `parallel`, and returns their
/// results in order. (A panic in one is resumed here, as if it had happened on this thread.)
fn four<R: Send>(
    parallel: bool,
    a: impl FnOnce() -> R + Send,
    b: impl FnOnce() -> R + Send,
    c: impl FnOnce() -> R + Send,
    d: impl FnOnce() -> R + Send,
) -> [R; 4] {
    if !parallel {
        return [a(), b(), c(), d()];
    }
    std::thread::scope(|s| {
        let (hb, hc, hd) = (s.spawn(b), s.spawn(c), s.spawn(d));
        let ra = a();
        let join = |h: std::thread::ScopedJoinHandle<'_, R>| {
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        };
        [ra, join(hb), join(hc), join(hd)]
    })
}

/// One view's part of [`ViewSet::rewrite_into`] (`None` for a view not in this pass).
fn rewrite_view<T: serde::Serialize + serde::de::DeserializeOwned + Clone + PartialEq>(
    rows: &mut Rows<T>,
    store: &Store,
    live: &str,
    from: Option<u64>,
    seq: u64,
    version: u32,
) -> Result<Option<Rewritten>> {
    if from.is_none() {
        return Ok(None);
    }
    let mut w = store.view_rewrite(live)?;
    rows.drain_sorted(&mut |k, v| Ok(w.put(k, v)?))?;
    Ok(Some(w.finish(seq, version)?))
}

/// One view's changes taken by [`ViewSet::prepare`], their encoded rows, and the generation
/// [`PreparedViews::stage`] wrote them into when the namespace did not exist.
#[derive(Debug)]
struct PreparedView {
    changes: Changes,
    encoded: EncodedRows,
    staged: Option<StagedView>,
}

/// Each view's [`PreparedView`] (`None` for a view not in the pass).
type Prepared = [Option<PreparedView>; 4];

/// One view's changes and encoded rows after they were written.
type Written = (Changes, EncodedRows);

/// What a committed [`PreparedViews`] leaves behind: the views' rows in memory and the changes
/// that were written. Dropping it frees them (~15 ms after a 100k import, on the committing
/// thread); a process about to exit may leave them to the exit instead (see
/// [`crate::Tracker::leave_memory_to_exit`]).
pub struct SpentViews {
    _set: ViewSet,
    _written: Vec<Written>,
}

impl std::fmt::Debug for SpentViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpentViews").finish_non_exhaustive()
    }
}

/// A [`ViewSet`] whose changes [`ViewSet::prepare`] took and encoded, ready to commit.
#[derive(Debug)]
pub struct PreparedViews {
    set: ViewSet,
    prepared: Prepared,
}

impl PreparedViews {
    /// Writes now the rows of every view whose namespace does not exist yet, into a
    /// generation nothing references until [`PreparedViews::commit`] publishes it (see
    /// [`Store::view_stage`]): an import stages them while the log is still being appended.
    /// Views that exist are written by `commit`.
    /// On an error, what it staged is dropped again (best effort).
    pub fn stage(&mut self, store: &Store) -> Result<()> {
        let PreparedViews { set, prepared } = self;
        for (i, p) in prepared.iter_mut().enumerate() {
            let Some(p) = p.as_mut().filter(|p| p.staged.is_none()) else {
                continue;
            };
            match store.view_stage(set.ns(i), &p.changes, &p.encoded, set.versions[i]) {
                Ok(staged) => p.staged = staged,
                Err(e) => {
                    for p in prepared.iter_mut().flatten() {
                        if let Some(staged) = p.staged.take() {
                            let _ = store.view_discard(staged);
                        }
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Writes the prepared changes with checkpoint `seq`, as [`ViewSet::commit`] does (a
    /// staged view is published). Returns what is left in memory, for the caller to drop.
    pub fn commit(self, store: &Store, seq: u64) -> Result<SpentViews> {
        let PreparedViews { mut set, prepared } = self;
        let written = set.write(store, seq, Write::Atomic, prepared)?;
        Ok(SpentViews {
            _set: set,
            _written: written,
        })
    }

    /// Drops what [`PreparedViews::stage`] wrote, for changes that will not be committed.
    /// (A process that ends without either leaves the staged generations to the next open,
    /// which drops them.)
    pub fn discard(self, store: &Store) -> Result<()> {
        for staged in self.prepared.into_iter().flatten().filter_map(|p| p.staged) {
            store.view_discard(staged)?;
        }
        Ok(())
    }
}

/// How [`ViewSet`] writes a view's changes.
#[derive(Debug, Clone, Copy)]
enum Write {
    /// All changes and the checkpoint in one atomic commit.
    Atomic,
    /// In chunks of [`SHADOW_CHUNK`], then the checkpoint (for namespaces a crash discards);
    /// the cached rows are dropped as they are written.
    Shadow,
}

/// One view's part of [`ViewSet::commit`] or [`ViewSet::write_shadow`]: its new checkpoint,
/// if it was written (`None` also for a view not in this pass).
fn write_view<T: serde::Serialize + serde::de::DeserializeOwned + Clone + PartialEq>(
    rows: &mut Rows<T>,
    store: &Store,
    from: Option<u64>,
    seq: u64,
    version: u32,
    how: Write,
    prepared: Option<PreparedView>,
) -> Result<(Option<u64>, Option<Written>)> {
    let Some(from) = from else {
        return Ok((None, None));
    };
    let ns = rows.ns().to_owned();
    let checkpoint = seq.max(from);
    match how {
        Write::Atomic => {
            // All changes with the checkpoint. (`PreparedViews` owns the set: nothing changed
            // since `prepare` took these.)
            let (changes, encoded) = match prepared {
                Some(p) => {
                    if let Some(staged) = p.staged {
                        if store.view_publish(staged, checkpoint)?.is_some() {
                            return Ok((Some(checkpoint), Some((p.changes, p.encoded))));
                        }
                        // Created meanwhile: the changes are committed on top of it.
                    }
                    (p.changes, p.encoded)
                }
                None => {
                    let changes = rows.take_changes(Some(store))?;
                    let encoded = EncodedRows::of(&changes);
                    (changes, encoded)
                }
            };
            if seq > from || !changes.is_empty() {
                store.view_commit_encoded(&ns, &changes, &encoded, checkpoint, version)?;
                return Ok((Some(checkpoint), Some((changes, encoded))));
            }
        }
        Write::Shadow => {
            let mut wrote = false;
            let mut sink = |changes: Changes| -> Result<()> {
                if !changes.is_empty() {
                    // The rows before the checkpoint: in, the checkpoint not yet.
                    store.view_commit(&ns, &changes, from, version)?;
                    wrote = true;
                }
                Ok(())
            };
            rows.take_changes_chunked(Some(store), SHADOW_CHUNK, true, &mut sink)?;
            rows.evict();
            if seq > from || wrote {
                store.view_commit(&ns, &[], checkpoint, version)?;
                return Ok((Some(checkpoint), None));
            }
        }
    }
    Ok((None, None))
}

/// Events applied between two commits of a catch-up or rebuild.
pub const BATCH_EVENTS: u64 = 20_000;

/// Estimated bytes of cached rows above which a full build writes its rows out and drops
/// them from memory (checked every `SHADOW_CHECK_EVENTS`).
pub const SHADOW_ROW_BUDGET: u64 = 192 * 1024 * 1024;

/// Events between two checks of a full build's row memory.
const SHADOW_CHECK_EVENTS: u64 = 4_096;

/// Changes per store commit when a full build writes its rows.
/// Small, because sled keeps every page a batch replaces until the batch ends: measured on
/// 1M events, 8,192 changes per commit peaked 350 MiB above 128.
const SHADOW_CHUNK: usize = 256;

/// Events a reader thread decodes per chunk it hands to the applying thread.
const READ_CHUNK: usize = 512;

/// Chunks each reader thread may decode ahead of the applying thread (bounds memory).
const READ_AHEAD: usize = 4;

/// Reader threads of a large [`run`]: decoding takes about twice as long as applying.
const READERS: u64 = 2;

/// Events per block handed to one reader (a block re-reads the pack its first event is in,
/// ~140 events, so blocks are much larger than packs).
const READ_BLOCK: u64 = 4_096;

/// Below this many events `run` reads and decodes on the calling thread (a thread is not
/// worth starting for the few events of a typical catch-up).
const PIPELINE_MIN_EVENTS: u64 = 4_096;

/// Catches `set` up from its per-view checkpoints to `to`, committing every `batch` events
/// (each view's rows with its checkpoint, atomically). Returns how many events were read.
/// A full build ([`ViewSet::shadow`]) reports progress every `batch` events but writes its
/// rows once at the end (or when they outgrow [`SHADOW_ROW_BUDGET`]).
///
/// On large ranges the log is read and decoded on two more threads while this one applies
/// (decoding takes about twice as long as applying), each reader taking every other block of
/// `READ_BLOCK` events; events are still applied, and errors reported, in log order: a
/// reader stops at its first error and hands it over after the events before it, and this
/// thread takes the blocks in turn.
pub fn run(
    store: &Store,
    set: &mut ViewSet,
    to: u64,
    batch: u64,
    upcasters: &Upcasters,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let start = set.from.iter().flatten().min().copied().unwrap_or(to);
    if start >= to {
        return Ok(0);
    }
    let env = Env {
        store,
        backed: true,
        upcasters,
        log_complete: true,
    };
    let mut applier = Applier {
        set,
        env: &env,
        store,
        batch,
        progress,
        n: 0,
        last: start,
    };
    if to - start < PIPELINE_MIN_EVENTS {
        for se in store.read_log(start + 1, Some(to)) {
            applier.apply(decode_for_views(&se?, upcasters)?)?;
        }
    } else {
        // Two readers, each decoding every other block of READ_BLOCK events; events are
        // applied block by block, in log order.
        let first = start + 1;
        let blocks = (to - first) / READ_BLOCK + 1;
        let block = move |b: u64| {
            let from = first + b * READ_BLOCK;
            (from, (from + READ_BLOCK - 1).min(to))
        };
        std::thread::scope(|s| -> Result<()> {
            let mut rxs = Vec::with_capacity(READERS as usize);
            for r in 0..READERS {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Recorded>>>(READ_AHEAD);
                rxs.push(rx);
                s.spawn(move || {
                    for b in (r..blocks).step_by(READERS as usize) {
                        let (from, upto) = block(b);
                        if !read_decoded(store, from, upto, upcasters, &tx) {
                            return;
                        }
                    }
                });
            }
            // The receivers are dropped when this returns (also on an error), which stops
            // the readers.
            for b in 0..blocks {
                let rx = &rxs[(b % READERS) as usize];
                let (mut next, upto) = block(b);
                while next <= upto {
                    let chunk = rx.recv().map_err(|_| ProjectionError::Decode {
                        seq: next,
                        reason: "the log reader stopped early".into(),
                    })??;
                    for rec in chunk {
                        if rec.seq != next {
                            return Err(ProjectionError::Decode {
                                seq: next,
                                reason: format!("the log reader returned seq {}", rec.seq),
                            });
                        }
                        next += 1;
                        applier.apply(rec)?;
                    }
                }
            }
            Ok(())
        })?;
    }
    let Applier { set, n, last, .. } = applier;
    if set.full_build {
        if set.spilled {
            set.write_shadow(store, last.max(to))?;
        }
    } else {
        set.commit(store, last.max(to))?;
    }
    progress(n);
    Ok(n)
}

/// A reader thread's part of [`run`]: reads and decodes `from..=to` in chunks. Returns false
/// (the reader should stop) after an error, which is sent after the events before it, or
/// when the receiver is gone.
fn read_decoded(
    store: &Store,
    from: u64,
    to: u64,
    upcasters: &Upcasters,
    tx: &std::sync::mpsc::SyncSender<Result<Vec<Recorded>>>,
) -> bool {
    let mut chunk = Vec::with_capacity(READ_CHUNK);
    for se in store.read_log(from, Some(to)) {
        match se
            .map_err(ProjectionError::from)
            .and_then(|se| decode_for_views(&se, upcasters))
        {
            Ok(rec) => chunk.push(rec),
            Err(e) => {
                if !chunk.is_empty() && tx.send(Ok(chunk)).is_err() {
                    return false;
                }
                let _ = tx.send(Err(e));
                return false;
            }
        }
        if chunk.len() == READ_CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(READ_CHUNK));
            if tx.send(Ok(full)).is_err() {
                return false;
            }
        }
    }
    chunk.is_empty() || tx.send(Ok(chunk)).is_ok()
}

/// The applying side of [`run`]: applies events in order and commits every `batch`.
struct Applier<'a, 'e> {
    set: &'a mut ViewSet,
    env: &'a Env<'e>,
    store: &'a Store,
    batch: u64,
    progress: &'a dyn Fn(u64),
    n: u64,
    last: u64,
}

impl Applier<'_, '_> {
    fn apply(&mut self, rec: Recorded) -> Result<()> {
        self.set.apply(&rec, self.env)?;
        self.n += 1;
        self.last = rec.seq;
        if self.set.full_build {
            if self.n % SHADOW_CHECK_EVENTS == 0 && self.set.approx_bytes() > self.set.row_budget {
                self.set.spilled = true;
                self.set.write_shadow(self.store, self.last)?;
            }
            if self.n % self.batch == 0 {
                (self.progress)(self.n);
            }
        } else if self.n % self.batch == 0 {
            self.set.commit(self.store, self.last)?;
            (self.progress)(self.n);
        }
        Ok(())
    }
}
