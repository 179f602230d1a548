//! Test and benchmark helpers (feature `test-utils`): a synthetic source of Debezium
//! change events with fault injection, crash-test helpers, and [`bench`] for the
//! connector crates' benchmarks.

pub mod bench;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::connector::{SourceBatch, SourceConnector, SourceTask, Task, TaskConfig, TaskContext};
use crate::envelope::{EnvelopeSchema, Op};
use crate::error::{Error, Result};
use crate::record::{EventId, Record, SourceOffset, SourcePartition};
use crate::schema::{logical, Schema, SchemaType};
use crate::value::{Struct, Value};

/// Shared schemas of the synthetic `inventory.orders` table.
#[derive(Debug, Clone)]
pub struct OrdersSchemas {
    /// Key schema `{id}`.
    pub key: Arc<Schema>,
    /// Row schema.
    pub row: Arc<Schema>,
    /// Source block schema.
    pub source: Arc<Schema>,
    /// Envelope.
    pub envelope: EnvelopeSchema,
}

impl Default for OrdersSchemas {
    fn default() -> Self {
        let key = Schema::struct_builder()
            .name("bench.inventory.orders.Key")
            .field("id", Schema::required(SchemaType::Int64))
            .build();
        let row = Schema::struct_builder()
            .name("bench.inventory.orders.Value")
            .optional()
            .field("id", Schema::required(SchemaType::Int64))
            .field("customer", Schema::optional(SchemaType::String))
            .field(
                "amount",
                Schema::builder(SchemaType::Bytes)
                    .name(logical::DECIMAL)
                    .version(1)
                    .parameter("scale", "2")
                    .parameter("connect.decimal.precision", "12")
                    .optional()
                    .build(),
            )
            .field("quantity", Schema::optional(SchemaType::Int32))
            .field(
                "created_at",
                Schema::builder(SchemaType::Int64)
                    .name("io.debezium.time.MicroTimestamp")
                    .version(1)
                    .optional()
                    .build(),
            )
            .build();
        let source = Schema::struct_builder()
            .name("io.debezium.connector.postgresql.Source")
            .field("version", Schema::required(SchemaType::String))
            .field("connector", Schema::required(SchemaType::String))
            .field("name", Schema::required(SchemaType::String))
            .field("ts_ms", Schema::required(SchemaType::Int64))
            .field("db", Schema::required(SchemaType::String))
            .field("schema", Schema::required(SchemaType::String))
            .field("table", Schema::required(SchemaType::String))
            .field("lsn", Schema::optional(SchemaType::Int64))
            .build();
        let envelope = EnvelopeSchema::new("bench.inventory.orders", row.clone(), source.clone())
            .expect("row schema is optional");
        OrdersSchemas {
            key,
            row,
            source,
            envelope,
        }
    }
}

impl OrdersSchemas {
    /// The change event (an insert) for sequence number `seq`, with a customer name of
    /// `name_len` bytes.
    pub fn event(
        &self,
        topic: &Arc<str>,
        partition: &SourcePartition,
        seq: u64,
        name_len: usize,
    ) -> Record {
        const NAME: &str = "customer-name-padding-customer-name-padding-customer-name-padding";
        let name = if name_len <= NAME.len() {
            Value::static_str(&NAME[..name_len])
        } else {
            Value::from("x".repeat(name_len))
        };
        let id = seq as i64;
        let row = Struct::new(
            self.row.clone(),
            vec![
                Value::Int64(id),
                name,
                Value::decimal(12_345 + i128::from(id % 1000)),
                Value::Int32((id % 50) as i32),
                Value::Int64(1_700_000_000_000_000 + id),
            ],
        )
        .expect("row arity");
        let source = Struct::new(
            self.source.clone(),
            vec![
                Value::static_str("3.6.3.Final"),
                Value::static_str("postgresql"),
                Value::static_str("bench"),
                Value::Int64(1_700_000_000_000),
                Value::static_str("bench"),
                Value::static_str("inventory"),
                Value::static_str("orders"),
                Value::Int64(id),
            ],
        )
        .expect("source arity");
        let value = self.envelope.event(
            Op::Create,
            None,
            Some(row),
            source,
            None,
            SystemTime::UNIX_EPOCH,
        );
        let key = Struct::new(self.key.clone(), vec![Value::Int64(id)]).expect("key arity");
        Record::new(topic.clone(), Some(self.envelope.schema().clone()), value)
            .with_key(Some(self.key.clone()), Value::Struct(key))
            .with_timestamp_ms(1_700_000_000_000)
            .with_event_id(EventId::from_parts(&[
                partition.as_json().as_bytes(),
                &seq.to_le_bytes(),
            ]))
    }
}

/// A fault to inject once (shared across task restarts).
#[derive(Debug)]
pub struct Fault {
    at_seq: u64,
    retryable: bool,
    fired: AtomicBool,
}

impl Fault {
    /// Fail once the task has emitted `at_seq` records.
    pub fn new(at_seq: u64, retryable: bool) -> Arc<Self> {
        Arc::new(Fault {
            at_seq,
            retryable,
            fired: AtomicBool::new(false),
        })
    }

    /// Whether it fired.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

/// A source of synthetic insert events of `bench.inventory.orders`, `total` per task
/// (`None`: endless), `batch` per poll; offsets `{"seq": n}` in partition
/// `{"server": "<name>-<task>"}`; resumes from the committed offset.
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    name: String,
    total: Option<u64>,
    batch: usize,
    name_len: (usize, usize),
    tasks: usize,
    fault: Option<Arc<Fault>>,
    polls: Arc<AtomicU64>,
    schemas: OrdersSchemas,
    pace: Option<std::time::Duration>,
}

impl SyntheticSource {
    /// `total` events per task (`None`: endless).
    pub fn new(name: &str, total: Option<u64>) -> Self {
        SyntheticSource {
            name: name.to_owned(),
            total,
            batch: 100,
            name_len: (16, 16),
            tasks: 1,
            fault: None,
            polls: Arc::default(),
            schemas: OrdersSchemas::default(),
            pace: None,
        }
    }

    /// Events per poll.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n;
        self
    }

    /// Customer names of a length in `[min, max]` (varies the record size).
    pub fn name_len(mut self, min: usize, max: usize) -> Self {
        self.name_len = (min, max.max(min));
        self
    }

    /// Number of task configs offered (each task has its own partition).
    pub fn tasks(mut self, n: usize) -> Self {
        self.tasks = n;
        self
    }

    /// Injects a fault.
    pub fn fault(mut self, fault: Arc<Fault>) -> Self {
        self.fault = Some(fault);
        self
    }

    /// Waits `pause` before each batch: a steady rate for crash and outage tests, whose
    /// kills must land mid-stream without filling the broker.
    pub fn pace(mut self, pause: std::time::Duration) -> Self {
        self.pace = Some(pause);
        self
    }

    /// Polls served so far (all tasks).
    pub fn polls(&self) -> Arc<AtomicU64> {
        self.polls.clone()
    }

    /// The partition of task `task`.
    pub fn partition(&self, task: usize) -> SourcePartition {
        SourcePartition::server(&format!("{}-{task}", self.name))
    }
}

impl SourceConnector for SyntheticSource {
    fn name(&self) -> &str {
        "synthetic"
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>> {
        Ok((0..self.tasks.min(max_tasks))
            .map(|i| TaskConfig::from([("task".to_owned(), i.to_string())]))
            .collect())
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(SyntheticTask {
            source: self.clone(),
            topic: Arc::from(format!("{}.inventory.orders", self.name)),
            partition: self.partition(0),
            next: 0,
        })
    }
}

struct SyntheticTask {
    source: SyntheticSource,
    topic: Arc<str>,
    partition: SourcePartition,
    next: u64,
}

#[async_trait]
impl Task for SyntheticTask {
    async fn start(&mut self, ctx: TaskContext) -> Result<()> {
        let task: usize = ctx
            .config
            .get("task")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        self.partition = self.source.partition(task);
        self.next = ctx
            .offset(&self.partition)
            .and_then(|o| o.get("seq")?.as_u64())
            .unwrap_or(0);
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn version(&self) -> &str {
        "test"
    }
}

#[async_trait]
impl SourceTask for SyntheticTask {
    async fn poll(&mut self) -> Result<Option<SourceBatch>> {
        self.source.polls.fetch_add(1, Ordering::Relaxed);
        if let Some(pause) = self.source.pace {
            tokio::time::sleep(pause).await;
        }
        if let Some(f) = &self.source.fault {
            if self.next >= f.at_seq && !f.fired.swap(true, Ordering::SeqCst) {
                let msg = format!("injected fault at seq {}", self.next);
                return Err(if f.retryable {
                    Error::retryable("synthetic", msg)
                } else {
                    Error::fatal("synthetic", msg)
                });
            }
        }
        let end = match self.source.total {
            Some(t) if self.next >= t => return Ok(None),
            Some(t) => t.min(self.next + self.source.batch as u64),
            None => self.next + self.source.batch as u64,
        };
        let (min, max) = self.source.name_len;
        let span = (max - min + 1) as u64;
        let records = (self.next + 1..=end)
            .map(|seq| {
                // A cheap deterministic spread of sizes.
                let len = min + (seq.wrapping_mul(2_654_435_761) % span) as usize;
                self.source
                    .schemas
                    .event(&self.topic, &self.partition, seq, len)
            })
            .collect();
        self.next = end;
        // Yield so an endless source cannot starve other tasks on a current-thread runtime.
        tokio::task::yield_now().await;
        Ok(Some(SourceBatch::new(
            records,
            self.partition.clone(),
            SourceOffset::single("seq", end),
        )))
    }
}

/// A source that emits the given records as one batch, then ends. It ignores stored
/// offsets: every start emits them again.
#[derive(Debug, Clone)]
pub struct FixedSource {
    records: Vec<Record>,
}

impl FixedSource {
    /// A source of `records` (partition `{"server":"fixed"}`, offset `{"done":true}`).
    pub fn new(records: Vec<Record>) -> Self {
        FixedSource { records }
    }
}

impl SourceConnector for FixedSource {
    fn name(&self) -> &str {
        "fixed"
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>> {
        Ok(vec![TaskConfig::new()])
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(FixedTask(Some(self.records.clone())))
    }
}

struct FixedTask(Option<Vec<Record>>);

#[async_trait]
impl Task for FixedTask {
    async fn start(&mut self, _ctx: TaskContext) -> Result<()> {
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn version(&self) -> &str {
        "test"
    }
}

#[async_trait]
impl SourceTask for FixedTask {
    async fn poll(&mut self) -> Result<Option<SourceBatch>> {
        Ok(self.0.take().map(|records| {
            SourceBatch::new(
                records,
                SourcePartition::server("fixed"),
                SourceOffset::single("done", true),
            )
        }))
    }
}

/// Regex replacements that hide what differs between runs (times, positions, versions)
/// before recorded output is compared.
pub struct Masks(Vec<(regex::Regex, &'static str)>);

impl Masks {
    /// `(pattern, replacement)` pairs, applied in order (`$1` refers to groups).
    pub fn new(pairs: &[(&str, &'static str)]) -> Masks {
        Masks(
            pairs
                .iter()
                .map(|(re, to)| (regex::Regex::new(re).expect("valid mask"), *to))
                .collect(),
        )
    }

    /// The text with every mask applied.
    pub fn apply(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |s, (re, to)| {
            re.replace_all(&s, *to).into_owned()
        })
    }
}

/// A value as `converter` writes it, as text; `null` for a null message (a tombstone, or
/// what a converter does not write). For comparisons with recorded output.
pub fn converted(
    converter: &dyn crate::Converter,
    schema: Option<&std::sync::Arc<crate::Schema>>,
    value: &crate::Value,
) -> String {
    let mut out = Vec::new();
    if converter
        .serialize("t", schema, value, &mut out)
        .expect("converts")
    {
        String::from_utf8(out).expect("text")
    } else {
        "null".to_owned()
    }
}

/// Asserts two JSON texts are equal; on a difference, shows both around the first byte
/// that differs (whole events are too long to read in an assertion message).
pub fn assert_same_json(ours: &str, expected: &str, what: &str) {
    if ours == expected {
        return;
    }
    let at = ours
        .bytes()
        .zip(expected.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(expected.len()));
    let around = |s: &str| {
        String::from_utf8_lossy(&s.as_bytes()[at.saturating_sub(200)..(at + 120).min(s.len())])
            .into_owned()
    };
    panic!(
        "{what} differs at byte {at}:\n ours:     ...{}...\n expected: ...{}...",
        around(ours),
        around(expected)
    );
}

/// The output of a crash test's child process: a file sink with the string converter,
/// one row per line, each naming its `id=N`. What crash tests check: every id arrives and
/// none is skipped, whatever was repeated after a kill.
pub struct CrashOutput {
    path: std::path::PathBuf,
}

impl CrashOutput {
    /// The output at `path` (which may not exist yet).
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        CrashOutput { path: path.into() }
    }

    /// The first `id=N` of every line, in file order.
    pub fn ids(&self) -> Vec<i64> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (_, rest) = line.split_once("id=")?;
                let end = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                rest[..end].parse().ok()
            })
            .collect()
    }

    /// How many distinct ids arrived.
    pub fn distinct(&self) -> usize {
        self.ids()
            .into_iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
    }

    /// Waits until `total` distinct ids arrived; panics after `timeout`.
    pub async fn wait_for(&self, total: usize, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let seen = self.distinct();
            if seen == total {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "only {seen} of {total} rows arrived"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Asserts that ids 1..=`total` all arrived with no gap (a row never comes before
    /// every lower one did; repeats only go back), and returns the number of repeats.
    pub fn assert_complete_without_gaps(&self, total: usize) -> usize {
        let ids = self.ids();
        let mut expected_next = 1;
        for (line, &id) in ids.iter().enumerate() {
            assert!(
                id <= expected_next,
                "output line {line}: row {id} arrived before row {expected_next} (a gap)"
            );
            expected_next = expected_next.max(id + 1);
        }
        assert_eq!(expected_next, total as i64 + 1, "rows missing at the end");
        ids.len() - total
    }
}

/// Starts this test binary again as a child process that runs only the ignored test
/// `test` (a crash test's child), with `envs` set and its output discarded.
pub fn spawn_test_child(test: &str, envs: &[(&str, &std::ffi::OsStr)]) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("the test binary's path"))
        .args([test, "--exact", "--ignored", "--nocapture"])
        .envs(envs.iter().copied())
        .env("RUST_BACKTRACE", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the test binary starts again")
}

/// The variable naming a crash test child's database (see [`spawn_crash_child`]).
pub const CRASH_DB_ENV: &str = "CONNECT_CRASH_DB";
/// The variable naming a crash test child's directory (offsets, output).
pub const CRASH_DIR_ENV: &str = "CONNECT_CRASH_DIR";

/// Starts crash test child `test` on database `db`, keeping its state in `dir`
/// ([`CRASH_DB_ENV`], [`CRASH_DIR_ENV`]).
pub fn spawn_crash_child(test: &str, db: &str, dir: &std::path::Path) -> std::process::Child {
    spawn_test_child(
        test,
        &[
            (CRASH_DB_ENV, db.as_ref()),
            (CRASH_DIR_ENV, dir.as_os_str()),
        ],
    )
}

/// SIGKILLs a child and reaps it.
pub fn kill_child(mut child: std::process::Child) {
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
}

/// What a kill -9 test of a change-data-capture source varies (see
/// [`kill_during_snapshot_and_streaming`]).
#[async_trait]
pub trait CrashScenario: Send {
    /// Starts the child pipeline (typically [`spawn_test_child`]).
    fn spawn(&self) -> std::process::Child;
    /// The stored offset: None before the first, `Some(true)` while it is the snapshot's,
    /// `Some(false)` once streaming.
    fn in_snapshot(&self) -> Option<bool>;
    /// Adds rows `next_id..` while the child is down (in run `run`); returns the next id.
    async fn grow(&mut self, run: u64, next_id: i64) -> i64;
    /// The source's own checks after a kill, and waiting until a new child may start.
    async fn after_kill(&mut self, _run: u64, _streaming: bool) {}
}

/// What [`kill_during_snapshot_and_streaming`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashReport {
    /// Kills while the stored offset was none or the snapshot's.
    pub during_snapshot: u64,
    /// Kills while streaming with rows still missing from the output.
    pub during_stream: u64,
    /// Rows in the source at the end.
    pub total: i64,
    /// Output lines beyond one per row (replays of uncommitted work or of the snapshot).
    pub repeats: usize,
}

/// SIGKILLs a source's child pipeline `runs` times after `kill_after()` each: the first
/// half while a snapshot of rows `1..=initial_rows` runs, the second half (after one run
/// that completes the snapshot) while a backlog that `grow` adds between runs streams.
/// Then one run to completion: every row must be in `output` with no gap (repeats only
/// from replays). Asserts that at least one kill hit the snapshot and three hit a stream
/// with rows still missing.
pub async fn kill_during_snapshot_and_streaming(
    scenario: &mut dyn CrashScenario,
    output: &CrashOutput,
    runs: u64,
    initial_rows: i64,
    mut kill_after: impl FnMut() -> std::time::Duration,
) -> CrashReport {
    use std::time::{Duration, Instant};
    let mut next_id = initial_rows + 1;
    let (mut during_snapshot, mut during_stream) = (0, 0);
    for run in 0..runs {
        let streaming = run >= runs / 2;
        if run == runs / 2 {
            // Let one run finish the snapshot, then kill it while streaming.
            let child = scenario.spawn();
            let deadline = Instant::now() + Duration::from_secs(120);
            while scenario.in_snapshot() != Some(false) {
                assert!(Instant::now() < deadline, "snapshot never completed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            kill_child(child);
            scenario.after_kill(run, true).await;
        }
        if streaming {
            next_id = scenario.grow(run, next_id).await;
        }
        let child = scenario.spawn();
        tokio::time::sleep(kill_after()).await;
        kill_child(child);
        match scenario.in_snapshot() {
            Some(true) | None => during_snapshot += 1,
            Some(false) => {
                if (output.distinct() as i64) < next_id - 1 {
                    during_stream += 1;
                }
            }
        }
        scenario
            .after_kill(run, scenario.in_snapshot() == Some(false))
            .await;
    }
    let total = next_id - 1;
    let child = scenario.spawn();
    output
        .wait_for(total as usize, Duration::from_secs(120))
        .await;
    kill_child(child);
    let repeats = output.assert_complete_without_gaps(total as usize);
    let report = CrashReport {
        during_snapshot,
        during_stream,
        total,
        repeats,
    };
    eprintln!(
        "{runs} kills ({during_snapshot} during the snapshot, {during_stream} mid-stream), {total} rows, {repeats} repeats"
    );
    assert!(during_snapshot >= 1, "no kill hit the snapshot");
    assert!(
        during_stream >= 3,
        "only {during_stream} kills hit a stream with rows still missing"
    );
    report
}
