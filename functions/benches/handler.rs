//! Prints burst-handler's figures: request → response latency (median, p99) and requests/s at
//! concurrency 16 for signed agent heartbeats (JWT verify + file-store CAS + step), the time
//! from process start to the first successful `GET /`, peak RSS under that load, and the
//! binary's size. `cargo bench -p burst-functions --bench handler`.
//!
//! Targets: p99 < 5 ms, ≥ 3000 req/s, ready < 50 ms, RSS < 30 MB, binary < 15 MB.

use burst_wire::{Claims, Signer};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIClZzOJsgg0Jpj93h7yYhz52I3fF8pzdm0Ul57cvvVZ7\n-----END PRIVATE KEY-----\n";
const PUB: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA61EeDC3b9sWDUu2KPsf925Q48itt0YuS3s4QjGOrQPk=\n-----END PUBLIC KEY-----\n";
const CONCURRENCY: usize = 16;
const REQUESTS: usize = 16_000;
/// Requests are spread over many sites: a real site sends a heartbeat every 30 s, so its state
/// document holds a few dozen remembered ids. Hammering 16 sites with 1 000 requests each would
/// grow every document to ~1 000 ids (each request a 100 KB JSON load + save), which no real
/// site sees. 256 sites keep ~60 requests per site over the run.
const SITES: usize = 256;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

struct Proc(std::process::Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(port: u16, state: &std::path::Path, sites: &str) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_burst-handler"))
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("BURST_STATE_URL", format!("file://{}", state.display()))
        .env("BURST_AGENT_ED25519_PUBLIC_KEY", PUB)
        .env("BURST_SITES", sites)
        .env("BURST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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

fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn body_and_token(site: &str, i: usize, signer: &Signer) -> (Vec<u8>, String) {
    let beat = burst_wire::Heartbeat {
        id: uuid::Uuid::new_v4(),
        at: burst_wire::rfc3339(chrono::Utc::now()),
        nodes_ready: 7,
        nodes_total: 7,
        ups_status: Some("OL".into()),
        battery: burst_wire::Battery::default(),
        api_ok: true,
        lease: false,
    };
    let body = serde_json::to_vec(&beat).unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    // Near the longest accepted lifetime: every token is signed before the run starts.
    let claims = Claims {
        exp: now + burst_wire::MAX_LIFETIME_S - 10,
        jti: format!("bench-{i}-{}", uuid::Uuid::new_v4()),
        ..Claims::for_body(site, &body, now)
    };
    let token = signer.sign(&claims).unwrap_or_default();
    (body, token)
}

/// One keep-alive connection sending every `CONCURRENCY`th request in turn (requests of one
/// site stay in order); returns each request's latency in ms and the number of failures.
async fn client(port: u16, work: &[(String, Vec<u8>, String)], c: usize) -> (Vec<f64>, usize) {
    use http_body_util::{BodyExt, Full};
    let mut lat = Vec::new();
    let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (lat, work.len() / CONCURRENCY);
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, conn)) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
    else {
        return (lat, work.len() / CONCURRENCY);
    };
    tokio::spawn(conn);
    let mut errors = 0usize;
    for (_, body, token) in work.iter().skip(c).step_by(CONCURRENCY) {
        let req = http::Request::post("/api/heartbeat")
            .header("host", format!("127.0.0.1:{port}"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(bytes::Bytes::from(body.clone())));
        let Ok(req) = req else {
            errors += 1;
            continue;
        };
        let t = Instant::now();
        if sender.ready().await.is_err() {
            errors += 1;
            continue;
        }
        let ok = match sender.send_request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                resp.into_body().collect().await.is_ok() && status == 200
            }
            Err(_) => false,
        };
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        errors += usize::from(!ok);
    }
    (lat, errors)
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
    let work: Vec<(String, Vec<u8>, String)> = (0..REQUESTS)
        .map(|i| {
            let site = &sites[i % SITES];
            let (b, t) = body_and_token(site, i, &signer);
            (site.clone(), b, t)
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (lat, elapsed, errors) = rt.block_on(async move {
        let work = Arc::new(work);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..CONCURRENCY {
            let work = work.clone();
            tasks.push(tokio::spawn(async move { client(port, &work, c).await }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            match t.await {
                Ok((l, e)) => {
                    all.extend(l);
                    errors += e;
                }
                Err(_) => errors += 1,
            }
        }
        (all, started.elapsed(), errors)
    });
    let mut lat = lat;
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let rss_mb = peak_rss_kb(proc.0.id()) as f64 / 1024.0;
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
