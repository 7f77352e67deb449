//! The `burst-agent` binary: argument parsing, configuration loading, logging to stderr, and
//! dispatch. What each command does is in `commands` (start reading there).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use burst_agent::commands::{self, EXIT_CONFIG};
use burst_agent::config::Config;
use burst_agent::deliver;
use clap::{Parser, Subcommand};
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(name = "burst-agent", version, about = "hybrid-burst on-prem agent")]
struct Cli {
    /// TOML config file [default: /etc/burst-agent.toml if it exists]; BURST_AGENT_* variables
    /// override it.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// NUT upsmon NOTIFYCMD: reads NOTIFYTYPE and UPSNAME, reports the event (spooled if the
    /// cloud is unreachable). The message argument is ignored.
    Notify {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        message: Vec<String>,
    },
    /// Flush the spool, then send the inside view (nodes, API, UPS) to /api/heartbeat.
    Heartbeat,
    /// Probe the home endpoint from here and send the result to /api/witness.
    Witness {
        /// Overrides witness_target: tcp://host:port, https://... or http://...
        #[arg(long)]
        target: Option<String>,
    },
    /// Send a signed TEST event with the live UPS status; print the answer and the round trip.
    Test {
        /// The UPS to read (name@host[:port]); default: the `ups` setting.
        #[arg(long)]
        ups: Option<String>,
    },
    /// Check every link from this host to the function (config, key, upsd, upsmon, the
    /// cluster view, each route with its key, the clock, the spool), one line each with the
    /// fix for every problem. Sends nothing that changes state. Exit 0 when nothing is broken.
    Doctor {
        /// upsmon's configuration, to check its NOTIFYCMD.
        #[arg(long, value_name = "PATH", default_value = burst_agent::doctor::DEFAULT_UPSMON_CONF)]
        upsmon_conf: PathBuf,
    },
    /// Print a new Ed25519 key pair (PKCS#8 private key, SPKI public key) as PEM.
    Keygen {
        /// Write the private key to this new file (mode 0600) and print only the public key.
        #[arg(long, value_name = "PATH")]
        private_key_out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Taken first: `at` of a notify is when upsmon called us.
    let at = chrono::Utc::now();
    let started = Instant::now();
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    init_logging(&env);

    if let Command::Keygen { private_key_out } = &cli.command {
        return ExitCode::from(commands::keygen(
            private_key_out.as_deref(),
            &mut std::io::stdout(),
        ));
    }

    if let Command::Doctor { upsmon_conf } = &cli.command {
        let options = burst_agent::doctor::Options {
            config_path: cli.config.clone(),
            upsmon_conf: upsmon_conf.clone(),
        };
        let Some(runtime) = runtime() else {
            return ExitCode::FAILURE;
        };
        return ExitCode::from(runtime.block_on(burst_agent::doctor::doctor(
            &options,
            &env,
            &mut std::io::stdout(),
        )));
    }

    let config = match Config::load(cli.config.as_deref(), &env) {
        Ok(c) => c,
        Err(e) if matches!(cli.command, Command::Notify { .. }) => {
            // An event must not be lost to a config typo: carry on with defaults and the
            // environment (spooled at worst).
            tracing::error!(error = %e, "configuration; ignoring the file for this event");
            Config::from_env(&env).unwrap_or_default()
        }
        Err(e) => {
            tracing::error!(error = %e, "configuration");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    tracing::debug!(?config, "configuration");

    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let code = runtime.block_on(async {
        match &cli.command {
            Command::Notify { .. } => {
                let notify_env = match deliver::NotifyEnv::from_env(&env) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!("{e}");
                        return EXIT_CONFIG;
                    }
                };
                // Within the notify budget, whatever happens (the guard is in `notify`).
                deliver::notify(&config, &notify_env, at, started).await
            }
            Command::Heartbeat => commands::heartbeat(&config, started).await,
            Command::Witness { target } => {
                commands::witness(&config, target.as_deref(), started).await
            }
            Command::Test { ups } => {
                commands::test_event(&config, ups.as_deref(), &mut std::io::stdout()).await
            }
            Command::Keygen { .. } | Command::Doctor { .. } => EXIT_CONFIG, // handled above
        }
    });
    ExitCode::from(code)
}

fn init_logging(env: &HashMap<String, String>) {
    let filter = env
        .get("BURST_AGENT_LOG")
        .cloned()
        .unwrap_or_else(|| "info,kube=warn,hyper=warn,rustls=warn".to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// The one-thread runtime every command runs on (logged when it cannot start).
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            None
        }
    }
}
