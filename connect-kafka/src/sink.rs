//! The sink runner's source: Kafka topics read through a consumer group, with consumer
//! offsets committed only once the pipeline's destination made the records durable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use connect_core::properties::Scope;
use connect_core::registry::FactoryContext;
use connect_core::{
    async_trait, CommitRequest, Error, ErrorContext, EventId, Header, OffsetMap, Record,
    SourceBatch, SourceConnector, SourceOffset, SourcePartition, SourceTask, Task, TaskConfig,
    TaskContext, Value,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError as ClientError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use serde_json::{Map, Value as Json};
use tokio::sync::{mpsc, watch};

use crate::config::{KafkaConfig, BROKER_DEFAULT_REPLICATION};
use crate::dead_letter::KafkaDeadLetterQueue;
use crate::error::KafkaError;

/// How long a revocation waits for the records it handed out to be made durable by the
/// sink before it lets the partitions go (they are then re-read by the next owner).
pub const REVOCATION_FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// Messages handed to the engine by one `poll`, at most.
const MAX_CHUNK: usize = 2048;
/// Chunks read ahead of the engine; beyond that the consumer pauses its partitions.
const CHUNKS_AHEAD: usize = 2;
/// How long one consumer poll waits (it also bounds how late a stop is noticed).
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Bound on a group request made during a rebalance.
const GROUP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// While a revocation waits, how often it asks the engine to commit again (the records
/// may still be in flight when a commit runs).
const COMMIT_NUDGE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
enum Subscription {
    Topics(Vec<String>),
    Pattern(String),
}

#[derive(Debug, Clone, Default)]
enum ConversionErrors {
    #[default]
    Fail,
    Skip,
    DeadLetter(KafkaDeadLetterQueue),
}

/// Kafka topics as a pipeline's source: the **sink runner**. Attach any `SinkConnector`
/// (or any destination) after it, and the records flow bytes → converters → transforms →
/// `SinkTask::put`, as in a Kafka Connect sink.
///
/// - Each task is one member of the consumer group (`connect-<pipeline name>` unless
///   [`KafkaTopics::group_id`] says otherwise; `tasks.max` members per instance), with
///   cooperative-sticky assignment, so instances of the pipeline on several machines
///   share the partitions and take over those of an instance that dies.
/// - Consumer offsets are committed only after the engine committed, i.e. after the sink's
///   `flush` returned: a crash re-delivers at most the records since the last commit.
/// - When partitions are revoked, the consumer stops handing out their records, asks the
///   engine to commit, waits (on its own thread: librdkafka's rebalance callback must not
///   await) until what it handed out is durable (at most
///   [`REVOCATION_FLUSH_TIMEOUT`]), commits, and only then releases them: the next owner
///   starts where the sink stopped.
/// - A slow sink pauses the partitions instead of blocking the consumer, so the group's
///   protocol keeps being served.
/// - Records keep the topic, partition, offset (`Record::kafka_offset`), timestamp and
///   headers they were read with; the event id is derived from (topic, partition,
///   offset), so a sink can deduplicate a re-delivery.
/// - Offsets from the pipeline's offset store (source partition
///   `{"partition":p,"topic":t}`, offset `{"offset":next}`) win over the group's when they
///   are further on: a transactional sink that stores its offsets with its data resumes
///   from them.
/// - A message the converters cannot read fails the pipeline naming its topic, partition
///   and offset, unless [`KafkaTopics::skip_unconvertible`] or
///   [`KafkaTopics::dead_letter`] (Kafka Connect's `errors.tolerance=all`) says otherwise.
///
/// ```no_run
/// use connect_core::{Engine, ErrorTolerance};
/// use connect_kafka::{KafkaConfig, KafkaDeadLetterQueue, KafkaTopics};
/// # async fn run(sink: impl connect_core::SinkConnector + 'static) -> connect_core::Result<()> {
/// let kafka = KafkaConfig::new("127.0.0.1:9092");
/// let dlq = KafkaDeadLetterQueue::new(kafka.clone(), "orders-dlq")?;
/// let engine = Engine::builder()
///     .name("orders-sink")
///     .source(KafkaTopics::new(kafka, ["orders"]).dead_letter(dlq.clone()))
///     .tolerance(ErrorTolerance::All)
///     .dead_letter(dlq)
///     .into_connector(sink)
///     .start()
///     .await?;
/// engine.wait().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct KafkaTopics {
    config: KafkaConfig,
    subscription: Subscription,
    group_id: Option<String>,
    conversion_errors: ConversionErrors,
}

impl KafkaTopics {
    /// Reads these topics (Kafka Connect's `topics`).
    pub fn new(config: KafkaConfig, topics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        KafkaTopics {
            config,
            subscription: Subscription::Topics(topics.into_iter().map(Into::into).collect()),
            group_id: None,
            conversion_errors: ConversionErrors::Fail,
        }
    }

    /// Reads every topic whose whole name matches `pattern`, a regular expression, as
    /// they come and go (Kafka Connect's `topics.regex`).
    pub fn matching(config: KafkaConfig, pattern: &str) -> Self {
        KafkaTopics {
            subscription: Subscription::Pattern(pattern.to_owned()),
            ..Self::new(config, Vec::<String>::new())
        }
    }

    /// The consumer group (default `connect-<pipeline name>`, Kafka Connect's name).
    pub fn group_id(mut self, group_id: &str) -> Self {
        self.group_id = Some(group_id.to_owned());
        self
    }

    /// Skips messages the converters cannot read, with a warning (`errors.tolerance=all`
    /// without a dead-letter topic).
    pub fn skip_unconvertible(mut self) -> Self {
        self.conversion_errors = ConversionErrors::Skip;
        self
    }

    /// Sends messages the converters cannot read to a dead-letter topic, as they were
    /// read, with the error in `__connect.errors.*` headers.
    pub fn dead_letter(mut self, dlq: KafkaDeadLetterQueue) -> Self {
        self.conversion_errors = ConversionErrors::DeadLetter(dlq);
        self
    }

    /// Reads Kafka Connect's sink keys: `topics` or `topics.regex`, the worker's
    /// `bootstrap.servers` and `consumer.*`, `consumer.group.id` (default
    /// `connect-<name>`), and for unreadable messages `errors.tolerance` with
    /// `errors.deadletterqueue.topic.name`; converters from the context.
    pub fn from_props(ctx: &FactoryContext<'_>) -> Result<Self, Error> {
        let props = &ctx.props;
        let config = KafkaConfig::from_props(props)?
            .with_converters(ctx.key_converter.clone(), ctx.value_converter.clone());
        let topics = props.list("topics");
        let mut runner = match (topics.is_empty(), props.get("topics.regex")) {
            (false, Some(_)) => {
                return Err(Error::config(
                    "topics.regex",
                    "set either `topics` or `topics.regex`, not both",
                ))
            }
            (true, None) => return Err(Error::config("topics", "is required (or `topics.regex`)")),
            (_, Some(pattern)) => KafkaTopics::matching(config, pattern),
            (false, None) => KafkaTopics::new(config, topics),
        };
        if let Some(group) = props.get("consumer.group.id") {
            runner = runner.group_id(group);
        }
        if props.one_of("errors.tolerance", &["none", "all"], "none")? == "all" {
            runner = match dead_letter_from_props(props)? {
                Some(dlq) => runner.dead_letter(dlq),
                None => runner.skip_unconvertible(),
            };
        }
        runner.validate()?;
        Ok(runner)
    }

    /// The subscription as librdkafka takes it: names, or one `^`-anchored pattern.
    fn subscription(&self) -> Vec<String> {
        match &self.subscription {
            Subscription::Topics(topics) => topics.clone(),
            Subscription::Pattern(p) if p.starts_with('^') => vec![p.clone()],
            Subscription::Pattern(p) => vec![format!("^{p}")],
        }
    }
}

impl SourceConnector for KafkaTopics {
    fn name(&self) -> &str {
        "kafka-topics"
    }

    fn validate(&self) -> connect_core::Result<()> {
        self.config.validate()?;
        match &self.subscription {
            Subscription::Topics(t) if t.is_empty() => {
                Err(Error::config("topics", "name at least one topic"))
            }
            Subscription::Topics(t) if t.iter().any(|t| t.trim().is_empty()) => {
                Err(Error::config("topics", "a topic name is empty"))
            }
            Subscription::Pattern(p) if p.trim().is_empty() => {
                Err(Error::config("topics.regex", "must not be empty"))
            }
            _ if self
                .group_id
                .as_deref()
                .is_some_and(|g| g.trim().is_empty()) =>
            {
                Err(Error::config("consumer.group.id", "must not be empty"))
            }
            _ => Ok(()),
        }
    }

    fn task_configs(&self, max_tasks: usize) -> connect_core::Result<Vec<TaskConfig>> {
        // Every task is a member of the group; the group spreads the partitions.
        Ok((0..max_tasks).map(|_| TaskConfig::new()).collect())
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(KafkaTopicsTask {
            spec: Arc::new(self.clone()),
            running: None,
        })
    }
}

/// The dead-letter queue of `errors.deadletterqueue.topic.name`
/// (`.topic.replication.factor`, `.context.headers.enable`), if set.
pub(crate) fn dead_letter_from_props(
    props: &Scope<'_>,
) -> Result<Option<KafkaDeadLetterQueue>, Error> {
    let dlq = props.scope("errors.deadletterqueue.");
    let Some(topic) = dlq.get("topic.name") else {
        return Ok(None);
    };
    // The error context is always written (Kafka Connect's `true`); `false` is accepted
    // for existing files.
    dlq.bool_or("context.headers.enable", true)?;
    let replication = dlq.parse_or("topic.replication.factor", BROKER_DEFAULT_REPLICATION)?;
    KafkaDeadLetterQueue::with_replication_factor(
        KafkaConfig::from_props(props)?,
        topic,
        replication,
    )
    .map(Some)
}

/// One partition this member has held, and where it stands.
struct Slot {
    topic: Arc<str>,
    partition: i32,
    source: SourcePartition,
    /// The current assignment's number; `None` while not assigned.
    epoch: Option<u64>,
    /// The offset after the last message handed to the engine in this assignment.
    handed: Option<i64>,
    /// The group's committed offset as far as this member knows (`-1`: none).
    committed: i64,
}

/// The partitions of one member, shared by its consumer thread (rebalances, reads) and
/// its task (hand-out).
#[derive(Default)]
struct Partitions {
    index: HashMap<Arc<str>, HashMap<i32, usize>>,
    slots: Vec<Slot>,
    next_epoch: u64,
}

impl Partitions {
    fn find(&self, topic: &str, partition: i32) -> Option<usize> {
        self.index.get(topic)?.get(&partition).copied()
    }

    fn find_or_add(&mut self, topic: &str, partition: i32) -> usize {
        if let Some(i) = self.find(topic, partition) {
            return i;
        }
        let topic: Arc<str> = Arc::from(topic);
        let mut source = Map::new();
        source.insert("partition".into(), Json::from(partition));
        source.insert("topic".into(), Json::from(&*topic));
        let i = self.slots.len();
        self.slots.push(Slot {
            topic: topic.clone(),
            partition,
            source: SourcePartition::from_map(&source),
            epoch: None,
            handed: None,
            committed: -1,
        });
        self.index.entry(topic).or_default().insert(partition, i);
        i
    }
}

fn lock(partitions: &Mutex<Partitions>) -> std::sync::MutexGuard<'_, Partitions> {
    partitions.lock().unwrap_or_else(|p| p.into_inner())
}

/// The next offset to read of `partition` in the engine's committed offsets.
fn offset_in(offsets: &OffsetMap, partition: &SourcePartition) -> Option<i64> {
    offsets.get(partition)?.get("offset")?.as_i64()
}

/// One message read, converted on the consumer thread.
struct Polled {
    slot: usize,
    epoch: u64,
    next_offset: i64,
    /// `None` for a message skipped (or sent to the dead-letter topic) as unconvertible.
    record: Option<Record>,
}

enum Chunk {
    Messages(Vec<Polled>),
    Failed(Error),
}

/// The consumer's context: rebalances run here, on the consumer thread, inside `poll`.
struct GroupContext {
    partitions: Arc<Mutex<Partitions>>,
    committed: watch::Receiver<Arc<OffsetMap>>,
    commit: CommitRequest,
    stop: watch::Receiver<bool>,
    runtime: tokio::runtime::Handle,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(consumer, tpl, !consumer.assignment_lost())
            }
            other => {
                tracing::warn!(error = ?other, "consumer group rebalance failed; releasing the partitions");
                self.revoke(consumer, tpl, false);
            }
        }
    }
}

impl GroupContext {
    /// Starts reading newly assigned partitions, from the group's committed offset or
    /// the engine's, whichever is further on.
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let engine = self.committed.borrow().clone();
        let mut slots = Vec::with_capacity(tpl.count());
        {
            let mut parts = lock(&self.partitions);
            for e in tpl.elements() {
                let i = parts.find_or_add(e.topic(), e.partition());
                let epoch = parts.next_epoch;
                parts.next_epoch += 1;
                let slot = &mut parts.slots[i];
                slot.epoch = Some(epoch);
                slot.handed = None;
                slots.push((i, offset_in(&engine, &slot.source)));
            }
        }
        // Only when the engine knows an offset is the group asked for its own.
        let group = if slots.iter().any(|(_, o)| o.is_some()) {
            match consumer.committed_offsets(tpl.clone(), GROUP_REQUEST_TIMEOUT) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the group's committed offsets");
                    None
                }
            }
        } else {
            None
        };
        {
            let mut parts = lock(&self.partitions);
            for (i, engine_offset) in slots {
                let slot = &mut parts.slots[i];
                let group_offset = group
                    .as_ref()
                    .and_then(|g| g.find_partition(&slot.topic, slot.partition))
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    });
                slot.committed = group_offset.max(engine_offset).unwrap_or(-1);
                if let Some(o) = engine_offset.filter(|&o| Some(o) > group_offset) {
                    if let Err(e) =
                        tpl.set_partition_offset(&slot.topic, slot.partition, Offset::Offset(o))
                    {
                        tracing::warn!(error = %e, "cannot start from the stored offset");
                    }
                }
            }
        }
        let assigned = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        if let Err(e) = assigned {
            tracing::error!(error = %e, "cannot take the assigned partitions");
        }
    }

    /// Stops handing out the partitions' records, waits until what was handed out is
    /// durable (when `flush`), commits it, and releases the partitions.
    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList, flush: bool) {
        let mut awaited = Vec::new();
        let mut revoked = Vec::new();
        {
            let mut parts = lock(&self.partitions);
            for e in tpl.elements() {
                let Some(i) = parts.find(e.topic(), e.partition()) else {
                    continue;
                };
                let slot = &mut parts.slots[i];
                slot.epoch = None;
                if let Some(h) = slot.handed.take().filter(|&h| h > slot.committed) {
                    awaited.push((slot.source.clone(), h));
                }
                revoked.push(i);
            }
        }
        if flush {
            if !awaited.is_empty() {
                self.wait_until_durable(&awaited);
            }
            let offsets = self.committed.borrow().clone();
            let commit = durable_advances(&self.partitions, &offsets, |i, _| revoked.contains(&i));
            if commit.count() > 0 {
                if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                    tracing::warn!(error = %e, "cannot commit the revoked partitions' offsets; their next owner re-reads from the previous commit");
                }
            }
        }
        let released = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(e) = released {
            tracing::error!(error = %e, "cannot release the revoked partitions");
        }
    }

    /// Blocks this (consumer) thread until the engine's committed offsets reach `awaited`,
    /// the task stops, or [`REVOCATION_FLUSH_TIMEOUT`] passes.
    fn wait_until_durable(&self, awaited: &[(SourcePartition, i64)]) {
        let covered = |offsets: &OffsetMap| {
            awaited
                .iter()
                .all(|(p, h)| offset_in(offsets, p).is_some_and(|o| o >= *h))
        };
        let mut committed = self.committed.clone();
        let mut stop = self.stop.clone();
        let reached = self.runtime.block_on(async {
            tokio::time::timeout(REVOCATION_FLUSH_TIMEOUT, async {
                loop {
                    if covered(&committed.borrow_and_update()) {
                        return true;
                    }
                    if *stop.borrow() {
                        return false;
                    }
                    self.commit.request();
                    tokio::select! {
                        _ = committed.changed() => {}
                        _ = stop.changed() => {}
                        _ = tokio::time::sleep(COMMIT_NUDGE) => {}
                    }
                }
            })
            .await
            .unwrap_or(false)
        });
        if !reached {
            tracing::warn!(
                partitions = awaited.len(),
                "revoked partitions released before the sink made every record durable; their next owner re-reads the rest"
            );
        }
    }
}

/// The engine's committed offsets of the chosen slots that are ahead of the group's,
/// recorded as committed.
fn durable_advances(
    partitions: &Mutex<Partitions>,
    offsets: &OffsetMap,
    chosen: impl Fn(usize, &Slot) -> bool,
) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    let mut parts = lock(partitions);
    for (i, slot) in parts.slots.iter_mut().enumerate() {
        if !chosen(i, slot) {
            continue;
        }
        if let Some(o) = offset_in(offsets, &slot.source).filter(|&o| o > slot.committed) {
            if tpl
                .add_partition_offset(&slot.topic, slot.partition, Offset::Offset(o))
                .is_ok()
            {
                slot.committed = o;
            }
        }
    }
    tpl
}

type GroupConsumer = BaseConsumer<GroupContext>;

/// The consumer thread: reads, converts, pauses when the engine is behind, commits what
/// the engine made durable.
struct ConsumerLoop {
    consumer: GroupConsumer,
    spec: Arc<KafkaTopics>,
    partitions: Arc<Mutex<Partitions>>,
    chunks: mpsc::Sender<Chunk>,
    committed: watch::Receiver<Arc<OffsetMap>>,
    stop: watch::Receiver<bool>,
    runtime: tokio::runtime::Handle,
    connector: String,
    task: usize,
}

impl ConsumerLoop {
    fn run(mut self) {
        let mut chunk: Vec<Polled> = Vec::new();
        let mut paused = false;
        while !*self.stop.borrow() {
            self.commit_durable(CommitMode::Async);
            if !chunk.is_empty() {
                match self
                    .chunks
                    .try_send(Chunk::Messages(std::mem::take(&mut chunk)))
                {
                    Ok(()) if paused => {
                        paused = false;
                        self.set_paused(false);
                    }
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(Chunk::Messages(back))) => {
                        chunk = back;
                        // Also pauses partitions assigned since the last pause.
                        paused = true;
                        self.set_paused(true);
                    }
                    Err(_) => break,
                }
            }
            if let Err(e) = self.read_into(&mut chunk) {
                // The task reports it from `poll`; nothing more is read.
                let _ = self.chunks.blocking_send(Chunk::Failed(e));
                break;
            }
        }
        // The engine's final commit happened before the task was stopped: record it in
        // the group before leaving (dropping the consumer leaves the group).
        self.commit_durable(CommitMode::Sync);
    }

    /// Polls once with a wait (this also serves rebalances and, while paused, does only
    /// that), then takes what is already fetched, up to a chunk.
    fn read_into(&self, chunk: &mut Vec<Polled>) -> Result<(), Error> {
        let mut wait = POLL_INTERVAL;
        loop {
            match self.consumer.poll(wait) {
                None => return Ok(()),
                Some(Ok(message)) => {
                    if let Some(polled) = self.convert(&message)? {
                        chunk.push(polled);
                    }
                }
                Some(Err(e @ ClientError::MessageConsumptionFatal(_))) => {
                    return Err(KafkaError::Read {
                        topic: self.spec.subscription().join(","),
                        source: e,
                    }
                    .into())
                }
                Some(Err(e)) => {
                    // librdkafka recovers from the rest itself (broker down, rebalancing).
                    tracing::warn!(error = %e, "consumer error");
                    return Ok(());
                }
            }
            if chunk.len() >= MAX_CHUNK {
                return Ok(());
            }
            wait = Duration::ZERO;
        }
    }

    /// The message as a record of the current assignment; `None` if it belongs to no
    /// current assignment (a late message of a revoked partition).
    fn convert(&self, message: &BorrowedMessage<'_>) -> Result<Option<Polled>, Error> {
        let (slot, epoch, topic) = {
            let parts = lock(&self.partitions);
            let Some(i) = parts.find(message.topic(), message.partition()) else {
                return Ok(None);
            };
            let Some(epoch) = parts.slots[i].epoch else {
                return Ok(None);
            };
            (i, epoch, parts.slots[i].topic.clone())
        };
        let record = match self.to_record(&topic, message) {
            Ok(r) => Some(r),
            Err((stage, error)) => self.unconvertible(message, stage, error)?,
        };
        Ok(Some(Polled {
            slot,
            epoch,
            next_offset: message.offset() + 1,
            record,
        }))
    }

    fn to_record(
        &self,
        topic: &Arc<str>,
        m: &BorrowedMessage<'_>,
    ) -> Result<Record, (&'static str, Error)> {
        let config = &self.spec.config;
        let (key_schema, key) = match m.key() {
            None => (None, Value::Null),
            Some(k) => config
                .key_converter()
                .deserialize(topic, Some(k))
                .map_err(|e| ("KEY_CONVERTER", e))?,
        };
        let (value_schema, value) = config
            .value_converter()
            .deserialize(topic, m.payload())
            .map_err(|e| ("VALUE_CONVERTER", e))?;
        let mut record = Record::new(topic.clone(), value_schema, value).with_key(key_schema, key);
        record.partition = Some(m.partition());
        record.kafka_offset = Some(m.offset());
        record.timestamp_ms = m.timestamp().to_millis();
        if let Some(headers) = m.headers() {
            record.headers = headers
                .iter()
                .map(|h| Header {
                    key: Arc::from(h.key),
                    schema: None,
                    value: match h.value {
                        None => Value::Null,
                        Some(b) => match std::str::from_utf8(b) {
                            Ok(s) => Value::string(s),
                            Err(_) => Value::Bytes(Bytes::copy_from_slice(b)),
                        },
                    },
                })
                .collect();
        }
        record.event_id = EventId::from_parts(&[
            topic.as_bytes(),
            &m.partition().to_le_bytes(),
            &m.offset().to_le_bytes(),
        ]);
        let size = m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len);
        Ok(record.with_size_estimate(size + 64))
    }

    /// Applies the conversion-error policy: an error naming the message, or a skip (after
    /// the dead-letter topic acknowledged it).
    fn unconvertible(
        &self,
        message: &BorrowedMessage<'_>,
        stage: &'static str,
        error: Error,
    ) -> Result<Option<Record>, Error> {
        let at = || KafkaError::Unconvertible {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            stage,
            reason: error.to_string(),
        };
        match &self.spec.conversion_errors {
            ConversionErrors::Fail => Err(at().into()),
            ConversionErrors::Skip => {
                tracing::warn!(error = %at(), "skipping a message (errors.tolerance=all)");
                Ok(None)
            }
            ConversionErrors::DeadLetter(dlq) => {
                let context = ErrorContext {
                    topic: message.topic(),
                    read_at: Some((message.partition(), message.offset())),
                    stage,
                    class: "",
                    connector: &self.connector,
                    task: self.task,
                };
                tracing::warn!(error = %at(), topic = dlq.topic(), "sending a message to the dead-letter topic");
                self.runtime
                    .block_on(dlq.send_as_is(message, &context, &error))?;
                Ok(None)
            }
        }
    }

    fn set_paused(&self, paused: bool) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let r = if paused {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, paused, "cannot pause or resume the partitions");
        }
    }

    /// Commits to the group what the engine made durable since the last time.
    fn commit_durable(&mut self, mode: CommitMode) {
        if matches!(mode, CommitMode::Async) && !self.committed.has_changed().unwrap_or(false) {
            return;
        }
        let offsets = self.committed.borrow_and_update().clone();
        let tpl = durable_advances(&self.partitions, &offsets, |_, slot| slot.epoch.is_some());
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.commit(&tpl, mode) {
                tracing::warn!(error = %e, "cannot commit consumer offsets; a restart re-reads from the previous commit");
            }
        }
    }
}

/// One member of the group, driven by the engine.
struct KafkaTopicsTask {
    spec: Arc<KafkaTopics>,
    running: Option<Running>,
}

struct Running {
    chunks: mpsc::Receiver<Chunk>,
    partitions: Arc<Mutex<Partitions>>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Turns a chunk into a batch: records of current assignments only, and for each
    /// partition the offset after its last message.
    fn hand_out(&self, chunk: Vec<Polled>) -> SourceBatch {
        let mut parts = lock(&self.partitions);
        let mut records = Vec::with_capacity(chunk.len());
        let mut touched: Vec<usize> = Vec::new();
        for polled in chunk {
            let slot = &mut parts.slots[polled.slot];
            if slot.epoch != Some(polled.epoch) {
                continue;
            }
            slot.handed = Some(polled.next_offset);
            if !touched.contains(&polled.slot) {
                touched.push(polled.slot);
            }
            records.extend(polled.record);
        }
        let offsets = touched
            .into_iter()
            .filter_map(|i| {
                let slot = &parts.slots[i];
                let next = slot.handed?;
                Some((slot.source.clone(), SourceOffset::single("offset", next)))
            })
            .collect();
        SourceBatch { records, offsets }
    }
}

#[async_trait]
impl Task for KafkaTopicsTask {
    async fn start(&mut self, ctx: TaskContext) -> connect_core::Result<()> {
        self.stop().await?;
        let group = self
            .spec
            .group_id
            .clone()
            .unwrap_or_else(|| format!("connect-{}", ctx.pipeline));
        let partitions = Arc::new(Mutex::new(Partitions::default()));
        let (stop_tx, stop) = watch::channel(false);
        let runtime = tokio::runtime::Handle::current();
        let context = GroupContext {
            partitions: partitions.clone(),
            committed: ctx.committed.clone(),
            commit: ctx.commit.clone(),
            stop: stop.clone(),
            runtime: runtime.clone(),
        };
        let consumer: GroupConsumer = self
            .spec
            .config
            .group_consumer_config(&group)
            .create_with_context(context)
            .map_err(|source| KafkaError::Client {
                client: "consumer",
                source,
            })?;
        let topics = self.spec.subscription();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|source| KafkaError::Read {
                topic: topics.join(","),
                source,
            })?;
        let (tx, chunks) = mpsc::channel(CHUNKS_AHEAD);
        let consumer_loop = ConsumerLoop {
            consumer,
            spec: self.spec.clone(),
            partitions: partitions.clone(),
            chunks: tx,
            committed: ctx.committed.clone(),
            stop,
            runtime,
            connector: ctx.pipeline.to_string(),
            task: ctx.task_id,
        };
        let thread = std::thread::Builder::new()
            .name(format!("kafka-sink-{}", ctx.task_id))
            .spawn(move || consumer_loop.run())
            .map_err(|e| Error::fatal("kafka", e))?;
        self.running = Some(Running {
            chunks,
            partitions,
            stop: stop_tx,
            thread: Some(thread),
        });
        Ok(())
    }

    async fn stop(&mut self) -> connect_core::Result<()> {
        let Some(mut running) = self.running.take() else {
            return Ok(());
        };
        running.stop.send_replace(true);
        // A thread blocked on a full queue sees it closed.
        running.chunks.close();
        if let Some(thread) = running.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        Ok(())
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
}

#[async_trait]
impl SourceTask for KafkaTopicsTask {
    async fn poll(&mut self) -> connect_core::Result<Option<SourceBatch>> {
        let running = self.running.as_mut().ok_or_else(|| {
            Error::fatal("kafka", "the Kafka topics task was polled before start")
        })?;
        match running.chunks.recv().await {
            Some(Chunk::Messages(chunk)) => Ok(Some(running.hand_out(chunk))),
            Some(Chunk::Failed(e)) => Err(e),
            None => Err(KafkaError::Io("the consumer thread ended".into()).into()),
        }
    }
}
