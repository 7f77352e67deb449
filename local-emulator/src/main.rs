//! `func-emulator drill SCENARIO... [--virtual] [--json]` (CONTRACT.md).

use clap::{Parser, Subcommand};
use func_emulator::drill::simulated;
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
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Run on a virtual clock against the decision core with simulated adapters.
        #[arg(long = "virtual")]
        virtual_time: bool,
        /// One JSON object per line instead of the readable timeline.
        #[arg(long)]
        json: bool,
    },
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

fn drill(paths: &[PathBuf], virtual_time: bool, json: bool) -> ExitCode {
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
    if !virtual_time {
        eprintln!(
            "func-emulator: real-time drills need the function app (burst-handler), which this build does not have yet; use --virtual"
        );
        return ExitCode::from(2);
    }
    let mut passed = 0;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for s in &scenarios {
        let run = simulated::run(s);
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
            scenarios,
            virtual_time,
            json,
        } => drill(&scenarios, virtual_time, json),
    }
}
