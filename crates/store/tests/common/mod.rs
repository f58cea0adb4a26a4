//! Shared test helpers.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use commitments_store::{NewEvent, OpenOptions, Store, StoredEvent};
use uuid::Uuid;

/// A deterministic event id from two numbers.
pub fn id(a: u64, b: u64) -> Uuid {
    Uuid::from_u64_pair(a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x1234, b)
}

/// A ~`pad`-byte synthetic event body.
pub fn body(event_id: Uuid, n: u64, pad: usize) -> Vec<u8> {
    format!(
        "{{\"type\":\"CallHeld\",\"event_id\":\"{event_id}\",\"n\":{n},\"pad\":\"{}\"}}",
        "x".repeat(pad)
    )
    .into_bytes()
}

pub fn ev(stream: &str, event_id: Uuid, n: u64) -> NewEvent {
    NewEvent {
        event_id,
        stream: stream.to_string(),
        event_type: "CallHeld".into(),
        schema_version: 1,
        body: body(event_id, n, 20),
    }
}

/// Options with a manual clock (µs since epoch, shared so tests can move it).
pub fn opts_with_clock(clock: Arc<AtomicI64>) -> OpenOptions {
    OpenOptions {
        clock: Box::new(move || {
            DateTime::<Utc>::from_timestamp_micros(clock.load(Ordering::SeqCst)).unwrap()
        }),
        ..OpenOptions::default()
    }
}

pub fn small_opts() -> OpenOptions {
    OpenOptions {
        large_batch_threshold: 40,
        chunk_events: 16,
        ..OpenOptions::default()
    }
}

pub fn open(dir: &Path) -> Store {
    Store::open(dir, OpenOptions::default()).expect("open")
}

pub fn all(store: &Store) -> Vec<StoredEvent> {
    store
        .read_log(1, None)
        .collect::<Result<Vec<_>, _>>()
        .expect("read_log")
}

pub fn ok_decode(e: &StoredEvent) -> Result<(), String> {
    serde_json::from_slice::<serde_json::Value>(e.bytes())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

pub fn no_progress(_: u64) {}
