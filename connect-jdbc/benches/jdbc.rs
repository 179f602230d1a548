//! JDBC sink throughput against each database's own bulk load of the same rows, measured
//! in the same run: `BENCH_ROWS` rows (default 1,000,000) of (id bigint key, name text,
//! amount double, created timestamp(6)).
//! - PostgreSQL: `COPY FROM STDIN` (text format, rows rendered beforehand) vs the sink;
//! - MariaDB: `LOAD DATA LOCAL INFILE` (file written beforehand) vs the sink;
//! - SQLite: one prepared `INSERT` per row in one transaction (values built beforehand)
//!   vs the sink.
//!
//! The sink gets the records in batches of 4,096 (`put_shared`, as the engine hands them
//! over) and flushes every 25 batches,
//! as the engine would on its commit policy; it converts every value from the record
//! model, which the baselines do not. Each figure is the best of `BENCH_REPEAT` runs
//! (default 3). Target (issue 7): the sink at >= 0.5 of the bulk load.
//!
//! ```text
//! bash scripts/services.sh
//! cargo bench -p connect-jdbc --bench jdbc
//! ```
//! `CONNECT_TEST_PG_URL` and `CONNECT_TEST_MYSQL_URL` pick other servers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_core::testing::bench::{best_of, env_or, rate};
use connect_core::{
    CommitRequest, OffsetMap, Record, Schema, SchemaType, SinkConnector, SourceOffset,
    SourcePartition, Struct, TaskContext, Value,
};
use connect_jdbc::{ConnectionConfig, JdbcSink, JdbcSinkConfig, PkMode};
use futures::SinkExt;

const BATCH: usize = 4096;
const FLUSH_EVERY: usize = 25;

fn env(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

struct Rows {
    records: Vec<Record>,
    /// The records in the engine's batches: it hands a sink each batch by `Arc`
    /// (`put_shared`), so a sink that keeps batches for a replay copies nothing.
    batches: Vec<Arc<Vec<Record>>>,
}

impl Rows {
    fn new(n: i64) -> Rows {
        let schema = Schema::struct_builder()
            .name("bench.Value")
            .field("id", Schema::required(SchemaType::Int64))
            .field("name", Schema::optional(SchemaType::String))
            .field("amount", Schema::optional(SchemaType::Float64))
            .field(
                "created",
                Schema::builder(SchemaType::Int64)
                    .name("io.debezium.time.MicroTimestamp")
                    .build(),
            )
            .build();
        let topic: Arc<str> = Arc::from("items");
        let records = (1..=n)
            .map(|i| {
                let row = Struct::new(
                    schema.clone(),
                    vec![
                        Value::Int64(i),
                        Value::from(format!("name-{i}")),
                        Value::Float64(i as f64 / 8.0),
                        Value::Int64(1_700_000_000_000_000 + i * 1_001),
                    ],
                )
                .expect("arity");
                Record::new(topic.clone(), Some(schema.clone()), Value::Struct(row))
            })
            .collect::<Vec<_>>();
        let batches = records
            .chunks(BATCH)
            .map(|b| Arc::new(b.to_vec()))
            .collect();
        Rows { records, batches }
    }

    /// The rows as tab-separated text (COPY's and LOAD DATA's default format).
    fn text(&self) -> String {
        let mut out = String::with_capacity(self.records.len() * 64);
        for r in &self.records {
            let v = r.value.as_struct().expect("struct").values();
            let (Value::Int64(id), Value::String(name), Value::Float64(amount), Value::Int64(us)) =
                (&v[0], &v[1], &v[2], &v[3])
            else {
                unreachable!()
            };
            let mut ts = String::new();
            connect_jdbc::SqlValue::Timestamp(*us).write_text(&mut ts);
            out.push_str(&format!("{id}\t{name}\t{amount}\t{ts}\n"));
        }
        out
    }
}

fn context() -> TaskContext {
    let (_, committed) = tokio::sync::watch::channel(Arc::new(OffsetMap::new()));
    TaskContext {
        engine: Arc::from("bench"),
        pipeline: Arc::from("bench"),
        task_id: 0,
        config: Default::default(),
        offsets: OffsetMap::new(),
        committed,
        commit: CommitRequest::default(),
    }
}

/// Our sink into `table` (created beforehand), timed from the first put to the last flush.
async fn sink_run(url: &str, table: &str, rows: &Rows) -> Duration {
    let sink = JdbcSink::new(
        JdbcSinkConfig::new(ConnectionConfig::new(url))
            .with_table_name_format(table)
            .with_pk(PkMode::RecordValue, &["id"]),
    )
    .expect("config");
    let mut task = sink.create_task();
    task.start(context()).await.expect("start");
    let partition = SourcePartition::server("bench");
    let start = Instant::now();
    for (i, batch) in rows.batches.iter().enumerate() {
        task.put_shared(batch).await.expect("put");
        if (i + 1) % FLUSH_EVERY == 0 {
            let at = OffsetMap::from([(partition.clone(), SourceOffset::single("n", i as i64))]);
            task.flush(&at).await.expect("flush");
        }
    }
    let end = OffsetMap::from([(partition, SourceOffset::single("n", -1))]);
    task.flush(&end).await.expect("flush");
    let elapsed = start.elapsed();
    task.stop().await.expect("stop");
    elapsed
}

fn report(dialect: &str, baseline: &str, n: usize, ours: Duration, theirs: Duration) {
    println!(
        "{dialect}: sink {:.0} rows/s, {baseline} {:.0} rows/s, ratio {:.2} (target >= 0.5)",
        rate(n as u64, ours),
        rate(n as u64, theirs),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
}

async fn postgres(rows: &Rows) {
    let url = env(
        "CONNECT_TEST_PG_URL",
        "postgres://postgres:postgres@127.0.0.1:5432/postgres",
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL reachable (run scripts/services.sh)");
    tokio::spawn(connection);
    let ddl = "(id bigint PRIMARY KEY, name text, amount double precision, created timestamp(6))";
    let text = rows.text();
    let reset = |table: &'static str| {
        let client = &client;
        async move {
            client
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} {ddl}"
                ))
                .await
                .expect("create");
        }
    };
    let copy = best_of(|| async {
        reset("bench_copy").await;
        let start = Instant::now();
        let sink = client
            .copy_in::<_, bytes::Bytes>("COPY bench_copy FROM STDIN")
            .await
            .expect("copy");
        futures::pin_mut!(sink);
        for chunk in text.as_bytes().chunks(1 << 20) {
            sink.send(bytes::Bytes::copy_from_slice(chunk))
                .await
                .expect("send");
        }
        sink.finish().await.expect("copy finishes");
        Some(start.elapsed())
    })
    .await
    .expect("runs");
    let ours = best_of(|| async {
        reset("bench_sink").await;
        Some(sink_run(&url, "bench_sink", rows).await)
    })
    .await
    .expect("runs");
    report("postgresql", "COPY", rows.records.len(), ours, copy);
    client
        .batch_execute("DROP TABLE bench_copy; DROP TABLE bench_sink")
        .await
        .expect("drop");
}

async fn mariadb(rows: &Rows) {
    use mysql_async::prelude::Queryable;
    let server = env("CONNECT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rows.tsv");
    std::fs::write(&file, rows.text()).expect("write rows");
    let opts = mysql_async::OptsBuilder::from_opts(
        mysql_async::Opts::from_url(&server).expect("MySQL URL"),
    )
    .prefer_socket(false)
    .local_infile_handler(Some(mysql_async::WhiteListFsHandler::new([file.clone()])));
    let mut conn = mysql_async::Conn::new(opts.clone())
        .await
        .expect("MariaDB reachable");
    conn.query_drop("CREATE DATABASE IF NOT EXISTS connect_bench")
        .await
        .expect("database");
    let ddl = "(id BIGINT PRIMARY KEY, name LONGTEXT, amount DOUBLE, created DATETIME(6))";
    let url = format!("{server}/connect_bench");
    let recreate = |table: &'static str| {
        let opts = opts.clone();
        async move {
            let mut conn = mysql_async::Conn::new(opts)
                .await
                .expect("MariaDB reachable");
            conn.query_drop(format!(
                "USE connect_bench; DROP TABLE IF EXISTS {table}; CREATE TABLE {table} {ddl}"
            ))
            .await
            .expect("create");
            conn
        }
    };
    let load = best_of(|| async {
        let mut conn = recreate("bench_load").await;
        let start = Instant::now();
        conn.query_drop(format!(
            "LOAD DATA LOCAL INFILE '{}' INTO TABLE bench_load",
            file.display()
        ))
        .await
        .expect("load data");
        Some(start.elapsed())
    })
    .await
    .expect("runs");
    let ours = best_of(|| async {
        recreate("bench_sink").await;
        Some(sink_run(&url, "bench_sink", rows).await)
    })
    .await
    .expect("runs");
    report(
        "mariadb",
        "LOAD DATA LOCAL INFILE",
        rows.records.len(),
        ours,
        load,
    );
    conn.query_drop("DROP DATABASE connect_bench")
        .await
        .expect("drop");
}

fn sqlite_prepared(path: &std::path::Path, rows: &Rows) -> Duration {
    // Values as the driver binds them, built before the clock starts.
    let values: Vec<(i64, String, f64, String)> = rows
        .records
        .iter()
        .map(|r| {
            let v = r.value.as_struct().expect("struct").values();
            let mut ts = String::new();
            if let Value::Int64(us) = v[3] {
                connect_jdbc::SqlValue::Timestamp(us).write_text(&mut ts);
            }
            (
                v[0].as_i64().expect("id"),
                v[1].as_str().expect("name").to_owned(),
                match v[2] {
                    Value::Float64(f) => f,
                    _ => unreachable!(),
                },
                ts,
            )
        })
        .collect();
    let mut conn = rusqlite::Connection::open(path).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    let start = Instant::now();
    let tx = conn.transaction().expect("begin");
    {
        let mut stmt = tx
            .prepare("INSERT INTO bench_load (id, name, amount, created) VALUES (?, ?, ?, ?)")
            .expect("prepare");
        for (id, name, amount, ts) in &values {
            stmt.execute(rusqlite::params![id, name, amount, ts])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    start.elapsed()
}

async fn sqlite(rows: &Rows) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    let ddl = "(id INTEGER PRIMARY KEY, name TEXT, amount REAL, created TEXT)";
    let reset = |table: &str| {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} {ddl}"
        ))
        .expect("create");
    };
    let prepared = best_of(|| {
        reset("bench_load");
        let elapsed = sqlite_prepared(&path, rows);
        async move { Some(elapsed) }
    })
    .await
    .expect("runs");
    let url = format!("sqlite:{}", path.display());
    let ours = best_of(|| {
        reset("bench_sink");
        let url = &url;
        async move { Some(sink_run(url, "bench_sink", rows).await) }
    })
    .await
    .expect("runs");
    report(
        "sqlite",
        "prepared-statement transaction",
        rows.records.len(),
        ours,
        prepared,
    );
}

fn main() {
    let n: i64 = env_or("BENCH_ROWS", 1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let rows = Rows::new(n);
    runtime.block_on(async {
        sqlite(&rows).await;
        postgres(&rows).await;
        mariadb(&rows).await;
    });
}
