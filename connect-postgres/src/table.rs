//! Per-table schemas (built once per table version) and the Debezium `source` block.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use connect_core::envelope::{source_schema_builder, EnvelopeSchema, Op, TransactionBlock};
use connect_core::{Error, EventId, Record, Schema, SchemaType, Struct, Value};

use crate::config::{Mask, PostgresConfig};
use crate::pgoutput::{binary_copy_fields, copy_fields, Column, CopyField, DecodeError};
use crate::types::{column_type, Codec, PgType};

/// What the catalog or a Relation message says about one column.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier (a domain's base modifier where the column has none).
    pub type_modifier: i32,
    /// The type, domains resolved to their base type.
    pub pg_type: PgType,
    /// `NOT NULL`.
    pub not_null: bool,
    /// Part of the key (primary key / replica identity).
    pub key: bool,
    /// The column's default, as far as it is known.
    pub default: Option<ColumnDefault>,
}

/// A column default from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnDefault {
    /// A constant, as PostgreSQL prints it in the column's type (`None`: SQL NULL).
    Literal(Option<String>),
    /// Computed when a row is written (`now()`, `nextval(..)`, `CURRENT_DATE`...).
    Generated,
}

/// The schema default Debezium 3.6 gives a column: the constant of a literal default, or
/// for a generated one the type's zero value, for the types it handles (observed with its
/// embedded engine; others get no default).
fn schema_default(c: &ColumnDef, codec: &Codec) -> Option<Value> {
    let PgType::Base { oid, .. } = c.pg_type else {
        return None;
    };
    let zero = match oid {
        20 | 21 | 23 | 700 | 701 => "0",
        1700 if c.type_modifier >= 4 => "0",
        16 => "f",
        25 | 1042 | 1043 => "",
        2950 => "00000000-0000-0000-0000-000000000000",
        114 | 3802 => "{}",
        1082 => "1970-01-01",
        1083 => "00:00:00",
        1114 => "1970-01-01 00:00:00",
        1184 => "1970-01-01 00:00:00+00",
        1186 => "PT0S",
        // Constants only.
        1700 | 142 | 1560 | 1562 => return literal_default(c, codec),
        _ => return None,
    };
    match &c.default {
        Some(ColumnDefault::Generated) => {
            codec.parse(bytes::Bytes::from_static(zero.as_bytes())).ok()
        }
        _ => literal_default(c, codec),
    }
}

fn literal_default(c: &ColumnDef, codec: &Codec) -> Option<Value> {
    match &c.default {
        Some(ColumnDefault::Literal(Some(text))) => {
            codec.parse(bytes::Bytes::from(text.clone())).ok()
        }
        _ => None,
    }
}

/// How one source column is handled.
#[derive(Debug, Clone)]
struct ColumnPlan {
    codec: Codec,
    keep: bool,
    mask: Option<Mask>,
    /// The column's length (varchar/char), for truncating hashes.
    max_chars: Option<usize>,
    /// What an unchanged TOASTed value becomes (`unavailable.value.placeholder`, as bytes
    /// for binary columns, as a one-element list for arrays).
    placeholder: Value,
}

impl ColumnPlan {
    /// The value as emitted: masked where the column is.
    fn masked(&self, value: Value) -> Value {
        match (&self.mask, value) {
            (Some(mask), Value::String(s)) => Value::from(mask.apply(&s, self.max_chars)),
            (_, v) => v,
        }
    }
}

/// A table version's schemas and codecs.
#[derive(Debug)]
pub struct TableSchema {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// `<prefix>.<schema>.<table>`.
    pub topic: Arc<str>,
    /// `<schema>.<table>`, the data collection name of transaction metadata.
    pub collection: Arc<str>,
    plan: Vec<ColumnPlan>,
    /// Snapshots read the table with a binary `COPY`: every kept column has a reader.
    binary_copy: bool,
    names: Vec<String>,
    key_positions: Vec<usize>,
    key_schema: Option<Arc<Schema>>,
    row_schema: Arc<Schema>,
    /// A snapshot event's memory beside its row's text: record, envelope, `source` and
    /// key slots (the engine's walk over the values would find about this much).
    event_overhead: usize,
    envelope: EnvelopeSchema,
    /// `source.schema` and `source.table`, built once (clones share the buffer).
    schema_value: Value,
    table_value: Value,
}

/// Debezium 3.x's `io.debezium.connector.postgresql.Source` schema.
pub fn source_schema() -> &'static Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        let s = |optional: bool| {
            Schema::builder(SchemaType::String)
                .with_optional(optional)
                .build()
        };
        let i64o = Schema::optional(SchemaType::Int64);
        source_schema_builder("io.debezium.connector.postgresql.Source")
            .field("schema", s(false))
            .field("table", s(false))
            .field("txId", i64o.clone())
            .field("lsn", i64o.clone())
            .field("xmin", i64o.clone())
            .field("origin", s(true))
            .field("origin_lsn", i64o)
            .build()
    })
}

/// Where an event comes from, for the `source` block.
#[derive(Debug, Clone)]
pub struct SourceInfo<'a> {
    /// `topic.prefix` (a string value, cloned per event without copying).
    pub server: &'a Value,
    /// Database name (a string value).
    pub db: &'a Value,
    /// Commit (or snapshot) time, microseconds since the epoch.
    pub ts_us: i64,
    /// `snapshot` marker (`true`, `first`, `last`, ..., or `false` when streaming).
    pub snapshot: &'static str,
    /// `sequence`: `["<last commit lsn>","<this lsn>"]` as a string value, or null.
    pub sequence: Value,
    /// Transaction id.
    pub tx_id: Option<i64>,
    /// LSN of the change.
    pub lsn: Option<u64>,
    /// The `transaction` block (`provide.transaction.metadata`).
    pub transaction: Option<TransactionBlock>,
}

impl SourceInfo<'_> {
    /// The `source` block for an event of `schema.table` (string values).
    pub fn to_struct(&self, schema: &Value, table: &Value) -> Result<Struct, Error> {
        Ok(Struct::new(
            source_schema().clone(),
            vec![
                Value::static_str(env!("CARGO_PKG_VERSION")),
                Value::static_str("postgresql"),
                self.server.clone(),
                Value::Int64(self.ts_us / 1000),
                Value::static_str(self.snapshot),
                self.db.clone(),
                self.sequence.clone(),
                Value::Int64(self.ts_us),
                Value::Int64(self.ts_us.saturating_mul(1000)),
                schema.clone(),
                table.clone(),
                self.tx_id.map_or(Value::Null, Value::Int64),
                self.lsn.map_or(Value::Null, |l| Value::Int64(l as i64)),
                Value::Null,
                Value::Null,
                Value::Null,
            ],
        )?)
    }
}

impl TableSchema {
    /// Builds the schemas of a table version; the configuration's column filter drops and
    /// masks columns (a key column cannot be dropped).
    pub fn new(
        config: &PostgresConfig,
        schema: &str,
        table: &str,
        columns: &[ColumnDef],
    ) -> Result<Self, Error> {
        let filter = &config.columns;
        let base = format!("{}.{schema}.{table}", config.topic_prefix);
        let mut row = Schema::struct_builder()
            .name(format!("{base}.Value"))
            .optional();
        let mut key = Schema::struct_builder().name(format!("{base}.Key"));
        let mut plan = Vec::with_capacity(columns.len());
        let mut names = Vec::with_capacity(columns.len());
        let mut key_positions = Vec::new();
        let mut binary_copy = true;
        let custom_key = config.message_key_columns.for_table(schema, table);
        if let Some(missing) =
            custom_key.and_then(|cols| cols.iter().find(|k| !columns.iter().any(|c| &c.name == *k)))
        {
            return Err(Error::config(
                "message.key.columns",
                format!("{schema}.{table} has no column `{missing}`"),
            ));
        }
        for c in columns {
            let in_key = custom_key.map_or(c.key, |cols| cols.contains(&c.name));
            let mask = filter.mask(schema, table, &c.name).cloned();
            let (codec, mut builder) = column_type(&c.pg_type, c.type_modifier, &config.types);
            if mask.is_some() {
                builder = builder.parameter("masked", "true");
            }
            if let Some(default) = schema_default(c, &codec) {
                builder = builder.default_value(default);
            }
            let field_schema = builder.with_optional(!c.not_null && !c.key).build();
            let placeholder_text = &config.unavailable_placeholder;
            let placeholder = match field_schema.schema_type() {
                SchemaType::Bytes => Value::Bytes(bytes::Bytes::from(placeholder_text.clone())),
                SchemaType::Array => Value::Array(vec![Value::string(placeholder_text)]),
                _ => Value::string(placeholder_text),
            };
            let keep = filter.keeps(schema, table, &c.name);
            if !keep && in_key {
                return Err(Error::config(
                    "column.exclude.list",
                    format!(
                        "{schema}.{table}.{} is part of the key and cannot be excluded",
                        c.name
                    ),
                ));
            }
            binary_copy &=
                !keep || matches!(c.pg_type, PgType::Base { oid, .. } if codec.reads_binary(oid));
            plan.push(ColumnPlan {
                codec,
                keep,
                mask,
                max_chars: match c.pg_type {
                    PgType::Base {
                        oid: 1042 | 1043, ..
                    } if c.type_modifier > 4 => Some((c.type_modifier - 4) as usize),
                    _ => None,
                },
                placeholder,
            });
            if !keep {
                continue;
            }
            if in_key {
                key = key.field(c.name.as_str(), field_schema.clone());
                key_positions.push(names.len());
            }
            row = row.field(c.name.as_str(), field_schema);
            names.push(c.name.clone());
        }
        let row_schema = row.build();
        let envelope = EnvelopeSchema::new(&base, row_schema.clone(), source_schema().clone())?;
        let event_overhead = envelope.read_event_overhead(
            &base,
            key_positions.len(),
            2 * (schema.len() + table.len()),
        );
        Ok(TableSchema {
            binary_copy,
            event_overhead,
            schema: schema.to_owned(),
            table: table.to_owned(),
            topic: Arc::from(base),
            collection: Arc::from(format!("{schema}.{table}")),
            plan,
            names,
            key_schema: (!key_positions.is_empty()).then(|| key.build()),
            key_positions,
            row_schema,
            envelope,
            schema_value: Value::interned(schema),
            table_value: Value::interned(table),
        })
    }

    /// The memory of a snapshot event whose `COPY` row is `row_len` bytes (its size
    /// estimate, given so that the engine does not walk the values).
    pub fn snapshot_event_size(&self, row_len: usize) -> usize {
        self.event_overhead + row_len
    }

    /// Column count.
    pub fn width(&self) -> usize {
        self.plan.len()
    }

    /// Whether snapshots read this table with a binary `COPY` (every kept column
    /// [reads binary](Codec::reads_binary)); else as text.
    pub fn binary_copy(&self) -> bool {
        self.binary_copy
    }

    /// A row from one row of `COPY ... TO STDOUT`, binary if
    /// [`binary_copy`](Self::binary_copy), else text (snapshot reads), parsed in one
    /// pass: plain fields are read in place, only kept text takes slices of the row
    /// buffer.
    pub fn row_from_copy(&self, row: &bytes::Bytes) -> Result<Struct, Error> {
        if self.binary_copy {
            self.row_from_fields(row, binary_copy_fields(row))
        } else {
            self.row_from_fields(row, copy_fields(row))
        }
    }

    fn row_from_fields(
        &self,
        row: &bytes::Bytes,
        mut fields: impl Iterator<Item = Result<CopyField, DecodeError>>,
    ) -> Result<Struct, Error> {
        let mut out = Vec::with_capacity(self.names.len());
        for plan in &self.plan {
            let field = fields
                .next()
                .ok_or_else(|| self.width_error(out.len()))?
                .map_err(|e| Error::fatal("postgres", e))?;
            if !plan.keep {
                continue;
            }
            let value = match field {
                CopyField::Null => Ok(Value::Null),
                CopyField::Plain(start, end) if self.binary_copy => {
                    plan.codec.parse_binary(row, start, end)
                }
                CopyField::Plain(start, end) => plan.codec.parse_in(row, start, end),
                CopyField::Unescaped(text) => plan.codec.parse(text),
            }
            .map_err(|e| self.column_error(out.len(), &e))?;
            out.push(match plan.mask {
                None => value,
                Some(_) => plan.masked(value),
            });
        }
        if fields.next().is_some() {
            return Err(self.width_error(self.plan.len() + 1));
        }
        Ok(Struct::new(self.row_schema.clone(), out)?)
    }

    fn width_error(&self, got: usize) -> Error {
        Error::fatal(
            "postgres",
            format!(
                "{}.{}: row has {got} or more columns, schema has {}",
                self.schema,
                self.table,
                self.plan.len()
            ),
        )
    }

    fn column_error(&self, kept_index: usize, e: &str) -> Error {
        Error::fatal(
            "postgres",
            format!(
                "{}.{} column `{}`: {e}",
                self.schema, self.table, self.names[kept_index]
            ),
        )
    }

    /// A row from text values (snapshot reads and pgoutput tuples). Unchanged TOAST values
    /// get Debezium's placeholder; a tuple with only key columns fills the rest with null.
    pub fn row(&self, values: Vec<Column>) -> Result<Struct, Error> {
        if values.len() != self.plan.len() {
            return Err(Error::fatal(
                "postgres",
                format!(
                    "{}.{}: tuple has {} columns, schema has {}",
                    self.schema,
                    self.table,
                    values.len(),
                    self.plan.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(self.names.len());
        for (plan, col) in self.plan.iter().zip(values) {
            if !plan.keep {
                continue;
            }
            let value = match col {
                Column::Null => Value::Null,
                Column::UnchangedToast => plan.placeholder.clone(),
                Column::Text(t) | Column::Binary(t) => plan
                    .codec
                    .parse(t)
                    .map_err(|e| self.column_error(out.len(), &e))?,
            };
            out.push(match plan.mask {
                None => value,
                Some(_) => plan.masked(value),
            });
        }
        Ok(Struct::new(self.row_schema.clone(), out)?)
    }

    fn key(&self, row: &Struct) -> Result<Value, Error> {
        let Some(schema) = &self.key_schema else {
            return Ok(Value::Null);
        };
        Ok(Value::Struct(
            row.project(schema.clone(), &self.key_positions)?,
        ))
    }

    /// A change event record (its size estimate left to the caller).
    pub fn event(
        &self,
        op: Op,
        before: Option<Struct>,
        after: Option<Struct>,
        info: &SourceInfo<'_>,
        id: EventId,
    ) -> Result<Record, Error> {
        let source = info.to_struct(&self.schema_value, &self.table_value)?;
        self.event_with_source(op, before, after, source, info, id, SystemTime::now())
    }

    /// The `source` block of this table's events described by `info`, to hand to
    /// [`event_with_source`](Self::event_with_source) for many events (shared, so each
    /// event costs a reference count instead of a copy).
    pub fn source_block(&self, info: &SourceInfo<'_>) -> Result<Struct, Error> {
        Ok(info
            .to_struct(&self.schema_value, &self.table_value)?
            .shared())
    }

    /// A change event with a `source` block built already (see
    /// [`source_block`](Self::source_block)); `info` gives its time and transaction,
    /// `processed_at` its `ts_ms`/`ts_us`/`ts_ns` (read once for a chunk of snapshot rows:
    /// the clock is not free at a million events a second).
    #[allow(clippy::too_many_arguments)]
    pub fn event_with_source(
        &self,
        op: Op,
        before: Option<Struct>,
        after: Option<Struct>,
        source: Struct,
        info: &SourceInfo<'_>,
        id: EventId,
        processed_at: SystemTime,
    ) -> Result<Record, Error> {
        let key = match after.as_ref().or(before.as_ref()) {
            Some(row) => self.key(row)?,
            None => Value::Null,
        };
        let value = self.envelope.event(
            op,
            before,
            after,
            source,
            info.transaction.as_ref(),
            processed_at,
        );
        Ok(Record::new(
            self.topic.clone(),
            Some(self.envelope.schema().clone()),
            value,
        )
        .with_key(self.key_schema.clone(), key)
        .with_timestamp_ms(info.ts_us / 1000)
        .with_event_id(id))
    }

    /// The event id of a snapshot read: (table, primary key), so a re-run snapshot gives
    /// the same ids.
    pub fn snapshot_id(&self, row: &Struct) -> EventId {
        EventId::of_row(&self.topic, row, &self.key_positions)
    }
}
