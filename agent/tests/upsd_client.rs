//! The upsd protocol client: against a real upsd (the test NUT stack) for replies and errors upsd really
//! produces, and against a tiny impostor for a connection dropped mid-reply and silence.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use burst_agent::upsd::{UpsName, UpsdClient, UpsdError, snapshot};
use burst_test_support::nut::{Daemon, NutOptions, NutSim, nut_available, scenario};
use support::fake_upsd::{Behaviour, FakeUpsd};

const T: Duration = Duration::from_secs(3);

#[tokio::test]
async fn dropped_connection_mid_reply_is_closed_not_a_hang() {
    let fake = FakeUpsd::start("ups", &[("ups.status", "OL")]).await;
    fake.behave(Behaviour::DropMidReply);
    let mut c = UpsdClient::connect(&fake.addr.to_string(), T)
        .await
        .unwrap();
    let err = c.list_var("ups").await.unwrap_err();
    assert!(matches!(err, UpsdError::Closed), "{err:?}");
    let mut c = UpsdClient::connect(&fake.addr.to_string(), T)
        .await
        .unwrap();
    let err = c.get_var("ups", "ups.status").await.unwrap_err();
    assert!(matches!(err, UpsdError::Closed), "{err:?}");
    assert!(err.is_commloss());
}

#[tokio::test]
async fn silence_is_a_timeout() {
    let fake = FakeUpsd::start("ups", &[("ups.status", "OL")]).await;
    fake.behave(Behaviour::Silent);
    let limit = Duration::from_millis(300);
    let mut c = UpsdClient::connect(&fake.addr.to_string(), limit)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = c.get_var("ups", "ups.status").await.unwrap_err();
    assert!(matches!(err, UpsdError::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn quoted_descriptions_are_unescaped_and_snapshot_tolerates_missing_battery_vars() {
    let fake = FakeUpsd::start("ups", &[("ups.status", "OL CHRG")]).await;
    let mut c = UpsdClient::connect(&fake.addr.to_string(), T)
        .await
        .unwrap();
    let list = c.list_ups().await.unwrap();
    assert_eq!(list["ups"], r#"fake "quoted" upsd"#);
    c.logout().await;
    let s = snapshot(&UpsName::parse(&fake.upsname("ups")).unwrap(), T)
        .await
        .unwrap();
    assert_eq!(s.status, "OL CHRG");
    assert_eq!((s.battery_charge, s.battery_runtime_s), (None, None));
}

#[tokio::test]
async fn connect_refused_is_a_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = UpsdClient::connect(&format!("127.0.0.1:{port}"), T)
        .await
        .unwrap_err();
    assert!(matches!(err, UpsdError::Connect { .. }), "{err:?}");
    assert!(err.is_commloss());
}

/// Real upsd: GET / LIST replies and every error the agent distinguishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_upsd_replies_and_errors() {
    if !nut_available("real_upsd_replies_and_errors") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sim = NutSim::start(
        &tmp.path().join("nut"),
        &scenario("outage.seq"),
        NutOptions::lasting(90).maxage_s(3),
    )
    .await;
    let addr = format!("127.0.0.1:{}", sim.port);

    // Normal replies, initial state of outage.seq.
    let mut c = UpsdClient::connect(&addr, T).await.unwrap();
    let status = c.get_var("dummy", "ups.status").await.unwrap();
    assert!(
        status.starts_with("OL") || status.starts_with("OB"),
        "{status}"
    );
    let vars = c.list_var("dummy").await.unwrap();
    assert!(vars.contains_key("battery.charge"), "{vars:?}");
    assert_eq!(vars["ups.model"], "Dummy 1500VA");
    assert_eq!(vars["driver.name"], "dummy-ups");
    let upses = c.list_ups().await.unwrap();
    assert_eq!(upses["dummy"], "hybrid-burst test UPS (dummy-ups)");

    // Errors on a live connection, which stays usable after each.
    let err = c.get_var("nosuchups", "ups.status").await.unwrap_err();
    assert!(matches!(err, UpsdError::UnknownUps), "{err:?}");
    let err = c.list_var("nosuchups").await.unwrap_err();
    assert!(matches!(err, UpsdError::UnknownUps), "{err:?}");
    let err = c.get_var("dummy", "no.such.var").await.unwrap_err();
    assert!(matches!(err, UpsdError::VarNotSupported), "{err:?}");
    assert!(c.get_var("dummy", "ups.status").await.is_ok());
    c.logout().await;

    let ups = UpsName::parse(&sim.upsname()).unwrap();
    let snap = snapshot(&ups, T).await.unwrap();
    assert!(
        snap.battery_charge.is_some() && snap.battery_runtime_s.is_some(),
        "{snap:?}"
    );

    // Frozen driver: upsd says DATA-STALE once MAXAGE (3 s) has passed.
    sim.freeze_driver();
    let mut stale = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Err(e) = snapshot(&ups, T).await {
            stale = Some(e);
            break;
        }
    }
    let stale = stale.expect("upsd never reported the frozen driver");
    assert!(matches!(stale, UpsdError::DataStale), "{stale:?}");
    assert!(stale.is_commloss());
    let mut c = UpsdClient::connect(&addr, T).await.unwrap();
    assert!(matches!(
        c.list_var("dummy").await.unwrap_err(),
        UpsdError::DataStale
    ));
    sim.thaw_driver();

    // Driver gone (the stack stops its dummy-ups by PID).
    sim.stop_daemon(Daemon::Driver).await;
    let mut gone = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        match snapshot(&ups, T).await {
            Err(UpsdError::DataStale) | Ok(_) => continue,
            Err(e) => {
                gone = Some(e);
                break;
            }
        }
    }
    let gone = gone.expect("upsd never reported the missing driver");
    assert!(matches!(gone, UpsdError::DriverNotConnected), "{gone:?}");
    assert!(gone.is_commloss());
}
