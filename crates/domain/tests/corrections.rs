//! Corrections and retractions (catalogue section 4): what may be patched, what a retraction
//! undoes, and how the stream is refolded.
#![allow(clippy::unwrap_used)]

mod common;

use commitments_domain::event::EventCorrected;
use commitments_domain::values::Change;
use commitments_domain::{
    apply_changes, DomainError, Effect, Event, Status, Verdict, STORE_FIELDS,
};
use common::*;
use serde_json::json;

const CID: &str = "c-test";

/// A store with the test source, a call and `ConsultationAgreed` #10 (due `2024-02`).
fn with_commitment() -> Model {
    let mut m = Model::new();
    m.import_ok(&[source(1, SRC), call(2, CALL), agreed(10, CID)]);
    m
}

fn due_text(m: &Model, id: &str) -> Option<String> {
    m.commitment(id)
        .and_then(|s| s.due.map(|d| d.spec.edtf.0.as_str().to_owned()))
}

fn status(m: &Model, id: &str) -> Option<Status> {
    m.commitment(id).map(|s| s.status)
}

#[test]
fn a_correction_with_a_wrong_old_is_rejected() {
    let m = with_commitment();
    let c = corrected(
        20,
        10,
        json!([{"path": "/due/edtf", "old": "2024-03", "new": "2024-05"}]),
    );
    let err = m.check(&c).expect_err("old does not match");
    assert_eq!(err.field_path(), Some("changes[0].old"), "{err}");
    assert!(
        err.to_string().contains("2024-02"),
        "says what it is: {err}"
    );
    // The second change is named by its index.
    let c = corrected(
        21,
        10,
        json!([
            {"path": "/due/edtf", "old": "2024-02", "new": "2024-05"},
            {"path": "/description", "old": "Something else", "new": "x"}
        ]),
    );
    let err = m.check(&c).expect_err("second old does not match");
    assert_eq!(err.field_path(), Some("changes[1].old"), "{err}");
    // An absent field's current value is null.
    let c = corrected(22, 10, json!([{"path": "/note", "old": "x", "new": "y"}]));
    assert_eq!(
        m.check(&c).expect_err("absent").field_path(),
        Some("changes[0].old")
    );
    let c = corrected(23, 10, json!([{"path": "/note", "old": null, "new": "y"}]));
    assert!(m.check(&c).is_ok());
    // Nothing was written by the refusals.
    assert_eq!(m.log.len(), 3);
}

#[test]
fn a_correct_correction_changes_the_folded_due_and_status() {
    let mut m = with_commitment();
    let c = corrected(
        20,
        10,
        json!([
            {"path": "/due/edtf", "old": "2024-02", "new": "2024-05"},
            {"path": "/due/basis", "old": "explicit", "new": "relative_resolved"}
        ]),
    );
    assert_eq!(
        m.import_ok(&[c]),
        [Verdict::Append {
            stream: CID.to_owned()
        }]
    );
    assert_eq!(due_text(&m, CID).as_deref(), Some("2024-05"));
    let fold = fold_of(&m, CID);
    assert_eq!(fold.steps[0].corrected_by, vec![event_id(20)]);
    assert_eq!(fold.steps[1].effect, Effect::Meta);
    assert_eq!(
        fold.steps[1]
            .due_before
            .as_ref()
            .map(|d| d.edtf.0.as_str().to_owned()),
        Some("2024-02".to_owned())
    );
    assert_eq!(
        fold.steps[1]
            .due_after
            .as_ref()
            .map(|d| d.edtf.0.as_str().to_owned()),
        Some("2024-05".to_owned())
    );
    // The effective event is the patched one.
    let patched = fold.effective[0].as_ref().unwrap().to_value();
    assert_eq!(patched["due"]["basis"], "relative_resolved");

    // A later correction's `old` is the value after earlier corrections.
    let stale = corrected(
        21,
        10,
        json!([{"path": "/due/edtf", "old": "2024-02", "new": "2024-06"}]),
    );
    assert_eq!(
        m.check(&stale).expect_err("stale old").field_path(),
        Some("changes[0].old")
    );
    let fresh = corrected(
        21,
        10,
        json!([{"path": "/due/edtf", "old": "2024-05", "new": "2024-06"}]),
    );
    m.import_ok(&[fresh]);
    assert_eq!(due_text(&m, CID).as_deref(), Some("2024-06"));

    // Correcting a fulfilment's extent changes the status.
    m.import_ok(&[fulfilled(30, CID, "full")]);
    assert_eq!(status(&m, CID), Some(Status::Fulfilled));
    m.import_ok(&[corrected(
        31,
        30,
        json!([{"path": "/extent", "old": "full", "new": "partial"}]),
    )]);
    assert_eq!(status(&m, CID), Some(Status::PartiallyFulfilled));
    let fold = fold_of(&m, CID);
    let last = fold.steps.last().unwrap();
    assert_eq!(last.status_before, Some(Status::Fulfilled));
    assert_eq!(last.status_after, Some(Status::PartiallyFulfilled));
}

#[test]
fn a_correction_can_make_a_later_event_illegal() {
    let mut m = with_commitment();
    m.import_ok(&[assessed(11, CID, "stalled"), postponed(12, CID)]);
    assert_eq!(status(&m, CID), Some(Status::Postponed));
    // Re-rated as lapsed: the postponement is no longer allowed (lapsed rejects Postponed).
    m.import_ok(&[corrected(
        13,
        11,
        json!([{"path": "/rating", "old": "stalled", "new": "lapsed"}]),
    )]);
    let fold = fold_of(&m, CID);
    assert!(
        matches!(&fold.steps[2].effect, Effect::Invalidated(r) if r.contains("lapsed")),
        "{:?}",
        fold.steps[2].effect
    );
    assert_eq!(fold.steps[3].status_before, Some(Status::Postponed));
    assert_eq!(fold.steps[3].status_after, Some(Status::Lapsed));
    assert_eq!(status(&m, CID), Some(Status::Lapsed));
    assert!(
        !m.commitment(CID).unwrap().stalled,
        "the flag was never set"
    );
}

#[test]
fn protected_paths_are_rejected() {
    let mut paths: Vec<String> = [
        "/type",
        "/event_id",
        "/commitment_id",
        "/call_id",
        "/source_id",
        "/document_id",
        "/target_event_id",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    paths.extend(STORE_FIELDS.iter().map(|f| format!("/{f}")));
    for path in &paths {
        let line = json!({
            "type": "EventCorrected", "event_id": eid(20), "target_event_id": eid(10),
            "changes": [{"path": path, "old": "x", "new": "y"}], "reason": "coding_error"
        });
        let err = reject(line);
        assert_eq!(err.field_path(), Some("changes[0].path"), "{path}: {err}");
        assert!(
            err.to_string().contains("cannot be corrected"),
            "{path}: {err}"
        );
        // apply_changes refuses them too.
        let target = agreed(10, CID);
        let change = Change {
            path: path.clone(),
            old: json!("x"),
            new: json!("y"),
        };
        let err = apply_changes(&target, &[change]).expect_err(path);
        assert_eq!(err.field_path(), Some("changes[0].path"), "{path}: {err}");
    }
    // Not a pointer, or naming nothing.
    for path in ["due/edtf", "", "/"] {
        let line = json!({
            "type": "EventCorrected", "target_event_id": eid(10),
            "changes": [{"path": path, "old": null, "new": "y"}], "reason": "coding_error"
        });
        assert_eq!(
            reject(line).field_path(),
            Some("changes[0].path"),
            "{path:?}"
        );
    }
    // The second change is named by its index.
    let line = json!({
        "type": "EventCorrected", "target_event_id": eid(10),
        "changes": [{"path": "/note", "old": null, "new": "y"},
                    {"path": "/type", "old": "ConsultationAgreed", "new": "CallHeld"}],
        "reason": "coding_error"
    });
    assert_eq!(reject(line).field_path(), Some("changes[1].path"));
    // An empty change list corrects nothing.
    let line = json!({
        "type": "EventCorrected", "target_event_id": eid(10), "changes": [],
        "reason": "coding_error"
    });
    assert_eq!(reject(line).field_path(), Some("changes"));
    // Deeper paths that merely contain such a name are fine.
    let c = corrected(
        20,
        10,
        json!([{"path": "/evidence/0/source_id", "old": SRC, "new": SRC}]),
    );
    assert!(with_commitment().check(&c).is_ok());
}

#[test]
fn the_patched_target_must_still_be_valid() {
    let m = with_commitment();
    for (path, old, new) in [
        ("/parties/1", json!("BGD"), json!("ZZZ")),
        ("/parties/1", json!("BGD"), json!("BLR")),
        ("/kind", json!("political_consultations"), json!("summit")),
        ("/due/edtf", json!("2024-02"), json!("2024-21")),
        (
            "/evidence",
            json!([{"source_id": SRC, "locator": "paragraph 1"}]),
            json!([]),
        ),
        ("/occurred", json!("2024-01-20"), json!(null)),
        ("/foo", json!(null), json!(1)),
    ] {
        let c = corrected(20, 10, json!([{"path": path, "old": old, "new": new}]));
        let err = m.check(&c).expect_err(path);
        assert_eq!(err.field_path(), Some("changes"), "{path}: {err}");
        assert!(err.to_string().contains("invalid"), "{path}: {err}");
    }
    // A path into something that does not exist.
    let c = corrected(
        20,
        10,
        json!([{"path": "/location/city", "old": null, "new": "Minsk"}]),
    );
    assert_eq!(
        m.check(&c).expect_err("no location").field_path(),
        Some("changes[0].path")
    );
}

#[test]
fn retracting_an_acceptance_invalidates_a_later_postponement() {
    let mut m = Model::new();
    m.import_ok(&[
        source(1, SRC),
        invited(10, CID),
        accepted(11, CID),
        postponed(12, CID),
    ]);
    assert_eq!(status(&m, CID), Some(Status::Postponed));
    assert_eq!(due_text(&m, CID).as_deref(), Some("2024-03-01/.."));
    m.import_ok(&[retracted(13, 11)]);

    let fold = fold_of(&m, CID);
    assert_eq!(fold.steps.len(), 4);
    assert_eq!(fold.steps[0].effect, Effect::Applied);
    assert_eq!(fold.steps[1].effect, Effect::Retracted(event_id(13)));
    match &fold.steps[2].effect {
        Effect::Invalidated(reason) => {
            for part in [CID, "pending", "CommitmentPostponed"] {
                assert!(reason.contains(part), "reason lacks {part}: {reason}");
            }
        }
        other => panic!("expected the postponement invalidated, got {other:?}"),
    }
    assert_eq!(fold.steps[2].status_before, Some(Status::Pending));
    assert_eq!(fold.steps[2].status_after, Some(Status::Pending));
    // The retraction's row: before and after the refold it caused.
    let r = &fold.steps[3];
    assert_eq!(r.effect, Effect::Meta);
    assert_eq!(r.status_before, Some(Status::Postponed));
    assert_eq!(r.status_after, Some(Status::Pending));
    assert_eq!(
        r.due_before.as_ref().map(|d| d.edtf.0.as_str().to_owned()),
        Some("2024-03-01/..".to_owned())
    );
    assert_eq!(r.due_after, None);
    assert_eq!(fold.state.as_ref().unwrap().status, Status::Pending);
    assert!(fold.effective[1].is_none() && fold.effective[2].is_none());
    assert!(fold.effective[0].is_some());
    // Everything stays in the log.
    assert_eq!(m.stream(CID).len(), 4);

    // The validator judges later events against the refolded state.
    let err = m.check(&postponed(14, CID)).expect_err("pending again");
    assert!(
        matches!(&err, DomainError::Transition { state, .. } if state == "pending"),
        "{err:?}"
    );
    assert!(m.check(&accepted(14, CID)).is_ok());
}

#[test]
fn the_same_holds_within_one_batch() {
    let mut m = Model::new();
    let (i, err) = m
        .import(&[
            source(1, SRC),
            invited(10, CID),
            accepted(11, CID),
            retracted(12, 11),
            postponed(13, CID),
        ])
        .expect_err("postponed while pending");
    assert_eq!(i, 4);
    assert!(
        matches!(err, DomainError::Transition { ref state, .. } if state == "pending"),
        "{err:?}"
    );
    assert!(m.log.is_empty(), "a refused batch writes nothing");
}

#[test]
fn retracting_an_opener_leaves_the_commitment_retracted() {
    let mut m = with_commitment();
    m.import_ok(&[scheduled(11, CID, "2024-03"), retracted(12, 10)]);
    let s = m.commitment(CID).unwrap();
    assert_eq!(s.status, Status::Retracted);
    // It keeps the opener's fields for display and filters.
    assert_eq!(
        s.parties.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        ["BLR", "BGD"]
    );
    assert_eq!(s.description, "Hold consultations");
    let fold = fold_of(&m, CID);
    assert_eq!(fold.steps[0].effect, Effect::Retracted(event_id(12)));
    assert!(matches!(fold.steps[1].effect, Effect::Invalidated(_)));
    assert_eq!(fold.steps[2].status_before, Some(Status::Scheduled));
    assert_eq!(fold.steps[2].status_after, Some(Status::Retracted));
    // Terminal: nothing more is accepted, and the error says so.
    let err = m.check(&cancelled(13, CID)).expect_err("retracted");
    assert_eq!(
        err,
        DomainError::Transition {
            commitment: CID.to_owned(),
            state: "retracted".to_owned(),
            event_type: "CommitmentCancelled".to_owned(),
        }
    );
    // The same for an invitation.
    let mut m = Model::new();
    m.import_ok(&[source(1, SRC), invited(10, CID), retracted(11, 10)]);
    assert_eq!(status(&m, CID), Some(Status::Retracted));
}

#[test]
fn retracting_a_correction_undoes_its_patch() {
    let mut m = with_commitment();
    m.import_ok(&[corrected(
        20,
        10,
        json!([{"path": "/due/edtf", "old": "2024-02", "new": "2024-05"}]),
    )]);
    assert_eq!(due_text(&m, CID).as_deref(), Some("2024-05"));
    m.import_ok(&[retracted(21, 20)]);
    assert_eq!(due_text(&m, CID).as_deref(), Some("2024-02"));
    let fold = fold_of(&m, CID);
    assert!(fold.steps[0].corrected_by.is_empty());
    assert_eq!(fold.steps[1].effect, Effect::Retracted(event_id(21)));
    let r = &fold.steps[2];
    assert_eq!(
        r.due_before.as_ref().map(|d| d.edtf.0.as_str().to_owned()),
        Some("2024-05".to_owned())
    );
    assert_eq!(
        r.due_after.as_ref().map(|d| d.edtf.0.as_str().to_owned()),
        Some("2024-02".to_owned())
    );
    // A new correction starts from the unpatched value.
    let stale = corrected(
        22,
        10,
        json!([{"path": "/due/edtf", "old": "2024-05", "new": "2024-07"}]),
    );
    assert_eq!(
        m.check(&stale).expect_err("patch undone").field_path(),
        Some("changes[0].old")
    );
    let fresh = corrected(
        22,
        10,
        json!([{"path": "/due/edtf", "old": "2024-02", "new": "2024-07"}]),
    );
    assert!(m.check(&fresh).is_ok());
}

#[test]
fn a_retraction_cannot_be_corrected_or_retracted() {
    let mut m = with_commitment();
    m.import_ok(&[scheduled(11, CID, "2024-03"), retracted(12, 11)]);
    for e in [
        retracted(13, 12),
        corrected(
            13,
            12,
            json!([{"path": "/reason", "old": "miscoded", "new": "duplicate"}]),
        ),
    ] {
        let err = m.check(&e).expect_err("target is an EventRetracted");
        assert_eq!(err.field_path(), Some("target_event_id"), "{err}");
        assert!(err.to_string().contains("EventRetracted"), "{err}");
    }
    // Nor can an event be retracted twice.
    let err = m.check(&retracted(13, 11)).expect_err("already retracted");
    assert_eq!(err.field_path(), Some("target_event_id"), "{err}");
}

#[test]
fn an_unknown_target_is_named() {
    let m = with_commitment();
    for e in [
        corrected(20, 999, json!([{"path": "/note", "old": null, "new": "x"}])),
        retracted(20, 999),
    ] {
        let err = m.check(&e).expect_err("unknown target");
        assert_eq!(err.field_path(), Some("target_event_id"), "{err}");
        assert!(err.to_string().contains(&eid(999)), "{err}");
    }
}

#[test]
fn a_correction_may_target_an_event_earlier_in_the_same_batch() {
    let mut m = Model::new();
    let verdicts = m.import_ok(&[
        source(1, SRC),
        call(2, CALL),
        agreed(10, CID),
        corrected(
            11,
            10,
            json!([{"path": "/due/edtf", "old": "2024-02", "new": "2024-09"}]),
        ),
        corrected(
            12,
            2,
            json!([{"path": "/mode", "old": "phone", "new": "video"}]),
        ),
        // A later correction in the batch sees the earlier one.
        corrected(
            13,
            10,
            json!([{"path": "/due/edtf", "old": "2024-09", "new": "2024-10"}]),
        ),
    ]);
    let streams: Vec<String> = verdicts
        .iter()
        .map(|v| match v {
            Verdict::Append { stream } => stream.clone(),
            Verdict::Duplicate => "duplicate".to_owned(),
        })
        .collect();
    assert_eq!(streams, [SRC, CALL, CID, CID, CALL, CID]);
    assert_eq!(due_text(&m, CID).as_deref(), Some("2024-10"));
    // The call's stream holds the corrected call.
    let fold = fold_of(&m, CALL);
    let call_now = fold.effective[0].as_ref().unwrap();
    assert!(matches!(call_now, Event::CallHeld(_)));
    assert_eq!(call_now.to_value()["mode"], "video");
    // A stale `old` within the batch is refused.
    let (i, err) = Model::new()
        .import(&[
            source(1, SRC),
            agreed(10, CID),
            corrected(
                11,
                10,
                json!([{"path": "/due/edtf", "old": "2024-02", "new": "2024-09"}]),
            ),
            corrected(
                12,
                10,
                json!([{"path": "/due/edtf", "old": "2024-02", "new": "2024-10"}]),
            ),
        ])
        .expect_err("stale old");
    assert_eq!(i, 3);
    assert_eq!(err.field_path(), Some("changes[0].old"), "{err}");
}

#[test]
fn corrections_decode_with_their_changes() {
    let c = corrected(
        20,
        10,
        json!([{"path": "/a~1b/c~0d", "old": 1, "new": [2]}]),
    );
    let Event::EventCorrected(EventCorrected { changes, .. }) = &c else {
        panic!("not a correction");
    };
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, "/a~1b/c~0d");
    assert_eq!(changes[0].old, json!(1));
    assert_eq!(changes[0].new, json!([2]));
    assert_eq!(c.subject(), None, "its stream is the target's");
}

#[test]
fn a_correction_of_an_invalidated_event_sees_its_earlier_corrections() {
    // Catalogue: `old` must equal the target's current value after earlier corrections. An
    // invalidated event stays in the log and can still be corrected.
    let mut m = Model::new();
    m.import_ok(&[
        source(1, SRC),
        invited(10, CID),
        accepted(11, CID),
        postponed(12, CID),
        corrected(
            13,
            12,
            json!([{"path": "/reason", "old": null, "new": "host busy"}]),
        ),
        retracted(14, 11),
    ]);
    let fold = fold_of(&m, CID);
    assert!(matches!(fold.steps[2].effect, Effect::Invalidated(_)));
    assert_eq!(fold.steps[2].corrected_by, vec![event_id(13)]);
    let stale = corrected(
        15,
        12,
        json!([{"path": "/reason", "old": null, "new": "other"}]),
    );
    assert_eq!(
        m.check(&stale)
            .expect_err("the reason was corrected")
            .field_path(),
        Some("changes[0].old")
    );
    let fresh = corrected(
        15,
        12,
        json!([{"path": "/reason", "old": "host busy", "new": "other"}]),
    );
    assert!(m.check(&fresh).is_ok(), "{:?}", m.check(&fresh));
}

#[test]
fn a_patched_target_must_still_name_known_references() {
    // Catalogue: the patched target must still be valid, and references (origin, evidence
    // source) must exist.
    let m = with_commitment();
    let c = corrected(
        20,
        10,
        json!([{"path": "/origin", "old": null, "new": "call-nowhere"}]),
    );
    let err = m.check(&c).expect_err("unknown call");
    assert_eq!(err.field_path(), Some("changes"), "{err}");
    assert!(err.to_string().contains("call-nowhere"), "{err}");
    assert!(err.to_string().contains("`origin`"), "{err}");
    let c = corrected(
        20,
        10,
        json!([{"path": "/evidence/0/source_id", "old": SRC, "new": "src-nowhere"}]),
    );
    let err = m.check(&c).expect_err("unknown source");
    assert_eq!(err.field_path(), Some("changes"), "{err}");
    assert!(err.to_string().contains("src-nowhere"), "{err}");
    // A known call is fine.
    let c = corrected(
        20,
        10,
        json!([{"path": "/origin", "old": null, "new": CALL}]),
    );
    assert!(m.check(&c).is_ok(), "{:?}", m.check(&c));
}
