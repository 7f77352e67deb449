//! What OpenTelemetry export costs burst-handler: the same load (signed heartbeats at
//! concurrency 16 over 256 sites, as `benches/handler.rs`) against two handlers in one run,
//! one without `OTEL_EXPORTER_OTLP_ENDPOINT` and one exporting traces and metrics over
//! OTLP/HTTP to a real collector (Rotel, `target/otlp-venv/bin/rotel-agent` or `BURST_ROTEL`,
//! installed by `scripts/install-test-deps`; receiving and dropping), in short alternating
//! rounds (off-on, on-off, …) so that drift of a shared machine hits both alike. Prints both
//! figures over all rounds, and the median over the pairs of rounds of each pair's on/off ratio
//! (the figure that drift disturbs least). `cargo bench -p burst-functions --bench telemetry`.
//!
//! Target: exporting costs at most 1.1× the latency without it.

use burst_wire::Signer;

#[path = "../tests/otlp/mod.rs"]
mod otlp;
mod support;
use std::time::{Duration, Instant};
use support::{KEY, Proc, cpu_ms, free_port, handler_command, round, signed_heartbeat};

const CONCURRENCY: usize = 16;
/// Requests per round; each pair of rounds runs both handlers, in turn first.
const PER_ROUND: usize = 1_500;
const PAIRS: usize = 12;
const SITES: usize = 256;

fn wait_listening(port: u16, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            eprintln!("{what} not listening on {port} after 30 s");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn spawn_handler(state: &std::path::Path, sites: &str, otlp: Option<&str>) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = handler_command(port, state, sites);
    if let Some(endpoint) = otlp {
        // The SDK's defaults otherwise: batches every 5 s, metrics every 60 s.
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
        // BENCH_OTEL_ENV="OTEL_TRACES_EXPORTER=none,…": more settings for the exporting
        // handler, to see what each part costs.
        for kv in std::env::var("BENCH_OTEL_ENV")
            .unwrap_or_default()
            .split(',')
        {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k.trim(), v.trim());
            }
        }
    }
    let p = Proc(cmd.spawn().expect("spawn burst-handler"));
    wait_listening(port, "burst-handler");
    (p, port)
}

#[derive(Default)]
struct Figures {
    lat: Vec<f64>,
    elapsed: Duration,
    errors: usize,
}

impl Figures {
    fn pct(&mut self, p: f64) -> f64 {
        self.lat.sort_by(f64::total_cmp);
        self.lat[((self.lat.len() as f64 * p) as usize).min(self.lat.len() - 1)]
    }
    fn rate(&self) -> f64 {
        self.lat.len() as f64 / self.elapsed.as_secs_f64()
    }
}

fn main() {
    let Some(rotel) = otlp::rotel_path(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))) else {
        eprintln!(
            "telemetry bench: rotel-agent not found (run scripts/install-test-deps, or set BURST_ROTEL)"
        );
        std::process::exit(1);
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // Receives and drops (no debug output: the collector shares the 2 cores).
    let collector = otlp::Rotel::launch(&rotel, false);
    let endpoint = collector.endpoint.clone();

    let sites: Vec<String> = (0..SITES).map(|i| format!("site{i}")).collect();
    let site_list = sites.join(",");
    let (off, off_port) = spawn_handler(&dir.path().join("off"), &site_list, None);
    let (on, on_port) = spawn_handler(&dir.path().join("on"), &site_list, Some(&endpoint));
    let signer = Signer::ed25519_pem("bench", KEY.as_bytes()).expect("key");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let cpu_before = [
        cpu_ms(&off.0.id().to_string()),
        cpu_ms(&on.0.id().to_string()),
        cpu_ms(&collector.pid().to_string()),
    ];
    let mut figures = [Figures::default(), Figures::default()];
    let mut pair_ratios = (Vec::new(), Vec::new());
    let mut n = 0usize;
    for pair in 0..PAIRS {
        let mut medians = [0.0f64; 2];
        let mut p99s = [0.0f64; 2];
        // off then on, on then off, …: each handler goes first as often as second.
        let order = if pair % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let port = [off_port, on_port][which];
            let work: Vec<(Vec<u8>, String)> = (0..PER_ROUND)
                .map(|_| {
                    n += 1;
                    signed_heartbeat(&sites[n % SITES], &signer, &format!("otel-bench-{n}"), true)
                })
                .collect();
            let (lat, elapsed, errors) = round(&rt, port, work, CONCURRENCY);
            let mut this = Figures {
                lat,
                elapsed,
                errors,
            };
            medians[which] = this.pct(0.5);
            p99s[which] = this.pct(0.99);
            let f = &mut figures[which];
            f.lat.extend(this.lat);
            f.elapsed += this.elapsed;
            f.errors += this.errors;
        }
        pair_ratios.0.push(medians[1] / medians[0]);
        pair_ratios.1.push(p99s[1] / p99s[0]);
    }
    // Let the last batch go out before the collector's CPU is read.
    std::thread::sleep(Duration::from_secs(6));
    let cpu_us_per_request = |i: usize, pid: u32, count: usize| {
        (cpu_ms(&pid.to_string()) - cpu_before[i]) * 1000.0 / count.max(1) as f64
    };
    let requests = figures[0].lat.len();
    let cpu = [
        cpu_us_per_request(0, off.0.id(), requests),
        cpu_us_per_request(1, on.0.id(), requests),
        cpu_us_per_request(2, collector.pid(), requests),
    ];
    let rss = |p: &Proc| {
        std::fs::read_to_string(format!("/proc/{}/status", p.0.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(0.0)
            / 1024.0
    };
    let rss_mb = [rss(&off), rss(&on)];
    let [mut f_off, mut f_on] = figures;
    for (label, f, mb) in [
        ("exporter off", &mut f_off, rss_mb[0]),
        ("exporter on ", &mut f_on, rss_mb[1]),
    ] {
        println!(
            "telemetry: {label}: {} heartbeats at concurrency {CONCURRENCY}: median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, {:.0} req/s, {} errors, peak RSS {:.1} MB",
            f.lat.len(),
            f.pct(0.5),
            f.pct(0.9),
            f.pct(0.99),
            f.rate(),
            f.errors,
            mb
        );
    }
    println!(
        "telemetry: handler CPU per request: off {:.0} µs, on {:.0} µs ({:.2}×); the collector {:.0} µs per request on the same cores",
        cpu[0],
        cpu[1],
        cpu[1] / cpu[0],
        cpu[2]
    );
    let middle = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "telemetry: on/off over all rounds: median {:.2}×, p99 {:.2}×, throughput {:.2}×",
        f_on.pct(0.5) / f_off.pct(0.5),
        f_on.pct(0.99) / f_off.pct(0.99),
        f_on.rate() / f_off.rate()
    );
    println!(
        "telemetry: on/off, median of {PAIRS} paired rounds: median latency {:.2}×, p99 {:.2}× (target: ≤ 1.1×)",
        middle(&mut pair_ratios.0),
        middle(&mut pair_ratios.1)
    );
}
