//! OpenTelemetry export: the engine's spans and a few metrics over OTLP/HTTP (protobuf) when the
//! standard `OTEL_EXPORTER_OTLP_*` settings ask for it, nothing otherwise. docs/telemetry.md
//! lists the settings, the spans, the metrics and what export costs.
//!
//! - **Off** (no `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//!   `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, or `OTEL_SDK_DISABLED=true`): no exporter, no
//!   background thread, the engine's spans are never even created (the JSON log layer does not
//!   want them), and [`invocation_done`] returns at once.
//! - **On**: `tracing-opentelemetry` turns the engine's spans (`invocation`, `load`, `step`,
//!   `save`, `action`) into OpenTelemetry spans and the log events inside them into span
//!   events; a batch span processor exports them from its own thread (a bounded queue: when it is
//!   full, spans are dropped, never waited for), and a periodic reader exports the metrics. A
//!   slow or dead collector costs the export thread its timeouts, never an invocation.
//! - **Flush**: the handler shuts the providers down (exporting what is queued) when it stops
//!   ([`Telemetry::shutdown`]); a Lambda function's environment is frozen between invocations, so
//!   there every invocation ends by flushing, bounded by `BURST_OTEL_FLUSH_TIMEOUT_MS`
//!   ([`Flush::EachInvocation`], [`flush_invocation`], called by the Lambda binaries once per
//!   event, after every engine run it made).
//!
//! The exporters read the rest of the standard settings themselves: `OTEL_EXPORTER_OTLP_HEADERS`
//! (and the per-signal `…_TRACES_HEADERS`, `…_METRICS_HEADERS`), `OTEL_EXPORTER_OTLP_TIMEOUT`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL`.

use crate::engine::{Applied, EngineError};
use crate::logging;
use burst_settings::{ConfigError, Get, Settings};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Gauge, Histogram, Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};

/// The instrumentation scope of every span and metric.
pub const SCOPE: &str = "burst-functions";
/// How long the handler's shutdown waits for the exporters to send what is queued.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
/// Crates whose own spans and events never go to the collector: the exporter's (its requests
/// would be traced by the export they make) and the HTTP stack's.
const QUIET_TARGETS: [&str; 7] = [
    "opentelemetry",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tower",
];

/// When exported telemetry is flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// In the background and when the process stops (the Azure custom handler).
    AtShutdown,
    /// Also at the end of every invocation, waiting at most `BURST_OTEL_FLUSH_TIMEOUT_MS`
    /// (Lambda: the environment is frozen as soon as the answer is sent).
    EachInvocation,
}

/// What the settings ask to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub traces: bool,
    pub metrics: bool,
    /// The longest an invocation waits for its flush under [`Flush::EachInvocation`]
    /// (`BURST_OTEL_FLUSH_TIMEOUT_MS`, default 1000 ms).
    pub flush_timeout: Duration,
    /// Settings that were understood differently than asked (logged at start).
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads the standard OpenTelemetry settings (blank = unset): a signal is exported when its
    /// endpoint (`OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`) or the common one
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`) is set, unless `OTEL_SDK_DISABLED=true` or
    /// `OTEL_<SIGNAL>_EXPORTER=none`. Only a bad `BURST_OTEL_FLUSH_TIMEOUT_MS` is an error; an
    /// OpenTelemetry setting this build does not support is a warning.
    pub fn from_settings(get: Get<'_>) -> Result<Config, ConfigError> {
        let settings = Settings::new(get);
        let flush_timeout = settings.millis("BURST_OTEL_FLUSH_TIMEOUT_MS", 1000, 1..=30_000)?;
        let mut warnings = Vec::new();
        let disabled = match settings.string("OTEL_SDK_DISABLED") {
            None => false,
            Some(v) => match burst_settings::parse_bool(&v) {
                Some(b) => b,
                None => {
                    warnings.push(format!(
                        "OTEL_SDK_DISABLED: expected true or false, got {v:?}; export stays as the endpoints say"
                    ));
                    false
                }
            },
        };
        let common = settings.string("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
        let mut signal = |name: &str| {
            let upper = name.to_ascii_uppercase();
            let endpoint = common
                || settings
                    .string(&format!("OTEL_EXPORTER_OTLP_{upper}_ENDPOINT"))
                    .is_some();
            let exporter_setting = format!("OTEL_{upper}_EXPORTER");
            let exporter = settings
                .string(&exporter_setting)
                .map(|v| v.trim().to_ascii_lowercase());
            match exporter.as_deref() {
                None | Some("otlp") => endpoint,
                Some("none") => false,
                Some(other) => {
                    warnings.push(format!(
                        "{exporter_setting}: only \"otlp\" and \"none\" are supported, got {other:?}; using otlp"
                    ));
                    endpoint
                }
            }
        };
        let traces = !disabled && signal("traces");
        let metrics = !disabled && signal("metrics");
        for name in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        ] {
            if let Some(p) = settings.string(name)
                && !p.trim().eq_ignore_ascii_case("http/protobuf")
            {
                warnings.push(format!(
                    "{name}: only http/protobuf is supported, got {p:?}; exporting http/protobuf (point the endpoint at the collector's OTLP/HTTP port, usually 4318)"
                ));
            }
        }
        Ok(Config {
            traces,
            metrics,
            flush_timeout,
            warnings,
        })
    }

    /// Whether anything is exported.
    pub fn enabled(&self) -> bool {
        self.traces || self.metrics
    }
}

/// The exporting providers of a process (none when export is off). Keep it until the process
/// stops and call [`Telemetry::shutdown`] then.
#[derive(Debug, Default)]
pub struct Telemetry {
    providers: Option<Arc<Providers>>,
}

#[derive(Debug)]
struct Providers {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    flush: Flush,
    flush_timeout: Duration,
}

impl Providers {
    /// Exports what is queued (blocking: run off the async threads).
    fn force_flush(&self) {
        if let Some(t) = &self.tracer
            && let Err(e) = t.force_flush()
        {
            tracing::debug!(error = %e, "telemetry: trace flush failed");
        }
        if let Some(m) = &self.meter
            && let Err(e) = m.force_flush()
        {
            tracing::debug!(error = %e, "telemetry: metric flush failed");
        }
    }
}

static ACTIVE: OnceLock<Arc<Providers>> = OnceLock::new();
static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Installs the JSON log subscriber (`crate::logging`) and, when the settings ask for it, the
/// OpenTelemetry exporters for `service` (the default `service.name`). Call once, first thing.
///
/// A bad `BURST_OTEL_FLUSH_TIMEOUT_MS` is an error (logs are installed all the same, so the
/// caller can log it); an exporter that cannot be built is logged and left out: telemetry
/// never stops the function from starting.
pub fn init(service: &str, flush: Flush) -> Result<Telemetry, ConfigError> {
    let get = |name: &str| std::env::var(name).ok();
    let config = match Config::from_settings(&get) {
        Ok(c) => c,
        Err(e) => {
            logging::init();
            return Err(e);
        }
    };
    if !config.enabled() {
        logging::init();
        return Ok(Telemetry::default());
    }
    let resource = resource(service, &get);
    let mut problems = Vec::new();
    let tracer = config.traces.then(|| {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map(|exporter| {
                // Queue size, batch size, delay and export timeout from OTEL_BSP_*.
                SdkTracerProvider::builder()
                    .with_resource(resource.clone())
                    .with_span_processor(BatchSpanProcessor::builder(exporter).build())
                    .build()
            })
            .map_err(|e| problems.push(format!("traces: {e}")))
            .ok()
    });
    let meter = config.metrics.then(|| {
        opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .build()
            .map(|exporter| {
                // Interval and timeout from OTEL_METRIC_EXPORT_INTERVAL / _TIMEOUT.
                SdkMeterProvider::builder()
                    .with_resource(resource.clone())
                    .with_reader(PeriodicReader::builder(exporter).build())
                    .build()
            })
            .map_err(|e| problems.push(format!("metrics: {e}")))
            .ok()
    });
    let (tracer, meter) = (tracer.flatten(), meter.flatten());
    let layer = tracer.as_ref().map(|t| otel_layer(t.tracer(SCOPE)));
    logging::init_with(layer);
    if let Some(m) = &meter {
        let _ = METRICS.set(Metrics::new(&m.meter(SCOPE)));
    }
    for w in &config.warnings {
        tracing::warn!(warning = %w, "telemetry: setting not supported as given");
    }
    for p in &problems {
        tracing::error!(error = %p, "telemetry: exporter not built; running without it");
    }
    if tracer.is_none() && meter.is_none() {
        return Ok(Telemetry::default());
    }
    tracing::info!(
        traces = tracer.is_some(),
        metrics = meter.is_some(),
        service = %resource
            .get(&opentelemetry::Key::new("service.name"))
            .map(|v| v.to_string())
            .unwrap_or_default(),
        flush = match flush {
            Flush::AtShutdown => "at shutdown",
            Flush::EachInvocation => "after each invocation",
        },
        "telemetry: OpenTelemetry export on (OTLP/HTTP)"
    );
    let providers = Arc::new(Providers {
        tracer,
        meter,
        flush,
        flush_timeout: config.flush_timeout,
    });
    let _ = ACTIVE.set(providers.clone());
    Ok(Telemetry {
        providers: Some(providers),
    })
}

/// The layer that turns `tracing` spans into OpenTelemetry spans: INFO and above, not the
/// exporter's or the HTTP stack's own; no per-span thread, source location, target or
/// busy/idle times (attributes nobody reads, and work on every span), and no OpenTelemetry
/// context made current on every poll of an instrumented future (parents come from the
/// `tracing` spans; no OpenTelemetry-native code runs inside them).
fn otel_layer(tracer: opentelemetry_sdk::trace::SdkTracer) -> logging::ExtraLayer {
    let targets = QUIET_TARGETS
        .iter()
        .fold(Targets::new().with_default(LevelFilter::INFO), |t, name| {
            t.with_target(*name, LevelFilter::OFF)
        });
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false)
        .with_context_activation(false)
        .with_filter(targets)
        .boxed()
}

/// The resource: the standard settings (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`) first;
/// without a service name there, `service`; `service.version` the crate's.
fn resource(service: &str, get: Get<'_>) -> Resource {
    let detected = Resource::builder().build();
    let mut builder = Resource::builder();
    let named = detected
        .get(&opentelemetry::Key::new("service.name"))
        .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
    if !named {
        builder = builder.with_service_name(service.to_string());
    }
    let versioned = get("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.version="));
    if !versioned {
        builder =
            builder.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    }
    builder.build()
}

impl Telemetry {
    /// Whether anything is exported.
    pub fn enabled(&self) -> bool {
        self.providers.is_some()
    }

    /// Exports what is queued and stops the exporters, waiting at most 2 s in all (the SDK's
    /// own waits are longer; a silent collector must not hold up the stop). Blocking: call it
    /// off the async threads (`spawn_blocking`) or after the runtime.
    pub fn shutdown(self) {
        let Some(p) = self.providers else { return };
        let (done, finished) = std::sync::mpsc::channel();
        let mut waiting = 0;
        if let Some(t) = p.tracer.clone() {
            let done = done.clone();
            waiting += 1;
            std::thread::spawn(move || {
                let _ = done.send(("traces", t.shutdown_with_timeout(SHUTDOWN_TIMEOUT)));
            });
        }
        if let Some(m) = p.meter.clone() {
            let done = done.clone();
            waiting += 1;
            std::thread::spawn(move || {
                let _ = done.send(("metrics", m.shutdown_with_timeout(SHUTDOWN_TIMEOUT)));
            });
        }
        let deadline = std::time::Instant::now() + SHUTDOWN_TIMEOUT;
        for _ in 0..waiting {
            match finished
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            {
                Ok((_, Ok(()))) => {}
                Ok((signal, Err(e))) => {
                    tracing::warn!(signal, error = %e, "telemetry: export at shutdown failed")
                }
                Err(_) => {
                    tracing::warn!(
                        timeout_ms = SHUTDOWN_TIMEOUT.as_millis() as u64,
                        "telemetry: export at shutdown not done in time; the rest is dropped"
                    );
                    return;
                }
            }
        }
    }
}

/// The end of one engine invocation: its figures go to the metrics (nothing without export).
pub fn invocation_done(
    site: &str,
    input: &'static str,
    result: Result<&Applied, &EngineError>,
    elapsed: Duration,
) {
    if let Some(m) = METRICS.get() {
        m.record(site, input, result, elapsed);
    }
}

/// The end of one platform invocation (a Lambda event, whatever engine runs it made): under
/// [`Flush::EachInvocation`], what is queued is exported before it answers, waiting at most
/// `flush_timeout`. Without export, or under [`Flush::AtShutdown`], this does nothing.
pub async fn flush_invocation() {
    let Some(p) = ACTIVE.get() else { return };
    if p.flush != Flush::EachInvocation {
        return;
    }
    let providers = p.clone();
    let flush = tokio::task::spawn_blocking(move || providers.force_flush());
    if tokio::time::timeout(p.flush_timeout, flush).await.is_err() {
        tracing::warn!(
            timeout_ms = p.flush_timeout.as_millis() as u64,
            "telemetry: flush not done in time; the rest is exported later"
        );
    }
}

/// The metric instruments (names in docs/telemetry.md).
#[derive(Debug)]
pub struct Metrics {
    mode: Gauge<i64>,
    desired: Gauge<u64>,
    running: Gauge<u64>,
    spend: Gauge<f64>,
    duration: Histogram<f64>,
    saves: Histogram<u64>,
}

/// `burst.mode`'s value for each mode.
pub fn mode_code(mode: burst_core::Mode) -> i64 {
    match mode {
        burst_core::Mode::Healthy => 0,
        burst_core::Mode::Suspect => 1,
        burst_core::Mode::Outage => 2,
        burst_core::Mode::Recovering => 3,
    }
}

impl Metrics {
    pub fn new(meter: &Meter) -> Metrics {
        Metrics {
            mode: meter
                .i64_gauge("burst.mode")
                .with_description(
                    "The site's mode after the invocation: 0 healthy, 1 suspect, 2 outage, 3 recovering",
                )
                .build(),
            desired: meter
                .u64_gauge("burst.capacity.desired")
                .with_description("Cloud nodes the decision core wants")
                .with_unit("{node}")
                .build(),
            running: meter
                .u64_gauge("burst.capacity.running")
                .with_description("Cloud nodes running, as the scale set last reported")
                .with_unit("{node}")
                .build(),
            spend: meter
                .f64_gauge("burst.spend")
                .with_description("Estimated cloud spend this month")
                .with_unit("USD")
                .build(),
            duration: meter
                .f64_histogram("burst.invocation.duration")
                .with_description("Engine invocation latency: load, step, save, actions")
                .with_unit("s")
                .with_boundaries(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0,
                ])
                .build(),
            saves: meter
                .u64_histogram("burst.invocation.saves")
                .with_description("Durable state saves per invocation")
                .with_unit("{save}")
                .with_boundaries(vec![0.0, 1.0, 2.0, 3.0, 4.0, 8.0, 16.0])
                .build(),
        }
    }

    /// One invocation's figures: latency always (`outcome` ok or error); the rest from the
    /// state it left.
    pub fn record(
        &self,
        site: &str,
        input: &'static str,
        result: Result<&Applied, &EngineError>,
        elapsed: Duration,
    ) {
        let site = KeyValue::new("site", site.to_string());
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.duration.record(
            elapsed.as_secs_f64(),
            &[
                site.clone(),
                KeyValue::new("input", input),
                KeyValue::new("outcome", outcome),
            ],
        );
        let site_attr = [site];
        let Ok(applied) = result else { return };
        let state = &applied.state;
        self.saves.record(applied.saves as u64, &site_attr);
        self.mode.record(mode_code(state.mode), &site_attr);
        self.desired
            .record(u64::from(state.capacity.desired), &site_attr);
        if let Some(running) = state.signals.scale_set.running {
            self.running.record(u64::from(running), &site_attr);
        }
        self.spend.record(state.budget.spent_usd, &site_attr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burst_core::{SiteState, Timestamp};
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader};

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_settings(&burst_settings::from_pairs(pairs)).unwrap()
    }

    #[test]
    fn export_follows_the_standard_endpoints() {
        let off = config(&[]);
        assert!(!off.enabled());
        assert_eq!(off.flush_timeout, Duration::from_millis(1000));
        let both = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]);
        assert!(both.traces && both.metrics && both.warnings.is_empty());
        let traces = config(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces",
        )]);
        assert!(traces.traces && !traces.metrics);
        let metrics = config(&[(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://127.0.0.1:4318/v1/metrics",
        )]);
        assert!(!metrics.traces && metrics.metrics);
        // Blank app settings count as unset.
        assert!(!config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).enabled());
    }

    #[test]
    fn export_can_be_turned_off_and_unsupported_settings_warn() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert!(!config(&[endpoint, ("OTEL_SDK_DISABLED", "true")]).enabled());
        let no_metrics = config(&[endpoint, ("OTEL_METRICS_EXPORTER", "none")]);
        assert!(no_metrics.traces && !no_metrics.metrics);
        let grpc = config(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert!(grpc.traces && grpc.metrics);
        assert!(
            grpc.warnings[0].contains("only http/protobuf"),
            "{:?}",
            grpc.warnings
        );
        let err = Config::from_settings(&burst_settings::from_pairs(&[(
            "BURST_OTEL_FLUSH_TIMEOUT_MS",
            "soon",
        )]))
        .unwrap_err();
        assert_eq!(err.setting, "BURST_OTEL_FLUSH_TIMEOUT_MS");
    }

    fn gauge_i64(rm: &ResourceMetrics, name: &str) -> Option<i64> {
        rm.scope_metrics()
            .flat_map(|s| s.metrics())
            .filter(|m| m.name() == name)
            .find_map(|m| match m.data() {
                AggregatedMetrics::I64(MetricData::Gauge(g)) => {
                    g.data_points().next().map(|p| p.value())
                }
                _ => None,
            })
    }

    fn gauge_u64(rm: &ResourceMetrics, name: &str) -> Option<u64> {
        rm.scope_metrics()
            .flat_map(|s| s.metrics())
            .filter(|m| m.name() == name)
            .find_map(|m| match m.data() {
                AggregatedMetrics::U64(MetricData::Gauge(g)) => {
                    g.data_points().next().map(|p| p.value())
                }
                _ => None,
            })
    }

    /// The metric values come from the invocation's result: checked through the SDK's
    /// in-memory exporter (the receiver test checks that they arrive over OTLP).
    #[test]
    fn metrics_carry_the_invocation_figures() {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let metrics = Metrics::new(&provider.meter(SCOPE));
        let mut state = SiteState::new("home", Timestamp(0));
        state.mode = burst_core::Mode::Outage;
        state.capacity.desired = 5;
        state.signals.scale_set.running = Some(3);
        state.budget.spent_usd = 1.25;
        let applied = Applied {
            state: Arc::new(state),
            duplicate: false,
            actions: Vec::new(),
            saves: 2,
        };
        metrics.record("home", "ups", Ok(&applied), Duration::from_millis(4));
        metrics.record(
            "home",
            "ups",
            Err(&EngineError::Replay),
            Duration::from_millis(1),
        );
        provider.force_flush().unwrap();
        let exported = exporter.get_finished_metrics().unwrap();
        let rm = exported.last().unwrap();
        assert_eq!(gauge_i64(rm, "burst.mode"), Some(2));
        assert_eq!(gauge_u64(rm, "burst.capacity.desired"), Some(5));
        assert_eq!(gauge_u64(rm, "burst.capacity.running"), Some(3));
        let names: Vec<String> = rm
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .map(|m| m.name().to_string())
            .collect();
        for name in [
            "burst.spend",
            "burst.invocation.duration",
            "burst.invocation.saves",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        let duration = rm
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .find(|m| m.name() == "burst.invocation.duration")
            .unwrap();
        let AggregatedMetrics::F64(MetricData::Histogram(h)) = duration.data() else {
            panic!("duration is a histogram");
        };
        // One series per outcome: the error counts too.
        assert_eq!(h.data_points().count(), 2);
        assert_eq!(h.data_points().map(|p| p.count()).sum::<u64>(), 2);
        let _ = provider.shutdown();
    }

    #[test]
    fn mode_codes_are_documented_order() {
        use burst_core::Mode;
        let codes: Vec<i64> = [Mode::Healthy, Mode::Suspect, Mode::Outage, Mode::Recovering]
            .into_iter()
            .map(mode_code)
            .collect();
        assert_eq!(codes, vec![0, 1, 2, 3]);
    }
}
