//! Prints every change of a MySQL / MariaDB database as Debezium's JSON, one event per
//! line: the snapshot first, then the binlog. The position and the schema history (the
//! tables' columns as of each DDL) are kept in files, so a restart continues where the
//! last acknowledged event left off and reads older binlog rows with their columns.
//!
//! Needs a server with a ROW binlog (`scripts/services.sh` sets MariaDB up on 127.0.0.1)
//! and a user with `SELECT, REPLICATION SLAVE, REPLICATION CLIENT`.
//!
//! ```text
//! mariadb -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS shop;
//!     CREATE TABLE IF NOT EXISTS shop.items (id int PRIMARY KEY, name varchar(20))"
//! MYSQL_HOST=127.0.0.1 MYSQL_USER=root MYSQL_PASSWORD= \
//!     cargo run --example mysql_to_channel -- shop      # Ctrl-C to stop
//! ```

use std::sync::Arc;

use connect_core::{Engine, FileOffsetStore, FileSchemaHistory};
use connect_examples::env_or;
use connect_mysql::{MySqlConfig, MySqlSource};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    connect_examples::init_logging();
    let database = std::env::args().nth(1).unwrap_or_else(|| "shop".to_owned());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/mysql_to_channel");
    std::fs::create_dir_all(&dir)?;
    // The server id must differ from every other replica of this server.
    let config = MySqlConfig::new(
        &env_or("MYSQL_HOST", "127.0.0.1"),
        &env_or("MYSQL_USER", "root"),
        &env_or("MYSQL_PASSWORD", ""),
        env_or("MYSQL_SERVER_ID", "184054").parse()?,
        "shop",
    )
    .with_port(env_or("MYSQL_PORT", "3306").parse()?)
    .with_databases([database.as_str()])?
    .with_schema_history(Arc::new(FileSchemaHistory::open(
        dir.join("history.jsonl"),
    )?));
    let (engine, mut batches) = Engine::builder()
        .name("mysql-to-channel")
        .source(MySqlSource::new(config)?)
        .offsets(FileOffsetStore::open(dir.join("offsets.json"))?)
        .handle_signals(true)
        .into_channel(64)
        .start()
        .await?;
    while let Some(batch) = batches.recv().await {
        for json in batch.to_json()? {
            // A tombstone (after a delete) has no value.
            println!("{}", json.as_deref().unwrap_or("null"));
        }
        batch.ack();
    }
    let report = engine.wait().await?;
    eprintln!(
        "stopped: drained={} committed={}",
        report.drained(),
        report.committed()
    );
    Ok(())
}
