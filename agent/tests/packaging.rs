//! The files in `scripts/onprem/` and this crate's README stay true to the code.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burst_agent::config::{Config, ConfigError, KubeSource};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `BURST_AGENT_*` word in `text`.
fn env_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("BURST_AGENT_") && w.len() > "BURST_AGENT_".len())
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Every setting: the defaults with each optional field filled in, as a TOML table.
fn all_keys() -> Vec<String> {
    let full = Config {
        function_key_file: Some("x".into()),
        ed25519_key_file: Some("x".into()),
        hs256_secret_file: Some("x".into()),
        kubeconfig: Some("x".into()),
        lease_file: Some("x".into()),
        ..Config::default()
    };
    toml::Table::try_from(full)
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn example_config_parses() {
    let c = Config::load(
        Some(&repo("scripts/onprem/burst-agent.toml")),
        &HashMap::new(),
    )
    .unwrap();
    assert_eq!(c.site_id, "home");
    // Works as shipped: no kubeconfig that may not exist (recovery then uses power and heartbeats).
    assert_eq!(c.kube_source, KubeSource::None);
    assert!(c.default_ups().unwrap().is_some());
    c.require_function().unwrap();
}

#[test]
fn upsmon_snippet_execs_every_notify_type() {
    let snippet = read("scripts/onprem/upsmon.conf.snippet");
    assert!(snippet.contains("NOTIFYCMD \"/usr/local/bin/burst-agent notify\""));
    // NUT 2.8.0, then the types added up to 2.8.5 (NUT's upsmon.conf documentation).
    for t in [
        "ONLINE",
        "ONBATT",
        "LOWBATT",
        "FSD",
        "COMMOK",
        "COMMBAD",
        "SHUTDOWN",
        "REPLBATT",
        "NOCOMM",
        "NOPARENT",
        "CAL",
        "OFF",
        "NOTOFF",
        "BYPASS",
        "NOTBYPASS",
        "NOTCAL",
        "ECO",
        "NOTECO",
        "ALARM",
        "NOTALARM",
        "OVER",
        "NOTOVER",
        "TRIM",
        "NOTTRIM",
        "BOOST",
        "NOTBOOST",
        "OTHER",
        "NOTOTHER",
        "SUSPEND_STARTING",
        "SUSPEND_FINISHED",
        "SHUTDOWN_HOSTSYNC",
    ] {
        let line = snippet
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(["NOTIFYFLAG", t]))
            .unwrap_or_else(|| panic!("no NOTIFYFLAG line for {t}"));
        assert!(line.contains("EXEC"), "{line}");
    }
}

#[test]
fn every_variable_named_in_the_packaging_is_a_setting() {
    let mut text = String::new();
    for f in std::fs::read_dir(repo("scripts/onprem")).unwrap() {
        text.push_str(&std::fs::read_to_string(f.unwrap().path()).unwrap());
    }
    text.push_str(&read("agent/README.md"));
    for name in env_names(&text) {
        if name == "BURST_AGENT_LOG"
            || name == "BURST_AGENT_USER"
            || name == "BURST_AGENT_ED25519_PUBLIC_KEY"
        {
            continue; // log filter; install-agent.sh's own variable; the function's setting
        }
        let env = HashMap::from([(name.clone(), "1".to_string())]);
        if let Err(ConfigError::Env { detail, .. }) = Config::from_env(&env) {
            assert!(
                !detail.contains("unknown field"),
                "{name} is not a setting: {detail}"
            );
        }
    }
}

#[test]
fn readme_documents_every_setting() {
    let readme = read("agent/README.md");
    for key in all_keys() {
        let var = format!("BURST_AGENT_{}", key.to_ascii_uppercase());
        assert!(
            readme.contains(&format!("`{key}` / `{var}`")),
            "agent/README.md lacks {key} / {var}"
        );
    }
}
