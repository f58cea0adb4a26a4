//! Decoding input lines: what the catalogue rejects (and that the error names the field), and
//! the round trip of the documented examples.
#![allow(clippy::unwrap_used)]

mod common;

use commitments_domain::{DomainError, Event, EVENT_TYPES, STORE_FIELDS};
use common::*;
use serde_json::{json, Value};

/// A valid `ConsultationAgreed` with every optional field that has nested structure.
fn consultation() -> Value {
    json!({
        "type": "ConsultationAgreed",
        "event_id": "0190f3b2-5c1e-7a4b-9d7e-2f1c3a4b5c6d",
        "occurred": "2024-01-20",
        "recorded_by": "analyst:test",
        "commitment_id": "bgd-political-consultations",
        "kind": "political_consultations",
        "parties": ["BLR", "BGD"],
        "strength": "agreed",
        "description": "Hold political consultations",
        "due": {"edtf": "2024-02", "expression": "in February", "expression_lang": "en",
                "basis": "explicit"},
        "location": {"city": "Minsk", "country": "BLR"},
        "origin": "call-blr-bgd-2024-01-20",
        "evidence": [{"source_id": "src-a", "locator": "paragraph 3"}],
        "confidence": "F3",
        "coding": {"cameo": "036", "plover": "AGREE"}
    })
}

fn invitation() -> Value {
    json!({
        "type": "InvitationExtended", "event_id": eid(2), "occurred": "2024-01-20?",
        "commitment_id": "eri-official-visit",
        "inviter": {"country": "BLR", "role": "host"},
        "invitee": {"country": "ERI", "role": "visitor"},
        "visit_type": "official", "destination": "BLR",
        "evidence": [{"source_id": "src-a"}]
    })
}

fn call_held() -> Value {
    json!({
        "type": "CallHeld", "event_id": eid(3), "occurred": "2024-01-20",
        "call_id": "call-a", "mode": "phone",
        "participants": [{"country": "BLR"}, {"country": "BGD"}],
        "evidence": [{"source_id": "src-a"}]
    })
}

/// Sets the JSON Pointer `path` of `v` to `new` (creating the last key), returning `v`.
fn with(mut v: Value, path: &str, new: Value) -> Value {
    let (parent, last) = path.rsplit_once('/').unwrap();
    let slot = v
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match slot {
        Value::Object(m) => {
            m.insert(last.to_owned(), new);
        }
        Value::Array(a) => a[last.parse::<usize>().unwrap()] = new,
        _ => panic!("{parent} is not a container"),
    }
    v
}

fn without(mut v: Value, path: &str) -> Value {
    let (parent, last) = path.rsplit_once('/').unwrap();
    v.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap()
        .remove(last);
    v
}

/// Asserts that `v` is rejected with an error about `field` whose message contains every
/// string of `says`.
fn assert_rejected(v: Value, field: &str, says: &[&str]) -> DomainError {
    let err = reject(v);
    assert_eq!(err.field_path(), Some(field), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("`{field}`")),
        "message does not name `{field}`: {msg}"
    );
    for s in says {
        assert!(msg.contains(s), "message lacks {s:?}: {msg}");
    }
    err
}

#[test]
fn the_fixtures_are_valid() {
    ev(consultation());
    ev(invitation());
    ev(call_held());
}

#[test]
fn bad_countries_are_named_by_path() {
    assert_rejected(
        with(consultation(), "/parties/1", json!("ZZZ")),
        "parties[1]",
        &["ZZZ", "unknown country"],
    );
    assert_rejected(
        with(consultation(), "/parties/1", json!("blr")),
        "parties[1]",
        &["blr", "upper case"],
    );
    assert_rejected(
        with(consultation(), "/parties/0", json!("BY")),
        "parties[0]",
        &["BY"],
    );
    assert_rejected(
        with(consultation(), "/location/country", json!("ZZZ")),
        "location.country",
        &["ZZZ"],
    );
    assert_rejected(
        with(invitation(), "/invitee/country", json!("eri")),
        "invitee.country",
        &["eri", "upper case"],
    );
    assert_rejected(
        with(invitation(), "/destination", json!("ZZZ")),
        "destination",
        &["ZZZ"],
    );
    assert_rejected(
        with(call_held(), "/participants/1/country", json!("QQQ")),
        "participants[1].country",
        &["QQQ"],
    );
    // Kosovo's user-assigned code is the documented exception.
    ev(with(consultation(), "/parties/1", json!("XKX")));
}

#[test]
fn bad_slugs_are_named_by_path() {
    for bad in ["Bad-Id", "has space", "-starts-with-dash", "", "café"] {
        assert_rejected(
            with(consultation(), "/commitment_id", json!(bad)),
            "commitment_id",
            &["not a valid id"],
        );
    }
    assert_rejected(
        with(consultation(), "/commitment_id", json!("a".repeat(81))),
        "commitment_id",
        &["not a valid id"],
    );
    ev(with(
        consultation(),
        "/commitment_id",
        json!("a".repeat(80)),
    ));
    assert_rejected(
        with(consultation(), "/origin", json!("Call-1")),
        "origin",
        &["Call-1"],
    );
    assert_rejected(
        with(consultation(), "/evidence/0/source_id", json!("SRC")),
        "evidence[0].source_id",
        &["SRC"],
    );
    assert_rejected(
        with(call_held(), "/call_id", json!("call/1")),
        "call_id",
        &["call/1"],
    );
}

#[test]
fn impossible_dates_are_named_by_path() {
    assert_rejected(
        with(consultation(), "/occurred", json!("2023-02-29")),
        "occurred",
        &["2023-02-29"],
    );
    assert_rejected(
        with(consultation(), "/occurred", json!("0000")),
        "occurred",
        &["0000"],
    );
    assert_rejected(
        with(consultation(), "/occurred", json!("last week")),
        "occurred",
        &["last week"],
    );
    assert_rejected(
        with(consultation(), "/due/edtf", json!("2023-02-29")),
        "due.edtf",
        &["2023-02-29"],
    );
    assert_rejected(
        with(consultation(), "/due/anchor", json!("2023-02-29")),
        "due.anchor",
        &["2023-02-29"],
    );
    let assessed = json!({
        "type": "CommitmentAssessed", "occurred": "2024-03-01", "commitment_id": "c",
        "as_of": "2023-02-29", "rating": "stalled", "rationale": "r",
        "evidence": [{"source_id": "src-a"}]
    });
    assert_rejected(assessed.clone(), "as_of", &["2023-02-29"]);
    // `as_of` is a plain date, not EDTF.
    assert_rejected(
        with(assessed.clone(), "/as_of", json!("2024-03")),
        "as_of",
        &[],
    );
    ev(with(assessed, "/as_of", json!("2024-02-29")));
    // Leap day in a leap year, date-times and Level 1 qualifiers are fine for `occurred`.
    for ok in [
        "2024-02-29",
        "2024-01-20?",
        "2024-01~",
        "../2024-01-20",
        "2024-03-10T10:00:00Z",
    ] {
        ev(with(consultation(), "/occurred", json!(ok)));
    }
}

#[test]
fn due_specs_the_catalogue_rejects_are_named_at_due_edtf() {
    for (bad, why) in [
        ("2024-21", "season"),
        ("202X", "unspecified"),
        ("2024-05/2024-01", "ends before"),
        ("Y170000002", "Y-years"),
        ("-2024", "negative"),
    ] {
        assert_rejected(
            with(consultation(), "/due/edtf", json!(bad)),
            "due.edtf",
            &[bad, why],
        );
    }
    // The same rules hold wherever a DueSpec appears.
    let sched = json!({
        "type": "MeetingScheduled", "occurred": "2024-01-20", "commitment_id": "c",
        "scheduled_for": {"edtf": "2024-21", "basis": "explicit"},
        "evidence": [{"source_id": "src-a"}]
    });
    assert_rejected(sched, "scheduled_for.edtf", &["season"]);
    let postponed = json!({
        "type": "CommitmentPostponed", "occurred": "2024-01-20", "commitment_id": "c",
        "new_due": {"edtf": "202X", "basis": "explicit"},
        "evidence": [{"source_id": "src-a"}]
    });
    assert_rejected(postponed, "new_due.edtf", &["unspecified"]);
    assert_rejected(
        with(
            invitation(),
            "/proposed",
            json!({"edtf": "2024-05/2024-01", "basis": "explicit"}),
        ),
        "proposed.edtf",
        &["ends before"],
    );
    // A season is a valid EDTF Level 1 date: fine for `occurred`, not for a deadline.
    ev(with(consultation(), "/occurred", json!("2024-21")));
    // A bad basis is named too.
    assert_rejected(
        with(consultation(), "/due/basis", json!("soonish")),
        "due.basis",
        &["soonish"],
    );
    // The documented forms are accepted.
    for ok in ["2024-02", "2024", "2024/2025", "2024-01-20/..", "2024-04~"] {
        ev(with(consultation(), "/due/edtf", json!(ok)));
    }
}

#[test]
fn unknown_type_is_named() {
    let err = reject(with(consultation(), "/type", json!("ConsultationAgred")));
    assert_eq!(
        err,
        DomainError::UnknownType("ConsultationAgred".to_owned())
    );
    assert_eq!(err.field_path(), Some("type"));
    assert!(err.to_string().contains("ConsultationAgred"), "{err}");
    assert!(err.to_string().contains("`type`"), "{err}");
    // Case matters.
    assert!(matches!(
        reject(with(consultation(), "/type", json!("consultationagreed"))),
        DomainError::UnknownType(_)
    ));
}

#[test]
fn type_of_the_wrong_kind_or_missing_is_named() {
    let err = reject(without(consultation(), "/type"));
    assert_eq!(err.field_path(), Some("type"), "{err:?}");
    let err = reject(with(consultation(), "/type", json!(5)));
    assert_eq!(err.field_path(), Some("type"), "{err:?}");
}

#[test]
fn unknown_fields_are_named_at_any_depth() {
    assert_rejected(
        with(consultation(), "/foo", json!(1)),
        "foo",
        &["unknown field", "foo"],
    );
    assert_rejected(
        with(consultation(), "/due/foo", json!(1)),
        "due.foo",
        &["unknown field", "foo"],
    );
    assert_rejected(
        with(consultation(), "/evidence/0/page", json!(2)),
        "evidence[0].page",
        &["unknown field"],
    );
    assert_rejected(
        with(consultation(), "/location/region", json!("x")),
        "location.region",
        &["unknown field"],
    );
    assert_rejected(
        with(consultation(), "/coding/gdelt", json!("x")),
        "coding.gdelt",
        &["unknown field"],
    );
    assert_rejected(
        with(invitation(), "/inviter/title", json!("x")),
        "inviter.title",
        &["unknown field"],
    );
    assert_rejected(
        with(call_held(), "/participants/1/age", json!(3)),
        "participants[1].age",
        &["unknown field"],
    );
    // A field of another event type is unknown here.
    assert_rejected(
        with(consultation(), "/inviter", json!({"country": "BLR"})),
        "inviter",
        &["unknown field"],
    );
}

#[test]
fn missing_required_fields_are_named() {
    for field in [
        "kind",
        "parties",
        "strength",
        "description",
        "commitment_id",
    ] {
        assert_rejected(
            without(consultation(), &format!("/{field}")),
            field,
            &["missing field"],
        );
    }
    assert_rejected(
        without(consultation(), "/due/basis"),
        "due.basis",
        &["missing field"],
    );
    assert_rejected(
        without(consultation(), "/due/edtf"),
        "due.edtf",
        &["missing field"],
    );
    assert_rejected(
        without(consultation(), "/location/country"),
        "location.country",
        &["missing field"],
    );
    assert_rejected(
        without(consultation(), "/evidence/0/source_id"),
        "evidence[0].source_id",
        &["missing field"],
    );
    assert_rejected(
        without(invitation(), "/invitee"),
        "invitee",
        &["missing field"],
    );
    // A wrong enum value is named too.
    assert_rejected(
        with(consultation(), "/kind", json!("summit")),
        "kind",
        &["summit"],
    );
    assert_rejected(
        with(consultation(), "/confidence", json!("G9")),
        "confidence",
        &["G9"],
    );
}

#[test]
fn store_fields_are_rejected_saying_the_store_adds_them() {
    assert_eq!(
        STORE_FIELDS,
        [
            "seq",
            "stream",
            "stream_version",
            "recorded_at",
            "schema_version",
            "prev_hash",
            "hash"
        ]
    );
    for field in STORE_FIELDS {
        let v = with(consultation(), &format!("/{field}"), json!(1));
        let err = assert_rejected(v, field, &["store"]);
        assert!(err.to_string().contains("restore"), "{err}");
    }
    let hash = with(consultation(), "/hash", json!("0".repeat(64)));
    assert_rejected(hash, "hash", &["added by the store"]);
    // Nested, `seq` is just an unknown field.
    let err = assert_rejected(
        with(consultation(), "/due/seq", json!(1)),
        "due.seq",
        &["unknown field"],
    );
    assert!(!err.to_string().contains("store"), "{err}");
}

/// The decoder reads `type` off either end of a line when it stands there (canonical bodies
/// start with it, key-sorted lines end with it); wherever it stands, and whatever the strings
/// around it hold, the event is the one the whole object describes.
#[test]
fn the_type_is_found_wherever_it_stands() {
    let v = with(
        call_held(),
        "/note",
        json!("ends with \"type\":\"SourceRegistered\""),
    );
    let want = Event::from_value(v.clone()).unwrap();
    let canonical = String::from_utf8(want.to_json().unwrap()).unwrap();
    assert!(
        canonical.starts_with("{\"type\":\"CallHeld\""),
        "{canonical}"
    );
    let sorted = serde_json::to_string(&v).unwrap();
    assert!(sorted.ends_with("\"type\":\"CallHeld\"}"), "{sorted}");
    let pretty = serde_json::to_string_pretty(&v).unwrap();
    // `type` in the middle, and a last member whose string ends like a `type` member.
    let middle = canonical
        .replacen("{\"type\":\"CallHeld\",", "{", 1)
        .replacen(",\"call_id\"", ", \"type\" : \"CallHeld\",\"call_id\"", 1);
    assert_ne!(middle, canonical);
    let note_last = format!(
        "{{{},\"note\":\"x\\\",\\\"type\\\":\\\"SourceRegistered\"}}",
        &canonical[1..canonical.find(",\"note\"").unwrap()]
    );
    let spaced = sorted
        .replace("\":\"", "\" : \"")
        .replace("\",\"", "\" , \"");
    for line in [&canonical, &sorted, &pretty, &middle, &note_last, &spaced] {
        let got = Event::from_json(format!("  {line}\r\n").as_bytes());
        let want = if line == &note_last {
            Event::from_value(serde_json::from_str(line).unwrap()).unwrap()
        } else {
            want.clone()
        };
        assert_eq!(got.as_ref(), Ok(&want), "{line}");
        assert_eq!(
            Event::from_stored(line.as_bytes(), 1, &Default::default()).as_ref(),
            Ok(&want),
            "{line}"
        );
    }
    // Two `type` members, at the two ends: refused, not read off either end.
    let twice = sorted.replacen('{', "{\"type\":\"SourceRegistered\",", 1);
    assert!(Event::from_json(twice.as_bytes()).is_err(), "{twice}");
    assert!(Event::from_stored(twice.as_bytes(), 1, &Default::default()).is_err());
    // A known type name at the end of an array is no object.
    for line in ["[\"type\",\"CallHeld\"]", "[{\"type\":\"CallHeld\"}]"] {
        assert!(
            matches!(
                Event::from_json(line.as_bytes()),
                Err(DomainError::Malformed(_))
            ),
            "{line}"
        );
    }
}

#[test]
fn non_objects_and_malformed_json_are_rejected() {
    for line in [
        "[1, 2]",
        "\"ConsultationAgreed\"",
        "42",
        "null",
        "true",
        "  [ ]",
    ] {
        match Event::from_json(line.as_bytes()) {
            Err(DomainError::Malformed(m)) => {
                assert!(m.contains("expected a JSON object"), "{line}: {m}")
            }
            other => panic!("{line}: {other:?}"),
        }
    }
    for line in [
        "",
        "{",
        "{\"type\": \"CallHeld\",",
        "{'type': 'CallHeld'}",
        "not json",
        "{\"type\": \"CallHeld\"} trailing",
    ] {
        assert!(
            matches!(
                Event::from_json(line.as_bytes()),
                Err(DomainError::Malformed(_))
            ),
            "{line:?}: {:?}",
            Event::from_json(line.as_bytes())
        );
    }
    assert!(matches!(
        Event::from_value(json!([1])),
        Err(DomainError::Malformed(_))
    ));
}

#[test]
fn event_ids_must_be_hyphenated_uuids() {
    for bad in [
        "0190f3b25c1e7a4b9d7e2f1c3a4b5c6d",
        "{0190f3b2-5c1e-7a4b-9d7e-2f1c3a4b5c6d}",
        "urn:uuid:0190f3b2-5c1e-7a4b-9d7e-2f1c3a4b5c6d",
        "evt-1",
        "0190f3b2-5c1e-7a4b-9d7e-2f1c3a4b5c6g",
    ] {
        assert_rejected(
            with(consultation(), "/event_id", json!(bad)),
            "event_id",
            &["hyphenated UUID"],
        );
    }
    // Compared without regard to case, written lower case.
    let upper = ev(with(
        consultation(),
        "/event_id",
        json!("0190F3B2-5C1E-7A4B-9D7E-2F1C3A4B5C6D"),
    ));
    let lower = ev(consultation());
    assert_eq!(upper.event_id(), lower.event_id());
    assert_eq!(upper.to_json().unwrap(), lower.to_json().unwrap());
}

#[test]
fn a_null_optional_field_counts_as_absent() {
    let plain = ev(without(
        without(without(consultation(), "/due"), "/origin"),
        "/location",
    ));
    let nulls = ev(with(
        with(
            with(consultation(), "/due", Value::Null),
            "/origin",
            Value::Null,
        ),
        "/location",
        Value::Null,
    ));
    assert_eq!(plain, nulls);
    assert_eq!(plain.to_json().unwrap(), nulls.to_json().unwrap());
    // Nested optional fields and common fields too.
    let a = ev(with(
        with(consultation(), "/due/expression", Value::Null),
        "/note",
        Value::Null,
    ));
    let b = ev(without(consultation(), "/due/expression"));
    assert_eq!(a, b);
    let no_id = ev(with(consultation(), "/event_id", Value::Null));
    assert_eq!(no_id.event_id(), None);
    // A null required field is still missing.
    assert_rejected(with(consultation(), "/kind", Value::Null), "kind", &[]);
}

#[test]
fn world_events_need_evidence_and_occurred() {
    assert_rejected(
        without(consultation(), "/evidence"),
        "evidence",
        &["at least one evidence"],
    );
    assert_rejected(
        with(consultation(), "/evidence", json!([])),
        "evidence",
        &["at least one evidence"],
    );
    assert_rejected(
        with(consultation(), "/evidence", Value::Null),
        "evidence",
        &["at least one evidence"],
    );
    assert_rejected(
        without(consultation(), "/occurred"),
        "occurred",
        &["ConsultationAgreed"],
    );
    assert_rejected(without(call_held(), "/evidence"), "evidence", &["CallHeld"]);
    // Not world events: neither is required.
    ev(
        json!({"type": "SourceRegistered", "source_id": "src-a", "url": "u", "title": "t",
              "language": "en"}),
    );
    ev(json!({"type": "EventRetracted", "target_event_id": eid(1), "reason": "duplicate"}));
    ev(json!({"type": "EventCorrected", "target_event_id": eid(1),
              "changes": [{"path": "/note", "old": null, "new": "x"}],
              "reason": "coding_error"}));
}

#[test]
fn participants_and_parties_need_distinct_countries() {
    let same = with(call_held(), "/participants/1/country", json!("BLR"));
    assert_rejected(same, "participants", &["two countries"]);
    let one = with(call_held(), "/participants", json!([{"country": "BLR"}]));
    assert_rejected(one, "participants", &["two participants"]);
    // Three participants, two countries: fine.
    ev(with(
        call_held(),
        "/participants",
        json!([{"country": "BLR"}, {"country": "BLR"}, {"country": "BGD"}]),
    ));
    assert_rejected(
        with(consultation(), "/parties", json!(["BLR", "BLR"])),
        "parties",
        &["distinct"],
    );
    assert_rejected(
        with(consultation(), "/parties", json!(["BLR"])),
        "parties",
        &[],
    );
    let signed = json!({
        "type": "AgreementSigned", "occurred": "2023-12", "document_id": "doc",
        "title": "Roadmap", "doc_type": "roadmap", "parties": ["BLR", "BLR"],
        "evidence": [{"source_id": "src-a"}]
    });
    assert_rejected(signed.clone(), "parties", &["distinct"]);
    ev(with(signed, "/parties", json!(["BLR", "GNQ"])));
    let reviewed = json!({
        "type": "RoadmapReviewed", "occurred": "2024-01-20", "document_id": "doc",
        "parties": ["BLR"], "summary": "s", "evidence": [{"source_id": "src-a"}]
    });
    ev(reviewed.clone());
    assert_rejected(with(reviewed, "/parties", json!([])), "parties", &[]);
}

/// Splits `docs/events.md` into `(heading, json blocks)` for every `## ` section.
fn events_md_sections() -> Vec<(String, Vec<String>)> {
    let path = workspace_root().join("docs/events.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        if let Some(b) = block.as_mut() {
            if line.trim_start().starts_with("```") {
                let b = block.take().unwrap();
                if let Some(s) = sections.last_mut() {
                    s.1.push(b);
                } else {
                    panic!("json block before any heading");
                }
            } else {
                b.push_str(line);
                b.push('\n');
            }
        } else if line.trim_start().starts_with("```json") {
            block = Some(String::new());
        } else if let Some(h) = line.strip_prefix("## ") {
            sections.push((h.trim().to_owned(), Vec::new()));
        }
    }
    assert!(block.is_none(), "unterminated code block");
    sections
}

#[test]
fn events_md_has_one_example_per_type_in_catalogue_order() {
    // Transcribed from the catalogue, section 3.
    let catalogue = [
        "SourceRegistered",
        "CallHeld",
        "AgreementSigned",
        "RoadmapReviewed",
        "ConsultationAgreed",
        "InvitationExtended",
        "InvitationAccepted",
        "InvitationDeclined",
        "MeetingScheduled",
        "CommitmentPostponed",
        "CommitmentCancelled",
        "CommitmentFulfilled",
        "CommitmentReaffirmed",
        "CommitmentAssessed",
        "EventCorrected",
        "EventRetracted",
    ];
    assert_eq!(EVENT_TYPES, catalogue);
    let with_examples: Vec<String> = events_md_sections()
        .into_iter()
        .filter(|(_, blocks)| !blocks.is_empty())
        .map(|(h, blocks)| {
            assert_eq!(
                blocks.len(),
                1,
                "section {h} has {} json blocks",
                blocks.len()
            );
            h
        })
        .collect();
    assert_eq!(with_examples, catalogue);
}

#[test]
fn events_md_examples_round_trip() {
    let mut n = 0;
    for (heading, blocks) in events_md_sections() {
        let Some(block) = blocks.first() else {
            continue;
        };
        let original: Value = serde_json::from_str(block)
            .unwrap_or_else(|e| panic!("{heading}: example is not JSON: {e}"));
        let e1 = Event::from_json(block.as_bytes())
            .unwrap_or_else(|e| panic!("{heading}: example rejected: {e}"));
        assert_eq!(e1.type_name(), heading);
        let j1 = e1.to_json().unwrap();
        assert!(
            j1.starts_with(format!("{{\"type\":\"{heading}\"").as_bytes()),
            "{heading}: type first"
        );
        let e2 = Event::from_json(&j1).unwrap_or_else(|e| panic!("{heading}: {e}"));
        assert_eq!(e1, e2, "{heading}");
        assert_eq!(
            e2.to_json().unwrap(),
            j1,
            "{heading}: to_json is a fixed point"
        );
        // Nothing lost or added: the canonical form is the example, field for field.
        let canon: Value = serde_json::from_slice(&j1).unwrap();
        assert_eq!(canon, original, "{heading}");
        assert_eq!(e1.to_value(), original, "{heading}");
        n += 1;
    }
    assert_eq!(n, 16);
}

#[test]
fn seed_lines_round_trip_byte_for_byte_as_values() {
    for (i, line) in seed_lines().iter().enumerate() {
        let e = Event::from_json(line.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", i + 1));
        let original: Value = serde_json::from_str(line).unwrap();
        assert_eq!(e.to_value(), original, "seed line {}", i + 1);
        let again = Event::from_json(&e.to_json().unwrap()).unwrap();
        assert_eq!(again, e);
    }
}
