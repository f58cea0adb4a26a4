//! `record`, conflicts, the store lock and `replay --follow` beside writers.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

#[test]
fn record_from_flags_prints_the_status_change() {
    let s = Store::seeded();
    let out = s
        .cmd()
        .args([
            "record",
            "commitment-fulfilled",
            "--commitment-id",
            "zwe-cooperation-committee",
            "--extent",
            "full",
            "--occurred",
            "2024-02-20",
            "--source",
            "src-aleinik-2024-01-20:paragraph 7",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("recorded seq 18"), "{text}");
    assert!(text.contains("zwe-cooperation-committee"));
    assert!(text.contains("scheduled → fulfilled"), "{text}");
    let v = s.json(&["show", "zwe-cooperation-committee"]);
    assert_eq!(v["status"], "fulfilled");
    assert_eq!(v["history"][2]["recorded_by"], "tester");
}

#[test]
fn record_json_line_and_json_output() {
    let s = Store::seeded();
    // The catalogue's spelling: `record --json LINE`, human output.
    let out = s
        .cmd()
        .args(["record", "--json", &fulfil_zwe()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("scheduled → fulfilled"));
    // Same event again (fresh id): refused by the state machine.
    let out = s
        .cmd()
        .args(["-q", "record", "--json", &fulfil_zwe()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("fulfilled"));
    // Global --json before the command: JSON output.
    let ev = serde_json::json!({
        "type": "CommitmentCancelled", "commitment_id": "bgd-trade-commission",
        "occurred": "2024-02-10", "evidence": [{"source_id": "src-aleinik-2024-01-20"}]
    });
    let out = s
        .cmd()
        .args(["--json", "record", "--json", &ev.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["seq"], 19);
    assert_eq!(v["stream"], "bgd-trade-commission");
    assert_eq!(v["status_before"], "open");
    assert_eq!(v["status_after"], "cancelled");
}

#[test]
fn record_quiet_prints_nothing() {
    let s = Store::seeded();
    s.cmd()
        .args(["-q", "record", "--json", &fulfil_zwe()])
        .assert()
        .success()
        .stdout("")
        .stderr("");
}

#[test]
fn record_rejections() {
    let s = Store::seeded();
    let before = s.export();
    // A flag the type does not have: usage error.
    let out = s
        .cmd()
        .args([
            "record",
            "commitment-fulfilled",
            "--commitment-id",
            "zwe-cooperation-committee",
            "--kind",
            "other",
            "--extent",
            "full",
            "--occurred",
            "2024-02-20",
            "--source",
            "src-aleinik-2024-01-20",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--kind"));
    // A domain error names the field.
    let out = s
        .cmd()
        .args([
            "record",
            "commitment-fulfilled",
            "--commitment-id",
            "zwe-cooperation-committee",
            "--extent",
            "most",
            "--occurred",
            "2024-02-20",
            "--source",
            "src-aleinik-2024-01-20",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`extent`"), "{}", stderr(&out));
    // An unknown type.
    s.cmd().args(["record", "treaty-ratified"]).assert().code(2);
    // A store-added field in the JSON.
    let mut v: Value = serde_json::from_str(&fulfil_zwe()).unwrap();
    v["hash"] = "00".into();
    let out = s
        .cmd()
        .args(["record", "--json", &v.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`hash`"));
    assert_eq!(s.export(), before);
}

#[test]
fn expect_version_conflict_is_exit_3() {
    let s = Store::seeded();
    let before = s.export();
    let out = s
        .cmd()
        .args(["record", "--expect-version", "1", "--json", &fulfil_zwe()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("conflict"), "{}", stderr(&out));
    assert_eq!(s.export(), before);
    s.cmd()
        .args([
            "-q",
            "record",
            "--expect-version",
            "2",
            "--json",
            &fulfil_zwe(),
        ])
        .assert()
        .success();
}

/// Starts a process that opens the store and holds it for `ms` milliseconds; returns once
/// it holds it.
fn hold(s: &Store, ms: u64) -> Child {
    let mut child = Command::new(bin())
        .env("COMMITMENTS_NOW", NOW)
        .env("COMMITMENTS_TEST_HOLD_MS", ms.to_string())
        .arg("--store")
        .arg(&s.path)
        .arg("status")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn holder");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        if err.read_line(&mut line).expect("read") == 0 {
            panic!("holder exited before holding the store");
        }
        if line.contains("holding the store") {
            break;
        }
    }
    child
}

#[test]
fn a_held_store_makes_others_wait_then_exit_4() {
    let s = Store::seeded();
    let mut holder = hold(&s, 4000);
    let t = Instant::now();
    let out = s
        .cmd()
        .args(["--lock-timeout", "1", "list"])
        .output()
        .unwrap();
    let waited = t.elapsed();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    let path = s.path.display().to_string();
    assert!(
        err.contains(&format!(
            "waiting for the store at {path}, held by another process"
        )),
        "{err}"
    );
    assert_eq!(err.matches("waiting for the store").count(), 1);
    assert!(
        err.contains("error:") && err.lines().last().unwrap().contains(&path),
        "{err}"
    );
    assert!(waited >= Duration::from_millis(900), "{waited:?}");

    // --lock-timeout 0: at once.
    let t = Instant::now();
    let out = s
        .cmd()
        .args(["--lock-timeout", "0", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains(&path));
    assert!(!stderr(&out).contains("waiting for the store"));
    assert!(t.elapsed() < Duration::from_millis(900));
    holder.kill().ok();
    holder.wait().ok();
}

#[test]
fn a_store_let_go_within_the_timeout_is_used() {
    let s = Store::seeded();
    let mut holder = hold(&s, 800);
    let out = s
        .cmd()
        .args([
            "--lock-timeout",
            "20",
            "-q",
            "record",
            "--json",
            &fulfil_zwe(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(holder.wait().unwrap().success());
    // Not quiet: it says it waits.
    let mut holder = hold(&s, 800);
    let out = s
        .cmd()
        .args(["--lock-timeout", "20", "status"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("waiting for the store at"));
    assert!(holder.wait().unwrap().success());
}

#[test]
fn follow_prints_what_other_processes_record() {
    let s = Store::seeded();
    let mut follower = Command::new(bin())
        .env("COMMITMENTS_NOW", NOW)
        .env_remove("COMMITMENTS_TEST_HOLD_MS")
        .arg("--store")
        .arg(&s.path)
        .args(["--json", "replay", "--follow", "--interval", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn follower");
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<u64>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: Value = serde_json::from_str(&line).expect("JSON line");
            if tx.send(v["seq"].as_u64().unwrap()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 17 && Instant::now() < deadline {
        if let Ok(seq) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(seq);
        }
    }
    // Writers beside the follower: none may fail.
    let parties = ["BGD", "MOZ", "ERI", "ZWE", "IDN", "GNQ"];
    for (i, p) in parties.iter().enumerate() {
        let ev = serde_json::json!({
            "type": "ConsultationAgreed", "commitment_id": format!("follow-{i}"),
            "kind": "other", "parties": ["BLR", p], "strength": "agreed",
            "description": "follow test", "occurred": "2024-01-21",
            "evidence": [{"source_id": "src-aleinik-2024-01-20"}]
        });
        let out = s
            .cmd()
            .args(["-q", "record", "--json", &ev.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "record {i} failed: {}", stderr(&out));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 17 + parties.len() && Instant::now() < deadline {
        if let Ok(seq) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(seq);
        }
    }
    follower.kill().ok();
    follower.wait().ok();
    drop(rx);
    reader.join().ok();
    let expected: Vec<u64> = (1..=(17 + parties.len() as u64)).collect();
    assert_eq!(seen, expected);
}
