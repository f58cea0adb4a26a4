//! The domain of `commitments`: event types, value types, validation, the commitment state
//! machine and folds.
//!
//! Architecture invariant: this crate is pure. It does no I/O, knows nothing of sled or the
//! terminal, and reads no clock (chrono is built without its `clock` feature); the time an
//! answer depends on is always passed in.

pub mod edtf;
pub mod error;
pub mod event;
pub mod fold;
pub mod state;
pub mod validate;
pub mod values;

pub use crate::edtf::{DueSpec, Edtf, Endpoint};
pub use crate::error::DomainError;
pub use crate::event::{
    apply_changes, current_schema_version, Encoded, Event, Upcasters, EVENT_TYPES, STORE_FIELDS,
};
pub use crate::fold::{fold_stream, Effect, Step, StreamFold};
pub use crate::state::{
    decide, evolve, evolve_in_place, next_status, window, CommitmentState, EffectiveDue,
    OverdueBasis, Status, WindowState, WindowView, DEFAULT_HORIZON_DAYS,
};
pub use crate::validate::{Context, SubjectKind, Validator, Verdict};
pub use crate::values::{Country, Day, EventId, Slug};
