//! `commitments-store`: an append-only, hash-chained event log on sled, plus key/value storage
//! for projections ("views"). Only this crate knows sled; it deals in bytes.
//!
//! (Layout and durability rules: see the section below.)

mod codec;
mod error;
mod index;
mod ops;
mod store;
mod synth;
mod types;
mod views;

pub use codec::{is_valid_stream, to_hex};
pub use error::{Result, StoreError};
pub use store::{LogIter, Store, FORMAT_VERSION};
#[doc(hidden)]
pub use synth::synthetic_event;
pub use types::*;
pub use views::ViewScan;
