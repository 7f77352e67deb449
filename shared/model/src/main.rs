//! `burst-model [--depth N] [--threads N] [--no-fsd]`: a bounded exhaustive check of the
//! decision core over every path of at most N inputs. Prints the states explored, the depth
//! reached, the time and any counterexample as a drill scenario (TOML); exits 1 if a property
//! fails.

use burst_model::{BurstModel, check, test_policy};
use std::process::ExitCode;

const USAGE: &str = "usage: burst-model [--depth N] [--threads N] [--no-fsd]";

fn main() -> ExitCode {
    let mut depth = 6;
    let mut threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut fsd = true;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> Option<usize> {
            let n = args.next().and_then(|v| v.parse().ok());
            if n.is_none() {
                eprintln!("{what} needs a number\n{USAGE}");
            }
            n
        };
        match arg.as_str() {
            "--depth" => match number("--depth") {
                Some(n) => depth = n,
                None => return ExitCode::from(2),
            },
            "--threads" => match number("--threads") {
                Some(n) => threads = n.max(1),
                None => return ExitCode::from(2),
            },
            "--no-fsd" => fsd = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }

    let model = BurstModel::new(test_policy(), fsd, depth);
    println!(
        "checking burst_core::step on every path of up to {depth} inputs, {threads} thread(s), time steps {:?} s, FSD {}",
        model.steps,
        if fsd { "on" } else { "off" }
    );
    let r = check(model, threads);
    println!(
        "unique states {}, states generated {}, max depth {} (inputs {}), time {:.1} s",
        r.unique_states,
        r.states,
        r.max_depth,
        r.max_depth.saturating_sub(1),
        r.elapsed.as_secs_f64()
    );
    for name in &r.not_found {
        println!("no example within the bound for: {name}");
    }
    if r.failures.is_empty() {
        println!("all properties hold");
        return ExitCode::SUCCESS;
    }
    for (name, toml) in &r.failures {
        println!("\nPROPERTY FAILED: {name}\n{toml}");
    }
    ExitCode::FAILURE
}
