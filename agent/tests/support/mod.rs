//! Shared test support: the receiver (a checking stand-in for the function), a fake upsd, a
//! delaying proxy (a slow function), a small tmpfs for disk-full tests, and
//! a harness that runs the real `burst-agent` binary against them. The NUT stack and the
//! agent's setup (settings, spool, NOTIFYCMD wrapper) come from `burst-test-support`, shared
//! with the end-to-end tests.
#![allow(dead_code)]

pub mod fake_upsd;
pub mod proxy;
pub mod receiver;
pub mod tmpfs;

use std::path::PathBuf;
use std::time::Duration;

pub use burst_test_support::agent::{AgentSetup, Run};
use receiver::{Receiver, ReceiverConfig, Verify};

pub const SITE: &str = "home-lab";
pub const FUNCTION_KEY: &str = "test-function-key";
pub const AGENT: &str = env!("CARGO_BIN_EXE_burst-agent");

/// Bound on one agent run: well over every budget the tests set, so only a hang hits it.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The agent's setup (see [`AgentSetup`]) pointed at a receiver.
pub struct Harness {
    pub setup: AgentSetup,
    pub receiver: Receiver,
}

/// A harness is its agent's setup plus the receiver: `h.tmp`, `h.env`, `h.spooled()`,
/// `h.write_hook()` read as they say.
impl std::ops::Deref for Harness {
    type Target = AgentSetup;
    fn deref(&self) -> &AgentSetup {
        &self.setup
    }
}

impl std::ops::DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut AgentSetup {
        &mut self.setup
    }
}

impl Harness {
    /// EdDSA, as recommended.
    pub async fn new() -> Harness {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pair = burst_agent::keygen::generate().expect("keygen");
        let key = tmp.path().join("ed25519.pem");
        std::fs::write(&key, &pair.private_pkcs8_pem).expect("write key");
        let receiver = Receiver::start(ReceiverConfig {
            site_id: SITE.into(),
            function_key: FUNCTION_KEY.into(),
            verify: Verify::EdDSA {
                public_pem: pair.public_spki_pem,
            },
        })
        .await;
        let mut h = Harness::with(tmp, receiver);
        h.set("BURST_AGENT_ED25519_KEY_FILE", &key.display().to_string());
        h
    }

    /// HS256 with a shared secret.
    pub async fn new_hs256(secret: &str) -> Harness {
        let tmp = tempfile::tempdir().expect("tempdir");
        let receiver = Receiver::start(ReceiverConfig {
            site_id: SITE.into(),
            function_key: FUNCTION_KEY.into(),
            verify: Verify::HS256 {
                secret: secret.into(),
            },
        })
        .await;
        let mut h = Harness::with(tmp, receiver);
        h.set("BURST_AGENT_ALGORITHM", "HS256");
        h.set("BURST_AGENT_HS256_SECRET", secret);
        h
    }

    fn with(tmp: tempfile::TempDir, receiver: Receiver) -> Harness {
        let setup = AgentSetup::new(
            tmp,
            PathBuf::from(AGENT),
            SITE,
            FUNCTION_KEY,
            &receiver.base_url(),
        );
        let mut h = Harness { setup, receiver };
        // One beat per heartbeat run, as before faster beats on battery existed: a test that
        // wants them sets BURST_AGENT_ON_BATTERY_INTERVAL_MS (and a short period) itself.
        h.set("BURST_AGENT_ON_BATTERY_INTERVAL_MS", "0");
        h
    }

    /// Runs `burst-agent --config <empty file> ARGS` with only PATH and the harness env (plus
    /// `extra`).
    pub async fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        self.agent(args, extra, RUN_LIMIT).await
    }

    /// `notify` as upsmon would call it.
    pub async fn notify(&self, notifytype: &str, upsname: &str) -> Run {
        let msg = format!("UPS {upsname}: {notifytype} (message is ignored; $(touch /tmp/never))");
        self.run(
            &["notify", &msg],
            &[("NOTIFYTYPE", notifytype), ("UPSNAME", upsname)],
        )
        .await
    }
}
