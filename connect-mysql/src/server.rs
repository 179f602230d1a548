//! What the server is and whether its binlog can feed change data capture: the checks a
//! connector runs before it reads anything, with errors that name the fix.

use connect_core::Error;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::config::MySqlConfig;
use crate::tls::{SslMode, TlsOptions};
use crate::types::ColumnInfo;

/// The server's kind: it decides the binlog protocol details (GTID events, commands) and
/// the `source.connector` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB (GTIDs always on, its own GTID events; `connector` is `mariadb`).
    MariaDb,
    /// MySQL.
    MySql,
}

impl Flavor {
    /// `source.connector`, as Debezium's connector for this server writes it.
    pub fn connector_name(self) -> &'static str {
        match self {
            Flavor::MariaDb => "mariadb",
            Flavor::MySql => "mysql",
        }
    }
}

/// The binlog settings preflight checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogSettings {
    /// `@@log_bin`.
    pub log_bin: bool,
    /// `@@binlog_format`.
    pub format: String,
    /// `@@binlog_row_image`.
    pub row_image: String,
    /// MariaDB's `@@log_bin_compress` (false on MySQL).
    pub compressed: bool,
    /// MySQL 8's `@@binlog_row_value_options` holds `PARTIAL_JSON` (false on MariaDB).
    pub partial_json: bool,
}

impl BinlogSettings {
    /// Whether the binlog carries every change as full row images, uncompressed.
    pub fn check(&self) -> Result<(), Error> {
        let fix = |setting: &str, problem: String, fix: &str| {
            Err(Error::fatal(
                "mysql",
                format!("{setting}: {problem}; {fix} (and restart the connector)"),
            ))
        };
        if !self.log_bin {
            return fix(
                "log_bin",
                "the binary log is off".into(),
                "start the server with log_bin and binlog_format=ROW",
            );
        }
        if !self.format.eq_ignore_ascii_case("ROW") {
            return fix(
                "binlog_format",
                format!("is {}, row events are needed", self.format),
                "run SET GLOBAL binlog_format = 'ROW' (or set it in the server configuration)",
            );
        }
        if !self.row_image.eq_ignore_ascii_case("FULL") {
            return fix(
                "binlog_row_image",
                format!("is {}, before-images would miss columns", self.row_image),
                "run SET GLOBAL binlog_row_image = 'FULL'",
            );
        }
        if self.compressed {
            return fix(
                "log_bin_compress",
                "is ON: compressed row events cannot be decoded (their rows would be lost)".into(),
                "run SET GLOBAL log_bin_compress = OFF",
            );
        }
        if self.partial_json {
            return fix(
                "binlog_row_value_options",
                "is PARTIAL_JSON: JSON updates would be written as diffs, not row images".into(),
                "run SET GLOBAL binlog_row_value_options = ''",
            );
        }
        Ok(())
    }
}

/// The server as preflight found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// MariaDB or MySQL.
    pub flavor: Flavor,
    /// `VERSION()`.
    pub version: String,
    /// The binlog settings (already checked).
    pub binlog: BinlogSettings,
    /// The current binlog file and position.
    pub position: (String, u64),
}

/// Connection options for a configuration (TLS as `database.ssl.mode` says; `preferred`
/// falls back to a plain connection in [`connect`]).
fn opts(config: &MySqlConfig) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname(config.host.clone())
        .tcp_port(config.port)
        .user(Some(config.user.clone()))
        .pass(Some(config.password.clone()))
        .prefer_socket(false)
        .ssl_opts(config.tls.ssl_opts())
        .into()
}

/// Connects as the configuration says (for `preferred`, plain when the server offers no
/// TLS); `context` starts the error message.
pub async fn connect(config: &MySqlConfig, context: &str) -> Result<Conn, Error> {
    if config.tls.mode != SslMode::Disabled {
        ensure_crypto_provider();
    }
    let tls_refused = |e: &mysql_async::Error| {
        matches!(
            e,
            mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)
        )
    };
    match Conn::new(opts(config)).await {
        Ok(conn) => Ok(conn),
        Err(e) if tls_refused(&e) && config.tls.mode == SslMode::Preferred => {
            let plain = MySqlConfig {
                tls: TlsOptions {
                    mode: SslMode::Disabled,
                    ..config.tls.clone()
                },
                ..config.clone()
            };
            Conn::new(opts(&plain))
                .await
                .map_err(|e| mysql_err(context, e))
        }
        Err(e) if tls_refused(&e) => Err(Error::fatal(
            "mysql",
            format!(
                "{context}: the server does not offer TLS, which {} requires",
                config.tls.describe()
            ),
        )),
        Err(e) if is_tls_failure(&e) => Err(Error::fatal(
            "mysql",
            format!(
                "{context}: TLS handshake failed ({}): {e}",
                config.tls.describe()
            ),
        )),
        Err(e) => Err(mysql_err(context, e)),
    }
}

/// mysql_async builds its TLS configuration with rustls' process-wide default provider,
/// which rustls cannot pick by itself when a build enables both of its providers (as a
/// workspace with other TLS users may): install ring's, unless one is installed already.
fn ensure_crypto_provider() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Whether an error is a failed TLS handshake (a certificate the settings reject), which
/// retrying cannot fix.
fn is_tls_failure(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(mysql_async::IoError::Tls(_)) => true,
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => io
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

pub(crate) fn mysql_err(context: &str, e: mysql_async::Error) -> Error {
    // Driver and I/O failures (server restarting, network) are worth retrying; an error
    // the server returned about the request is not.
    match e {
        mysql_async::Error::Server(ref s) if !TRANSIENT_SERVER_ERRORS.contains(&s.code) => {
            Error::fatal("mysql", format!("{context}: {e} (error {})", s.code))
        }
        _ => Error::retryable("mysql", format!("{context}: {e}")),
    }
}

/// A binlog stream error: the server evicts a reader when another one registers with the
/// same server id, which a restart would only repeat (each evicting the other), so that
/// one is fatal and names the setting.
pub(crate) fn binlog_stream_err(config: &MySqlConfig, e: mysql_async::Error) -> Error {
    match e {
        mysql_async::Error::Server(ref s) if s.message.contains("same server_uuid/server_id") => {
            Error::fatal(
                "mysql",
                format!(
                    "another replica connected with database.server.id {}: two readers with one id evict each other; give each connector its own id ({})",
                    config.server_id, s.message
                ),
            )
        }
        e => mysql_err("binlog stream failed", e),
    }
}

/// Server errors that say the server is going away or is busy, not that the request is
/// wrong: too many connections (1040), shutting down (1053, 1077-1079), lock wait timeout
/// (1205), deadlock (1213), query interrupted (1317), connection killed (1927).
const TRANSIENT_SERVER_ERRORS: [u16; 9] = [1040, 1053, 1077, 1078, 1079, 1205, 1213, 1317, 1927];

/// Connects and checks that the server can feed change data capture: binary log on, in ROW
/// format with full images, uncompressed; the user may read it (REPLICATION SLAVE and
/// REPLICATION CLIENT, or ALL PRIVILEGES).
pub async fn preflight(config: &MySqlConfig) -> Result<(Conn, ServerInfo), Error> {
    let mut conn = connect(
        config,
        &format!("cannot connect to {}:{}", config.host, config.port),
    )
    .await?;
    let (version, log_bin, format, row_image, own_server_id): (String, u8, String, String, u32) =
        conn.query_first(
            "SELECT VERSION(), @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id",
        )
        .await
        .map_err(|e| mysql_err("cannot read the binlog settings", e))?
        .ok_or_else(|| Error::fatal("mysql", "the server returned no settings"))?;
    if own_server_id == config.server_id {
        return Err(Error::fatal(
            "mysql",
            format!(
                "database.server.id {} is the server's own server_id: pick an id no server or replica of this topology uses",
                config.server_id
            ),
        ));
    }
    let flavor = if version.contains("MariaDB") {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    };
    let compressed = match flavor {
        Flavor::MariaDb => {
            conn.query_first::<u8, _>("SELECT @@log_bin_compress")
                .await
                .map_err(|e| mysql_err("cannot read log_bin_compress", e))?
                .unwrap_or(0)
                == 1
        }
        Flavor::MySql => false,
    };
    // MySQL 8.0.3+ only: older servers do not know the variable (no partial updates).
    let partial_json = flavor == Flavor::MySql
        && conn
            .query_first::<String, _>("SELECT @@binlog_row_value_options")
            .await
            .ok()
            .flatten()
            .is_some_and(|o| o.to_ascii_uppercase().contains("PARTIAL_JSON"));
    let binlog = BinlogSettings {
        log_bin: log_bin == 1,
        format,
        row_image,
        compressed,
        partial_json,
    };
    binlog.check()?;
    let grants: Vec<String> = conn
        .query("SHOW GRANTS FOR CURRENT_USER()")
        .await
        .map_err(|e| mysql_err("cannot read the user's grants", e))?;
    check_grants(&config.user, &grants)?;
    let position = current_position(&mut conn, flavor, &version).await?;
    Ok((
        conn,
        ServerInfo {
            flavor,
            version,
            binlog,
            position,
        },
    ))
}

/// Whether the grants let the user read the binlog and its position.
pub fn check_grants(user: &str, grants: &[String]) -> Result<(), Error> {
    let all = grants.iter().any(|g| g.contains("ALL PRIVILEGES ON *.*"));
    let has = |privilege: &str| all || grants.iter().any(|g| g.contains(privilege));
    let mut missing = Vec::new();
    if !has("REPLICATION SLAVE") && !has("REPLICATION REPLICA") {
        missing.push("REPLICATION SLAVE");
    }
    if !has("REPLICATION CLIENT") && !has("BINLOG MONITOR") && !has("SUPER") {
        missing.push("REPLICATION CLIENT");
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::fatal(
        "mysql",
        format!(
            "user `{user}` lacks {}: run GRANT {}, SELECT ON *.* TO '{user}'",
            missing.join(" and "),
            missing.join(", ")
        ),
    ))
}

/// The binlog's current end: `SHOW BINARY LOG STATUS` on MySQL 8.2+, where `SHOW MASTER
/// STATUS` is gone, `SHOW MASTER STATUS` elsewhere.
async fn current_position(
    conn: &mut Conn,
    flavor: Flavor,
    version: &str,
) -> Result<(String, u64), Error> {
    let new_syntax = flavor == Flavor::MySql && {
        let mut parts = version
            .split(['.', '-'])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (8, 2)
    };
    let sql = if new_syntax {
        "SHOW BINARY LOG STATUS"
    } else {
        "SHOW MASTER STATUS"
    };
    let row: Option<mysql_async::Row> = conn
        .query_first(sql)
        .await
        .map_err(|e| mysql_err("cannot read the binlog position", e))?;
    let row = row.ok_or_else(|| {
        Error::fatal(
            "mysql",
            format!("{sql} returned nothing: is the binary log on (log_bin)?"),
        )
    })?;
    let file: Option<String> = row.get(0);
    let pos: Option<u64> = row.get(1);
    match (file, pos) {
        (Some(file), Some(pos)) => Ok((file, pos)),
        _ => Err(Error::fatal(
            "mysql",
            format!("{sql} returned no file and position"),
        )),
    }
}

/// A table's columns in order, with keys and defaults.
pub async fn columns(conn: &mut Conn, db: &str, table: &str) -> Result<Vec<ColumnInfo>, Error> {
    type Row = (
        String,
        String,
        String,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        String,
        String,
        Option<String>,
        Option<u64>,
    );
    let rows: Vec<Row> = conn
        .exec(
            "SELECT COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, \
             DATETIME_PRECISION, IS_NULLABLE, COLUMN_KEY, COLUMN_DEFAULT, CHARACTER_OCTET_LENGTH FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .map_err(|e| mysql_err(&format!("cannot read the columns of {db}.{table}"), e))?;
    Ok(rows
        .into_iter()
        .map(
            |(
                name,
                data_type,
                column_type,
                precision,
                scale,
                fraction,
                nullable,
                key,
                default,
                octets,
            )| {
                // Only BINARY(n) needs it (values are padded to it).
                let octet_length = octets.filter(|_| data_type == "binary");
                ColumnInfo {
                    name,
                    data_type,
                    column_type,
                    precision,
                    scale,
                    fraction_digits: fraction,
                    nullable: nullable == "YES",
                    key: key == "PRI",
                    default,
                    octet_length,
                }
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BinlogSettings {
        BinlogSettings {
            log_bin: true,
            format: "ROW".into(),
            row_image: "FULL".into(),
            compressed: false,
            partial_json: false,
        }
    }

    #[test]
    fn binlog_settings_errors_name_the_setting_and_the_fix() {
        assert!(settings().check().is_ok());
        for (bad, setting, fix) in [
            (
                BinlogSettings {
                    log_bin: false,
                    ..settings()
                },
                "log_bin",
                "log_bin",
            ),
            (
                BinlogSettings {
                    format: "MIXED".into(),
                    ..settings()
                },
                "binlog_format",
                "SET GLOBAL binlog_format = 'ROW'",
            ),
            (
                BinlogSettings {
                    row_image: "MINIMAL".into(),
                    ..settings()
                },
                "binlog_row_image",
                "SET GLOBAL binlog_row_image = 'FULL'",
            ),
            (
                BinlogSettings {
                    compressed: true,
                    ..settings()
                },
                "log_bin_compress",
                "log_bin_compress = OFF",
            ),
            (
                BinlogSettings {
                    partial_json: true,
                    ..settings()
                },
                "binlog_row_value_options",
                "binlog_row_value_options = ''",
            ),
        ] {
            let e = bad.check().unwrap_err().to_string();
            assert!(e.contains(setting) && e.contains(fix), "{e}");
        }
    }

    #[test]
    fn grants_need_replication_slave_and_client() {
        let ok =
            |g: &[&str]| check_grants("u", &g.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(
            ok(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]).is_ok()
        );
        assert!(ok(&["GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `u`@`%`"]).is_ok());
        let e = ok(&["GRANT SELECT ON *.* TO `u`@`%`"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("REPLICATION SLAVE")
                && e.contains("REPLICATION CLIENT")
                && e.contains("GRANT"),
            "{e}"
        );
    }
}
