//! Time travel, automatic rebuilds after a version change, and incremental views equal to
//! rebuilt ones.
#![allow(clippy::unwrap_used)]

mod common;

use commitments_domain::event::Event;
use commitments_projection::{ListFilter, Tracker};
use common::*;
use proptest::prelude::*;

#[test]
fn known_at_between_two_imports_shows_the_first_board_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = TestClock::at("2024-01-22T09:00:00Z");
    let lines = seed_lines();
    {
        let t = open(&path, &clock);
        import_lines(&t, &lines[..9]);
    }
    let first = {
        let t = open(&path, &clock);
        t.list(&at("2024-03-15"), &ListFilter::default()).unwrap()
    };
    clock.set("2024-02-10T12:00:00Z");
    let t = open(&path, &clock);
    import_lines(&t, &lines[9..]);
    let mut between = at("2024-03-15");
    between.known_at = Some(
        chrono::DateTime::parse_from_rfc3339("2024-02-01T00:00:00Z")
            .unwrap()
            .into(),
    );
    let then = t.list(&between, &ListFilter::default()).unwrap();
    assert_eq!(without_known_at(&then), without_known_at(&first));
    assert_eq!(then.len(), 4);
    assert_eq!(
        t.list(&at("2024-03-15"), &ListFilter::default())
            .unwrap()
            .len(),
        6
    );
    // show and history of a commitment opened in the second stage do not exist then.
    assert!(t
        .history("zwe-cooperation-committee", &between)
        .unwrap()
        .is_empty());
}

#[test]
fn a_view_whose_version_differs_is_rebuilt_on_open_with_the_same_digest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = TestClock::at("2024-01-22T09:00:00Z");
    let before = {
        let t = open(&path, &clock);
        import_lines(&t, &seed_lines());
        let d = digests(&t);
        // Simulate views written by an older build: same rows, another version number.
        let m = t.store().view_meta("commitments").unwrap().unwrap();
        t.store()
            .view_commit("commitments", &[], m.checkpoint, m.version + 41)
            .unwrap();
        d
    };
    let (t, report) = commitments_projection::Tracker::open(&path, clock.options()).unwrap();
    assert_eq!(report.rebuilt.len(), 1, "{report:?}");
    assert_eq!(report.rebuilt[0].0, "commitments");
    assert!(
        report.rebuilt[0]
            .1
            .contains("rebuilding views after changes"),
        "{}",
        report.rebuilt[0].1
    );
    assert_eq!(digests(&t), before, "same logic, same rows, same digest");
    let m = t.store().view_meta("commitments").unwrap().unwrap();
    assert_eq!(
        m.version,
        commitments_projection::views::VIEWS[0].1,
        "the code's version again"
    );
    assert!(m.rebuilt_at.is_some());
}

#[test]
fn catch_up_on_open_heals_views_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = TestClock::at("2024-01-22T09:00:00Z");
    let lines = commitments_workload::generate(2_000, 7, 0, true);
    let reference = {
        let t = open(&path, &clock);
        import_lines(&t, &lines);
        digests(&t)
    };
    // Append straight to the store, as if the process died before updating the views.
    let more = commitments_workload::generate(500, 8, 10_000, false);
    {
        let t = open(&path, &clock);
        append_behind_views(&t, &more);
        assert_ne!(
            digests(&t)[0].2,
            t.store().head().unwrap().seq,
            "views are behind until the next open"
        );
    }
    let (t, report) = commitments_projection::Tracker::open(&path, clock.options()).unwrap();
    assert_eq!(report.caught_up, more.len() as u64);
    let head = t.store().head().unwrap().seq;
    assert!(digests(&t).iter().all(|d| d.2 == head));
    assert_ne!(digests(&t), reference);
    let live = digests(&t);
    t.rebuild(&[], &|_| {}).unwrap();
    assert_eq!(digests(&t), live, "caught-up views equal rebuilt ones");
}

/// A random but valid sequence of commitment events, corrections and retractions included.
fn scenario(seed: u64, commitments: usize) -> Vec<String> {
    let mut rng = commitments_workload::Rng::new(seed);
    let mut lines = vec![
        r#"{"type":"SourceRegistered","source_id":"src-p","url":"https://example.org/p","title":"p","language":"en"}"#
            .to_string(),
        r#"{"type":"CallHeld","call_id":"call-p","occurred":"2024-01-10","mode":"video","participants":[{"country":"BLR"},{"country":"IDN"}],"evidence":[{"source_id":"src-p"}]}"#.to_string(),
    ];
    let ev = r#""evidence":[{"source_id":"src-p","locator":"p1"}]"#;
    let mut ids: Vec<(String, usize)> = Vec::new();
    let mut event_ids: Vec<(String, String)> = Vec::new();
    let mut deferred: Vec<String> = Vec::new();
    let mut n_events = 0usize;
    for i in 0..commitments {
        let id = format!("c-{i}");
        if rng.below(3) == 0 {
            lines.push(format!(r#"{{"type":"InvitationExtended","event_id":"{}","commitment_id":"{id}","occurred":"2024-01-1{}","inviter":{{"country":"BLR"}},"invitee":{{"country":"ERI"}},"visit_type":"official","destination":"BLR",{ev}}}"#, uuid(&mut rng), rng.below(9)));
            if rng.below(2) == 0 {
                // Accepted, then postponed; retracting the acceptance later makes the
                // postponement illegal (it is then shown as invalidated).
                let accepted = uuid(&mut rng);
                lines.push(format!(r#"{{"type":"InvitationAccepted","event_id":"{accepted}","commitment_id":"{id}","occurred":"2024-02-01",{ev}}}"#));
                lines.push(format!(r#"{{"type":"CommitmentPostponed","event_id":"{}","commitment_id":"{id}","occurred":"2024-02-02",{ev}}}"#, uuid(&mut rng)));
                if rng.below(2) == 0 {
                    deferred.push(format!(r#"{{"type":"EventRetracted","event_id":"{}","target_event_id":"{accepted}","reason":"miscoded"}}"#, uuid(&mut rng)));
                }
                event_ids.push((id.clone(), accepted));
            }
        } else {
            lines.push(format!(r#"{{"type":"ConsultationAgreed","event_id":"{}","commitment_id":"{id}","occurred":"2024-01-2{}","kind":"bilateral_events","parties":["BLR","IDN"],"strength":"agreed","description":"d","due":{{"edtf":"2024-0{}","basis":"explicit"}},"origin":"call-p",{ev}}}"#, uuid(&mut rng), rng.below(9), 1 + rng.below(9)));
        }
        ids.push((id, lines.len() - 1));
    }
    let kinds = [
        "InvitationAccepted",
        "InvitationDeclined",
        "MeetingScheduled",
        "CommitmentPostponed",
        "CommitmentCancelled",
        "CommitmentFulfilled",
        "CommitmentReaffirmed",
        "CommitmentAssessed",
        "EventRetracted",
        "EventCorrected",
    ];
    for _ in 0..commitments * 4 {
        let (id, _) = ids[rng.below(ids.len())].clone();
        let kind = kinds[rng.below(kinds.len())];
        let eid = uuid(&mut rng);
        let body = match kind {
            "MeetingScheduled" => format!(
                r#""scheduled_for":{{"edtf":"2024-0{}","basis":"explicit"}}"#,
                1 + rng.below(9)
            ),
            "CommitmentPostponed" => r#""reason":"r""#.to_string(),
            "CommitmentFulfilled" => format!(
                r#""extent":"{}""#,
                if rng.below(2) == 0 { "full" } else { "partial" }
            ),
            "CommitmentAssessed" => format!(
                r#""as_of":"2024-05-01","rating":"{}","rationale":"r""#,
                ["on_track", "stalled", "lapsed"][rng.below(3)]
            ),
            "EventRetracted" | "EventCorrected" => {
                let mine: Vec<&(String, String)> =
                    event_ids.iter().filter(|(c, _)| *c == id).collect();
                if mine.is_empty() {
                    continue;
                }
                let target = mine[rng.below(mine.len())].1.clone();
                if kind == "EventRetracted" {
                    lines.push(format!(r#"{{"type":"EventRetracted","event_id":"{eid}","target_event_id":"{target}","reason":"miscoded"}}"#));
                } else {
                    lines.push(format!(r#"{{"type":"EventCorrected","event_id":"{eid}","target_event_id":"{target}","changes":[{{"path":"/note","old":null,"new":"corrected {n_events}"}}],"reason":"new_information"}}"#));
                }
                n_events += 1;
                continue;
            }
            _ => String::new(),
        };
        let sep = if body.is_empty() { "" } else { "," };
        lines.push(format!(
            r#"{{"type":"{kind}","event_id":"{eid}","commitment_id":"{id}","occurred":"2024-03-0{}"{sep}{body},{ev}}}"#,
            1 + rng.below(9)
        ));
        event_ids.push((id, eid));
        n_events += 1;
    }
    lines.extend(deferred);
    lines
}

fn uuid(rng: &mut commitments_workload::Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xFFFF,
        a & 0xFFF,
        0x8000 | (b >> 48 & 0x3FFF),
        b & 0xFFFF_FFFF_FFFF
    )
}

/// Keeps only the lines the domain accepts, in order (each checked against the earlier kept
/// ones), by importing them one at a time into a scratch tracker.
fn valid_only(lines: &[String]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2024-06-01T00:00:00Z");
    let t = open(&dir.path().join("db"), &clock);
    let mut kept = Vec::new();
    for l in lines {
        let Ok(e) = Event::from_json(l.as_bytes()) else {
            continue;
        };
        if t.import(vec![(1, Ok(e))], false, &|_| {}).is_ok() {
            kept.push(l.clone());
        }
    }
    kept
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).map(|n: u32| n.min(24)).unwrap_or(12), ..ProptestConfig::default() })]

    /// Views updated incrementally, in several catch-ups with reopens in between, equal views
    /// rebuilt from scratch, row for row and digest for digest.
    #[test]
    fn incremental_views_equal_rebuilt_views(seed in any::<u64>(), commitments in 1usize..12, cuts in proptest::collection::vec(0usize..100, 1..4)) {
        let lines = valid_only(&scenario(seed, commitments));
        let dir = tempfile::tempdir().unwrap();
        let clock = TestClock::at("2024-06-01T00:00:00Z");
        let inc = dir.path().join("inc");
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c * lines.len() / 100).collect();
        bounds.push(0);
        bounds.push(lines.len());
        bounds.sort_unstable();
        bounds.dedup();
        for w in bounds.windows(2) {
            let t = open(&inc, &clock);
            import_lines(&t, &lines[w[0]..w[1]]);
        }
        let t = open(&inc, &clock);
        let incremental = dump(&t);
        let inc_digests = digests(&t);
        t.rebuild(&[], &|_| {}).unwrap();
        prop_assert_eq!(&dump(&t), &incremental);
        prop_assert_eq!(&digests(&t), &inc_digests);
        let ok = t.verify(&|_| {}).unwrap().ok();
        prop_assert!(ok, "verify after rebuild");

        // And a store fed the same lines in one import holds the same rows.
        let once = open(&dir.path().join("once"), &clock);
        import_lines(&once, &lines);
        prop_assert_eq!(dump(&once), incremental);
    }

    /// `list` with filters (narrowed through the status, country and kind indexes, and for
    /// `--overdue` through the states that can be overdue) lists exactly the commitments of
    /// the whole board that pass them, on dates before, during and after the scenario.
    #[test]
    fn filtered_lists_equal_the_board_filtered(seed in any::<u64>(), commitments in 1usize..12) {
        let lines = valid_only(&scenario(seed, commitments));
        let dir = tempfile::tempdir().unwrap();
        let clock = TestClock::at("2024-06-01T00:00:00Z");
        let t = open(&dir.path().join("s"), &clock);
        import_lines(&t, &lines);
        let ids = |v: Vec<commitments_projection::CommitmentView>| -> Vec<String> {
            v.into_iter().map(|c| c.commitment_id).collect()
        };
        for as_of in ["2023-06-01", "2024-01-15", "2024-03-15", "2024-06-01", "2024-12-31", "2026-01-01"] {
            let read = at(as_of);
            let board = t.list(&read, &ListFilter::default()).unwrap();
            let want = |keep: &dyn Fn(&commitments_projection::CommitmentView) -> bool| -> Vec<String> {
                board.iter().filter(|v| keep(v)).map(|v| v.commitment_id.clone()).collect()
            };
            let overdue = ListFilter { overdue: true, ..ListFilter::default() };
            prop_assert_eq!(ids(t.list(&read, &overdue).unwrap()), want(&|v| v.overdue), "overdue on {}", as_of);
            for status in ["open", "scheduled", "fulfilled", "lapsed"] {
                let f = ListFilter { status: vec![status.into()], overdue: true, ..ListFilter::default() };
                prop_assert_eq!(ids(t.list(&read, &f).unwrap()), want(&|v| v.overdue && v.status == status), "overdue {} on {}", status, as_of);
            }
            if let Some(party) = board.first().and_then(|v| v.parties.first()).cloned() {
                let f = ListFilter { country: vec![party.clone()], overdue: true, ..ListFilter::default() };
                prop_assert_eq!(ids(t.list(&read, &f).unwrap()), want(&|v| v.overdue && v.parties.contains(&party)), "overdue {} on {}", party, as_of);
            }
        }
    }
}

#[test]
fn the_scenarios_exercise_corrections_retractions_and_invalidations() {
    let mut corrected = 0;
    let mut retracted = 0;
    let mut invalidated = 0;
    for seed in 0..8 {
        let lines = valid_only(&scenario(seed, 6));
        corrected += lines
            .iter()
            .filter(|l| l.contains("EventCorrected"))
            .count();
        retracted += lines
            .iter()
            .filter(|l| l.contains("EventRetracted"))
            .count();
        let dir = tempfile::tempdir().unwrap();
        let clock = TestClock::at("2024-06-01T00:00:00Z");
        let t = open(&dir.path().join("db"), &clock);
        import_lines(&t, &lines);
        for c in t.list(&at("2024-06-01"), &ListFilter::default()).unwrap() {
            let h = t.history(&c.commitment_id, &at("2024-06-01")).unwrap();
            invalidated += h.iter().filter(|r| r.effect == "invalidated").count();
        }
    }
    assert!(
        corrected > 0 && retracted > 0,
        "corrections {corrected}, retractions {retracted}"
    );
    assert!(
        invalidated > 0,
        "no retraction made a later event illegal in these scenarios"
    );
}

/// A full build whose rows outgrow its memory budget writes them out and reads them back as
/// later events need them: the views come out the same as the incrementally built ones.
#[test]
fn a_full_build_that_spills_its_rows_gives_the_same_views() {
    use commitments_projection::views::{run, ViewSet, VIEWS};
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2024-06-01T00:00:00Z");
    let t = open(&dir.path().join("db"), &clock);
    // More events than a full build applies between two checks of its budget, and then
    // corrections and retractions (which refold streams) after rows were spilled.
    import_lines(&t, &commitments_workload::generate(9_000, 5, 0, true));
    import_lines(&t, &valid_only(&scenario(3, 6)));
    let head = t.store().head().unwrap().seq;
    let mut set = ViewSet::shadow(".spill");
    set.row_budget = 0;
    let n = run(
        t.store(),
        &mut set,
        head,
        1_000,
        &commitments_domain::Upcasters::standard(),
        &|_| {},
    )
    .unwrap();
    assert_eq!(n, head);
    for (i, (name, _)) in VIEWS.iter().enumerate() {
        let shadow = t.store().view_meta(set.ns(i)).unwrap().unwrap();
        let live = t.store().view_meta(name).unwrap().unwrap();
        assert_eq!(
            (shadow.digest, shadow.rows, shadow.checkpoint),
            (live.digest, live.rows, live.checkpoint),
            "view {name}"
        );
        assert_eq!(
            t.store().view_digest_recompute(set.ns(i)).unwrap(),
            shadow.digest,
            "view {name}: rows and digest"
        );
    }
}

/// A rebuild reports how many rows it changed, view by view.
#[test]
fn a_rebuild_counts_the_rows_it_repairs() {
    use commitments_projection::rows::row_key;
    // Both ways a rebuild writes: rows kept in memory and rewritten in place where they
    // differ, and rows spilled to a shadow namespace (a row budget of 0) that is swapped in.
    for budget in [None, Some(0)] {
        let dir = tempfile::tempdir().unwrap();
        let clock = TestClock::at("2024-01-22T09:00:00Z");
        let path = dir.path().join("db");
        let t = open(&path, &clock);
        import_lines(&t, &seed_lines());
        let before = digests(&t);
        let rows_before = dump(&t);
        // Damage the live commitments view: one row altered, one row gone.
        let store = t.store();
        let m = store.view_meta("commitments").unwrap().unwrap();
        let altered = row_key("zwe-cooperation-committee");
        let gone = row_key("eri-official-visit");
        let mut v = store.view_get("commitments", &altered).unwrap().unwrap();
        v.push(b' ');
        store
            .view_commit(
                "commitments",
                &[(altered, Some(v)), (gone, None)],
                m.checkpoint,
                m.version,
            )
            .unwrap();
        assert_ne!(digests(&t), before);
        drop(t);
        let mut opts = clock.options();
        if let Some(b) = budget {
            opts.row_budget = b;
        }
        let t = Tracker::open(&path, opts).unwrap().0;

        let reports = t.rebuild(&[], &|_| {}).unwrap();
        for r in &reports {
            let (unchanged, changed) = match r.view.as_str() {
                "commitments" => (false, 2),
                _ => (true, 0),
            };
            assert_eq!(
                (r.unchanged, r.rows_changed),
                (unchanged, changed),
                "{budget:?} {r:?}"
            );
        }
        assert_eq!(
            digests(&t),
            before,
            "{budget:?}: the rebuild repaired the view"
        );
        assert_eq!(dump(&t), rows_before, "{budget:?}: the rows are back");
        assert!(t.verify(&|_| {}).unwrap().ok(), "{budget:?}: verify");
    }
}

#[test]
fn a_rebuild_cut_short_is_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2024-01-22T09:00:00Z");
    let path = dir.path().join("db");
    let t = open(&path, &clock);
    import_lines(&t, &seed_lines());
    let before = digests(&t);
    // What a rebuild that stopped half-way leaves: some rows rewritten, the rest not, and
    // the view marked (the rewrite is dropped without `finish`, as a crash would leave it).
    let rows: Vec<(Vec<u8>, Vec<u8>)> = t
        .store()
        .view_scan("commitments", b"")
        .map(|r| r.unwrap())
        .collect();
    let mut w = t.store().view_rewrite("commitments").unwrap();
    for (k, v) in rows.iter().take(rows.len() / 2) {
        let mut v = v.clone();
        v.push(b' ');
        w.put(k, &v).unwrap();
    }
    drop(w);
    assert_eq!(
        t.store().view_meta("commitments").unwrap().unwrap().version,
        commitments_store::VERSION_REWRITING
    );
    drop(t);
    let (t, report) = Tracker::open(&path, clock.options()).unwrap();
    assert_eq!(report.rebuilt.len(), 1, "{report:?}");
    assert!(
        report.rebuilt[0].1.contains("was being rebuilt"),
        "{report:?}"
    );
    assert_eq!(digests(&t), before);
}

#[test]
fn a_pass_over_the_log_reports_the_first_damage_in_log_order() {
    // Large enough for two reader threads (blocks of 4,096 events: 1..=4096 to the first,
    // 4097..=8192 to the second, 8193.. to the first again).
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2024-06-01T00:00:00Z");
    let t = open(&dir.path().join("db"), &clock);
    let lines = commitments_workload::generate(10_000, 7, 0, true);
    append_behind_views(&t, &lines);
    let tree = t.store().debug_raw_tree();
    let packs: Vec<(u64, Vec<u8>, Vec<u8>)> = tree
        .scan_prefix(b"P")
        .map(|kv| {
            let (k, v) = kv.unwrap();
            let first = u64::from_be_bytes(k[1..9].try_into().unwrap());
            (first, k.to_vec(), v.to_vec())
        })
        .collect();
    let holding = |seq: u64| packs.iter().rev().find(|p| p.0 <= seq).unwrap().clone();
    // Damage a pack in the second block, then one in the third, which the first reader
    // reaches while the events of the second are still being applied.
    let (early, _, _) = holding(6_000);
    let (late, _, _) = holding(9_000);
    assert!(early > 4_096 && late > 8_192 && early < late);
    for seq in [early, late] {
        let (_, k, v) = holding(seq);
        tree.insert(k, v[..40].to_vec()).unwrap();
    }
    let err = t.rebuild(&[], &|_| {}).unwrap_err().to_string();
    assert!(err.contains(&format!("{early}..=")), "{err}");
    // Nothing was written: the views are still missing, not half built.
    assert!(t.store().view_meta("commitments").unwrap().is_none());
}

/// A failed view preparation during an import (before it prepared anything, or after it had
/// staged the new views' rows) does not fail the import: the events are durable by then, and
/// the views catch up from the log to what a normal import gives.
#[test]
fn an_import_whose_view_preparation_fails_still_gets_its_views() {
    let lines = seed_lines();
    let clock = TestClock::at("2024-01-22T09:00:00Z");
    let reference = {
        let dir = tempfile::tempdir().unwrap();
        let t = open(&dir.path().join("db"), &clock);
        import_lines(&t, &lines);
        board(&t)
    };
    assert!(!reference.is_empty());
    for after_staging in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let t = open(&path, &clock);
            assert!(!t.inject_view_preparation_fault(after_staging));
            let report = import_lines(&t, &lines);
            assert_eq!(report.appended, lines.len() as u64);
            // The fault was met (the import took the path that prepares views beside it).
            assert!(!t.view_preparation_fault_pending(), "{after_staging}");
            assert_eq!(board(&t), reference, "{after_staging}");
            let v = t.verify(&|_| {}).unwrap();
            assert_eq!(v.log_problem, None);
            assert_eq!(v.views.len(), 4);
            assert!(v.views.iter().all(|(_, _, _, ok)| *ok), "{:?}", v.views);
        }
        // And after a reopen, with nothing left staged.
        let t = open(&path, &clock);
        assert_eq!(board(&t), reference, "{after_staging} after a reopen");
        assert!(t.verify(&|_| {}).unwrap().views.iter().all(|v| v.3));
    }
}

/// An import whose tracker leaves its memory to the process's exit (as the CLI's does) commits
/// the same views as one that frees it, and closing stores everything: after a reopen the
/// board is the same and `verify` passes. The second import in the same session shows that
/// what the first parked does not stand in the way of the next.
#[test]
fn an_import_that_leaves_its_memory_to_the_exit_commits_the_same_views() {
    let lines = seed_lines();
    let clock = TestClock::at("2024-01-22T09:00:00Z");
    let run = |leave: bool| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let t = open(&path, &clock);
        if leave {
            t.leave_memory_to_exit();
        }
        assert_eq!(import_lines(&t, &lines[..9]).appended, 9);
        let report = import_lines(&t, &lines[9..]);
        assert_eq!(report.appended, (lines.len() - 9) as u64);
        let live = board(&t);
        t.close();
        let t = open(&path, &clock);
        assert_eq!(board(&t), live, "leave = {leave}: after a reopen");
        let v = t.verify(&|_| {}).unwrap();
        assert_eq!(v.log_problem, None);
        assert!(v.views.iter().all(|(_, _, _, ok)| *ok), "{:?}", v.views);
        live
    };
    let freed = run(false);
    assert!(!freed.is_empty());
    assert_eq!(run(true), freed);
}
