//! What the benches share: the agent's test key, a signed heartbeat, the handler process, a
//! keep-alive load client (and a round of them) and the process's CPU and memory figures.
#![allow(dead_code)]

use burst_wire::{Claims, Signer};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Test-only Ed25519 key pair (protects nothing).
pub const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIClZzOJsgg0Jpj93h7yYhz52I3fF8pzdm0Ul57cvvVZ7\n-----END PRIVATE KEY-----\n";
pub const PUB: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA61EeDC3b9sWDUu2KPsf925Q48itt0YuS3s4QjGOrQPk=\n-----END PUBLIC KEY-----\n";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

/// `burst-handler` on `port` with its state in `state`, watching `sites`, the bench key and
/// quiet logs; the caller adds settings and spawns it.
pub fn handler_command(port: u16, state: &std::path::Path, sites: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_burst-handler"));
    cmd.env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("BURST_STATE_URL", format!("file://{}", state.display()))
        .env("BURST_AGENT_ED25519_PUBLIC_KEY", PUB)
        .env("BURST_SITES", sites)
        .env("BURST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

/// A child process stopped (by its PID) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A healthy site's heartbeat as the agent sends it, and its token. With `long_lived`, the
/// token lives nearly as long as the functions accept (signed before a timed run starts);
/// `jti` prefixes the token's id.
pub fn signed_heartbeat(
    site: &str,
    signer: &Signer,
    jti: &str,
    long_lived: bool,
) -> (Vec<u8>, String) {
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
    let mut claims = Claims::for_body(site, &body, now);
    if long_lived {
        claims.exp = now + burst_wire::MAX_LIFETIME_S - 10;
    }
    claims.jti = format!("{jti}-{}", uuid::Uuid::new_v4());
    let token = signer.sign(&claims).unwrap_or_default();
    (body, token)
}

/// One keep-alive HTTP/1 connection sending every `of`th request from the `c`th (requests of
/// one site stay in order); each request's latency in ms and the number of failures.
pub async fn client(
    port: u16,
    work: &[(Vec<u8>, String)],
    c: usize,
    of: usize,
) -> (Vec<f64>, usize) {
    use http_body_util::{BodyExt, Full};
    let mut lat = Vec::new();
    let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (lat, work.len() / of);
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, conn)) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
    else {
        return (lat, work.len() / of);
    };
    tokio::spawn(conn);
    let mut errors = 0usize;
    for (body, token) in work.iter().skip(c).step_by(of) {
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

/// One round of `concurrency` keep-alive clients sharing `work` against `port` on `rt`: every
/// request's latency in ms, the time the round took and the number of failures.
pub fn round(
    rt: &tokio::runtime::Runtime,
    port: u16,
    work: Vec<(Vec<u8>, String)>,
    concurrency: usize,
) -> (Vec<f64>, Duration, usize) {
    rt.block_on(async move {
        let work = Arc::new(work);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..concurrency {
            let work = work.clone();
            tasks.push(tokio::spawn(async move {
                client(port, &work, c, concurrency).await
            }));
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
    })
}

/// Peak resident memory of a process in kB (`VmHWM`; `self` for this one).
pub fn peak_rss_kb(pid: &str) -> u64 {
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

/// CPU time (user + system) a process has used so far, in ms (`/proc/<pid>/stat`, clock
/// ticks of 10 ms; `self` for this one).
pub fn cpu_ms(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which is in parentheses and may hold blanks).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks * 10.0)
        })
        .unwrap_or(0.0)
}

/// The `p` quantile of sorted values (NaN when empty).
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
