//! Per-table schemas (built once per table version) and Debezium's `source` block.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use connect_core::columns::Mask;
use connect_core::envelope::{source_schema_builder, EnvelopeSchema, Op};
use connect_core::{Error, EventId, Record, Schema, SchemaType, Struct, Value};
use mysql_async::binlog::events::{OptionalMetaExtractor, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use mysql_common::binlog::jsonb;
use mysql_common::io::ParseBuf;

use crate::config::MySqlConfig;
use crate::server::Flavor;
use crate::types::{column_type, Codec, ColumnInfo};

/// Debezium 3.6's `source` schema of the MySQL connector (`io.debezium.connector.mysql.Source`)
/// or, against MariaDB, of its MariaDB connector (same fields).
pub fn source_schema(flavor: Flavor) -> &'static Arc<Schema> {
    static MYSQL: OnceLock<Arc<Schema>> = OnceLock::new();
    static MARIADB: OnceLock<Arc<Schema>> = OnceLock::new();
    let (cell, name) = match flavor {
        Flavor::MySql => (&MYSQL, "io.debezium.connector.mysql.Source"),
        Flavor::MariaDb => (&MARIADB, "io.debezium.connector.mariadb.Source"),
    };
    cell.get_or_init(|| {
        let s = |optional: bool| {
            Schema::builder(SchemaType::String)
                .with_optional(optional)
                .build()
        };
        source_schema_builder(name)
            .field("table", s(true))
            .field("server_id", Schema::required(SchemaType::Int64))
            .field("gtid", s(true))
            .field("file", s(false))
            .field("pos", Schema::required(SchemaType::Int64))
            .field("row", Schema::required(SchemaType::Int32))
            .field("thread", Schema::optional(SchemaType::Int64))
            .field("query", s(true))
            .build()
    })
}

/// Where an event comes from, for the `source` block.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// MariaDB or MySQL.
    pub flavor: Flavor,
    /// `topic.prefix`.
    pub server: Value,
    /// Event (or snapshot) time, microseconds since the epoch.
    pub ts_us: i64,
    /// `snapshot` marker.
    pub snapshot: &'static str,
    /// The originating server's id (0 in a snapshot).
    pub server_id: i64,
    /// The transaction's GTID (a string), or null.
    pub gtid: Value,
    /// Binlog file and position.
    pub file: Value,
    /// Position in the binlog file.
    pub pos: u64,
    /// Row within the rows event.
    pub row: i32,
    /// When the events were made (`ts_ms`/`ts_us`/`ts_ns` of the envelope): taken once per
    /// chunk of rows, not per event.
    pub processed_at: SystemTime,
}

/// What reading a table's row images needs from its TABLE_MAP, per column: the binlog
/// type, its metadata and signedness. Read once per table version, where mysql_common's
/// row iterator reads it again for every row.
#[derive(Debug)]
pub struct RowLayout {
    columns: Vec<(ColumnType, Vec<u8>, bool)>,
}

impl RowLayout {
    /// The layout a TABLE_MAP describes.
    pub fn new(map: &TableMapEvent<'_>) -> Result<RowLayout, String> {
        let optional = OptionalMetaExtractor::new(map.iter_optional_meta())
            .map_err(|e| format!("unreadable optional metadata: {e}"))?;
        let mut unsigned = optional.iter_signedness();
        let columns = (0..map.columns_count() as usize)
            .map(|i| {
                let column_type = map
                    .get_column_type(i)
                    .map_err(|e| format!("column {}: {e}", i + 1))?
                    .ok_or_else(|| format!("column {}: no type", i + 1))?;
                let metadata = map.get_column_metadata(i).unwrap_or(&[]).to_vec();
                let is_unsigned = column_type.is_numeric_type() && unsigned.next().unwrap_or(false);
                Ok((column_type, metadata, is_unsigned))
            })
            .collect::<Result<_, String>>()?;
        Ok(RowLayout { columns })
    }
}

/// How one column is emitted: kept or dropped (`column.include/exclude.list`), masked
/// or not (`column.mask.*`).
#[derive(Debug)]
struct ColumnPlan {
    keep: bool,
    mask: Option<Mask>,
    /// CHAR/VARCHAR length, to which a hash is cut.
    max_chars: Option<usize>,
}

impl ColumnPlan {
    fn masked(&self, value: Value) -> Value {
        match (&self.mask, value) {
            (Some(mask), Value::String(s)) => Value::from(mask.apply(&s, self.max_chars)),
            (_, value) => value,
        }
    }
}

/// MySQL's binary JSON as text, object members in their stored order (MySQL's own:
/// by key length, then bytes), as Debezium writes it; mysql_common's own conversion goes
/// through a sorted map.
fn jsonb_text(value: jsonb::Value<'_>) -> Result<String, String> {
    fn write(value: jsonb::Value<'_>, out: &mut String) -> Result<(), String> {
        let member = |key: &str, out: &mut String| {
            out.push_str(&serde_json::to_string(key).expect("a string serialises"));
            out.push(':');
        };
        match value {
            jsonb::Value::SmallObject(o) => write_members(o.iter(), out, member),
            jsonb::Value::LargeObject(o) => write_members(o.iter(), out, member),
            jsonb::Value::SmallArray(a) => write_items(a.iter(), out),
            jsonb::Value::LargeArray(a) => write_items(a.iter(), out),
            scalar => {
                let json = serde_json::Value::try_from(scalar).map_err(|e| e.to_string())?;
                out.push_str(&json.to_string());
                Ok(())
            }
        }
    }
    fn write_members<'a>(
        members: impl Iterator<Item = std::io::Result<(jsonb::ObjectKey<'a>, jsonb::Value<'a>)>>,
        out: &mut String,
        member: impl Fn(&str, &mut String),
    ) -> Result<(), String> {
        out.push('{');
        for (n, entry) in members.enumerate() {
            let (key, value) = entry.map_err(|e| e.to_string())?;
            if n > 0 {
                out.push(',');
            }
            member(&key.value(), out);
            write(value, out)?;
        }
        out.push('}');
        Ok(())
    }
    fn write_items<'a>(
        items: impl Iterator<Item = std::io::Result<jsonb::Value<'a>>>,
        out: &mut String,
    ) -> Result<(), String> {
        out.push('[');
        for (n, item) in items.enumerate() {
            if n > 0 {
                out.push(',');
            }
            write(item.map_err(|e| e.to_string())?, out)?;
        }
        out.push(']');
        Ok(())
    }
    let mut out = String::new();
    write(value, &mut out)?;
    Ok(out)
}

/// `varchar(200)` → 200.
fn declared_length(column_type: &str) -> Option<usize> {
    let (_, rest) = column_type.split_once('(')?;
    rest.split(')').next()?.trim().parse().ok()
}

/// A table version's schemas and codecs.
#[derive(Debug)]
pub struct TableSchema {
    /// Database name.
    pub database: String,
    /// Table name.
    pub table: String,
    /// `<prefix>.<db>.<table>`.
    pub topic: Arc<str>,
    /// `<db>.<table>`, the data collection name of transaction metadata.
    pub collection: Arc<str>,
    codecs: Vec<Codec>,
    plans: Vec<ColumnPlan>,
    /// Names of the columns emitted.
    names: Vec<String>,
    /// The columns, and each enum/set column's labels, for decoding binlog rows.
    columns: Vec<ColumnInfo>,
    labels: Vec<Vec<String>>,
    key_positions: Vec<usize>,
    key_schema: Option<Arc<Schema>>,
    row_schema: Arc<Schema>,
    envelope: EnvelopeSchema,
    /// A snapshot event's memory beside its row's text: record, envelope, `source` and
    /// key slots (the engine's walk over the values would find about this much).
    event_overhead: usize,
    flavor: Flavor,
    db_value: Value,
    table_value: Value,
}

impl TableSchema {
    /// Builds the schemas of a table from its columns, as `config` says: column filters
    /// and masks (a key column cannot be dropped), value representations, and the key
    /// (`message.key.columns`, else the primary key).
    pub fn new(
        config: &MySqlConfig,
        flavor: Flavor,
        database: &str,
        table: &str,
        columns: &[ColumnInfo],
    ) -> Result<Self, Error> {
        let (prefix, filter) = (&config.topic_prefix, &config.columns);
        let key_columns = config.message_key_columns.for_table(database, table);
        if let Some(missing) = key_columns
            .into_iter()
            .flatten()
            .find(|k| !columns.iter().any(|c| c.name == **k))
        {
            return Err(Error::config(
                "message.key.columns",
                format!("{database}.{table} has no column `{missing}`"),
            ));
        }
        let is_key = |c: &ColumnInfo| key_columns.map_or(c.key, |k| k.contains(&c.name));
        let base = format!("{prefix}.{database}.{table}");
        let mut row = Schema::struct_builder()
            .name(format!("{base}.Value"))
            .optional();
        let mut key = Schema::struct_builder().name(format!("{base}.Key"));
        let mut codecs = Vec::with_capacity(columns.len());
        let mut names = Vec::with_capacity(columns.len());
        let mut key_positions = Vec::new();
        let mut plans = Vec::with_capacity(columns.len());
        for c in columns {
            let (codec, mut builder) = column_type(c, &config.types);
            let keep = filter.keeps(database, table, &c.name);
            if !keep && is_key(c) {
                return Err(Error::config(
                    "column.exclude.list",
                    format!(
                        "{database}.{table}.{} is part of the key and cannot be excluded",
                        c.name
                    ),
                ));
            }
            let mask = filter.mask(database, table, &c.name).cloned();
            if mask.is_some() {
                builder = builder.parameter("masked", "true");
            }
            if let Some(default) = schema_default(c, &codec) {
                builder = builder.default_value(default);
            }
            plans.push(ColumnPlan {
                keep,
                mask,
                max_chars: matches!(c.data_type.as_str(), "char" | "varchar")
                    .then(|| declared_length(&c.column_type))
                    .flatten(),
            });
            codecs.push(codec);
            if !keep {
                continue;
            }
            let field = builder.with_optional(c.nullable).build();
            if is_key(c) {
                key = key.field(c.name.as_str(), field.clone());
                key_positions.push(names.len());
            }
            row = row.field(c.name.as_str(), field);
            names.push(c.name.clone());
        }
        let row_schema = row.build();
        let envelope =
            EnvelopeSchema::new(&base, row_schema.clone(), source_schema(flavor).clone())?;
        let event_overhead = envelope.read_event_overhead(
            &base,
            key_positions.len(),
            2 * (database.len() + table.len()),
        );
        Ok(TableSchema {
            event_overhead,
            database: database.to_owned(),
            table: table.to_owned(),
            topic: Arc::from(base),
            collection: Arc::from(format!("{database}.{table}")),
            codecs,
            plans,
            names,
            labels: columns
                .iter()
                .map(|c| match c.data_type.as_str() {
                    "enum" | "set" => crate::types::enum_labels(&c.column_type),
                    _ => Vec::new(),
                })
                .collect(),
            columns: columns.to_vec(),
            key_schema: (!key_positions.is_empty()).then(|| key.build()),
            key_positions,
            row_schema,
            envelope,
            flavor,
            db_value: Value::interned(database),
            table_value: Value::interned(table),
        })
    }

    /// A row from a result set's values (binary or text protocol).
    pub fn row(&self, values: Vec<mysql_async::Value>) -> Result<Struct, Error> {
        if values.len() != self.codecs.len() {
            return Err(Error::fatal(
                "mysql",
                format!(
                    "{}.{}: row has {} columns, schema has {}",
                    self.database,
                    self.table,
                    values.len(),
                    self.codecs.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(self.names.len());
        for (i, ((codec, plan), raw)) in self.codecs.iter().zip(&self.plans).zip(values).enumerate()
        {
            if !plan.keep {
                continue;
            }
            let value = codec
                .parse_binary(raw)
                .map_err(|e| self.column_error(i, &e))?;
            out.push(match (plan.mask.as_ref(), value) {
                (Some(_), value @ Value::Null) | (None, value) => value,
                (Some(_), value) => plan.masked(value),
            });
        }
        Ok(Struct::new(self.row_schema.clone(), out)?)
    }

    /// Reads one row image of a rows event from `buf`: its null bitmap, then the value of
    /// every column `present` marks (all of them with `binlog_row_image=FULL`).
    pub fn row_from_binlog<'a>(
        &self,
        layout: &'a RowLayout,
        present: &[bool],
        buf: &mut ParseBuf<'a>,
    ) -> Result<Struct, Error> {
        if layout.columns.len() != self.codecs.len() || present.len() != self.codecs.len() {
            return Err(Error::fatal(
                "mysql",
                format!(
                    "{}.{}: the binlog row has {} columns, the table {}: its schema changed without a DDL event this connector saw",
                    self.database,
                    self.table,
                    layout.columns.len(),
                    self.codecs.len()
                ),
            ));
        }
        let undecodable =
            |i: usize, e: &dyn std::fmt::Display| self.column_error(i, &e.to_string());
        let nulls: &[u8] = buf
            .parse(present.iter().filter(|&&p| p).count().div_ceil(8))
            .map_err(|e| undecodable(0, &e))?;
        let mut out = Vec::with_capacity(self.names.len());
        for (i, (&(column_type, ref metadata, unsigned), &is_present)) in
            layout.columns.iter().zip(present).enumerate()
        {
            if !is_present {
                return Err(self.column_error(
                    i,
                    "absent from the row image (binlog_row_image is not FULL)",
                ));
            }
            // Every column is in the image, so its null bit is the column's.
            let null = nulls[i / 8] & (1 << (i % 8)) != 0;
            let plan = &self.plans[i];
            if !null {
                let codec = &self.codecs[i];
                if let Some(value) =
                    codec.from_binlog_bytes(column_type, metadata, &self.columns[i], &mut buf.0)
                {
                    if plan.keep {
                        out.push(plan.masked(value));
                    }
                    continue;
                }
            }
            let value = if null {
                mysql_async::Value::NULL
            } else {
                let value: BinlogValue<'_> = buf
                    .parse((column_type, metadata.as_slice(), unsigned, false))
                    .map_err(|e| undecodable(i, &e))?;
                match value {
                    BinlogValue::Jsonb(json) => mysql_async::Value::Bytes(
                        jsonb_text(json)
                            .map_err(|e| undecodable(i, &e))?
                            .into_bytes(),
                    ),
                    other => mysql_async::Value::try_from(other).map_err(|e| undecodable(i, &e))?,
                }
            };
            if !plan.keep {
                continue;
            }
            out.push(
                plan.masked(
                    self.codecs[i]
                        .from_binlog(&self.columns[i], &self.labels[i], value)
                        .map_err(|e| self.column_error(i, &e))?,
                ),
            );
        }
        Ok(Struct::new(self.row_schema.clone(), out)?)
    }

    fn column_error(&self, index: usize, e: &str) -> Error {
        Error::fatal(
            "mysql",
            format!(
                "{}.{} column `{}`: {e}",
                self.database, self.table, self.names[index]
            ),
        )
    }

    /// A change event record (its size estimate left to the caller).
    pub fn event(
        &self,
        op: Op,
        before: Option<Struct>,
        after: Option<Struct>,
        info: &SourceInfo,
        id: EventId,
    ) -> Result<Record, Error> {
        let source = self.source_struct(info)?;
        self.event_with_source(op, before, after, source, info, id)
    }

    /// The `source` block of this table's events described by `info`, to hand to
    /// [`event_with_source`](Self::event_with_source) for many events (shared, so each
    /// event costs a reference count instead of a copy).
    pub fn source_block(&self, info: &SourceInfo) -> Result<Struct, Error> {
        Ok(self.source_struct(info)?.shared())
    }

    fn source_struct(&self, info: &SourceInfo) -> Result<Struct, Error> {
        Ok(Struct::new(
            source_schema(self.flavor).clone(),
            vec![
                Value::static_str(env!("CARGO_PKG_VERSION")),
                Value::static_str(info.flavor.connector_name()),
                info.server.clone(),
                Value::Int64(info.ts_us / 1000),
                Value::static_str(info.snapshot),
                self.db_value.clone(),
                Value::Null,
                Value::Int64(info.ts_us),
                Value::Int64(info.ts_us.saturating_mul(1000)),
                self.table_value.clone(),
                Value::Int64(info.server_id),
                info.gtid.clone(),
                info.file.clone(),
                Value::Int64(info.pos as i64),
                Value::Int32(info.row),
                Value::Null,
                Value::Null,
            ],
        )?)
    }

    /// A change event with a `source` block built already (see
    /// [`source_block`](Self::source_block)); `info` gives its time.
    pub fn event_with_source(
        &self,
        op: Op,
        before: Option<Struct>,
        after: Option<Struct>,
        source: Struct,
        info: &SourceInfo,
        id: EventId,
    ) -> Result<Record, Error> {
        let key = match (after.as_ref().or(before.as_ref()), &self.key_schema) {
            (Some(row), Some(schema)) => {
                Value::Struct(row.project(schema.clone(), &self.key_positions)?)
            }
            _ => Value::Null,
        };
        let value = self
            .envelope
            .event(op, before, after, source, None, info.processed_at);
        Ok(Record::new(
            self.topic.clone(),
            Some(self.envelope.schema().clone()),
            value,
        )
        .with_key(self.key_schema.clone(), key)
        .with_timestamp_ms(info.ts_us / 1000)
        .with_event_id(id))
    }

    /// The memory of a snapshot event whose row's values are `raw_len` bytes of text (its
    /// size estimate, cheaper than walking the values).
    pub fn snapshot_event_size(&self, raw_len: usize) -> usize {
        self.event_overhead + raw_len
    }

    /// The memory of a streamed change event whose row images were `image_bytes` of the
    /// binlog, `both_images` for an update's before and after (its size estimate, cheaper
    /// than walking the values).
    pub fn change_event_size(&self, image_bytes: usize, both_images: bool) -> usize {
        let before_slots = if both_images { self.names.len() } else { 0 };
        self.event_overhead + image_bytes + before_slots * std::mem::size_of::<Value>()
    }

    /// The event id of a snapshot read: (table, primary key).
    pub fn snapshot_id(&self, row: &Struct) -> EventId {
        EventId::of_row(&self.topic, row, &self.key_positions)
    }
}

/// The schema default Debezium gives a column: a constant default as the column's value;
/// for `CURRENT_TIMESTAMP` on a NOT NULL temporal column, the epoch.
fn schema_default(c: &ColumnInfo, codec: &Codec) -> Option<Value> {
    let text = c.default.as_deref()?;
    if text.eq_ignore_ascii_case("NULL") {
        return None;
    }
    if let Some(quoted) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return codec.parse(quoted.replace("''", "'").into_bytes()).ok();
    }
    if text.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        return codec.parse(text.as_bytes().to_vec()).ok();
    }
    let temporal = matches!(
        codec,
        Codec::Timestamp | Codec::DatetimeMillis | Codec::DatetimeMicros
    );
    (temporal && !c.nullable && text.to_ascii_lowercase().starts_with("current_timestamp"))
        .then(|| codec.parse(b"1970-01-01 00:00:00".to_vec()).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_binary_json_keeps_its_stored_member_order() {
        // A small object {"b": 1, "aa": [2, "x"]} as MySQL stores it: keys by length.
        let mut object = vec![0x00u8]; // small object
        let body: Vec<u8> = [
            &2u16.to_le_bytes()[..], // members
            &0u16.to_le_bytes(),     // size, set below
            &18u16.to_le_bytes(),
            &1u16.to_le_bytes(), // key "b"
            &19u16.to_le_bytes(),
            &2u16.to_le_bytes(), // key "aa"
            &[0x05],
            &1i16.to_le_bytes(), // int16 1, inlined
            &[0x02],
            &21u16.to_le_bytes(), // small array at 21
            b"baa",
            // the array: 2 elements, size, int16 2 inlined, string at offset 10
            &2u16.to_le_bytes(),
            &12u16.to_le_bytes(),
            &[0x05],
            &2i16.to_le_bytes(),
            &[0x0c],
            &10u16.to_le_bytes(),
            &[1, b'x'],
        ]
        .concat();
        object.extend_from_slice(&body);
        let size = (object.len() - 1) as u16;
        object[3..5].copy_from_slice(&size.to_le_bytes());
        let value: jsonb::Value<'_> = ParseBuf(&object).parse(()).unwrap();
        assert_eq!(jsonb_text(value).unwrap(), r#"{"b":1,"aa":[2,"x"]}"#);
    }
}
