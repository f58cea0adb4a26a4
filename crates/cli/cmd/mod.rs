//! The commands, and the renderings several of them share.

pub mod admin;
pub mod import;
pub mod read;
pub mod record;
pub mod replay;

use commitments_domain::DueSpec;
use commitments_projection::{CommitmentView, HistoryRow};

use crate::args::Command;
use crate::ctx::Ctx;
use crate::error::CliResult;
use crate::table::{status_color, window_color, Cell, Color, Table};

/// Runs one command.
pub fn run(ctx: &mut Ctx, cmd: Command) -> CliResult {
    match cmd {
        Command::Import(a) => import::run(ctx, a),
        Command::Record(a) => record::run(ctx, *a),
        Command::List(a) => read::list(ctx, a),
        Command::Show(a) => read::show(ctx, &a.id),
        Command::History(a) => read::history(ctx, &a.id),
        Command::Calls => read::calls(ctx),
        Command::Documents => read::documents(ctx),
        Command::Agenda => read::agenda(ctx),
        Command::Replay(a) => replay::run(ctx, a),
        Command::Rebuild(a) => admin::rebuild(ctx, a),
        Command::Verify => admin::verify(ctx),
        Command::Status => admin::status(ctx),
        Command::Export(a) => admin::export(ctx, a),
        Command::Restore(a) => admin::restore(ctx, a),
    }
}

/// `2024-02-01..2024-02-29`, open ends as `..`.
pub fn window_text(v: &CommitmentView) -> String {
    match (v.due_earliest, v.due_latest) {
        (None, None) => String::new(),
        (Some(e), Some(l)) if e == l => e.to_string(),
        (e, l) => format!(
            "{}..{}",
            e.map(|d| d.to_string()).unwrap_or_default(),
            l.map(|d| d.to_string()).unwrap_or_default()
        ),
    }
}

/// `15 days` (+ `(horizon)` when judged by the policy horizon).
pub fn overdue_text(v: &CommitmentView) -> String {
    match v.overdue_days {
        Some(d) if v.overdue => {
            let basis = match v.overdue_basis {
                Some(commitments_domain::OverdueBasis::PolicyHorizon) => " (horizon)",
                _ => "",
            };
            format!("{d} day{}{basis}", if d == 1 { "" } else { "s" })
        }
        _ => String::new(),
    }
}

/// The window state as text (`-` for finished commitments).
pub fn window_state(v: &CommitmentView) -> String {
    v.window
        .map(|w| w.as_str().to_owned())
        .unwrap_or_else(|| "-".to_owned())
}

/// The DueSpec as text: its EDTF.
pub fn due_text(d: Option<&DueSpec>) -> String {
    d.map(|d| d.edtf.0.to_string()).unwrap_or_default()
}

/// The commitment board.
pub fn board_table(rows: &[CommitmentView]) -> Table {
    let mut t = Table::new(&[
        ("ID", true),
        ("KIND", true),
        ("PARTIES", false),
        ("STATUS", false),
        ("DUE", false),
        ("WINDOW", false),
        ("OVERDUE", false),
        ("DESCRIPTION", true),
    ])
    .keep(0);
    for v in rows {
        let w = window_state(v);
        let mut status = v.status.clone();
        if v.stalled {
            status.push_str(" (stalled)");
        }
        t.row(vec![
            v.commitment_id.clone().into(),
            v.kind.clone().into(),
            v.parties.join(",").into(),
            Cell::colored(status, status_color(&v.status)),
            window_text(v).into(),
            Cell::colored(w.clone(), window_color(&w)),
            Cell::colored(overdue_text(v), Some(Color::Red)),
            v.description.clone().into(),
        ]);
    }
    t
}

/// `open → scheduled`, `∅ → open` or empty.
pub fn change_text(before: Option<&str>, after: Option<&str>) -> String {
    match (before, after) {
        (None, None) => String::new(),
        (b, a) if b == a => format!("{} (same)", a.unwrap_or("-")),
        (b, a) => format!("{} → {}", b.unwrap_or("∅"), a.unwrap_or("∅")),
    }
}

/// The audit trail.
pub fn history_table(rows: &[HistoryRow]) -> Table {
    let mut t = Table::new(&[
        (">SEQ", false),
        ("RECORDED_AT", false),
        ("BY", true),
        ("OCCURRED", true),
        ("TYPE", false),
        ("STATUS", false),
        ("DUE", false),
        ("EFFECT", true),
        ("HASH", false),
    ]);
    for r in rows {
        let status = change_text(r.status_before.as_deref(), r.status_after.as_deref());
        let due = {
            let b = due_text(r.due_before.as_ref());
            let a = due_text(r.due_after.as_ref());
            if b == a {
                String::new()
            } else if b.is_empty() {
                format!("→ {a}")
            } else {
                format!("{b} → {}", if a.is_empty() { "∅" } else { &a })
            }
        };
        let mut effect = r.effect.clone();
        if let Some(t) = &r.target_event_id {
            effect.push_str(&format!(" of {t}"));
        }
        if let Some(why) = &r.effect_reason {
            effect.push_str(&format!(": {why}"));
        }
        if !r.corrected_by.is_empty() {
            effect.push_str(&format!(" (corrected by {})", r.corrected_by.join(", ")));
        }
        let effect_color = match r.effect.as_str() {
            "invalidated" | "retracted" => Some(Color::Red),
            _ => None,
        };
        t.row(vec![
            r.seq.to_string().into(),
            r.recorded_at.clone().into(),
            r.recorded_by.clone().unwrap_or_default().into(),
            r.occurred.clone().unwrap_or_default().into(),
            r.event_type.clone().into(),
            Cell::colored(status, r.status_after.as_deref().and_then(status_color)),
            due.into(),
            Cell::colored(effect, effect_color),
            r.hash.chars().take(12).collect::<String>().into(),
        ]);
    }
    t
}
