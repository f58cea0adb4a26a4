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
