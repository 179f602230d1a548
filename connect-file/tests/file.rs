//! connect-file against real files and processes: a file → file pipeline in a child
//! process killed with SIGKILL at random points, then restarted from its offsets.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use connect_core::{CommitPolicy, Engine, FileOffsetStore, StringConverter};
use connect_file::{FileSink, FileSinkConfig, FileSource, FileSourceConfig};
use rand::{Rng, SeedableRng};

const LINE_LEN: u64 = 14; // "line-00000000\n"
const CHILD_ENV: &str = "CONNECT_CRASH_CHILD_DIR";

fn paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join("in.txt"),
        dir.join("out.txt"),
        dir.join("offsets.json"),
    )
}

/// The child: copies `in.txt` to `out.txt` until a signal, committing every 10 ms.
/// Run only by the tests below, in a child process.
#[tokio::test]
#[ignore = "child process of the crash test"]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (input, output, offsets) = paths(Path::new(&dir));
    let source = FileSource::new(
        FileSourceConfig::new(&input, "lines")
            .with_batch_size(50)
            .with_poll_interval(Duration::from_millis(5)),
    )
    .unwrap();
    let sink = FileSink::new(FileSinkConfig::new(&output).with_converter(StringConverter)).unwrap();
    let engine = Engine::builder()
        .name("crash")
        .source(source)
        .offsets(FileOffsetStore::open(&offsets).unwrap())
        .commit_policy(CommitPolicy::periodic(Duration::from_millis(10)))
        .handle_signals(true)
        .shutdown_timeout(Duration::from_secs(20))
        .into_connector(sink)
        .start()
        .await
        .unwrap();
    // Only a signal ends it: then the shutdown must have drained and committed.
    let report = engine.wait().await.unwrap();
    assert!(
        report.drained() && report.committed() && !report.timed_out(),
        "{report:?}"
    );
}

fn committed_line(offsets: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(offsets) else {
        return 0;
    };
    let doc: serde_json::Value =
        serde_json::from_slice(&bytes).expect("offsets file is valid JSON after a kill");
    let pos = doc
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(|o| o["position"].as_u64())
        .unwrap_or(0);
    assert_eq!(
        pos % LINE_LEN,
        0,
        "committed position {pos} is not at a line boundary"
    );
    pos / LINE_LEN
}

fn append_lines(input: &Path, from: u64, count: u64) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(input)
        .unwrap();
    let mut text = String::with_capacity((count * LINE_LEN) as usize);
    for n in from..from + count {
        text.push_str(&format!("line-{n:08}\n"));
    }
    f.write_all(text.as_bytes()).unwrap();
}

fn spawn_child(dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, dir)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Kills the file → file pipeline with SIGKILL at random points (`CONNECT_KILL_RUNS`,
/// default 20), restarting it each time from its offsets file. Afterwards the output
/// holds every input line in order, and every duplicate comes from a restart that began
/// exactly at the committed offset, i.e. only the last uncommitted batches are repeated.
#[test]
fn kill_9_at_random_points_loses_nothing() {
    let runs: u64 = std::env::var("CONNECT_KILL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let (input, output, offsets) = paths(dir.path());
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let chunk = 60_000;
    let mut total = 0;
    let mut starts = Vec::new();
    let mut kills_mid_stream = 0;
    for _ in 0..runs {
        append_lines(&input, total, chunk);
        total += chunk;
        let start = committed_line(&offsets);
        starts.push(start);
        let mut child = spawn_child(dir.path());
        // Once the copy is under way (a loaded machine starts the child slowly), at a
        // random point of it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while committed_line(&offsets) == start && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..40)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let reached = committed_line(&offsets);
        if start < reached && reached < total {
            kills_mid_stream += 1;
        }
    }
    // A last run to completion: wait (with a deadline) until every line is committed.
    starts.push(committed_line(&offsets));
    let mut child = spawn_child(dir.path());
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed_line(&offsets) < total {
        assert!(
            Instant::now() < deadline,
            "final run did not finish: committed {} of {total}",
            committed_line(&offsets)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    assert!(
        kills_mid_stream >= runs / 4,
        "only {kills_mid_stream} of {runs} kills hit a copy in progress"
    );
    let text = std::fs::read_to_string(&output).unwrap();
    let mut expected_next = 0u64;
    let mut restart = 0usize;
    let mut duplicates = 0u64;
    for (i, line) in text.lines().enumerate() {
        let n: u64 = line
            .strip_prefix("line-")
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("output line {i} is not an input line: {line:?}"));
        if n == expected_next {
            expected_next += 1;
            continue;
        }
        assert!(
            n < expected_next,
            "gap at output line {i}: expected line {expected_next}, got {n}"
        );
        // A replay: it must be a restart that began exactly at its committed offset.
        let k = (restart + 1..starts.len())
            .find(|&k| starts[k] == n)
            .unwrap_or_else(|| panic!("output line {i} replays from {n}, which no restart's committed offset explains ({starts:?})"));
        duplicates += expected_next - n;
        restart = k;
        expected_next = n + 1;
    }
    assert_eq!(expected_next, total, "output ends early");
    eprintln!("{runs} kills ({kills_mid_stream} mid-stream), {total} lines, {duplicates} duplicates re-delivered");
}

/// A file that grows while the pipeline runs is followed, and a restart after a clean
/// shutdown resumes without duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_growing_file_and_resumes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output, offsets) = paths(dir.path());
    append_lines(&input, 0, 100);
    for round in 0..2u64 {
        let engine = Engine::builder()
            .name("follow")
            .source(
                FileSource::new(
                    FileSourceConfig::new(&input, "lines")
                        .with_poll_interval(Duration::from_millis(5)),
                )
                .unwrap(),
            )
            .offsets(FileOffsetStore::open(&offsets).unwrap())
            .commit_policy(CommitPolicy::always())
            .into_connector(
                FileSink::new(FileSinkConfig::new(&output).with_converter(StringConverter))
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        append_lines(&input, 100 + round * 100, 100);
        let want = 200 + round * 100;
        let deadline = Instant::now() + Duration::from_secs(30);
        while committed_line(&offsets) < want {
            assert!(Instant::now() < deadline, "round {round}: not followed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let report = engine.shutdown().await.unwrap();
        assert!(report.drained() && report.committed(), "{report:?}");
    }
    let text = std::fs::read_to_string(&output).unwrap();
    let expected: String = (0..300).map(|n| format!("line-{n:08}\n")).collect();
    assert_eq!(text, expected);
}

/// SIGTERM stops the pipeline gracefully: the child exits successfully after draining,
/// and the output holds exactly the committed lines (everything written was flushed and
/// committed; nothing is left to repeat).
#[test]
fn sigterm_drains_commits_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output, offsets) = paths(dir.path());
    append_lines(&input, 0, 200_000);
    let mut child = spawn_child(dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed_line(&offsets) == 0 {
        assert!(Instant::now() < deadline, "child never committed");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The shell's builtin `kill`: no procps needed.
    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "child did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(exit.success(), "graceful shutdown failed: {exit:?}");
    let committed = committed_line(&offsets);
    let written = std::fs::read_to_string(&output).unwrap();
    let expected: String = (0..committed).map(|n| format!("line-{n:08}\n")).collect();
    assert!(
        written == expected,
        "output ({} lines) is not exactly the {committed} committed lines",
        written.lines().count()
    );
}
