//! The agent's side of a test site: a temp dir with a spool and an empty config file, the
//! agent's settings as `BURST_AGENT_*` variables, running the real `burst-agent` with them,
//! and a NOTIFYCMD wrapper that gives upsmon's hook the same settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::nut::files::sh_quote;
use crate::nut::{NutOptions, NutSim, scenario};
use crate::{json_files, set_executable};

/// A temp dir with a spool and an (empty) config file, and the agent's settings for it.
/// Tests give every setting through the environment; a test may change any with [`set`].
///
/// [`set`]: AgentSetup::set
#[derive(Debug)]
pub struct AgentSetup {
    pub tmp: tempfile::TempDir,
    /// The `burst-agent` binary to run.
    pub binary: PathBuf,
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

impl AgentSetup {
    /// Settings for site `site_id` posting to `base_url`, with budgets and timeouts short
    /// enough for tests, no Kubernetes view and debug logs. The signing key is the caller's
    /// (`BURST_AGENT_ED25519_KEY_FILE` or the HS256 settings).
    pub fn new(
        tmp: tempfile::TempDir,
        binary: PathBuf,
        site_id: &str,
        function_key: &str,
        base_url: &str,
    ) -> AgentSetup {
        let config = tmp.path().join("agent.toml");
        std::fs::write(
            &config,
            "# settings come from BURST_AGENT_* in these tests\n",
        )
        .expect("config");
        let spool = tmp.path().join("spool");
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("BURST_AGENT_SITE_ID", site_id.to_string()),
            ("BURST_AGENT_BASE_URL", base_url.to_string()),
            ("BURST_AGENT_FUNCTION_KEY", function_key.to_string()),
            ("BURST_AGENT_SPOOL_DIR", spool.display().to_string()),
            ("BURST_AGENT_NOTIFY_BUDGET_MS", "3000".to_string()),
            ("BURST_AGENT_HEARTBEAT_BUDGET_MS", "6000".to_string()),
            ("BURST_AGENT_HTTP_TIMEOUT_MS", "2000".to_string()),
            ("BURST_AGENT_UPSD_TIMEOUT_MS", "1500".to_string()),
            ("BURST_AGENT_KUBE_SOURCE", "none".to_string()),
            // One beat per heartbeat run (the faster beats on battery are tested where wanted).
            ("BURST_AGENT_ON_BATTERY_INTERVAL_MS", "0".to_string()),
            ("BURST_AGENT_LOG", "debug".to_string()),
        ] {
            env.insert(k.to_string(), v);
        }
        AgentSetup {
            tmp,
            binary,
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

    /// Events waiting in the agent's spool (not temp files, not `rejected/`).
    pub fn spooled(&self) -> Vec<PathBuf> {
        json_files(&self.spool_dir())
    }

    /// Events the function refused for good.
    pub fn rejected(&self) -> Vec<PathBuf> {
        json_files(&self.spool_dir().join("rejected"))
    }

    /// `burst-agent --config <empty file> ARGS` with only PATH and these settings (plus
    /// `extra`), no stdin, killed when dropped; the caller picks stdout and stderr.
    pub fn command(&self, args: &[&str], extra: &[(&str, &str)]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env)
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `burst-agent --config <empty file> ARGS` with only PATH and these settings (plus
    /// `extra`); a run over `limit` fails the test (and is killed).
    pub async fn agent(&self, args: &[&str], extra: &[(&str, &str)], limit: Duration) -> Run {
        let started = Instant::now();
        let child = self
            .command(args, extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run burst-agent");
        let out = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("burst-agent {args:?} ran over {limit:?}"))
            .expect("burst-agent output");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// A NOTIFYCMD wrapper script: exports these settings and execs `burst-agent notify`.
    /// upsmon gives the hook only its own environment, so this is how a test,
    /// or a site, gives the hook its settings without a config file.
    pub fn write_hook(&self) -> PathBuf {
        let mut s = String::from("#!/bin/sh\n# NOTIFYCMD wrapper for tests\n");
        for (k, v) in &self.env {
            s.push_str(&format!("export {k}='{v}'\n"));
        }
        s.push_str(&format!(
            "exec '{}' --config '{}' notify \"$@\"\n",
            self.binary.display(),
            self.config.display()
        ));
        let path = self.tmp.path().join("notify-hook.sh");
        std::fs::write(&path, s).expect("write hook");
        set_executable(&path);
        path
    }

    /// A real NUT stack in `<tmp>/nut` playing `scripts/nut/<scenario_name>`, whose upsmon
    /// calls this agent (through [`write_hook`](AgentSetup::write_hook)) as its NOTIFYCMD
    /// command; `options` set the rest (its NOTIFYCMD command is replaced).
    pub async fn start_nut(&self, scenario_name: &str, options: NutOptions) -> NutSim {
        let hook = self.write_hook();
        let hook = hook.to_str().expect("hook path is UTF-8");
        let dir = self.tmp.path().join("nut");
        NutSim::start(
            &dir,
            &scenario(scenario_name),
            options.notify_cmd(&sh_quote(hook)),
        )
        .await
    }

    /// [`start_nut`](Self::start_nut) on line (`hold-ol.seq`), then upsd gone for 10 s: upsmon
    /// reports COMMBAD, then NOCOMM, then COMMOK. Returns once COMMOK is notified.
    pub async fn start_nut_and_lose_upsd_for_10_s(&self) -> NutSim {
        let sim = self
            .start_nut("hold-ol.seq", NutOptions::lasting(75).nocommwarn_s(3))
            .await;
        sim.stop_upsd_for(Duration::from_secs(10)).await;
        sim.expect_notify("COMMOK", 1, Duration::from_secs(30))
            .await;
        sim
    }
}
