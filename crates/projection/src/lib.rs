//! `commitments-projection` turns the log into the views users read: checkpointed,
//! rebuildable and time-travelling. It uses the store's view storage and never sees sled.
//!
//! - [`views`]: the [`views::Projection`] trait, the four views (`commitments`, `calls`,
//!   `documents`, `sources`) and the runner that catches them up in batches, each batch
//!   written with its checkpoint atomically.
//! - [`tracker`]: the facade the CLI uses (open, import, record, list, show, history,
//!   replay, rebuild, verify, status).
//! - Overdue and windows are derived at read time from the stored due and `--as-of`.

pub mod error;
pub mod query;
pub mod rows;
pub mod tracker;
pub mod views;

pub use error::{LineError, ProjectionError, Result};
pub use query::*;
pub use tracker::{
    ImportReport, ListFilter, OpenReport, ReadAt, RecordReport, Shown, Tracker, TrackerOptions,
    VerifyOutcome,
};
