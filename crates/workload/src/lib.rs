//! Deterministic, catalogue-valid synthetic events with the shape of the shared benchmark's
//! workload (`../shared/bench/gen_workload.py`): one `SourceRegistered`, then units of 10
//! events (a `CallHeld`, a `ConsultationAgreed` opened in it and 8 lifecycle events of that
//! commitment), interleaved at random across units with the order inside a unit kept.
//! N events give N/10 commitments of 9 events, N/10 calls and the source, ~450 bytes a line.
//!
//! The output depends only on `(n, seed, start)`. It is not byte-identical to the Python
//! generator (another PRNG), only of the same shape.

use serde_json::{json, Value};

const COUNTRIES: &[&str] = &[
    "ARG", "AUS", "BRA", "CAN", "CHL", "CHN", "COL", "DEU", "DNK", "EGY", "ESP", "ETH", "FIN",
    "FRA", "GBR", "GHA", "IDN", "IND", "ITA", "JPN", "KEN", "KOR", "MAR", "MEX", "NGA", "NLD",
    "NOR", "NZL", "PER", "PHL", "POL", "PRT", "SWE", "SGP", "SEN", "THA", "TUR", "UKR", "USA",
    "VNM", "ZAF", "BLR",
];
const FIRST: &[&str] = &[
    "Amara", "Bjorn", "Chen", "Dalia", "Emeka", "Farah", "Goran", "Hana", "Ines", "Jonas", "Kofi",
    "Lena", "Mateo", "Nadia", "Omar", "Priya", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen",
    "Yusuf", "Zofia",
];
const LAST: &[&str] = &[
    "Abara", "Berg", "Castillo", "Dube", "Eriksen", "Fujita", "Garcia", "Haddad", "Ivanova",
    "Jensen", "Kamau", "Moreau", "Nakamura", "Okafor", "Petrov", "Quispe", "Rahman", "Silva",
    "Tanaka", "Varga",
];
const WORDS: &str = "agreed follow up on the draft roadmap and next steps for the joint working group including \
timelines budget review consultation partners regional priorities climate trade digital health education \
infrastructure deliverables milestones meeting proposed dates revised annex pending approval memorandum progress \
report quarterly update pilot project funding";
const KINDS: &[&str] = &[
    "political_consultations",
    "joint_commission_meeting",
    "committee_meeting",
    "bilateral_events",
];

/// The source every generated event cites.
pub const SOURCE_ID: &str = "src-bench";

/// A small deterministic PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    fn uuid_v4(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        let a = (a & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
        let b = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0xFFFF,
            b >> 48,
            b & 0xFFFF_FFFF_FFFF
        )
    }
    fn text(&mut self, n: usize) -> String {
        let words: Vec<&str> = WORDS.split_whitespace().collect();
        (0..n)
            .map(|_| self.pick(&words))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Days since 1970-01-01 of a civil date, and back (Howard Hinnant's algorithms).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn iso(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn due(days: i64, months: i64) -> Value {
    let (y, m, _) = civil_from_days(days + 30 * months);
    json!({"edtf": format!("{y:04}-{m:02}"), "expression": "within two months", "expression_lang": "en", "basis": "explicit"})
}

fn event(rng: &mut Rng, etype: &str, occurred: &str, fields: Value) -> Value {
    let mut d = json!({"type": etype, "event_id": rng.uuid_v4(), "occurred": occurred, "recorded_by": "analyst:bench"});
    if let (Some(obj), Value::Object(extra)) = (d.as_object_mut(), fields) {
        obj.extend(extra);
        let quote = rng.text(8);
        obj.insert(
            "evidence".into(),
            json!([{"source_id": SOURCE_ID, "locator": format!("paragraph {}", 1 + rng.below(40)), "quote": quote, "quote_lang": "en"}]),
        );
    }
    d
}

fn person(rng: &mut Rng, country: &str, role: &str) -> Value {
    let name = format!("{} {}", rng.pick(FIRST), rng.pick(LAST));
    json!({"country": country, "name_as_reported": name, "office_as_reported": "Minister of Foreign Affairs", "role": role})
}

fn unit(rng: &mut Rng, i: u64) -> Vec<Value> {
    let a = rng.pick(COUNTRIES);
    let mut b = rng.pick(COUNTRIES);
    while b == a {
        b = rng.pick(COUNTRIES);
    }
    let day0 = days_from_civil(2023, 1, 1) + rng.below(701) as i64;
    let mut offs: Vec<i64> = Vec::new();
    while offs.len() < 8 {
        let o = 1 + rng.below(399) as i64;
        if !offs.contains(&o) {
            offs.push(o);
        }
    }
    offs.sort_unstable();
    let dates: Vec<i64> = std::iter::once(day0)
        .chain(offs.iter().map(|o| day0 + o))
        .collect();
    let d: Vec<String> = dates.iter().map(|&x| iso(x)).collect();
    let call = format!("call-{i:07}");
    let cmt = format!("cmt-{i:07}");
    let modes = ["phone", "video", "in_person"];
    let mode = modes[rng.below(3)];
    let p1 = person(rng, a, "initiator");
    let p2 = person(rng, b, "counterpart");
    let topics = json!([rng.text(3), rng.text(2)]);
    let kind = rng.pick(KINDS);
    let description = rng.text(10);
    let mut out = vec![
        event(
            rng,
            "CallHeld",
            &d[0],
            json!({"call_id": call, "mode": mode, "participants": [p1, p2], "topics": topics}),
        ),
        event(
            rng,
            "ConsultationAgreed",
            &d[0],
            json!({"commitment_id": cmt, "kind": kind, "parties": [a, b], "strength": "agreed",
                   "description": description, "due": due(dates[0], 2), "origin": call}),
        ),
    ];
    let c = |rng: &mut Rng, t: &str, k: usize, mut f: Value| {
        if let Some(o) = f.as_object_mut() {
            o.insert("commitment_id".into(), json!(cmt));
        }
        event(rng, t, &d[k], f)
    };
    out.push(c(
        rng,
        "MeetingScheduled",
        1,
        json!({"scheduled_for": due(dates[1], 1)}),
    ));
    out.push(c(rng, "CommitmentReaffirmed", 2, json!({})));
    let reason = rng.text(5);
    out.push(c(
        rng,
        "CommitmentPostponed",
        3,
        json!({"new_due": due(dates[3], 3), "reason": reason}),
    ));
    out.push(c(
        rng,
        "MeetingScheduled",
        4,
        json!({"scheduled_for": due(dates[4], 1)}),
    ));
    let r1 = rng.text(8);
    out.push(c(
        rng,
        "CommitmentAssessed",
        5,
        json!({"as_of": d[5], "rating": "stalled", "rationale": r1}),
    ));
    let r2 = rng.text(8);
    out.push(c(
        rng,
        "CommitmentAssessed",
        6,
        json!({"as_of": d[6], "rating": "on_track", "rationale": r2}),
    ));
    out.push(c(rng, "CommitmentReaffirmed", 7, json!({})));
    let extent = if rng.below(2) == 0 { "full" } else { "partial" };
    let summary = rng.text(6);
    out.push(c(
        rng,
        "CommitmentFulfilled",
        8,
        json!({"extent": extent, "summary": summary}),
    ));
    out
}

/// The `SourceRegistered` line every workload starts with.
pub fn source_line(rng: &mut Rng) -> String {
    let id = rng.uuid_v4();
    format!(
        r#"{{"type": "SourceRegistered", "event_id": "{id}", "source_id": "{SOURCE_ID}", "url": "https://example.org/bench", "title": "Synthetic benchmark source", "language": "en"}}"#
    )
}

/// Generates the workload of `n` events (plus the source line unless `with_source` is
/// false): JSON Lines without trailing newlines, in order.
pub fn generate(n: usize, seed: u64, start: u64, with_source: bool) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut lines = Vec::with_capacity(n + 1);
    if with_source {
        lines.push(source_line(&mut rng));
    }
    let units_n = (n / 10).max(1);
    let mut units: Vec<Vec<Value>> = (0..units_n)
        .map(|i| unit(&mut rng, start + i as u64))
        .collect();
    for u in &mut units {
        u.reverse();
    }
    let mut live: Vec<usize> = (0..units_n).collect();
    while !live.is_empty() {
        let k = rng.below(live.len());
        let u = live[k];
        if let Some(ev) = units[u].pop() {
            lines.push(ev.to_string());
        }
        if units[u].is_empty() {
            live.swap_remove(k);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_determinism() {
        let a = generate(1000, 42, 0, true);
        let b = generate(1000, 42, 0, true);
        assert_eq!(a, b, "same arguments, same output");
        assert_eq!(a.len(), 1001);
        let c = generate(1000, 43, 0, true);
        assert_ne!(a, c);
        let calls = a
            .iter()
            .filter(|l| l.contains(r#""type":"CallHeld""#))
            .count();
        let opened = a
            .iter()
            .filter(|l| l.contains(r#""type":"ConsultationAgreed""#))
            .count();
        assert_eq!((calls, opened), (100, 100));
        let mean = a.iter().map(|l| l.len()).sum::<usize>() / a.len();
        assert!((300..700).contains(&mean), "mean line length {mean}");
    }

    #[test]
    fn civil_round_trip() {
        for z in [-1000, 0, 19_000, 19_723, 20_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(iso(days_from_civil(2024, 2, 29)), "2024-02-29");
    }
}
