//! The Kafka destination: every record produced with `acks=all` and idempotence, a batch
//! acknowledged to the engine when librdkafka reported every one of its records delivered.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connect_core::{
    BoxError, Committer, Converter, EngineBuilder, Error, ErrorContext, Header, JsonConverter,
    Pipeline, PipelineBuilder, Record, Value,
};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError as ClientError;
use rdkafka::message::{Header as KafkaHeader, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::IntoOpaque;
use rdkafka::ClientContext;

use crate::config::KafkaConfig;
use crate::dead_letter::KafkaDeadLetterQueue;
use crate::error::KafkaError;
use crate::topics::{admin_client, ensure_topic, lists_topic};

/// Bound on looking up a topic the destination has not sent to before.
const TOPIC_LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a send waits before retrying when librdkafka's local queue is full. The
/// engine's own queue bounds what is in flight, so this is rare.
pub(crate) const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(2);
/// How long deliveries are still awaited after the destination was dropped (the engine
/// drops it when its queue closes, and then waits for the acknowledgements of the batches
/// in flight, within its own shutdown bound).
const DRAIN_AFTER_DROP: Duration = Duration::from_secs(300);

/// The delivery state of one batch, shared by its records' delivery reports.
struct BatchDelivery {
    remaining: AtomicUsize,
    committer: Mutex<Option<Committer>>,
    /// Where a refused record's dead-letter send runs (delivery reports come on
    /// librdkafka's thread, which must not block on it).
    runtime: tokio::runtime::Handle,
}

impl BatchDelivery {
    fn take_committer(&self) -> Option<Committer> {
        self.committer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn delivered(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(c) = self.take_committer() {
                c.mark_batch_finished();
            }
        }
    }

    fn failed(&self, error: KafkaError) {
        if let Some(c) = self.take_committer() {
            c.fail(error);
        }
    }
}

/// Whether Kafka refused the record itself (not the connection, not the producer's
/// state): the errors a dead-letter topic takes.
fn is_record_refusal(error: &ClientError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

/// The error context of a record the destination could not deliver.
fn produce_context<'a>(topic: &'a str, stage: &'static str) -> ErrorContext<'a> {
    ErrorContext {
        topic,
        read_at: None,
        stage,
        class: "",
        connector: "",
        task: 0,
    }
}

/// Routes librdkafka's delivery reports to their batches.
struct DeliveryContext {
    dead_letter: Option<KafkaDeadLetterQueue>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<BatchDelivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: Arc<BatchDelivery>) {
        match result {
            Ok(_) => batch.delivered(),
            Err((source, message)) if is_record_refusal(source) && self.dead_letter.is_some() => {
                let dlq = self.dead_letter.clone().expect("checked");
                let error: Error = KafkaError::Delivery {
                    topic: message.topic().to_owned(),
                    partition: message.partition(),
                    source: source.clone(),
                }
                .into();
                let message = message.detach();
                let runtime = batch.runtime.clone();
                runtime.spawn(async move {
                    let context = produce_context(message.topic(), "KAFKA_PRODUCE");
                    tracing::warn!(%error, topic = dlq.topic(), "sending a refused record to the dead-letter topic");
                    match dlq.send_as_is(&message, &context, &error).await {
                        Ok(()) => batch.delivered(),
                        Err(e) => batch.failed(e),
                    }
                });
            }
            Err((
                ClientError::MessageProduction(
                    RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight,
                ),
                _,
            )) => {
                // Purged at close: the batch stays unacknowledged and comes again on restart.
                drop(batch.take_committer());
            }
            Err((source, message)) => batch.failed(KafkaError::Delivery {
                topic: message.topic().to_owned(),
                partition: message.partition(),
                source: source.clone(),
            }),
        }
    }
}

type DeliveryProducer = BaseProducer<DeliveryContext>;

/// Serves delivery reports until the destination is gone and nothing is in flight (or
/// [`DRAIN_AFTER_DROP`] passed): the producer outlives the destination for the batches the
/// engine still waits on, and is dropped here, on this thread, once they are delivered.
fn serve_deliveries(producer: Arc<DeliveryProducer>) {
    let mut orphaned: Option<Instant> = None;
    loop {
        producer.poll(Duration::from_millis(100));
        if Arc::strong_count(&producer) == 1 {
            let since = *orphaned.get_or_insert_with(Instant::now);
            if producer.in_flight_count() == 0 || since.elapsed() > DRAIN_AFTER_DROP {
                return;
            }
        }
    }
}

struct Inner {
    producer: Arc<DeliveryProducer>,
    dead_letter: Option<KafkaDeadLetterQueue>,
    admin: Option<AdminClient<DefaultClientContext>>,
    config: KafkaConfig,
    encoder: RecordEncoder,
    known_topics: Mutex<HashSet<Arc<str>>>,
}

/// Sends a pipeline's records to Kafka: the record's topic, partition (or the Java
/// client's murmur2 partition of the key bytes), key and value through the configured
/// converters, headers and timestamp.
///
/// Order within a partition is kept through broker outages (idempotent producer, retries
/// without a deadline while the engine's back-pressure holds the source). A delivery that
/// fails for good (a record the broker refuses, an idempotence-fatal error) fails the
/// pipeline; the next start resumes from the last committed offset. Attach it with
/// [`IntoKafka::into_kafka`].
#[derive(Clone)]
pub struct KafkaDestination {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KafkaDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaDestination")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl KafkaDestination {
    /// A destination for a validated configuration. Connects lazily: an unreachable
    /// broker delays delivery (and holds the source) rather than failing here.
    pub fn new(config: KafkaConfig) -> Result<Self, Error> {
        Self::build(config, None)
    }

    /// As [`KafkaDestination::new`], with a dead-letter topic for the records that Kafka
    /// refuses for good (too large, invalid) and those the converters cannot write:
    /// they go there, with the `__connect.errors.*` headers (stage `KAFKA_PRODUCE` or
    /// `VALUE_CONVERTER`), instead of failing the pipeline. The batch is acknowledged
    /// only once the dead-letter topic acknowledged them; if it refuses them too, the
    /// pipeline fails.
    pub fn with_dead_letter(config: KafkaConfig, dlq: KafkaDeadLetterQueue) -> Result<Self, Error> {
        Self::build(config, Some(dlq))
    }

    fn build(
        config: KafkaConfig,
        dead_letter: Option<KafkaDeadLetterQueue>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let producer: Arc<DeliveryProducer> = Arc::new(
            config
                .producer_config()
                .create_with_context(DeliveryContext {
                    dead_letter: dead_letter.clone(),
                })
                .map_err(|source| KafkaError::Client {
                    client: "producer",
                    source,
                })?,
        );
        let poller = producer.clone();
        std::thread::Builder::new()
            .name("kafka-deliveries".into())
            .spawn(move || serve_deliveries(poller))
            .map_err(|e| Error::fatal("kafka", e))?;
        let admin = match config.topic_creation() {
            Some(_) => Some(admin_client(&config)?),
            None => None,
        };
        Ok(KafkaDestination {
            inner: Arc::new(Inner {
                producer,
                dead_letter,
                admin,
                encoder: RecordEncoder::new(&config),
                config,
                known_topics: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// Records queued in librdkafka and not yet delivered.
    pub fn in_flight(&self) -> i32 {
        self.inner.producer.in_flight_count()
    }

    /// Queues a batch; its committer is finished once every record is delivered.
    async fn send_batch(&self, records: Vec<Record>, committer: Committer) -> Result<(), BoxError> {
        if records.is_empty() {
            committer.mark_batch_finished();
            return Ok(());
        }
        let batch = Arc::new(BatchDelivery {
            remaining: AtomicUsize::new(records.len()),
            committer: Mutex::new(Some(committer)),
            runtime: tokio::runtime::Handle::current(),
        });
        if let Err(error) = self.queue(&records, &batch).await {
            // Recorded as the pipeline's error before the batch's nack can be.
            batch.failed(error);
        }
        Ok(())
    }

    async fn queue(
        &self,
        records: &[Record],
        batch: &Arc<BatchDelivery>,
    ) -> Result<(), KafkaError> {
        let inner = &*self.inner;
        self.check_new_topics(records).await?;
        let mut encoded = inner.encoder.buffers();
        for r in records {
            let mut out = match inner.encoder.encode(r, &mut encoded, batch.clone()) {
                Ok(out) => out,
                Err(e @ KafkaError::Convert(_)) if inner.dead_letter.is_some() => {
                    self.to_dead_letter(r, "VALUE_CONVERTER", e, batch).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            loop {
                match inner.producer.send(out) {
                    Ok(()) => break,
                    Err((ClientError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        out = back;
                        tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                    }
                    Err((source, _)) => {
                        let refused = is_record_refusal(&source);
                        let error = KafkaError::Send {
                            topic: r.topic.to_string(),
                            source,
                        };
                        if !(refused && inner.dead_letter.is_some()) {
                            return Err(error);
                        }
                        self.to_dead_letter(r, "KAFKA_PRODUCE", error, batch)
                            .await?;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends one record of `batch` to the dead-letter topic, with the error context, and
    /// counts it as delivered once the topic acknowledged it.
    async fn to_dead_letter(
        &self,
        record: &Record,
        stage: &'static str,
        error: KafkaError,
        batch: &BatchDelivery,
    ) -> Result<(), KafkaError> {
        let dlq = self
            .inner
            .dead_letter
            .as_ref()
            .expect("checked by the caller");
        let error: Error = error.into();
        tracing::warn!(%error, topic = dlq.topic(), "sending a record to the dead-letter topic");
        let mut failed = record.clone();
        failed
            .headers
            .extend(produce_context(&record.topic, stage).headers(&error));
        dlq.send_records(std::slice::from_ref(&failed)).await?;
        batch.delivered();
        Ok(())
    }

    /// Makes sure each topic seen for the first time exists: created with
    /// `topic.creation.*`, or else looked up through the producer (which lets a broker
    /// with `auto.create.topics.enable` create it). A record for a topic that does not
    /// exist would otherwise wait in librdkafka forever.
    async fn check_new_topics(&self, records: &[Record]) -> Result<(), KafkaError> {
        let inner = &*self.inner;
        let mut new: Vec<Arc<str>> = Vec::new();
        {
            let known = inner.known_topics.lock().unwrap_or_else(|p| p.into_inner());
            let mut last: Option<&Arc<str>> = None;
            for r in records {
                if last.is_some_and(|t| Arc::ptr_eq(t, &r.topic)) {
                    continue;
                }
                last = Some(&r.topic);
                if !known.contains(&r.topic) && !new.contains(&r.topic) {
                    new.push(r.topic.clone());
                }
            }
        }
        for topic in new {
            match (&inner.admin, inner.config.topic_creation()) {
                (Some(admin), Some(shape)) => {
                    ensure_topic(&inner.config, admin, &topic, shape).await?;
                }
                _ => {
                    let producer = inner.producer.clone();
                    let name = topic.to_string();
                    let metadata = tokio::task::spawn_blocking(move || {
                        producer
                            .client()
                            .fetch_metadata(Some(&name), TOPIC_LOOKUP_TIMEOUT)
                    })
                    .await
                    .map_err(|e| KafkaError::Io(e.to_string()))?
                    .map_err(|source| KafkaError::Send {
                        topic: topic.to_string(),
                        source,
                    })?;
                    let exists = lists_topic(&metadata, &topic);
                    if !exists {
                        return Err(KafkaError::MissingTopic {
                            topic: topic.to_string(),
                        });
                    }
                }
            }
            inner
                .known_topics
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(topic);
        }
        Ok(())
    }
}

/// Turns records into Kafka messages: key and value through the configured converters,
/// headers as Kafka Connect's `SimpleHeaderConverter` writes them (strings and bytes as
/// they are, other values as schemaless JSON), the record's partition and timestamp.
pub(crate) struct RecordEncoder {
    key_converter: Arc<dyn Converter>,
    value_converter: Arc<dyn Converter>,
    header_converter: JsonConverter,
}

/// A record's key, value and headers as Kafka message parts.
pub(crate) struct EncodedParts<'a> {
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: Option<OwnedHeaders>,
}

/// Reusable key and value buffers of a [`RecordEncoder`].
pub(crate) struct Encoded {
    key: Vec<u8>,
    value: Vec<u8>,
    header: Vec<u8>,
}

impl RecordEncoder {
    pub(crate) fn new(config: &KafkaConfig) -> Self {
        RecordEncoder {
            key_converter: config.key_converter().clone(),
            value_converter: config.value_converter().clone(),
            header_converter: JsonConverter::new(false),
        }
    }

    pub(crate) fn buffers(&self) -> Encoded {
        Encoded {
            key: Vec::with_capacity(256),
            value: Vec::with_capacity(4096),
            header: Vec::new(),
        }
    }

    /// The message for `r`, borrowing its bytes from `buf`; conversion errors name the
    /// topic.
    pub(crate) fn encode<'a, D: IntoOpaque>(
        &self,
        r: &'a Record,
        buf: &'a mut Encoded,
        opaque: D,
    ) -> Result<BaseRecord<'a, [u8], [u8], D>, KafkaError> {
        let parts = self.encode_parts(r, buf)?;
        let mut out = BaseRecord::with_opaque_to(&r.topic, opaque);
        if let Some(key) = parts.key {
            out = out.key(key);
        }
        if let Some(value) = parts.value {
            out = out.payload(value);
        }
        if let Some(p) = r.partition {
            out = out.partition(p);
        }
        if let Some(ts) = r.timestamp_ms {
            out = out.timestamp(ts);
        }
        if let Some(h) = parts.headers {
            out = out.headers(h);
        }
        Ok(out)
    }

    /// Key, value and headers of `r` as bytes (borrowed from `buf`).
    pub(crate) fn encode_parts<'a>(
        &self,
        r: &Record,
        buf: &'a mut Encoded,
    ) -> Result<EncodedParts<'a>, KafkaError> {
        buf.key.clear();
        buf.value.clear();
        let has_key = !matches!(r.key, Value::Null)
            && self
                .key_converter
                .serialize(&r.topic, r.key_schema.as_ref(), &r.key, &mut buf.key)
                .map_err(KafkaError::Convert)?;
        let has_value = self
            .value_converter
            .serialize(&r.topic, r.value_schema.as_ref(), &r.value, &mut buf.value)
            .map_err(KafkaError::Convert)?;
        let headers = if r.headers.is_empty() {
            None
        } else {
            Some(self.headers(
                &r.topic,
                &r.headers,
                &mut buf.header,
                OwnedHeaders::new_with_capacity(r.headers.len()),
            )?)
        };
        let buf: &'a Encoded = buf;
        Ok(EncodedParts {
            key: has_key.then_some(&buf.key[..]),
            value: has_value.then_some(&buf.value[..]),
            headers,
        })
    }

    /// Appends `headers` to `out`.
    pub(crate) fn headers(
        &self,
        topic: &str,
        headers: &[Header],
        buf: &mut Vec<u8>,
        mut out: OwnedHeaders,
    ) -> Result<OwnedHeaders, KafkaError> {
        for h in headers {
            let value: Option<&[u8]> = match &h.value {
                Value::Null => None,
                Value::String(s) => Some(s.as_bytes()),
                Value::Bytes(b) => Some(b),
                other => {
                    buf.clear();
                    self.header_converter
                        .serialize(topic, None, other, buf)
                        .map_err(KafkaError::Convert)?;
                    Some(buf)
                }
            };
            out = out.insert(KafkaHeader { key: &h.key, value });
        }
        Ok(out)
    }
}

/// Attaches a [`KafkaDestination`] to a pipeline or a single-pipeline engine.
pub trait IntoKafka {
    /// What the builder becomes.
    type Output;
    /// Delivers the pipeline's records to Kafka.
    fn into_kafka(self, destination: KafkaDestination) -> Self::Output;
}

impl IntoKafka for PipelineBuilder {
    type Output = Pipeline;

    fn into_kafka(self, destination: KafkaDestination) -> Pipeline {
        self.into_callback(move |records, committer| {
            let destination = destination.clone();
            async move { destination.send_batch(records, committer).await }
        })
    }
}

impl IntoKafka for EngineBuilder {
    type Output = EngineBuilder;

    fn into_kafka(self, destination: KafkaDestination) -> EngineBuilder {
        self.into_callback(move |records, committer| {
            let destination = destination.clone();
            async move { destination.send_batch(records, committer).await }
        })
    }
}
