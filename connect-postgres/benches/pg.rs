//! PostgreSQL source benchmark against raw rates measured in the same run:
//! - snapshot of `BENCH_ROWS` rows (default 1,000,000): psql's `\copy ... TO '/dev/null'`
//!   (the raw rate, timed by psql) and `COPY ... TO STDOUT` read by this process
//!   (a client that only counts rows: a stricter baseline) vs our snapshot into a
//!   channel, typed (no serialisation) and as Debezium JSON with schemas; the three run in
//!   rounds, so that each samples the same state of a noisy machine, and each figure is
//!   the best of its `BENCH_REPEAT` runs (default 3); also our CPU per million events;
//! - streaming of a backlog of the same number of inserts (transactions of 10k):
//!   `pg_recvlogical` (pgoutput, to /dev/null) vs our stream, typed and JSON.
//!
//! - the Debezium 3.6.3 embedded engine on the same snapshot table and the same backlog
//!   (`../shared/bench/DbzBench.java`, JSON with schemas), when its jars are in
//!   `target/debezium-libs` (`scripts/fetch-debezium.sh`) and a JDK is installed.
//!
//! Every connection is plain (no TLS), so TLS costs do not blur the ratios.
//! Targets (issue 4): typed snapshot >= 0.6x `\copy`, typed streaming >= 0.9x
//! pg_recvlogical, JSON streaming >= 0.75x pg_recvlogical, JSON snapshot >= 5x Debezium,
//! peak RSS <= 1/10 of Debezium's. Needs the PostgreSQL of `scripts/services.sh`.
//! `BENCH_ONLY=snapshot` stops after the typed snapshot.
//!
//! `RUST_BACKTRACE=0 cargo bench -p connect-postgres --bench pg`

use std::time::{Duration, Instant};

use connect_core::testing::bench::{
    cpu_seconds_of, drain, env_or, print_peak_rss, rate, rounds, Debezium,
};
use connect_core::MemoryOffsetStore;
use connect_postgres::tls::{SslMode, TlsOptions};
use connect_postgres::{PostgresConfig, PostgresSource, PublicationMode, SnapshotMode};
use futures::StreamExt;
use tokio_postgres::{Client, NoTls};

// Events are built on the engine's threads and freed on the consumer's; glibc's malloc
// serialises such cross-thread frees on arena locks. A service embedding us picks its
// allocator; this benchmark uses mimalloc, for every contender in the process alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        .with_tls(TlsOptions {
            mode: SslMode::Disable,
            ..TlsOptions::default()
        })
        .with_slot(slot)
        .with_publication("bench_pub", PublicationMode::Disabled)
        .with_snapshot_mode(mode)
        .with_tables(["public\\.orders.*"])
        .expect("valid regex")
}

/// Our source until `expected` change events arrived; the elapsed time.
async fn ours(config: PostgresConfig, expected: u64, json: bool) -> Duration {
    let source = PostgresSource::new(config).expect("valid config");
    drain(source, MemoryOffsetStore::new(), expected, json).await
}

/// `COPY (SELECT * FROM orders) TO STDOUT` read by this process, counting its rows.
async fn copy_to_client(client: &Client, rows: u64) -> Duration {
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
    assert_eq!(copied, rows);
    start.elapsed()
}

/// psql's `\copy (SELECT * FROM orders) TO '/dev/null'`, as timed by psql itself (so its
/// start and connection are not counted); None without psql.
fn psql_copy_time(db: &str, rows: u64) -> Option<Duration> {
    let out = std::process::Command::new("psql")
        .args(["-X", "-h", HOST, "-U", USER, "-d", db, "-c", "\\timing on"])
        .args(["-c", "\\copy (SELECT * FROM orders) TO '/dev/null'"])
        .env("PGPASSWORD", PASSWORD)
        .env("PGSSLMODE", "disable")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("COPY {rows}")),
        "psql \\copy failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ms: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Time: "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Duration::from_secs_f64(ms / 1000.0))
}

/// Samples the CPU time of the walsender serving `slot` until stopped (PostgreSQL runs
/// on this machine, so its process is visible in /proc).
struct WalsenderCpu {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<f64>,
}

impl WalsenderCpu {
    fn watch(db: &str, slot: &str) -> WalsenderCpu {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (db, slot) = (db.to_owned(), slot.to_owned());
        let task = tokio::spawn(async move {
            let client = connect(&db).await;
            let mut cpu = 0.0f64;
            loop {
                let pid: Option<i32> = client
                    .query_opt(
                        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
                        &[&slot],
                    )
                    .await
                    .ok()
                    .flatten()
                    .and_then(|r| r.get(0));
                if let Some(used) = pid.and_then(|p| cpu_seconds_of(&format!("/proc/{p}/stat"))) {
                    cpu = cpu.max(used);
                }
                tokio::select! {
                    _ = stopped.changed() => return cpu,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        });
        WalsenderCpu { stop, task }
    }

    async fn seconds(self) -> f64 {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(0.0)
    }
}

#[tokio::main]
async fn main() {
    let rows: u64 = env_or("BENCH_ROWS", 1_000_000);
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

    // Snapshot: in rounds of psql's `\copy` (the raw rate), COPY read by this
    // process, and ours typed, so that every contender samples the machine's state of the
    // moment; each is the best of its BENCH_REPEAT runs.
    let snap_cfg = |slot: &str| {
        let mut c = config(&db, slot, SnapshotMode::InitialOnly).with_drop_slot_on_stop(true);
        c.table_include = vec![regex::Regex::new("^public\\.orders$").unwrap()];
        c
    };
    let best_copy = std::cell::Cell::new(Duration::MAX);
    let (psql_copy, snap_typed, typed_cpu) = rounds(
        async || {
            best_copy.set(best_copy.get().min(copy_to_client(&client, rows).await));
            psql_copy_time(&db, rows)
        },
        async || ours(snap_cfg("bench_snap_typed"), rows, false).await,
    )
    .await;
    let copy_time = best_copy.get();
    // This process's CPU per million typed events (the engine, our conversion and the
    // consumer): steadier than elapsed times on a noisy machine.
    let typed_cpu_per_m = typed_cpu / (rows as f64 / 1e6);
    println!("workload   contender            events/s   ratio");
    match psql_copy {
        Some(t) => println!("snapshot   psql \\copy          {:>10.0}", rate(rows, t)),
        None => println!("snapshot   psql \\copy          not run (package postgresql-client)"),
    }
    println!(
        "snapshot   COPY in process    {:>10.0}   (a client that only counts rows)",
        rate(rows, copy_time)
    );
    println!(
        "snapshot   ours, typed        {:>10.0}   {} (target >= 0.6), {:.2} of COPY in process, {typed_cpu_per_m:.2} CPU-s per 1M events",
        rate(rows, snap_typed),
        psql_copy.map_or("-".to_owned(), |t| format!(
            "{:.2} of \\copy",
            t.as_secs_f64() / snap_typed.as_secs_f64()
        )),
        copy_time.as_secs_f64() / snap_typed.as_secs_f64(),
    );
    if std::env::var("BENCH_ONLY").as_deref() == Ok("snapshot") {
        // For profiling the snapshot path alone.
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await;
        return;
    }
    let snap_json = ours(snap_cfg("bench_snap_json"), rows, true).await;
    let debezium = Debezium::find("debezium-connector-postgres");
    let dbz_props = |slot: &str, mode: &str, table: &str| {
        format!(
            "name=dbz-bench\nconnector.class=io.debezium.connector.postgresql.PostgresConnector\n\
             offset.storage=org.apache.kafka.connect.storage.MemoryOffsetBackingStore\n\
             offset.flush.interval.ms=10000\ndatabase.hostname={HOST}\ndatabase.port=5432\n\
             database.user={USER}\ndatabase.password={PASSWORD}\ndatabase.dbname={db}\n\
             database.sslmode=disable\ntopic.prefix=bench\nplugin.name=pgoutput\nslot.name={slot}\n\
             publication.name=bench_pub\npublication.autocreate.mode=disabled\nsnapshot.mode={mode}\n\
             table.include.list={table}\n"
        )
    };
    let dbz_snapshot = debezium.as_ref().and_then(|d| {
        d.run(
            &dbz_props("bench_dbz_snap", "initial", "public.orders"),
            rows,
        )
    });
    let _ = admin
        .execute("SELECT pg_drop_replication_slot('bench_dbz_snap')", &[])
        .await;

    // Streaming: every contender's slot sees the same backlog.
    for slot in ["bench_raw", "bench_typed", "bench_json", "bench_dbz"] {
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
    let raw_cpu = WalsenderCpu::watch(&db, "bench_raw");
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
            .env("PGSSLMODE", "disable")
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
    let raw_cpu = raw_cpu.seconds().await;
    let typed_cpu = WalsenderCpu::watch(&db, "bench_typed");
    let stream_typed = ours(stream_cfg("bench_typed"), rows, false).await;
    let typed_cpu = typed_cpu.seconds().await;
    let json_cpu = WalsenderCpu::watch(&db, "bench_json");
    let stream_json = ours(stream_cfg("bench_json"), rows, true).await;
    let json_cpu = json_cpu.seconds().await;
    let dbz_cpu = WalsenderCpu::watch(&db, "bench_dbz");
    let dbz_stream = debezium.as_ref().and_then(|d| {
        d.run(
            &dbz_props("bench_dbz", "no_data", "public.orders_stream"),
            rows,
        )
    });
    let dbz_cpu = dbz_cpu.seconds().await;

    let json_snap_rate = rate(rows, snap_json);
    match dbz_snapshot {
        Some((dbz, rss)) => {
            println!("snapshot   Debezium, JSON     {dbz:>10.0}   (peak RSS {rss:.0} MB)");
            println!(
                "snapshot   ours, JSON         {json_snap_rate:>10.0}   {:.1}x Debezium (target >= 5)",
                json_snap_rate / dbz
            );
        }
        None => println!(
            "snapshot   ours, JSON         {json_snap_rate:>10.0}   (Debezium not run: scripts/fetch-debezium.sh and a JDK)"
        ),
    }
    let raw = raw_stream.unwrap_or(Duration::ZERO);
    if raw_stream.is_some() {
        println!(
            "streaming  pg_recvlogical     {:>10.0}   walsender CPU {raw_cpu:.1} s",
            rate(rows, raw)
        );
    } else {
        println!("streaming  pg_recvlogical     not found (package postgresql-client)");
    }
    let vs_raw = |d: Duration| {
        if raw.is_zero() {
            String::new()
        } else {
            format!(
                "{:.2} of pg_recvlogical",
                raw.as_secs_f64() / d.as_secs_f64()
            )
        }
    };
    println!(
        "streaming  ours, typed        {:>10.0}   {} (target >= 0.9), walsender CPU {typed_cpu:.1} s",
        rate(rows, stream_typed),
        vs_raw(stream_typed)
    );
    println!(
        "streaming  ours, JSON         {:>10.0}   {} (target >= 0.75), walsender CPU {json_cpu:.1} s",
        rate(rows, stream_json),
        vs_raw(stream_json)
    );
    if let Some((dbz, rss)) = dbz_stream {
        println!(
            "streaming  Debezium, JSON     {dbz:>10.0}   ours JSON = {:.1}x, walsender CPU {dbz_cpu:.1} s, peak RSS {rss:.0} MB",
            rate(rows, stream_json) / dbz
        );
    }
    print_peak_rss(
        dbz_snapshot
            .iter()
            .chain(dbz_stream.iter())
            .map(|(_, rss)| *rss),
    );

    for slot in ["bench_raw", "bench_typed", "bench_json", "bench_dbz"] {
        let _ = admin
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
}
