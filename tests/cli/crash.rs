//! An `import` killed with SIGKILL at a random moment leaves all of its events or none, and
//! the next command finds a sound store: `verify` passes (hash chain, indexes, views equal to
//! a fresh fold). A first import writes its packs to the pack file and its views into
//! unpublished generations while it appends, so a kill can land in any of those steps.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

#[test]
fn an_import_killed_at_any_moment_leaves_all_of_it_or_none() {
    let rounds: u64 = std::env::var("IMPORT_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let lines = commitments_workload::generate(20_000, 5, 0, true);
    let total = lines.len() as u64;
    let input = lines.join("\n") + "\n";
    // How long a whole import takes in this build (debug or release): kills are spread over
    // that span and a little past it.
    let span = {
        let s = Store::new();
        let file = s.file("events.jsonl", input.as_bytes());
        let t = std::time::Instant::now();
        s.cmd().args(["-q", "import"]).arg(&file).assert().success();
        t.elapsed().as_millis() as u64
    };
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let (mut none, mut all, mut killed, mut no_store) = (0, 0, 0, 0);
    for round in 0..rounds {
        let s = Store::new();
        let file = s.file("events.jsonl", input.as_bytes());
        let mut child = Command::new(bin())
            .env("COMMITMENTS_NOW", NOW)
            .env("COMMITMENTS_ACTOR", "tester")
            .env_remove("COMMITMENTS_STORE")
            .arg("--store")
            .arg(&s.path)
            .args(["-q", "import"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn import");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // The first round kills at once, before the import can have created the store.
        let delay = if round == 0 {
            0
        } else {
            rng % (span + span / 5 + 1)
        };
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().expect("try_wait").is_none() {
            killed += 1;
            child.kill().expect("SIGKILL");
        }
        child.wait().expect("wait");

        // A kill before sled created the store's files leaves no store at all: nothing to
        // check but that the next import makes one.
        if !s.path.join("db").exists() {
            let out = s.cmd().arg("status").output().expect("run status");
            assert!(
                !out.status.success() && stderr(&out).contains("no store at"),
                "round {round}: status without a store: {}{}",
                stdout(&out),
                stderr(&out)
            );
            no_store += 1;
            s.cmd().args(["-q", "import"]).arg(&file).assert().success();
            assert_eq!(s.json(&["status"])["events"], total, "round {round}");
            continue;
        }
        let status = s.json(&["status"]);
        let events = status["events"].as_u64().expect("events");
        assert!(
            events == 0 || events == total,
            "round {round}: {events} events after the kill, not 0 or {total}"
        );
        if events == 0 {
            none += 1;
        } else {
            all += 1;
            for v in status["views"].as_array().expect("views") {
                assert_eq!(v["checkpoint"], total, "round {round}: {v}");
            }
        }
        let out = s.cmd().arg("verify").output().expect("run verify");
        assert!(
            out.status.success(),
            "round {round}: verify after the kill: {}{}",
            stdout(&out),
            stderr(&out)
        );
        // And the store takes the import again: all of it, or nothing new.
        s.cmd().args(["-q", "import"]).arg(&file).assert().success();
        assert_eq!(s.json(&["status"])["events"], total, "round {round}");
    }
    eprintln!(
        "import crash test: a whole import {span} ms; {rounds} rounds, {killed} killed, \
         {none} left nothing, {all} left everything, {no_store} left no store yet"
    );
    if rounds >= 8 {
        assert!(killed > 0, "no round killed the import");
    }
}
