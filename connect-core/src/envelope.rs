//! Debezium 3.x change-event envelope: `before`, `after`, `source`, `transaction`, `op`,
//! `ts_ms`, `ts_us`, `ts_ns` (the field order Debezium's schema factory produces), plus
//! tombstones and the `skipped.operations` rule.

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::record::Record;
use crate::schema::{Schema, SchemaBuilder, SchemaType};
use crate::value::{Struct, Value};

/// Suffix Debezium appends to envelope schema names.
pub const ENVELOPE_SUFFIX: &str = ".Envelope";
/// Envelope schema version in Debezium 3.x (2 since `ts_us`/`ts_ns` were added).
pub const ENVELOPE_VERSION: i32 = 2;

const BEFORE: usize = 0;
const AFTER: usize = 1;
const SOURCE: usize = 2;
const TRANSACTION: usize = 3;
const OP: usize = 4;

/// The kind of change (`op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `r`: a row read by a snapshot.
    Read,
    /// `c`: an insert.
    Create,
    /// `u`: an update.
    Update,
    /// `d`: a delete.
    Delete,
    /// `t`: a truncate.
    Truncate,
    /// `m`: a logical decoding message.
    Message,
}

impl Op {
    /// Debezium's one-letter code.
    pub fn code(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
            Op::Message => "m",
        }
    }

    /// Parses a code.
    pub fn from_code(code: &str) -> Option<Op> {
        Some(match code {
            "r" => Op::Read,
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            "t" => Op::Truncate,
            "m" => Op::Message,
            _ => return None,
        })
    }
}

/// The fields every Debezium connector's `source` block starts with (its
/// `AbstractSourceInfoStructMaker`): `version`, `connector`, `name`, `ts_ms`, `snapshot`
/// (an `io.debezium.data.Enum` of the snapshot markers, default `false`), `db`,
/// `sequence`, `ts_us`, `ts_ns`. A connector adds its own fields and builds.
pub fn source_schema_builder(name: &str) -> SchemaBuilder {
    let string = |optional: bool| {
        Schema::builder(SchemaType::String)
            .with_optional(optional)
            .build()
    };
    let snapshot_marker = Schema::builder(SchemaType::String)
        .optional()
        .name("io.debezium.data.Enum")
        .version(1)
        .parameter(
            "allowed",
            "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental",
        )
        .default_value(Value::static_str("false"))
        .build();
    Schema::struct_builder()
        .name(name)
        .version(1)
        .field("version", string(false))
        .field("connector", string(false))
        .field("name", string(false))
        .field("ts_ms", Schema::required(SchemaType::Int64))
        .field("snapshot", snapshot_marker)
        .field("db", string(false))
        .field("sequence", string(true))
        .field("ts_us", Schema::optional(SchemaType::Int64))
        .field("ts_ns", Schema::optional(SchemaType::Int64))
}

/// Debezium's transaction block schema (`event.block`, version 1).
pub fn transaction_block_schema() -> &'static Arc<Schema> {
    static SCHEMA: OnceLock<Arc<Schema>> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::struct_builder()
            .name("event.block")
            .version(1)
            .optional()
            .field("id", Schema::required(SchemaType::String))
            .field("total_order", Schema::required(SchemaType::Int64))
            .field("data_collection_order", Schema::required(SchemaType::Int64))
            .build()
    })
}

/// The `transaction` block of an event (when `provide.transaction.metadata` is on).
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionBlock {
    /// Transaction id as Debezium writes it (e.g. `"571:33832960"`); every event of a
    /// transaction shares it.
    pub id: bytestring::ByteString,
    /// Position of the event among all events of the transaction (1-based).
    pub total_order: i64,
    /// Position among the events of the same table (1-based).
    pub data_collection_order: i64,
}

impl TransactionBlock {
    /// The block as an `event.block` struct.
    pub fn to_value(&self) -> Value {
        Value::Struct(
            Struct::new(
                transaction_block_schema().clone(),
                vec![
                    Value::String(self.id.clone()),
                    Value::Int64(self.total_order),
                    Value::Int64(self.data_collection_order),
                ],
            )
            .expect("transaction block has three fields"),
        )
    }
}

/// One table version's envelope schema, built once and reused for every event of it.
#[derive(Debug, Clone)]
pub struct EnvelopeSchema {
    schema: Arc<Schema>,
}

impl EnvelopeSchema {
    /// Builds `<name>.Envelope` around an optional row schema (`<name>.Value`) and the
    /// connector's source schema.
    pub fn new(name: &str, row: Arc<Schema>, source: Arc<Schema>) -> Result<Self, Error> {
        if !row.is_optional() {
            return Err(Error::config(
                "envelope",
                format!("row schema of `{name}` must be optional (before/after may be null)"),
            ));
        }
        let optional_i64 = Schema::optional(SchemaType::Int64);
        let schema = Schema::struct_builder()
            .name(format!("{name}{ENVELOPE_SUFFIX}"))
            .version(ENVELOPE_VERSION)
            .field("before", row.clone())
            .field("after", row)
            .field("source", source)
            .field("transaction", transaction_block_schema().clone())
            .field("op", Schema::required(SchemaType::String))
            .field("ts_ms", optional_i64.clone())
            .field("ts_us", optional_i64.clone())
            .field("ts_ns", optional_i64)
            .build();
        Ok(EnvelopeSchema { schema })
    }

    /// The envelope schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The memory of a read event on `topic` beside its row's text: the record and the
    /// envelope's, `source`'s, the row's and `key_fields` key slots, plus `names_len`
    /// bytes of short `source` strings; about what [`crate::Record::size_estimate`]'s
    /// walk finds, so a snapshot can give it without walking each event.
    pub fn read_event_overhead(&self, topic: &str, key_fields: usize, names_len: usize) -> usize {
        let nested = |name| {
            self.schema
                .field(name)
                .map_or(0, |(_, f)| f.schema().fields().len())
        };
        let slots =
            self.schema.fields().len() + nested("source") + nested("after") + key_fields + 3;
        std::mem::size_of::<crate::Record>()
            + topic.len()
            + slots * std::mem::size_of::<Value>()
            + names_len
            + 64
    }

    /// Builds an event value. `ts_ms/us/ns` are the processing time, as Debezium sets them.
    pub fn event(
        &self,
        op: Op,
        before: Option<Struct>,
        after: Option<Struct>,
        source: Struct,
        transaction: Option<&TransactionBlock>,
        processed_at: SystemTime,
    ) -> Value {
        let ns = processed_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let tx = transaction.map_or(Value::Null, TransactionBlock::to_value);
        let values = vec![
            before.map_or(Value::Null, Value::Struct),
            after.map_or(Value::Null, Value::Struct),
            Value::Struct(source),
            tx,
            Value::static_str(op.code()),
            Value::Int64(ns / 1_000_000),
            Value::Int64(ns / 1_000),
            Value::Int64(ns),
        ];
        Value::Struct(Struct::new(self.schema.clone(), values).expect("envelope arity"))
    }
}

/// A typed, borrowed view of a change event record.
#[derive(Debug, Clone, Copy)]
pub struct ChangeEvent<'a> {
    record: &'a Record,
    envelope: &'a Struct,
}

impl<'a> ChangeEvent<'a> {
    /// Views a record as a change event, if its value is a Debezium envelope.
    pub fn from_record(record: &'a Record) -> Option<Self> {
        let envelope = record.value.as_struct()?;
        let name = envelope.schema().name()?;
        if !name.ends_with(ENVELOPE_SUFFIX) {
            return None;
        }
        Some(ChangeEvent { record, envelope })
    }

    /// The operation.
    pub fn op(&self) -> Option<Op> {
        self.envelope
            .get_index(OP)
            .and_then(Value::as_str)
            .and_then(Op::from_code)
    }

    /// The record key (the primary key struct for tables with one).
    pub fn key(&self) -> &'a Value {
        &self.record.key
    }

    /// The row before the change (updates and deletes, when the source provides it).
    pub fn before(&self) -> Option<&'a Struct> {
        self.envelope.get_index(BEFORE).and_then(Value::as_struct)
    }

    /// The row after the change (reads, inserts, updates).
    pub fn after(&self) -> Option<&'a Struct> {
        self.envelope.get_index(AFTER).and_then(Value::as_struct)
    }

    /// The `source` block (connector, position, database, table...).
    pub fn source(&self) -> Option<&'a Struct> {
        self.envelope.get_index(SOURCE).and_then(Value::as_struct)
    }

    /// The transaction block, if transaction metadata is on.
    pub fn transaction(&self) -> Option<&'a Struct> {
        self.envelope
            .get_index(TRANSACTION)
            .and_then(Value::as_struct)
    }

    /// The whole record.
    pub fn record(&self) -> &'a Record {
        self.record
    }
}

/// The tombstone Debezium sends after a delete (`tombstones.on.delete=true`): same topic
/// and key, null value, so log compaction can remove the key.
pub fn tombstone_for(delete: &Record) -> Record {
    let mut t = Record::new(delete.topic.clone(), None, Value::Null)
        .with_key(delete.key_schema.clone(), delete.key.clone());
    t.partition = delete.partition;
    t.timestamp_ms = delete.timestamp_ms;
    // A distinct, deterministic id: the delete's id with a marker.
    t.event_id = crate::record::EventId::from_parts(&[
        &delete.event_id.as_u128().to_le_bytes(),
        b"tombstone",
    ]);
    t
}

/// Debezium's `skipped.operations`: which ops a connector does not emit. The default is
/// `t` (truncates skipped); `none` emits everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkippedOperations {
    mask: u8,
}

impl Default for SkippedOperations {
    fn default() -> Self {
        SkippedOperations {
            mask: Self::bit(Op::Truncate),
        }
    }
}

impl SkippedOperations {
    fn bit(op: Op) -> u8 {
        1 << (op as u8)
    }

    /// Skips nothing.
    pub fn none() -> Self {
        SkippedOperations { mask: 0 }
    }

    /// Parses the property value (`"t"`, `"c,u"`, `"none"`); errors name the key.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let mut mask = 0;
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.eq_ignore_ascii_case("none") {
                return Ok(Self::none());
            }
            match Op::from_code(part) {
                Some(op @ (Op::Create | Op::Update | Op::Delete | Op::Truncate)) => {
                    mask |= Self::bit(op)
                }
                _ => {
                    return Err(Error::config(
                        "skipped.operations",
                        format!("unknown operation `{part}` (accepted: c, u, d, t, none)"),
                    ))
                }
            }
        }
        Ok(SkippedOperations { mask })
    }

    /// Whether `op` is skipped.
    pub fn skips(&self, op: Op) -> bool {
        self.mask & Self::bit(op) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_operations_default_skips_truncate_only() {
        let d = SkippedOperations::default();
        assert!(d.skips(Op::Truncate));
        assert!(!d.skips(Op::Delete));
        let p = SkippedOperations::parse("c, d").unwrap();
        assert!(p.skips(Op::Create) && p.skips(Op::Delete) && !p.skips(Op::Truncate));
        assert!(!SkippedOperations::parse("none")
            .unwrap()
            .skips(Op::Truncate));
        let e = SkippedOperations::parse("x").unwrap_err().to_string();
        assert!(e.contains("skipped.operations"), "{e}");
    }

    #[test]
    fn tombstone_keeps_the_key_and_gets_its_own_id() {
        let delete = Record::new(std::sync::Arc::from("t"), None, Value::Int32(1))
            .with_key(None, Value::Int32(7))
            .with_event_id(crate::record::EventId::from_parts(&[b"d"]));
        let t = tombstone_for(&delete);
        assert!(t.is_tombstone() && t.value_schema.is_none());
        assert_eq!(t.key, Value::Int32(7));
        assert_ne!(t.event_id, delete.event_id);
        assert_eq!(t.event_id, tombstone_for(&delete).event_id);
    }

    #[test]
    fn envelope_rejects_required_row_schema() {
        let row = Schema::struct_builder().build();
        let src = Schema::struct_builder().build();
        assert!(EnvelopeSchema::new("s.t", row, src).is_err());
    }
}
