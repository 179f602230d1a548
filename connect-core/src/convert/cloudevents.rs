//! Debezium's `io.debezium.converters.CloudEventsConverter` in structured mode with JSON
//! events and JSON data: each change event becomes one CloudEvent,
//!
//! ```json
//! {"id":"name:shop;lsn:29274832;txId:565;sequence:[\"29274832\",\"29274832\"]",
//!  "source":"/debezium/postgresql/shop","specversion":"1.0",
//!  "type":"io.debezium.connector.postgresql.DataChangeEvent",
//!  "time":"2026-01-13T13:55:39.738Z","datacontenttype":"application/json",
//!  "iodebeziumop":"c","iodebeziumversion":"3.6.3.Final", ...,
//!  "data":{"schema":{...},"payload":{"before":null,"after":{...}}}}
//! ```
//!
//! as Debezium writes it: the `id` is the connector's (`name;lsn;txId;sequence` for
//! PostgreSQL, `name;file;pos` for MySQL and MariaDB), `time` is `source.ts_ms`, every
//! `source` field becomes an `iodebezium<name>` extension attribute (int64 values as
//! strings) and every transaction field an `iodebeziumtx<name>` one, and `data` holds
//! `before` and `after` (MariaDB: the whole envelope), with its schema unless
//! `json.schemas.enable=false`. Records that are not change events (tombstones, schema
//! changes, heartbeats) are null messages, as in Debezium.

use std::sync::Arc;

use super::json::{write_fields, write_str, write_value};
use super::{conversion_error, Converter, JsonConverter};
use crate::envelope::{transaction_block_schema, ENVELOPE_SUFFIX};
use crate::error::Error;
use crate::schema::{Schema, SchemaType};
use crate::transform::{DateFormat, SchemaCache};
use crate::value::{Struct, Value};

/// Debezium's CloudEvents converter (JSON event, JSON data).
#[derive(Debug)]
pub struct CloudEventsConverter {
    data: JsonConverter,
    extension_attributes: bool,
    time_format: DateFormat,
    /// `data` schemas of `before` and `after`, by envelope schema.
    row_data: SchemaCache,
    /// `data` schemas of the whole envelope (MariaDB), by envelope schema.
    envelope_data: SchemaCache,
}

impl CloudEventsConverter {
    /// A converter; `data_schemas` is `json.schemas.enable` (Debezium's default `true`),
    /// `extension_attributes` is `extension.attributes.enable` (default `true`).
    pub fn new(data_schemas: bool, extension_attributes: bool) -> Self {
        CloudEventsConverter {
            data: JsonConverter::new(data_schemas),
            extension_attributes,
            time_format: DateFormat::new("yyyy-MM-dd'T'HH:mm:ss.SSSXXX").expect("valid pattern"),
            row_data: SchemaCache::default(),
            envelope_data: SchemaCache::default(),
        }
    }

    /// The `data` schema: `io.debezium.connector.<connector>.Data` with `before` and
    /// `after`, or every envelope field for MariaDB (as Debezium's makers choose).
    fn data_schema(&self, envelope: &Arc<Schema>, connector: &str) -> Arc<Schema> {
        let whole = connector == "mariadb";
        let cache = if whole {
            &self.envelope_data
        } else {
            &self.row_data
        };
        cache.get_or_build(envelope, |s| {
            let mut b =
                Schema::struct_builder().name(format!("io.debezium.connector.{connector}.Data"));
            for f in s.fields() {
                if whole || matches!(f.name(), "before" | "after") {
                    b = b.field(f.name(), f.schema().clone());
                }
            }
            b.build()
        })
    }
}

/// Debezium's extension attribute name: `iodebezium` plus the ASCII letters and digits.
fn extension_name(out: &mut Vec<u8>, prefix: &str, name: &str) {
    out.extend_from_slice(b",\"iodebezium");
    out.extend(
        prefix
            .bytes()
            .chain(name.bytes())
            .filter(u8::is_ascii_alphanumeric),
    );
    out.extend_from_slice(b"\":");
}

/// An extension attribute's value: int64 as a string (CloudEvents has no 64-bit type).
fn extension_value(out: &mut Vec<u8>, schema: &Schema, value: &Value) {
    match (schema.schema_type(), value) {
        (SchemaType::Int64, Value::Int64(n)) => {
            out.push(b'"');
            out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
            out.push(b'"');
        }
        _ => write_value(out, Some(schema), value),
    }
}

fn text<'a>(s: &'a Struct, name: &str) -> Option<&'a str> {
    s.get(name).and_then(Value::as_str)
}

impl Converter for CloudEventsConverter {
    fn serialize(
        &self,
        topic: &str,
        schema: Option<&Arc<Schema>>,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<bool, Error> {
        let (Some(schema), Value::Struct(envelope)) = (schema, value) else {
            return Ok(false);
        };
        if !schema.name().is_some_and(|n| n.ends_with(ENVELOPE_SUFFIX)) {
            return Ok(false);
        }
        let source = envelope
            .get("source")
            .and_then(Value::as_struct)
            .ok_or_else(|| conversion_error(topic, "the change event has no `source` block"))?;
        let connector = text(source, "connector")
            .ok_or_else(|| conversion_error(topic, "`source.connector` is missing"))?;
        let name = text(source, "name").unwrap_or_default();
        let ts_ms = source
            .get("ts_ms")
            .and_then(Value::as_i64)
            .ok_or_else(|| conversion_error(topic, "`source.ts_ms` is missing"))?;
        let field = |n: &str| match source.get(n) {
            None | Some(Value::Null) => "null".to_owned(),
            Some(Value::String(s)) => s.to_string(),
            Some(v) => v
                .as_i64()
                .map_or_else(|| format!("{v:?}"), |n| n.to_string()),
        };
        let id = match connector {
            "postgresql" => format!(
                "name:{name};lsn:{};txId:{};sequence:{}",
                field("lsn"),
                field("txId"),
                field("sequence")
            ),
            "mysql" | "mariadb" => {
                format!("name:{name};file:{};pos:{}", field("file"), field("pos"))
            }
            other => {
                return Err(conversion_error(
                    topic,
                    format!("no CloudEvents id for connector type `{other}`"),
                ))
            }
        };
        out.extend_from_slice(b"{\"id\":");
        write_str(out, &id);
        out.extend_from_slice(b",\"source\":");
        write_str(out, &format!("/debezium/{connector}/{name}"));
        out.extend_from_slice(b",\"specversion\":\"1.0\",\"type\":");
        write_str(
            out,
            &format!("io.debezium.connector.{connector}.DataChangeEvent"),
        );
        out.extend_from_slice(b",\"time\":");
        write_str(out, &self.time_format.format(ts_ms));
        out.extend_from_slice(b",\"datacontenttype\":\"application/json\"");
        if self.extension_attributes {
            extension_name(out, "", "op");
            write_value(out, None, envelope.get("op").unwrap_or(&Value::Null));
            for (f, v) in source.schema().fields().iter().zip(source.values()) {
                extension_name(out, "", f.name());
                extension_value(out, f.schema(), v);
            }
            let tx = envelope.get("transaction").and_then(Value::as_struct);
            for f in transaction_block_schema().fields() {
                extension_name(out, "tx", f.name());
                match tx.and_then(|t| t.get(f.name())) {
                    Some(v) => extension_value(out, f.schema(), v),
                    None => out.extend_from_slice(b"null"),
                }
            }
        }
        out.extend_from_slice(b",\"data\":");
        // The data's fields are the envelope's, written from it (no copy of the rows).
        let data_schema = self.data_schema(schema, connector);
        let values = data_schema
            .fields()
            .iter()
            .map(|f| envelope.get(f.name()).unwrap_or(&Value::Null));
        if self.data.schemas_enabled() {
            out.extend_from_slice(b"{\"schema\":");
            out.extend_from_slice(data_schema.json().as_bytes());
            out.extend_from_slice(b",\"payload\":");
            write_fields(out, data_schema.fields(), values);
            out.push(b'}');
        } else {
            write_fields(out, data_schema.fields(), values);
        }
        out.push(b'}');
        Ok(true)
    }

    /// A CloudEvent back as a schemaless map whose `data` is the data's Connect value
    /// (with its schema when `json.schemas.enable`), as Debezium reads one.
    fn deserialize(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Arc<Schema>>, Value), Error> {
        let Some(bytes) = bytes else {
            return Ok((None, Value::Null));
        };
        let mut event: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(bytes)
                .map_err(|e| conversion_error(topic, format!("not a CloudEvent: {e}")))?;
        for required in ["id", "source", "specversion", "type"] {
            if !event.contains_key(required) {
                return Err(conversion_error(
                    topic,
                    format!("not a CloudEvent: no `{required}` attribute"),
                ));
            }
        }
        let data = event.remove("data").unwrap_or(serde_json::Value::Null);
        let data_bytes = serde_json::to_vec(&data).expect("JSON values serialize");
        let (_, data) = self.data.deserialize(topic, Some(&data_bytes))?;
        let (_, attributes) = JsonConverter::new(false).deserialize(
            topic,
            Some(&serde_json::to_vec(&event).expect("JSON values serialize")),
        )?;
        let Value::Map(mut map) = attributes else {
            unreachable!("a JSON object reads as a map")
        };
        map.push((Value::static_str("data"), data));
        Ok((None, Value::Map(map)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{EnvelopeSchema, Op};
    use std::time::UNIX_EPOCH;

    fn event() -> (Arc<Schema>, Value) {
        let row = Schema::struct_builder()
            .name("srv.public.t.Value")
            .optional()
            .field("id", Schema::required(SchemaType::Int32))
            .build();
        let source = Schema::struct_builder()
            .name("io.debezium.connector.postgresql.Source")
            .field("connector", Schema::required(SchemaType::String))
            .field("name", Schema::required(SchemaType::String))
            .field("ts_ms", Schema::required(SchemaType::Int64))
            .field("lsn", Schema::optional(SchemaType::Int64))
            .field("txId", Schema::optional(SchemaType::Int64))
            .field("sequence", Schema::optional(SchemaType::String))
            .build();
        let env = EnvelopeSchema::new("srv.public.t", row.clone(), source.clone()).unwrap();
        let src = Struct::new(
            source,
            vec![
                Value::from("postgresql"),
                Value::from("srv"),
                Value::Int64(1_496_671_628_123),
                Value::Int64(42),
                Value::Int64(7),
                Value::Null,
            ],
        )
        .unwrap();
        let after = Struct::new(row, vec![Value::Int32(1)]).unwrap();
        let v = env.event(Op::Create, None, Some(after), src, None, UNIX_EPOCH);
        (env.schema().clone(), v)
    }

    #[test]
    fn a_change_event_becomes_a_structured_cloud_event_and_back() {
        let (schema, value) = event();
        let ce = CloudEventsConverter::new(false, true);
        let mut out = Vec::new();
        assert!(ce.serialize("t", Some(&schema), &value, &mut out).unwrap());
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"id":"name:srv;lsn:42;txId:7;sequence:null","source":"/debezium/postgresql/srv","#,
                r#""specversion":"1.0","type":"io.debezium.connector.postgresql.DataChangeEvent","#,
                r#""time":"2017-06-05T14:07:08.123Z","datacontenttype":"application/json","#,
                r#""iodebeziumop":"c","iodebeziumconnector":"postgresql","iodebeziumname":"srv","#,
                r#""iodebeziumtsms":"1496671628123","iodebeziumlsn":"42","iodebeziumtxId":"7","#,
                r#""iodebeziumsequence":null,"iodebeziumtxid":null,"iodebeziumtxtotalorder":null,"#,
                r#""iodebeziumtxdatacollectionorder":null,"data":{"before":null,"after":{"id":1}}}"#
            )
        );
        let (_, back) = ce.deserialize("t", Some(&out)).unwrap();
        let Value::Map(map) = back else {
            panic!("{back:?}")
        };
        let get = |k: &str| {
            map.iter()
                .find(|(n, _)| n.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        assert_eq!(get("iodebeziumop"), Some(&Value::from("c")));
        let data = get("data").unwrap();
        assert!(matches!(data, Value::Map(_)), "{data:?}");
        // Tombstones and records that are not change events are null messages.
        assert!(!ce
            .serialize("t", None, &Value::Null, &mut Vec::new())
            .unwrap());
        let e = ce
            .deserialize("t", Some(br#"{"id":"x"}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`source`"), "{e}");
    }

    #[test]
    fn binlog_connectors_are_identified_by_file_and_position_and_mariadb_sends_the_envelope() {
        let row = Schema::struct_builder()
            .name("srv.shop.t.Value")
            .optional()
            .field("id", Schema::required(SchemaType::Int32))
            .build();
        let source = Schema::struct_builder()
            .name("io.debezium.connector.mariadb.Source")
            .field("connector", Schema::required(SchemaType::String))
            .field("name", Schema::required(SchemaType::String))
            .field("ts_ms", Schema::required(SchemaType::Int64))
            .field("file", Schema::required(SchemaType::String))
            .field("pos", Schema::required(SchemaType::Int64))
            .build();
        let env = EnvelopeSchema::new("srv.shop.t", row.clone(), source.clone()).unwrap();
        let event = |connector: &str| {
            let src = Struct::new(
                source.clone(),
                vec![
                    Value::from(connector),
                    Value::from("srv"),
                    Value::Int64(0),
                    Value::from("mariadb-bin.000007"),
                    Value::Int64(1234),
                ],
            )
            .unwrap();
            let after = Struct::new(row.clone(), vec![Value::Int32(1)]).unwrap();
            env.event(Op::Create, None, Some(after), src, None, UNIX_EPOCH)
        };
        let ce = CloudEventsConverter::new(false, false);
        let text = |connector: &str| {
            let mut out = Vec::new();
            ce.serialize("t", Some(env.schema()), &event(connector), &mut out)
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        let mysql = text("mysql");
        assert!(
            mysql.starts_with(r#"{"id":"name:srv;file:mariadb-bin.000007;pos:1234","source":"/debezium/mysql/srv""#),
            "{mysql}"
        );
        assert!(
            mysql.ends_with(r#""data":{"before":null,"after":{"id":1}}}"#),
            "{mysql}"
        );
        // Debezium's MariaDB maker names no data fields: the whole envelope is the data.
        let mariadb = text("mariadb");
        assert!(
            mariadb.contains(r#""type":"io.debezium.connector.mariadb.DataChangeEvent""#),
            "{mariadb}"
        );
        assert!(
            mariadb.contains(
                r#""data":{"before":null,"after":{"id":1},"source":{"connector":"mariadb""#
            ),
            "{mariadb}"
        );
        assert!(
            mariadb.ends_with(r#""op":"c","ts_ms":0,"ts_us":0,"ts_ns":0}}"#),
            "{mariadb}"
        );
    }
}
