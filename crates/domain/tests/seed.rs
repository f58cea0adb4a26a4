//! The seed story (docs/examples/aleinik-2024-01-20.jsonl): it validates as a batch, re-sending
//! it is a no-op, and its commitments' windows are what the catalogue says.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::NaiveDate;
use commitments_domain::{
    window, Event, OverdueBasis, Status, Verdict, WindowState, WindowView, DEFAULT_HORIZON_DAYS,
};
use common::*;
use serde_json::{json, Value};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn seeded() -> Model {
    let mut m = Model::new();
    m.import_ok(&seed_events());
    m
}

/// The window of commitment `id` in the seeded store as of `as_of` (default horizon).
fn window_of(m: &Model, id: &str, as_of: &str) -> WindowView {
    let s = m
        .commitment(id)
        .unwrap_or_else(|| panic!("no commitment {id}"));
    window(s.status, s.due.as_ref(), d(as_of), DEFAULT_HORIZON_DAYS)
}

#[test]
fn the_seed_validates_as_one_batch_over_an_empty_store() {
    let lines = seed_lines();
    assert_eq!(lines.len(), 17);
    let events = seed_events();
    let count = |t: &str| events.iter().filter(|e| e.type_name() == t).count();
    assert_eq!(count("SourceRegistered"), 1);
    assert_eq!(count("CallHeld"), 7);
    assert_eq!(count("ConsultationAgreed") + count("InvitationExtended"), 6);
    assert_eq!(count("InvitationExtended"), 1);
    assert_eq!(count("AgreementSigned"), 1);
    assert_eq!(count("RoadmapReviewed"), 1);
    assert_eq!(count("MeetingScheduled"), 1);

    let mut m = Model::new();
    let verdicts = m
        .import(&events)
        .map_err(|(i, e)| format!("line {}: {e}", i + 1));
    let verdicts = verdicts.unwrap();
    assert_eq!(verdicts.len(), 17);
    for (e, v) in events.iter().zip(&verdicts) {
        // Every line is appended to its subject's stream.
        let subject = e
            .subject()
            .expect("seed events name their subject")
            .to_string();
        assert_eq!(v, &Verdict::Append { stream: subject }, "{}", e.type_name());
    }
    let commitments: Vec<&str> = events
        .iter()
        .filter_map(|e| e.commitment_id().map(|c| c.as_str()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        commitments,
        [
            "bgd-political-consultations",
            "bgd-trade-commission",
            "eri-official-visit",
            "idn-bilateral-events",
            "moz-bilateral-activities",
            "zwe-cooperation-committee",
        ]
    );
    let statuses: Vec<Status> = commitments
        .iter()
        .map(|c| m.commitment(c).unwrap().status)
        .collect();
    use Status::*;
    assert_eq!(statuses, [Open, Open, Pending, Open, Open, Scheduled]);
    // The invitation's parties are inviter then invitee.
    let eri = m.commitment("eri-official-visit").unwrap();
    assert_eq!(
        eri.parties.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        ["BLR", "ERI"]
    );
}

#[test]
fn re_validating_the_seed_over_a_store_that_holds_it_is_a_no_op() {
    let m = seeded();
    let before = m.log.len();
    let mut again = m.clone();
    let verdicts = again.import_ok(&seed_events());
    assert!(
        verdicts.iter().all(|v| *v == Verdict::Duplicate),
        "{verdicts:?}"
    );
    assert_eq!(verdicts.len(), 17);
    assert_eq!(again.log.len(), before, "nothing appended");

    // Within one batch too: the second copy of each line is a duplicate.
    let mut doubled = seed_events();
    doubled.extend(seed_events());
    let verdicts = Model::new().import_ok(&doubled);
    assert!(verdicts[..17]
        .iter()
        .all(|v| matches!(v, Verdict::Append { .. })));
    assert!(verdicts[17..].iter().all(|v| *v == Verdict::Duplicate));
}

#[test]
fn the_same_event_id_with_different_content_is_an_error() {
    let m = seeded();
    let mut v: Value = serde_json::from_str(&seed_lines()[2]).unwrap();
    v["description"] = json!("Something else");
    let changed = ev(v);
    let err = m.check(&changed).expect_err("same id, different content");
    assert_eq!(err.field_path(), Some("event_id"), "{err}");
    assert!(err
        .to_string()
        .contains("0190f3b2-5c1e-7a4b-9d7e-000000000003"));
    // Also within a batch.
    let mut batch = seed_events();
    batch.push(changed);
    let (i, err) = Model::new().import(&batch).expect_err("conflict in batch");
    assert_eq!(i, 17);
    assert_eq!(err.field_path(), Some("event_id"), "{err}");
}

#[test]
fn references_must_come_earlier() {
    // Without the source, the first call's evidence names nothing.
    let events = seed_events();
    let (i, err) = Model::new().import(&events[1..]).expect_err("no source");
    assert_eq!(i, 0);
    assert_eq!(err.field_path(), Some("evidence[0].source_id"), "{err}");
    assert!(err.to_string().contains("src-aleinik-2024-01-20"), "{err}");
    // A commitment before its origin call.
    let mut reordered = events.clone();
    reordered.swap(1, 2);
    let (i, err) = Model::new().import(&reordered).expect_err("origin later");
    assert_eq!(i, 1);
    assert_eq!(err.field_path(), Some("origin"), "{err}");
    // A roadmap review before the roadmap.
    let mut reordered = events;
    reordered.swap(10, 11);
    let (i, err) = Model::new().import(&reordered).expect_err("document later");
    assert_eq!(i, 10);
    assert_eq!(err.field_path(), Some("document_id"), "{err}");
}

#[test]
fn zimbabwe_committee_meeting_window() {
    let m = seeded();
    let id = "zwe-cooperation-committee";
    let s = m.commitment(id).unwrap();
    assert_eq!(s.status, Status::Scheduled);
    assert_eq!(s.due.as_ref().unwrap().spec.edtf.0.as_str(), "2024-02");

    let w = window_of(&m, id, "2024-02-10");
    assert_eq!(w.window, Some(WindowState::InWindow));
    assert!(!w.overdue);
    assert_eq!(w.overdue_basis, None);
    assert_eq!(w.overdue_days, None);
    assert_eq!(w.due_earliest, Some(d("2024-02-01")));
    assert_eq!(w.due_latest, Some(d("2024-02-29")));

    let w = window_of(&m, id, "2024-03-15");
    assert_eq!(w.window, Some(WindowState::Overdue));
    assert!(w.overdue);
    assert_eq!(w.overdue_days, Some(15));
    assert_eq!(w.overdue_basis, Some(OverdueBasis::Stated));

    // The edges: the window's last day is on time, the day before it opens is not yet due.
    assert_eq!(
        window_of(&m, id, "2024-02-29").window,
        Some(WindowState::InWindow)
    );
    let w = window_of(&m, id, "2024-03-01");
    assert_eq!(
        (w.window, w.overdue_days),
        (Some(WindowState::Overdue), Some(1))
    );
    assert_eq!(
        window_of(&m, id, "2024-01-31").window,
        Some(WindowState::NotYetDue)
    );
    assert_eq!(
        window_of(&m, id, "2024-02-01").window,
        Some(WindowState::InWindow)
    );
}

#[test]
fn bangladesh_consultations_fall_to_the_policy_horizon() {
    let m = seeded();
    for id in ["bgd-political-consultations", "bgd-trade-commission"] {
        // 2024-01-20 + 180 days = 2024-07-18 (11 + 29 + 31 + 30 + 31 + 30 + 18 days).
        let w = window_of(&m, id, "2024-07-18");
        assert_eq!(w.window, Some(WindowState::InWindow), "{id}");
        assert_eq!(w.due_earliest, Some(d("2024-01-20")));
        assert_eq!(w.due_latest, Some(d("2024-07-18")));
        assert!(!w.overdue);
        assert_eq!(w.overdue_basis, None);

        let w = window_of(&m, id, "2024-07-19");
        assert_eq!(w.window, Some(WindowState::Overdue));
        assert_eq!(w.overdue_days, Some(1));

        let w = window_of(&m, id, "2024-08-01");
        assert_eq!(w.window, Some(WindowState::Overdue));
        assert!(w.overdue);
        assert_eq!(w.overdue_days, Some(14));
        assert_eq!(w.overdue_basis, Some(OverdueBasis::PolicyHorizon));
    }
    // The horizon is a read-time parameter.
    let s = m.commitment("bgd-political-consultations").unwrap();
    let w = window(Status::Open, s.due.as_ref(), d("2024-03-01"), 30);
    assert_eq!(w.due_latest, Some(d("2024-02-19")));
    assert_eq!(w.overdue_days, Some(11));
    assert_eq!(w.overdue_basis, Some(OverdueBasis::PolicyHorizon));
}

#[test]
fn eritrea_invitation_has_no_deadline() {
    let m = seeded();
    let s = m.commitment("eri-official-visit").unwrap();
    assert_eq!(s.status, Status::Pending);
    assert_eq!(s.due, None);
    for as_of in ["2024-01-20", "2030-01-01"] {
        let w = window_of(&m, "eri-official-visit", as_of);
        assert_eq!(w.window, Some(WindowState::NoDeadline));
        assert!(!w.overdue);
        assert_eq!(w.overdue_basis, None);
        assert_eq!(w.overdue_days, None);
        assert_eq!((w.due_earliest, w.due_latest), (None, None));
    }
}

#[test]
fn indonesia_and_mozambique_are_in_window_in_march() {
    let m = seeded();
    let w = window_of(&m, "idn-bilateral-events", "2024-03-15");
    assert_eq!(w.window, Some(WindowState::InWindow));
    assert_eq!(w.due_earliest, Some(d("2024-01-01")));
    assert_eq!(w.due_latest, Some(d("2024-12-31")));
    let w = window_of(&m, "idn-bilateral-events", "2025-01-01");
    assert_eq!(
        (w.window, w.overdue_days),
        (Some(WindowState::Overdue), Some(1))
    );

    let w = window_of(&m, "moz-bilateral-activities", "2024-03-15");
    assert_eq!(w.window, Some(WindowState::InWindow));
    assert_eq!(w.due_latest, Some(d("2025-12-31")));
}

#[test]
fn finished_and_lapsed_commitments_have_no_window_but_keep_their_bounds() {
    let mut m = seeded();
    let done = ev(json!({
        "type": "CommitmentFulfilled", "event_id": eid(900), "occurred": "2024-04-15",
        "commitment_id": "zwe-cooperation-committee", "extent": "full",
        "evidence": [{"source_id": "src-aleinik-2024-01-20"}]
    }));
    let lapsed = ev(json!({
        "type": "CommitmentAssessed", "event_id": eid(901), "occurred": "2024-08-01",
        "commitment_id": "bgd-trade-commission", "as_of": "2024-08-01", "rating": "lapsed",
        "rationale": "nothing heard",
        "evidence": [{"source_id": "src-aleinik-2024-01-20"}]
    }));
    m.import_ok(&[done, lapsed]);
    let w = window_of(&m, "zwe-cooperation-committee", "2024-08-01");
    assert_eq!(w.window, None);
    assert!(!w.overdue);
    assert_eq!((w.overdue_basis, w.overdue_days), (None, None));
    assert_eq!(w.due_latest, Some(d("2024-02-29")));
    let w = window_of(&m, "bgd-trade-commission", "2024-08-01");
    assert_eq!(w.window, None);
    assert!(!w.overdue);
    assert_eq!(w.due_latest, Some(d("2024-07-18")));
}

#[test]
fn the_seed_is_not_accepted_twice_under_new_ids() {
    // Subject ids are registered once: the same opener under a new event id is refused.
    let m = seeded();
    let mut v: Value = serde_json::from_str(&seed_lines()[2]).unwrap();
    v["event_id"] = json!(eid(777));
    let err = m.check(&ev(v)).expect_err("registered twice");
    assert_eq!(err.field_path(), Some("commitment_id"), "{err}");
    assert!(err.to_string().contains("bgd-political-consultations"));
}

/// A store that cannot be read: the validator must say so, not answer "unknown".
struct Unreadable;

impl commitments_domain::Context for Unreadable {
    fn subject_kind(
        &self,
        _: &str,
    ) -> Result<Option<commitments_domain::SubjectKind>, commitments_domain::DomainError> {
        Err(commitments_domain::DomainError::Unavailable(
            "disk on fire".into(),
        ))
    }
    fn commitment(
        &self,
        _: &str,
    ) -> Result<Option<commitments_domain::CommitmentState>, commitments_domain::DomainError> {
        Err(commitments_domain::DomainError::Unavailable(
            "disk on fire".into(),
        ))
    }
    fn event(
        &self,
        _: &commitments_domain::EventId,
    ) -> Result<Option<(String, Event)>, commitments_domain::DomainError> {
        Err(commitments_domain::DomainError::Unavailable(
            "disk on fire".into(),
        ))
    }
    fn stream_events(&self, _: &str) -> Result<Vec<Event>, commitments_domain::DomainError> {
        Err(commitments_domain::DomainError::Unavailable(
            "disk on fire".into(),
        ))
    }
}

#[test]
fn a_store_that_cannot_be_read_is_an_error_not_a_verdict() {
    let ctx = Unreadable;
    let mut v = commitments_domain::Validator::new(&ctx);
    for line in seed_lines().iter().take(3) {
        let e = Event::from_json(line.as_bytes()).expect("seed line decodes");
        match v.check(&e) {
            Err(commitments_domain::DomainError::Unavailable(m)) => {
                assert!(m.contains("disk on fire"))
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}

#[test]
fn events_encoded_ahead_validate_as_the_events_do() {
    use commitments_domain::{Encoded, Validator};
    let events = seed_events();
    let empty = Model::new();
    let (mut plain, mut ahead) = (Validator::new(&empty), Validator::new(&empty));
    for e in &events {
        let want = plain.check(e).unwrap();
        let enc = Encoded::new(e.clone());
        let (back, got) = ahead.check_encoded(enc).unwrap();
        assert_eq!(got, want, "{}", e.type_name());
        assert_eq!(back.to_json().ok(), e.to_json().ok());
    }
    let bodies = |v: &Validator<'_, Model>| -> Vec<Vec<u8>> {
        v.accepted().iter().map(|a| a.body.clone()).collect()
    };
    assert_eq!(bodies(&ahead), bodies(&plain));
    // Over the seeded store, every encoded event is a duplicate: its body is the stored one.
    let m = seeded();
    let mut again = Validator::new(&m);
    for e in &events {
        let (_, v) = again.check_encoded(Encoded::new(e.clone())).unwrap();
        assert_eq!(v, Verdict::Duplicate, "{}", e.type_name());
    }
}
