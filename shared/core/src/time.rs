//! Time as the core sees it: milliseconds since the Unix epoch, always passed in.
//!
//! The core never reads a clock; callers (functions, drills, tests) hand it `now`.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in time, milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_secs(s: i64) -> Self {
        Timestamp(s.saturating_mul(1000))
    }
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }
    pub const fn millis(self) -> i64 {
        self.0
    }
    pub fn plus_secs(self, s: u64) -> Self {
        Timestamp(self.0.saturating_add((s as i64).saturating_mul(1000)))
    }
    pub fn plus_millis(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }
    /// Milliseconds from `earlier` to `self` (negative if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
    /// Whether at least `secs` seconds have passed from `earlier` to `self`.
    pub fn elapsed_at_least(self, earlier: Timestamp, secs: u64) -> bool {
        self.since(earlier) >= (secs as i64).saturating_mul(1000)
    }

    fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.0)
    }

    /// The calendar month (UTC) this instant falls in, as `(year, month 1..=12)`.
    pub fn month(self) -> (i32, u32) {
        match self.to_datetime() {
            Some(dt) => (dt.year(), dt.month()),
            None => (1970, 1),
        }
    }

    /// The first instant of the next calendar month (UTC).
    pub fn start_of_next_month(self) -> Timestamp {
        let (y, m) = self.month();
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        NaiveDate::from_ymd_opt(ny, nm, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|dt| Timestamp(dt.and_utc().timestamp_millis()))
            .unwrap_or(Timestamp(i64::MAX))
    }

    /// RFC 3339 text, for messages and audit entries.
    pub fn rfc3339(self) -> String {
        match self.to_datetime() {
            Some(dt) => dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            None => format!("@{}ms", self.0),
        }
    }

    /// Parses RFC 3339 text (used for payload timestamps; pure, no clock).
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(text.trim())
            .ok()
            .map(|dt| Timestamp(dt.timestamp_millis()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

/// Human form of a duration in seconds: `90 s`, `30 min`, `2 h 5 min`.
pub fn human_secs(secs: u64) -> String {
    if secs < 120 {
        format!("{secs} s")
    } else if secs < 7200 {
        format!("{} min", secs / 60)
    } else {
        let m = (secs / 60) % 60;
        if m == 0 {
            format!("{} h", secs / 3600)
        } else {
            format!("{} h {} min", secs / 3600, m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_boundaries() {
        // 2026-01-31T23:59:59Z
        let t = Timestamp::from_secs(1_769_903_999);
        assert_eq!(t.month(), (2026, 1));
        assert_eq!(t.start_of_next_month(), Timestamp::from_secs(1_769_904_000));
        let dec = Timestamp::parse_rfc3339("2026-12-15T10:00:00Z").unwrap();
        assert_eq!(
            dec.start_of_next_month(),
            Timestamp::parse_rfc3339("2027-01-01T00:00:00Z").unwrap()
        );
    }

    #[test]
    fn parses_offsets() {
        let a = Timestamp::parse_rfc3339("2026-01-10T12:00:00+01:00").unwrap();
        let b = Timestamp::parse_rfc3339("2026-01-10T11:00:00Z").unwrap();
        assert_eq!(a, b);
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_secs(90), "90 s");
        assert_eq!(human_secs(1800), "30 min");
        assert_eq!(human_secs(7500), "2 h 5 min");
    }
}
