//! The host's keys, kept across restarts (in Azure the host keeps them in its secrets store, so
//! a restart does not change them either): `<state dir>/keys.json`, mode 0600, in a state
//! folder created with mode 0700 and a `.gitignore` of `*` (the default state folder is inside
//! the app folder, i.e. inside a repository).
//!
//! A key set by a setting wins and is never written to the file (remove the setting and the
//! stored key is back). A key not set is read from the file, else generated and stored.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The keys file's name in the state folder.
pub const KEYS_FILE: &str = "keys.json";

const GITIGNORE: &str =
    "# Written by func-emulator: the host's keys (secrets) and timer status stay out of git.\n*\n";

/// What the file holds: the generated keys (never the ones set by settings).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    master: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    /// Function name (lower-case) → its default key. Entries of functions no longer in the
    /// app are kept (the function gets its key back if it returns).
    #[serde(default)]
    functions: BTreeMap<String, String>,
}

/// Where a key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Set by this setting (settings file, `--set` or the environment); not stored.
    Setting(String),
    /// Read from the keys file (generated at an earlier start).
    Stored,
    /// Generated at this start and written to the keys file.
    Generated,
}

/// A key and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub value: String,
    pub origin: KeyOrigin,
}

/// The keys set explicitly, as `(setting name, value)`.
#[derive(Debug, Default)]
pub(crate) struct Explicit {
    pub master: Option<(String, String)>,
    pub host: Option<(String, String)>,
    /// Function name (lower-case) → its setting.
    pub functions: BTreeMap<String, (String, String)>,
}

/// Every key of the host, resolved.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub master: Key,
    pub host: Key,
    /// Function name (lower-case) → its default key.
    pub functions: BTreeMap<String, Key>,
    /// The keys file.
    pub file: PathBuf,
    /// The file was readable by others and has been set to 0600.
    pub tightened: bool,
}

/// Why the keys cannot be kept: names the path.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct KeysError {
    pub path: PathBuf,
    pub problem: String,
}

/// Creates the state folder if missing (mode 0700, with a `.gitignore` of `*`). An existing
/// folder is left as it is, except that the default one (`ours`) gets its `.gitignore` if it
/// has none.
pub(crate) fn prepare_state_dir(dir: &Path, ours: bool) -> Result<(), KeysError> {
    let err = |e: std::io::Error| KeysError {
        path: dir.to_path_buf(),
        problem: e.to_string(),
    };
    let created = if dir.is_dir() {
        false
    } else {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
        true
    };
    let ignore = dir.join(".gitignore");
    if (created || ours) && !ignore.exists() {
        std::fs::write(&ignore, GITIGNORE).map_err(|e| KeysError {
            path: ignore.clone(),
            problem: e.to_string(),
        })?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<(Stored, bool), KeysError> {
    let err = |problem: String| KeysError {
        path: path.to_path_buf(),
        problem,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Stored::default(), false));
        }
        Err(e) => return Err(err(e.to_string())),
    };
    let mut tightened = false;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| err(format!("cannot set its mode to 0600: {e}")))?;
        tightened = true;
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let stored: Stored = serde_json::from_str(&text).map_err(|e| {
        err(format!(
            "not a keys file ({e}); fix it, or delete it to get new keys"
        ))
    })?;
    Ok((stored, tightened))
}

/// Writes the file atomically (temporary file with mode 0600, then rename).
fn write(path: &Path, stored: &Stored) -> Result<(), KeysError> {
    let err = |e: std::io::Error| KeysError {
        path: path.to_path_buf(),
        problem: e.to_string(),
    };
    let tmp = path.with_extension("json.tmp");
    let mut text = serde_json::to_string_pretty(stored).map_err(|e| KeysError {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    text.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(err)?;
    // Also when the temporary file existed with another mode.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)
}

/// Resolves every key: the explicit ones, else the stored ones, else new ones (stored).
pub(crate) fn resolve(
    state_dir: &Path,
    functions: &[String],
    explicit: Explicit,
    generate: &dyn Fn() -> String,
) -> Result<Resolved, KeysError> {
    let file = state_dir.join(KEYS_FILE);
    let (mut stored, tightened) = read(&file)?;
    let before = stored.clone();
    let pick = |set: Option<(String, String)>, slot: &mut Option<String>| match set {
        Some((name, value)) => Key {
            value,
            origin: KeyOrigin::Setting(name),
        },
        None => match slot.as_ref().filter(|v| !v.is_empty()) {
            Some(v) => Key {
                value: v.clone(),
                origin: KeyOrigin::Stored,
            },
            None => {
                let v = generate();
                *slot = Some(v.clone());
                Key {
                    value: v,
                    origin: KeyOrigin::Generated,
                }
            }
        },
    };
    let master = pick(explicit.master, &mut stored.master);
    let host = pick(explicit.host, &mut stored.host);
    let mut keys = BTreeMap::new();
    let mut explicit_functions = explicit.functions;
    for f in functions {
        let f = f.to_ascii_lowercase();
        let mut slot = stored.functions.get(&f).cloned();
        let key = pick(explicit_functions.remove(&f), &mut slot);
        if let Some(v) = slot {
            stored.functions.insert(f.clone(), v);
        }
        keys.insert(f, key);
    }
    if stored != before {
        write(&file, &stored)?;
    }
    Ok(Resolved {
        master,
        host,
        functions: keys,
        file,
        tightened,
    })
}
