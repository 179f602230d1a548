//! connect-mysql against the real MariaDB that `scripts/test.sh` starts
//! (`CONNECT_TEST_MYSQL_HOST`/`_PORT`/`_USER`/`_PASSWORD` override 127.0.0.1:3306 root
//! with no password). Restart tests use the second server on 3307
//! (`CONNECT_TEST_MYSQL_DISRUPT_PORT`), which they stop and start as root.

use connect_mysql::server::{preflight, Flavor};
use connect_mysql::MySqlConfig;
use mysql_async::prelude::Queryable;

fn env(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

fn config(user: &str, password: &str) -> MySqlConfig {
    MySqlConfig::new(
        &env("CONNECT_TEST_MYSQL_HOST", "127.0.0.1"),
        user,
        password,
        // A server id per test process, so parallel runs do not evict each other.
        5000 + std::process::id() % 10_000,
        "srv",
    )
    .with_port(env("CONNECT_TEST_MYSQL_PORT", "3306").parse().unwrap())
}

/// The second server (3307 unless `CONNECT_TEST_MYSQL_DISRUPT_PORT`), which restart tests
/// stop and start.
fn disrupt_server() -> MySqlConfig {
    root().with_port(
        env("CONNECT_TEST_MYSQL_DISRUPT_PORT", "3307")
            .parse()
            .unwrap(),
    )
}

fn root() -> MySqlConfig {
    config(
        &env("CONNECT_TEST_MYSQL_USER", "root"),
        &env("CONNECT_TEST_MYSQL_PASSWORD", ""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_accepts_the_test_server_and_names_missing_privileges() {
    let (mut conn, info) = preflight(&root())
        .await
        .expect("MariaDB reachable and configured (run scripts/test.sh)");
    assert_eq!(info.flavor, Flavor::MariaDb, "{}", info.version);
    assert_eq!(info.flavor.connector_name(), "mariadb");
    assert!(
        info.position.0.starts_with("mariadb-bin."),
        "{:?}",
        info.position
    );
    assert!(info.position.1 >= 4);
    // The position moves with the binlog.
    conn.query_drop("CREATE DATABASE IF NOT EXISTS connect_test_preflight")
        .await
        .unwrap();
    let (_, later) = preflight(&root()).await.unwrap();
    assert!(
        later.position > info.position,
        "{:?} then {:?}",
        info.position,
        later.position
    );

    // A user that may only SELECT: refused, naming the grants to add.
    let user = format!("connect_np_{}", std::process::id());
    conn.query_drop(format!(
        "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'pw'; GRANT SELECT ON *.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();
    let err = preflight(&config(&user, "pw"))
        .await
        .unwrap_err()
        .to_string();
    conn.query_drop(format!(
        "DROP USER '{user}'@'%'; DROP DATABASE connect_test_preflight"
    ))
    .await
    .unwrap();
    assert!(
        err.contains(&user) && err.contains("REPLICATION SLAVE") && err.contains("GRANT"),
        "{err}"
    );
}

/// A database of its own for a test, dropped at the end.
struct TestDb {
    name: String,
    conn: mysql_async::Conn,
}

impl TestDb {
    async fn new(tag: &str) -> TestDb {
        TestDb::on(tag, &root()).await
    }

    async fn on(tag: &str, server: &MySqlConfig) -> TestDb {
        let name = format!("connect_test_{tag}_{}", std::process::id());
        let mut conn = connect_mysql::server::connect(server, "test")
            .await
            .expect("MariaDB reachable (run scripts/test.sh)");
        conn.query_drop(format!(
            "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}; USE {name}"
        ))
        .await
        .unwrap();
        TestDb { name, conn }
    }

    async fn drop(mut self) {
        self.conn
            .query_drop(format!("DROP DATABASE {}", self.name))
            .await
            .unwrap();
    }

    /// Inserts rows into `items` (`id` then `rest`, e.g. `, 'note'`) until one arrives
    /// from the binlog, not from a snapshot the insert may race: then the reader behind
    /// `rx` is streaming. `last_id` is the last id used.
    async fn stream_a_row(
        &mut self,
        rx: &mut connect_core::BatchReceiver,
        last_id: &mut i32,
        rest: &str,
    ) {
        use connect_core::Value;
        loop {
            *last_id += 1;
            let id = *last_id;
            self.conn
                .query_drop(format!("INSERT INTO items VALUES ({id}{rest})"))
                .await
                .unwrap();
            let op = loop {
                let batch = next_batch(rx).await;
                let op = batch
                    .changes()
                    .find(|c| c.after().and_then(|r| r.get("id")) == Some(&Value::Int32(id)))
                    .and_then(|c| c.op());
                batch.ack();
                if let Some(op) = op {
                    break op;
                }
            };
            if op == connect_core::envelope::Op::Create {
                return;
            }
        }
    }
}

/// The next batch, within 30 s.
async fn next_batch(rx: &mut connect_core::BatchReceiver) -> connect_core::Batch {
    tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
        .await
        .expect("a batch within 30 s")
        .expect("engine running")
}

/// The `id` of every change's after-image.
fn after_ids(batch: &connect_core::Batch) -> Vec<i64> {
    batch
        .changes()
        .filter_map(|c| {
            c.after()
                .and_then(|r| r.get("id"))
                .and_then(connect_core::Value::as_i64)
        })
        .collect()
}

/// The error that stops an engine (within 30 s: a fatal error, not endless retries).
async fn fatal_error(engine: connect_core::Engine) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(30), engine.wait())
        .await
        .expect("a fatal error within 30 s, not retries")
        .unwrap_err()
        .to_string()
}

/// Every event (snapshot read, then an insert, an update and a delete with its tombstone
/// in one transaction) of every common type is what Debezium 3.6.3 emitted for the same
/// statements (`tests/data`), once the values that differ between runs, the connector's
/// name (`mariadb` here, the MySQL connector's `mysql` there) and the GTID (which the MySQL
/// connector does not read from MariaDB) are masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_match_debezium_byte_for_byte() {
    matches_debezium(
        "golden",
        include_str!("data/types_setup.sql"),
        include_str!("data/types_changes.sql"),
        include_str!("data/debezium_3.6.3_mysql_connector_on_mariadb.jsonl"),
        Some(include_str!(
            "data/debezium_3.6.3_mysql_types_cloudevents.jsonl"
        )),
    )
    .await;
}

/// As above for the spatial types (Debezium's Geometry and Point structs; SRID 0 is
/// null), recorded with `scripts/golden-mysql.sh spatial 2`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spatial_events_match_debezium() {
    matches_debezium(
        "spatial",
        include_str!("data/spatial_setup.sql"),
        include_str!("data/spatial_changes.sql"),
        include_str!("data/debezium_3.6.3_mysql_spatial.jsonl"),
        None,
    )
    .await;
}

/// The snapshot reads by the binary protocol, yet gives what Debezium's snapshot reads
/// as text: FLOAT with the server's 6 significant digits (streamed: the exact `f32`),
/// DOUBLE exactly, a date with a zero month as null, negative TIME, YEAR, INT UNSIGNED
/// (recorded with `scripts/golden-mysql.sh binproto 2`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_protocol_values_match_debezium() {
    matches_debezium(
        "binproto",
        include_str!("data/binproto_setup.sql"),
        include_str!("data/binproto_changes.sql"),
        include_str!("data/debezium_3.6.3_mysql_binproto.jsonl"),
        None,
    )
    .await;
}

/// Runs `setup` in a new database, starts the connector, runs `changes` once the
/// snapshot's first event arrived, and compares every event with Debezium's `golden`
/// lines (`topic<TAB>key<TAB>value`, the database named `golden`).
async fn matches_debezium(
    tag: &str,
    setup: &str,
    changes: &str,
    golden: &str,
    cloud_events: Option<&str>,
) {
    use connect_core::{Engine, JsonConverter, Record};
    let golden: Vec<&str> = golden.lines().collect();
    let mut db = TestDb::new(tag).await;
    db.conn.query_drop(setup).await.unwrap();
    let config = root().with_databases([db.name.as_str()]).unwrap();
    let (engine, mut rx) = Engine::builder()
        .name("mysql-golden")
        .source(connect_mysql::MySqlSource::new(config).unwrap())
        .into_channel(8)
        .start()
        .await
        .unwrap();
    let mut records: Vec<Record> = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut changed = false;
    while records.len() < golden.len() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let batch = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} records arrived", records.len()))
            .expect("engine running");
        records.extend(batch.records().iter().cloned());
        batch.ack();
        if !changed && !records.is_empty() {
            changed = true;
            db.conn.query_drop(changes).await.unwrap();
        }
    }
    engine.shutdown().await.unwrap();
    let json = |schema: Option<&std::sync::Arc<connect_core::Schema>>,
                value: &connect_core::Value| {
        connect_core::testing::converted(&JsonConverter::default(), schema, value)
            .replace(&db.name, "golden")
    };
    let masks = [
        (r#""(ts_ms|ts_us|ts_ns|pos)":\d+"#, r#""$1":0"#),
        (r#""(version|file|created)":"[^"]*""#, r#""$1":"M""#),
        (r#""connector":"[^"]*""#, r#""connector":"M""#),
        (r#""gtid":("[^"]*"|null)"#, r#""gtid":"M""#),
        (r#"io\.debezium\.connector\.\w+\.Source"#, "SOURCE"),
    ]
    .map(|(re, to)| (regex::Regex::new(re).unwrap(), to));
    let mask = |s: &str| {
        masks.iter().fold(s.to_owned(), |s, (re, to)| {
            re.replace_all(&s, *to).into_owned()
        })
    };
    assert_eq!(records.len(), golden.len(), "{records:?}");
    for (i, (record, line)) in records.iter().zip(&golden).enumerate() {
        let mut parts = line.splitn(3, '\t');
        let (topic, key, value) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert_eq!(
            record.topic.replace(&db.name, "golden"),
            topic,
            "record {i}"
        );
        connect_core::testing::assert_same_json(
            &mask(&json(record.key_schema.as_ref(), &record.key)),
            &mask(key),
            &format!("key {i}"),
        );
        connect_core::testing::assert_same_json(
            &mask(&json(record.value_schema.as_ref(), &record.value)),
            &mask(value),
            &format!("value {i}"),
        );
    }
    if let Some(golden) = cloud_events {
        // Debezium's recording is its MySQL connector's: our events are given its
        // connector name (ours on MariaDB is `mariadb`, whose CloudEvents carry the whole
        // envelope as data), so that everything else is compared.
        let ce = connect_core::CloudEventsConverter::new(true, true);
        let ce_masks = connect_core::testing::Masks::new(&[
            (
                r#""(time|iodebeziumversion|iodebeziumfile|iodebeziumgtid)":("[^"]*"|null)"#,
                r#""$1":"M""#,
            ),
            (r#""(iodebezium(tsms|tsus|tsns|pos))":"\d+""#, r#""$1":"N""#),
            (r#"file:[^;]*;pos:\d+"#, "file:F;pos:N"),
        ]);
        let ce_mask = |s: &str| ce_masks.apply(&mask(s));
        let expected: Vec<&str> = golden.lines().collect();
        assert_eq!(records.len(), expected.len());
        for (i, (record, line)) in records.iter().zip(&expected).enumerate() {
            let value = as_mysql_connector(&record.value);
            let ours = connect_core::testing::converted(&ce, record.value_schema.as_ref(), &value)
                .replace(&db.name, "golden");
            connect_core::testing::assert_same_json(
                &ce_mask(&ours),
                &ce_mask(line.splitn(3, '\t').nth(2).unwrap()),
                &format!("CloudEvent {i}"),
            );
        }
    }
    db.drop().await;
}

/// A change event whose `source.connector` says `mysql`.
fn as_mysql_connector(value: &connect_core::Value) -> connect_core::Value {
    use connect_core::{Struct, Value};
    let Value::Struct(envelope) = value else {
        return value.clone();
    };
    let mut values = envelope.values().to_vec();
    let (i, _) = envelope.schema().field("source").unwrap();
    if let Value::Struct(source) = &values[i] {
        let mut sv = source.values().to_vec();
        let (c, _) = source.schema().field("connector").unwrap();
        sv[c] = Value::from("mysql");
        values[i] = Value::Struct(Struct::new(source.schema().clone(), sv).unwrap());
    }
    Value::Struct(Struct::new(envelope.schema().clone(), values).unwrap())
}

/// Two tables in several batches: every row once, Debezium's snapshot markers, an offset
/// at the binlog position of the snapshot; a restart after it reads nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_reads_every_row_once_and_records_its_binlog_position() {
    use connect_core::{Engine, MemoryOffsetStore, SourcePartition, Value};
    let mut db = TestDb::new("snap").await;
    db.conn
        .query_drop(
            "SET SESSION max_recursive_iterations = 10000;
             CREATE TABLE a (id int PRIMARY KEY, v varchar(10));
             CREATE TABLE b (id int PRIMARY KEY, v varchar(10));
             INSERT INTO a WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 2500) SELECT n, 'a' FROM g;
             INSERT INTO b WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1200) SELECT n, 'b' FROM g;",
        )
        .await
        .unwrap();
    let offsets = MemoryOffsetStore::new();
    let run = || async {
        let mut config = root()
            .with_databases([db.name.as_str()])
            .unwrap()
            .with_snapshot_mode(connect_mysql::SnapshotMode::InitialOnly);
        config.fetch_size = 1000;
        let (engine, mut rx) = Engine::builder()
            .name("mysql-snap")
            .source(connect_mysql::MySqlSource::new(config).unwrap())
            .offsets(offsets.clone())
            .into_channel(4)
            .start()
            .await
            .unwrap();
        let mut rows = Vec::new();
        while let Some(batch) = rx.recv().await {
            for c in batch.changes() {
                let after = c.after().unwrap();
                let marker = c
                    .source()
                    .and_then(|s| s.get("snapshot"))
                    .and_then(Value::as_str)
                    .unwrap()
                    .to_owned();
                rows.push((
                    after.get("v").and_then(Value::as_str).unwrap().to_owned(),
                    after.get("id").and_then(Value::as_i64).unwrap(),
                    marker,
                ));
            }
            batch.ack();
        }
        engine.wait().await.expect("initial_only ends cleanly");
        rows
    };
    let rows = run().await;
    let distinct: std::collections::BTreeSet<(String, i64)> =
        rows.iter().map(|(v, id, _)| (v.clone(), *id)).collect();
    assert_eq!((rows.len(), distinct.len()), (3700, 3700));
    let markers: Vec<&str> = rows.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(markers[0], "first");
    assert_eq!(markers[2499], "last_in_data_collection");
    assert_eq!(markers[3699], "last");
    assert_eq!(markers.iter().filter(|m| **m == "true").count(), 3697);
    let offset = offsets.snapshot("mysql-snap")[&SourcePartition::server("srv")].clone();
    assert!(offset.get("snapshot").is_none(), "{offset:?}");
    assert!(offset
        .get("file")
        .and_then(|f| f.as_str())
        .is_some_and(|f| f.starts_with("mariadb-bin.")));
    assert!(offset.get("pos").and_then(|p| p.as_u64()).unwrap() > 4);
    // MariaDB always has a GTID position.
    assert!(
        offset.get("gtids").and_then(|g| g.as_str()).is_some(),
        "{offset:?}"
    );
    // Done: a second start reads nothing.
    assert!(run().await.is_empty());
    db.drop().await;
}

/// Streaming resumes from the stored offset: rows written while the connector was down
/// arrive after a restart, and a transaction cut off half delivered (its consumer went
/// away) continues exactly after its last committed row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_resumes_inside_a_transaction_by_gtid() {
    resume_inside_a_transaction(true).await;
}

/// As above with a stored offset without GTIDs (file and position only, as from a server
/// without GTIDs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_resumes_inside_a_transaction_by_file_and_position() {
    resume_inside_a_transaction(false).await;
}

async fn resume_inside_a_transaction(by_gtid: bool) {
    use connect_core::{BatchReceiver, MemoryOffsetStore, OffsetStore, SourcePartition, Value};
    const ROWS: i64 = 6000;
    let mut db = TestDb::new(if by_gtid { "resume_gtid" } else { "resume_pos" }).await;
    db.conn
        .query_drop("CREATE TABLE items (id int PRIMARY KEY, v varchar(10)); INSERT INTO items VALUES (0, 'snap');")
        .await
        .unwrap();
    let offsets = MemoryOffsetStore::new();
    let history = std::sync::Arc::new(connect_core::MemorySchemaHistory::new());
    let start = || async {
        let config = root()
            .with_databases([db.name.as_str()])
            .unwrap()
            .with_schema_history(history.clone());
        start_engine("mysql-resume", config, &offsets, 2).await
    };
    async fn ids(rx: &mut BatchReceiver, n: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while out.len() < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let batch = tokio::time::timeout(left, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} events", out.len()))
                .expect("engine running");
            for c in batch.changes() {
                out.push(
                    c.after()
                        .and_then(|r| r.get("id"))
                        .and_then(Value::as_i64)
                        .unwrap(),
                );
            }
            batch.ack();
        }
        out
    }
    let (engine, mut rx) = start().await;
    assert_eq!(ids(&mut rx, 1).await, [0]);
    // The snapshot's completion is a position-only batch: ack it, and wait until the
    // offset says the snapshot is done.
    let partition = SourcePartition::server("srv");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while offsets
        .snapshot("mysql-resume")
        .get(&partition)
        .is_none_or(|o| o.get("snapshot").is_some())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "snapshot never committed"
        );
        if let Ok(Some(batch)) =
            tokio::time::timeout(std::time::Duration::from_millis(50), rx.recv()).await
        {
            batch.ack();
        }
    }
    engine.shutdown().await.unwrap();
    // Written while down, then one large transaction.
    db.conn
        .query_drop(
            "SET SESSION max_recursive_iterations = 100000; INSERT INTO items VALUES (1, 'down')",
        )
        .await
        .unwrap();
    db.conn
        .query_drop(format!(
            "INSERT INTO items WITH RECURSIVE g(n) AS (SELECT 2 UNION ALL SELECT n + 1 FROM g WHERE n < {}) SELECT n, 'big' FROM g",
            ROWS + 1
        ))
        .await
        .unwrap();
    let (engine, mut rx) = start().await;
    let first = ids(&mut rx, 3000).await;
    assert_eq!(first[0], 1, "the row written while down comes first");
    drop(rx); // the consumer goes away inside the large transaction: a nack
    assert!(engine.wait().await.is_err());
    let stored = offsets.snapshot("mysql-resume")[&partition].clone();
    let event = stored
        .get("event")
        .and_then(|e| e.as_u64())
        .expect("an offset inside the transaction");
    assert!(event > 0, "{stored:?}");
    assert!(
        stored.get("gtids").is_some(),
        "MariaDB offsets hold GTIDs: {stored:?}"
    );
    if !by_gtid {
        let mut without = stored.map().clone();
        without.remove("gtids");
        offsets
            .write(
                "mysql-resume",
                &[(partition.clone(), connect_core::SourceOffset::new(without))],
            )
            .await
            .unwrap();
    }
    let (engine, mut rx) = start().await;
    let delivered_before = first.iter().filter(|&&id| id >= 2).count() as i64;
    let rest = ids(&mut rx, 1).await;
    // Resumes after the last committed batch: no gap, and neither the committed rows of
    // the transaction (its first is 2) nor more than the uncommitted ones again.
    assert!(
        rest[0] > 2 && rest[0] <= delivered_before + 2,
        "resumed at {}",
        rest[0]
    );
    // Row 0 came with the snapshot, in the first run.
    let mut seen: std::collections::BTreeSet<i64> = first.into_iter().chain([0]).collect();
    seen.extend(rest.iter().copied());
    // Rows delivered but not committed before the nack come again: receive until every
    // row was seen (ids() fails after its own deadline if rows stop coming).
    while seen.len() < (ROWS + 2) as usize {
        seen.extend(ids(&mut rx, 1).await);
    }
    let missing: Vec<i64> = (0..=ROWS + 1).filter(|id| !seen.contains(id)).collect();
    assert!(missing.is_empty(), "missing rows: {missing:?}");
    engine.shutdown().await.unwrap();
    db.drop().await;
}

/// A stored position whose binlog file is gone: an error naming it (never a silent jump
/// ahead), or with `when_needed` a new snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_position_is_an_error_or_a_new_snapshot() {
    use connect_core::{Engine, MemoryOffsetStore, OffsetStore, SourceOffset, SourcePartition};
    let mut db = TestDb::new("purged").await;
    db.conn
        .query_drop("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1), (2);")
        .await
        .unwrap();
    let offsets = MemoryOffsetStore::new();
    let mut gone = serde_json::Map::new();
    gone.insert("file".into(), "mariadb-bin.999999".into());
    gone.insert("pos".into(), 4.into());
    offsets
        .write(
            "mysql-purged",
            &[(SourcePartition::server("srv"), SourceOffset::new(gone))],
        )
        .await
        .unwrap();
    let run = |mode| {
        let config = root()
            .with_databases([db.name.as_str()])
            .unwrap()
            .with_snapshot_mode(mode);
        let offsets = offsets.clone();
        async move {
            Engine::builder()
                .name("mysql-purged")
                .source(connect_mysql::MySqlSource::new(config).unwrap())
                .offsets(offsets)
                .into_channel(4)
                .start()
                .await
                .unwrap()
        }
    };
    let (engine, _rx) = run(connect_mysql::SnapshotMode::Initial).await;
    let err = engine.wait().await.unwrap_err().to_string();
    assert!(
        err.contains("mariadb-bin.999999") && err.contains("when_needed"),
        "{err}"
    );
    let (engine, mut rx) = run(connect_mysql::SnapshotMode::WhenNeeded).await;
    let batch = next_batch(&mut rx).await;
    let ops: Vec<_> = batch.changes().map(|c| c.op()).collect();
    batch.ack();
    assert_eq!(
        ops,
        [Some(connect_core::Op::Read), Some(connect_core::Op::Read)]
    );
    engine.shutdown().await.unwrap();
    db.drop().await;
}

use connect_core::testing::{CRASH_DB_ENV, CRASH_DIR_ENV};

/// The child of `kill_9_during_snapshot_and_streaming`: MariaDB → unwrap → file, offsets
/// in a file, until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the crash test"]
async fn mysql_crash_child() {
    use connect_core::{transform::ExtractNewRecordState, CommitPolicy, Engine, FileOffsetStore};
    let (Ok(name), Ok(dir)) = (std::env::var(CRASH_DB_ENV), std::env::var(CRASH_DIR_ENV)) else {
        return;
    };
    let dir = std::path::Path::new(&dir);
    let sink = connect_file::FileSink::new(
        connect_file::FileSinkConfig::new(dir.join("out.txt"))
            .with_converter(connect_core::StringConverter),
    )
    .unwrap();
    let engine = Engine::builder()
        .name("mysql-crash")
        .source(
            connect_mysql::MySqlSource::new(
                root()
                    .with_databases([name.as_str()])
                    .unwrap()
                    .with_schema_history(std::sync::Arc::new(
                        connect_core::FileSchemaHistory::open(dir.join("history.jsonl")).unwrap(),
                    )),
            )
            .unwrap(),
        )
        .transform("unwrap", ExtractNewRecordState::new())
        .offsets(FileOffsetStore::open(dir.join("offsets.json")).unwrap())
        .commit_policy(CommitPolicy::periodic(std::time::Duration::from_millis(20)))
        .into_connector(sink)
        .start()
        .await
        .unwrap();
    engine.wait().await.unwrap();
}

/// Rows `from..=to` of the crash test's `items`.
fn insert_rows(from: i64, to: i64) -> String {
    format!("INSERT INTO items (id, v) WITH RECURSIVE g(n) AS (SELECT {from} UNION ALL SELECT n + 1 FROM g WHERE n < {to}) SELECT n, CONCAT('v', n) FROM g")
}

/// Whether the offsets file holds a position, and whether that position is still the
/// snapshot's.
fn stored_position(offsets: &std::path::Path) -> Option<bool> {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(offsets).ok()?)
        .expect("offsets file is valid JSON after a kill");
    let offset = doc.as_object()?.values().next()?;
    offset.get("file")?;
    Some(offset.get("snapshot") == Some(&serde_json::Value::Bool(true)))
}

/// SIGKILL at random points (`CONNECT_KILL_RUNS`, default 16) while a 150k-row snapshot
/// runs and then while a growing binlog backlog (with DDL in it) streams. At the end every row is in the
/// output and none was skipped (repeats only where a restart replays uncommitted work or
/// an interrupted snapshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_snapshot_and_streaming() {
    use rand::{Rng, SeedableRng};
    use std::time::Duration;
    let runs: u64 = std::env::var("CONNECT_KILL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let mut db = TestDb::new("crash").await;
    db.conn
        .query_drop(format!(
            "SET SESSION max_recursive_iterations = 1000000; CREATE TABLE items (id int PRIMARY KEY, v varchar(20)); {}",
            insert_rows(1, 150_000)
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    /// The binlog grows while the child is down: 100k rows in several transactions,
    /// with a column added in their middle, so that rows on both sides of the DDL are
    /// read with their own columns after a kill (the schema history is in a file).
    struct Scenario<'a> {
        db: &'a mut TestDb,
        dir: &'a std::path::Path,
    }
    #[connect_core::async_trait]
    impl connect_core::testing::CrashScenario for Scenario<'_> {
        fn spawn(&self) -> std::process::Child {
            connect_core::testing::spawn_crash_child("mysql_crash_child", &self.db.name, self.dir)
        }
        fn in_snapshot(&self) -> Option<bool> {
            stored_position(&self.dir.join("offsets.json"))
        }
        async fn grow(&mut self, run: u64, mut next_id: i64) -> i64 {
            for batch in 0..5 {
                if batch == 2 {
                    self.db
                        .conn
                        .query_drop(format!(
                            "ALTER TABLE items ADD COLUMN c{run} int DEFAULT {run}"
                        ))
                        .await
                        .unwrap();
                }
                self.db
                    .conn
                    .query_drop(insert_rows(next_id, next_id + 19_999))
                    .await
                    .unwrap();
                next_id += 20_000;
            }
            next_id
        }
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xc0ffee);
    let output = connect_core::testing::CrashOutput::new(dir.path().join("out.txt"));
    connect_core::testing::kill_during_snapshot_and_streaming(
        &mut Scenario {
            db: &mut db,
            dir: dir.path(),
        },
        &output,
        runs,
        150_000,
        || Duration::from_millis(rng.random_range(20..250)),
    )
    .await;
    // Every DDL is in the history file (a replay after a kill may record one twice).
    let recorded: std::collections::BTreeSet<String> =
        std::fs::read_to_string(dir.path().join("history.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|r| r.get("ddl")?.as_str().map(str::to_owned))
            .collect();
    assert_eq!(recorded.len() as u64, runs - runs / 2, "{recorded:?}");
    db.drop().await;
}

/// Runs a command that must succeed (a server restart needs root, as `scripts/test.sh`).
fn run(program: &str, args: &[&str]) {
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

/// The second MariaDB that `scripts/services.sh` starts on 3307 for tests that restart it.
const DISRUPT_CNF: &str = "/etc/mysql/connect-disrupt.cnf";
const DISRUPT_SOCKET: &str = "/run/mysqld/disrupt.sock";

/// A server restart while streaming: the engine retries until the server is back and
/// resumes from the committed position; every row written before and after arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_survives_a_server_restart() {
    use connect_core::{CommitPolicy, Engine, Value};
    use std::time::{Duration, Instant};
    let server = disrupt_server();
    let mut db = TestDb::on("restart", &server).await;
    db.conn
        .query_drop("SET SESSION max_recursive_iterations = 100000; CREATE TABLE items (id int PRIMARY KEY, v varchar(4))")
        .await
        .unwrap();
    let (engine, mut rx) = Engine::builder()
        .name("mysql-restart")
        .source(
            connect_mysql::MySqlSource::new(
                server.clone().with_databases([db.name.as_str()]).unwrap(),
            )
            .unwrap(),
        )
        .commit_policy(CommitPolicy::always())
        .into_channel(16)
        .start()
        .await
        .unwrap();
    let insert = |from: i64, to: i64, v: &str| {
        format!("INSERT INTO items WITH RECURSIVE g(n) AS (SELECT {from} UNION ALL SELECT n + 1 FROM g WHERE n < {to}) SELECT n, '{v}' FROM g")
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut receive_until = async |rx: &mut connect_core::BatchReceiver, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let batch = tokio::time::timeout(left, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} rows arrived", seen.len()))
                .expect("the engine keeps running through the restart");
            for c in batch.changes() {
                seen.insert(
                    c.after()
                        .and_then(|r| r.get("id"))
                        .and_then(Value::as_i64)
                        .unwrap(),
                );
            }
            batch.ack();
        }
    };
    db.conn.query_drop(insert(1, 1000, "a")).await.unwrap();
    receive_until(&mut rx, 1000).await;
    // Written just before the shutdown: may or may not be read before the stop.
    db.conn.query_drop(insert(1001, 2000, "b")).await.unwrap();
    drop(db.conn);
    run("mariadb-admin", &["--socket", DISRUPT_SOCKET, "shutdown"]);
    run(
        "start-stop-daemon",
        &[
            "--start",
            "--background",
            "--pidfile",
            "/run/mysqld/disrupt.pid",
            "--exec",
            "/usr/sbin/mariadbd",
            "--",
            &format!("--defaults-file={DISRUPT_CNF}"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conn = loop {
        match connect_mysql::server::connect(&server, "test").await {
            Ok(conn) => break conn,
            Err(e) => assert!(Instant::now() < deadline, "server not back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    conn.query_drop(format!(
        "SET SESSION max_recursive_iterations = 100000; USE {}; {}",
        db.name,
        insert(2001, 3000, "c")
    ))
    .await
    .unwrap();
    receive_until(&mut rx, 3000).await;
    assert_eq!(seen, (1..=3000).collect());
    engine.shutdown().await.unwrap();
    TestDb {
        conn,
        name: db.name,
    }
    .drop()
    .await;
}

/// `heartbeat.interval.ms`: an idle connector commits position-only batches between
/// transactions, and rows still arrive in between. (On the second server, where only the
/// restart test writes a handful of transactions, far fewer than the commits awaited.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_commit_while_idle() {
    use connect_core::{CommitPolicy, Engine};
    use std::time::{Duration, Instant};
    let server = disrupt_server();
    let mut db = TestDb::on("heartbeat", &server).await;
    db.conn
        .query_drop("CREATE TABLE items (id int PRIMARY KEY)")
        .await
        .unwrap();
    let config = server
        .clone()
        .with_databases([db.name.as_str()])
        .unwrap()
        .with_heartbeat(Duration::from_millis(20));
    let (engine, mut rx) = Engine::builder()
        .name("mysql-heartbeat")
        .source(connect_mysql::MySqlSource::new(config).unwrap())
        .commit_policy(CommitPolicy::always())
        .into_channel(4)
        .start()
        .await
        .unwrap();
    let commits = || {
        engine
            .metrics()
            .pipeline("mysql-heartbeat")
            .unwrap()
            .commits
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while commits() < 40 {
        assert!(
            Instant::now() < deadline,
            "only {} commits while idle",
            commits()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.conn
        .query_drop("INSERT INTO items VALUES (7)")
        .await
        .unwrap();
    let batch = next_batch(&mut rx).await;
    let ids: Vec<_> = after_ids(&batch);
    batch.ack();
    assert_eq!(ids, [7]);
    engine.shutdown().await.unwrap();
    db.drop().await;
}

/// Change events of the next `n` rows: (table, row), acknowledging every batch.
async fn next_rows(
    rx: &mut connect_core::BatchReceiver,
    n: usize,
) -> Vec<(String, connect_core::Struct)> {
    let mut rows = Vec::new();
    while rows.len() < n {
        let batch = next_batch(rx).await;
        for change in batch.changes() {
            let table = change.source().and_then(|s| s.get("table").cloned());
            if let (Some(connect_core::Value::String(table)), Some(row)) = (table, change.after()) {
                rows.push((table.to_string(), row.clone()));
            }
        }
        batch.ack();
    }
    rows
}

/// A DDL-following test's engine: the tables of `db`, offsets and schema history kept
/// across restarts.
async fn start_ddl_engine(
    db: &str,
    offsets: &connect_core::MemoryOffsetStore,
    history: &std::sync::Arc<connect_core::MemorySchemaHistory>,
) -> (connect_core::Engine, connect_core::BatchReceiver) {
    let config = root()
        .with_databases([db])
        .unwrap()
        .with_schema_history(history.clone());
    start_engine("mysql-ddl", config, offsets, 4).await
}

/// Engine `name` on `config`'s source, into a channel of `capacity` batches, committing
/// each acknowledged batch to `offsets`.
async fn start_engine(
    name: &str,
    config: MySqlConfig,
    offsets: &connect_core::MemoryOffsetStore,
    capacity: usize,
) -> (connect_core::Engine, connect_core::BatchReceiver) {
    connect_core::Engine::builder()
        .name(name)
        .source(connect_mysql::MySqlSource::new(config).unwrap())
        .offsets(offsets.clone())
        .commit_policy(connect_core::CommitPolicy::always())
        .into_channel(capacity)
        .start()
        .await
        .unwrap()
}

/// Add, rename and drop column, retype, rename table, each between rows: followed while
/// streaming, and replayed after a restart whose binlog holds rows written before DDL
/// that ran while the connector was down (each row read with the columns of its time,
/// from the schema history, not with the table's current definition).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_mid_stream_is_followed_and_replayed_across_a_restart() {
    use connect_core::{MemoryOffsetStore, MemorySchemaHistory};
    let mut db = TestDb::new("ddl").await;
    db.conn
        .query_drop(
            "CREATE TABLE t (id int PRIMARY KEY, v varchar(10)); INSERT INTO t VALUES (0, 'snap')",
        )
        .await
        .unwrap();
    let offsets = MemoryOffsetStore::new();
    let history = std::sync::Arc::new(MemorySchemaHistory::new());
    let shape = |rows: &[(String, connect_core::Struct)]| -> Vec<String> {
        rows.iter()
            .map(|(table, row)| {
                let fields: Vec<String> = row
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| format!("{}={:?}", f.name(), row.get(f.name()).unwrap()))
                    .collect();
                format!("{table}({})", fields.join(", "))
            })
            .collect()
    };
    let (engine, mut rx) = start_ddl_engine(&db.name, &offsets, &history).await;
    assert_eq!(next_rows(&mut rx, 1).await.len(), 1);
    db.conn
        .query_drop(
            "INSERT INTO t VALUES (1, 'a'); ALTER TABLE t ADD COLUMN extra int;
             INSERT INTO t VALUES (2, 'b', 20); ALTER TABLE t CHANGE v w varchar(10);
             INSERT INTO t VALUES (3, 'c', 30); ALTER TABLE t DROP COLUMN extra;
             INSERT INTO t VALUES (4, 'd'); RENAME TABLE t TO t2; INSERT INTO t2 VALUES (5, 'e');
             CREATE TABLE copy SELECT id, w AS label FROM t2 WHERE id = 5",
        )
        .await
        .unwrap();
    let streamed = next_rows(&mut rx, 6).await;
    assert_eq!(
        shape(&streamed),
        [
            r#"t(id=Int32(1), v=String("a"))"#,
            r#"t(id=Int32(2), v=String("b"), extra=Int32(20))"#,
            r#"t(id=Int32(3), w=String("c"), extra=Int32(30))"#,
            r#"t(id=Int32(4), w=String("d"))"#,
            r#"t2(id=Int32(5), w=String("e"))"#,
            // CREATE TABLE ... SELECT: MariaDB logs the CREATE with its columns, then rows.
            r#"copy(id=Int32(5), label=String("e"))"#,
        ]
    );
    engine.shutdown().await.unwrap();
    // While down: rows before and after more DDL. The catalog now says id is a bigint
    // and n comes first; rows 6 and 7 were written before that.
    db.conn
        .query_drop(
            "INSERT INTO t2 VALUES (6, 'f'); ALTER TABLE t2 MODIFY id bigint;
             INSERT INTO t2 VALUES (7, 'g'); ALTER TABLE t2 ADD COLUMN n int FIRST;
             INSERT INTO t2 VALUES (80, 8, 'h')",
        )
        .await
        .unwrap();
    let (engine, mut rx) = start_ddl_engine(&db.name, &offsets, &history).await;
    let replayed = next_rows(&mut rx, 3).await;
    assert_eq!(
        shape(&replayed),
        [
            r#"t2(id=Int32(6), w=String("f"))"#,
            r#"t2(id=Int64(7), w=String("g"))"#,
            r#"t2(n=Int32(80), id=Int64(8), w=String("h"))"#,
        ]
    );
    engine.shutdown().await.unwrap();
    // Each DDL on a captured table is recorded with its statement and position.
    let records = connect_core::SchemaHistory::recover(&*history)
        .await
        .unwrap();
    let ddl: Vec<&str> = records.iter().filter_map(|r| r.ddl.as_deref()).collect();
    assert_eq!(ddl.len(), 7, "{ddl:?}");
    assert!(ddl[3].starts_with("RENAME TABLE t TO t2"), "{ddl:?}");
    assert!(records.iter().all(|r| r.position.contains_key("pos")));
    db.drop().await;
}

/// A DDL the parser cannot read (`ORDER BY` in an ALTER) is read from the server's
/// catalog when no later DDL on the table follows it in the binlog; when one does, the
/// connector stops with an error naming both statements instead of guessing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparsable_ddl_is_read_from_the_catalog_only_without_later_ddl() {
    use connect_core::{MemoryOffsetStore, MemorySchemaHistory, SchemaHistory};
    use std::time::{Duration, Instant};
    let mut db = TestDb::new("ddl_unparsed").await;
    db.conn
        .query_drop("CREATE TABLE t (id int PRIMARY KEY, a int); INSERT INTO t VALUES (0, 0)")
        .await
        .unwrap();
    let offsets = MemoryOffsetStore::new();
    let history = std::sync::Arc::new(MemorySchemaHistory::new());
    let (engine, mut rx) = start_ddl_engine(&db.name, &offsets, &history).await;
    assert_eq!(next_rows(&mut rx, 1).await.len(), 1);
    db.conn
        .query_drop("ALTER TABLE t ADD COLUMN c int, ORDER BY id")
        .await
        .unwrap();
    // Followed once its record is in the history.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(batch)) = tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
            batch.ack();
        }
        let records = SchemaHistory::recover(&*history).await.unwrap();
        if records
            .iter()
            .any(|r| r.ddl.as_deref().is_some_and(|d| d.contains("ORDER BY")))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the DDL was not recorded");
    }
    db.conn
        .query_drop("INSERT INTO t VALUES (1, 1, 5)")
        .await
        .unwrap();
    let rows = next_rows(&mut rx, 1).await;
    assert_eq!(rows[0].1.get("c"), Some(&connect_core::Value::Int32(5)));
    engine.shutdown().await.unwrap();
    db.conn
        .query_drop(
            "ALTER TABLE t ADD COLUMN d int, ORDER BY id; INSERT INTO t VALUES (2, 2, 6, 7);
             ALTER TABLE t DROP COLUMN a; INSERT INTO t VALUES (3, 6, 7)",
        )
        .await
        .unwrap();
    let (engine, _rx) = start_ddl_engine(&db.name, &offsets, &history).await;
    let err = fatal_error(engine).await;
    assert!(
        err.contains("ADD COLUMN d int, ORDER BY id")
            && err.contains("more DDL on them")
            && err.contains("ALTER TABLE t DROP COLUMN a"),
        "{err}"
    );
    db.drop().await;
}

/// Two readers with one server id evict each other: the evicted one stops with an error
/// naming `database.server.id` (no endless mutual eviction), and an id equal to the
/// server's own is refused before reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_server_id_is_named() {
    use connect_core::Engine;
    use std::time::{Duration, Instant};
    let mut db = TestDb::new("dup_id").await;
    db.conn
        .query_drop("CREATE TABLE items (id int PRIMARY KEY)")
        .await
        .unwrap();
    let config = root().with_databases([db.name.as_str()]).unwrap();
    let start = |name: &'static str| {
        let config = config.clone();
        async move {
            Engine::builder()
                .name(name)
                .source(connect_mysql::MySqlSource::new(config).unwrap())
                .into_channel(4)
                .start()
                .await
                .unwrap()
        }
    };
    let mut last_id = 0;
    let (first, mut first_rx) = start("mysql-first").await;
    db.stream_a_row(&mut first_rx, &mut last_id, "").await;
    let (second, mut second_rx) = start("mysql-second").await;
    let error = |engine: &Engine, name: &str| {
        engine
            .metrics()
            .pipeline(name)
            .and_then(|p| p.error.clone())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let err = loop {
        if let Some(err) = error(&first, "mysql-first") {
            break err;
        }
        assert!(
            Instant::now() < deadline,
            "the first reader was not evicted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        err.contains(&format!("database.server.id {}", config.server_id)),
        "{err}"
    );
    // The second keeps reading.
    db.stream_a_row(&mut second_rx, &mut last_id, "").await;
    assert_eq!(error(&second, "mysql-second"), None);
    first.shutdown().await.ok();
    second.shutdown().await.unwrap();

    let own: u32 = db
        .conn
        .query_first("SELECT @@server_id")
        .await
        .unwrap()
        .unwrap();
    let mut clash = root();
    clash.server_id = own;
    let err = preflight(&clash).await.unwrap_err().to_string();
    assert!(err.contains(&format!("database.server.id {own}")), "{err}");
    db.drop().await;
}

/// MariaDB resumes by GTID: a stored offset whose file name the server does not have (as
/// after a failover to a replica, whose binlog files differ) continues right after its
/// GTIDs; GTIDs older than the oldest binlog give the purged-position error. On the second
/// server, whose binlog this test purges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtid_resume_finds_the_transaction_in_any_file_and_names_purged_gtids() {
    use connect_core::{
        Engine, MemoryOffsetStore, OffsetStore, SourceOffset, SourcePartition, Value,
    };
    use std::time::Duration;
    let server = disrupt_server();
    let mut db = TestDb::on("gtid_failover", &server).await;
    db.conn
        .query_drop("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1);")
        .await
        .unwrap();
    let done: String = db
        .conn
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap();
    // Rotate and purge, so the oldest binlog starts after `done`.
    db.conn
        .query_drop("INSERT INTO items VALUES (2), (3); FLUSH BINARY LOGS")
        .await
        .unwrap();
    let current: mysql_async::Row = db
        .conn
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .unwrap();
    let current_file: String = current.get(0).unwrap();
    // A dump thread still reading an older file (a reader of another test that is going
    // away) keeps it: purge until the oldest file is the current one.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        db.conn
            .query_drop(format!("PURGE BINARY LOGS TO '{current_file}'"))
            .await
            .unwrap();
        let oldest: mysql_async::Row = db
            .conn
            .query_first("SHOW BINARY LOGS")
            .await
            .unwrap()
            .unwrap();
        if oldest.get::<String, _>(0).as_deref() == Some(current_file.as_str()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "older binlog files still in use"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after_purge: String = db
        .conn
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap();
    db.conn
        .query_drop("INSERT INTO items VALUES (4)")
        .await
        .unwrap();

    let run = |gtids: &str| {
        let offsets = MemoryOffsetStore::new();
        let mut offset = serde_json::Map::new();
        offset.insert("file".into(), "elsewhere-bin.000042".into());
        offset.insert("pos".into(), 1234.into());
        offset.insert("gtids".into(), gtids.into());
        // An offset from elsewhere and no history: rebuilt from the tables as they are.
        let config = server
            .clone()
            .with_databases([db.name.as_str()])
            .unwrap()
            .with_snapshot_mode(connect_mysql::SnapshotMode::Recovery);
        async move {
            offsets
                .write(
                    "mysql-gtid",
                    &[(SourcePartition::server("srv"), SourceOffset::new(offset))],
                )
                .await
                .unwrap();
            Engine::builder()
                .name("mysql-gtid")
                .source(connect_mysql::MySqlSource::new(config).unwrap())
                .offsets(offsets)
                .into_channel(4)
                .start()
                .await
                .unwrap()
        }
    };
    // After every transaction up to the purge: rows 4 only, from the new file.
    let (engine, mut rx) = run(&after_purge).await;
    let batch = next_batch(&mut rx).await;
    let ids: Vec<_> = after_ids(&batch);
    let file = batch
        .changes()
        .next()
        .and_then(|c| c.source())
        .and_then(|s| s.get("file").cloned());
    batch.ack();
    assert_eq!(ids, [4]);
    assert_eq!(file, Some(Value::string(&current_file)));
    engine.shutdown().await.unwrap();
    // Transactions 2 and 3 came after `done` and are purged.
    let (engine, _rx) = run(&done).await;
    let err = fatal_error(engine).await;
    assert!(err.contains(&done) && err.contains("purged"), "{err}");
    db.drop().await;
}

/// TLS (`database.ssl.*`): `preferred` uses it where the server offers it and goes plain
/// where not; `verify_ca` with the right CA reads the snapshot and the binlog over TLS;
/// the wrong CA and `required` against a server without TLS stop the connector with
/// an error naming the setting, instead of retrying forever. The test server's
/// certificates are in /var/lib/connect-test-tls (`CONNECT_TEST_MYSQL_TLS_DIR`), made by
/// scripts/services.sh; the second server (3307) has no TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_ca_and_names_what_fails() {
    use connect_core::Engine;
    use connect_mysql::server::connect;
    use connect_mysql::tls::{SslMode, TlsOptions};
    let dir = std::path::PathBuf::from(env(
        "CONNECT_TEST_MYSQL_TLS_DIR",
        "/var/lib/connect-test-tls",
    ));
    let tls = |mode, ca: Option<&str>| TlsOptions {
        mode,
        ca: ca.map(|file| dir.join(file)),
        ..TlsOptions::default()
    };
    async fn cipher(config: &MySqlConfig) -> String {
        let mut conn = connect(config, "test").await.unwrap();
        let row: Option<(String, String)> = conn
            .query_first("SHOW STATUS LIKE 'Ssl_cipher'")
            .await
            .unwrap();
        row.map(|(_, cipher)| cipher).unwrap_or_default()
    }
    assert!(
        !cipher(&root()).await.is_empty(),
        "preferred: TLS where offered"
    );
    assert_eq!(
        cipher(&disrupt_server()).await,
        "",
        "preferred: plain where not"
    );

    let mut db = TestDb::new("tls").await;
    db.conn
        .query_drop("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1)")
        .await
        .unwrap();
    let run = |server: MySqlConfig, tls: TlsOptions| {
        let config = server
            .with_databases([db.name.as_str()])
            .unwrap()
            .with_tls(tls);
        async move {
            Engine::builder()
                .name("mysql-tls")
                .source(connect_mysql::MySqlSource::new(config).unwrap())
                .into_channel(4)
                .start()
                .await
                .unwrap()
        }
    };
    let verified = tls(SslMode::VerifyCa, Some("ca.crt"));
    let mut with_ca = root().with_tls(verified.clone());
    with_ca.server_id += 1;
    assert!(!cipher(&with_ca).await.is_empty());
    let (engine, mut rx) = run(root(), verified).await;
    let mut ids = Vec::new();
    let mut next = async || {
        let batch = next_batch(&mut rx).await;
        let found: Vec<_> = after_ids(&batch);
        batch.ack();
        found
    };
    while ids.is_empty() {
        ids.extend(next().await); // the snapshot
    }
    db.conn
        .query_drop("INSERT INTO items VALUES (2)")
        .await
        .unwrap();
    while !ids.contains(&2) {
        ids.extend(next().await); // streamed
    }
    assert_eq!(ids, [1, 2]);
    engine.shutdown().await.unwrap();

    for (server, tls, expected) in [
        (
            root(),
            tls(SslMode::VerifyCa, Some("other-ca.crt")),
            "database.ssl.ca",
        ),
        (
            disrupt_server(),
            tls(SslMode::Required, None),
            "does not offer TLS",
        ),
    ] {
        let (engine, _rx) = run(server, tls).await;
        let err = fatal_error(engine).await;
        assert!(err.contains(expected), "{err}");
    }
    db.drop().await;
}

/// A TCP proxy to the test server whose connections can be made to hang: data in
/// flight is dropped and nothing more passes, yet the sockets stay open (a network
/// partition, as a dead NAT entry or a failed-over load balancer leaves it). Connections
/// made after a stall pass again.
struct StallingProxy {
    port: u16,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl StallingProxy {
    async fn start(target: u16) -> StallingProxy {
        use std::sync::atomic::{AtomicU64, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let generation = std::sync::Arc::new(AtomicU64::new(0));
        let current = generation.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let born = current.load(Ordering::SeqCst);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                for (mut from, mut to) in [(client_read, server_write), (server_read, client_write)]
                {
                    let current = current.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 << 10];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if current.load(Ordering::SeqCst) != born {
                                // Stalled: hold both sockets open, pass nothing.
                                std::future::pending::<()>().await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        StallingProxy { port, generation }
    }

    /// Every connection open now hangs.
    fn stall(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A binlog connection that goes silent without closing (a network partition) is taken
/// for dead after `connect.keep.alive.interval.ms` without an event or a heartbeat, and
/// the connector reconnects and continues from its offset: nothing is missed, nothing
/// hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_binlog_connection_is_reconnected() {
    use connect_core::{CommitPolicy, Engine};
    use std::time::Duration;
    let mut db = TestDb::new("keepalive").await;
    db.conn
        .query_drop("CREATE TABLE items (id int PRIMARY KEY)")
        .await
        .unwrap();
    let proxy = StallingProxy::start(root().port).await;
    let config = root()
        .with_port(proxy.port)
        .with_databases([db.name.as_str()])
        .unwrap()
        .with_keep_alive(Some(Duration::from_millis(300)));
    let (engine, mut rx) = Engine::builder()
        .name("mysql-keepalive")
        .source(connect_mysql::MySqlSource::new(config).unwrap())
        .commit_policy(CommitPolicy::always())
        .into_channel(4)
        .start()
        .await
        .unwrap();
    let mut last_id = 0;
    db.stream_a_row(&mut rx, &mut last_id, "").await;
    proxy.stall();
    // Written while the connection hangs, which passes nothing more: only a new
    // connection can deliver it.
    db.stream_a_row(&mut rx, &mut last_id, "").await;
    engine.shutdown().await.unwrap();
    db.drop().await;
}

/// `log_bin_compress` turned on while the connector streams: the compressed rows event
/// stops it with an error naming the setting, never a silent skip of its rows. On the
/// second server, whose global setting this test changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_binlog_event_stops_the_connector_by_name() {
    use connect_core::{CommitPolicy, Engine};
    let server = disrupt_server();
    let mut db = TestDb::on("compressed", &server).await;
    db.conn
        .query_drop("CREATE TABLE items (id int PRIMARY KEY, note text)")
        .await
        .unwrap();
    let config = server.clone().with_databases([db.name.as_str()]).unwrap();
    let (engine, mut rx) = Engine::builder()
        .name("mysql-compressed")
        .source(connect_mysql::MySqlSource::new(config).unwrap())
        .commit_policy(CommitPolicy::always())
        .into_channel(4)
        .start()
        .await
        .unwrap();
    let mut last_id = 0;
    db.stream_a_row(&mut rx, &mut last_id, ", 'short'").await;
    let long = "x".repeat(4096);
    db.conn
        .query_drop(format!(
            "SET GLOBAL log_bin_compress = ON; INSERT INTO items VALUES ({}, '{long}'); SET GLOBAL log_bin_compress = OFF",
            last_id + 1
        ))
        .await
        .unwrap();
    let err = fatal_error(engine).await;
    assert!(err.contains("log_bin_compress"), "{err}");
    db.drop().await;
}

/// `column.exclude.list` drops a column and `column.mask.*` replaces values, in the
/// snapshot and in the stream alike (hashes cut to the VARCHAR's length, fields marked
/// `masked`); excluding a key column is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_filters_and_masks() {
    use connect_core::columns::{ColumnFilter, HashAlgorithm, Mask};
    use connect_core::{Engine, Value};
    let mut db = TestDb::new("columns").await;
    db.conn
        .query_drop(
            "CREATE TABLE people (id int PRIMARY KEY, secret text, card varchar(20), email varchar(16));
             INSERT INTO people VALUES (1, 's1', '4111-1111', 'a@example.com');",
        )
        .await
        .unwrap();
    let hash = Mask::Hash {
        algorithm: HashAlgorithm::Sha256,
        salt: b"pepper".to_vec(),
        v2: true,
    };
    let column = |name: &str| format!("{}\\.people\\.{name}", db.name);
    let filter = ColumnFilter::default()
        .with_exclude([column("secret").as_str()])
        .unwrap()
        .with_mask(4, [column("card").as_str()])
        .unwrap()
        .with_masking(
            "column.mask.hash.v2.SHA-256.with.salt.pepper",
            hash.clone(),
            [column("email").as_str()],
        )
        .unwrap();
    let start = |filter: ColumnFilter| {
        let config = root()
            .with_databases([db.name.as_str()])
            .unwrap()
            .with_columns(filter);
        async move {
            Engine::builder()
                .name("mysql-columns")
                .source(connect_mysql::MySqlSource::new(config).unwrap())
                .into_channel(8)
                .start()
                .await
                .unwrap()
        }
    };
    let (engine, mut rx) = start(filter).await;
    let mut rows = Vec::new();
    let mut next = async || {
        let batch = next_batch(&mut rx).await;
        let found: Vec<_> = batch.changes().filter_map(|c| c.after().cloned()).collect();
        batch.ack();
        found
    };
    while rows.is_empty() {
        rows.extend(next().await); // the snapshot
    }
    db.conn
        .query_drop("INSERT INTO people VALUES (2, 's2', '5500-0000', 'b@example.com')")
        .await
        .unwrap();
    while rows.len() < 2 {
        rows.extend(next().await); // streamed
    }
    engine.shutdown().await.unwrap();
    for (row, email) in rows.iter().zip(["a@example.com", "b@example.com"]) {
        let names: Vec<&str> = row.schema().fields().iter().map(|f| f.name()).collect();
        assert_eq!(names, ["id", "card", "email"]);
        assert_eq!(row.get("card"), Some(&Value::from("****")));
        assert_eq!(
            row.get("email"),
            Some(&Value::from(hash.apply(email, Some(16))))
        );
        assert_eq!(hash.apply(email, None).len(), 64);
        for masked in ["card", "email"] {
            let (_, field) = row.schema().field(masked).unwrap();
            assert_eq!(field.schema().parameter("masked"), Some("true"));
        }
    }
    let key_excluded = ColumnFilter::default()
        .with_exclude([column("id").as_str()])
        .unwrap();
    let (engine, _rx) = start(key_excluded).await;
    let err = fatal_error(engine).await;
    assert!(
        err.contains("column.exclude.list") && err.contains("people.id"),
        "{err}"
    );
    db.drop().await;
}

/// Every statement of `tests/data/ddl_corpus.sql` (real MariaDB DDL: versioned comments,
/// `IF [NOT] EXISTS`, `ALGORITHM=`, partitions, `LIKE`, multi-table `RENAME`,
/// `MODIFY`/`CHANGE`...) runs on the server and is followed by the schema history's DDL
/// model; after each, the model's tables and columns are what information_schema says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_corpus_is_followed_as_the_server_applies_it() {
    use connect_mysql::ddl::Catalog;
    let mut db = TestDb::new("ddl_corpus").await;
    let corpus = include_str!("data/ddl_corpus.sql");
    let statements: Vec<&str> = corpus
        .split("\n;;\n")
        .map(|s| {
            s.lines()
                .filter(|l| !l.starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .map(|s| Box::leak(s.into_boxed_str()) as &str)
        .filter(|s| !s.trim().is_empty())
        .collect();
    assert!(statements.len() >= 35, "{} statements", statements.len());
    let mut catalog = Catalog::new();
    let mut mismatches = Vec::new();
    let mut seen = Vec::new();
    let name = db.name.clone();
    for sql in &statements {
        db.conn
            .query_drop(*sql)
            .await
            .unwrap_or_else(|e| panic!("the server rejects {sql}: {e}"));
        if let Err(e) = catalog.apply(sql, &name, Flavor::MariaDb, &|(d, _)| *d == name) {
            mismatches.push(format!("{sql}\n  not followed: {e}"));
            continue;
        }
        let tables: Vec<String> = db
            .conn
            .exec(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
                (&name,),
            )
            .await
            .unwrap();
        let mut tables = tables;
        tables.sort();
        let modelled: Vec<String> = catalog.ids().map(|(_, t)| t.clone()).collect();
        if modelled != tables {
            mismatches.push(format!("{sql}\n  tables {modelled:?}, server {tables:?}"));
        }
        for table in &tables {
            let server = connect_mysql::server::columns(&mut db.conn, &name, table)
                .await
                .unwrap();
            let model = catalog
                .get(&(name.clone(), table.clone()))
                .cloned()
                .unwrap_or_default();
            if model.len() != server.len() {
                mismatches.push(format!(
                    "{sql}\n  {table}: model {model:?}\n  server {server:?}"
                ));
                continue;
            }
            for (m, s) in model.iter().zip(&server) {
                // Reported once, at the statement that made it differ.
                if m != s && !seen.contains(&(m.clone(), s.clone())) {
                    seen.push((m.clone(), s.clone()));
                    mismatches.push(format!(
                        "{}\n  {table}.{}: model {m:?}\n  server {s:?}",
                        sql.lines().next().unwrap_or_default(),
                        s.name
                    ));
                }
            }
        }
    }
    db.drop().await;
    assert!(
        mismatches.is_empty(),
        "{} differences over {} statements:\n{}",
        mismatches.len(),
        statements.len(),
        mismatches.join("\n\n")
    );
}

/// `provide.transaction.metadata`: BEGIN, the events with their `transaction` block
/// (`total_order`, `data_collection_order`, the GTID as id), END with the counts per
/// table; after a restart inside a large transaction the orders continue where the
/// delivered part ended, and its END counts every event of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_metadata_orders_events_across_a_restart_inside_a_transaction() {
    use connect_core::{MemoryOffsetStore, MemorySchemaHistory, Record, SourcePartition, Value};
    use std::time::{Duration, Instant};
    let mut db = TestDb::new("tx_meta").await;
    db.conn
        .query_drop("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)")
        .await
        .unwrap();
    let offsets = MemoryOffsetStore::new();
    let history = std::sync::Arc::new(MemorySchemaHistory::new());
    let start = || async {
        let config = root()
            .with_databases([db.name.as_str()])
            .unwrap()
            .with_schema_history(history.clone())
            .with_transaction_metadata(true);
        start_engine("mysql-tx", config, &offsets, 2).await
    };
    let field = |r: &Record, name: &str| r.value.as_struct().and_then(|s| s.get(name)).cloned();
    let block = |r: &Record| -> Option<(String, i64, i64)> {
        let t = field(r, "transaction")?;
        let t = t.as_struct()?;
        Some((
            t.get("id")?.as_str()?.to_owned(),
            t.get("total_order")?.as_i64()?,
            t.get("data_collection_order")?.as_i64()?,
        ))
    };
    // Records until the END of a transaction (acknowledging each batch).
    async fn until_end(rx: &mut connect_core::BatchReceiver) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        loop {
            let batch = next_batch(rx).await;
            out.extend(batch.records().iter().cloned());
            batch.ack();
            let ended = out.last().is_some_and(|r| {
                r.value
                    .as_struct()
                    .and_then(|s| s.get("status"))
                    .is_some_and(|s| s.as_str() == Some("END"))
            });
            if ended {
                return out;
            }
        }
    }
    let (engine, mut rx) = start().await;
    // Streaming once the (empty) snapshot's position is committed.
    let partition = SourcePartition::server("srv");
    let deadline = Instant::now() + Duration::from_secs(30);
    while offsets
        .snapshot("mysql-tx")
        .get(&partition)
        .is_none_or(|o| o.get("snapshot").is_some())
    {
        assert!(Instant::now() < deadline, "snapshot never committed");
        if let Ok(Some(batch)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            batch.ack();
        }
    }
    db.conn
        .query_drop("BEGIN; INSERT INTO a VALUES (1); INSERT INTO b VALUES (1); INSERT INTO a VALUES (2); COMMIT")
        .await
        .unwrap();
    let records = until_end(&mut rx).await;
    let records: Vec<&Record> = records.iter().filter(|r| !r.is_tombstone()).collect();
    assert_eq!(records.len(), 5, "{records:?}");
    let gtid = field(records[1], "source")
        .and_then(|s| s.as_struct()?.get("gtid")?.as_str().map(str::to_owned))
        .expect("a GTID");
    assert_eq!(&*records[0].topic, "srv.transaction");
    assert_eq!(field(records[0], "status"), Some(Value::from("BEGIN")));
    assert_eq!(field(records[0], "id"), Some(Value::from(gtid.as_str())));
    let blocks: Vec<_> = records[1..4].iter().map(|r| block(r).unwrap()).collect();
    assert_eq!(
        blocks,
        [
            (gtid.clone(), 1, 1),
            (gtid.clone(), 2, 1),
            (gtid.clone(), 3, 2)
        ]
    );
    assert_eq!(field(records[4], "status"), Some(Value::from("END")));
    assert_eq!(field(records[4], "event_count"), Some(Value::Int64(3)));
    let collections: Vec<(String, i64)> = match field(records[4], "data_collections") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                let s = i.as_struct().unwrap();
                (
                    s.get("data_collection")
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    s.get("event_count").unwrap().as_i64().unwrap(),
                )
            })
            .collect(),
        other => panic!("{other:?}"),
    };
    let mut sorted = collections.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [(format!("{}.a", db.name), 2), (format!("{}.b", db.name), 1)]
    );
    engine.shutdown().await.unwrap();

    // While down: one transaction of 6000 rows, cut into batches of about 2048 events.
    db.conn
        .query_drop(
            "SET SESSION max_recursive_iterations = 10000; INSERT INTO a WITH RECURSIVE g(n) AS (SELECT 10 UNION ALL SELECT n + 1 FROM g WHERE n < 6009) SELECT n FROM g",
        )
        .await
        .unwrap();
    let (engine, mut rx) = start().await;
    // Acknowledged until an offset inside the transaction is committed (the engine may
    // hand a source batch over in parts); then the consumer goes away.
    let mut first: Vec<Record> = Vec::new();
    let inside = || {
        offsets.snapshot("mysql-tx")[&partition]
            .get("event")
            .is_some()
    };
    'parts: loop {
        let batch = next_batch(&mut rx).await;
        first.extend(batch.records().iter().cloned());
        batch.ack();
        // The commit follows the ack of a part that carries an offset.
        let settle = Instant::now() + Duration::from_millis(500);
        while Instant::now() < settle {
            if inside() {
                break 'parts;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(field(&first[0], "status"), Some(Value::from("BEGIN")));
    assert!(
        first.len() < 6001,
        "the whole transaction came before a commit"
    );
    drop(rx);
    assert!(engine.wait().await.is_err());
    let (engine, mut rx) = start().await;
    let rest = until_end(&mut rx).await;
    engine.shutdown().await.unwrap();
    assert!(
        rest.iter()
            .all(|r| field(r, "status") != Some(Value::from("BEGIN"))),
        "a BEGIN again in the replayed part"
    );
    let (events, end) = rest.split_at(rest.len() - 1);
    assert_eq!(field(&end[0], "event_count"), Some(Value::Int64(6000)));
    assert!(!events.is_empty());
    for r in events {
        let id = field(r, "after")
            .and_then(|a| a.as_struct()?.get("id")?.as_i64())
            .unwrap();
        let (_, total, per_table) = block(r).unwrap();
        assert_eq!((total, per_table), (id - 9, id - 9), "row {id}");
    }
    db.drop().await;
}

/// `decimal.handling.mode=string`, `binary.handling.mode=hex`,
/// `bigint.unsigned.handling.mode=precise` and `message.key.columns`, in the snapshot and
/// streamed: the same representation both ways, and the key made of the named column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_modes_and_message_key_columns() {
    use connect_core::columns::MessageKeyColumns;
    use connect_core::modes::{BinaryMode, DecimalMode};
    use connect_core::{Engine, MemorySchemaHistory, Value};
    use connect_mysql::types::TypeModes;
    let mut db = TestDb::new("modes").await;
    db.conn
        .query_drop(
            "CREATE TABLE t (id int PRIMARY KEY, code varchar(10) NOT NULL, amount decimal(10,2),
               raw varbinary(8), fixed binary(4), big bigint unsigned);
             INSERT INTO t VALUES (1, 'a', 12.3, x'fbff', x'41', 18446744073709551615)",
        )
        .await
        .unwrap();
    let config = root()
        .with_databases([db.name.as_str()])
        .unwrap()
        .with_schema_history(std::sync::Arc::new(MemorySchemaHistory::new()))
        .with_types(TypeModes {
            decimal: DecimalMode::String,
            binary: BinaryMode::Hex,
            bigint_unsigned_precise: true,
        })
        .with_message_key_columns(
            MessageKeyColumns::parse("message.key.columns", &format!("{}\\.t:code", db.name))
                .unwrap(),
        );
    let (engine, mut rx) = Engine::builder()
        .name("mysql-modes")
        .source(connect_mysql::MySqlSource::new(config).unwrap())
        .into_channel(4)
        .start()
        .await
        .unwrap();
    let expect = |record: &connect_core::Record,
                  code: &str,
                  amount: &str,
                  raw: &str,
                  fixed: &str,
                  big: i128| {
        let after = record
            .value
            .as_struct()
            .unwrap()
            .get("after")
            .unwrap()
            .as_struct()
            .unwrap();
        assert_eq!(after.get("amount"), Some(&Value::from(amount)));
        assert_eq!(after.get("raw"), Some(&Value::from(raw)));
        assert_eq!(after.get("fixed"), Some(&Value::from(fixed)));
        assert_eq!(after.get("big"), Some(&Value::decimal(big)));
        let key = record.key.as_struct().unwrap();
        assert_eq!(key.values(), [Value::from(code)]);
        assert_eq!(key.schema().fields()[0].name(), "code");
    };
    async fn next_record(rx: &mut connect_core::BatchReceiver) -> connect_core::Record {
        loop {
            let batch = next_batch(rx).await;
            let record = batch.records().iter().find(|r| !r.is_tombstone()).cloned();
            batch.ack();
            if let Some(record) = record {
                return record;
            }
        }
    }
    let snapshot = next_record(&mut rx).await;
    expect(
        &snapshot,
        "a",
        "12.30",
        "fbff",
        "41000000",
        18_446_744_073_709_551_615,
    );
    db.conn
        .query_drop("INSERT INTO t VALUES (2, 'b', 0.5, x'00', x'42', 5)")
        .await
        .unwrap();
    let streamed = next_record(&mut rx).await;
    expect(&streamed, "b", "0.50", "00", "42000000", 5);
    engine.shutdown().await.unwrap();
    db.drop().await;
}

/// An offset without its schema history is refused with an error naming
/// `schema.history.internal.file.filename` (never a silent guess at old rows' columns);
/// `snapshot.mode=recovery` rebuilds the history from the current tables and streams on
/// from the offset, without a new snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_history_is_refused_by_name_and_rebuilt_by_recovery() {
    use connect_core::{MemoryOffsetStore, MemorySchemaHistory, Value};
    let mut db = TestDb::new("lost_history").await;
    db.conn
        .query_drop("CREATE TABLE items (id int PRIMARY KEY, v varchar(10)); INSERT INTO items VALUES (1, 'snap')")
        .await
        .unwrap();
    let offsets = MemoryOffsetStore::new();
    let name = db.name.clone();
    let start = |history: MemorySchemaHistory, mode: connect_mysql::SnapshotMode| {
        let config = root()
            .with_databases([name.as_str()])
            .unwrap()
            .with_schema_history(std::sync::Arc::new(history))
            .with_snapshot_mode(mode);
        let offsets = offsets.clone();
        async move { start_engine("mysql-lost-history", config, &offsets, 4).await }
    };
    let (engine, mut rx) = start(
        MemorySchemaHistory::new(),
        connect_mysql::SnapshotMode::Initial,
    )
    .await;
    let mut last_id = 1;
    db.stream_a_row(&mut rx, &mut last_id, ", 'live'").await;
    engine.shutdown().await.unwrap();
    db.conn
        .query_drop(format!(
            "INSERT INTO items VALUES ({}, 'down')",
            last_id + 1
        ))
        .await
        .unwrap();
    // A new, empty history with the old offsets.
    let (engine, _rx) = start(
        MemorySchemaHistory::new(),
        connect_mysql::SnapshotMode::Initial,
    )
    .await;
    let err = fatal_error(engine).await;
    assert!(
        err.contains("schema.history.internal.file.filename") && err.contains("recovery"),
        "{err}"
    );
    let history = MemorySchemaHistory::new();
    let (engine, mut rx) = start(history.clone(), connect_mysql::SnapshotMode::Recovery).await;
    // Rows after the stored offset (the last live one again at most), never the snapshot's.
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|(_, row): &(String, connect_core::Struct)| row.get("v") == Some(&Value::from("down")))
    {
        seen.extend(next_rows(&mut rx, 1).await);
    }
    engine.shutdown().await.unwrap();
    assert!(
        seen.iter()
            .all(|(_, row)| row.get("v") != Some(&Value::from("snap"))),
        "a new snapshot: {seen:?}"
    );
    let down = seen.last().unwrap();
    assert_eq!(down.1.get("id"), Some(&Value::Int32(last_id + 1)));
    let records = connect_core::SchemaHistory::recover(&history)
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "the table recorded at the stored offset");
    db.drop().await;
}
