//! `import FILE`: validate every line, then append all of it atomically, or nothing.

use std::fs::File;
use std::io::{self, BufRead, BufReader};

use commitments_projection::{CommitmentView, ImportReport, ListFilter};
use serde::Serialize;

use crate::args::ImportArgs;
use crate::cmd::board_table;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};
use crate::input::ParallelEvents;

#[derive(Serialize)]
struct ImportJson<'a> {
    #[serde(flatten)]
    report: &'a ImportReport,
    board: &'a [CommitmentView],
}

/// Runs `import`.
pub fn run(ctx: &mut Ctx, a: ImportArgs) -> CliResult {
    let stdin = a.file.as_os_str() == "-";
    let mut _read_ahead = None;
    let (reader, size): (Box<dyn BufRead + Send>, Option<u64>) = if stdin {
        (
            Box::new(BufReader::with_capacity(256 * 1024, io::stdin())),
            None,
        )
    } else {
        let f = File::open(&a.file)
            .map_err(|e| CliError::Input(format!("cannot open {}: {e}", a.file.display())))?;
        if f.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(CliError::Input(format!(
                "{} is a directory, not a JSON Lines file",
                a.file.display()
            )));
        }
        let size = f.metadata().ok().map(|m| m.len());
        _read_ahead = Some(crate::ctx::read_ahead(&f));
        (Box::new(BufReader::with_capacity(256 * 1024, f)), size)
    };

    crate::ctx::small_pages();
    let tracker = ctx.open_bulk()?;
    // The process ends with this command: what the import is done with is left to the exit.
    tracker.leave_memory_to_exit();
    let progress = ctx.progress(size, "validating");
    let on_bytes = |n: u64| {
        if size.is_some() {
            progress.set(n);
        }
    };
    let events = ParallelEvents::spawn(reader, &on_bytes);
    let views_progress = |n: u64| {
        if size.is_none() {
            progress.set(n);
        }
    };
    let report = tracker.import(events, a.dry_run, &views_progress)?;
    progress.finish();

    let board: Vec<CommitmentView> =
        if a.dry_run || report.commitments.is_empty() || (ctx.quiet && !ctx.json) {
            Vec::new()
        } else {
            let mut all: std::collections::HashMap<String, CommitmentView> = tracker
                .list(&ctx.read_at(), &ListFilter::default())?
                .into_iter()
                .map(|v| (v.commitment_id.clone(), v))
                .collect();
            report
                .commitments
                .iter()
                .filter_map(|id| all.remove(id))
                .collect()
        };
    tracker.close();

    if report.clock_clamped {
        ctx.warn("the clock is behind the log's head: recorded_at was clamped to the head's");
    }
    if ctx.json {
        ctx.print_json(&ImportJson {
            report: &report,
            board: &board,
        })?;
        return ctx.flush();
    }
    if ctx.quiet {
        return Ok(());
    }
    let summary = summary(&report);
    let out = ctx.out();
    writeln!(out, "{summary}")?;
    if board.is_empty() {
        return ctx.flush();
    }
    writeln!(out)?;
    ctx.write_table(&board_table(&board))
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn summary(r: &ImportReport) -> String {
    if r.dry_run {
        let new = r.events - r.duplicates;
        return format!(
            "dry run: {} valid; would append {}; {} already present; nothing was written",
            plural(r.events, "event", "events"),
            new,
            r.duplicates
        );
    }
    if r.appended == 0 {
        return format!(
            "nothing to append: all {} already present (no-op)",
            plural(r.duplicates, "event was", "events were")
        );
    }
    let range = match (r.first_seq, r.last_seq) {
        (Some(a), Some(b)) if a == b => format!(" (seq {a})"),
        (Some(a), Some(b)) => format!(" (seq {a}–{b})"),
        _ => String::new(),
    };
    format!(
        "appended {}{range}; {} already present",
        plural(r.appended, "event", "events"),
        r.duplicates
    )
}
