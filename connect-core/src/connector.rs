//! The connector traits, as Kafka Connect defines them, made async and object-safe.
//!
//! A [`SourceConnector`] validates its configuration and splits the work into task
//! configurations; the engine creates one [`SourceTask`] per configuration and drives it.
//! Sinks mirror this with [`SinkConnector`] and [`SinkTask`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{watch, Notify};

use crate::error::Result;
use crate::offsets::OffsetMap;
use crate::record::{Record, SourceOffset, SourcePartition};

/// One task's configuration: a flat string map, as in Kafka Connect. Connectors usually
/// keep their typed config themselves and put only the split (tables, files) here.
pub type TaskConfig = BTreeMap<String, String>;

/// What a task receives when it starts.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// Name of the engine (the offsets namespace).
    pub engine: Arc<str>,
    /// Name of the pipeline.
    pub pipeline: Arc<str>,
    /// Index of this task among the connector's tasks.
    pub task_id: usize,
    /// This task's configuration.
    pub config: TaskConfig,
    /// The committed offsets when the task starts (where to resume).
    pub offsets: OffsetMap,
    /// Offsets as they become durable: updated after every store flush, independently
    /// of `poll`, so a source can confirm positions to its database (PostgreSQL's
    /// `confirmed_flush_lsn`) while `poll` is waiting on an idle stream. Never holds an
    /// offset whose records were not all delivered.
    pub committed: watch::Receiver<Arc<OffsetMap>>,
    /// Asks the engine to commit now rather than on its commit policy (Kafka Connect's
    /// `SinkTaskContext.requestCommit`): a task that must see its positions durable
    /// before it lets go of them (a consumer losing partitions) requests a commit and
    /// waits on `committed`.
    pub commit: CommitRequest,
}

/// A task's way to ask the engine for a commit ahead of its commit policy.
///
/// The default value is connected to nothing (requests go nowhere): the engine hands each
/// task one that reaches its committer.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest(Arc<Notify>);

impl CommitRequest {
    /// A request handle and the engine's end of it.
    pub(crate) fn new() -> (CommitRequest, Arc<Notify>) {
        let notify = Arc::new(Notify::new());
        (CommitRequest(notify.clone()), notify)
    }

    /// Asks for a commit of everything acknowledged so far; returns at once. The new
    /// offsets appear on [`TaskContext::committed`] when the commit is durable.
    pub fn request(&self) {
        self.0.notify_one();
    }
}

impl TaskContext {
    /// The committed offset of one partition, if any.
    pub fn offset(&self, partition: &SourcePartition) -> Option<&SourceOffset> {
        self.offsets.get(partition)
    }
}

/// Lifecycle shared by source and sink tasks.
///
/// `start` is called once before any other method (again after `stop` when the engine
/// restarts a task after a retryable error); `stop` once at the end, after the engine's
/// final commit, so a source can confirm the last committed position to its server.
#[async_trait]
pub trait Task: Send {
    /// Starts the task: connect, read the starting offsets from `ctx`.
    async fn start(&mut self, ctx: TaskContext) -> Result<()>;
    /// Stops the task and releases its resources.
    async fn stop(&mut self) -> Result<()>;
    /// The task's version (the connector crate's version).
    fn version(&self) -> &str;
}

/// What one `poll` returns: records, and the positions reached once all of them are
/// delivered. Either may be empty: a batch with offsets and no records is a
/// *position-only* batch (heartbeats, filtered transactions), which lets offsets advance
/// on idle or filtered sources.
#[derive(Debug, Clone, Default)]
pub struct SourceBatch {
    /// Records in source order.
    pub records: Vec<Record>,
    /// For each partition the batch touches, the offset to resume from after it.
    pub offsets: Vec<(SourcePartition, SourceOffset)>,
}

impl SourceBatch {
    /// A batch of records ending at `offset` in `partition`.
    pub fn new(records: Vec<Record>, partition: SourcePartition, offset: SourceOffset) -> Self {
        SourceBatch {
            records,
            offsets: vec![(partition, offset)],
        }
    }

    /// A position-only batch.
    pub fn position(partition: SourcePartition, offset: SourceOffset) -> Self {
        Self::new(Vec::new(), partition, offset)
    }

    /// Whether the batch carries neither records nor offsets.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.offsets.is_empty()
    }
}

/// A source task: produces batches in source order.
///
/// The engine calls `poll` in a loop from one tokio task (never concurrently for one task
/// object). `poll` should wait until it has something to return (or return an empty
/// batch after an idle period). Records of one partition must come in source order; the
/// engine keeps that order to the destination. `Ok(None)` means the source is finished
/// for good (finite sources); the engine then drains and stops that task.
///
/// Cancellation: on shutdown the engine may drop a pending `poll` future. It then calls
/// `stop` and never polls that object again, so a dropped poll must not corrupt state
/// that `stop` relies on; whatever it had read is re-read from the committed offset on
/// the next start.
///
/// Errors: a retryable error (see [`crate::Error::directive`]) makes the engine wait for
/// in-flight batches, commit, then `stop` and `start` the task again from the committed
/// offsets, with exponential backoff; a fatal error stops the pipeline.
#[async_trait]
pub trait SourceTask: Task {
    /// The next batch, `Ok(None)` at the end of a finite source.
    async fn poll(&mut self) -> Result<Option<SourceBatch>>;
}

/// A source connector: validates its configuration and splits it into task configs.
pub trait SourceConnector: Send + Sync {
    /// A short name used in errors, logs and metrics (e.g. `file-source`).
    fn name(&self) -> &str;
    /// Checks the configuration; errors name the offending key.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    /// Splits the work into at most `max_tasks` task configurations.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>>;
    /// Creates an unstarted task.
    fn create_task(&self) -> Box<dyn SourceTask>;
}

/// A sink task: receives batches and makes them durable on `flush`.
///
/// The engine calls `put` with batches in source order, one call at a time, and `flush`
/// before it commits source offsets: only records covered by a successful `flush` count
/// as delivered. A retryable error from `put` is retried with the same records.
#[async_trait]
pub trait SinkTask: Task {
    /// Writes (or buffers) records.
    async fn put(&mut self, records: &[Record]) -> Result<()>;
    /// Writes (or buffers) a batch the task may keep a handle on without copying it: the
    /// engine delivers through this. A transactional sink that must write its open
    /// transaction again after a lost connection keeps the `Arc`s until `flush` instead
    /// of cloning every record. By default, [`SinkTask::put`].
    async fn put_shared(&mut self, records: &Arc<Vec<Record>>) -> Result<()> {
        self.put(records).await
    }
    /// Makes everything put so far durable. `offsets` are the source offsets the engine
    /// will commit after this flush: a transactional sink may store them atomically with
    /// its data and report them from [`SinkTask::committed_offsets`].
    async fn flush(&mut self, offsets: &OffsetMap) -> Result<()>;
    /// For transactional sinks: the offsets stored with the data. Read once at start; the
    /// engine prefers them over its offset store.
    async fn committed_offsets(&mut self) -> Result<Option<OffsetMap>> {
        Ok(None)
    }
}

/// A sink connector: validates its configuration and creates sink tasks.
pub trait SinkConnector: Send + Sync {
    /// A short name used in errors, logs and metrics.
    fn name(&self) -> &str;
    /// Checks the configuration; errors name the offending key.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    /// Splits the work into at most `max_tasks` task configurations.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>>;
    /// Creates an unstarted task.
    fn create_task(&self) -> Box<dyn SinkTask>;
}
