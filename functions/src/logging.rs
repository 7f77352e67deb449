//! Logs as JSON lines on stdout: the Functions host logs every stderr line as an error.
//!
//! The JSON layer writes events only: spans (the engine's, for OpenTelemetry) never show in
//! the log lines, and without an OpenTelemetry layer no span is even created.

use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// A layer beside the JSON logs (the OpenTelemetry one), with its own filter.
pub type ExtraLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the JSON subscriber; the filter comes from `BURST_LOG` (default `info`).
pub fn init() {
    init_with(None);
}

/// Installs the JSON subscriber and `extra` beside it (`crate::telemetry`). `BURST_LOG` filters
/// the JSON lines only; `extra` brings its own filter.
pub fn init_with(extra: Option<ExtraLayer>) {
    let filter = std::env::var("BURST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(std::io::stdout)
        .with_current_span(false)
        .with_span_list(false)
        .with_filter(filter.and(filter_fn(|meta| meta.is_event())));
    let _ = tracing_subscriber::registry()
        .with(extra)
        .with(json)
        .try_init();
}
