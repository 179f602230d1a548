//! Kafka Connect's `Cast$Key` / `$Value` and `Flatten$Key` / `$Value`.

use std::sync::{Arc, LazyLock};

use base64::Engine as _;

use super::datefmt::DateFormat;
use super::fields::{new_struct, type_name};
use super::{transform_error, SchemaCache, Side, Transform};
use crate::convert::json::{write_f32, write_f64};
use crate::error::Error;
use crate::properties::Scope;
use crate::record::Record;
use crate::schema::{logical, Schema, SchemaType};
use crate::value::{decimal_text, Value};

/// Kafka's text forms of Date, Time and Timestamp (`Values.dateFormatFor`), in UTC.
static DATE_TEXT: LazyLock<DateFormat> =
    LazyLock::new(|| DateFormat::new("yyyy-MM-dd").expect("valid pattern"));
static TIME_TEXT: LazyLock<DateFormat> =
    LazyLock::new(|| DateFormat::new("HH:mm:ss.SSS").expect("valid pattern"));
static TIMESTAMP_TEXT: LazyLock<DateFormat> =
    LazyLock::new(|| DateFormat::new("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").expect("valid pattern"));

/// A type `Cast` writes.
const CAST_TYPES: [(&str, SchemaType); 8] = [
    ("int8", SchemaType::Int8),
    ("int16", SchemaType::Int16),
    ("int32", SchemaType::Int32),
    ("int64", SchemaType::Int64),
    ("float32", SchemaType::Float32),
    ("float64", SchemaType::Float64),
    ("boolean", SchemaType::Boolean),
    ("string", SchemaType::String),
];

/// Kafka's `Cast$Key` / `$Value`: `spec` is one type for the whole key or value
/// (`int32`) or `field:type` pairs (`id:int64,score:string`). Numbers narrow and
/// truncate as Java's casts do; strings parse; booleans are `true`/`false` and `1`/`0`;
/// bytes become base64 text; Decimal, Date, Time and Timestamp cast to string (plain
/// decimal, ISO-8601 in UTC) and Decimal and Timestamp to numbers.
#[derive(Debug)]
pub struct Cast {
    side: Side,
    whole: Option<SchemaType>,
    fields: Vec<(String, SchemaType)>,
    schemas: SchemaCache,
}

impl Cast {
    /// Builds from `transforms.<alias>.spec`.
    pub fn from_props(side: Side, scope: &Scope<'_>) -> Result<Self, Error> {
        let key = scope.key("spec");
        let spec = scope.require("spec")?;
        let ty = |name: &str| {
            CAST_TYPES
                .iter()
                .find(|(n, _)| *n == name.trim())
                .map(|(_, t)| *t)
                .ok_or_else(|| {
                    Error::config(
                        &key,
                        format!(
                            "cannot cast to `{name}` (types: {})",
                            CAST_TYPES.map(|(n, _)| n).join(", ")
                        ),
                    )
                })
        };
        let items = scope.list("spec");
        scope.bool_or("replace.null.with.default", true)?;
        let mut cast = Cast {
            side,
            whole: None,
            fields: Vec::new(),
            schemas: SchemaCache::default(),
        };
        if items.len() == 1 && !items[0].contains(':') {
            cast.whole = Some(ty(items[0])?);
            return Ok(cast);
        }
        for item in items {
            let (field, target) = item.split_once(':').ok_or_else(|| {
                Error::config(
                    &key,
                    format!("`{spec}` mixes a whole-value type with field:type pairs"),
                )
            })?;
            cast.fields.push((field.trim().to_owned(), ty(target)?));
        }
        Ok(cast)
    }

    fn target_of(&self, field: &str) -> Option<SchemaType> {
        self.fields
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, t)| *t)
    }
}

/// The output schema of a cast: the target type, optional and documented as the input.
fn cast_schema(input: &Schema, target: SchemaType) -> Result<Arc<Schema>, String> {
    if matches!(
        input.schema_type(),
        SchemaType::Struct | SchemaType::Array | SchemaType::Map
    ) {
        return Err(format!(
            "cannot cast a {} (only primitive and logical types)",
            input.schema_type().json_name()
        ));
    }
    let mut b = Schema::builder(target).with_optional(input.is_optional());
    if let Some(doc) = input.doc() {
        b = b.doc(doc);
    }
    Ok(b.build())
}

/// Casts a value of `schema` (`None` when schemaless) to `target`.
fn cast_value(v: &Value, schema: Option<&Schema>, target: SchemaType) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let bad = || {
        format!(
            "cannot cast {} `{v:?}` to {}",
            type_name(v),
            target.json_name()
        )
    };
    let logical_name = schema.and_then(Schema::name);
    // Logical types first: their physical values mean something else.
    let v = match (logical_name, v) {
        (Some(logical::DECIMAL), Value::Bytes(b)) => {
            let scale = schema
                .and_then(|s| s.parameter("scale"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let text = decimal_text(b, scale)?;
            return match target {
                SchemaType::String => Ok(Value::from(text)),
                SchemaType::Boolean => Ok(Value::Boolean(
                    !text.trim_start_matches(['-', '0', '.']).is_empty(),
                )),
                _ => numeric(text.parse::<f64>().map_err(|_| bad())?, target).ok_or_else(bad),
            };
        }
        (Some(logical::DATE), Value::Int32(days)) if target == SchemaType::String => {
            return Ok(Value::from(DATE_TEXT.format(i64::from(*days) * 86_400_000)))
        }
        (Some(logical::TIME), Value::Int32(ms)) if target == SchemaType::String => {
            return Ok(Value::from(TIME_TEXT.format(i64::from(*ms))))
        }
        (Some(logical::TIMESTAMP), Value::Int64(ms)) if target == SchemaType::String => {
            return Ok(Value::from(TIMESTAMP_TEXT.format(*ms)))
        }
        (Some(logical::DATE | logical::TIME), _) => return Err(bad()),
        _ => v,
    };
    let out = match (v, target) {
        (Value::String(s), SchemaType::String) => Value::String(s.clone()),
        (Value::String(s), SchemaType::Boolean) => {
            Value::Boolean(s.trim().eq_ignore_ascii_case("true"))
        }
        (Value::String(s), _) => {
            let s = s.trim();
            match target {
                SchemaType::Int8 => s.parse().map(Value::Int8).map_err(|_| bad())?,
                SchemaType::Int16 => s.parse().map(Value::Int16).map_err(|_| bad())?,
                SchemaType::Int32 => s.parse().map(Value::Int32).map_err(|_| bad())?,
                SchemaType::Int64 => s.parse().map(Value::Int64).map_err(|_| bad())?,
                SchemaType::Float32 => s.parse().map(Value::Float32).map_err(|_| bad())?,
                _ => s.parse().map(Value::Float64).map_err(|_| bad())?,
            }
        }
        (Value::Bytes(b), SchemaType::String) => {
            Value::from(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Value::Boolean(b), SchemaType::String) => {
            Value::static_str(if *b { "true" } else { "false" })
        }
        (Value::Boolean(b), SchemaType::Boolean) => Value::Boolean(*b),
        (Value::Boolean(b), _) => numeric(f64::from(u8::from(*b)), target).ok_or_else(bad)?,
        (Value::Float32(f), SchemaType::String) => {
            let mut out = Vec::new();
            write_f32(&mut out, *f);
            Value::from(
                String::from_utf8(out)
                    .expect("ascii")
                    .trim_matches('"')
                    .to_owned(),
            )
        }
        (Value::Float64(f), SchemaType::String) => {
            let mut out = Vec::new();
            write_f64(&mut out, *f);
            Value::from(
                String::from_utf8(out)
                    .expect("ascii")
                    .trim_matches('"')
                    .to_owned(),
            )
        }
        (Value::Float32(f), _) => float_cast(f64::from(*f), target).ok_or_else(bad)?,
        (Value::Float64(f), _) => float_cast(*f, target).ok_or_else(bad)?,
        (int, _) => {
            let n = int.as_i64().ok_or_else(bad)?;
            match target {
                SchemaType::String => Value::from(n.to_string()),
                SchemaType::Boolean => Value::Boolean(n != 0),
                SchemaType::Int8 => Value::Int8(n as i8),
                SchemaType::Int16 => Value::Int16(n as i16),
                SchemaType::Int32 => Value::Int32(n as i32),
                SchemaType::Int64 => Value::Int64(n),
                SchemaType::Float32 => Value::Float32(n as f32),
                _ => Value::Float64(n as f64),
            }
        }
    };
    Ok(out)
}

/// A float cast as Java's primitive casts do (saturating, NaN to 0).
fn float_cast(f: f64, target: SchemaType) -> Option<Value> {
    match target {
        SchemaType::Boolean => Some(Value::Boolean(f as i64 != 0)),
        _ => numeric(f, target),
    }
}

fn numeric(f: f64, target: SchemaType) -> Option<Value> {
    Some(match target {
        // Java narrows a double to int first, then wraps to byte or short.
        SchemaType::Int8 => Value::Int8(f as i32 as i8),
        SchemaType::Int16 => Value::Int16(f as i32 as i16),
        SchemaType::Int32 => Value::Int32(f as i32),
        SchemaType::Int64 => Value::Int64(f as i64),
        SchemaType::Float32 => Value::Float32(f as f32),
        SchemaType::Float64 => Value::Float64(f),
        SchemaType::Boolean => Value::Boolean(f as i64 != 0),
        _ => return None,
    })
}

impl Transform for Cast {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        let (schema, value) = self.side.take(&mut record);
        let result = match (self.whole, schema) {
            (Some(target), None) => cast_value(&value, None, target).map(|v| (None, v)),
            (Some(target), Some(schema)) => cast_schema(&schema, target)
                .and_then(|out| cast_value(&value, Some(&schema), target).map(|v| (Some(out), v))),
            (None, None) => match value {
                Value::Null => Ok((None, Value::Null)),
                Value::Map(mut map) => {
                    let mut result = Ok(());
                    for (k, v) in map.iter_mut() {
                        if let Some(target) = k.as_str().and_then(|k| self.target_of(k)) {
                            match cast_value(v, None, target) {
                                Ok(c) => *v = c,
                                Err(e) => result = Err(e),
                            }
                        }
                    }
                    result.map(|()| (None, Value::Map(map)))
                }
                other => Err(format!(
                    "only a map is supported for [cast types] without a schema, found: {}",
                    type_name(&other)
                )),
            },
            (None, Some(schema)) => self
                .schemas
                .get_or_try(&schema, |s| {
                    let mut b = s.basics();
                    for f in s.fields() {
                        let fs = match self.target_of(f.name()) {
                            Some(t) => cast_schema(f.schema(), t)
                                .map_err(|e| format!("field `{}`: {e}", f.name()))?,
                            None => f.schema().clone(),
                        };
                        b = b.field(f.name(), fs);
                    }
                    Ok(b.build())
                })
                .and_then(|out| match value {
                    Value::Null => Ok((Some(out), Value::Null)),
                    Value::Struct(row) => {
                        let values = schema
                            .fields()
                            .iter()
                            .zip(row.into_values())
                            .map(|(f, v)| match self.target_of(f.name()) {
                                Some(t) => cast_value(&v, Some(f.schema()), t)
                                    .map_err(|e| format!("field `{}`: {e}", f.name())),
                                None => Ok(v),
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok((Some(out.clone()), new_struct(out, values)))
                    }
                    other => Err(format!(
                        "only a struct is supported for [cast types], found: {}",
                        type_name(&other)
                    )),
                }),
        };
        match result {
            Ok((schema, value)) => {
                self.side.set(&mut record, schema, value);
                Ok(Some(record))
            }
            Err(e) => Err(transform_error(&record, e)),
        }
    }
}

/// Kafka's `Flatten$Key` / `$Value`: nested structs (or maps) become top-level fields
/// named by their path joined with `delimiter` (default `.`); fields under an optional
/// struct become optional. Arrays and maps inside a struct stay as they are.
#[derive(Debug)]
pub struct Flatten {
    side: Side,
    delimiter: String,
    schemas: SchemaCache,
}

impl Flatten {
    /// Builds from `transforms.<alias>.delimiter`.
    pub fn from_props(side: Side, scope: &Scope<'_>) -> Result<Self, Error> {
        Ok(Flatten {
            side,
            delimiter: scope.get("delimiter").unwrap_or(".").to_owned(),
            schemas: SchemaCache::default(),
        })
    }

    fn name(&self, prefix: &str, name: &str) -> String {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}{}{name}", self.delimiter)
        }
    }

    fn flat_fields(
        &self,
        schema: &Schema,
        prefix: &str,
        optional: bool,
        out: &mut Vec<(String, Arc<Schema>)>,
    ) {
        for f in schema.fields() {
            let name = self.name(prefix, f.name());
            let optional = optional || f.schema().is_optional();
            if f.schema().schema_type() == SchemaType::Struct {
                self.flat_fields(f.schema(), &name, optional, out);
            } else if optional && !f.schema().is_optional() {
                out.push((name, f.schema().to_builder().optional().build()));
            } else {
                out.push((name, f.schema().clone()));
            }
        }
    }

    fn flat_values(schema: &Schema, value: Option<&crate::value::Struct>, out: &mut Vec<Value>) {
        for (i, f) in schema.fields().iter().enumerate() {
            let v = value.map(|s| &s.values()[i]);
            if f.schema().schema_type() == SchemaType::Struct {
                Self::flat_values(f.schema(), v.and_then(Value::as_struct), out);
            } else {
                out.push(v.cloned().unwrap_or_default());
            }
        }
    }

    fn flat_map(&self, map: Vec<(Value, Value)>, prefix: &str, out: &mut Vec<(Value, Value)>) {
        for (k, v) in map {
            let name = self.name(prefix, k.as_str().unwrap_or_default());
            match v {
                Value::Map(inner) => self.flat_map(inner, &name, out),
                v => out.push((Value::from(name), v)),
            }
        }
    }
}

impl Transform for Flatten {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        if self.side.value(&record).is_null() {
            return Ok(Some(record));
        }
        let (schema, value) = self.side.take(&mut record);
        match (schema, value) {
            (None, Value::Map(map)) => {
                let mut out = Vec::with_capacity(map.len());
                self.flat_map(map, "", &mut out);
                self.side.set(&mut record, None, Value::Map(out));
            }
            (Some(schema), Value::Struct(row)) => {
                let out = self.schemas.get_or_build(&schema, |s| {
                    let mut fields = Vec::new();
                    self.flat_fields(s, "", false, &mut fields);
                    let b = fields
                        .into_iter()
                        .fold(s.basics(), |b, (name, fs)| b.field(name, fs));
                    b.build()
                });
                let mut values = Vec::with_capacity(out.fields().len());
                Self::flat_values(&schema, Some(&row), &mut values);
                self.side
                    .set(&mut record, Some(out.clone()), new_struct(out, values));
            }
            (schema, value) => {
                let found = type_name(&value);
                self.side.set(&mut record, schema, value);
                return Err(transform_error(
                    &record,
                    format!("only a struct (or a map without a schema) can be flattened, found: {found}"),
                ));
            }
        }
        Ok(Some(record))
    }
}
