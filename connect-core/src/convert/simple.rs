//! Kafka's `StringConverter` and `ByteArrayConverter`.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;

use super::{conversion_error, Converter};
use crate::error::Error;
use crate::schema::{Schema, SchemaType};
use crate::value::Value;

/// Kafka's `StringConverter`: strings as UTF-8, other values in their text form
/// (`Struct{id=1,name=x}` for structs, as Java's `toString`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StringConverter;

impl Converter for StringConverter {
    fn serialize(
        &self,
        _topic: &str,
        _schema: Option<&Arc<Schema>>,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<bool, Error> {
        match value {
            Value::Null => Ok(false),
            Value::String(s) => {
                out.extend_from_slice(s.as_bytes());
                Ok(true)
            }
            other => {
                let mut text = String::new();
                write_text(&mut text, other);
                out.extend_from_slice(text.as_bytes());
                Ok(true)
            }
        }
    }

    fn deserialize(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Arc<Schema>>, Value), Error> {
        let schema = Schema::optional(SchemaType::String);
        match bytes {
            None => Ok((Some(schema), Value::Null)),
            Some(b) => Value::string_from_bytes(Bytes::copy_from_slice(b))
                .map(|v| (Some(schema), v))
                .map_err(|e| conversion_error(topic, format!("not UTF-8: {e}"))),
        }
    }
}

fn write_text(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int8(v) => write!(out, "{v}").unwrap_or_default(),
        Value::Int16(v) => write!(out, "{v}").unwrap_or_default(),
        Value::Int32(v) => write!(out, "{v}").unwrap_or_default(),
        Value::Int64(v) => write!(out, "{v}").unwrap_or_default(),
        Value::Float32(v) => write!(out, "{v:?}").unwrap_or_default(),
        Value::Float64(v) => write!(out, "{v:?}").unwrap_or_default(),
        Value::String(s) => out.push_str(s),
        Value::Bytes(b) => write!(out, "{:?}", &b[..]).unwrap_or_default(),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_text(out, item);
            }
            out.push(']');
        }
        Value::Map(pairs) => {
            out.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_text(out, k);
                out.push('=');
                write_text(out, v);
            }
            out.push('}');
        }
        Value::Struct(s) => {
            out.push_str("Struct{");
            let mut first = true;
            for (field, v) in s.schema().fields().iter().zip(s.values()) {
                // Java's Struct.toString leaves out null fields.
                if v.is_null() {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(field.name());
                out.push('=');
                write_text(out, v);
            }
            out.push('}');
        }
    }
}

/// Kafka's `ByteArrayConverter`: bytes pass through unchanged; anything else is an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn serialize(
        &self,
        topic: &str,
        _schema: Option<&Arc<Schema>>,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<bool, Error> {
        match value {
            Value::Null => Ok(false),
            Value::Bytes(b) => {
                out.extend_from_slice(b);
                Ok(true)
            }
            other => Err(conversion_error(
                topic,
                format!("ByteArrayConverter takes bytes, got {}", kind(other)),
            )),
        }
    }

    fn deserialize(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Arc<Schema>>, Value), Error> {
        let schema = Schema::optional(SchemaType::Bytes);
        Ok((
            Some(schema),
            bytes.map_or(Value::Null, |b| Value::Bytes(Bytes::copy_from_slice(b))),
        ))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => "an integer",
        Value::Float32(_) | Value::Float64(_) => "a float",
        Value::String(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Struct(_) => "a struct",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Struct;

    #[test]
    fn string_converter_writes_text_forms() {
        let schema = Schema::struct_builder()
            .field("id", Schema::required(SchemaType::Int32))
            .field("name", Schema::optional(SchemaType::String))
            .field("gone", Schema::optional(SchemaType::String))
            .build();
        let v = Value::Struct(
            Struct::new(
                schema,
                vec![Value::Int32(1), Value::string("x"), Value::Null],
            )
            .unwrap(),
        );
        let mut out = Vec::new();
        StringConverter.serialize("t", None, &v, &mut out).unwrap();
        assert_eq!(out, b"Struct{id=1,name=x}");
    }

    #[test]
    fn byte_array_converter_rejects_non_bytes() {
        let mut out = Vec::new();
        let e = ByteArrayConverter
            .serialize("t", None, &Value::Int32(1), &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("ByteArrayConverter"));
        assert!(ByteArrayConverter
            .serialize(
                "t",
                None,
                &Value::Bytes(Bytes::from_static(b"ab")),
                &mut out
            )
            .unwrap());
        assert_eq!(out, b"ab");
    }
}
