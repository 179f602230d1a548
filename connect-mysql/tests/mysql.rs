//! connect-mysql against the real MariaDB that `scripts/test.sh` starts
//! (`CONNECT_TEST_MYSQL_HOST`/`_PORT`/`_USER`/`_PASSWORD` override 127.0.0.1:3306 root
//! with no password).

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
        let name = format!("connect_test_{tag}_{}", std::process::id());
        let mut conn = mysql_async::Conn::new(connect_mysql::server::opts(&root()))
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
}

/// The snapshot event of every common type is what Debezium 3.6.3 emitted for the same
/// row (`tests/data`), once the values that differ between runs and the connector's
/// name (`mariadb` here, the MySQL connector's `mysql` there) are masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_event_matches_debezium_byte_for_byte() {
    use connect_core::{Converter, Engine, JsonConverter};
    let mut db = TestDb::new("golden").await;
    db.conn
        .query_drop(include_str!("data/types_setup.sql"))
        .await
        .unwrap();
    let config = root()
        .with_databases([db.name.as_str()])
        .unwrap()
        .with_snapshot_mode(connect_mysql::SnapshotMode::InitialOnly);
    let (engine, mut rx) = Engine::builder()
        .name("mysql-golden")
        .source(connect_mysql::MySqlSource::new(config).unwrap())
        .into_channel(8)
        .start()
        .await
        .unwrap();
    let mut records = Vec::new();
    while let Some(batch) = rx.recv().await {
        records.extend(batch.records().iter().cloned());
        batch.ack();
    }
    engine.wait().await.expect("initial_only ends cleanly");
    assert_eq!(records.len(), 1, "{records:?}");
    let json = |schema: Option<&std::sync::Arc<connect_core::Schema>>,
                value: &connect_core::Value| {
        let mut out = Vec::new();
        JsonConverter::default()
            .serialize("t", schema, value, &mut out)
            .unwrap();
        String::from_utf8(out).unwrap().replace(&db.name, "golden")
    };
    let masks = [
        (r#""(ts_ms|ts_us|ts_ns|pos)":\d+"#, r#""$1":0"#),
        (r#""(version|file|created)":"[^"]*""#, r#""$1":"M""#),
        (r#""connector":"[^"]*""#, r#""connector":"M""#),
        (r#"io\.debezium\.connector\.\w+\.Source"#, "SOURCE"),
    ]
    .map(|(re, to)| (regex::Regex::new(re).unwrap(), to));
    let mask = |s: &str| {
        masks.iter().fold(s.to_owned(), |s, (re, to)| {
            re.replace_all(&s, *to).into_owned()
        })
    };
    let golden = include_str!("data/debezium_3.6.3_mysql_connector_on_mariadb.jsonl");
    let mut parts = golden.lines().next().unwrap().splitn(3, '\t');
    let (topic, key, value) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let record = &records[0];
    assert_eq!(record.topic.replace(&db.name, "golden"), topic);
    assert_eq!(
        mask(&json(record.key_schema.as_ref(), &record.key)),
        mask(key)
    );
    let (ours, theirs) = (
        mask(&json(record.value_schema.as_ref(), &record.value)),
        mask(value),
    );
    if ours != theirs {
        let at = ours
            .bytes()
            .zip(theirs.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        let from = at.saturating_sub(150);
        panic!(
            "differs at {at}:\n ours:     {}\n debezium: {}",
            String::from_utf8_lossy(&ours.as_bytes()[from..(at + 150).min(ours.len())]),
            String::from_utf8_lossy(&theirs.as_bytes()[from..(at + 150).min(theirs.len())])
        );
    }
    db.drop().await;
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
