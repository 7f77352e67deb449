//! The file store: CAS semantics across tasks and across processes, on-disk layout, foreign
//! and unreadable files, stale temp files, a crash before the rename, bad names, and a
//! save+load timing (printed, not asserted).
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burst_store::{FileStore, StateStore, StoreConfig, StoreError};

fn store_in(dir: &Path) -> Arc<dyn StateStore> {
    Arc::new(FileStore::new(dir))
}

#[tokio::test]
async fn cas_basics() {
    let dir = tempfile::tempdir().unwrap();
    support::cas_basics(store_in(dir.path()), "home").await;
    support::conditional_loads(store_in(dir.path()), "cond").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_writers_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let report = support::concurrent_appenders(store_in(dir.path()), "home", 16, 4).await;
    println!(
        "file store: {} updates by 16 tasks, {} conflicts retried",
        report.updates, report.conflicts
    );
    assert_eq!(report.final_doc["ids"].as_array().unwrap().len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_race_has_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let (winners, conflicts) = support::create_race(store_in(dir.path()), "new-site", 16).await;
    println!("file store create race: {winners} winner, {conflicts} conflicts");
}

#[tokio::test]
async fn bad_site_names_touch_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("state");
    support::rejects_bad_sites(store_in(&dir)).await;
    // Nothing was created, not even the folder, and nothing escaped it.
    assert!(!dir.exists());
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn layout_on_disk() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("nested/state");
    let store = FileStore::new(&dir);
    assert_eq!(
        store.load("home").await,
        Ok(None),
        "a missing folder is an empty store"
    );
    let tag = store
        .save("home", br#"{"mode":"healthy"}"#, None)
        .await
        .unwrap();
    assert_eq!(tag.len(), 32);
    assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()));
    // The document (its exact bytes; its tag is their hash) and the site's lock file; no temp.
    assert_eq!(names(&dir), ["home.json", "home.lock"]);
    assert_eq!(
        std::fs::read(dir.join("home.json")).unwrap(),
        br#"{"mode":"healthy"}"#
    );
    let tag2 = store.save("home", b"{}", Some(&tag)).await.unwrap();
    store.save("lab", b"{}", None).await.unwrap();
    assert_eq!(
        names(&dir),
        ["home.json", "home.lock", "lab.json", "lab.lock"]
    );
    let loaded = FileStore::new(&dir).load("home").await.unwrap().unwrap();
    assert_eq!((loaded.bytes.as_slice(), loaded.etag), (&b"{}"[..], tag2));
}

#[tokio::test]
async fn foreign_and_corrupt_files_are_returned_as_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let junk: &[u8] = b"\x1f\x8b\x08\x00 half a gzip {\"mode\":";
    std::fs::write(dir.path().join("home.json"), junk).unwrap();
    let loaded = store.load("home").await.unwrap().unwrap();
    assert_eq!(loaded.bytes, junk);
    // A file written by someone else still takes part in CAS: its tag is its content hash.
    assert_eq!(
        store.save("home", b"{}", None).await,
        Err(StoreError::Conflict)
    );
    let fixed = store.save("home", b"{}", Some(&loaded.etag)).await.unwrap();
    assert_eq!(store.load("home").await.unwrap().unwrap().etag, fixed);
    // A file edited by hand is what the next load sees, and its tag changes with it.
    std::fs::write(dir.path().join("home.json"), b"{\"edited\":true}").unwrap();
    let edited = store.load("home").await.unwrap().unwrap();
    assert_eq!(edited.bytes, b"{\"edited\":true}");
    assert_eq!(
        store.save("home", b"{}", Some(&fixed)).await,
        Err(StoreError::Conflict)
    );
}

/// A document that cannot be read is an error naming the file — never `None`, which would
/// start the site over from an empty state — for loads and saves alike; other sites go on.
#[tokio::test]
async fn an_unreadable_document_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    store.save("fine", b"{}", None).await.unwrap();
    // A folder where the document should be, a dangling link, a link loop.
    std::fs::create_dir(dir.path().join("odd.json")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("dangling.json")).unwrap();
    std::os::unix::fs::symlink("loop.json", dir.path().join("loop.json")).unwrap();
    for site in ["odd", "dangling", "loop"] {
        let file = dir
            .path()
            .join(format!("{site}.json"))
            .display()
            .to_string();
        for result in [
            store.load(site).await.map(|_| ()),
            store.load_blocking(site).map(|_| ()),
            store.save(site, b"{}", None).await.map(|_| ()),
            store.save(site, b"{}", Some("x")).await.map(|_| ()),
        ] {
            match result {
                Err(StoreError::Unavailable(msg)) => assert!(msg.contains(&file), "{msg}"),
                other => panic!("{site}: expected Unavailable naming {file}, got {other:?}"),
            }
        }
    }
    assert!(store.load("fine").await.unwrap().is_some());
    store.save("new", b"{}", None).await.unwrap();
}

/// A temp file left by a save that died before its rename is never the document, and the
/// next save of the site removes it.
#[tokio::test]
async fn a_stale_temp_file_does_not_become_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let v1 = store.save("home", b"{\"n\":1}", None).await.unwrap();
    std::fs::write(dir.path().join(".home.json.tmp"), b"{\"n\":2,\"torn").unwrap();
    let loaded = FileStore::new(dir.path())
        .load("home")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (loaded.bytes.as_slice(), &loaded.etag),
        (&b"{\"n\":1}"[..], &v1)
    );
    // A site whose temp file is the only file has no document.
    std::fs::write(dir.path().join(".lab.json.tmp"), b"{}").unwrap();
    assert_eq!(store.load("lab").await, Ok(None));
    store.save("home", b"{\"n\":3}", Some(&v1)).await.unwrap();
    store.save("lab", b"{}", None).await.unwrap();
    assert_eq!(
        names(dir.path()),
        ["home.json", "home.lock", "lab.json", "lab.lock"]
    );
}

/// A process killed between writing its temp file and the rename (here: it aborts at that
/// point, holding the lock) leaves the previous version; the lock dies with it, and the next
/// save goes through.
#[test]
fn a_kill_before_the_rename_leaves_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let v1 = store.save_blocking("home", b"{\"n\":1}", None).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "worker_dies_before_rename",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BURST_STORE_WORKER_DIR", dir.path())
        .env("BURST_STORE_WORKER_TAG", &v1)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("worker saving"),
        "the worker did not run: {stdout}"
    );
    assert!(!out.status.success(), "the worker survived: {stdout}");
    // Its temp file is complete, and still not the document.
    assert_eq!(
        std::fs::read(dir.path().join(".home.json.tmp")).unwrap(),
        b"{\"n\":2}"
    );
    let loaded = store.load_blocking("home").unwrap().unwrap();
    assert_eq!(
        (loaded.bytes.as_slice(), &loaded.etag),
        (&b"{\"n\":1}"[..], &v1)
    );
    let v3 = store
        .save_blocking("home", b"{\"n\":3}", Some(&v1))
        .unwrap();
    assert_eq!(store.load_blocking("home").unwrap().unwrap().etag, v3);
    assert!(!dir.path().join(".home.json.tmp").exists());
}

/// Worker for `a_kill_before_the_rename_leaves_the_previous_version`.
#[test]
#[ignore = "worker process of a_kill_before_the_rename_leaves_the_previous_version"]
fn worker_dies_before_rename() {
    let Some(dir) = std::env::var_os("BURST_STORE_WORKER_DIR") else {
        eprintln!("not started as a worker: nothing to do");
        return;
    };
    let tag = std::env::var("BURST_STORE_WORKER_TAG").unwrap();
    burst_store::abort_file_saves_before_rename();
    println!("worker saving");
    let result = FileStore::new(dir).save_blocking("home", b"{\"n\":2}", Some(&tag));
    println!("worker was not stopped: {result:?}");
}

#[tokio::test]
async fn opened_from_settings() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let get = |k: &str| (k == "BURST_STATE_URL").then(|| url.clone());
    assert_eq!(
        StoreConfig::from_settings(&get).unwrap(),
        Some(StoreConfig::File {
            dir: dir.path().to_owned()
        })
    );
    let store = burst_store::from_settings(&get, None).unwrap().unwrap();
    let tag = store.save("home", b"{\"n\":1}", None).await.unwrap();
    assert_eq!(
        FileStore::new(dir.path())
            .load_blocking("home")
            .unwrap()
            .unwrap()
            .etag,
        tag
    );
}

/// Several processes (this test binary, re-run as workers) each do N CAS increments of one
/// counter; the final count is exact.
#[test]
fn processes_increment_without_losing_updates() {
    const PROCS: usize = 4;
    const EACH: u64 = 25;
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "worker_cas_increments",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("BURST_STORE_WORKER_DIR", dir.path())
                .env("BURST_STORE_WORKER_COUNT", EACH.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut conflicts = 0u64;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "worker failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split("worker conflicts=").nth(1))
            .unwrap_or_else(|| panic!("the worker did not run: {stdout}"));
        conflicts += line.trim().parse::<u64>().unwrap();
    }
    let doc = FileStore::new(dir.path())
        .load_blocking("counter")
        .unwrap()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&doc.bytes).unwrap();
    assert_eq!(value["n"], serde_json::json!(PROCS as u64 * EACH));
    println!("file store: {PROCS} processes x {EACH} increments, {conflicts} conflicts retried");
}

/// Worker for `increment_in_processes` (run only by it, through the environment it sets).
#[test]
#[ignore = "worker process of processes_increment_without_losing_updates"]
fn worker_cas_increments() {
    let Some(dir) = std::env::var_os("BURST_STORE_WORKER_DIR") else {
        eprintln!("not started as a worker: nothing to do");
        return;
    };
    let count: u64 = std::env::var("BURST_STORE_WORKER_COUNT")
        .unwrap()
        .parse()
        .unwrap();
    let store = FileStore::new(dir);
    let mut conflicts = 0u64;
    for _ in 0..count {
        loop {
            let current = store.load_blocking("counter").unwrap();
            let (n, expected) = match &current {
                Some(v) => {
                    let doc: serde_json::Value = serde_json::from_slice(&v.bytes).unwrap();
                    (doc["n"].as_u64().unwrap(), Some(v.etag.as_str()))
                }
                None => (0, None),
            };
            let next = serde_json::to_vec(&serde_json::json!({ "n": n + 1 })).unwrap();
            match store.save_blocking("counter", &next, expected) {
                Ok(_) => break,
                Err(StoreError::Conflict) => conflicts += 1,
                Err(e) => panic!("{e}"),
            }
        }
    }
    println!("worker conflicts={conflicts}");
}

/// Save+load of a 4 KiB document, 200 times: prints the median and p99 (the function's budget
/// is 5 ms at p99 for the whole request). No assertion: the machine is shared and noisy.
#[tokio::test]
async fn save_load_timing() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let doc = serde_json::to_vec(&serde_json::json!({ "pad": "x".repeat(4000) })).unwrap();
    let mut tag = store.save("timing", &doc, None).await.unwrap();
    let mut samples: Vec<Duration> = Vec::with_capacity(200);
    for _ in 0..200 {
        let start = Instant::now();
        let loaded = store.load("timing").await.unwrap().unwrap();
        assert_eq!(loaded.etag, tag);
        tag = store
            .save("timing", &doc, Some(&loaded.etag))
            .await
            .unwrap();
        samples.push(start.elapsed());
    }
    samples.sort();
    let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    println!(
        "file store load+save of {} bytes: p50 {:?}, p99 {:?}, max {:?}",
        doc.len(),
        pct(50),
        pct(99),
        samples[samples.len() - 1]
    );
}
