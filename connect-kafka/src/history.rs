//! Debezium's schema history topic.

use std::collections::BTreeMap;

use connect_core::{async_trait, Error, HistoryRecord, SchemaHistory};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;

use crate::config::{KafkaConfig, TopicCreation};
use crate::error::KafkaError;
use crate::lease::{KafkaLease, LeaseGuard};
use crate::offsets::StateTopic;
use crate::reader::read_to_end;

/// The schema history in a Kafka topic, as Debezium's `KafkaSchemaHistory` keeps it
/// (`schema.history.internal.kafka.topic`): one partition, unlimited retention
/// (`retention.ms` = Java's `Long.MAX_VALUE`, `retention.bytes=-1`, `cleanup.policy=delete`),
/// one history record per message as Debezium's JSON with a null key. Created on first
/// use if missing; a topic with more than one partition, or a message that is not a
/// history record, is an error naming it.
pub struct KafkaSchemaHistory {
    state: StateTopic,
    lease: Option<LeaseGuard>,
}

impl std::fmt::Debug for KafkaSchemaHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSchemaHistory")
            .field("topic", &self.state.topic)
            .finish()
    }
}

impl KafkaSchemaHistory {
    /// The history in `topic` on `config`'s brokers (replication: the broker's default).
    pub fn new(config: KafkaConfig, topic: &str) -> Result<Self, Error> {
        if topic.is_empty() {
            return Err(Error::config(
                "schema.history.internal.kafka.topic",
                "must not be empty",
            ));
        }
        let configs = BTreeMap::from([
            ("cleanup.policy".to_owned(), "delete".to_owned()),
            ("retention.ms".to_owned(), i64::MAX.to_string()),
            ("retention.bytes".to_owned(), "-1".to_owned()),
        ]);
        let shape = TopicCreation {
            partitions: 1,
            replication_factor: crate::config::BROKER_DEFAULT_REPLICATION,
            configs,
        };
        Ok(KafkaSchemaHistory {
            state: StateTopic::new(config, topic.to_owned(), shape)?,
            lease: None,
        })
    }

    /// The same history, refusing to append once `lease` is lost
    /// ([`KafkaError::LeaseLost`], fatal), so that an instance that lost its lease
    /// without noticing never adds DDL to the history the new holder reads.
    pub fn guarded_by(mut self, lease: &KafkaLease) -> Self {
        self.lease = Some(lease.guard());
        self
    }

    /// The history topic.
    pub fn topic(&self) -> &str {
        &self.state.topic
    }
}

#[async_trait]
impl SchemaHistory for KafkaSchemaHistory {
    async fn recover(&self) -> connect_core::Result<Vec<HistoryRecord>> {
        self.state.ensure_exists().await?;
        let topic = self.state.topic.clone();
        let records = read_to_end(
            &self.state.config,
            &self.state.topic,
            Some(1),
            Vec::new(),
            move |records, message| {
                let corrupt = |detail: String| KafkaError::Corrupt {
                    what: "schema history record",
                    topic: topic.clone(),
                    partition: message.partition(),
                    offset: message.offset(),
                    detail,
                };
                let value = message
                    .payload()
                    .ok_or_else(|| corrupt("null value".to_owned()))?;
                records.push(serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?);
                Ok(())
            },
        )
        .await?;
        Ok(records)
    }

    async fn append(&self, record: HistoryRecord) -> connect_core::Result<()> {
        if let Some(lease) = &self.lease {
            lease.check()?;
        }
        self.state.ensure_exists().await?;
        let value = serde_json::to_vec(&record).expect("a history record serialises");
        self.state.send(
            FutureRecord::<str, [u8]>::to(&self.state.topic)
                .partition(0)
                .payload(&value[..]),
        )?;
        Ok(())
    }

    async fn flush(&self) -> connect_core::Result<()> {
        Ok(self.state.flush().await?)
    }
}
