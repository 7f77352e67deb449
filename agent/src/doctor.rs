//! `burst-agent doctor`: checks every link from this host to the function, one line per check
//! (`✓` fine, `!` works but worth a look, `✗` broken), each problem with its fix. Nothing it
//! sends can change the cloud's state: each route gets a signed POST whose body the function
//! refuses as malformed (HTTP 400 proves the route, the function key and the signature; the
//! function checks those before it reads the body).
//!
//! Exit 0 when no check is `✗`, 1 otherwise.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{Algorithm, Config, ConfigError, DEFAULT_CONFIG_PATH, ENV_PREFIX, KubeSource};
use crate::deliver::{Reply, Sender};
use crate::upsd::{UpsName, UpsdClient, UpsdError};
use burst_wire::{ROUTE_HEARTBEAT, ROUTE_UPS, ROUTE_WITNESS};

/// The body each route gets: valid JSON, signed, but missing every required field, so the
/// function answers 400 after checking the key and the token, and records nothing.
pub const PROBE_BODY: &str =
    r#"{"doctor":"burst-agent doctor: a deliberately incomplete body; nothing is recorded"}"#;

/// Clock difference to the function above which doctor warns / fails. The function accepts a
/// token issued at most 60 s ahead of its clock (JWT `iat` leeway) and up to 60 s after its
/// expiry (`exp` = `iat` + 120 s).
pub const SKEW_WARN_S: f64 = 30.0;
pub const SKEW_FAIL_S: f64 = 120.0;

/// Where upsmon's configuration normally is.
pub const DEFAULT_UPSMON_CONF: &str = "/etc/nut/upsmon.conf";

/// The smallest HS256 secret the function accepts.
const HS256_MIN_BYTES: usize = 32;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Ok,
    Warn,
    Fail,
}

impl Mark {
    pub fn symbol(self) -> &'static str {
        match self {
            Mark::Ok => "✓",
            Mark::Warn => "!",
            Mark::Fail => "✗",
        }
    }
}

/// One line of the report, with the fixes printed under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub mark: Mark,
    pub name: String,
    pub text: String,
    pub fixes: Vec<String>,
}

/// Every check, in order.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, mark: Mark, name: &str, text: impl Into<String>, fixes: &[String]) {
        self.checks.push(Check {
            mark,
            name: name.to_string(),
            text: text.into(),
            fixes: fixes.to_vec(),
        });
    }
    fn ok(&mut self, name: &str, text: impl Into<String>) {
        self.add(Mark::Ok, name, text, &[]);
    }
    fn warn(&mut self, name: &str, text: impl Into<String>, fixes: &[String]) {
        self.add(Mark::Warn, name, text, fixes);
    }
    fn fail(&mut self, name: &str, text: impl Into<String>, fixes: &[String]) {
        self.add(Mark::Fail, name, text, fixes);
    }

    pub fn count(&self, mark: Mark) -> usize {
        self.checks.iter().filter(|c| c.mark == mark).count()
    }

    /// The report as printed: one line per check, `fix:` lines under it, a summary last.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for c in &self.checks {
            let _ = writeln!(s, "{} {:<10} {}", c.mark.symbol(), c.name, c.text);
            for f in &c.fixes {
                let _ = writeln!(s, "    fix: {f}");
            }
        }
        let (fails, warns) = (self.count(Mark::Fail), self.count(Mark::Warn));
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let _ = writeln!(
            s,
            "doctor: {}, {}{}",
            plural(fails, "problem"),
            plural(warns, "warning"),
            if fails == 0 {
                " - the path works"
            } else {
                " - fix the ✗ lines and run doctor again"
            }
        );
        s
    }
}

/// What `doctor` is given besides the environment.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--config`, if given.
    pub config_path: Option<PathBuf>,
    /// upsmon's configuration, to check its NOTIFYCMD (`--upsmon-conf`).
    pub upsmon_conf: PathBuf,
}

/// `burst-agent doctor`: runs every check, prints the report to `out`, returns the exit code.
pub async fn doctor(options: &Options, env: &HashMap<String, String>, out: &mut dyn Write) -> u8 {
    let report = run(options, env).await;
    let _ = out.write_all(report.render().as_bytes());
    let _ = out.flush();
    if report.count(Mark::Fail) == 0 { 0 } else { 1 }
}

/// Every check, as a report.
pub async fn run(options: &Options, env: &HashMap<String, String>) -> Report {
    let mut r = Report::default();
    if running_as_root() {
        r.warn(
            "user",
            "running as root: files are checked as root, but upsmon runs the hook (and the \
             timer the heartbeat) as its own user",
            &[
                "run doctor as that user too: runuser -u nut -- burst-agent doctor \
               (or su -s /bin/sh -c 'burst-agent doctor' nut)"
                    .to_string(),
            ],
        );
    }
    let Some(config) = check_config(&mut r, options, env) else {
        return r;
    };
    let signing_public = check_signing(&mut r, &config);
    check_function_keys(&mut r, &config);
    let ups_ok = check_upsd(&mut r, &config).await;
    check_upsmon(&mut r, &config, &options.upsmon_conf);
    let kube = check_kube(&mut r, &config).await;
    let routes = check_routes(&mut r, &config, signing_public.as_deref()).await;
    check_clock(&mut r, &routes);
    check_spool(&mut r, &config);
    if config.fencing() {
        check_lease_file(&mut r, &config);
    }
    check_recovery(&mut r, &config, ups_ok, kube, &routes);
    r
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------- configuration

fn check_config(
    r: &mut Report,
    options: &Options,
    env: &HashMap<String, String>,
) -> Option<Config> {
    let (path, given) = match &options.config_path {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let mut overrides: Vec<&str> = env
        .iter()
        .filter(|(k, v)| k.starts_with(ENV_PREFIX) && *k != "BURST_AGENT_LOG" && !v.is_empty())
        .map(|(k, _)| k.as_str())
        .collect();
    overrides.sort();
    let from_env = if overrides.is_empty() {
        String::new()
    } else {
        format!("; overridden by {}", overrides.join(", "))
    };
    let config = match Config::load(options.config_path.as_deref(), env) {
        Ok(c) => c,
        Err(e) => {
            let fix = match &e {
                ConfigError::Read { .. } => format!(
                    "give the right path with --config, or create it from \
                     scripts/onprem/burst-agent.toml ({} by default)",
                    DEFAULT_CONFIG_PATH
                ),
                ConfigError::Parse { path, .. } => format!(
                    "correct {} (every key is listed in agent/README.md, \"Configuration\"; \
                     unknown keys are errors)",
                    path.display()
                ),
                ConfigError::Env { name, .. } => {
                    format!("correct or unset {name} (an empty variable counts as unset)")
                }
                ConfigError::Invalid(_) => {
                    "correct the setting named above (file or BURST_AGENT_* variable)".to_string()
                }
            };
            r.fail("config", e.to_string(), &[fix]);
            return None;
        }
    };
    let source = if path.is_file() {
        format!("{} parses{from_env}", path.display())
    } else if given {
        format!("{}{from_env}", path.display())
    } else {
        format!(
            "no file at {} - settings from the environment only{from_env}",
            path.display()
        )
    };
    match config.require_function() {
        Ok(()) => {
            r.ok(
                "config",
                format!(
                    "{source}; site {:?} -> {}",
                    config.site_id,
                    config.base_url.trim_end_matches('/')
                ),
            );
            Some(config)
        }
        Err(e) => {
            let e = e.to_string();
            r.fail(
                "config",
                format!("{source}, but {}", e.trim_start_matches("config: ")),
                &[format!(
                    "set site_id (the site the function watches: BURST_SITE_ID / BURST_SITES) \
                     and base_url (the function app's root URL, e.g. \
                     https://<app>.azurewebsites.net) in {}",
                    path.display()
                )],
            );
            None
        }
    }
}

// ---------------------------------------------------------------- keys

/// Checks the signing key; returns the Ed25519 public key (PEM) when there is one.
fn check_signing(r: &mut Report, config: &Config) -> Option<String> {
    match config.algorithm {
        Algorithm::EdDSA => check_ed25519(r, config),
        Algorithm::HS256 => {
            check_hs256(r, config);
            None
        }
    }
}

fn check_ed25519(r: &mut Report, config: &Config) -> Option<String> {
    let name = "key";
    let Some(path) = config.ed25519_key_file.as_deref() else {
        r.fail(
            name,
            "algorithm EdDSA, but ed25519_key_file is not set",
            &["burst-agent keygen --private-key-out /etc/burst-agent/ed25519.pem > ed25519.pub.pem, \
               then ed25519_key_file = \"/etc/burst-agent/ed25519.pem\""
                .to_string()],
        );
        return None;
    };
    let shown = path.display();
    let new_key = format!(
        "burst-agent keygen --private-key-out {shown} > {}, and give that public key to \
         the function as BURST_AGENT_ED25519_PUBLIC_KEY",
        path.with_extension("pub.pem").display()
    );
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            r.fail(
                name,
                format!("{shown}: no such file (ed25519_key_file)"),
                &[new_key],
            );
            return None;
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            r.fail(
                name,
                format!("{shown}: not readable by this user ({e})"),
                &[format!(
                    "chgrp nut {shown} && chmod 640 {shown} (readable by the user upsmon runs \
                     as; its directory must be searchable too)"
                )],
            );
            return None;
        }
        Err(e) => {
            r.fail(name, format!("{shown}: cannot read it: {e}"), &[new_key]);
            return None;
        }
    };
    if text.contains("BEGIN PUBLIC KEY") && !text.contains("BEGIN PRIVATE KEY") {
        r.fail(
            name,
            format!("{shown} is a public key; ed25519_key_file must be the private key"),
            &[format!(
                "point ed25519_key_file at the private key (-----BEGIN PRIVATE KEY-----); the \
                 public one belongs in the function's settings. Lost it? {new_key}"
            )],
        );
        return None;
    }
    if let Err(e) = crate::auth::Signer::ed25519_pem(&config.site_id, text.as_bytes()) {
        r.fail(
            name,
            format!("{shown} is not an Ed25519 private key: {e}"),
            &[new_key],
        );
        return None;
    }
    let public = crate::keygen::public_of_private_pem(&text).ok();
    let mut line = format!("{shown}: Ed25519 private key");
    if let Some(p) = &public {
        let _ = write!(
            line,
            "; the function's BURST_AGENT_ED25519_PUBLIC_KEY must be its public key {}",
            one_line(p)
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let world = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0);
    if world {
        r.warn(
            name,
            format!("{line}; but every user on this host can read it"),
            &[format!("chmod 640 {shown} (and chgrp nut {shown})")],
        );
    } else {
        r.ok(name, line);
    }
    public
}

fn check_hs256(r: &mut Report, config: &Config) {
    let name = "key";
    let from = if config.hs256_secret.is_empty() {
        "hs256_secret_file"
    } else {
        "hs256_secret"
    };
    match config.hs256_secret() {
        Err(e) => r.fail(
            name,
            e.to_string(),
            &["make hs256_secret_file readable by this user (chgrp nut, chmod 640)".to_string()],
        ),
        Ok(None) => r.fail(
            name,
            "algorithm HS256, but neither hs256_secret nor hs256_secret_file is set",
            &[
                "set hs256_secret_file to a file with the same secret as the function's \
               BURST_AGENT_HS256_SECRET (at least 32 bytes), or use algorithm = \"EdDSA\" \
               with burst-agent keygen"
                    .to_string(),
            ],
        ),
        Ok(Some(s)) if s.len() < HS256_MIN_BYTES => r.fail(
            name,
            format!(
                "HS256 secret from {from} is {} bytes; the function requires at least \
                 {HS256_MIN_BYTES}",
                s.len()
            ),
            &[
                "make a longer one on both sides, e.g. openssl rand -hex 32 (then the same \
               value in the function's BURST_AGENT_HS256_SECRET)"
                    .to_string(),
            ],
        ),
        Ok(Some(s)) => r.ok(
            name,
            format!(
                "HS256 secret from {from}, {} bytes; the function's BURST_AGENT_HS256_SECRET \
                 must be the same",
                s.len()
            ),
        ),
    }
}

fn route_name(route: &str) -> &str {
    route.trim_start_matches("/api/")
}

fn check_function_keys(r: &mut Report, config: &Config) {
    let name = "keys";
    let mut sources = Vec::new();
    let mut missing = Vec::new();
    for route in [ROUTE_UPS, ROUTE_HEARTBEAT, ROUTE_WITNESS] {
        match config.function_key_for(route) {
            Ok((Some(_), from)) => sources.push((route, from)),
            Ok((None, _)) => missing.push(route),
            Err(e) => {
                r.fail(
                    name,
                    e.to_string(),
                    &[
                        "make the key file readable by this user, or set the key inline"
                            .to_string(),
                    ],
                );
                return;
            }
        }
    }
    let text = match sources.first() {
        None => String::new(),
        Some((_, first)) if missing.is_empty() && sources.iter().all(|(_, f)| f == first) => {
            format!("{first} for every route")
        }
        Some(_) => sources
            .iter()
            .map(|(route, from)| format!("{} <- {from}", route_name(route)))
            .collect::<Vec<_>>()
            .join(", "),
    };
    if missing.is_empty() {
        r.ok(name, format!("x-functions-key: {text}"));
    } else {
        let routes: Vec<&str> = missing.iter().map(|r| route_name(r)).collect();
        r.warn(
            name,
            format!(
                "no function key for {} (no x-functions-key header): the Functions host \
                 refuses those routes unless the app runs without keys{}",
                routes.join(", "),
                if text.is_empty() {
                    String::new()
                } else {
                    format!("; {text}")
                }
            ),
            &[
                "set function_key to the app's host key (it opens every route), or one key \
               per route: function_key_ups, function_key_heartbeat, function_key_witness"
                    .to_string(),
            ],
        );
    }
}

// ---------------------------------------------------------------- upsd, upsmon

/// Checks upsd and the UPS named by `ups`; true when it gave a reading.
async fn check_upsd(r: &mut Report, config: &Config) -> bool {
    let name = "upsd";
    let ups = match config.default_ups() {
        Ok(Some(u)) => u,
        Ok(None) => {
            if witness_host(config) {
                r.ok(name, "no ups set (a witness host: nothing to read)");
            } else {
                r.warn(
                    name,
                    "ups is not set: heartbeats carry no power reading (no ups_status, no \
                     battery), and events upsmon sends without a UPS name (SHUTDOWN, NOPARENT) \
                     carry none either",
                    &[
                        "set ups = \"<name>@<host>[:port]\", the UPS as upsmon's MONITOR line \
                       names it (upsc -l lists the names upsd serves)"
                            .to_string(),
                    ],
                );
            }
            return false;
        }
        Err(e) => {
            r.fail(
                name,
                e.to_string(),
                &["ups = \"<name>@<host>[:port]\", e.g. \"myups@localhost\"".to_string()],
            );
            return false;
        }
    };
    let limit = config.upsd_timeout();
    let result =
        tokio::time::timeout(limit + Duration::from_millis(500), read_upsd(&ups, limit)).await;
    let reading = match result {
        Ok(r) => r,
        Err(_) => Err(UpsdError::Timeout(limit)),
    };
    match reading {
        Ok(UpsdReading::Served {
            status,
            charge,
            runtime,
        }) => {
            let mut line = format!("{ups} answers: ups.status {status:?}");
            if let Some(c) = &charge {
                let _ = write!(line, ", battery.charge {c}");
            }
            if let Some(t) = &runtime {
                let _ = write!(line, ", battery.runtime {t}");
            }
            let tokens: Vec<&str> = status.split_whitespace().collect();
            if tokens.contains(&"WAIT") {
                r.warn(
                    name,
                    format!("{line}: upsd has no data from the driver yet"),
                    &[
                        "wait a few seconds and run doctor again; if it stays, look at the \
                       driver (upsdrvctl start, its log)"
                            .to_string(),
                    ],
                );
                return false;
            }
            if tokens.contains(&"OB") {
                line.push_str(" (on battery now)");
            }
            let missing: Vec<&str> = [("battery.charge", &charge), ("battery.runtime", &runtime)]
                .into_iter()
                .filter(|(_, v)| v.is_none())
                .map(|(n, _)| n)
                .collect();
            if !missing.is_empty() {
                let _ = write!(
                    line,
                    "; the driver gives no {}, so heartbeats carry none",
                    missing.join(" and ")
                );
            }
            r.ok(name, line);
            true
        }
        Ok(UpsdReading::NotServed(names)) => {
            let served = if names.is_empty() {
                "it serves no UPS at all".to_string()
            } else {
                format!("it serves: {}", names.join(", "))
            };
            let fix = match names.first() {
                Some(first) => {
                    let mut other = ups.clone();
                    other.name = first.clone();
                    format!("ups = \"{other}\" (the name from ups.conf / upsmon's MONITOR line)")
                }
                None => "configure the UPS in ups.conf and start its driver".to_string(),
            };
            r.fail(
                name,
                format!(
                    "upsd at {} has no UPS named {:?} ({served})",
                    ups.addr(),
                    ups.name
                ),
                &[fix],
            );
            false
        }
        Err(e) => {
            let fix = match &e {
                UpsdError::Connect { .. } | UpsdError::Timeout(_) => format!(
                    "start upsd (nut-server) and make it listen where ups points ({}: LISTEN \
                     in upsd.conf), or correct ups",
                    ups.addr()
                ),
                UpsdError::DataStale => {
                    "the driver stopped updating: restart it (upsdrvctl stop; upsdrvctl start) \
                     and check the UPS cable"
                        .to_string()
                }
                UpsdError::DriverNotConnected => {
                    "start the UPS driver (upsdrvctl start) and check its log".to_string()
                }
                UpsdError::Err(code) if code == "ACCESS-DENIED" => {
                    "allow this host in upsd (LISTEN address, and the firewall)".to_string()
                }
                _ => "check upsd's log (journalctl -u nut-server)".to_string(),
            };
            r.fail(name, format!("{ups}: {e}"), &[fix]);
            false
        }
    }
}

enum UpsdReading {
    Served {
        status: String,
        charge: Option<String>,
        runtime: Option<String>,
    },
    /// `LIST UPS` does not have the name; these are the ones it has.
    NotServed(Vec<String>),
}

async fn read_upsd(ups: &UpsName, limit: Duration) -> Result<UpsdReading, UpsdError> {
    let mut client = UpsdClient::connect(&ups.addr(), limit).await?;
    let names = client.list_ups().await?;
    if !names.contains_key(&ups.name) {
        client.logout().await;
        return Ok(UpsdReading::NotServed(names.into_keys().collect()));
    }
    let status = client.get_var(&ups.name, "ups.status").await?;
    let optional = |r: Result<String, UpsdError>| match r {
        Ok(v) => Ok(Some(v)),
        Err(UpsdError::VarNotSupported) => Ok(None),
        Err(e) => Err(e),
    };
    let charge = optional(client.get_var(&ups.name, "battery.charge").await)?;
    let runtime = optional(client.get_var(&ups.name, "battery.runtime").await)?;
    client.logout().await;
    Ok(UpsdReading::Served {
        status,
        charge: charge.map(|c| format!("{c} %")),
        runtime: runtime.map(|t| format!("{t} s")),
    })
}

/// A host that only runs the witness (a VPS): it has no UPS and no upsmon.
fn witness_host(config: &Config) -> bool {
    !config.witness_target.trim().is_empty() && config.ups.trim().is_empty()
}

/// upsmon's NOTIFYCMD must run `burst-agent notify` for the types that matter.
fn check_upsmon(r: &mut Report, config: &Config, path: &Path) {
    let name = "upsmon";
    if witness_host(config) {
        return;
    }
    let shown = path.display();
    let snippet = "add the lines of scripts/onprem/upsmon.conf.snippet (NOTIFYCMD \
                   \"/usr/local/bin/burst-agent notify\" and NOTIFYFLAG ... EXEC for every \
                   type), then restart upsmon (systemctl restart nut-monitor, or upsmon -c \
                   reload)";
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            r.warn(
                name,
                format!(
                    "no {shown} on this host: events reach the cloud only if upsmon runs \
                         burst-agent notify where it runs"
                ),
                &[format!(
                    "on the host running upsmon, {snippet}; or give its path with \
                           --upsmon-conf"
                )],
            );
            return;
        }
        Err(e) => {
            r.warn(
                name,
                format!("cannot read {shown}: {e}"),
                &["run doctor as root or as upsmon's user to check it".to_string()],
            );
            return;
        }
    };
    let mut notifycmd = None;
    let mut exec: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let mut words = line.splitn(2, char::is_whitespace);
        match (words.next(), words.next()) {
            (Some("NOTIFYCMD"), Some(rest)) => {
                notifycmd = Some(rest.trim().trim_matches('"').to_string())
            }
            (Some("NOTIFYFLAG"), Some(rest)) => {
                let mut parts = rest.split_whitespace();
                if let (Some(t), Some(flags)) = (parts.next(), parts.next())
                    && flags.split('+').any(|f| f == "EXEC")
                {
                    exec.push(t.to_string());
                }
            }
            _ => {}
        }
    }
    let Some(cmd) = notifycmd else {
        r.warn(
            name,
            format!("{shown} has no NOTIFYCMD: upsmon reports no event to the agent"),
            &[snippet.to_string()],
        );
        return;
    };
    let missing: Vec<&str> = [
        "ONBATT", "ONLINE", "LOWBATT", "FSD", "COMMBAD", "COMMOK", "NOCOMM", "SHUTDOWN",
    ]
    .into_iter()
    .filter(|t| !exec.iter().any(|e| e == t))
    .collect();
    let program = cmd
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    if !cmd.contains("burst-agent") {
        r.warn(
            name,
            format!(
                "NOTIFYCMD is {cmd:?}: make sure it runs burst-agent notify (with upsmon's \
                 NOTIFYTYPE and UPSNAME in its environment)"
            ),
            &[snippet.to_string()],
        );
    } else if !Path::new(&program).is_file() {
        r.warn(
            name,
            format!("NOTIFYCMD runs {program}, which does not exist"),
            &[
                "install the agent there (scripts/onprem/install-agent.sh), or correct \
               NOTIFYCMD"
                    .to_string(),
            ],
        );
    } else if !missing.is_empty() {
        r.warn(
            name,
            format!(
                "NOTIFYCMD runs burst-agent, but these types have no EXEC flag: {}",
                missing.join(", ")
            ),
            &[snippet.to_string()],
        );
    } else {
        r.ok(
            name,
            format!("{shown}: NOTIFYCMD {cmd:?}, EXEC on every power event"),
        );
    }
}

// ---------------------------------------------------------------- Kubernetes

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kube {
    None,
    Works,
    Broken,
}

async fn check_kube(r: &mut Report, config: &Config) -> Kube {
    let name = "kube";
    if config.kube_source == KubeSource::None {
        r.ok(
            name,
            "kube_source = none: heartbeats carry no node view (api_ok: false); the cloud's \
             recovery then uses power (UPS on line) and heartbeats",
        );
        return Kube::None;
    }
    let source = match config.kube_source {
        KubeSource::Infer => "infer".to_string(),
        KubeSource::InCluster => "in-cluster".to_string(),
        KubeSource::Kubeconfig => format!(
            "kubeconfig {}",
            config
                .kubeconfig
                .as_deref()
                .map_or("(not set)".to_string(), |p| p.display().to_string())
        ),
        KubeSource::Url => format!("url {}", config.kube_url),
        KubeSource::None => "none".to_string(),
    };
    match crate::inside::probe_nodes(config).await {
        Ok(view) => {
            r.ok(
                name,
                format!(
                    "{source}: {} of {} nodes ready",
                    view.nodes_ready, view.nodes_total
                ),
            );
            Kube::Works
        }
        Err(e) => {
            let fix = match config.kube_source {
                KubeSource::Kubeconfig => "kubeconfig must be a file this user (upsmon's) can \
                                           read, whose account may list nodes (a ClusterRole \
                                           with nodes: list); or kube_source = \"none\""
                    .to_string(),
                KubeSource::Url => "kube_url must answer GET /api/v1/nodes without credentials \
                                    (kubectl proxy); or kube_source = \"none\""
                    .to_string(),
                KubeSource::InCluster => "in-cluster works only in a pod whose service account \
                                          may list nodes; on a host use kubeconfig or none"
                    .to_string(),
                _ => "infer found no usable cluster access for this user: set kube_source = \
                      \"kubeconfig\" with kubeconfig = \"<path>\", or kube_source = \"none\""
                    .to_string(),
            };
            r.fail(
                name,
                format!(
                    "{source}: no node list ({e}); heartbeats say api_ok: false, and once the \
                     cloud has seen nodes it waits for them before recovering"
                ),
                &[fix],
            );
            Kube::Broken
        }
    }
}

// ---------------------------------------------------------------- the routes

/// What one route's check found.
#[derive(Clone, Debug)]
struct RouteResult {
    route: &'static str,
    ok: bool,
    reply: Option<Reply>,
}

async fn check_routes(
    r: &mut Report,
    config: &Config,
    public_key: Option<&str>,
) -> Vec<RouteResult> {
    let sender = match Sender::from_config(config) {
        Ok(s) => s,
        Err(e) => {
            r.fail(
                "routes",
                format!("not checked: cannot sign requests ({e})"),
                &["fix the key line above".to_string()],
            );
            return Vec::new();
        }
    };
    let mut results = Vec::new();
    for route in [ROUTE_UPS, ROUTE_HEARTBEAT, ROUTE_WITNESS] {
        let key_from = config
            .function_key_for(route)
            .map(|(key, from)| key.map(|_| from))
            .unwrap_or(None);
        let url = sender.url(route);
        let outcome = sender
            .post_once(route, PROBE_BODY.as_bytes(), config.http_timeout())
            .await;
        let (mark, text, fixes) = judge(config, route, &url, key_from, public_key, &outcome);
        // The witness route matters only where a witness runs.
        let (mark, text) = if mark == Mark::Fail
            && route == ROUTE_WITNESS
            && config.witness_target.trim().is_empty()
        {
            (
                Mark::Warn,
                format!(
                    "{text} (only a witness sends here; witness_target is not set on this host)"
                ),
            )
        } else {
            (mark, text)
        };
        r.add(mark, route_name(route), text, &fixes);
        results.push(RouteResult {
            route,
            ok: mark == Mark::Ok,
            reply: outcome.ok(),
        });
    }
    results
}

/// Reads one route's answer: the line and its fixes.
fn judge(
    config: &Config,
    route: &str,
    url: &str,
    key_from: Option<&str>,
    public_key: Option<&str>,
    outcome: &Result<Reply, String>,
) -> (Mark, String, Vec<String>) {
    let short = route_name(route);
    let own_key = format!("function_key_{short}");
    let base = config.base_url.trim_end_matches('/');
    let reply = match outcome {
        Ok(reply) => reply,
        Err(why) => return transport_problem(base, url, why),
    };
    let ms = reply.elapsed.as_millis();
    let status = reply.status;
    let json: Option<serde_json::Value> = serde_json::from_str(&reply.body).ok();
    let code = json
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(|e| e.as_str())
        .map(str::to_string);
    let detail = json
        .as_ref()
        .and_then(|v| v.get("detail"))
        .and_then(|e| e.as_str())
        .unwrap_or_default()
        .to_string();
    let key_text = key_from.unwrap_or("no key");
    match (status, code.as_deref()) {
        (400, _) => (
            Mark::Ok,
            format!(
                "POST {url} -> 400 to a deliberately incomplete body in {ms} ms: key \
                 ({key_text}) and signature accepted, nothing recorded"
            ),
            vec![],
        ),
        (200..=299, _) => (
            Mark::Warn,
            format!(
                "POST {url} -> {status}: key and signature accepted, but the function took a \
                 body it should refuse as malformed"
            ),
            vec![
                "update the function app (it should answer 400 to a body without id and at)"
                    .to_string(),
            ],
        ),
        (401, None) => {
            let fixes = match key_from {
                None => vec![format!(
                    "set function_key to the app's host key (it works for every route), or \
                     {own_key} to this function's key"
                )],
                Some(from) => vec![format!(
                    "the key from {from} is not valid for the {short} function: a key for \
                     another function? Use the host key as function_key (it opens every \
                     route), or give this route its own key: {own_key} (or {own_key}_file)"
                )],
            };
            (
                Mark::Fail,
                format!(
                    "POST {url} -> 401 from the Functions host (no JSON body): it refused the \
                     x-functions-key ({key_text})"
                ),
                fixes,
            )
        }
        (401, Some(code)) => {
            let fix = jwt_fix(config, code, public_key);
            (
                Mark::Fail,
                format!(
                    "POST {url} -> 401 {code} from the function: the key was accepted, the \
                     token was not ({detail})"
                ),
                vec![fix],
            )
        }
        (503, Some("not_configured")) => (
            Mark::Fail,
            format!("POST {url} -> 503 not_configured: {detail}"),
            vec![match public_key {
                Some(p) => format!(
                    "set the app setting BURST_AGENT_ED25519_PUBLIC_KEY to this agent's public \
                     key: {}",
                    one_line(p)
                ),
                None => {
                    "set the app setting BURST_AGENT_HS256_SECRET to the agent's secret".to_string()
                }
            }],
        ),
        (404, _) => (
            Mark::Fail,
            format!("POST {url} -> 404: no {short} function at that address"),
            vec![format!(
                "base_url is the app's root ({base} now; without /api), and the app has the \
                 {short} function deployed and enabled"
            )],
        ),
        (300..=399, _) => (
            Mark::Fail,
            format!(
                "POST {url} -> {status} redirect to {} (redirects are not followed)",
                reply.location.as_deref().unwrap_or("?")
            ),
            vec![
                "set base_url to the address the redirect points at (usually https://)".to_string(),
            ],
        ),
        (500..=599, _) => (
            Mark::Fail,
            format!(
                "POST {url} -> {status}: the function failed ({})",
                snippet(&reply.body)
            ),
            vec!["look at the function app's log; the agent's side looks right so far".to_string()],
        ),
        _ => (
            Mark::Fail,
            format!("POST {url} -> {status}: {}", snippet(&reply.body)),
            vec![
                "see the answer above; base_url may point at something else than the \
                  function app"
                    .to_string(),
            ],
        ),
    }
}

/// The fix for a JWT refusal, by the function's error code.
fn jwt_fix(config: &Config, code: &str, public_key: Option<&str>) -> String {
    let algorithm = match config.algorithm {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::HS256 => "HS256",
    };
    match code {
        "invalid_token" | "bad_token" => match (config.algorithm, public_key) {
            (Algorithm::EdDSA, Some(p)) => format!(
                "the signature does not verify: set the function's BURST_AGENT_ED25519_PUBLIC_KEY \
                 to this key's public half: {}",
                one_line(p)
            ),
            (Algorithm::EdDSA, None) => "the signature does not verify: the function's \
                                         BURST_AGENT_ED25519_PUBLIC_KEY is not the public half \
                                         of ed25519_key_file"
                .to_string(),
            (Algorithm::HS256, _) => "the signature does not verify: the function's \
                                      BURST_AGENT_HS256_SECRET differs from this agent's secret"
                .to_string(),
        },
        "wrong_algorithm" => format!(
            "the function expects the other algorithm (this agent signs {algorithm}): set \
             algorithm to match the function's setting (BURST_AGENT_ED25519_PUBLIC_KEY = \
             EdDSA, BURST_AGENT_HS256_SECRET = HS256)"
        ),
        "unknown_site" => format!(
            "the function does not watch site {:?}: set site_id to one of its BURST_SITES / \
             BURST_SITE_ID, or add it there",
            config.site_id
        ),
        "token_not_yet_valid" | "token_expired" => "the clocks differ by more than a minute \
                                                    (see the clock line): keep this host on \
                                                    NTP (timedatectl set-ntp true, or chrony)"
            .to_string(),
        "body_hash_mismatch" | "body_mismatch" => "something between here and the function \
                                                   changes request bodies (a proxy?): send \
                                                   straight to the function app"
            .to_string(),
        "missing_token" | "no_token" => "the Authorization header did not arrive: a proxy \
                                         between here and the function drops it"
            .to_string(),
        _ => "see the function's answer above".to_string(),
    }
}

/// No HTTP answer at all.
fn transport_problem(base: &str, url: &str, why: &str) -> (Mark, String, Vec<String>) {
    let lower = why.to_ascii_lowercase();
    let fix = if lower.contains("connection refused") {
        format!(
            "nothing listens at base_url ({base}): check base_url (BURST_AGENT_BASE_URL) and \
             that the function app runs"
        )
    } else if lower.contains("dns") || lower.contains("lookup") || lower.contains("resolve") {
        format!("the host name in base_url ({base}) does not resolve: check its spelling and DNS")
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("ssl") {
        "the TLS connection failed: install the CA certificates (ca-certificates) and check \
         that base_url is the app's own https:// address"
            .to_string()
    } else if lower.starts_with("timeout") {
        format!(
            "no answer within http_timeout_ms: is base_url ({base}) right, and does a firewall \
             drop the traffic?"
        )
    } else {
        format!("check base_url ({base}) and the network to it")
    };
    (
        Mark::Fail,
        format!("POST {url}: no answer ({why})"),
        vec![fix],
    )
}

fn snippet(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return "empty body".to_string();
    }
    let mut s: String = body.chars().take(160).collect();
    if s.len() < body.len() {
        s.push('…');
    }
    s
}

/// A PEM on one line with `\n` escapes, as the function's setting accepts it.
fn one_line(pem: &str) -> String {
    pem.trim_end().replace('\n', "\\n")
}

// ---------------------------------------------------------------- clock

/// This host's clock minus the function's (seconds), from a reply's `Date` header: the
/// header has whole seconds (truncated), so the function's time was date + 0.5 s ± 0.5 s at
/// about the middle of the exchange.
pub fn clock_offset_s(reply: &Reply) -> Option<f64> {
    let date = reply.date?;
    let middle = reply.sent_at
        + chrono::TimeDelta::from_std(reply.elapsed / 2).unwrap_or(chrono::TimeDelta::zero());
    let function_now = date + chrono::TimeDelta::milliseconds(500);
    Some((middle - function_now).num_milliseconds() as f64 / 1000.0)
}

fn check_clock(r: &mut Report, routes: &[RouteResult]) {
    let name = "clock";
    let Some((offset, when)) = routes
        .iter()
        .filter_map(|x| x.reply.as_ref())
        .find_map(|reply| Some((clock_offset_s(reply)?, reply.date?)))
    else {
        let text = if routes.iter().any(|x| x.reply.is_some()) {
            "not checked: the function's answers carry no Date header"
        } else {
            "not checked: no answer from the function"
        };
        r.warn(name, text, &[]);
        return;
    };
    let direction = if offset > 0.0 { "ahead of" } else { "behind" };
    let text = format!(
        "this host is {:.0} s {direction} the function's clock (its Date: {})",
        offset.abs(),
        rfc3339_s(when)
    );
    let ntp = "keep this host on NTP (timedatectl set-ntp true, or chrony/ntpd); tokens issued \
               more than 60 s ahead of the function's clock are refused";
    if offset.abs() > SKEW_FAIL_S {
        r.fail(name, text, &[ntp.to_string()]);
    } else if offset.abs() > SKEW_WARN_S {
        r.warn(name, text, &[ntp.to_string()]);
    } else if offset.abs() < 1.5 {
        r.ok(
            name,
            "within a second of the function's clock (its Date header)",
        );
    } else {
        r.ok(name, text);
    }
}

fn rfc3339_s(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

// ---------------------------------------------------------------- spool, lease file

fn check_spool(r: &mut Report, config: &Config) {
    let name = "spool";
    let dir = &config.spool_dir;
    let shown = dir.display();
    if !dir.is_dir() {
        r.warn(
            name,
            format!(
                "{shown} does not exist yet: the first event creates it, as the user that runs it"
            ),
            &[format!(
                "create it owned by upsmon's user: install -d -o nut -g nut -m 750 {shown} \
                 (install-agent.sh does)"
            )],
        );
        return;
    }
    if let Err(e) = writable(dir) {
        r.fail(
            name,
            format!("{shown}: this user cannot write there ({e}): events would be lost when the cloud is unreachable"),
            &[format!("chown -R nut:nut {shown} (the user upsmon runs as)")],
        );
        return;
    }
    let waiting = crate::deliver::Spool::open(dir)
        .and_then(|s| s.count())
        .unwrap_or(0);
    let rejected = count_json(&dir.join("rejected"));
    let mut fixes = Vec::new();
    let mut notes = Vec::new();
    if waiting > 0 {
        notes.push(format!("{waiting} event(s) waiting for delivery"));
        fixes.push(
            "they go with the next notify or heartbeat once the routes above work".to_string(),
        );
    }
    if rejected > 0 {
        notes.push(format!(
            "{rejected} event(s) the function refused for good in rejected/"
        ));
        fixes.push(format!(
            "read the .reason files there; after fixing the cause: mv {shown}/rejected/*.json {shown}/"
        ));
    }
    if notes.is_empty() {
        r.ok(name, format!("{shown}: writable, empty"));
    } else {
        r.warn(
            name,
            format!("{shown}: writable; {}", notes.join("; ")),
            &fixes,
        );
    }
}

fn check_lease_file(r: &mut Report, config: &Config) {
    let name = "lease";
    let path = config.lease_file();
    let dir = path.parent().unwrap_or(Path::new("/"));
    match writable(dir) {
        Ok(()) => r.ok(
            name,
            format!(
                "fence_command set; the lease file {} can be written",
                path.display()
            ),
        ),
        Err(e) => r.fail(
            name,
            format!(
                "fence_command set, but {} cannot be written ({e}): the fence state would not \
                 be kept",
                dir.display()
            ),
            &[format!(
                "make {} writable by the heartbeat's user (ReadWritePaths in the systemd unit)",
                dir.display()
            )],
        ),
    }
}

/// Creates and removes a probe file in `dir`.
fn writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".doctor-{}.tmp", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

fn count_json(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.ends_with(".json") && !n.starts_with('.')
                })
                .count()
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------- recovery

/// Which signals tell the cloud that home is back, and configurations that leave it blind.
fn check_recovery(
    r: &mut Report,
    config: &Config,
    ups_ok: bool,
    kube: Kube,
    routes: &[RouteResult],
) {
    let name = "recovery";
    if witness_host(config) || routes.is_empty() {
        return; // a witness host; or the routes could not be checked (said above)
    }
    let heartbeats = routes.iter().any(|x| x.route == ROUTE_HEARTBEAT && x.ok);
    let no_ups = config.ups.trim().is_empty();
    if !heartbeats {
        r.fail(
            name,
            "heartbeats do not reach the function (see the heartbeat line): between UPS events \
             the cloud hears nothing from home, so after an outage nothing tells it that home \
             is back",
            &[
                "fix the heartbeat route, then run burst-agent heartbeat from a timer (systemd, \
               cron or a loop: agent/README.md, step 6)"
                    .to_string(),
            ],
        );
        return;
    }
    if no_ups && kube == Kube::None {
        r.warn(
            name,
            "no UPS (ups) and no cluster view (kube_source = none): nothing tells the cloud \
             that home is back except heartbeats, and nothing tells it home is on battery: it \
             sees an outage only once heartbeats stop",
            &[
                "set ups so heartbeats and events carry the power state; a cluster view \
               (kube_source) or the function's own probe (BURST_HOME_KUBE_URL) adds the \
               nodes"
                    .to_string(),
            ],
        );
        return;
    }
    let mut signals = vec!["heartbeats"];
    if !no_ups {
        signals.insert(
            0,
            if ups_ok {
                "power (UPS)"
            } else {
                "power (UPS, not read now: see upsd)"
            },
        );
    }
    if kube == Kube::Works {
        signals.push("nodes and API");
    }
    let listed = match signals.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => signals.join(""),
    };
    let text = format!("the cloud learns that home is back from {listed}");
    if kube == Kube::Broken {
        r.warn(
            name,
            format!("{text}; the node view does not work (see kube)"),
            &["fix the kube line: once the cloud has seen nodes, it waits for them".to_string()],
        );
    } else {
        r.ok(name, text);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            elapsed: Duration::from_millis(20),
            sent_at: Utc::now(),
            date: None,
            location: None,
        }
    }

    fn config() -> Config {
        Config {
            site_id: "home".into(),
            base_url: "http://127.0.0.1:7071".into(),
            ..Config::default()
        }
    }

    #[test]
    fn a_400_proves_key_and_signature() {
        let (mark, text, fixes) = judge(
            &config(),
            ROUTE_UPS,
            "http://x/api/ups",
            Some("function_key"),
            None,
            &Ok(reply(
                400,
                r#"{"error":"invalid_payload","detail":"missing field `id`"}"#,
            )),
        );
        assert_eq!(mark, Mark::Ok, "{text}");
        assert!(text.contains("function_key") && fixes.is_empty(), "{text}");
    }

    #[test]
    fn a_host_401_is_a_key_for_another_function() {
        let (mark, text, fixes) = judge(
            &config(),
            ROUTE_HEARTBEAT,
            "http://x/api/heartbeat",
            Some("function_key"),
            None,
            &Ok(reply(401, "")),
        );
        assert_eq!(mark, Mark::Fail);
        assert!(text.contains("Functions host"), "{text}");
        let fix = fixes.join("\n");
        assert!(
            fix.contains("another function")
                && fix.contains("host key")
                && fix.contains("function_key_heartbeat"),
            "{fix}"
        );
    }

    #[test]
    fn a_handler_401_names_the_jwt_problem() {
        let ups_401 = |body: &str| {
            judge(
                &config(),
                ROUTE_UPS,
                "http://x/api/ups",
                Some("function_key"),
                Some("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
                &Ok(reply(401, body)),
            )
        };
        let (mark, text, fixes) =
            ups_401(r#"{"error":"unknown_site","detail":"token issuer \"home\" is not a site"}"#);
        assert_eq!(mark, Mark::Fail);
        assert!(text.contains("unknown_site"), "{text}");
        assert!(fixes[0].contains("BURST_SITES"), "{fixes:?}");
        let (_, _, fixes) = ups_401(r#"{"error":"invalid_token","detail":"signature"}"#);
        assert!(
            fixes[0].contains("BURST_AGENT_ED25519_PUBLIC_KEY")
                && fixes[0]
                    .contains("-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----"),
            "{fixes:?}"
        );
    }

    #[test]
    fn connection_refused_names_base_url() {
        let (mark, _, fixes) = judge(
            &config(),
            ROUTE_UPS,
            "http://127.0.0.1:7071/api/ups",
            None,
            None,
            &Err("cannot connect: tcp connect error: Connection refused (os error 111)".into()),
        );
        assert_eq!(mark, Mark::Fail);
        assert!(
            fixes[0].contains("base_url") && fixes[0].contains("http://127.0.0.1:7071"),
            "{fixes:?}"
        );
    }

    /// The clock check's report on one route's `reply`.
    fn clock_report(reply: Reply) -> Report {
        let mut report = Report::default();
        check_clock(
            &mut report,
            &[RouteResult {
                route: ROUTE_UPS,
                ok: true,
                reply: Some(reply),
            }],
        );
        report
    }

    #[test]
    fn clock_offset_from_the_date_header() {
        let mut r = reply(400, "");
        r.sent_at = DateTime::parse_from_rfc3339("2026-03-01T12:00:00.000Z")
            .unwrap()
            .with_timezone(&Utc);
        r.elapsed = Duration::from_millis(200);
        // The function's clock 45 s ahead: its Date is 12:00:45 (truncated).
        r.date = Some(r.sent_at + chrono::TimeDelta::seconds(45));
        let offset = clock_offset_s(&r).unwrap();
        assert!((offset - -45.4).abs() < 0.01, "{offset}");
        let report = clock_report(r.clone());
        assert_eq!(report.checks[0].mark, Mark::Warn, "{:?}", report.checks);
        assert!(
            report.checks[0].text.contains("45 s behind"),
            "{:?}",
            report.checks
        );
        r.date = Some(r.sent_at - chrono::TimeDelta::seconds(150));
        let report = clock_report(r);
        assert_eq!(report.checks[0].mark, Mark::Fail);
        assert!(
            report.checks[0].text.contains("ahead of"),
            "{:?}",
            report.checks
        );
    }

    #[test]
    fn rendering_and_summary() {
        let mut r = Report::default();
        r.ok("config", "fine");
        r.warn("spool", "2 waiting", &["wait".into()]);
        let text = r.render();
        assert!(
            text.starts_with("✓ config     fine\n! spool      2 waiting\n    fix: wait\n"),
            "{text}"
        );
        assert!(
            text.ends_with("doctor: 0 problems, 1 warning - the path works\n"),
            "{text}"
        );
    }
}
