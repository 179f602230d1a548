//! Errors of connect-kafka.

use rdkafka::error::{KafkaError as ClientError, RDKafkaErrorCode};

/// What can go wrong talking to Kafka.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// A producer, consumer or admin client could not be created (bad property value).
    #[error("cannot create the Kafka {client}: {source}")]
    Client {
        /// "producer", "consumer" or "admin client".
        client: &'static str,
        /// librdkafka's error.
        #[source]
        source: ClientError,
    },
    /// A topic could not be created.
    #[error("cannot create topic `{topic}`: {reason}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's or client's reason.
        reason: String,
    },
    /// A record's topic does not exist, and neither `topic.creation.enable` nor the
    /// broker created it.
    #[error("topic `{topic}` does not exist: create it, or set topic.creation.enable=true")]
    MissingTopic {
        /// The topic.
        topic: String,
    },
    /// A record was refused before it was queued (e.g. larger than `message.max.bytes`).
    #[error("cannot send a record to topic `{topic}`: {source}")]
    Send {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        #[source]
        source: ClientError,
    },
    /// The broker or librdkafka gave up on a queued record (a permanent or
    /// idempotence-fatal error; transient ones are retried without a deadline).
    #[error("delivery to topic `{topic}` partition {partition} failed: {source}")]
    Delivery {
        /// The topic.
        topic: String,
        /// The partition, -1 if none was assigned.
        partition: i32,
        /// librdkafka's error.
        #[source]
        source: ClientError,
    },
    /// A record's key, value or a header could not be converted to bytes (names the topic).
    #[error(transparent)]
    Convert(connect_core::Error),
    /// A transaction call failed (exactly-once delivery); what it left open is aborted
    /// by the next start's fencing.
    #[error("Kafka transaction {what} failed: {source}")]
    Transaction {
        /// "init", "begin", "commit" or "abort".
        what: &'static str,
        /// librdkafka's error.
        #[source]
        source: ClientError,
    },
    /// Reading a state topic (offsets, schema history) failed.
    #[error("cannot read topic `{topic}`: {source}")]
    Read {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        #[source]
        source: ClientError,
    },
    /// A state topic exists with a shape it must not have (e.g. a schema history topic
    /// with more than one partition).
    #[error("topic `{topic}` {detail}")]
    TopicShape {
        /// The topic.
        topic: String,
        /// What is wrong.
        detail: String,
    },
    /// A message read by the sink runner that the key or value converter cannot read.
    #[error("cannot convert the message at topic `{topic}` partition {partition} offset {offset} ({stage}): {reason}")]
    Unconvertible {
        /// The topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// The message's offset.
        offset: i64,
        /// `KEY_CONVERTER` or `VALUE_CONVERTER`.
        stage: &'static str,
        /// The converter's error.
        reason: String,
    },
    /// A blocking read could not run to its end.
    #[error("reading from Kafka stopped: {0}")]
    Io(String),
    /// A state topic holds a message of this pipeline that is not what it must be (an
    /// offset, a history record). Never answered by starting from scratch: the user
    /// decides.
    #[error(
        "corrupt {what} in topic `{topic}` partition {partition} at offset {offset}: {detail}"
    )]
    Corrupt {
        /// "offset" or "schema history record".
        what: &'static str,
        /// The topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// The message's offset.
        offset: i64,
        /// What is wrong.
        detail: String,
    },
    /// An offset store guarded by a lease was asked to write after the lease went to
    /// another instance: this instance must stop.
    #[error("lease `{lease}` is lost: another instance of the pipeline runs now, so this one may no longer write offsets")]
    LeaseLost {
        /// The lease topic.
        lease: String,
    },
}

impl KafkaError {
    /// Whether retrying can help: connection-level trouble, not a refused record.
    pub fn is_retryable(&self) -> bool {
        let source = match self {
            KafkaError::Read { source, .. } | KafkaError::Send { source, .. } => source,
            KafkaError::Convert(e) => return e.is_retryable(),
            KafkaError::CreateTopic { .. }
            | KafkaError::Client { .. }
            | KafkaError::Transaction { .. }
            | KafkaError::MissingTopic { .. }
            | KafkaError::Delivery { .. }
            | KafkaError::TopicShape { .. }
            | KafkaError::Io(_)
            | KafkaError::Unconvertible { .. }
            | KafkaError::Corrupt { .. }
            | KafkaError::LeaseLost { .. } => return false,
        };
        matches!(
            source.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::QueueFull
                    | RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::NetworkException
                    | RDKafkaErrorCode::LeaderNotAvailable
                    | RDKafkaErrorCode::NotLeaderForPartition
                    | RDKafkaErrorCode::UnknownTopicOrPartition
            )
        )
    }
}

impl From<KafkaError> for connect_core::Error {
    fn from(e: KafkaError) -> Self {
        if let KafkaError::Convert(e) = e {
            return e;
        }
        if e.is_retryable() {
            connect_core::Error::retryable("kafka", e)
        } else {
            connect_core::Error::fatal("kafka", e)
        }
    }
}
