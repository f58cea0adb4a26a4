//! `record TYPE --field value ...` or `record --json '{...}'`: append one event, validated
//! exactly as `import` validates a line (the flags build a JSON object that goes through
//! `Event::from_value`).

use std::io::Read;

use commitments_domain::{DomainError, Event, EVENT_TYPES};
use serde_json::{json, Map, Value};

use crate::args::{RecordArgs, RecordFields};
use crate::cmd::change_text;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};
use crate::input::{decode_line, too_long_reason, MAX_LINE};

/// `consultation-agreed`, `consultation_agreed` or `ConsultationAgreed` → `ConsultationAgreed`.
pub fn type_name(s: &str) -> Option<&'static str> {
    let camel: String = s
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect();
    EVENT_TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(&camel))
        .copied()
}

/// The kebab-case spelling of a type.
pub fn kebab(t: &str) -> String {
    let mut out = String::new();
    for (i, c) in t.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn due_field(t: &str) -> &'static str {
    match t {
        "InvitationExtended" | "InvitationAccepted" => "proposed",
        "MeetingScheduled" => "scheduled_for",
        "CommitmentPostponed" | "CommitmentReaffirmed" => "new_due",
        _ => "due",
    }
}

fn participant(s: &str) -> Value {
    match s.split_once(':') {
        Some((c, name)) => json!({"country": c.trim(), "name_as_reported": name.trim()}),
        None => json!({"country": s.trim()}),
    }
}

fn list(s: &str) -> Value {
    Value::Array(
        s.split(',')
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(|p| Value::String(p.to_owned()))
            .collect(),
    )
}

/// Builds the event object from the flags. Returns it with `(field, flag)` pairs so an
/// unknown-field error can name the flag.
fn build(t: &str, f: &RecordFields, set: &[String]) -> CliResult<(Value, Vec<(String, String)>)> {
    let mut m = Map::new();
    let mut flags: Vec<(String, String)> = Vec::new();
    m.insert("type".into(), Value::String(t.to_owned()));
    let mut put = |m: &mut Map<String, Value>, field: &str, flag: &str, v: Value| {
        m.insert(field.to_owned(), v);
        flags.push((field.to_owned(), flag.to_owned()));
    };
    let strings: [(&str, &str, &Option<String>); 33] = [
        ("event_id", "--event-id", &f.event_id),
        ("occurred", "--occurred", &f.occurred),
        ("occurred_note", "--occurred-note", &f.occurred_note),
        ("recorded_by", "--recorded-by", &f.recorded_by),
        ("confidence", "--confidence", &f.confidence),
        ("note", "--note", &f.note),
        ("commitment_id", "--commitment-id", &f.commitment_id),
        ("call_id", "--call-id", &f.call_id),
        ("document_id", "--document-id", &f.document_id),
        ("source_id", "--source-id", &f.source_id),
        ("kind", "--kind", &f.kind),
        ("strength", "--strength", &f.strength),
        ("description", "--description", &f.description),
        ("origin", "--origin", &f.origin),
        ("extent", "--extent", &f.extent),
        ("by_call", "--by-call", &f.by_call),
        ("summary", "--summary", &f.summary),
        ("rating", "--rating", &f.rating),
        ("rationale", "--rationale", &f.rationale),
        ("as_of", "--as-of-date", &f.as_of_date),
        ("reason", "--reason", &f.reason),
        ("target_event_id", "--target", &f.target),
        ("mode", "--mode", &f.mode),
        ("visit_type", "--visit-type", &f.visit_type),
        ("destination", "--destination", &f.destination),
        ("cancelled_by", "--cancelled-by", &f.cancelled_by),
        ("url", "--url", &f.url),
        ("title", "--title", &f.title),
        ("language", "--language", &f.language),
        ("publisher", "--publisher", &f.publisher),
        ("published", "--published", &f.published),
        ("doc_type", "--doc-type", &f.doc_type),
        ("reviewed_in", "--reviewed-in", &f.reviewed_in),
    ];
    for (field, flag, v) in strings {
        if let Some(v) = v {
            put(&mut m, field, flag, Value::String(v.clone()));
        }
    }
    if let Some(v) = &f.progress {
        put(&mut m, "progress", "--progress", Value::String(v.clone()));
    }
    if let Some(v) = &f.format {
        put(&mut m, "format", "--format", Value::String(v.clone()));
    }
    if let Some(p) = &f.parties {
        put(&mut m, "parties", "--parties", list(p));
    }
    if let Some(p) = &f.topics {
        put(&mut m, "topics", "--topics", list(p));
    }
    if !f.participants.is_empty() {
        let v = Value::Array(f.participants.iter().map(|p| participant(p)).collect());
        put(&mut m, "participants", "--participant", v);
    }
    if let Some(p) = &f.inviter {
        put(&mut m, "inviter", "--inviter", participant(p));
    }
    if let Some(p) = &f.invitee {
        put(&mut m, "invitee", "--invitee", participant(p));
    }
    if let Some(edtf) = &f.due {
        let basis = f.due_basis.clone().unwrap_or_else(|| {
            if edtf.ends_with("/..") {
                "open_ended".into()
            } else {
                "explicit".into()
            }
        });
        let mut d = json!({"edtf": edtf, "basis": basis});
        if let Some(x) = &f.due_expression {
            d["expression"] = Value::String(x.clone());
        }
        put(&mut m, due_field(t), "--due", d);
    }
    if !f.sources.is_empty() {
        let ev: Vec<Value> = f
            .sources
            .iter()
            .map(|s| match s.split_once(':') {
                Some((src, loc)) => json!({"source_id": src, "locator": loc}),
                None => json!({"source_id": s}),
            })
            .collect();
        put(&mut m, "evidence", "--source", Value::Array(ev));
    }
    for kv in set {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            CliError::Usage(format!(
                "--set `{kv}`: expected FIELD=JSON (e.g. location={{\"country\":\"ZWE\"}})"
            ))
        })?;
        let v = serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        m.insert(k.trim().to_owned(), v);
    }
    Ok((Value::Object(m), flags))
}

fn has_field_flags(f: &RecordFields) -> bool {
    let opts = [
        &f.event_id,
        &f.occurred,
        &f.occurred_note,
        &f.recorded_by,
        &f.confidence,
        &f.note,
        &f.commitment_id,
        &f.call_id,
        &f.document_id,
        &f.source_id,
        &f.parties,
        &f.kind,
        &f.strength,
        &f.description,
        &f.due,
        &f.origin,
        &f.extent,
        &f.by_call,
        &f.summary,
        &f.rating,
        &f.rationale,
        &f.as_of_date,
        &f.reason,
        &f.target,
        &f.mode,
        &f.topics,
        &f.inviter,
        &f.invitee,
        &f.visit_type,
        &f.destination,
        &f.cancelled_by,
        &f.url,
        &f.title,
        &f.language,
        &f.publisher,
        &f.published,
        &f.doc_type,
        &f.reviewed_in,
        &f.progress,
        &f.format,
    ];
    opts.iter().any(|o| o.is_some()) || !f.sources.is_empty() || !f.participants.is_empty()
}

fn event_from_text(text: &str) -> CliResult<Event> {
    if text.len() > MAX_LINE {
        return Err(CliError::Input(too_long_reason(text.len() as u64)));
    }
    let t = text
        .trim_start_matches('\u{feff}')
        .trim_end_matches(['\r', '\n']);
    Ok(decode_line(t.as_bytes())?)
}

/// Runs `record`.
pub fn run(ctx: &mut Ctx, a: RecordArgs) -> CliResult {
    let ev = match &a.event {
        Some(text) => {
            if a.event_type.is_some() || has_field_flags(&a.fields) || !a.set.is_empty() {
                return Err(CliError::Usage(
                    "an event given as JSON (--json/--event) takes no TYPE, field flags or --set"
                        .into(),
                ));
            }
            if text == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .take(MAX_LINE as u64 + 3)
                    .read_to_string(&mut s)
                    .map_err(|e| {
                        CliError::Input(format!("cannot read the event from stdin: {e}"))
                    })?;
                event_from_text(&s)?
            } else {
                event_from_text(text)?
            }
        }
        None => {
            let Some(given) = a.event_type.as_deref() else {
                return Err(CliError::Usage(
                    "record needs an event TYPE (e.g. `record commitment-fulfilled ...`) or --json '{...}'".into(),
                ));
            };
            let t = type_name(given).ok_or_else(|| {
                CliError::Usage(format!(
                    "unknown event type `{given}`; one of: {}",
                    EVENT_TYPES
                        .iter()
                        .map(|t| kebab(t))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let (v, flags) = build(t, &a.fields, &a.set)?;
            Event::from_value(v).map_err(|e| match &e {
                DomainError::Field { field, reason } if reason.starts_with("unknown field") => {
                    match flags.iter().find(|(f, _)| f == field) {
                        Some((_, flag)) => CliError::Usage(format!(
                            "{flag} does not apply to {} (it has no field `{field}`)",
                            kebab(t)
                        )),
                        None => CliError::from(e.clone()),
                    }
                }
                _ => CliError::from(e.clone()),
            })?
        }
    };

    let tracker = ctx.open(true)?;
    let report = tracker.record(ev, a.expect_version);
    tracker.close();
    let report = report?;

    if report.clock_clamped {
        ctx.warn("the clock is behind the log's head: recorded_at was clamped to the head's");
    }
    if ctx.json {
        ctx.print_json(&report)?;
        return ctx.flush();
    }
    if ctx.quiet {
        return Ok(());
    }
    let line = if report.duplicate {
        format!(
            "already recorded: event {} is at seq {} on stream {} (same content): no-op",
            report.event_id, report.seq, report.stream
        )
    } else {
        let change = change_text(
            report.status_before.as_deref(),
            report.status_after.as_deref(),
        );
        format!(
            "recorded seq {}: {} on stream {} (version {}){}",
            report.seq,
            report.event_type,
            report.stream,
            report.stream_version,
            if change.is_empty() {
                String::new()
            } else {
                format!(", status {change}")
            }
        )
    };
    let out = ctx.out();
    writeln!(out, "{line}")?;
    writeln!(out, "event_id {}", report.event_id)?;
    ctx.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_spellings() {
        assert_eq!(type_name("consultation-agreed"), Some("ConsultationAgreed"));
        assert_eq!(type_name("ConsultationAgreed"), Some("ConsultationAgreed"));
        assert_eq!(type_name("event_retracted"), Some("EventRetracted"));
        assert_eq!(type_name("nope"), None);
        assert_eq!(kebab("CommitmentFulfilled"), "commitment-fulfilled");
    }

    #[test]
    fn flags_build_the_catalogue_object() {
        let f = RecordFields {
            commitment_id: Some("x".into()),
            due: Some("2024-05".into()),
            occurred: Some("2024-03-01".into()),
            sources: vec!["src-a:paragraph 2".into()],
            ..RecordFields::default()
        };
        let (v, _) = build("MeetingScheduled", &f, &["format=\"video\"".into()]).expect("build");
        assert_eq!(
            v,
            json!({"type": "MeetingScheduled", "commitment_id": "x", "occurred": "2024-03-01",
                   "scheduled_for": {"edtf": "2024-05", "basis": "explicit"},
                   "evidence": [{"source_id": "src-a", "locator": "paragraph 2"}],
                   "format": "video"})
        );
    }
}
