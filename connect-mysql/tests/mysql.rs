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
