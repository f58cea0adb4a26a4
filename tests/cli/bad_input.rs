//! Bad input: each refused with its exit code and a message naming the line and the field,
//! and the store byte-identical afterwards.

use serde_json::{json, Value};

use crate::common::*;

fn good_fulfilment() -> Value {
    serde_json::from_str(&fulfil_zwe()).unwrap()
}

/// Imports `content` into a seeded store and checks the refusal.
fn refused(content: &[u8], code: i32, expect: &[&str]) {
    let s = Store::seeded();
    let before = s.export();
    let file = s.file("bad.jsonl", content);
    let out = s.cmd().arg("import").arg(&file).output().expect("run");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.starts_with("error: "), "{err}");
    for e in expect {
        assert!(err.contains(e), "stderr lacks {e:?}:\n{err}");
    }
    assert!(!err.contains("internal error"), "{err}");
    assert_eq!(s.export(), before, "the store changed");
}

/// A file whose line 3 is `bad` (line 1 valid, line 2 blank).
fn at_line_3(bad: &str) -> Vec<u8> {
    format!("{}\n\n{bad}\n", fulfil_zwe()).into_bytes()
}

fn with(mut v: Value, k: &str, x: Value) -> String {
    v[k] = x;
    v.to_string()
}

#[test]
fn malformed_json() {
    refused(
        &at_line_3(r#"{"type": "CommitmentFulfilled", "commitment_id": "#),
        1,
        &["line 3: malformed JSON"],
    );
}

#[test]
fn not_an_object() {
    refused(
        &at_line_3("[1, 2]"),
        1,
        &["line 3:", "expected a JSON object"],
    );
}

#[test]
fn unknown_field() {
    let bad = with(good_fulfilment(), "colour", json!("red"));
    refused(&at_line_3(&bad), 1, &["line 3:", "`colour`"]);
}

#[test]
fn unknown_type() {
    let bad = with(good_fulfilment(), "type", json!("TreatyRatified"));
    refused(
        &at_line_3(&bad),
        1,
        &["line 3:", "`type`", "TreatyRatified"],
    );
}

#[test]
fn missing_required_field() {
    let mut v = good_fulfilment();
    v.as_object_mut().unwrap().remove("extent");
    refused(
        &at_line_3(&v.to_string()),
        1,
        &["line 3:", "`extent`", "missing"],
    );
}

#[test]
fn unknown_country_code() {
    let bad = json!({
        "type": "ConsultationAgreed", "commitment_id": "new-one", "kind": "other",
        "parties": ["BLR", "XYZ"], "strength": "agreed", "description": "d",
        "occurred": "2024-01-20", "evidence": [{"source_id": "src-aleinik-2024-01-20"}]
    });
    refused(
        &at_line_3(&bad.to_string()),
        1,
        &["line 3:", "parties", "XYZ"],
    );
}

#[test]
fn invalid_edtf() {
    let bad = json!({
        "type": "MeetingScheduled", "commitment_id": "bgd-trade-commission",
        "scheduled_for": {"edtf": "2024-13-45", "basis": "explicit"},
        "occurred": "2024-01-25", "evidence": [{"source_id": "src-aleinik-2024-01-20"}]
    });
    refused(
        &at_line_3(&bad.to_string()),
        1,
        &["line 3:", "scheduled_for.edtf"],
    );
}

#[test]
fn evidence_citing_an_unregistered_source() {
    let bad = with(
        good_fulfilment(),
        "evidence",
        json!([{"source_id": "src-nowhere"}]),
    );
    refused(&at_line_3(&bad), 1, &["line 3:", "evidence", "src-nowhere"]);
}

#[test]
fn lifecycle_event_for_an_unknown_commitment() {
    let bad = with(
        good_fulfilment(),
        "commitment_id",
        json!("no-such-commitment"),
    );
    refused(&at_line_3(&bad), 1, &["line 3:", "no-such-commitment"]);
}

#[test]
fn fulfilling_a_cancelled_commitment() {
    let cancel = json!({
        "type": "CommitmentCancelled", "commitment_id": "zwe-cooperation-committee",
        "occurred": "2024-02-10", "evidence": [{"source_id": "src-aleinik-2024-01-20"}]
    });
    let content = format!("{cancel}\n\n{}\n", fulfil_zwe());
    refused(
        content.as_bytes(),
        1,
        &[
            "line 3:",
            "zwe-cooperation-committee",
            "cancelled",
            "CommitmentFulfilled",
        ],
    );
}

#[test]
fn store_added_field() {
    let bad = with(good_fulfilment(), "seq", json!(99));
    refused(
        &at_line_3(&bad),
        1,
        &["line 3:", "`seq`", "added by the store"],
    );
}

#[test]
fn ten_megabyte_line() {
    let mut v = good_fulfilment();
    v["note"] = json!("x".repeat(10 * 1024 * 1024));
    refused(
        &at_line_3(&v.to_string()),
        1,
        &["line 3:", "longer than 1 MiB"],
    );
}

#[test]
fn invalid_utf8() {
    let mut content = format!("{}\n\n", fulfil_zwe()).into_bytes();
    content.extend_from_slice(b"{\"type\":\"CommitmentFulfilled\",\"note\":\"\xff\xfe\"}\n");
    refused(&content, 1, &["line 3:", "UTF-8"]);
}

#[test]
fn empty_file() {
    refused(b"", 1, &["no event"]);
    refused(b"\n  \r\n\n", 1, &["no event"]);
}

#[test]
fn errors_are_listed_up_to_twenty() {
    let bad: String = (0..25).map(|_| "[]\n").collect();
    let s = Store::new();
    let file = s.file("bad.jsonl", bad.as_bytes());
    let out = s.cmd().arg("import").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: 25 lines rejected; nothing was written"),
        "{err}"
    );
    assert!(
        err.contains("line 20:") && !err.contains("line 21:"),
        "{err}"
    );
    assert!(err.contains("5 more"), "{err}");
}

#[test]
fn missing_file_is_exit_1() {
    let s = Store::new();
    let out = s
        .cmd()
        .args(["import", "/nonexistent/file.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot open /nonexistent/file.jsonl"));
}

#[test]
fn usage_errors_are_exit_2() {
    let s = Store::new();
    s.cmd().arg("frobnicate").assert().code(2);
    s.cmd()
        .args(["list", "--as-of", "15/03/2024"])
        .assert()
        .code(2);
    s.cmd()
        .args(["--color", "sometimes", "list"])
        .assert()
        .code(2);
}
