//! Offsets and schema history in a SQL table, for any of the three dialects.
//!
//! Offsets live in a table of (`namespace_name`, `source_partition`, `source_offset`),
//! the pipeline name, the source partition's JSON and the offset's JSON (the same table
//! the sink's exactly-once mode commits with its rows). Schema history lives in a table
//! of (`history_name`, `seq`, `record`), one Debezium history record (JSON) per row.

use std::sync::Arc;

use connect_core::history::{HistoryRecord, SchemaHistory};
use connect_core::properties::Scope;
use connect_core::{async_trait, Error, OffsetMap, OffsetStore, SourceOffset, SourcePartition};
use tokio::sync::Mutex;

use crate::conn::{Connection, ConnectionConfig, DbError};
use crate::dialect::{Column, Dialect, TableName, WriteOp, WritePlan};
use crate::error::JdbcError;
use crate::value::{SqlKind, SqlValue};

/// Default table of [`SqlOffsetStore`].
pub const DEFAULT_OFFSETS_TABLE: &str = "connect_offsets";
/// Default table of [`SqlSchemaHistory`].
pub const DEFAULT_HISTORY_TABLE: &str = "connect_schema_history";

/// The offsets table: created if missing, read per pipeline, written by upsert.
#[derive(Debug)]
pub(crate) struct OffsetsTable {
    table: TableName,
    plan: Option<Arc<WritePlan>>,
}

impl OffsetsTable {
    pub(crate) fn new(name: &str) -> Self {
        OffsetsTable {
            table: TableName::parse(name),
            plan: None,
        }
    }

    fn error(&self, d: &dyn Dialect, action: &'static str) -> impl Fn(DbError) -> JdbcError + '_ {
        let dialect = d.name();
        move |e| e.at(dialect, action, &self.table.to_string())
    }

    /// Creates the table if it does not exist.
    pub(crate) async fn ensure(&self, conn: &mut dyn Connection) -> Result<(), JdbcError> {
        let d = conn.dialect();
        // MySQL indexes at most 3072 bytes: 255 + 512 characters of utf8mb4 fit.
        let (namespace, partition) = if d.name() == "mysql" {
            ("VARCHAR(255)".to_owned(), "VARCHAR(512)".to_owned())
        } else {
            let text = d.column_type(SqlKind::Text, true);
            (text.clone(), text)
        };
        let columns = [
            ("namespace_name".to_owned(), namespace, false),
            ("source_partition".to_owned(), partition, false),
            (
                "source_offset".to_owned(),
                d.column_type(SqlKind::Text, false),
                false,
            ),
        ];
        let key = ["namespace_name".to_owned(), "source_partition".to_owned()];
        create_if_missing(
            conn,
            &self.table,
            &d.create_table(&self.table, &columns, &key),
        )
        .await
    }

    /// The offsets of `namespace`; `None` when the table holds none.
    pub(crate) async fn read(
        &self,
        conn: &mut dyn Connection,
        namespace: &str,
    ) -> Result<Option<OffsetMap>, JdbcError> {
        self.read_with(conn, namespace, "").await
    }

    /// The offsets of `namespace` once no other transaction may still commit new ones:
    /// a locking read waits for a transaction that wrote them (a killed process's
    /// `COMMIT` the server is still applying) to end, then sees its outcome.
    pub(crate) async fn read_latest(
        &self,
        conn: &mut dyn Connection,
        namespace: &str,
    ) -> Result<Option<OffsetMap>, JdbcError> {
        let d = conn.dialect();
        if d.name() == "sqlite" {
            // One writer at a time, and a dead one's transaction is rolled back on open.
            return self.read(conn, namespace).await;
        }
        let failed = |action| move |e: DbError| e.at(d.name(), action, "offsets");
        conn.execute("BEGIN").await.map_err(failed("begin"))?;
        let read = self.read_with(conn, namespace, " FOR UPDATE").await;
        let end = conn.execute("COMMIT").await.map_err(failed("commit"));
        let offsets = read?;
        end?;
        Ok(offsets)
    }

    async fn read_with(
        &self,
        conn: &mut dyn Connection,
        namespace: &str,
        lock: &str,
    ) -> Result<Option<OffsetMap>, JdbcError> {
        let d = conn.dialect();
        let sql = format!(
            "SELECT source_partition, source_offset FROM {} WHERE namespace_name = {}{lock}",
            d.quote_table(&self.table),
            d.placeholder(1)
        );
        let rows = conn
            .query_text(&sql, &[namespace])
            .await
            .map_err(self.error(d, "read offsets"))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut offsets = OffsetMap::new();
        for row in rows {
            let (Some(Some(p)), Some(Some(o))) = (row.first(), row.get(1)) else {
                continue;
            };
            let corrupt = |e: serde_json::Error| JdbcError::BadRecord {
                topic: String::new(),
                table: self.table.to_string(),
                message: format!("stored offset `{o}` of partition `{p}` is not JSON: {e}"),
            };
            let partition = SourcePartition::from_json(p).map_err(corrupt)?;
            let offset = serde_json::from_str(o).map_err(corrupt)?;
            offsets.insert(partition, SourceOffset::new(offset));
        }
        Ok(Some(offsets))
    }

    /// Upserts offsets of `namespace` (in the connection's open transaction, if any).
    pub(crate) async fn write<'a>(
        &mut self,
        conn: &mut dyn Connection,
        namespace: &str,
        offsets: impl IntoIterator<Item = (&'a SourcePartition, &'a SourceOffset)>,
    ) -> Result<(), JdbcError> {
        let d = conn.dialect();
        let plan = match &self.plan {
            Some(plan) => plan.clone(),
            None => {
                let columns = conn
                    .columns(&self.table)
                    .await
                    .map_err(self.error(d, "read columns"))?
                    .ok_or_else(|| JdbcError::MissingTable {
                        table: self.table.to_string(),
                    })?;
                let column = |name: &str| Column {
                    name: name.to_owned(),
                    quoted: d.quote(name),
                    sql_type: columns
                        .iter()
                        .find(|(n, _)| n == name)
                        .map_or_else(|| "text".to_owned(), |(_, t)| t.clone()),
                };
                let plan = Arc::new(WritePlan {
                    id: 0,
                    table: self.table.clone(),
                    quoted_table: d.quote_table(&self.table),
                    op: WriteOp::Upsert,
                    columns: vec![
                        column("namespace_name"),
                        column("source_partition"),
                        column("source_offset"),
                    ],
                    keys: 2,
                });
                self.plan = Some(plan.clone());
                plan
            }
        };
        let mut rows = Vec::new();
        for (partition, offset) in offsets {
            rows.push(SqlValue::Text(namespace.into()));
            rows.push(SqlValue::Text(partition.as_json().into()));
            rows.push(SqlValue::Text(
                serde_json::to_string(offset.map())
                    .expect("JSON serialises")
                    .into(),
            ));
        }
        conn.write(&plan, rows)
            .await
            .map_err(self.error(d, "write offsets"))
    }
}

/// Runs `ddl` unless `table` exists (another process may create it meanwhile).
async fn create_if_missing(
    conn: &mut dyn Connection,
    table: &TableName,
    ddl: &str,
) -> Result<(), JdbcError> {
    let d = conn.dialect().name();
    let exists = |found: &Option<Vec<(String, String)>>| found.is_some();
    if exists(
        &conn
            .columns(table)
            .await
            .map_err(|e| e.at(d, "read columns", &table.to_string()))?,
    ) {
        return Ok(());
    }
    match conn.execute(ddl).await {
        Ok(()) => Ok(()),
        Err(e) => match conn.columns(table).await {
            Ok(found) if exists(&found) => Ok(()),
            _ => Err(e.at(d, "create table", &table.to_string())),
        },
    }
}

/// A connection opened on first use and dropped when it breaks, so the next call
/// reconnects.
struct Lazy {
    config: ConnectionConfig,
    conn: Option<Box<dyn Connection>>,
}

impl Lazy {
    async fn get(&mut self) -> Result<&mut dyn Connection, JdbcError> {
        if self.conn.is_none() {
            self.conn = Some(self.config.connect().await?);
        }
        Ok(self.conn.as_deref_mut().expect("just connected"))
    }

    /// Passes a result through, dropping the connection if the error says it broke.
    fn check<T>(&mut self, result: Result<T, JdbcError>) -> Result<T, Error> {
        if let Err(e) = &result {
            if e.is_retryable() {
                self.conn = None;
            }
        }
        result.map_err(Error::from)
    }
}

/// Offsets in a SQL table (see the module docs), written in one transaction per flush.
pub struct SqlOffsetStore {
    state: Mutex<OffsetsState>,
}

struct OffsetsState {
    db: Lazy,
    table: OffsetsTable,
    staged: Vec<(String, SourcePartition, SourceOffset)>,
}

impl std::fmt::Debug for SqlOffsetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlOffsetStore").finish_non_exhaustive()
    }
}

impl SqlOffsetStore {
    /// A store in `table` (e.g. [`DEFAULT_OFFSETS_TABLE`]) of the database at `connection`;
    /// it connects on first use.
    pub fn new(connection: ConnectionConfig, table: &str) -> Result<Self, Error> {
        connection.validate()?;
        if table.is_empty() {
            return Err(Error::config(
                "offset.storage.jdbc.offset.table.name",
                "must not be empty",
            ));
        }
        Ok(SqlOffsetStore {
            state: Mutex::new(OffsetsState {
                db: Lazy {
                    config: connection,
                    conn: None,
                },
                table: OffsetsTable::new(table),
                staged: Vec::new(),
            }),
        })
    }

    /// Reads Debezium's `offset.storage.jdbc.*` keys: `connection.url` (or `url`),
    /// `connection.user`, `connection.password`, `offset.table.name`.
    pub fn from_props(props: &Scope<'_>) -> Result<Self, Error> {
        let scope = props.scope("offset.storage.jdbc.");
        let connection = jdbc_connection(&scope)?;
        let table = scope
            .get("offset.table.name")
            .unwrap_or(DEFAULT_OFFSETS_TABLE);
        Self::new(connection, table)
    }
}

/// `connection.url` (or Debezium's older `url`), `connection.user`, `connection.password`.
fn jdbc_connection(scope: &Scope<'_>) -> Result<ConnectionConfig, Error> {
    let url = match scope.get("url") {
        Some(url) => url,
        None => scope.require("connection.url")?,
    };
    let mut c = ConnectionConfig::new(url);
    if let Some(user) = scope.get("connection.user").or_else(|| scope.get("user")) {
        c = c.with_user(user);
    }
    if let Some(password) = scope
        .get("connection.password")
        .or_else(|| scope.get("password"))
    {
        c = c.with_password(password);
    }
    c.validate()
        .map_err(|e| Error::config(scope.key("connection.url"), e.to_string()))?;
    Ok(c)
}

#[async_trait]
impl OffsetStore for SqlOffsetStore {
    async fn load(&self, namespace: &str) -> Result<OffsetMap, Error> {
        let mut state = self.state.lock().await;
        let OffsetsState { db, table, .. } = &mut *state;
        let result = async {
            let conn = db.get().await?;
            table.ensure(conn).await?;
            table.read_latest(conn, namespace).await
        }
        .await;
        Ok(db.check(result)?.unwrap_or_default())
    }

    async fn write(
        &self,
        namespace: &str,
        offsets: &[(SourcePartition, SourceOffset)],
    ) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        state.staged.extend(
            offsets
                .iter()
                .map(|(p, o)| (namespace.to_owned(), p.clone(), o.clone())),
        );
        Ok(())
    }

    async fn flush(&self) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        if state.staged.is_empty() {
            return Ok(());
        }
        let OffsetsState { db, table, staged } = &mut *state;
        let result = async {
            let conn = db.get().await?;
            table.ensure(conn).await?;
            let d = conn.dialect().name();
            let failed = |action| move |e: DbError| e.at(d, action, "offsets");
            conn.execute("BEGIN").await.map_err(failed("begin"))?;
            // One upsert per pipeline; a partition staged twice keeps its last offset.
            let mut by_namespace: std::collections::BTreeMap<&str, OffsetMap> = Default::default();
            for (namespace, p, o) in staged.iter() {
                by_namespace
                    .entry(namespace)
                    .or_default()
                    .insert(p.clone(), o.clone());
            }
            for (namespace, offsets) in &by_namespace {
                if let Err(e) = table.write(conn, namespace, offsets).await {
                    let _ = conn.execute("ROLLBACK").await;
                    return Err(e);
                }
            }
            conn.execute("COMMIT").await.map_err(failed("commit"))
        }
        .await;
        db.check(result)?;
        staged.clear();
        Ok(())
    }
}

/// Schema history in a SQL table (see the module docs). Appends are buffered and
/// written in one transaction by `flush`.
pub struct SqlSchemaHistory {
    name: String,
    state: Mutex<HistoryState>,
}

struct HistoryState {
    db: Lazy,
    table: TableName,
    next_seq: Option<i64>,
    staged: Vec<HistoryRecord>,
}

impl std::fmt::Debug for SqlSchemaHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSchemaHistory")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SqlSchemaHistory {
    /// The history `name` (one table holds several) in `table` (e.g.
    /// [`DEFAULT_HISTORY_TABLE`]) of the database at `connection`; connects on first use.
    pub fn new(connection: ConnectionConfig, table: &str, name: &str) -> Result<Self, Error> {
        connection.validate()?;
        if table.is_empty() {
            return Err(Error::config(
                "schema.history.internal.jdbc.schema.history.table.name",
                "must not be empty",
            ));
        }
        Ok(SqlSchemaHistory {
            name: name.to_owned(),
            state: Mutex::new(HistoryState {
                db: Lazy {
                    config: connection,
                    conn: None,
                },
                table: TableName::parse(table),
                next_seq: None,
                staged: Vec::new(),
            }),
        })
    }

    /// Reads Debezium's `schema.history.internal.jdbc.*` keys: `connection.url` (or
    /// `url`), `connection.user`, `connection.password`, `schema.history.table.name`;
    /// the history is named after `name` (the pipeline).
    pub fn from_props(props: &Scope<'_>) -> Result<Self, Error> {
        let scope = props.scope("schema.history.internal.jdbc.");
        let connection = jdbc_connection(&scope)?;
        let table = scope
            .get("schema.history.table.name")
            .unwrap_or(DEFAULT_HISTORY_TABLE);
        let name = props.properties().root().get("name").unwrap_or("connect");
        Self::new(connection, table, name)
    }

    async fn ensure(conn: &mut dyn Connection, table: &TableName) -> Result<(), JdbcError> {
        let d = conn.dialect();
        let columns = [
            (
                "history_name".to_owned(),
                d.column_type(SqlKind::Text, true),
                false,
            ),
            (
                "seq".to_owned(),
                d.column_type(SqlKind::Int(8), true),
                false,
            ),
            (
                "record".to_owned(),
                d.column_type(SqlKind::Text, false),
                false,
            ),
        ];
        let key = ["history_name".to_owned(), "seq".to_owned()];
        create_if_missing(conn, table, &d.create_table(table, &columns, &key)).await
    }

    async fn read(
        &self,
        conn: &mut dyn Connection,
        table: &TableName,
    ) -> Result<Vec<(i64, HistoryRecord)>, JdbcError> {
        let d = conn.dialect();
        let sql = format!(
            "SELECT {}, record FROM {} WHERE history_name = {} ORDER BY seq",
            d.text_cast("seq"),
            d.quote_table(table),
            d.placeholder(1)
        );
        let rows = conn
            .query_text(&sql, &[&self.name])
            .await
            .map_err(|e| e.at(d.name(), "read schema history", &table.to_string()))?;
        rows.into_iter()
            .map(|row| {
                let seq = row[0].as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
                let text = row[1].as_deref().unwrap_or("");
                let record = serde_json::from_str(text).map_err(|e| JdbcError::BadRecord {
                    topic: String::new(),
                    table: table.to_string(),
                    message: format!(
                        "history record {seq} of `{}` is not a history record: {e}",
                        self.name
                    ),
                })?;
                Ok((seq, record))
            })
            .collect()
    }
}

#[async_trait]
impl SchemaHistory for SqlSchemaHistory {
    async fn recover(&self) -> Result<Vec<HistoryRecord>, Error> {
        let mut state = self.state.lock().await;
        let HistoryState {
            db,
            table,
            next_seq,
            ..
        } = &mut *state;
        let result = async {
            let conn = db.get().await?;
            Self::ensure(conn, table).await?;
            self.read(conn, table).await
        }
        .await;
        let records = db.check(result)?;
        *next_seq = Some(records.last().map_or(1, |(seq, _)| seq + 1));
        Ok(records.into_iter().map(|(_, r)| r).collect())
    }

    async fn append(&self, record: HistoryRecord) -> Result<(), Error> {
        self.state.lock().await.staged.push(record);
        Ok(())
    }

    async fn flush(&self) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        if state.staged.is_empty() {
            return Ok(());
        }
        let HistoryState {
            db,
            table,
            next_seq,
            staged,
        } = &mut *state;
        let result = async {
            let conn = db.get().await?;
            Self::ensure(conn, table).await?;
            let seq = match *next_seq {
                Some(seq) => seq,
                None => self
                    .read(conn, table)
                    .await?
                    .last()
                    .map_or(1, |(s, _)| s + 1),
            };
            let d = conn.dialect();
            let plan = Arc::new(WritePlan {
                id: 0,
                table: table.clone(),
                quoted_table: d.quote_table(table),
                op: WriteOp::Insert,
                columns: ["history_name", "seq", "record"]
                    .iter()
                    .map(|name| Column {
                        name: (*name).to_owned(),
                        quoted: d.quote(name),
                        sql_type: if *name == "seq" { "bigint" } else { "text" }.to_owned(),
                    })
                    .collect(),
                keys: 0,
            });
            let mut rows = Vec::with_capacity(staged.len() * 3);
            for (i, record) in staged.iter().enumerate() {
                rows.push(SqlValue::Text(self.name.as_str().into()));
                rows.push(SqlValue::Int(seq + i as i64));
                rows.push(SqlValue::Text(
                    serde_json::to_string(record)
                        .expect("JSON serialises")
                        .into(),
                ));
            }
            conn.write(&plan, rows)
                .await
                .map_err(|e| e.at(d.name(), "append schema history", &table.to_string()))?;
            Ok(seq + staged.len() as i64)
        }
        .await;
        // Rows are inserted in autocommit: written means durable.
        *next_seq = Some(db.check(result)?);
        staged.clear();
        Ok(())
    }
}
