//! The PostgreSQL source connector and its task: preflight, publication and slot
//! management, a consistent snapshot from the slot's exported snapshot, then pgoutput
//! streaming whose confirmed position follows the engine's committed offsets.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use connect_core::envelope::{tombstone_for, Op, TransactionBlock};
use connect_core::{
    async_trait, Error, EventId, OffsetMap, Record, SourceBatch, SourceConnector, SourceOffset,
    SourcePartition, SourceTask, Task, TaskConfig, TaskContext,
};
use futures::{Stream, StreamExt};
use pgwire_replication::{
    FeedbackObserver, Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent,
};
use regex::Regex;
use serde_json::{Map, Value as Json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::config::{PostgresConfig, PublicationMode, SnapshotMode};
use crate::metadata::MessageSchemas;
use crate::parallel::{ParallelSnapshot, SnapshotSource};
use crate::pgoutput::{self, strip_binary_copy_header, Column, Message, BINARY_COPY_TRAILER};
use crate::table::{ColumnDef, ColumnDefault, SourceInfo, TableSchema};
use crate::types::{PgType, SESSION_OPTIONS};
use connect_core::transaction::{transaction_record, TxCounts};
use connect_core::ByteString;

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;
const MAX_TX_BATCH: usize = 2048;

/// The PostgreSQL CDC source connector.
#[derive(Debug, Clone)]
pub struct PostgresSource {
    config: Arc<PostgresConfig>,
}

impl PostgresSource {
    /// A source for a validated configuration.
    pub fn new(config: PostgresConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(PostgresSource {
            config: Arc::new(config),
        })
    }
}

impl SourceConnector for PostgresSource {
    fn name(&self) -> &str {
        "postgres"
    }

    fn validate(&self) -> Result<(), Error> {
        self.config.validate()
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>, Error> {
        // One slot is one ordered stream: one task.
        Ok(vec![TaskConfig::new()])
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(PostgresTask::new(self.config.clone()))
    }
}

/// A query connection with this crate's session settings.
pub(crate) async fn connect(c: &PostgresConfig) -> Result<Client, Error> {
    let mut pg = tokio_postgres::Config::new();
    pg.ssl_mode(c.tls.postgres_mode());
    pg.host(&c.host)
        .port(c.port)
        .user(&c.user)
        .password(&c.password)
        .dbname(&c.dbname)
        .options(SESSION_OPTIONS)
        .application_name("connect-postgres");
    let (client, connection) = pg
        .connect(c.tls.postgres_connector()?)
        .await
        .map_err(|e| pg_err(&format!("cannot connect to {}:{}", c.host, c.port), e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

pub(crate) fn pg_err(context: &str, e: tokio_postgres::Error) -> Error {
    if is_tls_failure(&e) {
        return tls_err(context, &e);
    }
    // Connection-level failures (server restarting, network) are worth retrying;
    // SQL errors are not.
    let retryable = e.is_closed()
        || e.as_db_error()
            .is_none_or(|db| db.code().code().starts_with("57P"));
    let source = format!(
        "{context}: {e}{}",
        e.as_db_error()
            .map(|d| format!(" ({})", d.message()))
            .unwrap_or_default()
    );
    if retryable {
        Error::retryable("postgres", source)
    } else {
        Error::fatal("postgres", source)
    }
}

/// A failed TLS handshake or certificate check is a setting to fix, not a passing outage.
fn is_tls_failure(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let io_inner = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
        if io_inner || s.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        source = s.source();
    }
    e.to_string().contains("TLS handshake")
}

fn tls_err(context: &str, e: &(dyn std::error::Error + 'static)) -> Error {
    let mut text = format!("{context}: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    Error::config(
        "database.sslmode",
        format!("{text} (check database.sslmode and database.sslrootcert)"),
    )
}

fn repl_err(context: &str, e: pgwire_replication::PgWireError) -> Error {
    if e.is_tls() {
        return tls_err(context, &e);
    }
    let text = format!("{context}: {e}");
    if text.contains("does not exist") || text.contains("authentication") {
        Error::fatal("postgres", text)
    } else {
        Error::retryable("postgres", text)
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Tx {
    /// Counts an emitted event of `collection` and returns its `transaction` block; the id
    /// is `<txId>:<lsn>` as Debezium's PostgreSQL connector writes it.
    fn block(&mut self, collection: &Arc<str>, lsn: u64) -> TransactionBlock {
        self.counts
            .block(&ByteString::from(format!("{}:{lsn}", self.xid)), collection)
    }
}

/// Offset key of tables to read after they were added to a filtered publication.
const PENDING_TABLES: &str = "pending_tables";

/// The data collection Debezium counts logical decoding messages under.
const MESSAGE_COLLECTION: &str = "LOGICAL_DECODING_MESSAGE";

/// What `pg_type` says about one type.
struct TypeRow {
    oid: u32,
    kind: String,
    name: String,
    base: u32,
    base_typmod: i32,
    element: u32,
    category: String,
    labels: Vec<String>,
}

impl TypeRow {
    fn into_type(self) -> PgType {
        if self.kind == "e" {
            PgType::Enum {
                labels: self.labels,
            }
        } else {
            PgType::Base {
                oid: self.oid,
                name: self.name,
            }
        }
    }
}

/// A transaction being streamed.
#[derive(Debug)]
struct Tx {
    final_lsn: u64,
    xid: u32,
    ts_us: i64,
    /// Change events seen in this transaction so far.
    events: u64,
    /// Events of this transaction already delivered before a restart.
    skip: u64,
    /// Counts for the `transaction` blocks and the END record.
    counts: TxCounts,
    /// The BEGIN record is still to be emitted (transaction metadata on, not a replay).
    begin_pending: bool,
}

/// Rows of a table read by the sequential snapshot, to convert on the blocking pool.
struct RawRows {
    table: Arc<TableSchema>,
    rows: Vec<Bytes>,
    /// Its first row is the snapshot's first.
    first: bool,
}

impl RawRows {
    /// `r` events of the rows; `last` marks the last one (the table's or snapshot's).
    fn convert(
        self,
        source: &SnapshotSource,
        last: Option<&'static str>,
    ) -> Result<Vec<Record>, Error> {
        let n = self.rows.len();
        let mut records = Vec::with_capacity(n);
        let info = source.info("true");
        let block = self.table.source_block(&info)?;
        let processed_at = SystemTime::now();
        for (i, row) in self.rows.into_iter().enumerate() {
            let marker = match last {
                Some(last) if i + 1 == n => last,
                _ if self.first && i == 0 => "first",
                _ => "true",
            };
            records.push(if marker == "true" {
                read_record(&self.table, row, &info, block.clone(), processed_at)?
            } else {
                let info = source.info(marker);
                let marked = self.table.source_block(&info)?;
                read_record(&self.table, row, &info, marked, processed_at)?
            });
        }
        Ok(records)
    }
}

/// Rows converted into events per job of the sequential snapshot.
const SNAPSHOT_JOB_ROWS: usize = 1024;

/// A conversion of the sequential snapshot: its events and whether they end the snapshot.
type Conversion = JoinHandle<Result<(Vec<Record>, bool), Error>>;

struct Snapshot {
    /// The sequential snapshot's conversions, oldest first, from its reading task (which
    /// reads ahead while the engine takes earlier events, bounded by the channel).
    converted: Option<mpsc::Receiver<Result<Conversion, Error>>>,
    reader: Option<JoinHandle<()>>,
    ts_us: i64,
    /// `snapshot.max.threads` > 1: the workers reading the tables.
    parallel: Option<ParallelSnapshot>,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let Some(reader) = &self.reader {
            reader.abort();
        }
    }
}

/// The sequential snapshot's reading task: `COPY` of each table in turn on the snapshot
/// transaction's connection, rows handed in chunks to conversion jobs on the blocking
/// pool; the last chunk of a table is held until the stream ends, to mark its last row.
async fn read_tables(
    client: Arc<Client>,
    tables: Vec<(Arc<TableSchema>, Vec<ColumnDef>)>,
    source: Arc<SnapshotSource>,
    chunk_rows: usize,
    out: mpsc::Sender<Result<Conversion, Error>>,
) {
    let count = tables.len();
    let mut first = true;
    let convert = |rows: RawRows, marker: Option<&'static str>, last: bool| -> Conversion {
        let source = source.clone();
        tokio::task::spawn_blocking(move || Ok((rows.convert(&source, marker)?, last)))
    };
    let read = async {
        for (i, (table, columns)) in tables.into_iter().enumerate() {
            let failed = |e| {
                pg_err(
                    &format!("snapshot of {}.{} failed", table.schema, table.table),
                    e,
                )
            };
            let stream = copy_rows(&client, &table, &columns).await.map_err(failed)?;
            futures::pin_mut!(stream);
            let mut held: Option<RawRows> = None;
            loop {
                let mut rows = Vec::with_capacity(chunk_rows);
                let mut table_done = false;
                // One CopyData message is one row.
                while rows.len() < chunk_rows {
                    match stream.next().await {
                        Some(row) => rows.push(row.map_err(failed)?),
                        None => {
                            table_done = true;
                            break;
                        }
                    }
                }
                if !rows.is_empty() {
                    let next = RawRows {
                        table: table.clone(),
                        rows,
                        first: std::mem::take(&mut first),
                    };
                    // More rows follow the held ones: they do not end the table.
                    if let Some(held) = held.replace(next) {
                        if out.send(Ok(convert(held, None, false))).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                if table_done {
                    break;
                }
            }
            if let Some(held) = held {
                let last = i + 1 == count;
                let marker = if last {
                    "last"
                } else {
                    "last_in_data_collection"
                };
                if out
                    .send(Ok(convert(held, Some(marker), last)))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
        }
        Ok::<_, Error>(())
    };
    if let Err(e) = read.await {
        let _ = out.send(Err(e)).await;
    }
}

enum Phase {
    Snapshot(Box<Snapshot>),
    Streaming,
    Finished,
}

struct PostgresTask {
    config: Arc<PostgresConfig>,
    /// `source.name` and `source.db`, built once.
    server_value: connect_core::Value,
    db_value: connect_core::Value,
    partition: SourcePartition,
    /// Shared with the sequential snapshot's reading task.
    client: Option<Arc<Client>>,
    repl: Option<ReplicationClient>,
    committed: Option<watch::Receiver<Arc<OffsetMap>>>,
    phase: Phase,
    relations: HashMap<u32, Option<Arc<TableSchema>>>,
    tx: Option<Tx>,
    /// End LSN of the last transaction read completely (where a restart resumes).
    resume_lsn: u64,
    /// End LSN of the last transaction committed since this task started streaming.
    last_commit: Option<u64>,
    /// A partly delivered transaction to skip into after a restart: (final LSN, events).
    resume_partial: Option<(u64, u64)>,
    last_heartbeat: tokio::time::Instant,
    /// `<prefix>.transaction`, `<prefix>.message` and the message schemas, built once.
    transaction_topic: Arc<str>,
    message_topic: Arc<str>,
    message_collection: Arc<str>,
    messages: MessageSchemas,
    /// Filtered publications: captured tables found missing from the publication while
    /// streaming, recorded in the offsets (`pending_tables`) until they have been read.
    discovered: Vec<(String, String)>,
    /// Whether `discovered` has been read (its rows wait in `discovered_rows`).
    discovered_read: bool,
    /// A position-only batch must announce `discovered` in the offsets.
    discovered_announce: bool,
    discovered_rows: std::collections::VecDeque<Record>,
    next_discovery: tokio::time::Instant,
}

impl PostgresTask {
    fn new(config: Arc<PostgresConfig>) -> Self {
        PostgresTask {
            partition: SourcePartition::server(&config.topic_prefix),
            server_value: connect_core::Value::interned(&config.topic_prefix),
            transaction_topic: Arc::from(format!(
                "{}.{}",
                config.topic_prefix, config.transaction_topic
            )),
            message_topic: Arc::from(format!("{}.message", config.topic_prefix)),
            message_collection: Arc::from(MESSAGE_COLLECTION),
            messages: MessageSchemas::new(config.types.binary),
            discovered: Vec::new(),
            discovered_read: false,
            discovered_announce: false,
            discovered_rows: std::collections::VecDeque::new(),
            next_discovery: tokio::time::Instant::now(),
            db_value: connect_core::Value::interned(&config.dbname),
            config,
            client: None,
            repl: None,
            committed: None,
            phase: Phase::Finished,
            relations: HashMap::new(),
            tx: None,
            resume_lsn: 0,
            resume_partial: None,
            last_commit: None,
            last_heartbeat: tokio::time::Instant::now(),
        }
    }

    fn client(&self) -> Result<&Client, Error> {
        self.client
            .as_deref()
            .ok_or_else(|| Error::fatal("postgres", "not started"))
    }

    async fn query_one_text(&self, sql: &str) -> Result<Vec<Option<String>>, Error> {
        let rows = self
            .client()?
            .simple_query(sql)
            .await
            .map_err(|e| pg_err(sql, e))?;
        for m in rows {
            if let SimpleQueryMessage::Row(r) = m {
                return Ok((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect());
            }
        }
        Ok(Vec::new())
    }

    async fn preflight(&self) -> Result<(), Error> {
        let wal = self.query_one_text("SHOW wal_level").await?;
        if wal.first().and_then(|v| v.as_deref()) != Some("logical") {
            return Err(Error::fatal(
                "postgres",
                format!(
                    "wal_level is `{}`, logical decoding needs `logical`: run `ALTER SYSTEM SET wal_level = logical` and restart PostgreSQL",
                    wal.first().cloned().flatten().unwrap_or_default()
                ),
            ));
        }
        let role = self
            .query_one_text(
                "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
            )
            .await?;
        if role.first().and_then(|v| v.as_deref()) != Some("t") {
            return Err(Error::fatal(
                "postgres",
                format!(
                    "user `{}` lacks the REPLICATION privilege: run `ALTER ROLE {} REPLICATION`",
                    self.config.user, self.config.user
                ),
            ));
        }
        Ok(())
    }

    /// Tables in the publication that the filters capture: (schema, table, oid).
    async fn published_tables(&self) -> Result<Vec<(String, String, u32)>, Error> {
        let rows = self
            .client()?
            .query(
                "SELECT schemaname::text, tablename::text, format('%I.%I', schemaname, tablename)::regclass::oid \
                 FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2",
                &[&self.config.publication],
            )
            .await
            .map_err(|e| pg_err("cannot list publication tables", e))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, u32>(2),
                )
            })
            .filter(|(s, t, _)| self.config.captures(s, t))
            .collect())
    }

    async fn ensure_publication(&self) -> Result<(), Error> {
        let c = &self.config;
        let exists = !self
            .client()?
            .query(
                "SELECT 1 FROM pg_publication WHERE pubname = $1",
                &[&c.publication],
            )
            .await
            .map_err(|e| pg_err("cannot read pg_publication", e))?
            .is_empty();
        if exists {
            return Ok(());
        }
        let sql = match c.publication_mode {
            PublicationMode::Disabled => {
                return Err(Error::config(
                    "publication.name",
                    format!("publication `{}` does not exist and publication.autocreate.mode=disabled: create it (CREATE PUBLICATION {} FOR TABLE ...)", c.publication, c.publication),
                ))
            }
            PublicationMode::AllTables => {
                if !c.allow_keyless_tables {
                    let keyless = self.keyless_tables().await?;
                    if !keyless.is_empty() {
                        return Err(Error::config(
                            "publication.autocreate.mode",
                            format!(
                                "all_tables would publish updates and deletes of {} which have neither a primary key nor REPLICA IDENTITY FULL, and the application's UPDATE and DELETE on them would start failing. Run `ALTER TABLE ... REPLICA IDENTITY FULL` on them, use publication.autocreate.mode=filtered, or set publication.autocreate.allow.keyless=true",
                                keyless.join(", ")
                            ),
                        ));
                    }
                }
                format!("CREATE PUBLICATION {} FOR ALL TABLES", c.publication)
            }
            PublicationMode::Filtered => {
                let tables = self.unpublished_tables().await?;
                if tables.is_empty() {
                    // Matching tables created later are added as they appear.
                    format!("CREATE PUBLICATION {}", c.publication)
                } else {
                    format!("CREATE PUBLICATION {} FOR TABLE {}", c.publication, quoted_list(&tables))
                }
            }
        };
        self.client()?.batch_execute(&sql).await.map_err(|e| {
            let mut err = pg_err(&format!("cannot create publication `{}`", c.publication), e);
            if c.publication_mode == PublicationMode::AllTables {
                err = Error::fatal("postgres", format!("{err} (FOR ALL TABLES needs a superuser: create the publication yourself or use publication.autocreate.mode=filtered)"));
            }
            err
        })
    }

    /// Tables the filters capture that are not in the publication: (schema, table). A
    /// table without a primary key or REPLICA IDENTITY FULL is an error, since adding it
    /// to a publication of updates and deletes would make the application's UPDATE and
    /// DELETE on it fail.
    async fn unpublished_tables(&self) -> Result<Vec<(String, String)>, Error> {
        let c = &self.config;
        let rows = self
            .client()?
            .query(
                "SELECT n.nspname::text, c.relname::text, c.relreplident::text, \
                 EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%' AND NOT EXISTS (SELECT 1 FROM pg_publication_tables p \
                 WHERE p.pubname = $1 AND p.schemaname = n.nspname AND p.tablename = c.relname) ORDER BY 1, 2",
                &[&c.publication],
            )
            .await
            .map_err(|e| pg_err("cannot list tables", e))?;
        let mut tables = Vec::new();
        for r in &rows {
            let (schema, table, ident, has_pk): (String, String, String, bool) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            if !c.captures(&schema, &table) {
                continue;
            }
            if !has_pk && ident != "f" && ident != "i" {
                return Err(Error::fatal(
                    "postgres",
                    format!(
                        "table {schema}.{table} has no primary key: adding it to publication `{}` would make UPDATE and DELETE on it fail. Run `ALTER TABLE {schema}.{table} REPLICA IDENTITY FULL` (or exclude it)",
                        c.publication
                    ),
                ));
            }
            tables.push((schema, table));
        }
        Ok(tables)
    }

    /// Ordinary tables of the database (any schema) without a primary key or
    /// REPLICA IDENTITY FULL/INDEX, as `schema.table`.
    async fn keyless_tables(&self) -> Result<Vec<String>, Error> {
        let rows = self
            .client()?
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%' AND c.relreplident NOT IN ('f', 'i') \
                 AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| pg_err("cannot list tables", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn add_to_publication(&self, tables: &[(String, String)]) -> Result<(), Error> {
        let sql = format!(
            "ALTER PUBLICATION {} ADD TABLE {}",
            self.config.publication,
            quoted_list(tables)
        );
        self.client()?.batch_execute(&sql).await.map_err(|e| {
            pg_err(
                &format!(
                    "cannot add tables to publication `{}`",
                    self.config.publication
                ),
                e,
            )
        })
    }

    /// Reads tables found missing from the publication while streaming: under a SHARE lock
    /// (no writer in flight or starting), adds them to the publication and reads their
    /// rows, all in one transaction. Changes committed after it are streamed; the rows read
    /// are every change before it, so nothing falls between.
    async fn read_discovered(&mut self) -> Result<(), Error> {
        let client = self.client()?;
        let mut tables = Vec::with_capacity(self.discovered.len());
        for (schema, table) in &self.discovered {
            // A table dropped since it was recorded has nothing left to read.
            let exists: bool = client
                .query_one(
                    "SELECT to_regclass($1) IS NOT NULL",
                    &[&quoted(schema, table)],
                )
                .await
                .map_err(|e| pg_err("cannot look up a new table", e))?
                .get(0);
            if exists {
                tables.push((schema.clone(), table.clone()));
            }
        }
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| pg_err("cannot start reading new tables", e))?;
        let result = async {
            for (schema, table) in &tables {
                client
                    .batch_execute(&format!("LOCK TABLE {} IN SHARE MODE", quoted(schema, table)))
                    .await
                    .map_err(|e| pg_err(&format!("cannot lock {schema}.{table}"), e))?;
            }
            let still_missing: Vec<(String, String)> = self
                .unpublished_tables()
                .await?
                .into_iter()
                .filter(|t| tables.contains(t))
                .collect();
            if !still_missing.is_empty() {
                self.add_to_publication(&still_missing).await?;
            }
            let mut records = Vec::new();
            let info = SourceInfo {
                server: &self.server_value,
                db: &self.db_value,
                ts_us: now_us(),
                snapshot: "incremental",
                sequence: connect_core::Value::Null,
                tx_id: None,
                lsn: Some(self.resume_lsn),
                transaction: None,
            };
            for (schema, table) in &tables {
                let oid: u32 = client
                    .query_one(
                        "SELECT format('%I.%I', $1::text, $2::text)::regclass::oid",
                        &[schema, table],
                    )
                    .await
                    .map_err(|e| pg_err(&format!("cannot find {schema}.{table}"), e))?
                    .get(0);
                let columns = self.columns(oid).await?;
                let ts = TableSchema::new(&self.config, schema, table, &columns)?;
                let stream = copy_rows(client, &ts, &columns)
                    .await
                    .map_err(|e| pg_err(&format!("cannot read {schema}.{table}"), e))?;
                futures::pin_mut!(stream);
                let block = ts.source_block(&info)?;
                while let Some(row) = stream.next().await {
                    let row = row.map_err(|e| pg_err(&format!("cannot read {schema}.{table}"), e))?;
                    records.push(read_record(
                        &ts,
                        row,
                        &info,
                        block.clone(),
                        SystemTime::now(),
                    )?);
                }
                tracing::info!(table = %format!("{schema}.{table}"), "table added to the publication and read");
            }
            Ok::<_, Error>(records)
        }
        .await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        client
            .batch_execute(end)
            .await
            .map_err(|e| pg_err("cannot end reading new tables", e))?;
        self.discovered_rows = result?.into();
        self.discovered_read = true;
        Ok(())
    }

    /// The slot's state: `None` if missing, else (active pid, wal_status).
    async fn slot_state(&self) -> Result<Option<(Option<i32>, Option<String>)>, Error> {
        let rows = self
            .client()?
            .query(
                "SELECT active_pid, wal_status::text FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
                &[&self.config.slot],
            )
            .await
            .map_err(|e| pg_err("cannot read pg_replication_slots", e))?;
        Ok(rows.first().map(|r| (r.get(0), r.get(1))))
    }

    async fn drop_slot(&self) -> Result<(), Error> {
        self.client()?
            .execute("SELECT pg_drop_replication_slot($1)", &[&self.config.slot])
            .await
            .map(|_| ())
            .map_err(|e| pg_err(&format!("cannot drop slot `{}`", self.config.slot), e))
    }

    fn replication_config(&self, start: u64) -> ReplicationConfig {
        let c = &self.config;
        ReplicationConfig::new(
            &c.host,
            &c.user,
            &c.password,
            &c.dbname,
            &c.slot,
            c.publication.as_str(),
        )
        .with_port(c.port)
        .with_tls(c.tls.replication(&c.host))
        .with_start_lsn(Lsn::from_u64(start))
        .with_status_interval(c.status_interval)
        .with_options(SESSION_OPTIONS)
        .with_application_name("connect-postgres")
        // With an observer the client tracks pending feedback, which `stop` waits on to
        // send the final status update.
        .with_feedback_observer(FeedbackObserver::new(|sent| {
            tracing::trace!(
                pending_ms = sent.pending_for.as_millis() as u64,
                "status update sent"
            );
        }))
    }

    /// Creates the slot on a gated replication session, exporting its snapshot. The
    /// session must stay open until the snapshot is imported; it then streams.
    async fn create_slot_exported(&mut self) -> Result<(String, u64), Error> {
        let mut repl = ReplicationClient::connect_gated(self.replication_config(0))
            .await
            .map_err(|e| repl_err("cannot open replication session", e))?;
        let rows = repl
            .simple_query(&format!("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')", self.config.slot))
            .await
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("all replication slots are in use") {
                    Error::fatal("postgres", format!("cannot create slot `{}`: max_replication_slots is exhausted (drop unused slots or raise it)", self.config.slot))
                } else {
                    repl_err(&format!("cannot create slot `{}`", self.config.slot), e)
                }
            })?;
        let row = rows
            .first()
            .ok_or_else(|| Error::fatal("postgres", "CREATE_REPLICATION_SLOT returned no row"))?;
        let text = |i: usize| -> Result<String, Error> {
            row.get(i)
                .cloned()
                .flatten()
                .map(|b: Bytes| String::from_utf8_lossy(&b).into_owned())
                .ok_or_else(|| {
                    Error::fatal("postgres", "CREATE_REPLICATION_SLOT row is incomplete")
                })
        };
        let consistent_point = Lsn::parse(&text(1)?)
            .map_err(|e| Error::fatal("postgres", e.to_string()))?
            .as_u64();
        let snapshot = text(2)?;
        self.repl = Some(repl);
        Ok((snapshot, consistent_point))
    }

    async fn create_slot_plain(&self) -> Result<(), Error> {
        self.client()?
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&self.config.slot],
            )
            .await
            .map(|_| ())
            .map_err(|e| pg_err(&format!("cannot create slot `{}`", self.config.slot), e))
    }

    /// The slot's `confirmed_flush_lsn`: where streaming starts without an offset.
    async fn slot_confirmed_lsn(&self) -> Result<u64, Error> {
        let rows = self
            .client()?
            .query(
                "SELECT (confirmed_flush_lsn - '0/0')::bigint FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.config.slot],
            )
            .await
            .map_err(|e| pg_err("cannot read the slot position", e))?;
        Ok(rows
            .first()
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .unwrap_or(0) as u64)
    }

    async fn columns(&self, oid: u32) -> Result<Vec<ColumnDef>, Error> {
        let rows = self
            .client()?
            .query(
                "SELECT a.attname::text, a.atttypid, a.atttypmod, a.attnotnull, \
                 COALESCE((SELECT true FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY(i.indkey)), false), \
                 (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum), \
                 format_type(a.atttypid, a.atttypmod) \
                 FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&oid],
            )
            .await
            .map_err(|e| pg_err("cannot read table columns", e))?;
        let mut columns = Vec::with_capacity(rows.len());
        for r in &rows {
            let (type_oid, typmod) = (r.get(1), r.get(2));
            let (pg_type, type_modifier) = self.resolve_type(type_oid, typmod).await?;
            let default = match r.get::<_, Option<String>>(5) {
                Some(expr) => self.column_default(&expr, r.get(6)).await?,
                None => None,
            };
            columns.push(ColumnDef {
                name: r.get(0),
                type_oid,
                type_modifier,
                pg_type,
                not_null: r.get(3),
                key: r.get(4),
                default,
            });
        }
        Ok(columns)
    }

    /// Classifies a default expression; a constant is printed by PostgreSQL in the
    /// column's type and this session's formats (evaluating a constant has no effects).
    async fn column_default(
        &self,
        expr: &str,
        type_name: String,
    ) -> Result<Option<ColumnDefault>, Error> {
        Ok(match classify_default(expr) {
            DefaultKind::Constant => {
                let text: Option<String> = self
                    .client()?
                    .query_one(&format!("SELECT (({expr})::{type_name})::text"), &[])
                    .await
                    .map_err(|e| pg_err(&format!("cannot evaluate the default `{expr}`"), e))?
                    .get(0);
                Some(ColumnDefault::Literal(text))
            }
            DefaultKind::Generated => Some(ColumnDefault::Generated),
            DefaultKind::Other => None,
        })
    }

    /// One `pg_type` row: (typtype, typname, typbasetype, typtypmod, typelem, typcategory,
    /// enum labels).
    async fn type_row(&self, oid: u32) -> Result<TypeRow, Error> {
        let row = self
            .client()?
            .query_opt(
                "SELECT t.typtype::text, t.typname::text, t.typbasetype, t.typtypmod, t.typelem, t.typcategory::text, \
                 ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) \
                 FROM pg_type t WHERE t.oid = $1",
                &[&oid],
            )
            .await
            .map_err(|e| pg_err("cannot read pg_type", e))?
            .ok_or_else(|| Error::fatal("postgres", format!("type {oid} not found in pg_type")))?;
        Ok(TypeRow {
            oid,
            kind: row.get(0),
            name: row.get(1),
            base: row.get(2),
            base_typmod: row.get(3),
            element: row.get(4),
            category: row.get(5),
            labels: row.get(6),
        })
    }

    /// Resolves a column type: domains to their base type (and its modifier when the
    /// column has none), arrays to their element type.
    async fn resolve_type(&self, oid: u32, typmod: i32) -> Result<(PgType, i32), Error> {
        let mut typmod = typmod;
        let mut row = self.type_row(oid).await?;
        while row.kind == "d" {
            if typmod < 0 {
                typmod = row.base_typmod;
            }
            row = self.type_row(row.base).await?;
        }
        if row.category == "A" && row.element != 0 {
            let mut element = self.type_row(row.element).await?;
            while element.kind == "d" {
                if typmod < 0 {
                    typmod = element.base_typmod;
                }
                element = self.type_row(element.base).await?;
            }
            return Ok((PgType::Array(Box::new(element.into_type())), typmod));
        }
        Ok((row.into_type(), typmod))
    }

    fn offset(
        &self,
        extra: impl FnOnce(&mut Map<String, Json>),
    ) -> Vec<(SourcePartition, SourceOffset)> {
        let mut m = Map::new();
        m.insert("lsn".into(), Json::from(self.resume_lsn));
        if !self.discovered.is_empty() {
            m.insert(
                PENDING_TABLES.into(),
                self.discovered
                    .iter()
                    .map(|(s, t)| Json::from(vec![s.as_str(), t.as_str()]))
                    .collect(),
            );
        }
        extra(&mut m);
        vec![(self.partition.clone(), SourceOffset::new(m))]
    }

    // ------------------------------------------------------------------ snapshot

    async fn begin_snapshot(
        &mut self,
        exported: Option<&str>,
        consistent_point: u64,
    ) -> Result<(), Error> {
        let mut sql = String::from("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;");
        if let Some(name) = exported {
            sql.push_str(&format!(" SET TRANSACTION SNAPSHOT '{name}';"));
        }
        self.client()?
            .batch_execute(&sql)
            .await
            .map_err(|e| pg_err("cannot start the snapshot transaction", e))?;
        let tx_id: i64 = self
            .client()?
            .query_one("SELECT txid_current()", &[])
            .await
            .map_err(|e| pg_err("cannot read the snapshot transaction id", e))?
            .get(0);
        let mut tables = self.published_tables().await?;
        tables.reverse(); // popped from the end
        let threads = self.config.snapshot_max_threads.min(tables.len());
        tracing::info!(
            tables = tables.len(),
            threads,
            exported = exported.is_some(),
            "snapshot started"
        );
        let ts_us = now_us();
        let source = SnapshotSource {
            server: self.server_value.clone(),
            db: self.db_value.clone(),
            ts_us,
            tx_id,
            sequence: sequence_value(None, consistent_point),
            lsn: consistent_point,
        };
        // Popped from the end by parallel workers; read in order by the sequential task.
        let mut jobs = Vec::with_capacity(tables.len());
        for (schema, table, oid) in tables {
            let columns = self.columns(oid).await?;
            let ts = TableSchema::new(&self.config, &schema, &table, &columns)?;
            jobs.push((Arc::new(ts), columns));
        }
        let snapshot = if threads > 1 {
            // Workers import this transaction's snapshot (the slot's, where there is one).
            let name = match exported {
                Some(name) => name.to_owned(),
                None => self
                    .client()?
                    .query_one("SELECT pg_export_snapshot()", &[])
                    .await
                    .map_err(|e| pg_err("cannot export the snapshot", e))?
                    .get(0),
            };
            Snapshot {
                converted: None,
                reader: None,
                ts_us,
                parallel: Some(ParallelSnapshot::start(
                    self.config.clone(),
                    name,
                    jobs,
                    threads,
                    source,
                )),
            }
        } else {
            jobs.reverse();
            let client = self
                .client
                .clone()
                .ok_or_else(|| Error::fatal("postgres", "not started"))?;
            let in_flight = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
            let (out, converted) = mpsc::channel(in_flight);
            let reader = tokio::spawn(read_tables(
                client,
                jobs,
                Arc::new(source),
                SNAPSHOT_JOB_ROWS.min(self.config.fetch_size),
                out,
            ));
            Snapshot {
                converted: Some(converted),
                reader: Some(reader),
                ts_us,
                parallel: None,
            }
        };
        self.phase = Phase::Snapshot(Box::new(snapshot));
        Ok(())
    }

    async fn poll_snapshot(&mut self) -> Result<Option<SourceBatch>, Error> {
        let Phase::Snapshot(snap) = &mut self.phase else {
            return Ok(None);
        };
        if let Some(parallel) = snap.parallel.as_mut() {
            return match parallel.next().await? {
                Some(records) => Ok(Some(SourceBatch {
                    records,
                    offsets: self.snapshot_offset(false),
                })),
                None => self.finish_snapshot().await.map(Some),
            };
        }
        let converted = snap.converted.as_mut().expect("a sequential snapshot");
        match converted.recv().await {
            Some(conversion) => {
                let (records, last) = conversion?.await.map_err(|e| {
                    Error::fatal("postgres", format!("snapshot conversion failed: {e}"))
                })??;
                Ok(Some(SourceBatch {
                    records,
                    offsets: self.snapshot_offset(last),
                }))
            }
            None => self.finish_snapshot().await.map(Some),
        }
    }

    fn snapshot_offset(&self, last: bool) -> Vec<(SourcePartition, SourceOffset)> {
        let ts = match &self.phase {
            Phase::Snapshot(s) => s.ts_us,
            _ => now_us(),
        };
        self.offset(|m| {
            m.insert("ts_usec".into(), Json::from(ts));
            if !last {
                m.insert("snapshot".into(), Json::Bool(true));
                m.insert("last_snapshot_record".into(), Json::Bool(false));
            }
        })
    }

    /// Ends the snapshot: commit the read transaction, then stream (or stop for
    /// `initial_only`). The completion is marked by a position-only batch when the last
    /// table was empty.
    async fn finish_snapshot(&mut self) -> Result<SourceBatch, Error> {
        self.client()?
            .batch_execute("COMMIT")
            .await
            .map_err(|e| pg_err("cannot end the snapshot transaction", e))?;
        tracing::info!("snapshot completed");
        if self.config.snapshot_mode == SnapshotMode::InitialOnly {
            self.phase = Phase::Finished;
        } else {
            self.start_streaming().await?;
        }
        Ok(SourceBatch {
            records: Vec::new(),
            offsets: self.snapshot_offset(true),
        })
    }

    // ----------------------------------------------------------------- streaming

    async fn start_streaming(&mut self) -> Result<(), Error> {
        match self.repl.as_mut() {
            // The gated session that exported the snapshot streams from its consistent point.
            Some(repl) => {
                repl.start()
                    .await
                    .map_err(|e| repl_err("cannot start replication", e))?;
                repl.wait_started()
                    .await
                    .map_err(|e| repl_err("cannot start replication", e))?;
            }
            None => {
                let repl = ReplicationClient::connect(self.replication_config(self.resume_lsn))
                    .await
                    .map_err(|e| repl_err("cannot start replication", e))?;
                self.repl = Some(repl);
            }
        }
        self.phase = Phase::Streaming;
        self.last_heartbeat = tokio::time::Instant::now();
        tracing::info!(slot = %self.config.slot, lsn = %Lsn::from_u64(self.resume_lsn), "streaming started");
        Ok(())
    }

    async fn relation(&mut self, rel: pgoutput::Relation) -> Result<(), Error> {
        if !self.config.captures(&rel.namespace, &rel.name) {
            self.relations.insert(rel.id, None);
            return Ok(());
        }
        // Names, types and keys from the message; NOT NULL from the catalog (best effort:
        // a column dropped since then is simply optional).
        let catalog: HashMap<String, ColumnDef> = self
            .columns(rel.id)
            .await?
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        let mut columns = Vec::with_capacity(rel.columns.len());
        for c in &rel.columns {
            let known = catalog
                .get(&c.name)
                .filter(|d| d.type_oid == c.type_oid && d.type_modifier == c.type_modifier);
            let (pg_type, type_modifier) = match known {
                Some(d) => (d.pg_type.clone(), d.type_modifier),
                None => self.resolve_type(c.type_oid, c.type_modifier).await?,
            };
            columns.push(ColumnDef {
                name: c.name.clone(),
                type_oid: c.type_oid,
                type_modifier,
                pg_type,
                not_null: catalog.get(&c.name).is_some_and(|d| d.not_null),
                key: c.key,
                default: known.and_then(|d| d.default.clone()),
            });
        }
        let table = TableSchema::new(&self.config, &rel.namespace, &rel.name, &columns)?;
        self.relations.insert(rel.id, Some(Arc::new(table)));
        Ok(())
    }

    fn change(&mut self, msg: Message, lsn: u64, out: &mut Vec<Record>) -> Result<(), Error> {
        match msg {
            Message::Insert { relation, new } => {
                self.emit(relation, Op::Create, None, Some(new), lsn, out)
            }
            Message::Update {
                relation, old, new, ..
            } => self.emit(relation, Op::Update, old, Some(new), lsn, out),
            Message::Delete { relation, old, .. } => {
                self.emit(relation, Op::Delete, Some(old), None, lsn, out)
            }
            // One `t` event per truncated table, as Debezium emits them.
            Message::Truncate { relations, .. } => {
                for relation in relations {
                    self.emit(relation, Op::Truncate, None, None, lsn, out)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn emit(
        &mut self,
        relation: u32,
        op: Op,
        before: Option<Vec<Column>>,
        after: Option<Vec<Column>>,
        lsn: u64,
        out: &mut Vec<Record>,
    ) -> Result<(), Error> {
        let Some(tx) = self.tx.as_mut() else {
            return Err(Error::fatal("postgres", "change outside a transaction"));
        };
        let table = match self.relations.get(&relation) {
            Some(Some(t)) => t.clone(),
            Some(None) => return Ok(()),
            None => {
                return Err(Error::fatal(
                    "postgres",
                    format!("change for relation {relation} before its Relation message"),
                ))
            }
        };
        tx.events += 1;
        if self.config.skipped.skips(op) {
            return Ok(());
        }
        let transaction = self
            .config
            .transaction_metadata
            .then(|| tx.block(&table.collection, lsn));
        if tx.events <= tx.skip {
            return Ok(()); // delivered before the restart
        }
        let (tx_id, ts_us, final_lsn, index) = (tx.xid, tx.ts_us, tx.final_lsn, tx.events);
        let before = before.map(|b| table.row(b)).transpose()?;
        let after = after.map(|a| table.row(a)).transpose()?;
        let info = SourceInfo {
            server: &self.server_value,
            db: &self.db_value,
            ts_us,
            snapshot: "false",
            sequence: self.sequence(lsn),
            tx_id: Some(i64::from(tx_id)),
            lsn: Some(lsn),
            transaction,
        };
        let id = EventId::from_parts(&[
            self.config.topic_prefix.as_bytes(),
            &final_lsn.to_le_bytes(),
            &index.to_le_bytes(),
        ]);
        let record = table.event(op, before, after, &info, id)?.measured();
        let tombstone =
            (op == Op::Delete && self.config.tombstones_on_delete).then(|| tombstone_for(&record));
        out.push(record);
        out.extend(tombstone);
        Ok(())
    }

    async fn poll_stream(&mut self) -> Result<Option<SourceBatch>, Error> {
        let mut records = Vec::new();
        let discovering = self.config.publication_mode == PublicationMode::Filtered;
        loop {
            if self.tx.is_none() && records.is_empty() {
                if let Some(batch) = self.poll_discovered().await? {
                    return Ok(Some(batch));
                }
            }
            let next_discovery = self.next_discovery;
            let may_discover = discovering && self.tx.is_none() && self.discovered.is_empty();
            let heartbeat = self.config.heartbeat_interval;
            let due = self.last_heartbeat + heartbeat;
            let repl = self
                .repl
                .as_mut()
                .ok_or_else(|| Error::fatal("postgres", "replication not started"))?;
            let committed = self.committed.as_mut();
            let event = tokio::select! {
                ev = repl.recv() => ev.map_err(|e| repl_err("replication stream failed", e))?,
                changed = async {
                    match committed {
                        Some(rx) => rx.changed().await.is_ok(),
                        None => std::future::pending().await,
                    }
                } => {
                    if changed {
                        self.confirm_committed();
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(next_discovery), if may_discover => {
                    self.next_discovery = tokio::time::Instant::now() + self.config.status_interval;
                    self.discovered = self.unpublished_tables().await?;
                    self.discovered_announce = !self.discovered.is_empty();
                    if !self.discovered.is_empty() {
                        tracing::info!(tables = ?self.discovered, "captured tables missing from the publication: adding them");
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(due), if !heartbeat.is_zero() && self.tx.is_none() => {
                    self.last_heartbeat = tokio::time::Instant::now();
                    if let Some(sql) = &self.config.heartbeat_action_query {
                        self.client()?
                            .batch_execute(sql)
                            .await
                            .map_err(|e| pg_err("heartbeat.action.query failed", e))?;
                    }
                    if records.is_empty() {
                        return Ok(Some(SourceBatch { records, offsets: self.offset(|_| {}) }));
                    }
                    continue;
                }
            };
            let Some(event) = event else {
                return Err(Error::retryable("postgres", "replication stream ended"));
            };
            match event {
                ReplicationEvent::Begin {
                    final_lsn,
                    xid,
                    commit_time_micros,
                } => {
                    let final_lsn = final_lsn.as_u64();
                    let skip = match self.resume_partial {
                        Some((lsn, events)) if lsn == final_lsn => events,
                        _ => 0,
                    };
                    self.tx = Some(Tx {
                        final_lsn,
                        xid,
                        ts_us: commit_time_micros + PG_EPOCH_OFFSET_US,
                        events: 0,
                        skip,
                        counts: TxCounts::default(),
                        begin_pending: self.config.transaction_metadata && skip == 0,
                    });
                }
                ReplicationEvent::XLogData {
                    wal_start, data, ..
                } => {
                    self.open_transaction(wal_start.as_u64(), &mut records)?;
                    match pgoutput::decode(data).map_err(|e| Error::fatal("postgres", e))? {
                        Message::Relation(rel) => self.relation(rel).await?,
                        msg => self.change(msg, wal_start.as_u64(), &mut records)?,
                    }
                    if records.len() >= MAX_TX_BATCH {
                        let tx = self.tx.as_ref().expect("changes come inside a transaction");
                        let (final_lsn, events, xid) = (tx.final_lsn, tx.events, tx.xid);
                        let processed = wal_start.as_u64();
                        return Ok(Some(SourceBatch {
                            records,
                            offsets: self.offset(|m| {
                                // Debezium's keys for a position inside a transaction, plus
                                // the count of its events already delivered.
                                m.insert("lsn_proc".into(), Json::from(processed));
                                m.insert("lsn_commit".into(), Json::from(final_lsn));
                                m.insert("events".into(), Json::from(events));
                                m.insert("txId".into(), Json::from(xid));
                            }),
                        }));
                    }
                }
                ReplicationEvent::Commit {
                    end_lsn,
                    commit_time_micros,
                    ..
                } => {
                    self.open_transaction(end_lsn.as_u64(), &mut records)?;
                    let tx = self.tx.take();
                    if let Some(tx) = tx.as_ref().filter(|_| self.config.transaction_metadata) {
                        records.push(transaction_record(
                            &self.transaction_topic,
                            &self.config.topic_prefix,
                            &ByteString::from(format!("{}:{}", tx.xid, end_lsn.as_u64())),
                            Some(&tx.counts),
                            tx.ts_us,
                            &tx.final_lsn.to_le_bytes(),
                        )?);
                    }
                    self.resume_lsn = end_lsn.as_u64();
                    self.resume_partial = None;
                    self.last_heartbeat = tokio::time::Instant::now();
                    let xid = tx.map(|t| t.xid);
                    return Ok(Some(SourceBatch {
                        records,
                        offsets: self.offset(|m| {
                            // As Debezium writes them at a transaction's end.
                            m.insert("lsn_proc".into(), m["lsn"].clone());
                            m.insert("lsn_commit".into(), m["lsn"].clone());
                            if let Some(x) = xid {
                                m.insert("txId".into(), Json::from(x));
                            }
                            m.insert(
                                "ts_usec".into(),
                                Json::from(commit_time_micros + PG_EPOCH_OFFSET_US),
                            );
                        }),
                    }));
                }
                ReplicationEvent::KeepAlive { wal_end, .. } => {
                    // Between transactions every change before wal_end is delivered or
                    // filtered: a heartbeat may confirm it.
                    if self.tx.is_none()
                        && wal_end.as_u64() > self.resume_lsn
                        && !heartbeat.is_zero()
                    {
                        self.resume_lsn = wal_end.as_u64();
                    }
                }
                ReplicationEvent::Message {
                    transactional,
                    lsn,
                    prefix,
                    content,
                } => {
                    let lsn = lsn.as_u64();
                    if transactional && self.tx.is_some() {
                        self.open_transaction(lsn, &mut records)?;
                        self.message(&prefix, content, lsn, &mut records)?;
                    } else if self.config.emits_message(&prefix) {
                        // Outside a transaction: delivered at once; the offset stays (a
                        // restart may deliver it again, with the same event id).
                        let info = SourceInfo {
                            server: &self.server_value,
                            db: &self.db_value,
                            ts_us: now_us(),
                            snapshot: "false",
                            sequence: self.sequence(lsn),
                            tx_id: None,
                            lsn: Some(lsn),
                            transaction: None,
                        };
                        let id = EventId::from_parts(&[
                            self.message_topic.as_bytes(),
                            &lsn.to_le_bytes(),
                        ]);
                        let record = self.messages.record(
                            &self.message_topic,
                            &prefix,
                            content,
                            &info,
                            id,
                        )?;
                        return Ok(Some(SourceBatch {
                            records: vec![record],
                            offsets: self.offset(|_| {}),
                        }));
                    }
                }
                ReplicationEvent::StoppedAt { .. } => return Ok(None),
            }
        }
    }

    /// Tables found missing from a filtered publication, in three steps between
    /// transactions: a position-only batch records them in the offsets; once that offset
    /// is durable they are locked, added and read; their rows go out in batches, the last
    /// of which clears the record. A restart finding the record reads them again.
    async fn poll_discovered(&mut self) -> Result<Option<SourceBatch>, Error> {
        if self.discovered.is_empty() {
            return Ok(None);
        }
        if !self.discovered_read {
            let durable = self.committed.as_ref().is_some_and(|rx| {
                let recorded = pending_tables(rx.borrow().get(&self.partition));
                self.discovered.iter().all(|t| recorded.contains(t))
            });
            if !durable {
                if std::mem::take(&mut self.discovered_announce) {
                    return Ok(Some(SourceBatch {
                        records: Vec::new(),
                        offsets: self.offset(|_| {}),
                    }));
                }
                return Ok(None);
            }
            self.read_discovered().await?;
        }
        let n = self.config.fetch_size.min(self.discovered_rows.len());
        let records: Vec<Record> = self.discovered_rows.drain(..n).collect();
        if self.discovered_rows.is_empty() {
            self.discovered.clear();
            self.discovered_read = false;
        }
        Ok(Some(SourceBatch {
            records,
            offsets: self.offset(|_| {}),
        }))
    }

    /// `source.sequence`: `["<end of the last transaction committed in this session>","<lsn>"]`,
    /// the first entry null until one was seen (as Debezium writes it).
    fn sequence(&self, lsn: u64) -> connect_core::Value {
        sequence_value(self.last_commit, lsn)
    }

    /// Emits the pending BEGIN record of the current transaction, identified by the first
    /// position seen in it (Debezium's last seen LSN at BEGIN).
    fn open_transaction(&mut self, lsn: u64, out: &mut Vec<Record>) -> Result<(), Error> {
        let Some(tx) = self.tx.as_mut().filter(|t| t.begin_pending) else {
            return Ok(());
        };
        tx.begin_pending = false;
        out.push(transaction_record(
            &self.transaction_topic,
            &self.config.topic_prefix,
            &ByteString::from(format!("{}:{lsn}", tx.xid)),
            None,
            tx.ts_us,
            &tx.final_lsn.to_le_bytes(),
        )?);
        Ok(())
    }

    /// A transactional logical decoding message: counted and skipped on replay like a
    /// change event.
    fn message(
        &mut self,
        prefix: &str,
        content: Bytes,
        lsn: u64,
        out: &mut Vec<Record>,
    ) -> Result<(), Error> {
        let Some(tx) = self.tx.as_mut() else {
            return Err(Error::fatal("postgres", "message outside a transaction"));
        };
        tx.events += 1;
        if !self.config.emits_message(prefix) {
            return Ok(());
        }
        let transaction = self
            .config
            .transaction_metadata
            .then(|| tx.block(&self.message_collection, lsn));
        if tx.events <= tx.skip {
            return Ok(());
        }
        let info = SourceInfo {
            server: &self.server_value,
            db: &self.db_value,
            ts_us: tx.ts_us,
            snapshot: "false",
            sequence: sequence_value(self.last_commit, lsn),
            tx_id: Some(i64::from(tx.xid)),
            lsn: Some(lsn),
            transaction,
        };
        let id = EventId::from_parts(&[
            self.config.topic_prefix.as_bytes(),
            &tx.final_lsn.to_le_bytes(),
            &tx.events.to_le_bytes(),
        ]);
        out.push(
            self.messages
                .record(&self.message_topic, prefix, content, &info, id)?,
        );
        Ok(())
    }

    /// Tells the server what is durable: the end LSN of the last fully delivered
    /// transaction whose offset the engine committed.
    fn confirm_committed(&self) {
        let (Some(rx), Some(repl)) = (self.committed.as_ref(), self.repl.as_ref()) else {
            return;
        };
        let lsn = rx
            .borrow()
            .get(&self.partition)
            .filter(|o| o.get("snapshot").is_none())
            .and_then(|o| o.get("lsn")?.as_u64());
        if let Some(lsn) = lsn.filter(|&l| l > 0) {
            repl.update_applied_lsn(Lsn::from_u64(lsn));
        }
    }
}

/// The tables an offset records as still to be read (`pending_tables`).
fn pending_tables(offset: Option<&SourceOffset>) -> Vec<(String, String)> {
    let Some(Json::Array(items)) = offset.and_then(|o| o.get(PENDING_TABLES)) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item.as_array()?.as_slice() {
            [Json::String(s), Json::String(t)] => Some((s.clone(), t.clone())),
            _ => None,
        })
        .collect()
}

/// What a default expression is, as far as schemas care.
#[derive(Debug, PartialEq, Eq)]
enum DefaultKind {
    /// A constant with casts: `'abc'::text`, `42`, `'-5'::integer`, `true`.
    Constant,
    /// Involves a function or SQL value function: `now()`, `nextval('s'::regclass)`,
    /// `CURRENT_DATE`, `(random() > 0.5)`.
    Generated,
    /// Anything else, such as arithmetic on constants (`(1 + 1)`).
    Other,
}

fn classify_default(expr: &str) -> DefaultKind {
    static LITERAL: OnceLock<Regex> = OnceLock::new();
    static CAST: OnceLock<Regex> = OnceLock::new();
    let literal = LITERAL.get_or_init(|| Regex::new(r"'(?:[^']|'')*'").expect("valid regex"));
    let cast = CAST.get_or_init(|| {
        Regex::new(r#"::\s*[A-Za-z_"][A-Za-z0-9_ ."]*(?:\(\s*\d+\s*(?:,\s*\d+\s*)?\))?(?:\[\])*"#)
            .expect("valid regex")
    });
    let without_strings = literal.replace_all(expr, "L");
    let bare: String = cast
        .replace_all(&without_strings, "")
        .chars()
        .filter(|c| !matches!(c, '(' | ')') && !c.is_whitespace())
        .collect();
    let number = |s: &str| {
        let s = s.strip_prefix('-').unwrap_or(s);
        !s.is_empty()
            && s.parse::<f64>().is_ok()
            && s.bytes().all(|b| {
                b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || b == b'+' || b == b'-'
            })
    };
    if bare == "L" || bare == "true" || bare == "false" || number(&bare) {
        DefaultKind::Constant
    } else if bare.chars().any(|c| c.is_ascii_alphabetic()) {
        // A function call or an SQL value function such as CURRENT_DATE.
        DefaultKind::Generated
    } else {
        DefaultKind::Other
    }
}

fn sequence_value(last_commit: Option<u64>, lsn: u64) -> connect_core::Value {
    connect_core::Value::from(match last_commit {
        Some(last) => format!("[\"{last}\",\"{lsn}\"]"),
        None => format!("[null,\"{lsn}\"]"),
    })
}

fn quoted(schema: &str, table: &str) -> String {
    format!(
        "\"{}\".\"{}\"",
        schema.replace('"', "\"\""),
        table.replace('"', "\"\"")
    )
}

fn quoted_list(tables: &[(String, String)]) -> String {
    tables
        .iter()
        .map(|(s, t)| quoted(s, t))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `COPY` of a table's columns in catalog order, binary where the table allows (see
/// [`TableSchema::binary_copy`]), else as text.
fn copy_sql(table: &TableSchema, columns: &[ColumnDef]) -> String {
    let list: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{}\"", c.name.replace('"', "\"\"")))
        .collect();
    format!(
        "COPY (SELECT {} FROM {}) TO STDOUT{}",
        list.join(", "),
        quoted(&table.schema, &table.table),
        if table.binary_copy() {
            " (FORMAT binary)"
        } else {
            ""
        }
    )
}

/// The rows of `table`'s `COPY` (see [`copy_sql`]), one message per row: a binary COPY's
/// file header is cut from its first message and its trailer dropped.
pub(crate) async fn copy_rows(
    client: &Client,
    table: &TableSchema,
    columns: &[ColumnDef],
) -> Result<impl Stream<Item = Result<Bytes, tokio_postgres::Error>>, tokio_postgres::Error> {
    let binary = table.binary_copy();
    let stream = client.copy_out(copy_sql(table, columns).as_str()).await?;
    let mut header = binary;
    Ok(stream.filter_map(move |row| {
        futures::future::ready(match row {
            Ok(row) if binary => {
                let row = if std::mem::take(&mut header) {
                    strip_binary_copy_header(row)
                } else {
                    row
                };
                (!row.is_empty() && row.as_ref() != BINARY_COPY_TRAILER).then_some(Ok(row))
            }
            other => Some(other),
        })
    }))
}

/// A read (`r`) event from one `COPY` text row, with `source`, the block of `info`
/// (see [`TableSchema::source_block`]).
pub(crate) fn read_record(
    table: &TableSchema,
    row: Bytes,
    info: &SourceInfo<'_>,
    source: connect_core::Struct,
    processed_at: SystemTime,
) -> Result<Record, Error> {
    let after = table.row_from_copy(&row)?;
    let id = table.snapshot_id(&after);
    Ok(table
        .event_with_source(Op::Read, None, Some(after), source, info, id, processed_at)?
        .with_size_estimate(table.snapshot_event_size(row.len())))
}

/// Replaces the `source.snapshot` marker of a snapshot record.
pub(crate) fn remark(mut record: Record, marker: &'static str) -> Record {
    if let connect_core::Value::Struct(envelope) = &record.value {
        let mut values = envelope.values().to_vec();
        if let Some(connect_core::Value::Struct(source)) = values.get(2) {
            let mut sv = source.values().to_vec();
            sv[4] = connect_core::Value::static_str(marker);
            if let Ok(s) = connect_core::Struct::new(source.schema().clone(), sv) {
                values[2] = connect_core::Value::Struct(s);
            }
        }
        if let Ok(e) = connect_core::Struct::new(envelope.schema().clone(), values) {
            record.value = connect_core::Value::Struct(e);
        }
    }
    record
}

#[async_trait]
impl Task for PostgresTask {
    async fn start(&mut self, ctx: TaskContext) -> Result<(), Error> {
        self.client = Some(Arc::new(connect(&self.config).await?));
        self.preflight().await?;
        self.ensure_publication().await?;
        self.committed = Some(ctx.committed.clone());
        self.relations.clear();
        self.tx = None;
        let offset = ctx.offset(&self.partition).cloned();
        let snapshot_running = offset
            .as_ref()
            .is_some_and(|o| o.get("snapshot") == Some(&Json::Bool(true)));
        self.resume_lsn = offset
            .as_ref()
            .and_then(|o| o.get("lsn")?.as_u64())
            .unwrap_or(0);
        self.resume_partial = offset
            .as_ref()
            .and_then(|o| Some((o.get("lsn_commit")?.as_u64()?, o.get("events")?.as_u64()?)));

        let mut slot = self.slot_state().await?;
        if let Some((active, wal_status)) = &slot {
            if wal_status.as_deref() == Some("lost") {
                return Err(Error::fatal(
                    "postgres",
                    format!("replication slot `{}` is lost (wal_status = 'lost'): the WAL it needed was removed. Drop it and re-snapshot (snapshot.mode=when_needed)", self.config.slot),
                ));
            }
            if let Some(pid) = active {
                return Err(Error::retryable(
                    "postgres",
                    format!(
                        "replication slot `{}` is in use by process {pid}",
                        self.config.slot
                    ),
                ));
            }
        }
        let mode = self.config.snapshot_mode;
        let wants_snapshot = match mode {
            SnapshotMode::NoData | SnapshotMode::Never => false,
            SnapshotMode::Always => true,
            SnapshotMode::Initial | SnapshotMode::InitialOnly => {
                offset.is_none() || snapshot_running
            }
            SnapshotMode::WhenNeeded => offset.is_none() || snapshot_running || slot.is_none(),
        };
        if offset.is_some() && !snapshot_running && slot.is_none() && !wants_snapshot {
            return Err(Error::fatal(
                "postgres",
                format!("replication slot `{}` does not exist but offsets do: changes since then cannot be streamed. Use snapshot.mode=when_needed to re-snapshot", self.config.slot),
            ));
        }
        if wants_snapshot && snapshot_running && slot.is_some() {
            // An interrupted snapshot restarts from scratch on a fresh exported snapshot.
            tracing::warn!(slot = %self.config.slot, "previous snapshot was interrupted: recreating the slot and snapshotting again");
            self.drop_slot().await?;
            slot = None;
            self.resume_lsn = 0;
        }
        self.discovered = Vec::new();
        self.discovered_read = false;
        self.discovered_rows.clear();
        self.discovered_announce = false;
        if self.config.publication_mode == PublicationMode::Filtered {
            let missing = self.unpublished_tables().await?;
            if wants_snapshot {
                // The snapshot reads them along with the others.
                if !missing.is_empty() {
                    self.add_to_publication(&missing).await?;
                }
            } else {
                self.discovered = pending_tables(offset.as_ref());
                for table in missing {
                    if !self.discovered.contains(&table) {
                        self.discovered.push(table);
                        self.discovered_announce = true;
                    }
                }
            }
        }
        if wants_snapshot {
            if slot.is_none() {
                let (name, consistent_point) = self.create_slot_exported().await?;
                self.resume_lsn = consistent_point;
                self.begin_snapshot(Some(&name), consistent_point).await?;
            } else {
                // No exported snapshot exists for an old slot: the snapshot may overlap the
                // stream (duplicates, never gaps).
                self.begin_snapshot(None, self.resume_lsn).await?;
            }
        } else {
            if slot.is_none() {
                self.create_slot_plain().await?;
            }
            if self.resume_lsn == 0 {
                self.resume_lsn = self.slot_confirmed_lsn().await?;
            }
            self.start_streaming().await?;
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), Error> {
        if let Phase::Snapshot(snap) = &mut self.phase {
            // Its connection closes with it: no snapshot transaction outlives the task.
            if let Some(reader) = snap.reader.take() {
                reader.abort();
                let _ = reader.await;
            }
        }
        if let Some(repl) = self.repl.as_ref() {
            // A final status update: the last committed position reaches the server.
            self.confirm_committed();
            let deadline =
                tokio::time::Instant::now() + self.config.status_interval + Duration::from_secs(1);
            while repl.feedback_pending_since().is_some() && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if let Some(mut repl) = self.repl.take() {
            repl.stop();
            let _ = tokio::time::timeout(Duration::from_secs(5), repl.shutdown()).await;
        }
        if self.config.drop_slot_on_stop && self.client.is_some() {
            if let Err(e) = self.drop_slot().await {
                tracing::warn!(error = %e, "cannot drop slot on stop");
            }
        }
        self.client = None;
        Ok(())
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
}

#[async_trait]
impl SourceTask for PostgresTask {
    async fn poll(&mut self) -> Result<Option<SourceBatch>, Error> {
        match self.phase {
            Phase::Snapshot(_) => self.poll_snapshot().await,
            Phase::Streaming => self.poll_stream().await,
            Phase::Finished => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_expressions_are_classified_as_debezium_treats_them() {
        for (expr, kind) in [
            ("'hello'::text", DefaultKind::Constant),
            ("'-5'::integer", DefaultKind::Constant),
            ("42", DefaultKind::Constant),
            ("1.5", DefaultKind::Constant),
            ("true", DefaultKind::Constant),
            ("'it''s (x)'::character varying(10)", DefaultKind::Constant),
            (
                "'2020-01-02 03:04:05'::timestamp without time zone",
                DefaultKind::Constant,
            ),
            ("now()", DefaultKind::Generated),
            ("nextval('t_id_seq'::regclass)", DefaultKind::Generated),
            ("CURRENT_DATE", DefaultKind::Generated),
            (
                "(random() > (0.5)::double precision)",
                DefaultKind::Generated,
            ),
            ("(1 + 1)", DefaultKind::Other),
        ] {
            assert_eq!(classify_default(expr), kind, "{expr}");
        }
    }
}
