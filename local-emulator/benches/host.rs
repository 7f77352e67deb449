//! Host overhead: `GET /api/status` through `func-emulator start` → `burst-handler` versus
//! straight to `burst-handler`, same load in the same run; plus the time from starting
//! `func-emulator` to its first successful request.
//!
//! `cargo bench -p func-emulator --bench host` (env: `BENCH_REQUESTS`, default 5000;
//! `BENCH_CONCURRENCY`, default 16; `BURST_HANDLER_BIN` to use a given handler binary).
#![allow(clippy::unwrap_used)]

// The host tests' helpers: the handler binary, the app copy, a free port.
#[path = "../tests/host_support/mod.rs"]
mod host_support;

use host_support::{free_port, real_app};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Stats {
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

async fn load(url: &str, key: Option<&str>, n: usize, concurrency: usize) -> Stats {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let next = next.clone();
        let url = url.to_string();
        let key = key.map(str::to_string);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                let t = Instant::now();
                let mut rb = client.get(&url);
                if let Some(k) = &key {
                    rb = rb.header("x-functions-key", k);
                }
                match rb.send().await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                    }
                    _ => errors += 1,
                }
                lat.push(t.elapsed());
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Stats {
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
    }
}

async fn wait_ok(url: &str, key: Option<&str>, limit: Duration) -> Duration {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let t = Instant::now();
    loop {
        let mut rb = client.get(url);
        if let Some(k) = key {
            rb = rb.header("x-functions-key", k);
        }
        if let Ok(r) = rb.send().await
            && r.status() == 200
        {
            return t.elapsed();
        }
        assert!(t.elapsed() < limit, "no 200 from {url}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Stops a process this bench started: SIGINT (the emulator then stops its handler), by PID.
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn print(label: &str, s: &Stats) {
    println!(
        "{label:<40} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   errors {}",
        s.rps,
        s.p50.as_secs_f64() * 1000.0,
        s.p99.as_secs_f64() * 1000.0,
        s.errors
    );
}

#[tokio::main]
async fn main() {
    let n = env_num("BENCH_REQUESTS", 5000);
    let concurrency = env_num("BENCH_CONCURRENCY", 16);
    let dir = real_app();
    let key = "bench-function-key";

    // 1. func-emulator start → first successful request.
    let port = free_port();
    let started = Instant::now();
    let emulator = Command::new(env!("CARGO_BIN_EXE_func-emulator"))
        .arg("start")
        .arg(dir.path())
        .args(["--port", &port.to_string()])
        .args(["--set", &format!("FUNC_EMULATOR_FUNCTION_KEY={key}")])
        .args(["--set", "BURST_PROBE_SCHEDULE=0 0 0 1 1 *"])
        .args(["--set", "RUST_LOG=warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/api/status");
    let _ = wait_ok(&url, Some(key), Duration::from_secs(60)).await;
    let startup = started.elapsed();

    // 2. Through the emulator.
    let _ = load(&url, Some(key), 200, concurrency).await; // warm-up
    let via = load(&url, Some(key), n, concurrency).await;
    stop(emulator);

    // 3. Straight to the handler (forwarding mode: it serves /api/status itself).
    let hport = free_port();
    let direct = Command::new(dir.path().join("burst-handler"))
        .current_dir(dir.path())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", hport.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let durl = format!("http://127.0.0.1:{hport}/api/status");
    let _ = wait_ok(&durl, None, Duration::from_secs(60)).await;
    let _ = load(&durl, None, 200, concurrency).await;
    let straight = load(&durl, None, n, concurrency).await;
    stop(direct);

    println!("{n} x GET /api/status, concurrency {concurrency}");
    print("func-emulator -> burst-handler", &via);
    print("burst-handler directly", &straight);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!(
        "overhead (via / direct): p50 {:.2}x, p99 {:.2}x, throughput {:.2}x (target: latency <= 1.5x)",
        ratio(via.p50, straight.p50),
        ratio(via.p99, straight.p99),
        straight.rps / via.rps.max(1e-9)
    );
    println!(
        "func-emulator start -> first 200: {:.0} ms",
        startup.as_secs_f64() * 1000.0
    );
}
