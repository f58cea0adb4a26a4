//! `import`: the board it prints, idempotent re-import, dry run, stdin, BOM and CRLF.

use crate::common::*;

#[test]
fn import_prints_what_it_appended_and_the_board() {
    let s = Store::new();
    let out = s.cmd().args(["import", SEED]).output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("appended 17 events (seq 1–17); 0 already present"),
        "{text}"
    );
    // The board: the six commitments the file opened, and no calls or sources.
    for id in [
        "bgd-political-consultations",
        "bgd-trade-commission",
        "moz-bilateral-activities",
        "eri-official-visit",
        "zwe-cooperation-committee",
        "idn-bilateral-events",
    ] {
        assert!(text.contains(id), "board lacks {id}:\n{text}");
    }
    assert!(text.contains("STATUS") && text.contains("scheduled"));
    assert!(!text.contains("call-blr-bih"));
}

#[test]
fn reimport_is_a_noop_that_says_so() {
    let s = Store::seeded();
    let before = s.export();
    let out = s.cmd().args(["import", SEED]).output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("nothing to append: all 17 events were already present (no-op)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(before, s.export());
}

#[test]
fn import_json_has_the_report_and_the_board() {
    let s = Store::new();
    let v = s.json(&["import", SEED]);
    assert_eq!(v["appended"], 17);
    assert_eq!(v["first_seq"], 1);
    assert_eq!(v["last_seq"], 17);
    assert_eq!(v["duplicates"], 0);
    assert_eq!(v["commitments"].as_array().unwrap().len(), 6);
    let board = v["board"].as_array().unwrap();
    assert_eq!(board.len(), 6);
    assert_eq!(board[0]["commitment_id"], "bgd-political-consultations");
}

#[test]
fn quiet_import_prints_nothing() {
    let s = Store::new();
    s.cmd()
        .args(["-q", "import", SEED])
        .assert()
        .success()
        .stdout("")
        .stderr("");
}

#[test]
fn dry_run_writes_nothing() {
    let s = Store::new();
    let out = s
        .cmd()
        .args(["import", "--dry-run", SEED])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("dry run: 17 events valid"),
        "{}",
        stdout(&out)
    );
    assert_eq!(s.export(), b"");
}

#[test]
fn stdin_bom_crlf_and_blank_lines() {
    let s = Store::new();
    let seed = std::fs::read_to_string(SEED).expect("seed");
    let mut input = String::from("\u{feff}");
    for (i, l) in seed.lines().enumerate() {
        input.push_str(l);
        input.push_str("\r\n");
        if i == 3 {
            input.push_str("\r\n   \r\n");
        }
    }
    s.cmd()
        .args(["import", "-"])
        .write_stdin(input)
        .assert()
        .success()
        .stdout(predicates::str::contains("appended 17 events"));
    let reference = Store::seeded();
    assert_eq!(s.export(), reference.export());
}

#[test]
fn import_fills_in_missing_ids_and_authors_and_stores_them() {
    // Lines with both fields are encoded on the reading thread; the others after the
    // importer fills them in. Either way the stored body is the one with the filled fields.
    let s = Store::new();
    let lines = [
        r#"{"type":"SourceRegistered","source_id":"src-a","url":"https://example.org/a","title":"A","language":"en"}"#,
        r#"{"type":"SourceRegistered","source_id":"src-b","url":"https://example.org/b","title":"B","language":"en","event_id":"0190b7a2-0000-7000-8000-00000000000b"}"#,
        r#"{"type":"SourceRegistered","source_id":"src-c","url":"https://example.org/c","title":"C","language":"en","event_id":"0190b7a2-0000-7000-8000-00000000000c","recorded_by":"analyst:c"}"#,
    ];
    let file = s.file("three.jsonl", lines.join("\n").as_bytes());
    s.cmd().args(["-q", "import"]).arg(&file).assert().success();
    let exported = s.export();
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&exported)
        .lines()
        .map(|l| serde_json::from_str(l).expect("export line is JSON"))
        .collect();
    assert_eq!(events.len(), 3, "{events:?}");
    let by = |i: usize| events[i]["recorded_by"].as_str().unwrap_or("").to_owned();
    assert_eq!([by(0), by(1), by(2)], ["tester", "tester", "analyst:c"]);
    assert!(events[0]["event_id"]
        .as_str()
        .is_some_and(|s| s.len() == 36));
    assert_eq!(
        events[1]["event_id"],
        "0190b7a2-0000-7000-8000-00000000000b"
    );
    assert_eq!(
        events[2]["event_id"],
        "0190b7a2-0000-7000-8000-00000000000c"
    );
    // The bodies stored are those validation compares against: the lines with ids, imported
    // again (the second filled in the same way), are duplicates, not conflicts.
    let again = s.file("again.jsonl", lines[1..].join("\n").as_bytes());
    let out = s.cmd().arg("import").arg(&again).output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("all 2 events were already present"),
        "{}",
        stdout(&out)
    );
}
