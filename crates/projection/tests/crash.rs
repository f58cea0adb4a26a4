//! Crash safety of the views: a child process catching views up (or rebuilding them) over a
//! large log is SIGKILLed at random moments; after reopening, every view's checkpoint and
//! rows agree, and a catch-up completes to the same digest as a clean rebuild.
//!
//! Rounds: `PROJECTION_CRASH_ROUNDS` (default 10; CI keeps the default).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const CHILD_ENV: &str = "PROJECTION_CRASH_CHILD";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The child: open (which catches the views up), then rebuild forever.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let clock = TestClock::at("2024-06-01T00:00:00Z");
    let t = open(Path::new(&path), &clock);
    println!("CAUGHT_UP");
    loop {
        t.rebuild(&[], &|_| {}).unwrap();
        println!("REBUILT");
    }
}

/// A store whose log holds `n` events with views only for the first 1,000.
fn prepare(dir: &Path, n: usize) -> (PathBuf, Vec<(String, [u8; 32], u64)>) {
    let base = dir.join("base");
    let clock = TestClock::at("2024-06-01T00:00:00Z");
    let lines = commitments_workload::generate(n, 11, 0, true);
    let t = open(&base, &clock);
    import_lines(&t, &lines[..1_000]);
    append_behind_views(&t, &lines[1_000..]);
    // The reference: a clean rebuild of a copy.
    let reference_dir = dir.join("reference");
    drop(t);
    std::thread::sleep(Duration::from_millis(200));
    copy_dir(&base, &reference_dir);
    let r = open(&reference_dir, &clock);
    r.rebuild(&[], &|_| {}).unwrap();
    (base, digests(&r))
}

#[test]
fn views_survive_sigkill_during_catch_up_and_rebuild() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let rounds: usize = std::env::var("PROJECTION_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let (base, reference) = prepare(dir.path(), 6_000);
    let exe = std::env::current_exe().unwrap();
    let mut rng = commitments_workload::Rng::new(2024);
    let mut killed_mid_catch_up = 0;
    let mut killed_mid_rebuild = 0;
    for round in 0..rounds {
        let path = dir.path().join(format!("round-{round}"));
        copy_dir(&base, &path);
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(30 + rng.below(900) as u64));
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("CAUGHT_UP") {
            killed_mid_rebuild += 1;
        } else {
            killed_mid_catch_up += 1;
        }
        // Reopen: checkpoints and rows must agree (the digest kept with the checkpoint equals
        // a recomputation from the rows), and the catch-up must reach the clean rebuild.
        let clock = TestClock::at("2024-06-01T00:00:00Z");
        let t = commitments_projection::Tracker::open(&path, clock.options());
        let t = match t {
            Ok((t, _)) => t,
            Err(e) => panic!("round {round}: reopen failed: {e}"),
        };
        for (name, _) in commitments_projection::views::VIEWS {
            let meta = t.store().view_meta(name).unwrap().unwrap();
            assert_eq!(
                t.store().view_digest_recompute(name).unwrap(),
                meta.digest,
                "round {round}: view {name}: rows and their checkpointed digest disagree"
            );
        }
        assert_eq!(
            digests(&t),
            reference,
            "round {round}: caught-up views differ from a clean rebuild"
        );
        assert!(t.verify(&|_| {}).unwrap().ok(), "round {round}: verify");
        drop(t);
        let _ = std::fs::remove_dir_all(&path);
    }
    eprintln!(
        "projection crash test: {rounds} rounds, {killed_mid_catch_up} killed during catch-up, {killed_mid_rebuild} during rebuilds, 0 failures"
    );
    assert!(rounds == 0 || killed_mid_catch_up + killed_mid_rebuild == rounds);
}
