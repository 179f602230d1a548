//! connect-kafka against a real Kafka-protocol broker: tansu on 127.0.0.1:9092
//! (`CONNECT_KAFKA_BOOTSTRAP` to use another), started by `scripts/services.sh`. The
//! outage test runs its own tansu so that stopping it disturbs no other test.

use std::collections::{BTreeMap, HashMap};
use std::process::Child;
use std::time::{Duration, Instant};

use connect_core::testing::SyntheticSource;
use connect_core::{Engine, Error, MemoryOffsetStore, OffsetStore, SourceOffset, SourcePartition};
use connect_kafka::{
    IntoKafka, KafkaConfig, KafkaDeadLetterQueue, KafkaDestination, KafkaOffsetStore, TopicCreation,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::Value as Json;

mod common;

use common::{bootstrap, create_topic, unique, PrivateBroker, DEADLINE};

/// A message read back: partition, offset, key and value as text.
#[derive(Debug, Clone)]
struct Read {
    partition: i32,
    key: Option<String>,
    value: Option<String>,
}

/// Reads `topic` from the beginning to its end (every partition's EOF), once at least
/// `count` messages arrived; panics at the deadline.
fn read_topic(bootstrap: &str, topic: &str, count: usize) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        assignment
            .add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let partitions = assignment.count();
    let mut at_eof = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(count);
    let deadline = Instant::now() + DEADLINE;
    while out.len() < count || at_eof.len() < partitions {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} messages arrived in {topic}",
            out.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_eof.insert(p);
            }
            Some(Err(e)) => panic!("consume {topic}: {e}"),
            Some(Ok(m)) => {
                at_eof.remove(&m.partition());
                out.push(Read {
                    partition: m.partition(),
                    key: m.key().map(|k| String::from_utf8(k.to_vec()).unwrap()),
                    value: m.payload().map(|v| String::from_utf8(v.to_vec()).unwrap()),
                });
            }
        }
    }
    out
}

fn id_of(json: &str) -> i64 {
    let v: Json = serde_json::from_str(json).unwrap();
    v["payload"]["after"]["id"]
        .as_i64()
        .or_else(|| v["payload"]["id"].as_i64())
        .or_else(|| v["id"].as_i64())
        .unwrap_or_else(|| panic!("no id in {json}"))
}

/// Asserts that ids 1..=total each arrived exactly once, increasing within each partition.
fn assert_every_id_once_in_order(reads: &[Read], total: i64) {
    let mut last: HashMap<i32, i64> = HashMap::new();
    let mut seen = vec![false; total as usize + 1];
    for r in reads {
        let id = id_of(r.value.as_deref().expect("a value"));
        assert_eq!(
            id_of(r.key.as_deref().expect("a key")),
            id,
            "key and value disagree"
        );
        let prev = last.insert(r.partition, id).unwrap_or(0);
        assert!(
            id > prev,
            "partition {}: id {id} after {prev} (out of order or repeated)",
            r.partition
        );
        assert!(
            (1..=total).contains(&id),
            "unexpected id {id} (total {total})"
        );
        assert!(!seen[id as usize], "id {id} delivered twice");
        seen[id as usize] = true;
    }
    let missing: Vec<i64> = (1..=total)
        .filter(|&i| !seen[i as usize])
        .take(10)
        .collect();
    assert!(missing.is_empty(), "missing ids, first: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_every_event_with_debezium_json_in_partition_order() {
    let bootstrap = bootstrap();
    let name = unique("deliver");
    let topic = format!("{name}.inventory.orders");
    create_topic(&bootstrap, &topic, 4).await;
    let total = 100_000;
    let source = SyntheticSource::new(&name, Some(total));
    let expected_first = {
        // The same record through the same converter: what the topic must hold.
        let schemas = connect_core::testing::OrdersSchemas::default();
        let partition = source.partition(0);
        let record = schemas.event(&topic.as_str().into(), &partition, 1, 10);
        let mut buf = Vec::new();
        connect_core::Converter::serialize(
            &connect_core::JsonConverter::default(),
            &topic,
            record.value_schema.as_ref(),
            &record.value,
            &mut buf,
        )
        .unwrap();
        String::from_utf8(buf).unwrap()
    };
    let offsets = MemoryOffsetStore::new();
    let engine = Engine::builder()
        .name(&name)
        .source(source.clone().name_len(10, 10))
        .offsets(offsets.clone())
        .into_kafka(KafkaDestination::new(KafkaConfig::new(&bootstrap)).unwrap())
        .start()
        .await
        .unwrap();
    let report = engine.wait().await.expect("the pipeline ends cleanly");
    assert!(report.drained() && report.committed(), "{report:?}");
    let committed = offsets.snapshot(&name);
    assert_eq!(
        committed
            .get(&source.partition(0))
            .and_then(|o| o.get("seq")?.as_u64()),
        Some(total),
        "offsets committed to the end only after delivery"
    );

    let reads = tokio::task::spawn_blocking({
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        move || read_topic(&bootstrap, &topic, total as usize)
    })
    .await
    .unwrap();
    assert_eq!(reads.len(), total as usize, "exactly one message per event");
    assert_every_id_once_in_order(&reads, total as i64);
    let first = reads
        .iter()
        .find(|r| id_of(r.value.as_deref().unwrap()) == 1)
        .unwrap();
    connect_core::testing::assert_same_json(
        first.value.as_deref().unwrap(),
        &expected_first,
        "value of id 1",
    );
    assert_eq!(
        first.key.as_deref(),
        Some(
            r#"{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false,"name":"bench.inventory.orders.Key"},"payload":{"id":1}}"#
        )
    );
    let partitions: std::collections::BTreeSet<i32> = reads.iter().map(|r| r.partition).collect();
    assert_eq!(partitions.len(), 4, "keys spread over every partition");
}

/// Kafka's own test vectors for `Utils.murmur2` (UtilsTest.testMurmur2): the Java
/// client's partition of a key is `(murmur2(key) & 0x7fffffff) % partitions`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_keys_as_the_java_client_does() {
    const VECTORS: &[(&str, i32)] = &[
        ("21", -973_932_308),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        (
            "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        ("abc", 479_470_107),
    ];
    let bootstrap = bootstrap();
    let topic = unique("murmur2");
    let partitions = 7;
    create_topic(&bootstrap, &topic, partitions).await;
    let name = unique("murmur2-pipeline");
    // Each key as a plain string through the string converter.
    let records: Vec<connect_core::Record> = VECTORS
        .iter()
        .map(|(key, _)| {
            connect_core::Record::new(
                topic.as_str().into(),
                None,
                connect_core::Value::string(key),
            )
            .with_key(None, connect_core::Value::string(key))
        })
        .collect();
    let source = connect_core::testing::FixedSource::new(records);
    let config = KafkaConfig::new(&bootstrap).with_converters(
        std::sync::Arc::new(connect_core::StringConverter),
        std::sync::Arc::new(connect_core::StringConverter),
    );
    let engine = Engine::builder()
        .name(&name)
        .source(source)
        .into_kafka(KafkaDestination::new(config).unwrap())
        .start()
        .await
        .unwrap();
    engine.wait().await.unwrap();
    let reads = tokio::task::spawn_blocking({
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        move || read_topic(&bootstrap, &topic, VECTORS.len())
    })
    .await
    .unwrap();
    assert_eq!(reads.len(), VECTORS.len());
    for (key, hash) in VECTORS {
        let read = reads
            .iter()
            .find(|r| r.key.as_deref() == Some(*key))
            .unwrap();
        assert_eq!(
            read.partition,
            (hash & 0x7fff_ffff) % partitions,
            "partition of key {key}"
        );
    }
}

fn committed_seq_in(offsets: &MemoryOffsetStore, name: &str, source: &SyntheticSource) -> u64 {
    offsets
        .snapshot(name)
        .get(&source.partition(0))
        .and_then(|o| o.get("seq")?.as_u64())
        .unwrap_or(0)
}

/// Polls `committed` until it reaches `at_least` (panics at the deadline).
async fn wait_until_committed(mut committed: impl FnMut() -> u64, at_least: u64, what: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = committed();
        if now >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: committed {now}, waited for {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The broker is stopped (SIGSTOP) for longer than the producer's request timeout while
/// events stream, then resumed: every event arrives once, in order within each partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_order_and_loses_nothing_through_a_broker_outage() {
    let broker = PrivateBroker::start();
    let name = unique("outage");
    let topic = format!("{name}.inventory.orders");
    create_topic(&broker.bootstrap, &topic, 3).await;
    let source = SyntheticSource::new(&name, None)
        .batch(100)
        .pace(Duration::from_millis(5));
    let config = KafkaConfig::new(&broker.bootstrap)
        .with_producer("request.timeout.ms", "1000")
        .with_producer("socket.timeout.ms", "1000")
        .with_producer("linger.ms", "1");
    let offsets = MemoryOffsetStore::new();
    let engine = Engine::builder()
        .name(&name)
        .source(source.clone())
        .offsets(offsets.clone())
        .commit_policy(connect_core::CommitPolicy::every_records(1_000))
        .into_kafka(KafkaDestination::new(config).unwrap())
        .start()
        .await
        .unwrap();
    let committed = || committed_seq_in(&offsets, &name, &source);
    wait_until_committed(committed, 3_000, "before the outage").await;
    broker.signal("-STOP");
    let at_stop = committed();
    // The outage itself: several request timeouts long, so requests time out and are
    // retried; the source keeps producing until the engine's queue holds it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = committed();
    broker.signal("-CONT");
    wait_until_committed(committed, during + 5_000, "after the outage").await;
    let report = engine
        .shutdown()
        .await
        .expect("the pipeline survives the outage");
    assert!(report.drained() && report.committed(), "{report:?}");
    let total = committed();
    eprintln!("committed {at_stop} at the stop, {during} after 4 s of outage, {total} at the end");
    assert!(
        during < at_stop + 2_000,
        "deliveries went on while the broker was stopped ({at_stop} -> {during})"
    );
    let reads = tokio::task::spawn_blocking({
        let (bootstrap, topic) = (broker.bootstrap.clone(), topic.clone());
        move || read_topic(&bootstrap, &topic, total as usize)
    })
    .await
    .unwrap();
    assert_eq!(reads.len(), total as usize, "no event lost or repeated");
    assert_every_id_once_in_order(&reads, total as i64);
}

/// Runs `source` into Kafka until the pipeline fails; its error and offsets.
async fn failure_into_kafka(
    name: &str,
    source: impl connect_core::SourceConnector + 'static,
    config: KafkaConfig,
) -> (Error, MemoryOffsetStore) {
    let offsets = MemoryOffsetStore::new();
    let engine = Engine::builder()
        .name(name)
        .source(source)
        .offsets(offsets.clone())
        .into_kafka(KafkaDestination::new(config).unwrap())
        .start()
        .await
        .unwrap();
    let error = engine.wait().await.expect_err("the pipeline fails");
    (error, offsets)
}

/// A record larger than `message.max.bytes` fails the pipeline with an error naming the
/// topic, and the offsets stay before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_fails_the_pipeline_naming_the_topic() {
    let bootstrap = bootstrap();
    let name = unique("refused");
    let topic = format!("{name}.inventory.orders");
    create_topic(&bootstrap, &topic, 1).await;
    let source = SyntheticSource::new(&name, Some(10)).name_len(5_000, 5_000);
    let config = KafkaConfig::new(&bootstrap).with_producer("message.max.bytes", "2000");
    let (error, offsets) = failure_into_kafka(&name, source, config).await;
    let text = error.to_string();
    assert!(
        text.contains(&topic) && text.contains("too large"),
        "error names the topic and the reason: {text}"
    );
    assert!(!error.is_retryable(), "{error:?}");
    assert!(
        offsets.snapshot(&name).is_empty(),
        "no offset committed past an undelivered record"
    );
}

/// Runs `total` synthetic events, unwrapped to the row, as schemaless JSON into `topic`
/// through a destination with a dead-letter topic; returns what reached each (every id
/// exactly once across both) and checks that the offsets reached the end.
async fn deliver_with_dead_letter(
    bootstrap: &str,
    name: &str,
    total: u64,
    producer_settings: &[(&str, &str)],
) -> (Vec<Read>, Vec<common::DeadLetter>) {
    let topic = format!("{name}.inventory.orders");
    let json = std::sync::Arc::new(connect_core::JsonConverter::new(false));
    let config = KafkaConfig::new(bootstrap).with_converters(json.clone(), json);
    let dlq_topic = format!("{name}.dlq");
    let dlq = KafkaDeadLetterQueue::new(config.clone(), &dlq_topic).unwrap();
    let config = producer_settings
        .iter()
        .fold(config, |c, (k, v)| c.with_producer(k, v));
    let source = SyntheticSource::new(name, Some(total)).name_len(10, 4_000);
    let offsets = MemoryOffsetStore::new();
    let engine = Engine::builder()
        .name(name)
        .source(source.clone())
        .transform(
            "unwrap",
            connect_core::transform::ExtractNewRecordState::new(),
        )
        .offsets(offsets.clone())
        .into_kafka(KafkaDestination::with_dead_letter(config, dlq).unwrap())
        .start()
        .await
        .unwrap();
    engine.wait().await.unwrap();
    assert_eq!(committed_seq_in(&offsets, name, &source), total);
    let delivered = read_topic(bootstrap, &topic, 0);
    let letters =
        common::read_dead_letters(bootstrap, &dlq_topic, total as usize - delivered.len());
    let mut seen = vec![0u32; total as usize + 1];
    for id in delivered
        .iter()
        .map(|r| id_of(r.value.as_deref().unwrap()))
        .chain(letters.iter().map(|l| id_of(&l.value)))
    {
        seen[id as usize] += 1;
    }
    let wrong: Vec<usize> = (1..=total as usize)
        .filter(|&i| seen[i] != 1)
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "ids not delivered exactly once: {wrong:?}"
    );
    for l in &letters {
        assert_eq!(l.headers["__connect.errors.stage"], "KAFKA_PRODUCE");
        assert_eq!(l.headers["__connect.errors.topic"], topic);
    }
    (delivered, letters)
}

/// With a dead-letter topic, records larger than the producer's `message.max.bytes`
/// go there with the error context, the others to their topic, and the pipeline goes on
/// to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_records_go_to_the_dead_letter_topic_when_one_is_set() {
    let bootstrap = bootstrap();
    let name = unique("refused-dlq");
    create_topic(&bootstrap, &format!("{name}.inventory.orders"), 1).await;
    let (delivered, letters) =
        deliver_with_dead_letter(&bootstrap, &name, 200, &[("message.max.bytes", "2000")]).await;
    assert!(!delivered.is_empty() && !letters.is_empty());
    for l in &letters {
        assert!(l.value.len() > 1_000, "a small record was refused");
        assert!(
            l.headers["__connect.errors.exception.message"].contains("too large"),
            "{:?}",
            l.headers
        );
    }
}

/// A produce request the broker refuses (injected on librdkafka's mock cluster: tansu
/// cannot be made to refuse one): its records go to the dead-letter topic from their
/// delivery reports, and the batch is acknowledged only after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_the_broker_refuses_go_to_the_dead_letter_topic() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let mock = rdkafka::mocking::MockCluster::new(1).expect("librdkafka's mock cluster");
    let bootstrap = mock.bootstrap_servers();
    let name = unique("broker-refused");
    mock.create_topic(&format!("{name}.inventory.orders"), 1, 1)
        .unwrap();
    mock.create_topic(&format!("{name}.dlq"), 1, 1).unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let (_, letters) = deliver_with_dead_letter(&bootstrap, &name, 100, &[]).await;
    assert!(!letters.is_empty(), "the refused request's records");
}

#[test]
fn bad_settings_fail_at_construction_naming_the_key() {
    let err =
        KafkaDestination::new(KafkaConfig::new("x:1").with_producer("acks", "0")).unwrap_err();
    assert!(
        matches!(&err, Error::Config { key, .. } if key == "producer.acks"),
        "{err}"
    );
    let err = KafkaDestination::new(
        KafkaConfig::new("x:1").with_producer("no.such.librdkafka.property", "1"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no.such.librdkafka.property"),
        "{err}"
    );
}

/// Missing topics are created with `topic.creation.default.*` before their first record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_missing_topics_with_the_configured_shape() {
    let bootstrap = bootstrap();
    let name = unique("create");
    let topic = format!("{name}.inventory.orders");
    let mut configs = BTreeMap::new();
    configs.insert("cleanup.policy".to_owned(), "compact".to_owned());
    let config = KafkaConfig::new(&bootstrap).with_topic_creation(TopicCreation {
        partitions: 3,
        replication_factor: 1,
        configs,
    });
    let engine = Engine::builder()
        .name(&name)
        .source(SyntheticSource::new(&name, Some(300)))
        .into_kafka(KafkaDestination::new(config).unwrap())
        .start()
        .await
        .unwrap();
    engine.wait().await.unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(30))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 3);
    let reads = tokio::task::spawn_blocking({
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        move || read_topic(&bootstrap, &topic, 300)
    })
    .await
    .unwrap();
    assert_every_id_once_in_order(&reads, 300);
}

fn offset_config(bootstrap: &str, topic: &str) -> KafkaConfig {
    KafkaConfig::new(bootstrap).with_offset_topic(topic, 3, 1)
}

/// What Kafka Connect (and Debezium Server) writes is what we read, and the other way
/// round: key `["<name>",<partition>]`, value the offset JSON, null deleting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_topic_uses_kafka_connect_format() {
    let bootstrap = bootstrap();
    let topic = unique("offsets");
    let store = KafkaOffsetStore::new(offset_config(&bootstrap, &topic)).unwrap();
    assert!(store.load("inventory-connector").await.unwrap().is_empty());

    // Written as Kafka Connect writes them (KafkaOffsetBackingStore + JsonConverter
    // without schemas), for two connectors.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let connect_written = [
        (
            r#"["inventory-connector",{"server":"dbserver1"}]"#,
            Some(
                r#"{"transaction_id":null,"lsn_proc":37094192,"lsn_commit":37094192,"lsn":37094192,"txId":780,"ts_usec":1700000000000000}"#,
            ),
        ),
        (
            r#"["other-connector",{"server":"dbserver2"}]"#,
            Some(r#"{"file":"mysql-bin.000003","pos":154}"#),
        ),
        (
            r#"["inventory-connector",{"server":"gone"}]"#,
            Some(r#"{"lsn":1}"#),
        ),
        (r#"["inventory-connector",{"server":"gone"}]"#, None),
    ];
    for (key, value) in connect_written {
        let mut record = FutureRecord::<str, str>::to(&topic).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .expect("produce a Connect offset");
    }
    let loaded = store.load("inventory-connector").await.unwrap();
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    let offset = &loaded[&SourcePartition::server("dbserver1")];
    assert_eq!(offset.get("lsn").and_then(Json::as_u64), Some(37_094_192));
    assert_eq!(offset.get("txId").and_then(Json::as_u64), Some(780));

    // Ours, as Kafka Connect would read them.
    let ours = SourceOffset::single("pos", 4711);
    store
        .write("mine", &[(SourcePartition::server("shop"), ours.clone())])
        .await
        .unwrap();
    store.flush().await.unwrap();
    let reads = tokio::task::spawn_blocking({
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        move || read_topic(&bootstrap, &topic, connect_written.len() + 1)
    })
    .await
    .unwrap();
    let last = reads
        .iter()
        .find(|r| r.key.as_deref() == Some(r#"["mine",{"server":"shop"}]"#))
        .expect("our offset under Connect's key");
    assert_eq!(last.value.as_deref(), Some(r#"{"pos":4711}"#));
    let reopened = KafkaOffsetStore::new(offset_config(&bootstrap, &topic)).unwrap();
    let loaded = reopened.load("mine").await.unwrap();
    assert_eq!(loaded.get(&SourcePartition::server("shop")), Some(&ours));
}

/// Writes one message with a plain producer (no headers), as another writer would.
async fn produce_raw(bootstrap: &str, topic: &str, key: &str, value: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::<str, str>::to(topic).key(key).payload(value),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
}

/// A value of this pipeline that is not an offset is an error naming the topic,
/// partition and offset, never an empty start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_offset_is_an_error_not_a_fresh_start() {
    let bootstrap = bootstrap();
    let topic = unique("corrupt-offsets");
    create_topic(&bootstrap, &topic, 1).await;
    produce_raw(&bootstrap, &topic, r#"["p",{"server":"s"}]"#, "not json").await;
    let store = KafkaOffsetStore::new(offset_config(&bootstrap, &topic)).unwrap();
    let err = store.load("p").await.unwrap_err().to_string();
    assert!(
        err.contains(&topic) && err.contains("partition 0 at offset 0"),
        "{err}"
    );
}

/// A pipeline stopped and started again resumes from the offsets it stored in Kafka:
/// every event in the topic once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_from_offsets_stored_in_kafka() {
    let bootstrap = bootstrap();
    let name = unique("resume");
    let topic = format!("{name}.inventory.orders");
    let offsets_topic = unique("resume-offsets");
    create_topic(&bootstrap, &topic, 2).await;
    for total in [4_000, 9_000] {
        let engine = Engine::builder()
            .name(&name)
            .source(SyntheticSource::new(&name, Some(total)))
            .offsets(KafkaOffsetStore::new(offset_config(&bootstrap, &offsets_topic)).unwrap())
            .into_kafka(KafkaDestination::new(KafkaConfig::new(&bootstrap)).unwrap())
            .start()
            .await
            .unwrap();
        let report = engine.wait().await.unwrap();
        assert!(report.committed(), "{report:?}");
    }
    let reads = tokio::task::spawn_blocking({
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        move || read_topic(&bootstrap, &topic, 9_000)
    })
    .await
    .unwrap();
    assert_eq!(reads.len(), 9_000);
    assert_every_id_once_in_order(&reads, 9_000);
}

/// Writes `pos` for `server` through `store` and waits for the broker's acknowledgement.
async fn write_pos(store: &KafkaOffsetStore, server: &str, pos: u64) {
    store
        .write(
            "p",
            &[(
                SourcePartition::server(server),
                SourceOffset::single("pos", pos),
            )],
        )
        .await
        .unwrap();
    store.flush().await.unwrap();
}

/// A stale writer (an instance paused past its lease, resuming unaware) keeps writing
/// after a newer writer claimed its epoch: none of its writes overrides the newer
/// writer's offsets, whatever the order in the topic; a key only it wrote is still read
/// (it was delivered); Kafka Connect's unstamped writes are read as always. The markers
/// sit in every partition of the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writers_offsets_never_override_a_newer_writers() {
    let bootstrap = bootstrap();
    let topic = unique("fenced-offsets");
    let store = || KafkaOffsetStore::new(offset_config(&bootstrap, &topic)).unwrap();
    let pos = |loaded: &connect_core::OffsetMap, server: &str| {
        loaded
            .get(&SourcePartition::server(server))
            .and_then(|o| o.get("pos")?.as_u64())
    };
    let (stale, newer) = (store(), store());
    assert_eq!(stale.fence("p").await.unwrap(), 1);
    write_pos(&stale, "db", 10).await;
    write_pos(&stale, "before", 1).await;
    assert_eq!(newer.fence("p").await.unwrap(), 2);
    assert_eq!(pos(&store().load("p").await.unwrap(), "db"), Some(10));
    write_pos(&newer, "db", 20).await;
    // The stale writer, unaware, writes after the newer one.
    write_pos(&stale, "db", 99).await;
    write_pos(&stale, "only-stale", 7).await;
    // As Kafka Connect writes: no epoch header.
    produce_raw(
        &bootstrap,
        &topic,
        r#"["p",{"server":"connect"}]"#,
        r#"{"pos":5}"#,
    )
    .await;
    let loaded = store().load("p").await.unwrap();
    assert_eq!(pos(&loaded, "db"), Some(20), "the stale 99 was fenced");
    assert_eq!(
        pos(&loaded, "before"),
        Some(1),
        "written before the newer epoch"
    );
    assert_eq!(pos(&loaded, "only-stale"), Some(7));
    assert_eq!(pos(&loaded, "connect"), Some(5));
    assert_eq!(loaded.len(), 4, "the markers are not offsets: {loaded:?}");
    write_pos(&newer, "db", 30).await;
    assert_eq!(pos(&store().load("p").await.unwrap(), "db"), Some(30));
    // Another pipeline's epochs are its own.
    assert_eq!(store().fence("other").await.unwrap(), 1);
    assert_eq!(store().fence("p").await.unwrap(), 3);

    let reads = tokio::task::spawn_blocking({
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        move || read_topic(&bootstrap, &topic, 3 * 4 + 7)
    })
    .await
    .unwrap();
    let markers: std::collections::BTreeSet<(i32, String)> = reads
        .iter()
        .filter(|r| r.key.as_deref() == Some(r#"["p",{"connect.fencing":"writer.epoch"}]"#))
        .map(|r| (r.partition, r.value.clone().unwrap_or_default()))
        .collect();
    for partition in 0..3 {
        for epoch in 1..=3 {
            let marker = (partition, format!(r#"{{"epoch":{epoch}}}"#));
            assert!(markers.contains(&marker), "{marker:?} in {markers:?}");
        }
    }
}

/// A store fenced by a lease, and a schema history guarded by it, refuse to write once
/// the lease is gone, with a fatal error naming the lease. On librdkafka's mock cluster, in this process, as the other
/// lease test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_store_stops_writing_when_its_lease_is_lost() {
    use connect_core::SchemaHistory;
    let mock = rdkafka::mocking::MockCluster::new(1).expect("librdkafka's mock cluster");
    let bootstrap = mock.bootstrap_servers();
    let name = unique("lost-lease");
    let topic = format!("{name}.offsets");
    mock.create_topic(&topic, 3, 1).unwrap();
    mock.create_topic(&format!("connect-lease.{name}"), 1, 1)
        .unwrap();
    let lease = connect_kafka::KafkaLease::acquire(&KafkaConfig::new(&bootstrap), &name)
        .await
        .unwrap();
    assert_eq!(lease.pipeline(), name);
    let store = KafkaOffsetStore::fenced(offset_config(&bootstrap, &topic), &lease)
        .await
        .unwrap();
    let offset = [(
        SourcePartition::server("db"),
        SourceOffset::single("pos", 1),
    )];
    store.write(&name, &offset).await.unwrap();
    store.flush().await.unwrap();
    let history = connect_kafka::KafkaSchemaHistory::new(
        KafkaConfig::new(&bootstrap),
        &format!("{name}.history"),
    )
    .unwrap()
    .guarded_by(&lease);
    mock.create_topic(history.topic(), 1, 1).unwrap();
    history
        .append(history_record("CREATE TABLE t (id INT)", 1))
        .await
        .unwrap();
    drop(lease);
    let deadline = Instant::now() + DEADLINE;
    let err = loop {
        match store.write(&name, &offset).await {
            Err(e) => break e,
            Ok(()) => {
                assert!(Instant::now() < deadline, "still writing without the lease");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(!err.is_retryable(), "{err}");
    let lost = format!("lease `connect-lease.{name}` is lost");
    assert!(err.to_string().contains(&lost), "{err}");
    let err = history
        .append(history_record("DROP TABLE t", 2))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&lost), "{err}");
    assert_eq!(history.recover().await.unwrap().len(), 1);
}

const KILL_TOPIC_ENV: &str = "CONNECT_KAFKA_KILL_TOPIC";
const KILL_TOTAL_ENV: &str = "CONNECT_KAFKA_KILL_TOTAL";
const KILL_EXACTLY_ONCE_ENV: &str = "CONNECT_KAFKA_KILL_EXACTLY_ONCE";
const KILL_LEASE_DIR_ENV: &str = "CONNECT_KAFKA_KILL_LEASE_DIR";
const KILL_UNWATCHED_LEASE_ENV: &str = "CONNECT_KAFKA_KILL_UNWATCHED_LEASE";
/// The lease tests' group session: how long a killed holder keeps the lease.
const LEASE_SESSION_MS: &str = "6000";

fn kill_pipeline_name(topic: &str) -> String {
    topic.trim_end_matches(".inventory.orders").to_owned()
}

fn kill_offsets_topic(topic: &str) -> String {
    format!("{topic}.offsets")
}

fn kill_source(name: &str, total: Option<u64>) -> SyntheticSource {
    SyntheticSource::new(name, total)
        .batch(50)
        .name_len(4, 4)
        .pace(Duration::from_millis(10))
}

/// The crash tests' child: a paced synthetic source (endless, or up to
/// `CONNECT_KAFKA_KILL_TOTAL`), unwrapped to the row, into Kafka as schemaless JSON,
/// committing often; at-least-once with the Kafka offset store, or exactly-once
/// (`CONNECT_KAFKA_KILL_EXACTLY_ONCE`). Runs only when spawned by a crash test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the kill -9 tests"]
async fn kill_child_pipeline() {
    let Ok(topic) = std::env::var(KILL_TOPIC_ENV) else {
        return;
    };
    let total = std::env::var(KILL_TOTAL_ENV)
        .ok()
        .map(|t| t.parse().unwrap());
    let bootstrap = bootstrap();
    let name = kill_pipeline_name(&topic);
    let json = std::sync::Arc::new(connect_core::JsonConverter::new(false));
    let kafka =
        offset_config(&bootstrap, &kill_offsets_topic(&topic)).with_converters(json.clone(), json);
    // With a lease: run only while holding it, and say so in a file named by the pid.
    let lease = match std::env::var(KILL_LEASE_DIR_ENV) {
        Ok(dir) => {
            let config = KafkaConfig::new(&bootstrap)
                .with_consumer("session.timeout.ms", LEASE_SESSION_MS)
                .with_consumer("max.poll.interval.ms", "7000");
            let lease = connect_kafka::KafkaLease::acquire(&config, &name)
                .await
                .unwrap();
            std::fs::write(format!("{dir}/{}.held", std::process::id()), b"").unwrap();
            Some(lease)
        }
        Err(_) => None,
    };
    let pipeline = connect_core::PipelineBuilder::new(&name)
        .source(kill_source(&name, total))
        .transform(
            "unwrap",
            connect_core::transform::ExtractNewRecordState::new(),
        )
        .commit_policy(connect_core::CommitPolicy::every_records(200));
    let pipeline = if std::env::var(KILL_EXACTLY_ONCE_ENV).is_ok() {
        pipeline.into_connector(connect_kafka::KafkaExactlyOnce::new(kafka).unwrap())
    } else {
        let offsets = match &lease {
            Some(lease) => KafkaOffsetStore::fenced(kafka.clone(), lease)
                .await
                .unwrap(),
            None => KafkaOffsetStore::new(kafka.clone()).unwrap(),
        };
        pipeline
            .offsets(offsets)
            .into_kafka(KafkaDestination::new(kafka).unwrap())
    };
    let engine = Engine::builder().pipeline(pipeline).start().await.unwrap();
    // Unwatched, the lease's loss is seen only by the fenced store refusing to write.
    let watched = std::env::var(KILL_UNWATCHED_LEASE_ENV).is_err();
    let _held = match lease {
        Some(lease) if watched => {
            let stop = engine.stop_handle();
            tokio::spawn(async move {
                lease.lost().await;
                stop.stop();
            });
            None
        }
        lease => lease,
    };
    let result = engine.wait().await;
    if let (Err(e), Ok(dir)) = (&result, std::env::var(KILL_LEASE_DIR_ENV)) {
        std::fs::write(format!("{dir}/{}.error", std::process::id()), e.to_string()).unwrap();
    }
    result.unwrap();
}

async fn committed_seq(store: &KafkaOffsetStore, name: &str) -> u64 {
    store
        .load(name)
        .await
        .unwrap()
        .get(&kill_source(name, None).partition(0))
        .and_then(|o| o.get("seq")?.as_u64())
        .unwrap_or(0)
}

/// Starts the pipeline child on `topic` (endless, or up to `total`), with `extra`
/// settings.
fn spawn_pipeline_child(
    topic: &str,
    bootstrap: &str,
    total: Option<u64>,
    extra: &[(&str, &std::ffi::OsStr)],
) -> Child {
    let total = total.map(|t| t.to_string()).unwrap_or_default();
    let mut envs: Vec<(&str, &std::ffi::OsStr)> = vec![
        (KILL_TOPIC_ENV, topic.as_ref()),
        ("CONNECT_KAFKA_BOOTSTRAP", bootstrap.as_ref()),
    ];
    if !total.is_empty() {
        envs.push((KILL_TOTAL_ENV, total.as_ref()));
    }
    envs.extend_from_slice(extra);
    connect_core::testing::spawn_test_child("kill_child_pipeline", &envs)
}

/// Checks what runs that were killed and restarted left in a topic: every id 1..=`total`
/// present, and within each partition new ids in order (repeats only go back). Returns
/// the copies of each id and the messages beyond `total` (from killed runs past their
/// last commit).
fn assert_none_lost_and_in_order(reads: &[Read], total: u64) -> (Vec<u32>, usize) {
    let mut copies = vec![0u32; total as usize + 1];
    let mut newest_first: HashMap<i32, i64> = HashMap::new();
    let mut beyond = 0;
    for r in reads {
        let id = id_of(r.value.as_deref().unwrap());
        if id > total as i64 {
            beyond += 1;
            continue;
        }
        copies[id as usize] += 1;
        if copies[id as usize] == 1 {
            let prev = newest_first.insert(r.partition, id).unwrap_or(0);
            assert!(
                id > prev,
                "partition {}: new id {id} after new id {prev} (a gap or a reorder)",
                r.partition
            );
        }
    }
    let missing: Vec<usize> = (1..=total as usize)
        .filter(|&i| copies[i] == 0)
        .take(10)
        .collect();
    assert!(missing.is_empty(), "events lost, first: {missing:?}");
    (copies, beyond)
}

/// What a kill -9 series left in the topic.
struct KillOutcome {
    total: u64,
    committed: Vec<u64>,
    /// Messages per id 1..=total (index 0 unused).
    copies: Vec<u32>,
    messages: usize,
    beyond: usize,
}

/// SIGKILLs the child pipeline `CONNECT_KILL_RUNS` times (default 20), each at a random
/// point after its stored offset moved, then runs it to a fixed end; reads the topic back
/// (read_committed) and checks that no event is lost and that within each partition new
/// events come in order (repeats only go back).
async fn kill_series(
    bootstrap: &str,
    mock: Option<&rdkafka::mocking::MockCluster<'_, rdkafka::producer::DefaultProducerContext>>,
) -> KillOutcome {
    let exactly_once = mock.is_some();
    use rand::Rng as _;
    let runs: u64 = std::env::var("CONNECT_KILL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let name = unique(if exactly_once { "kill-eos" } else { "kill" });
    let topic = format!("{name}.inventory.orders");
    match mock {
        // The mock cluster answers no CreateTopics: its own API makes them.
        Some(mock) => {
            mock.create_topic(&topic, 3, 1).unwrap();
            mock.create_topic(&kill_offsets_topic(&topic), 3, 1)
                .unwrap();
        }
        None => create_topic(bootstrap, &topic, 3).await,
    }
    let store =
        KafkaOffsetStore::new(offset_config(bootstrap, &kill_offsets_topic(&topic))).unwrap();
    let extra: &[(&str, &std::ffi::OsStr)] = if exactly_once {
        &[(KILL_EXACTLY_ONCE_ENV, "1".as_ref())]
    } else {
        &[]
    };
    let spawn = |total: Option<u64>| spawn_pipeline_child(&topic, bootstrap, total, extra);
    let mut committed = vec![0];
    let mut rng = rand::rng();
    for _ in 0..runs {
        let before = *committed.last().unwrap();
        let child = spawn(None);
        // Kill only once this run committed something, then at a random point after.
        let deadline = Instant::now() + DEADLINE;
        while committed_seq(&store, &name).await <= before {
            assert!(Instant::now() < deadline, "the child made no progress");
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        connect_core::testing::kill_child(child);
        let seq = committed_seq(&store, &name).await;
        assert!(
            seq >= before,
            "the stored offset moved back: {committed:?} then {seq}"
        );
        committed.push(seq);
    }
    let total = committed.last().unwrap() + 2_000;
    let mut last = spawn(Some(total));
    let status = tokio::task::spawn_blocking(move || last.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "the final run completes");
    assert_eq!(committed_seq(&store, &name).await, total);

    let reads = tokio::task::spawn_blocking({
        let (bootstrap, topic) = (bootstrap.to_owned(), topic.clone());
        move || read_topic(&bootstrap, &topic, total as usize)
    })
    .await
    .unwrap();
    let (copies, beyond) = assert_none_lost_and_in_order(&reads, total);
    KillOutcome {
        total,
        committed,
        copies,
        messages: reads.len(),
        beyond,
    }
}

/// kill -9 of the producing process with the Kafka offset store (at-least-once): every
/// event arrives; repeats only from uncommitted work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_offsets_in_kafka_loses_nothing() {
    let outcome = kill_series(&bootstrap(), None).await;
    eprintln!(
        "{} kills, {} events, {} messages ({} repeats of uncommitted work, {} beyond the end), committed after each kill: {:?}",
        outcome.committed.len() - 1,
        outcome.total,
        outcome.messages,
        outcome.messages - outcome.total as usize - outcome.beyond,
        outcome.beyond,
        outcome.committed
    );
}

/// kill -9 with exactly-once delivery, on librdkafka's in-process mock cluster (tansu
/// has no transactions; the mock lives in this parent process so a killed child cannot
/// take it down): a read_committed consumer sees every event, in order, and nothing of
/// an aborted run beyond the end. Repeats are counted, not refused: Kafka aborts a dead
/// producer's open transaction when the next producer with its `transactional.id`
/// initialises, the mock does not (a probe: the dead transaction's records become
/// visible with the next commit of that id), and the transactions the kills interrupt
/// span up to a few thousand events under load, so on the mock a repeat of ours cannot
/// be told from one it leaked. Each-event-once needs a broker that aborts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_exactly_once_loses_nothing_on_the_mock() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("librdkafka's mock cluster");
    let outcome = kill_series(&mock.bootstrap_servers(), Some(&mock)).await;
    assert_eq!(
        outcome.beyond, 0,
        "events of aborted transactions were visible"
    );
    let repeated = (1..=outcome.total)
        .filter(|&i| outcome.copies[i as usize] > 1)
        .count();
    eprintln!(
        "{} kills, {} events, none lost, {repeated} seen twice (interrupted transactions the mock did not abort), committed after each kill: {:?}",
        outcome.committed.len() - 1,
        outcome.total,
        outcome.committed
    );
}

fn history_record(ddl: &str, pos: u64) -> connect_core::HistoryRecord {
    serde_json::from_value(serde_json::json!({
        "source": {"server": "shop"},
        "position": {"file": "mariadb-bin.000001", "pos": pos},
        "ts_ms": 1_700_000_000_000u64,
        "databaseName": "inventory",
        "ddl": ddl,
        "tableChanges": []
    }))
    .unwrap()
}

/// The history topic is Debezium's: one partition, a record per message in Debezium's
/// JSON with a null key, recovered in order by a new instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_history_round_trips_in_debezium_format() {
    use connect_core::SchemaHistory;
    let bootstrap = bootstrap();
    let topic = unique("history");
    let history =
        connect_kafka::KafkaSchemaHistory::new(KafkaConfig::new(&bootstrap), &topic).unwrap();
    assert!(history.recover().await.unwrap().is_empty());
    let records = [
        history_record("CREATE TABLE t (id INT PRIMARY KEY)", 4),
        history_record("ALTER TABLE t ADD COLUMN c TEXT", 900),
    ];
    for r in &records {
        history.append(r.clone()).await.unwrap();
    }
    history.flush().await.unwrap();

    let reads = tokio::task::spawn_blocking({
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        move || read_topic(&bootstrap, &topic, 2)
    })
    .await
    .unwrap();
    assert_eq!(reads.len(), 2);
    assert!(reads.iter().all(|r| r.partition == 0 && r.key.is_none()));
    assert!(
        reads[0].value.as_deref().unwrap().starts_with(
            r#"{"source":{"server":"shop"},"position":{"file":"mariadb-bin.000001","pos":4},"ts_ms":1700000000000,"databaseName":"inventory","ddl":"CREATE TABLE"#
        ),
        "{:?}",
        reads[0].value
    );
    let reopened =
        connect_kafka::KafkaSchemaHistory::new(KafkaConfig::new(&bootstrap), &topic).unwrap();
    assert_eq!(reopened.recover().await.unwrap(), records);
}

/// A history topic with more than one partition cannot keep DDL in order: an error
/// naming it, as in Debezium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_history_refuses_a_topic_with_several_partitions() {
    use connect_core::SchemaHistory;
    let bootstrap = bootstrap();
    let topic = unique("history-wide");
    create_topic(&bootstrap, &topic, 2).await;
    let history =
        connect_kafka::KafkaSchemaHistory::new(KafkaConfig::new(&bootstrap), &topic).unwrap();
    let err = history.recover().await.unwrap_err().to_string();
    assert!(
        err.contains(&topic) && err.contains("2 partitions"),
        "{err}"
    );
}

/// A properties file names the Kafka offset store and schema history as Kafka Connect and
/// Debezium do; the pipeline keeps its offsets and history in those topics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_select_the_kafka_offset_store_and_schema_history() {
    use connect_core::{Properties, Registry, SchemaHistory};
    use std::sync::{Arc, Mutex};
    let bootstrap = bootstrap();
    let name = unique("props");
    let (offsets_topic, history_topic) = (unique("props-offsets"), unique("props-history"));
    let mut registry = Registry::new();
    connect_kafka::register(&mut registry);
    let handed: Arc<Mutex<Option<Arc<dyn SchemaHistory>>>> = Arc::default();
    let source_name = name.clone();
    let keep = handed.clone();
    registry.register_source("test.Synthetic", move |ctx| {
        *keep.lock().unwrap() = Some(ctx.history.clone());
        Ok(Arc::new(SyntheticSource::new(&source_name, Some(500))))
    });
    let props = |extra: &[(&str, &str)]| {
        let mut pairs = vec![
            ("name", name.as_str()),
            ("connector.class", "test.Synthetic"),
            ("offset.storage", connect_kafka::OFFSET_STORE_CLASS),
            ("bootstrap.servers", bootstrap.as_str()),
            ("offset.storage.topic", offsets_topic.as_str()),
            ("offset.storage.partitions", "1"),
            (
                "schema.history.internal",
                connect_kafka::SCHEMA_HISTORY_CLASS,
            ),
            (
                "schema.history.internal.kafka.bootstrap.servers",
                bootstrap.as_str(),
            ),
            ("schema.history.internal.producer.linger.ms", "1"),
        ];
        pairs.extend_from_slice(extra);
        Properties::from_pairs(pairs)
    };

    let err = registry.build_pipeline(&props(&[])).unwrap_err();
    assert!(
        matches!(&err, Error::Config { key, .. } if key == "schema.history.internal.kafka.topic"),
        "{err}"
    );
    let err = registry
        .build_pipeline(&props(&[
            (
                "schema.history.internal.kafka.topic",
                history_topic.as_str(),
            ),
            (
                "schema.history.internal.producer.enable.idempotence",
                "false",
            ),
        ]))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { key, .. } if key == "schema.history.internal.producer.enable.idempotence"),
        "{err}"
    );

    let built = registry
        .build_pipeline(&props(&[(
            "schema.history.internal.kafka.topic",
            history_topic.as_str(),
        )]))
        .unwrap();
    let destination = KafkaDestination::new(
        KafkaConfig::new(&bootstrap).with_converters(built.key_converter, built.value_converter),
    )
    .unwrap();
    create_topic(&bootstrap, &format!("{name}.inventory.orders"), 1).await;
    let engine = Engine::builder()
        .pipeline(built.pipeline.into_kafka(destination))
        .start()
        .await
        .unwrap();
    let report = engine.wait().await.unwrap();
    assert!(report.committed(), "{report:?}");
    let stored = KafkaOffsetStore::new(offset_config(&bootstrap, &offsets_topic))
        .unwrap()
        .load(&name)
        .await
        .unwrap();
    assert_eq!(
        stored[&SyntheticSource::new(&name, None).partition(0)].get("seq"),
        Some(&Json::from(500))
    );

    let history = handed
        .lock()
        .unwrap()
        .clone()
        .expect("the source got a history");
    history
        .append(history_record("CREATE TABLE t (id INT)", 4))
        .await
        .unwrap();
    history.flush().await.unwrap();
    let recovered =
        connect_kafka::KafkaSchemaHistory::new(KafkaConfig::new(&bootstrap), &history_topic)
            .unwrap()
            .recover()
            .await
            .unwrap();
    assert_eq!(recovered, [history_record("CREATE TABLE t (id INT)", 4)]);
}

/// A record for a topic that does not exist (no topic creation, and a broker that does
/// not create it) fails the pipeline at once, naming the topic, instead of waiting in
/// librdkafka for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_fails_the_pipeline_naming_it() {
    let bootstrap = bootstrap();
    let topic = unique("missing");
    let records = vec![connect_core::Record::new(
        topic.as_str().into(),
        None,
        connect_core::Value::string("x"),
    )];
    let string = std::sync::Arc::new(connect_core::StringConverter);
    let config = KafkaConfig::new(&bootstrap).with_converters(string.clone(), string);
    let name = unique("missing-pipeline");
    let source = connect_core::testing::FixedSource::new(records);
    let (error, offsets) = failure_into_kafka(&name, source, config).await;
    let text = error.to_string();
    assert!(
        text.contains(&format!("topic `{topic}` does not exist"))
            && text.contains("topic.creation.enable"),
        "{text}"
    );
    assert!(offsets.snapshot(&name).is_empty(), "nothing committed");
}

/// Instances of one leased pipeline as child processes, on librdkafka's mock cluster in
/// this parent process: tansu 0.6 never expires a killed or paused member's session, so
/// no one would take over there.
struct LeaseRig {
    _mock: rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    bootstrap: String,
    name: String,
    topic: String,
    store: KafkaOffsetStore,
    dir: tempfile::TempDir,
}

impl LeaseRig {
    fn new(what: &str) -> LeaseRig {
        let mock = rdkafka::mocking::MockCluster::new(1).expect("librdkafka's mock cluster");
        let bootstrap = mock.bootstrap_servers();
        let name = unique(what);
        let topic = format!("{name}.inventory.orders");
        mock.create_topic(&topic, 3, 1).unwrap();
        mock.create_topic(&kill_offsets_topic(&topic), 3, 1)
            .unwrap();
        mock.create_topic(&format!("connect-lease.{name}"), 1, 1)
            .unwrap();
        let store =
            KafkaOffsetStore::new(offset_config(&bootstrap, &kill_offsets_topic(&topic))).unwrap();
        LeaseRig {
            _mock: mock,
            bootstrap,
            name,
            topic,
            store,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn spawn(&self, total: Option<u64>) -> Child {
        let extra = [(KILL_LEASE_DIR_ENV, self.dir.path().as_os_str())];
        spawn_pipeline_child(&self.topic, &self.bootstrap, total, &extra)
    }

    /// An instance that does not stop when it loses the lease.
    fn spawn_unwatched(&self) -> Child {
        let extra = [
            (KILL_LEASE_DIR_ENV, self.dir.path().as_os_str()),
            (KILL_UNWATCHED_LEASE_ENV, "1".as_ref()),
        ];
        spawn_pipeline_child(&self.topic, &self.bootstrap, None, &extra)
    }

    fn holds(&self, child: &Child) -> bool {
        self.dir
            .path()
            .join(format!("{}.held", child.id()))
            .exists()
    }

    async fn committed(&self) -> u64 {
        committed_seq(&self.store, &self.name).await
    }

    /// Waits until `child` holds the lease and the committed offset passed `at_least`.
    async fn wait_running(&self, child: &Child, at_least: u64, what: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self.holds(child) || self.committed().await < at_least {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills `holder`, runs a last instance to `committed + 500` and checks that every
    /// event is in the topic, new ones in order.
    async fn finish(self, holder: Child) {
        connect_core::testing::kill_child(holder);
        let total = self.committed().await + 500;
        let mut last = self.spawn(Some(total));
        let status = tokio::task::spawn_blocking(move || last.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "the last instance completes");
        let reads = tokio::task::spawn_blocking({
            let (bootstrap, topic) = (self.bootstrap.clone(), self.topic.clone());
            move || read_topic(&bootstrap, &topic, total as usize)
        })
        .await
        .unwrap();
        assert_none_lost_and_in_order(&reads, total);
    }
}

/// Two instances of one pipeline with the lease: the second stays idle while the first
/// runs, takes over once the first is killed (after the group session expires), and
/// continues from the stored offsets without losing an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_waits_for_the_lease_and_takes_over() {
    let rig = LeaseRig::new("lease");
    let first = rig.spawn(None);
    rig.wait_running(&first, 1, "the first instance never ran")
        .await;
    let second = rig.spawn(None);
    // The second instance's window to (wrongly) start: longer than it takes to join.
    let before = rig.committed().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !rig.holds(&second),
        "the second instance ran beside the first"
    );
    let at_kill = rig.committed().await;
    assert!(at_kill > before, "the first instance kept running");
    connect_core::testing::kill_child(first);
    let at_kill = rig.committed().await.max(at_kill);
    rig.wait_running(
        &second,
        at_kill + 1_000,
        "the second instance never took over",
    )
    .await;
    rig.finish(second).await;
}

/// The holder is paused (SIGSTOP) past its group session, so the second instance takes
/// over. Resumed, the first keeps running (it does not watch its lease) until its fenced
/// store refuses to write, naming the lost lease; nothing it wrote after resuming moves
/// the stored offsets back from the second's; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_holder_resumed_after_losing_its_lease_is_fenced() {
    let rig = LeaseRig::new("paused-lease");
    let signal = |child: &Child, signal: &str| {
        let status = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    };
    let mut first = rig.spawn_unwatched();
    rig.wait_running(&first, 1, "the first instance never ran")
        .await;
    let second = rig.spawn(None);
    signal(&first, "-STOP");
    let paused_at = rig.committed().await;
    rig.wait_running(
        &second,
        paused_at + 1_000,
        "the second instance never took over",
    )
    .await;
    let before_resume = rig.committed().await;
    signal(&first, "-CONT");
    let deadline = Instant::now() + DEADLINE;
    while first.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the resumed first instance kept running without the lease"
        );
        let now = rig.committed().await;
        assert!(
            now >= before_resume,
            "offsets went back to {now} from {before_resume}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = rig.committed().await;
    assert!(
        now >= before_resume,
        "offsets went back to {now} from {before_resume}"
    );
    let error = std::fs::read_to_string(rig.dir.path().join(format!("{}.error", first.id())))
        .expect("the first instance stopped with an error");
    assert!(
        error.contains(&format!("lease `connect-lease.{}` is lost", rig.name)),
        "{error}"
    );
    rig.finish(second).await;
}
