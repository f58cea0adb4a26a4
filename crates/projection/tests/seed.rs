//! The seed story through the projections: the board, corrections and retractions.
#![allow(clippy::unwrap_used)]

mod common;

use commitments_domain::event::Event;
use commitments_projection::{ListFilter, Shown};
use common::*;

fn board(
    t: &commitments_projection::Tracker,
    as_of: &str,
) -> Vec<commitments_projection::CommitmentView> {
    t.list(&at(as_of), &ListFilter::default()).unwrap()
}

fn find<'a>(
    b: &'a [commitments_projection::CommitmentView],
    id: &str,
) -> &'a commitments_projection::CommitmentView {
    b.iter()
        .find(|c| c.commitment_id == id)
        .unwrap_or_else(|| panic!("{id} not on the board"))
}

#[test]
fn seed_board_as_of_2024_03_15() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2024-01-22T09:00:00Z");
    let t = open(&dir.path().join("db"), &clock);
    let r = import_lines(&t, &seed_lines());
    assert_eq!(r.appended, 17);
    assert_eq!(r.commitments.len(), 6);
    let b = board(&t, "2024-03-15");
    assert_eq!(b.len(), 6);

    let zwe = find(&b, "zwe-cooperation-committee");
    assert_eq!(zwe.status, "scheduled");
    assert!(zwe.overdue);
    assert_eq!(zwe.overdue_days, Some(15));
    assert_eq!(serde_json::to_value(zwe.overdue_basis).unwrap(), "stated");
    assert_eq!(zwe.due_earliest, Some(day("2024-02-01")));
    assert_eq!(zwe.due_latest, Some(day("2024-02-29")));
    assert_eq!(zwe.event_count, 2);

    let eri = find(&b, "eri-official-visit");
    assert_eq!(eri.status, "pending");
    assert_eq!(serde_json::to_value(eri.window).unwrap(), "no_deadline");
    assert!(eri.due.is_none());
    assert!(!eri.overdue);

    let idn = find(&b, "idn-bilateral-events");
    assert_eq!(serde_json::to_value(idn.window).unwrap(), "in_window");

    let aug = board(&t, "2024-08-01");
    let bgd = find(&aug, "bgd-political-consultations");
    assert!(bgd.overdue);
    assert_eq!(
        serde_json::to_value(bgd.overdue_basis).unwrap(),
        "policy_horizon"
    );
    assert_eq!(bgd.due_latest, Some(day("2024-07-18")));

    // Filters go through the indexes.
    let f = ListFilter {
        country: vec!["ZWE".into()],
        ..ListFilter::default()
    };
    let only = t.list(&at("2024-03-15"), &f).unwrap();
    assert_eq!(
        only.iter()
            .map(|c| c.commitment_id.as_str())
            .collect::<Vec<_>>(),
        ["zwe-cooperation-committee"]
    );
    let f = ListFilter {
        status: vec!["open".into()],
        ..ListFilter::default()
    };
    assert_eq!(t.list(&at("2024-03-15"), &f).unwrap().len(), 4);
    let f = ListFilter {
        overdue: true,
        ..ListFilter::default()
    };
    assert_eq!(t.list(&at("2024-03-15"), &f).unwrap().len(), 1);

    // Agenda: overdue first.
    let agenda = t.agenda(&at("2024-03-15")).unwrap();
    assert_eq!(agenda[0].commitment_id, "zwe-cooperation-committee");

    // The call that opened two Bangladesh commitments lists them.
    let calls = t.calls(&at("2024-03-15")).unwrap();
    assert_eq!(calls.len(), 7);
    let bgd_call = calls
        .iter()
        .find(|c| c.call_id == "call-blr-bgd-2024-01-20")
        .unwrap();
    assert_eq!(bgd_call.commitments.len(), 2);

    match t.show("gnq-roadmap", &at("2024-03-15")).unwrap() {
        Shown::Document { row, history } => {
            assert_eq!(row.reviews.len(), 1);
            assert_eq!(history.len(), 2);
        }
        other => panic!("expected a document, got {other:?}"),
    }
}

#[test]
fn correction_and_retraction_change_the_board_and_show_in_history() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2024-01-22T09:00:00Z");
    let t = open(&dir.path().join("db"), &clock);
    import_lines(&t, &seed_lines());

    // Zimbabwe: the meeting was actually set for March 2024 (a correction of the
    // MeetingScheduled), so on 2024-03-15 it is in its window, not overdue.
    let sched = t
        .history("zwe-cooperation-committee", &at("2024-03-15"))
        .unwrap()[1]
        .clone();
    assert_eq!(sched.event_type, "MeetingScheduled");
    clock.set("2024-02-01T10:00:00Z");
    let correction = format!(
        r#"{{"type":"EventCorrected","target_event_id":"{}","changes":[{{"path":"/scheduled_for/edtf","old":"2024-02","new":"2024-03"}}],"reason":"new_information"}}"#,
        sched.event_id.clone().unwrap()
    );
    t.record(Event::from_json(correction.as_bytes()).unwrap(), None)
        .unwrap();
    let zwe = find(&board(&t, "2024-03-15"), "zwe-cooperation-committee").clone();
    assert!(!zwe.overdue, "{zwe:?}");
    assert_eq!(serde_json::to_value(zwe.window).unwrap(), "in_window");
    assert_eq!(zwe.event_count, 3);

    // Retract the Eritrea invitation (miscoded): the commitment is retracted.
    let opener = t.history("eri-official-visit", &at("2024-03-15")).unwrap()[0].clone();
    let retraction = format!(
        r#"{{"type":"EventRetracted","target_event_id":"{}","reason":"miscoded"}}"#,
        opener.event_id.clone().unwrap()
    );
    t.record(Event::from_json(retraction.as_bytes()).unwrap(), None)
        .unwrap();
    let eri = find(&board(&t, "2024-03-15"), "eri-official-visit").clone();
    assert_eq!(eri.status, "retracted");
    assert!(eri.window.is_none());

    // Both show in the histories against their targets.
    let h = t
        .history("zwe-cooperation-committee", &at("2024-03-15"))
        .unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[2].event_type, "EventCorrected");
    assert_eq!(h[2].target_event_id, sched.event_id);
    assert_eq!(h[1].corrected_by.len(), 1);
    assert_eq!(h[2].status_before.as_deref(), Some("scheduled"));
    assert_eq!(
        h[2].due_before.as_ref().map(|d| d.edtf.0.to_string()),
        Some("2024-02".into())
    );
    assert_eq!(
        h[2].due_after.as_ref().map(|d| d.edtf.0.to_string()),
        Some("2024-03".into())
    );
    let h = t.history("eri-official-visit", &at("2024-03-15")).unwrap();
    assert_eq!(h[0].effect, "retracted");
    assert_eq!(h[1].effect, "retraction");
    assert_eq!(h[1].status_before.as_deref(), Some("pending"));
    assert_eq!(h[1].status_after.as_deref(), Some("retracted"));

    // A rebuild reproduces the incrementally maintained views exactly.
    let before = digests(&t);
    let reports = t.rebuild(&[], &|_| {}).unwrap();
    assert!(
        reports.iter().all(|r| r.unchanged && r.rows_changed == 0),
        "{reports:?}"
    );
    assert_eq!(before, digests(&t));
    assert!(t.verify(&|_| {}).unwrap().ok());

    // What the tracker showed before the correction: known_at just before it.
    let mut past = at("2024-03-15");
    past.known_at = Some(
        chrono::DateTime::parse_from_rfc3339("2024-01-31T00:00:00Z")
            .unwrap()
            .into(),
    );
    let then = t.list(&past, &ListFilter::default()).unwrap();
    let zwe_then = find(&then, "zwe-cooperation-committee");
    assert!(zwe_then.overdue);
    assert_eq!(find(&then, "eri-official-visit").status, "pending");
}

#[test]
fn replay_from_any_seq_shows_the_same_status_changes_as_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2024-01-22T09:00:00Z");
    let t = open(&dir.path().join("db"), &clock);
    import_lines(&t, &seed_lines());
    // A retraction of the Harare scheduling: the commitment goes back to open.
    let sched = t
        .history("zwe-cooperation-committee", &at("2024-03-15"))
        .unwrap()[1]
        .clone();
    let retraction = format!(
        r#"{{"type":"EventRetracted","target_event_id":"{}","reason":"miscoded"}}"#,
        sched.event_id.unwrap()
    );
    t.record(Event::from_json(retraction.as_bytes()).unwrap(), None)
        .unwrap();

    let replay = |from: u64| {
        let mut rows = Vec::new();
        t.replay(from, None, None, &[], None, &mut |r| {
            rows.push((r.seq, r.event_type, r.status_before, r.status_after));
            Ok(true)
        })
        .unwrap();
        rows
    };
    let full = replay(1);
    assert_eq!(full.len(), 18);
    let change = |seq: u64| full.iter().find(|r| r.0 == seq).cloned().unwrap();
    assert_eq!(change(15).2.as_deref(), Some("open"));
    assert_eq!(change(15).3.as_deref(), Some("scheduled"));
    assert_eq!(change(18).1, "EventRetracted");
    assert_eq!(change(18).2.as_deref(), Some("scheduled"));
    assert_eq!(change(18).3.as_deref(), Some("open"));
    assert_eq!(change(2).2, None, "a call has no commitment status");
    for from in [2, 15, 16, 18] {
        let tail: Vec<_> = full.iter().filter(|r| r.0 >= from).cloned().collect();
        assert_eq!(replay(from), tail, "replay from seq {from}");
    }
}

#[test]
fn corrections_and_retractions_of_calls_documents_and_sources_reach_their_views() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2024-01-22T09:00:00Z");
    let t = open(&dir.path().join("db"), &clock);
    import_lines(&t, &seed_lines());
    let first_event = |id: &str| {
        t.history(id, &at("2024-03-15")).unwrap()[0]
            .event_id
            .clone()
            .unwrap()
    };
    let record = |json: String| {
        t.record(Event::from_json(json.as_bytes()).unwrap(), None)
            .unwrap();
    };
    record(format!(
        r#"{{"type":"EventCorrected","target_event_id":"{}","changes":[{{"path":"/mode","old":"unspecified","new":"in_person"}}],"reason":"new_information"}}"#,
        first_event("call-blr-zwe")
    ));
    record(format!(
        r#"{{"type":"EventRetracted","target_event_id":"{}","reason":"duplicate"}}"#,
        first_event("call-blr-bih")
    ));
    record(format!(
        r#"{{"type":"EventCorrected","target_event_id":"{}","changes":[{{"path":"/title","old":"{}","new":"Roadmap"}}],"reason":"source_corrected"}}"#,
        first_event("gnq-roadmap"),
        match t.show("gnq-roadmap", &at("2024-03-15")).unwrap() {
            Shown::Document { row, .. } => row.title.clone(),
            other => panic!("{other:?}"),
        }
    ));
    record(format!(
        r#"{{"type":"EventRetracted","target_event_id":"{}","reason":"source_retracted"}}"#,
        first_event("src-aleinik")
    ));

    let calls = t.calls(&at("2024-03-15")).unwrap();
    let call = |id: &str| calls.iter().find(|c| c.call_id == id).unwrap().clone();
    assert_eq!(call("call-blr-zwe-2024-01-20").mode.as_str(), "in_person");
    assert!(!call("call-blr-zwe-2024-01-20").retracted);
    assert_eq!(call("call-blr-zwe-2024-01-20").event_count, 2);
    assert!(call("call-blr-bih-2024-01-20").retracted);
    match t.show("gnq-roadmap", &at("2024-03-15")).unwrap() {
        Shown::Document { row, .. } => {
            assert_eq!(row.title, "Roadmap");
            assert_eq!(row.reviews.len(), 1, "the review survives the correction");
            assert!(!row.retracted);
        }
        other => panic!("{other:?}"),
    }
    match t.show("src-aleinik", &at("2024-03-15")).unwrap() {
        Shown::Source { row, .. } => {
            assert!(row.retracted);
            assert_eq!(row.event_count, 2);
        }
        other => panic!("{other:?}"),
    }
    let live = digests(&t);
    let reports = t.rebuild(&[], &|_| {}).unwrap();
    assert!(reports.iter().all(|r| r.unchanged), "{reports:?}");
    assert_eq!(digests(&t), live);
}
