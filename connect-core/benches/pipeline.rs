//! Pipeline benchmark: N synthetic Debezium change events (default 1,000,000;
//! `BENCH_EVENTS`) → transforms → JSON converter → channel, with ratios against two
//! baselines measured in the same run (absolute times on shared machines lie):
//!
//! (a) engine overhead: a bare loop doing the same work (generate the same events, run
//!     the same transform chain, send batches through a tokio mpsc, convert to JSON on
//!     the receiving side) without the engine. Aim: engine / bare >= 0.5.
//! (b) converter cost: serde_json serialising an equivalent plain `#[derive(Serialize)]`
//!     struct vs our `JsonConverter` writing the same payload (schemas off, as serde has
//!     no schema). Aim: serde time / our time >= 0.7.
//!
//! `cargo bench -p connect-core --bench pipeline` (run with `RUST_BACKTRACE=0`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_core::testing::{OrdersSchemas, SyntheticSource};
use connect_core::transform::{Filter, RegexRouter, TopicNameMatches, TransformChain};
use connect_core::{Converter, Engine, JsonConverter, Record, SourcePartition};
use serde::Serialize;

const BATCH: usize = 2048;
const ROUNDS: usize = 3;

fn chain() -> TransformChain {
    let mut c = TransformChain::new();
    c.push(
        "route",
        RegexRouter::new(r"bench\.(.*)", "cdc.$1").expect("valid regex"),
    );
    c.push_when(
        "dropAudit",
        Filter,
        Arc::new(TopicNameMatches::new(r"audit\..*").expect("valid regex")),
        false,
    );
    c
}

/// Converts a batch to JSON the way a consumer would; returns bytes written.
fn to_json(conv: &JsonConverter, records: &[Record], buf: &mut Vec<u8>) -> usize {
    let mut total = 0;
    for r in records {
        buf.clear();
        conv.serialize(&r.topic, r.value_schema.as_ref(), &r.value, buf)
            .expect("converts");
        total += buf.len();
    }
    total
}

async fn run_engine(events: u64) -> (Duration, usize) {
    let start = Instant::now();
    let (engine, mut rx) = Engine::builder()
        .name("bench")
        .source(SyntheticSource::new("bench", Some(events)).batch(BATCH))
        .transforms(chain())
        .into_channel(64)
        .start()
        .await
        .expect("engine starts");
    let consumer = tokio::spawn(async move {
        let conv = JsonConverter::default();
        let mut buf = Vec::with_capacity(8192);
        let (mut n, mut bytes) = (0u64, 0usize);
        while let Some(batch) = rx.recv().await {
            n += batch.len() as u64;
            bytes += to_json(&conv, batch.records(), &mut buf);
            batch.ack();
        }
        (n, bytes)
    });
    let report = engine.wait().await.expect("engine runs");
    let (n, bytes) = consumer.await.expect("consumer");
    assert!(report.drained());
    assert_eq!(n, events);
    (start.elapsed(), bytes)
}

async fn run_bare(events: u64) -> (Duration, usize) {
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Record>>(64);
    let producer = tokio::spawn(async move {
        let schemas = OrdersSchemas::default();
        let chain = chain();
        let topic: Arc<str> = Arc::from("bench.inventory.orders");
        let partition = SourcePartition::server("bench-0");
        let mut seq = 0;
        while seq < events {
            let end = (seq + BATCH as u64).min(events);
            let batch: Vec<Record> = (seq + 1..=end)
                .filter_map(|s| {
                    chain
                        .apply(schemas.event(&topic, &partition, s, 16))
                        .expect("transforms")
                })
                .collect();
            seq = end;
            tx.send(batch).await.expect("receiver alive");
        }
    });
    let conv = JsonConverter::default();
    let mut buf = Vec::with_capacity(8192);
    let (mut n, mut bytes) = (0u64, 0usize);
    while let Some(batch) = rx.recv().await {
        n += batch.len() as u64;
        bytes += to_json(&conv, &batch, &mut buf);
    }
    producer.await.expect("producer");
    assert_eq!(n, events);
    (start.elapsed(), bytes)
}

#[derive(Serialize)]
struct PlainRow<'a> {
    id: i64,
    customer: &'a str,
    amount: String,
    quantity: i32,
    created_at: i64,
}

#[derive(Serialize)]
struct PlainSource<'a> {
    version: &'a str,
    connector: &'a str,
    name: &'a str,
    ts_ms: i64,
    db: &'a str,
    schema: &'a str,
    table: &'a str,
    lsn: i64,
}

#[derive(Serialize)]
struct PlainEnvelope<'a> {
    before: Option<PlainRow<'a>>,
    after: Option<PlainRow<'a>>,
    source: PlainSource<'a>,
    transaction: Option<()>,
    op: &'a str,
    ts_ms: i64,
    ts_us: i64,
    ts_ns: i64,
}

fn plain(id: i64) -> PlainEnvelope<'static> {
    PlainEnvelope {
        before: None,
        after: Some(PlainRow {
            id,
            customer: "customer-name-pa",
            amount: String::from("MDk="),
            quantity: (id % 50) as i32,
            created_at: 1_700_000_000_000_000 + id,
        }),
        source: PlainSource {
            version: "3.6.3.Final",
            connector: "postgresql",
            name: "bench",
            ts_ms: 1_700_000_000_000,
            db: "bench",
            schema: "inventory",
            table: "orders",
            lsn: id,
        },
        transaction: None,
        op: "c",
        ts_ms: 0,
        ts_us: 0,
        ts_ns: 0,
    }
}

/// Serialisation only: the same N payloads through serde_json and through our converter.
fn converters(events: u64) -> (Duration, Duration, Duration, usize, usize) {
    let schemas = OrdersSchemas::default();
    let topic: Arc<str> = Arc::from("bench.inventory.orders");
    let partition = SourcePartition::server("bench-0");
    let records: Vec<Record> = (1..=events.min(200_000))
        .map(|s| schemas.event(&topic, &partition, s, 16))
        .collect();
    let plains: Vec<PlainEnvelope> = (1..=events.min(200_000) as i64).map(plain).collect();
    let repeat = (events / records.len() as u64).max(1);
    let mut buf = Vec::with_capacity(8192);

    let mut serde_bytes = 0;
    let t = Instant::now();
    for _ in 0..repeat {
        for p in &plains {
            buf.clear();
            serde_json::to_writer(&mut buf, p).expect("serialises");
            serde_bytes += buf.len();
        }
    }
    let serde_time = t.elapsed();

    let ours = JsonConverter::new(false);
    let mut our_bytes = 0;
    let t = Instant::now();
    for _ in 0..repeat {
        our_bytes += to_json(&ours, &records, &mut buf);
    }
    let our_time = t.elapsed();

    let with_schema = JsonConverter::default();
    let t = Instant::now();
    for _ in 0..repeat {
        to_json(&with_schema, &records, &mut buf);
    }
    (serde_time, our_time, t.elapsed(), serde_bytes, our_bytes)
}

fn rate(events: u64, d: Duration) -> f64 {
    events as f64 / d.as_secs_f64()
}

fn main() {
    let events: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "pipeline benchmark: {events} change events, batches of {BATCH}, best of {ROUNDS} rounds"
    );
    let mut best_engine = Duration::MAX;
    let mut best_bare = Duration::MAX;
    let mut json_bytes = 0;
    for round in 1..=ROUNDS {
        let (e, bytes) = rt.block_on(run_engine(events));
        let (b, bare_bytes) = rt.block_on(run_bare(events));
        assert_eq!(
            bytes, bare_bytes,
            "engine and bare loop produced different JSON"
        );
        json_bytes = bytes;
        println!(
            "  round {round}: engine {:>9.0} ev/s   bare mpsc loop {:>9.0} ev/s",
            rate(events, e),
            rate(events, b)
        );
        best_engine = best_engine.min(e);
        best_bare = best_bare.min(b);
    }
    let ratio_a = rate(events, best_engine) / rate(events, best_bare);
    println!(
        "engine:  {:.0} events/s ({:.0} MB/s of JSON with schemas)",
        rate(events, best_engine),
        json_bytes as f64 / best_engine.as_secs_f64() / 1e6
    );
    println!("(a) engine / bare mpsc loop = {ratio_a:.2}  (aim >= 0.5)");

    let mut best = (Duration::MAX, Duration::MAX, Duration::MAX);
    let mut sizes = (0, 0);
    for _ in 0..ROUNDS {
        let (s, o, w, sb, ob) = converters(events);
        best = (best.0.min(s), best.1.min(o), best.2.min(w));
        sizes = (sb, ob);
    }
    let ratio_b = best.1.as_secs_f64().recip() / best.0.as_secs_f64().recip();
    println!(
        "converter: ours {:.0} ev/s, serde_json plain struct {:.0} ev/s, ours with schemas {:.0} ev/s",
        rate(events, best.1),
        rate(events, best.0),
        rate(events, best.2)
    );
    println!(
        "(b) ours / serde_json = {ratio_b:.2}  (aim >= 0.7; payload bytes {} vs {})",
        sizes.1, sizes.0
    );
}
