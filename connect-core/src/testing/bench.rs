//! Benchmark helpers shared by the connector crates' benches: our engine drained into a
//! channel (typed, or serialised as Debezium JSON), the Debezium embedded engine run on
//! the same workload (`../shared/bench/DbzBench.java`), rates, peak RSS, and the best of
//! repeated runs for the ratios against a raw rate.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::connector::SourceConnector;
use crate::convert::{Converter, JsonConverter};
use crate::engine::Engine;
use crate::offsets::OffsetStore;

/// Runs `source` until `expected` change events arrived (tombstones not counted), each
/// serialised to JSON with schemas when `json`; returns the time from the engine's start.
pub async fn drain(
    source: impl SourceConnector + 'static,
    offsets: impl OffsetStore + 'static,
    expected: u64,
    json: bool,
) -> Duration {
    let start = Instant::now();
    let (engine, mut rx) = Engine::builder()
        .name("bench")
        .source(source)
        .offsets(offsets)
        .into_channel(64)
        .start()
        .await
        .expect("engine starts");
    let converter = JsonConverter::default();
    let mut buf = Vec::with_capacity(8192);
    let mut n = 0u64;
    while n < expected {
        let Some(batch) = rx.recv().await else {
            let stopped = engine.wait().await.err();
            panic!("the engine stopped after {n} of {expected} events: {stopped:?}");
        };
        for r in batch.records() {
            if r.is_tombstone() {
                continue;
            }
            n += 1;
            if json {
                buf.clear();
                converter
                    .serialize(&r.topic, r.value_schema.as_ref(), &r.value, &mut buf)
                    .expect("converts");
            }
        }
        batch.ack();
    }
    let elapsed = start.elapsed();
    drop(rx);
    let _ = engine.shutdown().await;
    elapsed
}

/// The Debezium 3.6.3 embedded engine (`DbzBench`), compiled into `target/dbzbench`.
pub struct Debezium {
    classpath: String,
}

impl Debezium {
    /// Debezium, when its jars (with a `connector_jar` such as
    /// `debezium-connector-postgres`) are in `target/debezium-libs`
    /// (`scripts/fetch-debezium.sh`; or `DEBEZIUM_LIBS`), `DbzBench.java` is in
    /// `../shared/bench` (or `DEBEZIUM_BENCH_SRC`) and a JDK compiles it.
    pub fn find(connector_jar: &str) -> Option<Debezium> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let libs = std::env::var_os("DEBEZIUM_LIBS")
            .map_or_else(|| root.join("target/debezium-libs"), PathBuf::from);
        let source = std::env::var_os("DEBEZIUM_BENCH_SRC")
            .map_or_else(|| root.join("../shared/bench/DbzBench.java"), PathBuf::from);
        let has_connector = libs
            .read_dir()
            .ok()?
            .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(connector_jar)));
        if !has_connector || !source.exists() {
            return None;
        }
        let classes = root.join("target/dbzbench");
        std::fs::create_dir_all(&classes).ok()?;
        let jars = format!("{}/*", libs.display());
        let compiled = Command::new("javac")
            .args(["-nowarn", "-cp", &jars, "-d"])
            .arg(&classes)
            .arg(&source)
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        compiled.then(|| Debezium {
            classpath: format!("{jars}:{}", classes.display()),
        })
    }

    /// Runs DbzBench on a properties text until `expected` events arrived: (events/s from
    /// the first to the last event, peak RSS in MB).
    pub fn run(&self, properties: &str, expected: u64) -> Option<(f64, f64)> {
        let (out, peak) = self.java(properties, expected, 900)?;
        let rate = out
            .split_whitespace()
            .find_map(|w| w.strip_prefix("events_per_s_stream="))?
            .parse()
            .ok()?;
        Some((rate, peak))
    }

    /// Runs DbzBench for `seconds` expecting nothing, so that a connector that starts at
    /// the log's current end (`snapshot.mode=no_data`) stores its offsets before the
    /// workload is written. Whether it exited cleanly.
    pub fn warm_up(&self, properties: &str, seconds: u64) -> bool {
        self.java(properties, 0, seconds).is_some()
    }

    fn java(&self, properties: &str, expected: u64, timeout_s: u64) -> Option<(String, f64)> {
        let file = std::env::temp_dir().join(format!("dbzbench-{}.properties", std::process::id()));
        std::fs::write(&file, properties).ok()?;
        let mut child = Command::new("java")
            .args(["-cp", &self.classpath, "DbzBench"])
            .arg(&file)
            .arg(expected.to_string())
            .arg(timeout_s.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let pid = child.id();
        let mut peak = 0.0f64;
        while child.try_wait().ok()?.is_none() {
            peak = peak.max(peak_rss_mb_of(&format!("/proc/{pid}/status")));
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
        let _ = std::fs::remove_file(&file);
        Some((out, peak))
    }
}

/// An environment setting of the benchmark (`BENCH_ROWS` and the like), or `default`
/// when unset or unreadable.
pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How many times a ratio's two sides are measured (`BENCH_REPEAT`, default 3).
pub fn repeats() -> usize {
    env_or("BENCH_REPEAT", 3usize).max(1)
}

/// The fastest of [`repeats`] runs of a measurement (None if it cannot run). These
/// machines are noisy: the fastest run is the least disturbed one, and both sides of a
/// ratio are taken the same way.
pub async fn best_of<F, Fut>(mut measure: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Duration>>,
{
    let mut best: Option<Duration> = None;
    for _ in 0..repeats() {
        if let Some(d) = measure().await {
            best = Some(best.map_or(d, |b| b.min(d)));
        }
    }
    best
}

/// A raw contender and ours, run in alternating rounds ([`repeats`] of each) so that both
/// sample the same state of a noisy machine: the fastest run of each (None for a raw
/// contender that cannot run), and this process's CPU-seconds per run of ours.
pub async fn rounds<R, RawFut, O, OursFut>(
    mut raw: R,
    mut ours: O,
) -> (Option<Duration>, Duration, f64)
where
    R: FnMut() -> RawFut,
    RawFut: std::future::Future<Output = Option<Duration>>,
    O: FnMut() -> OursFut,
    OursFut: std::future::Future<Output = Duration>,
{
    let (mut best_raw, mut best_ours, mut cpu) = (None::<Duration>, Duration::MAX, 0.0);
    for _ in 0..repeats() {
        if let Some(t) = raw().await {
            best_raw = Some(best_raw.map_or(t, |b| b.min(t)));
        }
        let before = process_cpu_seconds();
        best_ours = best_ours.min(ours().await);
        cpu += process_cpu_seconds() - before;
    }
    (best_raw, best_ours, cpu / repeats() as f64)
}

/// Prints this process's peak RSS and, when Debezium ran (its runs' peaks, in MB), the
/// ratio to the largest (issue targets: at most 0.1).
pub fn print_peak_rss(debezium_mb: impl IntoIterator<Item = f64>) {
    let ours = peak_rss_mb();
    let debezium = debezium_mb.into_iter().fold(0.0, f64::max);
    if debezium > 0.0 {
        println!(
            "peak RSS   ours {ours:.0} MB (this whole process), Debezium {debezium:.0} MB: {:.3} (target <= 0.1)",
            ours / debezium
        );
    } else {
        println!("peak RSS   ours {ours:.0} MB (this whole process)");
    }
}

/// This process's peak resident set, in MB.
pub fn peak_rss_mb() -> f64 {
    peak_rss_mb_of("/proc/self/status")
}

/// The CPU time (user and system) of a process so far, from its `/proc/<pid>/stat` file,
/// in seconds (None if it cannot be read).
pub fn cpu_seconds_of(stat: &str) -> Option<f64> {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(stat).ok()?;
    // Fields after the command name: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let used: f64 = fields
        .get(11..13)?
        .iter()
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    Some(used / ticks)
}

/// This process's CPU time so far, in seconds (a cost per event that the machine's noise
/// blurs less than elapsed time does).
pub fn process_cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/self/stat").unwrap_or(0.0)
}

/// The peak resident set (`VmHWM`) of a `/proc/<pid>/status` file, in MB.
pub fn peak_rss_mb_of(status: &str) -> f64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Events per second.
pub fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}
