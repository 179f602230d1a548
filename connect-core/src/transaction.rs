//! Transaction metadata (`provide.transaction.metadata`): the BEGIN and END records on
//! `<topic.prefix>.transaction` and the per-event `transaction` block's counts, in
//! Debezium's schemas, for any log-based source.

use std::sync::{Arc, OnceLock};

use bytestring::ByteString;

use crate::envelope::TransactionBlock;
use crate::error::Error;
use crate::record::{EventId, Record};
use crate::schema::{Schema, SchemaType};
use crate::value::{Struct, Value};

/// Debezium's `io.debezium.connector.common.TransactionMetadataKey`.
fn transaction_key_schema() -> &'static Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        Schema::struct_builder()
            .name("io.debezium.connector.common.TransactionMetadataKey")
            .version(1)
            .field("id", Schema::required(SchemaType::String))
            .build()
    })
}

/// `event.collection`: one table's event count in an END record.
fn data_collection_schema() -> &'static Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        Schema::struct_builder()
            .name("event.collection")
            .version(1)
            .optional()
            .field("data_collection", Schema::required(SchemaType::String))
            .field("event_count", Schema::required(SchemaType::Int64))
            .build()
    })
}

/// Debezium's `io.debezium.connector.common.TransactionMetadataValue`.
fn transaction_value_schema() -> &'static Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        Schema::struct_builder()
            .name("io.debezium.connector.common.TransactionMetadataValue")
            .version(1)
            .field("status", Schema::required(SchemaType::String))
            .field("id", Schema::required(SchemaType::String))
            .field("event_count", Schema::optional(SchemaType::Int64))
            .field(
                "data_collections",
                Schema::array_builder(data_collection_schema().clone())
                    .optional()
                    .build(),
            )
            .field("ts_ms", Schema::required(SchemaType::Int64))
            .build()
    })
}

/// Counts of one streamed transaction, for its `transaction` blocks and END record.
#[derive(Debug, Default)]
pub struct TxCounts {
    /// Events emitted so far (`total_order` of the last one).
    pub total: u64,
    /// Per data collection (`schema.table`), in first-seen order.
    per_collection: Vec<(Arc<str>, u64)>,
}

impl TxCounts {
    /// Counts one event of `collection` and returns its `transaction` block.
    pub fn block(&mut self, id: &ByteString, collection: &Arc<str>) -> TransactionBlock {
        let data_collection_order = self.count(collection) as i64;
        TransactionBlock {
            id: id.clone(),
            total_order: self.total as i64,
            data_collection_order,
        }
    }
    /// Counts one event of `collection`; returns its `data_collection_order`.
    pub fn count(&mut self, collection: &Arc<str>) -> u64 {
        self.total += 1;
        match self
            .per_collection
            .iter_mut()
            .find(|(c, _)| Arc::ptr_eq(c, collection) || c == collection)
        {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.per_collection.push((collection.clone(), 1));
                1
            }
        }
    }
}

/// A BEGIN or END record of transaction `id` (its form is the connector's), committed at
/// `ts_us`, on `topic` (`<topic.prefix>.transaction`). Its event id is made of `prefix`,
/// `position` (where the transaction is in the log) and the status.
pub fn transaction_record(
    topic: &Arc<str>,
    prefix: &str,
    id: &ByteString,
    end: Option<&TxCounts>,
    ts_us: i64,
    position: &[u8],
) -> Result<Record, Error> {
    let status = if end.is_some() { "END" } else { "BEGIN" };
    let key = Struct::new(
        transaction_key_schema().clone(),
        vec![Value::String(id.clone())],
    )?;
    let (count, collections) = match end {
        None => (Value::Null, Value::Null),
        Some(counts) => {
            // Debezium keeps the counts in a java.util.HashMap and writes them in its order.
            let order = java_hashmap_order(counts.per_collection.iter().map(|(name, _)| &**name));
            let mut items = Vec::with_capacity(order.len());
            for i in order {
                let (name, n) = &counts.per_collection[i];
                items.push(Value::Struct(Struct::new(
                    data_collection_schema().clone(),
                    vec![Value::string(name), Value::Int64(*n as i64)],
                )?));
            }
            (Value::Int64(counts.total as i64), Value::Array(items))
        }
    };
    let value = Struct::new(
        transaction_value_schema().clone(),
        vec![
            Value::static_str(status),
            Value::String(id.clone()),
            count,
            collections,
            Value::Int64(ts_us / 1000),
        ],
    )?;
    Ok(Record::new(
        topic.clone(),
        Some(transaction_value_schema().clone()),
        Value::Struct(value),
    )
    .with_key(Some(transaction_key_schema().clone()), Value::Struct(key))
    .with_timestamp_ms(ts_us / 1000)
    .with_event_id(EventId::from_parts(&[
        prefix.as_bytes(),
        position,
        status.as_bytes(),
    ])))
}

/// An event value with its `transaction` block set (events built before their order in
/// the transaction was known, e.g. decoded in parallel).
pub fn with_transaction(value: Value, block: &TransactionBlock) -> Value {
    let Value::Struct(event) = value else {
        return value;
    };
    let Some((index, _)) = event.schema().field("transaction") else {
        return Value::Struct(event);
    };
    let schema = event.schema().clone();
    let mut values = event.into_values();
    values[index] = block.to_value();
    Value::Struct(Struct::new(schema, values).expect("same schema, same arity"))
}

/// The iteration order of a `java.util.HashMap<String, _>` filled with these keys in order:
/// buckets by `(h ^ h >>> 16) & (capacity - 1)` of Java's `String.hashCode`, insertion
/// order within a bucket; capacity 16, doubled while size exceeds 3/4 of it.
pub fn java_hashmap_order<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<usize> {
    let hashes: Vec<u32> = keys
        .map(|k| {
            let h = k
                .encode_utf16()
                .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
                as u32;
            h ^ (h >> 16)
        })
        .collect();
    let mut capacity = 16usize;
    while hashes.len() * 4 > capacity * 3 {
        capacity *= 2;
    }
    let mut order: Vec<usize> = (0..hashes.len()).collect();
    order.sort_by_key(|&i| hashes[i] as usize & (capacity - 1));
    order
}
