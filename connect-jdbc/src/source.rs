//! The polling source: Kafka Connect's JDBC source modes over tables or a custom query.

use std::sync::Arc;
use std::time::Duration;

use connect_core::properties::Scope;
use connect_core::{
    async_trait, Error, EventId, Record, Schema, SourceBatch, SourceConnector, SourceOffset,
    SourcePartition, SourceTask, Struct, Task, TaskConfig, TaskContext, Value,
};
use serde_json::{Map, Value as Json};

use crate::conn::{Connection, ConnectionConfig};
use crate::dialect::{Dialect, TableName};
use crate::error::JdbcError;
use crate::read::ReadColumn;
use crate::value::SqlValue;

/// Default `poll.interval.ms`.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Default `batch.max.rows`.
pub const DEFAULT_BATCH_MAX_ROWS: usize = 100;
/// Default `table.poll.interval.ms`: how often the table list is read again.
pub const DEFAULT_TABLE_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// The result column carrying the timestamp expression as text (dropped from records).
const TS_COLUMN: &str = "__connect_ts";

/// `mode`: how rows are found again on the next poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Every poll reads every row (no offset).
    Bulk,
    /// Rows with a larger value of a strictly increasing column (`incrementing.column.name`):
    /// new rows only, never updates; resumes strictly after the last id.
    Incrementing(String),
    /// Rows with a later timestamp (`timestamp.column.name`, several columns are
    /// `COALESCE`d). Errs toward skipping: a row committed later with a timestamp
    /// already passed, or sharing the last timestamp read before a restart, is missed.
    Timestamp(Vec<String>),
    /// Rows after the last (timestamp, id) pair: resumes exactly.
    TimestampIncrementing(Vec<String>, String),
}

/// Configuration of [`JdbcSource`] (Kafka Connect's JDBC source keys).
#[derive(Debug, Clone)]
pub struct JdbcSourceConfig {
    connection: ConnectionConfig,
    mode: Mode,
    topic_prefix: String,
    query: Option<String>,
    include: Vec<String>,
    exclude: Vec<String>,
    schema: Option<String>,
    poll_interval: Duration,
    batch_max_rows: usize,
    timestamp_delay: Duration,
    table_poll_interval: Duration,
}

impl JdbcSourceConfig {
    /// Polls every table of `connection` (its default schema) in `mode`, onto topics
    /// `topic_prefix` + table name.
    pub fn new(connection: ConnectionConfig, mode: Mode, topic_prefix: &str) -> Self {
        JdbcSourceConfig {
            connection,
            mode,
            topic_prefix: topic_prefix.to_owned(),
            query: None,
            include: Vec::new(),
            exclude: Vec::new(),
            schema: None,
            poll_interval: DEFAULT_POLL_INTERVAL,
            batch_max_rows: DEFAULT_BATCH_MAX_ROWS,
            timestamp_delay: Duration::ZERO,
            table_poll_interval: DEFAULT_TABLE_POLL_INTERVAL,
        }
    }

    /// `table.whitelist` (names or `schema.table`).
    pub fn with_tables<'a>(mut self, tables: impl IntoIterator<Item = &'a str>) -> Self {
        self.include = tables.into_iter().map(str::to_owned).collect();
        self
    }

    /// `table.blacklist`.
    pub fn with_excluded_tables<'a>(mut self, tables: impl IntoIterator<Item = &'a str>) -> Self {
        self.exclude = tables.into_iter().map(str::to_owned).collect();
        self
    }

    /// `query`: polls this query instead of tables, onto the topic `topic.prefix`.
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query = Some(query.into());
        self
    }

    /// `schema.pattern`: the PostgreSQL schema (default `public`) or MySQL database
    /// (default: the URL's) whose tables are polled.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// `poll.interval.ms`.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// `batch.max.rows`.
    pub fn with_batch_max_rows(mut self, rows: usize) -> Self {
        self.batch_max_rows = rows;
        self
    }

    /// `timestamp.delay.interval.ms`: rows are read only once their timestamp is this far
    /// in the past, the guard against transactions that commit out of timestamp order
    /// (a row stamped before a later-committing one is otherwise skipped for good).
    pub fn with_timestamp_delay(mut self, delay: Duration) -> Self {
        self.timestamp_delay = delay;
        self
    }

    /// `table.poll.interval.ms`.
    pub fn with_table_poll_interval(mut self, interval: Duration) -> Self {
        self.table_poll_interval = interval;
        self
    }

    /// Reads Kafka Connect's JDBC source keys.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        let connection = ConnectionConfig::from_props(scope)?;
        let incrementing = scope.get("incrementing.column.name");
        let timestamps: Vec<String> = scope
            .list("timestamp.column.name")
            .into_iter()
            .map(str::to_owned)
            .collect();
        let need = |key: &str, present: bool| {
            if present {
                Ok(())
            } else {
                Err(Error::config(key, "is required by this mode"))
            }
        };
        let mode = match scope.one_of(
            "mode",
            &[
                "bulk",
                "incrementing",
                "timestamp",
                "timestamp+incrementing",
            ],
            "bulk",
        )? {
            "incrementing" => {
                need("incrementing.column.name", incrementing.is_some())?;
                Mode::Incrementing(incrementing.unwrap_or_default().to_owned())
            }
            "timestamp" => {
                need("timestamp.column.name", !timestamps.is_empty())?;
                Mode::Timestamp(timestamps)
            }
            "timestamp+incrementing" => {
                need("incrementing.column.name", incrementing.is_some())?;
                need("timestamp.column.name", !timestamps.is_empty())?;
                Mode::TimestampIncrementing(timestamps, incrementing.unwrap_or_default().to_owned())
            }
            _ => Mode::Bulk,
        };
        let mut c = JdbcSourceConfig::new(connection, mode, scope.require("topic.prefix")?);
        c.query = scope.get("query").map(str::to_owned);
        let list = |a: &str, b: &str| -> Vec<String> {
            let mut v: Vec<String> = scope.list(a).into_iter().map(str::to_owned).collect();
            v.extend(scope.list(b).into_iter().map(str::to_owned));
            v
        };
        c.include = list("table.whitelist", "table.include.list");
        c.exclude = list("table.blacklist", "table.exclude.list");
        c.schema = scope.get("schema.pattern").map(str::to_owned);
        c.poll_interval = scope.millis_or("poll.interval.ms", DEFAULT_POLL_INTERVAL)?;
        c.batch_max_rows = scope.parse_or("batch.max.rows", DEFAULT_BATCH_MAX_ROWS)?;
        c.timestamp_delay = scope.millis_or("timestamp.delay.interval.ms", Duration::ZERO)?;
        c.table_poll_interval =
            scope.millis_or("table.poll.interval.ms", DEFAULT_TABLE_POLL_INTERVAL)?;
        c.validate()?;
        Ok(c)
    }

    /// Checks the combination of settings; errors name the key.
    pub fn validate(&self) -> Result<(), Error> {
        self.connection.validate()?;
        if self.batch_max_rows == 0 {
            return Err(Error::config("batch.max.rows", "must be at least 1"));
        }
        if self.query.is_some() && !(self.include.is_empty() && self.exclude.is_empty()) {
            return Err(Error::config(
                "query",
                "polls one query: table.whitelist and table.blacklist do not apply",
            ));
        }
        if !self.include.is_empty() && !self.exclude.is_empty() {
            return Err(Error::config(
                "table.blacklist",
                "set table.whitelist or table.blacklist, not both",
            ));
        }
        let empty = match &self.mode {
            Mode::Incrementing(c) => c.is_empty(),
            Mode::Timestamp(ts) => ts.iter().any(String::is_empty),
            Mode::TimestampIncrementing(ts, c) => c.is_empty() || ts.iter().any(String::is_empty),
            Mode::Bulk => false,
        };
        if empty {
            return Err(Error::config("mode", "a column name is empty"));
        }
        Ok(())
    }
}

/// Kafka Connect's JDBC source for PostgreSQL, MySQL/MariaDB and SQLite.
///
/// Source partition `{"protocol":"1","table":"<table>"}` (`{"query":"query"}` for a
/// query), offset `{"incrementing": <id>}` and/or `{"timestamp": "<as the database
/// prints it>"}`. Records have no key; the value is the row, its schema named after the
/// table. Tables are spread over the tasks; each task reads the table list again every
/// `table.poll.interval.ms`.
#[derive(Debug, Clone)]
pub struct JdbcSource {
    config: Arc<JdbcSourceConfig>,
}

impl JdbcSource {
    /// A source for a validated configuration.
    pub fn new(config: JdbcSourceConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(JdbcSource {
            config: Arc::new(config),
        })
    }
}

impl SourceConnector for JdbcSource {
    fn name(&self) -> &str {
        "jdbc-source"
    }

    fn validate(&self) -> Result<(), Error> {
        self.config.validate()
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>, Error> {
        // The table list needs the database: each task reads it and takes its share.
        let tasks = if self.config.query.is_some() {
            1
        } else {
            max_tasks.max(1)
        };
        Ok((0..tasks)
            .map(|i| {
                TaskConfig::from([
                    ("task.index".to_owned(), i.to_string()),
                    ("task.count".to_owned(), tasks.to_string()),
                ])
            })
            .collect())
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(JdbcSourceTask {
            config: self.config.clone(),
            conn: None,
            share: (0, 1),
            committed: None,
            tables: Vec::new(),
            listed: None,
            next: 0,
        })
    }
}

/// What one table (or the query) is polled for and where it is.
struct Polled {
    /// `None` for the query.
    table: Option<TableName>,
    topic: Arc<str>,
    partition: SourcePartition,
    incrementing: Option<i64>,
    timestamp: Option<String>,
    due: tokio::time::Instant,
    schema: Option<(Vec<ReadColumn>, Arc<Schema>)>,
}

struct JdbcSourceTask {
    config: Arc<JdbcSourceConfig>,
    conn: Option<Box<dyn Connection>>,
    /// (this task's index, task count).
    share: (usize, usize),
    /// Durable offsets, for tables that appear after the start.
    committed: Option<tokio::sync::watch::Receiver<Arc<connect_core::OffsetMap>>>,
    tables: Vec<Polled>,
    /// When the table list was last read.
    listed: Option<tokio::time::Instant>,
    next: usize,
}

impl JdbcSourceTask {
    fn dialect(&self) -> &'static dyn Dialect {
        self.config.connection.dialect().expect("validated")
    }

    async fn conn(&mut self) -> Result<&mut dyn Connection, JdbcError> {
        if self.conn.is_none() {
            self.conn = Some(self.config.connection.connect().await?);
        }
        Ok(self.conn.as_deref_mut().expect("connected"))
    }

    /// Reads the table list again (every `table.poll.interval.ms`), keeping what is known
    /// of the tables still there.
    async fn discover(
        &mut self,
        offsets: Option<&connect_core::OffsetMap>,
    ) -> Result<(), JdbcError> {
        if self.config.query.is_some() {
            if self.tables.is_empty() {
                let mut p = Map::new();
                p.insert("query".into(), Json::from("query"));
                let polled = self.polled(None, SourcePartition::from_map(&p), offsets);
                self.tables.push(polled);
            }
            return Ok(());
        }
        let d = self.dialect();
        let schema = self.config.schema.clone();
        let (sql, params): (&str, Vec<&str>) = match (d.name(), &schema) {
            ("postgresql", schema) => (
                // The catalog, not information_schema (which hides tables the user may
                // not read): a missing privilege is then an error naming the table.
                "SELECT n.nspname::text, c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')",
                vec![schema.as_deref().unwrap_or("public")],
            ),
            ("mysql", Some(schema)) => (
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
                vec![schema.as_str()],
            ),
            ("mysql", None) => (
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'",
                Vec::new(),
            ),
            _ => (
                "SELECT 'main', name FROM sqlite_master \
                 WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                Vec::new(),
            ),
        };
        let conn = self.conn().await?;
        let rows = conn
            .query_text(sql, &params)
            .await
            .map_err(|e| e.at(d.name(), "list tables", "information_schema"))?;
        let matches = |list: &[String], schema: &str, table: &str| {
            list.iter()
                .any(|n| n == table || *n == format!("{schema}.{table}"))
        };
        let mut names: Vec<(String, String)> = rows
            .into_iter()
            .filter_map(|r| Some((r.first()?.clone()?, r.get(1)?.clone()?)))
            .filter(|(s, t)| {
                (self.config.include.is_empty() || matches(&self.config.include, s, t))
                    && !matches(&self.config.exclude, s, t)
            })
            .collect();
        names.sort();
        if let Some(missing) = self.config.include.iter().find(|n| {
            !names
                .iter()
                .any(|(s, t)| *n == t || **n == format!("{s}.{t}"))
        }) {
            return Err(JdbcError::MissingTable {
                table: format!("{missing} (named in table.whitelist)"),
            });
        }
        let (index, count) = self.share;
        let mine: Vec<TableName> = names
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % count == index)
            .map(|(_, (s, t))| {
                if d.name() == "sqlite" {
                    TableName::new(vec![t])
                } else {
                    TableName::new(vec![s, t])
                }
            })
            .collect();
        self.tables
            .retain(|p| p.table.as_ref().is_some_and(|t| mine.contains(t)));
        for table in mine {
            if !self.tables.iter().any(|p| p.table.as_ref() == Some(&table)) {
                let mut p = Map::new();
                p.insert("protocol".into(), Json::from("1"));
                p.insert("table".into(), Json::from(table.to_string()));
                let polled = self.polled(Some(table), SourcePartition::from_map(&p), offsets);
                tracing::info!(table = %polled.topic, "polling table");
                self.tables.push(polled);
            }
        }
        self.listed = Some(tokio::time::Instant::now());
        Ok(())
    }

    fn polled(
        &self,
        table: Option<TableName>,
        partition: SourcePartition,
        offsets: Option<&connect_core::OffsetMap>,
    ) -> Polled {
        let offset = offsets.and_then(|o| o.get(&partition));
        let topic = match &table {
            Some(t) => format!("{}{}", self.config.topic_prefix, t.table()),
            None => self.config.topic_prefix.clone(),
        };
        Polled {
            table,
            topic: Arc::from(topic),
            partition,
            incrementing: offset.and_then(|o| o.get("incrementing")?.as_i64()),
            timestamp: offset.and_then(|o| Some(o.get("timestamp")?.as_str()?.to_owned())),
            due: tokio::time::Instant::now(),
            schema: None,
        }
    }

    /// The statement and parameters of the next poll of `p`.
    async fn statement(&mut self, at: usize) -> Result<(String, Vec<SqlValue>, bool), JdbcError> {
        let d = self.dialect();
        let config = self.config.clone();
        let from = match (&self.tables[at].table, &config.query) {
            (Some(t), _) => d.quote_table(t),
            (None, Some(q)) => format!("({q}) __connect_query"),
            (None, None) => unreachable!("a polled item is a table or the query"),
        };
        let ts_expr = |columns: &[String]| {
            let quoted: Vec<String> = columns.iter().map(|c| d.quote(c)).collect();
            if quoted.len() == 1 {
                quoted[0].clone()
            } else {
                format!("COALESCE({})", quoted.join(", "))
            }
        };
        let until = match config.mode {
            Mode::Timestamp(_) | Mode::TimestampIncrementing(..) => self.until().await?,
            _ => String::new(),
        };
        let limit = format!(" LIMIT {}", config.batch_max_rows);
        let mut n = 0;
        let mut param = || {
            n += 1;
            d.placeholder(n)
        };
        let p = &self.tables[at];
        let mut params = Vec::new();
        let statement = match &config.mode {
            Mode::Bulk => (format!("SELECT * FROM {from}"), false),
            Mode::Incrementing(column) => {
                let c = d.quote(column);
                let mut sql = format!("SELECT * FROM {from}");
                if let Some(last) = p.incrementing {
                    sql.push_str(&format!(" WHERE {c} > {}", param()));
                    params.push(SqlValue::Int(last));
                }
                sql.push_str(&format!(" ORDER BY {c} ASC{limit}"));
                (sql, true)
            }
            Mode::Timestamp(columns) | Mode::TimestampIncrementing(columns, _) => {
                let ts = ts_expr(columns);
                let typed = |n: String| match d.name() {
                    // A text parameter, read by PostgreSQL's timestamp input.
                    "postgresql" => format!("CAST(CAST({n} AS text) AS timestamptz)"),
                    _ => n,
                };
                let mut sql = format!(
                    "SELECT *, {} AS {TS_COLUMN} FROM {from} WHERE {ts} < {}",
                    d.text_cast(&ts),
                    typed(param())
                );
                params.push(SqlValue::Text(until.as_str().into()));
                let exact = if let Mode::TimestampIncrementing(_, column) = &config.mode {
                    let c = d.quote(column);
                    if let Some(last) = &p.timestamp {
                        let (a, b, e) = (typed(param()), typed(param()), param());
                        sql.push_str(&format!(" AND ({ts} > {a} OR ({ts} = {b} AND {c} > {e}))"));
                        params.push(SqlValue::Text(last.as_str().into()));
                        params.push(SqlValue::Text(last.as_str().into()));
                        params.push(SqlValue::Int(p.incrementing.unwrap_or(i64::MIN)));
                    }
                    sql.push_str(&format!(" ORDER BY {ts} ASC, {c} ASC{limit}"));
                    true
                } else {
                    if let Some(last) = &p.timestamp {
                        sql.push_str(&format!(" AND {ts} > {}", typed(param())));
                        params.push(SqlValue::Text(last.as_str().into()));
                    }
                    // No LIMIT: rows sharing the last timestamp must come in one poll.
                    sql.push_str(&format!(" ORDER BY {ts} ASC"));
                    false
                };
                (sql, exact)
            }
        };
        Ok((statement.0, params, statement.1))
    }

    /// The database's time minus `timestamp.delay.interval.ms`, as text.
    async fn until(&mut self) -> Result<String, JdbcError> {
        let d = self.dialect();
        let delay_us = self.config.timestamp_delay.as_micros();
        let sql = match d.name() {
            "postgresql" => format!(
                "SELECT CAST(clock_timestamp() - make_interval(secs => {}) AS text)",
                delay_us as f64 / 1e6
            ),
            "mysql" => format!("SELECT CAST(NOW(6) - INTERVAL {delay_us} MICROSECOND AS CHAR)"),
            _ => format!(
                "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now', '-{} seconds')",
                delay_us as f64 / 1e6
            ),
        };
        let conn = self.conn().await?;
        let rows = conn
            .query_text(&sql, &[])
            .await
            .map_err(|e| e.at(d.name(), "read the time", "-"))?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .unwrap_or_default())
    }

    /// Polls item `at` once: its records and offset, `None` when it has nothing new.
    async fn poll_one(&mut self, at: usize) -> Result<Option<SourceBatch>, JdbcError> {
        let (sql, params, limited) = self.statement(at).await?;
        let d = self.dialect();
        let what = self.tables[at]
            .table
            .as_ref()
            .map_or_else(|| "query".to_owned(), ToString::to_string);
        let conn = self.conn().await?;
        let mut rows = conn
            .query_typed(&sql, &params)
            .await
            .map_err(|e| e.at(d.name(), "poll", &what))?;
        let config = self.config.clone();
        let full = limited && rows.rows.len() >= config.batch_max_rows;
        let p = &mut self.tables[at];
        p.due = tokio::time::Instant::now()
            + if full {
                Duration::ZERO
            } else {
                config.poll_interval
            };
        if rows.rows.is_empty() {
            return Ok(None);
        }
        let ts_at = rows.columns.iter().position(|c| c.name == TS_COLUMN);
        let timestamps: Vec<Option<String>> = match ts_at {
            Some(i) => {
                rows.columns.remove(i);
                rows.rows
                    .iter_mut()
                    .map(|r| match r.remove(i) {
                        Value::String(s) => Some(s.to_string()),
                        _ => None,
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let inc_at = match &config.mode {
            Mode::Incrementing(c) | Mode::TimestampIncrementing(_, c) => Some(
                rows.columns
                    .iter()
                    .position(|col| col.name == *c)
                    .ok_or_else(|| JdbcError::MissingColumn {
                        table: what.clone(),
                        column: c.clone(),
                    })?,
            ),
            _ => None,
        };
        let schema = match &p.schema {
            Some((columns, schema)) if *columns == rows.columns => schema.clone(),
            _ => {
                let name = p.table.as_ref().map_or("query", |t| t.table()).to_owned();
                let schema = crate::read::row_schema(&rows.columns, &name);
                p.schema = Some((rows.columns.clone(), schema.clone()));
                schema
            }
        };
        let mut records = Vec::with_capacity(rows.rows.len());
        for (i, values) in rows.rows.into_iter().enumerate() {
            let incrementing = inc_at.and_then(|c| values[c].as_i64());
            if let (Some(_), None) = (inc_at, incrementing) {
                return Err(JdbcError::BadRecord {
                    topic: p.topic.to_string(),
                    table: what.clone(),
                    message: "the incrementing column is null or not an integer".into(),
                });
            }
            let ts = timestamps.get(i).cloned().flatten();
            let row = Struct::new(schema.clone(), values).expect("one value per column");
            let id = match (&config.mode, incrementing, &ts) {
                (Mode::Bulk, ..) => EventId::of_row(&p.topic, &row, &[]),
                (_, Some(inc), ts) => EventId::from_parts(&[
                    p.partition.as_json().as_bytes(),
                    ts.as_deref().unwrap_or("").as_bytes(),
                    &inc.to_le_bytes(),
                ]),
                (_, None, ts) => EventId::from_parts(&[
                    p.partition.as_json().as_bytes(),
                    ts.as_deref().unwrap_or("").as_bytes(),
                    &(i as u64).to_le_bytes(),
                ]),
            };
            records.push(
                Record::new(p.topic.clone(), Some(schema.clone()), Value::Struct(row))
                    .with_event_id(id),
            );
            if incrementing.is_some() {
                p.incrementing = incrementing;
            }
            if ts.is_some() {
                p.timestamp = ts;
            }
        }
        let mut offset = Map::new();
        if let Some(inc) = p.incrementing {
            offset.insert("incrementing".into(), Json::from(inc));
        }
        if let Some(ts) = &p.timestamp {
            offset.insert("timestamp".into(), Json::from(ts.as_str()));
        }
        Ok(Some(if offset.is_empty() {
            SourceBatch {
                records,
                offsets: Vec::new(),
            }
        } else {
            SourceBatch::new(records, p.partition.clone(), SourceOffset::new(offset))
        }))
    }
}

#[async_trait]
impl Task for JdbcSourceTask {
    async fn start(&mut self, ctx: TaskContext) -> Result<(), Error> {
        let number = |key: &str| ctx.config.get(key).and_then(|v| v.parse().ok());
        self.share = (
            number("task.index").unwrap_or(0),
            number("task.count").unwrap_or(1).max(1),
        );
        self.tables.clear();
        self.committed = Some(ctx.committed.clone());
        self.discover(Some(&ctx.offsets)).await?;
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), Error> {
        self.conn = None;
        Ok(())
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
}

#[async_trait]
impl SourceTask for JdbcSourceTask {
    async fn poll(&mut self) -> Result<Option<SourceBatch>, Error> {
        if self
            .listed
            .is_some_and(|at| at.elapsed() >= self.config.table_poll_interval)
        {
            let committed = self.committed.as_ref().map(|c| c.borrow().clone());
            self.discover(committed.as_deref())
                .await
                .inspect_err(|_| self.conn = None)?;
        }
        let now = tokio::time::Instant::now();
        let count = self.tables.len();
        for step in 0..count {
            let at = (self.next + step) % count;
            if self.tables[at].due > now {
                continue;
            }
            self.next = at + 1;
            match self.poll_one(at).await {
                Ok(Some(batch)) => return Ok(Some(batch)),
                Ok(None) => {}
                Err(e) => {
                    if e.is_retryable() {
                        self.conn = None;
                    }
                    return Err(e.into());
                }
            }
        }
        // Nothing new: wait for the next due table (or listing), then hand back an empty
        // batch so the engine sees the task is alive.
        let next_due = self
            .tables
            .iter()
            .map(|p| p.due)
            .min()
            .unwrap_or(now + self.config.poll_interval);
        let listing = self
            .listed
            .map_or(now, |at| at + self.config.table_poll_interval);
        tokio::time::sleep_until(next_due.min(listing).max(now)).await;
        Ok(Some(SourceBatch::default()))
    }
}
