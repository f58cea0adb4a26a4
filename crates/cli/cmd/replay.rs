//! `replay`: the log in order with the status change each event caused; `--follow` polls,
//! opening the store only briefly at each poll so writers are never blocked for long.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use commitments_domain::EVENT_TYPES;
use commitments_projection::{ReplayRow, Tracker};

use crate::args::ReplayArgs;
use crate::cmd::change_text;
use crate::cmd::record::{kebab, type_name};
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};
use crate::table::{paint, status_color};

struct Filters {
    to: Option<u64>,
    stream: Option<String>,
    types: Vec<String>,
}

fn header(ctx: &mut Ctx) -> CliResult {
    if ctx.json {
        return Ok(());
    }
    let c = ctx.color;
    let h = format!(
        "{:>6}  {:<27}  {:<22}  {:<32}  {:<28}  {}",
        "SEQ", "RECORDED_AT", "TYPE", "STREAM", "STATUS", "HASH"
    );
    writeln!(
        ctx.out(),
        "{}",
        paint(h.trim_end(), Some(crate::table::Color::Bold), c)
    )?;
    Ok(())
}

fn print_row(ctx: &mut Ctx, r: &ReplayRow) -> CliResult {
    if ctx.json {
        return ctx.print_json_line(r);
    }
    let change = change_text(r.status_before.as_deref(), r.status_after.as_deref());
    let pad = 28usize.saturating_sub(change.chars().count());
    let change = paint(
        &change,
        r.status_after.as_deref().and_then(status_color),
        ctx.color,
    );
    let mut line = format!(
        "{:>6}  {:<27}  {:<22}  {:<32}  {}{}  {}",
        r.seq,
        r.recorded_at,
        r.event_type,
        r.stream,
        change,
        " ".repeat(pad),
        &r.hash[..r.hash.len().min(12)]
    );
    if let Some(w) = ctx.width {
        if !ctx.color && line.chars().count() > w {
            line = line.chars().take(w.saturating_sub(1)).collect::<String>() + "…";
        }
    }
    writeln!(ctx.out(), "{line}")?;
    Ok(())
}

/// Prints events after `from - 1`; returns the last seq printed or scanned.
fn poll(ctx: &mut Ctx, t: &Tracker, from: u64, f: &Filters) -> CliResult<Option<u64>> {
    let mut rows: Vec<ReplayRow> = Vec::new();
    let mut pending_err: Option<CliError> = None;
    // Buffer a bounded batch at a time so printing does not hold a borrow of ctx inside the
    // sink; flush when full.
    let mut last = None;
    t.replay(
        from,
        f.to,
        f.stream.as_deref(),
        &f.types,
        ctx.known_at,
        &mut |row| {
            last = Some(row.seq);
            rows.push(row);
            if rows.len() >= 1024 {
                for r in rows.drain(..) {
                    if let Err(e) = print_row(ctx, &r) {
                        pending_err = Some(e);
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        },
    )?;
    if let Some(e) = pending_err {
        return Err(e);
    }
    for r in rows.drain(..) {
        print_row(ctx, &r)?;
    }
    ctx.flush()?;
    // Also move past events filtered out, so the next poll does not rescan them.
    let head = t.seq_limit(ctx.known_at)?.0;
    Ok(Some(last.unwrap_or(0).max(head.min(f.to.unwrap_or(u64::MAX)))).filter(|&s| s > 0))
}

/// Runs `replay`.
pub fn run(ctx: &mut Ctx, a: ReplayArgs) -> CliResult {
    let mut types = Vec::new();
    for t in &a.types {
        match type_name(t.trim()) {
            Some(n) => types.push(n.to_owned()),
            None => {
                return Err(CliError::Usage(format!(
                    "--type: unknown event type `{t}`; one of: {}",
                    EVENT_TYPES
                        .iter()
                        .map(|t| kebab(t))
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        }
    }
    let tracker = ctx.open(false)?;
    let stream = match &a.stream {
        Some(s) => match tracker.resolve(s) {
            Ok(full) => Some(full),
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let f = Filters {
        to: a.to,
        stream,
        types,
    };
    header(ctx)?;
    let first = poll(ctx, &tracker, a.from, &f);
    tracker.close();
    let mut last = first?
        .unwrap_or(a.from.saturating_sub(1))
        .max(a.from.saturating_sub(1));
    if !a.follow {
        return Ok(());
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .map_err(|e| CliError::Internal(format!("cannot install the Ctrl-C handler: {e}")))?;
    }
    let interval = Duration::from_secs_f64(a.interval.max(0.05));
    loop {
        if f.to.is_some_and(|to| last >= to) {
            return Ok(());
        }
        let deadline = Instant::now() + interval;
        while Instant::now() < deadline {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20).min(interval));
        }
        // Open briefly; a busy store is retried at the next poll rather than waited on.
        let t = match ctx.try_open(false) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => return Err(e),
        };
        let r = poll(ctx, &t, last + 1, &f);
        drop(t);
        if let Some(s) = r? {
            last = last.max(s);
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
    }
}
