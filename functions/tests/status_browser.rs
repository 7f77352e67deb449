//! The status page in a real browser: headless Chromium (Debian's package) loads the page that
//! `burst-handler` serves for two sites, the DOM it builds is checked, and a screenshot is
//! written under the build folder (`target/status-page/`).
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// The build folder: `CARGO_TARGET_DIR`, else the workspace's `target/`.
fn build_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("status-page")
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
    })
}

/// Runs headless Chromium with `args` on `page`; its stdout. Stopped (by PID) after 90 s.
fn run_chromium(bin: &Path, profile: &Path, args: &[String], page: &Path) -> String {
    let mut child = Command::new(bin)
        .args([
            "--headless",
            // Root in CI: Chromium's sandbox needs user namespaces it may not have.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_status_page_renders_in_chromium_for_two_sites() {
    let Some(bin) = chromium() else {
        assert!(
            std::env::var("BURST_REQUIRE_CHROMIUM").is_err(),
            "chromium is required (scripts/install-test-deps installs it)"
        );
        eprintln!("skipped: no chromium on PATH");
        return;
    };
    let mut h = Handler::start(&[("BURST_SITES", "home,parents")]);
    let (status, body) = post_onbatt(&h, "home").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_ups(&h, "home", "LOWBATT", "OB LB", AGENT_PRIVATE_PEM).await;
    assert_eq!(status, 200, "{body}");

    let page = status_page(&h, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8").await;
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    let dir = build_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("status.html");
    std::fs::write(&file, &html).unwrap();
    let profile = tempfile::tempdir().unwrap();

    // The DOM as the browser built it.
    let dom = run_chromium(&bin, profile.path(), &["--dump-dom".into()], &file);
    assert!(dom.contains("<h2>2 sites</h2>"), "overview: {dom}");
    for id in ["home", "parents"] {
        assert!(
            dom.contains(&format!(r#"<section id="site-{id}">"#)),
            "{id}"
        );
        assert!(
            dom.contains(&format!(r##"<a href="#site-{id}">{id}</a>"##)),
            "{id}"
        );
    }
    assert_eq!(dom.matches("<svg").count(), 2, "a day chart per site");
    // Home's chart has its outage band; parents' stayed healthy all day.
    let home =
        &dom[dom.find(r#"id="site-home""#).unwrap()..dom.find(r#"id="site-parents""#).unwrap()];
    assert!(home.contains("<title>outage "), "home's outage band");
    let parents = &dom[dom.find(r#"id="site-parents""#).unwrap()..];
    assert!(!parents.contains("<title>outage "), "parents has no outage");
    assert!(!dom.contains("<script"), "nothing runs");
    // The budget and its cap (the default policy's).
    let cap = burst_core::Policy::default().monthly_budget_usd.unwrap();
    assert!(
        dom.contains(&format!("0.0 USD spent this month of {cap:.1} USD")),
        "the budget and its cap"
    );

    // A screenshot under the build folder, a real PNG.
    let shot = dir.join("status.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &bin,
        profile.path(),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,1800".into(),
        ],
        &file,
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    assert!(h.alive());
}
