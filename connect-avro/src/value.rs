//! Connect values to Avro values and back, following the schema mapping of
//! [`crate::schema`].

use std::sync::Arc;

use apache_avro::types::Value as Avro;
use connect_core::{Schema, SchemaType, Struct, Value};

/// A value that does not fit its schema, with the path to it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", if path.is_empty() { "<root>" } else { path.as_str() })]
pub struct ValueError {
    /// Where: field names from the top, dot-separated (empty at the top).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ValueError {
    fn new(message: String) -> ValueError {
        ValueError {
            path: String::new(),
            message,
        }
    }

    /// The same error seen from the parent of `segment`: the path is only built while an
    /// error unwinds, never for values that fit.
    fn within(mut self, segment: impl std::fmt::Display) -> ValueError {
        self.path = if self.path.is_empty() {
            segment.to_string()
        } else {
            format!("{segment}.{}", self.path)
        };
        self
    }
}

fn mismatch(schema: &Schema, value: &Value) -> ValueError {
    ValueError::new(format!(
        "value {value:?} does not match schema type {}",
        schema.schema_type().json_name()
    ))
}

/// Appends the Avro binary encoding of a Connect value of `schema` (as
/// [`crate::schema::to_avro`] maps the schema: unions with `null` in the branch order it
/// chose), writing straight from the Connect value: building the library's value tree
/// and resolving the schema for each record cost more than the encoding itself.
pub fn encode(schema: &Schema, value: &Value, out: &mut Vec<u8>) -> Result<(), ValueError> {
    if !schema.is_optional() {
        return encode_base(schema, value, out);
    }
    let null_first = schema.default_value().is_none_or(Value::is_null);
    match value {
        Value::Null => write_long(out, if null_first { 0 } else { 1 }),
        v => {
            write_long(out, if null_first { 1 } else { 0 });
            encode_base(schema, v, out)?;
        }
    }
    Ok(())
}

/// Avro's `long`: zig-zag, then base-128 varint.
fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

fn encode_base(schema: &Schema, value: &Value, out: &mut Vec<u8>) -> Result<(), ValueError> {
    match (schema.schema_type(), value) {
        (_, Value::Null) => return Err(ValueError::new("null in a required field".to_owned())),
        (SchemaType::Boolean, Value::Boolean(b)) => out.push(u8::from(*b)),
        (SchemaType::Int8, Value::Int8(v)) => write_long(out, i64::from(*v)),
        (SchemaType::Int16, Value::Int16(v)) => write_long(out, i64::from(*v)),
        (SchemaType::Int32, Value::Int32(v)) => write_long(out, i64::from(*v)),
        (SchemaType::Int64, Value::Int64(v)) => write_long(out, *v),
        (SchemaType::Float32, Value::Float32(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (SchemaType::Float64, Value::Float64(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (SchemaType::String, Value::String(s)) => write_bytes(out, s.as_bytes()),
        // A Decimal's unscaled bytes are Avro's decimal bytes already.
        (SchemaType::Bytes, Value::Bytes(b)) => write_bytes(out, b),
        (SchemaType::Array, Value::Array(items)) => {
            let item = schema.value_schema().expect("array items");
            if !items.is_empty() {
                write_long(out, items.len() as i64);
                for (i, v) in items.iter().enumerate() {
                    encode(item, v, out).map_err(|e| e.within(i))?;
                }
            }
            write_long(out, 0);
        }
        (SchemaType::Map, Value::Map(pairs)) => {
            let key = schema.key_schema().expect("map keys");
            let val = schema.value_schema().expect("map values");
            let string_keys = key.schema_type() == SchemaType::String && !key.is_optional();
            if !pairs.is_empty() {
                write_long(out, pairs.len() as i64);
                for (k, v) in pairs {
                    if string_keys {
                        let k = k.as_str().ok_or_else(|| mismatch(key, k))?;
                        write_bytes(out, k.as_bytes());
                    } else {
                        // A `MapEntry` record: key, then value.
                        encode(key, k, out).map_err(|e| e.within("key"))?;
                    }
                    encode(val, v, out).map_err(|e| e.within("value"))?;
                }
            }
            write_long(out, 0);
        }
        (SchemaType::Struct, Value::Struct(s)) => {
            for (f, v) in schema.fields().iter().zip(s.values()) {
                encode(f.schema(), v, out).map_err(|e| e.within(f.name()))?;
            }
        }
        _ => return Err(mismatch(schema, value)),
    }
    Ok(())
}

/// The Connect value of an Avro value read with the writer schema that
/// [`crate::schema::to_connect`] turned into `schema`.
pub fn to_connect(schema: &Arc<Schema>, value: Avro) -> Result<Value, ValueError> {
    let value = match value {
        Avro::Union(_, inner) => *inner,
        v => v,
    };
    let bad = |v: &Avro| {
        ValueError::new(format!(
            "Avro value {v:?} does not match schema type {}",
            schema.schema_type().json_name()
        ))
    };
    Ok(match (schema.schema_type(), value) {
        (_, Avro::Null) => Value::Null,
        (SchemaType::Boolean, Avro::Boolean(b)) => Value::Boolean(b),
        (SchemaType::Int8, Avro::Int(v)) => Value::Int8(v as i8),
        (SchemaType::Int16, Avro::Int(v)) => Value::Int16(v as i16),
        (SchemaType::Int32, Avro::Int(v) | Avro::Date(v) | Avro::TimeMillis(v)) => Value::Int32(v),
        (
            SchemaType::Int64,
            Avro::Long(v)
            | Avro::TimestampMillis(v)
            | Avro::TimestampMicros(v)
            | Avro::TimeMicros(v)
            | Avro::TimestampNanos(v)
            | Avro::LocalTimestampMillis(v)
            | Avro::LocalTimestampMicros(v),
        ) => Value::Int64(v),
        (SchemaType::Float32, Avro::Float(v)) => Value::Float32(v),
        (SchemaType::Float64, Avro::Double(v)) => Value::Float64(v),
        (SchemaType::String, Avro::String(s)) => Value::from(s),
        (SchemaType::String, Avro::Enum(_, s)) => Value::from(s),
        (SchemaType::Bytes, Avro::Bytes(b) | Avro::Fixed(_, b)) => Value::Bytes(b.into()),
        (SchemaType::Bytes, Avro::Decimal(d)) => {
            let bytes: Vec<u8> = d
                .try_into()
                .map_err(|e: apache_avro::Error| ValueError::new(e.to_string()))?;
            Value::Bytes(bytes.into())
        }
        (SchemaType::Array, Avro::Array(items)) => {
            let item = schema.value_schema().expect("array items");
            Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| to_connect(item, v).map_err(|e| e.within(i)))
                    .collect::<Result<_, _>>()?,
            )
        }
        (SchemaType::Map, Avro::Map(map)) => {
            let val = schema.value_schema().expect("map values");
            let mut pairs: Vec<(Value, Value)> = map
                .into_iter()
                .map(|(k, v)| {
                    let v = to_connect(val, v).map_err(|e| e.within(&k))?;
                    Ok((Value::from(k), v))
                })
                .collect::<Result<_, ValueError>>()?;
            // Avro maps have no order; a sorted one reads the same on every run.
            pairs.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
            Value::Map(pairs)
        }
        (SchemaType::Map, Avro::Array(entries)) => {
            let key = schema.key_schema().expect("map keys");
            let val = schema.value_schema().expect("map values");
            let mut pairs = Vec::with_capacity(entries.len());
            for entry in entries {
                let Avro::Record(mut fields) = entry else {
                    return Err(bad(&entry));
                };
                let v = fields.pop().map(|(_, v)| v).unwrap_or(Avro::Null);
                let k = fields.pop().map(|(_, v)| v).unwrap_or(Avro::Null);
                pairs.push((
                    to_connect(key, k).map_err(|e| e.within("key"))?,
                    to_connect(val, v).map_err(|e| e.within("value"))?,
                ));
            }
            Value::Map(pairs)
        }
        (SchemaType::Struct, Avro::Record(fields)) => {
            // Read with the writer schema this Connect schema was made from: the fields
            // come in its order.
            let values = schema
                .fields()
                .iter()
                .zip(fields)
                .map(|(f, (_, v))| to_connect(f.schema(), v).map_err(|e| e.within(f.name())))
                .collect::<Result<Vec<_>, _>>()?;
            Value::Struct(
                Struct::new(schema.clone(), values).map_err(|e| ValueError::new(e.to_string()))?,
            )
        }
        (_, v) => return Err(bad(&v)),
    })
}
