//! # connect-postgres
//!
//! PostgreSQL change-data-capture source for [`connect_core`]: a consistent snapshot from
//! the replication slot's exported snapshot, then logical replication with pgoutput
//! (protocol v1, committed transactions only), as Debezium-shaped change events.
//!
//! Events, keys, schemas and offsets are Debezium 3.6's PostgreSQL connector's, byte for
//! byte (checked against its embedded engine by the crate's golden test), and a Debezium
//! properties file configures it ([`register`], [`PostgresConfig::from_props`]). The
//! README's PostgreSQL section lists the guarantees, keys and types.
//!
//! Delivery is at-least-once: the slot's `confirmed_flush_lsn` follows the engine's
//! committed offsets only, a restart replays from the last committed transaction end (or
//! inside a large transaction, from the first undelivered event), and an interrupted
//! snapshot is read again. Snapshot events are identified by (table, key), streamed ones
//! by position, so a destination can drop duplicates.
//!
//! ```no_run
//! use connect_core::{Engine, FileOffsetStore};
//! use connect_postgres::{PostgresConfig, PostgresSource};
//! # async fn run() -> connect_core::Result<()> {
//! let config = PostgresConfig::new("127.0.0.1", "postgres", "postgres", "shop", "shop")
//!     .with_slot("orders_cache")
//!     .with_tables(["public\\.orders"])?;
//! let (engine, mut batches) = Engine::builder()
//!     .name("orders-cache")
//!     .source(PostgresSource::new(config)?)
//!     .offsets(FileOffsetStore::open("orders.offsets")?)
//!     .into_channel(64)
//!     .start()
//!     .await?;
//! while let Some(batch) = batches.recv().await {
//!     for change in batch.changes() {
//!         println!("{:?} {:?}", change.op(), change.after());
//!     }
//!     batch.ack();
//! }
//! engine.wait().await?;
//! # Ok(()) }
//! ```

pub mod config;
mod metadata;
mod parallel;
pub mod pgoutput;
mod source;
pub mod table;
pub mod tls;
pub mod types;

use std::sync::Arc;

pub use config::{
    ColumnFilter, HashAlgorithm, Mask, MessageKeyColumns, PostgresConfig, PublicationMode,
    SnapshotMode,
};
pub use source::PostgresSource;

use connect_core::registry::FactoryContext;
use connect_core::{Registry, SourceConnector};

/// Debezium's class name, accepted as `connector.class`.
pub const CONNECTOR_CLASS: &str = "io.debezium.connector.postgresql.PostgresConnector";

/// Registers the connector under Debezium's class name.
pub fn register(registry: &mut Registry) {
    registry.register_source(CONNECTOR_CLASS, |ctx: &FactoryContext<'_>| {
        let config = PostgresConfig::from_props(&ctx.props)?;
        Ok(Arc::new(PostgresSource::new(config)?) as Arc<dyn SourceConnector>)
    });
}
