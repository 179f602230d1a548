//! MySQL/MariaDB column types → Debezium's schemas and values, from the text protocol's
//! values (snapshot reads). Sessions run with `time_zone = '+00:00'`, so TIMESTAMP text is
//! UTC. Mappings are Debezium 3.6's defaults (`decimal.handling.mode=precise`,
//! `time.precision.mode=adaptive_time_microseconds`, `bigint.unsigned.handling.mode=long`,
//! `binary.handling.mode=bytes`), checked against its embedded engine
//! (`tests/data/README.md`).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use connect_core::calendar::{civil_from_days, days_from_civil};
use connect_core::modes::{BinaryMode, DecimalMode};
use connect_core::schema::logical;
use connect_core::{Schema, SchemaBuilder, SchemaType, Struct, Value};
use mysql_async::consts::ColumnType;

/// A column as `information_schema.COLUMNS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// `COLUMN_NAME`.
    pub name: String,
    /// `DATA_TYPE`, lower case (`int`, `varchar`, `enum`...).
    pub data_type: String,
    /// `COLUMN_TYPE` (`int(10) unsigned`, `enum('a','b')`, `bit(10)`...).
    pub column_type: String,
    /// `NUMERIC_PRECISION` (or the bit count for BIT).
    pub precision: Option<u64>,
    /// `NUMERIC_SCALE`.
    pub scale: Option<u64>,
    /// `DATETIME_PRECISION`.
    pub fraction_digits: Option<u64>,
    /// `IS_NULLABLE = 'YES'`.
    pub nullable: bool,
    /// Part of the primary key.
    pub key: bool,
    /// `COLUMN_DEFAULT` as MariaDB prints it (`'x'`, `7`, `current_timestamp()`, `NULL`).
    pub default: Option<String>,
    /// `CHARACTER_OCTET_LENGTH` (BINARY(n) values are padded to it).
    pub octet_length: Option<u64>,
}

impl ColumnInfo {
    /// The column in the snapshot's SELECT. FLOAT is read as text: the binary protocol
    /// sends the exact `f32`, but the server prints 6 significant digits and Debezium's
    /// snapshot emits that text.
    pub fn snapshot_select(&self) -> String {
        let name = format!("`{}`", self.name.replace('`', "``"));
        if self.data_type == "float" {
            format!("CAST({name} AS CHAR)")
        } else {
            name
        }
    }

    /// A nullable column without key, default or numeric details.
    pub fn nullable(name: &str, data_type: &str, column_type: &str) -> ColumnInfo {
        ColumnInfo {
            name: name.to_owned(),
            data_type: data_type.to_owned(),
            column_type: column_type.to_owned(),
            precision: None,
            scale: None,
            fraction_digits: None,
            nullable: true,
            key: false,
            default: None,
            octet_length: None,
        }
    }
}

/// How values of each kind of type are represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TypeModes {
    /// `decimal.handling.mode`.
    pub decimal: DecimalMode,
    /// `binary.handling.mode` (BINARY, VARBINARY, the BLOBs).
    pub binary: BinaryMode,
    /// `bigint.unsigned.handling.mode=precise`: BIGINT UNSIGNED as a Decimal of scale 0,
    /// instead of an int64 that wraps above 2^63 - 1 (`long`, the default).
    pub bigint_unsigned_precise: bool,
}

/// How a column's text value becomes a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    /// tinyint, smallint, year-less small integers.
    Int16,
    /// int32 (mediumint, int, unsigned smallint/mediumint, year).
    Int32,
    /// int64 (bigint, unsigned int; unsigned bigint wraps as Debezium's `long` mode).
    Int64,
    /// float.
    Float32,
    /// double.
    Float64,
    /// decimal(p,s) (and BIGINT UNSIGNED in `precise` mode) as `decimal.handling.mode`
    /// says: Kafka Decimal bytes of this scale, a double, or the text.
    Decimal(u32, DecimalMode),
    /// Text of any kind (char, varchar, text, enum, set, json on MariaDB).
    Text,
    /// binary, varbinary, blobs: the raw bytes, as `binary.handling.mode` says.
    Binary(BinaryMode),
    /// bit(1): a boolean.
    Bit,
    /// bit(n): `io.debezium.data.Bits`, little-endian in ceil(n/8) bytes.
    Bits(usize),
    /// date → days since the epoch; zero dates are null.
    Date,
    /// time → microseconds (negative and beyond 24 h as MySQL allows).
    Time,
    /// datetime(p ≤ 3) → milliseconds since the epoch.
    DatetimeMillis,
    /// datetime(p > 3) → microseconds since the epoch.
    DatetimeMicros,
    /// timestamp → ISO-8601 UTC text with the fraction Java prints (trailing zeros dropped).
    Timestamp,
    /// Spatial types but POINT: `io.debezium.data.geometry.Geometry` {wkb, srid}.
    Geometry,
    /// POINT: `io.debezium.data.geometry.Point` {x, y, wkb, srid}.
    Point,
}

/// Debezium's `io.debezium.data.geometry.Geometry` (the value's own schema; the row's
/// field is built from [`column_type`] with the column's optionality).
fn geometry_schema() -> &'static Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| logical::geometry().build())
}

/// Debezium's `io.debezium.data.geometry.Point`.
fn point_schema() -> &'static Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| logical::point().build())
}

/// A spatial value as MySQL stores it (a 4-byte little-endian SRID, then WKB): Debezium's
/// Geometry, or Point with its coordinates read from the WKB.
fn spatial(raw: Vec<u8>, point: bool) -> Result<Value, String> {
    if raw.len() < 4 {
        return Err(format!("a spatial value of {} bytes", raw.len()));
    }
    let srid = u32::from_le_bytes(raw[..4].try_into().expect("4 bytes"));
    let wkb = Bytes::from(raw).slice(4..);
    // SRID 0 (none given) is null, as Debezium writes it.
    let srid = if srid == 0 {
        Value::Null
    } else {
        Value::Int32(srid as i32)
    };
    let value = if point {
        // WKB point: byte order, type (1), x, y as doubles in that byte order.
        let coordinate = |at: usize| {
            let bytes: [u8; 8] = wkb
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("a POINT of {} WKB bytes", wkb.len()))?;
            Ok::<f64, String>(if wkb[0] == 1 {
                f64::from_le_bytes(bytes)
            } else {
                f64::from_be_bytes(bytes)
            })
        };
        let (x, y) = (coordinate(5)?, coordinate(13)?);
        Struct::new(
            point_schema().clone(),
            vec![
                Value::Float64(x),
                Value::Float64(y),
                Value::Bytes(wkb),
                srid,
            ],
        )
    } else {
        Struct::new(geometry_schema().clone(), vec![Value::Bytes(wkb), srid])
    };
    value.map(Value::Struct).map_err(|e| e.to_string())
}

/// The codec and schema of a column.
pub fn column_type(c: &ColumnInfo, modes: &TypeModes) -> (Codec, SchemaBuilder) {
    let unsigned = c.column_type.contains("unsigned");
    let named = |ty, name: &str| Schema::builder(ty).name(name).version(1);
    let plain = |ty| Schema::builder(ty);
    match c.data_type.as_str() {
        "tinyint" => (Codec::Int16, plain(SchemaType::Int16)),
        "smallint" if unsigned => (Codec::Int32, plain(SchemaType::Int32)),
        "smallint" => (Codec::Int16, plain(SchemaType::Int16)),
        "mediumint" => (Codec::Int32, plain(SchemaType::Int32)),
        "int" | "integer" if unsigned => (Codec::Int64, plain(SchemaType::Int64)),
        "int" | "integer" => (Codec::Int32, plain(SchemaType::Int32)),
        // Debezium's Decimal.builder(0): a scale and no precision parameter.
        "bigint" if unsigned && modes.bigint_unsigned_precise => (
            Codec::Decimal(0, DecimalMode::Precise),
            Schema::builder(SchemaType::Bytes)
                .name(logical::DECIMAL)
                .version(1)
                .parameter("scale", "0"),
        ),
        "bigint" => (Codec::Int64, plain(SchemaType::Int64)),
        "float" => (Codec::Float32, plain(SchemaType::Float32)),
        "double" | "real" => (Codec::Float64, plain(SchemaType::Float64)),
        "decimal" | "numeric" => {
            let scale = c.scale.unwrap_or(0) as u32;
            let builder = match modes.decimal {
                DecimalMode::Precise => Schema::builder(SchemaType::Bytes)
                    .name(logical::DECIMAL)
                    .version(1)
                    .parameter("scale", scale.to_string())
                    .parameter(
                        "connect.decimal.precision",
                        c.precision.unwrap_or(10).to_string(),
                    ),
                DecimalMode::Double => plain(SchemaType::Float64),
                DecimalMode::String => plain(SchemaType::String),
            };
            (Codec::Decimal(scale, modes.decimal), builder)
        }
        "bit" => match c.precision.unwrap_or(1) {
            1 => (Codec::Bit, plain(SchemaType::Boolean)),
            n => (
                Codec::Bits(n as usize),
                named(SchemaType::Bytes, "io.debezium.data.Bits")
                    .parameter("length", n.to_string()),
            ),
        },
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => (
            Codec::Binary(modes.binary),
            plain(modes.binary.schema_type()),
        ),
        "date" => (
            Codec::Date,
            named(SchemaType::Int32, "io.debezium.time.Date"),
        ),
        "time" => (
            Codec::Time,
            named(SchemaType::Int64, "io.debezium.time.MicroTime"),
        ),
        "datetime" if c.fraction_digits.unwrap_or(0) <= 3 => (
            Codec::DatetimeMillis,
            named(SchemaType::Int64, "io.debezium.time.Timestamp"),
        ),
        "datetime" => (
            Codec::DatetimeMicros,
            named(SchemaType::Int64, "io.debezium.time.MicroTimestamp"),
        ),
        "timestamp" => (
            Codec::Timestamp,
            named(SchemaType::String, "io.debezium.time.ZonedTimestamp"),
        ),
        "year" => (
            Codec::Int32,
            named(SchemaType::Int32, "io.debezium.time.Year"),
        ),
        "enum" => (
            Codec::Text,
            named(SchemaType::String, "io.debezium.data.Enum")
                .parameter("allowed", enum_labels(&c.column_type).join(",")),
        ),
        "set" => (
            Codec::Text,
            named(SchemaType::String, "io.debezium.data.EnumSet")
                .parameter("allowed", enum_labels(&c.column_type).join(",")),
        ),
        "point" => (Codec::Point, logical::point()),
        "geometry" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => {
            (Codec::Geometry, logical::geometry())
        }
        // MySQL's JSON type (MariaDB's JSON is a LONGTEXT, a plain string in Debezium).
        "json" => (
            Codec::Text,
            named(SchemaType::String, "io.debezium.data.Json"),
        ),
        // char, varchar and the texts.
        _ => (Codec::Text, plain(SchemaType::String)),
    }
}

/// The labels of `enum('a','b')` / `set('x','y')`, unquoted.
pub fn enum_labels(column_type: &str) -> Vec<String> {
    let Some(body) = column_type
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .map(|(body, _)| body)
    else {
        return Vec::new();
    };
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    label.push('\'');
                } else {
                    break;
                }
            } else {
                label.push(c);
            }
        }
        labels.push(label);
    }
    labels
}

impl Codec {
    /// Decodes a value of a binlog rows event (binary, as mysql_common reads it), as
    /// Debezium streams it. mysql_common's quirks are undone here: signed MEDIUMINT
    /// comes zero-extended, ENUM as its 1-based index, SET as a bitmask, TIMESTAMP as
    /// Unix seconds text, BINARY(n) without its zero padding.
    pub fn from_binlog(
        &self,
        column: &ColumnInfo,
        labels: &[String],
        value: mysql_async::Value,
    ) -> Result<Value, String> {
        use mysql_async::Value as V;
        let signed_mediumint =
            column.data_type == "mediumint" && !column.column_type.contains("unsigned");
        Ok(match value {
            V::NULL => Value::Null,
            V::Int(i) if column.data_type == "enum" => label_at(labels, i)?,
            V::Int(i) if signed_mediumint && i > 0x7f_ffff => Value::Int32((i - 0x100_0000) as i32),
            V::Int(i) => self.integer(i128::from(i))?,
            V::UInt(u) => self.integer(i128::from(u))?,
            V::Float(f) => Value::Float32(f),
            V::Double(d) => Value::Float64(d),
            V::Bytes(b) if column.data_type == "set" => {
                let mut mask = 0u64;
                for (i, byte) in b.iter().enumerate() {
                    mask |= u64::from(*byte) << (8 * i);
                }
                let chosen: Vec<&str> = labels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, l)| l.as_str())
                    .collect();
                Value::from(chosen.join(","))
            }
            V::Bytes(b) if *self == Codec::Timestamp => {
                let text = String::from_utf8(b).map_err(|_| "not UTF-8".to_owned())?;
                let (secs, frac) = text.split_once('.').unwrap_or((&text, ""));
                let secs: i64 = secs
                    .parse()
                    .map_err(|_| format!("invalid timestamp `{text}`"))?;
                let micros = if frac.is_empty() {
                    0
                } else {
                    frac.parse::<i64>()
                        .map_err(|_| format!("invalid timestamp `{text}`"))?
                        * 10i64.pow(6u32.saturating_sub(frac.len() as u32))
                };
                let digits = column.fraction_digits.unwrap_or(0) as usize;
                Value::from(iso_utc_digits(secs * 1_000_000 + micros, digits))
            }
            V::Bytes(mut b) => {
                if column.data_type == "binary" {
                    if let Some(n) = column.octet_length {
                        b.resize(b.len().max(n as usize), 0);
                    }
                }
                self.parse(b)?
            }
            V::Date(y, mo, d, h, mi, sec, us) => self.date_time(y, mo, d, h, mi, sec, us)?,
            V::Time(negative, days, h, m, s, us) => time_value(negative, days, h, m, s, us),
        })
    }

    /// A DECIMAL (precise mode) or TIMESTAMP column's value read straight from its binlog
    /// bytes, which are consumed. mysql_common hands both over as text it formats (an
    /// allocation and a `format!` per value) for the codec to parse again, and they are
    /// common in busy tables. None, with nothing consumed, for other columns and modes and
    /// for bytes these cannot read (the general path then reads them and names any error).
    pub fn from_binlog_bytes(
        &self,
        column_type: ColumnType,
        metadata: &[u8],
        column: &ColumnInfo,
        buf: &mut &[u8],
    ) -> Option<Value> {
        let (value, len) = match (self, column_type) {
            (Codec::Decimal(scale, DecimalMode::Precise), ColumnType::MYSQL_TYPE_NEWDECIMAL) => {
                let (&precision, &got) = (metadata.first()?, metadata.get(1)?);
                let (unscaled, len) = binlog_decimal(buf, precision.into(), got.into())?;
                // The column's scale, should the event's be smaller (as the text path).
                let unscaled =
                    unscaled.checked_mul(10i128.checked_pow(scale.checked_sub(got.into())?)?)?;
                (Value::decimal(unscaled), len)
            }
            (Codec::Timestamp, ColumnType::MYSQL_TYPE_TIMESTAMP2) => {
                let (micros, len) = binlog_timestamp(buf, *metadata.first()?)?;
                let digits = column.fraction_digits.unwrap_or(0) as usize;
                (Value::from(iso_utc_digits(micros, digits)), len)
            }
            _ => return None,
        };
        *buf = &buf[len..];
        Some(value)
    }

    /// A DATE or DATETIME the server sent decoded (null for a zero date, as Debezium).
    #[allow(clippy::too_many_arguments)]
    fn date_time(
        &self,
        y: u16,
        mo: u8,
        d: u8,
        h: u8,
        mi: u8,
        sec: u8,
        us: u32,
    ) -> Result<Value, String> {
        let Some(micros) = date_time_micros(y, mo, d, h, mi, sec, us) else {
            return Ok(Value::Null);
        };
        Ok(match self {
            Codec::Date => Value::Int32(micros.div_euclid(86_400_000_000) as i32),
            Codec::DatetimeMillis => Value::Int64(micros.div_euclid(1000)),
            Codec::DatetimeMicros => Value::Int64(micros),
            _ => return Err(format!("unexpected date for a {self:?} column")),
        })
    }

    /// An integer the binlog decoded, as [`Codec::parse`] reads its text (without the
    /// round trip through text on the hot path).
    fn integer(&self, i: i128) -> Result<Value, String> {
        let out_of_range = |what: &str| format!("invalid {what} `{i}`");
        Ok(match self {
            Codec::Int16 => {
                Value::Int16(i16::try_from(i).map_err(|_| out_of_range("small integer"))?)
            }
            Codec::Int32 => Value::Int32(i32::try_from(i).map_err(|_| out_of_range("integer"))?),
            // BIGINT UNSIGNED above i64::MAX wraps, as in Debezium's `long` mode.
            Codec::Int64 => Value::Int64(match i64::try_from(i) {
                Ok(v) => v,
                Err(_) => u64::try_from(i).map_err(|_| out_of_range("bigint"))? as i64,
            }),
            _ => return self.parse(i.to_string().into_bytes()),
        })
    }

    /// Parses a text-protocol value (raw bytes for BIT and binary types).
    pub fn parse(&self, raw: Vec<u8>) -> Result<Value, String> {
        match self {
            Codec::Binary(mode) => return Ok(mode.encode(Bytes::from(raw))),
            Codec::Geometry | Codec::Point => return spatial(raw, *self == Codec::Point),
            _ => {}
        }
        if let Codec::Bit | Codec::Bits(_) = self {
            // BIT values come as big-endian bytes; Debezium wants them little-endian,
            // ceil(n/8) bytes long.
            let mut bytes = raw;
            bytes.reverse();
            return Ok(match self {
                Codec::Bit => Value::Boolean(bytes.iter().any(|&b| b != 0)),
                Codec::Bits(n) => {
                    bytes.resize(n.div_ceil(8), 0);
                    Value::Bytes(Bytes::from(bytes))
                }
                _ => unreachable!(),
            });
        }
        let s = String::from_utf8(raw).map_err(|_| "not UTF-8".to_owned())?;
        let bad = |what: &str| format!("invalid {what} `{s}`");
        Ok(match self {
            Codec::Int16 => Value::Int16(s.parse().map_err(|_| bad("small integer"))?),
            Codec::Int32 => Value::Int32(s.parse().map_err(|_| bad("integer"))?),
            Codec::Int64 => Value::Int64(match s.parse::<i64>() {
                Ok(v) => v,
                // BIGINT UNSIGNED above i64::MAX wraps, as in Debezium's `long` mode.
                Err(_) => s.parse::<u64>().map_err(|_| bad("bigint"))? as i64,
            }),
            Codec::Float32 => Value::Float32(s.parse().map_err(|_| bad("float"))?),
            Codec::Float64 => Value::Float64(s.parse().map_err(|_| bad("double"))?),
            Codec::Decimal(scale, DecimalMode::Precise) => {
                decimal(&s, *scale).ok_or_else(|| bad("decimal"))?
            }
            Codec::Decimal(_, DecimalMode::Double) => {
                Value::Float64(s.parse().map_err(|_| bad("decimal"))?)
            }
            Codec::Decimal(_, DecimalMode::String) => Value::from(s),
            Codec::Text => Value::from(s),
            Codec::Date => match parse_date(&s) {
                Some(days) => Value::Int32(days as i32),
                None if is_zero_date(&s) => Value::Null,
                None => return Err(bad("date")),
            },
            Codec::Time => Value::Int64(parse_time(&s).ok_or_else(|| bad("time"))?),
            Codec::DatetimeMillis | Codec::DatetimeMicros | Codec::Timestamp => {
                let Some(micros) = parse_datetime(&s) else {
                    return if is_zero_date(&s) {
                        Ok(Value::Null)
                    } else {
                        Err(bad("datetime"))
                    };
                };
                match self {
                    Codec::DatetimeMillis => Value::Int64(micros.div_euclid(1000)),
                    Codec::DatetimeMicros => Value::Int64(micros),
                    _ => Value::from(iso_utc(micros)),
                }
            }
            Codec::Binary(_) | Codec::Bit | Codec::Bits(_) | Codec::Geometry | Codec::Point => {
                unreachable!("handled above")
            }
        })
    }
}

impl Codec {
    /// A value of the binary protocol (the snapshot reads by prepared statement): numbers,
    /// dates and times arrive decoded, the rest as the text protocol's bytes. The result
    /// equals [`parse`](Self::parse) of the same value's text, for columns selected as
    /// [`ColumnInfo::snapshot_select`] says.
    pub fn parse_binary(&self, value: mysql_async::Value) -> Result<Value, String> {
        use mysql_async::Value as Wire;
        let unexpected = |v: &Wire| format!("unexpected binary value {v:?}");
        Ok(match value {
            Wire::NULL => Value::Null,
            Wire::Bytes(raw) => return self.parse(raw),
            Wire::Int(i) => self.integer(i128::from(i))?,
            Wire::UInt(u) => self.integer(i128::from(u))?,
            Wire::Double(d) if *self == Codec::Float64 => Value::Float64(d),
            Wire::Date(y, m, d, h, mi, sec, us) => match self {
                Codec::Timestamp => match date_time_micros(y, m, d, h, mi, sec, us) {
                    Some(micros) => Value::from(iso_utc(micros)),
                    None => Value::Null,
                },
                _ => self.date_time(y, m, d, h, mi, sec, us)?,
            },
            Wire::Time(negative, days, h, mi, sec, us) if *self == Codec::Time => {
                time_value(negative, days, h, mi, sec, us)
            }
            other => return Err(unexpected(&other)),
        })
    }
}

/// Microseconds since the epoch of a decoded date and time; `None` for a zero date or one
/// with a zero month or day (which MariaDB accepts without `NO_ZERO_IN_DATE`): null, as
/// Debezium reads them.
#[allow(clippy::too_many_arguments)]
fn date_time_micros(y: u16, mo: u8, d: u8, h: u8, mi: u8, sec: u8, us: u32) -> Option<i64> {
    if mo == 0 || d == 0 {
        return None;
    }
    let days = days_from_civil(i64::from(y), i64::from(mo), i64::from(d));
    Some(
        days * 86_400_000_000
            + ((i64::from(h) * 60 + i64::from(mi)) * 60 + i64::from(sec)) * 1_000_000
            + i64::from(us),
    )
}

/// A decoded TIME as microseconds (negative and beyond 24 h as MySQL allows).
fn time_value(negative: bool, days: u32, h: u8, mi: u8, sec: u8, us: u32) -> Value {
    let micros = (((i64::from(days) * 24 + i64::from(h)) * 60 + i64::from(mi)) * 60
        + i64::from(sec))
        * 1_000_000
        + i64::from(us);
    Value::Int64(if negative { -micros } else { micros })
}

fn label_at(labels: &[String], index: i64) -> Result<Value, String> {
    match index {
        0 => Ok(Value::from("")),
        i => labels
            .get(i as usize - 1)
            .map(|l| Value::string(l))
            .ok_or_else(|| format!("enum index {i} beyond its {} labels", labels.len())),
    }
}

fn is_zero_date(s: &str) -> bool {
    s.starts_with("0000-00-00")
}

/// "-123.45" with the column's scale → Decimal bytes.
fn decimal(s: &str, scale: u32) -> Option<Value> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int_part, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if frac.len() > scale as usize || int_part.len() + scale as usize > 38 {
        return None;
    }
    let mut v: i128 = 0;
    for d in int_part.bytes().chain(frac.bytes()) {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i128::from(d - b'0');
    }
    v *= 10i128.pow(scale - frac.len() as u32);
    Some(Value::decimal(if negative { -v } else { v }))
}

/// Bytes per count of leftover digits in MySQL's binary DECIMAL.
const DECIMAL_GROUP_BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// The digit counts of a binary DECIMAL(precision, scale)'s groups, in order: the
/// integer part's leftover digits, its groups of nine, the fraction's groups of nine and
/// its leftover digits.
fn decimal_groups(precision: usize, scale: usize) -> impl Iterator<Item = usize> + Clone {
    let int_digits = precision - scale;
    std::iter::once(int_digits % 9)
        .chain(std::iter::repeat_n(9, int_digits / 9))
        .chain(std::iter::repeat_n(9, scale / 9))
        .chain(std::iter::once(scale % 9))
        .filter(|&digits| digits > 0)
}

/// The unscaled value of a binlog DECIMAL(precision, scale) at the start of `bytes`, and
/// its length. MySQL's form (`decimal2bin`): the integer digits, then the fraction's, in
/// big-endian groups of nine digits in four bytes, with a shorter group for the leftover
/// digits (leading for the integer part, trailing for the fraction); the first bit is
/// flipped, and a negative value's bytes are inverted. None beyond 38 digits (an i128) or
/// for bytes that hold no such value.
fn binlog_decimal(bytes: &[u8], precision: usize, scale: usize) -> Option<(i128, usize)> {
    if precision == 0 || precision > 38 || scale > precision {
        return None;
    }
    let groups = decimal_groups(precision, scale);
    let len = groups.clone().map(|d| DECIMAL_GROUP_BYTES[d]).sum();
    let raw = bytes.get(..len)?;
    let negative = raw[0] & 0x80 == 0;
    let invert = if negative { 0xff } else { 0 };
    let (mut value, mut at) = (0i128, 0);
    for digits in groups {
        let mut group = 0u32;
        for &byte in &raw[at..at + DECIMAL_GROUP_BYTES[digits]] {
            let byte = if at == 0 { byte ^ 0x80 } else { byte };
            group = group << 8 | u32::from(byte ^ invert);
            at += 1;
        }
        let limit = 10u32.pow(digits as u32);
        if group >= limit {
            return None;
        }
        value = value * i128::from(limit) + i128::from(group);
    }
    Some((if negative { -value } else { value }, len))
}

/// A binlog TIMESTAMP(fsp) (MYSQL_TYPE_TIMESTAMP2: big-endian seconds since the epoch,
/// then the fraction in 0-3 big-endian bytes by precision) in microseconds, and its
/// length.
fn binlog_timestamp(bytes: &[u8], fsp: u8) -> Option<(i64, usize)> {
    let (frac_len, unit) = match fsp {
        0 => (0, 0),
        1 | 2 => (1, 10_000),
        3 | 4 => (2, 100),
        5 | 6 => (3, 1),
        _ => return None,
    };
    let raw = bytes.get(..4 + frac_len)?;
    let secs = i64::from(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]));
    let frac = raw[4..]
        .iter()
        .fold(0i64, |acc, &b| acc << 8 | i64::from(b));
    Some((secs * 1_000_000 + frac * unit, 4 + frac_len))
}

/// "2024-02-29" → days since the epoch (None for zero and partial-zero dates).
fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| days_from_civil(y, m, d))
}

/// "-838:59:59.5" → microseconds (hours beyond 24 and a sign as MySQL allows).
fn parse_time(s: &str) -> Option<i64> {
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut it = hms.splitn(3, ':');
    let h: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let sec: i64 = it.next()?.parse().ok()?;
    if frac.len() > 6 {
        return None;
    }
    let micros = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().ok()? * 10i64.pow(6 - frac.len() as u32)
    };
    let total = ((h * 60 + m) * 60 + sec) * 1_000_000 + micros;
    Some(if negative { -total } else { total })
}

/// "2024-02-29 12:00:00.123" → microseconds since the epoch.
fn parse_datetime(s: &str) -> Option<i64> {
    let (date, time) = s.split_once(' ')?;
    Some(parse_date(date)? * 86_400_000_000 + parse_time(time)?)
}

/// Java's `ISO_OFFSET_DATE_TIME` of a UTC instant: seconds always, the fraction only when
/// not zero and without trailing zeros, `Z` (how Debezium's snapshot writes TIMESTAMP).
fn iso_utc(micros: i64) -> String {
    iso_utc_digits(micros, 0)
}

/// As [`iso_utc`], but with exactly `digits` fraction digits when `digits` > 0 (how
/// Debezium streams a TIMESTAMP(digits)).
fn iso_utc_digits(micros: i64, digits: usize) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let rem = micros.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1_000_000;
    if !(0..=9999).contains(&y) {
        // Not a TIMESTAMP (1970 to 2106): no fixed-width digits to write.
        return format!("{y}-{m:02}-{d:02}T{secs}Z");
    }
    let frac = rem % 1_000_000;
    let shown = if digits > 0 {
        digits.min(6) as u32
    } else {
        (0..6u32)
            .rev()
            .find(|&place| frac % 10i64.pow(6 - place) != 0)
            .map_or(0, |place| place + 1)
    };
    // Digits written directly: this runs for every TIMESTAMP value streamed.
    let mut out = String::with_capacity(28);
    for (value, width, then) in [
        (y, 4, '-'),
        (m, 2, '-'),
        (d, 2, 'T'),
        (secs / 3600, 2, ':'),
        (secs / 60 % 60, 2, ':'),
        (secs % 60, 2, '.'),
        (frac / 10i64.pow(6 - shown), shown, 'Z'),
    ] {
        for place in (0..width).rev() {
            out.push(char::from(b'0' + (value / 10i64.pow(place) % 10) as u8));
        }
        if then != '.' || shown > 0 {
            out.push(then);
        }
    }
    out
}

/// Whether a binlog column of type `binlog` (the event's TABLE_MAP, with ENUM and SET
/// resolved) is what a catalog column of `DATA_TYPE` `data_type` is written as. A mismatch
/// means the catalog no longer describes the table the event was written with, and
/// decoding the event with it would misread values.
pub fn binlog_type_matches(data_type: &str, binlog: ColumnType) -> bool {
    use ColumnType::*;
    match data_type {
        "tinyint" => binlog == MYSQL_TYPE_TINY,
        "smallint" => binlog == MYSQL_TYPE_SHORT,
        "mediumint" => binlog == MYSQL_TYPE_INT24,
        "int" | "integer" => binlog == MYSQL_TYPE_LONG,
        "bigint" => binlog == MYSQL_TYPE_LONGLONG,
        "decimal" | "numeric" => matches!(binlog, MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL),
        "float" => binlog == MYSQL_TYPE_FLOAT,
        "double" | "real" => binlog == MYSQL_TYPE_DOUBLE,
        "bit" => binlog == MYSQL_TYPE_BIT,
        "year" => binlog == MYSQL_TYPE_YEAR,
        "date" => matches!(binlog, MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE),
        "time" => matches!(binlog, MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2),
        "datetime" => matches!(binlog, MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2),
        "timestamp" => matches!(binlog, MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2),
        // Character, binary, ENUM/SET, JSON (MariaDB's is LONGTEXT), spatial, INET6, UUID:
        // all written as one of the string or blob types.
        _ => matches!(
            binlog,
            MYSQL_TYPE_VARCHAR
                | MYSQL_TYPE_VAR_STRING
                | MYSQL_TYPE_STRING
                | MYSQL_TYPE_TINY_BLOB
                | MYSQL_TYPE_MEDIUM_BLOB
                | MYSQL_TYPE_LONG_BLOB
                | MYSQL_TYPE_BLOB
                | MYSQL_TYPE_ENUM
                | MYSQL_TYPE_SET
                | MYSQL_TYPE_JSON
                | MYSQL_TYPE_GEOMETRY
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(data_type: &str, column_type: &str) -> ColumnInfo {
        ColumnInfo::nullable("c", data_type, column_type)
    }

    fn parse(c: &ColumnInfo, raw: &[u8]) -> Value {
        column_type(c, &TypeModes::default())
            .0
            .parse(raw.to_vec())
            .unwrap()
    }

    #[test]
    fn values_as_debezium_writes_them() {
        let biu = column("bigint", "bigint(20) unsigned");
        assert_eq!(parse(&biu, b"18446744073709551615"), Value::Int64(-1));
        let bits = ColumnInfo {
            precision: Some(10),
            ..column("bit", "bit(10)")
        };
        assert_eq!(
            parse(&bits, &[0x00, 0x05]),
            Value::Bytes(Bytes::from_static(&[0x05, 0x00]))
        );
        assert_eq!(parse(&column("bit", "bit(1)"), &[1]), Value::Boolean(true));
        assert_eq!(
            parse(&column("time", "time"), b"-838:59:59"),
            Value::Int64(-3_020_399_000_000)
        );
        assert_eq!(parse(&column("date", "date"), b"0000-00-00"), Value::Null);
        assert_eq!(
            parse(&column("date", "date"), b"2024-02-29"),
            Value::Int32(19782)
        );
        assert_eq!(
            parse(
                &column("timestamp", "timestamp(6)"),
                b"2024-02-29 12:00:00.500000"
            ),
            Value::from("2024-02-29T12:00:00.5Z")
        );
        assert_eq!(
            parse(&column("datetime", "datetime"), b"2024-02-29 12:00:00"),
            Value::Int64(1_709_208_000_000)
        );
        let dec = ColumnInfo {
            precision: Some(10),
            scale: Some(2),
            ..column("decimal", "decimal(10,2)")
        };
        assert_eq!(parse(&dec, b"123.45"), Value::decimal(12345));
        assert_eq!(parse(&dec, b"-1.5"), Value::decimal(-150));
        assert_eq!(enum_labels("enum('a','it''s','c')"), ["a", "it's", "c"]);
        let e = column_type(&column("int", "int(11)"), &TypeModes::default())
            .0
            .parse(b"x".to_vec())
            .unwrap_err();
        assert!(e.contains("integer"), "{e}");
        // MySQL's JSON is Debezium's Json string; MariaDB's (a LONGTEXT) a plain one.
        let json = column_type(&column("json", "json"), &TypeModes::default())
            .1
            .build();
        assert_eq!(json.name(), Some("io.debezium.data.Json"));
        assert_eq!(
            column_type(&column("longtext", "longtext"), &TypeModes::default())
                .1
                .build()
                .name(),
            None
        );
    }

    #[test]
    fn binlog_integers_and_timestamps_read_as_their_text_would() {
        use mysql_async::Value as V;
        let binlog = |c: &ColumnInfo, v: V| {
            column_type(c, &TypeModes::default())
                .0
                .from_binlog(c, &[], v)
        };
        for (c, value, text) in [
            (column("tinyint", "tinyint(3) unsigned"), V::Int(255), "255"),
            (column("smallint", "smallint(6)"), V::Int(-32768), "-32768"),
            (
                column("int", "int(10) unsigned"),
                V::UInt(4_294_967_295),
                "4294967295",
            ),
            (
                column("bigint", "bigint(20) unsigned"),
                V::UInt(u64::MAX),
                "18446744073709551615",
            ),
            (
                column("bigint", "bigint(20)"),
                V::Int(i64::MIN),
                "-9223372036854775808",
            ),
            (column("year", "year(4)"), V::Int(2024), "2024"),
        ] {
            assert_eq!(
                binlog(&c, value).unwrap(),
                parse(&c, text.as_bytes()),
                "{text}"
            );
        }
        let small = column("smallint", "smallint(6)");
        assert!(binlog(&small, V::Int(40_000))
            .unwrap_err()
            .contains("40000"));
        for (digits, micros, expected) in [
            (0, 1_709_208_000_500_000, "2024-02-29T12:00:00.5Z"),
            (0, 1_709_208_000_000_000, "2024-02-29T12:00:00Z"),
            (0, 1_709_208_000_000_001, "2024-02-29T12:00:00.000001Z"),
            (6, 1_709_208_000_500_000, "2024-02-29T12:00:00.500000Z"),
            (3, 1_709_208_000_012_000, "2024-02-29T12:00:00.012Z"),
            (0, 0, "1970-01-01T00:00:00Z"),
        ] {
            assert_eq!(iso_utc_digits(micros, digits), expected);
        }
    }

    /// MySQL's binary DECIMAL of `text` (which has exactly `scale` fraction digits), as
    /// the server writes it into the binlog (see [`binlog_decimal`]).
    fn decimal2bin(text: &str, precision: usize, scale: usize) -> Vec<u8> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        assert_eq!(frac.len(), scale, "{text}");
        let int_digits = precision - scale;
        let all = format!("{int:0>int_digits$}{frac}");
        let (mut out, mut at) = (Vec::new(), 0);
        for digits in decimal_groups(precision, scale) {
            let group: u32 = all[at..at + digits].parse().unwrap();
            at += digits;
            let len = DECIMAL_GROUP_BYTES[digits];
            out.extend_from_slice(&group.to_be_bytes()[4 - len..]);
        }
        if negative {
            out.iter_mut().for_each(|b| *b = !*b);
        }
        out[0] ^= 0x80;
        out
    }

    /// The direct read of binlog DECIMAL and TIMESTAMP bytes gives the value, and
    /// consumes the bytes, that mysql_common's text and the codec's parse of it give.
    #[test]
    fn binlog_decimals_and_timestamps_read_directly_as_through_text() {
        use mysql_common::io::ParseBuf;
        let through_text =
            |codec: &Codec, c: &ColumnInfo, t: ColumnType, meta: &[u8], bytes: &[u8]| {
                let mut buf = ParseBuf(bytes);
                let value: mysql_async::binlog::value::BinlogValue<'_> =
                    buf.parse((t, meta, false, false)).unwrap();
                let value = mysql_async::Value::try_from(value).unwrap();
                (
                    codec.from_binlog(c, &[], value).unwrap(),
                    bytes.len() - buf.0.len(),
                )
            };
        let direct = |codec: &Codec, c: &ColumnInfo, t: ColumnType, meta: &[u8], bytes: &[u8]| {
            let mut buf = bytes;
            let value = codec.from_binlog_bytes(t, meta, c, &mut buf);
            value.map(|v| (v, bytes.len() - buf.len()))
        };
        let decimal_type = ColumnType::MYSQL_TYPE_NEWDECIMAL;
        for (precision, scale, texts) in [
            (
                12u8,
                2u8,
                &[
                    "0.00",
                    "1.25",
                    "-1.25",
                    "9999999999.99",
                    "-9999999999.99",
                    "0.01",
                    "-0.01",
                ][..],
            ),
            (9, 0, &["0", "123456789", "-123456789", "-1"]),
            (10, 10, &["0.1234567890", "-0.0000000001"]),
            (
                38,
                19,
                &[
                    "1234567890123456789.1234567890123456789",
                    "-0.0000000000000000001",
                ],
            ),
            (20, 7, &["1234567890123.1234567", "-42.5000000"]),
        ] {
            let column = column("decimal", &format!("decimal({precision},{scale})"));
            let codec = Codec::Decimal(scale.into(), DecimalMode::Precise);
            let meta = [precision, scale];
            for text in texts {
                let mut bytes = decimal2bin(text, precision.into(), scale.into());
                bytes.extend_from_slice(b"next column");
                assert_eq!(
                    direct(&codec, &column, decimal_type, &meta, &bytes),
                    Some(through_text(&codec, &column, decimal_type, &meta, &bytes)),
                    "DECIMAL({precision},{scale}) {text}"
                );
            }
        }
        // Beyond an i128, other modes and bytes that hold no decimal: the general path.
        let wide = Codec::Decimal(0, DecimalMode::Precise);
        let big = column("decimal", "decimal(65,0)");
        assert_eq!(
            direct(&wide, &big, decimal_type, &[65, 0], &[0x80; 40]),
            None
        );
        let double = Codec::Decimal(2, DecimalMode::Double);
        assert_eq!(
            direct(&double, &big, decimal_type, &[12, 2], &[0x80; 8]),
            None
        );
        let codec = Codec::Decimal(0, DecimalMode::Precise);
        assert_eq!(
            direct(&codec, &big, decimal_type, &[9, 0], &[0xff; 4]),
            None
        );
        assert_eq!(
            direct(&codec, &big, decimal_type, &[9, 0], &[0x80, 0]),
            None
        );

        let timestamp_type = ColumnType::MYSQL_TYPE_TIMESTAMP2;
        for fsp in 0u8..=6 {
            let mut column = column("timestamp", &format!("timestamp({fsp})"));
            column.fraction_digits = Some(fsp.into());
            let frac_len = usize::from(fsp).div_ceil(2);
            for (secs, frac) in [
                (0u32, 0u32),
                (1_700_000_000, 1),
                (2_147_483_647, 99),
                (86_399, 0),
            ] {
                let frac = match frac_len {
                    0 => 0,
                    1 => frac % 100,
                    2 => frac * 37 % 10_000,
                    _ => frac * 123_457 % 1_000_000,
                };
                let mut bytes = secs.to_be_bytes().to_vec();
                bytes.extend_from_slice(&frac.to_be_bytes()[4 - frac_len..]);
                bytes.extend_from_slice(b"next");
                assert_eq!(
                    direct(&Codec::Timestamp, &column, timestamp_type, &[fsp], &bytes),
                    Some(through_text(
                        &Codec::Timestamp,
                        &column,
                        timestamp_type,
                        &[fsp],
                        &bytes
                    )),
                    "TIMESTAMP({fsp}) {secs}.{frac}"
                );
            }
        }
        let column = column("int", "int");
        assert_eq!(
            direct(
                &Codec::Int32,
                &column,
                ColumnType::MYSQL_TYPE_LONG,
                &[],
                &[1, 0, 0, 0]
            ),
            None
        );
    }
}
