//! A real OTLP receiver for the telemetry tests: Rotel (a collector written elsewhere, from
//! PyPI's `rotel` package), listening for OTLP/HTTP on a free loopback port and printing
//! every span and metric it decodes (its `--debug-log … --debug-log-verbosity detailed`
//! output, the OpenTelemetry Collector's debug format), which [`Rotel::received`] reads back.
//!
//! Rotel is `BURST_ROTEL` (the `rotel-agent` binary), else
//! `target/otlp-venv/bin/rotel-agent` (installed by `scripts/install-test-deps`), else
//! `rotel-agent` on `PATH`. Without it a test says so and passes, unless `BURST_REQUIRE_OTLP`
//! is set (`scripts/test-all` sets it): then it fails.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Rotel on 127.0.0.1, stopped (by its PID) when dropped.
#[derive(Debug)]
pub struct Rotel {
    child: Child,
    /// The base URL for `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces`, `/v1/metrics` follow).
    pub endpoint: String,
    dir: tempfile::TempDir,
}

impl Drop for Rotel {
    fn drop(&mut self) {
        // Child::kill signals exactly this PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// Where Rotel is (see the module's docs), for a crate whose `CARGO_MANIFEST_DIR` is
/// `manifest_dir`.
pub fn rotel_path(manifest_dir: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BURST_ROTEL") {
        return Some(PathBuf::from(p));
    }
    // The workspace's target/ (functions/ or functions/lambda/ is the manifest directory).
    for up in ["..", "../.."] {
        let venv = manifest_dir
            .join(up)
            .join("target/otlp-venv/bin/rotel-agent");
        if manifest_dir.join(up).join("Cargo.lock").is_file() && venv.is_file() {
            return Some(venv);
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("rotel-agent"))
            .find(|p| p.is_file())
    })
}

/// Starts Rotel, or returns `None` (after saying why) when it is not installed and not
/// required. `manifest_dir` is the calling crate's `CARGO_MANIFEST_DIR`.
pub fn start(test: &str, manifest_dir: &str) -> Option<Rotel> {
    let required = std::env::var_os("BURST_REQUIRE_OTLP").is_some_and(|v| !v.is_empty());
    let Some(rotel) = rotel_path(Path::new(manifest_dir)) else {
        assert!(
            !required,
            "BURST_REQUIRE_OTLP is set but rotel-agent was not found \
             (run scripts/install-test-deps, or set BURST_ROTEL)"
        );
        eprintln!(
            "SKIPPED {test}: rotel-agent not found (run scripts/install-test-deps; \
             BURST_REQUIRE_OTLP=1 makes this a failure)"
        );
        return None;
    };
    Some(Rotel::launch(&rotel, true))
}

impl Rotel {
    /// Starts `rotel` and waits until it listens. With `decode`, it prints what it receives
    /// (for [`Rotel::received`]); without, it receives and drops in silence (a benchmark's
    /// collector, which shares the machine's cores).
    pub fn launch(rotel: &Path, decode: bool) -> Rotel {
        let dir = tempfile::tempdir().unwrap();
        let out = std::fs::File::create(dir.path().join("out.log")).unwrap();
        let (http, grpc) = (free_port(), free_port());
        let mut command = Command::new(rotel);
        command
            .arg("start")
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
            .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
            // Received data is dropped (after printing it, when decoding).
            .args(["--exporter", "blackhole"])
            .arg("--pid-file")
            .arg(dir.path().join("rotel.pid"))
            .arg("--log-file")
            .arg(dir.path().join("rotel.log"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        if decode {
            command
                .args(["--debug-log", "traces", "--debug-log", "metrics"])
                .args(["--debug-log-verbosity", "detailed"]);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", rotel.display()));
        let mut r = Rotel {
            child,
            endpoint: format!("http://127.0.0.1:{http}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", http)).is_ok() {
                return r;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("rotel exited ({status}) before listening:\n{}", r.output());
            }
            assert!(
                Instant::now() < deadline,
                "rotel did not listen on port {http} within 30 s:\n{}",
                r.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The collector's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything Rotel printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("out.log")).unwrap_or_default()
    }

    /// What Rotel decoded so far.
    pub fn received(&self) -> Received {
        parse(&self.output())
    }

    /// Waits (up to `limit`) until `done` holds for what Rotel received; panics with its output
    /// otherwise.
    pub fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&Received) -> bool,
    ) -> Received {
        let deadline = Instant::now() + limit;
        loop {
            let r = self.received();
            if done(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver did not get {what} within {limit:?}; it printed:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A span as the receiver decoded it.
#[derive(Debug, Clone, Default)]
pub struct Span {
    pub name: String,
    pub trace_id: String,
    pub id: String,
    pub parent_id: String,
    pub status: String,
    pub attributes: Vec<(String, String)>,
    /// The names of its span events (the log lines written inside it).
    pub events: Vec<String>,
    /// Its resource's attributes.
    pub resource: Vec<(String, String)>,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        find(&self.attributes, key)
    }
}

/// One metric data point as the receiver decoded it.
#[derive(Debug, Clone, Default)]
pub struct Point {
    pub metric: String,
    pub kind: String,
    pub attributes: Vec<(String, String)>,
    /// `Value` for gauges and sums, `Count` for histograms.
    pub value: String,
    pub resource: Vec<(String, String)>,
}

impl Point {
    pub fn attr(&self, key: &str) -> Option<&str> {
        find(&self.attributes, key)
    }
}

fn find<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[derive(Debug, Clone, Default)]
pub struct Received {
    pub spans: Vec<Span>,
    pub points: Vec<Point>,
}

impl Received {
    pub fn spans_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Span> + 'a {
        self.spans.iter().filter(move |s| s.name == name)
    }

    pub fn points_of<'a>(&'a self, metric: &'a str) -> impl Iterator<Item = &'a Point> + 'a {
        self.points.iter().filter(move |p| p.metric == metric)
    }
}

/// Where an attribute line (`-> key: Type(value)`) belongs.
#[derive(Clone, Copy, PartialEq)]
enum Section {
    Resource,
    SpanAttributes,
    Events,
    PointAttributes,
    Descriptor,
    Other,
}

/// `-> key: Str(value)` → (key, value); other types keep their text (`Int(3)` → `3`).
fn attribute(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix("-> ")?;
    let (key, value) = rest.split_once(": ")?;
    let value = value.trim_end();
    let inner = value
        .split_once('(')
        .and_then(|(_, v)| v.strip_suffix(')'))
        .unwrap_or(value);
    Some((key.trim().to_string(), inner.to_string()))
}

/// `    Name           : load` → ("Name", "load").
fn field(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.split_once(':')?;
    Some((k.trim(), v.trim()))
}

/// Parses Rotel's detailed debug output (the Collector's debug exporter format).
pub fn parse(out: &str) -> Received {
    let mut r = Received::default();
    let mut resource: Vec<(String, String)> = Vec::new();
    let mut section = Section::Other;
    let mut span: Option<Span> = None;
    let mut point: Option<Point> = None;
    let mut metric = (String::new(), String::new());
    let flush_span = |span: &mut Option<Span>, r: &mut Received| {
        if let Some(s) = span.take() {
            r.spans.push(s);
        }
    };
    let flush_point = |point: &mut Option<Point>, r: &mut Received| {
        if let Some(p) = point.take() {
            r.points.push(p);
        }
    };
    for line in out.lines() {
        let t = line.trim();
        if t.starts_with("ResourceSpans #") || t.starts_with("ResourceMetrics #") {
            flush_span(&mut span, &mut r);
            flush_point(&mut point, &mut r);
            resource.clear();
            section = Section::Other;
        } else if t == "Resource attributes:" {
            section = Section::Resource;
        } else if t.starts_with("Span #") {
            flush_span(&mut span, &mut r);
            span = Some(Span {
                resource: resource.clone(),
                ..Span::default()
            });
            section = Section::Other;
        } else if t.starts_with("Metric #") {
            flush_point(&mut point, &mut r);
            metric = (String::new(), String::new());
            section = Section::Other;
        } else if t == "Descriptor:" {
            section = Section::Descriptor;
        } else if t.ends_with("DataPoints #0") || t.contains("DataPoints #") {
            flush_point(&mut point, &mut r);
            point = Some(Point {
                metric: metric.0.clone(),
                kind: metric.1.clone(),
                resource: resource.clone(),
                ..Point::default()
            });
            section = Section::Other;
        } else if t == "Data point attributes:" {
            section = Section::PointAttributes;
        } else if t == "Attributes:" {
            section = Section::SpanAttributes;
        } else if t == "Events:" {
            section = Section::Events;
        } else if t.starts_with("-> ") {
            let Some((k, v)) = attribute(t) else { continue };
            match section {
                Section::Resource => resource.push((k, v)),
                Section::SpanAttributes => {
                    if let Some(s) = span.as_mut() {
                        s.attributes.push((k, v));
                    }
                }
                Section::Events => {
                    if k == "Name"
                        && let Some(s) = span.as_mut()
                    {
                        s.events.push(v);
                    }
                }
                Section::PointAttributes => {
                    if let Some(p) = point.as_mut() {
                        p.attributes.push((k, v));
                    }
                }
                Section::Descriptor => match k.as_str() {
                    "Name" => metric.0 = v,
                    "DataType" => metric.1 = v,
                    _ => {}
                },
                Section::Other => {}
            }
        } else if let Some((k, v)) = field(t) {
            if let Some(s) = span.as_mut() {
                match k {
                    "Trace ID" => s.trace_id = v.to_string(),
                    "Parent ID" => s.parent_id = v.to_string(),
                    "ID" => s.id = v.to_string(),
                    "Name" => s.name = v.to_string(),
                    "Status code" => s.status = v.to_string(),
                    _ => {}
                }
            }
            if let Some(p) = point.as_mut()
                && (k == "Value" || k == "Count")
            {
                p.value = v.to_string();
            }
            // "Events:" / "Links:" and the like end the attribute lists.
            if v.is_empty() && k != "Attributes" && section != Section::Events {
                section = Section::Other;
            }
        }
    }
    flush_span(&mut span, &mut r);
    flush_point(&mut point, &mut r);
    r
}
