//! Synthetic events for benchmarks and examples (not part of the stable API).

use uuid::Uuid;

use crate::NewEvent;

const WORDS: &[&str] = &[
    "hold",
    "political",
    "consultations",
    "between",
    "ministries",
    "foreign",
    "affairs",
    "joint",
    "commission",
    "meeting",
    "trade",
    "economic",
    "cooperation",
    "roadmap",
    "visit",
    "official",
    "agreed",
    "near",
    "future",
    "sides",
    "reaffirmed",
    "commitment",
    "expand",
    "dialogue",
];
const COUNTRIES: &[&str] = &[
    "BLR", "BGD", "IND", "CHN", "RUS", "VNM", "EGY", "BRA", "KAZ", "UZB",
];

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// A realistic ~450-byte `ConsultationAgreed` event number `n` (deterministic).
#[doc(hidden)]
pub fn synthetic_event(n: u64) -> NewEvent {
    let r = mix(n);
    let id = Uuid::from_u64_pair(mix(n ^ 0xabcdef), r);
    let stream = format!(
        "cmt-{}-{}",
        COUNTRIES[(r % 10) as usize].to_lowercase(),
        n / 7
    );
    let a = COUNTRIES[(r % 10) as usize];
    let b = COUNTRIES[((r >> 8) % 10) as usize];
    let desc: Vec<&str> = (0..8)
        .map(|i| WORDS[((r >> (i * 5)) % WORDS.len() as u64) as usize])
        .collect();
    let day = 1 + (r >> 20) % 28;
    let month = 1 + (r >> 25) % 12;
    let body = format!(
        "{{\"type\":\"ConsultationAgreed\",\"event_id\":\"{id}\",\"occurred\":\"2024-{month:02}-{day:02}\",\"recorded_by\":\"analyst:bench\",\"commitment_id\":\"{stream}\",\"kind\":\"political_consultations\",\"parties\":[\"{a}\",\"{b}\"],\"strength\":\"agreed\",\"description\":\"{}\",\"due\":{{\"edtf\":\"2024-{month:02}/..\",\"basis\":\"open_ended\"}},\"origin\":\"call-{}-{}\",\"evidence\":[{{\"source_id\":\"src-{:x}\",\"locator\":\"paragraph {}\"}}]}}",
        desc.join(" "),
        a.to_lowercase(),
        n / 3,
        r >> 40,
        r % 9 + 1
    );
    NewEvent {
        event_id: id,
        stream,
        event_type: "ConsultationAgreed".into(),
        schema_version: 1,
        body: body.into_bytes(),
    }
}
