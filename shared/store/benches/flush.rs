//! How long a journal flush takes on this machine's disk, with the CPUs idle and with them
//! busy: appends three 6 KB records and `fdatasync`s, in a loop, for a few seconds each way.
//! `cargo bench -p burst-store --bench flush` (the folder is `$TMPDIR`, so point it at the disk
//! the state will live on).
//!
//! Why it exists: the handler bench's p99 is set by rare slow flushes, and whether those come
//! from the store or from the machine is worth knowing before tuning the store.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const RECORD: usize = 6_000;
const RECORDS_PER_FLUSH: usize = 3;
const RUN: Duration = Duration::from_secs(3);

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("flush: folder {}; {cpus} CPUs", dir.path().display());
    for busy in [0, 1, cpus] {
        run(dir.path(), busy);
    }
}

fn run(dir: &std::path::Path, busy: usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..busy)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    let path = dir.join(format!("journal-{busy}"));
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("journal");
    let record = vec![b'x'; RECORD];
    let mut times = Vec::new();
    let mut slow_at = Vec::new();
    let started = Instant::now();
    while started.elapsed() < RUN {
        for _ in 0..RECORDS_PER_FLUSH {
            file.write_all(&record).expect("append");
        }
        let t = Instant::now();
        file.sync_data().expect("fdatasync");
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        times.push(ms);
        if ms >= 10.0 {
            slow_at.push(started.elapsed().as_millis());
        }
    }
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        let _ = s.join();
    }
    let _ = std::fs::remove_file(&path);
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    let gaps: Vec<u128> = slow_at.windows(2).map(|w| w[1] - w[0]).collect();
    let mut sorted_gaps = gaps.clone();
    sorted_gaps.sort_unstable();
    println!(
        "flush: {busy} busy CPU(s): {} flushes of {} KB, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; {} flushes ≥ 10 ms{}",
        times.len(),
        RECORD * RECORDS_PER_FLUSH / 1000,
        pct(0.5),
        pct(0.99),
        times[times.len() - 1],
        slow_at.len(),
        if sorted_gaps.is_empty() {
            String::new()
        } else {
            format!(", median {} ms apart", sorted_gaps[sorted_gaps.len() / 2])
        }
    );
}
