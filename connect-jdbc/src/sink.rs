//! The upsert sink: records (plain structs or Debezium change events) written to tables,
//! in one transaction from `put` to `flush`, together with the source offsets.

use std::collections::HashMap;
use std::sync::Arc;

use connect_core::envelope::Op;
use connect_core::properties::Scope;
use connect_core::{
    async_trait, ChangeEvent, CommitRequest, Error, OffsetMap, Record, Schema, SinkConnector,
    SinkTask, Struct, Task, TaskConfig, TaskContext, Value,
};

use crate::conn::{Connection, ConnectionConfig};
use crate::dialect::{Column, Dialect, TableName, WriteOp, WritePlan};
use crate::error::JdbcError;
use crate::store::{OffsetsTable, DEFAULT_OFFSETS_TABLE};
use crate::value::{SqlKind, SqlValue};

/// Default `batch.size`: rows per statement at most (Kafka Connect's JDBC sink default).
pub const DEFAULT_BATCH_SIZE: usize = 3000;
/// Default `table.name.format`.
pub const DEFAULT_TABLE_NAME_FORMAT: &str = "${topic}";
/// Records held for a replay (after a lost connection) beyond which the sink asks the
/// engine to commit early, bounding memory and transaction length.
const PENDING_COMMIT_BYTES: usize = 32 << 20;

/// `insert.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertMode {
    /// `INSERT` (a duplicate key is an error).
    Insert,
    /// Insert or update by key.
    Upsert,
    /// `UPDATE` by key (no row, no change).
    Update,
}

/// `pk.mode`: where the key columns come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkMode {
    /// No key.
    None,
    /// `__connect_topic`, `__connect_partition`, `__connect_offset` of records read from
    /// Kafka (the sink runner).
    Kafka,
    /// The record key (its fields, or `pk.fields` of them; a primitive key is the one
    /// column `pk.fields` names).
    RecordKey,
    /// Fields of the value (`pk.fields`, or all of them).
    RecordValue,
}

/// Configuration of [`JdbcSink`] (Kafka Connect's JDBC sink keys).
#[derive(Debug, Clone)]
pub struct JdbcSinkConfig {
    connection: ConnectionConfig,
    insert_mode: InsertMode,
    pk_mode: PkMode,
    pk_fields: Vec<String>,
    delete_enabled: bool,
    auto_create: bool,
    auto_evolve: bool,
    table_name_format: String,
    batch_size: usize,
    event_id_column: Option<String>,
    offsets_table: String,
}

impl JdbcSinkConfig {
    /// A sink into `connection`: plain inserts, no key, `${topic}` tables.
    pub fn new(connection: ConnectionConfig) -> Self {
        JdbcSinkConfig {
            connection,
            insert_mode: InsertMode::Insert,
            pk_mode: PkMode::None,
            pk_fields: Vec::new(),
            delete_enabled: false,
            auto_create: false,
            auto_evolve: false,
            table_name_format: DEFAULT_TABLE_NAME_FORMAT.into(),
            batch_size: DEFAULT_BATCH_SIZE,
            event_id_column: None,
            offsets_table: DEFAULT_OFFSETS_TABLE.into(),
        }
    }

    /// `insert.mode`.
    pub fn with_insert_mode(mut self, mode: InsertMode) -> Self {
        self.insert_mode = mode;
        self
    }

    /// `pk.mode` and `pk.fields`.
    pub fn with_pk(mut self, mode: PkMode, fields: &[&str]) -> Self {
        self.pk_mode = mode;
        self.pk_fields = fields.iter().map(|f| (*f).to_owned()).collect();
        self
    }

    /// `delete.enabled`: tombstones and Debezium deletes delete the row.
    pub fn with_delete_enabled(mut self, enabled: bool) -> Self {
        self.delete_enabled = enabled;
        self
    }

    /// `auto.create` and `auto.evolve` (add nullable columns; never drop).
    pub fn with_auto_create(mut self, create: bool, evolve: bool) -> Self {
        self.auto_create = create;
        self.auto_evolve = evolve;
        self
    }

    /// `table.name.format`: `${topic}`, `${source.db}`, `${source.schema}`,
    /// `${source.table}` are replaced (their dots become `_`); a literal dot qualifies the
    /// table with a schema.
    pub fn with_table_name_format(mut self, format: impl Into<String>) -> Self {
        self.table_name_format = format.into();
        self
    }

    /// `batch.size`: rows per statement at most.
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows;
        self
    }

    /// `event.id.column`: a text column receiving each record's event id (32 hex digits),
    /// so duplicates are visible even without a key.
    pub fn with_event_id_column(mut self, column: impl Into<String>) -> Self {
        self.event_id_column = Some(column.into());
        self
    }

    /// `offsets.table.name`.
    pub fn with_offsets_table(mut self, table: impl Into<String>) -> Self {
        self.offsets_table = table.into();
        self
    }

    /// Reads Kafka Connect's JDBC sink keys.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        let mut c = JdbcSinkConfig::new(ConnectionConfig::from_props(scope)?);
        c.insert_mode =
            match scope.one_of("insert.mode", &["insert", "upsert", "update"], "insert")? {
                "upsert" => InsertMode::Upsert,
                "update" => InsertMode::Update,
                _ => InsertMode::Insert,
            };
        c.pk_mode = match scope.one_of(
            "pk.mode",
            &["none", "kafka", "record_key", "record_value"],
            "none",
        )? {
            "kafka" => PkMode::Kafka,
            "record_key" => PkMode::RecordKey,
            "record_value" => PkMode::RecordValue,
            _ => PkMode::None,
        };
        c.pk_fields = scope
            .list("pk.fields")
            .into_iter()
            .map(str::to_owned)
            .collect();
        c.delete_enabled = scope.bool_or("delete.enabled", false)?;
        c.auto_create = scope.bool_or("auto.create", false)?;
        c.auto_evolve = scope.bool_or("auto.evolve", false)?;
        if let Some(format) = scope.get("table.name.format") {
            c.table_name_format = format.to_owned();
        }
        c.batch_size = scope.parse_or("batch.size", DEFAULT_BATCH_SIZE)?;
        c.event_id_column = scope.get("event.id.column").map(str::to_owned);
        if let Some(table) = scope.get("offsets.table.name") {
            c.offsets_table = table.to_owned();
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks the combination of settings; errors name the key.
    pub fn validate(&self) -> Result<(), Error> {
        self.connection.validate()?;
        if self.batch_size == 0 {
            return Err(Error::config("batch.size", "must be at least 1"));
        }
        if self.pk_mode == PkMode::None && self.insert_mode != InsertMode::Insert {
            return Err(Error::config(
                "pk.mode",
                "insert.mode=upsert and update need a key: set pk.mode to record_key, record_value or kafka",
            ));
        }
        if self.delete_enabled && !matches!(self.pk_mode, PkMode::RecordKey | PkMode::RecordValue) {
            return Err(Error::config(
                "delete.enabled",
                "deletes need pk.mode=record_key or record_value",
            ));
        }
        if self.pk_mode == PkMode::Kafka && !matches!(self.pk_fields.len(), 0 | 3) {
            return Err(Error::config(
                "pk.fields",
                "with pk.mode=kafka, name three columns (topic, partition, offset) or none",
            ));
        }
        if self.pk_mode == PkMode::None && !self.pk_fields.is_empty() {
            return Err(Error::config(
                "pk.fields",
                "needs a pk.mode other than none",
            ));
        }
        if self.table_name_format.is_empty() {
            return Err(Error::config("table.name.format", "must not be empty"));
        }
        if self.offsets_table.is_empty() {
            return Err(Error::config("offsets.table.name", "must not be empty"));
        }
        Ok(())
    }
}

/// Kafka Connect's JDBC sink, for PostgreSQL, MySQL/MariaDB and SQLite.
///
/// Exactly-once: rows and the source offsets they came from are committed in one
/// transaction (the offsets in `offsets.table.name`), and at start the engine resumes
/// from the offsets found there ([`SinkTask::committed_offsets`]).
#[derive(Debug, Clone)]
pub struct JdbcSink {
    config: Arc<JdbcSinkConfig>,
}

impl JdbcSink {
    /// A sink for a validated configuration.
    pub fn new(config: JdbcSinkConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(JdbcSink {
            config: Arc::new(config),
        })
    }
}

impl SinkConnector for JdbcSink {
    fn name(&self) -> &str {
        "jdbc-sink"
    }

    fn validate(&self) -> Result<(), Error> {
        self.config.validate()
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>, Error> {
        Ok(vec![TaskConfig::new()])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(JdbcSinkTask {
            config: self.config.clone(),
            dialect: self
                .config
                .connection
                .dialect()
                .expect("validated at construction"),
            conn: None,
            namespace: String::new(),
            tables: HashMap::new(),
            shapes: HashMap::new(),
            plans: HashMap::new(),
            in_transaction: false,
            pending: Vec::new(),
            pending_bytes: 0,
            unsure_commit: None,
            commit: CommitRequest::default(),
            offsets_table: OffsetsTable::new(&self.config.offsets_table),
            touched: Default::default(),
            last_shape: None,
            name_from_source: self.config.table_name_format.contains("${source."),
        })
    }
}

/// Where one column's value comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    KeyField(usize),
    WholeKey,
    RowField(usize),
    Topic,
    Partition,
    KafkaOffset,
    EventId,
}

/// A column of a record shape.
#[derive(Debug, Clone)]
struct ShapeColumn {
    name: String,
    kind: SqlKind,
    nullable: bool,
    source: Source,
}

/// How records of one table, operation and schema become rows.
#[derive(Debug)]
struct Shape {
    plan: Arc<WritePlan>,
    columns: Vec<ShapeColumn>,
    /// Kept so that the schema pointers keying the cache are never reused by other schemas.
    _schemas: (Option<Arc<Schema>>, Option<Arc<Schema>>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ShapeKey {
    table: TableName,
    op: WriteOp,
    key_schema: usize,
    row_schema: usize,
}

/// What a record asks for.
enum Action<'a> {
    Skip,
    Write(&'a Struct),
    Delete(Option<&'a Struct>),
}

struct JdbcSinkTask {
    config: Arc<JdbcSinkConfig>,
    dialect: &'static dyn Dialect,
    conn: Option<Box<dyn Connection>>,
    namespace: String,
    /// Known columns (name → SQL type) of each table written to.
    tables: HashMap<TableName, Vec<(String, String)>>,
    shapes: HashMap<ShapeKey, Arc<Shape>>,
    /// Plans by table, op and column names, shared by shapes with the same columns.
    plans: HashMap<(TableName, WriteOp, Vec<String>), Arc<WritePlan>>,
    in_transaction: bool,
    /// The batches written in the open transaction (shared with the engine, not copied),
    /// written again if its connection is lost.
    pending: Vec<Arc<Vec<Record>>>,
    pending_bytes: usize,
    /// Offsets of a commit whose outcome is unknown (the connection broke during COMMIT).
    unsure_commit: Option<OffsetMap>,
    commit: CommitRequest,
    offsets_table: OffsetsTable,
    /// Tables the open transaction has written to.
    touched: std::collections::HashSet<TableName>,
    last_shape: Option<LastShape>,
    /// `table.name.format` reads the record's `source` block, so a topic alone does not
    /// decide the table.
    name_from_source: bool,
}

/// The shape of the previous record, and what it was found for.
struct LastShape {
    topic: Arc<str>,
    op: WriteOp,
    key_schema: usize,
    row_schema: usize,
    shape: Arc<Shape>,
}

/// Rows of one plan waiting to be written in one statement.
struct Group {
    shape: Arc<Shape>,
    rows: Vec<SqlValue>,
    /// Row index by key, to keep only the last row of a key (an upsert or update statement
    /// cannot touch a row twice).
    by_key: HashMap<Vec<u8>, usize>,
}

fn table_error(
    table: &TableName,
    e: crate::conn::DbError,
    d: &dyn Dialect,
    action: &'static str,
) -> JdbcError {
    e.at(d.name(), action, &table.to_string())
}

impl JdbcSinkTask {
    /// The connection, reconnecting after a loss and then resolving an unsure commit and
    /// replaying the records of the lost transaction.
    async fn ready(&mut self) -> Result<(), JdbcError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let mut conn = self.config.connection.connect().await?;
        self.offsets_table.ensure(conn.as_mut()).await?;
        self.conn = Some(conn);
        self.transaction_ended();
        if let Some(target) = self.unsure_commit.take() {
            let stored = self.read_offsets().await?;
            if stored.as_ref().is_some_and(|s| covers(s, &target)) {
                tracing::info!("the commit interrupted by the lost connection had succeeded");
                self.pending.clear();
                self.pending_bytes = 0;
            }
        }
        if !self.pending.is_empty() {
            tracing::warn!(
                records = self.pending.iter().map(|b| b.len()).sum::<usize>(),
                "connection lost with an open transaction; writing its records again"
            );
            let pending = std::mem::take(&mut self.pending);
            let replayed = async {
                for batch in &pending {
                    self.write_records(batch).await?;
                }
                Ok::<_, JdbcError>(())
            }
            .await;
            self.pending = pending;
            if let Err(e) = replayed {
                return Err(self.after_failure(e));
            }
        }
        Ok(())
    }

    /// Drops a lost connection (so the next call reconnects and replays), or turns a
    /// failure with rows at stake into an error saying so.
    fn after_failure(&mut self, e: JdbcError) -> JdbcError {
        if e.is_retryable() {
            self.conn = None;
            self.transaction_ended();
        }
        e
    }

    fn transaction_ended(&mut self) {
        self.in_transaction = false;
        self.touched.clear();
    }

    async fn read_offsets(&mut self) -> Result<Option<OffsetMap>, JdbcError> {
        let conn = self.conn.as_deref_mut().expect("connected");
        self.offsets_table.read_latest(conn, &self.namespace).await
    }

    async fn begin(&mut self) -> Result<(), JdbcError> {
        if !self.in_transaction {
            let conn = self.conn.as_mut().expect("connected");
            conn.execute("BEGIN").await.map_err(|e| {
                e.at(
                    self.dialect.name(),
                    "begin transaction",
                    &self.config.offsets_table,
                )
            })?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Writes records in the open transaction (opening it), statement by statement.
    async fn write_records(&mut self, records: &[Record]) -> Result<(), JdbcError> {
        self.begin().await?;
        let mut group: Option<Group> = None;
        for record in records {
            let Some((shape, row)) = self.shape_of(record).await? else {
                continue;
            };
            let same = group
                .as_ref()
                .is_some_and(|g| Arc::ptr_eq(&g.shape, &shape));
            let full = group.as_ref().is_some_and(|g| {
                g.rows.len() / g.shape.columns.len().max(1) >= self.config.batch_size
            });
            if !same || full {
                if let Some(g) = group.take() {
                    self.execute(g).await?;
                }
            }
            let g = group.get_or_insert_with(|| Group {
                shape: shape.clone(),
                rows: Vec::with_capacity(
                    shape.columns.len() * records.len().min(self.config.batch_size),
                ),
                by_key: HashMap::new(),
            });
            let start = g.rows.len();
            self.append_row(&shape, record, row, &mut g.rows)?;
            g.keep_last_of_key(start);
        }
        if let Some(g) = group {
            self.execute(g).await?;
        }
        Ok(())
    }

    async fn execute(&mut self, group: Group) -> Result<(), JdbcError> {
        let plan = &group.shape.plan;
        if plan.op == WriteOp::Update && plan.value_columns().is_empty() {
            return Ok(());
        }
        if !self.touched.contains(&plan.table) {
            self.touched.insert(plan.table.clone());
        }
        let conn = self.conn.as_mut().expect("connected");
        let action = match plan.op {
            WriteOp::Insert => "insert",
            WriteOp::Upsert => "upsert",
            WriteOp::Update => "update",
            WriteOp::Delete => "delete",
        };
        conn.write(plan, group.rows)
            .await
            .map_err(|e| table_error(&plan.table, e, self.dialect, action))
    }

    /// The shape of a record and the row it writes; `None` for a record that writes nothing.
    async fn shape_of<'r>(
        &mut self,
        record: &'r Record,
    ) -> Result<Option<(Arc<Shape>, Option<&'r Struct>)>, JdbcError> {
        let action = self.action(record)?;
        let (op, row) = match action {
            Action::Skip => return Ok(None),
            Action::Write(row) => (
                match (self.config.pk_mode, self.config.insert_mode) {
                    (PkMode::None, _) | (_, InsertMode::Insert) => WriteOp::Insert,
                    (_, InsertMode::Upsert) => WriteOp::Upsert,
                    (_, InsertMode::Update) => WriteOp::Update,
                },
                Some(row),
            ),
            Action::Delete(row) => (WriteOp::Delete, row),
        };
        let key_schema = record
            .key_schema
            .as_ref()
            .map_or(0, |s| Arc::as_ptr(s) as usize);
        let row_schema = row.map_or(0, |r| Arc::as_ptr(r.schema()) as usize);
        // Consecutive records of one topic and schemas share a shape: found without
        // formatting the table name again (unless the name depends on the record's source).
        if let Some(last) = &self.last_shape {
            if last.op == op
                && last.key_schema == key_schema
                && last.row_schema == row_schema
                && *last.topic == *record.topic
                && !self.name_from_source
            {
                return Ok(Some((last.shape.clone(), row)));
            }
        }
        let key = ShapeKey {
            table: self.table_name(record),
            op,
            key_schema,
            row_schema,
        };
        let shape = match self.shapes.get(&key) {
            Some(shape) => shape.clone(),
            None => {
                let shape = self.shape(record, row, &key).await?;
                self.shapes.insert(key.clone(), shape.clone());
                shape
            }
        };
        self.last_shape = Some(LastShape {
            topic: record.topic.clone(),
            op,
            key_schema,
            row_schema,
            shape: shape.clone(),
        });
        Ok(Some((shape, row)))
    }

    /// Appends the record's row (in the shape's column order) to `out`.
    fn append_row(
        &self,
        shape: &Shape,
        record: &Record,
        row: Option<&Struct>,
        out: &mut Vec<SqlValue>,
    ) -> Result<(), JdbcError> {
        for column in &shape.columns {
            let value = match column.source {
                Source::KeyField(i) => {
                    let key = record.key.as_struct().and_then(|k| k.get_index(i));
                    SqlValue::from_value(column.kind, key.unwrap_or(&Value::Null))
                }
                Source::WholeKey => SqlValue::from_value(column.kind, &record.key),
                Source::RowField(i) => match row {
                    Some(r) => SqlValue::from_value(column.kind, &r.values()[i]),
                    None => Ok(SqlValue::Null),
                },
                Source::Topic => Ok(SqlValue::Text(bytestring::ByteString::from(&*record.topic))),
                Source::Partition => Ok(SqlValue::Int(record.partition.unwrap_or(-1).into())),
                Source::KafkaOffset => Ok(SqlValue::Int(record.kafka_offset.unwrap_or(-1))),
                Source::EventId => Ok(SqlValue::Text(record.event_id.to_string().into())),
            }
            .map_err(|message| {
                self.bad(
                    record,
                    &shape.plan.table,
                    format!("column `{}`: {message}", column.name),
                )
            })?;
            if matches!(value, SqlValue::Null)
                && matches!(column.source, Source::KeyField(_) | Source::WholeKey)
            {
                return Err(self.bad(
                    record,
                    &shape.plan.table,
                    format!("key column `{}` is null", column.name),
                ));
            }
            out.push(value);
        }
        Ok(())
    }

    fn bad(&self, record: &Record, table: &TableName, message: String) -> JdbcError {
        JdbcError::BadRecord {
            topic: record.topic.to_string(),
            table: table.to_string(),
            message,
        }
    }

    fn action<'r>(&self, record: &'r Record) -> Result<Action<'r>, JdbcError> {
        let not_struct = || JdbcError::BadRecord {
            topic: record.topic.to_string(),
            table: self.table_name(record).to_string(),
            message: "the value is not a struct (a schema'd row or a Debezium change event)".into(),
        };
        if record.value.is_null() {
            return Ok(if self.config.delete_enabled {
                Action::Delete(None)
            } else {
                Action::Skip
            });
        }
        if let Some(event) = ChangeEvent::from_record(record) {
            return match event.op() {
                Some(Op::Delete) if self.config.delete_enabled => {
                    Ok(Action::Delete(event.before()))
                }
                Some(Op::Delete | Op::Truncate | Op::Message) => Ok(Action::Skip),
                _ => event.after().map(Action::Write).ok_or_else(not_struct),
            };
        }
        record
            .value
            .as_struct()
            .map(Action::Write)
            .ok_or_else(not_struct)
    }

    /// `table.name.format` applied to a record.
    fn table_name(&self, record: &Record) -> TableName {
        let source = ChangeEvent::from_record(record).and_then(|e| e.source());
        let field = |name: &str| {
            source
                .and_then(|s| s.get(name))
                .and_then(Value::as_str)
                .unwrap_or("")
                .replace('.', "_")
        };
        // The values have no dots left, so the dots that remain are the format's own.
        let name = self
            .config
            .table_name_format
            .replace("${topic}", &record.topic.replace('.', "_"))
            .replace("${source.db}", &field("db"))
            .replace("${source.schema}", &field("schema"))
            .replace("${source.table}", &field("table"));
        TableName::parse(&name)
    }

    /// Works out the columns of a new record shape, creating or evolving its table.
    async fn shape(
        &mut self,
        record: &Record,
        row: Option<&Struct>,
        key: &ShapeKey,
    ) -> Result<Arc<Shape>, JdbcError> {
        let table = &key.table;
        let mut columns = self.key_columns(record, row, table)?;
        let key_count = columns.len();
        if key.op != WriteOp::Delete {
            let row = row.expect("writes have a row");
            for (i, field) in row.schema().fields().iter().enumerate() {
                if columns[..key_count].iter().any(|c| c.name == field.name()) {
                    continue;
                }
                columns.push(self.column(
                    table,
                    field.name(),
                    field.schema(),
                    Source::RowField(i),
                )?);
            }
            if let Some(name) = &self.config.event_id_column {
                columns.push(ShapeColumn {
                    name: name.clone(),
                    kind: SqlKind::Text,
                    nullable: false,
                    source: Source::EventId,
                });
            }
        }
        let sql_types = self
            .ensure_table(table, &columns[..key_count], &columns)
            .await?;
        let d = self.dialect;
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let plan_key = (table.clone(), key.op, names);
        let next_id = self.plans.len() as u64 + 1;
        let plan = self
            .plans
            .entry(plan_key)
            .or_insert_with(|| {
                Arc::new(WritePlan {
                    id: next_id,
                    table: table.clone(),
                    quoted_table: d.quote_table(table),
                    op: key.op,
                    columns: columns
                        .iter()
                        .zip(sql_types)
                        .map(|(c, sql_type)| Column {
                            name: c.name.clone(),
                            quoted: d.quote(&c.name),
                            sql_type,
                        })
                        .collect(),
                    keys: key_count,
                })
            })
            .clone();
        Ok(Arc::new(Shape {
            plan,
            columns,
            _schemas: (record.key_schema.clone(), row.map(|r| r.schema().clone())),
        }))
    }

    fn column(
        &self,
        table: &TableName,
        name: &str,
        schema: &Schema,
        source: Source,
    ) -> Result<ShapeColumn, JdbcError> {
        let kind = SqlKind::of(schema).ok_or_else(|| JdbcError::UnsupportedType {
            dialect: self.dialect.name(),
            table: table.to_string(),
            column: name.to_owned(),
            schema: format!(
                "{}{}",
                schema.schema_type().json_name(),
                schema.name().map(|n| format!(" ({n})")).unwrap_or_default()
            ),
        })?;
        Ok(ShapeColumn {
            name: name.to_owned(),
            kind,
            nullable: schema.is_optional(),
            source,
        })
    }

    /// The key columns `pk.mode` asks for.
    fn key_columns(
        &self,
        record: &Record,
        row: Option<&Struct>,
        table: &TableName,
    ) -> Result<Vec<ShapeColumn>, JdbcError> {
        let fields = &self.config.pk_fields;
        let pick = |schema: &Schema, from_key: bool| -> Result<Vec<ShapeColumn>, JdbcError> {
            let all: Vec<&str> = schema.fields().iter().map(|f| f.name()).collect();
            let names: Vec<&str> = if fields.is_empty() {
                all
            } else {
                fields.iter().map(String::as_str).collect()
            };
            names
                .into_iter()
                .map(|name| {
                    let (i, field) = schema.field(name).ok_or_else(|| {
                        self.bad(
                            record,
                            table,
                            format!(
                                "pk.fields names `{name}`, which the {} does not have",
                                if from_key { "key" } else { "value" }
                            ),
                        )
                    })?;
                    let source = if from_key {
                        Source::KeyField(i)
                    } else {
                        Source::RowField(i)
                    };
                    let mut c = self.column(table, name, field.schema(), source)?;
                    c.nullable = false;
                    Ok(c)
                })
                .collect()
        };
        match self.config.pk_mode {
            PkMode::None => Ok(Vec::new()),
            PkMode::Kafka => {
                if record.kafka_offset.is_none() {
                    return Err(self.bad(record, table, "pk.mode=kafka needs records read from Kafka (the sink runner); use record_key or record_value".into()));
                }
                let default = ["__connect_topic", "__connect_partition", "__connect_offset"];
                let name = |i: usize| fields.get(i).map_or(default[i], String::as_str).to_owned();
                Ok(vec![
                    ShapeColumn {
                        name: name(0),
                        kind: SqlKind::Text,
                        nullable: false,
                        source: Source::Topic,
                    },
                    ShapeColumn {
                        name: name(1),
                        kind: SqlKind::Int(4),
                        nullable: false,
                        source: Source::Partition,
                    },
                    ShapeColumn {
                        name: name(2),
                        kind: SqlKind::Int(8),
                        nullable: false,
                        source: Source::KafkaOffset,
                    },
                ])
            }
            PkMode::RecordKey => {
                let schema = record.key_schema.as_ref().ok_or_else(|| {
                    self.bad(
                        record,
                        table,
                        "pk.mode=record_key needs a key with a schema".into(),
                    )
                })?;
                if schema.schema_type() == connect_core::SchemaType::Struct {
                    return pick(schema, true);
                }
                let [name] = fields.as_slice() else {
                    return Err(self.bad(
                        record,
                        table,
                        "a primitive key needs exactly one column name in pk.fields".into(),
                    ));
                };
                let mut c = self.column(table, name, schema, Source::WholeKey)?;
                c.nullable = false;
                Ok(vec![c])
            }
            PkMode::RecordValue => match row {
                Some(row) => pick(row.schema(), false),
                None => Err(self.bad(
                    record,
                    table,
                    "a delete with pk.mode=record_value needs the row before the change (`before`)"
                        .into(),
                )),
            },
        }
    }

    /// Creates the table or adds missing columns as `auto.create` / `auto.evolve` allow;
    /// returns each column's SQL type.
    async fn ensure_table(
        &mut self,
        table: &TableName,
        keys: &[ShapeColumn],
        columns: &[ShapeColumn],
    ) -> Result<Vec<String>, JdbcError> {
        let d = self.dialect;
        let lookup = |e| table_error(table, e, d, "read columns");
        if !self.tables.contains_key(table) {
            let conn = self.conn.as_mut().expect("connected");
            match conn.columns(table).await.map_err(lookup)? {
                Some(existing) => {
                    self.tables.insert(table.clone(), existing);
                }
                None if self.config.auto_create => {
                    let defs: Vec<(String, String, bool)> = columns
                        .iter()
                        .map(|c| {
                            let is_key = keys.iter().any(|k| k.name == c.name);
                            (
                                c.name.clone(),
                                d.column_type(c.kind, is_key),
                                c.nullable && !is_key,
                            )
                        })
                        .collect();
                    let key_names: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
                    self.ddl(
                        table,
                        &d.create_table(table, &defs, &key_names),
                        "create table",
                    )
                    .await?;
                    tracing::info!(%table, "created table");
                }
                None => {
                    return Err(JdbcError::MissingTable {
                        table: table.to_string(),
                    })
                }
            }
        }
        let find = |existing: &[(String, String)], name: &str| {
            existing
                .iter()
                .find(|(n, _)| n == name)
                .or_else(|| existing.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
                .map(|(_, ty)| ty.clone())
        };
        let existing = self.tables.get(table).cloned().unwrap_or_default();
        let missing: Vec<&ShapeColumn> = columns
            .iter()
            .filter(|c| find(&existing, &c.name).is_none())
            .collect();
        if !missing.is_empty() && !existing.is_empty() {
            if !self.config.auto_evolve {
                return Err(JdbcError::MissingColumn {
                    table: table.to_string(),
                    column: missing[0].name.clone(),
                });
            }
            for c in missing {
                let sql = d.add_column(table, &c.name, &d.column_type(c.kind, false));
                self.ddl(table, &sql, "add column").await?;
                tracing::info!(%table, column = %c.name, "added column");
            }
        }
        let conn = self.conn.as_mut().expect("connected");
        let existing = match conn.columns(table).await.map_err(lookup)? {
            Some(e) => e,
            None => {
                return Err(JdbcError::MissingTable {
                    table: table.to_string(),
                })
            }
        };
        let types = columns
            .iter()
            .map(|c| {
                find(&existing, &c.name).ok_or_else(|| JdbcError::MissingColumn {
                    table: table.to_string(),
                    column: c.name.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.tables.insert(table.clone(), existing);
        Ok(types)
    }

    async fn ddl(
        &mut self,
        table: &TableName,
        sql: &str,
        action: &'static str,
    ) -> Result<(), JdbcError> {
        let failed = |e| table_error(table, e, self.dialect, action);
        // MySQL commits the open transaction before any DDL and leaves the session in
        // autocommit. DDL on a table the transaction has not written to runs on a
        // connection of its own, keeping the transaction whole; a table it has written to
        // is locked by it, so that DDL runs here and a new transaction begins after it.
        if self.dialect.name() == "mysql" && self.in_transaction {
            if !self.touched.contains(table) {
                let mut side = self.config.connection.connect().await?;
                return side.execute(sql).await.map_err(failed);
            }
            tracing::warn!(%table, "MySQL commits the open transaction before this DDL: its rows become durable before their offsets (at-least-once for them)");
            let conn = self.conn.as_mut().expect("connected");
            conn.execute(sql).await.map_err(failed)?;
            self.transaction_ended();
            return self.begin().await;
        }
        let conn = self.conn.as_mut().expect("connected");
        conn.execute(sql).await.map_err(failed)
    }

    async fn try_put(&mut self, records: &[Record]) -> Result<(), JdbcError> {
        self.ready().await?;
        self.write_records(records).await
    }

    async fn try_flush(&mut self, offsets: &OffsetMap) -> Result<(), JdbcError> {
        self.ready().await?;
        if !self.in_transaction && offsets.is_empty() {
            return Ok(());
        }
        self.begin().await?;
        let conn = self.conn.as_deref_mut().expect("connected");
        self.offsets_table
            .write(conn, &self.namespace, offsets)
            .await?;
        match conn.execute("COMMIT").await {
            Ok(()) => {
                self.transaction_ended();
                self.pending.clear();
                self.pending_bytes = 0;
                Ok(())
            }
            Err(e) => {
                if e.lost {
                    self.unsure_commit = Some(offsets.clone());
                }
                Err(table_error(
                    &TableName::parse(&self.config.offsets_table),
                    e,
                    self.dialect,
                    "commit",
                ))
            }
        }
    }
}

impl Group {
    /// Keeps only the last row of a key in an upsert or update statement: the row just
    /// appended at `start` replaces an earlier one with the same key.
    fn keep_last_of_key(&mut self, start: usize) {
        let plan = &self.shape.plan;
        if !matches!(plan.op, WriteOp::Upsert | WriteOp::Update) || plan.keys == 0 {
            return;
        }
        let width = self.shape.columns.len();
        let mut key = String::new();
        for v in &self.rows[start..start + plan.keys] {
            let before = key.len();
            v.write_text(&mut key);
            // Length-suffixed, so ("ab","c") and ("a","bc") differ.
            key.push_str(itoa::Buffer::new().format(key.len() - before));
            key.push('\0');
        }
        let index = start / width;
        match self.by_key.get(key.as_bytes()) {
            Some(&at) => {
                let row: Vec<SqlValue> = self.rows.drain(start..).collect();
                self.rows[at * width..(at + 1) * width].clone_from_slice(&row);
            }
            None => {
                self.by_key.insert(key.into_bytes(), index);
            }
        }
    }
}

/// Whether every offset of `target` is in `stored`.
fn covers(stored: &OffsetMap, target: &OffsetMap) -> bool {
    target.iter().all(|(p, o)| stored.get(p) == Some(o))
}

#[async_trait]
impl Task for JdbcSinkTask {
    async fn start(&mut self, ctx: TaskContext) -> Result<(), Error> {
        self.namespace = ctx.pipeline.to_string();
        self.commit = ctx.commit;
        self.ready().await?;
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), Error> {
        if let (Some(conn), true) = (self.conn.as_mut(), self.in_transaction) {
            // Rows never covered by a flush were never acknowledged: they come again.
            let _ = conn.execute("ROLLBACK").await;
        }
        self.conn = None;
        Ok(())
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
}

#[async_trait]
impl SinkTask for JdbcSinkTask {
    async fn put(&mut self, records: &[Record]) -> Result<(), Error> {
        self.put_shared(&Arc::new(records.to_vec())).await
    }

    async fn put_shared(&mut self, records: &Arc<Vec<Record>>) -> Result<(), Error> {
        match self.try_put(records).await {
            Ok(()) => {
                self.pending_bytes += records.iter().map(Record::size_estimate).sum::<usize>();
                self.pending.push(Arc::clone(records));
                if self.pending_bytes > PENDING_COMMIT_BYTES {
                    self.commit.request();
                }
                Ok(())
            }
            Err(e) => Err(self.after_failure(e).into()),
        }
    }

    async fn flush(&mut self, offsets: &OffsetMap) -> Result<(), Error> {
        match self.try_flush(offsets).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.after_failure(e).into()),
        }
    }

    async fn committed_offsets(&mut self) -> Result<Option<OffsetMap>, Error> {
        self.ready().await?;
        Ok(self.read_offsets().await?)
    }
}
