//! The benchmark suite runs at a small N (CI smoke test: it must run and report every
//! figure; no timing is asserted).

#[test]
fn the_suite_runs_at_small_n_and_reports_every_store_figure() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_commitments-bench"))
        .args([
            "--n",
            "300",
            "--runs",
            "1",
            "--durable",
            "20",
            "--writers",
            "4",
            "--work",
        ])
        .arg(work.path())
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for figure in [
        "store append, batched 1,000/commit",
        "store append, durable single (ev/s)",
        "store read + parse + fold",
        "store bytes on disk per JSONL byte",
        "8 writers vs 1 writer",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(figure))
            .unwrap_or_else(|| panic!("no `{figure}` in\n{text}"));
        assert!(
            !line.contains("| – | – |") || figure.contains("durable"),
            "{line}"
        );
    }
    assert!(text.contains("N = 300 (301 events"), "{text}");
}
