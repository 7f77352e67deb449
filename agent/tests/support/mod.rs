//! Shared test support: the receiver (a checking stand-in for the function), a fake upsd,
//! nut-sim control, and a harness that runs the real `burst-agent` binary against them.
#![allow(dead_code)]

pub mod fake_upsd;
pub mod nut;
pub mod receiver;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use receiver::{Receiver, ReceiverConfig, Verify};

pub const SITE: &str = "home-lab";
pub const FUNCTION_KEY: &str = "test-function-key";
pub const AGENT: &str = env!("CARGO_BIN_EXE_burst-agent");

/// A temp dir with keys, a spool, an (empty) config file, a receiver, and the agent's
/// environment pointing at them.
pub struct Harness {
    pub tmp: tempfile::TempDir,
    pub receiver: Receiver,
    pub env: BTreeMap<String, String>,
    pub config: PathBuf,
}

/// The outcome of one agent run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
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
        h.env.insert(
            "BURST_AGENT_ED25519_KEY_FILE".into(),
            key.display().to_string(),
        );
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
        h.env.insert("BURST_AGENT_ALGORITHM".into(), "HS256".into());
        h.env
            .insert("BURST_AGENT_HS256_SECRET".into(), secret.into());
        h
    }

    fn with(tmp: tempfile::TempDir, receiver: Receiver) -> Harness {
        let config = tmp.path().join("agent.toml");
        std::fs::write(
            &config,
            "# settings come from BURST_AGENT_* in these tests\n",
        )
        .expect("config");
        let spool = tmp.path().join("spool");
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("BURST_AGENT_SITE_ID", SITE.to_string()),
            ("BURST_AGENT_BASE_URL", receiver.base_url()),
            ("BURST_AGENT_FUNCTION_KEY", FUNCTION_KEY.to_string()),
            ("BURST_AGENT_SPOOL_DIR", spool.display().to_string()),
            ("BURST_AGENT_NOTIFY_BUDGET_MS", "3000".to_string()),
            ("BURST_AGENT_HEARTBEAT_BUDGET_MS", "6000".to_string()),
            ("BURST_AGENT_HTTP_TIMEOUT_MS", "2000".to_string()),
            ("BURST_AGENT_UPSD_TIMEOUT_MS", "1500".to_string()),
            ("BURST_AGENT_KUBE_SOURCE", "none".to_string()),
            ("BURST_AGENT_LOG", "debug".to_string()),
        ] {
            env.insert(k.to_string(), v);
        }
        Harness {
            tmp,
            receiver,
            env,
            config,
        }
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.env.insert(key.to_string(), value.to_string());
    }

    pub fn spool_dir(&self) -> PathBuf {
        PathBuf::from(&self.env["BURST_AGENT_SPOOL_DIR"])
    }

    /// `*.json` files waiting in the spool (not temp files, not rejected/).
    pub fn spooled(&self) -> Vec<PathBuf> {
        json_files(&self.spool_dir())
    }

    pub fn rejected(&self) -> Vec<PathBuf> {
        json_files(&self.spool_dir().join("rejected"))
    }

    /// Runs `burst-agent --config <empty file> ARGS` with only PATH and the harness env (plus
    /// `extra`).
    pub async fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let started = Instant::now();
        let out = tokio::process::Command::new(AGENT)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env)
            .envs(extra.iter().copied())
            .output()
            .await
            .expect("run burst-agent");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
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

    /// A NOTIFYCMD wrapper script: exports the harness env and execs `burst-agent notify`.
    /// upsmon (and nut-sim) pass only their own environment, so this is how a test, or a
    /// site, gives the hook its settings without a config file.
    pub fn write_hook(&self) -> PathBuf {
        let mut s = String::from("#!/bin/sh\n# test NOTIFYCMD wrapper\n");
        for (k, v) in &self.env {
            s.push_str(&format!("export {k}='{v}'\n"));
        }
        s.push_str(&format!(
            "exec '{AGENT}' --config '{}' notify \"$@\"\n",
            self.config.display()
        ));
        let path = self.tmp.path().join("notify-hook.sh");
        std::fs::write(&path, s).expect("write hook");
        set_executable(&path);
        path
    }
}

pub fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "json")
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Does a `ups.status` string carry `token`?
pub fn has_token(status: &str, token: &str) -> bool {
    status.split_whitespace().any(|t| t == token)
}
