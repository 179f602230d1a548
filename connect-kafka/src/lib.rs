//! # connect-kafka
//!
//! Kafka for [`connect_core`] pipelines: a destination that produces every record to
//! Kafka (at-least-once, or exactly-once with transactions), an offset store in a
//! compacted topic in Kafka Connect's format, and Debezium's schema history topic
//! ([`register`] makes both selectable from properties files); and the other way, the
//! sink runner, which reads topics through a consumer group into any sink, with a
//! dead-letter topic.
//!
//! ## Destination ([`KafkaDestination`], attached with [`IntoKafka::into_kafka`])
//! - Producer with `acks=all` and idempotence (a `producer.*` setting that weakens either
//!   is rejected by name), `message.timeout.ms=0`: through a broker outage librdkafka
//!   retries in order without a deadline while the engine's bounded queue holds the
//!   source. A batch is acknowledged to the engine only when every one of its records
//!   was delivered; delivery reports of different partitions may arrive out of order and
//!   the engine commits offsets only past contiguously acknowledged batches.
//! - Topic from the record (after routing transforms), its partition if it set one,
//!   otherwise `murmur2_random`: the Java client's partition for the same key bytes, so
//!   consumers see the partitions Kafka Connect would give them.
//! - Key and value bytes from the configured converters (default: Debezium's JSON with
//!   schemas); headers as Kafka Connect's `SimpleHeaderConverter` writes them; the record's
//!   timestamp.
//! - `topic.creation.enable`: missing topics are created before their first record with
//!   `topic.creation.default.partitions`, `.replication.factor` and any other
//!   `topic.creation.default.<topic config>` (e.g. `cleanup.policy`).
//! - A record that cannot be converted, that Kafka refuses for good, or whose topic does
//!   not exist (and is not created), fails the pipeline with an error naming the topic;
//!   nothing is skipped, and the next start resumes from the last committed offset.
//!   [`KafkaDestination::with_dead_letter`] sends the unconvertible and refused ones to a
//!   dead-letter topic instead.
//!
//! ## Exactly-once ([`KafkaExactlyOnce`], attached with `into_connector`)
//! A transactional producer writes the records between two engine commits and their
//! source offsets (to the offsets topic, Kafka Connect's format) in one transaction, and
//! the restart resumes from the offsets of the last committed transaction: consumers with
//! `isolation.level=read_committed` see each change once. Needs a broker with
//! transactions.
//!
//! ## One instance at a time ([`KafkaLease`])
//! Instances of a pipeline share a consumer group on a one-partition topic; the holder of
//! the partition runs, the others wait and take over when it leaves or dies. An offset
//! store opened with [`KafkaOffsetStore::fenced`] fences a holder that lost the lease
//! without noticing: it refuses to write, and what it wrote never overrides the newer
//! holder's offsets.
//!
//! ## Sink runner ([`KafkaTopics`]) and dead-letter topic ([`KafkaDeadLetterQueue`])
//! Kafka topics as a pipeline's source, read by a consumer group whose offsets are
//! committed only after the sink flushed, also around rebalances; see [`KafkaTopics`].
//! Failed records go to a dead-letter topic with Kafka Connect's `__connect.errors.*`
//! headers.
//!
//! ## Offsets ([`KafkaOffsetStore`])
//! Kafka Connect's `offset.storage.topic` format, so offsets move between Kafka Connect,
//! Debezium Server and connect in both directions.
//!
//! ## Schema history ([`KafkaSchemaHistory`])
//! Debezium's `KafkaSchemaHistory` topic: one partition, unlimited retention, one
//! history record per message, recovered from the beginning at start-up.
//!
//! ## Example
//! ```no_run
//! use connect_core::{Engine, MemoryOffsetStore};
//! use connect_kafka::{IntoKafka, KafkaConfig, KafkaDestination, KafkaOffsetStore};
//! # async fn run(source: impl connect_core::SourceConnector + 'static) -> connect_core::Result<()> {
//! let kafka = KafkaConfig::new("127.0.0.1:9092");
//! let engine = Engine::builder()
//!     .name("shop-cdc")
//!     .source(source)
//!     .offsets(KafkaOffsetStore::new(kafka.clone())?)
//!     .into_kafka(KafkaDestination::new(kafka)?)
//!     .start()
//!     .await?;
//! engine.wait().await?;
//! # Ok(()) }
//! ```

mod config;
mod dead_letter;
mod destination;
mod error;
mod exactly_once;
mod history;
mod lease;
mod offsets;
mod reader;
mod sink;
mod topics;

pub use config::{
    KafkaConfig, TopicCreation, BROKER_DEFAULT_REPLICATION, DEFAULT_OFFSET_PARTITIONS,
    DEFAULT_OFFSET_TOPIC,
};
pub use dead_letter::KafkaDeadLetterQueue;
pub use destination::{IntoKafka, KafkaDestination};
pub use error::KafkaError;
pub use exactly_once::KafkaExactlyOnce;
pub use history::KafkaSchemaHistory;
pub use lease::KafkaLease;
pub use offsets::KafkaOffsetStore;
pub use sink::{KafkaTopics, REVOCATION_FLUSH_TIMEOUT};

use std::sync::Arc;

use connect_core::{Error, Registry};

/// Kafka Connect's class name of the Kafka offset store, accepted as `offset.storage`.
pub const OFFSET_STORE_CLASS: &str = "org.apache.kafka.connect.storage.KafkaOffsetBackingStore";
/// Debezium's class name of the Kafka schema history, accepted as
/// `schema.history.internal`.
pub const SCHEMA_HISTORY_CLASS: &str = "io.debezium.storage.kafka.history.KafkaSchemaHistory";

/// Registers the Kafka offset store and schema history with a [`Registry`], so that
/// properties files name them as Kafka Connect and Debezium do:
///
/// | key | meaning |
/// |---|---|
/// | `offset.storage=org.apache.kafka.connect.storage.KafkaOffsetBackingStore` | [`KafkaOffsetStore`] |
/// | `bootstrap.servers`, `producer.*`, `consumer.*` | its brokers and clients |
/// | `offset.storage.topic`, `.partitions`, `.replication.factor` | its topic |
/// | `schema.history.internal=io.debezium.storage.kafka.history.KafkaSchemaHistory` | [`KafkaSchemaHistory`] |
/// | `schema.history.internal.kafka.bootstrap.servers`, `.kafka.topic` | its brokers and topic |
/// | `schema.history.internal.producer.*`, `.consumer.*` | its clients |
///
/// and the sink runner for [`Registry::build_sink_pipeline`] (Kafka Connect's sink
/// connector file):
///
/// | key | meaning |
/// |---|---|
/// | `topics` or `topics.regex` | what [`KafkaTopics`] reads |
/// | `bootstrap.servers`, `consumer.*` | its consumer (`consumer.group.id`, default `connect-<name>`) |
/// | `errors.tolerance=all` | skip records that fail conversion or a transform |
/// | `errors.deadletterqueue.topic.name`, `.topic.replication.factor`, `.context.headers.enable` | [`KafkaDeadLetterQueue`] |
pub fn register(registry: &mut Registry) {
    registry.register_source(connect_core::SINK_RUNNER_CLASS, |ctx| {
        Ok(Arc::new(KafkaTopics::from_props(ctx)?))
    });
    registry.register_dead_letter_queue(|props| {
        let dlq = sink::dead_letter_from_props(props)?
            .ok_or_else(|| Error::config("errors.deadletterqueue.topic.name", "is required"))?;
        Ok(Arc::new(dlq))
    });
    registry.register_offset_store(OFFSET_STORE_CLASS, |props| {
        Ok(Arc::new(KafkaOffsetStore::new(KafkaConfig::from_props(
            props,
        )?)?))
    });
    registry.register_schema_history(SCHEMA_HISTORY_CLASS, |props| {
        let history = props.scope("schema.history.internal.");
        let mut config = KafkaConfig::new(history.require("kafka.bootstrap.servers")?);
        let all = history.properties();
        for (k, v) in all.take_prefixed(&history.key("producer.")) {
            config = config.with_producer(&k, &v);
        }
        for (k, v) in all.take_prefixed(&history.key("consumer.")) {
            config = config.with_consumer(&k, &v);
        }
        config.validate().map_err(|e| match e {
            Error::Config { key, message } => Error::config(history.key(&key), message),
            other => other,
        })?;
        Ok(Arc::new(KafkaSchemaHistory::new(
            config,
            history.require("kafka.topic")?,
        )?))
    });
}
