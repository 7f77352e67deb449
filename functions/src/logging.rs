//! Logs as JSON lines on stdout: the Functions host logs every stderr line as an error.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber; the filter comes from `BURST_LOG` (default `info`).
pub fn init() {
    let filter = std::env::var("BURST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_current_span(false)
        .try_init();
}
