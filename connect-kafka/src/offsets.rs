//! Offsets in a compacted Kafka topic, in Kafka Connect's format, with optional fencing
//! of stale writers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use connect_core::offsets::{connect_key, parse_connect_key};
use connect_core::{async_trait, Error, OffsetMap, OffsetStore, SourceOffset, SourcePartition};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders, ToBytes};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::{Map, Value as Json};
use tokio::sync::OnceCell;

use crate::config::{KafkaConfig, TopicCreation};
use crate::error::KafkaError;
use crate::lease::{KafkaLease, LeaseGuard};
use crate::reader::{read_to_end, PendingWrites};
use crate::topics::{admin_client, ensure_topic};

/// The header stamping an offset record with the epoch of the store that wrote it.
const EPOCH_HEADER: &str = "connect.writer.epoch";

/// Bound on the metadata request that counts the offsets topic's partitions.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// The source partition, in Kafka Connect's key, of the epoch markers (built once: every
/// message read while loading is compared with it).
fn epoch_marker() -> &'static SourcePartition {
    static MARKER: OnceLock<SourcePartition> = OnceLock::new();
    MARKER.get_or_init(|| {
        let mut map = Map::new();
        map.insert("connect.fencing".into(), Json::from("writer.epoch"));
        SourcePartition::from_map(&map)
    })
}

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
///
/// # Fencing stale writers
/// An instance that lost its [`KafkaLease`] while paused (a long stall, a suspended VM)
/// can write offsets once more before it notices. A store opened with
/// [`KafkaOffsetStore::fenced`] (or after [`KafkaOffsetStore::fence`]) claims a writer
/// epoch one above every epoch claimed before, by writing a marker (key
/// `["<pipeline>",{"connect.fencing":"writer.epoch"}]`, value `{"epoch":N}`) into every
/// partition of the topic, and stamps each offset it writes with header
/// `connect.writer.epoch`. `load` ignores a stamped offset that follows, in its
/// partition, a marker of a newer epoch: a stale writer's offsets never override the
/// newer writer's. Should compaction have left a key with fenced values only, the newest
/// of them is used (an offset is written only after its records were delivered, so it
/// loses nothing) and a warning names it. Unstamped offsets (Kafka Connect's, Debezium
/// Server's) are read as always. A fenced store guarded by a lease also refuses to write
/// once the lease is lost ([`KafkaError::LeaseLost`], fatal).
pub struct KafkaOffsetStore {
    state: StateTopic,
    /// The writer epoch claimed by [`KafkaOffsetStore::fence`]; 0 before.
    epoch: AtomicU64,
    lease: Option<LeaseGuard>,
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
            epoch: AtomicU64::new(0),
            lease: None,
        })
    }

    /// A store for the pipeline of `lease`, fenced: it claims the next writer epoch of
    /// the pipeline (see the type's docs) and refuses to write once `lease` is lost.
    /// Open it after [`KafkaLease::acquire`] returned.
    pub async fn fenced(config: KafkaConfig, lease: &KafkaLease) -> Result<Self, Error> {
        let mut store = KafkaOffsetStore::new(config)?;
        store.lease = Some(lease.guard());
        store.fence(lease.pipeline()).await?;
        Ok(store)
    }

    /// Claims the next writer epoch of pipeline `namespace` and returns it: from now on
    /// this store's offsets win over those of stores that claimed an older epoch, even
    /// when those are written later. [`KafkaOffsetStore::fenced`] calls it; call it
    /// directly only where something other than [`KafkaLease`] makes sure that one
    /// instance claims at a time.
    pub async fn fence(&self, namespace: &str) -> Result<u64, Error> {
        self.state.ensure_exists().await?;
        let replay = replay_offsets(&self.state.config, &self.state.topic, namespace).await?;
        let epoch = replay.claimed.values().max().map_or(1, |newest| newest + 1);
        let key = connect_key(namespace, epoch_marker());
        let value = serde_json::to_vec(&serde_json::json!({ "epoch": epoch }))
            .expect("a marker serialises");
        for partition in 0..self.partition_count().await? {
            self.state.send(
                FutureRecord::to(&self.state.topic)
                    .partition(partition)
                    .key(&key[..])
                    .payload(&value[..]),
            )?;
        }
        self.state.flush().await?;
        self.epoch.store(epoch, Ordering::Release);
        tracing::info!(pipeline = namespace, epoch, topic = %self.state.topic, "offsets writer epoch claimed");
        Ok(epoch)
    }

    async fn partition_count(&self) -> Result<i32, KafkaError> {
        let producer = self.state.producer.clone();
        let topic = self.state.topic.clone();
        tokio::task::spawn_blocking(move || {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
                .map_err(|source| KafkaError::Read {
                    topic: topic.clone(),
                    source,
                })?;
            Ok(metadata
                .topics()
                .iter()
                .map(|t| t.partitions().len() as i32)
                .sum())
        })
        .await
        .map_err(|e| KafkaError::Io(e.to_string()))?
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
        if let Some(lease) = &self.lease {
            lease.check()?;
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let epoch_text = epoch.to_string();
        for (partition, offset) in offsets {
            let key = connect_key(namespace, partition);
            let value = serde_json::to_vec(offset.map()).expect("an offset serialises");
            let mut record = FutureRecord::to(&self.state.topic)
                .key(&key[..])
                .payload(&value[..]);
            if epoch > 0 {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: EPOCH_HEADER,
                    value: Some(&epoch_text),
                }));
            }
            self.state.send(record)?;
        }
        Ok(())
    }

    async fn flush(&self) -> connect_core::Result<()> {
        Ok(self.state.flush().await?)
    }
}

/// The committed offsets of pipeline `namespace` in offsets topic `topic` (last value of
/// each key; a null value deletes; fenced writes ignored, see [`KafkaOffsetStore`]).
pub(crate) async fn load_offsets(
    config: &KafkaConfig,
    topic: &str,
    namespace: &str,
) -> Result<OffsetMap, KafkaError> {
    Ok(replay_offsets(config, topic, namespace)
        .await?
        .into_offsets())
}

/// What reading an offsets topic from its beginning found for one pipeline.
#[derive(Default)]
struct Replay {
    offsets: OffsetMap,
    /// Keys with a write that was not fenced (a value or a deletion).
    current: HashSet<SourcePartition>,
    /// The newest fenced value of each key (`None`: a deletion).
    fenced: HashMap<SourcePartition, Option<SourceOffset>>,
    /// The newest epoch claimed so far in each partition of the topic, as read.
    claimed: HashMap<i32, u64>,
}

impl Replay {
    fn visit(
        &mut self,
        topic: &str,
        namespace: &str,
        message: &BorrowedMessage<'_>,
    ) -> Result<(), KafkaError> {
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
        let corrupt = |detail: String| KafkaError::Corrupt {
            what: "offset",
            topic: topic.to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            detail,
        };
        let value = match message.payload() {
            None => None,
            Some(value) => Some(
                serde_json::from_slice::<Map<String, Json>>(value)
                    .map_err(|e| corrupt(e.to_string()))?,
            ),
        };
        if &partition == epoch_marker() {
            let epoch = value
                .as_ref()
                .and_then(|v| v.get("epoch")?.as_u64())
                .ok_or_else(|| corrupt("an epoch marker without an epoch".into()))?;
            let claimed = self.claimed.entry(message.partition()).or_default();
            *claimed = (*claimed).max(epoch);
            return Ok(());
        }
        let stamped = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == EPOCH_HEADER)
                .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse::<u64>().ok())
        });
        let value = value.map(SourceOffset::new);
        let claimed = self.claimed.get(&message.partition()).copied().unwrap_or(0);
        if stamped.is_some_and(|epoch| epoch < claimed) {
            tracing::debug!(
                topic,
                partition = message.partition(),
                offset = message.offset(),
                "a stale writer's offset is fenced"
            );
            self.fenced.insert(partition, value);
            return Ok(());
        }
        self.current.insert(partition.clone());
        match value {
            None => {
                self.offsets.remove(&partition);
            }
            Some(value) => {
                self.offsets.insert(partition, value);
            }
        }
        Ok(())
    }

    fn into_offsets(mut self) -> OffsetMap {
        for (partition, value) in self.fenced {
            if let (false, Some(value)) = (self.current.contains(&partition), value) {
                tracing::warn!(
                    partition = partition.as_json(),
                    "only a fenced (stale) writer's offset is left for this source partition (compacted away?): using it"
                );
                self.offsets.insert(partition, value);
            }
        }
        self.offsets
    }
}

async fn replay_offsets(
    config: &KafkaConfig,
    topic: &str,
    namespace: &str,
) -> Result<Replay, KafkaError> {
    let (owned_topic, namespace) = (topic.to_owned(), namespace.to_owned());
    read_to_end(
        config,
        topic,
        None,
        Replay::default(),
        move |replay, message| replay.visit(&owned_topic, &namespace, message),
    )
    .await
}
