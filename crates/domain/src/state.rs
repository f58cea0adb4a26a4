//! The commitment state machine (catalogue section 4) as pure functions, and the window /
//! overdue derivation as of a date.

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::edtf::DueSpec;
use crate::error::DomainError;
use crate::event::Event;
use crate::values::*;

string_enum!(
    /// A commitment's state.
    Status {
        /// Invited, not yet accepted.
        Pending = "pending",
        /// Agreed, no date set.
        Open = "open",
        /// A date is set.
        Scheduled = "scheduled",
        /// Put off.
        Postponed = "postponed",
        /// Assessed as lapsed (can be reaffirmed).
        Lapsed = "lapsed",
        /// Carried out.
        Fulfilled = "fulfilled",
        /// Partly carried out.
        PartiallyFulfilled = "partially_fulfilled",
        /// Invitation declined.
        Declined = "declined",
        /// Called off.
        Cancelled = "cancelled",
        /// Its opener was retracted.
        Retracted = "retracted"
    }
);

impl Status {
    /// Terminal states accept no lifecycle event.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Fulfilled
                | Status::PartiallyFulfilled
                | Status::Declined
                | Status::Cancelled
                | Status::Retracted
        )
    }

    /// Whether a commitment in this state can be overdue (see [`window`]): not terminal, not
    /// lapsed.
    pub fn can_be_overdue(self) -> bool {
        !self.is_terminal() && self != Status::Lapsed
    }
}

/// The due in force, with the anchor that relative and open-ended wording refers to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectiveDue {
    /// The DueSpec as recorded.
    pub spec: DueSpec,
    /// Its anchor: `spec.anchor`, else from the carrying event's `occurred`.
    pub anchor: Option<NaiveDate>,
}

impl EffectiveDue {
    /// Builds the effective due of `spec` carried by an event that `occurred` at `occurred`.
    pub fn new(spec: DueSpec, event: &Event) -> EffectiveDue {
        let anchor = spec
            .anchor
            .map(|d| d.0)
            .or_else(|| event.common().occurred.and_then(|o| o.default_anchor()));
        EffectiveDue { spec, anchor }
    }

    /// `(earliest, latest, basis)`: the stated window, or for an open-ended due with no
    /// stated end, `latest = anchor + horizon_days` with basis `policy_horizon`.
    pub fn bounds(
        &self,
        horizon_days: u32,
    ) -> (Option<NaiveDate>, Option<NaiveDate>, Option<OverdueBasis>) {
        let (earliest, latest) = self.spec.stated_window();
        match latest {
            Some(l) => (earliest, Some(l), Some(OverdueBasis::Stated)),
            None if self.spec.basis == Basis::OpenEnded => {
                let l = self
                    .anchor
                    .and_then(|a| a.checked_add_days(Days::new(u64::from(horizon_days))));
                (earliest, l, l.map(|_| OverdueBasis::PolicyHorizon))
            }
            None => (earliest, None, None),
        }
    }
}

/// A commitment as folded from its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitmentState {
    /// Its id.
    pub commitment_id: Slug,
    /// What it is about.
    pub kind: CommitmentKind,
    /// The sides, in the order given (inviter then invitee for invitations).
    pub parties: Vec<Country>,
    /// What was promised.
    pub description: String,
    /// Its state.
    pub status: Status,
    /// The due in force.
    pub due: Option<EffectiveDue>,
    /// Set by a `stalled` assessment, cleared by `on_track`.
    pub stalled: bool,
    /// The call it was agreed in.
    pub origin: Option<Slug>,
    /// How firmly it was stated (for `ConsultationAgreed`).
    pub strength: Option<Strength>,
    /// Where (if known).
    pub location: Option<Place>,
}

/// The next status for a lifecycle event, or `None` when the table says reject.
pub fn next_status(status: Status, event: &Event) -> Option<Status> {
    use Status::*;
    if status.is_terminal() {
        return None;
    }
    match event {
        Event::InvitationAccepted(_) => (status == Pending).then_some(Open),
        Event::InvitationDeclined(_) => (status == Pending).then_some(Declined),
        Event::MeetingScheduled(_) => Some(Scheduled),
        Event::CommitmentPostponed(_) => {
            (status != Pending && status != Lapsed).then_some(Postponed)
        }
        Event::CommitmentFulfilled(e) => Some(match e.extent {
            Extent::Full => Fulfilled,
            Extent::Partial => PartiallyFulfilled,
        }),
        Event::CommitmentCancelled(_) => Some(Cancelled),
        Event::CommitmentReaffirmed(_) => Some(if status == Lapsed { Open } else { status }),
        Event::CommitmentAssessed(e) => Some(if e.rating == Rating::Lapsed {
            Lapsed
        } else {
            status
        }),
        _ => None,
    }
}

fn is_opener(event: &Event) -> bool {
    matches!(
        event,
        Event::ConsultationAgreed(_) | Event::InvitationExtended(_)
    )
}

/// May `event` be appended to a commitment in `state` (`None`: the commitment does not exist)?
/// The error names the commitment, its state and the event type.
pub fn decide(state: Option<&CommitmentState>, event: &Event) -> Result<(), DomainError> {
    let Some(id) = event.commitment_id() else {
        return Ok(());
    };
    match (state, is_opener(event)) {
        (None, true) => Ok(()),
        (Some(s), true) => Err(DomainError::Transition {
            commitment: id.to_string(),
            state: format!("already open ({})", s.status),
            event_type: event.type_name().to_owned(),
        }),
        (None, false) => Err(DomainError::Reference {
            field: "commitment_id".into(),
            reason: format!(
                "unknown commitment `{id}`: {} needs an opened commitment",
                event.type_name()
            ),
        }),
        (Some(s), false) => match next_status(s.status, event) {
            Some(_) => Ok(()),
            None => Err(DomainError::Transition {
                commitment: id.to_string(),
                state: s.status.to_string(),
                event_type: event.type_name().to_owned(),
            }),
        },
    }
}

/// The state after `event` (which [`decide`] accepted). Events that are not about a
/// commitment leave the state as it is.
pub fn evolve(state: Option<CommitmentState>, event: &Event) -> Option<CommitmentState> {
    match event {
        Event::ConsultationAgreed(e) => Some(CommitmentState {
            commitment_id: e.commitment_id.clone(),
            kind: e.kind,
            parties: e.parties.clone(),
            description: e.description.clone(),
            status: Status::Open,
            due: e.due.clone().map(|d| EffectiveDue::new(d, event)),
            stalled: false,
            origin: e.origin.clone(),
            strength: Some(e.strength),
            location: e.location.clone(),
        }),
        Event::InvitationExtended(e) => Some(CommitmentState {
            commitment_id: e.commitment_id.clone(),
            kind: CommitmentKind::Visit,
            parties: {
                let mut p = vec![e.inviter.country];
                if e.invitee.country != e.inviter.country {
                    p.push(e.invitee.country);
                }
                p
            },
            description: format!(
                "{} visit to {} by {} (invited by {})",
                e.visit_type, e.destination, e.invitee.country, e.inviter.country
            ),
            status: Status::Pending,
            due: e.proposed.clone().map(|d| EffectiveDue::new(d, event)),
            stalled: false,
            origin: e.origin.clone(),
            strength: None,
            location: None,
        }),
        _ => {
            let mut s = state?;
            step(&mut s, event);
            Some(s)
        }
    }
}

/// [`evolve`] of an existing state, in place, without copying it: an opening event replaces
/// the state, any other event changes the fields it is about.
pub fn evolve_in_place(state: &mut CommitmentState, event: &Event) {
    match evolve(None, event) {
        Some(opened) => *state = opened,
        None => step(state, event),
    }
}

/// The change a lifecycle event makes to an existing state.
fn step(s: &mut CommitmentState, event: &Event) {
    if let Some(next) = next_status(s.status, event) {
        s.status = next;
    }
    match event {
        Event::InvitationAccepted(e) => {
            if let Some(p) = &e.proposed {
                s.due = Some(EffectiveDue::new(p.clone(), event));
            }
        }
        Event::MeetingScheduled(e) => {
            s.due = Some(EffectiveDue::new(e.scheduled_for.clone(), event));
            if e.location.is_some() {
                s.location = e.location.clone();
            }
        }
        Event::CommitmentPostponed(e) => {
            s.due = Some(match &e.new_due {
                Some(d) => EffectiveDue::new(d.clone(), event),
                None => {
                    let anchor = event.common().occurred.and_then(|o| o.default_anchor());
                    match anchor {
                        Some(a) => EffectiveDue {
                            spec: DueSpec::open_ended_from(a),
                            anchor: Some(a),
                        },
                        None => return,
                    }
                }
            });
        }
        Event::CommitmentReaffirmed(e) => {
            if let Some(d) = &e.new_due {
                s.due = Some(EffectiveDue::new(d.clone(), event));
            }
        }
        Event::CommitmentAssessed(e) => match e.rating {
            Rating::Stalled => s.stalled = true,
            Rating::OnTrack => s.stalled = false,
            Rating::Lapsed => {}
        },
        _ => {}
    }
}

string_enum!(
    /// Where a commitment stands against its due window on a date.
    WindowState { NoDeadline = "no_deadline", NotYetDue = "not_yet_due", InWindow = "in_window", Overdue = "overdue" }
);
string_enum!(
    /// Why a commitment counts as overdue.
    OverdueBasis { Stated = "stated", PolicyHorizon = "policy_horizon" }
);

/// The window derivation of one commitment on one date (never stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowView {
    /// Null for terminal and lapsed commitments.
    pub window: Option<WindowState>,
    /// True when overdue.
    pub overdue: bool,
    /// Set only when overdue.
    pub overdue_basis: Option<OverdueBasis>,
    /// Days past `due_latest`, only when overdue.
    pub overdue_days: Option<i64>,
    /// First day of the window.
    pub due_earliest: Option<NaiveDate>,
    /// Last day of the window (policy horizon applied for open-ended dues).
    pub due_latest: Option<NaiveDate>,
}

/// The default policy horizon for open-ended dues.
pub const DEFAULT_HORIZON_DAYS: u32 = 180;

/// Derives the window state of a commitment with `status` and `due` as of `as_of`.
pub fn window(
    status: Status,
    due: Option<&EffectiveDue>,
    as_of: NaiveDate,
    horizon_days: u32,
) -> WindowView {
    let (earliest, latest, basis) = due
        .map(|d| d.bounds(horizon_days))
        .unwrap_or((None, None, None));
    let mut v = WindowView {
        window: None,
        overdue: false,
        overdue_basis: None,
        overdue_days: None,
        due_earliest: earliest,
        due_latest: latest,
    };
    if !status.can_be_overdue() {
        return v;
    }
    v.window = Some(match latest {
        None => WindowState::NoDeadline,
        Some(l) if as_of > l => {
            v.overdue = true;
            v.overdue_basis = basis;
            v.overdue_days = Some((as_of - l).num_days());
            WindowState::Overdue
        }
        Some(_) if earliest.is_some_and(|e| as_of < e) => WindowState::NotYetDue,
        Some(_) => WindowState::InWindow,
    });
    if v.window == Some(WindowState::InWindow) && latest.is_none() {
        v.window = Some(WindowState::NoDeadline);
    }
    v
}
