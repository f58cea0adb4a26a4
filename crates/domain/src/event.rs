//! The event types of the catalogue (section 3), their JSON form and decoding.
//!
//! Each event type is a flat struct holding the common fields and its payload, so that
//! `deny_unknown_fields` can name any field the catalogue does not know. Decoding reads the
//! `type` first (a cheap probe), then decodes the one struct it names: no buffering of the
//! whole object as serde's internally tagged enums do. On error it decodes once more with
//! `serde_path_to_error` to name the field.

use std::borrow::Cow;
use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::edtf::{DueSpec, Edtf};
use crate::error::DomainError;
use crate::values::*;

/// Fields the store adds; an input line that sets one is rejected (only `restore` takes them).
pub const STORE_FIELDS: &[&str] = &[
    "seq",
    "stream",
    "stream_version",
    "recorded_at",
    "schema_version",
    "prev_hash",
    "hash",
];

/// Placeholder for the `type` key inside a flat event struct: the type is read by the probe and
/// written by [`Event`]'s serialiser, so the struct only has to accept the key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tag;
impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::IgnoredAny::deserialize(d).map(|_| Tag)
    }
}

/// Borrowed view of the fields every event has.
#[derive(Debug, Clone, Copy)]
pub struct Common<'a> {
    /// Identity (absent on input until the store gives one).
    pub event_id: Option<&'a EventId>,
    /// Valid time.
    pub occurred: Option<&'a Edtf>,
    /// Why the date is uncertain or inferred.
    pub occurred_note: Option<&'a str>,
    /// Who recorded it.
    pub recorded_by: Option<&'a str>,
    /// Where the fact comes from.
    pub evidence: &'a [Evidence],
    /// Admiralty grade.
    pub confidence: Option<&'a Confidence>,
    /// Political event codes.
    pub coding: Option<&'a Coding>,
    /// Analyst's note.
    pub note: Option<&'a str>,
}

macro_rules! define_events {
    ($(
        $(#[doc = $doc:literal])*
        $Name:ident (world = $world:literal, subject = $subject:tt) {
            $( $(#[$fm:meta])* $field:ident : $fty:ty ),* $(,)?
        }
    )*) => {
        $(
            $(#[doc = $doc])*
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            #[serde(deny_unknown_fields)]
            pub struct $Name {
                #[serde(rename = "type", default, skip_serializing)]
                tag: Tag,
                /// Identity: a UUID (v7 when the store generates it).
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub event_id: Option<EventId>,
                /// When it happened in the world (EDTF Level 1).
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub occurred: Option<Edtf>,
                /// Why the date is uncertain or inferred.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub occurred_note: Option<String>,
                /// Who recorded it.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub recorded_by: Option<String>,
                $( $(#[$fm])* pub $field: $fty, )*
                /// Where the fact comes from (at least one for world events).
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub evidence: Option<Vec<Evidence>>,
                /// Admiralty grade such as `F3`.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub confidence: Option<Confidence>,
                /// Political event codes, kept as given.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub coding: Option<Coding>,
                /// Free analyst note.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub note: Option<String>,
            }
        )*

        /// Every event of the catalogue.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum Event {
            $( $(#[doc = $doc])* $Name($Name), )*
        }

        /// The type names, in the catalogue's order.
        pub const EVENT_TYPES: &[&str] = &[$(stringify!($Name)),*];

        impl Event {
            /// The `type` name.
            pub fn type_name(&self) -> &'static str {
                match self { $(Event::$Name(_) => stringify!($Name),)* }
            }
            /// True for world events (all but `SourceRegistered`, `EventCorrected`,
            /// `EventRetracted`): they need `occurred` and evidence.
            pub fn is_world(&self) -> bool {
                match self { $(Event::$Name(_) => $world,)* }
            }
            /// The fields every event has.
            pub fn common(&self) -> Common<'_> {
                match self { $(Event::$Name(e) => Common {
                    event_id: e.event_id.as_ref(),
                    occurred: e.occurred.as_ref(),
                    occurred_note: e.occurred_note.as_deref(),
                    recorded_by: e.recorded_by.as_deref(),
                    evidence: e.evidence.as_deref().unwrap_or(&[]),
                    confidence: e.confidence.as_ref(),
                    coding: e.coding.as_ref(),
                    note: e.note.as_deref(),
                },)* }
            }
            /// Sets the event id.
            pub fn set_event_id(&mut self, id: EventId) {
                match self { $(Event::$Name(e) => e.event_id = Some(id),)* }
            }
            /// Sets `recorded_by`.
            pub fn set_recorded_by(&mut self, who: String) {
                match self { $(Event::$Name(e) => e.recorded_by = Some(who),)* }
            }
            /// The subject id (its stream), when the event names it itself. `EventCorrected`
            /// and `EventRetracted` take their target's stream, which only the log knows.
            pub fn subject(&self) -> Option<&Slug> {
                match self { $(Event::$Name(e) => define_events!(@subject e $subject),)* }
            }
            /// The name of the subject field (`call_id`, `commitment_id` …).
            pub fn subject_field(&self) -> Option<&'static str> {
                match self { $(Event::$Name(_) => define_events!(@subject_field $subject),)* }
            }
            fn decode_from<'de, R: serde_json::de::Read<'de>>(
                type_name: &str,
                mut de: serde_json::Deserializer<R>,
            ) -> Option<Result<Event, serde_json::Error>> {
                let ev = match type_name {
                    $(stringify!($Name) => $Name::deserialize(&mut de).map(Event::$Name),)*
                    _ => return None,
                };
                // Nothing but whitespace may follow the object.
                Some(ev.and_then(|ev| de.end().map(|()| ev)))
            }
            fn decode_with_path(type_name: &str, bytes: &[u8]) -> Option<Result<Event, serde_path_to_error::Error<serde_json::Error>>> {
                match type_name {
                    $(stringify!($Name) => {
                        let mut de = serde_json::Deserializer::from_slice(bytes);
                        Some(serde_path_to_error::deserialize::<_, $Name>(&mut de).map(Event::$Name))
                    })*
                    _ => None,
                }
            }
            fn decode_value(type_name: &str, v: Value) -> Option<Result<Event, serde_path_to_error::Error<serde_json::Error>>> {
                match type_name {
                    $(stringify!($Name) => Some(serde_path_to_error::deserialize::<_, $Name>(v).map(Event::$Name)),)*
                    _ => None,
                }
            }
            fn write_fields(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
                match self { $(Event::$Name(e) => serde_json::to_writer(out, e),)* }
            }
        }
    };
    (@subject $e:ident none) => {{ let _ = $e; None }};
    (@subject $e:ident $f:ident) => { Some(&$e.$f) };
    (@subject_field none) => { None };
    (@subject_field $f:ident) => { Some(stringify!($f)) };
}

define_events! {
    /// A source (article, readout) is registered so evidence can cite it.
    SourceRegistered (world = false, subject = source_id) {
        /// The source id.
        source_id: Slug,
        /// Where it is.
        url: String,
        /// Its title.
        title: String,
        /// Its language (BCP 47).
        language: String,
        /// Who published it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        publisher: Option<String>,
        /// When it was published (EDTF).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        published: Option<Edtf>,
        /// When it was retrieved.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retrieved_at: Option<String>,
    }
    /// A bilateral contact (call or meeting) was held.
    CallHeld (world = true, subject = call_id) {
        /// The call id.
        call_id: Slug,
        /// How it was held.
        mode: CallMode,
        /// Who took part (at least two, from at least two countries).
        participants: Vec<Participant>,
        /// Topics discussed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topics: Option<Vec<String>>,
        /// Where.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        location: Option<Place>,
    }
    /// A document (roadmap, agreement, MoU …) was signed.
    AgreementSigned (world = true, subject = document_id) {
        /// The document id.
        document_id: Slug,
        /// Its title.
        title: String,
        /// Its kind.
        doc_type: DocType,
        /// Its parties (at least two distinct countries).
        parties: Vec<Country>,
    }
    /// A signed roadmap was reviewed.
    RoadmapReviewed (world = true, subject = document_id) {
        /// The document reviewed (must exist).
        document_id: Slug,
        /// Who reviewed it (at least one country).
        parties: Vec<Country>,
        /// What was said.
        summary: String,
        /// The call it was reviewed in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reviewed_in: Option<Slug>,
        /// Progress reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<String>,
    }
    /// The sides agreed to do something (consultations, a meeting, events): opens a commitment.
    ConsultationAgreed (world = true, subject = commitment_id) {
        /// The commitment id.
        commitment_id: Slug,
        /// What it is about.
        kind: CommitmentKind,
        /// The sides (at least two distinct countries).
        parties: Vec<Country>,
        /// How firmly it was stated.
        strength: Strength,
        /// What was promised.
        description: String,
        /// By when.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due: Option<DueSpec>,
        /// Where.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        location: Option<Place>,
        /// The call it was agreed in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Slug>,
    }
    /// One side invited the other to visit: opens a `visit` commitment, `pending`.
    InvitationExtended (world = true, subject = commitment_id) {
        /// The commitment id.
        commitment_id: Slug,
        /// Who invited.
        inviter: Participant,
        /// Who was invited.
        invitee: Participant,
        /// The kind of visit.
        visit_type: VisitType,
        /// The country to be visited.
        destination: Country,
        /// A proposed date.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proposed: Option<DueSpec>,
        /// The call it was extended in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Slug>,
    }
    /// An invitation was accepted: `pending` → `open`.
    InvitationAccepted (world = true, subject = commitment_id) {
        /// The commitment id.
        commitment_id: Slug,
        /// Who accepted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accepted_by: Option<Participant>,
        /// A proposed date.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proposed: Option<DueSpec>,
    }
    /// An invitation was declined: `pending` → `declined`.
    InvitationDeclined (world = true, subject = commitment_id) {
        /// The commitment id.
        commitment_id: Slug,
        /// Who declined.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        declined_by: Option<Participant>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    }
    /// A date was set (or reset) for the meeting: → `scheduled`.
    MeetingScheduled (world = true, subject = commitment_id) {
        /// The commitment id.
        commitment_id: Slug,
        /// When.
        scheduled_for: DueSpec,
        /// Where.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        location: Option<Place>,
        /// Format (in person, video …), as reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<String>,
    }
    /// The commitment was put off: → `postponed`.
    CommitmentPostponed (world = true, subject = commitment_id) {
        /// The commitment id.
        commitment_id: Slug,
        /// The new due; without it the due becomes open-ended from this event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_due: Option<DueSpec>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    }
    /// The commitment was called off: → `cancelled`.
    CommitmentCancelled (world = true, subject = commitment_id) {
        /// The commitment id.
        commitment_id: Slug,
        /// Which side cancelled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cancelled_by: Option<Country>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    }
    /// The commitment was carried out: → `fulfilled` or `partially_fulfilled`.
    CommitmentFulfilled (world = true, subject = commitment_id) {
        /// The commitment id.
        commitment_id: Slug,
        /// Fully or partly.
        extent: Extent,
        /// The call in which it was carried out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by_call: Option<Slug>,
        /// What happened.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
    }
    /// The commitment was restated: `lapsed` → `open`; a `new_due` replaces the due.
    CommitmentReaffirmed (world = true, subject = commitment_id) {
        /// The commitment id.
        commitment_id: Slug,
        /// A new due.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_due: Option<DueSpec>,
        /// The call it was restated in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Slug>,
    }
    /// An analyst's assessment: `lapsed` → `lapsed`; `stalled` / `on_track` set the flag.
    CommitmentAssessed (world = true, subject = commitment_id) {
        /// The commitment id.
        commitment_id: Slug,
        /// The date the assessment speaks for.
        as_of: Day,
        /// The rating.
        rating: Rating,
        /// Why.
        rationale: String,
    }
    /// A correction of an earlier event (JSON Pointer patches whose `old` must match).
    EventCorrected (world = false, subject = none) {
        /// The event corrected.
        target_event_id: EventId,
        /// The changes.
        changes: Vec<Change>,
        /// Why.
        reason: CorrectionReason,
    }
    /// A retraction of an earlier event: views ignore it.
    EventRetracted (world = false, subject = none) {
        /// The event retracted.
        target_event_id: EventId,
        /// Why.
        reason: RetractionReason,
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes = self.to_json().map_err(serde::ser::Error::custom)?;
        let v: Value = serde_json::from_slice(&bytes).map_err(serde::ser::Error::custom)?;
        v.serialize(s)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_json() {
            Ok(b) => f.write_str(&String::from_utf8_lossy(&b)),
            Err(_) => write!(f, "{}", self.type_name()),
        }
    }
}

/// The schema version of each type today (every type is at 1).
pub fn current_schema_version(_type_name: &str) -> u32 {
    1
}

/// A rewrite of stored JSON from an older schema version to the next one, applied before
/// typed decoding.
pub type UpcastFn = fn(Value) -> Result<Value, String>;

/// The upcasting hook: rules `(type, from_version) → rewrite`, chained until the current
/// version. Empty today; a schema change adds a rule here and bumps
/// [`current_schema_version`].
#[derive(Debug, Clone, Default)]
pub struct Upcasters {
    rules: Vec<(&'static str, u32, UpcastFn)>,
}

impl Upcasters {
    /// The rules this build knows.
    pub fn standard() -> Upcasters {
        Upcasters::default()
    }
    /// Adds a rule rewriting `type_name` JSON at `from` to `from + 1`.
    pub fn with_rule(mut self, type_name: &'static str, from: u32, f: UpcastFn) -> Upcasters {
        self.rules.push((type_name, from, f));
        self
    }
    /// Rewrites `v` from version `from` up to `to`.
    pub fn upcast(
        &self,
        type_name: &str,
        from: u32,
        to: u32,
        mut v: Value,
    ) -> Result<Value, DomainError> {
        let mut version = from;
        while version < to {
            let rule = self
                .rules
                .iter()
                .find(|(t, f, _)| *t == type_name && *f == version)
                .ok_or_else(|| DomainError::Upcast {
                    event_type: type_name.to_owned(),
                    from: version,
                    reason: format!("no upcaster from version {version}"),
                })?;
            v = (rule.2)(v).map_err(|reason| DomainError::Upcast {
                event_type: type_name.to_owned(),
                from: version,
                reason,
            })?;
            version += 1;
        }
        Ok(v)
    }
}

/// The `type` of a JSON object whose `type` member comes first or last, read from the ends of
/// the bytes without parsing what lies between: canonical bodies start with it, key-sorted
/// lines end with it. `None` when neither end shows a known type; callers then probe the
/// whole object.
///
/// Sound only as a guess that a typed decode confirms: the bytes must start with `{` (so the
/// decode reads a map, never a sequence), a string right after the opening `{` is a key of
/// the top-level object, and so is a string followed by `:`, a string value and the final
/// `}`. The decode rejects a second `type` key as a duplicate field.
fn quick_type(bytes: &[u8]) -> Option<&'static str> {
    let inner = bytes.trim_ascii().strip_prefix(b"{")?.strip_suffix(b"}")?;
    first_member_type(inner).or_else(|| last_member_type(inner))
}

/// `"type" : "Name"` at the start of `inner` (after whitespace).
fn first_member_type(inner: &[u8]) -> Option<&'static str> {
    let rest = inner.trim_ascii_start().strip_prefix(b"\"type\"")?;
    let rest = rest.trim_ascii_start().strip_prefix(b":")?;
    let rest = rest.trim_ascii_start().strip_prefix(b"\"")?;
    let len = rest.iter().position(|&b| b == b'"')?;
    known_type(&rest[..len])
}

/// `"type" : "Name"` at the end of `inner` (before whitespace), preceded by `,` or nothing.
fn last_member_type(inner: &[u8]) -> Option<&'static str> {
    let rest = inner.trim_ascii_end().strip_suffix(b"\"")?;
    let open = rest.iter().rposition(|&b| b == b'"')?;
    let name = &rest[open + 1..];
    let rest = rest[..open].trim_ascii_end().strip_suffix(b":")?;
    let rest = rest.trim_ascii_end().strip_suffix(b"\"type\"")?;
    let before = rest.trim_ascii_end();
    if !(before.is_empty() || before.ends_with(b",")) {
        return None;
    }
    known_type(name)
}

fn known_type(name: &[u8]) -> Option<&'static str> {
    EVENT_TYPES.iter().copied().find(|t| t.as_bytes() == name)
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(rename = "type", borrow, default)]
    t: Option<Cow<'a, str>>,
}

fn probe_type(bytes: &[u8]) -> Result<String, DomainError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<Value>(bytes) {
            Err(e) => Err(DomainError::Malformed(e.to_string())),
            Ok(v) => Err(DomainError::Malformed(format!(
                "expected a JSON object, found {}",
                json_kind(&v)
            ))),
        };
    }
    let probe: Probe<'_> = serde_json::from_slice(bytes).map_err(|e| {
        // Valid JSON whose `type` is not a string: name the field.
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(_)) => DomainError::field("type", "must be a string"),
            _ => DomainError::Malformed(e.to_string()),
        }
    })?;
    match probe.t {
        None => Err(DomainError::field("type", "missing field `type`")),
        Some(t) if EVENT_TYPES.contains(&t.as_ref()) => Ok(t.into_owned()),
        Some(t) => Err(DomainError::UnknownType(t.into_owned())),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Turns a serde error at `path` into a [`DomainError::Field`] that names the field.
fn field_error(path: &str, inner: &serde_json::Error) -> DomainError {
    let msg = inner.to_string();
    // serde_json appends " at line L column C"; the CLI counts lines itself.
    let msg = match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    };
    // serde_path_to_error's path may already end with the offending key (it does for an
    // unknown field); strip it so the key is not named twice (`foo.foo`).
    let parent = |name: &str| -> String {
        if path == name {
            ".".to_owned()
        } else {
            path.strip_suffix(&format!(".{name}"))
                .unwrap_or(path)
                .to_owned()
        }
    };
    let join = |path: &str, field: &str| {
        if path == "." || path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        }
    };
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let path = parent(name);
        let field = join(&path, name);
        let reason = if (path == "." || path.is_empty()) && STORE_FIELDS.contains(&name) {
            format!("`{name}` is added by the store; an input line may not set it (only `restore` accepts it)")
        } else {
            format!("unknown field `{name}`: the catalogue does not name it")
        };
        return DomainError::field(field, reason);
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or("");
        return DomainError::field(join(path, name), format!("missing field `{name}`"));
    }
    let field = if path.is_empty() {
        ".".to_owned()
    } else {
        path.to_owned()
    };
    DomainError::field(field, msg)
}

impl Event {
    /// [`Event::from_json`] for text already checked to be UTF-8 (not checked again).
    pub fn from_json_str(text: &str) -> Result<Event, DomainError> {
        Event::from_line(text.as_bytes(), Some(text))
    }

    /// Decodes one input line (no store fields allowed) and checks the catalogue's rules that
    /// one event can check alone ([`Event::check`]).
    pub fn from_json(bytes: &[u8]) -> Result<Event, DomainError> {
        Event::from_line(bytes, std::str::from_utf8(bytes).ok())
    }

    /// [`Event::from_json`], with `text` the same bytes when they are UTF-8.
    fn from_line(bytes: &[u8], text: Option<&str>) -> Result<Event, DomainError> {
        if let Some(Some(Ok(ev))) = quick_type(bytes).map(|t| Event::decode_as(t, bytes, text)) {
            ev.check()?;
            return Ok(ev);
        }
        let t = probe_type(bytes)?;
        let ev = match Event::decode_as(&t, bytes, text) {
            Some(Ok(ev)) => ev,
            _ => match Event::decode_with_path(&t, bytes) {
                Some(Ok(ev)) => ev,
                Some(Err(e)) => return Err(field_error(&e.path().to_string(), e.inner())),
                None => return Err(DomainError::UnknownType(t)),
            },
        };
        ev.check()?;
        Ok(ev)
    }

    /// Decodes `bytes` as a `type_name` event (`None`: no such type), through serde_json's
    /// str reader when `text`, the same bytes checked as UTF-8 once, is given: cheaper than
    /// serde_json's check of each string. Invalid bytes take the slice reader, which names
    /// the error.
    fn decode_as(
        type_name: &str,
        bytes: &[u8],
        text: Option<&str>,
    ) -> Option<Result<Event, serde_json::Error>> {
        match text {
            Some(text) => Event::decode_from(type_name, serde_json::Deserializer::from_str(text)),
            None => Event::decode_from(type_name, serde_json::Deserializer::from_slice(bytes)),
        }
    }

    /// Decodes a JSON value (for `record` from flags, corrections, upcasting).
    pub fn from_value(v: Value) -> Result<Event, DomainError> {
        let t = match v.get("type") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(DomainError::field("type", "must be a string")),
            None if v.is_object() => {
                return Err(DomainError::field("type", "missing field `type`"))
            }
            None => {
                return Err(DomainError::Malformed(format!(
                    "expected a JSON object, found {}",
                    json_kind(&v)
                )))
            }
        };
        match Event::decode_value(&t, v) {
            Some(Ok(ev)) => {
                ev.check()?;
                Ok(ev)
            }
            Some(Err(e)) => Err(field_error(&e.path().to_string(), e.inner())),
            None => Err(DomainError::UnknownType(t)),
        }
    }

    /// Decodes an event body read from the store at `schema_version`, through the upcasters
    /// when it is older than the current version.
    pub fn from_stored(
        bytes: &[u8],
        schema_version: u32,
        upcasters: &Upcasters,
    ) -> Result<Event, DomainError> {
        let text = std::str::from_utf8(bytes).ok();
        if let Some(t) = quick_type(bytes) {
            if schema_version == current_schema_version(t) {
                if let Some(Ok(ev)) = Event::decode_as(t, bytes, text) {
                    return Ok(ev);
                }
            }
        }
        let t = probe_type(bytes)?;
        let current = current_schema_version(&t);
        if schema_version == current {
            return match Event::decode_as(&t, bytes, text) {
                Some(Ok(ev)) => Ok(ev),
                _ => Event::from_json(bytes),
            };
        }
        if schema_version > current {
            return Err(DomainError::Upcast {
                event_type: t,
                from: schema_version,
                reason: format!("newer than this build's version {current}"),
            });
        }
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| DomainError::Malformed(e.to_string()))?;
        let v = upcasters.upcast(&t, schema_version, current, v)?;
        Event::from_value(v)
    }

    /// The canonical JSON object: `type` first, then the fields in catalogue order, absent
    /// optional fields omitted. This is the body the store keeps.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        // `{"type":"Name"` then the struct's own object, whose `{` becomes the `,` after the
        // type (or, for an empty object, whose `{}` becomes the closing `}`), written into a
        // buffer each thread reuses and copied out at its exact size: an import holds every
        // body until the append, and a vector grown while writing kept ~30 % of it unused.
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|cell| {
            let mut fresh = Vec::new();
            // Re-entered (a serializer that encodes an event): a buffer of its own.
            let mut guard = cell.try_borrow_mut();
            let out = match guard.as_deref_mut() {
                Ok(b) => b,
                Err(_) => &mut fresh,
            };
            out.clear();
            out.extend_from_slice(b"{\"type\":\"");
            out.extend_from_slice(self.type_name().as_bytes());
            out.push(b'"');
            let at = out.len();
            self.write_fields(out)?;
            if out.len() - at > 2 {
                out[at] = b',';
            } else {
                out.truncate(at);
                out.push(b'}');
            }
            let body = out.to_vec();
            if out.capacity() > 1 << 20 {
                // One huge event does not pin its buffer for the thread's life.
                *out = Vec::new();
            }
            Ok(body)
        })
    }

    /// The canonical JSON as a value.
    pub fn to_value(&self) -> Value {
        self.to_json()
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    /// The event id.
    pub fn event_id(&self) -> Option<EventId> {
        self.common().event_id.copied()
    }

    /// The commitment this event is about, for commitment events.
    pub fn commitment_id(&self) -> Option<&Slug> {
        match self.subject_field() {
            Some("commitment_id") => self.subject(),
            _ => None,
        }
    }

    /// The catalogue's rules that one event can check alone: `occurred` and evidence on world
    /// events, participant and party counts, correction paths.
    pub fn check(&self) -> Result<(), DomainError> {
        let c = self.common();
        if self.is_world() {
            if c.occurred.is_none() {
                return Err(DomainError::field(
                    "occurred",
                    format!(
                        "missing field `occurred` (required for {})",
                        self.type_name()
                    ),
                ));
            }
            if c.evidence.is_empty() {
                return Err(DomainError::field(
                    "evidence",
                    format!(
                        "at least one evidence entry is required for {}",
                        self.type_name()
                    ),
                ));
            }
        }
        match self {
            Event::CallHeld(e) => {
                if e.participants.len() < 2 {
                    return Err(DomainError::field(
                        "participants",
                        "at least two participants are required",
                    ));
                }
                distinct_at_least(
                    e.participants.iter().map(|p| p.country),
                    2,
                    "participants",
                    "participants from at least two countries are required",
                )?;
            }
            Event::AgreementSigned(e) => distinct_at_least(
                e.parties.iter().copied(),
                2,
                "parties",
                "at least two distinct countries are required",
            )?,
            Event::ConsultationAgreed(e) => distinct_at_least(
                e.parties.iter().copied(),
                2,
                "parties",
                "at least two distinct countries are required",
            )?,
            Event::RoadmapReviewed(e) => distinct_at_least(
                e.parties.iter().copied(),
                1,
                "parties",
                "at least one country is required",
            )?,
            Event::EventCorrected(e) => {
                if e.changes.is_empty() {
                    return Err(DomainError::field(
                        "changes",
                        "at least one change is required",
                    ));
                }
                for (i, ch) in e.changes.iter().enumerate() {
                    check_pointer(&ch.path)
                        .map_err(|r| DomainError::field(format!("changes[{i}].path"), r))?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn distinct_at_least(
    it: impl Iterator<Item = Country>,
    n: usize,
    field: &str,
    reason: &str,
) -> Result<(), DomainError> {
    let mut seen: Vec<Country> = Vec::new();
    for c in it {
        if !seen.contains(&c) {
            seen.push(c);
        }
    }
    if seen.len() < n {
        return Err(DomainError::field(field, reason));
    }
    Ok(())
}

/// Fields a correction may not touch.
const PROTECTED_TOP: &[&str] = &[
    "type",
    "event_id",
    "source_id",
    "call_id",
    "document_id",
    "commitment_id",
    "target_event_id",
];

/// Splits a JSON Pointer into unescaped tokens; refuses paths into protected fields.
pub fn check_pointer(path: &str) -> Result<Vec<String>, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "`{path}` is not a JSON Pointer (it must start with `/`)"
        ));
    }
    let tokens: Vec<String> = path[1..]
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let top = tokens.first().map(String::as_str).unwrap_or("");
    if top.is_empty() {
        return Err(format!("`{path}` does not name a field"));
    }
    if PROTECTED_TOP.contains(&top) || STORE_FIELDS.contains(&top) {
        return Err(format!("`{path}`: `{top}` cannot be corrected"));
    }
    Ok(tokens)
}

/// Applies JSON Pointer changes to an event; each `old` must equal the current value
/// (`null` for an absent field; a `new` of `null` removes the field). The patched event must
/// still be valid.
pub fn apply_changes(target: &Event, changes: &[Change]) -> Result<Event, DomainError> {
    let mut v = target.to_value();
    for (i, ch) in changes.iter().enumerate() {
        let tokens = check_pointer(&ch.path)
            .map_err(|r| DomainError::field(format!("changes[{i}].path"), r))?;
        let (last, parents) = tokens
            .split_last()
            .ok_or_else(|| DomainError::field(format!("changes[{i}].path"), "empty path"))?;
        let mut cur = &mut v;
        for t in parents {
            cur = match cur {
                Value::Object(m) => m.get_mut(t.as_str()),
                Value::Array(a) => t.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
                _ => None,
            }
            .ok_or_else(|| {
                DomainError::field(
                    format!("changes[{i}].path"),
                    format!("`{}` does not exist in the target", ch.path),
                )
            })?;
        }
        let slot_err = || {
            DomainError::field(
                format!("changes[{i}].path"),
                format!("`{}` does not exist in the target", ch.path),
            )
        };
        let current = match &*cur {
            Value::Object(m) => m.get(last.as_str()).cloned().unwrap_or(Value::Null),
            Value::Array(a) => last
                .parse::<usize>()
                .ok()
                .and_then(|i| a.get(i))
                .cloned()
                .ok_or_else(slot_err)?,
            _ => return Err(slot_err()),
        };
        if current != ch.old {
            return Err(DomainError::field(
                format!("changes[{i}].old"),
                format!("`{}` is {} in the target, not {}", ch.path, current, ch.old),
            ));
        }
        match cur {
            Value::Object(m) => {
                if ch.new.is_null() {
                    m.remove(last.as_str());
                } else {
                    m.insert(last.clone(), ch.new.clone());
                }
            }
            Value::Array(a) => {
                let idx = last.parse::<usize>().map_err(|_| slot_err())?;
                if let Some(slot) = a.get_mut(idx) {
                    *slot = ch.new.clone();
                }
            }
            _ => return Err(slot_err()),
        }
    }
    Event::from_value(v).map_err(|e| match e {
        DomainError::Field { field, reason } => DomainError::field(
            "changes",
            format!("the patched target is invalid: field `{field}`: {reason}"),
        ),
        other => other,
    })
}

/// An event with its canonical JSON ([`Event::to_json`]) encoded ahead of validation, e.g. on
/// the thread that decoded it, so that the thread validating a batch in order does not also
/// encode every event. An import hands these to [`crate::Validator::check_encoded`].
///
/// The body is kept only while it is the event's: the setters clear it, and an event without
/// `event_id` or `recorded_by` (which the importer fills in) is not encoded ahead at all.
///
/// The event is boxed: an `Event` is ~560 bytes, and an import moves each one from the reading
/// thread's chunk through validation into the views' fold; moving a pointer instead was
/// ~3 % of a 100k import's CPU.
#[derive(Debug, Clone)]
pub struct Encoded {
    event: Box<Event>,
    body: Option<Vec<u8>>,
}

impl Encoded {
    /// Encodes `event` now when it is complete (it carries `event_id` and `recorded_by`).
    /// An event that fails to encode is kept without a body: validation reports the error.
    pub fn new(event: Event) -> Self {
        let complete = event.event_id().is_some() && event.common().recorded_by.is_some();
        let body = if complete { event.to_json().ok() } else { None };
        Encoded {
            event: Box::new(event),
            body,
        }
    }

    /// The event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// Sets the event's id, dropping the body encoded ahead.
    pub fn set_event_id(&mut self, id: EventId) {
        self.event.set_event_id(id);
        self.body = None;
    }

    /// Sets `recorded_by`, dropping the body encoded ahead.
    pub fn set_recorded_by(&mut self, who: String) {
        self.event.set_recorded_by(who);
        self.body = None;
    }

    /// The event and the body encoded ahead, if any.
    pub fn into_parts(self) -> (Box<Event>, Option<Vec<u8>>) {
        (self.event, self.body)
    }
}

impl From<Event> for Encoded {
    /// Wraps `event` without encoding it: [`crate::Validator::check_encoded`] encodes it.
    fn from(event: Event) -> Self {
        Encoded {
            event: Box::new(event),
            body: None,
        }
    }
}

#[cfg(test)]
mod encoded_tests {
    use super::*;

    fn sample(with_id: bool, with_actor: bool) -> Event {
        let mut line = String::from(
            r#"{"type":"SourceRegistered","source_id":"src-a","url":"https://example.org/a","title":"A","language":"en""#,
        );
        if with_id {
            line.push_str(r#","event_id":"0190b7a2-0000-7000-8000-000000000001""#);
        }
        if with_actor {
            line.push_str(r#","recorded_by":"analyst:test""#);
        }
        line.push('}');
        Event::from_json(line.as_bytes()).expect("valid sample")
    }

    #[test]
    fn encoded_ahead_only_when_complete_and_always_the_canonical_body() {
        for (with_id, with_actor) in [(true, true), (true, false), (false, true), (false, false)] {
            let ev = sample(with_id, with_actor);
            let (back, ahead) = Encoded::new(ev.clone()).into_parts();
            assert_eq!(back.to_json().ok(), ev.to_json().ok());
            if let Some(body) = &ahead {
                assert_eq!(Some(body), ev.to_json().ok().as_ref());
            }
            assert_eq!(
                ahead.is_some(),
                with_id && with_actor,
                "{with_id} {with_actor}"
            );
        }
    }

    #[test]
    fn setters_drop_the_body_encoded_ahead() {
        let mut enc = Encoded::new(sample(true, true));
        enc.set_recorded_by("analyst:other".into());
        let (ev, ahead) = enc.into_parts();
        assert!(ahead.is_none());
        assert!(ev.to_json().is_ok_and(|b| b
            .windows(b"analyst:other".len())
            .any(|w| w == b"analyst:other")));
        let mut enc = Encoded::new(sample(true, true));
        enc.set_event_id(EventId(uuid::Uuid::from_u128(7)));
        assert!(enc.into_parts().1.is_none());
    }
}
