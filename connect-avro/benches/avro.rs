//! Avro against JSON on the same work, in one run (absolute times on shared machines lie):
//! N synthetic Debezium change events (default 1,000,000; `BENCH_EVENTS`, the foundation
//! bench's `OrdersSchemas` events) through `unwrap → RegexRouter` and then either the JSON
//! converter (schemas on, the foundation bench's path) or the Avro converter (Confluent
//! wire format; the schema registered once with the in-process registry of
//! `connect_avro::testing`). Prints records/s of each and Avro / JSON throughput.
//!
//! `RUST_BACKTRACE=0 cargo bench -p connect-avro --bench avro`

use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_avro::testing::Registry;
use connect_avro::{AvroConfig, AvroConverter, RegistryConfig};
use connect_core::testing::bench::{env_or, rate};
use connect_core::testing::OrdersSchemas;
use connect_core::transform::{ExtractNewRecordState, RegexRouter, TransformChain};
use connect_core::{Converter, JsonConverter, SourcePartition};

const BATCH: u64 = 2048;

fn chain() -> TransformChain {
    let mut c = TransformChain::new();
    c.push("unwrap", ExtractNewRecordState::new());
    c.push(
        "route",
        RegexRouter::new(r"bench\.(.*)", "cdc.$1").expect("valid regex"),
    );
    c
}

/// Generates `events` change events in batches, transforms them and converts each value;
/// returns the time taken and the bytes written.
fn run(schemas: &OrdersSchemas, events: u64, converter: &dyn Converter) -> (Duration, usize) {
    let chain = chain();
    let topic: Arc<str> = Arc::from("bench.inventory.orders");
    let partition = SourcePartition::server("bench-0");
    let mut buf = Vec::with_capacity(1 << 20);
    let mut bytes = 0;
    let start = Instant::now();
    let mut seq = 0;
    while seq < events {
        let end = (seq + BATCH).min(events);
        let batch: Vec<_> = (seq + 1..=end)
            .filter_map(|s| {
                chain
                    .apply(schemas.event(&topic, &partition, s, 16))
                    .expect("transforms")
            })
            .collect();
        for r in &batch {
            buf.clear();
            converter
                .serialize(&r.topic, r.value_schema.as_ref(), &r.value, &mut buf)
                .expect("converts");
            bytes += buf.len();
        }
        seq = end;
    }
    (start.elapsed(), bytes)
}

fn main() {
    let events: u64 = env_or("BENCH_EVENTS", 1_000_000);
    let registry = Registry::start(None);
    let avro = AvroConverter::new(AvroConfig::new(RegistryConfig::new(&registry.url)));
    let json = JsonConverter::new(true);
    // One set of schemas for every run, as a connector keeps its table's schema.
    let schemas = OrdersSchemas::default();
    // Warm both (the first Avro record registers its schema).
    run(&schemas, 10_000, &json);
    run(&schemas, 10_000, &avro);
    let (mut best_json, mut best_avro) = (Duration::MAX, Duration::MAX);
    let (mut json_bytes, mut avro_bytes) = (0, 0);
    for _ in 0..env_or("BENCH_REPEAT", 3) {
        let (t, b) = run(&schemas, events, &json);
        (best_json, json_bytes) = (best_json.min(t), b);
        let (t, b) = run(&schemas, events, &avro);
        (best_avro, avro_bytes) = (best_avro.min(t), b);
    }
    println!(
        "unwrap -> RegexRouter -> JSON (schemas on): {:.0} records/s, {:.0} bytes/record",
        rate(events, best_json),
        json_bytes as f64 / events as f64
    );
    println!(
        "unwrap -> RegexRouter -> Avro (Confluent wire format): {:.0} records/s, {:.0} bytes/record",
        rate(events, best_avro),
        avro_bytes as f64 / events as f64
    );
    println!(
        "Avro / JSON throughput: {:.2}",
        best_json.as_secs_f64() / best_avro.as_secs_f64()
    );
    let registrations = registry
        .seen()
        .iter()
        .filter(|s| s.method == "POST")
        .count();
    assert_eq!(registrations, 1, "one schema, registered once");
}
