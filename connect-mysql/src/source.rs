//! The MySQL/MariaDB source connector: a consistent snapshot, then the binlog.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use connect_core::envelope::Op;
use connect_core::{
    async_trait, Error, Record, SourceBatch, SourceConnector, SourceOffset, SourcePartition,
    SourceTask, Task, TaskConfig, TaskContext, Value,
};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde_json::{Map, Value as Json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{MySqlConfig, SnapshotLockingMode, SnapshotMode};
use crate::ddl::{Catalog, TableId};
use crate::gtid::{is_mysql_gtid_set, MySqlGtidSet};
use crate::history;
use crate::server::{columns, mysql_err, preflight, Flavor, ServerInfo};
use crate::stream::{gtid_seq, parse_gtid_set, Position, Streaming};
use crate::table::{SourceInfo, TableSchema};
use crate::types::ColumnInfo;
use connect_core::jobs::OrderedJobs;

/// The MySQL/MariaDB CDC source connector.
#[derive(Debug, Clone)]
pub struct MySqlSource {
    config: Arc<MySqlConfig>,
}

impl MySqlSource {
    /// A source for a validated configuration.
    pub fn new(config: MySqlConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(MySqlSource {
            config: Arc::new(config),
        })
    }
}

impl SourceConnector for MySqlSource {
    fn name(&self) -> &str {
        "mysql"
    }

    fn validate(&self) -> Result<(), Error> {
        self.config.validate()
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>, Error> {
        // One binlog is one ordered stream: one task.
        Ok(vec![TaskConfig::new()])
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(MySqlTask {
            config: self.config.clone(),
            partition: SourcePartition::server(&self.config.topic_prefix),
            snapshot: None,
            streaming: None,
            flavor: Flavor::MariaDb,
        })
    }
}

/// What the snapshot reader sends.
enum Chunk {
    /// Rows, marked, in order.
    Rows(Vec<Record>),
    /// Every table is read; their columns, as of the snapshot's position.
    Done(Catalog),
}

struct Snapshot {
    rx: mpsc::Receiver<Result<Chunk, Error>>,
    reader: JoinHandle<()>,
    /// The position (file, pos, gtids) the snapshot is consistent with.
    position: (String, u64, Option<String>),
    ts_us: i64,
}

struct MySqlTask {
    config: Arc<MySqlConfig>,
    partition: SourcePartition,
    snapshot: Option<Snapshot>,
    streaming: Option<Streaming>,
    flavor: Flavor,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl MySqlTask {
    fn offset(&self, snapshot: &Snapshot, running: bool) -> Vec<(SourcePartition, SourceOffset)> {
        let (file, pos, gtids) = &snapshot.position;
        let mut m = Map::new();
        m.insert("file".into(), Json::from(file.as_str()));
        m.insert("pos".into(), Json::from(*pos));
        if let Some(g) = gtids {
            m.insert("gtids".into(), Json::from(g.as_str()));
        }
        m.insert("ts_sec".into(), Json::from(snapshot.ts_us / 1_000_000));
        if running {
            m.insert("snapshot".into(), Json::Bool(true));
        }
        vec![(self.partition.clone(), SourceOffset::new(m))]
    }
}

#[async_trait]
impl Task for MySqlTask {
    async fn start(&mut self, ctx: TaskContext) -> Result<(), Error> {
        self.snapshot = None;
        self.streaming = None;
        let offset = ctx.offset(&self.partition).cloned();
        let snapshot_done = offset.as_ref().is_some_and(|o| o.get("snapshot").is_none());
        let (mut conn, info) = preflight(&self.config).await?;
        self.flavor = info.flavor;
        let mode = self.config.snapshot_mode;
        // A stored position whose binlog file was purged cannot be streamed from: never
        // jump ahead silently.
        let stored = offset
            .as_ref()
            .filter(|_| snapshot_done)
            .and_then(Position::from_offset);
        let purged = match &stored {
            Some(position) if mode != SnapshotMode::InitialOnly => {
                position_purged(&mut conn, info.flavor, position).await?
            }
            _ => false,
        };
        if purged && mode != SnapshotMode::WhenNeeded {
            let position = stored.as_ref().expect("a stored position");
            return Err(Error::fatal(
                "mysql",
                format!(
                    "the stored position {}:{} (GTIDs {}) is no longer on the server (its binlog was purged): the changes since then cannot be read. Use snapshot.mode=when_needed to snapshot again",
                    position.file, position.pos, position.gtids.as_deref().unwrap_or("none")
                ),
            ));
        }
        let wants_snapshot = match mode {
            SnapshotMode::NoData | SnapshotMode::Never | SnapshotMode::Recovery => false,
            SnapshotMode::Initial | SnapshotMode::InitialOnly => !snapshot_done,
            SnapshotMode::WhenNeeded => !snapshot_done || purged,
        };
        if !wants_snapshot {
            if mode == SnapshotMode::InitialOnly {
                return Ok(()); // its snapshot is done: nothing left to do
            }
            let (from, catalog) = match stored {
                Some(position) if mode != SnapshotMode::Recovery => {
                    let (catalog, has_history) =
                        history::catalog_at(&self.config.schema_history, &position).await?;
                    if !has_history {
                        return Err(Error::config(
                            "schema.history.internal.file.filename",
                            format!(
                                "the schema history is empty, but an offset exists ({}:{}, GTIDs {}): point the setting at the history file kept with the offsets, or set snapshot.mode=recovery to rebuild it from the current tables (right only if no DDL ran on them since that position)",
                                position.file, position.pos, position.gtids.as_deref().unwrap_or("none")
                            ),
                        ));
                    }
                    (position, catalog)
                }
                // Recovery, or no offset: the tables as they are now, recorded at the
                // position streaming starts from (the binlog's end without an offset).
                stored => {
                    let from = stored.unwrap_or_else(|| Position {
                        file: info.position.0.clone(),
                        pos: info.position.1,
                        gtids: None,
                        event: 0,
                        row: 0,
                    });
                    let catalog =
                        record_current_tables(&mut conn, &self.config, &self.partition, &from)
                            .await?;
                    (from, catalog)
                }
            };
            self.streaming = Some(
                Streaming::start(
                    self.config.clone(),
                    info.flavor,
                    self.partition.clone(),
                    from,
                    catalog,
                )
                .await?,
            );
            return Ok(());
        }
        let position = consistent_snapshot(&mut conn, &info, self.config.locking).await?;
        // One chunk read ahead keeps reader and engine busy; more only holds memory.
        let (tx, rx) = mpsc::channel(1);
        let config = self.config.clone();
        let ts_us = now_us();
        let partition = self.partition.clone();
        let snapshot_position = Position {
            file: position.0.clone(),
            pos: position.1,
            gtids: position.2.clone(),
            event: 0,
            row: 0,
        };
        let reader = tokio::spawn(async move {
            let result = read_tables(
                conn,
                &config,
                &info,
                &tx,
                ts_us,
                &partition,
                &snapshot_position,
            )
            .await;
            if let Some(message) = result.transpose() {
                let _ = tx.send(message.map(Chunk::Done)).await;
            }
        });
        self.snapshot = Some(Snapshot {
            rx,
            reader,
            position,
            ts_us,
        });
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), Error> {
        if let Some(s) = self.snapshot.take() {
            s.reader.abort();
        }
        Ok(())
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
}

#[async_trait]
impl SourceTask for MySqlTask {
    async fn poll(&mut self) -> Result<Option<SourceBatch>, Error> {
        if let Some(streaming) = self.streaming.as_mut() {
            return streaming.poll().await.map(Some);
        }
        let Some(snapshot) = self.snapshot.as_mut() else {
            return Ok(None);
        };
        let chunk = snapshot
            .rx
            .recv()
            .await
            .ok_or_else(|| Error::retryable("mysql", "the snapshot reader stopped"))??;
        let snapshot = self.snapshot.as_ref().expect("snapshot running");
        Ok(Some(match chunk {
            Chunk::Rows(records) => SourceBatch {
                records,
                offsets: self.offset(snapshot, true),
            },
            Chunk::Done(catalog) => {
                let batch = SourceBatch {
                    records: Vec::new(),
                    offsets: self.offset(snapshot, false),
                };
                tracing::info!("snapshot completed");
                let (file, pos, gtids) = snapshot.position.clone();
                self.snapshot = None;
                if self.config.snapshot_mode != SnapshotMode::InitialOnly {
                    let from = Position {
                        file,
                        pos,
                        gtids,
                        event: 0,
                        row: 0,
                    };
                    self.streaming = Some(
                        Streaming::start(
                            self.config.clone(),
                            self.flavor,
                            self.partition.clone(),
                            from,
                            catalog,
                        )
                        .await?,
                    );
                }
                batch
            }
        }))
    }
}

/// The binlog files the server still has.
async fn binlog_files(conn: &mut Conn) -> Result<Vec<String>, Error> {
    let rows: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .map_err(|e| mysql_err("cannot list the binlog files", e))?;
    Ok(rows.iter().filter_map(|r| r.get::<String, _>(0)).collect())
}

/// Whether the server no longer has the binlog a stored position needs. MariaDB resumes
/// by GTID wherever its binlog holds them (another file name after a failover): there the
/// position is gone when the oldest binlog starts after a stored GTID, as its GTID_LIST
/// says; elsewhere when the position's file is gone.
async fn position_purged(
    conn: &mut Conn,
    flavor: Flavor,
    position: &Position,
) -> Result<bool, Error> {
    let files = binlog_files(conn).await?;
    if files.contains(&position.file) {
        return Ok(false);
    }
    if let (Some(gtids), Flavor::MySql) = (&position.gtids, flavor) {
        // Resumed by GTID set: gone only if the server purged transactions the set lacks.
        if is_mysql_gtid_set(gtids) {
            let kept: Option<i64> = conn
                .exec_first(
                    "SELECT GTID_SUBSET(@@global.gtid_purged, ?)",
                    (gtids.as_str(),),
                )
                .await
                .map_err(|e| mysql_err("cannot compare the stored GTID set with gtid_purged", e))?;
            return Ok(kept != Some(1));
        }
    }
    let stored = match (&position.gtids, flavor) {
        (Some(gtids), Flavor::MariaDb) if !gtids.is_empty() => parse_gtid_set(gtids),
        _ => return Ok(true),
    };
    let Some(oldest) = files.first() else {
        return Ok(true);
    };
    let events: Vec<(String, String)> = conn
        .query_map(
            format!(
                "SHOW BINLOG EVENTS IN '{}' LIMIT 4",
                oldest.replace('\'', "")
            ),
            |(_, _, kind, _, _, info): (String, u64, String, u64, u64, String)| (kind, info),
        )
        .await
        .map_err(|e| mysql_err("cannot read the oldest binlog's GTID list", e))?;
    let Some((_, list)) = events.iter().find(|(kind, _)| kind == "Gtid_list") else {
        return Ok(true);
    };
    // Transactions up to each of these are gone; a stored GTID of a domain must be at or
    // after it (a domain missing from the stored set would be read from its start).
    let purged_up_to = parse_gtid_set(list.trim_matches(['[', ']']));
    Ok(purged_up_to.iter().any(|(domain, gone)| {
        stored
            .get(domain)
            .is_none_or(|kept| gtid_seq(kept) < gtid_seq(gone))
    }))
}

/// Opens the snapshot transaction and returns the binlog position it is consistent with.
/// MariaDB reports it for a consistent snapshot without any lock; MySQL needs a short
/// global read lock around the start of the transaction.
async fn consistent_snapshot(
    conn: &mut Conn,
    info: &ServerInfo,
    locking: SnapshotLockingMode,
) -> Result<(String, u64, Option<String>), Error> {
    for sql in [
        "SET SESSION time_zone = '+00:00'",
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    ] {
        conn.query_drop(sql)
            .await
            .map_err(|e| mysql_err("cannot prepare the snapshot session", e))?;
    }
    match info.flavor {
        Flavor::MariaDb => {
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                .await
                .map_err(|e| mysql_err("cannot start the snapshot", e))?;
            let status: Vec<(String, String)> = conn
                .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
                .await
                .map_err(|e| mysql_err("cannot read the snapshot position", e))?;
            let get = |name: &str| {
                status
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let file = get("binlog_snapshot_file").unwrap_or_default();
            let pos: u64 = get("binlog_snapshot_position")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            if file.is_empty() || pos == 0 {
                return Err(Error::fatal(
                    "mysql",
                    "the server reported no binlog_snapshot_file/position: is log_bin on?",
                ));
            }
            let gtids: Option<String> = conn
                .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file.as_str(), pos))
                .await
                .map_err(|e| mysql_err("cannot read the snapshot GTID position", e))?
                .flatten();
            Ok((file, pos, gtids.filter(|g| !g.is_empty())))
        }
        Flavor::MySql => {
            let lock = locking != SnapshotLockingMode::None;
            if lock {
                conn.query_drop("FLUSH TABLES WITH READ LOCK")
                    .await
                    .map_err(|e| {
                        mysql_err("cannot lock for the snapshot (snapshot.locking.mode)", e)
                    })?;
            }
            let started = conn
                .query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                .await
                .map_err(|e| mysql_err("cannot start the snapshot", e));
            let position: Result<Option<mysql_async::Row>, _> = conn
                .query_first("SHOW MASTER STATUS")
                .await
                .map_err(|e| mysql_err("cannot read the snapshot position", e));
            // `extended` keeps the lock until the snapshot's transaction ends.
            if lock && (locking == SnapshotLockingMode::Minimal || started.is_err()) {
                conn.query_drop("UNLOCK TABLES")
                    .await
                    .map_err(|e| mysql_err("cannot unlock after the snapshot started", e))?;
            }
            started?;
            let row = position?.ok_or_else(|| Error::fatal("mysql", "no binlog position"))?;
            let file: String = row.get(0).unwrap_or_default();
            let pos: u64 = row.get(1).unwrap_or(0);
            // Executed_Gtid_Set, printed over several lines when long.
            let gtids = row
                .get::<Option<String>, _>(4)
                .flatten()
                .filter(|g| !g.trim().is_empty())
                .map(|g| MySqlGtidSet::parse(&g).map(|set| set.to_string()))
                .transpose()
                .map_err(|e| Error::fatal("mysql", format!("unreadable Executed_Gtid_Set: {e}")))?;
            Ok((file, pos, gtids))
        }
    }
}

/// The captured tables and their columns, as of `conn`'s snapshot (or now).
async fn captured_tables(conn: &mut Conn, config: &MySqlConfig) -> Result<Catalog, Error> {
    let tables: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
             AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
             ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .map_err(|e| mysql_err("cannot list tables", e))?;
    let mut catalog = Catalog::new();
    for (db, table) in tables {
        if config.captures(&db, &table) {
            let columns = columns(conn, &db, &table).await?;
            catalog.put((db, table), columns);
        }
    }
    Ok(catalog)
}

/// Reads the captured tables' columns now and records them as holding from `at`.
async fn record_current_tables(
    conn: &mut Conn,
    config: &MySqlConfig,
    partition: &SourcePartition,
    at: &Position,
) -> Result<Catalog, Error> {
    let catalog = captured_tables(conn, config).await?;
    history::save_created(
        &config.schema_history,
        partition,
        at,
        &catalog,
        catalog.ids(),
    )
    .await?;
    Ok(catalog)
}

/// Reads every captured table inside the snapshot transaction, in chunks converted on
/// the blocking pool, marking `source.snapshot` as Debezium does. The tables' columns are
/// recorded in the schema history first, as of the snapshot's position; they are
/// returned unless the engine stopped taking chunks.
async fn read_tables(
    mut conn: Conn,
    config: &MySqlConfig,
    info: &ServerInfo,
    tx: &mpsc::Sender<Result<Chunk, Error>>,
    ts_us: i64,
    partition: &SourcePartition,
    position: &Position,
) -> Result<Option<Catalog>, Error> {
    let catalog = record_current_tables(&mut conn, config, partition, position).await?;
    let tables: Vec<&TableId> = catalog.ids().collect();
    let (file, pos) = (&position.file, position.pos);
    let template = SourceInfo {
        flavor: info.flavor,
        server: Value::interned(&config.topic_prefix),
        ts_us,
        snapshot: "true",
        server_id: 0,
        gtid: Value::Null,
        // One file per snapshot: interned like the names.
        file: Value::interned(file),
        pos,
        row: 0,
        processed_at: SystemTime::now(),
    };
    let mut converting = Converting(OrderedJobs::new("snapshot conversion"));
    let job_rows = SNAPSHOT_JOB_ROWS.min(config.fetch_size);
    let mut first = true;
    for (n, (db, name)) in tables.iter().copied().enumerate() {
        let columns = catalog
            .get(&(db.clone(), name.clone()))
            .expect("a listed table");
        let table = Arc::new(TableSchema::new(config, info.flavor, db, name, columns)?);
        let list: Vec<String> = columns.iter().map(ColumnInfo::snapshot_select).collect();
        let sql = format!(
            "SELECT {} FROM `{}`.`{}`",
            list.join(", "),
            db.replace('`', "``"),
            name.replace('`', "``")
        );
        // The binary protocol: numbers, dates and times come decoded, not as text to
        // allocate and parse.
        let mut result = conn
            .exec_iter(sql, ())
            .await
            .map_err(|e| mysql_err(&format!("cannot read {db}.{name}"), e))?;
        let mut stream = result
            .stream::<mysql_async::Row>()
            .await
            .map_err(|e| mysql_err(&format!("cannot read {db}.{name}"), e))?
            .ok_or_else(|| Error::fatal("mysql", format!("no result set for {db}.{name}")))?;
        let mut chunk = |rows| RowsChunk {
            table: table.clone(),
            rows,
            first: std::mem::take(&mut first),
            last: None,
            source: template.clone(),
        };
        // The latest chunk waits until the next one shows it does not end the table.
        let mut held: Option<RowsChunk> = None;
        let mut rows = Vec::with_capacity(job_rows);
        while let Some(row) = stream.next().await {
            rows.push(row.map_err(|e| mysql_err(&format!("cannot read {db}.{name}"), e))?);
            if rows.len() >= job_rows {
                let next = chunk(std::mem::replace(&mut rows, Vec::with_capacity(job_rows)));
                if let Some(previous) = held.replace(next) {
                    if !converting.start(previous, tx).await? {
                        return Ok(None);
                    }
                }
            }
        }
        drop(stream);
        if !rows.is_empty() {
            if let Some(previous) = held.replace(chunk(rows)) {
                if !converting.start(previous, tx).await? {
                    return Ok(None);
                }
            }
        }
        if let Some(mut last) = held.take() {
            // The table's last row: last of the snapshot, or of its table.
            last.last = Some(if n + 1 == tables.len() {
                "last"
            } else {
                "last_in_data_collection"
            });
            if !converting.start(last, tx).await? {
                return Ok(None);
            }
        }
        if !converting.finish(tx).await? {
            return Ok(None);
        }
    }
    conn.query_drop("COMMIT")
        .await
        .map_err(|e| mysql_err("cannot end the snapshot transaction", e))?;
    if info.flavor == Flavor::MySql && config.locking == SnapshotLockingMode::Extended {
        conn.query_drop("UNLOCK TABLES")
            .await
            .map_err(|e| mysql_err("cannot unlock after the snapshot", e))?;
    }
    Ok(Some(catalog))
}

/// Rows of a snapshot converted into events by one job on the blocking pool, and
/// delivered as one batch (fewer when `snapshot.fetch.size` is smaller).
const SNAPSHOT_JOB_ROWS: usize = 1024;

/// Rows read from one table, to convert into `r` events.
struct RowsChunk {
    table: Arc<TableSchema>,
    rows: Vec<mysql_async::Row>,
    /// Whether its first row is the snapshot's first.
    first: bool,
    /// The marker of its last row, when that row ends its table.
    last: Option<&'static str>,
    source: SourceInfo,
}

impl RowsChunk {
    /// The chunk's `r` events, marked as Debezium marks them.
    fn convert(self) -> Result<Vec<Record>, Error> {
        let count = self.rows.len();
        let mut source = self.source;
        source.processed_at = SystemTime::now();
        let mut out = Vec::with_capacity(count);
        let block = self.table.source_block(&source)?;
        for (i, row) in self.rows.into_iter().enumerate() {
            let values = row.unwrap();
            let raw_len: usize = values
                .iter()
                .map(|v| match v {
                    mysql_async::Value::Bytes(b) => b.len(),
                    _ => 8,
                })
                .sum();
            let after = self.table.row(values)?;
            source.snapshot = match self.last {
                Some(marker) if i + 1 == count => marker,
                _ if i == 0 && self.first => "first",
                _ => "true",
            };
            let block = if source.snapshot == "true" {
                block.clone()
            } else {
                self.table.source_block(&source)?
            };
            let id = self.table.snapshot_id(&after);
            out.push(
                self.table
                    .event_with_source(Op::Read, None, Some(after), block, &source, id)?
                    .with_size_estimate(self.table.snapshot_event_size(raw_len)),
            );
        }
        Ok(out)
    }
}

/// Snapshot chunks converting on the blocking pool (the reading task only reads),
/// delivered in order, a batch each.
struct Converting(OrderedJobs<Vec<Record>>);

impl Converting {
    /// Starts converting a chunk and delivers what is converted. False when the
    /// receiver is gone.
    async fn start(
        &mut self,
        chunk: RowsChunk,
        tx: &mpsc::Sender<Result<Chunk, Error>>,
    ) -> Result<bool, Error> {
        self.0.start(move || chunk.convert());
        self.deliver(tx, false).await
    }

    /// Delivers every chunk started (a table is read).
    async fn finish(&mut self, tx: &mpsc::Sender<Result<Chunk, Error>>) -> Result<bool, Error> {
        self.deliver(tx, true).await
    }

    async fn deliver(
        &mut self,
        tx: &mpsc::Sender<Result<Chunk, Error>>,
        all: bool,
    ) -> Result<bool, Error> {
        while let Some(records) = self.0.next(all).await? {
            if tx.send(Ok(Chunk::Rows(records))).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
