//! The product's token path end to end: `azure_identity`'s managed identity (which reads
//! `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` from the process environment, as in Azure
//! Functions) gets its token from the simulated identity endpoint, and the ARM client uses it.
//!
//! A test cannot change its own environment, so the test starts the sim, then runs itself again
//! as a child process with the sim's settings in the environment, as the local emulator does
//! for the handler.
#![allow(clippy::unwrap_used)]

use burst_arm::{ArmConfig, ArmScaleSet, Credential};
use burst_arm_sim::{self as sim, SimConfig};
use burst_core::ScaleSetProbe;
use burst_ports::Scaler;
use std::time::Duration;

const CHILD: &str = "BURST_TEST_IDENTITY_CHILD";
const TEST_NAME: &str = "managed_identity_from_the_environment_reaches_the_sim";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_identity_from_the_environment_reaches_the_sim() {
    if std::env::var_os(CHILD).is_some() {
        return in_child().await;
    }
    let sim = sim::start(SimConfig {
        initial_capacity: 2,
        boot_time: Duration::ZERO,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", TEST_NAME, "--nocapture"])
        .env(CHILD, "1");
    for (name, value) in sim.settings() {
        child.env(name, value);
    }
    let out = tokio::task::spawn_blocking(move || child.output())
        .await
        .unwrap()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("1 passed"), "the child ran the check: {log}");
    // One token request, in the App Service protocol the sim checks.
    assert_eq!(sim.tokens_issued(), 1);
    let token_request = sim
        .requests()
        .into_iter()
        .find(|r| r.is_token_request())
        .unwrap();
    assert_eq!(token_request.method, "GET");
    assert!(
        token_request.query.contains("api-version=2019-08-01"),
        "{}",
        token_request.query
    );
    assert!(
        token_request
            .query
            .contains("resource=https%3A%2F%2Fmanagement.azure.com"),
        "{}",
        token_request.query
    );
}

/// In the child: the settings come from the environment, like in the handler.
async fn in_child() {
    let get = |name: &str| std::env::var(name).ok();
    let config = ArmConfig::from_settings(&get).unwrap().unwrap();
    assert_eq!(
        config.credential,
        Credential::ManagedIdentity { client_id: None }
    );
    let credential = config.credential.build().unwrap();
    let arm = ArmScaleSet::new(config, credential).unwrap();
    assert_eq!(
        arm.observe().await,
        ScaleSetProbe::Seen {
            capacity: 2,
            running: 2
        }
    );
    // The second call uses the cached token.
    assert!(matches!(arm.observe().await, ScaleSetProbe::Seen { .. }));
}
