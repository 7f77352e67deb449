//! Building a `kube::Client` from a [`ClusterConnection`], and classifying what went wrong
//! when a request failed.

use crate::config::ClusterConnection;
use secrecy::SecretString;
use tokio::sync::OnceCell;

/// A kube client built on first use: building one spawns a task, so it needs the Tokio
/// runtime, which a constructor called at start-up may not have yet.
pub(crate) struct LazyClient {
    connection: ClusterConnection,
    /// Retry 429/503/504 inside kube (fine for the migrator, not for a short probe).
    retry: bool,
    cell: OnceCell<kube::Client>,
}

impl std::fmt::Debug for LazyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyClient")
            .field("connection", &self.connection)
            .field("retry", &self.retry)
            .field("built", &self.cell.initialized())
            .finish()
    }
}

impl LazyClient {
    pub(crate) fn new(connection: ClusterConnection, retry: bool) -> Self {
        Self {
            connection,
            retry,
            cell: OnceCell::new(),
        }
    }

    pub(crate) fn connection(&self) -> &ClusterConnection {
        &self.connection
    }

    pub(crate) async fn get(&self) -> Result<&kube::Client, kube::Error> {
        self.cell
            .get_or_try_init(|| async { build(&self.connection, self.retry) })
            .await
    }
}

fn build(c: &ClusterConnection, retry: bool) -> Result<kube::Client, kube::Error> {
    let mut config = kube::Config::new(c.url.clone());
    config.auth_info.token = c.token.clone().map(|t| SecretString::new(t.into()));
    config.root_cert = c.ca_certs.clone();
    config.accept_invalid_certs = c.insecure;
    // Per-request bounds; the callers also bound the whole operation.
    config.connect_timeout = Some(c.timeout);
    config.read_timeout = Some(c.timeout);
    config.write_timeout = Some(c.timeout);
    // Count the read timeout from the request, not from when a pooled connection went idle.
    config.reset_reader_on_write = true;
    config.default_retry = retry;
    kube::Client::try_from(config)
}

/// What a failed request says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The server answered with this HTTP status.
    Answered { code: u16, message: String },
    /// 401/403: our credentials or permissions are wrong.
    Refused { code: u16, message: String },
    /// No usable answer: connect refused, timeout, DNS, TLS.
    Transport(String),
    /// Anything else (a body we could not read or parse, a client we could not build).
    Other(String),
}

impl Failure {
    pub(crate) fn detail(&self) -> String {
        match self {
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
