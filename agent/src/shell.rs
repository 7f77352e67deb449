//! Running an operator's command (the fence and unfence commands): `sh -c`, a few extra
//! environment variables, and a time limit after which the command and everything it started
//! are killed.
//!
//! The command runs in a process group of its own (its PID is the group id), so a timeout
//! kills the whole group — `kubectl` under the `sh`, say — by that id, and nothing else. Its
//! output goes to the agent's stderr (the journal). The agent's own `BURST_AGENT_*` variables
//! (which may hold the function key or the HS256 secret) are not passed on.

use std::process::Stdio;
use std::time::Duration;

use crate::config::ENV_PREFIX;

/// How a command run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ran {
    /// Exit status 0.
    Success,
    /// Any other exit status, or killed by a signal.
    Failed(String),
    /// Still running after the limit: killed.
    TimedOut,
    /// Could not be started at all.
    NotStarted(String),
}

/// Runs `sh -c <command>` with `env` added, for at most `limit`.
pub async fn run(command: &str, env: &[(&str, String)], limit: Duration) -> Ran {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with(ENV_PREFIX)) {
            cmd.env_remove(name);
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Ran::NotStarted(e.to_string()),
    };
    let pid = child.id();
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ran::Success,
        Ok(Ok(status)) => Ran::Failed(status.to_string()),
        Ok(Err(e)) => Ran::Failed(format!("cannot wait for it: {e}")),
        Err(_) => {
            // The group first: the leader is not reaped yet, so its id cannot have been reused.
            if let Some(pid) = pid {
                kill_group(pid).await;
            }
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            Ran::TimedOut
        }
    }
}

/// SIGKILL to the process group `pgid` (safe Rust has no `killpg`; `sh`'s `kill` does it).
async fn kill_group(pgid: u32) {
    let killed = tokio::process::Command::new("sh")
        .args(["-c", "kill -s KILL -- \"-$1\"", "sh", &pgid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(Duration::from_secs(2), killed).await {
        Ok(Ok(status)) if status.success() => {}
        other => tracing::warn!(pgid, ?other, "could not kill the command's process group"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn exit_status_environment_and_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cmd = format!("echo \"$A $B\" > '{}'", out.display());
        let env = [("A", "one".to_string()), ("B", "two".to_string())];
        assert_eq!(run(&cmd, &env, Duration::from_secs(5)).await, Ran::Success);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "one two\n");

        assert!(matches!(
            run("exit 3", &[], Duration::from_secs(5)).await,
            Ran::Failed(s) if s.contains('3')
        ));

        // A grandchild in the background: the whole group goes on timeout.
        let pid_file = dir.path().join("pid");
        let cmd = format!("sleep 30 & echo $! > '{}'; wait", pid_file.display());
        let started = std::time::Instant::now();
        assert_eq!(
            run(&cmd, &[], Duration::from_millis(500)).await,
            Ran::TimedOut
        );
        assert!(started.elapsed() < Duration::from_secs(4));
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        // Gone, or a zombie waiting for a reaper (no PID 1 reaping in some containers). The
        // signal is delivered asynchronously: give a busy machine a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
            let Ok(stat) = stat else { break };
            let state = stat.rsplit(')').next().unwrap().split_whitespace().next();
            if state == Some("Z") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the grandchild still runs: {stat}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
