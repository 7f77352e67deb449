//! `burst-handler`: the Azure Functions custom handler. Port from `FUNCTIONS_CUSTOMHANDLER_PORT`.

use burst_functions::settings::{ConfigError, Get};
use burst_functions::telemetry::{self, Flush};
use burst_functions::{azure, wiring};
use burst_settings::Settings;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    // JSON logs, and OpenTelemetry export when OTEL_EXPORTER_OTLP_*ENDPOINT is set.
    let telemetry = match telemetry::init("burst-handler", Flush::AtShutdown) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot start: bad configuration");
            return ExitCode::from(2);
        }
    };
    let code = run().await;
    // What is still queued is exported before the process ends (bounded; blocking, so off the
    // async threads).
    if telemetry.enabled() {
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    }
    code
}

async fn run() -> ExitCode {
    let get = |name: &str| std::env::var(name).ok();
    let deps = match wiring::from_settings(&get).await {
        Ok(d) => Arc::new(d),
        Err(e) => {
            // A configuration error: say which setting, exit non-zero so the host reports it.
            tracing::error!(error = %e, "cannot start: bad configuration");
            return ExitCode::from(2);
        }
    };
    let (port, bind_all, limits) = match edge_settings(&get) {
        Ok(edge) => edge,
        Err(e) => {
            tracing::error!(error = %e, "cannot start: bad configuration");
            return ExitCode::from(2);
        }
    };
    // The host connects to 127.0.0.1; BURST_BIND_ALL=1 listens on every interface (containers).
    let ip = if bind_all {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    let listener = match tokio::net::TcpListener::bind(SocketAddr::new(ip, port)).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, port, "cannot listen");
            return ExitCode::from(1);
        }
    };
    tracing::info!(port, sites = ?deps.settings.sites, "burst-handler ready");
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
        }
    };
    match azure::serve(listener, azure::router(deps), limits, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::from(1)
        }
    }
}

/// The port (`FUNCTIONS_CUSTOMHANDLER_PORT`, set by the host), `BURST_BIND_ALL`, and the
/// edge's limits (`BURST_MAX_CONNECTIONS`, `BURST_HEADER_TIMEOUT_MS`; defaults from
/// [`azure::Limits`]).
fn edge_settings(get: Get<'_>) -> Result<(u16, bool, azure::Limits), ConfigError> {
    let settings = Settings::new(get);
    let defaults = azure::Limits::default();
    let port = settings.integer("FUNCTIONS_CUSTOMHANDLER_PORT", 8080, 1..=u16::MAX)?;
    let bind_all = settings.boolean("BURST_BIND_ALL", false)?;
    let limits = azure::Limits {
        max_connections: settings.integer(
            "BURST_MAX_CONNECTIONS",
            defaults.max_connections,
            1..=1_000_000,
        )?,
        header_timeout: settings.millis(
            "BURST_HEADER_TIMEOUT_MS",
            defaults.header_timeout.as_millis() as u64,
            1..=600_000,
        )?,
    };
    Ok((port, bind_all, limits))
}
