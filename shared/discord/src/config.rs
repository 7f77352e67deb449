//! Settings of the Discord adapter and the webhook URL normalisation.
//!
//! The webhook URL carries a secret (its token): nothing here prints it. `Debug` shows
//! `<redacted>` in its place and every error describes the problem without echoing the URL.

pub use burst_settings::ConfigError;
use burst_settings::{Get, Settings, is_loopback};
use std::fmt;
use std::time::Duration;

/// The webhook URL as copied from Discord; setting it enables the adapter.
pub const SETTING_WEBHOOK_URL: &str = "DISCORD_WEBHOOK_URL";
/// Optional role id to mention in messages that must ping.
pub const SETTING_ROLE_ID: &str = "BURST_DISCORD_ROLE_ID";
/// Display name of the webhook's messages.
pub const SETTING_USERNAME: &str = "BURST_DISCORD_USERNAME";
/// Timeout of one webhook call in milliseconds.
pub const SETTING_TIMEOUT_MS: &str = "BURST_DISCORD_TIMEOUT_MS";

pub const DEFAULT_USERNAME: &str = "hybrid-burst";
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Longest accepted timeout: a function invocation must not hang on Discord.
pub const MAX_TIMEOUT_MS: u64 = 60_000;
/// Discord's limit for a username override, in code points.
pub const USERNAME_MAX: usize = 80;

/// Why a webhook URL was refused. None of the messages contains the URL or its token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not parseable as a URL: paste the webhook URL exactly as Discord shows it.
    #[error("not a URL")]
    NotAUrl,
    /// Only https is accepted (http only for a loopback address, e.g. a local simulator).
    #[error("the scheme must be https (http only for 127.0.0.1, ::1 or localhost)")]
    Scheme,
    /// User info or a fragment in the URL: paste the plain webhook URL.
    #[error("the URL must not contain user info or a fragment")]
    Extra,
    /// The path is not a webhook execute path.
    #[error(
        "the path must be /api/webhooks/{{id}}/{{token}} or /api/v10/webhooks/{{id}}/{{token}}"
    )]
    Path,
    /// The webhook id is not a Discord snowflake.
    #[error("the webhook id must be a number (a Discord snowflake)")]
    WebhookId,
    /// The token has characters Discord never uses in tokens.
    #[error("the webhook token must be letters, digits, '-' or '_'")]
    Token,
    /// `thread_id` is not a snowflake.
    #[error("thread_id must be a number (a Discord snowflake)")]
    ThreadId,
    /// A query parameter other than `thread_id` (or `wait`, which is ignored).
    #[error("unexpected query parameter {0}")]
    Query(String),
}

/// A normalised webhook: `{origin}/api/v10/webhooks/{id}/{token}`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    origin: String,
    id: String,
    token: String,
    thread_id: Option<String>,
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookUrl")
            .field("origin", &self.origin)
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .field("thread_id", &self.thread_id)
            .finish()
    }
}

fn is_snowflake(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<u64>().is_ok()
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl WebhookUrl {
    /// Normalises what users paste: `https://discord.com/api/webhooks/{id}/{token}`,
    /// `.../api/v{N}/webhooks/...` or the old `discordapp.com` host (rewritten to
    /// `discord.com`). The origin is kept, so a simulator at `http://127.0.0.1:PORT` works.
    /// `?thread_id=` is kept (messages go to that thread); `?wait=` is ignored (always true).
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let url = url::Url::parse(raw.trim()).map_err(|_| UrlError::NotAUrl)?;
        let host = url.host().ok_or(UrlError::NotAUrl)?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            _ => return Err(UrlError::Scheme),
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(UrlError::Extra);
        }
        let host_text = match &host {
            url::Host::Domain(d) => {
                let lower = d.to_ascii_lowercase();
                // discordapp.com is Discord's retired domain; the same paths live on discord.com.
                if lower == "discordapp.com" {
                    "discord.com".to_string()
                } else if let Some(sub) = lower.strip_suffix(".discordapp.com") {
                    format!("{sub}.discord.com")
                } else {
                    lower
                }
            }
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => format!("[{ip}]"),
        };
        let origin = match url.port() {
            Some(p) => format!("{}://{host_text}:{p}", url.scheme()),
            None => format!("{}://{host_text}", url.scheme()),
        };

        let mut segments: Vec<&str> = url.path_segments().ok_or(UrlError::Path)?.collect();
        if segments.last() == Some(&"") {
            segments.pop();
        }
        let rest = match segments.as_slice() {
            ["api", "webhooks", rest @ ..] => rest,
            ["api", version, "webhooks", rest @ ..]
                if version.len() > 1
                    && version.starts_with('v')
                    && version[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                rest
            }
            _ => return Err(UrlError::Path),
        };
        let [id, token] = rest else {
            return Err(UrlError::Path);
        };
        if !is_snowflake(id) {
            return Err(UrlError::WebhookId);
        }
        if !is_token(token) {
            return Err(UrlError::Token);
        }

        let mut thread_id = None;
        for (name, value) in url.query_pairs() {
            match name.as_ref() {
                "wait" => {}
                "thread_id" if is_snowflake(&value) => thread_id = Some(value.into_owned()),
                "thread_id" => return Err(UrlError::ThreadId),
                other => {
                    // Name it only when it is plainly a parameter name (never echo odd input).
                    let shown = if other.len() <= 32
                        && other
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        other.to_string()
                    } else {
                        "(unnamed)".to_string()
                    };
                    return Err(UrlError::Query(shown));
                }
            }
        }
        Ok(WebhookUrl {
            origin,
            id: (*id).to_string(),
            token: (*token).to_string(),
            thread_id,
        })
    }

    /// `scheme://host[:port]`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The webhook id (not secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The thread messages go to, if the URL named one.
    pub fn thread_id(&self) -> Option<&str> {
        self.thread_id.as_deref()
    }

    /// The secret part; only the client uses it.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// `{origin}/api/v10/webhooks/{id}/{token}`: the execute URL (contains the secret).
    pub fn execute_url(&self) -> String {
        format!(
            "{}/api/v10/webhooks/{}/{}",
            self.origin, self.id, self.token
        )
    }

    /// The URL of one message of this webhook (contains the secret).
    pub fn message_url(&self, message_id: &str) -> String {
        format!("{}/messages/{message_id}", self.execute_url())
    }

    /// The execute URL with the token replaced by `***`, for logs and the status endpoint.
    pub fn redacted(&self) -> String {
        format!("{}/api/v10/webhooks/{}/***", self.origin, self.id)
    }
}

/// Everything the Discord adapter needs.
#[derive(Clone, PartialEq, Eq)]
pub struct DiscordConfig {
    pub webhook: WebhookUrl,
    /// Role mentioned (`<@&id>`) by messages that must ping; `None` = never mention anyone.
    pub role_id: Option<String>,
    pub username: String,
    pub timeout: Duration,
}

impl fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("webhook", &self.webhook)
            .field("role_id", &self.role_id)
            .field("username", &self.username)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Checks a username override the way Discord does (1..=80 code points after trimming, no
/// "clyde" or "discord" in any case). Returns the trimmed name.
pub fn validate_username(name: &str) -> Result<String, String> {
    let trimmed = name.trim();
    let len = trimmed.chars().count();
    if len == 0 || len > USERNAME_MAX {
        return Err(format!("must be 1 to {USERNAME_MAX} characters"));
    }
    let lower = trimmed.to_lowercase();
    for word in ["clyde", "discord"] {
        if lower.contains(word) {
            return Err(format!("must not contain \"{word}\" (Discord refuses it)"));
        }
    }
    Ok(trimmed.to_string())
}

impl DiscordConfig {
    /// A configuration with the defaults for everything but the webhook.
    pub fn new(webhook: WebhookUrl) -> Self {
        DiscordConfig {
            webhook,
            role_id: None,
            username: DEFAULT_USERNAME.to_string(),
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
        }
    }

    /// Reads the settings; `Ok(None)` when `DISCORD_WEBHOOK_URL` is unset or empty.
    pub fn from_settings(get: Get<'_>) -> Result<Option<Self>, ConfigError> {
        let settings = Settings::new(get);
        let Some(webhook) = settings.parsed(SETTING_WEBHOOK_URL, |raw| {
            WebhookUrl::parse(raw).map_err(|e| e.to_string())
        })?
        else {
            return Ok(None);
        };
        let mut config = DiscordConfig::new(webhook);

        if let Some(role) = settings.string(SETTING_ROLE_ID) {
            let role = role.as_str();
            // People paste the mention form too.
            let role = role
                .strip_prefix("<@&")
                .and_then(|r| r.strip_suffix('>'))
                .unwrap_or(role);
            if !is_snowflake(role) {
                return Err(ConfigError::new(
                    SETTING_ROLE_ID,
                    "must be a role id (a number; Server Settings → Roles → Copy Role ID)",
                ));
            }
            config.role_id = Some(role.to_string());
        }

        if let Some(name) = settings.parsed(SETTING_USERNAME, validate_username)? {
            config.username = name;
        }
        config.timeout =
            settings.millis(SETTING_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, 1..=MAX_TIMEOUT_MS)?;
        Ok(Some(config))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TOKEN: &str = "AbC-dEf_123xyzSECRET";

    fn parse(raw: &str) -> Result<WebhookUrl, UrlError> {
        WebhookUrl::parse(raw)
    }

    #[test]
    fn unversioned_url_becomes_v10() {
        let w = parse(&format!(
            "https://discord.com/api/webhooks/123456789012345678/{TOKEN}"
        ))
        .unwrap();
        assert_eq!(
            w.execute_url(),
            format!("https://discord.com/api/v10/webhooks/123456789012345678/{TOKEN}")
        );
        assert_eq!(w.origin(), "https://discord.com");
        assert_eq!(w.id(), "123456789012345678");
        assert_eq!(w.thread_id(), None);
    }

    #[test]
    fn versioned_urls_are_normalised_to_v10() {
        for v in ["v6", "v8", "v9", "v10"] {
            let w = parse(&format!("https://discord.com/api/{v}/webhooks/1/{TOKEN}/")).unwrap();
            assert_eq!(
                w.execute_url(),
                format!("https://discord.com/api/v10/webhooks/1/{TOKEN}")
            );
        }
    }

    #[test]
    fn discordapp_host_is_rewritten_and_subdomains_kept() {
        let w = parse(&format!("https://discordapp.com/api/webhooks/1/{TOKEN}")).unwrap();
        assert_eq!(w.origin(), "https://discord.com");
        let w = parse(&format!(
            "https://canary.discordapp.com/api/webhooks/1/{TOKEN}"
        ))
        .unwrap();
        assert_eq!(w.origin(), "https://canary.discord.com");
        let w = parse(&format!("https://PTB.Discord.com/api/webhooks/1/{TOKEN}")).unwrap();
        assert_eq!(w.origin(), "https://ptb.discord.com");
    }

    #[test]
    fn loopback_origin_with_port_is_kept() {
        let w = parse(&format!("http://127.0.0.1:8123/api/webhooks/42/{TOKEN}")).unwrap();
        assert_eq!(
            w.execute_url(),
            format!("http://127.0.0.1:8123/api/v10/webhooks/42/{TOKEN}")
        );
        assert_eq!(
            w.message_url("99"),
            format!("http://127.0.0.1:8123/api/v10/webhooks/42/{TOKEN}/messages/99")
        );
        let w = parse(&format!("http://localhost:9/api/webhooks/42/{TOKEN}")).unwrap();
        assert_eq!(w.origin(), "http://localhost:9");
        let w = parse(&format!("http://[::1]:9/api/webhooks/42/{TOKEN}")).unwrap();
        assert_eq!(w.origin(), "http://[::1]:9");
    }

    #[test]
    fn thread_id_kept_wait_ignored() {
        let w = parse(&format!(
            "https://discord.com/api/webhooks/1/{TOKEN}?wait=false&thread_id=77"
        ))
        .unwrap();
        assert_eq!(w.thread_id(), Some("77"));
        assert_eq!(
            w.execute_url(),
            format!("https://discord.com/api/v10/webhooks/1/{TOKEN}")
        );
    }

    #[test]
    fn rejects_everything_else_without_echoing_the_token() {
        let cases = [
            (
                format!("http://discord.com/api/webhooks/1/{TOKEN}"),
                UrlError::Scheme,
            ),
            (
                format!("ftp://discord.com/api/webhooks/1/{TOKEN}"),
                UrlError::Scheme,
            ),
            (
                format!("discord.com/api/webhooks/1/{TOKEN}"),
                UrlError::NotAUrl,
            ),
            (
                format!("https://discord.com/webhooks/1/{TOKEN}"),
                UrlError::Path,
            ),
            (
                format!("https://discord.com/api/webhooks/1/{TOKEN}/slack"),
                UrlError::Path,
            ),
            (
                format!("https://discord.com/api/webhooks/1/{TOKEN}/github"),
                UrlError::Path,
            ),
            (
                "https://discord.com/api/webhooks/1".to_string(),
                UrlError::Path,
            ),
            (
                format!("https://discord.com/api/vx/webhooks/1/{TOKEN}"),
                UrlError::Path,
            ),
            (
                format!("https://discord.com/api/channels/1/{TOKEN}"),
                UrlError::Path,
            ),
            (
                format!("https://discord.com/api/webhooks/abc/{TOKEN}"),
                UrlError::WebhookId,
            ),
            (
                format!("https://discord.com/api/webhooks/99999999999999999999999/{TOKEN}"),
                UrlError::WebhookId,
            ),
            (
                "https://discord.com/api/webhooks/1/to%20ken".to_string(),
                UrlError::Token,
            ),
            (
                format!("https://user:{TOKEN}@discord.com/api/webhooks/1/{TOKEN}"),
                UrlError::Extra,
            ),
            (
                format!("https://discord.com/api/webhooks/1/{TOKEN}#x"),
                UrlError::Extra,
            ),
            (
                format!("https://discord.com/api/webhooks/1/{TOKEN}?thread_id=abc"),
                UrlError::ThreadId,
            ),
            (
                format!("https://discord.com/api/webhooks/1/{TOKEN}?foo=1"),
                UrlError::Query("foo".into()),
            ),
            (
                format!("https://discord.com/api/webhooks/1/{TOKEN}?{TOKEN}%21=1"),
                UrlError::Query("(unnamed)".into()),
            ),
        ];
        for (raw, want) in cases {
            let err = parse(&raw).unwrap_err();
            assert_eq!(err, want, "{raw}");
            assert!(!err.to_string().contains(TOKEN));
            assert!(!format!("{err:?}").contains(TOKEN));
        }
    }

    use burst_settings::from_pairs as settings;

    #[test]
    fn not_configured_without_url() {
        assert_eq!(DiscordConfig::from_settings(&settings(&[])).unwrap(), None);
        assert_eq!(
            DiscordConfig::from_settings(&settings(&[(SETTING_WEBHOOK_URL, "  ")])).unwrap(),
            None
        );
    }

    /// The configuration `pairs` give (which must configure Discord).
    fn configured(pairs: &[(&str, &str)]) -> DiscordConfig {
        DiscordConfig::from_settings(&settings(pairs))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn defaults_and_overrides() {
        let url = format!("https://discord.com/api/webhooks/1/{TOKEN}");
        let c = configured(&[(SETTING_WEBHOOK_URL, &url)]);
        assert_eq!(c.username, "hybrid-burst");
        assert_eq!(c.role_id, None);
        assert_eq!(c.timeout, Duration::from_millis(5000));

        let c = configured(&[
            (SETTING_WEBHOOK_URL, &url),
            (SETTING_ROLE_ID, "<@&112233445566778899>"),
            (SETTING_USERNAME, " home alarms "),
            (SETTING_TIMEOUT_MS, "2500"),
        ]);
        assert_eq!(c.role_id.as_deref(), Some("112233445566778899"));
        assert_eq!(c.username, "home alarms");
        assert_eq!(c.timeout, Duration::from_millis(2500));
    }

    #[test]
    fn bad_settings_name_the_setting_and_never_the_token() {
        let url = format!("https://discord.com/api/webhooks/1/{TOKEN}");
        let long_name = "x".repeat(81);
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (
                vec![(SETTING_WEBHOOK_URL, "https://example.com/hook")],
                SETTING_WEBHOOK_URL,
            ),
            (
                vec![(SETTING_WEBHOOK_URL, &url), (SETTING_ROLE_ID, "admins")],
                SETTING_ROLE_ID,
            ),
            (
                vec![
                    (SETTING_WEBHOOK_URL, &url),
                    (SETTING_USERNAME, "Discord Bot"),
                ],
                SETTING_USERNAME,
            ),
            (
                vec![(SETTING_WEBHOOK_URL, &url), (SETTING_USERNAME, "my clyde")],
                SETTING_USERNAME,
            ),
            (
                vec![(SETTING_WEBHOOK_URL, &url), (SETTING_USERNAME, &long_name)],
                SETTING_USERNAME,
            ),
            (
                vec![(SETTING_WEBHOOK_URL, &url), (SETTING_TIMEOUT_MS, "0")],
                SETTING_TIMEOUT_MS,
            ),
            (
                vec![(SETTING_WEBHOOK_URL, &url), (SETTING_TIMEOUT_MS, "5s")],
                SETTING_TIMEOUT_MS,
            ),
            (
                vec![(SETTING_WEBHOOK_URL, &url), (SETTING_TIMEOUT_MS, "600000")],
                SETTING_TIMEOUT_MS,
            ),
        ];
        for (pairs, setting) in cases {
            let err = DiscordConfig::from_settings(&settings(&pairs)).unwrap_err();
            assert_eq!(err.setting, setting);
            assert!(err.to_string().starts_with(setting));
            assert!(!err.to_string().contains(TOKEN));
        }
        let err = DiscordConfig::from_settings(&settings(&[(
            SETTING_WEBHOOK_URL,
            &format!("http://discord.com/api/webhooks/1/{TOKEN}"),
        )]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "DISCORD_WEBHOOK_URL: the scheme must be https (http only for 127.0.0.1, ::1 or localhost)"
        );
    }

    #[test]
    fn debug_output_hides_the_token() {
        let url = format!("https://discord.com/api/webhooks/1/{TOKEN}");
        let c = configured(&[(SETTING_WEBHOOK_URL, &url)]);
        let shown = format!("{c:?} {c:#?} {:?}", c.webhook);
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert_eq!(
            c.webhook.redacted(),
            "https://discord.com/api/v10/webhooks/1/***"
        );
    }
}
