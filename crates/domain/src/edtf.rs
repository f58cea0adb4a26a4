//! EDTF Level 1 dates (parsed by the `edtf` crate) and the `DueSpec` with its window.
//!
//! The `edtf` crate parses losslessly but has no bounds API and accepts things a deadline must
//! not be (reversed intervals, seasons, `X` digits, `Y`-years), so the bounds and those checks
//! live here.

use std::fmt;

use chrono::{Datelike, Days, Months, NaiveDate};
use edtf::level_1::{Certainty, Date, Edtf as Parsed, Precision, Season, Terminal};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::values::{Basis, Day};

/// One end of an EDTF date or interval, reduced to calendar bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// A known date: its first and last possible day, and the last day widened by one unit of
    /// precision when the date carries `~` or `%`.
    Known {
        /// First possible day.
        lower: NaiveDate,
        /// Last possible day.
        upper: NaiveDate,
        /// `upper`, widened by one unit of precision for `~`/`%`.
        upper_widened: NaiveDate,
    },
    /// `..`: open.
    Open,
    /// Empty: unknown.
    Unknown,
}

/// An EDTF Level 1 date, date-time or interval, kept exactly as written.
#[derive(Clone, PartialEq, Eq)]
pub struct Edtf {
    text: String,
    start: Endpoint,
    end: Endpoint,
    has_season: bool,
    has_unspecified: bool,
    negative_year: bool,
}

impl Edtf {
    /// Parses an EDTF Level 1 string. Rejects what cannot be a real date: impossible days
    /// (`2023-02-29`), year `0000`, `Y`-years, and intervals whose end is before their start.
    pub fn parse(s: &str) -> Result<Edtf, String> {
        match Edtf::parse_plain(s) {
            Some(e) => Ok(e),
            None => Edtf::parse_full(s),
        }
    }

    /// A plain `YYYY`, `YYYY-MM` or `YYYY-MM-DD` (a real day of a month 01–12 of a year other
    /// than 0000), without the `edtf` crate's parser, which was ~5 % of an import's decoding;
    /// `None` for anything else, which [`Edtf::parse_full`] parses. The bounds come from the
    /// same `date_bounds`, and a unit test checks that both paths agree on ~6,000 strings.
    fn parse_plain(s: &str) -> Option<Edtf> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            let d = b.get(r)?;
            d.iter().all(u8::is_ascii_digit).then(|| {
                d.iter()
                    .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'))
            })
        };
        let y = i32::try_from(digits(0..4)?).ok()?;
        let p = match b.len() {
            4 => Precision::Year(y),
            7 if b[4] == b'-' => Precision::Month(y, digits(5..7)?),
            10 if b[4] == b'-' && b[7] == b'-' => Precision::Day(y, digits(5..7)?, digits(8..10)?),
            _ => return None,
        };
        let valid = y != 0
            && match p {
                Precision::Month(_, m) => (1..=12).contains(&m),
                Precision::Day(_, m, d) => NaiveDate::from_ymd_opt(y, m, d).is_some(),
                _ => true,
            };
        let e = date_bounds(p, Certainty::Certain).filter(|_| valid)?;
        Some(Edtf {
            text: s.to_owned(),
            start: e,
            end: e,
            has_season: false,
            has_unspecified: false,
            negative_year: false,
        })
    }

    /// [`Edtf::parse`] through the `edtf` crate: every form EDTF Level 1 allows.
    fn parse_full(s: &str) -> Result<Edtf, String> {
        let parsed =
            Parsed::parse(s).map_err(|e| format!("`{s}` is not an EDTF Level 1 date: {e:?}"))?;
        let mut out = Edtf {
            text: s.to_owned(),
            start: Endpoint::Unknown,
            end: Endpoint::Unknown,
            has_season: false,
            has_unspecified: false,
            negative_year: false,
        };
        let mut endpoint = |d: &Date| -> Result<Endpoint, String> {
            let (p, c) = d.precision_certainty();
            match p {
                Precision::Season(..) => out.has_season = true,
                Precision::Century(_)
                | Precision::Decade(_)
                | Precision::MonthOfYear(_)
                | Precision::DayOfYear(_)
                | Precision::DayOfMonth(..) => out.has_unspecified = true,
                _ => {}
            }
            if d.year() < 0 {
                out.negative_year = true;
            }
            if d.year() == 0 {
                return Err(format!("`{s}`: year 0000 is not allowed"));
            }
            date_bounds(p, c).ok_or_else(|| format!("`{s}` is outside the supported calendar"))
        };
        let (start, end) = match parsed {
            Parsed::Date(d) => {
                let e = endpoint(&d)?;
                (e, e)
            }
            Parsed::DateTime(dt) => {
                let dc = dt.date();
                if dc.year() == 0 {
                    return Err(format!("`{s}`: year 0000 is not allowed"));
                }
                let day = NaiveDate::from_ymd_opt(dc.year(), dc.month(), dc.day())
                    .ok_or_else(|| format!("`{s}` is not a calendar date"))?;
                let e = Endpoint::Known {
                    lower: day,
                    upper: day,
                    upper_widened: day,
                };
                (e, e)
            }
            Parsed::YYear(_) => {
                return Err(format!("`{s}`: Y-years are not supported"));
            }
            Parsed::Interval(a, b) => (endpoint(&a)?, endpoint(&b)?),
            Parsed::IntervalFrom(a, t) => (endpoint(&a)?, terminal(t)),
            Parsed::IntervalTo(t, b) => (terminal(t), endpoint(&b)?),
        };
        if let (Endpoint::Known { lower, .. }, Endpoint::Known { upper, .. }) = (start, end) {
            if upper < lower {
                return Err(format!("`{s}`: the interval ends before it starts"));
            }
        }
        out.start = start;
        out.end = end;
        Ok(out)
    }

    /// The string as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// The start endpoint.
    pub fn start(&self) -> Endpoint {
        self.start
    }
    /// The end endpoint.
    pub fn end(&self) -> Endpoint {
        self.end
    }

    /// The day relative wording refers to by default: the start's first day, or the end's last
    /// day when the start is open or unknown (qualifiers ignored).
    pub fn default_anchor(&self) -> Option<NaiveDate> {
        match (self.start, self.end) {
            (Endpoint::Known { lower, .. }, _) => Some(lower),
            (_, Endpoint::Known { upper, .. }) => Some(upper),
            _ => None,
        }
    }

    /// Checks the extra rules for a deadline: no seasons, no `X` digits, no negative years.
    pub fn check_due_rules(&self) -> Result<(), String> {
        let s = &self.text;
        if self.has_season {
            return Err(format!("`{s}`: seasons are not allowed in a due date"));
        }
        if self.has_unspecified {
            return Err(format!(
                "`{s}`: unspecified digits (X) are not allowed in a due date"
            ));
        }
        if self.negative_year {
            return Err(format!(
                "`{s}`: negative years are not allowed in a due date"
            ));
        }
        Ok(())
    }
}

fn terminal(t: Terminal) -> Endpoint {
    match t {
        Terminal::Open => Endpoint::Open,
        Terminal::Unknown => Endpoint::Unknown,
    }
}

fn last_of_month(y: i32, m: u32) -> Option<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(y, m, 1)?;
    first.checked_add_months(Months::new(1))?.pred_opt()
}

/// First and last day of a date at its precision, and the last day widened by one unit.
fn date_bounds(p: Precision, c: Certainty) -> Option<Endpoint> {
    let widen = matches!(c, Certainty::Approximate | Certainty::ApproximateUncertain);
    let ymd = NaiveDate::from_ymd_opt;
    let (lower, upper, wider) = match p {
        Precision::Year(y) | Precision::MonthOfYear(y) | Precision::DayOfYear(y) => {
            (ymd(y, 1, 1)?, ymd(y, 12, 31)?, ymd(y + 1, 12, 31)?)
        }
        Precision::Month(y, m) | Precision::DayOfMonth(y, m) => {
            let upper = last_of_month(y, m)?;
            let next = ymd(y, m, 1)?.checked_add_months(Months::new(1))?;
            (
                ymd(y, m, 1)?,
                upper,
                last_of_month(next.year(), next.month())?,
            )
        }
        Precision::Day(y, m, d) => {
            let day = ymd(y, m, d)?;
            (day, day, day.checked_add_days(Days::new(1))?)
        }
        Precision::Season(y, s) => {
            let (start_month, start_year) = match s {
                Season::Spring => (3, y),
                Season::Summer => (6, y),
                Season::Autumn => (9, y),
                Season::Winter => (12, y),
            };
            let lower = ymd(start_year, start_month, 1)?;
            let end_first = lower.checked_add_months(Months::new(2))?;
            let upper = last_of_month(end_first.year(), end_first.month())?;
            let wider_first = end_first.checked_add_months(Months::new(3))?;
            (
                lower,
                upper,
                last_of_month(wider_first.year(), wider_first.month())?,
            )
        }
        Precision::Decade(y) => (ymd(y, 1, 1)?, ymd(y + 9, 12, 31)?, ymd(y + 19, 12, 31)?),
        Precision::Century(y) => (ymd(y, 1, 1)?, ymd(y + 99, 12, 31)?, ymd(y + 199, 12, 31)?),
    };
    Some(Endpoint::Known {
        lower,
        upper,
        upper_widened: if widen { wider } else { upper },
    })
}

impl fmt::Debug for Edtf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}
impl fmt::Display for Edtf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
impl Serialize for Edtf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}
impl<'de> Deserialize<'de> for Edtf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Edtf::parse(&s).map_err(de::Error::custom)
    }
}

/// An EDTF string that also satisfies the deadline rules ([`Edtf::check_due_rules`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DueEdtf(pub Edtf);

impl Serialize for DueEdtf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl<'de> Deserialize<'de> for DueEdtf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let e = Edtf::deserialize(d)?;
        e.check_due_rules().map_err(de::Error::custom)?;
        Ok(DueEdtf(e))
    }
}

/// A deadline as the source stated it, with how it was resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DueSpec {
    /// EDTF Level 1 date or interval (`2024-02`, `2024/2025`, `2024-01-20/..`, `2024-04~`).
    pub edtf: DueEdtf,
    /// The source's own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Language of `expression` (BCP 47).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression_lang: Option<String>,
    /// English rendering of `expression`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression_en: Option<String>,
    /// The date relative wording refers to; default: from the carrying event's `occurred`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Day>,
    /// How the date was derived.
    pub basis: Basis,
}

impl DueSpec {
    /// An open-ended due from `anchor` (`"<anchor>/.."`, basis `open_ended`): what a
    /// `CommitmentPostponed` without `new_due` leaves behind.
    pub fn open_ended_from(anchor: NaiveDate) -> DueSpec {
        let text = format!("{}/..", anchor.format("%Y-%m-%d"));
        let edtf = Edtf {
            text,
            start: Endpoint::Known {
                lower: anchor,
                upper: anchor,
                upper_widened: anchor,
            },
            end: Endpoint::Open,
            has_season: false,
            has_unspecified: false,
            negative_year: false,
        };
        DueSpec {
            edtf: DueEdtf(edtf),
            expression: None,
            expression_lang: None,
            expression_en: None,
            anchor: None,
            basis: Basis::OpenEnded,
        }
    }

    /// The stated window: `earliest` is the start's first day (None when open or unknown);
    /// `latest` the end's last day, widened by one unit for `~`/`%` (None when open or unknown).
    pub fn stated_window(&self) -> (Option<NaiveDate>, Option<NaiveDate>) {
        let earliest = match self.edtf.0.start() {
            Endpoint::Known { lower, .. } => Some(lower),
            _ => None,
        };
        let latest = match self.edtf.0.end() {
            Endpoint::Known { upper_widened, .. } => Some(upper_widened),
            _ => None,
        };
        (earliest, latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }
    fn due(s: &str) -> Result<DueSpec, String> {
        let json = format!(r#"{{"edtf":"{s}","basis":"explicit"}}"#);
        serde_json::from_str::<DueSpec>(&json).map_err(|e| e.to_string())
    }

    #[test]
    fn the_plain_path_agrees_with_the_edtf_crate() {
        let mut plain = 0;
        for y in ["0000", "0001", "1999", "2023", "2024", "2100", "9999"] {
            let mut cases = vec![y.to_string()];
            for m in 0..=25 {
                cases.push(format!("{y}-{m:02}"));
                for d in 0..=32 {
                    cases.push(format!("{y}-{m:02}-{d:02}"));
                }
            }
            for s in cases {
                let full = Edtf::parse_full(&s);
                match Edtf::parse_plain(&s) {
                    Some(e) => {
                        plain += 1;
                        assert_eq!(Ok(e), full, "{s}");
                    }
                    // Only what the full parser rejects, or parses as something else than a
                    // plain date (seasons are months 21-24), is left to it.
                    None => assert!(
                        full.as_ref().map_or(true, |e| e.has_season) || s.starts_with("0000"),
                        "{s}: {full:?}"
                    ),
                }
            }
        }
        assert!(plain > 2000, "{plain}");
        for s in [
            "2024-1",
            "20240",
            "+2024",
            "-2024",
            "2024-02-3a",
            "2024-02~",
            "2024/2025",
            "",
        ] {
            assert_eq!(Edtf::parse_plain(s), None, "{s}");
        }
    }

    #[test]
    fn windows_follow_the_catalogue() {
        let table: &[(&str, Option<&str>, Option<&str>)] = &[
            ("2024-02", Some("2024-02-01"), Some("2024-02-29")),
            ("2023-02", Some("2023-02-01"), Some("2023-02-28")),
            ("2024", Some("2024-01-01"), Some("2024-12-31")),
            ("2024/2025", Some("2024-01-01"), Some("2025-12-31")),
            ("2024-01-20/..", Some("2024-01-20"), None),
            ("2024-01-20/", Some("2024-01-20"), None),
            ("../2024-03", None, Some("2024-03-31")),
            ("2024-04~", Some("2024-04-01"), Some("2024-05-31")),
            ("2024-04%", Some("2024-04-01"), Some("2024-05-31")),
            ("2024-04?", Some("2024-04-01"), Some("2024-04-30")),
            ("2024~", Some("2024-01-01"), Some("2025-12-31")),
            ("2024-12-31~", Some("2024-12-31"), Some("2025-01-01")),
            ("2024-12~", Some("2024-12-01"), Some("2025-01-31")),
            ("2024-01~/2024-03", Some("2024-01-01"), Some("2024-03-31")),
            ("2024-01/2024-03~", Some("2024-01-01"), Some("2024-04-30")),
            (
                "2024-03-10T10:00:00Z",
                Some("2024-03-10"),
                Some("2024-03-10"),
            ),
        ];
        for (s, e, l) in table {
            let spec = due(s).unwrap_or_else(|err| panic!("{s}: {err}"));
            let (earliest, latest) = spec.stated_window();
            assert_eq!(earliest, e.map(d), "earliest of {s}");
            assert_eq!(latest, l.map(d), "latest of {s}");
        }
    }

    #[test]
    fn due_rejections() {
        for (s, why) in [
            ("2024-21", "season"),
            ("202X", "unspecified"),
            ("2024-XX", "unspecified"),
            ("2024-05/2024-01", "ends before"),
            ("Y170000002", "Y-years"),
            ("-2024", "negative"),
            ("2023-02-29", "EDTF"),
            ("0000", "0000"),
            ("2024-33", "EDTF"),
            ("soon", "EDTF"),
        ] {
            let err = due(s).expect_err(s);
            assert!(err.contains(why), "{s}: {err}");
        }
    }

    #[test]
    fn occurred_accepts_level_1_but_not_impossible_dates() {
        assert!(Edtf::parse("2024-01-20?").is_ok());
        assert!(
            Edtf::parse("2024-21").is_ok(),
            "a season is fine for occurred"
        );
        assert!(Edtf::parse("2023-02-29").is_err());
        assert!(Edtf::parse("2024-05/2024-01").is_err());
        let open_start = Edtf::parse("../2025-10").expect("valid");
        assert_eq!(open_start.default_anchor(), Some(d("2025-10-31")));
        let q = Edtf::parse("2024-01-20~").expect("valid");
        assert_eq!(q.default_anchor(), Some(d("2024-01-20")));
        assert_eq!(
            Edtf::parse("2024-03-10T10:00:00Z")
                .expect("valid")
                .default_anchor(),
            Some(d("2024-03-10"))
        );
    }
}
