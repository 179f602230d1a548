//! connect-jdbc against the real databases: PostgreSQL (`CONNECT_TEST_PG_URL`, default
//! `postgres://postgres:postgres@127.0.0.1:5432/postgres`), MariaDB
//! (`CONNECT_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306`) and SQLite files.
//! Each test works in its own PostgreSQL schema, MariaDB database and SQLite file.

use std::sync::Arc;
use std::time::SystemTime;

use connect_core::envelope::{source_schema_builder, EnvelopeSchema, Op};
use connect_core::{
    CommitRequest, EventId, OffsetMap, Record, Schema, SchemaType, SinkConnector, SinkTask,
    SourceOffset, SourcePartition, Struct, TaskContext, Value,
};
use connect_jdbc::{Connection, ConnectionConfig, InsertMode, JdbcSink, JdbcSinkConfig, PkMode};

fn env(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{:08x}", rand::random::<u32>())
}

/// A scratch area in one database: a PostgreSQL schema, a MariaDB database or a SQLite file.
struct Db {
    dialect: &'static str,
    url: String,
    /// Prefix of qualified table names (`schema.` in PostgreSQL, empty elsewhere).
    qualifier: String,
    admin: Box<dyn Connection>,
    _dir: Option<tempfile::TempDir>,
}

const DIALECTS: [&str; 3] = ["sqlite", "postgresql", "mysql"];

impl Db {
    async fn new(dialect: &'static str) -> Db {
        let name = unique("jdbc");
        let (url, qualifier, dir) = match dialect {
            "sqlite" => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite:{}", dir.path().join("t.db").display());
                (url, String::new(), Some(dir))
            }
            "postgresql" => {
                let url = env(
                    "CONNECT_TEST_PG_URL",
                    "postgres://postgres:postgres@127.0.0.1:5432/postgres",
                );
                let mut admin = ConnectionConfig::new(&url).connect().await.unwrap();
                admin
                    .execute(&format!("CREATE SCHEMA {name}"))
                    .await
                    .unwrap();
                (url, format!("{name}."), None)
            }
            _ => {
                let server = env("CONNECT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306");
                let mut admin = ConnectionConfig::new(&server).connect().await.unwrap();
                admin
                    .execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                (format!("{server}/{name}"), String::new(), None)
            }
        };
        let admin = ConnectionConfig::new(&url).connect().await.unwrap();
        Db {
            dialect,
            url,
            qualifier,
            admin,
            _dir: dir,
        }
    }

    fn config(&self) -> JdbcSinkConfig {
        JdbcSinkConfig::new(ConnectionConfig::new(&self.url))
            .with_table_name_format(format!("{}${{topic}}", self.qualifier))
            .with_offsets_table(format!("{}connect_offsets", self.qualifier))
    }

    /// A table name as the sink names it, quoted for queries.
    fn table(&self, name: &str) -> String {
        let quote = if self.dialect == "mysql" { '`' } else { '"' };
        let q = |s: &str| {
            let doubled = s.replace(quote, &format!("{quote}{quote}"));
            format!("{quote}{doubled}{quote}")
        };
        match self.qualifier.strip_suffix('.') {
            Some(schema) => format!("{}.{}", q(schema), q(name)),
            None => q(name),
        }
    }

    /// An expression as text, for comparing values across dialects.
    fn text(&self, expr: &str) -> String {
        match self.dialect {
            "postgresql" => format!("({expr})::text"),
            "mysql" => format!("CAST({expr} AS CHAR)"),
            _ => format!("CAST({expr} AS TEXT)"),
        }
    }

    async fn rows(&mut self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.admin
            .query_text(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {:?}", e.source))
    }

    async fn scalar(&mut self, sql: &str) -> Option<String> {
        self.rows(sql).await.remove(0).remove(0)
    }

    async fn count(&mut self, table: &str) -> i64 {
        let sql = format!(
            "SELECT {} FROM {}",
            self.text("COUNT(*)"),
            self.table(table)
        );
        self.scalar(&sql).await.unwrap().parse().unwrap()
    }
}

fn row_schema() -> Arc<Schema> {
    Schema::struct_builder()
        .name("row")
        .optional()
        .field("id", Schema::required(SchemaType::Int32))
        .field("name", Schema::optional(SchemaType::String))
        .build()
}

fn key_schema() -> Arc<Schema> {
    Schema::struct_builder()
        .name("key")
        .field("id", Schema::required(SchemaType::Int32))
        .build()
}

fn row(schema: &Arc<Schema>, id: i32, name: &str) -> Struct {
    Struct::new(schema.clone(), vec![Value::Int32(id), Value::from(name)]).unwrap()
}

/// A plain record with a struct key and value.
fn plain(topic: &str, id: i32, name: &str) -> Record {
    let key = Struct::new(key_schema(), vec![Value::Int32(id)]).unwrap();
    Record::new(
        Arc::from(topic),
        Some(row_schema()),
        Value::Struct(row(&row_schema(), id, name)),
    )
    .with_key(Some(key_schema()), Value::Struct(key))
    .with_event_id(EventId::from_parts(&[topic.as_bytes(), &id.to_le_bytes()]))
}

fn tombstone(topic: &str, id: i32) -> Record {
    let key = Struct::new(key_schema(), vec![Value::Int32(id)]).unwrap();
    Record::new(Arc::from(topic), None, Value::Null)
        .with_key(Some(key_schema()), Value::Struct(key))
}

/// A Debezium change event for table `table` on `topic`.
fn change(
    topic: &str,
    table: &str,
    op: Op,
    before: Option<(i32, &str)>,
    after: Option<(i32, &str)>,
) -> Record {
    let rows = row_schema();
    let source_schema = source_schema_builder("io.debezium.connector.postgresql.Source")
        .field("table", Schema::required(SchemaType::String))
        .build();
    let envelope =
        EnvelopeSchema::new("srv.public.t", rows.clone(), source_schema.clone()).unwrap();
    let source = Struct::new(
        source_schema,
        vec![
            Value::from("3.0"),
            Value::from("postgresql"),
            Value::from("srv"),
            Value::Int64(0),
            Value::from("false"),
            Value::from("shop"),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::from(table),
        ],
    )
    .unwrap();
    let value = envelope.event(
        op,
        before.map(|(id, n)| row(&rows, id, n)),
        after.map(|(id, n)| row(&rows, id, n)),
        source,
        None,
        SystemTime::now(),
    );
    let id = after.or(before).unwrap().0;
    let key = Struct::new(key_schema(), vec![Value::Int32(id)]).unwrap();
    Record::new(Arc::from(topic), Some(envelope.schema().clone()), value)
        .with_key(Some(key_schema()), Value::Struct(key))
}

fn context(pipeline: &str) -> TaskContext {
    let (_, committed) = tokio::sync::watch::channel(Arc::new(OffsetMap::new()));
    TaskContext {
        engine: Arc::from("test"),
        pipeline: Arc::from(pipeline),
        task_id: 0,
        config: Default::default(),
        offsets: OffsetMap::new(),
        committed,
        commit: CommitRequest::default(),
    }
}

async fn task(config: JdbcSinkConfig, pipeline: &str) -> Box<dyn SinkTask> {
    let mut task = JdbcSink::new(config).unwrap().create_task();
    task.start(context(pipeline)).await.unwrap();
    task
}

fn offsets(seq: i64) -> OffsetMap {
    OffsetMap::from([(
        SourcePartition::server("src"),
        SourceOffset::single("seq", seq),
    )])
}

async fn names(db: &mut Db, table: &str) -> Vec<(i64, Option<String>)> {
    let sql = format!(
        "SELECT {}, name FROM {} ORDER BY id",
        db.text("id"),
        db.table(table)
    );
    db.rows(&sql)
        .await
        .into_iter()
        .map(|r| (r[0].as_ref().unwrap().parse().unwrap(), r[1].clone()))
        .collect()
}

#[tokio::test]
async fn upsert_by_record_key_creates_the_table_and_applies_changes_and_deletes() {
    for dialect in DIALECTS {
        let mut db = Db::new(dialect).await;
        let config = db
            .config()
            .with_insert_mode(InsertMode::Upsert)
            .with_pk(PkMode::RecordKey, &[])
            .with_delete_enabled(true)
            .with_auto_create(true, false);
        let mut sink = task(config, "p").await;
        sink.put(&[
            plain("users", 1, "a"),
            plain("users", 2, "b"),
            plain("users", 1, "a2"),
        ])
        .await
        .unwrap();
        sink.put(&[
            change(
                "users",
                "users",
                Op::Update,
                Some((2, "b")),
                Some((2, "b2")),
            ),
            change("users", "users", Op::Create, None, Some((3, "c"))),
            change("users", "users", Op::Delete, Some((1, "a2")), None),
            tombstone("users", 3),
            change("users", "users", Op::Create, None, Some((3, "c again"))),
        ])
        .await
        .unwrap();
        sink.flush(&offsets(2)).await.unwrap();
        assert_eq!(
            names(&mut db, "users").await,
            [(2, Some("b2".into())), (3, Some("c again".into()))],
            "{dialect}"
        );
        sink.stop().await.unwrap();
    }
}

#[tokio::test]
async fn nothing_is_visible_before_flush_and_the_offsets_commit_with_the_rows() {
    for dialect in DIALECTS {
        let mut db = Db::new(dialect).await;
        let config = db
            .config()
            .with_auto_create(true, false)
            .with_event_id_column("event_id");
        let mut sink = task(config.clone(), "copy").await;
        assert!(
            sink.committed_offsets().await.unwrap().is_none(),
            "{dialect}"
        );
        sink.put(&[plain("t", 1, "a")]).await.unwrap();
        sink.flush(&offsets(1)).await.unwrap();
        sink.put(&[plain("t", 2, "b"), plain("t", 3, "c")])
            .await
            .unwrap();
        assert_eq!(
            db.count("t").await,
            1,
            "{dialect}: uncommitted rows are invisible"
        );
        // A crash before the flush: the open transaction dies with the task.
        drop(sink);
        let mut again = task(config.clone(), "copy").await;
        assert_eq!(
            again.committed_offsets().await.unwrap(),
            Some(offsets(1)),
            "{dialect}"
        );
        assert_eq!(db.count("t").await, 1, "{dialect}");
        again
            .put(&[plain("t", 2, "b"), plain("t", 3, "c")])
            .await
            .unwrap();
        again.flush(&offsets(3)).await.unwrap();
        assert_eq!(db.count("t").await, 3, "{dialect}");
        let distinct = format!(
            "SELECT {} FROM {}",
            db.text("COUNT(DISTINCT event_id)"),
            db.table("t")
        );
        assert_eq!(
            db.scalar(&distinct).await.as_deref(),
            Some("3"),
            "{dialect}"
        );
        // Another pipeline's offsets are its own.
        let mut other = task(config, "other").await;
        assert!(
            other.committed_offsets().await.unwrap().is_none(),
            "{dialect}"
        );
    }
}

#[tokio::test]
async fn hostile_table_and_column_names_are_only_names() {
    let hostile_table = r#"t"; DROP TABLE x; --`'"#;
    let hostile_column = r#"c"`); DELETE FROM y; --"#;
    for dialect in DIALECTS {
        let mut db = Db::new(dialect).await;
        let schema = Schema::struct_builder()
            .optional()
            .field("id", Schema::required(SchemaType::Int32))
            .field(hostile_column, Schema::optional(SchemaType::String))
            .build();
        let record = |id: i32, v: &str| {
            let key = Struct::new(key_schema(), vec![Value::Int32(id)]).unwrap();
            Record::new(
                Arc::from(hostile_table),
                Some(schema.clone()),
                Value::Struct(
                    Struct::new(schema.clone(), vec![Value::Int32(id), Value::from(v)]).unwrap(),
                ),
            )
            .with_key(Some(key_schema()), Value::Struct(key))
        };
        let config = db
            .config()
            .with_insert_mode(InsertMode::Upsert)
            .with_pk(PkMode::RecordKey, &[])
            .with_auto_create(true, true);
        let mut sink = task(config, "p").await;
        sink.put(&[record(1, "'; --"), record(1, "x\"y`z")])
            .await
            .unwrap();
        sink.flush(&offsets(1)).await.unwrap();
        let quote = if dialect == "mysql" { '`' } else { '"' };
        let column = format!(
            "{quote}{}{quote}",
            hostile_column.replace(quote, &format!("{quote}{quote}"))
        );
        let sql = format!("SELECT {column} FROM {}", db.table(hostile_table));
        assert_eq!(
            db.scalar(&sql).await.as_deref(),
            Some("x\"y`z"),
            "{dialect}"
        );
    }
}

#[tokio::test]
async fn missing_tables_and_columns_are_errors_naming_them_and_evolve_adds_columns() {
    for dialect in DIALECTS {
        let mut db = Db::new(dialect).await;
        let mut sink = task(db.config(), "p").await;
        let e = sink
            .put(&[plain("absent", 1, "a")])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("absent") && e.contains("auto.create"),
            "{dialect}: {e}"
        );
        drop(sink);

        let create = format!("CREATE TABLE {} (id INTEGER NOT NULL)", db.table("narrow"));
        db.admin.execute(&create).await.unwrap();
        let mut sink = task(db.config(), "p").await;
        let e = sink
            .put(&[plain("narrow", 1, "a")])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("narrow") && e.contains("`name`") && e.contains("auto.evolve"),
            "{dialect}: {e}"
        );
        drop(sink);

        let mut sink = task(db.config().with_auto_create(false, true), "p").await;
        sink.put(&[plain("narrow", 1, "a")]).await.unwrap();
        sink.flush(&offsets(1)).await.unwrap();
        assert_eq!(
            names(&mut db, "narrow").await,
            [(1, Some("a".into()))],
            "{dialect}"
        );
    }
}

#[tokio::test]
async fn update_mode_by_value_fields_touches_only_existing_rows() {
    for dialect in DIALECTS {
        let mut db = Db::new(dialect).await;
        let base = db
            .config()
            .with_pk(PkMode::RecordValue, &["id"])
            .with_auto_create(true, false);
        let mut insert = task(base.clone(), "p").await;
        insert
            .put(&[plain("u", 1, "a"), plain("u", 2, "b")])
            .await
            .unwrap();
        insert.flush(&offsets(1)).await.unwrap();
        drop(insert);
        let mut update = task(base.with_insert_mode(InsertMode::Update), "p").await;
        update
            .put(&[
                plain("u", 2, "b1"),
                plain("u", 3, "never"),
                plain("u", 2, "b2"),
            ])
            .await
            .unwrap();
        update.flush(&offsets(2)).await.unwrap();
        assert_eq!(
            names(&mut db, "u").await,
            [(1, Some("a".into())), (2, Some("b2".into()))],
            "{dialect}"
        );
    }
}

#[tokio::test]
async fn table_name_format_takes_the_source_table_of_change_events() {
    for dialect in DIALECTS {
        let mut db = Db::new(dialect).await;
        let config = db
            .config()
            .with_table_name_format(format!("{}copy_${{source.table}}", db.qualifier))
            .with_pk(PkMode::RecordKey, &[])
            .with_insert_mode(InsertMode::Upsert)
            .with_auto_create(true, false);
        let mut sink = task(config, "p").await;
        sink.put(&[
            change("srv.shop.orders", "orders", Op::Read, None, Some((1, "x"))),
            change("srv.shop.items", "items", Op::Read, None, Some((7, "y"))),
        ])
        .await
        .unwrap();
        sink.flush(&offsets(1)).await.unwrap();
        assert_eq!(
            names(&mut db, "copy_orders").await,
            [(1, Some("x".into()))],
            "{dialect}"
        );
        assert_eq!(
            names(&mut db, "copy_items").await,
            [(7, Some("y".into()))],
            "{dialect}"
        );
    }
}

#[test]
fn bad_configuration_names_the_key() {
    let sqlite = || JdbcSinkConfig::new(ConnectionConfig::new("sqlite::memory:"));
    let e = JdbcSink::new(sqlite().with_insert_mode(InsertMode::Upsert)).unwrap_err();
    assert!(e.to_string().contains("pk.mode"), "{e}");
    let e = JdbcSink::new(sqlite().with_delete_enabled(true)).unwrap_err();
    assert!(e.to_string().contains("delete.enabled"), "{e}");
    let e = JdbcSink::new(sqlite().with_batch_size(0)).unwrap_err();
    assert!(e.to_string().contains("batch.size"), "{e}");
    let e = JdbcSink::new(JdbcSinkConfig::new(ConnectionConfig::new("db2://x"))).unwrap_err();
    assert!(e.to_string().contains("connection.url"), "{e}");
    let props = connect_core::Properties::from_pairs([
        ("connection.url", "sqlite::memory:"),
        ("insert.mode", "merge"),
    ]);
    let e = JdbcSinkConfig::from_props(&props.root()).unwrap_err();
    assert!(e.to_string().contains("insert.mode"), "{e}");
}

/// Ends the sink's connection from the server side, as a server restart or a network
/// failure would.
async fn kill_sink_connection(db: &mut Db, pg_application: &str) {
    let sql = match db.dialect {
        "postgresql" => format!(
            "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity WHERE application_name = '{pg_application}'"
        ),
        _ => {
            let database = db.url.rsplit('/').next().unwrap().to_owned();
            let ids = db
                .rows(&format!(
                    "SELECT CAST(ID AS CHAR) FROM information_schema.PROCESSLIST \
                     WHERE DB = '{database}' AND ID <> CONNECTION_ID()"
                ))
                .await;
            assert_eq!(ids.len(), 1, "one sink connection to kill");
            for id in ids {
                db.admin
                    .execute(&format!("KILL {}", id[0].as_deref().unwrap()))
                    .await
                    .unwrap();
            }
            return;
        }
    };
    let killed = db.rows(&sql).await;
    assert_eq!(killed.len(), 1, "one sink connection to kill");
}

#[tokio::test]
async fn a_lost_connection_mid_transaction_is_reopened_and_the_transaction_written_again() {
    for dialect in ["postgresql", "mysql"] {
        let mut db = Db::new(dialect).await;
        let application = unique("sink");
        let url = if dialect == "postgresql" {
            format!("{}?application_name={application}", db.url)
        } else {
            db.url.clone()
        };
        let config = JdbcSinkConfig::new(ConnectionConfig::new(url))
            .with_table_name_format(format!("{}${{topic}}", db.qualifier))
            .with_offsets_table(format!("{}connect_offsets", db.qualifier))
            .with_auto_create(true, false)
            .with_event_id_column("event_id");
        let mut sink = task(config, "p").await;
        sink.put(&[plain("t", 1, "a")]).await.unwrap();
        sink.flush(&offsets(1)).await.unwrap();
        sink.put(&[plain("t", 2, "b"), plain("t", 3, "c")])
            .await
            .unwrap();
        kill_sink_connection(&mut db, &application).await;
        let batch = [plain("t", 4, "d")];
        // The engine retries a retryable put with the same records, as here.
        let e = sink.put(&batch).await.unwrap_err();
        assert!(e.is_retryable(), "{dialect}: {e}");
        sink.put(&batch).await.unwrap();
        sink.flush(&offsets(4)).await.unwrap();
        assert_eq!(db.count("t").await, 4, "{dialect}: every row once");
        let distinct = format!(
            "SELECT {} FROM {}",
            db.text("COUNT(DISTINCT event_id)"),
            db.table("t")
        );
        assert_eq!(
            db.scalar(&distinct).await.as_deref(),
            Some("4"),
            "{dialect}"
        );
        assert_eq!(
            sink.committed_offsets().await.unwrap(),
            Some(offsets(4)),
            "{dialect}"
        );
    }
}

#[tokio::test]
async fn kafka_coordinates_key_the_rows() {
    for dialect in DIALECTS {
        let mut db = Db::new(dialect).await;
        let config = db
            .config()
            .with_pk(PkMode::Kafka, &[])
            .with_insert_mode(InsertMode::Upsert)
            .with_auto_create(true, false);
        let mut sink = task(config, "p").await;
        let at = |offset: i64, name: &str| {
            let mut r = plain("k", offset as i32, name);
            r.partition = Some(2);
            r.kafka_offset = Some(offset);
            r
        };
        sink.put(&[at(10, "a"), at(11, "b"), at(10, "a again")])
            .await
            .unwrap();
        sink.flush(&offsets(1)).await.unwrap();
        let sql = format!(
            "SELECT {}, {}, {}, name FROM {} ORDER BY __connect_offset",
            db.text("__connect_topic"),
            db.text("__connect_partition"),
            db.text("__connect_offset"),
            db.table("k")
        );
        let rows: Vec<Vec<Option<String>>> = db.rows(&sql).await;
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            rows,
            [
                vec![s("k"), s("2"), s("10"), s("a again")],
                vec![s("k"), s("2"), s("11"), s("b")]
            ],
            "{dialect}"
        );
        let e = sink
            .put(&[plain("k", 1, "not from kafka")])
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("pk.mode=kafka"), "{dialect}: {e}");
    }
}

#[tokio::test]
async fn every_connect_and_debezium_type_keeps_its_value() {
    use connect_core::schema::logical;
    let named = |ty: SchemaType, name: &str| Schema::builder(ty).name(name).build();
    let fields: Vec<(&str, Arc<Schema>, Value, [&str; 3])> = vec![
        (
            "c_bool",
            Schema::required(SchemaType::Boolean),
            Value::Boolean(true),
            ["1", "true", "1"],
        ),
        (
            "c_i8",
            Schema::required(SchemaType::Int8),
            Value::Int8(-7),
            ["-7"; 3],
        ),
        (
            "c_i16",
            Schema::required(SchemaType::Int16),
            Value::Int16(300),
            ["300"; 3],
        ),
        (
            "c_i32",
            Schema::required(SchemaType::Int32),
            Value::Int32(-70_000),
            ["-70000"; 3],
        ),
        (
            "c_i64",
            Schema::required(SchemaType::Int64),
            Value::Int64(9_007_199_254_740_993),
            ["9007199254740993"; 3],
        ),
        (
            "c_f32",
            Schema::required(SchemaType::Float32),
            Value::Float32(1.5),
            ["1.5"; 3],
        ),
        (
            "c_f64",
            Schema::required(SchemaType::Float64),
            Value::Float64(0.1),
            ["0.1"; 3],
        ),
        (
            "c_text",
            Schema::required(SchemaType::String),
            Value::from("héllo ☃ 'q'\t\\N\r\n"),
            ["héllo ☃ 'q'\t\\N\r\n"; 3],
        ),
        (
            "c_dec",
            Schema::builder(SchemaType::Bytes)
                .name(logical::DECIMAL)
                .parameter("scale", "3")
                .build(),
            Value::decimal(12_345_678_901_234_567_890_123),
            ["12345678901234567890.123"; 3],
        ),
        (
            "c_date",
            named(SchemaType::Int32, logical::DATE),
            Value::Int32(19_782),
            ["2024-02-29"; 3],
        ),
        (
            "c_time",
            named(SchemaType::Int32, logical::TIME),
            Value::Int32(3_723_004),
            ["01:02:03.004000", "01:02:03.004", "01:02:03.004"],
        ),
        (
            "c_mtime",
            named(SchemaType::Int64, "io.debezium.time.MicroTime"),
            Value::Int64(3_723_000_004),
            ["01:02:03.000004"; 3],
        ),
        (
            "c_ts",
            named(SchemaType::Int64, logical::TIMESTAMP),
            Value::Int64(1_709_210_096_789),
            [
                "2024-02-29 12:34:56.789000",
                "2024-02-29 12:34:56.789",
                "2024-02-29 12:34:56.789",
            ],
        ),
        (
            "c_mts",
            named(SchemaType::Int64, "io.debezium.time.MicroTimestamp"),
            Value::Int64(1_709_210_096_789_012),
            ["2024-02-29 12:34:56.789012"; 3],
        ),
        (
            "c_nts",
            named(SchemaType::Int64, "io.debezium.time.NanoTimestamp"),
            Value::Int64(1_709_210_096_789_012_345),
            ["2024-02-29 12:34:56.789012"; 3],
        ),
        (
            "c_zts",
            named(SchemaType::String, "io.debezium.time.ZonedTimestamp"),
            Value::from("2024-02-29T12:34:56.789012Z"),
            [
                "2024-02-29T12:34:56.789012Z",
                "2024-02-29 12:34:56.789012+00",
                "2024-02-29 12:34:56.789012",
            ],
        ),
        (
            "c_json",
            named(SchemaType::String, "io.debezium.data.Json"),
            Value::from(r#"{"a": [1, 2]}"#),
            [r#"{"a": [1, 2]}"#; 3],
        ),
        (
            "c_uuid",
            named(SchemaType::String, "io.debezium.data.Uuid"),
            Value::from("f81d4fae-7dec-11d0-a765-00a0c91e6bf6"),
            ["f81d4fae-7dec-11d0-a765-00a0c91e6bf6"; 3],
        ),
    ];
    let mut builder = Schema::struct_builder()
        .optional()
        .field("c_bytes", Schema::required(SchemaType::Bytes));
    for (name, schema, _, _) in &fields {
        builder = builder.field(*name, schema.clone());
    }
    let schema = builder
        .field("c_null", Schema::optional(SchemaType::String))
        .build();
    let mut values = vec![Value::Bytes(bytes::Bytes::from_static(&[0, 1, 255]))];
    values.extend(fields.iter().map(|f| f.2.clone()));
    values.push(Value::Null);
    let record = Record::new(
        Arc::from("types"),
        Some(schema.clone()),
        Value::Struct(Struct::new(schema, values).unwrap()),
    );
    for (d, dialect) in DIALECTS.into_iter().enumerate() {
        let mut db = Db::new(dialect).await;
        let mut sink = task(db.config().with_auto_create(true, false), "p").await;
        sink.put(std::slice::from_ref(&record)).await.unwrap();
        sink.flush(&offsets(1)).await.unwrap();
        let hex = match dialect {
            "postgresql" => "encode(c_bytes, 'hex')",
            _ => "LOWER(HEX(c_bytes))",
        };
        let columns: Vec<String> = fields.iter().map(|f| db.text(f.0)).collect();
        let sql = format!(
            "SELECT {hex}, {}, c_null FROM {}",
            columns.join(", "),
            db.table("types")
        );
        let row = db.rows(&sql).await.remove(0);
        assert_eq!(row[0].as_deref(), Some("0001ff"), "{dialect}: c_bytes");
        for (i, (name, _, _, expected)) in fields.iter().enumerate() {
            assert_eq!(
                row[i + 1].as_deref(),
                Some(expected[d]),
                "{dialect}: {name}"
            );
        }
        assert_eq!(row.last().unwrap(), &None, "{dialect}: c_null");
    }
}

#[tokio::test]
async fn the_sql_offset_store_and_schema_history_keep_what_was_flushed() {
    use connect_core::{HistoryRecord, OffsetStore, SchemaHistory};
    use connect_jdbc::{SqlOffsetStore, SqlSchemaHistory};
    for dialect in DIALECTS {
        let db = Db::new(dialect).await;
        let table = format!("{}offsets", db.qualifier);
        let store = SqlOffsetStore::new(ConnectionConfig::new(&db.url), &table).unwrap();
        assert!(store.load("p").await.unwrap().is_empty(), "{dialect}");
        let (a, b) = (SourcePartition::server("a"), SourcePartition::server("b"));
        store
            .write("p", &[(a.clone(), SourceOffset::single("lsn", 1))])
            .await
            .unwrap();
        store
            .write(
                "p",
                &[
                    (a.clone(), SourceOffset::single("lsn", 2)),
                    (b.clone(), SourceOffset::single("lsn", 9)),
                ],
            )
            .await
            .unwrap();
        store
            .write("q", &[(a.clone(), SourceOffset::single("lsn", 5))])
            .await
            .unwrap();
        // Staged, not durable: a new store sees nothing yet.
        let reopened = || SqlOffsetStore::new(ConnectionConfig::new(&db.url), &table).unwrap();
        assert!(reopened().load("p").await.unwrap().is_empty(), "{dialect}");
        store.flush().await.unwrap();
        let loaded = reopened().load("p").await.unwrap();
        assert_eq!(loaded.len(), 2, "{dialect}");
        assert_eq!(loaded[&a], SourceOffset::single("lsn", 2), "{dialect}");
        assert_eq!(loaded[&b], SourceOffset::single("lsn", 9), "{dialect}");
        assert_eq!(
            reopened().load("q").await.unwrap()[&a],
            SourceOffset::single("lsn", 5),
            "{dialect}"
        );

        let history_table = format!("{}history", db.qualifier);
        let history =
            SqlSchemaHistory::new(ConnectionConfig::new(&db.url), &history_table, "srv").unwrap();
        assert!(history.recover().await.unwrap().is_empty(), "{dialect}");
        let record = |ddl: &str| HistoryRecord {
            source: serde_json::from_str(r#"{"server":"srv"}"#).unwrap(),
            position: serde_json::from_str(r#"{"file":"b.000001","pos":4}"#).unwrap(),
            ts_ms: 1,
            database_name: "shop".into(),
            schema_name: None,
            ddl: Some(ddl.into()),
            table_changes: Vec::new(),
        };
        history
            .append(record("CREATE TABLE a (id INT)"))
            .await
            .unwrap();
        history
            .append(record("ALTER TABLE a ADD b TEXT"))
            .await
            .unwrap();
        history.flush().await.unwrap();
        let other =
            SqlSchemaHistory::new(ConnectionConfig::new(&db.url), &history_table, "other").unwrap();
        other
            .append(record("CREATE TABLE z (id INT)"))
            .await
            .unwrap();
        other.flush().await.unwrap();
        let again =
            SqlSchemaHistory::new(ConnectionConfig::new(&db.url), &history_table, "srv").unwrap();
        let recovered = again.recover().await.unwrap();
        assert_eq!(
            recovered,
            [
                record("CREATE TABLE a (id INT)"),
                record("ALTER TABLE a ADD b TEXT")
            ],
            "{dialect}"
        );
        again.append(record("DROP TABLE a")).await.unwrap();
        again.flush().await.unwrap();
        let third =
            SqlSchemaHistory::new(ConnectionConfig::new(&db.url), &history_table, "srv").unwrap();
        assert_eq!(third.recover().await.unwrap().len(), 3, "{dialect}");
    }
}

#[tokio::test]
async fn the_registry_builds_the_sink_and_stores_from_properties() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("jdbc:sqlite:{}", dir.path().join("r.db").display());
    let mut registry = connect_core::Registry::new();
    connect_jdbc::register(&mut registry);
    let props = connect_core::Properties::from_pairs([
        ("connector.class", connect_jdbc::SINK_CLASS),
        ("name", "copy"),
        ("connection.url", url.as_str()),
        ("insert.mode", "upsert"),
        ("pk.mode", "record_key"),
        ("auto.create", "true"),
        ("delete.enabled", "true"),
    ]);
    let sink = registry.build_sink(&props).unwrap();
    let mut task = sink.create_task();
    task.start(context("copy")).await.unwrap();
    task.put(&[plain("t", 1, "x"), tombstone("t", 1), plain("t", 2, "y")])
        .await
        .unwrap();
    task.flush(&offsets(1)).await.unwrap();
    let mut db = Db {
        dialect: "sqlite",
        url: url.clone(),
        qualifier: String::new(),
        admin: ConnectionConfig::new(&url).connect().await.unwrap(),
        _dir: None,
    };
    assert_eq!(names(&mut db, "t").await, [(2, Some("y".into()))]);

    let unknown = connect_core::Properties::from_pairs([
        ("connector.class", connect_jdbc::SINK_CLASS),
        ("name", "copy"),
        ("connection.url", url.as_str()),
        ("pk.mode", "record_keys"),
    ]);
    let e = registry.build_sink(&unknown).err().unwrap().to_string();
    assert!(e.contains("pk.mode"), "{e}");
}

// --- exactly-once CDC copies across kill -9 ------------------------------------------

const CRASH_DIRECTION_ENV: &str = "CONNECT_JDBC_CRASH_DIRECTION";
const CRASH_SOURCE_ENV: &str = "CONNECT_JDBC_CRASH_SOURCE";
const CRASH_TARGET_ENV: &str = "CONNECT_JDBC_CRASH_TARGET";

fn pg_server_url(db: &str) -> String {
    let base = env(
        "CONNECT_TEST_PG_URL",
        "postgres://postgres:postgres@127.0.0.1:5432/postgres",
    );
    format!("{}/{db}", base.rsplit_once('/').unwrap().0)
}

fn mysql_server_url(db: &str) -> String {
    format!(
        "{}/{db}",
        env("CONNECT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
    )
}

/// The child of the exactly-once crash tests: a CDC source (PostgreSQL or MariaDB
/// database `CRASH_SOURCE`) straight into the JDBC sink (the other server's database
/// `CRASH_TARGET`), insert mode into a table without key, until killed. Offsets live
/// only in the target (the engine's own store is in memory); MariaDB's schema history
/// lives in the target too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the exactly-once crash tests"]
async fn jdbc_crash_child() {
    let (Ok(direction), Ok(source), Ok(target)) = (
        std::env::var(CRASH_DIRECTION_ENV),
        std::env::var(CRASH_SOURCE_ENV),
        std::env::var(CRASH_TARGET_ENV),
    ) else {
        return;
    };
    let (source, target_url): (Arc<dyn connect_core::SourceConnector>, String) =
        if direction == "pg-to-mysql" {
            let config = connect_postgres::PostgresConfig::new(
                &env("CONNECT_TEST_PG_HOST", "127.0.0.1"),
                &env("CONNECT_TEST_PG_USER", "postgres"),
                &env("CONNECT_TEST_PG_PASSWORD", "postgres"),
                &source,
                "srv",
            )
            .with_slot(&source)
            .with_publication(&source, connect_postgres::PublicationMode::AllTables);
            (
                Arc::new(connect_postgres::PostgresSource::new(config).unwrap()),
                mysql_server_url(&target),
            )
        } else {
            let target_url = pg_server_url(&target);
            let history = connect_jdbc::SqlSchemaHistory::new(
                ConnectionConfig::new(&target_url),
                connect_jdbc::DEFAULT_HISTORY_TABLE,
                "srv",
            )
            .unwrap();
            let config = connect_mysql::MySqlConfig::new(
                &env("CONNECT_TEST_MYSQL_HOST", "127.0.0.1"),
                "root",
                "",
                7000 + std::process::id() % 10_000,
                "srv",
            )
            .with_port(env("CONNECT_TEST_MYSQL_PORT", "3306").parse().unwrap())
            .with_databases([source.as_str()])
            .unwrap()
            .with_schema_history(Arc::new(history));
            (
                Arc::new(connect_mysql::MySqlSource::new(config).unwrap()),
                target_url,
            )
        };
    let sink = JdbcSink::new(
        JdbcSinkConfig::new(ConnectionConfig::new(target_url))
            .with_table_name_format("${source.table}")
            .with_auto_create(true, false)
            .with_event_id_column("event_id"),
    )
    .unwrap();
    let pipeline = connect_core::PipelineBuilder::new("copy")
        .source_arc(source)
        .offsets(connect_core::MemoryOffsetStore::new())
        .commit_policy(connect_core::CommitPolicy::periodic(
            std::time::Duration::from_millis(50),
        ))
        .into_connector(sink);
    let engine = connect_core::Engine::builder()
        .pipeline(pipeline)
        .start()
        .await
        .unwrap();
    engine.wait().await.unwrap();
}

/// Rows `from..=to` of `items`, in one statement both dialects run.
fn insert_rows(from: i64, to: i64) -> String {
    format!(
        "INSERT INTO items (id, v) WITH RECURSIVE g(n) AS (SELECT {from} UNION ALL \
         SELECT n + 1 FROM g WHERE n < {to}) SELECT n, CONCAT('v', n) FROM g"
    )
}

/// SIGKILLs the copy `CONNECT_KILL_RUNS` times (default 20) at random points while
/// 100,000 rows are inserted into the source in transactions of random sizes, then lets
/// a last child finish: the target holds every row exactly once.
async fn exactly_once_across_kills(direction: &'static str) {
    use rand::{Rng, SeedableRng};
    let runs: u64 = std::env::var("CONNECT_KILL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    const TOTAL: i64 = 100_000;
    let (source_name, target_name) = (unique("eos_src"), unique("eos_dst"));
    let (pg, mysql) = if direction == "pg-to-mysql" {
        (&source_name, &target_name)
    } else {
        (&target_name, &source_name)
    };
    let mut pg_admin = ConnectionConfig::new(pg_server_url("postgres"))
        .connect()
        .await
        .unwrap();
    pg_admin
        .execute(&format!("CREATE DATABASE {pg}"))
        .await
        .unwrap();
    let mut my_admin =
        ConnectionConfig::new(env("CONNECT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"))
            .connect()
            .await
            .unwrap();
    my_admin
        .execute(&format!("CREATE DATABASE {mysql}"))
        .await
        .unwrap();
    let (source_url, target_url) = if direction == "pg-to-mysql" {
        (pg_server_url(pg), mysql_server_url(mysql))
    } else {
        (mysql_server_url(mysql), pg_server_url(pg))
    };
    let mut source = ConnectionConfig::new(&source_url).connect().await.unwrap();
    if direction == "mysql-to-pg" {
        source
            .execute("SET SESSION max_recursive_iterations = 1000000")
            .await
            .unwrap();
    }
    source
        .execute("CREATE TABLE items (id bigint PRIMARY KEY, v varchar(32))")
        .await
        .unwrap();
    let mut target = ConnectionConfig::new(&target_url).connect().await.unwrap();
    let spawn = || {
        connect_core::testing::spawn_test_child(
            "jdbc_crash_child",
            &[
                (CRASH_DIRECTION_ENV, direction.as_ref()),
                (CRASH_SOURCE_ENV, source_name.as_ref()),
                (CRASH_TARGET_ENV, target_name.as_ref()),
            ],
        )
    };
    let counts = |rows: TextRowsAlias| -> (i64, i64) {
        let parse = |v: &Option<String>| v.as_deref().unwrap().parse().unwrap();
        (parse(&rows[0][0]), parse(&rows[0][1]))
    };
    let text = if direction == "pg-to-mysql" {
        "CHAR"
    } else {
        "TEXT"
    };
    let count_sql = format!(
        "SELECT CAST(COUNT(*) AS {text}), CAST(COUNT(DISTINCT event_id) AS {text}) FROM items"
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let per_run = TOTAL / runs as i64;
    let mut next_id = 1;
    let mut kills = 0;
    // The kills hit the log stream: a snapshot interrupted by a kill is read again from
    // the start (as Debezium does), which exactly-once cannot cover in insert mode. So the
    // first child reads the (empty) snapshot to its end before rows arrive.
    let mut child = Some(spawn());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let stored = target
            .query_text("SELECT source_offset FROM connect_offsets", &[])
            .await
            .unwrap_or_default();
        if stored
            .iter()
            .any(|r| !r[0].as_deref().unwrap_or("").contains("\"snapshot\":true"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{direction}: the snapshot never ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for run in 0..runs {
        let child = child.take().unwrap_or_else(spawn);
        let end = if run + 1 == runs {
            TOTAL
        } else {
            next_id + per_run - 1
        };
        while next_id <= end {
            let size = rng.random_range(1..=2_000).min(end - next_id + 1);
            source
                .execute(&insert_rows(next_id, next_id + size - 1))
                .await
                .unwrap();
            next_id += size;
        }
        tokio::time::sleep(std::time::Duration::from_millis(rng.random_range(0..600))).await;
        connect_core::testing::kill_child(child);
        kills += 1;
        if direction == "pg-to-mysql" {
            // The killed walsender must let go of the slot before the next child starts.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let active = pg_admin
                    .query_text(
                        "SELECT pg_terminate_backend(active_pid)::text FROM pg_replication_slots WHERE slot_name = $1 AND active",
                        &[&source_name],
                    )
                    .await
                    .unwrap();
                if active.is_empty() {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the slot stays active after run {run}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    let last = spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut distinct = 0;
    while distinct < TOTAL {
        if let Ok(r) = target.query_text(&count_sql, &[]).await {
            distinct = counts(r).1;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{direction}: {distinct} of {TOTAL} rows arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    connect_core::testing::kill_child(last);
    let (rows, distinct) = counts(target.query_text(&count_sql, &[]).await.unwrap());
    if rows != distinct {
        let dup_sql = format!(
            "SELECT CAST(id AS {text}) FROM items GROUP BY id HAVING COUNT(*) > 1 ORDER BY id"
        );
        let ids: Vec<i64> = target
            .query_text(&dup_sql, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r[0].as_deref().unwrap().parse().unwrap())
            .collect();
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        for id in ids {
            match ranges.last_mut() {
                Some(r) if r.1 + 1 == id => r.1 = id,
                _ => ranges.push((id, id)),
            }
        }
        println!("{direction}: duplicated ids {ranges:?}");
    }
    assert_eq!(
        (rows, distinct),
        (TOTAL, TOTAL),
        "{direction}: count(*), count(DISTINCT event_id) after {kills} kills"
    );
    println!("{direction}: {TOTAL} rows exactly once across {kills} kills");
    drop((source, target));
    if direction == "pg-to-mysql" {
        let _ = pg_admin
            .execute(&format!("SELECT pg_drop_replication_slot('{source_name}')"))
            .await;
    }
    let _ = pg_admin
        .execute(&format!("DROP DATABASE {pg} WITH (FORCE)"))
        .await;
    let _ = my_admin.execute(&format!("DROP DATABASE {mysql}")).await;
}

type TextRowsAlias = Vec<Vec<Option<String>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_from_postgres_into_mariadb_across_kill_9() {
    exactly_once_across_kills("pg-to-mysql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_from_mariadb_into_postgres_across_kill_9() {
    exactly_once_across_kills("mysql-to-pg").await;
}

#[tokio::test]
async fn table_changes_inside_an_open_transaction_keep_it_whole() {
    let wide_schema = Schema::struct_builder()
        .optional()
        .field("id", Schema::required(SchemaType::Int32))
        .field("name", Schema::optional(SchemaType::String))
        .field("extra", Schema::optional(SchemaType::Int64))
        .build();
    let wide = |topic: &str, id: i32| {
        let key = Struct::new(key_schema(), vec![Value::Int32(id)]).unwrap();
        let value = Struct::new(
            wide_schema.clone(),
            vec![Value::Int32(id), Value::from("w"), Value::Int64(42)],
        )
        .unwrap();
        Record::new(
            Arc::from(topic),
            Some(wide_schema.clone()),
            Value::Struct(value),
        )
        .with_key(Some(key_schema()), Value::Struct(key))
    };
    for dialect in DIALECTS {
        let mut db = Db::new(dialect).await;
        let config = db.config().with_auto_create(true, true);
        let mut sink = task(config.clone(), "p").await;
        sink.put(&[plain("a", 1, "x")]).await.unwrap();
        sink.flush(&offsets(1)).await.unwrap();
        // A new table created while the transaction holds rows of another: a crash
        // before the flush leaves neither the rows of `a` nor those of `b`.
        sink.put(&[plain("a", 2, "y")]).await.unwrap();
        sink.put(&[plain("b", 1, "z")]).await.unwrap();
        drop(sink);
        assert_eq!(db.count("a").await, 1, "{dialect}");
        let b = connect_jdbc::TableName::parse(&format!("{}b", db.qualifier));
        if db.admin.columns(&b).await.unwrap().is_some() {
            assert_eq!(db.count("b").await, 0, "{dialect}");
        }
        // A new column for a table the open transaction wrote to.
        let mut sink = task(config, "p").await;
        sink.put(&[plain("a", 2, "y")]).await.unwrap();
        sink.put(&[wide("a", 3)]).await.unwrap();
        sink.flush(&offsets(3)).await.unwrap();
        let sql = format!(
            "SELECT {} FROM {} WHERE id = 3",
            db.text("extra"),
            db.table("a")
        );
        assert_eq!(db.scalar(&sql).await.as_deref(), Some("42"), "{dialect}");
        assert_eq!(db.count("a").await, 3, "{dialect}");
    }
}

// --- the polling source ------------------------------------------------------------

use connect_jdbc::{JdbcSource, JdbcSourceConfig, Mode};

/// Creates a table `name` of (id auto-increment key, name, updated_at) in `db`.
async fn source_table(db: &mut Db, name: &str) {
    let t = db.table(name);
    let ddl = match db.dialect {
        "postgresql" => format!("CREATE TABLE {t} (id serial PRIMARY KEY, name text, updated_at timestamp(6) NOT NULL)"),
        "mysql" => format!("CREATE TABLE {t} (id INT AUTO_INCREMENT PRIMARY KEY, name TEXT, updated_at DATETIME(6) NOT NULL)"),
        _ => format!("CREATE TABLE {t} (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, updated_at TEXT NOT NULL)"),
    };
    db.admin.execute(&ddl).await.unwrap();
}

async fn insert(db: &mut Db, table: &str, name: &str, updated_at: &str) {
    let sql = format!(
        "INSERT INTO {} (name, updated_at) VALUES ('{name}', '{updated_at}')",
        db.table(table)
    );
    db.admin.execute(&sql).await.unwrap();
}

fn source_config(db: &Db, mode: Mode) -> JdbcSourceConfig {
    let mut c = JdbcSourceConfig::new(ConnectionConfig::new(&db.url), mode, "db.")
        .with_poll_interval(std::time::Duration::from_millis(10));
    if let Some(schema) = db.qualifier.strip_suffix('.') {
        c = c.with_schema(schema);
    }
    c
}

/// A started source task and the offsets it has produced so far.
struct Polling {
    task: Box<dyn connect_core::SourceTask>,
    offsets: OffsetMap,
}

impl Polling {
    async fn start(config: JdbcSourceConfig, offsets: OffsetMap) -> Polling {
        let source = JdbcSource::new(config).unwrap();
        let mut task = connect_core::SourceConnector::create_task(&source);
        let mut ctx = context("src");
        ctx.config = connect_core::SourceConnector::task_configs(&source, 1)
            .unwrap()
            .remove(0);
        ctx.offsets = offsets.clone();
        task.start(ctx).await.unwrap();
        Polling { task, offsets }
    }

    /// Polls until a pass finds nothing new; returns (topic, id, name) of every record.
    async fn drain(&mut self) -> Vec<(String, i64, String)> {
        let mut out = Vec::new();
        loop {
            let batch = self.task.poll().await.unwrap().unwrap();
            if batch.records.is_empty() && batch.offsets.is_empty() {
                return out;
            }
            self.offsets.extend(batch.offsets);
            for r in batch.records {
                let row = r.value.as_struct().unwrap();
                out.push((
                    r.topic.to_string(),
                    row.get("id").and_then(Value::as_i64).unwrap(),
                    row.get("name").and_then(Value::as_str).unwrap().to_owned(),
                ));
            }
        }
    }
}

fn ids(rows: &[(String, i64, String)]) -> Vec<i64> {
    rows.iter().map(|r| r.1).collect()
}

#[tokio::test]
async fn incrementing_mode_reads_new_rows_once_and_resumes_after_the_last_id() {
    for dialect in DIALECTS {
        let mut db = Db::new(dialect).await;
        source_table(&mut db, "items").await;
        for i in 0..5 {
            insert(&mut db, "items", &format!("r{i}"), "2024-01-01 00:00:00").await;
        }
        let config = source_config(&db, Mode::Incrementing("id".into())).with_batch_max_rows(2);
        let mut polling = Polling::start(config.clone(), OffsetMap::new()).await;
        let first = polling.drain().await;
        assert_eq!(ids(&first), [1, 2, 3, 4, 5], "{dialect}");
        assert!(
            first.iter().all(|r| r.0 == "db.items"),
            "{dialect}: {first:?}"
        );
        insert(&mut db, "items", "r5", "2024-01-01 00:00:00").await;
        assert_eq!(ids(&polling.drain().await), [6], "{dialect}");
        // A restart from the offsets resumes strictly after the last id.
        insert(&mut db, "items", "r6", "2024-01-01 00:00:00").await;
        let offsets = polling.offsets.clone();
        let mut again = Polling::start(config, offsets).await;
        assert_eq!(ids(&again.drain().await), [7], "{dialect}");
    }
}

#[tokio::test]
async fn timestamp_and_incrementing_pages_through_equal_timestamps_exactly() {
    for dialect in DIALECTS {
        let mut db = Db::new(dialect).await;
        source_table(&mut db, "items").await;
        for i in 0..5 {
            insert(&mut db, "items", &format!("r{i}"), "2024-01-01 00:00:00").await;
        }
        insert(&mut db, "items", "later", "2024-01-01 00:00:01.5").await;
        let mode = Mode::TimestampIncrementing(vec!["updated_at".into()], "id".into());
        let config = source_config(&db, mode).with_batch_max_rows(2);
        let mut polling = Polling::start(config.clone(), OffsetMap::new()).await;
        assert_eq!(ids(&polling.drain().await), [1, 2, 3, 4, 5, 6], "{dialect}");
        // An update moves a row forward in time: read again, once.
        let update = format!(
            "UPDATE {} SET name = 'r1b', updated_at = '2024-01-02 00:00:00' WHERE id = 2",
            db.table("items")
        );
        db.admin.execute(&update).await.unwrap();
        let changed = polling.drain().await;
        assert_eq!(changed, [("db.items".into(), 2, "r1b".into())], "{dialect}");
        // A restart mid-page resumes exactly: a row sharing the last timestamp with a
        // larger id still comes.
        let stop_after_two = polling.offsets.clone();
        insert(&mut db, "items", "same-ts", "2024-01-02 00:00:00").await;
        let mut again = Polling::start(config, stop_after_two).await;
        assert_eq!(ids(&again.drain().await), [7], "{dialect}");
    }
}

#[tokio::test]
async fn timestamp_mode_rereads_updated_rows_and_waits_for_the_delay() {
    for dialect in DIALECTS {
        let mut db = Db::new(dialect).await;
        source_table(&mut db, "items").await;
        insert(&mut db, "items", "old", "2024-01-01 00:00:00").await;
        insert(&mut db, "items", "future", "2999-01-01 00:00:00").await;
        let config = source_config(&db, Mode::Timestamp(vec!["updated_at".into()]))
            .with_timestamp_delay(std::time::Duration::from_secs(3600));
        let mut polling = Polling::start(config, OffsetMap::new()).await;
        // A row stamped after now minus the delay waits.
        assert_eq!(ids(&polling.drain().await), [1], "{dialect}");
        let update = format!(
            "UPDATE {} SET name = 'old2', updated_at = '2024-06-01 00:00:00' WHERE id = 1",
            db.table("items")
        );
        db.admin.execute(&update).await.unwrap();
        let again = polling.drain().await;
        assert_eq!(again, [("db.items".into(), 1, "old2".into())], "{dialect}");
    }
}

#[tokio::test]
async fn bulk_mode_reads_every_row_each_poll_and_lists_only_whitelisted_tables() {
    for dialect in DIALECTS {
        let mut db = Db::new(dialect).await;
        for t in ["a", "b", "c"] {
            source_table(&mut db, t).await;
            insert(&mut db, t, t, "2024-01-01 00:00:00").await;
        }
        let config = source_config(&db, Mode::Bulk).with_tables(["a", "c"]);
        let mut polling = Polling::start(config, OffsetMap::new()).await;
        let mut topics = std::collections::BTreeSet::new();
        for _ in 0..4 {
            let batch = polling.task.poll().await.unwrap().unwrap();
            topics.extend(batch.records.iter().map(|r| r.topic.to_string()));
            assert!(batch.offsets.is_empty(), "{dialect}: bulk has no offsets");
        }
        assert_eq!(
            topics.into_iter().collect::<Vec<_>>(),
            ["db.a", "db.c"],
            "{dialect}"
        );
        let config = source_config(&db, Mode::Bulk).with_excluded_tables(["a", "c"]);
        let mut polling = Polling::start(config, OffsetMap::new()).await;
        let batch = polling.task.poll().await.unwrap().unwrap();
        assert_eq!(batch.records.len(), 1, "{dialect}");
        assert_eq!(&*batch.records[0].topic, "db.b", "{dialect}");
    }
}

#[tokio::test]
async fn a_custom_query_is_polled_incrementally_onto_the_prefix_topic() {
    for dialect in DIALECTS {
        let mut db = Db::new(dialect).await;
        source_table(&mut db, "items").await;
        for name in ["keep", "drop", "keep"] {
            insert(&mut db, "items", name, "2024-01-01 00:00:00").await;
        }
        let query = format!(
            "SELECT id, name FROM {} WHERE name = 'keep'",
            db.table("items")
        );
        let config = JdbcSourceConfig::new(
            ConnectionConfig::new(&db.url),
            Mode::Incrementing("id".into()),
            "kept",
        )
        .with_query(query)
        .with_poll_interval(std::time::Duration::from_millis(10));
        let mut polling = Polling::start(config, OffsetMap::new()).await;
        let rows = polling.drain().await;
        assert_eq!(
            rows,
            [
                ("kept".into(), 1, "keep".into()),
                ("kept".into(), 3, "keep".into())
            ],
            "{dialect}"
        );
    }
}

#[test]
fn bad_source_configuration_names_the_key() {
    let props = |pairs: &[(&str, &str)]| {
        let mut all = vec![
            ("connection.url", "sqlite::memory:"),
            ("topic.prefix", "p."),
        ];
        all.extend_from_slice(pairs);
        connect_core::Properties::from_pairs(all)
    };
    let e = JdbcSourceConfig::from_props(&props(&[("mode", "incrementing")]).root()).unwrap_err();
    assert!(e.to_string().contains("incrementing.column.name"), "{e}");
    let e = JdbcSourceConfig::from_props(
        &props(&[
            ("mode", "timestamp+incrementing"),
            ("incrementing.column.name", "id"),
        ])
        .root(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("timestamp.column.name"), "{e}");
    let e = JdbcSourceConfig::from_props(&props(&[("mode", "sometimes")]).root()).unwrap_err();
    assert!(e.to_string().contains("mode"), "{e}");
    let e = JdbcSourceConfig::from_props(&props(&[("batch.max.rows", "0")]).root()).unwrap_err();
    assert!(e.to_string().contains("batch.max.rows"), "{e}");
    let e = JdbcSourceConfig::from_props(
        &props(&[("table.whitelist", "a"), ("table.blacklist", "b")]).root(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("table.blacklist"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_inserted_while_polling_arrive_exactly_once_in_order() {
    for dialect in DIALECTS {
        for mode in [
            Mode::Incrementing("id".into()),
            Mode::TimestampIncrementing(vec!["updated_at".into()], "id".into()),
        ] {
            let mut db = Db::new(dialect).await;
            source_table(&mut db, "items").await;
            let config = source_config(&db, mode.clone()).with_batch_max_rows(7);
            let mut polling = Polling::start(config, OffsetMap::new()).await;
            const ROWS: i64 = 300;
            let url = db.url.clone();
            let table = db.table("items");
            let writer = tokio::spawn(async move {
                let mut conn = ConnectionConfig::new(&url).connect().await.unwrap();
                for i in 0..ROWS {
                    // Timestamps repeat (ten rows each), so pages split rows of one timestamp.
                    let sql = format!(
                        "INSERT INTO {table} (name, updated_at) VALUES ('w{i}', '2024-01-01 00:{:02}:00')",
                        i / 10 % 60
                    );
                    conn.execute(&sql).await.unwrap();
                }
            });
            let mut seen = Vec::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while seen.len() < ROWS as usize {
                seen.extend(ids(&polling.drain().await));
                assert!(
                    std::time::Instant::now() < deadline,
                    "{dialect} {mode:?}: {} of {ROWS}",
                    seen.len()
                );
            }
            writer.await.unwrap();
            seen.extend(ids(&polling.drain().await));
            assert_eq!(seen, (1..=ROWS).collect::<Vec<_>>(), "{dialect} {mode:?}");
        }
    }
}

/// One row of many types read by the source from `source` and written by the sink to
/// each of `targets`, compared there in SQL (`expected[i]` for `targets[i]`).
async fn round_trip(
    source: &'static str,
    ddl: &str,
    insert: &str,
    targets: [&'static str; 2],
    expected: &[(&str, [&str; 2])],
) {
    let mut src = Db::new(source).await;
    let t = src.table("rt");
    src.admin.execute(&ddl.replace("{t}", &t)).await.unwrap();
    src.admin.execute(&insert.replace("{t}", &t)).await.unwrap();
    let mut polling = Polling::start(
        source_config(&src, Mode::Bulk).with_tables(["rt"]),
        OffsetMap::new(),
    )
    .await;
    let records = polling.task.poll().await.unwrap().unwrap().records;
    assert_eq!(records.len(), 1, "{source}");
    for (i, target) in targets.into_iter().enumerate() {
        let mut dst = Db::new(target).await;
        let config = dst
            .config()
            .with_table_name_format(format!("{}rt", dst.qualifier))
            .with_auto_create(true, false);
        let mut sink = task(config, "rt").await;
        sink.put(&records).await.unwrap();
        sink.flush(&offsets(1)).await.unwrap();
        let columns: Vec<String> = expected
            .iter()
            .map(|(c, _)| match (*c, target) {
                ("bin", "postgresql") => "encode(bin, 'hex')".to_owned(),
                ("bin", _) => "LOWER(HEX(bin))".to_owned(),
                (c, _) => dst.text(c),
            })
            .collect();
        let sql = format!("SELECT {} FROM {}", columns.join(", "), dst.table("rt"));
        let row = dst.rows(&sql).await.remove(0);
        for (j, (column, want)) in expected.iter().enumerate() {
            assert_eq!(
                row[j].as_deref(),
                Some(want[i]),
                "{source} -> {target}: {column}"
            );
        }
    }
}

#[tokio::test]
async fn types_round_trip_from_postgres_to_mariadb_and_sqlite() {
    round_trip(
        "postgresql",
        "CREATE TABLE {t} (id int PRIMARY KEY, b boolean, i2 smallint, i8 bigint, f4 real, \
         f8 double precision, n numeric(12,3), nv numeric, t text, bin bytea, d date, tm time(6), \
         ts timestamp(6), tz timestamptz, j jsonb, u uuid)",
        "INSERT INTO {t} VALUES (1, true, -7, 9007199254740993, 1.5, 0.1, 123456789.125, 12.5, \
         'héllo', '\\x0001ff', '2024-02-29', '01:02:03.000004', '2024-02-29 12:34:56.789012', \
         '2024-02-29 12:34:56.789012+00', '{\"a\": [1, 2]}', 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6')",
        ["mysql", "sqlite"],
        &[
            ("b", ["1", "1"]),
            ("i2", ["-7", "-7"]),
            ("i8", ["9007199254740993"; 2]),
            ("f4", ["1.5"; 2]),
            ("f8", ["0.1"; 2]),
            ("n", ["123456789.125"; 2]),
            ("nv", ["12.500000000000000000000000000000", "12.5"]),
            ("t", ["héllo"; 2]),
            ("bin", ["0001ff"; 2]),
            ("d", ["2024-02-29"; 2]),
            ("tm", ["01:02:03.000004"; 2]),
            ("ts", ["2024-02-29 12:34:56.789012"; 2]),
            ("tz", ["2024-02-29 12:34:56.789012", "2024-02-29T12:34:56.789012Z"]),
            ("j", [r#"{"a": [1, 2]}"#; 2]),
            ("u", ["f81d4fae-7dec-11d0-a765-00a0c91e6bf6"; 2]),
        ],
    )
    .await;
}

#[tokio::test]
async fn types_round_trip_from_mariadb_to_postgres_and_sqlite() {
    round_trip(
        "mysql",
        "CREATE TABLE {t} (id INT PRIMARY KEY, b BOOLEAN, i2 SMALLINT, i8 BIGINT, f4 FLOAT, \
         f8 DOUBLE, n DECIMAL(12,3), t TEXT, bin VARBINARY(10), d DATE, tm TIME(6), \
         ts DATETIME(6), tz TIMESTAMP(6) NULL, u INT UNSIGNED)",
        "INSERT INTO {t} VALUES (1, 1, -7, 9007199254740993, 1.5, 0.1, 123456789.125, 'héllo', \
         X'0001FF', '2024-02-29', '01:02:03.000004', '2024-02-29 12:34:56.789012', \
         '2024-02-29 12:34:56.789012', 4000000000)",
        ["postgresql", "sqlite"],
        &[
            ("b", ["true", "1"]),
            ("i2", ["-7", "-7"]),
            ("i8", ["9007199254740993"; 2]),
            ("f4", ["1.5"; 2]),
            ("f8", ["0.1"; 2]),
            ("n", ["123456789.125"; 2]),
            ("t", ["héllo"; 2]),
            ("bin", ["0001ff"; 2]),
            ("d", ["2024-02-29"; 2]),
            ("tm", ["01:02:03.000004"; 2]),
            ("ts", ["2024-02-29 12:34:56.789012"; 2]),
            (
                "tz",
                [
                    "2024-02-29 12:34:56.789012+00",
                    "2024-02-29T12:34:56.789012Z",
                ],
            ),
            ("u", ["4000000000"; 2]),
        ],
    )
    .await;
}

#[tokio::test]
async fn source_errors_name_the_table_and_column_or_privilege() {
    for dialect in DIALECTS {
        let mut db = Db::new(dialect).await;
        source_table(&mut db, "items").await;
        insert(&mut db, "items", "a", "2024-01-01 00:00:00").await;
        let mut polling = Polling::start(
            source_config(&db, Mode::Incrementing("nope".into())),
            OffsetMap::new(),
        )
        .await;
        let e = polling.task.poll().await.unwrap_err().to_string();
        assert!(e.contains("items") && e.contains("nope"), "{dialect}: {e}");
    }
    // A user who may not read the table.
    let mut db = Db::new("postgresql").await;
    source_table(&mut db, "items").await;
    let role = unique("reader");
    let schema = db.qualifier.trim_end_matches('.').to_owned();
    db.admin
        .execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'pw'; GRANT USAGE ON SCHEMA {schema} TO {role}"
        ))
        .await
        .unwrap();
    let config = JdbcSourceConfig::new(
        ConnectionConfig::new(&db.url)
            .with_user(&role)
            .with_password("pw"),
        Mode::Bulk,
        "db.",
    )
    .with_schema(&schema);
    let mut polling = Polling::start(config.clone(), OffsetMap::new()).await;
    let e = polling.task.poll().await.unwrap_err().to_string();
    assert!(
        e.contains("items") && e.contains("permission denied"),
        "{e}"
    );
    // A whitelisted table that is not there is named, not silently skipped.
    let source = JdbcSource::new(config.with_tables(["items", "absent"])).unwrap();
    let mut task = connect_core::SourceConnector::create_task(&source);
    let e = task.start(context("src")).await.unwrap_err().to_string();
    assert!(e.contains("absent") && e.contains("table.whitelist"), "{e}");
    drop(polling);
    db.admin
        .execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_registry_builds_the_source_from_properties() {
    let mut db = Db::new("sqlite").await;
    source_table(&mut db, "items").await;
    insert(&mut db, "items", "a", "2024-01-01 00:00:00").await;
    let mut registry = connect_core::Registry::new();
    connect_jdbc::register(&mut registry);
    let props = connect_core::Properties::from_pairs([
        ("connector.class", connect_jdbc::SOURCE_CLASS),
        ("name", "poll"),
        ("connection.url", db.url.as_str()),
        ("mode", "incrementing"),
        ("incrementing.column.name", "id"),
        ("topic.prefix", "sqlite."),
        ("poll.interval.ms", "10"),
    ]);
    let built = registry.build_pipeline(&props).unwrap();
    let (pipeline, mut batches) = built.pipeline.into_channel(8);
    let engine = connect_core::Engine::builder()
        .name(&built.name)
        .pipeline(pipeline)
        .start()
        .await
        .unwrap();
    let mut topics = Vec::new();
    while topics.is_empty() {
        let batch = batches.recv().await.expect("the pipeline runs");
        topics.extend(batch.records().iter().map(|r| r.topic.to_string()));
        batch.ack();
    }
    assert_eq!(topics, ["sqlite.items"]);
    let shutdown = tokio::spawn(engine.shutdown());
    while let Some(batch) = batches.recv().await {
        batch.ack();
    }
    shutdown.await.unwrap().unwrap();
}
