//! Records, their headers and deterministic event ids, and the source partition / offset
//! pair that positions a record in its source (Debezium's and Kafka Connect's model).

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::schema::Schema;
use crate::value::{Struct, Value};

/// Where a record came from: Debezium's source partition, e.g. `{"server":"shop"}`, or the
/// file source's `{"filename":"/var/log/app.log"}`. Compared by its canonical JSON.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourcePartition(Arc<str>);

impl SourcePartition {
    /// Debezium's partition for a connector with `topic.prefix = server`.
    pub fn server(server: &str) -> Self {
        let mut m = Map::new();
        m.insert("server".into(), Json::String(server.into()));
        Self::from_map(&m)
    }

    /// A partition from a JSON object (keys sorted, so equal maps give equal partitions).
    pub fn from_map(map: &Map<String, Json>) -> Self {
        SourcePartition(Arc::from(
            serde_json::to_string(map).expect("a JSON map serialises"),
        ))
    }

    /// Parses the canonical JSON form (as stored by offset stores).
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let map: Map<String, Json> = serde_json::from_str(json)?;
        Ok(Self::from_map(&map))
    }

    /// The canonical JSON, e.g. `{"server":"shop"}`.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// The partition as a JSON object.
    pub fn to_map(&self) -> Map<String, Json> {
        serde_json::from_str(&self.0).expect("canonical partition JSON parses")
    }
}

impl fmt::Debug for SourcePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A position in a source, e.g. Debezium's `{"lsn":..,"txId":..}` or `{"position":1024}`.
/// Cheap to clone.
#[derive(Clone, PartialEq)]
pub struct SourceOffset(Arc<Map<String, Json>>);

impl SourceOffset {
    /// An offset from a JSON object.
    pub fn new(map: Map<String, Json>) -> Self {
        SourceOffset(Arc::new(map))
    }

    /// An offset with a single key, e.g. `SourceOffset::single("position", 1024)`.
    pub fn single(key: &str, value: impl Into<Json>) -> Self {
        let mut m = Map::new();
        m.insert(key.to_owned(), value.into());
        Self::new(m)
    }

    /// The offset's JSON object.
    pub fn map(&self) -> &Map<String, Json> {
        &self.0
    }

    /// One key of the offset.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.0.get(key)
    }
}

impl fmt::Debug for SourceOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Json::Object((*self.0).clone()))
    }
}

/// A deterministic 128-bit event id: the same change gets the same id on every delivery
/// (a replay after a crash, a re-run snapshot), so destinations can deduplicate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EventId(u128);

impl EventId {
    /// Hashes the parts that identify an event: for a log event the source partition, the
    /// position and the index within it; for a snapshot read the table and primary key.
    pub fn from_parts(parts: &[&[u8]]) -> Self {
        HASHED.with_borrow_mut(|buf| {
            buf.clear();
            for p in parts {
                push_part(buf, p);
            }
            EventId(xxhash_rust::xxh3::xxh3_128(buf))
        })
    }

    /// The id of a snapshot read of `row` on `topic`: its table and primary key (the
    /// values at `key_positions`, or the whole row for a table without one), so a re-run
    /// snapshot gives the same ids. The same id as `from_parts(&[topic, key bytes])`.
    pub fn of_row(topic: &str, row: &Struct, key_positions: &[usize]) -> Self {
        HASHED.with_borrow_mut(|buf| {
            buf.clear();
            push_part(buf, topic.as_bytes());
            // The key's length prefix, filled in once the key is written.
            let prefix_at = buf.len();
            buf.extend_from_slice(&[0; 8]);
            let values = row.values();
            if key_positions.is_empty() {
                values.iter().for_each(|v| write_key_value(buf, v));
            } else {
                key_positions
                    .iter()
                    .for_each(|&i| write_key_value(buf, &values[i]));
            }
            let key_len = (buf.len() - prefix_at - 8) as u64;
            buf[prefix_at..prefix_at + 8].copy_from_slice(&key_len.to_le_bytes());
            EventId(xxhash_rust::xxh3::xxh3_128(buf))
        })
    }

    /// The id as a number.
    pub fn as_u128(self) -> u128 {
        self.0
    }
}

thread_local! {
    // The bytes an event id hashes, in one buffer per thread (hashed in one call, and not
    // allocated per event).
    static HASHED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Appends a part of an event id, length-prefixed so ("ab","c") and ("a","bc") differ.
fn push_part(buf: &mut Vec<u8>, part: &[u8]) {
    buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
    buf.extend_from_slice(part);
}

/// A key value's bytes for [`EventId::of_row`]: tagged and length-prefixed, so different
/// keys never give the same bytes; integers and text directly, the rest as JSON.
fn write_key_value(out: &mut Vec<u8>, value: &Value) {
    let mut tagged = |tag: u8, bytes: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    match value {
        Value::Null => tagged(0, &[]),
        Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => {
            tagged(1, &value.as_i64().unwrap_or_default().to_le_bytes())
        }
        Value::String(s) => tagged(2, s.as_bytes()),
        Value::Bytes(b) => tagged(3, b),
        other => {
            // Written in place, its length filled in after.
            out.push(4);
            let at = out.len();
            out.extend_from_slice(&[0; 4]);
            crate::convert::json::write_value(out, None, other);
            let len = (out.len() - at - 4) as u32;
            out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A record header (Kafka Connect headers are typed, with an optional schema).
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Header name.
    pub key: Arc<str>,
    /// Schema of the value, if known.
    pub schema: Option<Arc<Schema>>,
    /// The value.
    pub value: Value,
}

/// One record: topic, key and value with their schemas, headers, timestamp and event id.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Destination topic (after routing transforms).
    pub topic: Arc<str>,
    /// Destination partition, if the source chose one.
    pub partition: Option<i32>,
    /// Schema of the key.
    pub key_schema: Option<Arc<Schema>>,
    /// Key ([`Value::Null`] for none).
    pub key: Value,
    /// Schema of the value.
    pub value_schema: Option<Arc<Schema>>,
    /// Value ([`Value::Null`] for a tombstone).
    pub value: Value,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Event time in milliseconds since the Unix epoch (used for lag metrics).
    pub timestamp_ms: Option<i64>,
    /// For a record read from Kafka (the sink runner): its offset in `partition` of
    /// `topic`, Kafka Connect's `SinkRecord.kafkaOffset`. `None` for a source's records.
    pub kafka_offset: Option<i64>,
    /// Deterministic id of the event.
    pub event_id: EventId,
    /// The source's size estimate, if it gave one.
    size_hint: SizeHint,
}

/// A size estimate a source computed while the record's values were still in cache (the
/// engine's walk over a cold batch costs more). Not part of a record's identity.
#[derive(Debug, Clone, Copy, Default)]
struct SizeHint(Option<usize>);

impl PartialEq for SizeHint {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Record {
    /// A record with a value and no key.
    pub fn new(topic: Arc<str>, value_schema: Option<Arc<Schema>>, value: Value) -> Self {
        Record {
            topic,
            partition: None,
            key_schema: None,
            key: Value::Null,
            value_schema,
            value,
            headers: Vec::new(),
            timestamp_ms: None,
            kafka_offset: None,
            event_id: EventId::default(),
            size_hint: SizeHint::default(),
        }
    }

    /// Gives the record's size estimate (see [`Record::size_estimate`]), for sources that
    /// can compute it more cheaply than walking the values. Transforms drop it.
    pub fn with_size_estimate(mut self, bytes: usize) -> Self {
        self.size_hint = SizeHint(Some(bytes));
        self
    }

    /// Measures the record's size now (a walk over its values, while they are in cache)
    /// and keeps it as the estimate, so the engine's single task does not walk it later.
    pub fn measured(self) -> Self {
        let size = self.size_estimate();
        self.with_size_estimate(size)
    }

    pub(crate) fn clear_size_estimate(&mut self) {
        self.size_hint = SizeHint(None);
    }

    /// Sets the key.
    pub fn with_key(mut self, key_schema: Option<Arc<Schema>>, key: Value) -> Self {
        self.key_schema = key_schema;
        self.key = key;
        self
    }

    /// Sets the event id.
    pub fn with_event_id(mut self, id: EventId) -> Self {
        self.event_id = id;
        self
    }

    /// Sets the timestamp.
    pub fn with_timestamp_ms(mut self, ts: i64) -> Self {
        self.timestamp_ms = Some(ts);
        self
    }

    /// Appends a header.
    pub fn with_header(mut self, key: &str, schema: Option<Arc<Schema>>, value: Value) -> Self {
        self.headers.push(Header {
            key: Arc::from(key),
            schema,
            value,
        });
        self
    }

    /// The first header with this name.
    pub fn header(&self, key: &str) -> Option<&Header> {
        self.headers.iter().find(|h| &*h.key == key)
    }

    /// Whether this is a tombstone (a key with a null value, sent after a delete so that
    /// compacted topics forget the key).
    pub fn is_tombstone(&self) -> bool {
        self.value.is_null()
    }

    /// An estimate of the memory the record holds, for byte-bounded batches and queues:
    /// the source's estimate where it gave one, else a walk over the values.
    pub fn size_estimate(&self) -> usize {
        if let SizeHint(Some(bytes)) = self.size_hint {
            return bytes;
        }
        std::mem::size_of::<Record>()
            + self.topic.len()
            + self.key.size_estimate()
            + self.value.size_estimate()
            + self
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.size_estimate())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_ids_follow_the_key_only() {
        use crate::schema::{Schema, SchemaType};
        let schema = Schema::struct_builder()
            .field("id", Schema::required(SchemaType::Int32))
            .field("name", Schema::optional(SchemaType::String))
            .build();
        let row = |id: i32, name: &str| {
            Struct::new(schema.clone(), vec![Value::Int32(id), Value::from(name)]).unwrap()
        };
        let id = |row: &Struct, key: &[usize]| EventId::of_row("srv.db.t", row, key);
        assert_eq!(id(&row(1, "a"), &[0]), id(&row(1, "b"), &[0]));
        assert_ne!(id(&row(1, "a"), &[0]), id(&row(2, "a"), &[0]));
        assert_ne!(id(&row(1, "a"), &[]), id(&row(1, "b"), &[]));
        assert_ne!(
            EventId::of_row("srv.db.t", &row(1, "a"), &[0]),
            EventId::of_row("srv.db.u", &row(1, "a"), &[0])
        );
        // Tagged and length-prefixed: ("ab", "c") and ("a", "bc") differ.
        assert_ne!(id(&row(1, "ab"), &[]), id(&row(1, "a"), &[]));
    }

    #[test]
    fn partitions_compare_by_canonical_json() {
        let a = SourcePartition::server("shop");
        let b = SourcePartition::from_json(r#"{ "server" : "shop" }"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_json(), r#"{"server":"shop"}"#);
    }

    #[test]
    fn event_ids_are_deterministic_and_part_sensitive() {
        let a = EventId::from_parts(&[b"shop", b"0/16B3748", &7u64.to_le_bytes()]);
        let b = EventId::from_parts(&[b"shop", b"0/16B3748", &7u64.to_le_bytes()]);
        let c = EventId::from_parts(&[b"shop", b"0/16B3748", &8u64.to_le_bytes()]);
        let d = EventId::from_parts(&[b"sho", b"p0/16B3748", &7u64.to_le_bytes()]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a.to_string().len(), 32);
    }

    /// Ids are stable across versions: the one-call hash over the buffer gives what the
    /// streaming hasher gave for the same parts, and a row's id is its parts' id.
    #[test]
    fn event_ids_are_the_streamed_hash_of_their_parts() {
        use crate::schema::{Schema, SchemaType};
        let streamed = |parts: &[&[u8]]| {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            for p in parts {
                h.update(&(p.len() as u64).to_le_bytes());
                h.update(p);
            }
            h.digest128()
        };
        let parts: [&[u8]; 3] = [b"shop", b"0/16B3748", &7u64.to_le_bytes()];
        assert_eq!(EventId::from_parts(&parts).as_u128(), streamed(&parts));
        let schema = Schema::struct_builder()
            .field("id", Schema::required(SchemaType::Int32))
            .field("name", Schema::optional(SchemaType::String))
            .build();
        let row = Struct::new(schema, vec![Value::Int32(5), Value::from("x")]).unwrap();
        let mut key = Vec::new();
        write_key_value(&mut key, &Value::Int32(5));
        assert_eq!(
            EventId::of_row("srv.db.t", &row, &[0]).as_u128(),
            streamed(&[b"srv.db.t", &key])
        );
    }
}
