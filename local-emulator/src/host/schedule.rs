//! Timer schedules (the host behaviour listed in local-emulator/README.md): NCRONTAB with six fields (five accepted as "no
//! seconds"), day-of-month AND day-of-week, `7` is not Sunday; or a TimeSpan `hh:mm:ss`.
//! Pure: the next occurrence is computed from a time given by the caller, evaluated in UTC
//! (local time = UTC in Azure).
//!
//! The syntax is checked here field by field (croner alone would accept `7`, `L`, `W`, `#`, `?`
//! and year fields, which the host rejects); the normalized pattern then goes to croner with
//! its day-of-month-AND-day-of-week option.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use std::time::Duration;

/// A schedule the host accepts.
#[derive(Debug, Clone)]
pub enum Schedule {
    Cron {
        expression: String,
        cron: Box<Cron>,
    },
    /// A TimeSpan schedule: every interval (App Service plans only in Azure).
    Interval(Duration),
}

/// Why a schedule string is rejected: fix the `schedule` field (or the setting it names).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule {expression:?}: {problem}")]
pub struct ScheduleError {
    pub expression: String,
    pub problem: String,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct FieldSpec {
    what: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The value of names[0].
    name_base: u32,
}

const FIELDS: [FieldSpec; 6] = [
    FieldSpec {
        what: "second",
        min: 0,
        max: 59,
        names: &[],
        name_base: 0,
    },
    FieldSpec {
        what: "minute",
        min: 0,
        max: 59,
        names: &[],
        name_base: 0,
    },
    FieldSpec {
        what: "hour",
        min: 0,
        max: 23,
        names: &[],
        name_base: 0,
    },
    FieldSpec {
        what: "day",
        min: 1,
        max: 31,
        names: &[],
        name_base: 0,
    },
    FieldSpec {
        what: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        name_base: 1,
    },
    FieldSpec {
        what: "day-of-week",
        min: 0,
        max: 6,
        names: &DAYS,
        name_base: 0,
    },
];

fn value(spec: &FieldSpec, s: &str) -> Result<u32, String> {
    if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(spec.name_base + u32::try_from(i).unwrap_or(0));
    }
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{} field: {s:?} is not a number", spec.what));
    }
    let v: u32 = s
        .parse()
        .map_err(|_| format!("{} field: {s:?} is too large", spec.what))?;
    if v < spec.min || v > spec.max {
        return Err(format!(
            "{} field: {v} is outside {}-{}",
            spec.what, spec.min, spec.max
        ));
    }
    Ok(v)
}

/// Checks one field and rewrites it with numbers only (`a/n` becomes `a-max/n`).
fn normalize_field(spec: &FieldSpec, field: &str) -> Result<String, String> {
    let mut items = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let n: u32 = s
                    .parse()
                    .map_err(|_| format!("{} field: bad step {s:?}", spec.what))?;
                if n == 0 {
                    return Err(format!("{} field: step 0", spec.what));
                }
                (r, Some(n))
            }
            None => (item, None),
        };
        let base = if range == "*" {
            "*".to_string()
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(spec, a)?, value(spec, b)?);
            if a > b {
                return Err(format!("{} field: range {a}-{b} is reversed", spec.what));
            }
            format!("{a}-{b}")
        } else {
            let a = value(spec, range)?;
            match step {
                Some(_) => format!("{a}-{}", spec.max),
                None => a.to_string(),
            }
        };
        items.push(match step {
            Some(n) => format!("{base}/{n}"),
            None => base,
        });
    }
    Ok(items.join(","))
}

impl Schedule {
    /// Parses an NCRONTAB expression or a TimeSpan.
    pub fn parse(expression: &str) -> Result<Schedule, ScheduleError> {
        let err = |problem: String| ScheduleError {
            expression: expression.to_string(),
            problem,
        };
        let fields: Vec<&str> = expression.split_whitespace().collect();
        if fields.len() == 1 && expression.contains(':') {
            return match crate::host::app::parse_timespan(expression) {
                Some(d) if !d.is_zero() => Ok(Schedule::Interval(d)),
                _ => Err(err("not a valid TimeSpan (hh:mm:ss or d.hh:mm:ss)".into())),
            };
        }
        let fields: Vec<&str> = match fields.len() {
            6 => fields,
            5 => std::iter::once("0").chain(fields).collect(),
            n => {
                return Err(err(format!(
                    "{n} fields; NCRONTAB has six (second minute hour day month day-of-week) or five"
                )));
            }
        };
        let normalized = fields
            .iter()
            .zip(FIELDS.iter())
            .map(|(f, spec)| normalize_field(spec, f))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?
            .join(" ");
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(&normalized)
            .map_err(|e| err(e.to_string()))?;
        Ok(Schedule::Cron {
            expression: expression.to_string(),
            cron: Box::new(cron),
        })
    }

    /// The first occurrence strictly after `after` (`None` if there is none, e.g. Feb 30).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Interval(d) => chrono::Duration::from_std(*d)
                .ok()
                .and_then(|d| after.checked_add_signed(d)),
            Schedule::Cron { cron, .. } => cron.find_next_occurrence(&after, false).ok(),
        }
    }

    /// True when two consecutive occurrences after `now` are less than a minute apart: the
    /// host then turns `useMonitor` off by itself.
    pub fn fires_more_than_once_a_minute(&self, now: DateTime<Utc>) -> bool {
        let Some(a) = self.next_after(now) else {
            return false;
        };
        let Some(b) = self.next_after(a) else {
            return false;
        };
        b - a < chrono::Duration::minutes(1)
    }
}
