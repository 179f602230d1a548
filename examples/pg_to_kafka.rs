//! A PostgreSQL table's changes into Kafka topics, as Debezium's PostgreSQL connector
//! with Kafka Connect would write them (`<prefix>.<schema>.<table>`, Debezium's JSON),
//! with the offsets in Kafka Connect's `connect-offsets` topic: stop it (Ctrl-C) or kill
//! it, start it again, and it resumes where the committed offset says.
//!
//! Needs a PostgreSQL with `wal_level=logical` and a Kafka-protocol broker
//! (`scripts/services.sh` and `scripts/services.sh kafka` set both up on 127.0.0.1).
//!
//! ```text
//! psql -h 127.0.0.1 -U postgres -c "CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, name text)"
//! PGHOST=127.0.0.1 PGUSER=postgres PGPASSWORD=postgres PGDATABASE=postgres \
//!     KAFKA=127.0.0.1:9092 cargo run --example pg_to_kafka -- public.items   # Ctrl-C to stop
//! ```

use connect_core::Engine;
use connect_examples::{env_or, postgres_from_env};
use connect_kafka::{IntoKafka, KafkaConfig, KafkaDestination, KafkaOffsetStore, TopicCreation};
use connect_postgres::PostgresSource;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    connect_examples::init_logging();
    let table = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "public.items".to_owned());
    let source = postgres_from_env("shop", "pg_to_kafka_example", &table)?;
    let kafka = KafkaConfig::new(env_or("KAFKA", "127.0.0.1:9092"))
        .with_topic_creation(TopicCreation::default())
        .with_offset_topic("connect-offsets", 1, -1);
    let engine = Engine::builder()
        .name("pg-to-kafka")
        .source(PostgresSource::new(source)?)
        .offsets(KafkaOffsetStore::new(kafka.clone())?)
        .handle_signals(true)
        .into_kafka(KafkaDestination::new(kafka)?)
        .start()
        .await?;
    eprintln!("streaming {table} into topic shop.{table}; Ctrl-C to stop");
    let report = engine.wait().await?;
    eprintln!(
        "stopped: drained={} committed={} offsets={:?}",
        report.drained(),
        report.committed(),
        report.pipelines.first().map(|p| &p.offsets)
    );
    Ok(())
}
