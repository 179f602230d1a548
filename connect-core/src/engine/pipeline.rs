//! One pipeline: source tasks → transforms → destination, with acknowledgement tracking,
//! offset commits, retries and shutdown.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::future::BoxFuture;
use futures::{Sink, SinkExt};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::ack::AckTracker;
use super::batch::{now_ms, AckHandle, Batch, BatchReceiver, Committer};
use super::metrics::{EngineListener, PipelineMetrics};
use super::policy::CommitPolicy;
use crate::connector::{
    CommitRequest, SinkConnector, SinkTask, SourceBatch, SourceConnector, SourceTask, TaskContext,
};
use crate::error::{BoxError, Error, Result};
use crate::offsets::{MemoryOffsetStore, OffsetMap, OffsetStore};
use crate::record::{Header, Record, SourceOffset, SourcePartition};
use crate::transform::{Predicate, Transform, TransformChain};
use crate::value::Value;

/// Default `tasks.max`.
pub const DEFAULT_TASKS_MAX: usize = 1;
/// Default `max.batch.size` (records per batch), Debezium's default.
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 2048;
/// Default `max.batch.bytes`.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 4 << 20;
/// Default `max.queue.batches`: batches handed to the destination and not yet acked.
pub const DEFAULT_MAX_QUEUE_BATCHES: usize = 16;
/// Default `max.queue.bytes`.
pub const DEFAULT_MAX_QUEUE_BYTES: usize = 64 << 20;
/// Default `errors.retry.timeout` (how long retryable errors are retried).
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(300);
/// Default `errors.retry.delay.max.ms`.
pub const DEFAULT_RETRY_MAX_DELAY: Duration = Duration::from_secs(60);
/// First retry delay.
pub const DEFAULT_RETRY_MIN_DELAY: Duration = Duration::from_millis(100);

/// Kafka Connect's `errors.tolerance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorTolerance {
    /// A record-level error stops the pipeline.
    #[default]
    None,
    /// A record-level error skips the record (to the dead-letter destination, if any).
    All,
}

/// Limits and policies of one pipeline (Debezium/Connect option names in brackets).
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Tasks per connector (`tasks.max`).
    pub tasks_max: usize,
    /// Records per batch (`max.batch.size`).
    pub max_batch_records: usize,
    /// Bytes per batch (`max.batch.bytes`): a batch never exceeds it by more than one record.
    pub max_batch_bytes: usize,
    /// Unacknowledged batches (`max.queue.batches`).
    pub max_queue_batches: usize,
    /// Unacknowledged bytes (`max.queue.bytes`): never exceeded by more than one record.
    pub max_queue_bytes: usize,
    /// When offsets are committed (`offset.flush.interval.ms`, `offset.flush.records`).
    pub commit_policy: CommitPolicy,
    /// `errors.tolerance`.
    pub tolerance: ErrorTolerance,
    /// `errors.retry.timeout`; `None` retries forever.
    pub retry_timeout: Option<Duration>,
    /// `errors.retry.delay.max.ms`.
    pub retry_max_delay: Duration,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            tasks_max: DEFAULT_TASKS_MAX,
            max_batch_records: DEFAULT_MAX_BATCH_RECORDS,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            max_queue_batches: DEFAULT_MAX_QUEUE_BATCHES,
            max_queue_bytes: DEFAULT_MAX_QUEUE_BYTES,
            commit_policy: CommitPolicy::default(),
            tolerance: ErrorTolerance::None,
            retry_timeout: Some(DEFAULT_RETRY_TIMEOUT),
            retry_max_delay: DEFAULT_RETRY_MAX_DELAY,
        }
    }
}

impl PipelineSettings {
    /// Whether an error first seen at `since` may still be retried.
    fn may_retry(&self, since: Instant) -> bool {
        self.retry_timeout.is_none_or(|t| since.elapsed() < t)
    }

    /// Checks the limits; errors name the property.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("tasks.max", self.tasks_max),
            ("max.batch.size", self.max_batch_records),
            ("max.batch.bytes", self.max_batch_bytes),
            ("max.queue.batches", self.max_queue_batches),
            ("max.queue.bytes", self.max_queue_bytes),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(Error::config(key, "must be greater than 0"));
            }
        }
        if self.max_queue_bytes < self.max_batch_bytes {
            return Err(Error::config(
                "max.queue.bytes",
                format!(
                    "must be at least max.batch.bytes ({} < {})",
                    self.max_queue_bytes, self.max_batch_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// Where records that failed with `errors.tolerance=all` go, with the error in
/// `__connect.errors.*` headers (Kafka Connect's names). `send` must be durable when it
/// returns: the offsets may move past those records afterwards.
#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    /// Stores failed records.
    async fn send(&self, records: Vec<Record>) -> Result<()>;
}

#[async_trait]
impl DeadLetterQueue for mpsc::Sender<Record> {
    async fn send(&self, records: Vec<Record>) -> Result<()> {
        for r in records {
            mpsc::Sender::send(self, r)
                .await
                .map_err(|_| Error::Destination {
                    pipeline: "dead-letter".into(),
                    retryable: false,
                    source: "dead-letter channel closed".into(),
                })?;
        }
        Ok(())
    }
}

type CallbackFn = Box<
    dyn FnMut(Vec<Record>, Committer) -> BoxFuture<'static, std::result::Result<(), BoxError>>
        + Send,
>;
type RecordSink = Pin<Box<dyn Sink<Record, Error = BoxError> + Send>>;

pub(crate) enum Destination {
    Channel(mpsc::Sender<Batch>),
    Callback(CallbackFn),
    Sink(RecordSink),
    Connector(Arc<dyn SinkConnector>),
}

/// Builds one pipeline. Finish with an `into_*` method naming the destination.
pub struct PipelineBuilder {
    name: Arc<str>,
    source: Option<Arc<dyn SourceConnector>>,
    chain: TransformChain,
    offsets: Option<Arc<dyn OffsetStore>>,
    settings: PipelineSettings,
    dead_letter: Option<Arc<dyn DeadLetterQueue>>,
}

impl std::fmt::Debug for PipelineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("name", &self.name)
            .field("source", &self.source.as_ref().map(|s| s.name().to_owned()))
            .field("transforms", &self.chain)
            .field("settings", &self.settings)
            .finish()
    }
}

impl PipelineBuilder {
    /// A pipeline named `name`: its offsets namespace (Kafka Connect's connector name),
    /// also used in metrics, errors and logs.
    pub fn new(name: &str) -> Self {
        PipelineBuilder {
            name: Arc::from(name),
            source: None,
            chain: TransformChain::new(),
            offsets: None,
            settings: PipelineSettings::default(),
            dead_letter: None,
        }
    }

    pub(crate) fn set_name(&mut self, name: &str) {
        self.name = Arc::from(name);
    }

    /// The source connector.
    pub fn source(mut self, source: impl SourceConnector + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The source connector, already shared.
    pub fn source_arc(mut self, source: Arc<dyn SourceConnector>) -> Self {
        self.source = Some(source);
        self
    }

    /// Appends a transform.
    pub fn transform(mut self, alias: &str, transform: impl Transform + 'static) -> Self {
        self.chain.push(alias, transform);
        self
    }

    /// Appends a transform gated by a predicate (negated when `negate`).
    pub fn transform_when(
        mut self,
        alias: &str,
        transform: impl Transform + 'static,
        predicate: Arc<dyn Predicate>,
        negate: bool,
    ) -> Self {
        self.chain.push_when(alias, transform, predicate, negate);
        self
    }

    /// Replaces the transform chain.
    pub fn transforms(mut self, chain: TransformChain) -> Self {
        self.chain = chain;
        self
    }

    /// The offset store (default: in memory, lost on exit).
    pub fn offsets(mut self, store: impl OffsetStore + 'static) -> Self {
        self.offsets = Some(Arc::new(store));
        self
    }

    /// The offset store, already shared.
    pub fn offsets_arc(mut self, store: Arc<dyn OffsetStore>) -> Self {
        self.offsets = Some(store);
        self
    }

    /// Limits and policies.
    pub fn settings(mut self, settings: PipelineSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The commit policy.
    pub fn commit_policy(mut self, policy: CommitPolicy) -> Self {
        self.settings.commit_policy = policy;
        self
    }

    /// `errors.tolerance`.
    pub fn tolerance(mut self, tolerance: ErrorTolerance) -> Self {
        self.settings.tolerance = tolerance;
        self
    }

    /// Where failed records go under `errors.tolerance=all`.
    pub fn dead_letter(self, dlq: impl DeadLetterQueue + 'static) -> Self {
        self.dead_letter_arc(Arc::new(dlq))
    }

    /// Where failed records go, already shared.
    pub fn dead_letter_arc(mut self, dlq: Arc<dyn DeadLetterQueue>) -> Self {
        self.dead_letter = Some(dlq);
        self
    }

    /// Delivers batches to a channel of capacity `capacity`; ack each [`Batch`].
    pub fn into_channel(self, capacity: usize) -> (Pipeline, BatchReceiver) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (self.finish(Destination::Channel(tx)), rx)
    }

    /// Delivers each batch to `callback` with a [`Committer`] (Debezium's `handleBatch`).
    /// An `Err` from the callback stops the pipeline.
    pub fn into_callback<F, Fut>(self, mut callback: F) -> Pipeline
    where
        F: FnMut(Vec<Record>, Committer) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::result::Result<(), BoxError>> + Send + 'static,
    {
        self.finish(Destination::Callback(Box::new(
            move |records, committer| Box::pin(callback(records, committer)),
        )))
    }

    /// Sends every record into a `futures::Sink`; a batch is acknowledged when the sink
    /// flushed it.
    pub fn into_sink<S>(self, sink: S) -> Pipeline
    where
        S: Sink<Record> + Send + 'static,
        S::Error: Into<BoxError>,
    {
        self.finish(Destination::Sink(Box::pin(sink.sink_map_err(Into::into))))
    }

    /// Runs a sink connector in-process: `put` per batch, `flush` before each commit.
    pub fn into_connector(self, sink: impl SinkConnector + 'static) -> Pipeline {
        self.into_connector_arc(Arc::new(sink))
    }

    /// Delivers to an in-process sink connector, already shared.
    pub fn into_connector_arc(self, sink: Arc<dyn SinkConnector>) -> Pipeline {
        self.finish(Destination::Connector(sink))
    }

    pub(crate) fn finish(self, destination: Destination) -> Pipeline {
        Pipeline {
            builder: self,
            destination,
        }
    }
}

/// A pipeline ready to run in an engine.
pub struct Pipeline {
    builder: PipelineBuilder,
    destination: Destination,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.builder.fmt(f)
    }
}

impl Pipeline {
    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.builder.name
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.builder.settings.validate()?;
        let source = self.builder.source.as_ref().ok_or_else(|| {
            Error::config(
                "connector.class",
                format!("pipeline `{}` has no source", self.builder.name),
            )
        })?;
        source.validate()?;
        if let Destination::Connector(sink) = &self.destination {
            sink.validate()?;
        }
        Ok(())
    }
}

/// What one pipeline did when it stopped.
#[derive(Debug, Clone, Default)]
pub struct PipelineReport {
    /// Pipeline name.
    pub name: String,
    /// Every batch handed to the destination was acknowledged before the stop.
    pub drained: bool,
    /// The shutdown bound was reached before draining finished.
    pub timed_out: bool,
    /// Batches still unacknowledged at the stop (their records come again on restart).
    pub unacked_batches: usize,
    /// The final commit succeeded.
    pub committed: bool,
    /// Offsets durable at the stop.
    pub offsets: OffsetMap,
    /// The fatal error that stopped the pipeline, if any.
    pub error: Option<String>,
}

/// State shared by a pipeline's loops and the acknowledgements it hands out.
pub(crate) struct Shared {
    pub name: Arc<str>,
    pub metrics: Arc<PipelineMetrics>,
    trackers: Mutex<HashMap<usize, AckTracker>>,
    acks: watch::Sender<u64>,
    failed: watch::Sender<bool>,
    failure: Mutex<Option<Error>>,
    listener: Arc<dyn EngineListener>,
    /// Set once the shutdown stopped waiting for acks: batches dropped from then on are
    /// reported as unacknowledged, not as a failure.
    closing: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn register(
        &self,
        task: usize,
        records: usize,
        offsets: Vec<(SourcePartition, SourceOffset)>,
    ) -> u64 {
        self.trackers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(task)
            .or_default()
            .register(records, offsets)
    }

    fn register_part(&self, task: usize, records: usize) -> u64 {
        self.trackers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(task)
            .or_default()
            .register_part(records)
    }

    pub(super) fn acknowledge(
        &self,
        task: usize,
        seq: u64,
        records: usize,
        bytes: usize,
        newest_ts_ms: Option<i64>,
    ) {
        if let Some(t) = self
            .trackers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&task)
        {
            t.ack(seq);
        }
        let m = &self.metrics;
        m.delivered.fetch_add(records as u64, Ordering::Relaxed);
        m.queue_batches.fetch_sub(1, Ordering::Relaxed);
        m.queue_bytes.fetch_sub(bytes, Ordering::Relaxed);
        if let Some(ts) = newest_ts_ms {
            m.behind_ms.store((now_ms() - ts).max(0), Ordering::Relaxed);
        }
        self.acks.send_modify(|n| *n += 1);
    }

    /// A batch was dropped without ack: a failure, unless the shutdown already gave up
    /// on it.
    pub(super) fn nack(&self, seq: u64) {
        if !self.closing.load(Ordering::SeqCst) {
            self.fail(Error::Nacked {
                pipeline: self.name.to_string(),
                batch: seq,
            });
        }
    }

    /// Records the first fatal error and stops the pipeline.
    pub(super) fn fail(&self, error: Error) {
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            tracing::error!(pipeline = %self.name, %error, "pipeline failed");
            self.listener.pipeline_failed(&self.name, &error);
            *self.metrics.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
            *slot = Some(error);
        }
        drop(slot);
        self.failed.send_replace(true);
    }

    fn is_failed(&self) -> bool {
        *self.failed.borrow()
    }

    fn in_flight(&self, task: Option<usize>) -> usize {
        let trackers = self.trackers.lock().unwrap_or_else(|p| p.into_inner());
        match task {
            Some(t) => trackers.get(&t).map_or(0, AckTracker::in_flight),
            None => trackers.values().map(AckTracker::in_flight).sum(),
        }
    }

    /// Offsets that became committable since the last call (resets the record counts).
    /// Whether every task's acknowledged records end at a poll's offsets.
    fn at_poll_boundaries(&self) -> bool {
        self.trackers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .all(AckTracker::at_poll_boundary)
    }

    fn take_commit_candidates(&self) -> Vec<(SourcePartition, SourceOffset)> {
        let mut trackers = self.trackers.lock().unwrap_or_else(|p| p.into_inner());
        trackers
            .values_mut()
            .filter_map(AckTracker::take_changes)
            .flatten()
            .collect()
    }

    fn records_since_commit(&self) -> usize {
        self.trackers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(AckTracker::records_since_commit)
            .sum()
    }
}

/// Inputs of a pipeline run that come from the engine.
pub(crate) struct RunContext {
    pub engine: Arc<str>,
    pub stop: watch::Receiver<bool>,
    pub shutdown_timeout: Duration,
    pub listener: Arc<dyn EngineListener>,
    pub metrics: Arc<PipelineMetrics>,
}

type SharedSinkTask = Arc<tokio::sync::Mutex<Box<dyn SinkTask>>>;

/// Makes acknowledged offsets durable and tells the tasks.
struct OffsetCommitter {
    /// The offsets namespace: the pipeline's name.
    namespace: Arc<str>,
    shared: Arc<Shared>,
    store: Arc<dyn OffsetStore>,
    sink: Option<SharedSinkTask>,
    committed: OffsetMap,
    uncommitted: HashMap<SourcePartition, SourceOffset>,
    committed_tx: watch::Sender<Arc<OffsetMap>>,
    last_commit: Instant,
    /// Tasks' requests to commit ahead of the policy.
    requested: Arc<tokio::sync::Notify>,
}

impl OffsetCommitter {
    async fn commit(&mut self) -> Result<bool> {
        // Taken under the sink's lock, which `put` acknowledges under: the offsets a sink
        // flushes are exactly those of the records it was given, as a transactional sink
        // that stores them with its rows needs.
        let mut sink = match &self.sink {
            Some(sink) => Some(sink.lock().await),
            None => None,
        };
        // Between the parts of a split poll the sink holds records past the committable
        // offsets: its flush would store offsets behind its rows. The commit waits for
        // the poll's last part.
        if sink.is_some() && !self.shared.at_poll_boundaries() {
            return Ok(false);
        }
        let changes = self.shared.take_commit_candidates();
        self.uncommitted.extend(changes);
        if self.uncommitted.is_empty() {
            return Ok(false);
        }
        let mut target = self.committed.clone();
        target.extend(self.uncommitted.iter().map(|(p, o)| (p.clone(), o.clone())));
        if let Some(sink) = &mut sink {
            sink.flush(&target).await?;
        }
        drop(sink);
        let changes: Vec<_> = self
            .uncommitted
            .iter()
            .map(|(p, o)| (p.clone(), o.clone()))
            .collect();
        self.store.write(&self.namespace, &changes).await?;
        self.store.flush().await?;
        self.uncommitted.clear();
        self.committed = target;
        self.last_commit = Instant::now();
        let published = Arc::new(self.committed.clone());
        self.committed_tx.send_replace(published);
        let m = &self.shared.metrics;
        m.commits.fetch_add(1, Ordering::Relaxed);
        *m.last_committed.lock().unwrap_or_else(|p| p.into_inner()) = self.committed.clone();
        tracing::debug!(pipeline = %self.shared.name, partitions = changes.len(), "offsets committed");
        self.shared
            .listener
            .offsets_committed(&self.shared.name, &self.committed);
        Ok(true)
    }

    /// Commits on the policy until `stop` turns true; returns itself for the final commit.
    async fn run(mut self, policy: CommitPolicy, mut stop: watch::Receiver<bool>) -> Self {
        let mut acks = self.shared.acks.subscribe();
        let tick = policy.tick();
        let requested = self.requested.clone();
        loop {
            let mut due = tokio::select! {
                _ = until_set(&mut stop) => return self,
                _ = requested.notified() => true,
                _ = acks.changed() => false,
                _ = tokio::time::sleep(tick) => false,
            };
            let records = self.shared.records_since_commit() as u64;
            due = due || policy.should_commit(records.max(1), self.last_commit.elapsed());
            if due {
                if let Err(e) = self.commit().await {
                    if e.is_retryable() {
                        tracing::warn!(pipeline = %self.shared.name, error = %e, "offset commit failed; will retry");
                    } else {
                        self.shared.fail(e);
                        let _ = until_set(&mut stop).await;
                        return self;
                    }
                }
            }
        }
    }
}

/// Waits until a flag is set. The `watch::Ref` that `wait_for` returns holds a read lock:
/// it is dropped here, so no `select!` branch holds it while the losing branch is
/// dropped (dropping a pending batch nacks, and failing takes the write lock).
async fn until_set(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}

fn backoff(max_delay: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(DEFAULT_RETRY_MIN_DELAY)
        .with_max_delay(max_delay)
        .with_jitter()
        .without_max_times()
        .build()
}

/// One source task's loop, its transforms and its share of the queue.
struct SourceLoop {
    task_id: usize,
    shared: Arc<Shared>,
    chain: Arc<TransformChain>,
    settings: Arc<PipelineSettings>,
    dead_letter: Option<Arc<dyn DeadLetterQueue>>,
    queue: mpsc::UnboundedSender<Batch>,
    batch_slots: Arc<Semaphore>,
    byte_slots: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
    connector: String,
}

impl SourceLoop {
    async fn run(
        mut self,
        mut task: Box<dyn SourceTask>,
        mut ctx: TaskContext,
    ) -> Box<dyn SourceTask> {
        let committed = ctx.committed.clone();
        if !self.start(&mut task, &mut ctx, &committed, false).await {
            return task;
        }
        let mut delays = backoff(self.settings.retry_max_delay);
        let mut retrying_since: Option<Instant> = None;
        loop {
            let polled = tokio::select! {
                biased;
                _ = until_set(&mut self.stop) => break,
                r = task.poll() => r,
            };
            match polled {
                Ok(None) => break,
                Ok(Some(batch)) => {
                    retrying_since = None;
                    if let Err(e) = self.process(batch).await {
                        self.shared.fail(e);
                        break;
                    }
                }
                Err(e) if e.is_retryable() => {
                    let since = *retrying_since.get_or_insert_with(Instant::now);
                    if !self.settings.may_retry(since) {
                        self.shared.fail(Error::RetriesExhausted {
                            elapsed_ms: since.elapsed().as_millis() as u64,
                            last: Box::new(e),
                        });
                        break;
                    }
                    tracing::warn!(pipeline = %self.shared.name, task = self.task_id, error = %e, "retryable source error; restarting task");
                    let delay = delays.next().unwrap_or(self.settings.retry_max_delay);
                    if !self.pause(delay).await || !self.drain_own().await {
                        break;
                    }
                    if let Err(stop_err) = task.stop().await {
                        tracing::warn!(error = %stop_err, "task stop before restart failed");
                    }
                    self.shared
                        .listener
                        .task_stopped(&self.shared.name, self.task_id);
                    if !self.start(&mut task, &mut ctx, &committed, true).await {
                        break;
                    }
                }
                Err(e) => {
                    self.shared.fail(e);
                    break;
                }
            }
        }
        task
    }

    /// Starts (or restarts) the task from the latest committed offsets, retrying
    /// retryable failures; false when the pipeline must stop.
    async fn start(
        &mut self,
        task: &mut Box<dyn SourceTask>,
        ctx: &mut TaskContext,
        committed: &watch::Receiver<Arc<OffsetMap>>,
        restart: bool,
    ) -> bool {
        let mut delays = backoff(self.settings.retry_max_delay);
        let since = Instant::now();
        loop {
            if restart {
                ctx.offsets = (**committed.borrow()).clone();
            }
            match task.start(ctx.clone()).await {
                Ok(()) => {
                    self.shared
                        .listener
                        .task_started(&self.shared.name, self.task_id);
                    return true;
                }
                Err(e) if e.is_retryable() && self.settings.may_retry(since) => {
                    tracing::warn!(pipeline = %self.shared.name, task = self.task_id, error = %e, "task start failed; retrying");
                    let delay = delays.next().unwrap_or(self.settings.retry_max_delay);
                    if !self.pause(delay).await {
                        return false;
                    }
                }
                Err(e) => {
                    self.shared.fail(e);
                    return false;
                }
            }
        }
    }

    /// Sleeps unless the pipeline stops first.
    async fn pause(&mut self, delay: Duration) -> bool {
        let mut failed = self.shared.failed.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = until_set(&mut self.stop) => false,
            _ = until_set(&mut failed) => false,
        }
    }

    /// Waits until this task's batches are all acknowledged (before a restart re-reads
    /// from the committed offsets).
    async fn drain_own(&mut self) -> bool {
        let mut acks = self.shared.acks.subscribe();
        let mut failed = self.shared.failed.subscribe();
        while self.shared.in_flight(Some(self.task_id)) > 0 {
            tokio::select! {
                _ = acks.changed() => {}
                _ = until_set(&mut self.stop) => return false,
                _ = until_set(&mut failed) => return false,
            }
        }
        true
    }

    async fn process(&mut self, batch: SourceBatch) -> Result<()> {
        let SourceBatch {
            records,
            mut offsets,
        } = batch;
        let metrics = self.shared.metrics.clone();
        metrics
            .seen
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let (kept, dead) = self.transform(records)?;
        if !dead.is_empty() {
            if let Some(dlq) = &self.dead_letter {
                dlq.send(dead).await?;
            }
        }
        if kept.is_empty() {
            if !offsets.is_empty() {
                // Position-only: nothing to deliver, but it must commit in order.
                let seq = self.shared.register(self.task_id, 0, offsets);
                self.shared
                    .metrics
                    .queue_batches
                    .fetch_add(1, Ordering::Relaxed);
                self.shared.acknowledge(self.task_id, seq, 0, 0, None);
            }
            return Ok(());
        }
        let chunks = split(
            kept,
            self.settings.max_batch_records,
            self.settings.max_batch_bytes,
        );
        let last = chunks.len() - 1;
        for (i, (records, bytes)) in chunks.into_iter().enumerate() {
            let Some(permits) = self.acquire(bytes).await else {
                return Ok(());
            };
            let newest_ts_ms = records.iter().rev().find_map(|r| r.timestamp_ms);
            let count = records.len();
            // The poll's offsets come with its last part.
            let seq = if i == last {
                self.shared
                    .register(self.task_id, count, std::mem::take(&mut offsets))
            } else {
                self.shared.register_part(self.task_id, count)
            };
            metrics.queue_batches.fetch_add(1, Ordering::Relaxed);
            metrics.queue_bytes.fetch_add(bytes, Ordering::Relaxed);
            let handle = AckHandle {
                shared: self.shared.clone(),
                task: self.task_id,
                seq,
                records: count,
                bytes,
                newest_ts_ms,
                permits: Some(permits),
            };
            if self.queue.send(Batch::new(records, handle)).is_err() {
                // The delivery loop is gone: the pipeline is stopping; the returned batch
                // was dropped as a nack, which records why.
                return Ok(());
            }
        }
        Ok(())
    }

    fn transform(&self, records: Vec<Record>) -> Result<(Vec<Record>, Vec<Record>)> {
        if self.chain.is_empty() {
            return Ok((records, Vec::new()));
        }
        let mut kept = Vec::with_capacity(records.len());
        let mut dead = Vec::new();
        let mut filtered = 0u64;
        for record in records {
            let copy_for_dlq = (self.dead_letter.is_some()).then(|| record.clone());
            match self.chain.apply(record) {
                Ok(Some(r)) => kept.push(r),
                Ok(None) => filtered += 1,
                Err(e) if e.is_record_level() && self.settings.tolerance == ErrorTolerance::All => {
                    self.shared.metrics.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(pipeline = %self.shared.name, error = %e, "skipping record (errors.tolerance=all)");
                    if let Some(original) = copy_for_dlq {
                        dead.push(with_error_headers(
                            original,
                            &e,
                            &self.connector,
                            self.task_id,
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.shared
            .metrics
            .filtered
            .fetch_add(filtered, Ordering::Relaxed);
        Ok((kept, dead))
    }

    /// Takes one batch slot and `bytes` (capped at the queue size, so one oversized batch
    /// can still pass alone) of queue space; `None` when the pipeline stops first.
    async fn acquire(
        &mut self,
        bytes: usize,
    ) -> Option<(
        tokio::sync::OwnedSemaphorePermit,
        tokio::sync::OwnedSemaphorePermit,
    )> {
        let byte_permits = bytes.clamp(1, self.settings.max_queue_bytes) as u32;
        let mut failed = self.shared.failed.subscribe();
        let batch_slots = self.batch_slots.clone();
        let byte_slots = self.byte_slots.clone();
        tokio::select! {
            r = async move {
                let b = batch_slots.acquire_owned().await.ok()?;
                let s = byte_slots.acquire_many_owned(byte_permits).await.ok()?;
                Some((b, s))
            } => r,
            _ = until_set(&mut self.stop) => None,
            _ = until_set(&mut failed) => None,
        }
    }
}

/// Splits records into batches of at most `max_records`, closing a batch at the record
/// that reaches `max_bytes` (so a batch exceeds it by at most one record).
fn split(records: Vec<Record>, max_records: usize, max_bytes: usize) -> Vec<(Vec<Record>, usize)> {
    // Most batches fit: measure first, and hand those on without moving their records.
    let mut total = 0;
    let fits = records.len() <= max_records
        && records.iter().enumerate().all(|(i, r)| {
            total += r.size_estimate();
            total < max_bytes || i + 1 == records.len()
        });
    if fits {
        return vec![(records, total)];
    }
    let mut out = Vec::with_capacity(1);
    let mut current = Vec::with_capacity(records.len().min(max_records));
    let mut bytes = 0;
    for r in records {
        bytes += r.size_estimate();
        current.push(r);
        if current.len() >= max_records || bytes >= max_bytes {
            out.push((std::mem::take(&mut current), bytes));
            bytes = 0;
        }
    }
    if !current.is_empty() {
        out.push((current, bytes));
    }
    out
}

fn with_error_headers(mut record: Record, error: &Error, connector: &str, task: usize) -> Record {
    let context = ErrorContext {
        topic: &record.topic,
        read_at: record
            .kafka_offset
            .map(|offset| (record.partition.unwrap_or(-1), offset)),
        stage: match error {
            Error::Conversion { .. } => "VALUE_CONVERTER",
            _ => "TRANSFORMATION",
        },
        class: match error {
            Error::Transform { transform, .. } => transform,
            _ => "",
        },
        connector,
        task,
    };
    let headers = context.headers(error);
    record.headers.extend(headers);
    record
}

/// Where and why a record failed: Kafka Connect's error context, written as
/// `__connect.errors.*` headers on the record sent to the dead-letter destination.
#[derive(Debug, Clone, Copy)]
pub struct ErrorContext<'a> {
    /// The record's topic (for records read from Kafka, the topic it was read from).
    pub topic: &'a str,
    /// For records read from Kafka: the partition and offset they were read at.
    pub read_at: Option<(i32, i64)>,
    /// Kafka Connect's stage: `KEY_CONVERTER`, `VALUE_CONVERTER`, `TRANSFORMATION`, ...
    pub stage: &'static str,
    /// The transform or converter that failed, empty if unknown.
    pub class: &'a str,
    /// The connector's name.
    pub connector: &'a str,
    /// The task's index.
    pub task: usize,
}

impl ErrorContext<'_> {
    /// The `__connect.errors.*` headers, in Kafka Connect's order.
    pub fn headers(&self, error: &Error) -> Vec<Header> {
        let header = |key: &str, value: Value| Header {
            key: Arc::from(key),
            schema: None,
            value,
        };
        let mut out = Vec::with_capacity(8);
        out.push(header("__connect.errors.topic", Value::string(self.topic)));
        if let Some((partition, offset)) = self.read_at {
            out.push(header(
                "__connect.errors.partition",
                Value::Int32(partition),
            ));
            out.push(header("__connect.errors.offset", Value::Int64(offset)));
        }
        out.extend([
            header(
                "__connect.errors.connector.name",
                Value::string(self.connector),
            ),
            header("__connect.errors.task.id", Value::Int32(self.task as i32)),
            header("__connect.errors.stage", Value::static_str(self.stage)),
            header("__connect.errors.class.name", Value::string(self.class)),
            header(
                "__connect.errors.exception.message",
                Value::string(&error.to_string()),
            ),
        ]);
        out
    }
}

impl Pipeline {
    /// Runs the pipeline until the engine stops it, its sources end, or it fails.
    pub(crate) async fn run(self, rc: RunContext) -> (PipelineReport, Option<Error>) {
        let Pipeline {
            builder,
            destination,
        } = self;
        let name = builder.name.clone();
        let (acks, _) = watch::channel(0u64);
        let (failed, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            name: name.clone(),
            metrics: rc.metrics.clone(),
            trackers: Mutex::default(),
            acks,
            failed,
            failure: Mutex::new(None),
            listener: rc.listener.clone(),
            closing: std::sync::atomic::AtomicBool::new(false),
        });
        let mut report = PipelineReport {
            name: name.to_string(),
            ..PipelineReport::default()
        };
        let store = builder
            .offsets
            .clone()
            .unwrap_or_else(|| Arc::new(MemoryOffsetStore::new()));
        let source = builder
            .source
            .clone()
            .expect("validated: pipeline has a source");
        let settings = Arc::new(builder.settings.clone());

        let sink_connector = match &destination {
            Destination::Connector(sink) => Some(sink.clone()),
            _ => None,
        };
        let (commit_request, commit_requested) = CommitRequest::new();
        let prepared = prepare(
            &rc,
            &builder,
            &source,
            &store,
            sink_connector,
            &commit_request,
        )
        .await;
        let (configs, initial, sink_task) = match prepared {
            Ok(p) => p,
            Err(e) => {
                shared.fail(e);
                let error = shared
                    .failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                report.error = error.as_ref().map(ToString::to_string);
                return (report, error);
            }
        };

        let (committed_tx, committed_rx) = watch::channel(Arc::new(initial.clone()));
        let (stop_sources_tx, stop_sources) = watch::channel(false);
        let (stop_committer_tx, stop_committer) = watch::channel(false);
        let (queue_tx, queue_rx) = mpsc::unbounded_channel::<Batch>();
        let batch_slots = Arc::new(Semaphore::new(settings.max_queue_batches));
        let byte_slots = Arc::new(Semaphore::new(
            settings.max_queue_bytes.min(Semaphore::MAX_PERMITS),
        ));
        let chain = Arc::new(builder.chain);

        let mut source_handles: Vec<JoinHandle<Box<dyn SourceTask>>> = Vec::new();
        for (task_id, config) in configs.into_iter().enumerate() {
            let ctx = TaskContext {
                engine: rc.engine.clone(),
                pipeline: name.clone(),
                task_id,
                config,
                offsets: initial.clone(),
                committed: committed_rx.clone(),
                commit: commit_request.clone(),
            };
            let lp = SourceLoop {
                task_id,
                shared: shared.clone(),
                chain: chain.clone(),
                settings: settings.clone(),
                dead_letter: builder.dead_letter.clone(),
                queue: queue_tx.clone(),
                batch_slots: batch_slots.clone(),
                byte_slots: byte_slots.clone(),
                stop: stop_sources.clone(),
                connector: source.name().to_owned(),
            };
            let span = tracing::info_span!("source_task", pipeline = %name, task = task_id);
            source_handles.push(tokio::spawn(
                lp.run(source.create_task(), ctx).instrument(span),
            ));
        }
        drop(queue_tx);

        let delivery = tokio::spawn(
            deliver(
                destination,
                sink_task.clone(),
                queue_rx,
                shared.clone(),
                settings.clone(),
            )
            .instrument(tracing::info_span!("delivery", pipeline = %name)),
        );
        let committer = OffsetCommitter {
            namespace: name.clone(),
            shared: shared.clone(),
            store,
            sink: sink_task.clone(),
            committed: initial,
            uncommitted: HashMap::new(),
            committed_tx,
            last_commit: Instant::now(),
            requested: commit_requested,
        };
        let committer = tokio::spawn(
            committer
                .run(settings.commit_policy.clone(), stop_committer)
                .instrument(tracing::info_span!("committer", pipeline = %name)),
        );

        // Run until asked to stop, failed, or every source task finished.
        let mut stop = rc.stop.clone();
        let mut failed = shared.failed.subscribe();
        let mut sources_done = Box::pin(futures::future::join_all(source_handles));
        let mut tasks: Option<Vec<Box<dyn SourceTask>>> = None;
        tokio::select! {
            _ = until_set(&mut stop) => {}
            _ = until_set(&mut failed) => {}
            done = &mut sources_done => tasks = Some(collect_tasks(done)),
        }
        // The whole shutdown fits in the bound: stopping the sources and draining may use
        // all but a reserve kept for the final commit and stopping the tasks.
        let deadline = Instant::now() + rc.shutdown_timeout;
        let drain_deadline = deadline - (rc.shutdown_timeout / 5).min(Duration::from_secs(5));
        stop_sources_tx.send_replace(true);
        let tasks = match tasks {
            Some(t) => t,
            None => match tokio::time::timeout_at(drain_deadline, &mut sources_done).await {
                Ok(done) => collect_tasks(done),
                Err(_) => {
                    report.timed_out = true;
                    Vec::new()
                }
            },
        };

        // Drain: wait for every handed-out batch to be acknowledged, within the bound.
        let mut acks = shared.acks.subscribe();
        loop {
            let in_flight = shared.in_flight(None);
            if in_flight == 0 {
                report.drained = true;
                break;
            }
            if shared.is_failed() {
                break;
            }
            tokio::select! {
                _ = acks.changed() => {}
                _ = until_set(&mut failed) => {}
                _ = tokio::time::sleep_until(drain_deadline) => {
                    report.timed_out = true;
                    break;
                }
            }
        }
        report.unacked_batches = shared.in_flight(None);
        shared.closing.store(true, Ordering::SeqCst);

        // Final commit of everything acknowledged, then stop the tasks (a source can now
        // confirm the final committed position to its server).
        stop_committer_tx.send_replace(true);
        if let Ok(mut committer) = committer.await {
            match tokio::time::timeout_at(deadline, committer.commit()).await {
                Ok(Ok(_)) => report.committed = true,
                Ok(Err(e)) => shared.fail(e),
                Err(_) => report.timed_out = true,
            }
            report.offsets = committer.committed.clone();
        }
        for (task_id, mut task) in tasks.into_iter().enumerate() {
            match tokio::time::timeout_at(deadline, task.stop()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(pipeline = %name, task = task_id, error = %e, "task stop failed")
                }
                Err(_) => report.timed_out = true,
            }
            shared.listener.task_stopped(&name, task_id);
        }
        delivery.abort();
        let _ = delivery.await;
        if let Some(sink) = sink_task {
            if let Err(e) = sink.lock().await.stop().await {
                tracing::warn!(pipeline = %name, error = %e, "sink task stop failed");
            }
        }
        let error = shared
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        report.error = error.as_ref().map(ToString::to_string);
        (report, error)
    }
}

fn collect_tasks(
    done: Vec<std::result::Result<Box<dyn SourceTask>, tokio::task::JoinError>>,
) -> Vec<Box<dyn SourceTask>> {
    done.into_iter()
        .filter_map(|r| match r {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "source task loop panicked");
                None
            }
        })
        .collect()
}

type Prepared = (
    Vec<crate::connector::TaskConfig>,
    OffsetMap,
    Option<SharedSinkTask>,
);

/// Splits the source into task configs, starts an in-process sink task and loads the
/// starting offsets (the sink's own, for transactional sinks).
async fn prepare(
    rc: &RunContext,
    builder: &PipelineBuilder,
    source: &Arc<dyn SourceConnector>,
    store: &Arc<dyn OffsetStore>,
    sink_connector: Option<Arc<dyn SinkConnector>>,
    commit_request: &CommitRequest,
) -> Result<Prepared> {
    let mut configs = source.task_configs(builder.settings.tasks_max)?;
    configs.truncate(builder.settings.tasks_max);
    if configs.is_empty() {
        return Err(Error::config(
            "tasks.max",
            format!("connector `{}` produced no tasks", source.name()),
        ));
    }
    // Offsets are namespaced by pipeline, as Kafka Connect keys them by connector name.
    let mut offsets = store.load(&builder.name).await?;
    let sink_task = match sink_connector {
        Some(sink) => {
            let config = sink.task_configs(1)?.into_iter().next().unwrap_or_default();
            let mut task = sink.create_task();
            let (_, committed) = watch::channel(Arc::new(offsets.clone()));
            task.start(TaskContext {
                engine: rc.engine.clone(),
                pipeline: builder.name.clone(),
                task_id: 0,
                config,
                offsets: offsets.clone(),
                committed,
                commit: commit_request.clone(),
            })
            .await?;
            if let Some(own) = task.committed_offsets().await? {
                offsets = own;
            }
            Some(Arc::new(tokio::sync::Mutex::new(task)))
        }
        None => None,
    };
    Ok((configs, offsets, sink_task))
}

/// Hands batches to the destination in order until the queue closes or the pipeline fails.
async fn deliver(
    mut destination: Destination,
    sink_task: Option<SharedSinkTask>,
    mut queue: mpsc::UnboundedReceiver<Batch>,
    shared: Arc<Shared>,
    settings: Arc<PipelineSettings>,
) {
    let mut failed = shared.failed.subscribe();
    loop {
        let batch = tokio::select! {
            b = queue.recv() => match b { Some(b) => b, None => return },
            _ = until_set(&mut failed) => return,
        };
        let result = match &mut destination {
            Destination::Channel(tx) => tokio::select! {
                // A closed channel hands the batch back inside the error; dropping it is a nack.
                r = tx.send(batch) => r.map_err(|_| Error::Destination {
                    pipeline: shared.name.to_string(),
                    retryable: false,
                    source: "the batch receiver was dropped".into(),
                }),
                _ = until_set(&mut failed) => return,
            },
            Destination::Callback(f) => {
                let (records, committer) = batch.into_parts();
                f(records, committer)
                    .await
                    .map_err(|source| Error::Destination {
                        pipeline: shared.name.to_string(),
                        retryable: false,
                        source,
                    })
            }
            Destination::Sink(sink) => {
                let (records, committer) = batch.into_parts();
                let mut stream = futures::stream::iter(records.into_iter().map(Ok));
                match sink.send_all(&mut stream).await {
                    Ok(()) => {
                        committer.mark_batch_finished();
                        Ok(())
                    }
                    Err(source) => Err(Error::Destination {
                        pipeline: shared.name.to_string(),
                        retryable: false,
                        source,
                    }),
                }
            }
            Destination::Connector(_) => {
                let task = sink_task
                    .as_ref()
                    .expect("connector destination has a task");
                put_with_retry(task, batch, &shared, &settings).await
            }
        };
        if let Err(e) = result {
            shared.fail(e);
            return;
        }
    }
}

async fn put_with_retry(
    task: &SharedSinkTask,
    batch: Batch,
    shared: &Shared,
    settings: &PipelineSettings,
) -> Result<()> {
    let (records, committer) = batch.into_parts();
    let records = Arc::new(records);
    let mut delays = backoff(settings.retry_max_delay);
    let since = Instant::now();
    loop {
        let mut sink = task.lock().await;
        let r = sink.put_shared(&records).await;
        match r {
            Ok(()) => {
                // Acknowledged before the lock is released: see `OffsetCommitter::commit`.
                committer.mark_batch_finished();
                return Ok(());
            }
            Err(e) if e.is_retryable() && settings.may_retry(since) => {
                drop(sink);
                tracing::warn!(pipeline = %shared.name, error = %e, "sink put failed; retrying");
                tokio::time::sleep(delays.next().unwrap_or(settings.retry_max_delay)).await;
            }
            Err(e) if e.is_retryable() => {
                return Err(Error::RetriesExhausted {
                    elapsed_ms: since.elapsed().as_millis() as u64,
                    last: Box::new(e),
                })
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_count_and_bytes_within_one_record() {
        let rec = |n: usize| Record::new(Arc::from("t"), None, Value::string(&"x".repeat(n)));
        let one = rec(1000).size_estimate();
        let records: Vec<_> = (0..10).map(|_| rec(1000)).collect();
        let chunks = split(records, 4, one * 2 + 1);
        // Bytes cap of just over two records: each batch closes at its third record.
        assert!(chunks
            .iter()
            .all(|(r, b)| r.len() <= 4 && *b <= one * 2 + 1 + one));
        assert_eq!(chunks.iter().map(|(r, _)| r.len()).sum::<usize>(), 10);
    }

    #[test]
    fn settings_validation_names_the_key() {
        let s = PipelineSettings {
            max_queue_bytes: 1,
            ..PipelineSettings::default()
        };
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("max.queue.bytes"), "{e}");
        let s = PipelineSettings {
            tasks_max: 0,
            ..PipelineSettings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("tasks.max"));
    }
}
