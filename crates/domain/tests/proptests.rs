//! Property tests: (a) every event type survives serialise → deserialise unchanged, and the
//! canonical JSON is a fixed point; (b) any stream of lifecycle events that `decide` accepts
//! folds to the state a tiny reference model of the catalogue's table predicts.
#![allow(clippy::unwrap_used)]

mod common;

use commitments_domain::{decide, evolve, fold_stream, Effect, Event, EVENT_TYPES};
use common::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn config() -> ProptestConfig {
    // CI sets PROPTEST_CASES; `ProptestConfig::default()` reads it. Keep local runs modest.
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 128;
    }
    c
}

// ---------------------------------------------------------------------------------------
// (a) Strategies for JSON values of every event type.

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ,.'-]{0,16}",
        vec(any::<char>(), 0..8).prop_map(String::from_iter),
        Just("quote \" backslash \\ newline \n tab \t".to_owned()),
    ]
}

fn slug() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,12}"
}

fn country() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "BLR", "BGD", "ZWE", "ERI", "MOZ", "IDN", "GNQ", "BIH", "XKX", "USA", "FRA",
    ])
    .prop_map(str::to_owned)
}

fn uuid_text() -> impl Strategy<Value = String> {
    any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).hyphenated().to_string())
}

/// A calendar date `(y, m, d)` that exists (days up to 28).
fn ymd() -> impl Strategy<Value = (i32, u32, u32)> {
    (1900i32..2100, 1u32..=12, 1u32..=28)
}

/// A single EDTF date at year, month or day precision, with an optional qualifier.
fn edtf_date() -> impl Strategy<Value = ((i32, u32, u32), String)> {
    (
        ymd(),
        0usize..3,
        prop::sample::select(vec!["", "", "?", "~", "%"]),
    )
        .prop_map(|((y, m, d), prec, q)| {
            let s = match prec {
                0 => format!("{y:04}"),
                1 => format!("{y:04}-{m:02}"),
                _ => format!("{y:04}-{m:02}-{d:02}"),
            };
            ((y, m, d), format!("{s}{q}"))
        })
}

/// An EDTF string valid as a deadline (no seasons, no X, intervals in order).
fn due_edtf() -> impl Strategy<Value = String> {
    prop_oneof![
        edtf_date().prop_map(|(_, s)| s),
        edtf_date().prop_map(|(_, s)| format!("{s}/..")),
        edtf_date().prop_map(|(_, s)| format!("../{s}")),
        edtf_date().prop_map(|(_, s)| format!("{s}/")),
        (ymd(), 0i32..3).prop_map(|((y, m, _), k)| format!("{y:04}-{m:02}/{:04}", y + k)),
        ymd().prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}T10:30:00Z")),
    ]
}

/// An EDTF string valid as `occurred` (a season is fine here).
fn occurred() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => due_edtf(),
        1 => (1900i32..2100, 21u32..=24).prop_map(|(y, s)| format!("{y:04}-{s}")),
    ]
}

fn day() -> impl Strategy<Value = String> {
    ymd().prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"))
}

/// Inserts `key: value` into `m` when `value` is `Some`.
fn put(m: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        m.insert(key.to_owned(), v);
    }
}

fn opt<T: Strategy>(s: T) -> impl Strategy<Value = Option<T::Value>>
where
    T::Value: Clone,
{
    option::weighted(0.5, s)
}

fn due_spec() -> impl Strategy<Value = Value> {
    (
        due_edtf(),
        opt(text()),
        opt("[a-z]{2}"),
        opt(text()),
        opt(day()),
        prop::sample::select(vec![
            "explicit",
            "relative_resolved",
            "relative_ambiguous",
            "open_ended",
        ]),
    )
        .prop_map(|(edtf, expr, lang, en, anchor, basis)| {
            let mut m = Map::new();
            m.insert("edtf".into(), json!(edtf));
            put(&mut m, "expression", expr.map(Value::from));
            put(&mut m, "expression_lang", lang.map(Value::from));
            put(&mut m, "expression_en", en.map(Value::from));
            put(&mut m, "anchor", anchor.map(Value::from));
            m.insert("basis".into(), json!(basis));
            Value::Object(m)
        })
}

fn participant() -> impl Strategy<Value = Value> {
    (
        country(),
        opt(text()),
        opt(text()),
        opt(prop::sample::select(vec![
            "initiator",
            "counterpart",
            "host",
            "visitor",
            "unknown",
        ])),
    )
        .prop_map(|(c, name, office, role)| {
            let mut m = Map::new();
            m.insert("country".into(), json!(c));
            put(&mut m, "name_as_reported", name.map(Value::from));
            put(&mut m, "office_as_reported", office.map(Value::from));
            put(&mut m, "role", role.map(Value::from));
            Value::Object(m)
        })
}

fn place() -> impl Strategy<Value = Value> {
    (opt(text()), country(), opt(text())).prop_map(|(city, c, venue)| {
        let mut m = Map::new();
        put(&mut m, "city", city.map(Value::from));
        m.insert("country".into(), json!(c));
        put(&mut m, "venue", venue.map(Value::from));
        Value::Object(m)
    })
}

fn evidence_item() -> impl Strategy<Value = Value> {
    (
        slug(),
        opt(text()),
        opt(text()),
        opt("[a-z]{2}"),
        opt(text()),
    )
        .prop_map(|(s, loc, quote, lang, en)| {
            let mut m = Map::new();
            m.insert("source_id".into(), json!(s));
            put(&mut m, "locator", loc.map(Value::from));
            put(&mut m, "quote", quote.map(Value::from));
            put(&mut m, "quote_lang", lang.map(Value::from));
            put(&mut m, "translation_en", en.map(Value::from));
            Value::Object(m)
        })
}

/// Any non-null JSON scalar, or a small array of them.
fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        vec(text(), 0..3).prop_map(Value::from),
    ]
}

fn coding() -> impl Strategy<Value = Value> {
    (opt(json_leaf()), opt(json_leaf())).prop_map(|(c, p)| {
        let mut m = Map::new();
        put(&mut m, "cameo", c);
        put(&mut m, "plover", p);
        Value::Object(m)
    })
}

/// The common fields. World events always get `occurred` and evidence.
fn common_fields(world: bool) -> impl Strategy<Value = Map<String, Value>> {
    (
        opt(uuid_text()),
        opt(occurred()),
        opt(text()),
        opt(text()),
        opt(vec(evidence_item(), 1..3)),
        opt(("[A-F]", 1u8..=6).prop_map(|(r, c)| format!("{r}{c}"))),
        opt(coding()),
        opt(text()),
        occurred(),
        vec(evidence_item(), 1..3),
    )
        .prop_map(
            move |(id, occ, occ_note, by, evidence, conf, coding, note, occ_w, ev_w)| {
                let mut m = Map::new();
                put(&mut m, "event_id", id.map(Value::from));
                let occ = if world { Some(occ_w) } else { occ };
                put(&mut m, "occurred", occ.map(Value::from));
                put(&mut m, "occurred_note", occ_note.map(Value::from));
                put(&mut m, "recorded_by", by.map(Value::from));
                let evidence = if world { Some(ev_w) } else { evidence };
                put(&mut m, "evidence", evidence.map(Value::from));
                put(&mut m, "confidence", conf.map(Value::from));
                put(&mut m, "coding", coding);
                put(&mut m, "note", note.map(Value::from));
                m
            },
        )
}

/// Two distinct countries then up to two more (duplicates allowed after the first two).
fn parties() -> impl Strategy<Value = Value> {
    (country(), country(), vec(country(), 0..3))
        .prop_filter("two distinct", |(a, b, _)| a != b)
        .prop_map(|(a, b, rest)| {
            let mut v = vec![a, b];
            v.extend(rest);
            json!(v)
        })
}

fn payload(type_name: &'static str) -> BoxedStrategy<Map<String, Value>> {
    fn obj(pairs: Vec<(&str, Option<Value>)>) -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in pairs {
            put(&mut m, k, v);
        }
        m
    }
    let s = |x: String| Some(Value::from(x));
    let o = |x: Option<String>| x.map(Value::from);
    match type_name {
        "SourceRegistered" => (
            slug(),
            text(),
            text(),
            "[a-z]{2}(-[A-Z]{2})?",
            opt(text()),
            opt(occurred()),
            opt(text()),
        )
            .prop_map(move |(id, url, title, lang, publ, published, retrieved)| {
                obj(vec![
                    ("source_id", s(id)),
                    ("url", s(url)),
                    ("title", s(title)),
                    ("language", s(lang)),
                    ("publisher", o(publ)),
                    ("published", o(published)),
                    ("retrieved_at", o(retrieved)),
                ])
            })
            .boxed(),
        "CallHeld" => (
            slug(),
            prop::sample::select(vec!["phone", "video", "in_person", "unspecified"]),
            participant(),
            participant(),
            vec(participant(), 0..2),
            opt(vec(text(), 0..3)),
            opt(place()),
        )
            .prop_filter("two countries", |(_, _, a, b, _, _, _)| {
                a["country"] != b["country"]
            })
            .prop_map(move |(id, mode, a, b, more, topics, loc)| {
                let mut ps = vec![a, b];
                ps.extend(more);
                obj(vec![
                    ("call_id", s(id)),
                    ("mode", Some(json!(mode))),
                    ("participants", Some(json!(ps))),
                    ("topics", topics.map(Value::from)),
                    ("location", loc),
                ])
            })
            .boxed(),
        "AgreementSigned" => (
            slug(),
            text(),
            prop::sample::select(vec![
                "roadmap",
                "agreement",
                "mou",
                "programme",
                "treaty",
                "joint_statement",
                "other",
            ]),
            parties(),
        )
            .prop_map(move |(id, title, dt, p)| {
                obj(vec![
                    ("document_id", s(id)),
                    ("title", s(title)),
                    ("doc_type", Some(json!(dt))),
                    ("parties", Some(p)),
                ])
            })
            .boxed(),
        "RoadmapReviewed" => (
            slug(),
            vec(country(), 1..3),
            text(),
            opt(slug()),
            opt(text()),
        )
            .prop_map(move |(id, p, summary, call, progress)| {
                obj(vec![
                    ("document_id", s(id)),
                    ("parties", Some(json!(p))),
                    ("summary", s(summary)),
                    ("reviewed_in", o(call)),
                    ("progress", o(progress)),
                ])
            })
            .boxed(),
        "ConsultationAgreed" => (
            slug(),
            prop::sample::select(vec![
                "political_consultations",
                "joint_commission_meeting",
                "committee_meeting",
                "bilateral_events",
                "visit",
                "other",
            ]),
            parties(),
            prop::sample::select(vec!["expressed_intent", "planned", "agreed"]),
            text(),
            opt(due_spec()),
            opt(place()),
            opt(slug()),
        )
            .prop_map(move |(id, kind, p, strength, desc, due, loc, origin)| {
                obj(vec![
                    ("commitment_id", s(id)),
                    ("kind", Some(json!(kind))),
                    ("parties", Some(p)),
                    ("strength", Some(json!(strength))),
                    ("description", s(desc)),
                    ("due", due),
                    ("location", loc),
                    ("origin", o(origin)),
                ])
            })
            .boxed(),
        "InvitationExtended" => (
            slug(),
            participant(),
            participant(),
            prop::sample::select(vec!["official", "state", "working", "unspecified"]),
            country(),
            opt(due_spec()),
            opt(slug()),
        )
            .prop_map(move |(id, a, b, vt, dest, proposed, origin)| {
                obj(vec![
                    ("commitment_id", s(id)),
                    ("inviter", Some(a)),
                    ("invitee", Some(b)),
                    ("visit_type", Some(json!(vt))),
                    ("destination", s(dest)),
                    ("proposed", proposed),
                    ("origin", o(origin)),
                ])
            })
            .boxed(),
        "InvitationAccepted" => (slug(), opt(participant()), opt(due_spec()))
            .prop_map(move |(id, by, proposed)| {
                obj(vec![
                    ("commitment_id", s(id)),
                    ("accepted_by", by),
                    ("proposed", proposed),
                ])
            })
            .boxed(),
        "InvitationDeclined" => (slug(), opt(participant()), opt(text()))
            .prop_map(move |(id, by, reason)| {
                obj(vec![
                    ("commitment_id", s(id)),
                    ("declined_by", by),
                    ("reason", o(reason)),
                ])
            })
            .boxed(),
        "MeetingScheduled" => (slug(), due_spec(), opt(place()), opt(text()))
            .prop_map(move |(id, due, loc, format)| {
                obj(vec![
                    ("commitment_id", s(id)),
                    ("scheduled_for", Some(due)),
                    ("location", loc),
                    ("format", o(format)),
                ])
            })
            .boxed(),
        "CommitmentPostponed" => (slug(), opt(due_spec()), opt(text()))
            .prop_map(move |(id, due, reason)| {
                obj(vec![
                    ("commitment_id", s(id)),
                    ("new_due", due),
                    ("reason", o(reason)),
                ])
            })
            .boxed(),
        "CommitmentCancelled" => (slug(), opt(country()), opt(text()))
            .prop_map(move |(id, by, reason)| {
                obj(vec![
                    ("commitment_id", s(id)),
                    ("cancelled_by", o(by)),
                    ("reason", o(reason)),
                ])
            })
            .boxed(),
        "CommitmentFulfilled" => (
            slug(),
            prop::sample::select(vec!["full", "partial"]),
            opt(slug()),
            opt(text()),
        )
            .prop_map(move |(id, extent, by, summary)| {
                obj(vec![
                    ("commitment_id", s(id)),
                    ("extent", Some(json!(extent))),
                    ("by_call", o(by)),
                    ("summary", o(summary)),
                ])
            })
            .boxed(),
        "CommitmentReaffirmed" => (slug(), opt(due_spec()), opt(slug()))
            .prop_map(move |(id, due, origin)| {
                obj(vec![
                    ("commitment_id", s(id)),
                    ("new_due", due),
                    ("origin", o(origin)),
                ])
            })
            .boxed(),
        "CommitmentAssessed" => (
            slug(),
            day(),
            prop::sample::select(vec!["on_track", "stalled", "lapsed"]),
            text(),
        )
            .prop_map(move |(id, as_of, rating, why)| {
                obj(vec![
                    ("commitment_id", s(id)),
                    ("as_of", s(as_of)),
                    ("rating", Some(json!(rating))),
                    ("rationale", s(why)),
                ])
            })
            .boxed(),
        "EventCorrected" => (
            uuid_text(),
            vec(
                (
                    prop::sample::select(vec![
                        "/note",
                        "/due/edtf",
                        "/parties/0",
                        "/description",
                        "/evidence/0/locator",
                        "/a~1b~0c",
                    ]),
                    prop_oneof![Just(Value::Null), json_leaf()],
                    prop_oneof![Just(Value::Null), json_leaf()],
                )
                    .prop_map(|(p, old, new)| json!({"path": p, "old": old, "new": new})),
                1..3,
            ),
            prop::sample::select(vec![
                "coding_error",
                "translation_error",
                "source_corrected",
                "new_information",
            ]),
        )
            .prop_map(move |(target, changes, reason)| {
                obj(vec![
                    ("target_event_id", s(target)),
                    ("changes", Some(json!(changes))),
                    ("reason", Some(json!(reason))),
                ])
            })
            .boxed(),
        "EventRetracted" => (
            uuid_text(),
            prop::sample::select(vec![
                "duplicate",
                "not_a_commitment",
                "source_retracted",
                "miscoded",
            ]),
        )
            .prop_map(move |(target, reason)| {
                obj(vec![
                    ("target_event_id", s(target)),
                    ("reason", Some(json!(reason))),
                ])
            })
            .boxed(),
        other => panic!("no strategy for {other}"),
    }
}

fn is_world(type_name: &str) -> bool {
    !matches!(
        type_name,
        "SourceRegistered" | "EventCorrected" | "EventRetracted"
    )
}

/// `(type, JSON object)` for any event type.
fn any_event_json() -> impl Strategy<Value = (&'static str, Value)> {
    prop::sample::select(EVENT_TYPES.to_vec()).prop_flat_map(|t| {
        (common_fields(is_world(t)), payload(t)).prop_map(move |(mut c, p)| {
            c.insert("type".into(), json!(t));
            c.extend(p);
            (t, Value::Object(c))
        })
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn serialise_then_deserialise_is_identity((t, v) in any_event_json()) {
        let line = serde_json::to_vec(&v).unwrap();
        let e1 = Event::from_json(&line)
            .map_err(|e| TestCaseError::fail(format!("{t} rejected: {e}\n{v}")))?;
        prop_assert_eq!(e1.type_name(), t);
        let j1 = e1.to_json().unwrap();
        let e2 = Event::from_json(&j1)
            .map_err(|e| TestCaseError::fail(format!("canonical {t} rejected: {e}")))?;
        prop_assert_eq!(&e2, &e1);
        let j2 = e2.to_json().unwrap();
        prop_assert_eq!(&j2, &j1, "to_json is a fixed point");
        // The canonical JSON says exactly what the input said.
        let canon: Value = serde_json::from_slice(&j1).unwrap();
        prop_assert_eq!(&canon, &v);
        let prefix = format!("{{\"type\":\"{t}\"");
        prop_assert!(j1.starts_with(prefix.as_bytes()));
        // Decoding from a value agrees with decoding from bytes.
        prop_assert_eq!(Event::from_value(v.clone()).unwrap(), e1);
    }
}

#[test]
fn every_type_is_generated() {
    // A sanity check on the strategy itself: with 400 draws over 16 types, missing one has
    // probability below 16 * (15/16)^400, about 1e-10.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = any_event_json();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..400 {
        seen.insert(strategy.new_tree(&mut runner).unwrap().current().0);
    }
    for t in EVENT_TYPES {
        assert!(seen.contains(t), "{t} never generated");
    }
}

// ---------------------------------------------------------------------------------------
// (b) Lifecycle sequences against a reference model.

/// One lifecycle step; the `u32`s pick a month for due-setting events.
#[derive(Debug, Clone)]
enum Op {
    Accept(Option<u32>),
    Decline,
    Schedule(u32),
    Postpone(Option<u32>),
    Fulfil(bool),
    Cancel,
    Reaffirm(Option<u32>),
    Assess(&'static str),
}

fn op() -> impl Strategy<Value = Op> {
    let month = 1u32..=12;
    prop_oneof![
        opt(month.clone()).prop_map(Op::Accept),
        Just(Op::Decline),
        month.clone().prop_map(Op::Schedule),
        opt(month.clone()).prop_map(Op::Postpone),
        any::<bool>().prop_map(Op::Fulfil),
        Just(Op::Cancel),
        opt(month).prop_map(Op::Reaffirm),
        prop::sample::select(vec!["on_track", "stalled", "lapsed"]).prop_map(Op::Assess),
    ]
}

const CID: &str = "c-prop";

fn due(m: u32) -> Value {
    json!({"edtf": format!("2025-{m:02}"), "basis": "explicit"})
}

fn op_event(n: u64, op: &Op) -> Event {
    let with_due = |key: &str, m: &Option<u32>| match m {
        Some(m) => json!({ key: due(*m) }),
        None => json!({}),
    };
    match op {
        Op::Accept(m) => lifecycle(n, "InvitationAccepted", CID, with_due("proposed", m)),
        Op::Decline => declined(n, CID),
        Op::Schedule(m) => lifecycle(
            n,
            "MeetingScheduled",
            CID,
            json!({"scheduled_for": due(*m)}),
        ),
        Op::Postpone(m) => lifecycle(n, "CommitmentPostponed", CID, with_due("new_due", m)),
        Op::Fulfil(full) => fulfilled(n, CID, if *full { "full" } else { "partial" }),
        Op::Cancel => cancelled(n, CID),
        Op::Reaffirm(m) => lifecycle(n, "CommitmentReaffirmed", CID, with_due("new_due", m)),
        Op::Assess(r) => assessed(n, CID, r),
    }
}

/// The reference model: status, stalled flag and the effective due's EDTF text.
#[derive(Debug, Clone, PartialEq)]
struct Ref {
    status: &'static str,
    stalled: bool,
    due: Option<String>,
}

impl Ref {
    /// The catalogue's table, written independently of the crate. `None`: rejected.
    fn step(&self, op: &Op) -> Option<Ref> {
        const TERMINAL: &[&str] = &[
            "fulfilled",
            "partially_fulfilled",
            "declined",
            "cancelled",
            "retracted",
        ];
        if TERMINAL.contains(&self.status) {
            return None;
        }
        let s = self.status;
        let month = |m: &u32| Some(format!("2025-{m:02}"));
        let mut next = self.clone();
        match op {
            Op::Accept(m) if s == "pending" => {
                next.status = "open";
                if let Some(m) = m {
                    next.due = month(m);
                }
            }
            Op::Decline if s == "pending" => next.status = "declined",
            Op::Accept(_) | Op::Decline => return None,
            Op::Schedule(m) => {
                next.status = "scheduled";
                next.due = month(m);
            }
            Op::Postpone(_) if s == "pending" || s == "lapsed" => return None,
            Op::Postpone(m) => {
                next.status = "postponed";
                // Without a new due: open-ended from the event's `occurred` (2024-03-01).
                next.due = m.map_or(Some("2024-03-01/..".to_owned()), |m| month(&m));
            }
            Op::Fulfil(full) => {
                next.status = if *full {
                    "fulfilled"
                } else {
                    "partially_fulfilled"
                }
            }
            Op::Cancel => next.status = "cancelled",
            Op::Reaffirm(m) => {
                if s == "lapsed" {
                    next.status = "open";
                }
                if let Some(m) = m {
                    next.due = month(m);
                }
            }
            Op::Assess("lapsed") => next.status = "lapsed",
            Op::Assess("stalled") => next.stalled = true,
            Op::Assess(_) => next.stalled = false,
        }
        Some(next)
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn accepted_sequences_fold_as_the_reference_model_says(
        invite in any::<bool>(),
        ops in vec(op(), 0..24),
    ) {
        let opener = if invite { invited(1, CID) } else { agreed(1, CID) };
        let mut reference = Ref {
            status: if invite { "pending" } else { "open" },
            stalled: false,
            due: if invite { None } else { Some("2024-02".to_owned()) },
        };
        let mut state = evolve(None, &opener);
        let mut kept = vec![opener.clone()];
        let mut all = vec![opener];
        for (i, op) in ops.iter().enumerate() {
            let e = op_event(100 + i as u64, op);
            let want = reference.step(op);
            let got = decide(state.as_ref(), &e);
            prop_assert_eq!(
                got.is_ok(),
                want.is_some(),
                "{:?} in {}: decide says {:?}", op, reference.status, got
            );
            all.push(e.clone());
            if let Some(next) = want {
                reference = next;
                state = evolve(state, &e);
                kept.push(e);
            }
            let s = state.as_ref().unwrap();
            prop_assert_eq!(s.status.as_str(), reference.status);
            prop_assert_eq!(s.stalled, reference.stalled);
        }

        // Folding only the accepted events: the same state, every step applied.
        let refs: Vec<&Event> = kept.iter().collect();
        let fold = fold_stream(&refs);
        prop_assert_eq!(&fold.state, &state);
        prop_assert!(fold.steps.iter().all(|s| s.effect == Effect::Applied));
        let s = fold.state.as_ref().unwrap();
        prop_assert_eq!(s.status.as_str(), reference.status);
        prop_assert_eq!(s.stalled, reference.stalled);
        prop_assert_eq!(
            s.due.as_ref().map(|d| d.spec.edtf.0.as_str().to_owned()),
            reference.due.clone()
        );
        // Audit rows chain: each row starts where the previous one ended.
        for w in fold.steps.windows(2) {
            prop_assert_eq!(w[1].status_before, w[0].status_after);
            prop_assert_eq!(&w[1].due_before, &w[0].due_after);
        }

        // Folding everything, rejected events included: they are invalidated, and the state
        // is the same.
        let refs: Vec<&Event> = all.iter().collect();
        let fold_all = fold_stream(&refs);
        prop_assert_eq!(&fold_all.state, &state);
        let invalidated = fold_all
            .steps
            .iter()
            .filter(|s| matches!(s.effect, Effect::Invalidated(_)))
            .count();
        prop_assert_eq!(invalidated, all.len() - kept.len());

        // The batch validator over a store agrees: the accepted events import as one batch.
        let mut m = Model::new();
        m.import_ok(&[source(2, SRC)]);
        let verdicts = m.import(&kept).map_err(|(i, e)| TestCaseError::fail(format!("{i}: {e}")))?;
        prop_assert_eq!(verdicts.len(), kept.len());
        prop_assert_eq!(
            commitments_domain::Context::commitment(&m, CID).expect("the model reads").map(|s| (s.status, s.stalled)),
            state.map(|s| (s.status, s.stalled))
        );
    }
}
