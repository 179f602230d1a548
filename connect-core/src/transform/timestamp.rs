//! Kafka Connect's `TimestampRouter` and `TimestampConverter$Key` / `$Value`.

use std::sync::Arc;

use super::datefmt::DateFormat;
use super::fields::{new_struct, type_name};
use super::{transform_error, SchemaCache, Side, Transform};
use crate::error::Error;
use crate::properties::Scope;
use crate::record::Record;
use crate::schema::{logical, Schema, SchemaType};
use crate::value::Value;

const MS_PER_DAY: i64 = 86_400_000;

/// Kafka's `org.apache.kafka.connect.transforms.TimestampRouter`: the topic becomes
/// `topic.format` (default `${topic}-${timestamp}`) with the record's timestamp written
/// in `timestamp.format` (default `yyyyMMdd`, UTC).
#[derive(Debug)]
pub struct TimestampRouter {
    topic_format: String,
    timestamp_format: DateFormat,
}

impl TimestampRouter {
    /// Builds from `transforms.<alias>.topic.format` / `.timestamp.format`.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        let pattern = scope.get("timestamp.format").unwrap_or("yyyyMMdd");
        Ok(TimestampRouter {
            topic_format: scope
                .get("topic.format")
                .unwrap_or("${topic}-${timestamp}")
                .to_owned(),
            timestamp_format: DateFormat::new(pattern)
                .map_err(|e| Error::config(scope.key("timestamp.format"), e))?,
        })
    }
}

impl Transform for TimestampRouter {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        let ts = record
            .timestamp_ms
            .ok_or_else(|| transform_error(&record, "the record has no timestamp to route by"))?;
        let topic = self
            .topic_format
            .replace("${topic}", &record.topic)
            .replace("${timestamp}", &self.timestamp_format.format(ts));
        record.topic = Arc::from(topic);
        Ok(Some(record))
    }
}

/// A timestamp representation `TimestampConverter` reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampKind {
    /// Text in `format`.
    String,
    /// A number since the epoch in `unix.precision`.
    Unix,
    /// Connect's `Date` (days).
    Date,
    /// Connect's `Time` (milliseconds of the day).
    Time,
    /// Connect's `Timestamp` (milliseconds).
    Timestamp,
}

impl TimestampKind {
    /// `target.type` names.
    const NAMED: [(&'static str, TimestampKind); 5] = [
        ("string", TimestampKind::String),
        ("unix", TimestampKind::Unix),
        ("Date", TimestampKind::Date),
        ("Time", TimestampKind::Time),
        ("Timestamp", TimestampKind::Timestamp),
    ];

    fn of_schema(schema: &Schema) -> Option<TimestampKind> {
        Some(match (schema.schema_type(), schema.name()) {
            (SchemaType::Int64, Some(logical::TIMESTAMP)) => TimestampKind::Timestamp,
            (SchemaType::Int32, Some(logical::DATE)) => TimestampKind::Date,
            (SchemaType::Int32, Some(logical::TIME)) => TimestampKind::Time,
            (SchemaType::String, None) => TimestampKind::String,
            (SchemaType::Int64, None) => TimestampKind::Unix,
            _ => return None,
        })
    }

    fn schema(self, optional: bool) -> Arc<Schema> {
        let b = match self {
            TimestampKind::String => Schema::builder(SchemaType::String),
            TimestampKind::Unix => Schema::builder(SchemaType::Int64),
            TimestampKind::Date => Schema::builder(SchemaType::Int32)
                .name(logical::DATE)
                .version(1),
            TimestampKind::Time => Schema::builder(SchemaType::Int32)
                .name(logical::TIME)
                .version(1),
            TimestampKind::Timestamp => Schema::builder(SchemaType::Int64)
                .name(logical::TIMESTAMP)
                .version(1),
        };
        b.with_optional(optional).build()
    }
}

/// `unix.precision`: units of a `unix` timestamp per second.
#[derive(Debug, Clone, Copy)]
struct UnixPrecision(i64);

impl UnixPrecision {
    fn units_to_millis(self, v: i64) -> i64 {
        match self.0 {
            1 => v.saturating_mul(1000),
            1000 => v,
            p => v.div_euclid(p / 1000),
        }
    }

    fn millis_to_units(self, ms: i64) -> i64 {
        match self.0 {
            1 => ms.div_euclid(1000),
            p => ms.saturating_mul(p / 1000),
        }
    }
}

/// Kafka's `TimestampConverter$Key` / `$Value`: converts the whole key or value, or its
/// `field`, between `string` (`format`, a `SimpleDateFormat` in UTC), `unix`
/// (`unix.precision`: seconds, milliseconds, microseconds, nanoseconds) and Connect's
/// `Date`, `Time` and `Timestamp` (`target.type`).
#[derive(Debug)]
pub struct TimestampConverter {
    side: Side,
    field: Option<String>,
    target: TimestampKind,
    format: Option<DateFormat>,
    precision: UnixPrecision,
    schemas: SchemaCache,
}

impl TimestampConverter {
    /// Builds from `transforms.<alias>.*`.
    pub fn from_props(side: Side, scope: &Scope<'_>) -> Result<Self, Error> {
        let target = scope.require("target.type")?;
        let target = TimestampKind::NAMED
            .iter()
            .find(|(n, _)| *n == target)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                Error::config(
                    scope.key("target.type"),
                    format!(
                        "invalid value `{target}` (accepted: {})",
                        TimestampKind::NAMED.map(|(n, _)| n).join(", ")
                    ),
                )
            })?;
        let format = scope
            .get("format")
            .map(DateFormat::new)
            .transpose()
            .map_err(|e| Error::config(scope.key("format"), e))?;
        if target == TimestampKind::String && format.is_none() {
            return Err(Error::config(
                scope.key("format"),
                "is required when target.type is string",
            ));
        }
        let precision = match scope.one_of(
            "unix.precision",
            &["seconds", "milliseconds", "microseconds", "nanoseconds"],
            "milliseconds",
        )? {
            "seconds" => 1,
            "milliseconds" => 1_000,
            "microseconds" => 1_000_000,
            _ => 1_000_000_000,
        };
        scope.bool_or("replace.null.with.default", true)?;
        Ok(TimestampConverter {
            side,
            field: scope.get("field").map(str::to_owned),
            target,
            format,
            precision: UnixPrecision(precision),
            schemas: SchemaCache::default(),
        })
    }

    /// Milliseconds since the epoch of a value of `kind`.
    fn millis_of(&self, kind: TimestampKind, v: &Value) -> Result<i64, String> {
        match (kind, v) {
            (TimestampKind::Timestamp, Value::Int64(ms)) => Ok(*ms),
            (TimestampKind::Unix, Value::Int64(n)) => Ok(self.precision.units_to_millis(*n)),
            (TimestampKind::Date, Value::Int32(days)) => Ok(i64::from(*days) * MS_PER_DAY),
            (TimestampKind::Time, Value::Int32(ms)) => Ok(i64::from(*ms)),
            (TimestampKind::String, Value::String(s)) => match &self.format {
                Some(f) => f.parse(s),
                None => Err("a string timestamp needs `format`".to_owned()),
            },
            (kind, v) => Err(format!(
                "expected a {kind:?} timestamp, found {}",
                type_name(v)
            )),
        }
    }

    fn render_millis(&self, ms: i64) -> Value {
        match self.target {
            TimestampKind::String => Value::from(
                self.format
                    .as_ref()
                    .expect("checked at construction")
                    .format(ms),
            ),
            TimestampKind::Unix => Value::Int64(self.precision.millis_to_units(ms)),
            TimestampKind::Date => Value::Int32(ms.div_euclid(MS_PER_DAY) as i32),
            TimestampKind::Time => Value::Int32(ms.rem_euclid(MS_PER_DAY) as i32),
            TimestampKind::Timestamp => Value::Int64(ms),
        }
    }

    fn convert(&self, kind: TimestampKind, v: &Value) -> Result<Value, String> {
        if v.is_null() {
            return Ok(Value::Null);
        }
        Ok(self.render_millis(self.millis_of(kind, v)?))
    }

    /// The kind of a schemaless value.
    fn kind_of_value(v: &Value) -> Option<TimestampKind> {
        match v {
            Value::String(_) => Some(TimestampKind::String),
            Value::Int64(_) => Some(TimestampKind::Unix),
            _ => None,
        }
    }

    fn kind_of_schema(schema: &Schema) -> Result<TimestampKind, String> {
        TimestampKind::of_schema(schema).ok_or_else(|| {
            format!(
                "schema {} is not a timestamp (string, int64, Date, Time or Timestamp)",
                schema.json()
            )
        })
    }
}

impl Transform for TimestampConverter {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        let (schema, value) = self.side.take(&mut record);
        let converted = match (&self.field, schema) {
            (None, None) => Self::kind_of_value(&value)
                .ok_or_else(|| format!("cannot convert a {} timestamp", type_name(&value)))
                .and_then(|kind| self.convert(kind, &value))
                .map(|v| (None, v)),
            (None, Some(schema)) => Self::kind_of_schema(&schema)
                .and_then(|kind| self.convert(kind, &value))
                .map(|v| (Some(self.target.schema(schema.is_optional())), v)),
            (Some(field), None) => match value {
                Value::Null => Ok((None, Value::Null)),
                Value::Map(mut map) => {
                    let mut result = Ok(());
                    for (_, v) in map.iter_mut().filter(|(k, _)| k.as_str() == Some(field)) {
                        result = Self::kind_of_value(v)
                            .ok_or_else(|| {
                                format!("cannot convert field `{field}` of type {}", type_name(v))
                            })
                            .and_then(|kind| self.convert(kind, v))
                            .map(|c| *v = c);
                    }
                    result.map(|()| (None, Value::Map(map)))
                }
                other => Err(format!(
                    "only a map is supported for [converting timestamp formats] without a schema, found: {}",
                    type_name(&other)
                )),
            },
            (Some(field), Some(schema)) => {
                let out = self.schemas.get_or_try(&schema, |s| {
                    let mut b = s.basics();
                    for f in s.fields() {
                        let fs = if f.name() == field {
                            Self::kind_of_schema(f.schema()).map_err(|e| {
                                format!("field `{field}`: {e}")
                            })?;
                            self.target.schema(f.schema().is_optional())
                        } else {
                            f.schema().clone()
                        };
                        b = b.field(f.name(), fs);
                    }
                    if s.field(field).is_none() {
                        return Err(format!("unknown field: {field}"));
                    }
                    Ok(b.build())
                });
                match (out, value) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Value::Null) => Ok((Some(schema), Value::Null)),
                    (Ok(out), Value::Struct(row)) => {
                        let (i, f) = schema.field(field).expect("checked when building");
                        let kind = Self::kind_of_schema(f.schema()).expect("checked when building");
                        let mut values = row.into_values();
                        self.convert(kind, &values[i]).map(|c| {
                            values[i] = c;
                            (Some(out.clone()), new_struct(out, values))
                        })
                    }
                    (Ok(_), other) => Err(format!(
                        "only a struct is supported for [converting timestamp formats], found: {}",
                        type_name(&other)
                    )),
                }
            }
        };
        match converted {
            Ok((schema, value)) => {
                self.side.set(&mut record, schema, value);
                Ok(Some(record))
            }
            Err(e) => Err(transform_error(&record, e)),
        }
    }
}
