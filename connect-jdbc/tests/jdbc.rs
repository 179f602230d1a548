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
