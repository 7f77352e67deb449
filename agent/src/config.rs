//! Agent configuration: built-in defaults, then a TOML file, then `BURST_AGENT_*` environment
//! variables (each key `foo_bar` of the file is the variable `BURST_AGENT_FOO_BAR`).
//!
//! The file is flat on purpose, so that the file key and the variable map one to one and the
//! README table documents both. Secrets are held here but never printed (see the `Debug` impl).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the config file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/burst-agent.toml";
/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "BURST_AGENT_";

/// How the agent signs its JWTs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    EdDSA,
    HS256,
}

/// Where the heartbeat's inside view of the cluster comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KubeSource {
    /// The in-cluster service account if present, else `$KUBECONFIG` / `~/.kube/config`.
    Infer,
    /// Only the in-cluster service account (a CronJob).
    InCluster,
    /// The file named by `kubeconfig`.
    Kubeconfig,
    /// A plain API URL without credentials (`kube_url`, e.g. `kubectl proxy`).
    Url,
    /// No cluster: heartbeats report `api_ok: false` and 0/0 nodes.
    None,
}

/// The whole configuration. Field names are the TOML keys.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Site id; the JWT `iss`.
    pub site_id: String,
    /// Function app base URL, e.g. `https://myapp.azurewebsites.net` (routes are `/api/...`).
    pub base_url: String,
    /// Function key, sent as `x-functions-key` (empty: header not sent).
    pub function_key: String,
    /// File holding the function key (used when `function_key` is empty).
    pub function_key_file: Option<PathBuf>,
    /// The key for `/api/ups` only (wins over `function_key`; empty: `function_key`).
    pub function_key_ups: String,
    /// File holding the key for `/api/ups` (used when `function_key_ups` is empty).
    pub function_key_ups_file: Option<PathBuf>,
    /// The key for `/api/heartbeat` only.
    pub function_key_heartbeat: String,
    /// File holding the key for `/api/heartbeat`.
    pub function_key_heartbeat_file: Option<PathBuf>,
    /// The key for `/api/witness` only.
    pub function_key_witness: String,
    /// File holding the key for `/api/witness`.
    pub function_key_witness_file: Option<PathBuf>,
    /// JWT algorithm, `EdDSA` or `HS256`; the function accepts only the one it is set up for.
    pub algorithm: Algorithm,
    /// Ed25519 private key, PKCS#8 PEM file (from `burst-agent keygen`).
    pub ed25519_key_file: Option<PathBuf>,
    /// HS256 shared secret.
    pub hs256_secret: String,
    /// File holding the HS256 secret (used when `hs256_secret` is empty).
    pub hs256_secret_file: Option<PathBuf>,
    /// The UPS used when upsmon does not name one (SHUTDOWN, NOPARENT), and by
    /// `heartbeat` and `test`: `name@host[:port]`. Empty: heartbeats carry no `ups_status`.
    pub ups: String,
    /// Time allowed for one upsd query (connect + 3 GETs).
    pub upsd_timeout_ms: u64,
    /// Spool directory (events waiting for delivery; `rejected/` below it).
    pub spool_dir: PathBuf,
    /// Time allowed for one HTTP request.
    pub http_timeout_ms: u64,
    /// Total time a `notify` may take before returning to upsmon (query + spool + delivery).
    pub notify_budget_ms: u64,
    /// Total time a `heartbeat` or `witness` may take (spool flush + probe + delivery); on
    /// battery, each further beat of a run gets this much too.
    pub heartbeat_budget_ms: u64,
    /// The heartbeat timer's period: a run that stays to beat faster on battery ends before
    /// the next run starts.
    pub heartbeat_period_ms: u64,
    /// On battery (`ups.status` has `OB`), a heartbeat run stays and beats again every this
    /// many ms until `heartbeat_period_ms` is used up. 0: one beat per run, always.
    pub on_battery_interval_ms: u64,
    /// Where the inside view comes from.
    pub kube_source: KubeSource,
    /// Kubeconfig file for `kube_source = "kubeconfig"`.
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig (empty: its current context).
    pub kube_context: String,
    /// API URL for `kube_source = "url"`.
    pub kube_url: String,
    /// Time allowed for listing the nodes.
    pub kube_timeout_ms: u64,
    /// What `witness` probes: `tcp://host:port`, `https://...` or `http://...`.
    pub witness_target: String,
    /// Timeout of one witness probe.
    pub witness_timeout_ms: u64,
    /// Accept any TLS certificate when probing an `https://` witness target (self-signed
    /// home endpoints). Only the probe; never the function calls.
    pub witness_insecure_tls: bool,
    /// Shell command (`sh -c`) that stops the home's stateful tier when the lease cannot be
    /// renewed. Empty: no fencing, and heartbeats ask for no lease.
    pub fence_command: String,
    /// Shell command that starts the stateful tier again once the cloud says it is home.
    /// Empty: the agent only marks itself unfenced (bring the tier back by hand).
    pub unfence_command: String,
    /// Fence when a heartbeat could not renew the lease and less than this is left on it.
    pub fence_ahead_ms: u64,
    /// The longest a fence or unfence command may run; it is killed after that.
    pub fence_timeout_ms: u64,
    /// The lease bookkeeping file. Default: `lease.json` beside the spool directory
    /// (see [`Config::lease_file`]).
    pub lease_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            site_id: String::new(),
            base_url: String::new(),
            function_key: String::new(),
            function_key_file: None,
            function_key_ups: String::new(),
            function_key_ups_file: None,
            function_key_heartbeat: String::new(),
            function_key_heartbeat_file: None,
            function_key_witness: String::new(),
            function_key_witness_file: None,
            algorithm: Algorithm::EdDSA,
            ed25519_key_file: Some(PathBuf::from("/etc/burst-agent/ed25519.pem")),
            hs256_secret: String::new(),
            hs256_secret_file: None,
            ups: String::new(),
            upsd_timeout_ms: 2000,
            spool_dir: PathBuf::from("/var/lib/burst-agent/spool"),
            http_timeout_ms: 3000,
            notify_budget_ms: 5000,
            heartbeat_budget_ms: 20000,
            heartbeat_period_ms: 30_000,
            on_battery_interval_ms: 10_000,
            kube_source: KubeSource::Infer,
            kubeconfig: None,
            kube_context: String::new(),
            kube_url: String::new(),
            kube_timeout_ms: 5000,
            witness_target: String::new(),
            witness_timeout_ms: 3000,
            witness_insecure_tls: false,
            fence_command: String::new(),
            unfence_command: String::new(),
            fence_ahead_ms: 60_000,
            fence_timeout_ms: 30_000,
            lease_file: None,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config (typo in a key, wrong type).
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    /// An environment variable has a value of the wrong type, or is unknown.
    #[error("environment variable {name}: {detail}")]
    Env { name: String, detail: String },
    /// A setting is missing or inconsistent.
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads defaults ← file ← environment. With `path == None` the default path is used if it
    /// exists (a missing default file is fine: everything may come from the environment).
    pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let table = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .parse::<toml::Table>()
                .map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        // Validate the file alone first, so a typo is reported against the file.
        Config::deserialize(table.clone()).map_err(|source| ConfigError::Parse {
            path: path.clone(),
            source,
        })?;
        Config::merge(table, env)
    }

    /// Defaults ← environment, ignoring any file: the fallback of `notify` when the file is
    /// broken, so that an event is still spooled (and sent) where the environment says.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        Config::merge(toml::Table::new(), env)
    }

    fn merge(mut table: toml::Table, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        // The type each variable must have comes from the defaults (Option fields, absent
        // there, are all paths: strings).
        let types = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(format!("defaults: {e}")))?;
        let mut names: Vec<&String> = env.keys().filter(|k| k.starts_with(ENV_PREFIX)).collect();
        names.sort();
        for name in names {
            let key = name[ENV_PREFIX.len()..].to_ascii_lowercase();
            if key == "log" || env[name].is_empty() {
                continue; // LOG is main's tracing filter; an empty variable counts as unset
            }
            let value = env_value(name, &env[name], types.get(&key))?;
            table.insert(key, value);
        }
        let config = Config::deserialize(table).map_err(|e| ConfigError::Env {
            name: format!("{ENV_PREFIX}*"),
            detail: e.message().to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Value checks that the types alone do not make.
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("fence_ahead_ms", self.fence_ahead_ms),
            ("fence_timeout_ms", self.fence_timeout_ms),
            ("heartbeat_period_ms", self.heartbeat_period_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "{key} must be greater than 0 ({ENV_PREFIX}{})",
                    key.to_ascii_uppercase()
                )));
            }
        }
        Ok(())
    }

    /// Whether the agent fences: a `fence_command` is set (and only then asks for a lease).
    pub fn fencing(&self) -> bool {
        !self.fence_command.trim().is_empty()
    }

    /// The lease file: `lease_file`, else `lease.json` beside the spool directory (not inside
    /// it: the spool takes every `*.json` there for an event), e.g.
    /// `/var/lib/burst-agent/lease.json` for the default spool.
    pub fn lease_file(&self) -> PathBuf {
        if let Some(path) = &self.lease_file {
            return path.clone();
        }
        match self.spool_dir.parent() {
            Some(parent) => parent.join("lease.json"),
            // The spool is `/` (or empty): keep it a dot file inside, which the spool skips.
            None => self.spool_dir.join(".lease.json"),
        }
    }

    /// The `ups` setting parsed, if set.
    pub fn default_ups(&self) -> Result<Option<crate::upsd::UpsName>, ConfigError> {
        if self.ups.trim().is_empty() {
            return Ok(None);
        }
        crate::upsd::UpsName::parse(&self.ups)
            .map(Some)
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// Checks what every command that talks to the function needs.
    pub fn require_function(&self) -> Result<(), ConfigError> {
        if self.site_id.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "site_id is not set (BURST_AGENT_SITE_ID)".into(),
            ));
        }
        if !(self.base_url.starts_with("https://") || self.base_url.starts_with("http://")) {
            return Err(ConfigError::Invalid(format!(
                "base_url must be an http(s) URL (BURST_AGENT_BASE_URL), got {:?}",
                self.base_url
            )));
        }
        Ok(())
    }

    /// The function key, from `function_key` or `function_key_file`.
    pub fn function_key(&self) -> Result<Option<String>, ConfigError> {
        secret(
            &self.function_key,
            self.function_key_file.as_deref(),
            "function key",
        )
    }

    /// The key sent to `route` (`/api/ups`, `/api/heartbeat`, `/api/witness`): the route's
    /// own key (`function_key_<route>`, else `function_key_<route>_file`) when set, else the
    /// key for all routes ([`function_key`](Config::function_key)). Returns the key and the
    /// name of the setting it came from (for messages; never the key itself).
    pub fn function_key_for(
        &self,
        route: &str,
    ) -> Result<(Option<String>, &'static str), ConfigError> {
        let own = match route {
            burst_wire::ROUTE_UPS => Some((
                &self.function_key_ups,
                self.function_key_ups_file.as_deref(),
                "function_key_ups",
                "function_key_ups_file",
            )),
            burst_wire::ROUTE_HEARTBEAT => Some((
                &self.function_key_heartbeat,
                self.function_key_heartbeat_file.as_deref(),
                "function_key_heartbeat",
                "function_key_heartbeat_file",
            )),
            burst_wire::ROUTE_WITNESS => Some((
                &self.function_key_witness,
                self.function_key_witness_file.as_deref(),
                "function_key_witness",
                "function_key_witness_file",
            )),
            _ => None,
        };
        if let Some((inline, file, name, file_name)) = own {
            let what = format!("{name} (the key for {route})");
            if let Some(key) = secret(inline, file, &what)? {
                return Ok((Some(key), if inline.is_empty() { file_name } else { name }));
            }
        }
        let name = if self.function_key.is_empty() && self.function_key_file.is_some() {
            "function_key_file"
        } else {
            "function_key"
        };
        Ok((self.function_key()?, name))
    }

    /// The HS256 secret, from `hs256_secret` or `hs256_secret_file`.
    pub fn hs256_secret(&self) -> Result<Option<String>, ConfigError> {
        secret(
            &self.hs256_secret,
            self.hs256_secret_file.as_deref(),
            "HS256 secret",
        )
    }

    pub fn upsd_timeout(&self) -> Duration {
        Duration::from_millis(self.upsd_timeout_ms)
    }
    pub fn http_timeout(&self) -> Duration {
        Duration::from_millis(self.http_timeout_ms)
    }
    pub fn notify_budget(&self) -> Duration {
        Duration::from_millis(self.notify_budget_ms)
    }
    pub fn heartbeat_budget(&self) -> Duration {
        Duration::from_millis(self.heartbeat_budget_ms)
    }
    pub fn heartbeat_period(&self) -> Duration {
        Duration::from_millis(self.heartbeat_period_ms)
    }
    pub fn on_battery_interval(&self) -> Duration {
        Duration::from_millis(self.on_battery_interval_ms)
    }
    pub fn kube_timeout(&self) -> Duration {
        Duration::from_millis(self.kube_timeout_ms)
    }
    pub fn witness_timeout(&self) -> Duration {
        Duration::from_millis(self.witness_timeout_ms)
    }
    pub fn fence_ahead(&self) -> Duration {
        Duration::from_millis(self.fence_ahead_ms)
    }
    pub fn fence_timeout(&self) -> Duration {
        Duration::from_millis(self.fence_timeout_ms)
    }
}

fn secret(inline: &str, file: Option<&Path>, what: &str) -> Result<Option<String>, ConfigError> {
    if !inline.is_empty() {
        return Ok(Some(inline.to_string()));
    }
    match file {
        None => Ok(None),
        Some(path) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| {
                ConfigError::Invalid(format!("cannot read {what} file {}: {e}", path.display()))
            }),
    }
}

/// An environment value as a TOML value of the type the key has in the defaults.
fn env_value(
    name: &str,
    raw: &str,
    default: Option<&toml::Value>,
) -> Result<toml::Value, ConfigError> {
    let wrong = |what: &str| ConfigError::Env {
        name: name.to_string(),
        detail: format!("expected {what}, got {raw:?}"),
    };
    Ok(match default {
        Some(toml::Value::Integer(_)) => {
            toml::Value::Integer(raw.trim().parse().map_err(|_| wrong("a whole number"))?)
        }
        // The same spellings as every other hybrid-burst setting.
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
            burst_settings::parse_bool(raw).ok_or_else(|| wrong("true or false"))?,
        ),
        _ => toml::Value::String(raw.to_string()),
    })
}

impl fmt::Debug for Config {
    /// Like the derived one, with secrets replaced by `<set>` / `<empty>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &str| if s.is_empty() { "<empty>" } else { "<set>" };
        f.debug_struct("Config")
            .field("site_id", &self.site_id)
            .field("base_url", &self.base_url)
            .field("function_key", &redact(&self.function_key))
            .field("function_key_file", &self.function_key_file)
            .field("function_key_ups", &redact(&self.function_key_ups))
            .field("function_key_ups_file", &self.function_key_ups_file)
            .field(
                "function_key_heartbeat",
                &redact(&self.function_key_heartbeat),
            )
            .field(
                "function_key_heartbeat_file",
                &self.function_key_heartbeat_file,
            )
            .field("function_key_witness", &redact(&self.function_key_witness))
            .field("function_key_witness_file", &self.function_key_witness_file)
            .field("algorithm", &self.algorithm)
            .field("ed25519_key_file", &self.ed25519_key_file)
            .field("hs256_secret", &redact(&self.hs256_secret))
            .field("hs256_secret_file", &self.hs256_secret_file)
            .field("ups", &self.ups)
            .field("upsd_timeout_ms", &self.upsd_timeout_ms)
            .field("spool_dir", &self.spool_dir)
            .field("http_timeout_ms", &self.http_timeout_ms)
            .field("notify_budget_ms", &self.notify_budget_ms)
            .field("heartbeat_budget_ms", &self.heartbeat_budget_ms)
            .field("heartbeat_period_ms", &self.heartbeat_period_ms)
            .field("on_battery_interval_ms", &self.on_battery_interval_ms)
            .field("kube_source", &self.kube_source)
            .field("kubeconfig", &self.kubeconfig)
            .field("kube_context", &self.kube_context)
            .field("kube_url", &self.kube_url)
            .field("kube_timeout_ms", &self.kube_timeout_ms)
            .field("witness_target", &self.witness_target)
            .field("witness_timeout_ms", &self.witness_timeout_ms)
            .field("witness_insecure_tls", &self.witness_insecure_tls)
            // A command line may carry a token (`kubectl --token=...`): not shown.
            .field("fence_command", &redact(&self.fence_command))
            .field("unfence_command", &redact(&self.unfence_command))
            .field("fence_ahead_ms", &self.fence_ahead_ms)
            .field("fence_timeout_ms", &self.fence_timeout_ms)
            .field("lease_file", &self.lease_file)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_then_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            r#"
site_id = "home"
base_url = "https://file.example"
notify_budget_ms = 4000
algorithm = "HS256"
kube_source = "in-cluster"
"#,
        )
        .unwrap();

        let c = Config::load(Some(&path), &env(&[])).unwrap();
        assert_eq!(c.site_id, "home");
        assert_eq!(c.base_url, "https://file.example");
        assert_eq!(c.notify_budget_ms, 4000);
        assert_eq!(c.algorithm, Algorithm::HS256);
        assert_eq!(c.kube_source, KubeSource::InCluster);
        assert_eq!(c.http_timeout_ms, 3000, "default kept");

        let c = Config::load(
            Some(&path),
            &env(&[
                ("BURST_AGENT_BASE_URL", "http://127.0.0.1:9"),
                ("BURST_AGENT_NOTIFY_BUDGET_MS", "1500"),
                ("BURST_AGENT_WITNESS_INSECURE_TLS", "true"),
                ("BURST_AGENT_KUBE_SOURCE", "url"),
                ("BURST_AGENT_LOG", "debug"),
                ("BURST_AGENT_FUNCTION_KEY", "12345"),
                ("BURST_AGENT_SPOOL_DIR", ""),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.site_id, "home",
            "file value kept when env does not set it"
        );
        assert_eq!(c.base_url, "http://127.0.0.1:9", "env beats file");
        assert_eq!(c.notify_budget_ms, 1500);
        assert!(c.witness_insecure_tls);
        assert_eq!(c.kube_source, KubeSource::Url);
        assert_eq!(
            c.function_key, "12345",
            "digits stay a string for a string key"
        );
        assert_eq!(
            c.spool_dir,
            Config::default().spool_dir,
            "empty variable = unset"
        );
    }

    #[test]
    fn missing_default_file_is_fine_but_missing_explicit_file_is_not() {
        let c = Config::load(None, &env(&[("BURST_AGENT_SITE_ID", "s")]));
        // The default path normally does not exist on a build machine; if it does, skip.
        if !Path::new(DEFAULT_CONFIG_PATH).exists() {
            assert_eq!(c.unwrap().site_id, "s");
        }
        let err = Config::load(Some(Path::new("/nonexistent/agent.toml")), &env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
    }

    #[test]
    fn typos_and_bad_types_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "site_idd = \"x\"\n").unwrap();
        assert!(matches!(
            Config::load(Some(&path), &env(&[])).unwrap_err(),
            ConfigError::Parse { .. }
        ));
        std::fs::write(&path, "").unwrap();
        let err = Config::load(
            Some(&path),
            &env(&[("BURST_AGENT_HTTP_TIMEOUT_MS", "soon")]),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Env { .. }), "{err}");
        let err = Config::load(Some(&path), &env(&[("BURST_AGENT_NO_SUCH_KEY", "1")])).unwrap_err();
        assert!(matches!(err, ConfigError::Env { .. }), "{err}");
        // Booleans take the spellings every other setting takes, and name the variable if not.
        let on = Config::load(
            Some(&path),
            &env(&[("BURST_AGENT_WITNESS_INSECURE_TLS", "On")]),
        )
        .unwrap();
        assert!(on.witness_insecure_tls);
        let err = Config::load(
            Some(&path),
            &env(&[("BURST_AGENT_WITNESS_INSECURE_TLS", "maybe")]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable BURST_AGENT_WITNESS_INSECURE_TLS: expected true or false, got \"maybe\""
        );
    }

    #[test]
    fn secrets_from_files_and_never_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "s3cret-key\n").unwrap();
        let c = Config {
            function_key_file: Some(key),
            hs256_secret: "hs-secret-value".into(),
            ..Config::default()
        };
        assert_eq!(c.function_key().unwrap().as_deref(), Some("s3cret-key"));
        assert_eq!(
            c.hs256_secret().unwrap().as_deref(),
            Some("hs-secret-value")
        );
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hs-secret-value") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn fence_settings_defaults_validation_and_lease_file() {
        let c = Config::from_env(&env(&[])).unwrap();
        assert!(!c.fencing(), "no fence command: no fencing");
        assert_eq!((c.fence_ahead_ms, c.fence_timeout_ms), (60_000, 30_000));
        assert_eq!(
            c.lease_file(),
            PathBuf::from("/var/lib/burst-agent/lease.json"),
            "beside the default spool, not in it"
        );

        let c = Config::from_env(&env(&[
            (
                "BURST_AGENT_FENCE_COMMAND",
                "kubectl -n db scale statefulset/pg --replicas=0",
            ),
            ("BURST_AGENT_FENCE_AHEAD_MS", "45000"),
            ("BURST_AGENT_SPOOL_DIR", "/srv/agent/spool/"),
        ]))
        .unwrap();
        assert!(c.fencing());
        assert_eq!(c.fence_ahead(), Duration::from_secs(45));
        assert_eq!(c.lease_file(), PathBuf::from("/srv/agent/lease.json"));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("kubectl"),
            "commands may hold tokens: {shown}"
        );

        let c = Config::from_env(&env(&[("BURST_AGENT_LEASE_FILE", "/run/x/lease")])).unwrap();
        assert_eq!(c.lease_file(), PathBuf::from("/run/x/lease"));

        for key in ["FENCE_AHEAD_MS", "FENCE_TIMEOUT_MS"] {
            let name = format!("BURST_AGENT_{key}");
            let err = Config::from_env(&env(&[(&name, "0")])).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&key.to_ascii_lowercase()) && text.contains(&name),
                "{text}"
            );
        }
        // In the file too.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "fence_ahead_ms = 0\n").unwrap();
        let err = Config::load(Some(&path), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("fence_ahead_ms"), "{err}");
    }
    #[test]
    fn a_key_per_route_wins_over_the_key_for_all() {
        use burst_wire::{ROUTE_HEARTBEAT, ROUTE_UPS, ROUTE_WITNESS};
        let dir = tempfile::tempdir().unwrap();
        let witness_key = dir.path().join("witness-key");
        std::fs::write(&witness_key, "key-witness-from-file\n").unwrap();
        let c = Config::from_env(&env(&[
            ("BURST_AGENT_FUNCTION_KEY", "host-key"),
            ("BURST_AGENT_FUNCTION_KEY_HEARTBEAT", "key-heartbeat"),
            (
                "BURST_AGENT_FUNCTION_KEY_WITNESS_FILE",
                witness_key.to_str().unwrap(),
            ),
        ]))
        .unwrap();
        assert_eq!(
            c.function_key_for(ROUTE_UPS).unwrap(),
            (Some("host-key".to_string()), "function_key")
        );
        assert_eq!(
            c.function_key_for(ROUTE_HEARTBEAT).unwrap(),
            (Some("key-heartbeat".to_string()), "function_key_heartbeat")
        );
        assert_eq!(
            c.function_key_for(ROUTE_WITNESS).unwrap(),
            (
                Some("key-witness-from-file".to_string()),
                "function_key_witness_file"
            )
        );
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("key-heartbeat") && !shown.contains("host-key"),
            "{shown}"
        );

        // No key at all: no header; a key file that cannot be read is an error naming it.
        let c = Config::from_env(&env(&[(
            "BURST_AGENT_FUNCTION_KEY_UPS_FILE",
            "/nonexistent/key",
        )]))
        .unwrap();
        assert_eq!(
            c.function_key_for(ROUTE_HEARTBEAT).unwrap(),
            (None, "function_key")
        );
        let err = c.function_key_for(ROUTE_UPS).unwrap_err().to_string();
        assert!(
            err.contains("function_key_ups") && err.contains("/nonexistent/key"),
            "{err}"
        );
    }

    #[test]
    fn heartbeat_timing_settings() {
        let c = Config::from_env(&env(&[])).unwrap();
        assert_eq!(
            (c.heartbeat_period_ms, c.on_battery_interval_ms),
            (30_000, 10_000)
        );
        let c = Config::from_env(&env(&[("BURST_AGENT_ON_BATTERY_INTERVAL_MS", "0")])).unwrap();
        assert_eq!(c.on_battery_interval(), Duration::ZERO, "0 = off");
        let err = Config::from_env(&env(&[("BURST_AGENT_HEARTBEAT_PERIOD_MS", "0")])).unwrap_err();
        assert!(err.to_string().contains("heartbeat_period_ms"), "{err}");
    }
}
