//! A small tmpfs for disk-full tests: mounted when the tests run as root, unmounted when the
//! guard drops (also when the test fails). Without root the test is skipped with a printed
//! `SKIPPED: ...` line, unless `CI` is set: there it fails (CI runs as root).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs; unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    pub dir: PathBuf,
}

/// The effective user id, from `/proc/self/status` (`Uid: real effective saved fs`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn skip(test: &str, why: &str) -> Option<Tmpfs> {
    let message = format!("SKIPPED: {test}: {why}");
    if std::env::var_os("CI").is_some() {
        panic!("{message} (CI is set: this test must run)");
    }
    eprintln!("{message}");
    None
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"32k"`) on `dir` (created). `None` when the test must
    /// be skipped (not root), after printing why.
    pub fn mount(dir: &Path, size: &str, test: &str) -> Option<Tmpfs> {
        if effective_uid() != Some(0) {
            return skip(
                test,
                "needs root to mount a small tmpfs (mount -t tmpfs -o size=32k tmpfs DIR)",
            );
        }
        std::fs::create_dir_all(dir).expect("create the mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("run mount");
        if !out.status.success() {
            return skip(
                test,
                &format!(
                    "mount -t tmpfs failed (no CAP_SYS_ADMIN?): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            );
        }
        eprintln!("mounted a {size} tmpfs on {}", dir.display());
        Some(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut c = Command::new("umount");
            if lazy {
                c.arg("-l");
            }
            c.arg(&self.dir).output().is_ok_and(|o| o.status.success())
        };
        if umount(false) || umount(true) {
            eprintln!("unmounted {}", self.dir.display());
        } else {
            eprintln!("WARNING: could not unmount {}", self.dir.display());
        }
    }
}
