//! The connector's configuration, with Debezium's MySQL/MariaDB property names.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use connect_core::columns::{ColumnFilter, MessageKeyColumns};
use connect_core::envelope::SkippedOperations;
use connect_core::modes::{BinaryMode, DecimalMode};
use connect_core::properties::{whole_match_regexes, Scope};
use connect_core::{Error, FileSchemaHistory, SchemaHistory};
use regex::Regex;

use crate::history::HistoryStore;
use crate::tls::{SslMode, TlsOptions};
use crate::types::TypeModes;

/// Default `snapshot.fetch.size`: the most rows in one snapshot batch (batches hold at
/// most 1024 rows, converted on the blocking pool; a smaller value makes them smaller).
pub const DEFAULT_FETCH_SIZE: usize = 10_240;

/// Default `connect.keep.alive.interval.ms`.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(60);

/// `snapshot.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Snapshot when no offset exists, then stream.
    Initial,
    /// Snapshot when no offset exists, then stop.
    InitialOnly,
    /// Never read table data (`no_data`, also `schema_only`); stream from the current position.
    NoData,
    /// Snapshot when there is no offset or the binlog no longer holds its position.
    WhenNeeded,
    /// Never snapshot.
    Never,
    /// Rebuild a lost schema history from the current table definitions at the stored
    /// offset, then stream from it (valid only when no DDL ran since that offset).
    Recovery,
}

/// `snapshot.locking.mode`: how a snapshot on MySQL pins its binlog position (MariaDB's
/// snapshot is consistent with its position without any lock, whatever this says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotLockingMode {
    /// A global read lock only while the position is read and the snapshot transaction
    /// starts.
    #[default]
    Minimal,
    /// The global read lock held until the snapshot ends (writes wait that long).
    Extended,
    /// No lock: right only when nothing writes while the snapshot starts.
    None,
}

/// Configuration of [`crate::MySqlSource`].
#[derive(Debug, Clone)]
pub struct MySqlConfig {
    /// `database.hostname`.
    pub host: String,
    /// `database.port`.
    pub port: u16,
    /// `database.user`.
    pub user: String,
    /// `database.password`.
    pub password: String,
    /// `database.server.id`: this reader's replica id; two readers with one id evict each
    /// other.
    pub server_id: u32,
    /// `topic.prefix`: the logical server name, prefix of topics and the source partition.
    pub topic_prefix: String,
    /// `database.include.list` (regexes, whole-name match).
    pub database_include: Vec<Regex>,
    /// `database.exclude.list`.
    pub database_exclude: Vec<Regex>,
    /// `table.include.list` (`db.table` regexes).
    pub table_include: Vec<Regex>,
    /// `table.exclude.list`.
    pub table_exclude: Vec<Regex>,
    /// `snapshot.mode`.
    pub snapshot_mode: SnapshotMode,
    /// `snapshot.fetch.size`.
    pub fetch_size: usize,
    /// `snapshot.locking.mode` (MySQL only).
    pub locking: SnapshotLockingMode,
    /// `skipped.operations` (default `t`).
    pub skipped: SkippedOperations,
    /// `tombstones.on.delete` (default true).
    pub tombstones_on_delete: bool,
    /// `heartbeat.interval.ms` (0 = off): a position-only batch this often between
    /// transactions.
    pub heartbeat_interval: Duration,
    /// `connect.keep.alive` / `connect.keep.alive.interval.ms` (default on, 60 s): the
    /// server is asked for a heartbeat event every 0.8 of this while it has nothing to
    /// send, and a binlog connection silent for this long is taken for dead and
    /// reconnected (a connection can die without a word: a network partition, a
    /// failover). None: off.
    pub keep_alive: Option<Duration>,
    /// `column.include.list`, `column.exclude.list`, `column.mask.*` (matched against
    /// `<database>.<table>.<column>`).
    pub columns: ColumnFilter,
    /// `database.ssl.mode`, `database.ssl.ca`, `database.ssl.cert`, `database.ssl.key`.
    pub tls: TlsOptions,
    /// `schema.history.internal` (+ `.file.filename`): where the captured tables' column
    /// definitions are kept with the binlog position they hold from. In memory by default,
    /// which a restart in a new process does not find: give a durable store (a file)
    /// wherever offsets are durable.
    pub schema_history: HistoryStore,
    /// `provide.transaction.metadata`: BEGIN/END records on `<prefix>.<topic.transaction>`
    /// and a `transaction` block in each streamed event.
    pub transaction_metadata: bool,
    /// `topic.transaction` (default `transaction`).
    pub transaction_topic: String,
    /// `decimal.handling.mode`, `binary.handling.mode`, `bigint.unsigned.handling.mode`.
    pub types: TypeModes,
    /// `message.key.columns`: keys other than the primary key (`<db>.<table>` regexes).
    pub message_key_columns: MessageKeyColumns,
    /// `gtid.source.includes` (MySQL): the source UUIDs whose GTIDs a resume sends.
    pub gtid_source_include: Vec<Regex>,
    /// `gtid.source.excludes` (MySQL).
    pub gtid_source_exclude: Vec<Regex>,
}

impl MySqlConfig {
    /// A configuration with Debezium's defaults.
    pub fn new(host: &str, user: &str, password: &str, server_id: u32, topic_prefix: &str) -> Self {
        MySqlConfig {
            host: host.to_owned(),
            port: 3306,
            user: user.to_owned(),
            password: password.to_owned(),
            server_id,
            topic_prefix: topic_prefix.to_owned(),
            database_include: Vec::new(),
            database_exclude: Vec::new(),
            table_include: Vec::new(),
            table_exclude: Vec::new(),
            snapshot_mode: SnapshotMode::Initial,
            fetch_size: DEFAULT_FETCH_SIZE,
            locking: SnapshotLockingMode::default(),
            skipped: SkippedOperations::default(),
            tombstones_on_delete: true,
            heartbeat_interval: Duration::ZERO,
            keep_alive: Some(DEFAULT_KEEP_ALIVE),
            columns: ColumnFilter::default(),
            tls: TlsOptions::default(),
            schema_history: HistoryStore::default(),
            transaction_metadata: false,
            transaction_topic: "transaction".to_owned(),
            types: TypeModes::default(),
            message_key_columns: MessageKeyColumns::default(),
            gtid_source_include: Vec::new(),
            gtid_source_exclude: Vec::new(),
        }
    }

    /// Sets the value representations (`decimal.handling.mode`, ...).
    pub fn with_types(mut self, types: TypeModes) -> Self {
        self.types = types;
        self
    }

    /// Sets `message.key.columns`.
    pub fn with_message_key_columns(mut self, keys: MessageKeyColumns) -> Self {
        self.message_key_columns = keys;
        self
    }

    /// Sets `provide.transaction.metadata`.
    pub fn with_transaction_metadata(mut self, on: bool) -> Self {
        self.transaction_metadata = on;
        self
    }

    /// Sets the schema history store (`schema.history.internal`).
    pub fn with_schema_history(mut self, history: Arc<dyn SchemaHistory>) -> Self {
        self.schema_history = HistoryStore(history);
        self
    }

    /// Sets `connect.keep.alive.interval.ms` (None: `connect.keep.alive=false`).
    pub fn with_keep_alive(mut self, interval: Option<Duration>) -> Self {
        self.keep_alive = interval;
        self
    }

    /// Sets the column filters and masks (`column.*`).
    pub fn with_columns(mut self, columns: ColumnFilter) -> Self {
        self.columns = columns;
        self
    }

    /// Sets the TLS options (`database.ssl.*`).
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Sets `database.port`.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets `database.include.list`.
    pub fn with_databases<'a>(
        mut self,
        databases: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, Error> {
        self.database_include = whole_match_regexes("database.include.list", databases)?;
        Ok(self)
    }

    /// Sets `table.include.list` (`db.table` regexes).
    pub fn with_tables<'a>(
        mut self,
        tables: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, Error> {
        self.table_include = whole_match_regexes("table.include.list", tables)?;
        Ok(self)
    }

    /// Sets `snapshot.mode`.
    pub fn with_snapshot_mode(mut self, mode: SnapshotMode) -> Self {
        self.snapshot_mode = mode;
        self
    }

    /// Sets `heartbeat.interval.ms`: while no transaction is read for this long, the
    /// source emits a position-only batch (zero turns it off).
    pub fn with_heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Reads Debezium's keys; errors name the key.
    pub fn from_props(p: &Scope<'_>) -> Result<Self, Error> {
        let server_id = p.require("database.server.id")?;
        let server_id = server_id
            .parse::<u32>()
            .ok()
            .filter(|&id| id > 0)
            .ok_or_else(|| {
                Error::config(
                    "database.server.id",
                    format!("`{server_id}`: expected a number from 1 to 4294967295"),
                )
            })?;
        let mut c = Self::new(
            p.get("database.hostname").unwrap_or("localhost"),
            p.require("database.user")?,
            p.get("database.password").unwrap_or(""),
            server_id,
            p.require("topic.prefix")?,
        );
        c.port = p.parse_or("database.port", 3306)?;
        c.database_include = whole_match_regexes(
            &p.key("database.include.list"),
            p.list("database.include.list"),
        )?;
        c.database_exclude = whole_match_regexes(
            &p.key("database.exclude.list"),
            p.list("database.exclude.list"),
        )?;
        c.table_include =
            whole_match_regexes(&p.key("table.include.list"), p.list("table.include.list"))?;
        c.table_exclude =
            whole_match_regexes(&p.key("table.exclude.list"), p.list("table.exclude.list"))?;
        c.snapshot_mode = match p.one_of(
            "snapshot.mode",
            &[
                "initial",
                "initial_only",
                "no_data",
                "schema_only",
                "when_needed",
                "never",
                "recovery",
            ],
            "initial",
        )? {
            "initial_only" => SnapshotMode::InitialOnly,
            "no_data" | "schema_only" => SnapshotMode::NoData,
            "when_needed" => SnapshotMode::WhenNeeded,
            "never" => SnapshotMode::Never,
            "recovery" => SnapshotMode::Recovery,
            _ => SnapshotMode::Initial,
        };
        c.fetch_size = p.parse_or("snapshot.fetch.size", DEFAULT_FETCH_SIZE)?;
        c.locking = match p.one_of(
            "snapshot.locking.mode",
            &["minimal", "extended", "none"],
            "minimal",
        )? {
            "extended" => SnapshotLockingMode::Extended,
            "none" => SnapshotLockingMode::None,
            _ => SnapshotLockingMode::Minimal,
        };
        if let Some(s) = p.get("skipped.operations") {
            c.skipped = SkippedOperations::parse(s)?;
        }
        c.tombstones_on_delete = p.bool_or("tombstones.on.delete", true)?;
        c.columns = ColumnFilter::from_props(p)?;
        c.transaction_metadata = p.bool_or("provide.transaction.metadata", false)?;
        c.types = TypeModes {
            decimal: DecimalMode::from_props(p)?,
            binary: BinaryMode::from_props(p)?,
            bigint_unsigned_precise: p.one_of(
                "bigint.unsigned.handling.mode",
                &["long", "precise"],
                "long",
            )? == "precise",
        };
        c.gtid_source_include = whole_match_regexes(
            &p.key("gtid.source.includes"),
            p.list("gtid.source.includes"),
        )?;
        c.gtid_source_exclude = whole_match_regexes(
            &p.key("gtid.source.excludes"),
            p.list("gtid.source.excludes"),
        )?;
        if !c.gtid_source_include.is_empty() && !c.gtid_source_exclude.is_empty() {
            return Err(Error::config(
                "gtid.source.excludes",
                "set either gtid.source.includes or gtid.source.excludes, not both",
            ));
        }
        if let Some(text) = p.get("message.key.columns") {
            c.message_key_columns = MessageKeyColumns::parse(&p.key("message.key.columns"), text)?;
        }
        if let Some(topic) = p.get("topic.transaction") {
            c.transaction_topic = topic.to_owned();
        }
        c.heartbeat_interval = p.millis_or("heartbeat.interval.ms", Duration::ZERO)?;
        let keep_alive = p.millis_or("connect.keep.alive.interval.ms", DEFAULT_KEEP_ALIVE)?;
        c.keep_alive = p.bool_or("connect.keep.alive", true)?.then_some(keep_alive);
        let mode = p.one_of("database.ssl.mode", &SslMode::NAMES, "preferred")?;
        c.tls = TlsOptions {
            mode: SslMode::parse(mode).expect("one of the names"),
            ca: p.get("database.ssl.ca").map(PathBuf::from),
            cert: p.get("database.ssl.cert").map(PathBuf::from),
            key: p.get("database.ssl.key").map(PathBuf::from),
        };
        match p.get("schema.history.internal") {
            None | Some("io.debezium.storage.file.history.FileSchemaHistory") => {
                if let Some(file) = p.get("schema.history.internal.file.filename") {
                    c.schema_history =
                        HistoryStore(Arc::new(FileSchemaHistory::open(file).map_err(|e| {
                            Error::config("schema.history.internal.file.filename", e.to_string())
                        })?));
                }
            }
            Some("io.debezium.relational.history.MemorySchemaHistory") => {}
            Some(other) => {
                return Err(Error::config(
                    "schema.history.internal",
                    format!("`{other}`: expected io.debezium.storage.file.history.FileSchemaHistory (with schema.history.internal.file.filename) or io.debezium.relational.history.MemorySchemaHistory"),
                ))
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.topic_prefix.is_empty()
            || !self
                .topic_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(Error::config(
                "topic.prefix",
                "must be non-empty and use only letters, digits, `.`, `_`, `-`",
            ));
        }
        if self.server_id == 0 {
            return Err(Error::config(
                "database.server.id",
                "must be greater than 0 (0 is not a valid replica id)",
            ));
        }
        if self
            .keep_alive
            .is_some_and(|k| k < Duration::from_millis(10))
        {
            return Err(Error::config(
                "connect.keep.alive.interval.ms",
                "must be at least 10 (milliseconds)",
            ));
        }
        if self.fetch_size == 0 {
            return Err(Error::config(
                "snapshot.fetch.size",
                "must be greater than 0",
            ));
        }
        self.tls.validate()
    }

    /// Whether a resume sends the GTIDs of MySQL source `uuid` (`gtid.source.*`).
    pub fn uses_gtid_source(&self, uuid: &str) -> bool {
        (self.gtid_source_include.is_empty()
            || self.gtid_source_include.iter().any(|r| r.is_match(uuid)))
            && !self.gtid_source_exclude.iter().any(|r| r.is_match(uuid))
    }

    /// Whether a table is captured by the include/exclude lists.
    pub fn captures(&self, database: &str, table: &str) -> bool {
        let full = format!("{database}.{table}");
        (self.database_include.is_empty()
            || self.database_include.iter().any(|r| r.is_match(database)))
            && !self.database_exclude.iter().any(|r| r.is_match(database))
            && (self.table_include.is_empty()
                || self.table_include.iter().any(|r| r.is_match(&full)))
            && !self.table_exclude.iter().any(|r| r.is_match(&full))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connect_core::Properties;

    #[test]
    fn reads_debezium_keys_and_names_bad_ones() {
        let p = Properties::from_pairs([
            ("database.user", "root"),
            ("database.server.id", "184054"),
            ("topic.prefix", "shop"),
            ("database.include.list", "inventory"),
            ("table.exclude.list", "inventory\\.audit"),
            ("snapshot.mode", "schema_only"),
            ("decimal.handling.mode", "double"),
            ("binary.handling.mode", "base64-url-safe"),
            ("bigint.unsigned.handling.mode", "precise"),
            ("message.key.columns", "inventory\\.orders:code,region"),
            ("provide.transaction.metadata", "true"),
            ("topic.transaction", "tx"),
            ("snapshot.locking.mode", "extended"),
            ("gtid.source.includes", "3e11fa47-.*"),
        ]);
        let c = MySqlConfig::from_props(&p.root()).unwrap();
        assert!(c.captures("inventory", "orders") && !c.captures("inventory", "audit"));
        assert!(!c.captures("other", "orders"));
        assert_eq!(c.snapshot_mode, SnapshotMode::NoData);
        assert_eq!(
            c.types,
            TypeModes {
                decimal: DecimalMode::Double,
                binary: BinaryMode::Base64UrlSafe,
                bigint_unsigned_precise: true,
            }
        );
        assert_eq!(
            c.message_key_columns.for_table("inventory", "orders"),
            Some(&["code".to_owned(), "region".to_owned()][..])
        );
        assert!(c.transaction_metadata && c.transaction_topic == "tx");
        assert_eq!(c.locking, SnapshotLockingMode::Extended);
        assert!(c.uses_gtid_source("3e11fa47-71ca-11e1-9e33-c80aa9429562"));
        assert!(!c.uses_gtid_source("4f22ab58-82db-22f2-af44-d91bb0530673"));
        let both = Properties::from_pairs([
            ("database.user", "u"),
            ("database.server.id", "1"),
            ("topic.prefix", "srv"),
            ("gtid.source.includes", "a.*"),
            ("gtid.source.excludes", "b.*"),
        ]);
        let e = MySqlConfig::from_props(&both.root())
            .unwrap_err()
            .to_string();
        assert!(e.contains("gtid.source.excludes"), "{e}");
        assert!(p.reject_unused().is_ok());
        for (key, value) in [
            ("database.server.id", "0"),
            ("database.server.id", "x"),
            ("snapshot.mode", "sometimes"),
            ("database.port", "70000"),
            ("table.include.list", "("),
            ("topic.prefix", "a b"),
            ("database.ssl.mode", "sometimes"),
            ("database.ssl.ca", "/nonexistent/ca.pem"),
            ("connect.keep.alive.interval.ms", "5"),
            ("column.mask.with.x.chars", "a"),
            ("column.exclude.list", "("),
            ("snapshot.locking.mode", "sometimes"),
            ("decimal.handling.mode", "float"),
            ("binary.handling.mode", "octal"),
            ("bigint.unsigned.handling.mode", "huge"),
            ("message.key.columns", "orders"),
            ("schema.history.internal", "com.example.Nowhere"),
        ] {
            let p = Properties::from_pairs([
                ("database.user", "u"),
                ("database.server.id", "1"),
                ("topic.prefix", "srv"),
                (key, value),
            ]);
            let e = MySqlConfig::from_props(&p.root()).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
