//! Records beside the change events: transaction boundaries
//! (`provide.transaction.metadata`, topic `<topic.prefix>.transaction`) and logical decoding
//! messages (`pg_logical_emit_message`, topic `<topic.prefix>.message`), in Debezium's
//! schemas.

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use bytes::Bytes;
use connect_core::envelope::Op;
use connect_core::{Error, EventId, Record, Schema, SchemaType, Struct, Value};

use crate::table::{source_schema, SourceInfo};
use crate::types::{java_hashmap_order, BinaryMode};
use connect_core::envelope::transaction_block_schema;

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

/// A BEGIN or END record of transaction `id` (`<txId>:<lsn>`, as Debezium's PostgreSQL
/// connector writes it), committed at `ts_us`.
pub fn transaction_record(
    topic: &Arc<str>,
    prefix: &str,
    id: String,
    end: Option<&TxCounts>,
    ts_us: i64,
    event_id_lsn: u64,
) -> Result<Record, Error> {
    let status = if end.is_some() { "END" } else { "BEGIN" };
    let key = Struct::new(
        transaction_key_schema().clone(),
        vec![Value::from(id.clone())],
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
            Value::from(id),
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
        &event_id_lsn.to_le_bytes(),
        status.as_bytes(),
    ])))
}

/// Schemas of logical decoding message records (they depend on `binary.handling.mode`).
#[derive(Debug)]
pub struct MessageSchemas {
    key: Arc<Schema>,
    block: Arc<Schema>,
    value: Arc<Schema>,
    binary: BinaryMode,
}

impl MessageSchemas {
    /// Debezium's `io.debezium.connector.postgresql.Message{Key,Value}` schemas.
    pub fn new(binary: BinaryMode) -> Self {
        let content = match binary {
            BinaryMode::Bytes => Schema::optional(SchemaType::Bytes),
            _ => Schema::optional(SchemaType::String),
        };
        let block = Schema::struct_builder()
            .name("io.debezium.connector.postgresql.Message")
            .version(1)
            .field("prefix", Schema::optional(SchemaType::String))
            .field("content", content)
            .build();
        let value = Schema::struct_builder()
            .name("io.debezium.connector.postgresql.MessageValue")
            .version(1)
            .field("op", Schema::required(SchemaType::String))
            .field("ts_ms", Schema::optional(SchemaType::Int64))
            .field("source", source_schema().clone())
            .field("transaction", transaction_block_schema().clone())
            .field("message", block.clone())
            .build();
        let key = Schema::struct_builder()
            .name("io.debezium.connector.postgresql.MessageKey")
            .version(1)
            .field("prefix", Schema::optional(SchemaType::String))
            .build();
        MessageSchemas {
            key,
            block,
            value,
            binary,
        }
    }

    /// A message record (op `m`); `info` carries its position and transaction block.
    pub fn record(
        &self,
        topic: &Arc<str>,
        prefix: &str,
        content: Bytes,
        info: &SourceInfo<'_>,
        id: EventId,
    ) -> Result<Record, Error> {
        let content = match self.binary {
            BinaryMode::Bytes => Value::Bytes(content),
            BinaryMode::Base64 => {
                Value::from(base64::engine::general_purpose::STANDARD.encode(&content))
            }
            BinaryMode::Base64UrlSafe => {
                Value::from(base64::engine::general_purpose::URL_SAFE.encode(&content))
            }
            BinaryMode::Hex => Value::from(
                content
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            ),
        };
        let block = Struct::new(self.block.clone(), vec![Value::string(prefix), content])?;
        let empty = Value::static_str("");
        let transaction = info.transaction.as_ref().map_or(Value::Null, |t| {
            Value::Struct(
                Struct::new(
                    transaction_block_schema().clone(),
                    vec![
                        Value::from(t.id.clone()),
                        Value::Int64(t.total_order),
                        Value::Int64(t.data_collection_order),
                    ],
                )
                .expect("the transaction block has three fields"),
            )
        });
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let value = Struct::new(
            self.value.clone(),
            vec![
                Value::static_str(Op::Message.code()),
                Value::Int64(now_ms),
                Value::Struct(info.to_struct(&empty, &empty)?),
                transaction,
                Value::Struct(block),
            ],
        )?;
        let key = Struct::new(self.key.clone(), vec![Value::string(prefix)])?;
        Ok(Record::new(
            topic.clone(),
            Some(self.value.clone()),
            Value::Struct(value),
        )
        .with_key(Some(self.key.clone()), Value::Struct(key))
        .with_timestamp_ms(info.ts_us / 1000)
        .with_event_id(id))
    }
}
