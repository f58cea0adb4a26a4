//! Shared helpers for the projection tests: a tracker over a temporary store with a clock
//! the test sets.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use commitments_domain::event::Event;
use commitments_projection::{
    CommitmentView, ImportReport, ListFilter, ReadAt, Tracker, TrackerOptions,
};

/// A clock the test moves.
#[derive(Clone, Debug)]
pub struct TestClock(pub Arc<AtomicI64>);

impl TestClock {
    pub fn at(rfc3339: &str) -> TestClock {
        let t = DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc);
        TestClock(Arc::new(AtomicI64::new(t.timestamp_micros())))
    }
    pub fn set(&self, rfc3339: &str) {
        let t = DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc);
        self.0.store(t.timestamp_micros(), Ordering::SeqCst);
    }
    pub fn options(&self) -> TrackerOptions {
        let c = self.0.clone();
        TrackerOptions {
            clock: Box::new(move || {
                DateTime::from_timestamp_micros(c.load(Ordering::SeqCst)).unwrap()
            }),
            actor: "test".into(),
            create: true,
            view_batch: 1_000,
            ..TrackerOptions::default()
        }
    }
}

pub fn open(path: &Path, clock: &TestClock) -> Tracker {
    Tracker::open(path, clock.options()).unwrap().0
}

pub fn seed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/aleinik-2024-01-20.jsonl")
}

pub fn seed_lines() -> Vec<String> {
    std::fs::read_to_string(seed_path())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Imports JSON lines (1-based numbering).
pub fn import_lines(t: &Tracker, lines: &[String]) -> ImportReport {
    let items = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, Event::from_json(l.as_bytes())));
    t.import(items, false, &|_| {}).unwrap()
}

pub fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

pub fn at(as_of: &str) -> ReadAt {
    ReadAt::now(day(as_of))
}

/// Every row of every view, as (view, key, value) triples in order, for comparisons.
pub fn dump(t: &Tracker) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, _) in commitments_projection::views::VIEWS {
        for kv in t.store().view_scan(name, b"") {
            let (k, v) = kv.unwrap();
            out.push((name.to_string(), k, v));
        }
    }
    out
}

pub fn digests(t: &Tracker) -> Vec<(String, [u8; 32], u64)> {
    commitments_projection::views::VIEWS
        .iter()
        .map(|(name, _)| {
            let m = t.store().view_meta(name).unwrap().unwrap();
            (name.to_string(), m.digest, m.checkpoint)
        })
        .collect()
}

/// Appends workload lines straight to the store, bypassing the views (as if the process had
/// died between an append and its view update).
pub fn append_behind_views(t: &Tracker, lines: &[String]) {
    let events: Vec<commitments_store::NewEvent> = lines
        .iter()
        .map(|l| {
            let e = Event::from_json(l.as_bytes()).unwrap();
            commitments_store::NewEvent {
                event_id: e.event_id().unwrap().0,
                stream: e.subject().unwrap().to_string(),
                event_type: e.type_name().into(),
                schema_version: 1,
                body: e.to_json().unwrap(),
            }
        })
        .collect();
    t.store().append(&events, &[]).unwrap();
}

/// Commitment views as JSON without `known_at` (the store's clock when read), for comparing
/// boards read in different sessions.
pub fn without_known_at(views: &[CommitmentView]) -> Vec<serde_json::Value> {
    views
        .iter()
        .map(|c| {
            let mut j = serde_json::to_value(c).unwrap();
            j.as_object_mut().unwrap().remove("known_at");
            j
        })
        .collect()
}

/// The board as of 2024-03-15, without `known_at` (see [`without_known_at`]).
pub fn board(t: &Tracker) -> Vec<serde_json::Value> {
    without_known_at(&t.list(&at("2024-03-15"), &ListFilter::default()).unwrap())
}
