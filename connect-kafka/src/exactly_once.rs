//! Exactly-once delivery into Kafka (Kafka Connect's KIP-618 for source connectors): a
//! transactional producer writes each commit's records and their source offsets (to the
//! offsets topic, in Kafka Connect's format) in one transaction.

use std::sync::Arc;
use std::time::Duration;

use connect_core::offsets::connect_key;
use connect_core::{
    async_trait, Error, OffsetMap, Record, SinkConnector, SinkTask, Task, TaskConfig, TaskContext,
};
use rdkafka::error::KafkaError as ClientError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::destination::{RecordEncoder, QUEUE_FULL_BACKOFF};
use crate::error::KafkaError;
use crate::offsets::load_offsets;
use crate::topics::{admin_client, ensure_topic};

/// Bound on the transaction calls that talk to the coordinator (init, commit, abort).
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

type TxProducer = ThreadedProducer<DefaultProducerContext>;

/// Exactly-once delivery into Kafka, attached with
/// [`PipelineBuilder::into_connector`](connect_core::PipelineBuilder::into_connector).
///
/// Between two offset commits of the engine, every record goes into one Kafka transaction;
/// the commit writes the source offsets to the offsets topic (Kafka Connect's format,
/// as [`crate::KafkaOffsetStore`]) inside the same transaction and commits it. A consumer
/// with `isolation.level=read_committed` therefore sees each change exactly once across
/// crashes: a transaction cut short by a crash is aborted, and the restart resumes from
/// the offsets committed with the last transaction (the engine prefers them over its
/// offset store). The producer's `transactional.id` (default: the pipeline name) fences a
/// previous instance still running with the same id: its next commit fails.
///
/// Needs a broker with transactions (Apache Kafka, Redpanda, librdkafka's mock cluster;
/// tansu 0.6 has none).
#[derive(Debug, Clone)]
pub struct KafkaExactlyOnce {
    config: Arc<KafkaConfig>,
    transactional_id: Option<String>,
}

impl KafkaExactlyOnce {
    /// Exactly-once delivery with `config`'s brokers, converters and offsets topic.
    pub fn new(config: KafkaConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(KafkaExactlyOnce {
            config: Arc::new(config),
            transactional_id: None,
        })
    }

    /// The producer's `transactional.id` (default: the pipeline name). Two instances of
    /// a pipeline must share it, so that the newer fences the older.
    pub fn with_transactional_id(mut self, id: &str) -> Self {
        self.transactional_id = Some(id.to_owned());
        self
    }
}

impl SinkConnector for KafkaExactlyOnce {
    fn name(&self) -> &str {
        "kafka-exactly-once"
    }

    fn validate(&self) -> Result<(), Error> {
        self.config.validate()
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>, Error> {
        Ok(vec![TaskConfig::new()])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(ExactlyOnceTask {
            config: self.config.clone(),
            transactional_id: self.transactional_id.clone(),
            pipeline: String::new(),
            producer: None,
            encoder: RecordEncoder::new(&self.config),
            in_transaction: false,
        })
    }
}

struct ExactlyOnceTask {
    config: Arc<KafkaConfig>,
    transactional_id: Option<String>,
    pipeline: String,
    producer: Option<Arc<TxProducer>>,
    encoder: RecordEncoder,
    in_transaction: bool,
}

impl ExactlyOnceTask {
    fn producer(&self) -> Result<&Arc<TxProducer>, KafkaError> {
        self.producer.as_ref().ok_or(KafkaError::Io(
            "the exactly-once task was used before it started".to_owned(),
        ))
    }

    /// Runs a blocking transaction call off the runtime.
    async fn blocking<F>(&self, what: &'static str, call: F) -> Result<(), KafkaError>
    where
        F: FnOnce(&TxProducer) -> Result<(), ClientError> + Send + 'static,
    {
        let producer = self.producer()?.clone();
        tokio::task::spawn_blocking(move || call(&producer))
            .await
            .map_err(|e| KafkaError::Io(e.to_string()))?
            .map_err(|source| KafkaError::Transaction { what, source })
    }

    /// Opens the transaction the next records go into.
    fn begin(&mut self) -> Result<(), KafkaError> {
        self.producer()?
            .begin_transaction()
            .map_err(|source| KafkaError::Transaction {
                what: "begin",
                source,
            })?;
        self.in_transaction = true;
        Ok(())
    }

    async fn send(&self, record: BaseRecord<'_, [u8], [u8]>) -> Result<(), KafkaError> {
        let producer = self.producer()?;
        let mut record = record;
        loop {
            match producer.send(record) {
                Ok(()) => return Ok(()),
                Err((ClientError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    // Delivery reports free the queue; the polling thread serves them.
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((source, back)) => {
                    return Err(KafkaError::Send {
                        topic: back.topic.to_owned(),
                        source,
                    })
                }
            }
        }
    }
}

#[async_trait]
impl Task for ExactlyOnceTask {
    async fn start(&mut self, ctx: TaskContext) -> connect_core::Result<()> {
        self.pipeline = ctx.pipeline.to_string();
        let id = self
            .transactional_id
            .clone()
            .unwrap_or_else(|| self.pipeline.clone());
        let mut producer_config = self.config.producer_config();
        producer_config.set("transactional.id", &id);
        let producer: TxProducer =
            producer_config
                .create()
                .map_err(|source| KafkaError::Client {
                    client: "transactional producer",
                    source,
                })?;
        self.producer = Some(Arc::new(producer));
        let admin = admin_client(&self.config)?;
        ensure_topic(
            &self.config,
            &admin,
            self.config.offset_topic(),
            &self.config.offset_topic_creation(),
        )
        .await?;
        // Fences an older producer with this id and aborts what it left open.
        self.blocking("init", |p| p.init_transactions(TRANSACTION_TIMEOUT))
            .await?;
        Ok(())
    }

    async fn stop(&mut self) -> connect_core::Result<()> {
        if std::mem::take(&mut self.in_transaction) {
            self.blocking("abort", |p| p.abort_transaction(TRANSACTION_TIMEOUT))
                .await?;
        }
        Ok(())
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
}

#[async_trait]
impl SinkTask for ExactlyOnceTask {
    async fn put(&mut self, records: &[Record]) -> connect_core::Result<()> {
        if !self.in_transaction {
            self.begin()?;
        }
        let mut encoded = self.encoder.buffers();
        for r in records {
            let record = self.encoder.encode(r, &mut encoded, ())?;
            self.send(record).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, offsets: &OffsetMap) -> connect_core::Result<()> {
        if !self.in_transaction {
            if offsets.is_empty() {
                return Ok(());
            }
            self.begin()?;
        }
        let topic = self.config.offset_topic().to_owned();
        for (partition, offset) in offsets {
            let key = connect_key(&self.pipeline, partition);
            let value = serde_json::to_vec(offset.map()).expect("an offset serialises");
            self.send(
                BaseRecord::to(&topic)
                    .key(key.as_bytes())
                    .payload(&value[..]),
            )
            .await?;
        }
        self.in_transaction = false;
        self.blocking("commit", |p| p.commit_transaction(TRANSACTION_TIMEOUT))
            .await?;
        Ok(())
    }

    async fn committed_offsets(&mut self) -> connect_core::Result<Option<OffsetMap>> {
        Ok(Some(
            load_offsets(&self.config, self.config.offset_topic(), &self.pipeline).await?,
        ))
    }
}
