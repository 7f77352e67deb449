//! The lease fence, end to end: the real `burst-agent heartbeat` against the checking receiver
//! answering with a lease and a `stateful` value, real `sh` fence/unfence commands that leave
//! marker files, and the real lease file.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use support::{Harness, Run};

/// Budget of one heartbeat run here: a run against a refusing receiver retries this long.
const BUDGET_MS: u64 = 1500;

struct Site {
    h: Harness,
    /// One line per fence command run: `<reason> <expires_at>`.
    fenced: PathBuf,
    /// One line per unfence command run: `<reason> <expires_at>`.
    unfenced: PathBuf,
}

impl Site {
    async fn new() -> Site {
        let mut h = Harness::new().await;
        let fenced = h.tmp.path().join("fenced.log");
        let unfenced = h.tmp.path().join("unfenced.log");
        let record = |file: &Path| {
            format!(
                "echo \"$BURST_FENCE_REASON $BURST_LEASE_EXPIRES_AT\" >> '{}'",
                file.display()
            )
        };
        h.set("BURST_AGENT_FENCE_COMMAND", &record(&fenced));
        h.set("BURST_AGENT_UNFENCE_COMMAND", &record(&unfenced));
        h.set("BURST_AGENT_HEARTBEAT_BUDGET_MS", &BUDGET_MS.to_string());
        h.set("BURST_AGENT_FENCE_TIMEOUT_MS", "5000");
        h.receiver.set_stateful(Some("home"));
        Site {
            h,
            fenced,
            unfenced,
        }
    }

    async fn heartbeat(&self) -> Run {
        let run = self.h.run(&["heartbeat"], &[]).await;
        assert!(
            !run.stderr.contains("panicked"),
            "the agent panicked: {}",
            run.stderr
        );
        run
    }

    /// A 3 s lease, renewed by one heartbeat; then the function refuses every heartbeat.
    async fn short_lease_then_cut_off(&self) {
        self.h.receiver.set_lease(Some(Duration::from_secs(3)));
        assert_eq!(self.heartbeat().await.code, 0);
        self.h.receiver.refuse().await;
    }

    /// A heartbeat (which succeeds) told that the stateful tier runs `at`: the command log `log`
    /// then holds one line, `stateful_<at> …`.
    async fn told_the_tier_runs(&self, at: &str, log: &Path) {
        self.h.receiver.set_stateful(Some(at));
        let run = self.heartbeat().await;
        assert_eq!(run.code, 0, "{run:?}");
        let logged = lines(log);
        assert_eq!(logged.len(), 1, "{}", run.stderr);
        assert!(
            logged[0].starts_with(&format!("stateful_{at} ")),
            "{logged:?}"
        );
    }

    /// The lease file's default place: beside the spool directory.
    fn lease_path(&self) -> PathBuf {
        self.h.tmp.path().join("lease.json")
    }

    fn lease(&self) -> Value {
        let text = std::fs::read_to_string(self.lease_path()).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

fn epoch(secs: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros((secs * 1e6) as i64).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_fence_command_no_lease_is_asked_for() {
    let h = Harness::new().await;
    h.receiver.set_lease(Some(Duration::from_secs(120)));
    let run = h.run(&["heartbeat"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let got = h.receiver.accepted_on("/api/heartbeat");
    assert_eq!(got.len(), 1, "{}", h.receiver.describe());
    assert!(got[0].body.get("lease").is_none(), "{}", got[0].body);
    assert!(got[0].reply.get("lease").is_none(), "{}", got[0].reply);
    assert!(!h.tmp.path().join("lease.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_stores_the_local_expiry_counted_from_the_send_time() {
    let s = Site::new().await;
    s.h.receiver.set_lease(Some(Duration::from_secs(120)));
    let before = Utc::now();
    let run = s.heartbeat().await;
    assert_eq!(run.code, 0, "{run:?}");

    let got = s.h.receiver.accepted_on("/api/heartbeat");
    assert_eq!(got.len(), 1, "{}", s.h.receiver.describe());
    assert_eq!(
        got[0].body["lease"], true,
        "asks for a lease: {}",
        got[0].body
    );
    let granted = &got[0].reply["lease"];
    let remaining = TimeDelta::milliseconds(granted["remaining_ms"].as_i64().unwrap());
    let cloud_expiry = time(&granted["expires_at"]);

    let file = s.lease();
    let local = time(&file["local_expiry"]);
    // Sent after `before` and before the receiver got it: send time + remaining in between.
    assert!(
        before + remaining <= local,
        "{local} before {before} + {remaining}"
    );
    assert!(
        local <= epoch(got[0].received_at) + remaining,
        "{local} after receipt + {remaining}"
    );
    // Never after the cloud's expiry (its `expires_at` is cut to whole milliseconds).
    assert!(
        local <= cloud_expiry + TimeDelta::milliseconds(1),
        "{local} > {cloud_expiry}"
    );
    assert_eq!(file["cloud_expires_at"], granted["expires_at"]);
    assert_eq!(file["stateful"], "home");
    assert_eq!(file["fenced"], false);
    assert!(lines(&s.fenced).is_empty() && lines(&s.unfenced).is_empty());
    // Atomic replace: nothing else left beside it.
    let stray: Vec<String> = std::fs::read_dir(s.h.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("lease") && n != "lease.json")
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_unreachable_with_the_lease_nearly_out_fences_exactly_once() {
    let s = Site::new().await;
    // A lease shorter than fence_ahead_ms (60 s): renewing is fine, failing to renew is not.
    s.h.receiver.set_lease(Some(Duration::from_secs(5)));
    assert_eq!(s.heartbeat().await.code, 0);
    assert!(lines(&s.fenced).is_empty(), "a renewed lease never fences");
    let local = s.lease()["local_expiry"].clone();

    s.h.receiver.refuse().await;
    let run = s.heartbeat().await;
    assert_eq!(run.code, 1, "the post failed: exit 1 as before: {run:?}");
    let fenced = lines(&s.fenced);
    assert_eq!(fenced.len(), 1, "{}", run.stderr);
    let expected = format!(
        "lease_expiring {}",
        time(&local).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    assert_eq!(fenced[0], expected);
    assert!(run.stderr.contains("FENCED"), "{}", run.stderr);
    assert_eq!(s.lease()["fenced"], true);
    assert_eq!(
        s.lease()["local_expiry"],
        local,
        "the failed run learned no lease"
    );

    // Still down: already fenced, the command does not run again.
    let run = s.heartbeat().await;
    assert_eq!(run.code, 1);
    assert_eq!(lines(&s.fenced).len(), 1, "{}", run.stderr);
    assert!(lines(&s.unfenced).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_lease_left_does_not_fence() {
    let s = Site::new().await;
    s.h.receiver.set_lease(Some(Duration::from_secs(120)));
    assert_eq!(s.heartbeat().await.code, 0);
    s.h.receiver.refuse().await;
    let run = s.heartbeat().await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("lease not renewed"), "{}", run.stderr);
    assert!(lines(&s.fenced).is_empty(), "{}", run.stderr);
    assert_eq!(s.lease()["fenced"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_stays_fenced_while_the_cloud_holds_the_tier_and_unfences_once_it_is_home() {
    let s = Site::new().await;
    s.short_lease_then_cut_off().await;
    assert_eq!(s.heartbeat().await.code, 1);
    assert_eq!(lines(&s.fenced).len(), 1);

    // Back, the lease renews, but the tier runs in the cloud (or the cloud is not sure).
    s.h.receiver.resume().await;
    s.h.receiver.set_lease(Some(Duration::from_secs(120)));
    for stateful in ["cloud", "unsure"] {
        s.h.receiver.set_stateful(Some(stateful));
        let run = s.heartbeat().await;
        assert_eq!(run.code, 0, "{run:?}");
        assert!(lines(&s.unfenced).is_empty(), "{stateful}: {}", run.stderr);
        assert_eq!(lines(&s.fenced).len(), 1, "fenced already: not again");
        let file = s.lease();
        assert_eq!(file["fenced"], true, "{stateful}");
        assert_eq!(file["stateful"], stateful);
    }

    s.told_the_tier_runs("home", &s.unfenced).await;
    assert_eq!(s.lease()["fenced"], false);

    assert_eq!(s.heartbeat().await.code, 0);
    assert_eq!(lines(&s.unfenced).len(), 1, "unfenced once");
    assert_eq!(lines(&s.fenced).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfenced_agent_fences_when_the_cloud_says_it_runs_the_tier() {
    // Home was off through the outage (nothing ran the fence) and comes back: the lease
    // renews, but the cloud runs the stateful tier now.
    let s = Site::new().await;
    s.h.receiver.set_lease(Some(Duration::from_secs(120)));
    s.told_the_tier_runs("cloud", &s.fenced).await;
    assert_eq!(s.lease()["fenced"], true);
    assert_eq!(s.heartbeat().await.code, 0);
    assert_eq!(lines(&s.fenced).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_fence_command_is_logged_not_marked_and_tried_again() {
    let mut s = Site::new().await;
    let attempts = s.h.tmp.path().join("attempts.log");
    s.h.set(
        "BURST_AGENT_FENCE_COMMAND",
        &format!("echo try >> '{}'; exit 3", attempts.display()),
    );
    s.short_lease_then_cut_off().await;
    for n in 1..=2 {
        let run = s.heartbeat().await;
        assert_eq!(run.code, 1);
        assert_eq!(lines(&attempts).len(), n, "{}", run.stderr);
        assert!(
            run.stderr.contains("fence_command failed"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("FENCED"), "{}", run.stderr);
        assert_eq!(s.lease()["fenced"], false);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_fence_command_is_killed_and_the_heartbeat_returns() {
    let mut s = Site::new().await;
    let sleeper = s.h.tmp.path().join("sleeper.pid");
    // The shell waits for a child of its own: the kill must take the whole group.
    s.h.set(
        "BURST_AGENT_FENCE_COMMAND",
        &format!("sleep 60 & echo $! > '{}'; wait", sleeper.display()),
    );
    s.h.set("BURST_AGENT_FENCE_TIMEOUT_MS", "1000");
    s.short_lease_then_cut_off().await;

    let run = s.heartbeat().await;
    assert_eq!(run.code, 1);
    eprintln!(
        "heartbeat with a hanging fence command took {:?}",
        run.elapsed
    );
    // The heartbeat's budget, then the fence's own limit; nothing more (margin for the
    // process start-up on a loaded machine).
    assert!(
        run.elapsed < Duration::from_millis(BUDGET_MS + 1000 + 2500),
        "{:?}",
        run.elapsed
    );
    assert!(
        run.stderr.contains("fence_command failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("TimedOut"), "{}", run.stderr);
    assert_eq!(s.lease()["fenced"], false);
    let pid = std::fs::read_to_string(&sleeper).unwrap();
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        // A zombie waits for a reaper that some containers lack; it is not running.
        let state = stat.rsplit(')').next().unwrap().split_whitespace().next();
        assert_eq!(state, Some("Z"), "the fence's child still runs: {stat}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_lease_file_is_handled_without_a_panic() {
    let s = Site::new().await;
    std::fs::write(s.lease_path(), "{\"local_expiry\": \"2026-").unwrap();

    // Cloud unreachable: no known lease, so nothing to fence.
    s.h.receiver.refuse().await;
    let run = s.heartbeat().await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("lease file unusable"), "{}", run.stderr);
    assert!(lines(&s.fenced).is_empty(), "{}", run.stderr);

    // Back and home: the unknown fence state is settled by running the unfence command.
    s.h.receiver.resume().await;
    s.h.receiver.set_lease(Some(Duration::from_secs(120)));
    let run = s.heartbeat().await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(lines(&s.unfenced).len(), 1, "{}", run.stderr);
    let file = s.lease();
    assert_eq!(file["fenced"], false);
    assert!(file["local_expiry"].is_string(), "{file}");
}
