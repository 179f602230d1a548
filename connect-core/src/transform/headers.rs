//! Kafka Connect's header transforms: `InsertHeader`, `DropHeaders` and
//! `HeaderFrom$Key` / `$Value`.

use std::sync::Arc;

use super::fields::{map_get, new_struct, require_map, require_struct};
use super::{transform_error, SchemaCache, Side, Transform};
use crate::error::Error;
use crate::properties::Scope;
use crate::record::{Header, Record};
use crate::schema::{Schema, SchemaType};
use crate::value::Value;

/// A literal read as Kafka's `Values.parseString` types it: `true`/`false` as boolean, an
/// integer as the narrowest of int8..int64, a decimal number as float32 (float64 when
/// float32 overflows), anything else as a string.
pub fn parse_literal(text: &str) -> (Arc<Schema>, Value) {
    let t = text.trim();
    if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") {
        return (
            Schema::required(SchemaType::Boolean),
            Value::Boolean(t.eq_ignore_ascii_case("true")),
        );
    }
    if let Ok(n) = t.parse::<i64>() {
        return if let Ok(v) = i8::try_from(n) {
            (Schema::required(SchemaType::Int8), Value::Int8(v))
        } else if let Ok(v) = i16::try_from(n) {
            (Schema::required(SchemaType::Int16), Value::Int16(v))
        } else if let Ok(v) = i32::try_from(n) {
            (Schema::required(SchemaType::Int32), Value::Int32(v))
        } else {
            (Schema::required(SchemaType::Int64), Value::Int64(n))
        };
    }
    let numeric = t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && t.bytes().any(|b| b.is_ascii_digit());
    if let (true, Ok(f)) = (numeric, t.parse::<f64>()) {
        let narrow = f as f32;
        return if narrow.is_finite() {
            (
                Schema::required(SchemaType::Float32),
                Value::Float32(narrow),
            )
        } else {
            (Schema::required(SchemaType::Float64), Value::Float64(f))
        };
    }
    (Schema::required(SchemaType::String), Value::string(text))
}

/// Kafka's `org.apache.kafka.connect.transforms.InsertHeader`: adds `header` with the
/// value `value.literal`, typed by [`parse_literal`].
#[derive(Debug)]
pub struct InsertHeader {
    header: Arc<str>,
    schema: Arc<Schema>,
    value: Value,
}

impl InsertHeader {
    /// Builds from `transforms.<alias>.header` / `.value.literal`.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        let header = Arc::from(scope.require("header")?);
        let (schema, value) = parse_literal(scope.require("value.literal")?);
        Ok(InsertHeader {
            header,
            schema,
            value,
        })
    }
}

impl Transform for InsertHeader {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        record.headers.push(Header {
            key: self.header.clone(),
            schema: Some(self.schema.clone()),
            value: self.value.clone(),
        });
        Ok(Some(record))
    }
}

/// Kafka's `org.apache.kafka.connect.transforms.DropHeaders`: removes every header named
/// in `headers`.
#[derive(Debug)]
pub struct DropHeaders {
    headers: Vec<String>,
}

impl DropHeaders {
    /// Builds from `transforms.<alias>.headers`.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        let headers = scope.require_list("headers")?;
        Ok(DropHeaders { headers })
    }
}

impl Transform for DropHeaders {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        record
            .headers
            .retain(|h| !self.headers.iter().any(|d| **d == *h.key));
        Ok(Some(record))
    }
}

/// Kafka's `HeaderFrom$Key` / `$Value`: copies (`operation=copy`) or moves
/// (`operation=move`, removing them) `fields` into the headers named by `headers`, pair
/// by pair.
#[derive(Debug)]
pub struct HeaderFrom {
    side: Side,
    pairs: Vec<(String, Arc<str>)>,
    moving: bool,
    schemas: SchemaCache,
}

impl HeaderFrom {
    /// Builds from `transforms.<alias>.fields`, `.headers` and `.operation`.
    pub fn from_props(side: Side, scope: &Scope<'_>) -> Result<Self, Error> {
        let fields = scope.list("fields");
        let headers = scope.list("headers");
        if fields.is_empty() {
            return Err(Error::config(scope.key("fields"), "is required"));
        }
        if fields.len() != headers.len() {
            return Err(Error::config(
                scope.key("headers"),
                format!(
                    "names {} headers for {} fields: they pair up one to one",
                    headers.len(),
                    fields.len()
                ),
            ));
        }
        let operation = scope.one_of("operation", &["copy", "move"], "")?;
        if operation.is_empty() {
            return Err(Error::config(scope.key("operation"), "is required"));
        }
        scope.bool_or("replace.null.with.default", true)?;
        Ok(HeaderFrom {
            side,
            pairs: fields
                .into_iter()
                .map(str::to_owned)
                .zip(headers.into_iter().map(Arc::from))
                .collect(),
            moving: operation == "move",
            schemas: SchemaCache::default(),
        })
    }

    fn moves(&self, field: &str) -> bool {
        self.moving && self.pairs.iter().any(|(f, _)| f == field)
    }
}

impl Transform for HeaderFrom {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        if self.side.value(&record).is_null() {
            return Ok(Some(record));
        }
        match self.side.schema(&record).cloned() {
            None => {
                let map = require_map(&record, self.side, "header extraction")?;
                let headers: Vec<Header> = self
                    .pairs
                    .iter()
                    .map(|(field, header)| Header {
                        key: header.clone(),
                        schema: None,
                        value: map_get(map, field).cloned().unwrap_or_default(),
                    })
                    .collect();
                record.headers.extend(headers);
                if self.moving {
                    if let (_, Value::Map(mut map)) = self.side.take(&mut record) {
                        map.retain(|(k, _)| !k.as_str().is_some_and(|k| self.moves(k)));
                        self.side.set(&mut record, None, Value::Map(map));
                    }
                }
            }
            Some(schema) => {
                let row = require_struct(&record, self.side, "header extraction")?;
                let mut headers = Vec::with_capacity(self.pairs.len());
                for (field, header) in &self.pairs {
                    let (i, f) = schema.field(field).ok_or_else(|| {
                        transform_error(&record, format!("field `{field}` does not exist"))
                    })?;
                    headers.push(Header {
                        key: header.clone(),
                        schema: Some(f.schema().clone()),
                        value: row.values()[i].clone(),
                    });
                }
                record.headers.extend(headers);
                if self.moving {
                    let out = self.schemas.get_or_build(&schema, |s| {
                        let mut b = s.basics();
                        for f in s.fields().iter().filter(|f| !self.moves(f.name())) {
                            b = b.field(f.name(), f.schema().clone());
                        }
                        b.build()
                    });
                    if let (_, Value::Struct(row)) = self.side.take(&mut record) {
                        let values = schema
                            .fields()
                            .iter()
                            .zip(row.into_values())
                            .filter(|(f, _)| !self.moves(f.name()))
                            .map(|(_, v)| v)
                            .collect();
                        self.side
                            .set(&mut record, Some(out.clone()), new_struct(out, values));
                    }
                }
            }
        }
        Ok(Some(record))
    }
}
