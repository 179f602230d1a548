//! The sink runner: Kafka topics into a file, as a Kafka Connect sink worker would run a
//! file sink, e.g. the topics `pg_to_kafka` writes. The consumer group
//! (`connect-kafka-to-file`) commits its offsets only after the file was synced, so a
//! restart (or a second instance, which shares the partitions) goes on without losing a
//! record. Records a transform rejects, and messages the converter cannot read, go to the
//! dead-letter topic `kafka-to-file.dlq` with Kafka Connect's `__connect.errors.*` headers.
//!
//! ```text
//! KAFKA=127.0.0.1:9092 cargo run --example kafka_to_file -- 'shop\..*' changes.jsonl   # Ctrl-C to stop
//! ```

use connect_core::{Engine, ErrorTolerance};
use connect_examples::env_or;
use connect_file::{FileSink, FileSinkConfig};
use connect_kafka::{KafkaConfig, KafkaDeadLetterQueue, KafkaTopics};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    connect_examples::init_logging();
    let mut args = std::env::args().skip(1);
    let pattern = args.next().unwrap_or_else(|| "shop\\..*".to_owned());
    let file = args.next().unwrap_or_else(|| "changes.jsonl".to_owned());
    let kafka = KafkaConfig::new(env_or("KAFKA", "127.0.0.1:9092"));
    let dlq = KafkaDeadLetterQueue::new(kafka.clone(), "kafka-to-file.dlq")?;
    let engine = Engine::builder()
        .name("kafka-to-file")
        .source(KafkaTopics::matching(kafka, &pattern).dead_letter(dlq.clone()))
        .tolerance(ErrorTolerance::All)
        .dead_letter(dlq)
        .handle_signals(true)
        .into_connector(FileSink::new(FileSinkConfig::new(&file))?)
        .start()
        .await?;
    eprintln!("appending the topics matching `{pattern}` to {file}; Ctrl-C to stop");
    let report = engine.wait().await?;
    eprintln!(
        "stopped: drained {}, committed {}",
        report.drained(),
        report.committed()
    );
    Ok(())
}
