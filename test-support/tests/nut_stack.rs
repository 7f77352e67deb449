//! The test NUT stack against the real daemons: it comes up on loopback, plays its scenario,
//! records every NOTIFYCMD call and runs the test's command, takes SET VAR, loses and regains
//! upsd and the driver, and leaves no daemon behind (dropped, or at the end of its lifetime).
//! The `nut-stack` binary does the same for scripts.
//!
//! Needs root and the NUT daemons: without them these tests skip with a notice, or fail when
//! `CI` is set.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use burst_test_support::nut::{Daemon, NutOptions, NutSim, nut_available, scenario};
use tokio::io::AsyncBufReadExt;

/// Is `pid` a live process (not a zombie)?
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn pids(sim: &NutSim) -> Vec<u32> {
    Daemon::ALL
        .iter()
        .map(|d| sim.pid(*d).unwrap_or_else(|| panic!("{d:?} has no PID")))
        .collect()
}

/// On line, on battery after 1 s, then holds.
fn write_scenario(dir: &Path) -> PathBuf {
    let path = dir.join("cut.seq");
    std::fs::write(
        &path,
        "ups.status: OL\nbattery.charge: 100\nTIMER 1\nups.status: OB DISCHRG\nbattery.charge: 70\nTIMER 86400\n",
    )
    .expect("write scenario");
    path
}

async fn port_refuses(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plays_the_scenario_records_notifies_and_stops_every_daemon_on_drop() {
    if !nut_available("plays_the_scenario_records_notifies_and_stops_every_daemon_on_drop") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let messages = tmp.path().join("messages");
    let command = format!(
        "sh -c 'echo \"$NOTIFYTYPE $1\" >> {}' hook",
        messages.display()
    );
    let sim = NutSim::start(
        &tmp.path().join("nut"),
        &write_scenario(tmp.path()),
        NutOptions::lasting(60).notify_cmd(&command),
    )
    .await;
    let started = pids(&sim);
    assert!(started.iter().all(|p| alive(*p)), "{started:?}");
    assert_eq!(sim.get_var("ups.model").await, "Dummy UPS");
    assert_eq!(sim.get_var("driver.name").await, "dummy-ups");

    sim.expect_notify("ONBATT", 1, Duration::from_secs(20))
        .await;
    let calls = sim.notifies().await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].upsname, sim.upsname());
    assert_eq!(sim.upsname(), format!("dummy@127.0.0.1:{}", sim.port));
    // Scenario time 0 is "upsmon watches": the cut comes about a second later (dummy-ups
    // and upsmon each poll once a second).
    assert!(
        calls[0].t_rel > 0.5 && calls[0].t_rel < 6.0,
        "ONBATT at {} s",
        calls[0].t_rel
    );
    assert_eq!(sim.get_var("battery.charge").await, "70");

    // Power back through upsd; held, since the scenario is in its long TIMER.
    sim.set_var("ups.status", "OL CHRG").await;
    sim.expect_notify("ONLINE", 1, Duration::from_secs(15))
        .await;
    assert_eq!(sim.get_var("ups.status").await, "OL CHRG");

    // The test's command got upsmon's message and environment, once per call.
    let end = Instant::now() + Duration::from_secs(5);
    let got = loop {
        let got = std::fs::read_to_string(&messages).unwrap_or_default();
        if got.lines().count() >= 2 || Instant::now() > end {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ups = sim.upsname();
    assert_eq!(
        got,
        format!("ONBATT UPS {ups} on battery\nONLINE UPS {ups} on line power\n"),
        "{}",
        sim.log("notify-cmd.log")
    );

    // upsmon wrote its PID file into the stack's own run/ (its private /run/nut), never into
    // the machine's.
    let upsmon = sim.pid(Daemon::Upsmon).expect("upsmon pid");
    let own = std::fs::read_to_string(sim.dir.join("run/upsmon.pid")).unwrap_or_default();
    assert_eq!(own.trim(), upsmon.to_string());
    let machine = std::fs::read_to_string("/run/nut/upsmon.pid").unwrap_or_default();
    assert_ne!(machine.trim(), upsmon.to_string());
    assert!(
        sim.log("shutdowncmd.log").is_empty(),
        "upsmon never shuts down"
    );

    let port = sim.port;
    drop(sim);
    for p in &started {
        assert!(!alive(*p), "pid {p} still runs after the drop");
    }
    assert!(port_refuses(port).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsd_gone_and_driver_frozen_are_what_upsmon_and_upsd_report() {
    if !nut_available("upsd_gone_and_driver_frozen_are_what_upsmon_and_upsd_report") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let sim = NutSim::start(
        &tmp.path().join("nut"),
        &scenario("hold-ol.seq"),
        NutOptions::lasting(90).maxage_s(2).nocommwarn_s(3),
    )
    .await;
    assert_eq!(sim.get_var("ups.status").await, "OL");

    // The driver frozen: upsd says its data is stale once MAXAGE has passed.
    sim.freeze_driver();
    let end = Instant::now() + Duration::from_secs(15);
    let stale = loop {
        match sim.info().get_var("ups.status").await {
            Err(e) => break e.to_string(),
            Ok(_) => {
                assert!(Instant::now() < end, "upsd never called the data stale");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    assert!(stale.contains("ERR DATA-STALE"), "{stale}");
    sim.thaw_driver();
    let end = Instant::now() + Duration::from_secs(15);
    while sim.info().get_var("ups.status").await.is_err() {
        assert!(
            Instant::now() < end,
            "the thawed driver's data never came back"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // upsd gone for 6 s: COMMBAD, NOCOMM (after 3 s), then COMMOK once it is back.
    let old_upsd = sim.pid(Daemon::Upsd).expect("upsd pid");
    sim.stop_upsd_for(Duration::from_secs(6)).await;
    assert!(!alive(old_upsd));
    let new_upsd = sim.pid(Daemon::Upsd).expect("upsd runs again");
    assert_ne!(new_upsd, old_upsd);
    sim.expect_notify("COMMOK", 1, Duration::from_secs(30))
        .await;
    let types: Vec<String> = sim
        .notifies()
        .await
        .into_iter()
        .map(|c| c.notifytype)
        .collect();
    assert_eq!(
        types.first().map(String::as_str),
        Some("COMMBAD"),
        "{types:?}"
    );
    assert!(types.iter().any(|t| t == "NOCOMM"), "{types:?}");
    assert_eq!(
        types.last().map(String::as_str),
        Some("COMMOK"),
        "{types:?}"
    );

    // The driver stopped by its PID: upsd says so.
    sim.stop_daemon(Daemon::Driver).await;
    assert_eq!(sim.pid(Daemon::Driver), None);
    let end = Instant::now() + Duration::from_secs(15);
    let gone = loop {
        match sim.info().get_var("ups.status").await {
            Err(e) if e.to_string().contains("DRIVER-NOT-CONNECTED") => break e.to_string(),
            _ => {
                assert!(Instant::now() < end, "upsd never missed the driver");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    assert!(gone.contains("GET VAR dummy ups.status"), "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifetime_stops_the_stack_by_itself() {
    if !nut_available("the_lifetime_stops_the_stack_by_itself") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let sim = NutSim::start(
        &tmp.path().join("nut"),
        &scenario("hold-ol.seq"),
        NutOptions::lasting(10),
    )
    .await;
    let started = pids(&sim);
    let end = Instant::now() + Duration::from_secs(25);
    while !sim.expired() {
        assert!(Instant::now() < end, "the lifetime never ran out");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for p in &started {
        assert!(!alive(*p), "pid {p} outlived the stack");
    }
    assert!(Daemon::ALL.iter().all(|d| sim.pid(*d).is_none()));
    assert!(port_refuses(sim.port).await);
    assert!(sim.log("lifetime.log").contains("every daemon stopped"));
}

const NUT_STACK: &str = env!("CARGO_BIN_EXE_nut-stack");

async fn nut_stack(args: &[&str]) -> std::process::Output {
    tokio::time::timeout(
        Duration::from_secs(40),
        tokio::process::Command::new(NUT_STACK)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("nut-stack ran over 40 s")
    .expect("run nut-stack")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nut_stack_binary_runs_a_stack_for_scripts() {
    if !nut_available("the_nut_stack_binary_runs_a_stack_for_scripts") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("nut");
    let dir_s = dir.to_str().expect("UTF-8 path");
    let hold = scenario("hold-ol.seq");
    let mut child = tokio::process::Command::new(NUT_STACK)
        .args(["run", dir_s, hold.to_str().expect("UTF-8 path")])
        .args(["--max-seconds", "60", "--nocommwarn", "4"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start nut-stack");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(40), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l == "ready" {
                return true;
            }
            printed.push(l);
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "{printed:?}");
    let pids_line = printed
        .iter()
        .find(|l| l.trim_start().starts_with("pids"))
        .expect("a pids line");
    let daemon_pids: Vec<u32> = pids_line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(daemon_pids.len(), 3, "{pids_line}");
    let env = std::fs::read_to_string(dir.join("stack.env")).expect("stack.env");
    assert!(env.contains("UPSNAME=dummy@127.0.0.1:"), "{env}");
    assert!(
        env.contains(&format!("UPSMON_CONF={}/etc/upsmon.conf", dir.display())),
        "{env}"
    );
    assert!(
        printed.iter().any(|l| l.contains("upsmon.conf")),
        "{printed:?}"
    );

    let set = nut_stack(&["set", dir_s, "ups.status", "OB DISCHRG"]).await;
    assert!(set.status.success(), "{set:?}");
    let wait = nut_stack(&["wait", dir_s, "ONBATT", "20"]).await;
    assert!(wait.status.success(), "{wait:?}");
    let get = nut_stack(&["get", dir_s, "ups.status"]).await;
    assert_eq!(
        String::from_utf8_lossy(&get.stdout),
        "OB DISCHRG\n",
        "{get:?}"
    );
    // A type that never comes: exit 1, naming what came.
    let never = nut_stack(&["wait", dir_s, "LOWBATT", "1"]).await;
    assert_eq!(never.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&never.stderr).contains("ONBATT"),
        "{never:?}"
    );
    let bad = nut_stack(&["get", tmp.path().to_str().expect("UTF-8"), "ups.status"]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("stack.env"),
        "{bad:?}"
    );

    // SIGTERM to the binary's PID: it stops its daemons and exits 0.
    let pid = child.id().expect("pid").to_string();
    let term = std::process::Command::new("kill")
        .args(["-s", "TERM", &pid])
        .status()
        .expect("kill");
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("nut-stack stopped within 30 s")
        .expect("wait");
    assert!(status.success(), "{status:?}");
    for p in daemon_pids {
        assert!(!alive(p), "pid {p} outlived nut-stack");
    }
}
