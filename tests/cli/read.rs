//! Reads: `list` (filters), `show` (prefixes), `history`, `replay`, `calls`, `documents`,
//! `agenda`.

use serde_json::Value;

use crate::common::*;

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|c| c["commitment_id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn list_shows_every_commitment_with_the_catalogue_fields() {
    let s = Store::seeded();
    let v = s.json(&["list"]);
    assert_eq!(v.as_array().unwrap().len(), 6);
    let fields = [
        "commitment_id",
        "kind",
        "status",
        "parties",
        "description",
        "due",
        "due_earliest",
        "due_latest",
        "window",
        "overdue",
        "overdue_basis",
        "overdue_days",
        "stalled",
        "origin",
        "opened_seq",
        "last_seq",
        "event_count",
        "as_of",
        "known_at",
    ];
    for c in v.as_array().unwrap() {
        for f in fields {
            assert!(c.get(f).is_some(), "{f} missing in {c}");
        }
    }
    let eri = v
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["commitment_id"] == "eri-official-visit")
        .unwrap();
    assert_eq!(eri["parties"], serde_json::json!(["BLR", "ERI"]));
    assert_eq!(eri["status"], "pending");
    assert_eq!(eri["as_of"], "2024-01-21");
}

#[test]
fn list_filters() {
    let s = Store::seeded();
    assert_eq!(
        ids(&s.json(&["list", "--country", "BGD"])),
        ["bgd-political-consultations", "bgd-trade-commission"]
    );
    assert_eq!(
        ids(&s.json(&["list", "--country", "zwe,idn"])),
        ["idn-bilateral-events", "zwe-cooperation-committee"]
    );
    assert_eq!(
        ids(&s.json(&["list", "--status", "pending,scheduled"])),
        ["eri-official-visit", "zwe-cooperation-committee"]
    );
    assert_eq!(
        ids(&s.json(&["list", "--kind", "bilateral_events", "--country", "MOZ"])),
        ["moz-bilateral-activities"]
    );
    assert_eq!(
        ids(&s.json(&["list", "--overdue", "--as-of", "2024-03-15"])),
        ["zwe-cooperation-committee"]
    );
    assert!(ids(&s.json(&["list", "--overdue"])).is_empty());
    assert_eq!(
        ids(&s.json(&["list", "--due-before", "2024-03-01"])),
        ["zwe-cooperation-committee"]
    );
    assert_eq!(
        ids(&s.json(&["list", "--due-after", "2025-01-01"])),
        ["moz-bilateral-activities"]
    );
    // A status that does not exist is a usage error.
    s.cmd()
        .args(["list", "--status", "overdue"])
        .assert()
        .code(2);
}

#[test]
fn list_human_table_and_colour() {
    let s = Store::seeded();
    let out = s
        .cmd()
        .args(["list", "--as-of", "2024-03-15"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.lines().next().unwrap().starts_with("ID"), "{text}");
    assert!(text.contains("15 days"));
    assert!(!text.contains('\x1b'), "no colour when not a terminal");
    let out = s
        .cmd()
        .args(["--color", "always", "list", "--as-of", "2024-03-15"])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("\x1b[31m"), "overdue in red");
    // COLUMNS narrows the table: long cells are cut with an ellipsis.
    let out = s.cmd().env("COLUMNS", "100").arg("list").output().unwrap();
    let text = stdout(&out);
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    assert!(text.contains('…'));
}

#[test]
fn show_by_prefix_and_ambiguous_prefix() {
    let s = Store::seeded();
    let v = s.json(&["show", "zwe"]);
    assert_eq!(v["subject"], "commitment");
    assert_eq!(v["commitment_id"], "zwe-cooperation-committee");
    assert_eq!(v["status"], "scheduled");
    let h = v["history"].as_array().unwrap();
    assert_eq!(h.len(), 2);
    for f in [
        "seq",
        "event_id",
        "type",
        "occurred",
        "recorded_at",
        "recorded_by",
        "status_before",
        "status_after",
        "due_before",
        "due_after",
        "hash",
        "target_event_id",
    ] {
        assert!(h[0].get(f).is_some(), "history lacks {f}");
    }
    assert_eq!(h[1]["status_before"], "open");
    assert_eq!(h[1]["status_after"], "scheduled");

    let out = s.cmd().args(["show", "zwe-c"]).output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("commitment:") && text.contains("history:"),
        "{text}"
    );
    assert!(text.contains("src-aleinik-2024-01-20"));

    let out = s.cmd().args(["show", "bgd"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("error: `bgd` is ambiguous"), "{err}");
    assert!(err.contains("bgd-political-consultations") && err.contains("bgd-trade-commission"));

    let out = s.cmd().args(["show", "nothing-here"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nothing-here"));

    // Calls, documents and sources too.
    assert_eq!(s.json(&["show", "call-blr-zwe"])["subject"], "call");
    assert_eq!(s.json(&["show", "gnq-roadmap"])["subject"], "document");
    assert_eq!(s.json(&["show", "src-"])["subject"], "source");
}

#[test]
fn history_is_the_audit_trail() {
    let s = Store::seeded();
    let v = s.json(&["history", "zwe-cooperation-committee"]);
    let h = v.as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["seq"], 14);
    assert_eq!(h[0]["type"], "ConsultationAgreed");
    assert_eq!(h[0]["status_before"], Value::Null);
    assert_eq!(h[0]["status_after"], "open");
    assert_eq!(h[0]["due_after"]["edtf"], "2024-02");
    let out = s.cmd().args(["history", "zwe"]).output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("MeetingScheduled") && text.contains("open → scheduled"),
        "{text}"
    );
}

#[test]
fn replay_human_and_json() {
    let s = Store::seeded();
    let out = s.cmd().arg("replay").output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 18, "{text}");
    assert!(text.contains("∅ → open"));

    let out = s.cmd().args(["--json", "replay"]).output().unwrap();
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 17);
    let keys = [
        "seq",
        "event_id",
        "type",
        "stream",
        "occurred",
        "recorded_at",
        "recorded_by",
        "status_before",
        "status_after",
        "hash",
    ];
    for l in &lines {
        let obj = l.as_object().unwrap();
        for k in keys {
            assert!(obj.contains_key(k), "{k} missing in {l}");
        }
    }
    assert_eq!(lines[0]["status_after"], Value::Null);
    assert_eq!(lines[14]["stream"], "zwe-cooperation-committee");
    assert_eq!(lines[14]["status_before"], "open");
    assert_eq!(lines[14]["status_after"], "scheduled");

    let out = s
        .cmd()
        .args([
            "--json",
            "replay",
            "--from",
            "3",
            "--to",
            "10",
            "--type",
            "consultation-agreed",
        ])
        .output()
        .unwrap();
    let seqs: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [3, 4, 6]);
    let out = s
        .cmd()
        .args(["--json", "replay", "--stream", "zwe"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).lines().count(), 2);
    s.cmd().args(["replay", "--type", "Nope"]).assert().code(2);
}

#[test]
fn calls_documents_agenda() {
    let s = Store::seeded();
    let calls = s.json(&["calls"]);
    assert_eq!(calls.as_array().unwrap().len(), 7);
    assert_eq!(calls[0]["call_id"], "call-blr-bgd-2024-01-20");
    let out = s.cmd().arg("calls").output().unwrap();
    assert!(stdout(&out).contains("BGD (Muhammad Hasan Mahmud)"));

    let docs = s.json(&["documents"]);
    assert_eq!(docs[0]["document_id"], "gnq-roadmap-2023-12");
    assert_eq!(docs[0]["reviews"].as_array().unwrap().len(), 1);

    let agenda = s.json(&["agenda", "--as-of", "2024-03-15"]);
    assert_eq!(agenda[0]["commitment_id"], "zwe-cooperation-committee");
    assert_eq!(agenda[0]["overdue"], true);
    assert_eq!(agenda[0]["overdue_days"], 15);
    let out = s
        .cmd()
        .args(["agenda", "--as-of", "2024-03-15"])
        .output()
        .unwrap();
    let text = stdout(&out);
    let first = text.lines().nth(1).unwrap();
    assert!(
        first.starts_with("overdue")
            && first.contains("15 days")
            && first.contains("zwe-cooperation-committee"),
        "{text}"
    );
}

#[test]
fn reading_a_missing_store_is_an_error() {
    let s = Store::new();
    let out = s.cmd().arg("list").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no store at"));
    assert!(!s.path.exists(), "a read must not create the store");
}

#[test]
fn closed_stdout_exits_quietly() {
    let s = Store::seeded();
    let mut cmd = std::process::Command::new(bin());
    cmd.env("COMMITMENTS_NOW", NOW)
        .env_remove("COMMITMENTS_TEST_HOLD_MS")
        .arg("--store")
        .arg(&s.path)
        .arg("replay")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("internal error"));
}

#[test]
fn a_panic_is_an_internal_error_and_releases_the_store() {
    let s = Store::seeded();
    let out = s
        .cmd()
        .env("COMMITMENTS_TEST_PANIC", "1")
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70));
    let err = stderr(&out);
    assert!(err.starts_with("internal error: "), "{err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{err}");
    s.cmd()
        .args(["--lock-timeout", "0", "verify"])
        .assert()
        .success();
}
