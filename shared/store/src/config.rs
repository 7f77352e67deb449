//! Which store to use, from the app settings (`BURST_STATE_URL` and friends).
//!
//! Parsing is pure (no IO, no credential yet); [`StoreConfig::open`] builds the store. Errors
//! name the setting and what is wrong with it, never its value: a blob URL may carry a SAS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use burst_ports::StateStore;
use url::Url;

use crate::blob::{BlobAuth, BlobStore, DEFAULT_TIMEOUT};
use crate::file::FileStore;

/// `file:///abs/dir` (local files) or an `http(s)://…/<container>` blob container URL,
/// optionally with a SAS query. Unset or empty: no state store configured.
pub const STATE_URL: &str = "BURST_STATE_URL";
/// Per-request time limit for the blob store in milliseconds (default 5000, 1..=60000).
pub const STATE_TIMEOUT_MS: &str = "BURST_STATE_TIMEOUT_MS";
/// The client id of a user-assigned managed identity (the system-assigned one when unset).
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";

/// A setting this crate cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The setting's value is malformed or unsupported: fix the setting (the message says how).
    #[error("{setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
    /// The Azure credential could not be set up in this environment (no managed identity
    /// endpoint, bad client id): fix the app's identity configuration.
    #[error("state store credential: {0}")]
    Credential(String),
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// The state store chosen by the settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// Local files in `dir` ([`FileStore`]).
    File { dir: PathBuf },
    /// An Azure Blob Storage (or Azurite) container ([`BlobStore`]).
    Blob {
        /// The container URL without its query (safe to log).
        container: Url,
        auth: BlobAuth,
        /// Upper bound on one request, including connection setup.
        timeout: Duration,
    },
}

impl StoreConfig {
    /// Reads `BURST_STATE_URL` (and `BURST_STATE_TIMEOUT_MS`, `AZURE_CLIENT_ID` for blobs).
    /// `Ok(None)` when `BURST_STATE_URL` is unset or empty.
    pub fn from_settings(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<StoreConfig>, ConfigError> {
        let Some(raw) = get(STATE_URL) else {
            return Ok(None);
        };
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        let url = Url::parse(raw).map_err(|e| {
            invalid(
                STATE_URL,
                format!(
                    "not a valid URL ({e}); expected file:///absolute/dir or http(s)://host/container"
                ),
            )
        })?;
        match url.scheme() {
            "file" => parse_file(&url).map(Some),
            "http" | "https" => parse_blob(url, get).map(Some),
            other => Err(invalid(
                STATE_URL,
                format!("unsupported scheme {other:?}; expected file, http or https"),
            )),
        }
    }

    /// Builds the store. Only a managed identity credential can fail here.
    pub fn open(&self) -> Result<Arc<dyn StateStore>, ConfigError> {
        Ok(match self {
            StoreConfig::File { dir } => Arc::new(FileStore::new(dir.clone())),
            StoreConfig::Blob {
                container,
                auth,
                timeout,
            } => Arc::new(BlobStore::new(container.clone(), auth, *timeout)?),
        })
    }
}

/// Reads the settings and opens the store: `Ok(None)` when `BURST_STATE_URL` is not set.
pub fn from_settings(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Arc<dyn StateStore>>, ConfigError> {
    match StoreConfig::from_settings(get)? {
        Some(config) => config.open().map(Some),
        None => Ok(None),
    }
}

fn parse_file(url: &Url) -> Result<StoreConfig, ConfigError> {
    if !matches!(url.host_str(), None | Some("") | Some("localhost")) {
        return Err(invalid(
            STATE_URL,
            "a file URL must name a local folder: file:///absolute/dir (no host)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(STATE_URL, "a file URL takes no query or fragment"));
    }
    let dir = url.to_file_path().map_err(|()| {
        invalid(
            STATE_URL,
            "not a local absolute path: use file:///absolute/dir",
        )
    })?;
    if dir.parent().is_none() {
        return Err(invalid(
            STATE_URL,
            "the state folder cannot be the root folder",
        ));
    }
    Ok(StoreConfig::File { dir })
}

fn parse_blob(
    mut url: Url,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<StoreConfig, ConfigError> {
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(STATE_URL, "a blob container URL needs a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            STATE_URL,
            "a blob container URL takes no user or password",
        ));
    }
    if url.fragment().is_some() {
        return Err(invalid(STATE_URL, "a blob container URL takes no fragment"));
    }
    let segments: Vec<String> = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let Some(container) = segments.last() else {
        return Err(invalid(
            STATE_URL,
            "the URL names no container: expected http(s)://host/<container> (Azurite: http://host:port/<account>/<container>)",
        ));
    };
    if !valid_container(container) {
        return Err(invalid(
            STATE_URL,
            "the container name must be 3-63 characters of a-z 0-9 - (starting with a letter or digit)",
        ));
    }
    // Normalise away a trailing slash so blob names are appended cleanly.
    url.set_path(&format!("/{}", segments.join("/")));

    let query = url.query().map(str::to_owned).filter(|q| !q.is_empty());
    url.set_query(None);
    let auth = match query {
        Some(q) => {
            if !url::form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "sig" && !v.is_empty())
            {
                return Err(invalid(
                    STATE_URL,
                    "the query is not a SAS (no sig parameter); remove it to use managed identity",
                ));
            }
            BlobAuth::Sas(q)
        }
        None => {
            if url.scheme() != "https" {
                return Err(invalid(
                    STATE_URL,
                    "an http:// container URL needs a SAS query; managed identity needs https://",
                ));
            }
            let client_id = get(AZURE_CLIENT_ID)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty());
            BlobAuth::ManagedIdentity { client_id }
        }
    };
    let timeout = match get(STATE_TIMEOUT_MS).map(|s| s.trim().to_owned()) {
        None => DEFAULT_TIMEOUT,
        Some(s) if s.is_empty() => DEFAULT_TIMEOUT,
        Some(s) => match s.parse::<u64>() {
            Ok(ms @ 1..=60_000) => Duration::from_millis(ms),
            _ => {
                return Err(invalid(
                    STATE_TIMEOUT_MS,
                    "expected milliseconds between 1 and 60000",
                ));
            }
        },
    };
    Ok(StoreConfig::Blob {
        container: url,
        auth,
        timeout,
    })
}

fn valid_container(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Option<StoreConfig>, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        StoreConfig::from_settings(&|k| map.get(k).cloned())
    }

    const SAS: &str = "sv=2025-11-05&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00%3A00%3A00Z&spr=https%2Chttp&sig=c2VjcmV0c2lnbmF0dXJl";

    #[test]
    fn unset_or_empty_means_not_configured() {
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&[(STATE_URL, "  ")]), Ok(None));
    }

    #[test]
    fn file_urls() {
        assert_eq!(
            parse(&[(STATE_URL, "file:///var/lib/burst/state")]),
            Ok(Some(StoreConfig::File {
                dir: PathBuf::from("/var/lib/burst/state")
            }))
        );
        assert_eq!(
            parse(&[(STATE_URL, "file://localhost/tmp/a%20b")]),
            Ok(Some(StoreConfig::File {
                dir: PathBuf::from("/tmp/a b")
            }))
        );
        for bad in ["file://server/share", "file:///tmp/x?y=1", "file:///"] {
            match parse(&[(STATE_URL, bad)]) {
                Err(ConfigError::Invalid { setting, .. }) => assert_eq!(setting, STATE_URL),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn azure_url_uses_managed_identity() {
        let got = parse(&[
            (STATE_URL, "https://acct.blob.core.windows.net/burst-state/"),
            (AZURE_CLIENT_ID, "11111111-2222-3333-4444-555555555555"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            got,
            StoreConfig::Blob {
                container: Url::parse("https://acct.blob.core.windows.net/burst-state").unwrap(),
                auth: BlobAuth::ManagedIdentity {
                    client_id: Some("11111111-2222-3333-4444-555555555555".into())
                },
                timeout: DEFAULT_TIMEOUT,
            }
        );
        let system = parse(&[(STATE_URL, "https://acct.blob.core.windows.net/state")])
            .unwrap()
            .unwrap();
        assert!(matches!(
            system,
            StoreConfig::Blob {
                auth: BlobAuth::ManagedIdentity { client_id: None },
                ..
            }
        ));
    }

    #[test]
    fn opens_without_io() {
        // Building the stores does no request (a managed identity token is fetched on first use).
        let mi = parse(&[(STATE_URL, "https://acct.blob.core.windows.net/state")])
            .unwrap()
            .unwrap();
        assert!(mi.open().is_ok());
        let file = parse(&[(STATE_URL, "file:///nonexistent/burst-state")])
            .unwrap()
            .unwrap();
        assert!(file.open().is_ok());
        assert!(!std::path::Path::new("/nonexistent/burst-state").exists());
    }

    #[test]
    fn azurite_url_with_sas() {
        let url = format!("http://127.0.0.1:10000/devstoreaccount1/state?{SAS}");
        let got = parse(&[(STATE_URL, &url), (STATE_TIMEOUT_MS, "750")])
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            StoreConfig::Blob {
                container: Url::parse("http://127.0.0.1:10000/devstoreaccount1/state").unwrap(),
                auth: BlobAuth::Sas(SAS.into()),
                timeout: Duration::from_millis(750),
            }
        );
        // The SAS never shows in Debug output.
        let debug = format!("{got:?}");
        assert!(!debug.contains("sig="), "{debug}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
    }

    #[test]
    fn errors_name_the_setting_and_never_echo_the_sas() {
        let cases = [
            format!("s3://bucket/state?{SAS}"),
            format!("http://127.0.0.1:10000/?{SAS}"),
            format!("http://127.0.0.1:10000/acct/Bad_Name?{SAS}"),
            "http://127.0.0.1:10000/acct/state".to_owned(),
            "https://acct.blob.core.windows.net/state?foo=bar".to_owned(),
            format!("https://user:c2VjcmV0@acct.blob.core.windows.net/state?{SAS}"),
            format!("https://acct.blob.core.windows.net/state?{SAS}#frag"),
            format!("not a url {SAS}"),
        ];
        for case in cases {
            let err = parse(&[(STATE_URL, &case)]).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("BURST_STATE_URL: "), "{text}");
            assert!(!text.contains("c2VjcmV0"), "{case} → {text}");
        }
        let s3 = parse(&[(STATE_URL, "s3://bucket/x")]).unwrap_err();
        assert_eq!(
            s3.to_string(),
            "BURST_STATE_URL: unsupported scheme \"s3\"; expected file, http or https"
        );
    }

    #[test]
    fn bad_timeout() {
        let url = format!("http://127.0.0.1:10000/devstoreaccount1/state?{SAS}");
        for bad in ["0", "-1", "abc", "60001"] {
            assert_eq!(
                parse(&[(STATE_URL, &url), (STATE_TIMEOUT_MS, bad)]),
                Err(ConfigError::Invalid {
                    setting: STATE_TIMEOUT_MS,
                    reason: "expected milliseconds between 1 and 60000".into()
                })
            );
        }
    }

    #[test]
    fn container_names() {
        for ok in ["abc", "burst-state", "a1-b2", &"a".repeat(63)] {
            assert!(valid_container(ok), "{ok}");
        }
        for bad in ["ab", "Abc", "a_b", "-ab", "ab-", "a--b", &"a".repeat(64)] {
            assert!(!valid_container(bad), "{bad}");
        }
    }
}
