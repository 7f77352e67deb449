//! A small client for upsd's TCP line protocol (Network UPS Tools, port 3493).
//!
//! Hand-written on purpose: the protocol is a few line-oriented commands, and no maintained
//! crate speaks it well (async, with timeouts, quoted-value unescaping and typed `ERR` replies).
//! Only the read-only commands the agent needs are here: `GET VAR`, `LIST VAR`, `LIST UPS`,
//! `LOGOUT`. This module does no retrying and no logging; callers decide what an error means.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tracing::warn;

/// upsd's well-known TCP port.
pub const DEFAULT_PORT: u16 = 3493;

/// Longest reply line accepted; upsd's own limit is far below this.
const MAX_LINE: usize = 64 * 1024;

/// What went wrong talking to upsd, one variant per thing a caller may act on.
#[derive(Debug, thiserror::Error)]
pub enum UpsdError {
    /// The TCP connection could not be made (upsd down, wrong address): power state unknown.
    #[error("cannot connect to upsd at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// `ERR UNKNOWN-UPS`: upsd does not serve a UPS of that name (configuration error).
    #[error("upsd does not know this UPS (ERR UNKNOWN-UPS)")]
    UnknownUps,
    /// `ERR VAR-NOT-SUPPORTED`: the driver does not provide that variable (treat as absent).
    #[error("variable not supported by the driver (ERR VAR-NOT-SUPPORTED)")]
    VarNotSupported,
    /// `ERR DATA-STALE`: the driver stopped updating; upsd's data is too old to trust.
    #[error("upsd's data for this UPS is stale (ERR DATA-STALE)")]
    DataStale,
    /// `ERR DRIVER-NOT-CONNECTED`: upsd has no driver for the UPS right now.
    #[error("the UPS driver is not connected to upsd (ERR DRIVER-NOT-CONNECTED)")]
    DriverNotConnected,
    /// Any other `ERR <code>` reply (e.g. `ACCESS-DENIED`, `INVALID-ARGUMENT`).
    #[error("upsd answered ERR {0}")]
    Err(String),
    /// upsd closed the connection before the reply was complete.
    #[error("upsd closed the connection in the middle of a reply")]
    Closed,
    /// No (complete) reply within the timeout.
    #[error("upsd did not answer within {0:?}")]
    Timeout(Duration),
    /// A reply line that does not fit the protocol.
    #[error("unexpected reply from upsd: {0:?}")]
    Malformed(String),
    /// Any other IO error on an established connection.
    #[error("IO error talking to upsd: {0}")]
    Io(#[from] std::io::Error),
}

impl UpsdError {
    /// True when the error means "the power state cannot be known right now" (comm loss),
    /// as opposed to a configuration mistake.
    pub fn is_commloss(&self) -> bool {
        matches!(
            self,
            UpsdError::Connect { .. }
                | UpsdError::DataStale
                | UpsdError::DriverNotConnected
                | UpsdError::Closed
                | UpsdError::Timeout(_)
                | UpsdError::Io(_)
        )
    }

    fn from_err_code(code: &str) -> UpsdError {
        match code {
            "UNKNOWN-UPS" => UpsdError::UnknownUps,
            "VAR-NOT-SUPPORTED" => UpsdError::VarNotSupported,
            "DATA-STALE" => UpsdError::DataStale,
            "DRIVER-NOT-CONNECTED" => UpsdError::DriverNotConnected,
            other => UpsdError::Err(other.to_string()),
        }
    }
}

/// A UPS as NUT names it: `upsname[@hostname[:port]]` (the form upsmon passes in `UPSNAME`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpsName {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// Why a UPS name could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad UPS name {0:?} (expected name@host[:port])")]
pub struct BadUpsName(pub String);

impl UpsName {
    /// Parses `name`, `name@host`, `name@host:port`, `name@[v6addr]:port`.
    /// A missing host is `localhost`, a missing port 3493.
    pub fn parse(text: &str) -> Result<UpsName, BadUpsName> {
        let bad = || BadUpsName(text.to_string());
        let text = text.trim();
        let (name, rest) = match text.split_once('@') {
            Some((n, r)) => (n, Some(r)),
            None => (text, None),
        };
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '"') {
            return Err(bad());
        }
        let (host, port) = match rest {
            None => ("localhost".to_string(), DEFAULT_PORT),
            Some(r) if r.starts_with('[') => {
                let end = r.find(']').ok_or_else(bad)?;
                let host = &r[1..end];
                let port = match &r[end + 1..] {
                    "" => DEFAULT_PORT,
                    p => p
                        .strip_prefix(':')
                        .and_then(|p| p.parse().ok())
                        .ok_or_else(bad)?,
                };
                (host.to_string(), port)
            }
            Some(r) => match r.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
                None => (r.to_string(), DEFAULT_PORT),
            },
        };
        // No host name or address holds blanks or brackets; a host that did would not come
        // back from the canonical form (`Display`): `ups@[ h ]` would print as `ups@ h `.
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c == '[' || c == ']')
            || port == 0
        {
            return Err(bad());
        }
        Ok(UpsName {
            name: name.to_string(),
            host,
            port,
        })
    }

    /// `host:port` for connecting (IPv6 literals bracketed).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for UpsName {
    /// NUT's canonical form; the port only when it is not the default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == DEFAULT_PORT {
            write!(f, "{}@{}", self.name, host)
        } else {
            write!(f, "{}@{}:{}", self.name, host, self.port)
        }
    }
}

/// Splits a reply line into words; `"quoted values"` become one word with their backslash
/// escapes (`\"`, `\\`) undone.
pub fn split_words(line: &str) -> Result<Vec<String>, UpsdError> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Ok(words);
        };
        let mut word = String::new();
        if first == '"' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(escaped) => word.push(escaped),
                        None => return Err(UpsdError::Malformed(line.to_string())),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => word.push(c),
                }
            }
            if !closed {
                return Err(UpsdError::Malformed(line.to_string()));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' || c == '\t' {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
}

/// Quotes a value the way upsd expects in commands (backslash-escaping `"` and `\`).
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One connection to upsd. Every call is bounded by the timeout given at connect time.
#[derive(Debug)]
pub struct UpsdClient {
    stream: BufReader<TcpStream>,
    timeout: Duration,
}

impl UpsdClient {
    /// Connects to `addr` (`host:port`), giving up after `timeout`.
    pub async fn connect(addr: &str, timeout_after: Duration) -> Result<UpsdClient, UpsdError> {
        let stream = match timeout(timeout_after, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(UpsdError::Connect {
                    addr: addr.to_string(),
                    source,
                });
            }
            Err(_) => return Err(UpsdError::Timeout(timeout_after)),
        };
        stream.set_nodelay(true).ok();
        Ok(UpsdClient {
            stream: BufReader::new(stream),
            timeout: timeout_after,
        })
    }

    /// `GET VAR <ups> <var>` → the value, unescaped.
    pub async fn get_var(&mut self, ups: &str, var: &str) -> Result<String, UpsdError> {
        let limit = self.timeout;
        timeout(limit, self.get_var_inner(ups, var))
            .await
            .map_err(|_| UpsdError::Timeout(limit))?
    }

    async fn get_var_inner(&mut self, ups: &str, var: &str) -> Result<String, UpsdError> {
        self.send(&format!("GET VAR {ups} {var}")).await?;
        let line = self.read_line().await?;
        let words = split_words(&line)?;
        match words.as_slice() {
            [v, u, n, value] if v == "VAR" && u == ups && n == var => Ok(value.clone()),
            _ => Err(UpsdError::Malformed(line)),
        }
    }

    /// `LIST VAR <ups>` → every variable and its value.
    pub async fn list_var(&mut self, ups: &str) -> Result<BTreeMap<String, String>, UpsdError> {
        self.list_pairs(&format!("VAR {ups}"), "VAR", 4).await
    }

    /// `LIST UPS` → every UPS name and its description.
    pub async fn list_ups(&mut self) -> Result<BTreeMap<String, String>, UpsdError> {
        self.list_pairs("UPS", "UPS", 3).await
    }

    /// `LIST <what>` within the timeout, each row's last two words as name and value.
    async fn list_pairs(
        &mut self,
        what: &str,
        kind: &str,
        width: usize,
    ) -> Result<BTreeMap<String, String>, UpsdError> {
        let limit = self.timeout;
        let rows = timeout(limit, self.list(what, kind, width))
            .await
            .map_err(|_| UpsdError::Timeout(limit))??;
        Ok(rows
            .into_iter()
            .map(|w| (w[width - 2].clone(), w[width - 1].clone())) // `list` checked the width
            .collect())
    }

    /// Says goodbye politely; errors are irrelevant at this point.
    pub async fn logout(mut self) {
        let _ = timeout(Duration::from_millis(500), async {
            self.send("LOGOUT").await?;
            self.read_line().await
        })
        .await;
    }

    /// Runs `LIST <what>`; returns the rows between BEGIN and END, each split into words,
    /// checked to start with `row_kind` and to have `width` words.
    async fn list(
        &mut self,
        what: &str,
        row_kind: &str,
        width: usize,
    ) -> Result<Vec<Vec<String>>, UpsdError> {
        self.send(&format!("LIST {what}")).await?;
        let first = self.read_line().await?;
        if first != format!("BEGIN LIST {what}") {
            return Err(UpsdError::Malformed(first));
        }
        let end = format!("END LIST {what}");
        let mut rows = Vec::new();
        loop {
            let line = self.read_line().await?;
            if line == end {
                return Ok(rows);
            }
            let words = split_words(&line)?;
            if words.len() != width || words[0] != row_kind {
                return Err(UpsdError::Malformed(line));
            }
            rows.push(words);
        }
    }

    async fn send(&mut self, command: &str) -> Result<(), UpsdError> {
        let stream = self.stream.get_mut();
        stream.write_all(command.as_bytes()).await?;
        stream.write_all(b"\n").await?;
        Ok(())
    }

    /// One reply line without its line ending; an `ERR` line becomes the matching error
    /// (for every command, so callers only see data lines).
    async fn read_line(&mut self) -> Result<String, UpsdError> {
        let mut buf = Vec::new();
        let n = (&mut self.stream)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 || buf.last() != Some(&b'\n') {
            return Err(if n >= MAX_LINE {
                UpsdError::Malformed("reply line too long".to_string())
            } else {
                UpsdError::Closed
            });
        }
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        let line = String::from_utf8_lossy(&buf).into_owned();
        match line.strip_prefix("ERR ") {
            Some(rest) => Err(UpsdError::from_err_code(
                rest.split_whitespace().next().unwrap_or(""),
            )),
            None => Ok(line),
        }
    }
}

/// The three values the agent reports, read in one short session.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// `ups.status`, e.g. `OB DISCHRG`.
    pub status: String,
    /// `battery.charge`, percent, rounded and clamped to 0..=100.
    pub battery_charge: Option<u8>,
    /// `battery.runtime`, seconds, rounded.
    pub battery_runtime_s: Option<u64>,
}

/// Reads `ups.status`, `battery.charge` and `battery.runtime` of `ups` within `limit`.
/// Missing battery variables are `None`; a failing `ups.status` is the error.
pub async fn snapshot(ups: &UpsName, limit: Duration) -> Result<Snapshot, UpsdError> {
    let work = async {
        let mut client = UpsdClient::connect(&ups.addr(), limit).await?;
        let status = client.get_var(&ups.name, "ups.status").await?;
        let charge = optional(client.get_var(&ups.name, "battery.charge").await)?;
        let runtime = optional(client.get_var(&ups.name, "battery.runtime").await)?;
        client.logout().await;
        Ok(Snapshot {
            status,
            battery_charge: charge
                .and_then(|c| parse_number(&c))
                .map(|c| c.round().clamp(0.0, 100.0) as u8),
            battery_runtime_s: runtime
                .and_then(|r| parse_number(&r))
                .filter(|r| *r >= 0.0)
                .map(|r| r.round() as u64),
        })
    };
    timeout(limit, work)
        .await
        .map_err(|_| UpsdError::Timeout(limit))?
}

fn optional(r: Result<String, UpsdError>) -> Result<Option<String>, UpsdError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(UpsdError::VarNotSupported) => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The battery readings of a snapshot, as the payloads carry them.
impl Snapshot {
    pub fn battery(&self) -> burst_wire::Battery {
        burst_wire::Battery {
            charge: self.battery_charge.map(f64::from),
            runtime_s: self.battery_runtime_s,
        }
    }
}

/// The UPS an event is about: its label for the payload, and where to query it.
pub fn resolve_ups(upsname: &str, config: &crate::config::Config) -> (String, Option<UpsName>) {
    if !upsname.is_empty() {
        return match UpsName::parse(upsname) {
            Ok(u) => (u.to_string(), Some(u)),
            Err(e) => {
                warn!(%e, "UPSNAME from upsmon does not parse; sending it as is, without status");
                (upsname.to_string(), None)
            }
        };
    }
    match config.default_ups() {
        Ok(Some(u)) => (u.to_string(), Some(u)),
        Ok(None) => {
            warn!("upsmon gave no UPSNAME and `ups` is not configured; event without UPS status");
            (String::new(), None)
        }
        Err(e) => {
            warn!(%e, "configured `ups` is invalid");
            (config.ups.clone(), None)
        }
    }
}

/// Reads the UPS, mapping every failure to "unknown" (an empty snapshot) and logging why.
/// `WAIT` is upsd's placeholder before the driver's first data (right after upsd or the
/// driver restarted, e.g. at COMMOK): re-read for a moment, then report unknown rather than
/// a placeholder with battery values nobody measured.
pub async fn read_ups(ups: Option<&UpsName>, limit: Duration) -> Snapshot {
    let Some(ups) = ups else {
        return Snapshot::default();
    };
    let deadline = Instant::now() + limit;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match snapshot(ups, remaining).await {
            Ok(s) if s.status.split_whitespace().any(|t| t == "WAIT") => {
                if Instant::now() + WAIT_RETRY >= deadline {
                    warn!(ups = %ups, "upsd has no data from the driver yet (WAIT); reporting unknown");
                    return Snapshot::default();
                }
                tokio::time::sleep(WAIT_RETRY).await;
            }
            Ok(s) => return s,
            Err(e) => {
                warn!(ups = %ups, error = %e, commloss = e.is_commloss(),
                    "cannot read the UPS from upsd; reporting its status as unknown");
                return Snapshot::default();
            }
        }
    }
}

const WAIT_RETRY: Duration = Duration::from_millis(250);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_ups_names() {
        let n = UpsName::parse("dummy@127.0.0.1:34930").unwrap();
        assert_eq!(
            (n.name.as_str(), n.host.as_str(), n.port),
            ("dummy", "127.0.0.1", 34930)
        );
        assert_eq!(n.to_string(), "dummy@127.0.0.1:34930");
        assert_eq!(n.addr(), "127.0.0.1:34930");

        let n = UpsName::parse("myups@nas.lan").unwrap();
        assert_eq!((n.host.as_str(), n.port), ("nas.lan", 3493));
        assert_eq!(n.to_string(), "myups@nas.lan");

        let n = UpsName::parse("ups").unwrap();
        assert_eq!(n.to_string(), "ups@localhost");

        let n = UpsName::parse("ups@[::1]:3494").unwrap();
        assert_eq!((n.host.as_str(), n.port), ("::1", 3494));
        assert_eq!(n.addr(), "[::1]:3494");
        assert_eq!(n.to_string(), "ups@[::1]:3494");

        for bad in [
            "",
            "@host",
            "ups@",
            "ups@host:x",
            "ups@host:0",
            "u ps@h",
            "ups@[::1",
        ] {
            assert!(UpsName::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    /// Caught by the round trip of fuzz/ upsd: bracketed hosts with blanks or a second bracket
    /// were accepted, and their canonical form read back as another host or not at all.
    #[test]
    fn hosts_with_blanks_or_brackets_are_refused() {
        for bad in [
            "ups@[ h ]",
            "ups@[[x]",
            "ups@[[x]:5",
            "ups@h st",
            "ups@[h\t]:5",
        ] {
            assert!(UpsName::parse(bad).is_err(), "{bad:?} should not parse");
        }
        for good in ["ups@[::1]", "ups@[fe80::1%eth0]:3494", "ups@nas.lan:1"] {
            let n = UpsName::parse(good).unwrap();
            assert_eq!(UpsName::parse(&n.to_string()), Ok(n), "{good}");
        }
    }

    #[test]
    fn splits_and_unescapes_reply_lines() {
        assert_eq!(
            split_words(r#"VAR dummy ups.status "OB DISCHRG""#).unwrap(),
            ["VAR", "dummy", "ups.status", "OB DISCHRG"]
        );
        assert_eq!(
            split_words(r#"UPS dummy "say \"hi\" \\ bye""#).unwrap(),
            ["UPS", "dummy", r#"say "hi" \ bye"#]
        );
        assert_eq!(split_words(r#"VAR d x """#).unwrap(), ["VAR", "d", "x", ""]);
        assert!(split_words(r#"VAR d x "open"#).is_err());
        assert!(split_words(r#"VAR d x "trailing\"#).is_err());
    }

    #[test]
    fn err_codes_map_to_variants() {
        for (code, variant) in [
            ("UNKNOWN-UPS", UpsdError::UnknownUps),
            ("DATA-STALE", UpsdError::DataStale),
            ("DRIVER-NOT-CONNECTED", UpsdError::DriverNotConnected),
            ("VAR-NOT-SUPPORTED", UpsdError::VarNotSupported),
        ] {
            assert_eq!(
                std::mem::discriminant(&UpsdError::from_err_code(code)),
                std::mem::discriminant(&variant),
                "{code}"
            );
        }
        assert!(
            matches!(UpsdError::from_err_code("ACCESS-DENIED"), UpsdError::Err(c) if c == "ACCESS-DENIED")
        );
        assert!(UpsdError::DataStale.is_commloss());
        assert!(!UpsdError::UnknownUps.is_commloss());
    }

    proptest! {
        #[test]
        fn quote_then_split_is_identity(value in "\\PC*") {
            let line = format!("VAR ups some.var {}", quote(&value));
            let words = split_words(&line).unwrap();
            prop_assert_eq!(words.len(), 4);
            prop_assert_eq!(&words[3], &value);
        }
    }
}
