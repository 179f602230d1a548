//! Keep an in-memory map of a PostgreSQL table in sync: the snapshot fills it, live
//! changes keep it current, and a restart resumes from the stored offset (the map is
//! rebuilt from the snapshot only on the first run).
//!
//! Delivery is at-least-once; applying an upsert or a delete twice is harmless, so the map
//! converges. Needs a PostgreSQL with `wal_level=logical` (`scripts/services.sh` sets one
//! up on 127.0.0.1).
//!
//! ```text
//! psql -h 127.0.0.1 -U postgres -c "CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, name text)"
//! PGHOST=127.0.0.1 PGUSER=postgres PGPASSWORD=postgres PGDATABASE=postgres \
//!     cargo run --example pg_cache -- public.items       # Ctrl-C to stop
//! ```

use std::collections::HashMap;

use connect_core::{Engine, FileOffsetStore, Op, Value};
use connect_examples::postgres_from_env;
use connect_postgres::PostgresSource;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    connect_examples::init_logging();
    let table = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "public.items".to_owned());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pg_cache");
    std::fs::create_dir_all(&dir)?;
    let config = postgres_from_env("cache", "pg_cache_example", &table)?;
    let (engine, mut batches) = Engine::builder()
        .name("pg-cache")
        .source(PostgresSource::new(config)?)
        .offsets(FileOffsetStore::open(dir.join("offsets.json"))?)
        .handle_signals(true)
        .into_channel(64)
        .start()
        .await?;

    // key (as text) → row
    let mut cache: HashMap<String, Vec<Value>> = HashMap::new();
    while let Some(batch) = batches.recv().await {
        for change in batch.changes() {
            let key = format!("{:?}", change.key());
            match (change.op(), change.after()) {
                (Some(Op::Delete), _) | (Some(Op::Truncate), _) if change.after().is_none() => {
                    if change.op() == Some(Op::Truncate) {
                        cache.clear();
                    } else {
                        cache.remove(&key);
                    }
                }
                (_, Some(row)) => {
                    cache.insert(key, row.values().to_vec());
                }
                _ => {}
            }
        }
        batch.ack();
        eprintln!("{table}: {} row(s) cached", cache.len());
    }
    let report = engine.wait().await?;
    eprintln!(
        "stopped: drained={} committed={}",
        report.drained(),
        report.committed()
    );
    Ok(())
}
