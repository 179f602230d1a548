//! Binlog streaming: mysql_async's binlog stream, mysql_common's row decoding, and the
//! MariaDB events it leaves undecoded (GTID) read from their bytes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use connect_core::envelope::{tombstone_for, Op};
use connect_core::transaction::{transaction_record, with_transaction, TxCounts};
use connect_core::ByteString;
use connect_core::{Error, EventId, Record, SourceBatch, SourceOffset, SourcePartition, Value};
use futures::StreamExt;
use mysql_async::binlog::events::{
    Event, EventData, OptionalMetaExtractor, RowsEventData, TableMapEvent,
};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn};
use mysql_common::io::ParseBuf;
use serde_json::{Map, Value as Json};

use crate::config::MySqlConfig;
use crate::ddl::{Catalog, DdlError, TableChange, TableId};
use crate::gtid::{is_mysql_gtid_set, uuid_text, MySqlGtidSet};
use crate::history;
use crate::server::{binlog_stream_err, connect, mysql_err, Flavor};
use crate::table::{RowLayout, SourceInfo, TableSchema};
use crate::types::{binlog_type_matches, ColumnInfo};
use connect_core::jobs::OrderedJobs;

/// Header flag of events the server makes up (the first Rotate), not read from a file.
const LOG_EVENT_ARTIFICIAL_F: u16 = 0x20;

/// The server's heartbeat (sent while it has nothing else to send).
const HEARTBEAT_EVENT: u8 = 0x1b;

/// Change events of one transaction before a batch is cut inside it.
const MAX_TX_BATCH: usize = 2048;

/// Rows-event bytes decoded by one job on the blocking pool: large enough that handing
/// work over costs little next to it, small enough to spread a transaction over cores.
const DECODE_JOB_BYTES: usize = 64 << 10;

/// Rows events (v1 as MariaDB writes them, v2 as MySQL 5.6+ does): write, update, delete.
const ROWS_EVENTS: [u8; 6] = [0x17, 0x18, 0x19, 0x1e, 0x1f, 0x20];

/// Where streaming resumes: the start of a transaction, how many of its binlog events
/// and then rows were delivered, and the GTID set completed before it (Debezium's keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub file: String,
    pub pos: u64,
    pub gtids: Option<String>,
    pub event: u64,
    pub row: u64,
}

impl Position {
    /// From a stored offset.
    pub(crate) fn from_offset(offset: &SourceOffset) -> Option<Position> {
        Some(Position {
            file: offset.get("file")?.as_str()?.to_owned(),
            pos: offset.get("pos")?.as_u64()?,
            gtids: offset
                .get("gtids")
                .and_then(Json::as_str)
                .map(str::to_owned),
            event: offset.get("event").and_then(Json::as_u64).unwrap_or(0),
            row: offset.get("row").and_then(Json::as_u64).unwrap_or(0),
        })
    }

    pub(crate) fn offset(&self, ts_sec: i64) -> SourceOffset {
        let mut m = Map::new();
        m.insert("file".into(), Json::from(self.file.as_str()));
        m.insert("pos".into(), Json::from(self.pos));
        if let Some(g) = &self.gtids {
            m.insert("gtids".into(), Json::from(g.as_str()));
        }
        if self.event > 0 || self.row > 0 {
            m.insert("event".into(), Json::from(self.event));
            m.insert("row".into(), Json::from(self.row));
        }
        m.insert("ts_sec".into(), Json::from(ts_sec));
        SourceOffset::new(m)
    }
}

/// The transaction being read.
struct Tx {
    gtid: Option<(u32, String)>,
    /// Binlog events read after its start.
    events: u64,
    /// What a restart inside this transaction skips.
    skip: (u64, u64),
    ts_us: i64,
    /// Its id in transaction metadata: the GTID, else `<file>:<pos>` of its start.
    id: ByteString,
    /// Event counts for the `transaction` blocks and the END record.
    counts: TxCounts,
    /// The BEGIN record is still to be emitted (metadata on, not a replay).
    begin_pending: bool,
    /// A group without BEGIN/COMMIT (MariaDB's GTID flag): its DDL ends it.
    standalone: bool,
}

/// A captured table: its schema, and how its rows events' row images are laid out.
#[derive(Clone)]
struct Captured {
    schema: Arc<TableSchema>,
    layout: Arc<RowLayout>,
}

/// The change events of one decoded rows event.
struct DecodedEvent {
    /// The transaction's events read up to and including it: a batch cut after it
    /// resumes past them.
    events_done: u64,
    /// Its table's data collection (`db.table`).
    collection: Arc<str>,
    /// Rows delivered before a restart: not emitted, but counted in transaction metadata.
    delivered: u64,
    records: Vec<Record>,
}

/// The decoded rows events of one decoding job.
type Decoded = Vec<DecodedEvent>;

/// What the decoding of one rows event needs besides the event.
struct RowsContext {
    config: Arc<MySqlConfig>,
    captured: Captured,
    op: Op,
    /// Rows of this event delivered before a restart.
    skip_rows: u64,
    /// The `source` block of its events (`file` is the binlog file's name).
    info: SourceInfo,
}

pub(crate) struct Streaming {
    config: Arc<MySqlConfig>,
    flavor: Flavor,
    partition: SourcePartition,
    stream: BinlogStream,
    meta: Conn,
    file: String,
    /// The completed GTID set, per MariaDB domain.
    gtids: BTreeMap<u32, String>,
    /// On MySQL, the completed GTID set, when the offset had one (a set known from the
    /// start: tracking one from the middle would claim too little).
    mysql_gtids: Option<MySqlGtidSet>,
    /// MySQL's GTID of the transaction being read (its GTID event precedes its BEGIN, or
    /// its DDL).
    pending_mysql_gtid: Option<(String, u64)>,
    /// Resume point: the start of the next transaction (and what of it to skip).
    resume: Position,
    /// What the first transaction read skips: the stream starts at the stored offset's
    /// transaction, whose first events and rows were delivered before the restart.
    first_tx_skip: Option<(u64, u64)>,
    tx: Option<Tx>,
    /// Table id → the captured table (None: not captured).
    tables: HashMap<u64, Option<Captured>>,
    /// The captured tables' columns at the position read, from the schema history and
    /// the DDL read since.
    catalog: Catalog,
    /// Rows events being decoded on the blocking pool, oldest first: decoding is most of
    /// the work, and runs there on every core while this task reads on.
    decoding: OrderedJobs<Decoded>,
    /// Decoded rows events not in a batch yet (a batch was cut inside a job's events).
    decoded: VecDeque<DecodedEvent>,
    /// `<prefix>.<topic.transaction>`.
    transaction_topic: Arc<str>,
    /// Where the transaction being read ended (its XID or COMMIT), once read: its last
    /// decoded rows are delivered before the commit.
    commit_at: Option<u64>,
    /// Rows events read and not handed to a decoding job yet (with the transaction's
    /// events read up to each), and their size in bytes.
    unsent: Vec<(Event, u64, RowsContext)>,
    unsent_bytes: usize,
    server_value: Value,
    /// Checksum bytes per event (`binlog_checksum`): 4 for CRC32, 0 for NONE.
    checksum_len: usize,
    /// When `heartbeat.interval.ms` next sends a position-only batch.
    next_heartbeat: tokio::time::Instant,
}

impl Streaming {
    /// Connects a replica session at `from` (a transaction start).
    pub(crate) async fn start(
        config: Arc<MySqlConfig>,
        flavor: Flavor,
        partition: SourcePartition,
        from: Position,
        catalog: Catalog,
    ) -> Result<Streaming, Error> {
        let mut meta = connect(&config, "cannot connect").await?;
        let checksum: Option<String> = meta
            .query_first("SELECT @@global.binlog_checksum")
            .await
            .map_err(|e| mysql_err("cannot read binlog_checksum", e))?;
        let checksum_len = match checksum.as_deref() {
            Some(c) if c.eq_ignore_ascii_case("NONE") => 0,
            _ => 4,
        };
        let mut conn = connect(&config, "cannot connect the binlog reader").await?;
        let gtids = from
            .gtids
            .as_deref()
            .filter(|_| flavor == Flavor::MariaDb)
            .map(parse_gtid_set)
            .unwrap_or_default();
        let gtid_mode = flavor == Flavor::MariaDb && !gtids.is_empty();
        let mysql_gtids = from
            .gtids
            .as_deref()
            .filter(|g| flavor == Flavor::MySql && is_mysql_gtid_set(g))
            .map(|g| {
                MySqlGtidSet::parse(g).map_err(|e| {
                    Error::fatal(
                        "mysql",
                        format!("the stored offset's GTID set is unreadable: {e}"),
                    )
                })
            })
            .transpose()?;
        if flavor == Flavor::MariaDb {
            // Without it MariaDB replaces its GTID events by BEGIN queries.
            conn.query_drop("SET @mariadb_slave_capability = 4")
                .await
                .map_err(|e| mysql_err("cannot prepare the binlog session", e))?;
        }
        if let Some(keep_alive) = config.keep_alive {
            // Heartbeats while idle, so that silence means a dead connection.
            let period_ns = keep_alive.as_nanos() * 4 / 5;
            conn.query_drop(format!("SET @master_heartbeat_period = {period_ns}"))
                .await
                .map_err(|e| mysql_err("cannot set the binlog heartbeat period", e))?;
        }
        if gtid_mode {
            // The server starts right after these transactions, wherever its binlog has
            // them (another file and position after a failover to a replica).
            let state = mariadb_gtid_text(&gtids).unwrap_or_default();
            conn.exec_drop("SET @slave_connect_state = ?", (state,))
                .await
                .map_err(|e| mysql_err("cannot set the GTID position", e))?;
        }
        let request = BinlogStreamRequest::new(config.server_id);
        let request = if gtid_mode {
            request.with_filename(b"").with_pos(4u64)
        } else if let Some(set) = mysql_gtids.as_ref().filter(|s| !s.is_empty()) {
            // COM_BINLOG_DUMP_GTID: the server sends what the set lacks, from any file.
            let sids = set
                .sources(|uuid| config.uses_gtid_source(uuid))
                .sids()
                .map_err(|e| Error::fatal("mysql", format!("the GTID set to resume from: {e}")))?;
            request
                .with_gtid()
                .with_gtid_set(sids)
                .with_filename(b"")
                .with_pos(4u64)
        } else {
            request
                .with_filename(from.file.as_bytes())
                .with_pos(from.pos)
        };
        let stream = conn.get_binlog_stream(request).await.map_err(|e| {
            mysql_err(
                &format!(
                    "cannot read the binlog at {}:{} (GTIDs {})",
                    from.file,
                    from.pos,
                    from.gtids.as_deref().unwrap_or("none")
                ),
                e,
            )
        })?;
        tracing::info!(file = %from.file, pos = from.pos, gtids = ?from.gtids, gtid_mode, "binlog streaming started");
        let config_heartbeat = config.heartbeat_interval;
        let transaction_topic = Arc::from(format!(
            "{}.{}",
            config.topic_prefix, config.transaction_topic
        ));
        Ok(Streaming {
            server_value: Value::interned(&config.topic_prefix),
            config,
            flavor,
            partition,
            stream,
            meta,
            file: from.file.clone(),
            gtids,
            mysql_gtids,
            pending_mysql_gtid: None,
            first_tx_skip: Some((from.event, from.row)),
            resume: from,
            tx: None,
            tables: HashMap::new(),
            catalog,
            decoding: OrderedJobs::new("the rows decoder"),
            decoded: VecDeque::new(),
            transaction_topic,
            commit_at: None,
            unsent: Vec::new(),
            unsent_bytes: 0,
            checksum_len,
            next_heartbeat: tokio::time::Instant::now() + config_heartbeat,
        })
    }

    fn gtid_string(&self) -> Option<String> {
        if let Some(set) = &self.mysql_gtids {
            return (!set.is_empty()).then(|| set.to_string());
        }
        mariadb_gtid_text(&self.gtids)
    }

    fn batch(&self, records: Vec<Record>, ts_us: i64) -> SourceBatch {
        SourceBatch {
            records,
            offsets: vec![(
                self.partition.clone(),
                self.resume.offset(ts_us / 1_000_000),
            )],
        }
    }

    /// The next batch: a committed transaction (or part of a large one).
    pub(crate) async fn poll(&mut self) -> Result<SourceBatch, Error> {
        let mut records = Vec::new();
        loop {
            if let Some(next_pos) = self.commit_at {
                // The transaction ended: its last rows, in batches of MAX_TX_BATCH.
                if let Some(events_done) = self.collect(&mut records, true).await? {
                    return Ok(self.cut(records, events_done));
                }
                self.commit_at = None;
                return self.commit(next_pos, records);
            }
            let heartbeat = self.config.heartbeat_interval;
            let keep_alive = self.config.keep_alive;
            let event = tokio::select! {
                event = self.stream.next() => event,
                _ = tokio::time::sleep(keep_alive.unwrap_or_default()), if keep_alive.is_some() => {
                    return Err(Error::retryable(
                        "mysql",
                        format!(
                            "no binlog event or heartbeat from {}:{} for {:?} (connect.keep.alive.interval.ms): the connection is taken for dead",
                            self.config.host,
                            self.config.port,
                            keep_alive.unwrap_or_default()
                        ),
                    ));
                }
                // Between transactions only: a position-only batch, so that an idle
                // connector still commits and its consumers see it is alive.
                _ = tokio::time::sleep_until(self.next_heartbeat), if !heartbeat.is_zero() && self.tx.is_none() => {
                    self.next_heartbeat = tokio::time::Instant::now() + heartbeat;
                    let now_us = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_micros() as i64);
                    return Ok(self.batch(records, now_us));
                }
            };
            let event = event
                .ok_or_else(|| Error::retryable("mysql", "the binlog stream ended"))?
                .map_err(|e| binlog_stream_err(&self.config, e))?;
            let header = event.header();
            let (kind, next_pos, size) = (
                header.event_type_raw(),
                u64::from(header.log_pos()),
                u64::from(header.event_size()),
            );
            let (server_id, ts_us) = (
                i64::from(header.server_id()),
                i64::from(header.timestamp()) * 1_000_000,
            );
            let artificial = header.flags_raw() & LOG_EVENT_ARTIFICIAL_F != 0;
            let start_pos = next_pos.saturating_sub(size);
            // Heartbeats are not in the binlog: they must not count among the events a
            // restart inside a transaction skips.
            if kind == HEARTBEAT_EVENT {
                continue;
            }
            if let Some(tx) = self.tx.as_mut() {
                tx.events += 1;
            }
            match kind {
                // MariaDB GTID: a transaction starts (seq_no u64, domain u32, flags u8).
                0xa2 => {
                    let data = event.data();
                    if data.len() < 13 {
                        return Err(Error::fatal("mysql", "truncated MariaDB GTID event"));
                    }
                    let seq = u64::from_le_bytes(data[0..8].try_into().expect("8 bytes"));
                    let domain = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes"));
                    self.begin(
                        start_pos,
                        Some((domain, format!("{domain}-{server_id}-{seq}"))),
                        ts_us,
                    );
                    // FL_STANDALONE: no BEGIN/COMMIT around the group (a plain DDL). A
                    // CREATE TABLE ... SELECT is a DDL followed by rows and an XID.
                    if let Some(tx) = self.tx.as_mut() {
                        tx.standalone = data[12] & 1 != 0;
                    }
                    continue;
                }
                // MariaDB GTID_LIST, BINLOG_CHECKPOINT: nothing to do.
                0xa3 | 0xa1 => continue,
                // MariaDB's compressed query and rows events: refused at start, but
                // log_bin_compress can be turned on while we read; never skip rows.
                0xa5..=0xab => {
                    return Err(Error::fatal(
                        "mysql",
                        format!(
                            "compressed binlog event {kind:#x} at {}:{start_pos}: turn log_bin_compress off (compressed events are not read)",
                            self.file
                        ),
                    ))
                }
                _ => {}
            }
            if ROWS_EVENTS.contains(&kind) {
                self.dispatch_rows(event, start_pos, server_id)?;
                if let Some(events_done) = self.collect(&mut records, false).await? {
                    return Ok(self.cut(records, events_done));
                }
                continue;
            }
            let data = event.read_data().map_err(|e| {
                Error::fatal(
                    "mysql",
                    format!(
                        "undecodable binlog event {kind:#x} at {}:{start_pos}: {e}",
                        self.file
                    ),
                )
            })?;
            match data {
                Some(EventData::RotateEvent(r)) => {
                    let trailer = if artificial { self.checksum_len } else { 0 };
                    self.file = rotated_file_name(r.name_raw(), trailer)?;
                    // The artificial Rotate only says where the stream starts, which the
                    // resume point already holds (with its skip counts).
                    if self.tx.is_none() && !artificial {
                        self.resume = Position {
                            file: self.file.clone(),
                            pos: r.position(),
                            gtids: self.gtid_string(),
                            event: 0,
                            row: 0,
                        };
                    }
                }
                Some(EventData::QueryEvent(q)) => {
                    let sql = q.query();
                    if sql.eq_ignore_ascii_case("BEGIN") {
                        if self.tx.is_none() {
                            self.begin(start_pos, None, ts_us);
                        }
                    } else if sql.eq_ignore_ascii_case("COMMIT") {
                        self.commit_at = Some(next_pos);
                    } else if is_ddl(&sql) {
                        let db = q.schema();
                        self.schema_change(&sql, &db, next_pos).await?;
                        // Table ids are assigned again after DDL; the next TABLE_MAP maps
                        // them to the new versions.
                        self.tables.clear();
                        if self.tx.as_ref().is_none_or(|t| t.standalone) {
                            // A DDL is a transaction of its own.
                            self.commit_at = Some(next_pos);
                        }
                    }
                }
                Some(EventData::TableMapEvent(tme)) => {
                    let table_id = tme.table_id();
                    if !self.tables.contains_key(&table_id) {
                        let (db, table) = (
                            tme.database_name().into_owned(),
                            tme.table_name().into_owned(),
                        );
                        let schema = if self.config.captures(&db, &table) {
                            let id = (db.clone(), table.clone());
                            let columns = match self.catalog.get(&id) {
                                Some(columns) => columns.clone(),
                                None => self.table_not_in_history(id).await?,
                            };
                            check_table_map(&tme, &columns).map_err(|mismatch| {
                                Error::fatal(
                                    "mysql",
                                    format!(
                                        "{db}.{table}: the binlog event at {}:{start_pos} does not match the table's columns in the schema history ({mismatch}): the history misses a change of this table (a DDL it could not follow, or a history kept for another server); rebuild it with snapshot.mode=recovery once no DDL is pending, or snapshot again",
                                        self.file
                                    ),
                                )
                            })?;
                            Some(Captured {
                                schema: Arc::new(TableSchema::new(
                                    &self.config,
                                    self.flavor,
                                    &db,
                                    &table,
                                    &columns,
                                )?),
                                layout: Arc::new(RowLayout::new(&tme).map_err(|e| {
                                    Error::fatal(
                                        "mysql",
                                        format!("{db}.{table}: unreadable TABLE_MAP at {}:{start_pos}: {e}", self.file),
                                    )
                                })?),
                            })
                        } else {
                            None
                        };
                        self.tables.insert(table_id, schema);
                    }
                }
                Some(EventData::XidEvent(_)) => self.commit_at = Some(next_pos),
                // MySQL's GTID of the next transaction (anonymous ones, gno 0, when
                // gtid_mode is off, are not part of any set).
                Some(EventData::GtidEvent(g)) if self.mysql_gtids.is_some() && g.gno() > 0 => {
                    self.pending_mysql_gtid = Some((uuid_text(&g.sid()), g.gno()));
                }
                // Any other rows event (MySQL's partial JSON updates) would be rows lost.
                Some(EventData::RowsEvent(_)) => {
                    return Err(Error::fatal(
                        "mysql",
                        format!(
                            "unsupported rows event {kind:#x} at {}:{start_pos}: partial JSON updates are not read (set binlog_row_value_options to '')",
                            self.file
                        ),
                    ))
                }
                _ => {}
            }
        }
    }

    /// The position right after the transaction being read (a DDL's).
    fn after_current(&self, next_pos: u64) -> Position {
        let gtids = match (&self.mysql_gtids, &self.pending_mysql_gtid) {
            (Some(set), pending) => {
                let mut set = set.clone();
                if let Some((uuid, gno)) = pending {
                    set.add(uuid, *gno);
                }
                (!set.is_empty()).then(|| set.to_string())
            }
            (None, _) => {
                let mut gtids = self.gtids.clone();
                if let Some((domain, gtid)) = self.tx.as_ref().and_then(|t| t.gtid.clone()) {
                    gtids.insert(domain, gtid);
                }
                mariadb_gtid_text(&gtids)
            }
        };
        Position {
            file: self.file.clone(),
            pos: next_pos,
            gtids,
            event: 0,
            row: 0,
        }
    }

    /// Follows a DDL statement in the catalog and records what it changed of captured
    /// tables in the schema history. A statement that cannot be followed is read from the
    /// server's catalog only while nothing follows it in the binlog (the catalog then is
    /// the table as of this statement); otherwise it stops the connector naming it.
    async fn schema_change(&mut self, sql: &str, db: &str, next_pos: u64) -> Result<(), Error> {
        let config = self.config.clone();
        let follows = |id: &TableId| config.captures(&id.0, &id.1);
        let changes = match self.catalog.apply(sql, db, self.flavor, &follows) {
            Ok(changes) => changes,
            Err(e) => {
                let named = match &e {
                    DdlError::Unparsed { tables, .. } => tables.clone(),
                    DdlError::Unfollowable { table, .. } => vec![table.clone()],
                };
                let affected: Vec<TableId> = if named.is_empty() {
                    self.catalog
                        .ids()
                        .filter(|id| id.0 == db)
                        .cloned()
                        .collect()
                } else {
                    named.into_iter().filter(|id| follows(id)).collect()
                };
                if affected.is_empty() {
                    tracing::warn!(%sql, error = %e, "a DDL statement on no captured table was not followed");
                    return Ok(());
                }
                self.reread_without_later_ddl(sql, next_pos, &affected, &e)
                    .await?
            }
        };
        if changes.is_empty() {
            return Ok(());
        }
        tracing::info!(%sql, tables = changes.len(), "schema change recorded");
        let record = history::record(
            &self.partition,
            &self.after_current(next_pos),
            db,
            Some(sql),
            &changes,
            &self.catalog,
        );
        history::save(&self.config.schema_history, vec![record]).await
    }

    /// The first DDL statement in the binlog after `from` that may change one of
    /// `tables` (or names no table that can be told), if any.
    async fn later_ddl(
        &mut self,
        from: &(String, u64),
        tables: &[TableId],
    ) -> Result<Option<String>, Error> {
        let files: Vec<mysql_async::Row> = self
            .meta
            .query("SHOW BINARY LOGS")
            .await
            .map_err(|e| mysql_err("cannot list the binlog files", e))?;
        let files: Vec<String> = files.iter().filter_map(|r| r.get::<String, _>(0)).collect();
        let start = files.iter().position(|f| *f == from.0).unwrap_or(0);
        for file in &files[start..] {
            // Paged, because the server sends a whole file's listing (up to max_binlog_size
            // of events, millions under load) even after the first hit.
            let mut pos = if *file == from.0 { from.1 } else { 4 };
            loop {
                let page: Vec<mysql_async::Row> = self
                    .meta
                    .query(format!(
                        "SHOW BINLOG EVENTS IN '{}' FROM {pos} LIMIT {LATER_DDL_PAGE}",
                        file.replace('\'', "''")
                    ))
                    .await
                    .map_err(|e| mysql_err("cannot list the binlog's events", e))?;
                for event in &page {
                    if let Some(statement) = ddl_on(event, tables) {
                        return Ok(Some(statement));
                    }
                }
                match page.last().and_then(|e| e.get::<u64, _>(4)) {
                    Some(next) if page.len() == LATER_DDL_PAGE && next > pos => pos = next,
                    _ => break,
                }
            }
        }
        Ok(None)
    }

    /// Reads `tables` from the server's catalog, which is allowed only when no DDL that
    /// may change them follows the statement that ends at `next_pos` in the binlog
    /// (checked after reading, so that nothing slips in between).
    async fn reread_without_later_ddl(
        &mut self,
        sql: &str,
        next_pos: u64,
        tables: &[TableId],
        why: &DdlError,
    ) -> Result<Vec<TableChange>, Error> {
        let here = (self.file.clone(), next_pos);
        let mut read = Vec::new();
        for id in tables {
            read.push((
                id.clone(),
                crate::server::columns(&mut self.meta, &id.0, &id.1).await?,
            ));
        }
        if let Some(later) = self.later_ddl(&here, tables).await? {
            return Err(Error::fatal(
                "mysql",
                format!(
                    "cannot follow the DDL at {}:{} ({why}): {sql:?}; the tables' current definitions cannot stand in for it, because the binlog goes on past it with more DDL on them ({later:?}). Snapshot again (a new schema history), or exclude the table",
                    here.0, here.1
                ),
            ));
        }
        tracing::warn!(%sql, error = %why, "DDL not parsed: the tables were read from the server's catalog (no later DDL on them)");
        Ok(read
            .into_iter()
            .map(|(id, columns)| {
                let existed = self.catalog.get(&id).is_some();
                if columns.is_empty() {
                    self.catalog.remove(&id);
                    TableChange::Drop(id)
                } else {
                    self.catalog.put(id.clone(), columns);
                    if existed {
                        TableChange::Alter { id, previous: None }
                    } else {
                        TableChange::Create(id)
                    }
                }
            })
            .collect())
    }

    /// The columns of a captured table the history does not hold (a table renamed from
    /// an excluded name, a history started with `snapshot.mode=never`): the server's
    /// catalog, checked against the TABLE_MAP, and recorded from this transaction on.
    async fn table_not_in_history(&mut self, id: TableId) -> Result<Vec<ColumnInfo>, Error> {
        let columns = crate::server::columns(&mut self.meta, &id.0, &id.1).await?;
        self.catalog.put(id.clone(), columns.clone());
        history::save_created(
            &self.config.schema_history,
            &self.partition,
            &self.resume,
            &self.catalog,
            [&id],
        )
        .await?;
        Ok(columns)
    }

    /// A batch cut inside the transaction after `events_done` of its events.
    fn cut(&self, records: Vec<Record>, events_done: u64) -> SourceBatch {
        let position = Position {
            event: events_done,
            row: 0,
            ..self.resume.clone()
        };
        let ts = self.tx.as_ref().map_or(0, |tx| tx.ts_us);
        SourceBatch {
            records,
            offsets: vec![(self.partition.clone(), position.offset(ts / 1_000_000))],
        }
    }

    fn begin(&mut self, start: u64, gtid: Option<(u32, String)>, ts_us: i64) {
        // A restart inside this transaction resumes at its start and skips what was
        // delivered.
        let skip = self.first_tx_skip.take().unwrap_or((0, 0));
        self.resume = Position {
            file: self.file.clone(),
            pos: start,
            gtids: self.gtid_string(),
            event: 0,
            row: 0,
        };
        let id = match (&gtid, &self.pending_mysql_gtid) {
            (Some((_, g)), _) => ByteString::from(g.as_str()),
            (None, Some((uuid, gno))) => ByteString::from(format!("{uuid}:{gno}")),
            (None, None) => ByteString::from(format!("{}:{start}", self.file)),
        };
        self.tx = Some(Tx {
            gtid,
            events: 0,
            skip,
            ts_us,
            id,
            counts: TxCounts::default(),
            begin_pending: self.config.transaction_metadata && skip == (0, 0),
            standalone: false,
        });
    }

    fn commit(&mut self, next_pos: u64, mut records: Vec<Record>) -> Result<SourceBatch, Error> {
        let tx = self.tx.take();
        if let Some(tx) = tx.as_ref().filter(|t| t.counts.total > 0) {
            records.push(self.transaction_record(tx, true)?);
        }
        if let Some((domain, gtid)) = tx.as_ref().and_then(|t| t.gtid.clone()) {
            self.gtids.insert(domain, gtid);
        }
        if let (Some(set), Some((uuid, gno))) =
            (self.mysql_gtids.as_mut(), self.pending_mysql_gtid.take())
        {
            set.add(&uuid, gno);
        }
        self.resume = Position {
            file: self.file.clone(),
            pos: next_pos,
            gtids: self.gtid_string(),
            event: 0,
            row: 0,
        };
        let ts = tx.map_or(0, |t| t.ts_us);
        Ok(self.batch(records, ts))
    }

    /// The BEGIN or END record of a transaction (metadata on).
    fn transaction_record(&self, tx: &Tx, end: bool) -> Result<Record, Error> {
        let mut position = self.resume.file.as_bytes().to_vec();
        position.extend_from_slice(&self.resume.pos.to_le_bytes());
        transaction_record(
            &self.transaction_topic,
            &self.config.topic_prefix,
            &tx.id,
            end.then_some(&tx.counts),
            tx.ts_us,
            &position,
        )
    }

    /// Appends a decoded rows event's change events; with transaction metadata, a BEGIN
    /// record before the transaction's first and a `transaction` block in each.
    fn append(&mut self, event: DecodedEvent, records: &mut Vec<Record>) -> Result<(), Error> {
        if !self.config.transaction_metadata {
            records.extend(event.records);
            return Ok(());
        }
        let mut tx = self
            .tx
            .take()
            .ok_or_else(|| Error::fatal("mysql", "rows outside a transaction"))?;
        for _ in 0..event.delivered {
            tx.counts.count(&event.collection);
        }
        let mut result = Ok(());
        for mut record in event.records {
            if !record.is_tombstone() {
                if tx.begin_pending {
                    tx.begin_pending = false;
                    match self.transaction_record(&tx, false) {
                        Ok(begin) => records.push(begin),
                        Err(e) => result = Err(e),
                    }
                }
                let block = tx.counts.block(&tx.id, &event.collection);
                record.value = with_transaction(record.value, &block);
            }
            records.push(record);
        }
        self.tx = Some(tx);
        result
    }

    /// Hands a rows event of a captured table to the blocking pool for decoding, unless
    /// it was delivered before a restart.
    fn dispatch_rows(&mut self, event: Event, start_pos: u64, server_id: i64) -> Result<(), Error> {
        let undecodable = |e: String| {
            Error::fatal(
                "mysql",
                format!("undecodable rows event at {}:{start_pos}: {e}", self.file),
            )
        };
        let (table_id, op) = match event.read_data().map_err(|e| undecodable(e.to_string()))? {
            Some(EventData::RowsEvent(rows)) => (
                rows.table_id(),
                match rows {
                    RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => {
                        Op::Create
                    }
                    RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
                        Op::Delete
                    }
                    _ => Op::Update,
                },
            ),
            _ => return Err(undecodable("not a rows event".into())),
        };
        let Some(Some(captured)) = self.tables.get(&table_id).cloned() else {
            return Ok(());
        };
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| Error::fatal("mysql", "rows outside a transaction"))?;
        let events_done = tx.events;
        if self.config.skipped.skips(op) {
            return Ok(());
        }
        // Delivered before a restart: events before the skip point, rows before it in
        // the event it names. Transaction metadata still counts their rows.
        let delivered = events_done <= tx.skip.0;
        if delivered && !self.config.transaction_metadata {
            return Ok(());
        }
        let skip_rows = if delivered {
            u64::MAX
        } else if events_done == tx.skip.0 + 1 {
            tx.skip.1
        } else {
            0
        };
        let context = RowsContext {
            config: self.config.clone(),
            captured,
            op,
            skip_rows,
            info: SourceInfo {
                flavor: self.flavor,
                server: self.server_value.clone(),
                ts_us: tx.ts_us,
                snapshot: "false",
                server_id,
                gtid: tx
                    .gtid
                    .as_ref()
                    .map_or(Value::Null, |(_, g)| Value::string(g)),
                file: Value::string(&self.file),
                pos: start_pos,
                row: 0,
                processed_at: std::time::SystemTime::now(),
            },
        };
        self.unsent_bytes += event.data().len();
        self.unsent.push((event, events_done, context));
        if self.unsent_bytes >= DECODE_JOB_BYTES {
            self.send_unsent();
        }
        Ok(())
    }

    /// Hands the unsent rows events to a decoding job.
    fn send_unsent(&mut self) {
        if self.unsent.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.unsent);
        self.unsent_bytes = 0;
        self.decoding.start(move || {
            events
                .iter()
                .map(|(event, events_done, context)| {
                    let (delivered, records) = decode_rows(event, context)?;
                    Ok(DecodedEvent {
                        events_done: *events_done,
                        collection: context.captured.schema.collection.clone(),
                        delivered,
                        records,
                    })
                })
                .collect()
        });
    }

    /// Appends the decoded rows events to `records`, oldest first: every one when `all`
    /// (the transaction ends), else those done (and the oldest while too many are in
    /// flight). Returns where to cut the batch when it grew past [`MAX_TX_BATCH`]: the
    /// transaction's events delivered with it.
    async fn collect(
        &mut self,
        records: &mut Vec<Record>,
        all: bool,
    ) -> Result<Option<u64>, Error> {
        if all {
            self.send_unsent();
        }
        loop {
            while let Some(event) = self.decoded.pop_front() {
                let events_done = event.events_done;
                self.append(event, records)?;
                if records.len() >= MAX_TX_BATCH {
                    return Ok(Some(events_done));
                }
            }
            match self.decoding.next(all).await? {
                Some(decoded) => self.decoded = decoded.into(),
                None => return Ok(None),
            }
        }
    }
}

/// Decodes the rows of one rows event into change events (on the blocking pool), and
/// counts the rows delivered before a restart, which it skips.
fn decode_rows(event: &Event, context: &RowsContext) -> Result<(u64, Vec<Record>), Error> {
    let table = &context.captured.schema;
    let file = context.info.file.as_str().unwrap_or_default();
    let undecodable = |e: &dyn std::fmt::Display| {
        Error::fatal(
            "mysql",
            format!(
                "{}.{}: undecodable row at {file}:{}: {e}",
                table.database, table.table, context.info.pos
            ),
        )
    };
    let Some(EventData::RowsEvent(rows)) = event.read_data().map_err(|e| undecodable(&e))? else {
        return Err(undecodable(&"not a rows event"));
    };
    let columns = rows.num_columns() as usize;
    // Which columns each image holds (all of them with binlog_row_image=FULL).
    let before_image = rows.columns_before_image().map(|bits| {
        (0..columns)
            .map(|i| bits.get(i).is_some_and(|b| *b))
            .collect::<Vec<bool>>()
    });
    let after_image = rows.columns_after_image().map(|bits| {
        (0..columns)
            .map(|i| bits.get(i).is_some_and(|b| *b))
            .collect::<Vec<bool>>()
    });
    let layout = &context.captured.layout;
    let mut buf = ParseBuf(rows.rows_data());
    let mut out = Vec::new();
    let mut delivered = 0;
    let mut info = context.info.clone();
    for index in 0usize.. {
        if buf.0.is_empty() {
            break;
        }
        let row_start = buf.0.len();
        let mut image = |present: &Option<Vec<bool>>| {
            present
                .as_deref()
                .map(|present| table.row_from_binlog(layout, present, &mut buf))
                .transpose()
        };
        let before = image(&before_image)?;
        let after = image(&after_image)?;
        let size =
            table.change_event_size(row_start - buf.0.len(), before.is_some() && after.is_some());
        if (index as u64) < context.skip_rows {
            delivered += 1;
            continue;
        }
        info.row = index as i32;
        let id = EventId::from_parts(&[
            context.config.topic_prefix.as_bytes(),
            file.as_bytes(),
            &info.pos.to_le_bytes(),
            &(index as u64).to_le_bytes(),
        ]);
        let record = table
            .event(context.op, before, after, &info, id)?
            .with_size_estimate(size);
        let tombstone = (context.op == Op::Delete && context.config.tombstones_on_delete)
            .then(|| tombstone_for(&record));
        out.push(record);
        out.extend(tombstone);
    }
    Ok((delivered, out))
}

/// Whether a query event changes a schema (other queries in a transaction, such as
/// SAVEPOINT, do not end it).
fn is_ddl(sql: &str) -> bool {
    let word = sql
        .trim_start_matches(|c: char| c.is_whitespace() || c == '/' || c == '*' || c == '!')
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        word.as_str(),
        "CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE"
    )
}

/// The file a Rotate event names. The artificial Rotate the server sends first is read
/// before the format description that says checksums are on, so its 4 checksum bytes are
/// still on the name (and may well be ASCII digits).
fn rotated_file_name(raw: &[u8], trailer: usize) -> Result<String, Error> {
    let name = &raw[..raw.len().saturating_sub(trailer)];
    std::str::from_utf8(name)
        .ok()
        .filter(|n| {
            n.rsplit_once('.')
                .is_some_and(|(_, ext)| !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::fatal(
                "mysql",
                format!(
                    "a Rotate event names an unexpected binlog file {:?}",
                    String::from_utf8_lossy(raw)
                ),
            )
        })
}

/// Domain → GTID as `0-1-95,1-1-7` (None when empty).
fn mariadb_gtid_text(gtids: &BTreeMap<u32, String>) -> Option<String> {
    (!gtids.is_empty()).then(|| gtids.values().cloned().collect::<Vec<_>>().join(","))
}

/// `0-1-95,1-1-7` → domain → GTID.
pub(crate) fn parse_gtid_set(text: &str) -> BTreeMap<u32, String> {
    text.split(',')
        .map(str::trim)
        .filter_map(|g| Some((g.split('-').next()?.parse().ok()?, g.to_owned())))
        .collect()
}

/// The sequence number of a MariaDB GTID (`domain-server-seq`).
pub(crate) fn gtid_seq(gtid: &str) -> u64 {
    gtid.rsplit('-')
        .next()
        .and_then(|seq| seq.parse().ok())
        .unwrap_or(0)
}

/// Checks a TABLE_MAP against the catalog's columns: the count, each column's type, and
/// its name where the server writes names (`binlog_row_metadata=FULL`).
fn check_table_map(tme: &TableMapEvent<'_>, columns: &[ColumnInfo]) -> Result<(), String> {
    if tme.columns_count() as usize != columns.len() {
        return Err(format!(
            "{} columns in the event, {} in the catalog",
            tme.columns_count(),
            columns.len()
        ));
    }
    let names: Vec<String> = OptionalMetaExtractor::new(tme.iter_optional_meta())
        .map_err(|e| format!("unreadable optional metadata: {e}"))?
        .iter_column_name()
        .map(|n| n.map(|n| n.name().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("unreadable column names: {e}"))?;
    for (index, column) in columns.iter().enumerate() {
        if let Some(name) = names.get(index) {
            if *name != column.name {
                return Err(format!(
                    "column {} is `{name}` in the event, `{}` in the catalog",
                    index + 1,
                    column.name
                ));
            }
        }
        let binlog = tme
            .get_column_type(index)
            .map_err(|e| format!("column `{}`: {e}", column.name))?
            .expect("index below the column count");
        if !binlog_type_matches(&column.data_type, binlog) {
            return Err(format!(
                "column `{}` is {binlog:?} in the event, {} in the catalog",
                column.name, column.column_type
            ));
        }
    }
    Ok(())
}

/// Events per `SHOW BINLOG EVENTS` page when looking for later DDL.
const LATER_DDL_PAGE: usize = 10_000;

/// The statement of a binlog listing row (`SHOW BINLOG EVENTS`) if it is DDL that may
/// change one of `tables` or names no table that can be told.
fn ddl_on(event: &mysql_async::Row, tables: &[TableId]) -> Option<String> {
    if event.get::<String, _>(2)? != "Query" {
        return None;
    }
    let info: String = event.get(5)?;
    // MariaDB writes `use `db`; statement`.
    let (db, statement) = match info.strip_prefix("use `").and_then(|r| r.split_once("`; ")) {
        Some((db, statement)) => (db, statement),
        None => ("", info.as_str()),
    };
    if !crate::ddl::changes_tables(statement) {
        return None;
    }
    let named = crate::ddl::named_tables(statement, db);
    (named.is_empty() || named.iter().any(|id| tables.contains(id))).then(|| statement.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_names_lose_the_checksum_even_when_it_looks_like_digits() {
        assert_eq!(
            rotated_file_name(b"mariadb-bin.0000032917", 4).unwrap(),
            "mariadb-bin.000003"
        );
        assert_eq!(
            rotated_file_name(b"mariadb-bin.000003\xf0\x01\x7f\x00", 4).unwrap(),
            "mariadb-bin.000003"
        );
        assert_eq!(
            rotated_file_name(b"mariadb-bin.000004", 0).unwrap(),
            "mariadb-bin.000004"
        );
        let err = rotated_file_name(b"mariadb-bin", 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("mariadb-bin"), "{err}");
    }
}
