//! Value types that reject bad data at the boundary: countries, ids, participants, places,
//! evidence, Admiralty grades, event ids and calendar dates.

use std::fmt;

use chrono::NaiveDate;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// User-assigned alpha-3 codes accepted beside the officially assigned ones. Only `XKX`
/// (Kosovo), which the EU and most diplomatic sources use (event catalogue, section 2).
pub const USER_ASSIGNED_COUNTRIES: &[&str] = &["XKX"];

/// An ISO 3166-1 alpha-3 country code, upper case, checked against the `rust_iso3166` list
/// (officially assigned codes) plus [`USER_ASSIGNED_COUNTRIES`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Country([u8; 3]);

impl Country {
    /// Parses and checks a code; the error names the code.
    pub fn parse(s: &str) -> Result<Country, String> {
        let b = s.as_bytes();
        if b.len() != 3 || !b.iter().all(|c| c.is_ascii_alphabetic()) {
            return Err(format!(
                "`{s}` is not an ISO 3166-1 alpha-3 code (three upper-case letters)"
            ));
        }
        if !b.iter().all(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "country code `{s}` must be upper case (`{}`)",
                s.to_ascii_uppercase()
            ));
        }
        if rust_iso3166::from_alpha3(s).is_none() && !USER_ASSIGNED_COUNTRIES.contains(&s) {
            return Err(format!("unknown country code `{s}`"));
        }
        Ok(Country([b[0], b[1], b[2]]))
    }

    /// The code as a string slice.
    pub fn as_str(&self) -> &str {
        // The bytes were checked to be ASCII letters in `parse`.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl Serialize for Country {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Country::parse(&s).map_err(de::Error::custom)
    }
}

/// A subject id (source, call, document or commitment): `[a-z0-9][a-z0-9._-]{0,79}`.
///
/// Held as a `CompactString`: ids up to 24 bytes (almost all) live inline, so decoding an
/// event allocates nothing for them, and the maps keyed by them compare keys without
/// following a pointer.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slug(compact_str::CompactString);

impl Serialize for Slug {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Slug {
    /// Checks a slug; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Slug, String> {
        if is_slug(s) {
            Ok(Slug(compact_str::CompactString::from(s)))
        } else {
            Err(format!(
                "`{s}` is not a valid id: use 1-80 characters of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit"
            ))
        }
    }
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True when `s` matches `[a-z0-9][a-z0-9._-]{0,79}`.
pub fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 80
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

impl fmt::Debug for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for Slug {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Slug::parse(&s).map_err(de::Error::custom)
    }
}

/// An event id: a hyphenated UUID, compared without regard to case, written lower case.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub uuid::Uuid);

impl EventId {
    /// Parses the hyphenated form (36 characters), any case.
    pub fn parse(s: &str) -> Result<EventId, String> {
        if s.len() != 36 {
            return Err(format!("`{s}` is not a hyphenated UUID"));
        }
        uuid::Uuid::try_parse(s)
            .map(EventId)
            .map_err(|_| format!("`{s}` is not a hyphenated UUID"))
    }
}
impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}
impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}
impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = uuid::Uuid::encode_buffer();
        s.serialize_str(self.0.hyphenated().encode_lower(&mut buf))
    }
}
impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        EventId::parse(&s).map_err(de::Error::custom)
    }
}

/// A calendar date written `YYYY-MM-DD` (used by `CommitmentAssessed.as_of` and anchors).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub NaiveDate);

impl Day {
    /// Parses `YYYY-MM-DD` strictly (year 0001–9999, a real calendar day).
    pub fn parse(s: &str) -> Result<Day, String> {
        let b = s.as_bytes();
        let shaped = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shaped {
            return Err(format!("`{s}` is not a date of the form YYYY-MM-DD"));
        }
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| format!("`{s}` is not a calendar date"))?;
        if s.starts_with("0000") {
            return Err(format!("`{s}`: year 0000 is not allowed"));
        }
        Ok(Day(d))
    }
}
impl fmt::Debug for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}
impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}
impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Day::parse(&s).map_err(de::Error::custom)
    }
}

/// An Admiralty (NATO) grade: source reliability `A`–`F` and information credibility `1`–`6`,
/// written like `"F3"`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Confidence {
    /// Source reliability, `A` (reliable) to `F` (cannot be judged).
    pub reliability: char,
    /// Information credibility, 1 (confirmed) to 6 (cannot be judged).
    pub credibility: u8,
}
impl Confidence {
    /// Parses a grade such as `B2`.
    pub fn parse(s: &str) -> Result<Confidence, String> {
        let b = s.as_bytes();
        if b.len() == 2 && (b'A'..=b'F').contains(&b[0]) && (b'1'..=b'6').contains(&b[1]) {
            Ok(Confidence {
                reliability: b[0] as char,
                credibility: b[1] - b'0',
            })
        } else {
            Err(format!(
                "`{s}` is not an Admiralty grade (A-F then 1-6, like `F3`)"
            ))
        }
    }
}
impl fmt::Debug for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.reliability, self.credibility)
    }
}
impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.reliability, self.credibility)
    }
}
impl Serialize for Confidence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for Confidence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Confidence::parse(&s).map_err(de::Error::custom)
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $variant,)*
        }
        impl $name {
            /// Every value, in the catalogue's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// The snake_case name used in JSON.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
            /// Parses the snake_case name.
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)* _ => None }
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// A participant's role in a contact.
    Role { Initiator = "initiator", Counterpart = "counterpart", Host = "host", Visitor = "visitor", Unknown = "unknown" }
);
string_enum!(
    /// How a contact was held.
    CallMode { Phone = "phone", Video = "video", InPerson = "in_person", Unspecified = "unspecified" }
);
string_enum!(
    /// The kind of a signed document.
    DocType { Roadmap = "roadmap", Agreement = "agreement", Mou = "mou", Programme = "programme", Treaty = "treaty", JointStatement = "joint_statement", Other = "other" }
);
string_enum!(
    /// What a commitment is about.
    CommitmentKind { PoliticalConsultations = "political_consultations", JointCommissionMeeting = "joint_commission_meeting", CommitteeMeeting = "committee_meeting", BilateralEvents = "bilateral_events", Visit = "visit", Other = "other" }
);
string_enum!(
    /// How firmly a commitment was stated.
    Strength { ExpressedIntent = "expressed_intent", Planned = "planned", Agreed = "agreed" }
);
string_enum!(
    /// The kind of visit an invitation is for.
    VisitType { Official = "official", State = "state", Working = "working", Unspecified = "unspecified" }
);
string_enum!(
    /// How much of a commitment was fulfilled.
    Extent { Full = "full", Partial = "partial" }
);
string_enum!(
    /// An analyst's rating in `CommitmentAssessed`.
    Rating { OnTrack = "on_track", Stalled = "stalled", Lapsed = "lapsed" }
);
string_enum!(
    /// Why an event was corrected.
    CorrectionReason { CodingError = "coding_error", TranslationError = "translation_error", SourceCorrected = "source_corrected", NewInformation = "new_information" }
);
string_enum!(
    /// Why an event was retracted.
    RetractionReason { Duplicate = "duplicate", NotACommitment = "not_a_commitment", SourceRetracted = "source_retracted", Miscoded = "miscoded" }
);
string_enum!(
    /// How a due date was derived from the source's words.
    Basis { Explicit = "explicit", RelativeResolved = "relative_resolved", RelativeAmbiguous = "relative_ambiguous", OpenEnded = "open_ended" }
);

/// A person or country taking part in a contact, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// The country they represent.
    pub country: Country,
    /// Their name as the source writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_as_reported: Option<String>,
    /// Their office as the source writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_as_reported: Option<String>,
    /// Their role in the contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// Where something happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Place {
    /// City, as reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// The country.
    pub country: Country,
    /// Venue, as reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
}

/// Where a fact comes from: a registered source and where in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// A source registered earlier by `SourceRegistered`.
    pub source_id: Slug,
    /// Where in the source (paragraph, section, timestamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locator: Option<String>,
    /// The source's own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    /// Language of the quote (BCP 47).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_lang: Option<String>,
    /// English translation of the quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translation_en: Option<String>,
}

/// Political event codes, kept as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coding {
    /// CAMEO code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cameo: Option<serde_json::Value>,
    /// PLOVER code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plover: Option<serde_json::Value>,
}

/// A single change in an `EventCorrected`: a JSON Pointer into the target, and the old and
/// new values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// JSON Pointer (RFC 6901) into the target event, e.g. `/due/edtf`.
    pub path: String,
    /// The value the target has now at `path` (after earlier corrections); must match.
    #[serde(default)]
    pub old: serde_json::Value,
    /// The value it should have.
    #[serde(default)]
    pub new: serde_json::Value,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn countries_are_checked_against_the_list() {
        for ok in ["BLR", "BGD", "ZWE", "XKX", "GNQ"] {
            assert_eq!(
                Country::parse(ok).map(|c| c.to_string()),
                Ok(ok.to_string())
            );
        }
        let zzz = Country::parse("ZZZ").unwrap_err();
        assert!(zzz.contains("unknown country code `ZZZ`"), "{zzz}");
        let lower = Country::parse("blr").unwrap_err();
        assert!(lower.contains("upper case"), "{lower}");
        assert!(Country::parse("BY").is_err());
        assert!(
            Country::parse("XKK").is_err(),
            "only XKX is user-assigned here"
        );
    }

    #[test]
    fn slugs() {
        for ok in ["a", "call-1", "src-aleinik-2024-01-20", "x.y_z", "0abc"] {
            assert!(is_slug(ok), "{ok}");
        }
        let long = "a".repeat(81);
        for bad in ["", "-a", "A", "call 1", "café", "Call-1", long.as_str()] {
            assert!(!is_slug(bad), "{bad}");
        }
        assert!(is_slug(&"a".repeat(80)));
    }

    #[test]
    fn event_ids_are_hyphenated_and_case_insensitive() {
        let a = EventId::parse("0190F3B2-5C1E-7A4B-9D7E-2F1C3A4B5C6D").unwrap();
        let b = EventId::parse("0190f3b2-5c1e-7a4b-9d7e-2f1c3a4b5c6d").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "0190f3b2-5c1e-7a4b-9d7e-2f1c3a4b5c6d");
        assert!(EventId::parse("0190f3b25c1e7a4b9d7e2f1c3a4b5c6d").is_err());
        assert!(EventId::parse("evt-0001").is_err());
    }

    #[test]
    fn days_and_grades() {
        assert!(Day::parse("2024-02-29").is_ok());
        assert!(Day::parse("2023-02-29").is_err());
        assert!(Day::parse("2024-2-1").is_err());
        assert!(Day::parse("0000-01-01").is_err());
        assert_eq!(Confidence::parse("F3").unwrap().to_string(), "F3");
        assert!(Confidence::parse("G1").is_err());
        assert!(Confidence::parse("A7").is_err());
    }
}
