//! The commitment state machine against the catalogue's transition table (section 4), one
//! (state, event) pair at a time.
#![allow(clippy::unwrap_used)]

mod common;

use commitments_domain::{
    decide, evolve, evolve_in_place, fold_stream, next_status, DomainError, Effect, Event, Status,
};
use common::*;

const CID: &str = "c-test";

/// The events of the table's columns, plus the two assessments that do not change the status.
const EVENTS: &[&str] = &[
    "Accepted",
    "Declined",
    "Scheduled",
    "Postponed",
    "Fulfilled(full)",
    "Fulfilled(partial)",
    "Cancelled",
    "Reaffirmed",
    "Assessed(lapsed)",
    "Assessed(stalled)",
    "Assessed(on_track)",
];

/// The catalogue's table, transcribed: one row per state, one entry per column of `EVENTS`;
/// `None` is `reject`. `fulfilled*` is split by `extent`; `same` is written out.
#[rustfmt::skip]
const TABLE: &[(&str, [Option<&str>; 11])] = &[
    //              Accepted      Declined          Scheduled          Postponed          Fulfilled(full)     Fulfilled(partial)            Cancelled          Reaffirmed         Assessed lapsed   Assessed stalled   Assessed on_track
    ("pending",   [Some("open"), Some("declined"), Some("scheduled"), None,              Some("fulfilled"), Some("partially_fulfilled"), Some("cancelled"), Some("pending"),   Some("lapsed"),   Some("pending"),   Some("pending")]),
    ("open",      [None,         None,             Some("scheduled"), Some("postponed"), Some("fulfilled"), Some("partially_fulfilled"), Some("cancelled"), Some("open"),      Some("lapsed"),   Some("open"),      Some("open")]),
    ("scheduled", [None,         None,             Some("scheduled"), Some("postponed"), Some("fulfilled"), Some("partially_fulfilled"), Some("cancelled"), Some("scheduled"), Some("lapsed"),   Some("scheduled"), Some("scheduled")]),
    ("postponed", [None,         None,             Some("scheduled"), Some("postponed"), Some("fulfilled"), Some("partially_fulfilled"), Some("cancelled"), Some("postponed"), Some("lapsed"),   Some("postponed"), Some("postponed")]),
    ("lapsed",    [None,         None,             Some("scheduled"), None,              Some("fulfilled"), Some("partially_fulfilled"), Some("cancelled"), Some("open"),      Some("lapsed"),   Some("lapsed"),    Some("lapsed")]),
    ("fulfilled",           [None, None, None, None, None, None, None, None, None, None, None]),
    ("partially_fulfilled", [None, None, None, None, None, None, None, None, None, None, None]),
    ("declined",            [None, None, None, None, None, None, None, None, None, None, None]),
    ("cancelled",           [None, None, None, None, None, None, None, None, None, None, None]),
    ("retracted",           [None, None, None, None, None, None, None, None, None, None, None]),
];

/// The event of column `col`, for commitment `cid`, with id number `n`.
fn column_event(col: usize, n: u64, cid: &str) -> Event {
    match EVENTS[col] {
        "Accepted" => accepted(n, cid),
        "Declined" => declined(n, cid),
        "Scheduled" => scheduled(n, cid, "2024-04"),
        "Postponed" => postponed(n, cid),
        "Fulfilled(full)" => fulfilled(n, cid, "full"),
        "Fulfilled(partial)" => fulfilled(n, cid, "partial"),
        "Cancelled" => cancelled(n, cid),
        "Reaffirmed" => reaffirmed(n, cid),
        "Assessed(lapsed)" => assessed(n, cid, "lapsed"),
        "Assessed(stalled)" => assessed(n, cid, "stalled"),
        "Assessed(on_track)" => assessed(n, cid, "on_track"),
        other => panic!("no column {other}"),
    }
}

/// A stream that leaves the commitment in `state` (reached through real events, not by
/// setting the field).
fn path_to(state: &str) -> Vec<Event> {
    let mut v = match state {
        "pending" | "declined" => vec![invited(10, CID)],
        _ => vec![agreed(10, CID)],
    };
    match state {
        "pending" | "open" => {}
        "scheduled" => v.push(scheduled(11, CID, "2024-03")),
        "postponed" => v.push(postponed(11, CID)),
        "lapsed" => v.push(assessed(11, CID, "lapsed")),
        "fulfilled" => v.push(fulfilled(11, CID, "full")),
        "partially_fulfilled" => v.push(fulfilled(11, CID, "partial")),
        "declined" => v.push(declined(11, CID)),
        "cancelled" => v.push(cancelled(11, CID)),
        "retracted" => v.push(retracted(11, 10)),
        other => panic!("no path to {other}"),
    }
    v
}

/// A model store holding the test source and the path to `state`.
fn model_in(state: &str) -> Model {
    let mut m = Model::new();
    m.import_ok(&[source(1, SRC)]);
    m.import_ok(&path_to(state));
    m
}

fn status(s: &str) -> Status {
    Status::parse(s).unwrap_or_else(|| panic!("not a status: {s}"))
}

#[test]
fn the_table_covers_every_state_and_its_paths_reach_it() {
    let names: Vec<&str> = TABLE.iter().map(|(s, _)| *s).collect();
    let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(names, all, "one row per catalogue state, in order");
    for (state, _) in TABLE {
        let events = path_to(state);
        let refs: Vec<&Event> = events.iter().collect();
        let fold = fold_stream(&refs);
        assert_eq!(
            fold.state.as_ref().map(|s| s.status),
            Some(status(state)),
            "path to {state}"
        );
        assert_eq!(
            status(state).is_terminal(),
            [
                "fulfilled",
                "partially_fulfilled",
                "declined",
                "cancelled",
                "retracted"
            ]
            .contains(state),
            "terminal: {state}"
        );
    }
}

#[test]
fn next_status_follows_the_table() {
    let mut checked = 0;
    for (state, row) in TABLE {
        for (col, expected) in row.iter().enumerate() {
            let e = column_event(col, 50, CID);
            let got = next_status(status(state), &e);
            assert_eq!(
                got,
                expected.map(status),
                "next_status({state}, {})",
                EVENTS[col]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 10 * 11);
}

#[test]
fn decide_and_evolve_follow_the_table() {
    for (state, row) in TABLE {
        let path = path_to(state);
        let refs: Vec<&Event> = path.iter().collect();
        let folded = fold_stream(&refs)
            .state
            .expect("the path opens the commitment");
        for (col, expected) in row.iter().enumerate() {
            let e = column_event(col, 50, CID);
            let what = format!("({state}, {})", EVENTS[col]);
            match (decide(Some(&folded), &e), expected) {
                (Ok(()), Some(next)) => {
                    let after = evolve(Some(folded.clone()), &e).expect("state after");
                    assert_eq!(after.status, status(next), "{what}");
                    assert_eq!(after.commitment_id.as_str(), CID, "{what}");
                    // The views and the validator change their copy in place: same result.
                    let mut in_place = folded.clone();
                    evolve_in_place(&mut in_place, &e);
                    assert_eq!(in_place, after, "{what}");
                }
                (Err(err), None) => {
                    assert_eq!(
                        err,
                        DomainError::Transition {
                            commitment: CID.to_owned(),
                            state: state.to_string(),
                            event_type: e.type_name().to_owned(),
                        },
                        "{what}"
                    );
                    let msg = err.to_string();
                    for part in [CID, state, e.type_name()] {
                        assert!(msg.contains(part), "{what}: `{msg}` does not name {part}");
                    }
                }
                (Ok(()), None) => panic!("{what}: accepted, the table says reject"),
                (Err(err), Some(next)) => {
                    panic!("{what}: rejected ({err}), the table says {next}")
                }
            }
        }
    }
}

#[test]
fn fold_stream_applies_or_invalidates_per_the_table() {
    for (state, row) in TABLE {
        for (col, expected) in row.iter().enumerate() {
            let mut events = path_to(state);
            events.push(column_event(col, 50, CID));
            let refs: Vec<&Event> = events.iter().collect();
            let fold = fold_stream(&refs);
            let last = fold.steps.last().expect("a step per event");
            let what = format!("({state}, {})", EVENTS[col]);
            assert_eq!(last.status_before, Some(status(state)), "{what}");
            match expected {
                Some(next) => {
                    assert_eq!(last.effect, Effect::Applied, "{what}");
                    assert_eq!(last.status_after, Some(status(next)), "{what}");
                    assert!(fold.effective.last().expect("row").is_some(), "{what}");
                }
                None => {
                    match &last.effect {
                        Effect::Invalidated(reason) => {
                            assert!(reason.contains(CID), "{what}: {reason}");
                            assert!(reason.contains(events[events.len() - 1].type_name()));
                        }
                        other => panic!("{what}: expected invalidated, got {other:?}"),
                    }
                    assert_eq!(last.status_after, Some(status(state)), "{what}");
                    assert!(fold.effective.last().expect("row").is_none(), "{what}");
                }
            }
        }
    }
}

#[test]
fn the_validator_follows_the_table_over_a_store() {
    for (state, row) in TABLE {
        let m = model_in(state);
        for (col, expected) in row.iter().enumerate() {
            let e = column_event(col, 50, CID);
            let what = format!("({state}, {})", EVENTS[col]);
            match (m.check(&e), expected) {
                (Ok(v), Some(_)) => assert_eq!(
                    v,
                    commitments_domain::Verdict::Append {
                        stream: CID.to_owned()
                    },
                    "{what}"
                ),
                (Err(DomainError::Transition { state: s, .. }), None) => {
                    assert_eq!(s, *state, "{what}")
                }
                (got, want) => panic!("{what}: got {got:?}, table says {want:?}"),
            }
        }
    }
}

#[test]
fn a_lifecycle_event_for_an_unknown_commitment_is_rejected() {
    for col in 0..EVENTS.len() {
        let e = column_event(col, 50, "nobody");
        let err = decide(None, &e).expect_err("no commitment");
        let msg = err.to_string();
        assert!(msg.contains("nobody"), "{msg}");
        assert!(msg.contains(e.type_name()), "{msg}");
        assert_eq!(err.field_path(), Some("commitment_id"), "{msg}");
        assert_eq!(evolve(None, &e), None, "evolve keeps it absent");

        let mut m = Model::new();
        m.import_ok(&[source(1, SRC)]);
        let err = m.check(&e).expect_err("unknown commitment in the store");
        assert!(err.to_string().contains("nobody"), "{err}");
        assert_eq!(err.field_path(), Some("commitment_id"), "{err}");
    }
}

#[test]
fn an_opener_for_an_existing_commitment_is_rejected() {
    for state in ["pending", "open", "lapsed", "fulfilled", "retracted"] {
        let path = path_to(state);
        let refs: Vec<&Event> = path.iter().collect();
        let s = fold_stream(&refs).state.expect("opened");
        for opener in [agreed(60, CID), invited(60, CID)] {
            let err = decide(Some(&s), &opener).expect_err("already exists");
            match &err {
                DomainError::Transition {
                    commitment,
                    state: st,
                    event_type,
                } => {
                    assert_eq!(commitment, CID);
                    assert!(st.contains(state), "{st}");
                    assert_eq!(event_type, opener.type_name());
                }
                other => panic!("expected a transition error, got {other:?}"),
            }
            // Over a store: refused, naming the id.
            let m = model_in(state);
            let err = m.check(&opener).expect_err("already registered");
            assert!(err.to_string().contains(CID), "{err}");
        }
    }
    // An opener on a fresh id is accepted; one whose id names a call is not.
    assert_eq!(decide(None, &agreed(61, "fresh")), Ok(()));
    let mut m = Model::new();
    m.import_ok(&[source(1, SRC), call(2, CALL)]);
    let err = m.check(&agreed(62, CALL)).expect_err("id taken by a call");
    assert!(err.to_string().contains(CALL), "{err}");
}

#[test]
fn assessments_are_accepted_in_every_non_terminal_state_and_on_track_does_not_reopen() {
    for (state, _) in TABLE {
        for rating in ["stalled", "on_track", "lapsed"] {
            let mut events = path_to(state);
            events.push(assessed(50, CID, rating));
            let refs: Vec<&Event> = events.iter().collect();
            let fold = fold_stream(&refs);
            let applied = fold.steps.last().expect("row").effect == Effect::Applied;
            assert_eq!(applied, !status(state).is_terminal(), "{state} + {rating}");
        }
    }
    let events = [
        agreed(10, CID),
        assessed(11, CID, "lapsed"),
        assessed(12, CID, "on_track"),
    ];
    let refs: Vec<&Event> = events.iter().collect();
    assert_eq!(
        fold_stream(&refs).state.expect("state").status,
        Status::Lapsed
    );
}

/// Folds `events` and returns `(status, stalled)` after each one.
fn trace(events: &[Event]) -> Vec<(Status, bool)> {
    let mut state = None;
    let mut out = Vec::new();
    for e in events {
        decide(state.as_ref(), e).unwrap_or_else(|err| panic!("{err}"));
        state = evolve(state, e);
        let s = state.as_ref().expect("opened");
        out.push((s.status, s.stalled));
    }
    out
}

#[test]
fn the_stalled_flag_is_kept_through_reaffirmation_lapse_and_terminal_states() {
    use Status::*;
    let events = vec![
        agreed(10, CID),
        assessed(11, CID, "stalled"),
        reaffirmed(12, CID),
        assessed(13, CID, "lapsed"),
        reaffirmed(14, CID),
        scheduled(15, CID, "2024-05"),
        assessed(16, CID, "on_track"),
        assessed(17, CID, "stalled"),
        cancelled(18, CID),
    ];
    assert_eq!(
        trace(&events),
        vec![
            (Open, false),
            (Open, true),
            (Open, true),
            (Lapsed, true),
            (Open, true),
            (Scheduled, true),
            (Scheduled, false),
            (Scheduled, true),
            (Cancelled, true),
        ]
    );
    // Each terminal state keeps it.
    for last in [
        fulfilled(20, CID, "full"),
        fulfilled(20, CID, "partial"),
        cancelled(20, CID),
    ] {
        let t = trace(&[agreed(10, CID), assessed(11, CID, "stalled"), last]);
        assert!(t[2].0.is_terminal() && t[2].1, "{t:?}");
    }
    let t = trace(&[
        invited(10, CID),
        assessed(11, CID, "stalled"),
        declined(12, CID),
    ]);
    assert_eq!(t[2], (Declined, true));
    // A retracted opener: the stream is retracted, the flag as the opener left it.
    let events = [
        agreed(10, CID),
        assessed(11, CID, "stalled"),
        retracted(12, 10),
    ];
    let refs: Vec<&Event> = events.iter().collect();
    let s = fold_stream(&refs).state.expect("retracted commitment");
    assert_eq!(s.status, Retracted);
}
