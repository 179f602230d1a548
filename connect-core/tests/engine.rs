//! Engine tests: delivery guarantees, back-pressure, shutdown, retries and errors, driven
//! by a synthetic source of Debezium change events.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connect_core::testing::{Fault, SyntheticSource};
use connect_core::transform::{RegexRouter, Transform};
use connect_core::{
    async_trait, Batch, CommitPolicy, Engine, EngineListener, Error, ErrorTolerance,
    MemoryOffsetStore, OffsetMap, OffsetStore, PipelineBuilder, PipelineSettings, Record, Result,
    SourceOffset, SourcePartition,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn seq_of(r: &Record) -> u64 {
    r.value
        .as_struct()
        .unwrap()
        .get("after")
        .unwrap()
        .as_struct()
        .unwrap()
        .get("id")
        .unwrap()
        .as_i64()
        .unwrap() as u64
}

fn committed_seq(offsets: &OffsetMap, partition: &SourcePartition) -> u64 {
    offsets
        .get(partition)
        .and_then(|o| o.get("seq")?.as_u64())
        .unwrap_or(0)
}

/// Checks at every commit that no offset moves past a record that was not acknowledged.
struct CommitAudit {
    partition: SourcePartition,
    acked: Arc<Mutex<HashSet<u64>>>,
    violations: Arc<Mutex<Vec<String>>>,
    commits: Arc<Mutex<u64>>,
}

impl EngineListener for CommitAudit {
    fn offsets_committed(&self, _pipeline: &str, offsets: &OffsetMap) {
        let c = committed_seq(offsets, &self.partition);
        let acked = self.acked.lock().unwrap();
        if let Some(missing) = (1..=c).find(|s| !acked.contains(s)) {
            self.violations
                .lock()
                .unwrap()
                .push(format!("committed seq {c} while {missing} was not acked"));
        }
        *self.commits.lock().unwrap() += 1;
    }
}

/// A destination that acks out of order and sometimes drops a batch (a nack): every
/// record is still delivered in the end, and no commit ever passes an unacked record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_with_out_of_order_acks_and_intermittent_failures() {
    const TOTAL: u64 = 3000;
    let source = SyntheticSource::new("alo", Some(TOTAL)).batch(7);
    let partition = source.partition(0);
    let store = MemoryOffsetStore::new();
    let acked: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    let commits: Arc<Mutex<u64>> = Arc::default();
    let mut rng = StdRng::seed_from_u64(7);
    let mut runs = 0;
    let mut failures = 0;
    loop {
        runs += 1;
        assert!(runs < 200, "pipeline never completed");
        let (engine, mut rx) = Engine::builder()
            .name("alo")
            .source(source.clone())
            .offsets(store.clone())
            .commit_policy(CommitPolicy::always())
            .listener(CommitAudit {
                partition: partition.clone(),
                acked: acked.clone(),
                violations: violations.clone(),
                commits: commits.clone(),
            })
            .into_channel(8)
            .start()
            .await
            .unwrap();
        let mut held: Vec<Batch> = Vec::new();
        let mut dropped = false;
        loop {
            let next = rx.recv().await;
            let closed = next.is_none();
            held.extend(next);
            if !closed && held.len() < 4 && rng.random_bool(0.7) {
                continue; // hold some batches: acks come later and out of order
            }
            while !held.is_empty() {
                let b = held.swap_remove(rng.random_range(0..held.len()));
                if rng.random_bool(0.01) {
                    drop(b); // intermittent failure: a nack
                    dropped = true;
                    continue;
                }
                acked.lock().unwrap().extend(b.records().iter().map(seq_of));
                b.ack();
            }
            if closed {
                break;
            }
        }
        match engine.wait().await {
            Ok(report) => {
                assert!(!dropped);
                assert!(report.drained() && report.committed(), "{report:?}");
                break;
            }
            Err(Error::Nacked { .. }) => failures += 1,
            Err(other) => panic!("unexpected failure: {other}"),
        }
    }
    assert!(
        failures > 0,
        "the destination never failed: the test proves nothing"
    );
    assert!(*commits.lock().unwrap() > 10);
    assert_eq!(violations.lock().unwrap().as_slice(), &[] as &[String]);
    let acked = acked.lock().unwrap();
    let missing: Vec<u64> = (1..=TOTAL).filter(|s| !acked.contains(s)).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    assert_eq!(committed_seq(&store.snapshot("alo"), &partition), TOTAL);
}

/// With the destination stalled, the bytes handed out and not acked never exceed the
/// queue cap by more than one record, and each batch respects its own cap.
#[tokio::test(start_paused = true)]
async fn queue_bytes_stay_within_the_cap_when_the_destination_stalls() {
    let max_record = Arc::new(Mutex::new(0usize));
    let settings = PipelineSettings {
        max_batch_records: 50,
        max_batch_bytes: 8 * 1024,
        max_queue_batches: 1000,
        max_queue_bytes: 64 * 1024,
        ..PipelineSettings::default()
    };
    let source = SyntheticSource::new("mem", None)
        .batch(64)
        .name_len(10, 2000);
    let polls = source.polls();
    let (engine, mut rx) = Engine::builder()
        .name("mem")
        .source(source)
        .settings(settings.clone())
        .into_channel(1000)
        .start()
        .await
        .unwrap();
    for round in 0..5 {
        let mut held = Vec::new();
        let mut held_bytes = 0usize;
        // Paused time only advances when every task is blocked: a timeout here means
        // the engine is waiting for acks.
        while let Ok(Some(batch)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            let bytes: usize = batch.records().iter().map(Record::size_estimate).sum();
            let largest = batch
                .records()
                .iter()
                .map(Record::size_estimate)
                .max()
                .unwrap();
            let mut m = max_record.lock().unwrap();
            *m = (*m).max(largest);
            assert!(
                bytes <= settings.max_batch_bytes + *m,
                "batch of {bytes} bytes"
            );
            held_bytes += bytes;
            held.push(batch);
        }
        let cap = settings.max_queue_bytes + *max_record.lock().unwrap();
        assert!(
            held_bytes <= cap,
            "round {round}: {held_bytes} bytes held, cap {cap}"
        );
        assert!(
            held_bytes > settings.max_queue_bytes / 2,
            "round {round}: queue not filled ({held_bytes})"
        );
        let metrics = engine.metrics();
        assert_eq!(metrics.pipelines[0].queue_bytes, held_bytes);
        let polls_while_stalled = polls.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            polls.load(Ordering::Relaxed),
            polls_while_stalled,
            "source kept polling while stalled"
        );
        for b in held {
            b.ack();
        }
    }
    let report = engine.shutdown().await.unwrap();
    assert!(report.committed());
}

/// A destination slower than the shutdown bound: shutdown returns within the bound (in
/// paused time) and says it timed out, without losing what was acknowledged.
#[tokio::test(start_paused = true)]
async fn shutdown_with_a_slow_destination_respects_its_bound() {
    let store = MemoryOffsetStore::new();
    let bound = Duration::from_secs(3);
    let engine = Engine::builder()
        .name("slow")
        .source(SyntheticSource::new("slow", None).batch(10))
        .offsets(store.clone())
        .shutdown_timeout(bound)
        .into_callback(|_records, committer| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            committer.mark_batch_finished();
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let started = tokio::time::Instant::now();
    let report = engine.shutdown().await.unwrap();
    let took = started.elapsed();
    assert!(took <= bound, "shutdown took {took:?}, bound {bound:?}");
    let p = &report.pipelines[0];
    assert!(p.timed_out && !p.drained, "{p:?}");
    assert!(p.committed, "{p:?}");
    // The one batch acked before the hang is committed, nothing after it.
    let partition = SourcePartition::server("slow-0");
    assert_eq!(committed_seq(&p.offsets, &partition), 10);
    assert_eq!(committed_seq(&store.snapshot("slow"), &partition), 10);
}

/// A fast destination drains completely on shutdown.
#[tokio::test]
async fn shutdown_drains_and_commits() {
    let store = MemoryOffsetStore::new();
    let (engine, mut rx) = Engine::builder()
        .name("drain")
        .source(SyntheticSource::new("drain", None).batch(10))
        .offsets(store.clone())
        .commit_policy(CommitPolicy::periodic(Duration::from_secs(3600)))
        .into_channel(4)
        .start()
        .await
        .unwrap();
    let consumer = tokio::spawn(async move {
        let mut last = 0;
        while let Some(b) = rx.recv().await {
            last = b.records().last().map(seq_of).unwrap();
            b.ack();
        }
        last
    });
    while engine.metrics().pipelines[0].events_delivered < 100 {
        tokio::task::yield_now().await;
    }
    let report = engine.shutdown().await.unwrap();
    let last = consumer.await.unwrap();
    let p = &report.pipelines[0];
    assert!(p.drained && p.committed && !p.timed_out, "{p:?}");
    assert_eq!(
        committed_seq(&p.offsets, &SourcePartition::server("drain-0")),
        last
    );
}

/// A store whose flush waits for the test's permission.
#[derive(Clone)]
struct GatedStore {
    inner: MemoryOffsetStore,
    gate: Arc<tokio::sync::Semaphore>,
    writes: Arc<Mutex<u64>>,
}

#[async_trait]
impl OffsetStore for GatedStore {
    async fn load(&self, engine: &str) -> Result<OffsetMap> {
        self.inner.load(engine).await
    }
    async fn write(&self, engine: &str, offsets: &[(SourcePartition, SourceOffset)]) -> Result<()> {
        *self.writes.lock().unwrap() += 1;
        self.inner.write(engine, offsets).await
    }
    async fn flush(&self) -> Result<()> {
        self.gate.acquire().await.unwrap().forget();
        self.inner.flush().await
    }
}

/// The context `Once`'s task was started with.
type Seen = Arc<Mutex<Option<connect_core::TaskContext>>>;

/// A source whose one task returns one position-only batch (offset `lsn` 42), then waits.
struct Once(Seen);
struct OnceTask(Seen, bool);

impl connect_core::SourceConnector for Once {
    fn name(&self) -> &str {
        "once"
    }
    fn task_configs(&self, _: usize) -> Result<Vec<connect_core::TaskConfig>> {
        Ok(vec![connect_core::TaskConfig::new()])
    }
    fn create_task(&self) -> Box<dyn connect_core::SourceTask> {
        Box::new(OnceTask(self.0.clone(), false))
    }
}

#[async_trait]
impl connect_core::Task for OnceTask {
    async fn start(&mut self, ctx: connect_core::TaskContext) -> Result<()> {
        *self.0.lock().unwrap() = Some(ctx);
        Ok(())
    }
    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }
    fn version(&self) -> &str {
        "1"
    }
}

#[async_trait]
impl connect_core::SourceTask for OnceTask {
    async fn poll(&mut self) -> Result<Option<connect_core::SourceBatch>> {
        if std::mem::replace(&mut self.1, true) {
            std::future::pending::<()>().await;
        }
        // A position-only batch (a heartbeat): offsets advance with no record.
        Ok(Some(connect_core::SourceBatch::position(
            SourcePartition::server("once"),
            SourceOffset::single("lsn", 42),
        )))
    }
}

/// Offsets reach the task (the committed-offsets channel) only after the store's flush
/// returned.
#[tokio::test]
async fn tasks_see_offsets_only_after_the_store_flushed() {
    let seen: Seen = Arc::default();
    let store = GatedStore {
        inner: MemoryOffsetStore::new(),
        gate: Arc::new(tokio::sync::Semaphore::new(0)),
        writes: Arc::default(),
    };
    let (engine, _rx) = Engine::builder()
        .name("gated")
        .source(Once(seen.clone()))
        .offsets(store.clone())
        .commit_policy(CommitPolicy::always())
        .into_channel(1)
        .start()
        .await
        .unwrap();
    while *store.writes.lock().unwrap() == 0 {
        tokio::task::yield_now().await;
    }
    let mut committed = seen.lock().unwrap().clone().unwrap().committed;
    assert!(
        committed.borrow().is_empty(),
        "offsets published before the flush"
    );
    store.gate.add_permits(1000);
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        committed.wait_for(|o| !o.is_empty()),
    )
    .await
    .expect("offsets never published")
    .unwrap()
    .clone();
    assert_eq!(
        got[&SourcePartition::server("once")].get("lsn"),
        Some(&42.into())
    );
    engine.shutdown().await.unwrap();
}

/// A task's commit request commits at once what is acknowledged, whatever the policy.
#[tokio::test]
async fn a_task_s_commit_request_commits_ahead_of_the_policy() {
    let seen: Seen = Arc::default();
    let store = MemoryOffsetStore::new();
    let (engine, _rx) = Engine::builder()
        .name("requested")
        .source(Once(seen.clone()))
        .offsets(store.clone())
        .commit_policy(CommitPolicy::periodic(Duration::from_secs(3_600)))
        .into_channel(1)
        .start()
        .await
        .unwrap();
    let ctx = loop {
        if let Some(ctx) = seen.lock().unwrap().clone() {
            break ctx;
        }
        tokio::task::yield_now().await;
    };
    let mut committed = ctx.committed.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // The batch may not be acknowledged yet when the first request comes: ask again.
    while committed.borrow_and_update().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request committed nothing"
        );
        ctx.commit.request();
        let _ = tokio::time::timeout(Duration::from_millis(50), committed.changed()).await;
    }
    let stored = store.load("requested").await.unwrap();
    assert_eq!(
        stored[&SourcePartition::server("once")].get("lsn"),
        Some(&42.into()),
        "durable in the store before it was published"
    );
    engine.shutdown().await.unwrap();
}

/// A retryable source error restarts the task from the committed offsets; every record
/// is delivered. A fatal one stops the pipeline and surfaces on the handle.
#[tokio::test]
async fn retryable_errors_restart_and_fatal_errors_surface() {
    let fault = Fault::new(500, true);
    let source = SyntheticSource::new("retry", Some(1000))
        .batch(50)
        .fault(fault.clone());
    let (engine, mut rx) = Engine::builder()
        .name("retry")
        .source(source)
        .into_channel(4)
        .start()
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    while let Some(b) = rx.recv().await {
        seen.extend(b.records().iter().map(seq_of));
        b.ack();
    }
    engine.wait().await.unwrap();
    assert!(fault.fired());
    assert_eq!(seen, (1..=1000).collect::<BTreeSet<_>>());

    let fatal = SyntheticSource::new("fatal", Some(1000))
        .batch(50)
        .fault(Fault::new(100, false));
    let (engine, mut rx) = Engine::builder()
        .name("fatal")
        .source(fatal)
        .into_channel(4)
        .start()
        .await
        .unwrap();
    while let Some(b) = rx.recv().await {
        b.ack();
    }
    let err = engine.wait().await.unwrap_err().to_string();
    assert!(err.contains("injected fault at seq 100"), "{err}");
}

struct FailOn(u64);
impl Transform for FailOn {
    fn apply(&self, record: Record) -> Result<Option<Record>> {
        if seq_of(&record) % self.0 == 0 {
            return Err(Error::Transform {
                transform: String::new(),
                topic: record.topic.to_string(),
                message: format!("cannot handle seq {}", seq_of(&record)),
            });
        }
        Ok(Some(record))
    }
}

/// `errors.tolerance=all` sends failing records to the dead-letter destination with the
/// error in headers; `none` stops the pipeline naming the transform.
#[tokio::test]
async fn record_errors_go_to_the_dead_letter_queue_or_fail() {
    let (dlq_tx, mut dlq_rx) = tokio::sync::mpsc::channel::<Record>(1000);
    let (engine, mut rx) = Engine::builder()
        .name("dlq")
        .source(SyntheticSource::new("dlq", Some(100)).batch(10))
        .transform("picky", FailOn(10))
        .tolerance(ErrorTolerance::All)
        .dead_letter(dlq_tx)
        .into_channel(4)
        .start()
        .await
        .unwrap();
    let mut delivered = 0;
    while let Some(b) = rx.recv().await {
        assert!(b.records().iter().all(|r| seq_of(r) % 10 != 0));
        delivered += b.len();
        b.ack();
    }
    engine.wait().await.unwrap();
    assert_eq!(delivered, 90);
    let mut dead = Vec::new();
    while let Ok(r) = dlq_rx.try_recv() {
        dead.push(r);
    }
    assert_eq!(dead.len(), 10);
    let msg = dead[0]
        .header("__connect.errors.exception.message")
        .unwrap()
        .value
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("picky") && msg.contains("seq 10"), "{msg}");

    let (engine, mut rx) = Engine::builder()
        .name("strict")
        .source(SyntheticSource::new("strict", Some(100)).batch(10))
        .transform("picky", FailOn(10))
        .into_channel(4)
        .start()
        .await
        .unwrap();
    while let Some(b) = rx.recv().await {
        b.ack();
    }
    let err = engine.wait().await.unwrap_err().to_string();
    assert!(err.contains("`picky`"), "{err}");
}

/// Two pipelines in one engine, one with three tasks, one into a `futures::Sink`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_pipelines_and_tasks_in_one_engine() {
    use futures::StreamExt;
    let store = MemoryOffsetStore::new();
    let (multi, mut rx) = PipelineBuilder::new("multi")
        .source(SyntheticSource::new("multi", Some(300)).batch(25).tasks(3))
        .transform(
            "route",
            RegexRouter::new(r"multi\.(.*)", "routed.$1").unwrap(),
        )
        .offsets(store.clone())
        .settings(PipelineSettings {
            tasks_max: 3,
            ..PipelineSettings::default()
        })
        .into_channel(8);
    let (sink_tx, sink_rx) = futures::channel::mpsc::channel::<Record>(64);
    let single = PipelineBuilder::new("single")
        .source(SyntheticSource::new("single", Some(200)).batch(30))
        .offsets(store.clone())
        .into_sink(sink_tx);
    let engine = Engine::builder()
        .name("two")
        .pipeline(multi)
        .pipeline(single)
        .start()
        .await
        .unwrap();
    let sink_count = tokio::spawn(sink_rx.count());
    let mut per_partition = std::collections::HashMap::<String, BTreeSet<u64>>::new();
    while let Some(b) = rx.recv().await {
        for r in b.records() {
            assert_eq!(&*r.topic, "routed.inventory.orders");
            per_partition
                .entry(format!("{:?}", r.event_id))
                .or_default()
                .insert(seq_of(r));
        }
        b.ack();
    }
    let report = engine.wait().await.unwrap();
    assert_eq!(report.pipelines.len(), 2);
    assert_eq!(per_partition.len(), 900, "3 tasks x 300 distinct events");
    assert_eq!(sink_count.await.unwrap(), 200);
    // Offsets are namespaced by pipeline (Kafka Connect's connector name).
    let offsets = store.snapshot("multi");
    for t in 0..3 {
        let partition = SourcePartition::server(&format!("multi-{t}"));
        assert_eq!(committed_seq(&offsets, &partition), 300);
    }
    let single = store.snapshot("single");
    assert_eq!(
        committed_seq(&single, &SourcePartition::server("single-0")),
        200
    );
    assert!(store.snapshot("two").is_empty());
}

/// Invalid settings and missing parts fail at start, naming the key.
#[tokio::test]
async fn bad_engine_config_is_named() {
    let e = Engine::builder()
        .source(SyntheticSource::new("x", Some(1)))
        .settings(PipelineSettings {
            max_batch_records: 0,
            ..PipelineSettings::default()
        })
        .into_channel(1)
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("max.batch.size"), "{e}");
    let e = Engine::builder().start().await.unwrap_err().to_string();
    assert!(e.contains("connector.class"), "{e}");
    let e = Engine::builder()
        .into_channel(1)
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no source"), "{e}");
}

/// A dropped receiver is a nack, not a silent loss.
#[tokio::test]
async fn dropping_the_receiver_fails_the_pipeline() {
    let (engine, rx) = Engine::builder()
        .name("gone")
        .source(SyntheticSource::new("gone", None))
        .into_channel(2)
        .start()
        .await
        .unwrap();
    drop(rx);
    let err = engine.wait().await.unwrap_err();
    assert!(
        matches!(err, Error::Nacked { .. } | Error::Destination { .. }),
        "{err}"
    );
}

/// A transactional sink stores offsets with its data: at start the engine resumes from
/// the sink's offsets, not the store's, and hands the sink the offsets it commits.
#[tokio::test]
async fn transactional_sink_offsets_win_over_the_store() {
    use connect_core::{SinkConnector, SinkTask, Task, TaskConfig, TaskContext};
    #[derive(Clone, Default)]
    struct TxSink {
        rows: Arc<Mutex<Vec<u64>>>,
        stored: Arc<Mutex<OffsetMap>>,
    }
    struct TxTask(TxSink, Vec<u64>);
    impl SinkConnector for TxSink {
        fn name(&self) -> &str {
            "tx"
        }
        fn task_configs(&self, _: usize) -> Result<Vec<TaskConfig>> {
            Ok(vec![TaskConfig::new()])
        }
        fn create_task(&self) -> Box<dyn SinkTask> {
            Box::new(TxTask(self.clone(), Vec::new()))
        }
    }
    #[async_trait]
    impl Task for TxTask {
        async fn start(&mut self, _: TaskContext) -> Result<()> {
            Ok(())
        }
        async fn stop(&mut self) -> Result<()> {
            Ok(())
        }
        fn version(&self) -> &str {
            "1"
        }
    }
    #[async_trait]
    impl SinkTask for TxTask {
        async fn put(&mut self, records: &[Record]) -> Result<()> {
            self.1.extend(records.iter().map(seq_of));
            Ok(())
        }
        async fn flush(&mut self, offsets: &OffsetMap) -> Result<()> {
            // "One transaction": rows and offsets together.
            self.0.rows.lock().unwrap().append(&mut self.1);
            *self.0.stored.lock().unwrap() = offsets.clone();
            Ok(())
        }
        async fn committed_offsets(&mut self) -> Result<Option<OffsetMap>> {
            let stored = self.0.stored.lock().unwrap().clone();
            Ok((!stored.is_empty()).then_some(stored))
        }
    }
    let sink = TxSink::default();
    let partition = SourcePartition::server("tx-0");
    // The sink already holds rows up to seq 60 (the store knows nothing).
    *sink.stored.lock().unwrap() = [(partition.clone(), SourceOffset::single("seq", 60u64))].into();
    let store = MemoryOffsetStore::new();
    let engine = Engine::builder()
        .name("tx")
        .source(SyntheticSource::new("tx", Some(100)).batch(10))
        .offsets(store.clone())
        .into_connector(sink.clone())
        .start()
        .await
        .unwrap();
    engine.wait().await.unwrap();
    assert_eq!(*sink.rows.lock().unwrap(), (61..=100).collect::<Vec<u64>>());
    assert_eq!(committed_seq(&sink.stored.lock().unwrap(), &partition), 100);
    assert_eq!(committed_seq(&store.snapshot("tx"), &partition), 100);
}
