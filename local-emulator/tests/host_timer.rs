//! Timers on a virtual clock: NCRONTAB rules, monitor status, past due, runOnStartup, no
//! overlap, the exact payload; and the admin endpoint that runs a timer now.
#![allow(clippy::unwrap_used)]

mod host_support;

use chrono::{DateTime, TimeZone, Utc};
use func_emulator::host::HostHandle;
use func_emulator::host::payload::{Ordered, ScheduleStatus};
use func_emulator::host::schedule::Schedule;
use func_emulator::host::timer::{
    Clock, Invoker, StartupRun, Timer, TimerSpec, VirtualClock, startup_run,
};
use host_support::*;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

/// An RFC 3339 instant.
fn at(rfc3339: &str) -> DateTime<Utc> {
    rfc3339.parse().unwrap()
}

/// Each `(schedule, after, next occurrence)`: the schedule's next occurrence after `after`.
fn assert_next(cases: &[(&str, &str, &str)]) {
    for (expr, after, want) in cases {
        let next = Schedule::parse(expr)
            .unwrap()
            .next_after(at(after))
            .unwrap();
        assert_eq!(next, at(want), "{expr:?} after {after}");
    }
}

#[test]
fn day_of_month_and_day_of_week_are_anded() {
    // 2026-01-01 is a Thursday; the first Friday the 13th after it is 2026-02-13.
    assert_next(&[
        (
            "0 0 0 13 * FRI",
            "2026-01-01T00:00:00Z",
            "2026-02-13T00:00:00Z",
        ),
        (
            "0 0 0 13 * 5",
            "2026-01-01T00:00:00Z",
            "2026-02-13T00:00:00Z",
        ),
    ]);
}

#[test]
fn ncrontab_syntax() {
    assert_next(&[
        // Five fields: no seconds field.
        (
            "*/5 * * * *",
            "2026-01-10T12:03:30Z",
            "2026-01-10T12:05:00Z",
        ),
        // Next occurrence strictly after the base time.
        (
            "0 0 12 * * *",
            "2026-01-10T12:00:00Z",
            "2026-01-11T12:00:00Z",
        ),
        (
            "0 0 12 * * *",
            "2026-01-10T11:59:59.5Z",
            "2026-01-10T12:00:00Z",
        ),
        (
            "*/30 * * * * *",
            "2026-01-10T12:00:00Z",
            "2026-01-10T12:00:30Z",
        ),
        // Names, case-insensitive; Sunday = 0.
        (
            "0 0 9 * jan-Mar mon-FRI",
            "2026-03-31T09:00:00Z",
            "2027-01-01T09:00:00Z",
        ),
        (
            "0 0 0 * * SUN",
            "2026-01-01T00:00:00Z",
            "2026-01-04T00:00:00Z",
        ),
        (
            "0 0 0 * * 0",
            "2026-01-01T00:00:00Z",
            "2026-01-04T00:00:00Z",
        ),
        // a/n, a-b/n and lists.
        (
            "0 5/20 * * * *",
            "2026-01-01T00:06:00Z",
            "2026-01-01T00:25:00Z",
        ),
        (
            "0 10-40/15 * * * *",
            "2026-01-01T00:26:00Z",
            "2026-01-01T00:40:00Z",
        ),
        (
            "0 0 1,13 * * *",
            "2026-01-01T02:00:00Z",
            "2026-01-01T13:00:00Z",
        ),
        // TimeSpan schedules.
        ("00:10:00", "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z"),
        ("1.00:00:00", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
    ]);
}

#[test]
fn invalid_schedules() {
    for bad in [
        "0 0 0 * * 7", // 7 is not Sunday in NCRONTAB
        "0 0 0 L * *",
        "0 0 0 ? * *",
        "0 0 0 1W * *",
        "0 0 0 * * 5#2",
        "0 0 0 1 1 * 2026", // no year field
        "* * *",
        "60 * * * * *",
        "0 0 24 * * *",
        "0 0 0 0 * *",
        "0 0 0 * 13 *",
        "0 0 0 * * MON-SUNDAY",
        "0 30-10 * * * *",
        "*/0 * * * * *",
        "25:00:00",
        "",
    ] {
        let e = Schedule::parse(bad);
        assert!(e.is_err(), "{bad:?} must be rejected");
    }
    let e = Schedule::parse("0 0 0 * * 7").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid schedule \"0 0 0 * * 7\": day-of-week field: 7 is outside 0-6"
    );
}

#[test]
fn monitor_turns_off_for_schedules_firing_more_than_once_a_minute() {
    let now = t(2026, 1, 1, 0, 0, 0);
    for (expr, more) in [
        ("*/30 * * * * *", true),
        ("0,1 * * * * *", true),
        ("0 * * * * *", false),
        ("0 */5 * * * *", false),
    ] {
        let schedule = Schedule::parse(expr).unwrap();
        assert_eq!(schedule.fires_more_than_once_a_minute(now), more, "{expr}");
    }
}

#[test]
fn startup_decisions() {
    let now = t(2026, 1, 10, 12, 0, 0);
    let status = |next| ScheduleStatus {
        last: t(2026, 1, 1, 0, 0, 0),
        next,
        last_updated: t(2026, 1, 1, 0, 0, 0),
    };
    let past = status(t(2026, 1, 10, 11, 0, 0));
    let future = status(t(2026, 1, 10, 13, 0, 0));
    // (status, monitor, runOnStartup, decision)
    for (status, monitor, on_startup, want) in [
        (Some(&past), true, false, StartupRun::PastDue),
        // Past due wins over runOnStartup (one run, IsPastDue true).
        (Some(&past), true, true, StartupRun::PastDue),
        (Some(&future), true, true, StartupRun::OnStartup),
        (Some(&future), true, false, StartupRun::None),
        (None, true, false, StartupRun::None),
        // Without monitoring there is no past due.
        (Some(&past), false, false, StartupRun::None),
    ] {
        let got = startup_run(status, monitor, on_startup, now);
        assert_eq!(
            got, want,
            "{status:?}, monitor {monitor}, on startup {on_startup}"
        );
    }
}

type Calls = Arc<Mutex<Vec<String>>>;

fn recording_invoker(gate: Option<Arc<tokio::sync::Semaphore>>) -> (Invoker, Calls) {
    let calls: Calls = Arc::new(Mutex::new(Vec::new()));
    let c = calls.clone();
    let inv: Invoker = Arc::new(move |body: Ordered, _reason: String| {
        let c = c.clone();
        let gate = gate.clone();
        Box::pin(async move {
            c.lock().unwrap().push(body.to_json_string());
            if let Some(g) = gate {
                let _ = g.acquire().await.unwrap();
            }
            true
        })
    });
    (inv, calls)
}

fn spec(dir: &std::path::Path, schedule: &str, run_on_startup: bool) -> TimerSpec {
    TimerSpec {
        function: "probe".into(),
        trigger: "timer".into(),
        schedule: Schedule::parse(schedule).unwrap(),
        use_monitor: true,
        run_on_startup,
        max_retry_count: None,
        status_path: dir.join("timers/probe/status"),
    }
}

/// A `probe` timer on `schedule` (its status under `dir`), run on a virtual clock from `start`
/// by its own task; each invocation's body is recorded, and held on `gate` when there is one.
struct Running {
    clock: Arc<VirtualClock>,
    calls: Calls,
    timer: Arc<Timer>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn run_timer(
    dir: &std::path::Path,
    start: DateTime<Utc>,
    schedule: &str,
    run_on_startup: bool,
    gate: Option<Arc<tokio::sync::Semaphore>>,
) -> Running {
    let clock = Arc::new(VirtualClock::new(start));
    let (inv, calls) = recording_invoker(gate);
    let spec = spec(dir, schedule, run_on_startup);
    let timer = Arc::new(Timer::new(spec, clock.clone(), inv));
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(timer.clone().run(stop_rx));
    Running {
        clock,
        calls,
        timer,
        stop,
        task,
    }
}

impl Running {
    fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// Waits until the timer has invoked `n` times.
    async fn wait_calls(&self, what: &str, n: usize) {
        wait_for(what, || self.count() == n).await;
    }

    /// Invocation `i`'s body.
    fn call(&self, i: usize) -> Value {
        serde_json::from_str(&self.calls.lock().unwrap()[i]).unwrap()
    }

    /// Waits until the timer's status satisfies `cond`.
    async fn wait_status(&self, what: &str, cond: impl Fn(&ScheduleStatus) -> bool) {
        wait_for(what, || self.timer.status().is_some_and(|s| cond(&s))).await;
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        self.task.await.unwrap();
    }
}

#[tokio::test]
async fn first_run_payload_and_status_file() {
    let dir = tempfile::tempdir().unwrap();
    let start = t(2026, 1, 10, 12, 2, 30);
    let r = run_timer(dir.path(), start, "0 */5 * * * *", false, None);
    wait_for("the initial status", || r.timer.status().is_some()).await;
    assert!(r.calls.lock().unwrap().is_empty());
    r.clock
        .set(t(2026, 1, 10, 12, 5, 0) + chrono::Duration::nanoseconds(20_471_100));
    r.wait_calls("the first run", 1).await;
    let body = r.calls.lock().unwrap()[0].clone();
    let guid = r.call(0)["Metadata"]["sys"]["RandGuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        body,
        format!(
            concat!(
                r#"{{"Data":{{"timer":{{"Schedule":{{"AdjustForDST":true}},"#,
                r#""ScheduleStatus":{{"Last":"0001-01-01T00:00:00+00:00","Next":"2026-01-10T12:05:00+00:00","LastUpdated":"0001-01-01T00:00:00+00:00"}},"#,
                r#""IsPastDue":false}}}},"Metadata":{{"sys":{{"MethodName":"probe","UtcNow":"2026-01-10T12:05:00.0204711Z","RandGuid":"{}"}}}}}}"#
            ),
            guid
        )
    );
    // After the run: Last = the run, Next = the following occurrence, persisted.
    r.wait_status("the status update", |s| s.next == t(2026, 1, 10, 12, 10, 0))
        .await;
    let stored = std::fs::read_to_string(dir.path().join("timers/probe/status")).unwrap();
    assert_eq!(
        stored,
        r#"{"Last":"2026-01-10T12:05:00.0204711+00:00","Next":"2026-01-10T12:10:00+00:00","LastUpdated":"2026-01-10T12:05:00.0204711+00:00"}"#
    );
    // The second run reports the first one.
    r.clock.set(t(2026, 1, 10, 12, 10, 0));
    r.wait_calls("the second run", 2).await;
    let second = &r.call(1)["Data"]["timer"]["ScheduleStatus"];
    assert_eq!(second["Last"], "2026-01-10T12:05:00.0204711+00:00");
    assert_eq!(second["Next"], "2026-01-10T12:10:00+00:00");
    r.stop().await;
}

#[tokio::test]
async fn past_due_runs_once_without_catching_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timers/probe/status");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Last ran a week ago; 2000 occurrences were missed. Lenient date formats.
    std::fs::write(
        &path,
        r#"{"Last":"2026-01-03T12:00:00.0112345+00:00","Next":"2026-01-03T12:05:00Z","LastUpdated":"01/03/2026 12:00:00"}"#,
    )
    .unwrap();
    let start = t(2026, 1, 10, 12, 2, 30);
    let r = run_timer(dir.path(), start, "0 */5 * * * *", true, None);
    r.wait_calls("the past-due run", 1).await;
    let first = &r.call(0)["Data"]["timer"];
    assert_eq!(first["IsPastDue"], true);
    let status = &first["ScheduleStatus"];
    assert_eq!(status["Last"], "2026-01-03T12:00:00.0112345+00:00");
    assert_eq!(status["Next"], "2026-01-03T12:05:00+00:00");
    assert_eq!(status["LastUpdated"], "2026-01-03T12:00:00+00:00");
    r.wait_status("the status after the run", |s| {
        s.last == t(2026, 1, 10, 12, 2, 30)
    })
    .await;
    // Only one run until the next occurrence.
    assert_eq!(r.count(), 1);
    r.clock.set(t(2026, 1, 10, 12, 5, 0));
    r.wait_calls("the next scheduled run", 2).await;
    assert_eq!(r.call(1)["Data"]["timer"]["IsPastDue"], false);
    r.stop().await;
}

#[tokio::test]
async fn run_on_startup_and_sub_minute_schedules_have_no_status() {
    let dir = tempfile::tempdir().unwrap();
    let start = t(2026, 1, 10, 12, 0, 10);
    let r = run_timer(dir.path(), start, "*/30 * * * * *", true, None);
    assert!(!r.timer.monitor);
    r.wait_calls("the startup run", 1).await;
    let first = r.call(0);
    assert_eq!(first["Data"]["timer"]["ScheduleStatus"], Value::Null);
    assert_eq!(first["Data"]["timer"]["IsPastDue"], false);
    let metadata: Vec<_> = first["Metadata"].as_object().unwrap().keys().collect();
    assert_eq!(metadata, vec!["sys"]);
    r.clock.set(t(2026, 1, 10, 12, 0, 30));
    r.wait_calls("the scheduled run", 2).await;
    assert_eq!(r.call(1)["Data"]["timer"]["ScheduleStatus"], Value::Null);
    // No status file without monitoring.
    assert!(!dir.path().join("timers/probe/status").exists());
    r.stop().await;
}

#[tokio::test]
async fn runs_never_overlap_and_missed_occurrences_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let start = t(2026, 1, 10, 12, 0, 0);
    let r = run_timer(dir.path(), start, "0 * * * * *", false, Some(gate.clone()));
    wait_for("the initial status", || r.timer.status().is_some()).await;
    r.clock.set(t(2026, 1, 10, 12, 1, 0));
    r.wait_calls("the first run", 1).await;
    // While it runs, five more minutes pass and a manual run is requested.
    r.clock.set(t(2026, 1, 10, 12, 6, 30));
    let manual = tokio::spawn({
        let timer = r.timer.clone();
        async move { timer.run_once(false, "manual".into()).await }
    });
    tokio::task::yield_now().await;
    assert_eq!(r.count(), 1);
    gate.add_permits(1);
    // The manual run goes after the first one; the scheduled loop does not catch up.
    r.wait_calls("the manual run", 2).await;
    gate.add_permits(1);
    assert!(manual.await.unwrap());
    r.wait_status("status after the manual run", |s| {
        s.next == t(2026, 1, 10, 12, 7, 0)
    })
    .await;
    assert_eq!(r.count(), 2);
    r.clock.set(t(2026, 1, 10, 12, 7, 0));
    gate.add_permits(1);
    r.wait_calls("the next occurrence", 3).await;
    assert_eq!(r.clock.now(), t(2026, 1, 10, 12, 7, 0));
    r.stop.send_replace(true);
    gate.add_permits(10);
    r.task.await.unwrap();
}

#[tokio::test]
async fn admin_endpoint_runs_a_timer_now() {
    let (app, h) = started("echo-app", &[]).await;
    let c = client();
    let url = format!("{}/admin/functions/tick", h.base_url());
    let post =
        |key: Option<&str>, body: &str| answer(keyed(c.post(&url).body(body.to_string()), key));
    assert_eq!(post(None, r#"{"input":""}"#).await, (401, vec![]));
    assert_eq!(
        post(Some(h.host_key()), r#"{"input":""}"#).await,
        (401, vec![])
    );
    assert_eq!(
        post(Some(h.function_key("tick").unwrap()), r#"{"input":""}"#).await,
        (401, vec![])
    );
    assert_eq!(post(Some(h.master_key()), "not json").await.0, 400);
    let (s, _) = post(Some(h.master_key()), r#"{"input":""}"#).await;
    assert_eq!(s, 202);
    wait_for("the timer run", || called(&app, "/tick")).await;
    let nope = format!("{}/admin/functions/nope", h.base_url());
    let unknown = call(c.post(nope).body(r#"{"input":""}"#), h.master_key(), None).await;
    assert_eq!(unknown.status(), 404);
    let r = records(&app)
        .into_iter()
        .find(|r| r["uri"] == "/tick")
        .unwrap();
    assert_eq!(r["method"], "POST");
    use base64::Engine as _;
    let body: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(r["body_base64"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["Data"]["timer"]["IsPastDue"], false);
    assert_eq!(
        body["Data"]["timer"]["ScheduleStatus"]["Last"],
        "0001-01-01T00:00:00+00:00"
    );
    assert!(logged(&h, |t| t
        .starts_with("Executed 'Functions.tick' (Succeeded")));
    h.shutdown().await;
}

/// The host on `app` with its timers on a virtual clock from `start`.
async fn start_on_clock(app: &TestApp, start: DateTime<Utc>) -> (HostHandle, Arc<VirtualClock>) {
    let clock = Arc::new(VirtualClock::new(start));
    let h = start_with(app, |c| c.clock = clock.clone()).await;
    (h, clock)
}

#[tokio::test]
async fn host_timers_on_a_virtual_clock() {
    let app = app("json-app");
    let (h, clock) = start_on_clock(&app, t(2026, 1, 10, 11, 0, 10)).await;
    // `tick` has runOnStartup.
    wait_for("the startup run", || called(&app, "/tick")).await;
    clock.set(t(2026, 1, 10, 11, 0, 30));
    wait_for("the 30 s timer", || called(&app, "/fast")).await;
    assert!(h.timer_status("fast").is_none());
    assert_eq!(
        h.timer_status("tick").unwrap().next,
        t(2026, 1, 10, 12, 0, 0)
    );
    assert!(
        app.root()
            .join(".func-emulator/timers/tick/status")
            .is_file()
    );
    h.shutdown().await;
}

/// `functions/app`'s probe runs on `%BURST_PROBE_SCHEDULE%`, an app setting Azure always gets
/// (default `*/30 * * * * *`). Locally, without the setting, the host applies that default and
/// says so; a set value wins.
#[tokio::test]
async fn burst_probe_schedule_defaults_to_the_app_setting() {
    if std::env::var_os("BURST_PROBE_SCHEDULE").is_some() {
        eprintln!("skipped: BURST_PROBE_SCHEDULE is set in this environment");
        return;
    }
    let app = app("echo-app");
    std::fs::create_dir_all(app.root().join("probe")).unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../functions/app/probe/function.json"),
        app.root().join("probe/function.json"),
    )
    .unwrap();
    let (h, clock) = start_on_clock(&app, t(2026, 1, 10, 12, 0, 10)).await;
    let logs = h.logs();
    assert!(
        logs.iter().any(|l| l
            .text
            .starts_with("BURST_PROBE_SCHEDULE is not set: using the default \"*/30 * * * * *\"")),
        "{logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.text == "  probe: timerTrigger (%BURST_PROBE_SCHEDULE% = */30 * * * * *)"),
        "{logs:#?}"
    );
    // The timer task may compute its first occurrence after any given instant: move the
    // virtual clock 30 s per poll until the probe runs.
    wait_for("the probe on the default schedule", || {
        clock.advance(chrono::Duration::seconds(30));
        called(&app, "/probe")
    })
    .await;
    // The handler sees the setting too, as it would in Azure.
    wait_for("the handler's environment", || {
        logged(&h, |t| t.starts_with("echo-handler env "))
    })
    .await;
    let env_line = h
        .logs()
        .into_iter()
        .find(|l| l.text.starts_with("echo-handler env "))
        .unwrap();
    let env: Value =
        serde_json::from_str(env_line.text.trim_start_matches("echo-handler env ")).unwrap();
    assert_eq!(env["BURST_PROBE_SCHEDULE"], "*/30 * * * * *");
    h.shutdown().await;

    // A set value wins; nothing is said about a default.
    let h = start(&app, &[("BURST_PROBE_SCHEDULE", "0 0 0 1 1 *")]).await;
    let logs = h.logs();
    assert!(
        !logs
            .iter()
            .any(|l| l.text.contains("BURST_PROBE_SCHEDULE is not set"))
    );
    assert!(
        logs.iter()
            .any(|l| l.text == "  probe: timerTrigger (%BURST_PROBE_SCHEDULE% = 0 0 0 1 1 *)"),
        "{logs:#?}"
    );
    h.shutdown().await;
}
