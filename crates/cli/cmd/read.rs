//! Reads from the views: `list`, `show`, `history`, `calls`, `documents`, `agenda`.

use commitments_projection::rows::{CallRow, DocumentRow, SourceRow};
use commitments_projection::{CommitmentView, HistoryRow, ListFilter, Shown};

use crate::args::ListArgs;
use crate::cmd::{board_table, due_text, history_table, overdue_text, window_state, window_text};
use crate::ctx::Ctx;
use crate::error::CliResult;
use crate::table::{paint, status_color, window_color, write_pairs, Cell, Table};

/// `list`.
pub fn list(ctx: &mut Ctx, a: ListArgs) -> CliResult {
    let filter = ListFilter {
        status: a.status,
        country: a
            .country
            .iter()
            .map(|c| c.trim().to_ascii_uppercase())
            .collect(),
        kind: a.kind,
        overdue: a.overdue,
        due_before: a.due_before,
        due_after: a.due_after,
    };
    let mut rows = ctx.read(|t, at| t.list(at, &filter))?;
    rows.sort_by(|a, b| a.commitment_id.cmp(&b.commitment_id));
    print_board(ctx, &rows, "no commitments match")
}

/// `agenda`.
pub fn agenda(ctx: &mut Ctx) -> CliResult {
    let rows = ctx.read(|t, at| t.agenda(at))?;
    if !table_follows(ctx, &rows, "nothing on the agenda: no open commitment")? {
        return Ok(());
    }
    let mut t = Table::new(&[
        ("WINDOW", false),
        ("OVERDUE", false),
        ("DUE", false),
        ("ID", true),
        ("STATUS", false),
        ("PARTIES", false),
        ("DESCRIPTION", true),
    ])
    .keep(3);
    for v in &rows {
        let w = window_state(v);
        t.row(vec![
            Cell::colored(w.clone(), window_color(&w)),
            Cell::colored(overdue_text(v), window_color("overdue")),
            window_text(v).into(),
            v.commitment_id.clone().into(),
            Cell::colored(v.status.clone(), status_color(&v.status)),
            v.parties.join(",").into(),
            v.description.clone().into(),
        ]);
    }
    ctx.write_table(&t)
}

fn print_board(ctx: &mut Ctx, rows: &[CommitmentView], empty: &str) -> CliResult {
    if !table_follows(ctx, rows, empty)? {
        return Ok(());
    }
    ctx.write_table(&board_table(rows))
}

/// With `--json`, prints `rows` and returns false; with no rows, says `empty` (on stderr)
/// and returns false; otherwise returns true: the caller prints its table.
fn table_follows<T: serde::Serialize>(ctx: &mut Ctx, rows: &[T], empty: &str) -> CliResult<bool> {
    if ctx.json {
        ctx.print_json(rows)?;
        ctx.flush()?;
        return Ok(false);
    }
    if rows.is_empty() {
        ctx.note(empty);
        return Ok(false);
    }
    Ok(true)
}

/// `show ID`.
pub fn show(ctx: &mut Ctx, id: &str) -> CliResult {
    let shown = ctx.read(|t, at| t.show(id, at))?;
    if ctx.json {
        ctx.print_json(&shown)?;
        return ctx.flush();
    }
    let (width, color) = (ctx.width, ctx.color);
    let history = match &shown {
        Shown::Commitment { view, history } => {
            show_commitment(ctx, view, color)?;
            history
        }
        Shown::Call { row, history } => {
            show_call(ctx, row, history)?;
            history
        }
        Shown::Document { row, history } => {
            show_document(ctx, row)?;
            history
        }
        Shown::Source { row, history } => {
            show_source(ctx, row)?;
            history
        }
    };
    let out = ctx.out();
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        paint("history:", Some(crate::table::Color::Bold), color)
    )?;
    history_table(history).write(out, width, color)?;
    ctx.flush()
}

fn evidence_lines(ev: &[commitments_domain::values::Evidence]) -> Vec<String> {
    ev.iter()
        .map(|e| {
            let mut s = e.source_id.to_string();
            if let Some(l) = &e.locator {
                s.push_str(&format!(", {l}"));
            }
            if let Some(q) = &e.translation_en.as_ref().or(e.quote.as_ref()) {
                s.push_str(&format!(": \"{q}\""));
            }
            s
        })
        .collect()
}

fn show_commitment(ctx: &mut Ctx, v: &CommitmentView, color: bool) -> CliResult {
    let width = ctx.width;
    let due = match &v.due {
        Some(d) => {
            let mut s = format!("{} ({})", due_text(Some(d)), d.basis);
            if let Some(x) = d.expression_en.as_ref().or(d.expression.as_ref()) {
                s.push_str(&format!(" \"{x}\""));
            }
            s
        }
        None => "none".into(),
    };
    let mut window = window_state(v);
    let wt = window_text(v);
    if !wt.is_empty() {
        window = format!("{window} ({wt})");
    }
    if v.overdue {
        window.push_str(&format!(", overdue by {}", overdue_text(v)));
    }
    let w = window_state(v);
    let pairs = vec![
        ("commitment", v.commitment_id.clone()),
        ("kind", v.kind.clone()),
        ("status", paint(&v.status, status_color(&v.status), color)),
        ("parties", v.parties.join(", ")),
        ("description", v.description.clone()),
        ("strength", v.strength.clone().unwrap_or_else(|| "-".into())),
        ("due", due),
        ("window", paint(&window, window_color(&w), color)),
        (
            "stalled",
            if v.stalled { "yes".into() } else { "no".into() },
        ),
        ("origin", v.origin.clone().unwrap_or_else(|| "-".into())),
        (
            "events",
            format!(
                "{} (opened at seq {}, last seq {})",
                v.event_count, v.opened_seq, v.last_seq
            ),
        ),
        ("as of", v.as_of.to_string()),
        ("known at", v.known_at.clone()),
        ("sources", v.sources.join(", ")),
    ];
    let out = ctx.out();
    write_pairs(out, &pairs, None)?;
    let ev = evidence_lines(&v.evidence);
    if !ev.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{}",
            paint("evidence:", Some(crate::table::Color::Bold), color)
        )?;
        for e in ev {
            let e = match width {
                Some(w) if e.chars().count() + 2 > w => {
                    let mut t: String = e.chars().take(w.saturating_sub(3)).collect();
                    t.push('…');
                    t
                }
                _ => e,
            };
            writeln!(out, "  {e}")?;
        }
    }
    Ok(())
}

fn participants_text(p: &[commitments_domain::values::Participant]) -> String {
    p.iter()
        .map(|p| match &p.name_as_reported {
            Some(n) => format!("{} ({n})", p.country),
            None => p.country.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn show_call(ctx: &mut Ctx, r: &CallRow, history: &[HistoryRow]) -> CliResult {
    let evidence: Vec<commitments_domain::values::Evidence> = history
        .iter()
        .filter(|h| h.effect == "applied")
        .flat_map(|h| h.evidence.iter().cloned())
        .collect();
    let pairs = vec![
        ("call", r.call_id.clone()),
        (
            "occurred",
            r.occurred
                .as_ref()
                .map(|o| o.to_string())
                .unwrap_or_default(),
        ),
        ("mode", r.mode.to_string()),
        ("participants", participants_text(&r.participants)),
        ("topics", r.topics.join("; ")),
        (
            "location",
            r.location
                .as_ref()
                .map(|l| match &l.city {
                    Some(c) => format!("{c}, {}", l.country),
                    None => l.country.to_string(),
                })
                .unwrap_or_else(|| "-".into()),
        ),
        ("commitments", r.commitments.join(", ")),
        ("events", r.event_count.to_string()),
        (
            "retracted",
            if r.retracted {
                "yes".into()
            } else {
                "no".into()
            },
        ),
        ("sources", evidence_lines(&evidence).join("; ")),
    ];
    let w = ctx.width;
    write_pairs(ctx.out(), &pairs, w)?;
    Ok(())
}

fn show_document(ctx: &mut Ctx, r: &DocumentRow) -> CliResult {
    let mut pairs = vec![
        ("document", r.document_id.clone()),
        ("title", r.title.clone()),
        ("type", r.doc_type.to_string()),
        (
            "parties",
            r.parties
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "signed",
            r.signed.as_ref().map(|o| o.to_string()).unwrap_or_default(),
        ),
        ("events", r.event_count.to_string()),
        (
            "retracted",
            if r.retracted {
                "yes".into()
            } else {
                "no".into()
            },
        ),
    ];
    for rv in &r.reviews {
        pairs.push((
            "review",
            format!(
                "seq {} {}{}: {}",
                rv.seq,
                rv.occurred
                    .as_ref()
                    .map(|o| o.to_string())
                    .unwrap_or_default(),
                rv.reviewed_in
                    .as_ref()
                    .map(|c| format!(" in {c}"))
                    .unwrap_or_default(),
                rv.summary
            ),
        ));
    }
    let w = ctx.width;
    write_pairs(ctx.out(), &pairs, w)?;
    Ok(())
}

fn show_source(ctx: &mut Ctx, r: &SourceRow) -> CliResult {
    let pairs = vec![
        ("source", r.source_id.clone()),
        ("title", r.title.clone()),
        ("url", r.url.clone()),
        ("language", r.language.clone()),
        (
            "publisher",
            r.publisher.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "published",
            r.published
                .as_ref()
                .map(|o| o.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "retrieved at",
            r.retrieved_at.clone().unwrap_or_else(|| "-".into()),
        ),
        ("events", r.event_count.to_string()),
        (
            "retracted",
            if r.retracted {
                "yes".into()
            } else {
                "no".into()
            },
        ),
    ];
    let w = ctx.width;
    write_pairs(ctx.out(), &pairs, w)?;
    Ok(())
}

/// `history ID`.
pub fn history(ctx: &mut Ctx, id: &str) -> CliResult {
    let rows = ctx.read(|t, at| t.history(id, at))?;
    if !table_follows(ctx, &rows, "no events recorded by --known-at")? {
        return Ok(());
    }
    ctx.write_table(&history_table(&rows))
}

/// `calls`.
pub fn calls(ctx: &mut Ctx) -> CliResult {
    let rows = ctx.read(|t, at| t.calls(at))?;
    if !table_follows(ctx, &rows, "no calls recorded")? {
        return Ok(());
    }
    let mut t = Table::new(&[
        ("DATE", false),
        ("CALL", true),
        ("MODE", false),
        ("PARTICIPANTS", true),
        ("COMMITMENTS", true),
        ("TOPICS", true),
    ])
    .keep(1);
    for r in &rows {
        let mut id = r.call_id.clone();
        if r.retracted {
            id.push_str(" (retracted)");
        }
        t.row(vec![
            r.occurred
                .as_ref()
                .map(|o| o.to_string())
                .unwrap_or_default()
                .into(),
            id.into(),
            r.mode.to_string().into(),
            participants_text(&r.participants).into(),
            r.commitments.join(", ").into(),
            r.topics.join("; ").into(),
        ]);
    }
    ctx.write_table(&t)
}

/// `documents`.
pub fn documents(ctx: &mut Ctx) -> CliResult {
    let mut rows = ctx.read(|t, at| t.documents(at))?;
    rows.sort_by(|a, b| a.document_id.cmp(&b.document_id));
    if !table_follows(ctx, &rows, "no documents recorded")? {
        return Ok(());
    }
    let mut t = Table::new(&[
        ("DOCUMENT", true),
        ("TYPE", false),
        ("PARTIES", false),
        ("SIGNED", false),
        (">REVIEWS", false),
        ("TITLE", true),
    ])
    .keep(0);
    for r in &rows {
        t.row(vec![
            r.document_id.clone().into(),
            r.doc_type.to_string().into(),
            r.parties
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",")
                .into(),
            r.signed
                .as_ref()
                .map(|o| o.to_string())
                .unwrap_or_default()
                .into(),
            r.reviews.len().to_string().into(),
            r.title.clone().into(),
        ]);
    }
    ctx.write_table(&t)
}
