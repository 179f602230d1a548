//! Runnable examples of connect live beside this file (`cargo run --example quickstart`).
//! This library holds what they share.

/// Engine logs on stderr, filtered by `RUST_LOG` (e.g. `RUST_LOG=connect_core=debug`),
/// so that stdout carries only the example's output.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
}

/// The environment variable `key`, or `default` when it is not set.
pub fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

/// A PostgreSQL source configuration from `PGHOST`, `PGUSER`, `PGPASSWORD` and
/// `PGDATABASE` (defaults: the test server of `scripts/services.sh`), with its own slot
/// and filtered publication named `slot`, capturing `table` (`schema.table`).
pub fn postgres_from_env(
    topic_prefix: &str,
    slot: &str,
    table: &str,
) -> Result<connect_postgres::PostgresConfig, connect_core::Error> {
    connect_postgres::PostgresConfig::new(
        &env_or("PGHOST", "127.0.0.1"),
        &env_or("PGUSER", "postgres"),
        &env_or("PGPASSWORD", "postgres"),
        &env_or("PGDATABASE", "postgres"),
        topic_prefix,
    )
    .with_slot(slot)
    .with_publication(slot, connect_postgres::PublicationMode::Filtered)
    .with_tables([table.replace('.', "\\.").as_str()])
}
