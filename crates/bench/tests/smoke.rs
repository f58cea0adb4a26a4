//! The benchmark suite runs at a small N (CI smoke test: it must run and report every
//! figure; no timing is asserted).

/// The suite at N = 300, one run, 20 durable appends, 4 writers, in `work`, plus `extra`.
fn bench(work: &std::path::Path, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_commitments-bench"))
        .args([
            "--n",
            "300",
            "--runs",
            "1",
            "--durable",
            "20",
            "--writers",
            "4",
        ])
        .args(extra)
        .arg("--work")
        .arg(work)
        .output()
        .expect("runs")
}

#[test]
fn the_suite_runs_at_small_n_and_reports_every_store_figure() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = bench(work.path(), &[]);
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
        "store open, new process",
        "8 writers vs 1 writer",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(figure))
            .unwrap_or_else(|| panic!("no `{figure}` in\n{text}"));
        if figure == "store open, new process" {
            // No baseline: the figure itself must be a number.
            let cell = line.split('|').nth(2).unwrap_or("").trim().replace(',', "");
            assert!(cell.parse::<f64>().is_ok(), "{line}");
        } else {
            assert!(
                !line.contains("| – | – |") || figure.contains("durable"),
                "{line}"
            );
        }
    }
    assert!(text.contains("N = 300 (301 events"), "{text}");
}

#[test]
fn phases_limits_the_run_to_the_named_phases() {
    let work = tempfile::tempdir().expect("tempdir");
    let run = |phases: &str| bench(work.path(), &["--phases", phases]);
    let out = run("file");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // The plain file was measured; the store was not (its ev/s cell is empty).
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("| {name}")))
            .unwrap_or_else(|| panic!("no `{name}` row in\n{text}"))
            .to_owned()
    };
    let batched: Vec<String> = row("store append, batched")
        .split('|')
        .map(|c| c.trim().to_owned())
        .collect();
    assert_eq!(batched[2], "–", "the store ran: {batched:?}");
    assert_ne!(batched[4], "–", "the plain file did not run: {batched:?}");
    let bad = run("store,nope");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown phase nope"));
}
