//! The typed configuration: Kafka Connect worker keys (`bootstrap.servers`, `producer.*`,
//! `topic.creation.*`, `offset.storage.*`).

use std::collections::BTreeMap;
use std::sync::Arc;

use connect_core::properties::Scope;
use connect_core::{Converter, Error, JsonConverter};
use rdkafka::ClientConfig;

/// Default `offset.storage.topic` (Kafka Connect's distributed-mode default).
pub const DEFAULT_OFFSET_TOPIC: &str = "connect-offsets";
/// Default `offset.storage.partitions` (Kafka Connect's default).
pub const DEFAULT_OFFSET_PARTITIONS: i32 = 25;
/// Replication factor meaning "the broker's `default.replication.factor`" (KIP-464).
pub const BROKER_DEFAULT_REPLICATION: i32 = -1;

/// Producer settings the delivery guarantee rests on; `producer.*` may not weaken them.
const GUARANTEED: &[(&str, &str)] = &[("acks", "all"), ("enable.idempotence", "true")];

/// Defaults for every producer: Java-compatible partitioning for the same key bytes, and
/// retries without a deadline (the engine's back-pressure holds the source meanwhile).
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("partitioner", "murmur2_random"),
    ("message.timeout.ms", "0"),
    ("compression.type", "lz4"),
    ("linger.ms", "5"),
];

/// How topics that do not exist yet are created (`topic.creation.default.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicCreation {
    /// `topic.creation.default.partitions` (-1: the broker's default).
    pub partitions: i32,
    /// `topic.creation.default.replication.factor` (-1: the broker's default).
    pub replication_factor: i32,
    /// Any other `topic.creation.default.<topic config>`, e.g. `cleanup.policy`.
    pub configs: BTreeMap<String, String>,
}

impl Default for TopicCreation {
    fn default() -> Self {
        TopicCreation {
            partitions: -1,
            replication_factor: BROKER_DEFAULT_REPLICATION,
            configs: BTreeMap::new(),
        }
    }
}

/// Where and how records and offsets go to Kafka.
#[derive(Clone)]
pub struct KafkaConfig {
    bootstrap_servers: String,
    producer: BTreeMap<String, String>,
    consumer: BTreeMap<String, String>,
    topic_creation: Option<TopicCreation>,
    key_converter: Arc<dyn Converter>,
    value_converter: Arc<dyn Converter>,
    offset_topic: String,
    offset_partitions: i32,
    offset_replication_factor: i32,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("producer", &self.producer)
            .field("consumer", &self.consumer)
            .field("topic_creation", &self.topic_creation)
            .field("offset_topic", &self.offset_topic)
            .finish()
    }
}

impl KafkaConfig {
    /// Brokers to bootstrap from (`bootstrap.servers`, e.g. `127.0.0.1:9092`); keys and
    /// values as Debezium's JSON with schemas; topics are not created.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap_servers: bootstrap_servers.into(),
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
            topic_creation: None,
            key_converter: Arc::new(JsonConverter::default()),
            value_converter: Arc::new(JsonConverter::default()),
            offset_topic: DEFAULT_OFFSET_TOPIC.to_owned(),
            offset_partitions: DEFAULT_OFFSET_PARTITIONS,
            offset_replication_factor: BROKER_DEFAULT_REPLICATION,
        }
    }

    /// A librdkafka producer property (`producer.<name>`), e.g. `("linger.ms", "20")`.
    pub fn with_producer(mut self, name: &str, value: &str) -> Self {
        self.producer.insert(name.to_owned(), value.to_owned());
        self
    }

    /// A librdkafka consumer property (`consumer.<name>`), used when reading offsets.
    pub fn with_consumer(mut self, name: &str, value: &str) -> Self {
        self.consumer.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Creates missing topics before the first record is sent to them.
    pub fn with_topic_creation(mut self, creation: TopicCreation) -> Self {
        self.topic_creation = Some(creation);
        self
    }

    /// The converters of record keys and values (`key.converter`, `value.converter`).
    pub fn with_converters(
        mut self,
        key_converter: Arc<dyn Converter>,
        value_converter: Arc<dyn Converter>,
    ) -> Self {
        self.key_converter = key_converter;
        self.value_converter = value_converter;
        self
    }

    /// The compacted offsets topic (`offset.storage.topic`), its partitions and replication
    /// factor, used by [`crate::KafkaOffsetStore`] when it creates the topic.
    pub fn with_offset_topic(mut self, topic: &str, partitions: i32, replication: i32) -> Self {
        self.offset_topic = topic.to_owned();
        self.offset_partitions = partitions;
        self.offset_replication_factor = replication;
        self
    }

    /// Reads Kafka Connect's worker keys: `bootstrap.servers` (required), `producer.*`,
    /// `consumer.*`, `topic.creation.enable`, `topic.creation.default.*`,
    /// `offset.storage.topic`, `offset.storage.partitions`,
    /// `offset.storage.replication.factor`. Converters are set with
    /// [`KafkaConfig::with_converters`] (the registry builds them from the connector's
    /// `key.converter`/`value.converter`).
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        let mut c = Self::new(scope.require("bootstrap.servers")?);
        let props = scope.properties();
        c.producer = props.take_prefixed(&scope.key("producer."));
        c.consumer = props.take_prefixed(&scope.key("consumer."));
        if scope.bool_or("topic.creation.enable", false)? {
            let default = scope.scope("topic.creation.default.");
            let mut creation = TopicCreation {
                partitions: default.parse_or("partitions", -1)?,
                replication_factor: default
                    .parse_or("replication.factor", BROKER_DEFAULT_REPLICATION)?,
                configs: props.take_prefixed(&default.key("")),
            };
            creation.configs.remove("partitions");
            creation.configs.remove("replication.factor");
            c.topic_creation = Some(creation);
        }
        let offsets = scope.scope("offset.storage.");
        c.offset_topic = offsets
            .get("topic")
            .unwrap_or(DEFAULT_OFFSET_TOPIC)
            .to_owned();
        c.offset_partitions = offsets.parse_or("partitions", DEFAULT_OFFSET_PARTITIONS)?;
        c.offset_replication_factor =
            offsets.parse_or("replication.factor", BROKER_DEFAULT_REPLICATION)?;
        c.validate()?;
        Ok(c)
    }

    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(Error::config("bootstrap.servers", "must not be empty"));
        }
        for (name, required) in GUARANTEED {
            if let Some(v) = self.producer.get(*name) {
                let weaker = match *name {
                    "acks" => !matches!(v.as_str(), "all" | "-1"),
                    _ => v != required,
                };
                if weaker {
                    return Err(Error::config(
                        format!("producer.{name}"),
                        format!(
                            "`{v}` would let records be lost or reordered; it must be `{required}`"
                        ),
                    ));
                }
            }
        }
        for name in ["enable.auto.commit", "enable.auto.offset.store"] {
            if self.consumer.get(name).is_some_and(|v| v != "false") {
                return Err(Error::config(
                    format!("consumer.{name}"),
                    "must be false: consumer offsets are committed only after the sink flushed",
                ));
            }
        }
        if let Some(t) = &self.topic_creation {
            check_topic_shape("topic.creation.default", t.partitions, t.replication_factor)?;
        }
        if self.offset_topic.is_empty() {
            return Err(Error::config("offset.storage.topic", "must not be empty"));
        }
        check_topic_shape(
            "offset.storage",
            self.offset_partitions,
            self.offset_replication_factor,
        )
    }

    pub(crate) fn key_converter(&self) -> &Arc<dyn Converter> {
        &self.key_converter
    }

    pub(crate) fn value_converter(&self) -> &Arc<dyn Converter> {
        &self.value_converter
    }

    pub(crate) fn topic_creation(&self) -> Option<&TopicCreation> {
        self.topic_creation.as_ref()
    }

    pub(crate) fn offset_topic(&self) -> &str {
        &self.offset_topic
    }

    pub(crate) fn offset_topic_creation(&self) -> TopicCreation {
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_owned(), "compact".to_owned());
        TopicCreation {
            partitions: self.offset_partitions,
            replication_factor: self.offset_replication_factor,
            configs,
        }
    }

    /// The producer's librdkafka configuration: defaults, then `producer.*`, then the
    /// guarantees.
    pub(crate) fn producer_config(&self) -> ClientConfig {
        let mut c = self.client_config();
        for (k, v) in PRODUCER_DEFAULTS {
            c.set(*k, *v);
        }
        for (k, v) in &self.producer {
            c.set(k, v);
        }
        for (k, v) in GUARANTEED {
            c.set(*k, *v);
        }
        c
    }

    /// A consumer's librdkafka configuration: only committed transactions, no group
    /// commits (the caller assigns partitions itself; the group id is only needed for
    /// librdkafka to answer position queries).
    pub(crate) fn consumer_config(&self) -> ClientConfig {
        let mut c = self.client_config();
        c.set("group.id", "connect-state-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // An empty fetch at the end must come back at once: a partition written more
            // often than the fetch wait would otherwise never report its end.
            .set("fetch.wait.max.ms", "0")
            .set("isolation.level", "read_committed");
        for (k, v) in &self.consumer {
            c.set(k, v);
        }
        c
    }

    /// The sink runner's group consumer: Kafka Connect's sink defaults, then `consumer.*`,
    /// then what the runner's guarantees rest on (offsets are committed by the runner,
    /// after the sink flushed, never by librdkafka on its own).
    pub(crate) fn group_consumer_config(&self, group_id: &str) -> ClientConfig {
        let mut c = self.client_config();
        c.set("group.id", group_id)
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false");
        for (k, v) in &self.consumer {
            c.set(k, v);
        }
        c.set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        c
    }

    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        c
    }
}

fn check_topic_shape(prefix: &str, partitions: i32, replication: i32) -> Result<(), Error> {
    if partitions == 0 || partitions < -1 {
        return Err(Error::config(
            format!("{prefix}.partitions"),
            format!("{partitions}: must be positive, or -1 for the broker's default"),
        ));
    }
    if replication == 0 || replication < -1 {
        return Err(Error::config(
            format!("{prefix}.replication.factor"),
            format!("{replication}: must be positive, or -1 for the broker's default"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use connect_core::Properties;

    fn props(pairs: &[(&str, &str)]) -> Properties {
        Properties::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn reads_worker_keys() {
        let p = props(&[
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("producer.linger.ms", "20"),
            ("topic.creation.enable", "true"),
            ("topic.creation.default.partitions", "3"),
            ("topic.creation.default.replication.factor", "1"),
            ("topic.creation.default.cleanup.policy", "compact"),
            ("offset.storage.topic", "my-offsets"),
            ("offset.storage.partitions", "1"),
        ]);
        let c = KafkaConfig::from_props(&p.root()).unwrap();
        p.reject_unused().unwrap();
        assert_eq!(c.producer.get("linger.ms").map(String::as_str), Some("20"));
        let t = c.topic_creation.unwrap();
        assert_eq!((t.partitions, t.replication_factor), (3, 1));
        assert_eq!(
            t.configs.into_iter().collect::<Vec<_>>(),
            [("cleanup.policy".to_owned(), "compact".to_owned())]
        );
        assert_eq!(
            (c.offset_topic.as_str(), c.offset_partitions),
            ("my-offsets", 1)
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "bootstrap.servers"),
            (
                &[("bootstrap.servers", "x:1"), ("producer.acks", "1")],
                "producer.acks",
            ),
            (
                &[
                    ("bootstrap.servers", "x:1"),
                    ("producer.enable.idempotence", "false"),
                ],
                "producer.enable.idempotence",
            ),
            (
                &[
                    ("bootstrap.servers", "x:1"),
                    ("topic.creation.enable", "true"),
                    ("topic.creation.default.partitions", "0"),
                ],
                "topic.creation.default.partitions",
            ),
            (
                &[
                    ("bootstrap.servers", "x:1"),
                    ("offset.storage.replication.factor", "-3"),
                ],
                "offset.storage.replication.factor",
            ),
        ];
        for (pairs, key) in cases {
            let err = KafkaConfig::from_props(&props(pairs).root()).unwrap_err();
            assert!(
                matches!(&err, Error::Config { key: k, .. } if k == key),
                "{pairs:?}: {err}"
            );
        }
    }

    #[test]
    fn guarantees_override_producer_properties() {
        let c = KafkaConfig::new("x:1").with_producer("acks", "-1");
        c.validate().unwrap();
        let rd = c.producer_config();
        assert_eq!(rd.get("acks"), Some("all"));
        assert_eq!(rd.get("enable.idempotence"), Some("true"));
        assert_eq!(rd.get("partitioner"), Some("murmur2_random"));
    }
}
