//! Kafka destination benchmark: N synthetic Debezium change events (default 200,000;
//! `BENCH_EVENTS`) → engine → JSON converter (schemas on) → Kafka, a fresh 4-partition
//! topic per run, against a baseline measured in the same run: a bare rdkafka producer
//! with the same settings sending the same key and value bytes, converted beforehand.
//! Aim: ours / bare >= 0.8. Both sides count until every message is acknowledged.
//!
//! Then the sink runner on what the bare producer wrote: `KafkaTopics` (a fresh group per
//! run) → engine → a callback counting records, against a bare consumer that reads the
//! same partitions and converts keys and values with the same JSON converter. Both sides
//! count until every message was read and converted.
//!
//! Needs the broker of `scripts/services.sh kafka` (`CONNECT_KAFKA_BOOTSTRAP`, default
//! 127.0.0.1:9092). `RUST_BACKTRACE=0 cargo bench -p connect-kafka --bench kafka`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_core::testing::bench::{best_of, env_or, print_peak_rss, rate};
use connect_core::testing::{OrdersSchemas, SyntheticSource};
use connect_core::{Converter, Engine, JsonConverter, SourcePartition};
use connect_kafka::{IntoKafka, KafkaConfig, KafkaDestination, KafkaTopics};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use rdkafka::{Offset, TopicPartitionList};

// Records are built on one thread and freed on another (the consumer thread and the
// engine's, the engine's and librdkafka's); glibc's malloc serialises such cross-thread
// frees on arena locks. A service embedding us picks its allocator; this benchmark uses
// mimalloc, for both sides of each ratio alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: i32 = 4;
const NAME_LEN: usize = 24;

fn bootstrap() -> String {
    std::env::var("CONNECT_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

async fn fresh_topic(bootstrap: &str, prefix: &str) -> Option<String> {
    let topic = format!(
        "{prefix}-{}-{}.inventory.orders",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos()
    );
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let created = admin
        .create_topics(
            [&NewTopic::new(
                &topic,
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .ok()?;
    created.into_iter().all(|r| r.is_ok()).then_some(topic)
}

/// The engine with the Kafka destination; the source's name is the topic's prefix.
async fn ours(bootstrap: &str, events: u64) -> Option<Duration> {
    let topic = fresh_topic(bootstrap, "bench-ours").await?;
    let name = topic.trim_end_matches(".inventory.orders").to_owned();
    let start = Instant::now();
    let engine = Engine::builder()
        .name(&name)
        .source(
            SyntheticSource::new(&name, Some(events))
                .batch(2048)
                .name_len(NAME_LEN, NAME_LEN),
        )
        .into_kafka(KafkaDestination::new(KafkaConfig::new(bootstrap)).ok()?)
        .start()
        .await
        .ok()?;
    let report = engine.wait().await.ok()?;
    assert!(report.committed());
    Some(start.elapsed())
}

/// A bare producer with our producer settings sending pre-converted bytes.
fn bare(bootstrap: &str, topic: &str, messages: &[(Vec<u8>, Vec<u8>)]) -> Option<Duration> {
    let mut config = ClientConfig::new();
    for (k, v) in [
        ("bootstrap.servers", bootstrap),
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("partitioner", "murmur2_random"),
        ("message.timeout.ms", "0"),
        ("compression.type", "lz4"),
        ("linger.ms", "5"),
    ] {
        config.set(k, v);
    }
    let producer: ThreadedProducer<_> = config.create().ok()?;
    let start = Instant::now();
    for (key, value) in messages {
        let mut record = BaseRecord::to(topic).key(&key[..]).payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => panic!("bare producer: {e}"),
            }
        }
    }
    producer.flush(Timeout::Never).ok()?;
    Some(start.elapsed())
}

/// The sink runner reading `topic` to its end into a counting callback.
async fn ours_reading(bootstrap: &str, topic: &str, events: u64) -> Option<Duration> {
    let counted = Arc::new(AtomicU64::new(0));
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    static RUN: AtomicU64 = AtomicU64::new(0);
    // A fresh group per run: each run reads the topic from the start.
    let group = format!(
        "bench-sink-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    );
    let start = Instant::now();
    let engine = Engine::builder()
        .name(&group)
        .source(KafkaTopics::new(KafkaConfig::new(bootstrap), [topic]))
        .into_callback(move |records, committer| {
            let seen =
                counted.fetch_add(records.len() as u64, Ordering::Relaxed) + records.len() as u64;
            committer.mark_batch_finished();
            if seen >= events {
                if let Some(tx) = done_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            }
            async { Ok(()) }
        })
        .start()
        .await
        .ok()?;
    done.await.ok()?;
    let elapsed = start.elapsed();
    engine.shutdown().await.ok()?;
    Some(elapsed)
}

/// A bare consumer reading every partition of `topic` from the start, converting each key
/// and value with the JSON converter.
fn bare_reading(bootstrap: &str, topic: &str, events: u64) -> Option<Duration> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-bare-reader")
        .set("enable.auto.commit", "false")
        .create()
        .ok()?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .ok()?;
    }
    let json = JsonConverter::default();
    let start = Instant::now();
    consumer.assign(&assignment).ok()?;
    let mut read = 0;
    while read < events {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let key = json.deserialize(topic, m.key()).ok()?;
                let value = json.deserialize(topic, m.payload()).ok()?;
                std::hint::black_box((key, value));
                read += 1;
            }
            Some(Err(e)) => panic!("bare consumer: {e}"),
            None => {}
        }
    }
    Some(start.elapsed())
}

fn converted(topic: &str, events: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let schemas = OrdersSchemas::default();
    let topic_arc: Arc<str> = Arc::from(topic);
    let partition = SourcePartition::server("bench");
    let json = JsonConverter::default();
    (1..=events)
        .map(|seq| {
            let r = schemas.event(&topic_arc, &partition, seq, NAME_LEN);
            let (mut key, mut value) = (Vec::new(), Vec::new());
            json.serialize(topic, r.key_schema.as_ref(), &r.key, &mut key)
                .expect("key converts");
            json.serialize(topic, r.value_schema.as_ref(), &r.value, &mut value)
                .expect("value converts");
            (key, value)
        })
        .collect()
}

/// Prints both rates and their ratio.
fn print_ratio(events: u64, bare: (&str, Duration), ours: (&str, Duration), note: &str) {
    let (bare_rate, ours_rate) = (rate(events, bare.1), rate(events, ours.1));
    println!("{:<44} {bare_rate:>9.0} events/s", format!("{}:", bare.0));
    println!("{:<44} {ours_rate:>9.0} events/s", format!("{}:", ours.0));
    println!("ratio ours / bare: {:.2} ({note})", ours_rate / bare_rate);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built by `cargo test --benches --no-run`, run only by `cargo bench`
    }
    let events: u64 = env_or("BENCH_EVENTS", 200_000);
    let bootstrap = bootstrap();
    let Some(probe) = fresh_topic(&bootstrap, "bench-probe").await else {
        println!("no Kafka broker at {bootstrap}: run `scripts/services.sh kafka` first");
        return;
    };
    let messages = Arc::new(converted(&probe, events));
    let bytes: usize = messages.iter().map(|(k, v)| k.len() + v.len()).sum();
    println!(
        "{events} events, {:.0} bytes each (key + value, Debezium JSON with schemas), {PARTITIONS} partitions, best of {}",
        bytes as f64 / events as f64,
        connect_core::testing::bench::repeats()
    );
    let written = Arc::new(std::sync::Mutex::new(None));
    let bare_time = best_of(|| {
        let (bootstrap, messages, written) = (bootstrap.clone(), messages.clone(), written.clone());
        async move {
            let topic = fresh_topic(&bootstrap, "bench-bare").await?;
            *written.lock().unwrap() = Some(topic.clone());
            tokio::task::spawn_blocking(move || bare(&bootstrap, &topic, &messages))
                .await
                .ok()?
        }
    })
    .await
    .expect("the bare producer runs");
    let ours_time = best_of(|| ours(&bootstrap, events))
        .await
        .expect("the engine runs");
    print_ratio(
        events,
        ("bare rdkafka producer (pre-converted bytes)", bare_time),
        ("engine → JSON → KafkaDestination", ours_time),
        "aim >= 0.8",
    );

    let topic = written
        .lock()
        .unwrap()
        .clone()
        .expect("the bare producer wrote a topic");
    let bare_read = best_of(|| {
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        async move {
            tokio::task::spawn_blocking(move || bare_reading(&bootstrap, &topic, events))
                .await
                .ok()?
        }
    })
    .await
    .expect("the bare consumer runs");
    let ours_read = best_of(|| ours_reading(&bootstrap, &topic, events))
        .await
        .expect("the sink runner runs");
    print_ratio(
        events,
        ("bare rdkafka consumer + JSON converter", bare_read),
        ("KafkaTopics → engine → callback", ours_read),
        "sink runner",
    );
    print_peak_rss([]);
}
