//! MySQL/MariaDB source benchmark against raw rates measured in the same run, on the
//! workload of `../shared/bench/mysql_setup.sh` (`BENCH_ROWS` rows, default 1,000,000):
//! - snapshot of `orders` (loaded with binary logging off): `mariadb --quick` reading
//!   `SELECT *` vs our snapshot into a channel, typed (no serialisation) and as Debezium
//!   JSON with schemas;
//! - streaming of a backlog of as many inserts into `orders_stream` (transactions of 10k):
//!   `mariadb-binlog --read-from-remote-server --verbose` (to /dev/null) vs our stream,
//!   typed and JSON;
//! - the Debezium 3.6.3 embedded engine (`../shared/bench/DbzBench.java`, MySQL connector,
//!   JSON with schemas) on the same table and backlog, when its jars are in
//!   `target/debezium-libs` (`scripts/fetch-debezium.sh`), a JDK is installed and the
//!   server reports a MySQL 5.7 version (Debezium's MySQL connector refuses MariaDB 10.11's
//!   own).
//!
//! Every connection is plain (no TLS), so TLS costs do not blur the ratios. Both sides of
//! a typed-vs-raw ratio are the best of `BENCH_REPEAT` runs (default 3), run in
//! alternating rounds so that both sample the same state of the machine; our CPU per
//! million typed events is printed beside them.
//! Targets (issue 5): JSON >= 5x Debezium's events/s for snapshot and streaming; typed
//! snapshot >= 0.6x and typed streaming >= 0.5x the raw rates; peak RSS <= 1/10 of
//! Debezium's.
//!
//! ```text
//! bash scripts/services.sh bench-mariadb    # MariaDB on 3308 reporting 5.7.19-MariaDB-10.11.19
//! RUST_BACKTRACE=0 cargo bench -p connect-mysql --bench mysql
//! ```
//! `MYSQL_BENCH_PORT` picks another server (3308 by default; 3306 runs everything but
//! Debezium).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use connect_core::testing::bench::{drain, env_or, print_peak_rss, rate, rounds, Debezium};
use connect_core::{MemoryOffsetStore, OffsetStore, SourceOffset, SourcePartition};
use connect_mysql::server::connect;
use connect_mysql::tls::{SslMode, TlsOptions};
use connect_mysql::{MySqlConfig, MySqlSource, SnapshotMode};
use mysql_async::prelude::Queryable;

// As in connect-postgres's bench: events are built on the engine's threads and freed on
// the consumer's, which glibc's malloc serialises; every contender in this process alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HOST: &str = "127.0.0.1";
const USER: &str = "root";
const TABLE: &str = "(id bigint primary key, customer_id int not null, amount decimal(12,2) not null, status varchar(16) not null, note varchar(200), created_at timestamp(6) not null default current_timestamp(6))";

fn rows_from(first: u64, last: u64) -> String {
    format!(
        "WITH RECURSIVE g(n) AS (SELECT {first} UNION ALL SELECT n + 1 FROM g WHERE n < {last}) \
         SELECT n, n % 10000, (n % 100000) / 100.0, elt(n % 3 + 1, 'new', 'paid', 'shipped'), concat(md5(n), md5(n + 1)) FROM g"
    )
}

/// Plain connections, as the clients measured against us use.
fn server(port: u16, server_id: u32) -> MySqlConfig {
    MySqlConfig::new(HOST, USER, "", server_id, "bench")
        .with_port(port)
        .with_tls(TlsOptions {
            mode: SslMode::Disabled,
            ..TlsOptions::default()
        })
}

fn config(port: u16, server_id: u32, table: &str, mode: SnapshotMode) -> MySqlConfig {
    server(port, server_id)
        .with_tables([table])
        .expect("valid regex")
        .with_snapshot_mode(mode)
}

/// Our source until `expected` events; the elapsed time.
async fn ours(
    config: MySqlConfig,
    offsets: MemoryOffsetStore,
    expected: u64,
    json: bool,
) -> Duration {
    let source = MySqlSource::new(config).expect("valid config");
    drain(source, offsets, expected, json).await
}

/// Runs a client program with its output to /dev/null; the elapsed time.
fn timed(program: &str, args: &[&str]) -> Option<Duration> {
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .ok()?;
    assert!(status.success(), "{program} failed");
    Some(start.elapsed())
}

fn debezium_properties(
    port: u16,
    db: &str,
    table: &str,
    mode: &str,
    server_id: u32,
    files: &str,
) -> String {
    let storage = if files.is_empty() {
        "offset.storage=org.apache.kafka.connect.storage.MemoryOffsetBackingStore\n\
         schema.history.internal=io.debezium.relational.history.MemorySchemaHistory\n"
            .to_owned()
    } else {
        format!(
            "offset.storage=org.apache.kafka.connect.storage.FileOffsetBackingStore\n\
             offset.storage.file.filename={files}.offsets\noffset.flush.interval.ms=1000\n\
             schema.history.internal=io.debezium.storage.file.history.FileSchemaHistory\n\
             schema.history.internal.file.filename={files}.history\n"
        )
    };
    format!(
        "name=dbz-bench\nconnector.class=io.debezium.connector.mysql.MySqlConnector\n{storage}\
         database.hostname={HOST}\ndatabase.port={port}\ndatabase.user={USER}\ndatabase.password=\n\
         database.server.id={server_id}\ntopic.prefix=bench\nsnapshot.mode={mode}\n\
         database.include.list={db}\ntable.include.list={db}.{table}\n"
    )
}

#[tokio::main]
async fn main() {
    let rows: u64 = env_or("BENCH_ROWS", 1_000_000);
    let port: u16 = env_or("MYSQL_BENCH_PORT", 3308);
    let mut conn = connect(&server(port, 1), "connect").await.unwrap_or_else(|e| {
        panic!("MariaDB on {HOST}:{port} ({e}): run `bash scripts/services.sh bench-mariadb` or set MYSQL_BENCH_PORT")
    });
    let version: String = conn.query_first("SELECT VERSION()").await.unwrap().unwrap();
    let db = format!("connect_bench_{}", std::process::id());
    conn.query_drop(format!(
        "CREATE DATABASE {db}; USE {db}; CREATE TABLE orders_stream {TABLE}; CREATE TABLE orders {TABLE};
         SET SESSION max_recursive_iterations = 100000000; SET SESSION sql_log_bin = 0;
         INSERT INTO orders (id, customer_id, amount, status, note) {}; SET SESSION sql_log_bin = 1;",
        rows_from(1, rows)
    ))
    .await
    .unwrap();
    println!("MariaDB benchmark: {rows} rows, server {version} on port {port}");
    let port_arg = port.to_string();
    let client = ["-h", HOST, "-P", &port_arg, "-u", USER];

    // BENCH_ONLY=snapshot|streaming runs our contenders of one workload, without
    // Debezium (for profiling).
    let only = std::env::var("BENCH_ONLY").ok();
    let debezium = (only.is_none() && version.starts_with("5.7."))
        .then(|| Debezium::find("debezium-connector-mysql"))
        .flatten();

    // Snapshot.
    let orders = format!("{db}\\.orders");
    let snap = |id, json| {
        ours(
            config(port, id, &orders, SnapshotMode::InitialOnly),
            MemoryOffsetStore::new(),
            rows,
            json,
        )
    };
    let mut snapshot = None;
    if only.as_deref() != Some("streaming") {
        let select = format!("SELECT * FROM {db}.orders");
        let (raw, typed, cpu) = rounds(
            async || {
                timed(
                    "mariadb",
                    &[&client[..], &["--quick", "-e", &select]].concat(),
                )
            },
            async || snap(5501, false).await,
        )
        .await;
        let json = snap(5502, true).await;
        let dbz = debezium.as_ref().and_then(|d| {
            d.run(
                &debezium_properties(port, &db, "orders", "initial", 5503, ""),
                rows,
            )
        });
        snapshot = Some((raw, typed, cpu, json, dbz));
    }

    // Streaming: every contender starts where the backlog starts.
    let status: mysql_async::Row = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .unwrap();
    let (file, pos): (String, u64) = (status.get(0).unwrap(), status.get(1).unwrap());
    let gtids: String = conn
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap();
    let dbz_files = std::env::temp_dir().join(format!("dbzbench-{}", std::process::id()));
    let dbz_files = dbz_files.display().to_string();
    let dbz_stream_props =
        debezium_properties(port, &db, "orders_stream", "no_data", 5504, &dbz_files);
    let warm_up_s = env_or("DBZ_WARMUP_S", 20);
    // Debezium's no_data starts at the binlog's end: it stores that offset first.
    let debezium = debezium.filter(|d| d.warm_up(&dbz_stream_props, warm_up_s));
    let mut streaming = None;
    if only.as_deref() != Some("snapshot") {
        let mut first = 1;
        while first <= rows {
            let last = (first + 9_999).min(rows);
            conn.query_drop(format!(
                "INSERT INTO orders_stream (id, customer_id, amount, status, note) {}",
                rows_from(first, last)
            ))
            .await
            .unwrap();
            first = last + 1;
        }
        let raw_stream = async || {
            timed(
                "mariadb-binlog",
                &[
                    &client[..],
                    &[
                        "--read-from-remote-server",
                        "--verbose",
                        "--to-last-log",
                        "--start-position",
                        &pos.to_string(),
                        &file,
                    ],
                ]
                .concat(),
            )
        };
        let start_offsets = || {
            let offsets = MemoryOffsetStore::new();
            let mut offset = serde_json::Map::new();
            offset.insert("file".into(), file.clone().into());
            offset.insert("pos".into(), pos.into());
            offset.insert("gtids".into(), gtids.clone().into());
            (offsets, SourceOffset::new(offset))
        };
        let orders_stream = format!("{db}\\.orders_stream");
        let stream = async |id, json| {
            let (offsets, offset) = start_offsets();
            offsets
                .write("bench", &[(SourcePartition::server("bench"), offset)])
                .await
                .unwrap();
            ours(
                // An offset without a schema history: rebuilt from the table as it is.
                config(port, id, &orders_stream, SnapshotMode::Recovery),
                offsets,
                rows,
                json,
            )
            .await
        };
        let (raw_stream, typed, cpu) = rounds(raw_stream, async || stream(5505, false).await).await;
        let json = if only.is_some() {
            typed
        } else {
            stream(5506, true).await
        };
        let dbz = debezium
            .as_ref()
            .and_then(|d| d.run(&dbz_stream_props, rows));
        for suffix in ["offsets", "history"] {
            let _ = std::fs::remove_file(format!("{dbz_files}.{suffix}"));
        }
        streaming = Some((raw_stream, typed, cpu, json, dbz));
    }

    println!("workload   contender            events/s   ratio");
    let ratio_line = |what: &str,
                      ours: Duration,
                      cpu: f64,
                      raw: Option<Duration>,
                      raw_name: &str,
                      target: f64| {
        let cpu = format!("{:.2} CPU-s per 1M events", cpu / (rows as f64 / 1e6));
        match raw {
            Some(raw) => println!(
                "{what} {:>10.0}   {:.2} of {raw_name} (target >= {target}), {cpu}",
                rate(rows, ours),
                raw.as_secs_f64() / ours.as_secs_f64()
            ),
            None => println!("{what} {:>10.0}   {cpu}", rate(rows, ours)),
        }
    };
    let vs_debezium = |what: &str, ours: Duration, dbz: Option<(f64, f64)>| {
        match dbz {
        Some((dbz, rss)) => {
            println!("{what:<10} Debezium, JSON     {dbz:>10.0}   (peak RSS {rss:.0} MB)");
            println!(
                "{what:<10} ours, JSON         {:>10.0}   {:.1}x Debezium (target >= 5)",
                rate(rows, ours),
                rate(rows, ours) / dbz
            );
        }
        None => println!(
            "{what:<10} ours, JSON         {:>10.0}   (Debezium not run: scripts/fetch-debezium.sh, a JDK, and the server of `services.sh bench-mariadb`)",
            rate(rows, ours)
        ),
    }
    };
    // (workload, raw contender, its name, typed target)
    let workloads = [
        ("snapshot", snapshot, "mariadb --quick", 0.6),
        ("streaming", streaming, "mariadb-binlog", 0.5),
    ];
    for (what, measured, raw_name, target) in &workloads {
        let Some((raw, typed, cpu, json, dbz)) = measured else {
            continue;
        };
        if let Some(raw) = raw {
            println!("{what:<10} {raw_name:<18} {:>10.0}", rate(rows, *raw));
        }
        ratio_line(
            &format!("{what:<10} ours, typed       "),
            *typed,
            *cpu,
            *raw,
            raw_name,
            *target,
        );
        vs_debezium(what, *json, *dbz);
    }
    print_peak_rss(
        workloads
            .iter()
            .filter_map(|(_, measured, _, _)| measured.and_then(|m| m.4))
            .map(|(_, rss)| rss),
    );
    conn.query_drop(format!("DROP DATABASE {db}"))
        .await
        .unwrap();
}
