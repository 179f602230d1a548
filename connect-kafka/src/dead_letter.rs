//! Kafka Connect's dead-letter topic (`errors.deadletterqueue.topic.name`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use connect_core::{async_trait, DeadLetterQueue, Error, ErrorContext, Record};
use rdkafka::message::{Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::config::{KafkaConfig, TopicCreation, BROKER_DEFAULT_REPLICATION};
use crate::destination::{Encoded, RecordEncoder};
use crate::error::KafkaError;
use crate::offsets::StateTopic;

struct Inner {
    topic: StateTopic,
    encoder: RecordEncoder,
    buffers: Mutex<Encoded>,
}

/// Records that failed with `errors.tolerance=all`, produced to a Kafka topic with the
/// `__connect.errors.*` headers (topic, partition and offset they were read at, connector,
/// task, stage, class, exception message), as Kafka Connect's dead-letter queue writes
/// them with `errors.deadletterqueue.context.headers.enable=true`.
///
/// A record's key and value go through the configured converters; a message the sink
/// runner could not convert goes as the bytes it was read as. `send` returns once the
/// broker acknowledged every record (`acks=all`), so the offsets may then move past them.
/// The topic is created on first use (one partition, the broker's default replication
/// unless [`KafkaDeadLetterQueue::with_replication_factor`] says otherwise).
///
/// Attach it with `dead_letter(..)` on the engine or pipeline builder (transform
/// failures), on [`crate::KafkaTopics::dead_letter`] (messages the sink runner cannot
/// convert) and with [`crate::KafkaDestination::with_dead_letter`] (records Kafka refuses
/// for good or the converters cannot write).
#[derive(Clone)]
pub struct KafkaDeadLetterQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KafkaDeadLetterQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaDeadLetterQueue")
            .field("topic", &self.inner.topic.topic)
            .finish()
    }
}

impl KafkaDeadLetterQueue {
    /// A dead-letter queue on `config`'s brokers, writing to `topic`.
    pub fn new(config: KafkaConfig, topic: &str) -> Result<Self, Error> {
        Self::with_replication_factor(config, topic, BROKER_DEFAULT_REPLICATION)
    }

    /// As [`KafkaDeadLetterQueue::new`], creating the topic with this replication factor
    /// (`errors.deadletterqueue.topic.replication.factor`).
    pub fn with_replication_factor(
        config: KafkaConfig,
        topic: &str,
        replication_factor: i32,
    ) -> Result<Self, Error> {
        if topic.is_empty() {
            return Err(Error::config(
                "errors.deadletterqueue.topic.name",
                "must not be empty",
            ));
        }
        if replication_factor == 0 || replication_factor < -1 {
            return Err(Error::config(
                "errors.deadletterqueue.topic.replication.factor",
                format!("{replication_factor}: must be positive, or -1 for the broker's default"),
            ));
        }
        let shape = TopicCreation {
            partitions: 1,
            replication_factor,
            configs: BTreeMap::new(),
        };
        let encoder = RecordEncoder::new(&config);
        let buffers = Mutex::new(encoder.buffers());
        Ok(KafkaDeadLetterQueue {
            inner: Arc::new(Inner {
                topic: StateTopic::new(config, topic.to_owned(), shape)?,
                encoder,
                buffers,
            }),
        })
    }

    /// The dead-letter topic.
    pub fn topic(&self) -> &str {
        &self.inner.topic.topic
    }

    /// Sends a Kafka message as it is (one the sink runner could not convert, or one the
    /// destination's topic refused): its own key, value, headers and timestamp, plus the
    /// error context. Returns once the broker acknowledged it.
    pub(crate) async fn send_as_is<M: Message>(
        &self,
        message: &M,
        context: &ErrorContext<'_>,
        error: &Error,
    ) -> Result<(), KafkaError> {
        let state = &self.inner.topic;
        state.ensure_exists().await?;
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for h in original.iter() {
                headers = headers.insert(h);
            }
        }
        let mut scratch = Vec::new();
        let headers = self.inner.encoder.headers(
            state.topic.as_str(),
            &context.headers(error),
            &mut scratch,
            headers,
        )?;
        let mut out = FutureRecord::<[u8], [u8]>::to(&state.topic).headers(headers);
        if let Some(key) = message.key() {
            out = out.key(key);
        }
        if let Some(value) = message.payload() {
            out = out.payload(value);
        }
        if let Some(ts) = message.timestamp().to_millis() {
            out = out.timestamp(ts);
        }
        state.send(out)?;
        state.flush().await
    }

    /// Sends records converted with the configured converters (their own headers first);
    /// returns once the broker acknowledged them.
    pub(crate) async fn send_records(&self, records: &[Record]) -> Result<(), KafkaError> {
        let state = &self.inner.topic;
        state.ensure_exists().await?;
        {
            let mut buf = self.inner.buffers.lock().unwrap_or_else(|p| p.into_inner());
            for r in records {
                let parts = self.inner.encoder.encode_parts(r, &mut buf)?;
                state.send(FutureRecord::<[u8], [u8]> {
                    topic: &state.topic,
                    partition: None,
                    key: parts.key,
                    payload: parts.value,
                    timestamp: r.timestamp_ms,
                    headers: parts.headers,
                })?;
            }
        }
        state.flush().await
    }
}

#[async_trait]
impl DeadLetterQueue for KafkaDeadLetterQueue {
    async fn send(&self, records: Vec<Record>) -> connect_core::Result<()> {
        Ok(self.send_records(&records).await?)
    }
}
