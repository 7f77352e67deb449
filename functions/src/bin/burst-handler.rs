//! `burst-handler`: the Azure Functions custom handler. Port from `FUNCTIONS_CUSTOMHANDLER_PORT`.

use burst_functions::{azure, logging, serve, wiring};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> ExitCode {
    logging::init();
    let get = |name: &str| std::env::var(name).ok();
    let deps = match wiring::from_settings(&get).await {
        Ok(d) => Arc::new(d),
        Err(e) => {
            // A configuration error: say which setting, exit non-zero so the host reports it.
            tracing::error!(error = %e, "cannot start: bad configuration");
            return ExitCode::from(2);
        }
    };
    let port = match get("FUNCTIONS_CUSTOMHANDLER_PORT").map(|p| p.parse::<u16>()) {
        Some(Ok(p)) => p,
        None => 8080,
        Some(Err(_)) => {
            tracing::error!("FUNCTIONS_CUSTOMHANDLER_PORT is not a port number");
            return ExitCode::from(2);
        }
    };
    // The host connects to 127.0.0.1; BURST_BIND_ALL=1 listens on every interface (containers).
    let ip = if get("BURST_BIND_ALL").as_deref() == Some("1") {
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
    let limits = match edge_limits(&get) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot start: bad configuration");
            return ExitCode::from(2);
        }
    };
    match serve::serve(listener, azure::router(deps), limits, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::from(1)
        }
    }
}

/// `BURST_MAX_CONNECTIONS` and `BURST_HEADER_TIMEOUT_MS`, defaults from [`serve::Limits`].
fn edge_limits(get: &dyn Fn(&str) -> Option<String>) -> Result<serve::Limits, String> {
    let mut l = serve::Limits::default();
    let num = |name: &str| -> Result<Option<u64>, String> {
        match get(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(format!("{name} must be a whole number > 0, got {v:?}")),
            },
        }
    };
    if let Some(n) = num("BURST_MAX_CONNECTIONS")? {
        l.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(ms) = num("BURST_HEADER_TIMEOUT_MS")? {
        l.header_timeout = Duration::from_millis(ms);
    }
    Ok(l)
}
