//! Validating events in order against what is already known (the store, through
//! [`Context`]) plus the earlier events of the same batch.

use compact_str::CompactString;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use crate::error::DomainError;
use crate::event::{apply_changes, Encoded, Event};
use crate::fold::fold_stream;
use crate::state::{decide, evolve, evolve_in_place, CommitmentState};
use crate::values::{EventId, Slug};

/// What kind of subject an id names (ids are unique across kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    /// Registered by `SourceRegistered`.
    Source,
    /// Opened by `CallHeld`.
    Call,
    /// Opened by `AgreementSigned`.
    Document,
    /// Opened by `ConsultationAgreed` / `InvitationExtended`.
    Commitment,
}

impl SubjectKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Source => "source",
            SubjectKind::Call => "call",
            SubjectKind::Document => "document",
            SubjectKind::Commitment => "commitment",
        }
    }
    /// The kind an event opens, if it opens a subject.
    pub fn opened_by(event: &Event) -> Option<SubjectKind> {
        match event {
            Event::SourceRegistered(_) => Some(SubjectKind::Source),
            Event::CallHeld(_) => Some(SubjectKind::Call),
            Event::AgreementSigned(_) => Some(SubjectKind::Document),
            Event::ConsultationAgreed(_) | Event::InvitationExtended(_) => {
                Some(SubjectKind::Commitment)
            }
            _ => None,
        }
    }
}

/// What the validator needs to know about the store. Implemented by the projection crate
/// over the store and its views, and by an in-memory model in tests. A failure to read is
/// an error ([`DomainError::Unavailable`]), never an answer: "could not read" must not
/// become "unknown commitment".
pub trait Context {
    /// The kind of subject `id` names, if it exists.
    fn subject_kind(&self, id: &str) -> Result<Option<SubjectKind>, DomainError>;
    /// The current state of a commitment.
    fn commitment(&self, id: &str) -> Result<Option<CommitmentState>, DomainError>;
    /// A stored event by id, with its stream.
    fn event(&self, id: &EventId) -> Result<Option<(String, Event)>, DomainError>;
    /// All stored events of a stream, in order (used only for corrections and retractions).
    fn stream_events(&self, stream: &str) -> Result<Vec<Event>, DomainError>;
}

/// The verdict on one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Append it to this stream.
    Append {
        /// The stream (subject id; for corrections and retractions, the target's stream).
        stream: String,
    },
    /// The same event (same id, same content) is already stored or earlier in the batch: a
    /// no-op.
    Duplicate,
}

/// One accepted event of the batch: its id, stream, type and canonical body.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The event id.
    pub event_id: EventId,
    /// Its stream.
    pub stream: String,
    /// Its type.
    pub type_name: &'static str,
    /// Its canonical JSON (what the store keeps).
    pub body: Vec<u8>,
}

/// Validates events in order. Keeps compact state (subject kinds, commitment states) and the
/// canonical JSON body of each accepted event, which is also what gets appended (handed over
/// by [`Validator::into_accepted`]): the batch is held once, as bytes, never as typed events.
#[derive(Debug)]
pub struct Validator<'c, C: Context> {
    ctx: &'c C,
    // Keys are inline strings (ids are almost all under 24 bytes): each event probes these
    // maps, and a `String` key sent every probe to a heap string of some earlier event, a
    // cache miss (the key comparisons were ~5 % of a 100k import's samples).
    subjects: HashMap<CompactString, SubjectKind>,
    states: HashMap<CompactString, Option<CommitmentState>>,
    accepted: Vec<Accepted>,
    by_id: HashMap<EventId, usize>,
    by_stream: HashMap<CompactString, Vec<usize>>,
    retracted: HashSet<EventId>,
}

impl<'c, C: Context> Validator<'c, C> {
    /// A validator over `ctx`.
    pub fn new(ctx: &'c C) -> Self {
        Validator {
            ctx,
            subjects: HashMap::new(),
            states: HashMap::new(),
            accepted: Vec::new(),
            by_id: HashMap::new(),
            by_stream: HashMap::new(),
            retracted: HashSet::new(),
        }
    }

    fn kind(&self, id: &str) -> Result<Option<SubjectKind>, DomainError> {
        match self.subjects.get(id) {
            Some(k) => Ok(Some(*k)),
            None => self.ctx.subject_kind(id),
        }
    }

    fn require(&self, id: &Slug, want: SubjectKind, field: &str) -> Result<(), DomainError> {
        self.require_with(id, want, || field.to_owned())
    }

    /// [`Self::require`] with the field's name made only for an error.
    fn require_with(
        &self,
        id: &Slug,
        want: SubjectKind,
        field: impl Fn() -> String,
    ) -> Result<(), DomainError> {
        match self.kind(id.as_str())? {
            Some(k) if k == want => Ok(()),
            Some(k) => Err(DomainError::Reference {
                field: field(),
                reason: format!("`{id}` is a {}, not a {}", k.as_str(), want.as_str()),
            }),
            None => Err(DomainError::Reference {
                field: field(),
                reason: format!("unknown {} `{id}`", want.as_str()),
            }),
        }
    }

    fn batch_event(&self, i: usize) -> Option<Event> {
        let a = self.accepted.get(i)?;
        Event::from_json(&a.body).ok()
    }

    fn stream_events(&self, stream: &str) -> Result<Vec<Event>, DomainError> {
        let mut v = self.ctx.stream_events(stream)?;
        if let Some(idx) = self.by_stream.get(stream) {
            v.extend(idx.iter().filter_map(|&i| self.batch_event(i)));
        }
        Ok(v)
    }

    fn find_event(&self, id: &EventId) -> Result<Option<(String, Event)>, DomainError> {
        if let Some(&i) = self.by_id.get(id) {
            let stream = self.accepted[i].stream.clone();
            return Ok(self.batch_event(i).map(|e| (stream, e)));
        }
        self.ctx.event(id)
    }

    /// The accepted events, in order.
    pub fn accepted(&self) -> &[Accepted] {
        &self.accepted
    }

    /// The accepted events with their bodies, in order.
    pub fn into_accepted(self) -> Vec<Accepted> {
        self.accepted
    }

    /// Checks one event (which must carry its `event_id` and `recorded_by` already) against
    /// everything known so far and, if accepted, remembers its effects for later events.
    pub fn check(&mut self, event: &Event) -> Result<Verdict, DomainError> {
        self.check_with_body(event, canonical(event)?)
    }

    /// [`Validator::check`] for an event whose canonical JSON may have been encoded ahead
    /// (on a decoding thread): the body is used as it is instead of being encoded again.
    pub fn check_encoded(&mut self, event: Encoded) -> Result<(Box<Event>, Verdict), DomainError> {
        let (event, ahead) = event.into_parts();
        let body = match ahead {
            Some(b) => b,
            None => canonical(&event)?,
        };
        let verdict = self.check_with_body(&event, body)?;
        Ok((event, verdict))
    }

    fn check_with_body(&mut self, event: &Event, body: Vec<u8>) -> Result<Verdict, DomainError> {
        let id = event
            .event_id()
            .ok_or_else(|| DomainError::field("event_id", "the event has no event_id"))?;
        if let Some(&i) = self.by_id.get(&id) {
            return if self.accepted[i].body == body {
                Ok(Verdict::Duplicate)
            } else {
                Err(DomainError::field(
                    "event_id",
                    format!("event_id {id} is used earlier in this batch with different content"),
                ))
            };
        }
        if let Some((_, stored)) = self.ctx.event(&id)? {
            let stored_body = canonical(&stored)?;
            return if stored_body == body {
                Ok(Verdict::Duplicate)
            } else {
                Err(DomainError::field(
                    "event_id",
                    format!("event_id {id} is already stored with different content"),
                ))
            };
        }
        self.check_evidence(event)?;
        let stream = match event {
            Event::EventCorrected(_) | Event::EventRetracted(_) => self.check_meta(event)?,
            _ => self.check_world(event)?,
        };
        let i = self.accepted.len();
        self.accepted.push(Accepted {
            event_id: id,
            stream: stream.clone(),
            type_name: event.type_name(),
            body,
        });
        self.by_id.insert(id, i);
        match self.by_stream.get_mut(stream.as_str()) {
            Some(v) => v.push(i),
            None => {
                self.by_stream
                    .insert(CompactString::from(stream.as_str()), vec![i]);
            }
        }
        Ok(Verdict::Append { stream })
    }

    /// Evidence must name registered sources.
    fn check_evidence(&self, event: &Event) -> Result<(), DomainError> {
        for (i, ev) in event.common().evidence.iter().enumerate() {
            self.require_with(&ev.source_id, SubjectKind::Source, || {
                format!("evidence[{i}].source_id")
            })?;
        }
        Ok(())
    }

    /// `origin`, `reviewed_in`, `by_call` name calls; `RoadmapReviewed` a document.
    fn check_references(&self, event: &Event) -> Result<(), DomainError> {
        match event {
            Event::RoadmapReviewed(e) => {
                self.require(&e.document_id, SubjectKind::Document, "document_id")?;
                if let Some(c) = &e.reviewed_in {
                    self.require(c, SubjectKind::Call, "reviewed_in")?;
                }
            }
            Event::ConsultationAgreed(e) => {
                if let Some(c) = &e.origin {
                    self.require(c, SubjectKind::Call, "origin")?;
                }
            }
            Event::InvitationExtended(e) => {
                if let Some(c) = &e.origin {
                    self.require(c, SubjectKind::Call, "origin")?;
                }
            }
            Event::CommitmentFulfilled(e) => {
                if let Some(c) = &e.by_call {
                    self.require(c, SubjectKind::Call, "by_call")?;
                }
            }
            Event::CommitmentReaffirmed(e) => {
                if let Some(c) = &e.origin {
                    self.require(c, SubjectKind::Call, "origin")?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check_world(&mut self, event: &Event) -> Result<String, DomainError> {
        let subject = event
            .subject()
            .ok_or_else(|| DomainError::field("type", "event has no subject"))?
            .clone();
        let field = event.subject_field().unwrap_or("id");
        self.check_references(event)?;
        if let Some(kind) = SubjectKind::opened_by(event) {
            if let Some(existing) = self.kind(subject.as_str())? {
                return Err(DomainError::field(
                    field,
                    format!(
                        "`{subject}` is already registered (as a {}); ids are unique across sources, calls, documents and commitments",
                        existing.as_str()
                    ),
                ));
            }
            self.subjects
                .insert(CompactString::from(subject.as_str()), kind);
        } else if event.commitment_id().is_some() {
            match self.kind(subject.as_str())? {
                Some(SubjectKind::Commitment) => {}
                Some(k) => {
                    return Err(DomainError::Reference {
                        field: field.into(),
                        reason: format!("`{subject}` is a {}, not a commitment", k.as_str()),
                    })
                }
                None => {
                    return Err(DomainError::Reference {
                        field: field.into(),
                        reason: format!(
                            "unknown commitment `{subject}`: {} needs an opened commitment",
                            event.type_name()
                        ),
                    })
                }
            }
        }
        if event.commitment_id().is_some() {
            // A commitment the batch has seen changes in place; one it has not is read once.
            if let Some(slot) = self.states.get_mut(subject.as_str()) {
                decide(slot.as_ref(), event)?;
                match slot {
                    Some(state) => evolve_in_place(state, event),
                    None => *slot = evolve(None, event),
                }
            } else {
                let state = self.ctx.commitment(subject.as_str())?;
                decide(state.as_ref(), event)?;
                self.states
                    .insert(CompactString::from(subject.as_str()), evolve(state, event));
            }
        }
        Ok(subject.to_string())
    }

    fn check_meta(&mut self, event: &Event) -> Result<String, DomainError> {
        let target_id = match event {
            Event::EventCorrected(e) => e.target_event_id,
            Event::EventRetracted(e) => e.target_event_id,
            _ => return Err(DomainError::field("type", "not a correction or retraction")),
        };
        let Some((stream, target)) = self.find_event(&target_id)? else {
            let reason = format!("unknown event {target_id}");
            return Err(DomainError::Reference {
                field: "target_event_id".into(),
                reason,
            });
        };
        if matches!(target, Event::EventRetracted(_)) {
            return Err(DomainError::field(
                "target_event_id",
                format!("event {target_id} is an EventRetracted, which cannot be corrected or retracted"),
            ));
        }
        let mut events = self.stream_events(&stream)?;
        let refs: Vec<&Event> = events.iter().collect();
        let fold = fold_stream(&refs);
        let pos = events.iter().position(|e| e.event_id() == Some(target_id));
        let current = pos.and_then(|p| fold.effective.get(p).cloned().flatten());
        if self.retracted.contains(&target_id)
            || fold
                .steps
                .get(pos.unwrap_or(usize::MAX))
                .is_some_and(|s| matches!(s.effect, crate::fold::Effect::Retracted(_)))
        {
            return Err(DomainError::field(
                "target_event_id",
                format!("event {target_id} is already retracted"),
            ));
        }
        if let Event::EventCorrected(c) = event {
            let base = match (&target, current) {
                (Event::EventCorrected(_), _) => {
                    return Err(DomainError::field(
                        "target_event_id",
                        "a correction cannot be corrected; retract it and record a new one",
                    ))
                }
                (_, Some(cur)) => cur,
                // Invalidated by the refold (so not in `effective`): still patched by the
                // corrections the fold applied to it, in order.
                (t, None) => {
                    let applied = pos
                        .and_then(|p| fold.steps.get(p))
                        .map(|s| s.corrected_by.as_slice())
                        .unwrap_or(&[]);
                    let mut cur = t.clone();
                    for cid in applied {
                        if let Some(Event::EventCorrected(ec)) =
                            events.iter().find(|e| e.event_id().as_ref() == Some(cid))
                        {
                            cur = apply_changes(&cur, &ec.changes)?;
                        }
                    }
                    cur
                }
            };
            let patched = apply_changes(&base, &c.changes)?;
            // The patched target's references must still exist.
            self.check_evidence(&patched)
                .and_then(|()| self.check_references(&patched))
                .map_err(|e| match e {
                    DomainError::Reference { field, reason } => DomainError::Reference {
                        field: "changes".into(),
                        reason: format!("the patched target is invalid: field `{field}`: {reason}"),
                    },
                    other => other,
                })?;
        } else {
            self.retracted.insert(target_id);
        }
        if self.kind(&stream)? == Some(SubjectKind::Commitment) {
            events.push(event.clone());
            let refs: Vec<&Event> = events.iter().collect();
            let state = fold_stream(&refs).state;
            self.states
                .insert(CompactString::from(stream.as_str()), state);
        }
        Ok(stream)
    }
}

/// The canonical JSON body of `event` (what the store keeps and duplicates are compared by).
fn canonical(event: &Event) -> Result<Vec<u8>, DomainError> {
    event
        .to_json()
        .map_err(|e| DomainError::Malformed(e.to_string()))
}
