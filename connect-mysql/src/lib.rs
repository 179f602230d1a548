//! # connect-mysql
//!
//! MySQL and MariaDB change-data-capture source for [`connect_core`] (issue 5, in
//! progress). What exists so far: the configuration with Debezium's property names
//! ([`MySqlConfig`]) and the preflight that every start runs ([`server::preflight`]):
//! binary log on, ROW format, full row images, uncompressed events, the replication
//! privileges, the server's flavor and current binlog position; each failure names the fix.
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

pub use config::{MySqlConfig, SnapshotMode};
