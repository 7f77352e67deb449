//! The spool under kills and a full disk, with the real binary: SIGKILL at random points
//! while spooling and while flushing (through a proxy that slows every chunk down), 20
//! concurrent notifies with some of them killed, and a 32 KiB tmpfs that fills up (root
//! only; skipped with a printed `SKIPPED: ...` otherwise, failing under `CI`).
//!
//! Every event is a `notify` with its own type `K0000`, `K0001`, ... in the order the test
//! started them. After the last, unkilled, heartbeat the receiver must hold:
//! - every *acknowledged* event (its `notify` exited 0: delivered or safely spooled);
//! - each event at most once as accepted (a re-send only ever as `duplicate: true`);
//! - in the order they were started (where they were started one after another);
//! - nothing refused; and the spool must be empty, every file in it whole meanwhile, its
//!   counter never torn.
//!
//! Kill points come from a seeded generator; the seed is printed (set `SPOOL_CRASH_SEED` to
//! repeat a run). Each test is bounded (`PART_LIMIT`) and prints what it did: kills, events
//! acknowledged, accepted, duplicates, and its run time.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::Harness;
use support::proxy::DelayProxy;
use support::tmpfs::Tmpfs;
use tokio::io::AsyncReadExt;

/// Bound on each test.
const PART_LIMIT: Duration = Duration::from_secs(45);
/// Bound on one agent run (only a hang reaches it).
const RUN_LIMIT: Duration = Duration::from_secs(30);

fn seed(test: &str, salt: u64) -> fastrand::Rng {
    let seed = std::env::var("SPOOL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{test}: seed {seed} (repeat with SPOOL_CRASH_SEED={seed})");
    fastrand::Rng::with_seed(seed ^ salt)
}

/// How one agent run ended.
#[derive(Debug)]
enum End {
    Killed,
    Exited { code: i32, stderr: String },
}

/// What a test did, for the assertions and the printed summary.
#[derive(Default)]
struct Tally {
    /// Events started so far (`K0000` ...).
    started: usize,
    /// Types of the events whose notify exited 0.
    acknowledged: Vec<String>,
    /// Runs killed while still running.
    kills: usize,
    /// Runs that ended on their own.
    finished: usize,
}

impl Tally {
    fn next_type(&mut self) -> String {
        let t = format!("K{:04}", self.started);
        self.started += 1;
        t
    }
}

/// Runs the agent like [`Harness::run`], killing it (SIGKILL, by its own handle) after
/// `kill_after` if it is still running.
async fn run(h: &Harness, args: &[&str], extra: &[(&str, &str)], kill_after: Duration) -> End {
    let mut child = h
        .command(args, extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run burst-agent");
    let mut stderr = child.stderr.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let status = tokio::select! {
        status = child.wait() => Some(status.unwrap()),
        () = tokio::time::sleep(kill_after) => None,
    };
    let end = match status {
        Some(status) => End::Exited {
            code: status.code().unwrap_or(-1),
            stderr: String::new(),
        },
        None => {
            let _ = child.start_kill();
            let status = tokio::time::timeout(RUN_LIMIT, child.wait())
                .await
                .expect("killed agent did not end")
                .unwrap();
            use std::os::unix::process::ExitStatusExt;
            match status.signal() {
                Some(9) => End::Killed,
                _ => End::Exited {
                    code: status.code().unwrap_or(-1),
                    stderr: String::new(),
                },
            }
        }
    };
    let text = tokio::time::timeout(RUN_LIMIT, reader)
        .await
        .expect("stderr of a run did not close")
        .unwrap();
    match end {
        End::Exited { code, .. } => End::Exited { code, stderr: text },
        killed => killed,
    }
}

/// `notify` for the next event, killed after `kill_after` if still running; counts it.
async fn notify(h: &Harness, tally: &mut Tally, kill_after: Duration) -> (String, End) {
    let kind = tally.next_type();
    let end = run(h, &["notify", "msg"], &[("NOTIFYTYPE", &kind)], kill_after).await;
    match &end {
        End::Killed => tally.kills += 1,
        End::Exited { code, .. } => {
            tally.finished += 1;
            if *code == 0 {
                tally.acknowledged.push(kind.clone());
            }
        }
    }
    (kind, end)
}

/// `heartbeat`, killed after `kill_after` if still running; counts it.
async fn heartbeat(h: &Harness, tally: &mut Tally, kill_after: Duration) -> End {
    let end = run(h, &["heartbeat"], &[], kill_after).await;
    match &end {
        End::Killed => tally.kills += 1,
        End::Exited { .. } => tally.finished += 1,
    }
    end
}

/// What a kill may leave in the spool, and may not: every `*.json` whole, the counter a
/// number not below any spooled name.
fn check_spool_files(spool: &Path) {
    let Ok(items) = std::fs::read_dir(spool) else {
        return;
    };
    let mut highest = 0;
    for item in items {
        let name = item.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let text = match std::fs::read_to_string(spool.join(&name)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{name}: {e}"),
        };
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("torn spool file {name} ({e}): {text:?}"));
        highest = highest.max(v["seq"].as_u64().unwrap());
    }
    if let Ok(text) = std::fs::read_to_string(spool.join(".seq")) {
        let counter: u64 = text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("torn counter: {text:?}"));
        assert!(
            counter >= highest,
            "counter {counter} below a spooled entry's {highest}"
        );
    }
}

/// The receiver's accepted UPS events' types, in order (the test's own events only, not the
/// calibration run's).
fn accepted(h: &Harness) -> Vec<String> {
    let mut types = h.receiver.accepted_strings("/api/ups", "type");
    types.retain(|t| t.starts_with('K'));
    types
}

/// The end state every test must reach (see the module docs); prints the summary.
/// `ordered`: the events were started one after another, so they must arrive in that order.
fn check_end(h: &Harness, tally: &Tally, test: &str, ordered: bool, started: Instant) {
    let got = accepted(h);
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(
        unique.len(),
        got.len(),
        "an event was accepted twice (not as duplicate: true): {}",
        h.receiver.describe()
    );
    for kind in &tally.acknowledged {
        assert!(
            unique.contains(kind),
            "{kind} was acknowledged (notify exited 0) but never arrived: {}",
            h.receiver.describe()
        );
    }
    if ordered {
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted, "order not kept: {}", h.receiver.describe());
    }
    assert!(h.receiver.refused().is_empty(), "{}", h.receiver.describe());
    assert!(
        h.spooled().is_empty(),
        "left in the spool: {:?}",
        h.spooled()
    );
    eprintln!(
        "{test}: {} runs killed, {} ran to the end; {} events started, {} acknowledged, {} \
         accepted ({} of them unacknowledged), {} re-sends answered duplicate: true; {:.1} s",
        tally.kills,
        tally.finished,
        tally.started,
        tally.acknowledged.len(),
        got.len(),
        got.len() - tally.acknowledged.len(),
        h.receiver.duplicates().len(),
        started.elapsed().as_secs_f64()
    );
}

/// A harness whose function sits behind a delaying proxy.
async fn slow_harness(seed: u64) -> (Harness, DelayProxy) {
    let mut h = Harness::new().await;
    let upstream: SocketAddr = h
        .receiver
        .base_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = DelayProxy::start(upstream, seed).await;
    h.set("BURST_AGENT_BASE_URL", &proxy.base_url());
    h.set("BURST_AGENT_LOG", "info");
    (h, proxy)
}

/// How long a notify takes here with the function up and quick (this machine's speed).
async fn calibrate(h: &Harness) -> Duration {
    let started = Instant::now();
    let end = run(
        h,
        &["notify", "msg"],
        &[("NOTIFYTYPE", "CALIBRATE")],
        RUN_LIMIT,
    )
    .await;
    assert!(matches!(end, End::Exited { code: 0, .. }), "{end:?}");
    started.elapsed()
}

fn between(rng: &mut fastrand::Rng, low: Duration, high: Duration) -> Duration {
    Duration::from_micros(rng.u64(low.as_micros() as u64..=high.as_micros() as u64))
}

/// `runs` notifies, each killed at a random time up to `within`; the spool is checked after
/// each.
async fn killed_notifies(
    h: &Harness,
    tally: &mut Tally,
    rng: &mut fastrand::Rng,
    within: Duration,
    runs: usize,
) {
    for _ in 0..runs {
        let kill = between(rng, Duration::ZERO, within);
        notify(h, tally, kill).await;
        check_spool_files(&h.spool_dir());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_spooling_and_while_flushing() {
    let test = "sigkill_while_spooling_and_while_flushing";
    let mut rng = seed(test, 1);
    let started = Instant::now();
    tokio::time::timeout(PART_LIMIT, async {
        let (mut h, proxy) = slow_harness(rng.u64(..)).await;
        let one = calibrate(&h).await;
        eprintln!("{test}: one notify takes {one:?} here");
        let mut tally = Tally::default();

        // Spooling, the function down: kills anywhere from start-up to the first retry.
        h.set("BURST_AGENT_NOTIFY_BUDGET_MS", "300");
        h.receiver.refuse().await;
        killed_notifies(&h, &mut tally, &mut rng, one * 2, 16).await;
        // Spooling and delivering, the function up and quick.
        h.receiver.resume().await;
        h.set("BURST_AGENT_NOTIFY_BUDGET_MS", "3000");
        killed_notifies(&h, &mut tally, &mut rng, one * 2, 12).await;
        // A backlog, then flushing through a slow function: kills while requests are on their
        // way, after the function took one but before the agent read the answer, and so on.
        h.receiver.refuse().await;
        h.set("BURST_AGENT_NOTIFY_BUDGET_MS", "300");
        for _ in 0..10 {
            notify(&h, &mut tally, RUN_LIMIT).await;
        }
        h.receiver.resume().await;
        proxy.set_delay(5, 40);
        h.set("BURST_AGENT_NOTIFY_BUDGET_MS", "3000");
        for round in 0..20 {
            let kill = between(&mut rng, Duration::ZERO, Duration::from_millis(300));
            if round % 2 == 0 {
                heartbeat(&h, &mut tally, kill).await;
            } else {
                notify(&h, &mut tally, kill).await;
            }
            check_spool_files(&h.spool_dir());
        }
        // The last run is not killed: everything must be there now.
        match heartbeat(&h, &mut tally, RUN_LIMIT).await {
            End::Exited { code: 0, .. } => {}
            other => panic!("final heartbeat: {other:?}"),
        }
        check_end(&h, &tally, test, true, started);
        assert!(tally.kills >= 10, "too few kills landed: {}", tally.kills);
    })
    .await
    .expect("the test ran over its bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_notifies_some_killed() {
    let test = "twenty_concurrent_notifies_some_killed";
    let mut rng = seed(test, 2);
    let started = Instant::now();
    tokio::time::timeout(PART_LIMIT, async {
        let (mut h, proxy) = slow_harness(rng.u64(..)).await;
        let mut tally = Tally::default();
        // A backlog of four, then the function back (slow) and 20 hooks at once, as upsmon
        // forks them; a seeded third of them killed at a random moment.
        h.receiver.refuse().await;
        h.set("BURST_AGENT_NOTIFY_BUDGET_MS", "300");
        for _ in 0..4 {
            notify(&h, &mut tally, RUN_LIMIT).await;
        }
        assert_eq!(tally.acknowledged.len(), 4);
        let backlog = tally.acknowledged.clone();
        h.receiver.resume().await;
        proxy.set_delay(0, 15);
        h.set("BURST_AGENT_NOTIFY_BUDGET_MS", "8000");

        let plans: Vec<(String, Duration)> = (0..20)
            .map(|_| {
                let kill = if rng.u8(..3) == 0 {
                    between(&mut rng, Duration::ZERO, Duration::from_millis(600))
                } else {
                    RUN_LIMIT
                };
                (tally.next_type(), kill)
            })
            .collect();
        let runs = plans.iter().map(|(kind, kill)| {
            let h = &h;
            async move {
                let end = run(h, &["notify", "msg"], &[("NOTIFYTYPE", kind)], *kill).await;
                (kind.clone(), end)
            }
        });
        for (kind, end) in futures_join_all(runs).await {
            match end {
                End::Killed => tally.kills += 1,
                End::Exited { code, stderr } => {
                    tally.finished += 1;
                    assert_eq!(code, 0, "{kind}: {stderr}");
                    tally.acknowledged.push(kind);
                }
            }
        }
        check_spool_files(&h.spool_dir());
        match heartbeat(&h, &mut tally, RUN_LIMIT).await {
            End::Exited { code: 0, .. } => {}
            other => panic!("final heartbeat: {other:?}"),
        }
        let got = accepted(&h);
        assert_eq!(got[..4], backlog[..], "the backlog goes first, in order");
        check_end(&h, &tally, test, false, started);
    })
    .await
    .expect("the test ran over its bound");
}

/// Runs the futures concurrently (tokio has no join_all of its own).
async fn futures_join_all<F, T>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<T>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_with_kills() {
    let test = "disk_full_with_kills";
    let mut rng = seed(test, 3);
    let started = Instant::now();
    let (mut h, proxy) = slow_harness(rng.u64(..)).await;
    let Some(fs) = Tmpfs::mount(&h.tmp.path().join("small"), "32k", test) else {
        return;
    };
    h.set(
        "BURST_AGENT_SPOOL_DIR",
        &fs.dir.join("spool").display().to_string(),
    );
    tokio::time::timeout(PART_LIMIT, async {
        let one = calibrate(&h).await;
        let mut tally = Tally::default();
        let (mut full, mut direct, mut left) = (0, 0, 0);
        proxy.set_delay(2, 20);
        for _round in 0..3 {
            // The function down: spool until a hook finds the disk full, some hooks killed on
            // the way (bounded, in case it never fills).
            h.receiver.refuse().await;
            h.set("BURST_AGENT_NOTIFY_BUDGET_MS", "200");
            for _ in 0..20 {
                let kill = if rng.bool() {
                    between(&mut rng, Duration::ZERO, one * 2)
                } else {
                    RUN_LIMIT
                };
                let (_, end) = notify(&h, &mut tally, kill).await;
                check_spool_files(&h.spool_dir());
                if let End::Exited { code: 1, stderr } = end {
                    assert!(stderr.contains("No space left"), "{stderr}");
                    assert!(stderr.contains("event lost"), "{stderr}");
                    full += 1;
                    break;
                }
            }
            // The function back, slow, the disk still full: the next hook delivers the
            // backlog, then its own event; it is killed at a random moment of that, or not.
            // Then one more hook, not killed.
            h.receiver.resume().await;
            h.set("BURST_AGENT_NOTIFY_BUDGET_MS", "3000");
            for kill in [
                between(&mut rng, Duration::ZERO, Duration::from_millis(500)),
                RUN_LIMIT,
            ] {
                if let (_, End::Exited { code, stderr }) = notify(&h, &mut tally, kill).await {
                    assert_eq!(code, 0, "{stderr}");
                    direct += usize::from(stderr.contains("delivered directly, after the spool"));
                }
                check_spool_files(&h.spool_dir());
            }
            left += h.spooled().len();
        }
        assert!(full > 0, "the tmpfs never filled up");
        match heartbeat(&h, &mut tally, RUN_LIMIT).await {
            End::Exited { code: 0, .. } => {}
            other => panic!("final heartbeat: {other:?}"),
        }
        check_end(&h, &tally, test, true, started);
        eprintln!(
            "{test}: {full} notifies found the disk full with the function down (not sent, \
             exit 1); {direct} could not be spooled and went directly after the backlog; \
             {left} left spooled between rounds"
        );
    })
    .await
    .expect("the test ran over its bound");
    drop(fs);
}
