//! The sink runner ([`KafkaTopics`] driving a sink) against a real Kafka-protocol broker:
//! tansu on 127.0.0.1:9092 (`CONNECT_KAFKA_BOOTSTRAP` to use another). The takeover
//! test runs on librdkafka's mock cluster: tansu 0.6 never expires a killed member.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    bootstrap, create_topic, read_dead_letters, unique, DeadLetter, PrivateBroker, DEADLINE,
};
use connect_core::transform::Transform;
use connect_core::{
    async_trait, Engine, Error, ErrorTolerance, JsonConverter, OffsetMap, Record, SinkConnector,
    SinkTask, Task, TaskConfig, TaskContext,
};
use connect_file::{FileSink, FileSinkConfig};
use connect_kafka::{KafkaConfig, KafkaDeadLetterQueue, KafkaTopics};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value as Json;

const PARTITIONS: i32 = 4;

/// Schemaless JSON both ways: keys and values are plain JSON documents.
fn config(bootstrap: &str) -> KafkaConfig {
    let json = Arc::new(JsonConverter::new(false));
    KafkaConfig::new(bootstrap).with_converters(json.clone(), json)
}

/// Produces ids `ids` to `topic`, id `i` to partition `i % PARTITIONS` with key `i` and
/// value `{"id":i}`, and waits until every one is acknowledged.
async fn produce(bootstrap: &str, topic: &str, ids: std::ops::RangeInclusive<i64>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut pending = Vec::new();
    for id in ids {
        let key = id.to_string();
        let value = format!("{{\"id\":{id}}}");
        let record = FutureRecord::to(topic)
            .partition((id % PARTITIONS as i64) as i32)
            .key(&key)
            .payload(&value);
        pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    for p in pending {
        p.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

/// Produces one message with key `1` and this payload to `partition`.
async fn produce_raw(bootstrap: &str, topic: &str, partition: i32, payload: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(topic)
                .partition(partition)
                .key("1")
                .payload(payload),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
}

/// The ids in a sink file (one `{"id":..}` per line), complete lines only.
fn ids_in(file: &Path) -> Vec<i64> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    // A line being written (or cut by a kill) is not there yet.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Json = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            v["id"].as_i64().unwrap()
        })
        .collect()
}

/// Asserts that within each partition (id % PARTITIONS) first sightings come in order:
/// a repeat may only go back.
fn assert_partition_order(ids: &[i64]) {
    let mut seen = HashSet::new();
    let mut newest: HashMap<i64, i64> = HashMap::new();
    for &id in ids {
        if seen.insert(id) {
            let prev = newest.insert(id % PARTITIONS as i64, id).unwrap_or(0);
            assert!(id > prev, "partition {}: {id} after {prev}", id % 4);
        }
    }
}

fn missing(ids: impl IntoIterator<Item = i64>, total: i64) -> Vec<i64> {
    let seen: HashSet<i64> = ids.into_iter().collect();
    (1..=total).filter(|i| !seen.contains(i)).take(10).collect()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn file_sink(path: &Path) -> FileSink {
    FileSink::new(FileSinkConfig::new(path).with_converter(JsonConverter::new(false))).unwrap()
}

/// The group's committed offset of each partition of `topic`.
fn group_offsets(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(30))
        .unwrap()
        .elements()
        .iter()
        .map(|e| {
            let o = match e.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            };
            (e.partition(), o)
        })
        .collect()
}

/// Every record reaches the sink once, in partition order; the group's offsets are
/// committed after the sink flushed, and a restart goes on from them without repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_every_record_to_the_sink_and_resumes_from_the_group() {
    let bootstrap = bootstrap();
    let name = unique("sink");
    let topic = format!("{name}.orders");
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    produce(&bootstrap, &topic, 1..=6_000).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sink.out");
    let run = |total: usize| {
        let (bootstrap, topic, name, out) =
            (bootstrap.clone(), topic.clone(), name.clone(), out.clone());
        async move {
            let engine = Engine::builder()
                .name(&name)
                .source(KafkaTopics::new(config(&bootstrap), [topic]))
                .into_connector(file_sink(&out))
                .start()
                .await
                .unwrap();
            wait_until("the sink to hold every record", || {
                ids_in(&out).len() >= total
            })
            .await;
            let report = engine.shutdown().await.unwrap();
            assert!(report.drained() && report.committed(), "{report:?}");
        }
    };
    run(6_000).await;
    let ids = ids_in(&out);
    assert_eq!(ids.len(), 6_000, "each record once");
    assert!(missing(ids.iter().copied(), 6_000).is_empty());
    assert_partition_order(&ids);
    let committed = group_offsets(&bootstrap, &format!("connect-{name}"), &topic);
    assert_eq!(
        committed,
        (0..PARTITIONS)
            .map(|p| (p, 1_500))
            .collect::<BTreeMap<_, _>>(),
        "the group's offsets are the sink's end"
    );

    produce(&bootstrap, &topic, 6_001..=7_000).await;
    run(7_000).await;
    let ids = ids_in(&out);
    assert_eq!(ids.len(), 7_000, "the restart repeats nothing");
    assert!(missing(ids.iter().copied(), 7_000).is_empty());
    assert_partition_order(&ids);
}

/// Topics by pattern: every topic whose name matches is read, others are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_subscribes_to_every_matching_topic() {
    let bootstrap = bootstrap();
    let name = unique("sink-regex");
    let (a, b, other) = (
        format!("{name}.a"),
        format!("{name}.b"),
        format!("{name}-other"),
    );
    for t in [&a, &b, &other] {
        create_topic(&bootstrap, t, PARTITIONS).await;
    }
    produce(&bootstrap, &a, 1..=500).await;
    produce(&bootstrap, &b, 501..=1_000).await;
    produce(&bootstrap, &other, 1_001..=1_100).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sink.out");
    let pattern = format!("{}\\.[ab]", name.replace('-', "\\-"));
    let engine = Engine::builder()
        .name(&name)
        .source(KafkaTopics::matching(config(&bootstrap), &pattern))
        .into_connector(file_sink(&out))
        .start()
        .await
        .unwrap();
    wait_until("both topics", || ids_in(&out).len() >= 1_000).await;
    engine.shutdown().await.unwrap();
    let ids = ids_in(&out);
    assert!(missing(ids.iter().copied(), 1_000).is_empty());
    assert!(
        ids.iter().all(|&i| i <= 1_000),
        "a topic outside the pattern was read"
    );
}

/// What [`SlowSink`] made durable: (id, the instance that flushed it).
type Flushed = Arc<Mutex<Vec<(i64, &'static str)>>>;

/// A sink whose `flush` takes `delay`; only flushed records count as delivered.
struct SlowSink {
    instance: &'static str,
    delay: Duration,
    flushed: Flushed,
}

struct SlowSinkTask {
    instance: &'static str,
    delay: Duration,
    buffer: Vec<i64>,
    flushed: Flushed,
}

impl SinkConnector for SlowSink {
    fn name(&self) -> &str {
        "slow-sink"
    }
    fn task_configs(&self, _: usize) -> connect_core::Result<Vec<TaskConfig>> {
        Ok(vec![TaskConfig::new()])
    }
    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(SlowSinkTask {
            instance: self.instance,
            delay: self.delay,
            buffer: Vec::new(),
            flushed: self.flushed.clone(),
        })
    }
}

#[async_trait]
impl Task for SlowSinkTask {
    async fn start(&mut self, _: TaskContext) -> connect_core::Result<()> {
        Ok(())
    }
    async fn stop(&mut self) -> connect_core::Result<()> {
        Ok(())
    }
    fn version(&self) -> &str {
        "test"
    }
}

#[async_trait]
impl SinkTask for SlowSinkTask {
    async fn put(&mut self, records: &[Record]) -> connect_core::Result<()> {
        self.buffer
            .extend(records.iter().map(|r| r.key.as_i64().expect("an id key")));
        Ok(())
    }
    async fn flush(&mut self, _: &OffsetMap) -> connect_core::Result<()> {
        tokio::time::sleep(self.delay).await;
        let mut flushed = self.flushed.lock().unwrap();
        flushed.extend(self.buffer.drain(..).map(|id| (id, self.instance)));
        Ok(())
    }
}

/// A second member joins while the first one's sink takes 1.5 s per flush: the partitions
/// it gives up are flushed and committed before the newcomer reads them, so across both
/// sinks every record is delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_during_a_slow_flush_loses_and_repeats_nothing() {
    let bootstrap = bootstrap();
    let name = unique("sink-revoke");
    let topic = format!("{name}.orders");
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    produce(&bootstrap, &topic, 1..=2_000).await;
    let flushed: Flushed = Arc::default();
    let start = |instance: &'static str, delay: Duration| {
        Engine::builder()
            .name(instance)
            .source(KafkaTopics::new(config(&bootstrap), [topic.clone()]).group_id(&name))
            .into_connector(SlowSink {
                instance,
                delay,
                flushed: flushed.clone(),
            })
            .start()
    };
    let count = |instance: &str| {
        flushed
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, i)| *i == instance)
            .count()
    };
    let first = start("first", Duration::from_millis(1_500)).await.unwrap();
    wait_until("the first member's first flush", || count("first") > 0).await;
    let second = start("second", Duration::ZERO).await.unwrap();
    // Records keep coming until the group gave the newcomer partitions.
    let mut total = 2_000;
    let deadline = Instant::now() + DEADLINE;
    while count("second") == 0 {
        assert!(
            Instant::now() < deadline,
            "the second member was given no partition"
        );
        produce(&bootstrap, &topic, total + 1..=total + 100).await;
        total += 100;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    produce(&bootstrap, &topic, total + 1..=total + 1_000).await;
    total += 1_000;
    wait_until("every record flushed", || {
        missing(flushed.lock().unwrap().iter().map(|(id, _)| *id), total).is_empty()
    })
    .await;
    first.shutdown().await.unwrap();
    second.shutdown().await.unwrap();
    let flushed = flushed.lock().unwrap();
    let mut copies: HashMap<i64, Vec<&str>> = HashMap::new();
    for (id, instance) in flushed.iter() {
        copies.entry(*id).or_default().push(instance);
    }
    let repeated: Vec<_> = copies.iter().filter(|(_, v)| v.len() > 1).take(5).collect();
    assert!(repeated.is_empty(), "records delivered twice: {repeated:?}");
    assert_eq!(copies.len() as i64, total);
    eprintln!(
        "{total} records, {} flushed by the first member, {} by the second",
        copies.values().filter(|v| v[0] == "first").count(),
        copies.values().filter(|v| v[0] == "second").count()
    );
}

/// A transform that fails on the record with id 77 (a record-level error).
struct Poison;

impl Transform for Poison {
    fn apply(&self, record: Record) -> connect_core::Result<Option<Record>> {
        if record.key.as_i64() == Some(77) {
            return Err(Error::Transform {
                transform: "poison".into(),
                topic: record.topic.to_string(),
                message: "id 77 is poison".into(),
            });
        }
        Ok(Some(record))
    }
}

/// With `errors.tolerance=all` and a dead-letter topic: a message the converter cannot
/// read goes there as it was read, a record a transform rejects goes there converted,
/// both with Kafka Connect's error context headers naming where they were read; every
/// other record reaches the sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_records_go_to_the_dead_letter_topic_with_their_position() {
    let bootstrap = bootstrap();
    let name = unique("sink-dlq");
    let topic = format!("{name}.orders");
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    produce(&bootstrap, &topic, 1..=50).await;
    // Offset 12 of partition 3 (ids 3, 7, .. 47 are offsets 0..=11 there).
    produce_raw(&bootstrap, &topic, 3, "{not json").await;
    produce(&bootstrap, &topic, 51..=100).await;

    let dlq_topic = format!("{name}.dlq");
    let dlq = KafkaDeadLetterQueue::new(config(&bootstrap), &dlq_topic).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sink.out");
    let engine = Engine::builder()
        .name(&name)
        .source(KafkaTopics::new(config(&bootstrap), [topic.clone()]).dead_letter(dlq.clone()))
        .transform("poison", Poison)
        .tolerance(ErrorTolerance::All)
        .dead_letter(dlq)
        .into_connector(file_sink(&out))
        .start()
        .await
        .unwrap();
    wait_until("the good records", || ids_in(&out).len() >= 99).await;
    engine.shutdown().await.unwrap();
    let ids = ids_in(&out);
    assert_eq!(ids.len(), 99);
    assert_eq!(missing(ids.iter().copied(), 100), vec![77]);

    let letters = read_dead_letters(&bootstrap, &dlq_topic, 2);
    let by_stage: HashMap<&str, &DeadLetter> = letters
        .iter()
        .map(|l| (l.headers["__connect.errors.stage"].as_str(), l))
        .collect();
    let unread = by_stage["VALUE_CONVERTER"];
    assert_eq!(unread.value, "{not json", "sent as it was read");
    assert_eq!(unread.headers["__connect.errors.topic"], topic);
    assert_eq!(unread.headers["__connect.errors.partition"], "3");
    assert_eq!(unread.headers["__connect.errors.offset"], "12");
    assert!(
        unread.headers["__connect.errors.exception.message"].contains("invalid JSON"),
        "{:?}",
        unread.headers
    );
    let rejected = by_stage["TRANSFORMATION"];
    assert_eq!(rejected.value, "{\"id\":77}");
    assert_eq!(rejected.headers["__connect.errors.class.name"], "poison");
    assert_eq!(rejected.headers["__connect.errors.partition"], "1");
    // Id 77 is the 20th record of partition 1 (ids 1, 5, .., 77).
    assert_eq!(rejected.headers["__connect.errors.offset"], "19");
}

/// Without tolerance, a message the converter cannot read stops the pipeline with an
/// error naming its topic, partition and offset; nothing after it is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_message_fails_the_pipeline_naming_its_position() {
    let bootstrap = bootstrap();
    let name = unique("sink-bad");
    let topic = format!("{name}.orders");
    create_topic(&bootstrap, &topic, 1).await;
    for payload in ["{\"id\":1}", "{\"id\":2}", "\u{1}binary"] {
        produce_raw(&bootstrap, &topic, 0, payload).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder()
        .name(&name)
        .source(KafkaTopics::new(config(&bootstrap), [topic.clone()]))
        .into_connector(file_sink(&dir.path().join("sink.out")))
        .start()
        .await
        .unwrap();
    let error = tokio::time::timeout(DEADLINE, engine.wait())
        .await
        .expect("the pipeline stops")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&topic) && error.contains("partition 0") && error.contains("offset 2"),
        "{error}"
    );
    let committed = group_offsets(&bootstrap, &format!("connect-{name}"), &topic);
    assert!(
        committed[&0] <= 2,
        "the group moved past the bad message: {committed:?}"
    );
}

#[test]
fn bad_settings_fail_naming_the_key() {
    use connect_core::SourceConnector as _;
    let no_topics = KafkaTopics::new(config("127.0.0.1:9092"), Vec::<String>::new());
    let e = no_topics.validate().unwrap_err().to_string();
    assert!(e.contains("topics"), "{e}");
    let auto_commit = KafkaTopics::new(
        config("127.0.0.1:9092").with_consumer("enable.auto.commit", "true"),
        ["t"],
    );
    let e = auto_commit.validate().unwrap_err().to_string();
    assert!(e.contains("consumer.enable.auto.commit"), "{e}");
    let e = KafkaDeadLetterQueue::with_replication_factor(config("127.0.0.1:9092"), "dlq", 0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("errors.deadletterqueue.topic.replication.factor"),
        "{e}"
    );
}

const CHILD_TOPIC_ENV: &str = "CONNECT_SINK_CHILD_TOPIC";
const CHILD_DIR_ENV: &str = "CONNECT_SINK_CHILD_DIR";

/// The takeover test's child: one member of the group, appending what it reads to
/// `<dir>/<pid>.out`. Runs only when spawned by that test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the takeover test"]
async fn sink_member_child() {
    let (Ok(topic), Ok(dir)) = (std::env::var(CHILD_TOPIC_ENV), std::env::var(CHILD_DIR_ENV))
    else {
        return;
    };
    let out = PathBuf::from(dir).join(format!("{}.out", std::process::id()));
    let kafka = config(&bootstrap())
        .with_consumer("session.timeout.ms", "6000")
        .with_consumer("heartbeat.interval.ms", "500");
    let engine = Engine::builder()
        .name(&format!("{topic}-sink"))
        .source(KafkaTopics::new(kafka, [topic]))
        .commit_policy(connect_core::CommitPolicy::periodic(Duration::from_millis(
            200,
        )))
        .into_connector(file_sink(&out))
        .start()
        .await
        .unwrap();
    engine.wait().await.unwrap();
}

/// Two members in one group, one killed with SIGKILL: the other takes over its
/// partitions (after the session timeout) and the sinks end with every record. On
/// librdkafka's mock cluster, in this parent process: tansu 0.6 never expires a killed
/// member, so its partitions would never move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_s_partitions_move_to_the_other() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("librdkafka's mock cluster");
    let bootstrap = mock.bootstrap_servers();
    let topic = unique("sink-takeover");
    mock.create_topic(&topic, PARTITIONS, 1).unwrap();
    produce(&bootstrap, &topic, 1..=2_000).await;
    let dir = tempfile::tempdir().unwrap();
    let spawn = || {
        connect_core::testing::spawn_test_child(
            "sink_member_child",
            &[
                (CHILD_TOPIC_ENV, topic.as_ref()),
                (CHILD_DIR_ENV, dir.path().as_os_str()),
                ("CONNECT_KAFKA_BOOTSTRAP", bootstrap.as_ref()),
            ],
        )
    };
    let out = |child: &std::process::Child| dir.path().join(format!("{}.out", child.id()));
    let first = spawn();
    wait_until("the first member's output", || {
        !ids_in(&out(&first)).is_empty()
    })
    .await;
    let second = spawn();
    produce(&bootstrap, &topic, 2_001..=3_000).await;
    wait_until("the second member's output", || {
        !ids_in(&out(&second)).is_empty()
    })
    .await;
    let first_out = out(&first);
    connect_core::testing::kill_child(first);
    let written_by_first = ids_in(&first_out).len();
    // Only the second member is alive to read these.
    produce(&bootstrap, &topic, 3_001..=5_000).await;
    let second_out = out(&second);
    let all = || {
        let mut ids = ids_in(&first_out);
        ids.extend(ids_in(&second_out));
        ids
    };
    wait_until("every record in the sinks", || {
        missing(all(), 5_000).is_empty()
    })
    .await;
    let second_ids = ids_in(&second_out);
    connect_core::testing::kill_child(second);
    let partitions_after_kill: HashSet<i64> = second_ids
        .iter()
        .filter(|&&i| i > 3_000)
        .map(|i| i % PARTITIONS as i64)
        .collect();
    assert_eq!(
        partitions_after_kill.len(),
        PARTITIONS as usize,
        "the survivor reads every partition"
    );
    let ids = all();
    assert_partition_order(&second_ids);
    eprintln!(
        "first member wrote {written_by_first}, second {}, {} repeats of uncommitted work",
        second_ids.len(),
        ids.len() - 5_000
    );
}

/// Kafka Connect's sink connector file for the file sink, with a dead-letter topic.
fn sink_properties(bootstrap: &str, name: &str, topic: &str, file: &Path, dlq: &str) -> String {
    format!(
        "name={name}
connector.class=org.apache.kafka.connect.file.FileStreamSinkConnector
tasks.max=1
topics={topic}
file={file}
bootstrap.servers={bootstrap}
consumer.session.timeout.ms=10000
key.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=false
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=false
errors.tolerance=all
errors.deadletterqueue.topic.name={dlq}
errors.deadletterqueue.topic.replication.factor=1
errors.deadletterqueue.context.headers.enable=true
",
        file = file.display()
    )
}

fn registry() -> connect_core::Registry {
    let mut registry = connect_core::Registry::new();
    connect_file::register(&mut registry);
    connect_kafka::register(&mut registry);
    registry
}

/// A sink pipeline from Kafka Connect's sink connector properties: the topics into the
/// file sink, an unreadable message to the dead-letter topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_runs_from_kafka_connect_properties() {
    let bootstrap = bootstrap();
    let name = unique("sink-props");
    let topic = format!("{name}.orders");
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    produce(&bootstrap, &topic, 1..=200).await;
    produce_raw(&bootstrap, &topic, 0, "{oops").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sink.out");
    let dlq = format!("{name}.dlq");
    let props =
        connect_core::Properties::parse(&sink_properties(&bootstrap, &name, &topic, &out, &dlq))
            .unwrap();
    let (built_name, pipeline) = registry().build_sink_pipeline(&props).unwrap();
    assert_eq!(built_name, name);
    let engine = Engine::builder().pipeline(pipeline).start().await.unwrap();
    wait_until("every record in the file", || ids_in(&out).len() >= 200).await;
    engine.shutdown().await.unwrap();
    let ids = ids_in(&out);
    assert_eq!(ids.len(), 200);
    assert!(missing(ids.iter().copied(), 200).is_empty());
    let letters = read_dead_letters(&bootstrap, &dlq, 1);
    assert_eq!(letters[0].value, "{oops");
    assert_eq!(letters[0].headers["__connect.errors.offset"], "50");

    // Every key must be understood, and the topics named once.
    let typo = format!(
        "{}errors.deadletterqueue.topic.replicaton.factor=1\n",
        sink_properties(&bootstrap, &name, &topic, &out, &dlq)
    );
    let e = registry()
        .build_sink_pipeline(&connect_core::Properties::parse(&typo).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("replicaton"), "{e}");
    let both = format!(
        "{}topics.regex=x.*\n",
        sink_properties(&bootstrap, &name, &topic, &out, &dlq)
    );
    let e = registry()
        .build_sink_pipeline(&connect_core::Properties::parse(&both).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("topics.regex"), "{e}");
}

/// The source partition under which the pipeline stores a Kafka partition's offset.
fn kafka_partition(topic: &str, partition: i32) -> connect_core::SourcePartition {
    let mut map = serde_json::Map::new();
    map.insert("partition".into(), Json::from(partition));
    map.insert("topic".into(), Json::from(topic));
    connect_core::SourcePartition::from_map(&map)
}

/// Offsets in the pipeline's own store that are ahead of the group's (a transactional
/// sink's, or a store the user keeps) are where reading starts; several members in one
/// process share the partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_offsets_ahead_of_the_group_win_and_tasks_share_the_partitions() {
    use connect_core::{OffsetStore as _, PipelineSettings, SourceOffset};
    let bootstrap = bootstrap();
    let name = unique("sink-stored");
    let topic = format!("{name}.orders");
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    // One record per produce request: tansu 0.6 answers a fetch from an offset inside a
    // record batch with the next batch, skipping the rest of that one, so the stored
    // offsets must fall on batch boundaries here (Kafka returns the whole batch).
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    for id in 1..=400i64 {
        let (key, value) = (id.to_string(), format!("{{\"id\":{id}}}"));
        let record = FutureRecord::to(&topic)
            .partition((id % PARTITIONS as i64) as i32)
            .key(&key)
            .payload(&value);
        producer
            .send(record, Duration::from_secs(30))
            .await
            .unwrap();
    }
    // Each partition holds 100 records; the store says 60 of each are done.
    let store = connect_core::MemoryOffsetStore::new();
    let done: Vec<_> = (0..PARTITIONS)
        .map(|p| {
            (
                kafka_partition(&topic, p),
                SourceOffset::single("offset", 60),
            )
        })
        .collect();
    store.write(&name, &done).await.unwrap();
    store.flush().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sink.out");
    let engine = Engine::builder()
        .name(&name)
        .source(KafkaTopics::new(config(&bootstrap), [topic.clone()]))
        .settings(PipelineSettings {
            tasks_max: 3,
            ..PipelineSettings::default()
        })
        .offsets(store.clone())
        .into_connector(file_sink(&out))
        .start()
        .await
        .unwrap();
    wait_until("the records after the stored offsets", || {
        ids_in(&out).len() >= 160
    })
    .await;
    engine.shutdown().await.unwrap();
    let ids = ids_in(&out);
    assert_eq!(ids.len(), 160, "each record after the stored offsets, once");
    // Record k (from 0) of partition p is id 4k + p, or 4k + 4 in partition 0.
    assert!(
        ids.iter().all(|&id| (id - 1) / 4 >= 60),
        "a record before the stored offset"
    );
    assert_partition_order(&ids);
    assert_eq!(
        group_offsets(&bootstrap, &format!("connect-{name}"), &topic),
        (0..PARTITIONS)
            .map(|p| (p, 100))
            .collect::<BTreeMap<_, _>>()
    );
}

/// A broker outage (SIGSTOP for 4 s, several request timeouts long) while the sink runner
/// is reading: it goes on afterwards, and the sink ends with every record in partition
/// order (repeats only of what was not committed). On a tansu of the test's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_runner_goes_on_through_a_broker_outage() {
    let broker = PrivateBroker::start();
    let bootstrap = broker.bootstrap.clone();
    let topic = unique("sink-outage");
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    produce(&bootstrap, &topic, 1..=40_000).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sink.out");
    let kafka = config(&bootstrap)
        .with_consumer("socket.timeout.ms", "1000")
        .with_consumer("fetch.wait.max.ms", "100");
    let engine = Engine::builder()
        .name(&topic)
        .source(KafkaTopics::new(kafka, [topic.clone()]))
        .commit_policy(connect_core::CommitPolicy::periodic(Duration::from_millis(
            100,
        )))
        .into_connector(file_sink(&out))
        .start()
        .await
        .unwrap();
    wait_until("records before the outage", || !ids_in(&out).is_empty()).await;
    broker.signal("-STOP");
    let at_stop = ids_in(&out).len();
    // The outage itself, not a wait for a condition: requests time out and are retried.
    tokio::time::sleep(Duration::from_secs(4)).await;
    broker.signal("-CONT");
    produce(&bootstrap, &topic, 40_001..=41_000).await;
    wait_until("every record after the outage", || {
        missing(ids_in(&out), 41_000).is_empty()
    })
    .await;
    let report = engine
        .shutdown()
        .await
        .expect("the pipeline survives the outage");
    assert!(report.drained() && report.committed(), "{report:?}");
    let ids = ids_in(&out);
    assert_partition_order(&ids);
    eprintln!(
        "{at_stop} records in the sink when the broker stopped, {} at the end ({} repeats)",
        ids.len(),
        ids.len() - 41_000
    );
    assert!(
        at_stop < 40_000,
        "the outage came after the backlog was read"
    );
}
