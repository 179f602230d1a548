//! PostgreSQL source benchmark against raw rates measured in the same run:
//! - snapshot of `BENCH_ROWS` rows (default 1,000,000): `COPY ... TO STDOUT` read by a
//!   client (the `\copy` rate) vs our snapshot into a channel, typed (no serialisation)
//!   and as Debezium JSON with schemas;
//! - streaming of a backlog of the same number of inserts (transactions of 10k):
//!   `pg_recvlogical` (pgoutput, to /dev/null) vs our stream, typed and JSON.
//!
//! Targets (issue 4): typed snapshot >= 0.6x COPY, typed streaming >= 0.9x pg_recvlogical,
//! JSON streaming >= 0.75x pg_recvlogical. Needs the PostgreSQL of `scripts/services.sh`.
//!
//! `RUST_BACKTRACE=0 cargo bench -p connect-postgres --bench pg`

use std::time::{Duration, Instant};

use connect_core::{Converter, Engine, JsonConverter};
use connect_postgres::{PostgresConfig, PostgresSource, PublicationMode, SnapshotMode};
use futures::StreamExt;
use tokio_postgres::{Client, NoTls};

const HOST: &str = "127.0.0.1";
const USER: &str = "postgres";
const PASSWORD: &str = "postgres";

async fn connect(db: &str) -> Client {
    let (c, conn) = tokio_postgres::connect(
        &format!("host={HOST} user={USER} password={PASSWORD} dbname={db}"),
        NoTls,
    )
    .await
    .expect("PostgreSQL reachable (run scripts/services.sh)");
    tokio::spawn(conn);
    c
}

fn config(db: &str, slot: &str, mode: SnapshotMode) -> PostgresConfig {
    PostgresConfig::new(HOST, USER, PASSWORD, db, "bench")
        .with_slot(slot)
        .with_publication("bench_pub", PublicationMode::Disabled)
        .with_snapshot_mode(mode)
        .with_tables(["public\\.orders.*"])
        .expect("valid regex")
}

/// Runs our source until `expected` change events arrived; returns the elapsed time.
async fn ours(config: PostgresConfig, expected: u64, json: bool) -> Duration {
    let start = Instant::now();
    let (engine, mut rx) = Engine::builder()
        .name("bench")
        .source(PostgresSource::new(config).expect("valid config"))
        .into_channel(64)
        .start()
        .await
        .expect("engine starts");
    let conv = JsonConverter::default();
    let mut buf = Vec::with_capacity(8192);
    let mut n = 0u64;
    while n < expected {
        let batch = rx.recv().await.expect("engine running");
        for r in batch.records() {
            if r.is_tombstone() {
                continue;
            }
            n += 1;
            if json {
                buf.clear();
                conv.serialize(&r.topic, r.value_schema.as_ref(), &r.value, &mut buf)
                    .expect("converts");
            }
        }
        batch.ack();
    }
    let elapsed = start.elapsed();
    drop(rx);
    let _ = engine.shutdown().await;
    elapsed
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let db = format!("connect_bench_{}", std::process::id());
    let admin = connect("postgres").await;
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let client = connect(&db).await;
    let table = "(id int PRIMARY KEY, customer text NOT NULL, amount numeric(12,2), qty int, created timestamptz, note text)";
    client
        .batch_execute(&format!(
            "CREATE TABLE orders {table}; CREATE TABLE orders_stream {table};
             INSERT INTO orders SELECT g, 'customer-' || g, g * 1.25, g % 50, now(), 'note for order ' || g FROM generate_series(1, {rows}) g;
             CREATE PUBLICATION bench_pub FOR TABLE orders, orders_stream;"
        ))
        .await
        .unwrap();
    client.batch_execute("VACUUM ANALYZE orders").await.unwrap();
    println!("PostgreSQL benchmark: {rows} rows");

    // Snapshot: raw COPY to the client, then ours.
    let start = Instant::now();
    let mut copied = 0u64;
    let mut stream = Box::pin(
        client
            .copy_out("COPY (SELECT * FROM orders) TO STDOUT")
            .await
            .unwrap(),
    );
    while let Some(chunk) = stream.next().await {
        chunk.unwrap();
        copied += 1;
    }
    let copy_time = start.elapsed();
    assert_eq!(copied, rows);
    let snap_cfg = |slot: &str| {
        let mut c = config(&db, slot, SnapshotMode::InitialOnly).with_drop_slot_on_stop(true);
        c.table_include = vec![regex::Regex::new("^public\\.orders$").unwrap()];
        c
    };
    let snap_typed = ours(snap_cfg("bench_snap_typed"), rows, false).await;
    let snap_json = ours(snap_cfg("bench_snap_json"), rows, true).await;

    // Streaming: three slots see the same backlog.
    for slot in ["bench_raw", "bench_typed", "bench_json"] {
        client
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&slot],
            )
            .await
            .unwrap();
    }
    let mut id = 1;
    while id <= rows {
        let end = (id + 9_999).min(rows);
        client
            .batch_execute(&format!(
                "INSERT INTO orders_stream SELECT g, 'customer-' || g, g * 1.25, g % 50, now(), 'note for order ' || g FROM generate_series({id}, {end}) g"
            ))
            .await
            .unwrap();
        id = end + 1;
    }
    let end_lsn: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let recvlogical = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.path().join("bin/pg_recvlogical"))
        .filter(|p| p.exists());
    let raw_stream = recvlogical.map(|bin| {
        let start = Instant::now();
        let status = std::process::Command::new(bin)
            .args([
                "-h",
                HOST,
                "-U",
                USER,
                "-d",
                &db,
                "--slot",
                "bench_raw",
                "--start",
                "-o",
                "proto_version=1",
                "-o",
                "publication_names=bench_pub",
                "-E",
                &end_lsn,
                "-f",
                "/dev/null",
                "--no-loop",
            ])
            .env("PGPASSWORD", PASSWORD)
            .status()
            .expect("pg_recvlogical runs");
        assert!(status.success(), "pg_recvlogical failed");
        start.elapsed()
    });
    let stream_cfg = |slot: &str| {
        let mut c = config(&db, slot, SnapshotMode::NoData);
        c.table_include = vec![regex::Regex::new("^public\\.orders_stream$").unwrap()];
        c
    };
    let stream_typed = ours(stream_cfg("bench_typed"), rows, false).await;
    let stream_json = ours(stream_cfg("bench_json"), rows, true).await;

    println!(
        "snapshot  COPY to client    {:>10.0} rows/s",
        rate(rows, copy_time)
    );
    println!(
        "snapshot  ours, typed       {:>10.0} events/s  ratio {:.2} (target >= 0.6)",
        rate(rows, snap_typed),
        copy_time.as_secs_f64() / snap_typed.as_secs_f64()
    );
    println!(
        "snapshot  ours, JSON        {:>10.0} events/s  (Debezium here: 35k-40k, see shared/bench)",
        rate(rows, snap_json)
    );
    match raw_stream {
        Some(raw) => {
            println!(
                "streaming pg_recvlogical    {:>10.0} rows/s",
                rate(rows, raw)
            );
            println!(
                "streaming ours, typed       {:>10.0} events/s  ratio {:.2} (target >= 0.9)",
                rate(rows, stream_typed),
                raw.as_secs_f64() / stream_typed.as_secs_f64()
            );
            println!(
                "streaming ours, JSON        {:>10.0} events/s  ratio {:.2} (target >= 0.75)",
                rate(rows, stream_json),
                raw.as_secs_f64() / stream_json.as_secs_f64()
            );
        }
        None => {
            println!("streaming pg_recvlogical    not found (package postgresql-client)");
            println!(
                "streaming ours, typed       {:>10.0} events/s",
                rate(rows, stream_typed)
            );
            println!(
                "streaming ours, JSON        {:>10.0} events/s",
                rate(rows, stream_json)
            );
        }
    }
    println!(
        "peak RSS of this benchmark process: {:.0} MB",
        peak_rss_mb()
    );

    for slot in ["bench_raw", "bench_typed", "bench_json"] {
        let _ = admin
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
}
