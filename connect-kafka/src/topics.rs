//! Creating topics that do not exist yet.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::{KafkaConfig, TopicCreation};
use crate::error::KafkaError;

/// An admin client for `config`'s brokers.
pub(crate) fn admin_client(
    config: &KafkaConfig,
) -> Result<AdminClient<DefaultClientContext>, KafkaError> {
    config
        .client_config()
        .create()
        .map_err(|source| KafkaError::Client {
            client: "admin client",
            source,
        })
}

/// Bound on the metadata request that tells whether a topic exists.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates `topic` with `shape` unless it exists already (an existing topic is used as it
/// is, so a user without the right to create topics can create them beforehand).
pub(crate) async fn ensure_topic(
    config: &KafkaConfig,
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    shape: &TopicCreation,
) -> Result<(), KafkaError> {
    if topic_exists(config, topic).await? {
        return Ok(());
    }
    let mut new = NewTopic::new(
        topic,
        shape.partitions,
        TopicReplication::Fixed(shape.replication_factor),
    );
    for (k, v) in &shape.configs {
        new = new.set(k, v);
    }
    let failed = |reason: String| KafkaError::CreateTopic {
        topic: topic.to_owned(),
        reason,
    };
    let results = admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .map_err(|e| failed(e.to_string()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(failed(code.to_string())),
        }
    }
    Ok(())
}

async fn topic_exists(config: &KafkaConfig, topic: &str) -> Result<bool, KafkaError> {
    let client: BaseConsumer =
        config
            .client_config()
            .create()
            .map_err(|source| KafkaError::Client {
                client: "metadata client",
                source,
            })?;
    let owned = topic.to_owned();
    let metadata =
        tokio::task::spawn_blocking(move || client.fetch_metadata(Some(&owned), METADATA_TIMEOUT))
            .await
            .map_err(|e| KafkaError::Io(e.to_string()))?
            .map_err(|source| KafkaError::Read {
                topic: topic.to_owned(),
                source,
            })?;
    Ok(lists_topic(&metadata, topic))
}

/// Whether `metadata` shows `topic` as existing (named, no error, with partitions).
pub(crate) fn lists_topic(metadata: &Metadata, topic: &str) -> bool {
    metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
}
