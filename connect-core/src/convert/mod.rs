//! Converters: record data <-> bytes, as Kafka Connect's `Converter` does.
//!
//! - [`JsonConverter`]: Kafka's `JsonConverter` output as Debezium 3.6 emits it, byte for
//!   byte (schemas on or off, Decimal as base64).
//! - [`CloudEventsConverter`]: Debezium's CloudEvents (structured, JSON).
//! - [`StringConverter`], [`ByteArrayConverter`].

mod cloudevents;
pub mod json;
mod simple;

use std::sync::Arc;

pub use cloudevents::CloudEventsConverter;
pub use json::JsonConverter;
pub use simple::{ByteArrayConverter, StringConverter};

use crate::error::Error;
use crate::schema::Schema;
use crate::value::Value;

/// Turns a record's key or value into bytes and back.
///
/// Called by the engine and by destinations once per record on the hot path, from any
/// task: implementations are `Send + Sync` and keep no per-call state. `serialize` appends
/// to a caller-owned buffer so one allocation serves a whole batch.
pub trait Converter: Send + Sync {
    /// Appends the serialised form of `value` to `out`. Returns `Ok(false)` when the result
    /// is a null message (Kafka's null value, e.g. a tombstone), having written nothing.
    fn serialize(
        &self,
        topic: &str,
        schema: Option<&Arc<Schema>>,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<bool, Error>;

    /// Parses bytes (`None` for a null message) back into a schema and a value.
    fn deserialize(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Arc<Schema>>, Value), Error>;
}

/// A record-level conversion error naming the topic.
pub fn conversion_error(topic: &str, message: impl Into<String>) -> Error {
    Error::Conversion {
        topic: topic.to_owned(),
        message: message.into(),
    }
}
