//! Shared helpers for the domain crate's integration tests: an in-memory model store that
//! implements [`Context`], and small builders for events as JSON.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use commitments_domain::{
    fold_stream, CommitmentState, Context, DomainError, Event, EventId, SubjectKind, Validator,
    Verdict,
};
use serde_json::{json, Value};

/// A model store: events by stream, in append order.
#[derive(Debug, Default, Clone)]
pub struct Model {
    /// `(stream, event)` in global append order.
    pub log: Vec<(String, Event)>,
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    /// Validates `events` as one batch over this store and, when every event is accepted,
    /// appends the `Append` ones. Returns the verdicts, or the first error with its index.
    pub fn import(&mut self, events: &[Event]) -> Result<Vec<Verdict>, (usize, DomainError)> {
        let verdicts = {
            let mut v = Validator::new(&*self);
            let mut out = Vec::new();
            for (i, e) in events.iter().enumerate() {
                out.push(v.check(e).map_err(|err| (i, err))?);
            }
            out
        };
        for (e, verdict) in events.iter().zip(&verdicts) {
            if let Verdict::Append { stream } = verdict {
                self.log.push((stream.clone(), e.clone()));
            }
        }
        Ok(verdicts)
    }

    /// Like [`Model::import`], panicking on a rejection.
    pub fn import_ok(&mut self, events: &[Event]) -> Vec<Verdict> {
        match self.import(events) {
            Ok(v) => v,
            Err((i, e)) => panic!("event {i} rejected: {e}"),
        }
    }

    /// Validates one more event over this store (without appending it).
    pub fn check(&self, event: &Event) -> Result<Verdict, DomainError> {
        Validator::new(self).check(event)
    }

    pub fn stream(&self, stream: &str) -> Vec<Event> {
        self.log
            .iter()
            .filter(|(s, _)| s == stream)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

impl Context for Model {
    fn subject_kind(&self, id: &str) -> Result<Option<SubjectKind>, DomainError> {
        Ok(self.kind_of(id))
    }

    fn commitment(&self, id: &str) -> Result<Option<CommitmentState>, DomainError> {
        Ok(Model::commitment(self, id))
    }

    fn event(&self, id: &EventId) -> Result<Option<(String, Event)>, DomainError> {
        Ok(self
            .log
            .iter()
            .find(|(_, e)| e.event_id().as_ref() == Some(id))
            .cloned())
    }

    fn stream_events(&self, stream: &str) -> Result<Vec<Event>, DomainError> {
        Ok(self.stream(stream))
    }
}

impl Model {
    /// The folded state of commitment `id` (the model cannot fail to read).
    pub fn commitment(&self, id: &str) -> Option<CommitmentState> {
        if self.kind_of(id) != Some(SubjectKind::Commitment) {
            return None;
        }
        let events = self.stream(id);
        let refs: Vec<&Event> = events.iter().collect();
        fold_stream(&refs).state
    }

    fn kind_of(&self, id: &str) -> Option<SubjectKind> {
        self.log.iter().find_map(|(_, e)| {
            let kind = SubjectKind::opened_by(e)?;
            (e.subject().map(|s| s.as_str()) == Some(id)).then_some(kind)
        })
    }
}

/// A deterministic event id: `0190f3b2-5c1e-7a4b-9d7e-<n as 12 digits>`.
pub fn eid(n: u64) -> String {
    format!("0190f3b2-5c1e-7a4b-9d7e-{n:012}")
}

pub fn event_id(n: u64) -> EventId {
    EventId::parse(&eid(n)).unwrap()
}

/// Decodes a JSON value as an input line, panicking with the error on failure.
pub fn ev(v: Value) -> Event {
    let bytes = serde_json::to_vec(&v).unwrap();
    match Event::from_json(&bytes) {
        Ok(e) => e,
        Err(err) => panic!("{err}\n in {v}"),
    }
}

/// Decodes a JSON value as an input line, expecting a rejection.
pub fn reject(v: Value) -> DomainError {
    let bytes = serde_json::to_vec(&v).unwrap();
    match Event::from_json(&bytes) {
        Ok(e) => panic!("expected a rejection, decoded {e:?}\n from {v}"),
        Err(err) => err,
    }
}

pub const SRC: &str = "src-test";
pub const CALL: &str = "call-test";

pub fn evidence() -> Value {
    json!([{"source_id": SRC, "locator": "paragraph 1"}])
}

pub fn source(n: u64, source_id: &str) -> Event {
    ev(json!({
        "type": "SourceRegistered", "event_id": eid(n), "source_id": source_id,
        "url": "https://example.invalid/a", "title": "A readout", "language": "en"
    }))
}

pub fn call(n: u64, call_id: &str) -> Event {
    ev(json!({
        "type": "CallHeld", "event_id": eid(n), "occurred": "2024-01-20",
        "call_id": call_id, "mode": "phone",
        "participants": [{"country": "BLR"}, {"country": "BGD"}],
        "evidence": evidence()
    }))
}

/// `ConsultationAgreed` opening `cid` as `open`, due `2024-02` (explicit).
pub fn agreed(n: u64, cid: &str) -> Event {
    ev(json!({
        "type": "ConsultationAgreed", "event_id": eid(n), "occurred": "2024-01-20",
        "commitment_id": cid, "kind": "political_consultations", "parties": ["BLR", "BGD"],
        "strength": "agreed", "description": "Hold consultations",
        "due": {"edtf": "2024-02", "basis": "explicit"},
        "evidence": evidence()
    }))
}

/// `InvitationExtended` opening `cid` as `pending`, no proposed date.
pub fn invited(n: u64, cid: &str) -> Event {
    ev(json!({
        "type": "InvitationExtended", "event_id": eid(n), "occurred": "2024-01-20",
        "commitment_id": cid, "inviter": {"country": "BLR"}, "invitee": {"country": "ERI"},
        "visit_type": "official", "destination": "BLR",
        "evidence": evidence()
    }))
}

/// A lifecycle event of `type_name` for `cid` with extra payload fields.
pub fn lifecycle(n: u64, type_name: &str, cid: &str, extra: Value) -> Event {
    let mut v = json!({
        "type": type_name, "event_id": eid(n), "occurred": "2024-03-01",
        "commitment_id": cid, "evidence": evidence()
    });
    if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
        m.extend(x);
    }
    ev(v)
}

pub fn accepted(n: u64, cid: &str) -> Event {
    lifecycle(n, "InvitationAccepted", cid, json!({}))
}
pub fn declined(n: u64, cid: &str) -> Event {
    lifecycle(n, "InvitationDeclined", cid, json!({}))
}
pub fn scheduled(n: u64, cid: &str, edtf: &str) -> Event {
    lifecycle(
        n,
        "MeetingScheduled",
        cid,
        json!({"scheduled_for": {"edtf": edtf, "basis": "explicit"}}),
    )
}
pub fn postponed(n: u64, cid: &str) -> Event {
    lifecycle(n, "CommitmentPostponed", cid, json!({}))
}
pub fn fulfilled(n: u64, cid: &str, extent: &str) -> Event {
    lifecycle(n, "CommitmentFulfilled", cid, json!({"extent": extent}))
}
pub fn cancelled(n: u64, cid: &str) -> Event {
    lifecycle(n, "CommitmentCancelled", cid, json!({}))
}
pub fn reaffirmed(n: u64, cid: &str) -> Event {
    lifecycle(n, "CommitmentReaffirmed", cid, json!({}))
}
pub fn assessed(n: u64, cid: &str, rating: &str) -> Event {
    lifecycle(
        n,
        "CommitmentAssessed",
        cid,
        json!({"as_of": "2024-03-01", "rating": rating, "rationale": "test"}),
    )
}

pub fn corrected(n: u64, target: u64, changes: Value) -> Event {
    ev(json!({
        "type": "EventCorrected", "event_id": eid(n), "target_event_id": eid(target),
        "changes": changes, "reason": "coding_error"
    }))
}

pub fn retracted(n: u64, target: u64) -> Event {
    ev(json!({
        "type": "EventRetracted", "event_id": eid(n), "target_event_id": eid(target),
        "reason": "miscoded"
    }))
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The seed story's input lines.
pub fn seed_lines() -> Vec<String> {
    let path = workspace_root().join("docs/examples/aleinik-2024-01-20.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// The seed story decoded.
pub fn seed_events() -> Vec<Event> {
    seed_lines()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            Event::from_json(l.as_bytes()).unwrap_or_else(|e| panic!("seed line {}: {e}", i + 1))
        })
        .collect()
}

/// Folds one stream of a model store.
pub fn fold_of(model: &Model, stream: &str) -> commitments_domain::StreamFold {
    let events = model.stream(stream);
    let refs: Vec<&Event> = events.iter().collect();
    fold_stream(&refs)
}
