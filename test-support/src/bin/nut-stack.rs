//! The test NUT stack of `burst-test-support` for scripts (`scripts/newcomer-test`).
//!
//! ```text
//! nut-stack run DIR SCENARIO [--max-seconds N] [--notify-cmd CMD] [--maxage N] [--nocommwarn N]
//!     starts dummy-ups, upsd and upsmon in DIR, prints their settings (also in DIR/stack.env)
//!     and a last line `ready`, then stays until SIGTERM/SIGINT or the lifetime (default 300 s)
//!     is over, and stops every daemon by PID
//! nut-stack set DIR VAR VALUE        sets a UPS variable through upsd
//! nut-stack get DIR VAR              prints a UPS variable as upsd serves it
//! nut-stack wait DIR NOTIFYTYPE SECS exit 0 once upsmon called NOTIFYCMD with NOTIFYTYPE
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use burst_test_support::nut::{Daemon, NutError, NutOptions, NutSim, StackInfo};

const USAGE: &str = "usage:
  nut-stack run DIR SCENARIO [--max-seconds N] [--notify-cmd CMD] [--maxage N] [--nocommwarn N]
  nut-stack set DIR VAR VALUE
  nut-stack get DIR VAR
  nut-stack wait DIR NOTIFYTYPE SECONDS";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nut-stack: {e}");
            ExitCode::from(2)
        }
    }
}

fn number(flag: &str, value: Option<&String>) -> Result<u32, NutError> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| NutError::new(format!("{flag} needs a whole number of seconds\n{USAGE}")))
}

async fn run(args: &[String]) -> Result<ExitCode, NutError> {
    let usage = || NutError::new(USAGE.to_string());
    let (command, rest) = args.split_first().ok_or_else(usage)?;
    match (command.as_str(), rest) {
        ("run", [dir, scenario, flags @ ..]) => {
            let options = parse_run_flags(flags)?;
            serve(Path::new(dir), Path::new(scenario), options).await
        }
        ("set", [dir, var, value]) => {
            StackInfo::load(Path::new(dir))?.set_var(var, value).await?;
            Ok(ExitCode::SUCCESS)
        }
        ("get", [dir, var]) => {
            println!("{}", StackInfo::load(Path::new(dir))?.get_var(var).await?);
            Ok(ExitCode::SUCCESS)
        }
        ("wait", [dir, notifytype, seconds]) => {
            let secs = number("SECONDS", Some(seconds))?;
            let info = StackInfo::load(Path::new(dir))?;
            if info
                .wait_notify(notifytype, 1, Duration::from_secs(u64::from(secs)))
                .await
            {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "nut-stack: no {notifytype} call within {secs} s; calls: {:?}",
                    info.notifies()
                        .iter()
                        .map(|c| c.notifytype.as_str())
                        .collect::<Vec<_>>()
                );
                Ok(ExitCode::FAILURE)
            }
        }
        _ => Err(usage()),
    }
}

fn parse_run_flags(flags: &[String]) -> Result<NutOptions, NutError> {
    let mut max_seconds = 300;
    let mut notify_cmd = None;
    let mut maxage = None;
    let mut nocommwarn = None;
    let mut it = flags.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--max-seconds" => max_seconds = number(flag, it.next())?,
            "--maxage" => maxage = Some(number(flag, it.next())?),
            "--nocommwarn" => nocommwarn = Some(number(flag, it.next())?),
            "--notify-cmd" => {
                notify_cmd = Some(
                    it.next()
                        .ok_or_else(|| {
                            NutError::new(format!("--notify-cmd needs a command\n{USAGE}"))
                        })?
                        .clone(),
                );
            }
            other => return Err(NutError::new(format!("unknown option {other}\n{USAGE}"))),
        }
    }
    let mut options = NutOptions::lasting(max_seconds);
    if let Some(cmd) = notify_cmd {
        options = options.notify_cmd(&cmd);
    }
    if let Some(s) = maxage {
        options = options.maxage_s(s);
    }
    if let Some(s) = nocommwarn {
        options = options.nocommwarn_s(s);
    }
    Ok(options)
}

async fn serve(dir: &Path, scenario: &Path, options: NutOptions) -> Result<ExitCode, NutError> {
    let sim = NutSim::try_start(dir, scenario, options).await?;
    let info = sim.info();
    let pid = |d: Daemon| {
        sim.pid(d)
            .map_or_else(|| "-".to_string(), |p| p.to_string())
    };
    println!("nut-stack: up in {}", info.dir().display());
    println!("  ups          {}", info.upsname());
    println!("  upsmon.conf  {}", info.upsmon_conf().display());
    println!(
        "  settings     {}",
        PathBuf::from(info.dir()).join("stack.env").display()
    );
    println!(
        "  pids         dummy-ups {} upsd {} upsmon {}",
        pid(Daemon::Driver),
        pid(Daemon::Upsd),
        pid(Daemon::Upsmon)
    );
    println!("ready");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| NutError::new(format!("SIGTERM handler: {e}")))?;
    let mut ticks = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = ticks.tick() => {
                if sim.expired() {
                    eprintln!("nut-stack: lifetime over, every daemon stopped");
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
    drop(sim);
    println!("nut-stack: stopped");
    Ok(ExitCode::SUCCESS)
}
