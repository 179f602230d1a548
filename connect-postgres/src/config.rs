//! The connector's configuration, with Debezium's property names.

use std::time::Duration;

pub use connect_core::columns::MessageKeyColumns;
use connect_core::envelope::SkippedOperations;
use connect_core::properties::{whole_match_regexes, Scope};
use connect_core::Error;
use regex::Regex;

pub use connect_core::columns::{ColumnFilter, HashAlgorithm, Mask};

use crate::tls::{SslMode, TlsOptions};
use crate::types::{
    BinaryMode, DecimalMode, HstoreMode, IntervalMode, TimePrecisionMode, TypeModes,
};

/// Default `slot.name` (Debezium's).
pub const DEFAULT_SLOT: &str = "debezium";
/// Default `publication.name` (Debezium's).
pub const DEFAULT_PUBLICATION: &str = "dbz_publication";
/// Default `snapshot.fetch.size`.
pub const DEFAULT_FETCH_SIZE: usize = 10_240;
/// Default `unavailable.value.placeholder` (Debezium's).
pub const DEFAULT_UNAVAILABLE_PLACEHOLDER: &str = "__debezium_unavailable_value";
/// Default `status.update.interval.ms`.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// `publication.autocreate.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicationMode {
    /// `CREATE PUBLICATION ... FOR ALL TABLES` (needs a superuser).
    AllTables,
    /// A publication of the tables matching the include/exclude lists.
    Filtered,
    /// The publication must exist.
    Disabled,
}

/// `snapshot.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Snapshot when no offset exists, then stream.
    Initial,
    /// Snapshot when no offset exists, then stop.
    InitialOnly,
    /// Never snapshot data; stream from the slot.
    NoData,
    /// Snapshot at every start.
    Always,
    /// Snapshot when there is no offset or the slot cannot serve it.
    WhenNeeded,
    /// Alias of `no_data` kept by Debezium.
    Never,
}

/// Configuration of [`crate::PostgresSource`].
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `database.hostname`.
    pub host: String,
    /// `database.port`.
    pub port: u16,
    /// `database.user`.
    pub user: String,
    /// `database.password`.
    pub password: String,
    /// `database.dbname`.
    pub dbname: String,
    /// `database.sslmode`, `database.sslrootcert`, `database.sslcert`, `database.sslkey`.
    pub tls: TlsOptions,
    /// `topic.prefix`: the logical server name, prefix of topics and the source partition.
    pub topic_prefix: String,
    /// `slot.name`.
    pub slot: String,
    /// `publication.name`.
    pub publication: String,
    /// `publication.autocreate.mode`.
    pub publication_mode: PublicationMode,
    /// `publication.autocreate.allow.keyless`: let `all_tables` create its publication even
    /// though tables without a key exist (their UPDATE and DELETE then fail).
    pub allow_keyless_tables: bool,
    /// `snapshot.mode`.
    pub snapshot_mode: SnapshotMode,
    /// `snapshot.fetch.size`.
    pub fetch_size: usize,
    /// `snapshot.max.threads`: tables read in parallel by this many connections.
    pub snapshot_max_threads: usize,
    /// `schema.include.list` (regexes, whole-name match).
    pub schema_include: Vec<Regex>,
    /// `table.include.list` (`schema.table` regexes).
    pub table_include: Vec<Regex>,
    /// `table.exclude.list`.
    pub table_exclude: Vec<Regex>,
    /// Column filters and masks.
    pub columns: ColumnFilter,
    /// `message.key.columns`: keys other than the primary key.
    pub message_key_columns: MessageKeyColumns,
    /// `skipped.operations` (default `t`).
    pub skipped: SkippedOperations,
    /// `tombstones.on.delete` (default true).
    pub tombstones_on_delete: bool,
    /// `heartbeat.interval.ms` (0 = off).
    pub heartbeat_interval: Duration,
    /// `heartbeat.action.query`: run on every heartbeat, so that a database whose captured
    /// tables are quiet still writes WAL the slot can move past.
    pub heartbeat_action_query: Option<String>,
    /// `status.update.interval.ms`.
    pub status_interval: Duration,
    /// `slot.drop.on.stop`.
    pub drop_slot_on_stop: bool,
    /// Value representations: `decimal.handling.mode`, `time.precision.mode`,
    /// `binary.handling.mode`, `interval.handling.mode`, `hstore.handling.mode`,
    /// `money.fraction.digits`.
    pub types: TypeModes,
    /// `unavailable.value.placeholder`: what an unchanged TOASTed value becomes.
    pub unavailable_placeholder: String,
    /// `provide.transaction.metadata`: BEGIN/END records on `<prefix>.<topic.transaction>`
    /// and a `transaction` block in every change event.
    pub transaction_metadata: bool,
    /// `topic.transaction` (default `transaction`).
    pub transaction_topic: String,
    /// `message.prefix.include.list`: logical decoding message prefixes to emit (regexes).
    pub message_prefix_include: Vec<Regex>,
    /// `message.prefix.exclude.list`.
    pub message_prefix_exclude: Vec<Regex>,
}

impl PostgresConfig {
    /// A configuration with Debezium's defaults.
    pub fn new(host: &str, user: &str, password: &str, dbname: &str, topic_prefix: &str) -> Self {
        PostgresConfig {
            host: host.to_owned(),
            port: 5432,
            user: user.to_owned(),
            password: password.to_owned(),
            dbname: dbname.to_owned(),
            tls: TlsOptions::default(),
            topic_prefix: topic_prefix.to_owned(),
            slot: DEFAULT_SLOT.to_owned(),
            publication: DEFAULT_PUBLICATION.to_owned(),
            publication_mode: PublicationMode::AllTables,
            allow_keyless_tables: false,
            snapshot_mode: SnapshotMode::Initial,
            fetch_size: DEFAULT_FETCH_SIZE,
            snapshot_max_threads: 1,
            schema_include: Vec::new(),
            table_include: Vec::new(),
            table_exclude: Vec::new(),
            columns: ColumnFilter::default(),
            message_key_columns: MessageKeyColumns::default(),
            skipped: SkippedOperations::default(),
            tombstones_on_delete: true,
            heartbeat_interval: Duration::ZERO,
            heartbeat_action_query: None,
            status_interval: DEFAULT_STATUS_INTERVAL,
            drop_slot_on_stop: false,
            types: TypeModes::default(),
            unavailable_placeholder: DEFAULT_UNAVAILABLE_PLACEHOLDER.to_owned(),
            transaction_metadata: false,
            transaction_topic: "transaction".to_owned(),
            message_prefix_include: Vec::new(),
            message_prefix_exclude: Vec::new(),
        }
    }

    /// Sets `database.port`.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets the TLS options (`database.sslmode`, ...).
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Sets `slot.name`.
    pub fn with_slot(mut self, slot: &str) -> Self {
        self.slot = slot.to_owned();
        self
    }

    /// Sets `publication.name`.
    pub fn with_publication(mut self, publication: &str, mode: PublicationMode) -> Self {
        self.publication = publication.to_owned();
        self.publication_mode = mode;
        self
    }

    /// Sets `table.include.list` (`schema.table` regexes).
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

    /// Sets `heartbeat.interval.ms`.
    pub fn with_heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Sets `snapshot.max.threads`.
    pub fn with_snapshot_threads(mut self, threads: usize) -> Self {
        self.snapshot_max_threads = threads;
        self
    }

    /// Sets `heartbeat.action.query`.
    pub fn with_heartbeat_action_query(mut self, sql: &str) -> Self {
        self.heartbeat_action_query = Some(sql.to_owned());
        self
    }

    /// Sets `status.update.interval.ms`.
    pub fn with_status_interval(mut self, interval: Duration) -> Self {
        self.status_interval = interval;
        self
    }

    /// Sets `slot.drop.on.stop`.
    pub fn with_drop_slot_on_stop(mut self, drop: bool) -> Self {
        self.drop_slot_on_stop = drop;
        self
    }

    /// Sets the value representations (`decimal.handling.mode`, ...).
    pub fn with_types(mut self, types: TypeModes) -> Self {
        self.types = types;
        self
    }

    /// Sets `provide.transaction.metadata`.
    pub fn with_transaction_metadata(mut self, on: bool) -> Self {
        self.transaction_metadata = on;
        self
    }

    /// Reads Debezium's keys; errors name the key.
    pub fn from_props(p: &Scope<'_>) -> Result<Self, Error> {
        let mut c = Self::new(
            p.get("database.hostname").unwrap_or("localhost"),
            p.require("database.user")?,
            p.get("database.password").unwrap_or(""),
            p.require("database.dbname")?,
            p.require("topic.prefix")?,
        );
        c.port = p.parse_or("database.port", 5432)?;
        c.tls = TlsOptions {
            mode: match p.get("database.sslmode") {
                None => SslMode::default(),
                Some(m) => SslMode::parse(m).ok_or_else(|| {
                    Error::config(
                        "database.sslmode",
                        format!("`{m}`: expected disable, allow, prefer, require, verify-ca or verify-full"),
                    )
                })?,
            },
            root_cert: p.get("database.sslrootcert").map(Into::into),
            client_cert: p.get("database.sslcert").map(Into::into),
            client_key: p.get("database.sslkey").map(Into::into),
        };
        if let Some(plugin) = p.get("plugin.name") {
            if plugin != "pgoutput" {
                return Err(Error::config(
                    "plugin.name",
                    format!("`{plugin}` is not supported: only pgoutput"),
                ));
            }
        }
        c.slot = p.get("slot.name").unwrap_or(DEFAULT_SLOT).to_owned();
        c.publication = p
            .get("publication.name")
            .unwrap_or(DEFAULT_PUBLICATION)
            .to_owned();
        c.publication_mode = match p.one_of(
            "publication.autocreate.mode",
            &["all_tables", "filtered", "disabled"],
            "all_tables",
        )? {
            "filtered" => PublicationMode::Filtered,
            "disabled" => PublicationMode::Disabled,
            _ => PublicationMode::AllTables,
        };
        c.allow_keyless_tables = p.bool_or("publication.autocreate.allow.keyless", false)?;
        c.snapshot_mode = match p.one_of(
            "snapshot.mode",
            &[
                "initial",
                "initial_only",
                "no_data",
                "always",
                "when_needed",
                "never",
            ],
            "initial",
        )? {
            "initial_only" => SnapshotMode::InitialOnly,
            "no_data" => SnapshotMode::NoData,
            "always" => SnapshotMode::Always,
            "when_needed" => SnapshotMode::WhenNeeded,
            "never" => SnapshotMode::Never,
            _ => SnapshotMode::Initial,
        };
        c.fetch_size = p.parse_or("snapshot.fetch.size", DEFAULT_FETCH_SIZE)?;
        c.snapshot_max_threads = p.parse_or("snapshot.max.threads", 1)?;
        c.schema_include =
            whole_match_regexes(&p.key("schema.include.list"), p.list("schema.include.list"))?;
        c.table_include =
            whole_match_regexes(&p.key("table.include.list"), p.list("table.include.list"))?;
        c.table_exclude =
            whole_match_regexes(&p.key("table.exclude.list"), p.list("table.exclude.list"))?;
        c.columns = ColumnFilter::from_props(p)?;
        if let Some(text) = p.get("message.key.columns") {
            c.message_key_columns = MessageKeyColumns::parse(&p.key("message.key.columns"), text)?;
        }
        if let Some(s) = p.get("skipped.operations") {
            c.skipped = SkippedOperations::parse(s)?;
        }
        c.tombstones_on_delete = p.bool_or("tombstones.on.delete", true)?;
        c.heartbeat_interval = p.millis_or("heartbeat.interval.ms", Duration::ZERO)?;
        c.heartbeat_action_query = p.get("heartbeat.action.query").map(str::to_owned);
        c.status_interval = p.millis_or("status.update.interval.ms", DEFAULT_STATUS_INTERVAL)?;
        c.drop_slot_on_stop = p.bool_or("slot.drop.on.stop", false)?;
        c.types = TypeModes {
            decimal: DecimalMode::from_props(p)?,
            time: match p.one_of(
                "time.precision.mode",
                &["adaptive", "adaptive_time_microseconds", "connect"],
                "adaptive",
            )? {
                "adaptive_time_microseconds" => TimePrecisionMode::AdaptiveTimeMicroseconds,
                "connect" => TimePrecisionMode::Connect,
                _ => TimePrecisionMode::Adaptive,
            },
            binary: BinaryMode::from_props(p)?,
            interval: match p.one_of("interval.handling.mode", &["numeric", "string"], "numeric")? {
                "string" => IntervalMode::String,
                _ => IntervalMode::Numeric,
            },
            hstore: match p.one_of("hstore.handling.mode", &["json", "map"], "json")? {
                "map" => HstoreMode::Map,
                _ => HstoreMode::Json,
            },
            money_fraction_digits: p.parse_or("money.fraction.digits", 2)?,
        };
        c.transaction_metadata = p.bool_or("provide.transaction.metadata", false)?;
        c.transaction_topic = p
            .get("topic.transaction")
            .unwrap_or("transaction")
            .to_owned();
        c.message_prefix_include = whole_match_regexes(
            &p.key("message.prefix.include.list"),
            p.list("message.prefix.include.list"),
        )?;
        c.message_prefix_exclude = whole_match_regexes(
            &p.key("message.prefix.exclude.list"),
            p.list("message.prefix.exclude.list"),
        )?;
        c.unavailable_placeholder = p
            .get("unavailable.value.placeholder")
            .unwrap_or(DEFAULT_UNAVAILABLE_PLACEHOLDER)
            .to_owned();
        c.validate()?;
        Ok(c)
    }

    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<(), Error> {
        self.tls.validate()?;
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
        let ident_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !ident_ok(&self.slot) {
            return Err(Error::config(
                "slot.name",
                "must be lower-case letters, digits and `_` (PostgreSQL slot names)",
            ));
        }
        if !ident_ok(&self.publication) {
            return Err(Error::config(
                "publication.name",
                "must be lower-case letters, digits and `_`",
            ));
        }
        if self.fetch_size == 0 {
            return Err(Error::config(
                "snapshot.fetch.size",
                "must be greater than 0",
            ));
        }
        if self.heartbeat_action_query.is_some() && self.heartbeat_interval.is_zero() {
            return Err(Error::config(
                "heartbeat.action.query",
                "needs heartbeat.interval.ms > 0",
            ));
        }
        if self.types.money_fraction_digits > 38 {
            return Err(Error::config("money.fraction.digits", "must be at most 38"));
        }
        if self.snapshot_max_threads == 0 {
            return Err(Error::config("snapshot.max.threads", "must be at least 1"));
        }
        if self.status_interval.is_zero() {
            return Err(Error::config(
                "status.update.interval.ms",
                "must be greater than 0",
            ));
        }
        Ok(())
    }

    /// Whether logical decoding messages with this prefix are emitted.
    pub fn emits_message(&self, prefix: &str) -> bool {
        (self.message_prefix_include.is_empty()
            || self
                .message_prefix_include
                .iter()
                .any(|r| r.is_match(prefix)))
            && !self
                .message_prefix_exclude
                .iter()
                .any(|r| r.is_match(prefix))
    }

    /// Whether a table is captured by the include/exclude lists.
    pub fn captures(&self, schema: &str, table: &str) -> bool {
        let full = format!("{schema}.{table}");
        (self.schema_include.is_empty() || self.schema_include.iter().any(|r| r.is_match(schema)))
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
            ("database.user", "postgres"),
            ("database.dbname", "shop"),
            ("topic.prefix", "srv"),
            ("table.include.list", "public\\.orders,inventory\\..*"),
            ("column.exclude.list", "public\\.orders\\.secret"),
            ("column.mask.with.4.chars", "public\\.orders\\.card"),
            ("plugin.name", "pgoutput"),
        ]);
        let c = PostgresConfig::from_props(&p.root()).unwrap();
        assert!(
            c.captures("public", "orders")
                && c.captures("inventory", "x")
                && !c.captures("public", "users")
        );
        assert!(p.reject_unused().is_ok());
        for (key, value) in [
            ("snapshot.mode", "sometimes"),
            ("plugin.name", "decoderbufs"),
            ("slot.name", "Bad-Slot"),
            ("database.port", "x"),
            ("table.include.list", "("),
            ("column.mask.with.x.chars", "a"),
        ] {
            let p = Properties::from_pairs([
                ("database.user", "u"),
                ("database.dbname", "d"),
                ("topic.prefix", "srv"),
                (key, value),
            ]);
            let e = PostgresConfig::from_props(&p.root())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn reads_hash_masks_and_message_key_columns() {
        let p = Properties::from_pairs([
            ("database.user", "u"),
            ("database.dbname", "d"),
            ("topic.prefix", "srv"),
            (
                "column.mask.hash.v2.SHA-512.with.salt.pepper",
                "public\\.t\\.c",
            ),
            ("message.key.columns", "public\\.t:a,b;other\\..*:z"),
        ]);
        let c = PostgresConfig::from_props(&p.root()).unwrap();
        assert!(matches!(
            c.columns.mask("public", "t", "c"),
            Some(Mask::Hash {
                algorithm: HashAlgorithm::Sha512,
                v2: true,
                ..
            })
        ));
        assert_eq!(
            c.message_key_columns.for_table("public", "t"),
            Some(&["a".to_owned(), "b".to_owned()][..])
        );
        assert_eq!(
            c.message_key_columns.for_table("other", "x"),
            Some(&["z".to_owned()][..])
        );
        for (key, value) in [
            ("column.mask.hash.SHA-999.with.salt.x", "a"),
            ("column.mask.hash.SHA-256", "a"),
            ("message.key.columns", "public.t"),
        ] {
            let p = Properties::from_pairs([
                ("database.user", "u"),
                ("database.dbname", "d"),
                ("topic.prefix", "srv"),
                (key, value),
            ]);
            let e = PostgresConfig::from_props(&p.root())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
