//! Crash safety of the views: a child process catching views up over a large log, or
//! rebuilding them in place after another version of the code changed them, is SIGKILLed at
//! random moments; after reopening, every view's checkpoint and rows agree, and a catch-up
//! completes to the same digest as a clean rebuild.
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

/// Leaves every view as another version of the code might have (`bump`: with another version
/// number), or as damage on disk would (same version): a third of its rows gone, a third
/// changed, one extra, in one atomic commit per view. The rebuild that follows then rewrites
/// two thirds of the rows in place.
fn age_views(t: &commitments_projection::Tracker, bump: bool) {
    let store = t.store();
    for (name, _) in commitments_projection::views::VIEWS {
        let meta = store.view_meta(name).unwrap().unwrap();
        let mut changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        for (i, row) in store.view_scan(name, b"").enumerate() {
            let (k, mut v) = row.unwrap();
            match i % 3 {
                0 => changes.push((k, None)),
                1 => {
                    v.push(b' ');
                    changes.push((k, Some(v)));
                }
                _ => {}
            }
        }
        changes.push((b"rzz-left-by-older-code".to_vec(), Some(b"{}".to_vec())));
        store
            .view_commit(
                name,
                &changes,
                meta.checkpoint,
                meta.version + if bump { 1_000 } else { 0 },
            )
            .unwrap();
    }
}

/// The child: open (which catches the views up), then age the views and rebuild them,
/// forever.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let clock = TestClock::at("2024-06-01T00:00:00Z");
    let t = open(Path::new(&path), &clock);
    println!("CAUGHT_UP");
    for i in 0.. {
        age_views(&t, i % 2 == 0);
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
    let mut killed_mid_rewrite = 0;
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
        let caught_up = text.contains("CAUGHT_UP");
        // What the kill left, before anything repairs it: each view either marked as being
        // rewritten in place, or with rows that agree with its checkpointed digest.
        let mut marked = Vec::new();
        {
            let s = commitments_store::Store::open(&path, Default::default()).unwrap();
            for (name, _) in commitments_projection::views::VIEWS {
                let Some(meta) = s.view_meta(name).unwrap() else {
                    continue;
                };
                if meta.version == commitments_store::VERSION_REWRITING {
                    marked.push(name.to_string());
                } else {
                    assert_eq!(
                        s.view_digest_recompute(name).unwrap(),
                        meta.digest,
                        "round {round}: view {name} is not marked, but its rows and digest disagree"
                    );
                }
            }
        }
        killed_mid_rewrite += usize::from(!marked.is_empty());
        // Reopen: checkpoints and rows must agree (the digest kept with the checkpoint equals
        // a recomputation from the rows); the catch-up must reach the clean rebuild, and so
        // must every view that was being rewritten.
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
        let after_open = digests(&t);
        for (got, want) in after_open.iter().zip(&reference) {
            // Killed after the child damaged a view (same version) but before its rewrite
            // began, a view is legitimately still damaged: only those may differ.
            if !caught_up || marked.contains(&got.0) {
                assert_eq!(
                    got, want,
                    "round {round}: view {} differs from a clean rebuild",
                    got.0
                );
            }
        }
        if caught_up {
            t.rebuild(&[], &|_| {}).unwrap();
            assert_eq!(
                digests(&t),
                reference,
                "round {round}: rebuilt views differ from a clean rebuild"
            );
        }
        assert!(t.verify(&|_| {}).unwrap().ok(), "round {round}: verify");
        drop(t);
        let _ = std::fs::remove_dir_all(&path);
    }
    eprintln!(
        "projection crash test: {rounds} rounds, {killed_mid_catch_up} killed during catch-up, {killed_mid_rebuild} during rebuilds ({killed_mid_rewrite} left a view half rewritten), 0 failures"
    );
    assert!(rounds == 0 || killed_mid_catch_up + killed_mid_rebuild == rounds);
}
