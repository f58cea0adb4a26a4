//! Shared helpers: a temporary store, the binary with a fixed clock, exports.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// The seed story.
pub const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/examples/aleinik-2024-01-20.jsonl"
);

/// The clock of most tests.
pub const NOW: &str = "2024-01-21T09:00:00Z";

/// The binary.
pub fn bin() -> &'static Path {
    assert_cmd::cargo::cargo_bin!("commitments")
}

/// A store in a temporary directory.
pub struct Store {
    /// Keeps the directory alive.
    pub dir: TempDir,
    /// The store directory (inside `dir`).
    pub path: PathBuf,
}

impl Store {
    /// An empty (not yet created) store.
    pub fn new() -> Store {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.db");
        Store { dir, path }
    }

    /// A store holding the seed story.
    pub fn seeded() -> Store {
        let s = Store::new();
        s.cmd().args(["-q", "import", SEED]).assert().success();
        s
    }

    /// The binary on this store with a fixed clock and a clean environment.
    pub fn cmd(&self) -> Command {
        self.cmd_at(NOW)
    }

    /// The binary on this store with `COMMITMENTS_NOW = now`.
    pub fn cmd_at(&self, now: &str) -> Command {
        let mut c = assert_cmd::cargo::cargo_bin_cmd!("commitments");
        clean_env(&mut c);
        c.env("COMMITMENTS_NOW", now).arg("--store").arg(&self.path);
        c
    }

    /// A file in the temporary directory.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).expect("write file");
        p
    }

    /// `export` to stdout.
    pub fn export(&self) -> Vec<u8> {
        let out = self.cmd().arg("export").output().expect("run export");
        assert!(out.status.success(), "export failed: {out:?}");
        out.stdout
    }

    /// A command's stdout parsed as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.cmd().arg("--json").args(args).output().expect("run");
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON on stdout")
    }
}

/// Removes variables of the caller's environment that would change the outcome.
pub fn clean_env(c: &mut Command) {
    for k in [
        "COMMITMENTS_STORE",
        "COMMITMENTS_NOW",
        "COMMITMENTS_HORIZON_DAYS",
        "COMMITMENTS_TEST_HOLD_MS",
        "COMMITMENTS_TEST_PANIC",
        "NO_COLOR",
        "COLUMNS",
    ] {
        c.env_remove(k);
    }
    c.env("COMMITMENTS_ACTOR", "tester");
}

/// stdout as text.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fulfilment of the Harare meeting.
pub fn fulfil_zwe() -> String {
    serde_json::json!({
        "type": "CommitmentFulfilled",
        "commitment_id": "zwe-cooperation-committee",
        "extent": "full",
        "occurred": "2024-02-20",
        "evidence": [{"source_id": "src-aleinik-2024-01-20"}]
    })
    .to_string()
}
