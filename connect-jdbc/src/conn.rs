//! One connection per dialect behind one trait: statements, catalog lookups and bulk
//! writes, with each driver's native types.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use connect_core::{async_trait, BoxError, Error};

use crate::dialect::{Column, Dialect, MySql, Postgres, Sqlite, TableName, WriteOp, WritePlan};
use crate::error::JdbcError;
use crate::read::{self, ReadColumn, Rows};
use crate::value::SqlValue;

/// A driver error, with whether it lost the connection.
#[derive(Debug)]
pub struct DbError {
    /// The connection is gone: a new one may succeed.
    pub lost: bool,
    /// The driver's error.
    pub source: BoxError,
}

impl DbError {
    /// The error as a statement failure on `table`.
    pub fn at(self, dialect: &'static str, action: &'static str, table: &str) -> JdbcError {
        JdbcError::Statement {
            dialect,
            action,
            table: table.to_owned(),
            connection_lost: self.lost,
            source: self.source,
        }
    }
}

/// Rows of text cells, as `query_text` returns them.
pub type TextRows = Vec<Vec<Option<String>>>;

/// A connection to one database.
#[async_trait]
pub trait Connection: Send + Sync {
    /// The connection's dialect.
    fn dialect(&self) -> &'static dyn Dialect;
    /// Runs a statement without results (DDL, `BEGIN`, `COMMIT`).
    async fn execute(&mut self, sql: &str) -> Result<(), DbError>;
    /// The columns (name, type as the catalog spells it) of a table; `None` if it does not exist.
    async fn columns(
        &mut self,
        table: &TableName,
    ) -> Result<Option<Vec<(String, String)>>, DbError>;
    /// Writes rows (row-major, `plan.columns.len()` values each) as the plan says.
    async fn write(&mut self, plan: &Arc<WritePlan>, rows: Vec<SqlValue>) -> Result<(), DbError>;
    /// A query with text parameters whose result columns are all text.
    async fn query_text(&mut self, sql: &str, params: &[&str]) -> Result<TextRows, DbError>;
    /// A query read with each column's native type; parameters are bound as the
    /// statement's placeholders need them.
    async fn query_typed(&mut self, sql: &str, params: &[SqlValue]) -> Result<Rows, DbError>;
}

fn unreadable(column: &str, message: impl std::fmt::Display) -> DbError {
    DbError {
        lost: false,
        source: format!("column `{column}`: {message}").into(),
    }
}

/// Where to connect: `connection.url` with optional `connection.user` / `connection.password`.
///
/// URLs: `postgres://` / `postgresql://` (or JDBC's `jdbc:postgresql://`), `mysql://` /
/// `mariadb://` (or `jdbc:mysql://`, `jdbc:mariadb://`), `sqlite:<path>` (or
/// `jdbc:sqlite:<path>`; `sqlite::memory:` for an in-memory database).
#[derive(Clone, Default)]
pub struct ConnectionConfig {
    url: String,
    user: Option<String>,
    password: Option<String>,
}

impl std::fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("url", &self.url)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

enum Target {
    Postgres(Box<tokio_postgres::Config>),
    MySql(mysql_async::Opts),
    Sqlite(PathBuf),
}

impl ConnectionConfig {
    /// A connection to `url`.
    pub fn new(url: impl Into<String>) -> Self {
        ConnectionConfig {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The user (`connection.user`), overriding the URL's.
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The password (`connection.password`), overriding the URL's.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Reads `connection.url`, `connection.user` and `connection.password` from `scope`.
    pub fn from_props(scope: &connect_core::properties::Scope<'_>) -> Result<Self, Error> {
        let mut c = ConnectionConfig::new(scope.require("connection.url")?);
        c.user = scope.get("connection.user").map(str::to_owned);
        c.password = scope.get("connection.password").map(str::to_owned);
        c.validate()?;
        Ok(c)
    }

    /// Checks the URL; errors name `connection.url`.
    pub fn validate(&self) -> Result<(), Error> {
        self.target().map(|_| ())
    }

    /// The dialect the URL selects.
    pub fn dialect(&self) -> Result<&'static dyn Dialect, Error> {
        Ok(match self.target()? {
            Target::Postgres(_) => &Postgres,
            Target::MySql(_) => &MySql,
            Target::Sqlite(_) => &Sqlite,
        })
    }

    fn target(&self) -> Result<Target, Error> {
        let bad = |m: String| Error::config("connection.url", m);
        let url = self.url.strip_prefix("jdbc:").unwrap_or(&self.url);
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad("`sqlite:` needs a file path (or `:memory:`)".into()));
            }
            return Ok(Target::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut config = tokio_postgres::Config::from_str(url)
                .map_err(|e| bad(format!("not a PostgreSQL URL: {e}")))?;
            if let Some(user) = &self.user {
                config.user(user);
            }
            if let Some(password) = &self.password {
                config.password(password);
            }
            if config.get_user().is_none() {
                return Err(Error::config(
                    "connection.user",
                    "no user in `connection.url` or `connection.user`",
                ));
            }
            // Timestamps without zone are UTC, as Kafka Connect's are.
            config.options("-c TimeZone=UTC -c extra_float_digits=3");
            if config.get_application_name().is_none() {
                config.application_name("connect-jdbc");
            }
            return Ok(Target::Postgres(Box::new(config)));
        }
        for scheme in ["mysql://", "mariadb://"] {
            if let Some(rest) = url.strip_prefix(scheme) {
                let opts = mysql_async::Opts::from_url(&format!("mysql://{rest}"))
                    .map_err(|e| bad(format!("not a MySQL URL: {e}")))?;
                let mut builder = mysql_async::OptsBuilder::from_opts(opts)
                    .prefer_socket(false)
                    .init(vec!["SET time_zone = '+00:00'"]);
                if let Some(user) = &self.user {
                    builder = builder.user(Some(user.clone()));
                }
                if let Some(password) = &self.password {
                    builder = builder.pass(Some(password.clone()));
                }
                return Ok(Target::MySql(builder.into()));
            }
        }
        Err(bad(format!(
            "`{}`: expected postgres://, mysql://, mariadb:// or sqlite: (optionally after jdbc:)",
            redact(&self.url)
        )))
    }

    /// Opens a connection.
    pub async fn connect(&self) -> Result<Box<dyn Connection>, JdbcError> {
        match self.target()? {
            Target::Postgres(config) => PgConnection::connect(*config).await,
            Target::MySql(opts) => MyConnection::connect(opts).await,
            Target::Sqlite(path) => LiteConnection::open(path).await,
        }
    }

    /// The URL without its password.
    pub fn describe(&self) -> String {
        redact(&self.url)
    }
}

impl From<Error> for JdbcError {
    fn from(e: Error) -> Self {
        JdbcError::Connect {
            dialect: "jdbc",
            target: String::new(),
            source: Box::new(e),
        }
    }
}

/// A URL with any `user:password@` reduced to `user@`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

// --- PostgreSQL ------------------------------------------------------------------------

struct PgConnection {
    client: tokio_postgres::Client,
    statements: HashMap<u64, tokio_postgres::Statement>,
}

fn pg_error(e: tokio_postgres::Error) -> DbError {
    let lost = e.is_closed()
        || e.as_db_error().is_none_or(|db| {
            db.code().code().starts_with("57P") || db.code().code().starts_with("08")
        });
    let message = match e.as_db_error() {
        Some(db) => format!(
            "{}{}",
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        None => e.to_string(),
    };
    DbError {
        lost,
        source: message.into(),
    }
}

impl PgConnection {
    async fn connect(config: tokio_postgres::Config) -> Result<Box<dyn Connection>, JdbcError> {
        let target = format!(
            "{:?}:{:?}/{}",
            config.get_hosts().first(),
            config.get_ports().first(),
            config.get_dbname().unwrap_or("")
        );
        let (client, connection) =
            config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| JdbcError::Connect {
                    dialect: "postgresql",
                    target,
                    source: Box::new(e),
                })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection ended");
            }
        });
        Ok(Box::new(PgConnection {
            client,
            statements: HashMap::new(),
        }))
    }

    /// The plan's statement: rows arrive as one text array per column, unnested and cast
    /// to each column's type by the server, so one statement writes a whole batch.
    fn sql(plan: &WritePlan) -> String {
        let columns = plan.column_list(&plan.columns);
        let arrays: Vec<_> = (1..=plan.columns.len())
            .map(|i| format!("${i}::text[]"))
            .collect();
        let unnest = format!("unnest({}) AS __u({columns})", arrays.join(", "));
        let cast = |c: &Column| format!("__u.{}::{}", c.quoted, c.sql_type);
        let matches = WritePlan::list(
            plan.key_columns(),
            |c| format!("__t.{} = {}", c.quoted, cast(c)),
            " AND ",
        );
        let t = &plan.quoted_table;
        match plan.op {
            WriteOp::Insert | WriteOp::Upsert => {
                let casts = WritePlan::list(&plan.columns, cast, ", ");
                let mut sql = format!("INSERT INTO {t} ({columns}) SELECT {casts} FROM {unnest}");
                if plan.op == WriteOp::Upsert {
                    sql.push_str(&Postgres.upsert_clause(plan));
                }
                sql
            }
            WriteOp::Update => {
                let set = WritePlan::list(
                    plan.value_columns(),
                    |c| format!("{} = {}", c.quoted, cast(c)),
                    ", ",
                );
                format!("UPDATE {t} AS __t SET {set} FROM {unnest} WHERE {matches}")
            }
            WriteOp::Delete => format!("DELETE FROM {t} AS __t USING {unnest} WHERE {matches}"),
        }
    }
}

impl PgConnection {
    /// Plain inserts take PostgreSQL's bulk path: `COPY FROM STDIN` in text format,
    /// inside the open transaction like any statement.
    async fn copy(&mut self, plan: &WritePlan, rows: &[SqlValue]) -> Result<(), DbError> {
        use futures::SinkExt;
        let width = plan.columns.len();
        let mut text = String::with_capacity(rows.len() * 16);
        for (i, value) in rows.iter().enumerate() {
            let start = text.len();
            if value.write_text(&mut text) {
                escape_copy_text(&mut text, start);
            } else {
                text.push_str("\\N");
            }
            text.push(if (i + 1) % width == 0 { '\n' } else { '\t' });
        }
        let sql = format!(
            "COPY {} ({}) FROM STDIN",
            plan.quoted_table,
            plan.column_list(&plan.columns)
        );
        let sink = self
            .client
            .copy_in::<_, bytes::Bytes>(sql.as_str())
            .await
            .map_err(pg_error)?;
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from(text))
            .await
            .map_err(pg_error)?;
        sink.finish().await.map(|_| ()).map_err(pg_error)
    }
}

/// Escapes what COPY's text format reserves (backslash, tab, newline, carriage return)
/// in `text[start..]`; most values have none and are only scanned.
fn escape_copy_text(text: &mut String, start: usize) {
    let special = |c: char| matches!(c, '\\' | '\t' | '\n' | '\r');
    if !text[start..].contains(special) {
        return;
    }
    let value = text.split_off(start);
    for c in value.chars() {
        match c {
            '\\' => text.push_str("\\\\"),
            '\t' => text.push_str("\\t"),
            '\n' => text.push_str("\\n"),
            '\r' => text.push_str("\\r"),
            c => text.push(c),
        }
    }
}

#[async_trait]
impl Connection for PgConnection {
    fn dialect(&self) -> &'static dyn Dialect {
        &Postgres
    }

    async fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.client.batch_execute(sql).await.map_err(pg_error)
    }

    async fn columns(
        &mut self,
        table: &TableName,
    ) -> Result<Option<Vec<(String, String)>>, DbError> {
        let name = Postgres.quote_table(table);
        let exists = self
            .client
            .query_one("SELECT to_regclass($1)::oid IS NOT NULL", &[&name])
            .await
            .map_err(pg_error)?;
        if !exists.get::<_, bool>(0) {
            return Ok(None);
        }
        let rows = self
            .client
            .query(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped \
                 ORDER BY attnum",
                &[&name],
            )
            .await
            .map_err(pg_error)?;
        Ok(Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
    }

    async fn write(&mut self, plan: &Arc<WritePlan>, rows: Vec<SqlValue>) -> Result<(), DbError> {
        let width = plan.columns.len();
        if width == 0 || rows.is_empty() {
            return Ok(());
        }
        if plan.op == WriteOp::Insert {
            return self.copy(plan, &rows).await;
        }
        let statement = match self.statements.get(&plan.id) {
            Some(s) => s.clone(),
            None => {
                let s = self
                    .client
                    .prepare(&Self::sql(plan))
                    .await
                    .map_err(pg_error)?;
                self.statements.insert(plan.id, s.clone());
                s
            }
        };
        // Each column's cells rendered into one buffer, then sliced: no allocation per cell.
        let count = rows.len() / width;
        let mut texts = vec![String::new(); width];
        let mut spans: Vec<Vec<Option<(usize, usize)>>> = vec![Vec::with_capacity(count); width];
        for (i, value) in rows.iter().enumerate() {
            let column = i % width;
            let buf = &mut texts[column];
            let start = buf.len();
            let span = value.write_text(buf).then_some((start, buf.len()));
            spans[column].push(span);
        }
        let arrays: Vec<Vec<Option<&str>>> = spans
            .iter()
            .zip(&texts)
            .map(|(spans, text)| spans.iter().map(|s| s.map(|(a, b)| &text[a..b])).collect())
            .collect();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = arrays
            .iter()
            .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        self.client
            .execute(&statement, &params)
            .await
            .map(|_| ())
            .map_err(pg_error)
    }

    async fn query_text(&mut self, sql: &str, params: &[&str]) -> Result<TextRows, DbError> {
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let rows = self.client.query(sql, &params).await.map_err(pg_error)?;
        Ok(rows
            .iter()
            .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
            .collect())
    }

    async fn query_typed(&mut self, sql: &str, params: &[SqlValue]) -> Result<Rows, DbError> {
        let statement = self.client.prepare(sql).await.map_err(pg_error)?;
        let mut columns = Vec::with_capacity(statement.columns().len());
        for c in statement.columns() {
            let kind = read::pg_kind(c.type_(), c.type_modifier()).ok_or_else(|| {
                unreadable(c.name(), format!("type {} has no mapping", c.type_()))
            })?;
            columns.push(ReadColumn {
                name: c.name().to_owned(),
                kind,
            });
        }
        let binds: Vec<PgParam<'_>> = params.iter().map(PgParam).collect();
        let binds: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = binds
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let found = self
            .client
            .query(&statement, &binds)
            .await
            .map_err(pg_error)?;
        let mut rows = Vec::with_capacity(found.len());
        for row in &found {
            let mut values = Vec::with_capacity(columns.len());
            for (i, column) in columns.iter().enumerate() {
                let raw: Option<read::PgRaw<'_>> = row.try_get(i).map_err(pg_error)?;
                values.push(match raw {
                    None => connect_core::Value::Null,
                    Some(raw) => read::pg_value(column.kind, statement.columns()[i].type_(), raw.0)
                        .map_err(|e| unreadable(&column.name, e))?,
                });
            }
            rows.push(values);
        }
        Ok(Rows { columns, rows })
    }
}

/// A parameter in the binary form of the type PostgreSQL inferred for its placeholder.
#[derive(Debug)]
struct PgParam<'a>(&'a SqlValue);

impl tokio_postgres::types::ToSql for PgParam<'_> {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut;
        use tokio_postgres::types::{IsNull, Type};
        const PG_EPOCH_US: i64 = 946_684_800_000_000;
        match (self.0, ty) {
            (SqlValue::Null, _) => return Ok(IsNull::Yes),
            (SqlValue::Int(i), &Type::INT2) => out.put_i16(i16::try_from(*i)?),
            (SqlValue::Int(i), &Type::INT4) => out.put_i32(i32::try_from(*i)?),
            (SqlValue::Int(i), &Type::INT8) => out.put_i64(*i),
            (SqlValue::Int(i), &Type::NUMERIC) => {
                return SqlValue::Decimal(i.to_string()).to_sql_text(ty, out)
            }
            (SqlValue::Timestamp(us), &Type::TIMESTAMP | &Type::TIMESTAMPTZ) => {
                out.put_i64(us - PG_EPOCH_US)
            }
            (SqlValue::Date(days), &Type::DATE) => out.put_i32(days - 10_957),
            (value, _) => return value.to_sql_text(ty, out),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

impl SqlValue {
    /// Text and anything else PostgreSQL can take as text.
    fn to_sql_text(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use tokio_postgres::types::{IsNull, Kind};
        if !matches!(ty.kind(), Kind::Simple)
            || !<&str as tokio_postgres::types::ToSql>::accepts(ty)
        {
            return Err(format!("a parameter of type {ty} cannot be bound from {self:?}").into());
        }
        let mut text = String::new();
        self.write_text(&mut text);
        out.extend_from_slice(text.as_bytes());
        Ok(IsNull::No)
    }
}

// --- MySQL / MariaDB -------------------------------------------------------------------

struct MyConnection {
    conn: mysql_async::Conn,
    /// Multi-row statements by plan and row count.
    statements: HashMap<(u64, usize), String>,
}

/// Placeholders per statement (the protocol's limit is 65,535).
const MYSQL_MAX_PARAMS: usize = 60_000;
/// Rows per multi-row `INSERT` at most; a remainder is written in power-of-two chunks, so
/// each plan needs only a handful of distinct prepared statements.
const MYSQL_MAX_ROWS: usize = 1024;

fn my_error(e: mysql_async::Error) -> DbError {
    let lost = matches!(e, mysql_async::Error::Io(_) | mysql_async::Error::Driver(_))
        || matches!(&e, mysql_async::Error::Server(s) if matches!(s.code, 1053 | 2006 | 2013 | 1927));
    DbError {
        lost,
        source: Box::new(e),
    }
}

impl MyConnection {
    async fn connect(opts: mysql_async::Opts) -> Result<Box<dyn Connection>, JdbcError> {
        let target = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
        let conn = mysql_async::Conn::new(opts)
            .await
            .map_err(|e| JdbcError::Connect {
                dialect: "mysql",
                target,
                source: Box::new(e),
            })?;
        Ok(Box::new(MyConnection {
            conn,
            statements: HashMap::new(),
        }))
    }

    fn value(v: SqlValue) -> mysql_async::Value {
        use mysql_async::Value as V;
        let datetime = |micros: i64| {
            let (y, m, d, h, mi, s, us) = SqlValue::civil(micros);
            u16::try_from(y)
                .ok()
                .map(|y| V::Date(y, m as u8, d as u8, h as u8, mi as u8, s as u8, us))
        };
        match v {
            SqlValue::Null => V::NULL,
            SqlValue::Bool(b) => V::Int(b.into()),
            SqlValue::Int(i) => V::Int(i),
            SqlValue::Float(f) => V::Double(f),
            SqlValue::Text(s) => V::Bytes(s.as_bytes().to_vec()),
            SqlValue::Bytes(b) => V::Bytes(b.to_vec()),
            SqlValue::Decimal(d) => V::Bytes(d.into_bytes()),
            SqlValue::Date(days) => {
                datetime(i64::from(days) * 86_400_000_000).unwrap_or_else(|| Self::text(&v))
            }
            SqlValue::Timestamp(micros) => datetime(micros).unwrap_or_else(|| Self::text(&v)),
            SqlValue::Time(micros) => {
                let (neg, us) = (micros < 0, micros.unsigned_abs());
                V::Time(
                    neg,
                    (us / 86_400_000_000) as u32,
                    (us / 3_600_000_000 % 24) as u8,
                    (us / 60_000_000 % 60) as u8,
                    (us / 1_000_000 % 60) as u8,
                    (us % 1_000_000) as u32,
                )
            }
            // The session runs in UTC: `2024-05-01T10:00:00.5Z` becomes `2024-05-01 10:00:00.5`.
            SqlValue::ZonedTimestamp(s) => match s.strip_suffix('Z') {
                Some(utc) => V::Bytes(utc.replacen('T', " ", 1).into_bytes()),
                None => V::Bytes(s.as_bytes().to_vec()),
            },
        }
    }

    fn text(v: &SqlValue) -> mysql_async::Value {
        let mut s = String::new();
        v.write_text(&mut s);
        mysql_async::Value::Bytes(s.into_bytes())
    }

    fn insert_sql(plan: &WritePlan, rows: usize) -> String {
        let tuple = format!("({})", vec!["?"; plan.columns.len()].join(", "));
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            plan.quoted_table,
            plan.column_list(&plan.columns),
            vec![tuple.as_str(); rows].join(", ")
        );
        if plan.op == WriteOp::Upsert {
            sql.push_str(&MySql.upsert_clause(plan));
        }
        sql
    }
}

#[async_trait]
impl Connection for MyConnection {
    fn dialect(&self) -> &'static dyn Dialect {
        &MySql
    }

    async fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        use mysql_async::prelude::Queryable;
        self.conn.query_drop(sql).await.map_err(my_error)
    }

    async fn columns(
        &mut self,
        table: &TableName,
    ) -> Result<Option<Vec<(String, String)>>, DbError> {
        use mysql_async::prelude::Queryable;
        let schema = table.schema().map(str::to_owned);
        let exists: Option<u8> = self
            .conn
            .exec_first(
                "SELECT 1 FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
                (schema.clone(), table.table()),
            )
            .await
            .map_err(my_error)?;
        if exists.is_none() {
            return Ok(None);
        }
        let columns: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                (schema, table.table()),
            )
            .await
            .map_err(my_error)?;
        Ok(Some(columns))
    }

    async fn write(&mut self, plan: &Arc<WritePlan>, rows: Vec<SqlValue>) -> Result<(), DbError> {
        use mysql_async::prelude::Queryable;
        let width = plan.columns.len();
        if width == 0 || rows.is_empty() {
            return Ok(());
        }
        let count = rows.len() / width;
        let mut values = rows.into_iter().map(Self::value);
        match plan.op {
            WriteOp::Insert | WriteOp::Upsert => {
                let most = (MYSQL_MAX_PARAMS / width).clamp(1, MYSQL_MAX_ROWS);
                let mut left = count;
                while left > 0 {
                    let chunk = if left >= most {
                        most
                    } else {
                        1 << (usize::BITS - 1 - left.leading_zeros())
                    };
                    let sql = self
                        .statements
                        .entry((plan.id, chunk))
                        .or_insert_with(|| Self::insert_sql(plan, chunk))
                        .clone();
                    let params: Vec<_> = values.by_ref().take(chunk * width).collect();
                    self.conn.exec_drop(sql, params).await.map_err(my_error)?;
                    left -= chunk;
                }
                Ok(())
            }
            WriteOp::Update | WriteOp::Delete => {
                let matches = plan.placeholders_eq(plan.key_columns(), " AND ");
                let sql = if plan.op == WriteOp::Update {
                    let set = plan.placeholders_eq(plan.value_columns(), ", ");
                    format!("UPDATE {} SET {set} WHERE {matches}", plan.quoted_table)
                } else {
                    format!("DELETE FROM {} WHERE {matches}", plan.quoted_table)
                };
                let keys = plan.keys;
                let params: Vec<Vec<mysql_async::Value>> = (0..count)
                    .map(|_| {
                        let mut row: Vec<_> = values.by_ref().take(width).collect();
                        // The statement binds the values first, then the key.
                        row.rotate_left(keys);
                        row
                    })
                    .collect();
                self.conn.exec_batch(sql, params).await.map_err(my_error)
            }
        }
    }

    async fn query_text(&mut self, sql: &str, params: &[&str]) -> Result<TextRows, DbError> {
        use mysql_async::prelude::Queryable;
        let params: Vec<mysql_async::Value> = params.iter().map(|p| (*p).into()).collect();
        let rows: Vec<mysql_async::Row> = self.conn.exec(sql, params).await.map_err(my_error)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        r.get_opt::<Option<String>, _>(i)
                            .and_then(Result::ok)
                            .flatten()
                    })
                    .collect()
            })
            .collect())
    }

    async fn query_typed(&mut self, sql: &str, params: &[SqlValue]) -> Result<Rows, DbError> {
        use mysql_async::prelude::Queryable;
        let params: Vec<mysql_async::Value> = params.iter().cloned().map(Self::value).collect();
        let mut result = self.conn.exec_iter(sql, params).await.map_err(my_error)?;
        let mut columns = Vec::new();
        for c in result.columns_ref() {
            let name = c.name_str().into_owned();
            let kind = read::mysql_kind(c).ok_or_else(|| {
                unreadable(&name, format!("type {:?} has no mapping", c.column_type()))
            })?;
            columns.push(ReadColumn { name, kind });
        }
        let found: Vec<mysql_async::Row> = result.collect().await.map_err(my_error)?;
        let mut rows = Vec::with_capacity(found.len());
        for row in found {
            let values = row.unwrap();
            let mut out = Vec::with_capacity(values.len());
            for (value, column) in values.into_iter().zip(&columns) {
                out.push(
                    read::mysql_value(column.kind, value)
                        .map_err(|e| unreadable(&column.name, e))?,
                );
            }
            rows.push(out);
        }
        Ok(Rows { columns, rows })
    }
}

// --- SQLite ----------------------------------------------------------------------------

type Job = Box<dyn FnOnce(&mut rusqlite::Connection) + Send>;

/// SQLite on its own thread (its calls block), fed closures through a channel.
struct LiteConnection {
    jobs: std::sync::mpsc::Sender<Job>,
}

fn lite_error(e: rusqlite::Error) -> DbError {
    DbError {
        lost: false,
        source: Box::new(e),
    }
}

impl LiteConnection {
    async fn open(path: PathBuf) -> Result<Box<dyn Connection>, JdbcError> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let (opened, open_result) = tokio::sync::oneshot::channel();
        let target = path.display().to_string();
        std::thread::Builder::new()
            .name("connect-jdbc-sqlite".into())
            .spawn(move || {
                let conn = rusqlite::Connection::open(&path).and_then(|c| {
                    c.busy_timeout(std::time::Duration::from_secs(30))?;
                    c.pragma_update(None, "journal_mode", "WAL")?;
                    Ok(c)
                });
                let mut conn = match conn {
                    Ok(c) => {
                        let _ = opened.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                for job in queue {
                    job(&mut conn);
                }
            })
            .map_err(|e| JdbcError::Connect {
                dialect: "sqlite",
                target: target.clone(),
                source: Box::new(e),
            })?;
        let connect_err = |source: BoxError| JdbcError::Connect {
            dialect: "sqlite",
            target: target.clone(),
            source,
        };
        open_result
            .await
            .map_err(|e| connect_err(Box::new(e)))?
            .map_err(|e| connect_err(Box::new(e)))?;
        Ok(Box::new(LiteConnection { jobs }))
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    ) -> Result<R, DbError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let gone = || DbError {
            lost: true,
            source: "the SQLite thread has stopped".into(),
        };
        self.jobs
            .send(Box::new(move |c| {
                let _ = tx.send(f(c));
            }))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?.map_err(lite_error)
    }

    fn sql(plan: &WritePlan) -> String {
        let t = &plan.quoted_table;
        let matches = plan.placeholders_eq(plan.key_columns(), " AND ");
        match plan.op {
            WriteOp::Insert | WriteOp::Upsert => {
                let mut sql = format!(
                    "INSERT INTO {t} ({}) VALUES ({})",
                    plan.column_list(&plan.columns),
                    vec!["?"; plan.columns.len()].join(", ")
                );
                if plan.op == WriteOp::Upsert {
                    sql.push_str(&Sqlite.upsert_clause(plan));
                }
                sql
            }
            WriteOp::Update => format!(
                "UPDATE {t} SET {} WHERE {matches}",
                plan.placeholders_eq(plan.value_columns(), ", ")
            ),
            WriteOp::Delete => format!("DELETE FROM {t} WHERE {matches}"),
        }
    }
}

/// Binds a value without copying text or bytes.
struct Lite<'a>(&'a SqlValue);

impl rusqlite::ToSql for Lite<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value as Owned, ValueRef};
        Ok(match self.0 {
            SqlValue::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            SqlValue::Bool(b) => ToSqlOutput::Owned(Owned::Integer((*b).into())),
            SqlValue::Int(i) => ToSqlOutput::Owned(Owned::Integer(*i)),
            SqlValue::Float(f) => ToSqlOutput::Owned(Owned::Real(*f)),
            SqlValue::Text(s) | SqlValue::ZonedTimestamp(s) => {
                ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
            }
            SqlValue::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            SqlValue::Decimal(d) => ToSqlOutput::Borrowed(ValueRef::Text(d.as_bytes())),
            other => {
                let mut s = String::new();
                other.write_text(&mut s);
                ToSqlOutput::Owned(Owned::Text(s))
            }
        })
    }
}

#[async_trait]
impl Connection for LiteConnection {
    fn dialect(&self) -> &'static dyn Dialect {
        &Sqlite
    }

    async fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        let sql = sql.to_owned();
        self.call(move |c| c.execute_batch(&sql)).await
    }

    async fn columns(
        &mut self,
        table: &TableName,
    ) -> Result<Option<Vec<(String, String)>>, DbError> {
        let (schema, name) = (
            table.schema().unwrap_or("main").to_owned(),
            table.table().to_owned(),
        );
        self.call(move |c| {
            let mut stmt = c.prepare("SELECT name, type FROM pragma_table_info(?1, ?2)")?;
            let columns = stmt
                .query_map([&name, &schema], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<(String, String)>, _>>()?;
            Ok((!columns.is_empty()).then_some(columns))
        })
        .await
    }

    async fn write(&mut self, plan: &Arc<WritePlan>, rows: Vec<SqlValue>) -> Result<(), DbError> {
        let plan = plan.clone();
        self.call(move |c| {
            let width = plan.columns.len();
            if width == 0 {
                return Ok(());
            }
            let mut stmt = c.prepare_cached(&Self::sql(&plan))?;
            // An update binds the values first, then the key.
            let rotate = if plan.op == WriteOp::Update {
                plan.keys
            } else {
                0
            };
            for row in rows.chunks(width) {
                let ordered = row[rotate..].iter().chain(&row[..rotate]);
                for (i, value) in ordered.enumerate() {
                    stmt.raw_bind_parameter(i + 1, Lite(value))?;
                }
                stmt.raw_execute()?;
            }
            Ok(())
        })
        .await
    }

    async fn query_text(&mut self, sql: &str, params: &[&str]) -> Result<TextRows, DbError> {
        let sql = sql.to_owned();
        let params: Vec<String> = params.iter().map(|p| (*p).to_owned()).collect();
        self.call(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let width = stmt.column_count();
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    (0..width).map(|i| r.get::<_, Option<String>>(i)).collect()
                })?
                .collect::<Result<Vec<Vec<Option<String>>>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn query_typed(&mut self, sql: &str, params: &[SqlValue]) -> Result<Rows, DbError> {
        let sql = sql.to_owned();
        let params = params.to_vec();
        let result = self
            .call(move |c| {
                let mut stmt = c.prepare_cached(&sql)?;
                let columns: Vec<ReadColumn> = stmt
                    .columns()
                    .iter()
                    .map(|col| ReadColumn {
                        name: col.name().to_owned(),
                        kind: read::sqlite_kind(col.decl_type()),
                    })
                    .collect();
                for (i, p) in params.iter().enumerate() {
                    stmt.raw_bind_parameter(i + 1, Lite(p))?;
                }
                let mut rows = Vec::new();
                let mut cursor = stmt.raw_query();
                while let Some(row) = cursor.next()? {
                    let mut values = Vec::with_capacity(columns.len());
                    for (i, column) in columns.iter().enumerate() {
                        let raw = row.get_ref(i)?;
                        let value = read::sqlite_value(column.kind, raw).map_err(|e| {
                            rusqlite::Error::FromSqlConversionFailure(
                                i,
                                raw.data_type(),
                                format!("column `{}`: {e}", column.name).into(),
                            )
                        })?;
                        values.push(value);
                    }
                    rows.push(values);
                }
                Ok(Rows { columns, rows })
            })
            .await?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_the_dialect_and_errors_name_the_key() {
        let dialect = |url: &str| ConnectionConfig::new(url).dialect().map(|d| d.name());
        assert_eq!(dialect("jdbc:postgresql://u@h/db").unwrap(), "postgresql");
        assert_eq!(
            dialect("mariadb://root@127.0.0.1:3306/test").unwrap(),
            "mysql"
        );
        assert_eq!(dialect("jdbc:sqlite:/tmp/x.db").unwrap(), "sqlite");
        let e = dialect("oracle://u:secret@h/db").unwrap_err().to_string();
        assert!(e.contains("connection.url") && !e.contains("secret"), "{e}");
    }

    #[test]
    fn the_postgres_statements_unnest_text_arrays() {
        let column = |name: &str, ty: &str| Column {
            name: name.into(),
            quoted: Postgres.quote(name),
            sql_type: ty.into(),
        };
        let plan = WritePlan {
            id: 1,
            table: TableName::parse("t"),
            quoted_table: "\"t\"".into(),
            op: WriteOp::Upsert,
            columns: vec![column("id", "integer"), column("v", "text")],
            keys: 1,
        };
        assert_eq!(
            PgConnection::sql(&plan),
            "INSERT INTO \"t\" (\"id\", \"v\") SELECT __u.\"id\"::integer, __u.\"v\"::text \
             FROM unnest($1::text[], $2::text[]) AS __u(\"id\", \"v\") \
             ON CONFLICT (\"id\") DO UPDATE SET \"v\" = excluded.\"v\""
        );
    }
}
