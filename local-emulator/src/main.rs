//! `func-emulator drill SCENARIO... [--virtual] [--json]` and
//! `func-emulator start [APP_DIR] [--port N] [--settings FILE] [--set NAME=VALUE] [--no-auth]
//! [--state-dir DIR] [--instances N]`.

use clap::{Parser, Subcommand};
use func_emulator::drill::realtime::{self, RealtimeOptions};
use func_emulator::drill::{report, simulated};
use func_emulator::scenario::Scenario;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "func-emulator",
    version,
    about = "hybrid-burst's local Functions host and drill runner"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run drill scenarios (TOML) and check their expectations. Exit 0 only if all hold.
    Drill {
        /// Scenario files, or folders of them.
        #[arg(required_unless_present = "swarm")]
        scenarios: Vec<PathBuf>,
        /// Run on a virtual clock: the engine with a simulated home and cloud as its adapters.
        #[arg(long = "virtual")]
        virtual_time: bool,
        /// Swarm: run N random scenarios on a virtual clock, checking the safety rules after
        /// every invocation; a failure prints its seed and a shrunk scenario file.
        #[arg(long, value_name = "N", conflicts_with_all = ["scenarios", "report"])]
        swarm: Option<usize>,
        /// The swarm's seed (default: from the clock, printed).
        #[arg(long, requires = "swarm")]
        seed: Option<u64>,
        /// One JSON object per line instead of the readable timeline.
        #[arg(long)]
        json: bool,
        /// Write a self-contained HTML page with a timeline chart (one per scenario).
        #[arg(long, value_name = "FILE.html")]
        report: Option<PathBuf>,
        /// Real-time drills: the function app folder.
        #[arg(long, default_value = "functions/app")]
        app: PathBuf,
        /// Real-time drills: the burst-handler executable (default: next to func-emulator).
        #[arg(long)]
        handler: Option<PathBuf>,
        /// Real-time drills: run this many times faster than the scenario's clock.
        #[arg(long)]
        speedup: Option<f64>,
        /// Real-time drills: print the host's and the handler's logs.
        #[arg(long)]
        verbose: bool,
    },
    /// Run a function app like the Azure Functions host (custom handlers).
    Start {
        /// The app folder (host.json + one folder per function).
        #[arg(default_value = ".")]
        app_dir: PathBuf,
        #[arg(long, default_value_t = 7071)]
        port: u16,
        /// A local.settings.json-style file (default: APP_DIR/local.settings.json if present).
        #[arg(long)]
        settings: Option<PathBuf>,
        /// An app setting, NAME=VALUE (repeatable; wins over the settings file).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Do not check keys (like Core Tools locally).
        #[arg(long)]
        no_auth: bool,
        /// Where timer status and the generated keys (keys.json, kept across restarts) live
        /// (default APP_DIR/.func-emulator).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Handler processes, like the instances the platform scales out to; invocations go to
        /// them in turn and their log lines are prefixed `[i] `.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
        instances: u16,
    },
}

#[allow(clippy::too_many_arguments)]
fn start(
    app_dir: PathBuf,
    port: u16,
    settings: Option<PathBuf>,
    set: Vec<String>,
    no_auth: bool,
    state_dir: Option<PathBuf>,
    instances: u16,
) -> ExitCode {
    use func_emulator::host::{Host, HostConfig, read_settings_file};
    let file = settings.or_else(|| {
        let p = app_dir.join("local.settings.json");
        p.is_file().then_some(p)
    });
    let mut config = HostConfig::new(app_dir);
    config.port = port;
    config.auth = !no_auth;
    config.state_dir = state_dir;
    config.print_logs = true;
    config.instances = usize::from(instances);
    if let Some(f) = file {
        match read_settings_file(&f) {
            Ok(s) => config.settings = s,
            Err(e) => {
                eprintln!("func-emulator: {e}");
                return ExitCode::from(2);
            }
        }
    }
    for kv in set {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                config.settings.insert(k.to_string(), v.to_string());
            }
            _ => {
                eprintln!("func-emulator: --set {kv:?}: expected NAME=VALUE");
                return ExitCode::from(2);
            }
        }
    }
    // One thread: the host only routes and copies bytes, and on a small machine it shares the
    // cores with the handler; a second worker mostly adds cross-thread wake-ups.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("func-emulator: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let handle = match Host::start(config).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("func-emulator: {e}");
                return ExitCode::from(2);
            }
        };
        // SIGINT (Ctrl-C) or SIGTERM: stop the handler too, then exit.
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut t) => {
                    t.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                handle.shutdown().await;
                ExitCode::SUCCESS
            }
            _ = term => {
                handle.shutdown().await;
                ExitCode::SUCCESS
            }
            _ = handle.stopped() => {
                eprintln!("func-emulator: the host stopped (see the errors above)");
                ExitCode::from(1)
            }
        }
    })
}

fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(format!(
                    "{}: no .toml scenarios in this folder",
                    p.display()
                ));
            }
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Options of `drill` beyond the scenario list.
#[derive(Debug)]
struct DrillOptions {
    report: Option<PathBuf>,
    app: PathBuf,
    handler: Option<PathBuf>,
    speedup: Option<f64>,
    verbose: bool,
}

/// `drill --swarm N [--seed S]`: exit 0 only if every rule held in every scenario.
fn swarm(count: usize, seed: Option<u64>) -> ExitCode {
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    println!("swarm: seed {seed}");
    let report = func_emulator::drill::swarm::run(count, seed, 3);
    for f in &report.failures {
        let v = &f.violation;
        println!(
            "\nFAILED scenario seed {} (rerun: func-emulator drill --swarm 1 --seed {}): {} at {} ({}); shrunk from {} to {} events:\n{}",
            f.seed,
            f.seed,
            v.rule,
            func_emulator::drill::record::clock(v.t_ms),
            v.detail,
            f.events_before,
            f.events_after,
            f.toml
        );
    }
    println!("{}", report.summary());
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn drill(paths: &[PathBuf], virtual_time: bool, json: bool, opts: &DrillOptions) -> ExitCode {
    let files = match scenario_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("func-emulator: {e}");
            return ExitCode::from(2);
        }
    };
    let mut scenarios = Vec::new();
    for f in &files {
        match Scenario::load(f) {
            Ok(s) => scenarios.push(s),
            Err(e) => {
                eprintln!("func-emulator: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = if virtual_time {
        None
    } else {
        match tokio::runtime::Runtime::new() {
            Ok(rt) => Some(rt),
            Err(e) => {
                eprintln!("func-emulator: {e}");
                return ExitCode::from(1);
            }
        }
    };
    let handler = opts.handler.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("burst-handler")))
            .unwrap_or_else(|| PathBuf::from("burst-handler"))
    });
    let rt_opts = RealtimeOptions {
        app_dir: opts.app.clone(),
        handler,
        speedup: opts.speedup,
        verbose: opts.verbose,
    };
    let mut passed = 0;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for s in &scenarios {
        let (run, samples) = match &runtime {
            None => (simulated::run(s), Vec::new()),
            Some(rt) => match rt.block_on(realtime::run(s, &rt_opts)) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("func-emulator: {}: {e}", s.name);
                    return ExitCode::from(1);
                }
            },
        };
        if let Some(path) = &opts.report {
            let path = if scenarios.len() == 1 {
                path.clone()
            } else {
                let stem = path
                    .file_stem()
                    .and_then(|x| x.to_str())
                    .unwrap_or("report");
                path.with_file_name(format!("{stem}-{}.html", s.name))
            };
            // The report's folder is created if missing (e.g. `target/` before the first build).
            let written = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(dir) => std::fs::create_dir_all(dir),
                None => Ok(()),
            }
            .and_then(|()| std::fs::write(&path, report::html(&run, &s.description, &samples)));
            if let Err(e) = written {
                eprintln!("func-emulator: {}: {e}", path.display());
                return ExitCode::from(1);
            }
        }
        passed += usize::from(run.summary.passed);
        let text = if json {
            run.json_lines().join("\n") + "\n"
        } else {
            run.text(&s.description) + "\n"
        };
        if out.write_all(text.as_bytes()).is_err() {
            return ExitCode::from(1);
        }
    }
    let failed = scenarios.len() - passed;
    if !json {
        let _ = writeln!(out, "drills: {passed} passed, {failed} failed");
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Drill {
            swarm: Some(count),
            seed,
            ..
        } => swarm(count, seed),
        Command::Drill {
            scenarios,
            virtual_time,
            json,
            report,
            app,
            handler,
            speedup,
            verbose,
            ..
        } => drill(
            &scenarios,
            virtual_time,
            json,
            &DrillOptions {
                report,
                app,
                handler,
                speedup,
                verbose,
            },
        ),
        Command::Start {
            app_dir,
            port,
            settings,
            set,
            no_auth,
            state_dir,
            instances,
        } => start(app_dir, port, settings, set, no_auth, state_dir, instances),
    }
}
