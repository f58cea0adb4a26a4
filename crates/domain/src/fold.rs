//! Folding one stream: corrections and retractions applied, the commitment refolded, and an
//! audit trail with the status and due before and after every event (catalogue section 4).

use std::collections::HashMap;

use crate::edtf::DueSpec;
use crate::error::DomainError;
use crate::event::{apply_changes, Event};
use crate::state::{decide, evolve, CommitmentState, Status};
use crate::values::EventId;

/// What became of one event in the refolded stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Applied to the state.
    Applied,
    /// Skipped: illegal in the refolded sequence; the reason says why.
    Invalidated(String),
    /// Skipped: retracted by the named event.
    Retracted(EventId),
    /// A correction or retraction (its row shows the refold it caused).
    Meta,
}

/// One row of a stream's audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Status before the event (for a correction/retraction: before the refold it causes).
    pub status_before: Option<Status>,
    /// Status after.
    pub status_after: Option<Status>,
    /// Effective due before.
    pub due_before: Option<DueSpec>,
    /// Effective due after.
    pub due_after: Option<DueSpec>,
    /// What became of the event.
    pub effect: Effect,
    /// Corrections applied to this event, in order.
    pub corrected_by: Vec<EventId>,
}

/// The fold of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamFold {
    /// The commitment state (None for other streams, or a commitment that never opened).
    pub state: Option<CommitmentState>,
    /// One row per event, in stream order.
    pub steps: Vec<Step>,
    /// Each event as it counts now: patched by corrections, `None` when retracted (or a
    /// correction/retraction itself, or a correction that no longer applies).
    pub effective: Vec<Option<Event>>,
}

/// One raw audit row: status before/after, due before/after, effect.
type RawStep = (
    Option<Status>,
    Option<Status>,
    Option<DueSpec>,
    Option<DueSpec>,
    Effect,
);

struct Refold {
    state: Option<CommitmentState>,
    steps: Vec<RawStep>,
    effective: Vec<Option<Event>>,
    corrected_by: Vec<Vec<EventId>>,
}

fn status_of(s: &Option<CommitmentState>) -> Option<Status> {
    s.as_ref().map(|s| s.status)
}
fn due_of(s: &Option<CommitmentState>) -> Option<DueSpec> {
    s.as_ref()
        .and_then(|s| s.due.as_ref().map(|d| d.spec.clone()))
}

/// Refolds `events[..upto]`, applying only the corrections/retractions among them.
fn refold(events: &[&Event], upto: usize) -> Refold {
    let events = &events[..upto];
    let index: HashMap<EventId, usize> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.event_id().map(|id| (id, i)))
        .collect();
    // Retractions first: a retracted correction no longer patches.
    let mut retracted_by: Vec<Option<EventId>> = vec![None; events.len()];
    for e in events {
        if let Event::EventRetracted(r) = e {
            if let Some(&t) = index.get(&r.target_event_id) {
                if retracted_by[t].is_none() {
                    retracted_by[t] = e.event_id();
                }
            }
        }
    }
    let mut effective: Vec<Option<Event>> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let meta = matches!(e, Event::EventCorrected(_) | Event::EventRetracted(_));
            (!meta && retracted_by[i].is_none()).then(|| (*e).clone())
        })
        .collect();
    let mut corrected_by: Vec<Vec<EventId>> = vec![Vec::new(); events.len()];
    let mut correction_effect: HashMap<usize, Effect> = HashMap::new();
    for (ci, e) in events.iter().enumerate() {
        let Event::EventCorrected(c) = e else {
            continue;
        };
        if retracted_by[ci].is_some() {
            continue;
        }
        let Some(&t) = index.get(&c.target_event_id) else {
            continue;
        };
        let Some(target) = effective[t].as_ref() else {
            continue;
        };
        match apply_changes(target, &c.changes) {
            Ok(patched) => {
                effective[t] = Some(patched);
                if let Some(id) = e.event_id() {
                    corrected_by[t].push(id);
                }
            }
            Err(err) => {
                correction_effect.insert(ci, Effect::Invalidated(err.to_string()));
            }
        }
    }
    let mut state: Option<CommitmentState> = None;
    let mut steps = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let before = (status_of(&state), due_of(&state));
        let effect = match (&effective[i], retracted_by[i]) {
            (_, Some(by)) => {
                // A retracted opener leaves the commitment retracted, with the opener's fields.
                if matches!(
                    e,
                    Event::ConsultationAgreed(_) | Event::InvitationExtended(_)
                ) && state.is_none()
                {
                    state = evolve(None, e).map(|mut s| {
                        s.status = Status::Retracted;
                        s
                    });
                }
                Effect::Retracted(by)
            }
            (None, None) => correction_effect.remove(&i).unwrap_or(Effect::Meta),
            (Some(ev), None) => {
                if ev.commitment_id().is_some() {
                    match decide(state.as_ref(), ev) {
                        Ok(()) => {
                            state = evolve(state.take(), ev);
                            Effect::Applied
                        }
                        Err(err) => Effect::Invalidated(err.to_string()),
                    }
                } else {
                    Effect::Applied
                }
            }
        };
        if matches!(effect, Effect::Invalidated(_)) {
            effective[i] = None;
        }
        steps.push((
            before.0,
            status_of(&state),
            before.1,
            due_of(&state),
            effect,
        ));
    }
    Refold {
        state,
        steps,
        effective,
        corrected_by,
    }
}

/// Folds one stream (events in stream order). Without corrections or retractions this is one
/// pass of [`decide`]/[`evolve`]; with them, the stream is refolded and every correction or
/// retraction row shows the state before and after the refold it caused.
pub fn fold_stream(events: &[&Event]) -> StreamFold {
    let full = refold(events, events.len());
    let mut steps: Vec<Step> = full
        .steps
        .into_iter()
        .zip(full.corrected_by)
        .map(|((sb, sa, db, da, effect), corrected_by)| Step {
            status_before: sb,
            status_after: sa,
            due_before: db,
            due_after: da,
            effect,
            corrected_by,
        })
        .collect();
    for (k, e) in events.iter().enumerate() {
        if matches!(e, Event::EventCorrected(_) | Event::EventRetracted(_)) {
            let before = refold(events, k).state;
            let after = refold(events, k + 1).state;
            let step = &mut steps[k];
            step.status_before = status_of(&before);
            step.status_after = status_of(&after);
            step.due_before = due_of(&before);
            step.due_after = due_of(&after);
        }
    }
    StreamFold {
        state: full.state,
        steps,
        effective: full.effective,
    }
}

/// The fold of a stream without corrections: the state only (the projection's fast path).
pub fn fold_plain(events: &[&Event]) -> Result<Option<CommitmentState>, DomainError> {
    let mut state = None;
    for e in events {
        decide(state.as_ref(), e)?;
        state = evolve(state, e);
    }
    Ok(state)
}
