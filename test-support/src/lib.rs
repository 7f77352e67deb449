//! Test support shared by `burst-agent`'s own tests and the end-to-end tests (`burst-e2e`):
//! a real NUT stack run by this crate ([`nut`]: dummy-ups, upsd and upsmon on 127.0.0.1, each
//! stopped by PID), the agent's settings for a test run and a NOTIFYCMD wrapper around them
//! ([`agent`]), and small file helpers. `src/bin/nut-stack.rs` runs the same stack for scripts.
//!
//! What stands in for the function differs (a checking receiver vs the real `burst-handler`),
//! so that stays with each test crate. Every process started here is bounded in time and
//! stopped through its guard.

pub mod agent;
pub mod nut;

use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `<root>/test-support`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// `*.json` files in a directory (not hidden ones, i.e. not the spool's temp files; not
/// sub-folders), sorted. A missing directory has none.
pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "json")
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
