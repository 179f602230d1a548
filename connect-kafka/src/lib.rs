//! # connect-kafka
//!
//! Kafka for [`connect_core`] pipelines: a destination that produces every record to
//! Kafka, and an offset store in a compacted topic in Kafka Connect's format.
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
//! - A record that cannot be converted, or that Kafka refuses for good, fails the pipeline
//!   with an error naming the topic; nothing is skipped, and the next start resumes from
//!   the last committed offset.
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
mod destination;
mod error;
mod history;
mod offsets;
mod reader;
mod topics;

pub use config::{
    KafkaConfig, TopicCreation, BROKER_DEFAULT_REPLICATION, DEFAULT_OFFSET_PARTITIONS,
    DEFAULT_OFFSET_TOPIC,
};
pub use destination::{IntoKafka, KafkaDestination};
pub use error::KafkaError;
pub use history::KafkaSchemaHistory;
pub use offsets::KafkaOffsetStore;
