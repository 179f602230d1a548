//! Creating topics that do not exist yet.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::TopicCreation;
use crate::error::KafkaError;

/// Creates `topic` with `shape` unless it exists already.
pub(crate) async fn ensure_topic(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    shape: &TopicCreation,
) -> Result<(), KafkaError> {
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
