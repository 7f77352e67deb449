//! Building a `kube::Client` from a [`ClusterConnection`], and classifying what went wrong
//! when a request failed.

use crate::config::ClusterConnection;
use secrecy::SecretString;

/// Builds a client for one probe or migration.
///
/// A fresh client per operation: a `kube::Client` runs a worker task on the runtime that built
/// it, and a client kept beyond that runtime would fail every request as if home were
/// unreachable. Building one is cheap next to the network round trips, and a fresh connection
/// is what the probe should measure anyway.
pub(crate) fn build(c: &ClusterConnection, retry: bool) -> Result<kube::Client, kube::Error> {
    let mut config = kube::Config::new(c.url.clone());
    config.auth_info.token = c.token.clone().map(|t| SecretString::new(t.into()));
    config.root_cert = c.ca_certs.clone();
    config.accept_invalid_certs = c.insecure;
    // Per-request bounds; the callers also bound the whole operation.
    config.connect_timeout = Some(c.timeout);
    config.read_timeout = Some(c.timeout);
    config.write_timeout = Some(c.timeout);
    config.default_retry = retry;
    kube::Client::try_from(config)
}

/// What a failed request says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The server answered with this HTTP status.
    Answered { code: u16, message: String },
    /// 401/403 (or 0: kube's auth layer failed before sending): our credentials or
    /// permissions are wrong.
    Refused { code: u16, message: String },
    /// No usable answer: connect refused, timeout, DNS, TLS.
    Transport(String),
    /// Anything else (a body we could not read or parse, a client we could not build).
    Other(String),
}

impl Failure {
    pub(crate) fn detail(&self) -> String {
        match self {
            // Code 0: refused by kube's own auth layer before any request was sent.
            Failure::Refused { code: 0, message } => short(message),
            Failure::Answered { code, message } | Failure::Refused { code, message } => {
                format!("HTTP {code}: {}", short(message))
            }
            Failure::Transport(d) | Failure::Other(d) => short(d),
        }
    }
}

/// Keeps a detail line readable (a 500 from `/readyz` lists every check).
pub(crate) fn short(s: &str) -> String {
    const MAX: usize = 300;
    let s = s.trim().replace('\n', "; ");
    if s.chars().count() <= MAX {
        s
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

pub(crate) fn classify(err: &kube::Error) -> Failure {
    use kube::Error as E;
    match err {
        E::Api(status) => {
            let code = status.code;
            let message = if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            };
            if code == 401 || code == 403 {
                Failure::Refused { code, message }
            } else {
                Failure::Answered { code, message }
            }
        }
        E::HyperError(_) | E::Service(_) | E::RustlsTls(_) | E::TlsRequired => {
            Failure::Transport(chain(err))
        }
        E::Auth(_) => Failure::Refused {
            code: 0,
            message: chain(err),
        },
        _ => Failure::Other(chain(err)),
    }
}

/// The error with its sources, so "connection refused" is not hidden behind "ServiceError".
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
