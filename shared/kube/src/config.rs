//! Settings of the two cluster connections (home probe, cloud migrator), read from the
//! function app's settings and checked before any request is made.
//!
//! Errors name the setting and what is wrong with it, never its value when the value is a
//! secret (the token) or key material (the CA).

use base64::Engine as _;
use std::fmt;
use std::time::Duration;

pub use burst_settings::ConfigError;
use burst_settings::{Get, Settings};

fn invalid(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(setting, reason)
}

/// Default overall timeout of one home probe.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_millis(3000);
/// Default overall timeout of one migration.
pub const DEFAULT_MIGRATE_TIMEOUT: Duration = Duration::from_millis(10_000);

/// How to reach one Kubernetes API server.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterConnection {
    /// `https://host[:port][/base-path]`, or `http://` to a loopback address (tests, local runs).
    pub url: http::Uri,
    /// Bearer token (a service account token), if any.
    pub token: Option<String>,
    /// DER certificates of the cluster CA; `None` uses the platform's trust store.
    pub ca_certs: Option<Vec<Vec<u8>>>,
    /// Skip TLS certificate verification (tests and local use only).
    pub insecure: bool,
    /// Overall time allowed for one probe or one migration.
    pub timeout: Duration,
}

impl ClusterConnection {
    /// `url` with `token`, the platform's trust store and `timeout`.
    fn plain(url: http::Uri, token: Option<String>, timeout: Duration) -> Self {
        Self {
            url,
            token,
            ca_certs: None,
            insecure: false,
            timeout,
        }
    }
}

impl fmt::Debug for ClusterConnection {
    // The token is a credential: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConnection")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_certs", &self.ca_certs.as_ref().map(Vec::len))
            .field("insecure", &self.insecure)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The names of one connection's settings.
struct Names {
    url: &'static str,
    token: &'static str,
    ca: &'static str,
    insecure: &'static str,
    timeout: &'static str,
}

const HOME: Names = Names {
    url: "BURST_HOME_KUBE_URL",
    token: "BURST_HOME_KUBE_TOKEN",
    ca: "BURST_HOME_KUBE_CA",
    insecure: "BURST_HOME_KUBE_INSECURE",
    timeout: "BURST_HOME_PROBE_TIMEOUT_MS",
};

const CLOUD: Names = Names {
    url: "BURST_CLOUD_KUBE_URL",
    token: "BURST_CLOUD_KUBE_TOKEN",
    ca: "BURST_CLOUD_KUBE_CA",
    insecure: "BURST_CLOUD_KUBE_INSECURE",
    timeout: "BURST_CLOUD_KUBE_TIMEOUT_MS",
};

/// The setting naming the cloud namespaces to search (comma list; empty = all).
pub const CLOUD_NAMESPACES: &str = "BURST_CLOUD_NAMESPACES";

/// Settings of the home cluster probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HomeProbeConfig {
    pub connection: ClusterConnection,
}

impl HomeProbeConfig {
    /// Reads `BURST_HOME_KUBE_*` and `BURST_HOME_PROBE_TIMEOUT_MS`; `Ok(None)` when
    /// `BURST_HOME_KUBE_URL` is not set (the probe is off and reports `Unknown`).
    pub fn from_settings(get: Get<'_>) -> Result<Option<Self>, ConfigError> {
        Ok(read_connection(get, &HOME, DEFAULT_PROBE_TIMEOUT)?
            .map(|connection| Self { connection }))
    }

    /// A configuration for tests and local runs: `url`, an optional token, default timeout.
    pub fn new(url: http::Uri, token: Option<String>) -> Self {
        Self {
            connection: ClusterConnection::plain(url, token, DEFAULT_PROBE_TIMEOUT),
        }
    }
}

/// Settings of the cloud cluster migrator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudMigratorConfig {
    pub connection: ClusterConnection,
    /// Namespaces to search; empty means all namespaces.
    pub namespaces: Vec<String>,
}

impl CloudMigratorConfig {
    /// Reads `BURST_CLOUD_KUBE_*` and `BURST_CLOUD_NAMESPACES`; `Ok(None)` when
    /// `BURST_CLOUD_KUBE_URL` is not set.
    pub fn from_settings(get: Get<'_>) -> Result<Option<Self>, ConfigError> {
        let Some(connection) = read_connection(get, &CLOUD, DEFAULT_MIGRATE_TIMEOUT)? else {
            return Ok(None);
        };
        let namespaces = Settings::new(get)
            .parsed(CLOUD_NAMESPACES, parse_namespaces)?
            .unwrap_or_default();
        Ok(Some(Self {
            connection,
            namespaces,
        }))
    }

    /// A configuration for tests and local runs: all namespaces, default timeout.
    pub fn new(url: http::Uri, token: Option<String>) -> Self {
        Self {
            connection: ClusterConnection::plain(url, token, DEFAULT_MIGRATE_TIMEOUT),
            namespaces: Vec::new(),
        }
    }
}

fn read_connection(
    get: Get<'_>,
    names: &Names,
    default_timeout: Duration,
) -> Result<Option<ClusterConnection>, ConfigError> {
    let settings = Settings::new(get);
    let Some(url) = settings.parsed(names.url, |raw| {
        parse_url(names.url, raw).map_err(|e| e.problem)
    })?
    else {
        return Ok(None);
    };
    let token = settings.parsed(names.token, |t| {
        // It ends up in an HTTP header; say what is wrong without echoing it.
        if t.bytes().any(|b| b.is_ascii_control() || !b.is_ascii()) {
            Err("contains characters that cannot be sent in an HTTP header".to_string())
        } else {
            Ok(t.to_string())
        }
    })?;
    let ca_certs = settings.parsed(names.ca, |pem| {
        parse_ca(names.ca, pem).map_err(|e| e.problem)
    })?;
    let insecure = settings.boolean(names.insecure, false)?;
    let timeout = settings.millis(
        names.timeout,
        default_timeout.as_millis() as u64,
        1..=600_000,
    )?;
    Ok(Some(ClusterConnection {
        url,
        token,
        ca_certs,
        insecure,
        timeout,
    }))
}

/// `https://...` anywhere; `http://` only to loopback (a token must not cross a network in
/// clear text).
pub(crate) fn parse_url(setting: &str, raw: &str) -> Result<http::Uri, ConfigError> {
    let uri: http::Uri = raw
        .parse()
        .map_err(|e| invalid(setting, format!("not a URL: {e}")))?;
    let host = uri.host().ok_or_else(|| {
        invalid(
            setting,
            "needs a scheme and a host, e.g. https://home.example:6443",
        )
    })?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(invalid(
                    setting,
                    "plain http is only allowed to a loopback address; use https",
                ));
            }
        }
        _ => {
            return Err(invalid(
                setting,
                "the scheme must be https (or http to loopback)",
            ));
        }
    }
    if uri.query().is_some() {
        return Err(invalid(setting, "must not have a query string"));
    }
    // kube joins request paths onto the base path; a trailing slash would double it.
    let path = uri.path().trim_end_matches('/');
    if path.is_empty() {
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        let scheme = uri.scheme_str().unwrap_or("https");
        return format!("{scheme}://{authority}")
            .parse()
            .map_err(|e| invalid(setting, format!("not a URL: {e}")));
    }
    Ok(uri)
}

/// The cluster CA: PEM text, PEM with `\n` escapes (settings that cannot hold newlines), or
/// base64 of PEM (a kubeconfig's `certificate-authority-data`).
pub(crate) fn parse_ca(setting: &str, raw: &str) -> Result<Vec<Vec<u8>>, ConfigError> {
    let raw = raw.trim();
    let pem_text: Vec<u8> = if raw.contains("-----BEGIN") {
        raw.replace("\\n", "\n").into_bytes()
    } else {
        let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| {
                invalid(
                    setting,
                    "neither PEM (-----BEGIN CERTIFICATE-----) nor base64 of PEM",
                )
            })?
    };
    let blocks = pem::parse_many(&pem_text)
        .map_err(|e| invalid(setting, format!("PEM does not parse: {e}")))?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect();
    if certs.is_empty() {
        return Err(invalid(setting, "contains no CERTIFICATE block"));
    }
    // The TLS stack would refuse it at the first request; say so now.
    let mut roots = rustls::RootCertStore::empty();
    for (i, der) in certs.iter().enumerate() {
        roots
            .add(rustls::pki_types::CertificateDer::from(der.as_slice()))
            .map_err(|e| {
                invalid(
                    setting,
                    format!("certificate {} is not usable as a CA: {e}", i + 1),
                )
            })?;
    }
    Ok(certs)
}

/// A namespace name is a DNS-1123 label.
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn parse_namespaces(list: &str) -> Result<Vec<String>, String> {
    let names = burst_settings::split_list(list);
    match names.iter().find(|ns| !is_dns1123_label(ns)) {
        Some(bad) => Err(format!(
            "{bad:?} is not a namespace name (lowercase letters, digits, '-')"
        )),
        None => Ok(names),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use burst_settings::from_pairs as settings;

    // A self-signed P-256 CA certificate (made with openssl for these tests; no key kept).
    const CA_PEM: &str = include_str!("../tests/fixtures/cluster-ca.pem");

    #[test]
    fn unset_url_means_not_configured() {
        assert_eq!(
            HomeProbeConfig::from_settings(&settings(&[])).unwrap(),
            None
        );
        let get = settings(&[
            ("BURST_HOME_KUBE_URL", "  "),
            ("BURST_HOME_KUBE_TOKEN", "t"),
        ]);
        assert_eq!(HomeProbeConfig::from_settings(&get).unwrap(), None);
        assert_eq!(
            CloudMigratorConfig::from_settings(&settings(&[])).unwrap(),
            None
        );
    }

    #[test]
    fn home_settings_are_read_with_defaults() {
        let get = settings(&[("BURST_HOME_KUBE_URL", "https://home.example:6443/")]);
        let c = HomeProbeConfig::from_settings(&get)
            .unwrap()
            .unwrap()
            .connection;
        assert_eq!(c.url.to_string(), "https://home.example:6443/");
        assert_eq!(c.url.path(), "/");
        assert_eq!(c.token, None);
        assert_eq!(c.ca_certs, None);
        assert!(!c.insecure);
        assert_eq!(c.timeout, Duration::from_millis(3000));

        let get = settings(&[
            ("BURST_HOME_KUBE_URL", "http://127.0.0.1:8080"),
            ("BURST_HOME_KUBE_TOKEN", " abc.def "),
            ("BURST_HOME_KUBE_CA", CA_PEM),
            ("BURST_HOME_KUBE_INSECURE", "TRUE"),
            ("BURST_HOME_PROBE_TIMEOUT_MS", "250"),
        ]);
        let c = HomeProbeConfig::from_settings(&get)
            .unwrap()
            .unwrap()
            .connection;
        assert_eq!(c.token.as_deref(), Some("abc.def"));
        assert_eq!(c.ca_certs.as_ref().map(Vec::len), Some(1));
        assert!(c.insecure);
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert!(
            !format!("{c:?}").contains("abc.def"),
            "the token is redacted"
        );
    }

    #[test]
    fn ca_in_three_spellings_gives_the_same_der() {
        let plain = parse_ca("X", CA_PEM).unwrap();
        let escaped = parse_ca("X", &CA_PEM.replace('\n', "\\n")).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(CA_PEM);
        let data = parse_ca("X", &b64).unwrap();
        assert_eq!(plain, escaped);
        assert_eq!(plain, data);
        let body: String = CA_PEM.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(
            plain,
            vec![
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap()
            ]
        );
    }

    #[test]
    fn a_pem_block_that_is_not_a_certificate_is_refused() {
        let garbage =
            "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUQ2Fs\n-----END CERTIFICATE-----\n";
        let err = parse_ca("BURST_CLOUD_KUBE_CA", garbage).unwrap_err();
        assert_eq!(err.setting, "BURST_CLOUD_KUBE_CA");
        assert!(
            err.problem
                .starts_with("certificate 1 is not usable as a CA"),
            "{err}"
        );
        let key = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            parse_ca("X", key).unwrap_err().to_string(),
            "X: contains no CERTIFICATE block"
        );
    }

    #[test]
    fn bad_values_name_the_setting_and_never_echo_secrets() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("BURST_HOME_KUBE_URL", "home.example")],
                "BURST_HOME_KUBE_URL",
            ),
            (
                &[("BURST_HOME_KUBE_URL", "ftp://home.example")],
                "BURST_HOME_KUBE_URL",
            ),
            (
                &[("BURST_HOME_KUBE_URL", "http://10.0.0.5:6443")],
                "BURST_HOME_KUBE_URL",
            ),
            (
                &[("BURST_HOME_KUBE_URL", "https://h/?x=1")],
                "BURST_HOME_KUBE_URL",
            ),
            (
                &[
                    ("BURST_HOME_KUBE_URL", "https://h"),
                    ("BURST_HOME_KUBE_INSECURE", "maybe"),
                ],
                "BURST_HOME_KUBE_INSECURE",
            ),
            (
                &[
                    ("BURST_HOME_KUBE_URL", "https://h"),
                    ("BURST_HOME_PROBE_TIMEOUT_MS", "0"),
                ],
                "BURST_HOME_PROBE_TIMEOUT_MS",
            ),
            (
                &[
                    ("BURST_HOME_KUBE_URL", "https://h"),
                    ("BURST_HOME_PROBE_TIMEOUT_MS", "3s"),
                ],
                "BURST_HOME_PROBE_TIMEOUT_MS",
            ),
            (
                &[
                    ("BURST_HOME_KUBE_URL", "https://h"),
                    ("BURST_HOME_KUBE_CA", "secret-not-pem!"),
                ],
                "BURST_HOME_KUBE_CA",
            ),
            (
                &[
                    ("BURST_HOME_KUBE_URL", "https://h"),
                    ("BURST_HOME_KUBE_TOKEN", "secret\u{7}x"),
                ],
                "BURST_HOME_KUBE_TOKEN",
            ),
        ];
        for (pairs, setting) in cases {
            let err = HomeProbeConfig::from_settings(&settings(pairs)).unwrap_err();
            assert_eq!(err.setting, *setting, "{pairs:?}");
            assert!(!err.problem.contains("secret"), "{err}");
        }
    }

    #[test]
    fn loopback_http_is_allowed() {
        for url in [
            "http://127.0.0.1:1",
            "http://localhost:8080",
            "http://[::1]:9",
        ] {
            assert!(parse_url("X", url).is_ok(), "{url}");
        }
    }

    #[test]
    fn cloud_namespaces_are_validated_and_deduplicated() {
        let get = settings(&[
            ("BURST_CLOUD_KUBE_URL", "https://cloud.example"),
            ("BURST_CLOUD_NAMESPACES", " apps, web ,,apps "),
            ("BURST_CLOUD_KUBE_TIMEOUT_MS", "1500"),
        ]);
        let c = CloudMigratorConfig::from_settings(&get).unwrap().unwrap();
        assert_eq!(c.namespaces, vec!["apps".to_string(), "web".to_string()]);
        assert_eq!(c.connection.timeout, Duration::from_millis(1500));

        let get = settings(&[("BURST_CLOUD_KUBE_URL", "https://cloud.example")]);
        let c = CloudMigratorConfig::from_settings(&get).unwrap().unwrap();
        assert!(c.namespaces.is_empty());
        assert_eq!(c.connection.timeout, Duration::from_millis(10_000));

        let get = settings(&[
            ("BURST_CLOUD_KUBE_URL", "https://cloud.example"),
            ("BURST_CLOUD_NAMESPACES", "apps,Bad_Name"),
        ]);
        let err = CloudMigratorConfig::from_settings(&get).unwrap_err();
        assert_eq!(
            err.to_string(),
            "BURST_CLOUD_NAMESPACES: \"Bad_Name\" is not a namespace name (lowercase letters, digits, '-')"
        );
    }
}
