//! The lease the cloud grants this agent (Patroni's leader key with a TTL, in spirit) and the
//! agent's small record of it on disk.
//!
//! A heartbeat with `"lease": true` gets, in a 200 reply, `"lease": {"expires_at", "remaining_ms"}`
//! (the cloud's expiry, and how long that was from the cloud's "now" when it answered) and
//! `"stateful": "home" | "cloud" | "unsure"`. The agent counts the lease from its own clock:
//! **local expiry = wall-clock time just before the request was sent + `remaining_ms`**. The
//! cloud granted the lease after that send, so the local expiry is never later than the
//! cloud's, whatever the offset between the two clocks. `expires_at` is kept for people only.
//!
//! The file (`lease_file`) holds the local expiry, the cloud's `expires_at`, the last
//! `stateful` seen and whether the agent is fenced (`null`: unknown, the file was unreadable).
//! It is replaced atomically (temp file, fsync, rename, fsync of the directory).

use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::deliver::{Outcome, Reply};

/// Where the cloud believes the stateful tier runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stateful {
    Home,
    Cloud,
    Unsure,
}

impl Stateful {
    /// The reply's value. Anything unrecognised counts as `unsure`: never as home.
    pub fn parse(s: &str) -> Stateful {
        match s {
            "home" => Stateful::Home,
            "cloud" => Stateful::Cloud,
            _ => Stateful::Unsure,
        }
    }
}

/// A lease as a reply reports it, counted on the local clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted {
    /// Send time + `remaining_ms`: at or before the cloud's expiry.
    pub local_expiry: DateTime<Utc>,
    /// The cloud's `expires_at`, as it sent it (informative: another clock).
    pub cloud_expires_at: String,
}

/// What one heartbeat post says about the lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// A fresh (not duplicate) 2xx reply with a lease: the lease was renewed.
    pub renewed: bool,
    /// The lease the reply carried (also for a duplicate, which reports it unrenewed).
    pub lease: Option<Granted>,
    /// The reply's `stateful`, if it had one.
    pub stateful: Option<Stateful>,
    /// Why the lease was not renewed (`None` when it was).
    pub not_renewed: Option<String>,
}

impl Observation {
    /// Reads the outcome of the heartbeat post and the reply it came from.
    pub fn of_post(outcome: &Outcome, reply: Option<&Reply>) -> Observation {
        let failed = |why: String| Observation {
            renewed: false,
            lease: None,
            stateful: None,
            not_renewed: Some(why),
        };
        match (outcome, reply) {
            (Outcome::Delivered { status, duplicate }, Some(reply))
                if (200..300).contains(status) && reply.status == *status =>
            {
                let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
                let stateful = body
                    .get("stateful")
                    .and_then(Value::as_str)
                    .map(Stateful::parse);
                let lease = match body.get("lease") {
                    None | Some(Value::Null) => Err("the reply carries no lease".to_string()),
                    Some(v) => parse_lease(v, reply.sent_at),
                };
                match lease {
                    Ok(granted) => Observation {
                        renewed: !duplicate,
                        lease: Some(granted),
                        stateful,
                        not_renewed: duplicate
                            .then(|| "duplicate heartbeat: the lease was not renewed".to_string()),
                    },
                    Err(why) => Observation {
                        stateful,
                        ..failed(why)
                    },
                }
            }
            (Outcome::Delivered { status, .. }, _) => {
                failed(format!("HTTP {status}: accepted without a lease"))
            }
            (Outcome::Rejected { status, .. }, _) => failed(format!(
                "the function refused the heartbeat (HTTP {status})"
            )),
            (Outcome::Retry { reason }, _) => failed(format!("not delivered: {reason}")),
        }
    }
}

/// `{"expires_at": "<RFC 3339>", "remaining_ms": <u64>}` → the lease on the local clock.
fn parse_lease(v: &Value, sent_at: DateTime<Utc>) -> Result<Granted, String> {
    let bad = |what: &str| format!("the reply's lease is malformed ({what}): {v}");
    let remaining_ms = v
        .get("remaining_ms")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("remaining_ms"))?;
    let expires_at = v
        .get("expires_at")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("expires_at"))?;
    DateTime::parse_from_rfc3339(expires_at).map_err(|_| bad("expires_at"))?;
    let local_expiry = i64::try_from(remaining_ms)
        .ok()
        .and_then(TimeDelta::try_milliseconds)
        .and_then(|d| sent_at.checked_add_signed(d))
        .ok_or_else(|| bad("remaining_ms out of range"))?;
    Ok(Granted {
        local_expiry,
        cloud_expires_at: expires_at.to_string(),
    })
}

/// The agent's record of its lease (the content of `lease_file`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaseFile {
    /// Until when the agent may count on its lease (local clock); `None`: no known lease.
    pub local_expiry: Option<DateTime<Utc>>,
    /// The cloud's `expires_at` of that lease (informative).
    pub cloud_expires_at: Option<String>,
    /// The last `stateful` the cloud reported.
    pub stateful: Option<Stateful>,
    /// Whether the agent has fenced itself; `None`: unknown (the file was unreadable).
    pub fenced: Option<bool>,
}

impl LeaseFile {
    /// No file yet: no lease, not fenced.
    pub fn fresh() -> LeaseFile {
        LeaseFile {
            fenced: Some(false),
            ..LeaseFile::default()
        }
    }

    /// An unreadable file: no known lease, fence state unknown.
    pub fn unknown() -> LeaseFile {
        LeaseFile::default()
    }

    /// This record with what a heartbeat learned (the fence state is left alone).
    pub fn updated(&self, obs: &Observation) -> LeaseFile {
        let mut next = self.clone();
        if let Some(granted) = &obs.lease {
            next.local_expiry = Some(granted.local_expiry);
            next.cloud_expires_at = Some(granted.cloud_expires_at.clone());
        }
        if obs.stateful.is_some() {
            next.stateful = obs.stateful;
        }
        next
    }
}

/// Reads the file: `Ok(None)` if there is none, `Err(why)` if it cannot be read or parsed.
pub fn load(path: &Path) -> Result<Option<LeaseFile>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    serde_json::from_str::<LeaseFile>(&text)
        .map(Some)
        .map_err(|e| format!("not a lease file: {e}"))
}

/// Replaces the file atomically (creating its directory if needed).
pub fn store(path: &Path, file: &LeaseFile) -> std::io::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other("the lease file path has no file name"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut bytes = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    crate::deliver::write_atomically(dir, name, &bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn reply(status: u16, body: &str, sent_at: &str) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            elapsed: Duration::from_millis(30),
            sent_at: at(sent_at),
            date: None,
            location: None,
        }
    }

    fn observe(status: u16, body: &str) -> Observation {
        let r = reply(status, body, "2026-03-01T12:00:00Z");
        Observation::of_post(&Outcome::of_reply(&r), Some(&r))
    }

    #[test]
    fn local_expiry_counts_from_the_send_time_not_the_cloud_clock() {
        // The cloud's clock is 10 minutes ahead: its expires_at is not used for the expiry.
        let o = observe(
            200,
            r#"{"ok":true,"duplicate":false,"lease":{"expires_at":"2026-03-01T12:12:00Z",
                "remaining_ms":120000},"stateful":"home"}"#,
        );
        assert!(o.renewed);
        assert_eq!(o.not_renewed, None);
        assert_eq!(o.stateful, Some(Stateful::Home));
        let g = o.lease.unwrap();
        assert_eq!(g.local_expiry, at("2026-03-01T12:02:00Z"));
        assert_eq!(g.cloud_expires_at, "2026-03-01T12:12:00Z");
    }

    #[test]
    fn a_duplicate_reports_the_lease_but_did_not_renew_it() {
        let o = observe(
            200,
            r#"{"duplicate":true,"lease":{"expires_at":"2026-03-01T12:00:40Z",
                "remaining_ms":40000},"stateful":"unsure"}"#,
        );
        assert!(!o.renewed);
        assert!(o.not_renewed.unwrap().contains("duplicate"));
        assert_eq!(
            o.lease.unwrap().local_expiry,
            at("2026-03-01T12:00:40Z"),
            "still the best known expiry"
        );
        assert_eq!(o.stateful, Some(Stateful::Unsure));
    }

    #[test]
    fn no_lease_bad_lease_and_failures_are_not_renewals() {
        let cases = [
            observe(200, r#"{"ok":true,"stateful":"cloud"}"#),
            observe(200, "not json"),
            observe(200, r#"{"lease":{"expires_at":"soon","remaining_ms":5}}"#),
            observe(
                200,
                r#"{"lease":{"expires_at":"2026-03-01T12:00:40Z","remaining_ms":-5}}"#,
            ),
            observe(200, r#"{"lease":{"remaining_ms":5}}"#),
            observe(409, r#"{"error":"replayed_token"}"#),
            observe(503, r#"{"error":"state_unavailable"}"#),
            observe(401, r#"{"error":"invalid_token"}"#),
            Observation::of_post(
                &Outcome::Retry {
                    reason: "cannot connect".into(),
                },
                None,
            ),
        ];
        for o in &cases {
            assert!(!o.renewed, "{o:?}");
            assert!(o.lease.is_none(), "{o:?}");
            assert!(o.not_renewed.is_some(), "{o:?}");
        }
        assert_eq!(
            cases[0].stateful,
            Some(Stateful::Cloud),
            "stateful is read even without a lease"
        );
        assert_eq!(Stateful::parse("elsewhere"), Stateful::Unsure);
    }

    #[test]
    fn update_keeps_the_fence_state_and_the_last_stateful() {
        let stored = LeaseFile {
            local_expiry: Some(at("2026-03-01T11:59:00Z")),
            cloud_expires_at: Some("x".into()),
            stateful: Some(Stateful::Cloud),
            fenced: Some(true),
        };
        let failed = observe(503, "");
        assert_eq!(stored.updated(&failed), stored);
        let renewed = observe(
            200,
            r#"{"lease":{"expires_at":"2026-03-01T12:02:00Z","remaining_ms":120000}}"#,
        );
        let next = stored.updated(&renewed);
        assert_eq!(next.local_expiry, Some(at("2026-03-01T12:02:00Z")));
        assert_eq!(
            next.stateful,
            Some(Stateful::Cloud),
            "no stateful: last one kept"
        );
        assert_eq!(next.fenced, Some(true));
    }

    #[test]
    fn file_round_trip_missing_and_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("lease.json");
        assert_eq!(load(&path).unwrap(), None);
        let file = LeaseFile {
            local_expiry: Some(at("2026-03-01T12:02:00.123Z")),
            cloud_expires_at: Some("2026-03-01T12:02:01Z".into()),
            stateful: Some(Stateful::Home),
            fenced: Some(false),
        };
        store(&path, &file).unwrap();
        assert_eq!(load(&path).unwrap(), Some(file));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"stateful\": \"home\""), "{text}");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != "lease.json")
            .collect();
        assert!(leftovers.is_empty(), "no temp file left: {leftovers:?}");

        std::fs::write(&path, "{\"local_expiry\": 12").unwrap();
        assert!(load(&path).unwrap_err().contains("not a lease file"));
        std::fs::write(&path, "{}").unwrap();
        assert_eq!(
            load(&path).unwrap(),
            Some(LeaseFile::unknown()),
            "says nothing: fence state unknown"
        );
    }
}
