//! The witness probe: can this place (a VPS elsewhere) reach home?
//! `tcp://host:port` → a TCP connect; `http(s)://...` → a GET where any HTTP answer counts as
//! reachable (a 401 from a Kubernetes API still proves the path works).

use std::time::Duration;

use tokio::time::Instant;

/// The probe result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub reachable: bool,
    /// Time to connect (TCP) or to the response headers (HTTP), when reachable.
    pub latency_ms: Option<u64>,
    /// For the log: the status or the error.
    pub detail: String,
}

/// A target the probe cannot handle.
#[derive(Debug, thiserror::Error)]
#[error("witness_target {0:?} must be tcp://host:port, https://... or http://...")]
pub struct BadTarget(pub String);

/// Checks the target's syntax without probing.
pub fn validate(target: &str) -> Result<(), BadTarget> {
    if let Some(rest) = target.strip_prefix("tcp://") {
        match rest.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                Ok(())
            }
            _ => Err(BadTarget(target.to_string())),
        }
    } else if (target.starts_with("https://") || target.starts_with("http://"))
        && reqwest::Url::parse(target).is_ok()
    {
        Ok(())
    } else {
        Err(BadTarget(target.to_string()))
    }
}

/// Probes `target` once, within `limit`.
pub async fn probe(target: &str, limit: Duration, insecure_tls: bool) -> Result<Probe, BadTarget> {
    validate(target)?;
    let started = Instant::now();
    // `host:port` and `[v6]:port` both resolve as they are.
    let result: Result<String, String> = if let Some(addr) = target.strip_prefix("tcp://") {
        match tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_stream)) => Ok("connected".to_string()),
            Ok(Err(e)) => Err(format!("connect: {e}")),
            Err(_) => Err(format!("connect: no answer in {limit:?}")),
        }
    } else {
        let client = reqwest::Client::builder()
            .user_agent(concat!("burst-agent-witness/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .tls_danger_accept_invalid_certs(insecure_tls)
            .timeout(limit)
            .build()
            .map_err(|e| BadTarget(format!("{target}: {e}")))?;
        match client.get(target).send().await {
            Ok(r) => Ok(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Err(e.to_string()),
        }
    };
    let elapsed = started.elapsed();
    Ok(match result {
        Ok(detail) => Probe {
            reachable: true,
            latency_ms: Some(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)),
            detail,
        },
        Err(detail) => Probe {
            reachable: false,
            latency_ms: None,
            detail,
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn target_syntax() {
        for ok in [
            "tcp://home.example:6443",
            "tcp://[::1]:22",
            "https://home.example/readyz",
            "http://127.0.0.1:8080/",
        ] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "home.example:6443",
            "tcp://home.example",
            "tcp://:80",
            "ftp://x",
            "tcp://h:0",
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn tcp_probe_up_and_down() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = format!("tcp://127.0.0.1:{port}");
        let up = probe(&target, Duration::from_secs(2), false).await.unwrap();
        assert!(up.reachable && up.latency_ms.is_some(), "{up:?}");
        drop(listener);
        let down = probe(&target, Duration::from_secs(2), false).await.unwrap();
        assert!(!down.reachable && down.latency_ms.is_none(), "{down:?}");
    }
}
