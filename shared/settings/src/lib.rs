//! One reader for every hybrid-burst setting: app settings in Azure, the environment on Lambda
//! and in local runs, a map in tests — always through one [`Get`] function.
//!
//! - A blank value counts as unset, so an empty app setting means "use the default".
//! - Every problem is one [`ConfigError`] naming the setting and what is wrong with it, e.g.
//!   `BURST_ARM_TIMEOUT_MS: expected milliseconds from 1 to 120000, got "abc"`.
//! - Secrets never show: [`Secret`] prints `<redacted>`, secret settings are never echoed in an
//!   error, and URL errors never echo the URL (a query may carry a signature).

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;
use url::Url;

/// Reads one setting by name (environment, app settings, a test map).
pub type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A setting that is missing or unusable: fix the named setting and restart.
///
/// `setting` is the setting's name; for a failure of the environment rather than of a value
/// (no TLS backend, no managed identity) it names what could not be set up. `problem` never
/// contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            setting: setting.into(),
            problem: problem.into(),
        }
    }

    /// A required setting is absent; `why` says what needs it.
    pub fn missing(setting: impl Into<String>, why: &str) -> Self {
        Self::new(setting, format!("not set ({why})"))
    }
}

/// A value that must not appear in logs, `Debug` output or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a plain `http://` URL is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainHttp {
    /// Anywhere (the endpoint carries no credential, or the operator chose it).
    Allowed,
    /// Only to 127.0.0.1, ::1 or localhost: credentials travel with every request.
    LoopbackOnly,
}

/// Typed access to the settings behind a [`Get`].
#[derive(Clone, Copy)]
pub struct Settings<'a> {
    get: Get<'a>,
}

impl fmt::Debug for Settings<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Settings(..)")
    }
}

impl<'a> Settings<'a> {
    pub fn new(get: Get<'a>) -> Self {
        Settings { get }
    }

    /// The trimmed value; `None` when unset or blank.
    pub fn string(&self, name: &str) -> Option<String> {
        (self.get)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// The trimmed value, or an error saying what needs it.
    pub fn required(&self, name: &str, why: &str) -> Result<String, ConfigError> {
        self.string(name)
            .ok_or_else(|| ConfigError::missing(name, why))
    }

    /// A secret value; `None` when unset or blank.
    pub fn secret(&self, name: &str) -> Option<Secret> {
        self.string(name).map(Secret)
    }

    /// A secret value, or an error saying what needs it.
    pub fn required_secret(&self, name: &str, why: &str) -> Result<Secret, ConfigError> {
        self.required(name, why).map(Secret)
    }

    /// A value checked by `parse`, whose error text becomes the problem (it must not echo a
    /// secret). `None` when unset.
    pub fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        self.string(name)
            .map(|v| parse(&v).map_err(|problem| ConfigError::new(name, problem)))
            .transpose()
    }

    /// A whole number within `range`; `default` when unset.
    pub fn integer<T>(
        &self,
        name: &str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        self.ranged(name, "a whole number", default, range)
    }

    /// A duration in milliseconds within `range`; `default_ms` when unset.
    pub fn millis(
        &self,
        name: &str,
        default_ms: u64,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.ranged(name, "milliseconds", default_ms, range)
            .map(Duration::from_millis)
    }

    /// `true/false`, `1/0`, `yes/no`, `on/off` (any case); `default` when unset.
    pub fn boolean(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.string(name) {
            None => Ok(default),
            Some(v) => parse_bool(&v).ok_or_else(|| {
                ConfigError::new(name, format!("expected true or false, got {}", shown(&v)))
            }),
        }
    }

    /// A comma-separated list: items trimmed, blanks and repeats dropped, order kept. `None`
    /// when unset.
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        self.string(name).map(|v| split_list(&v))
    }

    /// An `http(s)` base URL (see [`base_url`]); `None` when unset.
    pub fn base_url(&self, name: &str, plain_http: PlainHttp) -> Result<Option<Url>, ConfigError> {
        self.string(name)
            .map(|v| base_url(name, &v, plain_http))
            .transpose()
    }

    fn ranged<T>(
        &self,
        name: &str,
        unit: &str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(raw) = self.string(name) else {
            return Ok(default);
        };
        raw.parse::<T>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ConfigError::new(
                    name,
                    format!(
                        "expected {unit} from {} to {}, got {}",
                        range.start(),
                        range.end(),
                        shown(&raw)
                    ),
                )
            })
    }
}

/// A fixed list of settings as a [`Get`] source (tests, tools, fixed configurations); the first
/// pair with the name wins.
pub fn from_pairs<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_string())
    }
}

/// `true/false`, `1/0`, `yes/no`, `on/off` in any case.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Splits a comma-separated list: trimmed, blanks and repeats dropped, order kept.
pub fn split_list(raw: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !out.iter().any(|seen| seen == item) {
            out.push(item.to_string());
        }
    }
    out
}

/// Checks a base URL: `http` or `https` with a host, no user info, query or fragment; plain
/// `http` only where `plain_http` allows it. Errors never echo the value.
pub fn base_url(setting: &str, raw: &str, plain_http: PlainHttp) -> Result<Url, ConfigError> {
    let invalid = |problem: &str| ConfigError::new(setting, problem);
    let url = Url::parse(raw.trim())
        .map_err(|e| ConfigError::new(setting, format!("not a URL ({e})")))?;
    let host = url
        .host()
        .ok_or_else(|| invalid("expected an http(s) URL with a host"))?;
    match url.scheme() {
        "https" => {}
        "http" if plain_http == PlainHttp::Allowed || is_loopback(&host) => {}
        "http" => {
            return Err(invalid(
                "the scheme must be https (http only for 127.0.0.1, ::1 or localhost)",
            ));
        }
        _ => return Err(invalid("expected an http(s) URL with a host")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("a base URL takes no user or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a base URL takes no query or fragment"));
    }
    Ok(url)
}

/// Whether a URL host is 127.0.0.0/8, ::1 or `localhost`.
pub fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// A URL for logs: scheme, host, port and path; query values replaced by `…` (a SAS or a
/// presigned URL carries its signature there).
pub fn redacted_url(url: &Url) -> String {
    let mut out = format!("{}{}", url.origin().ascii_serialization(), url.path());
    let keys: Vec<String> = url.query_pairs().map(|(k, _)| format!("{k}=…")).collect();
    if !keys.is_empty() {
        out.push('?');
        out.push_str(&keys.join("&"));
    }
    out
}

/// A site id: 1 to 64 characters of `A-Z a-z 0-9 . _ -`, not starting with a dot — it becomes
/// a file or blob name, so `.`, `..` and hidden names are impossible.
pub fn is_site_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !id.starts_with('.')
}

/// A non-secret value quoted for an error message, clipped so a pasted blob stays readable.
fn shown(raw: &str) -> String {
    const MAX: usize = 40;
    if raw.chars().count() <= MAX {
        format!("{raw:?}")
    } else {
        let head: String = raw.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with<'m>(map: &'m HashMap<&str, &str>) -> impl Fn(&str) -> Option<String> + 'm {
        move |k| map.get(k).map(|v| v.to_string())
    }

    #[test]
    fn blank_is_unset_and_values_are_trimmed() {
        let map = HashMap::from([("A", "  x "), ("B", "   "), ("C", "")]);
        let get = with(&map);
        let s = Settings::new(&get);
        assert_eq!(s.string("A").as_deref(), Some("x"));
        assert_eq!(s.string("B"), None);
        assert_eq!(s.string("C"), None);
        assert_eq!(s.string("D"), None);
        assert_eq!(
            s.required("B", "the scale set needs it")
                .unwrap_err()
                .to_string(),
            "B: not set (the scale set needs it)"
        );
    }

    #[test]
    fn durations_and_integers_name_the_setting_the_range_and_the_value() {
        let map = HashMap::from([
            ("BURST_ARM_TIMEOUT_MS", "abc"),
            ("OK_MS", "250"),
            ("BIG_MS", "60001"),
            ("N", "7"),
            ("NEG", "-1"),
        ]);
        let get = with(&map);
        let s = Settings::new(&get);
        assert_eq!(
            s.millis("BURST_ARM_TIMEOUT_MS", 10_000, 100..=60_000)
                .unwrap_err()
                .to_string(),
            "BURST_ARM_TIMEOUT_MS: expected milliseconds from 100 to 60000, got \"abc\""
        );
        assert_eq!(
            s.millis("OK_MS", 5, 1..=1000).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            s.millis("UNSET_MS", 5000, 1..=60_000).unwrap(),
            Duration::from_millis(5000)
        );
        let big = s.millis("BIG_MS", 1, 1..=60_000).unwrap_err();
        assert_eq!(big.setting, "BIG_MS");
        assert!(big.problem.contains("got \"60001\""), "{big}");
        assert_eq!(s.integer("N", 1u32, 0..=10).unwrap(), 7);
        assert_eq!(s.integer("UNSET", 3u32, 0..=10).unwrap(), 3);
        assert_eq!(
            s.integer("NEG", 0u64, 0..=10).unwrap_err().to_string(),
            "NEG: expected a whole number from 0 to 10, got \"-1\""
        );
    }

    #[test]
    fn long_values_are_clipped_in_errors() {
        let long = "9".repeat(500);
        let map = HashMap::from([("T", long.as_str())]);
        let get = with(&map);
        let err = Settings::new(&get).millis("T", 1, 1..=10).unwrap_err();
        assert!(err.problem.len() < 120, "{err}");
        assert!(err.problem.ends_with('…'), "{err}");
    }

    #[test]
    fn booleans_and_lists() {
        let map = HashMap::from([
            ("YES", "Yes"),
            ("OFF", "off"),
            ("BAD", "maybe"),
            ("L", " a, b ,,a, c "),
        ]);
        let get = with(&map);
        let s = Settings::new(&get);
        assert!(s.boolean("YES", false).unwrap());
        assert!(!s.boolean("OFF", true).unwrap());
        assert!(s.boolean("UNSET", true).unwrap());
        assert_eq!(
            s.boolean("BAD", false).unwrap_err().to_string(),
            "BAD: expected true or false, got \"maybe\""
        );
        assert_eq!(s.list("L").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(s.list("UNSET"), None);
    }

    #[test]
    fn secrets_never_show() {
        let map = HashMap::from([("KEY", "hunter2-secret")]);
        let get = with(&map);
        let s = Settings::new(&get);
        let secret = s.secret("KEY").unwrap();
        assert_eq!(secret.expose(), "hunter2-secret");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        let err = s.required_secret("OTHER", "needed").unwrap_err();
        assert_eq!(err.setting, "OTHER");
        // A parse error speaks only of what the caller's check says.
        let err = s
            .parsed("KEY", |_| {
                Err::<(), _>("must start with tskey-".to_string())
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "KEY: must start with tskey-");
        assert!(!format!("{err:?}").contains("hunter2"));
    }

    #[test]
    fn base_urls_follow_the_http_rules_and_never_echo_the_value() {
        let ok = base_url("U", "https://management.azure.com", PlainHttp::LoopbackOnly).unwrap();
        assert_eq!(ok.host_str(), Some("management.azure.com"));
        assert!(base_url("U", "http://127.0.0.1:8080/x", PlainHttp::LoopbackOnly).is_ok());
        assert!(base_url("U", "http://[::1]:8080", PlainHttp::LoopbackOnly).is_ok());
        assert!(base_url("U", "http://localhost", PlainHttp::LoopbackOnly).is_ok());
        assert!(base_url("U", "http://10.0.0.1", PlainHttp::Allowed).is_ok());
        let cases = [
            ("http://10.0.0.1", "http only for"),
            ("ftp://host", "expected an http(s) URL"),
            ("https://host/x?sig=c2VjcmV0", "no query or fragment"),
            ("https://user:c2VjcmV0@host", "no user or password"),
            ("https://host/#c2VjcmV0", "no query or fragment"),
            ("not a url c2VjcmV0", "not a URL"),
        ];
        for (raw, expected) in cases {
            let err = base_url("BURST_X_URL", raw, PlainHttp::LoopbackOnly).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("BURST_X_URL: "), "{raw}: {text}");
            assert!(text.contains(expected), "{raw}: {text}");
            assert!(!text.contains("c2VjcmV0"), "{raw}: {text}");
        }
    }

    #[test]
    fn redacted_urls_keep_the_keys_only() {
        let url =
            Url::parse("https://acct.blob.core.windows.net/state?sv=2025&sig=c2VjcmV0").unwrap();
        assert_eq!(
            redacted_url(&url),
            "https://acct.blob.core.windows.net/state?sv=…&sig=…"
        );
    }

    #[test]
    fn site_ids() {
        for ok in ["home", "lab-2", "a.b_c", &"x".repeat(64)] {
            assert!(is_site_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "../etc",
            "a/b",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(!is_site_id(bad), "{bad}");
        }
    }
}
