//! The domain crate's one error type.

use thiserror::Error;

/// Everything the domain can refuse. Messages name the field (a JSON path such as
/// `due.edtf` or `parties[1]`) and the reason, so the CLI can print them as they are.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DomainError {
    /// The input is not JSON, or not a JSON object.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// A field is missing, unknown, of the wrong type or has a bad value.
    #[error("field `{field}`: {reason}")]
    Field {
        /// JSON path of the field (`.` for the whole object).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The `type` names no event in the catalogue.
    #[error("field `type`: unknown event type `{0}`")]
    UnknownType(String),
    /// The state machine refuses this event for this commitment.
    #[error("commitment `{commitment}` is {state}: {event_type} is not allowed")]
    Transition {
        /// The commitment id.
        commitment: String,
        /// Its current state (or `absent`).
        state: String,
        /// The refused event type.
        event_type: String,
    },
    /// A reference (`origin`, evidence `source_id`, target event …) names nothing known.
    #[error("field `{field}`: {reason}")]
    Reference {
        /// JSON path of the referencing field.
        field: String,
        /// What was not found.
        reason: String,
    },
    /// What the validator needed to know could not be read (the store failed); the event was
    /// neither accepted nor refused.
    #[error("cannot check the event: {0}")]
    Unavailable(String),
    /// Stored JSON could not be upcast to the current schema.
    #[error("cannot upcast {event_type} from schema version {from}: {reason}")]
    Upcast {
        /// Event type.
        event_type: String,
        /// Stored schema version.
        from: u32,
        /// Why it failed.
        reason: String,
    },
}

impl DomainError {
    /// Shorthand for a [`DomainError::Field`].
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DomainError::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The JSON path the error is about, when it is about one field.
    pub fn field_path(&self) -> Option<&str> {
        match self {
            DomainError::Field { field, .. } | DomainError::Reference { field, .. } => Some(field),
            DomainError::UnknownType(_) => Some("type"),
            _ => None,
        }
    }
}
