//! Logical decoding messages (`pg_logical_emit_message`, topic `<topic.prefix>.message`),
//! in Debezium's schemas. Transaction boundaries are [`connect_core::transaction`]'s.

use std::sync::Arc;

use bytes::Bytes;
use connect_core::envelope::Op;
use connect_core::{Error, EventId, Record, Schema, SchemaType, Struct, Value};

use crate::table::{source_schema, SourceInfo};
use crate::types::BinaryMode;
use connect_core::envelope::{transaction_block_schema, TransactionBlock};

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
        let content = self.binary.encode(content);
        let block = Struct::new(self.block.clone(), vec![Value::string(prefix), content])?;
        let empty = Value::static_str("");
        let transaction = info
            .transaction
            .as_ref()
            .map_or(Value::Null, TransactionBlock::to_value);
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
