//! # connect-mysql
//!
//! MySQL and MariaDB change-data-capture source for [`connect_core`] (issue 5, in
//! progress). What exists so far:
//! - the configuration with Debezium's property names ([`MySqlConfig`]);
//! - the preflight every start runs ([`server::preflight`]): binary log on, ROW format,
//!   full row images, uncompressed events, the replication privileges, the server's flavor
//!   and current binlog position; each failure names the fix;
//! - consistent snapshots ([`MySqlSource`] with `snapshot.mode=initial_only`): lock-free
//!   on MariaDB (`START TRANSACTION WITH CONSISTENT SNAPSHOT` and its
//!   `binlog_snapshot_file/position`, plus `BINLOG_GTID_POS`), under a short global read
//!   lock on MySQL; tables are streamed in `snapshot.fetch.size` batches, and the events
//!   match Debezium 3.6's byte for byte (golden test); the offset records the binlog file,
//!   position and GTID set the snapshot is consistent with.
//!
//! Binlog streaming and schema history are not implemented yet; other snapshot modes are
//! refused with an error naming `snapshot.mode`.
//!
//! ```no_run
//! use connect_mysql::{server, MySqlConfig};
//! # async fn run() -> connect_core::Result<()> {
//! let config = MySqlConfig::new("127.0.0.1", "root", "", 184054, "shop");
//! let (_conn, info) = server::preflight(&config).await?;
//! println!("{:?} at {:?}", info.flavor, info.position);
//! # Ok(()) }
//! ```

pub mod config;
pub mod server;
mod source;
pub mod table;
pub mod types;

pub use config::{MySqlConfig, SnapshotMode};
pub use source::MySqlSource;
