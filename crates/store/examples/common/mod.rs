//! Shared by the store's examples.

use std::path::Path;

use commitments_store::{OpenOptions, Store};

/// Opens the existing store in `dir` (never creates one); panics with the store's error.
pub fn open_existing(dir: impl AsRef<Path>) -> Store {
    let opts = OpenOptions {
        create: false,
        ..OpenOptions::default()
    };
    match Store::open(dir.as_ref(), opts) {
        Ok(s) => s,
        Err(e) => panic!("cannot open the store at {}: {e}", dir.as_ref().display()),
    }
}
