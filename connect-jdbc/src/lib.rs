//! # connect-jdbc
//!
//! Kafka Connect's JDBC connectors for [`connect_core`], with native drivers per
//! database: PostgreSQL (tokio-postgres), MySQL and MariaDB (mysql_async) and SQLite
//! (rusqlite, the embedded default), so every column type keeps full fidelity. A
//! [`Dialect`] holds what differs between them (quoting, column types, upsert syntax).
//!
//! ## Sink ([`JdbcSink`])
//! - Records are plain structs or Debezium change events (their `after` row is written;
//!   `op=d` and tombstones delete with `delete.enabled=true`, and are skipped otherwise;
//!   truncates are skipped).
//! - `insert.mode` `insert` / `upsert` / `update`; `pk.mode` `none` / `kafka` /
//!   `record_key` / `record_value` with `pk.fields`.
//! - `auto.create` creates a missing table with the key as primary key; `auto.evolve`
//!   adds a nullable column for a new field (columns are never dropped). Without them, a
//!   missing table or column is an error naming it.
//! - `table.name.format`: `${topic}`, `${source.db}`, `${source.schema}`,
//!   `${source.table}` (dots in the values become `_`; a literal dot names a schema).
//! - Identifiers are always quoted by the dialect, so hostile table or column names are
//!   only names.
//! - Batches: PostgreSQL writes a whole batch per statement (one text array per column,
//!   `unnest`ed and cast by the server), MySQL multi-row `INSERT`s of up to 1024 rows,
//!   SQLite one prepared statement per row in the transaction. `batch.size` caps the
//!   rows per statement. Within one upsert or update statement only the last row of a
//!   key is kept, as the database would end with it anyway.
//! - **Exactly-once**: rows are written in one transaction from `put` to `flush`, which
//!   also writes the source offsets to `offsets.table.name` (default `connect_offsets`,
//!   created if missing) and commits. At start the engine resumes from the offsets found
//!   there. If the connection is lost, the sink reconnects and writes the records of the
//!   lost transaction again; if it was lost during `COMMIT`, the stored offsets tell
//!   whether the commit happened. On MySQL, DDL (`auto.create`, `auto.evolve`) commits
//!   the open transaction implicitly: rows written before a table change are then durable
//!   before their offsets (at-least-once for those rows only).
//!
//! ## Source ([`JdbcSource`])
//! Confluent's JDBC source: `mode` `bulk` / `incrementing` / `timestamp` /
//! `timestamp+incrementing` over the tables of a schema (white/blacklists, listed again
//! every `table.poll.interval.ms`, spread over the tasks) or one `query`; rows keep their
//! native types. See [`Mode`] for what a restart and a concurrent writer can do in each.
//!
//! ## Stores
//! [`SqlOffsetStore`] and [`SqlSchemaHistory`] keep offsets and schema history in a table
//! of any of the three databases (created if missing).
//!
//! ## Example
//! ```no_run
//! use connect_core::{Engine, MemoryOffsetStore};
//! use connect_jdbc::{ConnectionConfig, InsertMode, JdbcSink, JdbcSinkConfig, PkMode};
//! # async fn run(source: impl connect_core::SourceConnector + 'static) -> connect_core::Result<()> {
//! let sink = JdbcSink::new(
//!     JdbcSinkConfig::new(ConnectionConfig::new("sqlite:replica.db"))
//!         .with_insert_mode(InsertMode::Upsert)
//!         .with_pk(PkMode::RecordKey, &[])
//!         .with_delete_enabled(true)
//!         .with_auto_create(true, true)
//!         .with_table_name_format("${source.table}"),
//! )?;
//! let engine = Engine::builder()
//!     .name("replica")
//!     .source(source)
//!     .offsets(MemoryOffsetStore::new())
//!     .into_connector(sink)
//!     .start()
//!     .await?;
//! engine.wait().await?;
//! # Ok(()) }
//! ```

mod conn;
mod dialect;
mod error;
mod read;
mod sink;
mod source;
mod store;
mod value;

pub use conn::{Connection, ConnectionConfig, DbError, TextRows};
pub use dialect::{Column, Dialect, MySql, Postgres, Sqlite, TableName, WriteOp, WritePlan};
pub use error::JdbcError;
pub use read::{ReadColumn, ReadKind, Rows};
pub use sink::{
    InsertMode, JdbcSink, JdbcSinkConfig, PkMode, DEFAULT_BATCH_SIZE, DEFAULT_TABLE_NAME_FORMAT,
};
pub use source::{
    JdbcSource, JdbcSourceConfig, Mode, DEFAULT_BATCH_MAX_ROWS, DEFAULT_POLL_INTERVAL,
    DEFAULT_TABLE_POLL_INTERVAL,
};
pub use store::{SqlOffsetStore, SqlSchemaHistory, DEFAULT_HISTORY_TABLE, DEFAULT_OFFSETS_TABLE};
pub use value::{SqlKind, SqlValue, TimeUnit};

use std::sync::Arc;

use connect_core::registry::FactoryContext;
use connect_core::{Registry, SinkConnector, SourceConnector};

/// Confluent's class name of the JDBC sink, accepted as `connector.class`.
pub const SINK_CLASS: &str = "io.confluent.connect.jdbc.JdbcSinkConnector";
/// Confluent's class name of the JDBC source, accepted as `connector.class`.
pub const SOURCE_CLASS: &str = "io.confluent.connect.jdbc.JdbcSourceConnector";

/// Debezium's class name of the JDBC offset store, accepted as `offset.storage`.
pub const OFFSET_STORE_CLASS: &str = "io.debezium.storage.jdbc.offset.JdbcOffsetBackingStore";
/// Debezium's class name of the JDBC schema history, accepted as `schema.history.internal`.
pub const SCHEMA_HISTORY_CLASS: &str = "io.debezium.storage.jdbc.history.JdbcSchemaHistory";

/// Registers the JDBC source and sink under Confluent's class names, and the SQL offset
/// store and schema history under Debezium's.
pub fn register(registry: &mut Registry) {
    registry.register_source(SOURCE_CLASS, |ctx: &FactoryContext<'_>| {
        let config = JdbcSourceConfig::from_props(&ctx.props)?;
        Ok(Arc::new(JdbcSource::new(config)?) as Arc<dyn SourceConnector>)
    });
    registry.register_sink(SINK_CLASS, |ctx: &FactoryContext<'_>| {
        let config = JdbcSinkConfig::from_props(&ctx.props)?;
        Ok(Arc::new(JdbcSink::new(config)?) as Arc<dyn SinkConnector>)
    });
    registry.register_offset_store(OFFSET_STORE_CLASS, |props| {
        Ok(Arc::new(SqlOffsetStore::from_props(props)?))
    });
    registry.register_schema_history(SCHEMA_HISTORY_CLASS, |props| {
        Ok(Arc::new(SqlSchemaHistory::from_props(props)?))
    });
}
