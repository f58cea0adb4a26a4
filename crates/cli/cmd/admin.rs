//! Store maintenance: `rebuild`, `verify`, `status`, `export`, `restore`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter};

use serde::Serialize;

use crate::args::{ExportArgs, RebuildArgs, RestoreArgs};
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};
use crate::table::{paint, write_pairs, Cell, Color, Table};

/// `rebuild [VIEW ...]`.
pub fn rebuild(ctx: &mut Ctx, a: RebuildArgs) -> CliResult {
    let tracker = ctx.open_whole_log()?;
    let head = tracker.store().head()?.seq;
    let progress = ctx.progress(Some(head), "rebuilding");
    let names: Vec<&str> = a.views.iter().map(String::as_str).collect();
    let reports = tracker.rebuild(&names, &|n| progress.set(n));
    progress.finish();
    tracker.close();
    let reports = reports?;
    if ctx.json {
        ctx.print_json(&reports)?;
        return ctx.flush();
    }
    if ctx.quiet {
        return Ok(());
    }
    let mut t = Table::new(&[
        ("VIEW", false),
        (">EVENTS", false),
        (">CHECKPOINT", false),
        (">ROWS", false),
        ("DIGEST", false),
        ("CHANGE", true),
    ]);
    for r in &reports {
        let change = if r.unchanged {
            Cell::colored(
                "unchanged (digest equals the previous one)",
                Some(Color::Green),
            )
        } else if r.digest_before.is_none() {
            Cell::from("new view")
        } else {
            Cell::colored(
                format!(
                    "digest changed: {} row{} differ",
                    r.rows_changed,
                    if r.rows_changed == 1 { "" } else { "s" }
                ),
                Some(Color::Yellow),
            )
        };
        t.row(vec![
            r.view.clone().into(),
            r.events.to_string().into(),
            r.checkpoint.to_string().into(),
            r.rows.to_string().into(),
            r.digest.clone().into(),
            change,
        ]);
    }
    ctx.write_table(&t)
}

#[derive(Serialize)]
struct ViewCheck<'a> {
    name: &'a str,
    live_digest: &'a str,
    fresh_digest: &'a str,
    ok: bool,
}

#[derive(Serialize)]
struct VerifyJson<'a> {
    ok: bool,
    events: u64,
    packs: u64,
    streams: u64,
    first_bad_seq: Option<u64>,
    problem: Option<&'a str>,
    views: Vec<ViewCheck<'a>>,
}

/// `verify`: exit 5 on any fault.
pub fn verify(ctx: &mut Ctx) -> CliResult {
    let tracker = ctx.open_whole_log()?;
    let head = tracker.store().head()?.seq;
    let progress = ctx.progress(Some(head), "verifying");
    let outcome = tracker.verify(&|n| progress.set(n));
    progress.finish();
    tracker.close();
    let o = outcome?;
    let ok = o.ok();
    let fault = if let Some((seq, what)) = &o.log_problem {
        Some(format!("verify found a fault at seq {seq}: {what}"))
    } else {
        o.views.iter().find(|v| !v.3).map(|v| {
            format!(
                "verify found a fault: view `{}` differs from a fresh fold of the log \
                 (live {}, fresh {}); `commitments rebuild {}` repairs it",
                v.0, v.1, v.2, v.0
            )
        })
    };
    if ctx.json {
        ctx.print_json(&VerifyJson {
            ok,
            events: o.events,
            packs: o.packs,
            streams: o.streams,
            first_bad_seq: o.log_problem.as_ref().map(|p| p.0),
            problem: o.log_problem.as_ref().map(|p| p.1.as_str()),
            views: o
                .views
                .iter()
                .map(|v| ViewCheck {
                    name: &v.0,
                    live_digest: &v.1,
                    fresh_digest: &v.2,
                    ok: v.3,
                })
                .collect(),
        })?;
        ctx.flush()?;
    } else if !ctx.quiet || !ok {
        let c = ctx.color;
        let out = ctx.out();
        let log_state = match &o.log_problem {
            None => paint("ok", Some(Color::Green), c),
            Some((seq, _)) => paint(&format!("FAULT at seq {seq}"), Some(Color::Red), c),
        };
        writeln!(
            out,
            "log: {} events in {} packs, {} streams: hash chain, sequence, stream versions, \
             indexes and decoding {log_state}",
            o.events, o.packs, o.streams
        )?;
        if o.log_problem.is_some() {
            writeln!(out, "views: not checked (the log has a fault)")?;
        }
        for (name, live, fresh, vok) in &o.views {
            let state = if *vok {
                paint("ok", Some(Color::Green), c)
            } else {
                paint("DIFFERS", Some(Color::Red), c)
            };
            writeln!(out, "view {name:<12} live {live}  fresh {fresh}  {state}")?;
        }
        ctx.flush()?;
    }
    match fault {
        Some(m) => Err(CliError::Fault(m)),
        None => Ok(()),
    }
}

/// `status`.
pub fn status(ctx: &mut Ctx) -> CliResult {
    let tracker = ctx.open(false)?;
    let report = tracker.status(ctx.store_path());
    tracker.close();
    let r = report?;
    if ctx.json {
        ctx.print_json(&r)?;
        return ctx.flush();
    }
    let pairs = vec![
        ("store", r.store.clone()),
        ("events", r.events.to_string()),
        ("streams", r.streams.to_string()),
        ("head seq", r.head_seq.to_string()),
        (
            "head hash",
            r.head_hash.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "last recorded_at",
            r.last_recorded_at.clone().unwrap_or_else(|| "-".into()),
        ),
        ("size on disk", human_bytes(r.bytes_on_disk)),
        ("format version", r.format_version.to_string()),
    ];
    let (w, c) = (ctx.width, ctx.color);
    let out = ctx.out();
    write_pairs(out, &pairs, w)?;
    writeln!(out)?;
    let mut t = Table::new(&[
        ("VIEW", false),
        (">VERSION", false),
        (">CHECKPOINT", false),
        (">LAG", false),
        (">ROWS", false),
        ("DIGEST", false),
        ("LAST_REBUILD", true),
    ]);
    for v in &r.views {
        let version = if v.version == v.code_version {
            Cell::from(v.version.to_string())
        } else {
            Cell::colored(
                format!("{} (code {})", v.version, v.code_version),
                Some(Color::Yellow),
            )
        };
        t.row(vec![
            v.name.clone().into(),
            version,
            v.checkpoint.to_string().into(),
            Cell::colored(v.lag.to_string(), (v.lag > 0).then_some(Color::Yellow)),
            v.rows.to_string().into(),
            v.digest.clone().into(),
            v.last_rebuild.clone().unwrap_or_else(|| "-".into()).into(),
        ]);
    }
    t.write(out, w, c)?;
    ctx.flush()
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {} ({n} bytes)", UNITS[u])
    }
}

/// `export [FILE]`.
pub fn export(ctx: &mut Ctx, a: ExportArgs) -> CliResult {
    let tracker = ctx.open(false)?;
    let head = tracker.store().head()?.seq;
    let progress = ctx.progress(Some(head), "exporting");
    let result = match &a.file {
        None => {
            let stdout = io::stdout();
            let mut w = BufWriter::with_capacity(256 * 1024, stdout.lock());
            tracker.export(&mut w, &|n| progress.set(n))
        }
        Some(path) => {
            let f = File::create(path)
                .map_err(|e| CliError::Input(format!("cannot create {}: {e}", path.display())))?;
            let mut w = BufWriter::with_capacity(256 * 1024, f);
            tracker.export(&mut w, &|n| progress.set(n))
        }
    };
    progress.finish();
    tracker.close();
    let n = result?;
    if let Some(path) = &a.file {
        if ctx.json {
            ctx.print_json(
                &serde_json::json!({"exported": n, "file": path.display().to_string()}),
            )?;
            return ctx.flush();
        }
        ctx.note(&format!("exported {n} events to {}", path.display()));
    }
    Ok(())
}

/// `restore FILE`.
pub fn restore(ctx: &mut Ctx, a: RestoreArgs) -> CliResult {
    let (mut reader, size): (Box<dyn BufRead>, Option<u64>) = if a.file.as_os_str() == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let f = File::open(&a.file)
            .map_err(|e| CliError::Input(format!("cannot open {}: {e}", a.file.display())))?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::with_capacity(256 * 1024, f)), size)
    };
    let _ = size;
    crate::ctx::small_pages();
    let tracker = ctx.open(true)?;
    let progress = ctx.progress(None, "restoring");
    let result = tracker.restore(&mut reader, &|n| progress.set(n));
    progress.finish();
    let head = tracker.store().head();
    tracker.close();
    let n = result?;
    let head = head?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "restored": n,
            "head_seq": head.seq,
            "head_hash": (head.seq > 0).then(|| head.hash_hex()),
        }))?;
        return ctx.flush();
    }
    if !ctx.quiet {
        let store = ctx.store_path().display().to_string();
        writeln!(
            ctx.out(),
            "restored {n} events into {store} (head seq {})",
            head.seq
        )?;
    }
    ctx.flush()
}
