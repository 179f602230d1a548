//! A record field as SQL sees it: Connect's types and logical names (Kafka Connect's and
//! Debezium's) resolved once per value into what every driver can bind.

use bytes::Bytes;
use bytestring::ByteString;
use connect_core::calendar::civil_from_days;
use connect_core::schema::logical;
use connect_core::value::decimal_text;
use connect_core::{Schema, SchemaType, Value};

/// How a field is stored: decided once per column from its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlKind {
    /// boolean.
    Bool,
    /// Integers of the given byte width.
    Int(u8),
    /// float.
    Float32,
    /// double.
    Float64,
    /// Text.
    Text,
    /// JSON text (`io.debezium.data.Json`).
    Json,
    /// A UUID in text form (`io.debezium.data.Uuid`).
    Uuid,
    /// Raw bytes.
    Bytes,
    /// Exact decimal with this scale (Connect's `Decimal`); `None` for Debezium's
    /// `VariableScaleDecimal`.
    Decimal(Option<u32>),
    /// Date: days since the epoch.
    Date,
    /// Time of day in the given unit (`Time`, `MicroTime`, `NanoTime`).
    Time(TimeUnit),
    /// Timestamp without zone in the given unit.
    Timestamp(TimeUnit),
    /// Timestamp with zone as ISO-8601 text (`io.debezium.time.ZonedTimestamp`).
    ZonedTimestamp,
}

/// The unit of an integer time or timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// Milliseconds.
    Millis,
    /// Microseconds.
    Micros,
    /// Nanoseconds.
    Nanos,
}

impl TimeUnit {
    fn to_micros(self, v: i64) -> i64 {
        match self {
            TimeUnit::Millis => v.saturating_mul(1000),
            TimeUnit::Micros => v,
            TimeUnit::Nanos => v.div_euclid(1000),
        }
    }
}

impl SqlKind {
    /// The kind of a field schema; `None` for types with no column (structs, arrays, maps).
    pub fn of(schema: &Schema) -> Option<SqlKind> {
        let name = schema.name().unwrap_or("");
        Some(match (schema.schema_type(), name) {
            (SchemaType::Struct, "io.debezium.data.VariableScaleDecimal") => SqlKind::Decimal(None),
            (SchemaType::Int32, logical::DATE | "io.debezium.time.Date") => SqlKind::Date,
            (SchemaType::Int32, logical::TIME | "io.debezium.time.Time") => {
                SqlKind::Time(TimeUnit::Millis)
            }
            (SchemaType::Int64, "io.debezium.time.MicroTime") => SqlKind::Time(TimeUnit::Micros),
            (SchemaType::Int64, "io.debezium.time.NanoTime") => SqlKind::Time(TimeUnit::Nanos),
            (SchemaType::Int64, logical::TIMESTAMP | "io.debezium.time.Timestamp") => {
                SqlKind::Timestamp(TimeUnit::Millis)
            }
            (SchemaType::Int64, "io.debezium.time.MicroTimestamp") => {
                SqlKind::Timestamp(TimeUnit::Micros)
            }
            (SchemaType::Int64, "io.debezium.time.NanoTimestamp") => {
                SqlKind::Timestamp(TimeUnit::Nanos)
            }
            (SchemaType::String, "io.debezium.time.ZonedTimestamp") => SqlKind::ZonedTimestamp,
            (SchemaType::String, "io.debezium.data.Json") => SqlKind::Json,
            (SchemaType::String, "io.debezium.data.Uuid") => SqlKind::Uuid,
            (SchemaType::Bytes, logical::DECIMAL) => SqlKind::Decimal(Some(
                schema
                    .parameter("scale")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            )),
            (SchemaType::Boolean, _) => SqlKind::Bool,
            (SchemaType::Int8, _) => SqlKind::Int(1),
            (SchemaType::Int16, _) => SqlKind::Int(2),
            (SchemaType::Int32, _) => SqlKind::Int(4),
            (SchemaType::Int64, _) => SqlKind::Int(8),
            (SchemaType::Float32, _) => SqlKind::Float32,
            (SchemaType::Float64, _) => SqlKind::Float64,
            (SchemaType::String, _) => SqlKind::Text,
            (SchemaType::Bytes, _) => SqlKind::Bytes,
            _ => return None,
        })
    }
}

/// One value ready to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text (also JSON and UUIDs).
    Text(ByteString),
    /// Bytes.
    Bytes(Bytes),
    /// An exact decimal in plain notation (`-12.50`).
    Decimal(String),
    /// Days since the epoch.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since the epoch, no zone.
    Timestamp(i64),
    /// ISO-8601 timestamp with its offset (`2024-05-01T10:00:00.5Z`).
    ZonedTimestamp(ByteString),
}

impl SqlValue {
    /// Converts a field value of `kind`; `Err` says what does not fit.
    pub fn from_value(kind: SqlKind, value: &Value) -> Result<SqlValue, String> {
        if value.is_null() {
            return Ok(SqlValue::Null);
        }
        let mismatch = || format!("value {value:?} does not match the field's schema");
        Ok(match kind {
            SqlKind::Bool => match value {
                Value::Boolean(b) => SqlValue::Bool(*b),
                _ => return Err(mismatch()),
            },
            SqlKind::Int(_) => SqlValue::Int(value.as_i64().ok_or_else(mismatch)?),
            SqlKind::Float32 | SqlKind::Float64 => match *value {
                Value::Float32(f) => SqlValue::Float(f.into()),
                Value::Float64(f) => SqlValue::Float(f),
                _ => return Err(mismatch()),
            },
            SqlKind::Text | SqlKind::Json | SqlKind::Uuid => match value {
                Value::String(s) => SqlValue::Text(s.clone()),
                _ => return Err(mismatch()),
            },
            SqlKind::ZonedTimestamp => match value {
                Value::String(s) => SqlValue::ZonedTimestamp(s.clone()),
                _ => return Err(mismatch()),
            },
            SqlKind::Bytes => match value {
                Value::Bytes(b) => SqlValue::Bytes(b.clone()),
                _ => return Err(mismatch()),
            },
            SqlKind::Decimal(Some(scale)) => match value {
                Value::Bytes(b) => SqlValue::Decimal(decimal_text(b, scale)?),
                _ => return Err(mismatch()),
            },
            SqlKind::Decimal(None) => {
                let s = value.as_struct().ok_or_else(mismatch)?;
                let scale = s
                    .get("scale")
                    .and_then(Value::as_i64)
                    .ok_or_else(mismatch)?;
                match s.get("value") {
                    Some(Value::Bytes(b)) => SqlValue::Decimal(decimal_text(
                        b,
                        u32::try_from(scale).map_err(|_| mismatch())?,
                    )?),
                    _ => return Err(mismatch()),
                }
            }
            SqlKind::Date => SqlValue::Date(
                i32::try_from(value.as_i64().ok_or_else(mismatch)?).map_err(|_| mismatch())?,
            ),
            SqlKind::Time(unit) => {
                SqlValue::Time(unit.to_micros(value.as_i64().ok_or_else(mismatch)?))
            }
            SqlKind::Timestamp(unit) => {
                SqlValue::Timestamp(unit.to_micros(value.as_i64().ok_or_else(mismatch)?))
            }
        })
    }

    /// The value in the text form PostgreSQL's input functions and SQLite read; `None`
    /// for NULL. `out` is appended to.
    pub fn write_text(&self, out: &mut String) -> bool {
        match self {
            SqlValue::Null => return false,
            SqlValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            SqlValue::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
            SqlValue::Float(f) if f.is_nan() => out.push_str("NaN"),
            SqlValue::Float(f) if f.is_infinite() => {
                out.push_str(if *f > 0.0 { "Infinity" } else { "-Infinity" })
            }
            SqlValue::Float(f) => out.push_str(ryu::Buffer::new().format_finite(*f)),
            SqlValue::Text(s) | SqlValue::ZonedTimestamp(s) => out.push_str(s),
            SqlValue::Bytes(b) => {
                out.push_str("\\x");
                for byte in b.iter() {
                    out.push(HEX[usize::from(byte >> 4)] as char);
                    out.push(HEX[usize::from(byte & 0xf)] as char);
                }
            }
            SqlValue::Decimal(d) => out.push_str(d),
            SqlValue::Date(days) => write_date(out, i64::from(*days)),
            SqlValue::Time(micros) => write_time(out, *micros),
            SqlValue::Timestamp(micros) => {
                write_date(out, micros.div_euclid(86_400_000_000));
                out.push(' ');
                write_time(out, micros.rem_euclid(86_400_000_000));
            }
        }
        true
    }

    /// The civil date and time of a timestamp in microseconds: (y, m, d, h, min, s, µs).
    pub fn civil(micros: i64) -> (i64, u32, u32, u32, u32, u32, u32) {
        let (y, m, d) = civil_from_days(micros.div_euclid(86_400_000_000));
        let t = micros.rem_euclid(86_400_000_000);
        (
            y,
            m as u32,
            d as u32,
            (t / 3_600_000_000) as u32,
            (t / 60_000_000 % 60) as u32,
            (t / 1_000_000 % 60) as u32,
            (t % 1_000_000) as u32,
        )
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `value` as at least `width` digits (zero-padded); no formatter on this path.
fn push_padded(out: &mut String, value: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(value);
    out.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    out.push_str(digits);
}

fn write_date(out: &mut String, days: i64) {
    let (y, m, d) = civil_from_days(days);
    // Years before 1 AD in PostgreSQL's and SQL's notation: year 0 is 1 BC.
    let bc = y < 1;
    push_padded(out, if bc { (1 - y) as u64 } else { y as u64 }, 4);
    out.push('-');
    push_padded(out, m as u64, 2);
    out.push('-');
    push_padded(out, d as u64, 2);
    if bc {
        out.push_str(" BC");
    }
}

fn write_time(out: &mut String, micros: i64) {
    let micros = micros.unsigned_abs();
    push_padded(out, micros / 3_600_000_000, 2);
    out.push(':');
    push_padded(out, micros / 60_000_000 % 60, 2);
    out.push(':');
    push_padded(out, micros / 1_000_000 % 60, 2);
    let frac = micros % 1_000_000;
    if frac != 0 {
        out.push('.');
        push_padded(out, frac, 6);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: SqlValue) -> String {
        let mut s = String::new();
        v.write_text(&mut s);
        s
    }

    #[test]
    fn decimals_render_in_plain_notation() {
        let dec = |n: i128, scale| match Value::decimal(n) {
            Value::Bytes(b) => decimal_text(&b, scale).unwrap(),
            _ => unreachable!(),
        };
        assert_eq!(dec(12345, 2), "123.45");
        assert_eq!(dec(-5, 3), "-0.005");
        assert_eq!(dec(7, 0), "7");
        assert_eq!(dec(-170141183460469231731687303715884105728, 0).len(), 40);
    }

    #[test]
    fn temporal_values_render_as_sql_literals() {
        assert_eq!(text(SqlValue::Date(19_782)), "2024-02-29");
        assert_eq!(text(SqlValue::Date(-719_163)), "0001-12-31 BC");
        assert_eq!(text(SqlValue::Time(3_723_000_004)), "01:02:03.000004");
        assert_eq!(text(SqlValue::Timestamp(-1)), "1969-12-31 23:59:59.999999");
        let kind = SqlKind::Timestamp(TimeUnit::Nanos);
        assert_eq!(
            SqlValue::from_value(kind, &Value::Int64(1_500)).unwrap(),
            SqlValue::Timestamp(1)
        );
        assert_eq!(
            text(SqlValue::Bytes(Bytes::from_static(&[0, 0xab]))),
            "\\x00ab"
        );
        assert_eq!(text(SqlValue::Float(f64::NEG_INFINITY)), "-Infinity");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused() {
        let e = SqlValue::from_value(SqlKind::Bool, &Value::Int32(1)).unwrap_err();
        assert!(e.contains("does not match"), "{e}");
    }
}
