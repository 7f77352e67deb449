//! Prints burst-handler's figures: request → response latency (median, p99) and requests/s at
//! concurrency 16 for signed agent heartbeats (JWT verify + file-store CAS + step), the time
//! from process start to the first successful `GET /`, peak RSS under that load, and the
//! binary's size. `cargo bench -p burst-functions --bench handler`.
//!
//! Targets: p99 < 5 ms, ≥ 3000 req/s, ready < 50 ms, RSS < 30 MB, binary < 15 MB.

use burst_wire::Signer;

mod support;
use std::time::{Duration, Instant};
use support::{KEY, Proc, free_port, handler_command, peak_rss_kb, round, signed_heartbeat};

const CONCURRENCY: usize = 16;
const REQUESTS: usize = 16_000;
/// Requests are spread over many sites: a real site sends a heartbeat every 30 s, so its state
/// document holds a few dozen remembered ids. Hammering 16 sites with 1 000 requests each would
/// grow every document to ~1 000 ids (each request a 100 KB JSON load + save), which no real
/// site sees. 256 sites keep ~60 requests per site over the run.
const SITES: usize = 256;

fn spawn(port: u16, state: &std::path::Path, sites: &str) -> Proc {
    let child = handler_command(port, state, sites)
        .spawn()
        .expect("spawn burst-handler");
    Proc(child)
}

fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200")
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sites: Vec<String> = (0..SITES).map(|i| format!("site{i}")).collect();
    let site_list = sites.join(",");

    // Start-to-ready, like the host's 25 ms poll but finer.
    let mut readies = Vec::new();
    for k in 0..10 {
        let port = free_port();
        let started = Instant::now();
        let _p = spawn(port, &dir.path().join(format!("ready{k}")), &site_list);
        while !ready(port) {
            if started.elapsed() > Duration::from_secs(30) {
                eprintln!("not ready in 30 s");
                std::process::exit(1);
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        readies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    readies.sort_by(f64::total_cmp);

    let port = free_port();
    let proc = spawn(port, &dir.path().join("state"), &site_list);
    while !ready(port) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let signer = Signer::ed25519_pem("bench", KEY.as_bytes()).expect("key");
    // Sign everything before the clock starts: the agent signs, not the function.
    let work: Vec<(Vec<u8>, String)> = (0..REQUESTS)
        .map(|i| signed_heartbeat(&sites[i % SITES], &signer, &format!("bench-{i}"), true))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (lat, elapsed, errors) = round(&rt, port, work, CONCURRENCY);
    let mut lat = lat;
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let rss_mb = peak_rss_kb(&proc.0.id().to_string()) as f64 / 1024.0;
    let size_mb = std::fs::metadata(env!("CARGO_BIN_EXE_burst-handler"))
        .map(|m| m.len() as f64 / 1_048_576.0)
        .unwrap_or(0.0);
    println!(
        "handler: {} signed heartbeats at concurrency {CONCURRENCY} over {SITES} sites: median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, {:.0} req/s, {} errors",
        lat.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(0.999),
        lat[lat.len() - 1],
        lat.len() as f64 / elapsed.as_secs_f64(),
        errors
    );
    println!(
        "handler: start-to-ready median {:.1} ms (min {:.1}, max {:.1}, 10 starts); peak RSS under load {:.1} MB; binary {:.1} MB",
        readies[readies.len() / 2],
        readies[0],
        readies[readies.len() - 1],
        rss_mb,
        size_mb
    );
}
