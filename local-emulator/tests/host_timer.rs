//! Timers on a virtual clock: NCRONTAB rules, monitor status, past due, runOnStartup, no
//! overlap, the exact payload; and the admin endpoint that runs a timer now.
#![allow(clippy::unwrap_used)]

mod host_support;

use chrono::{DateTime, TimeZone, Utc};
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

fn next(expr: &str, after: DateTime<Utc>) -> DateTime<Utc> {
    Schedule::parse(expr).unwrap().next_after(after).unwrap()
}

#[test]
fn day_of_month_and_day_of_week_are_anded() {
    // 2026-01-01 is a Thursday; the first Friday the 13th after it is 2026-02-13.
    assert_eq!(
        next("0 0 0 13 * FRI", t(2026, 1, 1, 0, 0, 0)),
        t(2026, 2, 13, 0, 0, 0)
    );
    assert_eq!(
        next("0 0 0 13 * 5", t(2026, 1, 1, 0, 0, 0)),
        t(2026, 2, 13, 0, 0, 0)
    );
}

#[test]
fn ncrontab_syntax() {
    // Five fields: no seconds field.
    assert_eq!(
        next("*/5 * * * *", t(2026, 1, 10, 12, 3, 30)),
        t(2026, 1, 10, 12, 5, 0)
    );
    // Next occurrence strictly after the base time.
    assert_eq!(
        next("0 0 12 * * *", t(2026, 1, 10, 12, 0, 0)),
        t(2026, 1, 11, 12, 0, 0)
    );
    assert_eq!(
        next(
            "0 0 12 * * *",
            t(2026, 1, 10, 11, 59, 59) + chrono::Duration::milliseconds(500)
        ),
        t(2026, 1, 10, 12, 0, 0)
    );
    assert_eq!(
        next("*/30 * * * * *", t(2026, 1, 10, 12, 0, 0)),
        t(2026, 1, 10, 12, 0, 30)
    );
    // Names, case-insensitive; Sunday = 0.
    assert_eq!(
        next("0 0 9 * jan-Mar mon-FRI", t(2026, 3, 31, 9, 0, 0)),
        t(2027, 1, 1, 9, 0, 0)
    );
    assert_eq!(
        next("0 0 0 * * SUN", t(2026, 1, 1, 0, 0, 0)),
        t(2026, 1, 4, 0, 0, 0)
    );
    assert_eq!(
        next("0 0 0 * * 0", t(2026, 1, 1, 0, 0, 0)),
        t(2026, 1, 4, 0, 0, 0)
    );
    // a/n, a-b/n and lists.
    assert_eq!(
        next("0 5/20 * * * *", t(2026, 1, 1, 0, 6, 0)),
        t(2026, 1, 1, 0, 25, 0)
    );
    assert_eq!(
        next("0 10-40/15 * * * *", t(2026, 1, 1, 0, 26, 0)),
        t(2026, 1, 1, 0, 40, 0)
    );
    assert_eq!(
        next("0 0 1,13 * * *", t(2026, 1, 1, 2, 0, 0)),
        t(2026, 1, 1, 13, 0, 0)
    );
    // TimeSpan schedules.
    assert_eq!(
        next("00:10:00", t(2026, 1, 1, 0, 0, 0)),
        t(2026, 1, 1, 0, 10, 0)
    );
    assert_eq!(
        next("1.00:00:00", t(2026, 1, 1, 0, 0, 0)),
        t(2026, 1, 2, 0, 0, 0)
    );
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
    assert!(
        Schedule::parse("*/30 * * * * *")
            .unwrap()
            .fires_more_than_once_a_minute(now)
    );
    assert!(
        Schedule::parse("0,1 * * * * *")
            .unwrap()
            .fires_more_than_once_a_minute(now)
    );
    assert!(
        !Schedule::parse("0 * * * * *")
            .unwrap()
            .fires_more_than_once_a_minute(now)
    );
    assert!(
        !Schedule::parse("0 */5 * * * *")
            .unwrap()
            .fires_more_than_once_a_minute(now)
    );
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
    assert_eq!(
        startup_run(Some(&past), true, false, now),
        StartupRun::PastDue
    );
    // Past due wins over runOnStartup (one run, IsPastDue true).
    assert_eq!(
        startup_run(Some(&past), true, true, now),
        StartupRun::PastDue
    );
    assert_eq!(
        startup_run(Some(&future), true, true, now),
        StartupRun::OnStartup
    );
    assert_eq!(
        startup_run(Some(&future), true, false, now),
        StartupRun::None
    );
    assert_eq!(startup_run(None, true, false, now), StartupRun::None);
    // Without monitoring there is no past due.
    assert_eq!(
        startup_run(Some(&past), false, false, now),
        StartupRun::None
    );
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

fn calls_of(c: &Calls) -> Vec<Value> {
    c.lock()
        .unwrap()
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect()
}

#[tokio::test]
async fn first_run_payload_and_status_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(VirtualClock::new(t(2026, 1, 10, 12, 2, 30)));
    let (inv, calls) = recording_invoker(None);
    let timer = Arc::new(Timer::new(
        spec(dir.path(), "0 */5 * * * *", false),
        clock.clone(),
        inv,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(timer.clone().run(stop_rx));
    wait_for("the initial status", || timer.status().is_some()).await;
    assert!(calls.lock().unwrap().is_empty());
    clock.set(t(2026, 1, 10, 12, 5, 0) + chrono::Duration::nanoseconds(20_471_100));
    wait_for("the first run", || calls.lock().unwrap().len() == 1).await;
    let body = calls.lock().unwrap()[0].clone();
    let guid = calls_of(&calls)[0]["Metadata"]["sys"]["RandGuid"]
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
    wait_for("the status update", || {
        timer
            .status()
            .is_some_and(|s| s.next == t(2026, 1, 10, 12, 10, 0))
    })
    .await;
    let stored = std::fs::read_to_string(dir.path().join("timers/probe/status")).unwrap();
    assert_eq!(
        stored,
        r#"{"Last":"2026-01-10T12:05:00.0204711+00:00","Next":"2026-01-10T12:10:00+00:00","LastUpdated":"2026-01-10T12:05:00.0204711+00:00"}"#
    );
    // The second run reports the first one.
    clock.set(t(2026, 1, 10, 12, 10, 0));
    wait_for("the second run", || calls.lock().unwrap().len() == 2).await;
    let second = &calls_of(&calls)[1]["Data"]["timer"];
    assert_eq!(
        second["ScheduleStatus"]["Last"],
        "2026-01-10T12:05:00.0204711+00:00"
    );
    assert_eq!(
        second["ScheduleStatus"]["Next"],
        "2026-01-10T12:10:00+00:00"
    );
    stop_tx.send_replace(true);
    task.await.unwrap();
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
    let clock = Arc::new(VirtualClock::new(t(2026, 1, 10, 12, 2, 30)));
    let (inv, calls) = recording_invoker(None);
    let timer = Arc::new(Timer::new(
        spec(dir.path(), "0 */5 * * * *", true),
        clock.clone(),
        inv,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(timer.clone().run(stop_rx));
    wait_for("the past-due run", || calls.lock().unwrap().len() == 1).await;
    let first = &calls_of(&calls)[0]["Data"]["timer"];
    assert_eq!(first["IsPastDue"], true);
    assert_eq!(
        first["ScheduleStatus"]["Last"],
        "2026-01-03T12:00:00.0112345+00:00"
    );
    assert_eq!(first["ScheduleStatus"]["Next"], "2026-01-03T12:05:00+00:00");
    assert_eq!(
        first["ScheduleStatus"]["LastUpdated"],
        "2026-01-03T12:00:00+00:00"
    );
    wait_for("the status after the run", || {
        timer
            .status()
            .is_some_and(|s| s.last == t(2026, 1, 10, 12, 2, 30))
    })
    .await;
    // Only one run until the next occurrence.
    assert_eq!(calls.lock().unwrap().len(), 1);
    clock.set(t(2026, 1, 10, 12, 5, 0));
    wait_for("the next scheduled run", || {
        calls.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(calls_of(&calls)[1]["Data"]["timer"]["IsPastDue"], false);
    stop_tx.send_replace(true);
    task.await.unwrap();
}

#[tokio::test]
async fn run_on_startup_and_sub_minute_schedules_have_no_status() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(VirtualClock::new(t(2026, 1, 10, 12, 0, 10)));
    let (inv, calls) = recording_invoker(None);
    let timer = Arc::new(Timer::new(
        spec(dir.path(), "*/30 * * * * *", true),
        clock.clone(),
        inv,
    ));
    assert!(!timer.monitor);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(timer.clone().run(stop_rx));
    wait_for("the startup run", || calls.lock().unwrap().len() == 1).await;
    let first = calls_of(&calls)[0].clone();
    assert_eq!(first["Data"]["timer"]["ScheduleStatus"], Value::Null);
    assert_eq!(first["Data"]["timer"]["IsPastDue"], false);
    assert_eq!(
        first["Metadata"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["sys"]
    );
    clock.set(t(2026, 1, 10, 12, 0, 30));
    wait_for("the scheduled run", || calls.lock().unwrap().len() == 2).await;
    assert_eq!(
        calls_of(&calls)[1]["Data"]["timer"]["ScheduleStatus"],
        Value::Null
    );
    // No status file without monitoring.
    assert!(!dir.path().join("timers/probe/status").exists());
    stop_tx.send_replace(true);
    task.await.unwrap();
}

#[tokio::test]
async fn runs_never_overlap_and_missed_occurrences_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(VirtualClock::new(t(2026, 1, 10, 12, 0, 0)));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (inv, calls) = recording_invoker(Some(gate.clone()));
    let timer = Arc::new(Timer::new(
        spec(dir.path(), "0 * * * * *", false),
        clock.clone(),
        inv,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(timer.clone().run(stop_rx));
    wait_for("the initial status", || timer.status().is_some()).await;
    clock.set(t(2026, 1, 10, 12, 1, 0));
    wait_for("the first run", || calls.lock().unwrap().len() == 1).await;
    // While it runs, five more minutes pass and a manual run is requested.
    clock.set(t(2026, 1, 10, 12, 6, 30));
    let manual = tokio::spawn({
        let timer = timer.clone();
        async move { timer.run_once(false, "manual".into()).await }
    });
    tokio::task::yield_now().await;
    assert_eq!(calls.lock().unwrap().len(), 1);
    gate.add_permits(1);
    // The manual run goes after the first one; the scheduled loop does not catch up.
    wait_for("the manual run", || calls.lock().unwrap().len() == 2).await;
    gate.add_permits(1);
    assert!(manual.await.unwrap());
    wait_for("status after the manual run", || {
        timer
            .status()
            .is_some_and(|s| s.next == t(2026, 1, 10, 12, 7, 0))
    })
    .await;
    assert_eq!(calls.lock().unwrap().len(), 2);
    clock.set(t(2026, 1, 10, 12, 7, 0));
    gate.add_permits(1);
    wait_for("the next occurrence", || calls.lock().unwrap().len() == 3).await;
    assert_eq!(clock.now(), t(2026, 1, 10, 12, 7, 0));
    stop_tx.send_replace(true);
    gate.add_permits(10);
    task.await.unwrap();
}

#[tokio::test]
async fn admin_endpoint_runs_a_timer_now() {
    let app = app("echo-app");
    let h = start(&app, &[]).await;
    let c = client();
    let url = format!("{}/admin/functions/tick", h.base_url());
    let post = |key: Option<&str>, body: &str| {
        let mut r = c.post(&url).body(body.to_string());
        if let Some(k) = key {
            r = r.header("x-functions-key", k);
        }
        async move {
            let resp = r.send().await.unwrap();
            (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
        }
    };
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
    wait_for("the timer run", || {
        records(&app).iter().any(|r| r["uri"] == "/tick")
    })
    .await;
    let unknown = c
        .post(format!("{}/admin/functions/nope", h.base_url()))
        .header("x-functions-key", h.master_key())
        .body(r#"{"input":""}"#)
        .send()
        .await
        .unwrap();
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
    assert!(
        h.logs()
            .iter()
            .any(|l| l.text.starts_with("Executed 'Functions.tick' (Succeeded"))
    );
    h.shutdown().await;
}

#[tokio::test]
async fn host_timers_on_a_virtual_clock() {
    let app = app("json-app");
    let clock = Arc::new(VirtualClock::new(t(2026, 1, 10, 11, 0, 10)));
    let mut cfg = config(&app, &[]);
    cfg.clock = clock.clone();
    let h = func_emulator::host::Host::start(cfg).await.unwrap();
    // `tick` has runOnStartup.
    wait_for("the startup run", || {
        records(&app).iter().any(|r| r["uri"] == "/tick")
    })
    .await;
    clock.set(t(2026, 1, 10, 11, 0, 30));
    wait_for("the 30 s timer", || {
        records(&app).iter().any(|r| r["uri"] == "/fast")
    })
    .await;
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
    let clock = Arc::new(VirtualClock::new(t(2026, 1, 10, 12, 0, 10)));
    let mut cfg = config(&app, &[]);
    cfg.clock = clock.clone();
    let h = func_emulator::host::Host::start(cfg).await.unwrap();
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
        records(&app).iter().any(|r| r["uri"] == "/probe")
    })
    .await;
    // The handler sees the setting too, as it would in Azure.
    wait_for("the handler's environment", || {
        h.logs()
            .iter()
            .any(|l| l.text.starts_with("echo-handler env "))
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
