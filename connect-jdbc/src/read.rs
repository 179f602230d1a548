//! Reading typed rows: each driver's column types mapped to Connect schemas (with
//! Debezium's semantic names where Connect has no type of that precision), and each
//! value decoded from the driver's native form.

use std::sync::Arc;

use bytes::Bytes;
use connect_core::calendar::days_from_civil;
use connect_core::schema::logical;
use connect_core::{Schema, SchemaType, Struct, Value};

/// How a result column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// boolean.
    Bool,
    /// int16.
    Int16,
    /// int32.
    Int32,
    /// int64.
    Int64,
    /// float.
    Float32,
    /// double.
    Float64,
    /// Text (also JSON, UUIDs, enums).
    Text,
    /// Bytes.
    Bytes,
    /// Connect `Decimal` with this scale.
    Decimal(u32),
    /// Debezium's `VariableScaleDecimal` (a numeric without a declared scale).
    VariableDecimal,
    /// Connect `Date`.
    Date,
    /// Debezium's `MicroTime`.
    MicroTime,
    /// Debezium's `MicroTimestamp` (no zone).
    MicroTimestamp,
    /// Debezium's `ZonedTimestamp` (an instant, as ISO-8601 in UTC).
    ZonedTimestamp,
}

impl ReadKind {
    /// The (optional) field schema of a column of this kind.
    pub fn schema(self) -> Arc<Schema> {
        let named = |ty, name: &str| Schema::builder(ty).optional().name(name).version(1).build();
        match self {
            ReadKind::Bool => Schema::optional(SchemaType::Boolean),
            ReadKind::Int16 => Schema::optional(SchemaType::Int16),
            ReadKind::Int32 => Schema::optional(SchemaType::Int32),
            ReadKind::Int64 => Schema::optional(SchemaType::Int64),
            ReadKind::Float32 => Schema::optional(SchemaType::Float32),
            ReadKind::Float64 => Schema::optional(SchemaType::Float64),
            ReadKind::Text => Schema::optional(SchemaType::String),
            ReadKind::Bytes => Schema::optional(SchemaType::Bytes),
            ReadKind::Decimal(scale) => Schema::builder(SchemaType::Bytes)
                .optional()
                .name(logical::DECIMAL)
                .version(1)
                .parameter("scale", scale.to_string())
                .build(),
            ReadKind::VariableDecimal => Schema::struct_builder()
                .optional()
                .name("io.debezium.data.VariableScaleDecimal")
                .version(1)
                .field("scale", Schema::required(SchemaType::Int32))
                .field("value", Schema::required(SchemaType::Bytes))
                .build(),
            ReadKind::Date => Schema::builder(SchemaType::Int32)
                .optional()
                .name(logical::DATE)
                .version(1)
                .build(),
            ReadKind::MicroTime => named(SchemaType::Int64, "io.debezium.time.MicroTime"),
            ReadKind::MicroTimestamp => named(SchemaType::Int64, "io.debezium.time.MicroTimestamp"),
            ReadKind::ZonedTimestamp => {
                named(SchemaType::String, "io.debezium.time.ZonedTimestamp")
            }
        }
    }
}

/// A result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadColumn {
    /// Its name.
    pub name: String,
    /// How it is read.
    pub kind: ReadKind,
}

/// Typed rows of a query.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// The columns.
    pub columns: Vec<ReadColumn>,
    /// The values, one `Vec` per row in column order.
    pub rows: Vec<Vec<Value>>,
}

/// The struct schema of rows of `columns`, named `name`.
pub fn row_schema(columns: &[ReadColumn], name: &str) -> Arc<Schema> {
    let mut b = Schema::struct_builder().name(name).optional();
    for c in columns {
        b = b.field(c.name.as_str(), c.kind.schema());
    }
    b.build()
}

/// A decimal value: unscaled integer bytes (Connect's form) for a scale.
fn decimal(unscaled: i128) -> Value {
    Value::decimal(unscaled)
}

/// A variable-scale decimal value.
fn variable_decimal(unscaled: i128, scale: u32) -> Value {
    // Built once: a value's schema is shared by every value, not rebuilt per row.
    static SCHEMA: std::sync::OnceLock<Arc<Schema>> = std::sync::OnceLock::new();
    let schema = SCHEMA.get_or_init(|| {
        ReadKind::VariableDecimal
            .schema()
            .to_builder()
            .with_optional(false)
            .build()
    });
    Value::Struct(
        Struct::new(
            schema.clone(),
            vec![Value::Int32(scale as i32), decimal(unscaled)],
        )
        .expect("two fields"),
    )
}

/// Parses a decimal in plain notation into (unscaled, scale), rescaled to `scale` if given.
pub fn parse_decimal(text: &str, scale: Option<u32>) -> Option<(i128, u32)> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut unscaled: i128 = 0;
    for c in int.chars().chain(frac.chars()) {
        unscaled = unscaled
            .checked_mul(10)?
            .checked_add(i128::from(c.to_digit(10)?))?;
    }
    let mut have = frac.len() as u32;
    if let Some(want) = scale {
        while have < want {
            unscaled = unscaled.checked_mul(10)?;
            have += 1;
        }
        while have > want {
            unscaled /= 10;
            have -= 1;
        }
    }
    Some((if negative { -unscaled } else { unscaled }, have))
}

/// An instant in microseconds as Debezium's `ZonedTimestamp` text (UTC, `Z`).
fn zoned(micros: i64) -> Value {
    let mut text = String::with_capacity(27);
    crate::value::SqlValue::Timestamp(micros).write_text(&mut text);
    let text = text.replacen(' ', "T", 1) + "Z";
    Value::from(text)
}

// --- PostgreSQL (binary format) -------------------------------------------------------

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// The kind of a PostgreSQL result column; `None` for types with no mapping.
pub fn pg_kind(ty: &tokio_postgres::types::Type, type_modifier: i32) -> Option<ReadKind> {
    use tokio_postgres::types::Type;
    Some(match *ty {
        Type::BOOL => ReadKind::Bool,
        Type::INT2 => ReadKind::Int16,
        Type::INT4 | Type::OID => ReadKind::Int32,
        Type::INT8 => ReadKind::Int64,
        Type::FLOAT4 => ReadKind::Float32,
        Type::FLOAT8 => ReadKind::Float64,
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::JSON
        | Type::JSONB
        | Type::UUID
        | Type::XML => ReadKind::Text,
        Type::BYTEA => ReadKind::Bytes,
        Type::NUMERIC if type_modifier >= 4 => {
            ReadKind::Decimal(((type_modifier - 4) & 0xffff) as u32)
        }
        Type::NUMERIC => ReadKind::VariableDecimal,
        Type::DATE => ReadKind::Date,
        Type::TIME => ReadKind::MicroTime,
        Type::TIMESTAMP => ReadKind::MicroTimestamp,
        Type::TIMESTAMPTZ => ReadKind::ZonedTimestamp,
        _ => return None,
    })
}

/// A column's raw binary value, whatever its type.
pub struct PgRaw<'a>(pub &'a [u8]);

impl<'a> tokio_postgres::types::FromSql<'a> for PgRaw<'a> {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgRaw(raw))
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }
}

/// Decodes a PostgreSQL binary value of `kind` (`ty` tells JSONB and UUID apart).
pub fn pg_value(
    kind: ReadKind,
    ty: &tokio_postgres::types::Type,
    raw: &[u8],
) -> Result<Value, String> {
    use tokio_postgres::types::Type;
    let fixed = |n: usize| -> Result<&[u8], String> {
        raw.get(..n)
            .ok_or_else(|| format!("{} bytes for a {n}-byte value", raw.len()))
    };
    let be8 = || fixed(8).map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")));
    Ok(match kind {
        ReadKind::Bool => Value::Boolean(fixed(1)?[0] != 0),
        ReadKind::Int16 => Value::Int16(i16::from_be_bytes(fixed(2)?.try_into().expect("2"))),
        ReadKind::Int32 => Value::Int32(i32::from_be_bytes(fixed(4)?.try_into().expect("4"))),
        ReadKind::Int64 => Value::Int64(be8()?),
        ReadKind::Float32 => Value::Float32(f32::from_be_bytes(fixed(4)?.try_into().expect("4"))),
        ReadKind::Float64 => Value::Float64(f64::from_be_bytes(fixed(8)?.try_into().expect("8"))),
        ReadKind::Text if *ty == Type::UUID => {
            let b = fixed(16)?;
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            Value::from(format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ))
        }
        ReadKind::Text => {
            // JSONB's binary form is a version byte and the text.
            let text = if *ty == Type::JSONB {
                raw.get(1..).unwrap_or(&[])
            } else {
                raw
            };
            Value::string_from_bytes(Bytes::copy_from_slice(text)).map_err(|e| e.to_string())?
        }
        ReadKind::Bytes => Value::Bytes(Bytes::copy_from_slice(raw)),
        ReadKind::Decimal(scale) => {
            let (unscaled, _) = pg_numeric(raw, Some(scale))?;
            decimal(unscaled)
        }
        ReadKind::VariableDecimal => {
            let (unscaled, scale) = pg_numeric(raw, None)?;
            variable_decimal(unscaled, scale)
        }
        ReadKind::Date => Value::Int32(
            i32::from_be_bytes(fixed(4)?.try_into().expect("4")).saturating_add(PG_EPOCH_DAYS),
        ),
        ReadKind::MicroTime => Value::Int64(be8()?),
        ReadKind::MicroTimestamp => Value::Int64(be8()?.saturating_add(PG_EPOCH_US)),
        ReadKind::ZonedTimestamp => zoned(be8()?.saturating_add(PG_EPOCH_US)),
    })
}

/// PostgreSQL's binary numeric: digit count, weight, sign, display scale, then base-10000
/// digits. Returns (unscaled, scale).
fn pg_numeric(raw: &[u8], scale: Option<u32>) -> Result<(i128, u32), String> {
    let word = |i: usize| -> Result<i16, String> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".to_owned())
    };
    let (ndigits, weight, sign, dscale) = (word(0)?, word(1)?, word(2)? as u16, word(3)? as u16);
    if sign == 0xC000 {
        return Err("NaN has no decimal value".into());
    }
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    // Integer part: digits 0..=weight; fraction: the rest, four decimal digits each.
    let digit = |i: i32| -> Result<i16, String> {
        if i < 0 || i >= i32::from(ndigits) {
            Ok(0)
        } else {
            word(4 + i as usize)
        }
    };
    if weight < 0 {
        text.push('0');
    } else {
        for i in 0..=i32::from(weight) {
            let d = digit(i)?;
            if i == 0 {
                text.push_str(&d.to_string());
            } else {
                text.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        text.push('.');
        let mut frac = String::new();
        let mut i = i32::from(weight) + 1;
        while frac.len() < usize::from(dscale) {
            frac.push_str(&format!("{:04}", digit(i)?));
            i += 1;
        }
        frac.truncate(usize::from(dscale));
        text.push_str(&frac);
    }
    parse_decimal(&text, scale.or(Some(u32::from(dscale))))
        .ok_or_else(|| format!("numeric {text} exceeds 38 digits"))
}

// --- MySQL / MariaDB (binary protocol) ------------------------------------------------

/// The kind of a MySQL result column.
pub fn mysql_kind(column: &mysql_async::Column) -> Option<ReadKind> {
    use mysql_async::consts::{ColumnFlags, ColumnType as T};
    let binary = column.character_set() == 63;
    let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    Some(match column.column_type() {
        T::MYSQL_TYPE_TINY if column.column_length() == 1 => ReadKind::Bool,
        T::MYSQL_TYPE_TINY | T::MYSQL_TYPE_SHORT if !unsigned => ReadKind::Int16,
        T::MYSQL_TYPE_TINY | T::MYSQL_TYPE_SHORT | T::MYSQL_TYPE_INT24 | T::MYSQL_TYPE_YEAR => {
            ReadKind::Int32
        }
        T::MYSQL_TYPE_LONG if !unsigned => ReadKind::Int32,
        T::MYSQL_TYPE_LONG | T::MYSQL_TYPE_LONGLONG => ReadKind::Int64,
        T::MYSQL_TYPE_FLOAT => ReadKind::Float32,
        T::MYSQL_TYPE_DOUBLE => ReadKind::Float64,
        T::MYSQL_TYPE_DECIMAL | T::MYSQL_TYPE_NEWDECIMAL => {
            ReadKind::Decimal(u32::from(column.decimals()))
        }
        T::MYSQL_TYPE_DATE | T::MYSQL_TYPE_NEWDATE => ReadKind::Date,
        T::MYSQL_TYPE_TIME | T::MYSQL_TYPE_TIME2 => ReadKind::MicroTime,
        T::MYSQL_TYPE_DATETIME | T::MYSQL_TYPE_DATETIME2 => ReadKind::MicroTimestamp,
        T::MYSQL_TYPE_TIMESTAMP | T::MYSQL_TYPE_TIMESTAMP2 => ReadKind::ZonedTimestamp,
        T::MYSQL_TYPE_VARCHAR
        | T::MYSQL_TYPE_VAR_STRING
        | T::MYSQL_TYPE_STRING
        | T::MYSQL_TYPE_TINY_BLOB
        | T::MYSQL_TYPE_MEDIUM_BLOB
        | T::MYSQL_TYPE_LONG_BLOB
        | T::MYSQL_TYPE_BLOB
        | T::MYSQL_TYPE_JSON
        | T::MYSQL_TYPE_ENUM
        | T::MYSQL_TYPE_SET => {
            if binary {
                ReadKind::Bytes
            } else {
                ReadKind::Text
            }
        }
        T::MYSQL_TYPE_BIT => ReadKind::Bytes,
        _ => return None,
    })
}

/// Decodes a MySQL binary-protocol value of `kind`.
pub fn mysql_value(kind: ReadKind, value: mysql_async::Value) -> Result<Value, String> {
    use mysql_async::Value as V;
    let datetime_micros = |y: u16, m: u8, d: u8, h: u8, mi: u8, s: u8, us: u32| {
        days_from_civil(y.into(), m.into(), d.into()) * 86_400_000_000
            + i64::from(h) * 3_600_000_000
            + i64::from(mi) * 60_000_000
            + i64::from(s) * 1_000_000
            + i64::from(us)
    };
    let text = |b: Vec<u8>| String::from_utf8(b).map_err(|e| e.to_string());
    let mismatch = |v: &V| format!("unexpected value {v:?} for {kind:?}");
    Ok(match (kind, value) {
        (_, V::NULL) => Value::Null,
        (ReadKind::Bool, V::Int(i)) => Value::Boolean(i != 0),
        (ReadKind::Bool, V::UInt(i)) => Value::Boolean(i != 0),
        (ReadKind::Int16, V::Int(i)) => Value::Int16(i as i16),
        (ReadKind::Int32, V::Int(i)) => Value::Int32(i as i32),
        (ReadKind::Int32, V::UInt(i)) => Value::Int32(i as i32),
        (ReadKind::Int64, V::Int(i)) => Value::Int64(i),
        (ReadKind::Int64, V::UInt(i)) => Value::Int64(i64::try_from(i).map_err(|e| e.to_string())?),
        (ReadKind::Float32, V::Float(f)) => Value::Float32(f),
        (ReadKind::Float64, V::Double(f)) => Value::Float64(f),
        (ReadKind::Float64, V::Float(f)) => Value::Float64(f.into()),
        (ReadKind::Decimal(scale), V::Bytes(b)) => {
            let t = text(b)?;
            let (unscaled, _) = parse_decimal(&t, Some(scale))
                .ok_or_else(|| format!("decimal {t} exceeds 38 digits"))?;
            decimal(unscaled)
        }
        (ReadKind::Text, V::Bytes(b)) => Value::from(text(b)?),
        (ReadKind::Bytes, V::Bytes(b)) => Value::Bytes(Bytes::from(b)),
        (ReadKind::Date, V::Date(y, m, d, ..)) => {
            Value::Int32(days_from_civil(y.into(), m.into(), d.into()) as i32)
        }
        (ReadKind::MicroTime, V::Time(neg, days, h, mi, s, us)) => {
            let micros =
                i64::from(days) * 86_400_000_000 + datetime_micros(1970, 1, 1, h, mi, s, us);
            Value::Int64(if neg { -micros } else { micros })
        }
        (ReadKind::MicroTimestamp, V::Date(y, m, d, h, mi, s, us)) => {
            Value::Int64(datetime_micros(y, m, d, h, mi, s, us))
        }
        (ReadKind::ZonedTimestamp, V::Date(y, m, d, h, mi, s, us)) => {
            zoned(datetime_micros(y, m, d, h, mi, s, us))
        }
        (_, other) => return Err(mismatch(&other)),
    })
}

// --- SQLite ---------------------------------------------------------------------------

/// The kind of a SQLite column from its declared type (SQLite's affinity rules); a
/// column without one (an expression) is read as text.
pub fn sqlite_kind(declared: Option<&str>) -> ReadKind {
    let t = declared.unwrap_or("").to_ascii_uppercase();
    if t.contains("INT") {
        ReadKind::Int64
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        ReadKind::Text
    } else if t.contains("BLOB") {
        ReadKind::Bytes
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        ReadKind::Float64
    } else if t.is_empty() {
        ReadKind::Text
    } else {
        // NUMERIC affinity (NUMERIC, DECIMAL, BOOLEAN, DATE...): kept as the text stored.
        ReadKind::Text
    }
}

/// Decodes a SQLite value of `kind` (SQLite stores any type in any column: a value of
/// another storage class is converted where it is lossless, and refused otherwise).
pub fn sqlite_value(kind: ReadKind, value: rusqlite::types::ValueRef<'_>) -> Result<Value, String> {
    use rusqlite::types::ValueRef as V;
    Ok(match (kind, value) {
        (_, V::Null) => Value::Null,
        (ReadKind::Int64, V::Integer(i)) => Value::Int64(i),
        (ReadKind::Float64, V::Real(f)) => Value::Float64(f),
        (ReadKind::Float64, V::Integer(i)) => Value::Float64(i as f64),
        (ReadKind::Text, V::Text(t)) => {
            Value::from(std::str::from_utf8(t).map_err(|e| e.to_string())?)
        }
        (ReadKind::Text, V::Integer(i)) => Value::from(i.to_string()),
        (ReadKind::Text, V::Real(f)) => Value::from(f.to_string()),
        (ReadKind::Bytes, V::Blob(b)) => Value::Bytes(Bytes::copy_from_slice(b)),
        (kind, other) => {
            return Err(format!(
                "stored {:?} in a column read as {kind:?}",
                other.data_type()
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_and_rescale() {
        assert_eq!(parse_decimal("-12.345", None), Some((-12345, 3)));
        assert_eq!(parse_decimal("12.3", Some(3)), Some((12300, 3)));
        assert_eq!(parse_decimal("7", Some(0)), Some((7, 0)));
        assert_eq!(parse_decimal("1x", None), None);
    }

    #[test]
    fn postgres_numerics_decode_from_base_10000() {
        // 12345.678: ndigits 3, weight 1, positive, dscale 3, digits 1 2345 6780.
        let raw: Vec<u8> = [3i16, 1, 0, 3, 1, 2345, 6780]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(pg_numeric(&raw, None).unwrap(), (12_345_678, 3));
        assert_eq!(pg_numeric(&raw, Some(5)).unwrap(), (1_234_567_800, 5));
        // -0.0012: ndigits 1, weight -1, negative, dscale 4, digit 12.
        let raw: Vec<u8> = [1i16, -1, 0x4000, 4, 12]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(pg_numeric(&raw, None).unwrap(), (-12, 4));
    }
}
