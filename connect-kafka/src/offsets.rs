//! Offsets in a compacted Kafka topic, in Kafka Connect's format.

use connect_core::offsets::{connect_key, parse_connect_key};
use connect_core::{async_trait, Error, OffsetMap, OffsetStore, SourceOffset, SourcePartition};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Map, Value as Json};
use tokio::sync::OnceCell;

use crate::config::{KafkaConfig, TopicCreation};
use crate::error::KafkaError;
use crate::reader::{read_to_end, PendingWrites};
use crate::topics::{admin_client, ensure_topic};

/// A producer, an admin client and the acknowledgements still awaited for one state
/// topic, created on first use with its shape.
pub(crate) struct StateTopic {
    pub(crate) config: KafkaConfig,
    pub(crate) topic: String,
    shape: TopicCreation,
    pub(crate) producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    ready: OnceCell<()>,
    pub(crate) pending: PendingWrites,
}

impl StateTopic {
    pub(crate) fn new(
        config: KafkaConfig,
        topic: String,
        shape: TopicCreation,
    ) -> Result<Self, Error> {
        config.validate()?;
        let client = |client| move |source| KafkaError::Client { client, source };
        let producer = config
            .producer_config()
            .create()
            .map_err(client("producer"))?;
        let admin = admin_client(&config)?;
        Ok(StateTopic {
            config,
            topic,
            shape,
            producer,
            admin,
            ready: OnceCell::new(),
            pending: PendingWrites::default(),
        })
    }

    pub(crate) async fn ensure_exists(&self) -> Result<(), KafkaError> {
        self.ready
            .get_or_try_init(|| ensure_topic(&self.config, &self.admin, &self.topic, &self.shape))
            .await
            .map(|_| ())
    }

    /// Queues a write; durable once [`StateTopic::flush`] returned.
    pub(crate) fn send<K: ToBytes + ?Sized>(
        &self,
        record: FutureRecord<'_, K, [u8]>,
    ) -> Result<(), KafkaError> {
        let delivery =
            self.producer
                .send_result(record)
                .map_err(|(source, _)| KafkaError::Send {
                    topic: self.topic.clone(),
                    source,
                })?;
        self.pending.push(delivery);
        Ok(())
    }

    pub(crate) async fn flush(&self) -> Result<(), KafkaError> {
        self.pending.flush(&self.topic).await
    }
}

/// Committed offsets in a compacted topic (`offset.storage.topic`), as Kafka Connect keeps
/// them: key `["<pipeline name>",{"server":"<topic.prefix>"}]`, value the connector's
/// offset JSON, a null value deleting the entry. Offsets written by Kafka Connect or
/// Debezium Server are read as ours, and ours by them.
///
/// The topic is created (compacted, `offset.storage.partitions`,
/// `offset.storage.replication.factor`) on the first `load` if missing. `load` reads it
/// from the beginning to the end (committed data only); `flush` returns once the broker
/// acknowledged every write (`acks=all`).
pub struct KafkaOffsetStore {
    state: StateTopic,
}

impl std::fmt::Debug for KafkaOffsetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaOffsetStore")
            .field("topic", &self.state.topic)
            .finish()
    }
}

impl KafkaOffsetStore {
    /// A store on `config`'s brokers and offsets topic.
    pub fn new(config: KafkaConfig) -> Result<Self, Error> {
        let topic = config.offset_topic().to_owned();
        let shape = config.offset_topic_creation();
        Ok(KafkaOffsetStore {
            state: StateTopic::new(config, topic, shape)?,
        })
    }

    /// The offsets topic.
    pub fn topic(&self) -> &str {
        &self.state.topic
    }
}

#[async_trait]
impl OffsetStore for KafkaOffsetStore {
    async fn load(&self, namespace: &str) -> connect_core::Result<OffsetMap> {
        self.state.ensure_exists().await?;
        Ok(load_offsets(&self.state.config, &self.state.topic, namespace).await?)
    }

    async fn write(
        &self,
        namespace: &str,
        offsets: &[(SourcePartition, SourceOffset)],
    ) -> connect_core::Result<()> {
        for (partition, offset) in offsets {
            let key = connect_key(namespace, partition);
            let value = serde_json::to_vec(offset.map()).expect("an offset serialises");
            self.state.send(
                FutureRecord::to(&self.state.topic)
                    .key(&key[..])
                    .payload(&value[..]),
            )?;
        }
        Ok(())
    }

    async fn flush(&self) -> connect_core::Result<()> {
        Ok(self.state.flush().await?)
    }
}

/// The committed offsets of pipeline `namespace` in offsets topic `topic` (last value of
/// each key; a null value deletes).
pub(crate) async fn load_offsets(
    config: &KafkaConfig,
    topic: &str,
    namespace: &str,
) -> Result<OffsetMap, KafkaError> {
    let (owned_topic, namespace) = (topic.to_owned(), namespace.to_owned());
    read_to_end(
        config,
        topic,
        None,
        OffsetMap::new(),
        move |offsets, message| {
            let Some((owner, partition)) = message
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(parse_connect_key)
            else {
                return Ok(());
            };
            if owner != namespace {
                return Ok(());
            }
            match message.payload() {
                None => {
                    offsets.remove(&partition);
                }
                Some(value) => {
                    let map: Map<String, Json> =
                        serde_json::from_slice(value).map_err(|e| KafkaError::Corrupt {
                            what: "offset",
                            topic: owned_topic.clone(),
                            partition: message.partition(),
                            offset: message.offset(),
                            detail: e.to_string(),
                        })?;
                    offsets.insert(partition, SourceOffset::new(map));
                }
            }
            Ok(())
        },
    )
    .await
}
