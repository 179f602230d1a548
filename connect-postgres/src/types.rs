//! PostgreSQL types → Debezium's schemas and values, from PostgreSQL's text output (as
//! pgoutput and text-mode queries deliver it). Sessions run with `DateStyle=ISO`,
//! `IntervalStyle=iso_8601`, `TimeZone=UTC`, `extra_float_digits=3`, so the text forms
//! parsed here are fixed.
//!
//! The handling modes are Debezium's ([`TypeModes`]; defaults `decimal.handling.mode=precise`,
//! `time.precision.mode=adaptive`, `binary.handling.mode=bytes`,
//! `interval.handling.mode=numeric`, `hstore.handling.mode=json`). Domains map as their
//! base type, enums as `io.debezium.data.Enum`, arrays as arrays of their element's schema.
//! Types without a mapping become strings with the type named in the schema's
//! `__debezium.source.column.type` parameter, never a crash.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use connect_core::calendar::{civil_from_days, days_from_civil};
use connect_core::schema::logical;
use connect_core::transaction::java_hashmap_order;
use connect_core::{Schema, SchemaBuilder, SchemaType, Struct, Value};

/// Session settings that fix the text formats parsed here.
pub const SESSION_OPTIONS: &str =
    "-c datestyle=ISO,YMD -c intervalstyle=iso_8601 -c timezone=UTC -c extra_float_digits=3 -c lc_monetary=C";

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// What Debezium 3.6 streams for a `timestamp` 'infinity' and '-infinity' alike, in
/// microseconds (PgJDBC's `DATE_NEGATIVE_INFINITY`; its positive twin overflows into it).
const INFINITY_TIMESTAMP_MICROS: i64 = -9_223_372_036_832_400_000;

pub use connect_core::modes::{BinaryMode, DecimalMode};

/// `time.precision.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimePrecisionMode {
    /// Millisecond or microsecond types by the column's precision.
    #[default]
    Adaptive,
    /// As adaptive, but `time` is always `MicroTime`.
    AdaptiveTimeMicroseconds,
    /// Kafka Connect's `Date`, `Time`, `Timestamp` (millisecond precision).
    Connect,
}

/// `interval.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntervalMode {
    /// `MicroDuration`: microseconds, a month being 30.4375 days.
    #[default]
    Numeric,
    /// `io.debezium.time.Interval`: `P<y>Y<m>M<d>DT<h>H<m>M<s>S`.
    String,
}

/// `hstore.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HstoreMode {
    /// A JSON object as an `io.debezium.data.Json` string.
    #[default]
    Json,
    /// A `map<string, string>`.
    Map,
}

/// How values of each kind of type are represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeModes {
    /// `decimal.handling.mode`.
    pub decimal: DecimalMode,
    /// `time.precision.mode`.
    pub time: TimePrecisionMode,
    /// `binary.handling.mode`.
    pub binary: BinaryMode,
    /// `interval.handling.mode`.
    pub interval: IntervalMode,
    /// `hstore.handling.mode`.
    pub hstore: HstoreMode,
    /// `money.fraction.digits` (default 2).
    pub money_fraction_digits: u32,
}

impl Default for TypeModes {
    fn default() -> Self {
        TypeModes {
            decimal: DecimalMode::default(),
            time: TimePrecisionMode::default(),
            binary: BinaryMode::default(),
            interval: IntervalMode::default(),
            hstore: HstoreMode::default(),
            money_fraction_digits: 2,
        }
    }
}

/// A column's type as the catalog describes it, domains resolved to their base type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgType {
    /// A built-in or extension type.
    Base {
        /// Type OID.
        oid: u32,
        /// Type name (`pg_type.typname`).
        name: String,
    },
    /// An enum type.
    Enum {
        /// Its labels in sort order.
        labels: Vec<String>,
    },
    /// A one-dimensional array of the element type.
    Array(Box<PgType>),
}

impl PgType {
    /// A built-in type known by its OID alone.
    pub fn builtin(oid: u32) -> PgType {
        PgType::Base {
            oid,
            name: oid.to_string(),
        }
    }
}

/// How a column's text is turned into a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    /// `t` / `f`.
    Bool,
    /// int2.
    Int16,
    /// int4.
    Int32,
    /// int8, oid.
    Int64,
    /// float4.
    Float32,
    /// float8.
    Float64,
    /// numeric (and money, whose text may carry `$` and `,`).
    Numeric {
        /// The column's scale; `None` for unconstrained numeric.
        scale: Option<u32>,
        /// `decimal.handling.mode`.
        mode: DecimalMode,
        /// money: strip the currency symbol and group separators first.
        money: bool,
    },
    /// Text of any kind (text, varchar, char, json, uuid, xml, inet, enums, unknown types...).
    Text,
    /// bytea (`\x` hex text).
    Bytea(BinaryMode),
    /// date → days since the epoch.
    Date,
    /// time → milliseconds since midnight (int32).
    TimeMillis,
    /// time → microseconds since midnight.
    TimeMicros,
    /// timestamp → milliseconds since the epoch.
    TimestampMillis,
    /// timestamp → microseconds since the epoch.
    TimestampMicros,
    /// timestamptz → ISO-8601 UTC string with this many fraction digits.
    TimestampTz(u8),
    /// timetz → UTC time, fraction without trailing zeros (`08:15:30.5Z`).
    TimeTz,
    /// interval → microseconds (a month is 30.4375 days).
    Interval,
    /// interval → Debezium's ISO string.
    IntervalString,
    /// bit(1) → boolean.
    Bit,
    /// bit(n), varbit → `io.debezium.data.Bits` (little-endian bytes).
    Bits,
    /// point → `io.debezium.data.geometry.Point`.
    Point,
    /// hstore → JSON text or a map.
    Hstore(HstoreMode),
    /// A one-dimensional array (`{a,b,NULL}`) of elements of this codec.
    Array(Box<Codec>),
}

/// The schema and codec of a column of type `ty` with modifier `typmod`.
pub fn column_type(ty: &PgType, typmod: i32, modes: &TypeModes) -> (Codec, SchemaBuilder) {
    let (oid, name) = match ty {
        PgType::Base { oid, name } => (*oid, name.as_str()),
        PgType::Enum { labels } => {
            return (
                Codec::Text,
                Schema::builder(SchemaType::String)
                    .name("io.debezium.data.Enum")
                    .version(1)
                    .parameter("allowed", labels.join(",")),
            )
        }
        PgType::Array(element) => {
            let (codec, builder) = column_type(element, typmod, modes);
            // Debezium leaves enum elements required, every other element optional.
            let element_schema = match **element {
                PgType::Enum { .. } => builder.build(),
                _ => builder.optional().build(),
            };
            return (
                Codec::Array(Box::new(codec)),
                Schema::array_builder(element_schema),
            );
        }
    };
    let named = |ty, name: &str| Schema::builder(ty).name(name).version(1);
    let time_micros = || {
        (
            Codec::TimeMicros,
            named(SchemaType::Int64, "io.debezium.time.MicroTime"),
        )
    };
    match oid {
        16 => (Codec::Bool, Schema::builder(SchemaType::Boolean)),
        21 => (Codec::Int16, Schema::builder(SchemaType::Int16)),
        23 => (Codec::Int32, Schema::builder(SchemaType::Int32)),
        20 | 26 => (Codec::Int64, Schema::builder(SchemaType::Int64)),
        700 => (Codec::Float32, Schema::builder(SchemaType::Float32)),
        701 => (Codec::Float64, Schema::builder(SchemaType::Float64)),
        1700 => {
            let (precision, scale) = if typmod >= 4 {
                (
                    ((typmod - 4) >> 16) & 0xffff,
                    Some(((typmod - 4) & 0xffff) as u32),
                )
            } else {
                (0, None)
            };
            let codec = Codec::Numeric {
                scale,
                mode: modes.decimal,
                money: false,
            };
            let schema = match (modes.decimal, scale) {
                (DecimalMode::Double, _) => Schema::builder(SchemaType::Float64),
                (DecimalMode::String, _) => Schema::builder(SchemaType::String),
                (DecimalMode::Precise, None) => variable_scale_decimal().to_builder(),
                (DecimalMode::Precise, Some(scale)) => Schema::builder(SchemaType::Bytes)
                    .name(logical::DECIMAL)
                    .version(1)
                    .parameter("scale", scale.to_string())
                    .parameter("connect.decimal.precision", precision.to_string()),
            };
            (codec, schema)
        }
        790 => {
            let scale = modes.money_fraction_digits;
            let schema = match modes.decimal {
                DecimalMode::Double => Schema::builder(SchemaType::Float64),
                DecimalMode::String => Schema::builder(SchemaType::String),
                DecimalMode::Precise => Schema::builder(SchemaType::Bytes)
                    .name(logical::DECIMAL)
                    .version(1)
                    .parameter("scale", scale.to_string()),
            };
            (
                Codec::Numeric {
                    scale: Some(scale),
                    mode: modes.decimal,
                    money: true,
                },
                schema,
            )
        }
        17 => (
            Codec::Bytea(modes.binary),
            match modes.binary {
                BinaryMode::Bytes => Schema::builder(SchemaType::Bytes),
                _ => Schema::builder(SchemaType::String),
            },
        ),
        1082 => (
            Codec::Date,
            match modes.time {
                TimePrecisionMode::Connect => named(SchemaType::Int32, logical::DATE),
                _ => named(SchemaType::Int32, "io.debezium.time.Date"),
            },
        ),
        1083 => match modes.time {
            TimePrecisionMode::Connect => {
                (Codec::TimeMillis, named(SchemaType::Int32, logical::TIME))
            }
            TimePrecisionMode::AdaptiveTimeMicroseconds => time_micros(),
            TimePrecisionMode::Adaptive if precision_of(typmod) <= 3 => (
                Codec::TimeMillis,
                named(SchemaType::Int32, "io.debezium.time.Time"),
            ),
            TimePrecisionMode::Adaptive => time_micros(),
        },
        1114 => match modes.time {
            TimePrecisionMode::Connect => (
                Codec::TimestampMillis,
                named(SchemaType::Int64, logical::TIMESTAMP),
            ),
            _ if precision_of(typmod) <= 3 => (
                Codec::TimestampMillis,
                named(SchemaType::Int64, "io.debezium.time.Timestamp"),
            ),
            _ => (
                Codec::TimestampMicros,
                named(SchemaType::Int64, "io.debezium.time.MicroTimestamp"),
            ),
        },
        1184 => (
            Codec::TimestampTz(precision_of(typmod) as u8),
            named(SchemaType::String, "io.debezium.time.ZonedTimestamp"),
        ),
        1266 => (
            Codec::TimeTz,
            named(SchemaType::String, "io.debezium.time.ZonedTime"),
        ),
        1186 => match modes.interval {
            IntervalMode::Numeric => (
                Codec::Interval,
                named(SchemaType::Int64, "io.debezium.time.MicroDuration"),
            ),
            IntervalMode::String => (
                Codec::IntervalString,
                named(SchemaType::String, "io.debezium.time.Interval"),
            ),
        },
        // bit(1) and varbit(1) are booleans; wider ones (and unbounded varbit) Bits.
        1560 | 1562 if typmod == 1 => (Codec::Bit, Schema::builder(SchemaType::Boolean)),
        1560 | 1562 => (
            Codec::Bits,
            Schema::builder(SchemaType::Bytes)
                .name("io.debezium.data.Bits")
                .version(1)
                .parameter(
                    "length",
                    if typmod > 0 { typmod } else { i32::MAX }.to_string(),
                ),
        ),
        600 => (Codec::Point, point_schema().to_builder()),
        114 | 3802 => (
            Codec::Text,
            named(SchemaType::String, "io.debezium.data.Json"),
        ),
        2950 => (
            Codec::Text,
            named(SchemaType::String, "io.debezium.data.Uuid"),
        ),
        142 => (
            Codec::Text,
            named(SchemaType::String, "io.debezium.data.Xml"),
        ),
        3614 => (
            Codec::Text,
            named(SchemaType::String, "io.debezium.data.Tsvector"),
        ),
        // char, name, text, bpchar, varchar, inet, cidr, macaddr, macaddr8, ranges.
        18 | 19 | 25 | 1042 | 1043 | 869 | 650 | 829 | 774 | 3904 | 3906 | 3908 | 3910 | 3912
        | 3926 => (Codec::Text, Schema::builder(SchemaType::String)),
        // Extension types have no fixed OID: known by name.
        _ => match name {
            "hstore" => (
                Codec::Hstore(modes.hstore),
                match modes.hstore {
                    HstoreMode::Json => named(SchemaType::String, "io.debezium.data.Json"),
                    HstoreMode::Map => Schema::map_builder(
                        Schema::required(SchemaType::String),
                        Schema::optional(SchemaType::String),
                    ),
                },
            ),
            "ltree" => (
                Codec::Text,
                named(SchemaType::String, "io.debezium.data.Ltree"),
            ),
            "citext" | "isbn" => (Codec::Text, Schema::builder(SchemaType::String)),
            _ => (
                Codec::Text,
                Schema::builder(SchemaType::String)
                    .parameter("__debezium.source.column.type", name.to_uppercase()),
            ),
        },
    }
}

/// Fractional-second precision from a time/timestamp modifier (-1: the default, 6).
fn precision_of(typmod: i32) -> i32 {
    if typmod < 0 {
        6
    } else {
        typmod
    }
}

/// Debezium's `io.debezium.data.VariableScaleDecimal`.
pub fn variable_scale_decimal() -> &'static Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        Schema::struct_builder()
            .name("io.debezium.data.VariableScaleDecimal")
            .version(1)
            .doc("Variable scaled decimal")
            .field("scale", Schema::required(SchemaType::Int32))
            .field("value", Schema::required(SchemaType::Bytes))
            .build()
    })
}

/// Debezium's `io.debezium.data.geometry.Point`.
pub fn point_schema() -> &'static Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| logical::point().build())
}

impl Codec {
    /// Parses PostgreSQL's text form. Errors say what was expected.
    pub fn parse(&self, text: Bytes) -> Result<Value, String> {
        self.parse_in(&text, 0, text.len())
    }

    /// Parses `buf[start..end]`. Only codecs whose value keeps the text (strings, arrays,
    /// hex) take a slice of `buf`; the others read it in place, so the shared buffer's
    /// reference count is not touched for every number.
    pub fn parse_in(&self, buf: &Bytes, start: usize, end: usize) -> Result<Value, String> {
        let raw = &buf[start..end];
        let text = || buf.slice(start..end);
        if let Codec::Text = self {
            // Checked as UTF-8 once, by the string itself.
            return Value::string_from_bytes(text())
                .map_err(|_| format!("invalid text `{}`", String::from_utf8_lossy(raw)));
        }
        let s = std::str::from_utf8(raw).map_err(|_| "not UTF-8".to_owned())?;
        let bad = |what: &str| format!("invalid {what} `{s}`");
        Ok(match self {
            Codec::Text => unreachable!("returned above"),
            Codec::Bool => Value::Boolean(match s {
                "t" | "true" => true,
                "f" | "false" => false,
                _ => return Err(bad("boolean")),
            }),
            Codec::Int16 => Value::Int16(s.parse().map_err(|_| bad("int2"))?),
            Codec::Int32 => Value::Int32(s.parse().map_err(|_| bad("int4"))?),
            Codec::Int64 => Value::Int64(s.parse().map_err(|_| bad("int8"))?),
            Codec::Float32 => Value::Float32(s.parse().map_err(|_| bad("float4"))?),
            Codec::Float64 => Value::Float64(s.parse().map_err(|_| bad("float8"))?),
            Codec::Numeric { scale, mode, money } => {
                let cleaned;
                let s = if *money {
                    cleaned = s
                        .chars()
                        .filter(|c| !matches!(c, '$' | ','))
                        .collect::<String>();
                    cleaned.as_str()
                } else {
                    s
                };
                numeric(s, *scale, *mode)
                    .ok_or_else(|| bad(if *money { "money" } else { "numeric" }))?
            }
            Codec::Bytea(mode) => {
                let hex = s.strip_prefix("\\x").ok_or_else(|| bad("bytea"))?;
                let raw = decode_hex(hex).ok_or_else(|| bad("bytea"))?;
                match mode {
                    // PostgreSQL's hex output is already Debezium's (lower case).
                    BinaryMode::Hex => Value::string_from_bytes(buf.slice(start + 2..end))
                        .map_err(|_| bad("bytea"))?,
                    other => other.encode(Bytes::from(raw)),
                }
            }
            Codec::Date => Value::Int32(match s {
                // PgJDBC's infinity dates, as Debezium streams them.
                "infinity" => days_from_civil(-5_877_611, 6, 21),
                "-infinity" => days_from_civil(-5_877_611, 6, 22),
                _ => parse_date(s).ok_or_else(|| bad("date"))?,
            } as i32),
            Codec::TimeMillis => {
                Value::Int32((parse_time(s).ok_or_else(|| bad("time"))? / 1000) as i32)
            }
            Codec::TimeMicros => Value::Int64(parse_time(s).ok_or_else(|| bad("time"))?),
            Codec::TimestampMillis => Value::Int64(
                timestamp_micros(s)
                    .ok_or_else(|| bad("timestamp"))?
                    .div_euclid(1000),
            ),
            Codec::TimestampMicros => {
                Value::Int64(timestamp_micros(s).ok_or_else(|| bad("timestamp"))?)
            }
            Codec::TimestampTz(digits) => match s {
                "infinity" | "-infinity" => Value::String(s.into()),
                _ => Value::from(match canonical_utc_zoned(raw, *digits) {
                    Some(zoned) => zoned,
                    None => format_utc(
                        parse_timestamptz(s).ok_or_else(|| bad("timestamptz"))?,
                        *digits,
                    ),
                }),
            },
            Codec::Interval => Value::Int64(parse_iso_interval(s).ok_or_else(|| bad("interval"))?),
            Codec::IntervalString => {
                Value::from(debezium_interval(s).ok_or_else(|| bad("interval"))?)
            }
            Codec::TimeTz => Value::from(parse_timetz(s).ok_or_else(|| bad("timetz"))?),
            Codec::Bit => match s {
                "0" => Value::Boolean(false),
                "1" => Value::Boolean(true),
                _ => return Err(bad("bit")),
            },
            Codec::Bits => Value::Bytes(bits_little_endian(s).ok_or_else(|| bad("bit"))?),
            Codec::Point => point(s).ok_or_else(|| bad("point"))?,
            Codec::Hstore(mode) => hstore(s, *mode).ok_or_else(|| bad("hstore"))?,
            Codec::Array(element) => {
                let mut values = Vec::new();
                for item in array_items(&text()).map_err(|e| format!("{e} in array `{s}`"))? {
                    values.push(match item {
                        None => Value::Null,
                        Some(t) => element.parse(t)?,
                    });
                }
                Value::Array(values)
            }
        })
    }
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Reading a binary `COPY` (`FORMAT binary`), for the types whose binary form is cheaper
/// to read than their text and, for numeric and the date/time types, cheaper for the
/// server to write. A table is read in binary only when every column it keeps can be (see
/// [`Codec::reads_binary`]); others take the text path. Values equal the text path's:
/// where the binary form holds something the fast path does not cover (a numeric NaN or
/// with more than 36 digits, an infinite date or timestamp), its text form goes through
/// [`Codec::parse`].
impl Codec {
    /// Whether a column of base type `oid` read by this codec can be read from a binary
    /// `COPY` ([`parse_binary`](Self::parse_binary)).
    pub fn reads_binary(&self, oid: u32) -> bool {
        matches!(
            (oid, self),
            (16, Codec::Bool)
                | (21, Codec::Int16)
                | (23, Codec::Int32)
                | (20, Codec::Int64)
                | (700, Codec::Float32)
                | (701, Codec::Float64)
                | (25 | 1043, Codec::Text)
                | (17, Codec::Bytea(_))
                | (1082, Codec::Date)
                | (1083, Codec::TimeMillis | Codec::TimeMicros)
                | (1114, Codec::TimestampMillis | Codec::TimestampMicros)
                | (1184, Codec::TimestampTz(_))
                | (
                    1700,
                    Codec::Numeric {
                        scale: Some(_),
                        mode: DecimalMode::Precise,
                        money: false,
                    }
                )
        )
    }

    /// Parses `buf[start..end]`, a field of a binary `COPY` row of a column this codec
    /// [reads in binary](Self::reads_binary).
    pub fn parse_binary(&self, buf: &Bytes, start: usize, end: usize) -> Result<Value, String> {
        let raw = &buf[start..end];
        // PostgreSQL's infinite dates and timestamps are the type's extremes; the text
        // codec knows what Debezium makes of them.
        let infinite = |positive: bool| {
            self.parse(Bytes::from_static(if positive {
                b"infinity"
            } else {
                b"-infinity"
            }))
        };
        let since_2000 = |micros: i64| {
            micros
                .checked_add(PG_EPOCH_MICROS)
                .ok_or_else(|| format!("timestamp {micros} out of range"))
        };
        Ok(match self {
            Codec::Bool => Value::Boolean(sized::<1>(raw, "bool")?[0] != 0),
            Codec::Int16 => Value::Int16(i16::from_be_bytes(sized(raw, "int2")?)),
            Codec::Int32 => Value::Int32(i32::from_be_bytes(sized(raw, "int4")?)),
            Codec::Int64 => Value::Int64(i64::from_be_bytes(sized(raw, "int8")?)),
            Codec::Float32 => Value::Float32(f32::from_be_bytes(sized(raw, "float4")?)),
            Codec::Float64 => Value::Float64(f64::from_be_bytes(sized(raw, "float8")?)),
            Codec::Text => {
                return self.parse_in(buf, start, end);
            }
            Codec::Bytea(mode) => mode.encode(buf.slice(start..end)),
            Codec::Date => match i32::from_be_bytes(sized(raw, "date")?) {
                i32::MAX => infinite(true)?,
                i32::MIN => infinite(false)?,
                days => Value::Int32(
                    days.checked_add((PG_EPOCH_MICROS / MICROS_PER_DAY) as i32)
                        .ok_or_else(|| format!("date {days} out of range"))?,
                ),
            },
            Codec::TimeMillis => {
                Value::Int32((i64::from_be_bytes(sized(raw, "time")?) / 1000) as i32)
            }
            Codec::TimeMicros => Value::Int64(i64::from_be_bytes(sized(raw, "time")?)),
            Codec::TimestampMillis | Codec::TimestampMicros => {
                match i64::from_be_bytes(sized(raw, "timestamp")?) {
                    i64::MAX => infinite(true)?,
                    i64::MIN => infinite(false)?,
                    micros if matches!(self, Codec::TimestampMillis) => {
                        Value::Int64(since_2000(micros)?.div_euclid(1000))
                    }
                    micros => Value::Int64(since_2000(micros)?),
                }
            }
            Codec::Numeric {
                scale: Some(scale),
                mode: DecimalMode::Precise,
                money: false,
            } => match binary_decimal(raw, *scale) {
                Some(unscaled) => Value::decimal(unscaled),
                None => self.parse(Bytes::from(
                    numeric_text(raw).ok_or_else(|| "an invalid binary numeric".to_owned())?,
                ))?,
            },
            Codec::TimestampTz(digits) => match i64::from_be_bytes(sized(raw, "timestamptz")?) {
                i64::MAX => infinite(true)?,
                i64::MIN => infinite(false)?,
                micros => Value::from(format_utc(since_2000(micros)?, *digits)),
            },
            other => return Err(format!("no binary form is read for {other:?}")),
        })
    }
}

/// A fixed-size binary value of `N` bytes (the type named `what`).
fn sized<const N: usize>(raw: &[u8], what: &str) -> Result<[u8; N], String> {
    raw.try_into()
        .map_err(|_| format!("a binary {what} of {} bytes", raw.len()))
}

/// The header fields and base-10000 digits of a binary numeric: (weight, sign, dscale,
/// digits); `None` when the bytes are not one.
fn numeric_parts(b: &[u8]) -> Option<(i16, u16, u16, impl Iterator<Item = u16> + '_)> {
    let word = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    if b.len() < 8 {
        return None;
    }
    let ndigits = usize::from(word(0));
    if b.len() != 8 + 2 * ndigits {
        return None;
    }
    let digits = b[8..]
        .chunks_exact(2)
        .map(|d| u16::from_be_bytes([d[0], d[1]]));
    Some((word(2) as i16, word(4), word(6), digits))
}

const NUMERIC_NEGATIVE: u16 = 0x4000;

/// A finite binary numeric of at most 36 digits as its unscaled value at `scale`; `None`
/// for anything else (NaN, infinities, more digits, a value not exact at `scale`).
fn binary_decimal(b: &[u8], scale: u32) -> Option<i128> {
    let (weight, sign, _, digits) = numeric_parts(b)?;
    if sign != 0 && sign != NUMERIC_NEGATIVE {
        return None;
    }
    let mut unscaled: i128 = 0;
    let mut groups: i32 = 0;
    for d in digits {
        if d > 9999 || groups == 9 {
            return None;
        }
        unscaled = unscaled * 10_000 + i128::from(d);
        groups += 1;
    }
    // `unscaled` holds the value times 10^fraction.
    let fraction = 4 * (groups - 1 - i32::from(weight));
    let shift = i64::from(scale) - i64::from(fraction);
    let factor = 10i128.checked_pow(u32::try_from(shift.unsigned_abs()).ok()?)?;
    let at_scale = if groups == 0 {
        0
    } else if shift >= 0 {
        unscaled.checked_mul(factor)?
    } else if unscaled % factor == 0 {
        unscaled / factor
    } else {
        return None;
    };
    Some(if sign == NUMERIC_NEGATIVE {
        -at_scale
    } else {
        at_scale
    })
}

/// A binary numeric as PostgreSQL prints it (`-12.50`, `NaN`, `Infinity`).
fn numeric_text(b: &[u8]) -> Option<String> {
    let (weight, sign, dscale, digits) = numeric_parts(b)?;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        0 | NUMERIC_NEGATIVE => {}
        _ => return None,
    }
    let digits: Vec<u16> = digits.collect();
    let group = |i: i32| {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or(0)
    };
    let mut out = String::new();
    if sign == NUMERIC_NEGATIVE {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&group(0).to_string());
        for i in 1..=i32::from(weight) {
            out.push_str(&format!("{:04}", group(i)));
        }
    }
    if dscale > 0 {
        let mut fraction = String::new();
        let mut i = i32::from(weight) + 1;
        while fraction.len() < usize::from(dscale) {
            fraction.push_str(&format!("{:04}", group(i)));
            i += 1;
        }
        fraction.truncate(usize::from(dscale));
        out.push('.');
        out.push_str(&fraction);
    }
    Some(out)
}

/// A `timestamp` text (or ±infinity) → microseconds since the epoch.
fn timestamp_micros(s: &str) -> Option<i64> {
    match s {
        "infinity" | "-infinity" => Some(INFINITY_TIMESTAMP_MICROS),
        _ => parse_timestamp(s),
    }
}

/// A numeric text under a decimal mode; `scale` is the column's (None: unconstrained).
fn numeric(s: &str, scale: Option<u32>, mode: DecimalMode) -> Option<Value> {
    let special = matches!(s, "NaN" | "Infinity" | "-Infinity");
    Some(match mode {
        DecimalMode::Double => Value::Float64(s.parse().ok()?),
        DecimalMode::String => {
            if !special {
                parse_decimal(s)?;
            }
            Value::String(s.into())
        }
        DecimalMode::Precise if special => Value::Null,
        DecimalMode::Precise => {
            let (unscaled, got) = parse_decimal(s)?;
            match scale {
                Some(scale) => Value::Bytes(rescale(unscaled, got, scale)?),
                None => {
                    // Debezium strips trailing fraction zeros from variable-scale values.
                    let trimmed = match s.split_once('.') {
                        Some((int, frac)) => {
                            let frac = frac.trim_end_matches('0');
                            if frac.is_empty() {
                                int.to_owned()
                            } else {
                                format!("{int}.{frac}")
                            }
                        }
                        None => s.to_owned(),
                    };
                    let (unscaled, scale) = if trimmed.len() == s.len() {
                        (unscaled, got)
                    } else {
                        parse_decimal(&trimmed)?
                    };
                    Value::Struct(
                        Struct::new(
                            variable_scale_decimal().clone(),
                            vec![Value::Int32(scale as i32), Value::Bytes(unscaled)],
                        )
                        .ok()?,
                    )
                }
            }
        }
    })
}

/// Splits a one-dimensional array literal (`{a,"b c",NULL}`, optionally after a
/// `[lo:hi]=` bounds prefix) into element texts; `None` is SQL NULL.
fn array_items(text: &Bytes) -> Result<Vec<Option<Bytes>>, &'static str> {
    let start = match text.iter().position(|&b| b == b'{') {
        Some(i) if i == 0 || text[..i].ends_with(b"=") => i,
        _ => return Err("no `{`"),
    };
    if text.get(start + 1) == Some(&b'{') {
        return Err("multi-dimensional arrays are not supported");
    }
    if !text.ends_with(b"}") {
        return Err("no closing `}`");
    }
    let body = text.slice(start + 1..text.len() - 1);
    let mut items = Vec::new();
    if body.is_empty() {
        return Ok(items);
    }
    let mut i = 0;
    loop {
        if body.get(i) == Some(&b'"') {
            // Quoted: backslash escapes the next byte.
            let mut value = Vec::new();
            i += 1;
            loop {
                match body.get(i) {
                    None => return Err("unterminated quote"),
                    Some(b'"') => break,
                    Some(b'\\') => {
                        value.push(*body.get(i + 1).ok_or("dangling escape")?);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
            i += 1;
            items.push(Some(Bytes::from(value)));
        } else {
            let end = body[i..]
                .iter()
                .position(|&b| b == b',')
                .map_or(body.len(), |p| i + p);
            let item = body.slice(i..end);
            items.push((&item[..] != b"NULL").then_some(item));
            i = end;
        }
        match body.get(i) {
            None => return Ok(items),
            Some(b',') => i += 1,
            Some(_) => return Err("unexpected character after an element"),
        }
    }
}

/// A bit string (`1011`, most significant bit first) → Debezium's little-endian bytes:
/// the last character is bit 0, and only as many bytes as the highest set bit needs.
fn bits_little_endian(s: &str) -> Option<Bytes> {
    let mut out = vec![0u8; s.len().div_ceil(8)];
    let mut highest = None;
    for (i, c) in s.bytes().rev().enumerate() {
        match c {
            b'0' => {}
            b'1' => {
                out[i / 8] |= 1 << (i % 8);
                highest = Some(i);
            }
            _ => return None,
        }
    }
    out.truncate(highest.map_or(0, |h| h / 8 + 1));
    Some(Bytes::from(out))
}

/// `(1.5,-2)` → Point {x, y, wkb, srid: null}, with Debezium's 21-byte WKB.
fn point(s: &str) -> Option<Value> {
    let (x, y) = s.strip_prefix('(')?.strip_suffix(')')?.split_once(',')?;
    let (x, y): (f64, f64) = (x.trim().parse().ok()?, y.trim().parse().ok()?);
    let mut wkb = Vec::with_capacity(21);
    wkb.push(1); // little-endian
    wkb.extend_from_slice(&1u32.to_le_bytes()); // point
    wkb.extend_from_slice(&x.to_le_bytes());
    wkb.extend_from_slice(&y.to_le_bytes());
    Struct::new(
        point_schema().clone(),
        vec![
            Value::Float64(x),
            Value::Float64(y),
            Value::Bytes(Bytes::from(wkb)),
            Value::Null,
        ],
    )
    .ok()
    .map(Value::Struct)
}

/// hstore text (`"a"=>"1", "b"=>NULL`) → JSON text or a map, its entries in the order
/// Debezium's Java `HashMap` iterates them.
fn hstore(s: &str, mode: HstoreMode) -> Option<Value> {
    let mut entries: Vec<(String, Option<String>)> = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let (key, after) = hstore_token(rest)?;
        let after = after.trim_start().strip_prefix("=>")?.trim_start();
        let (value, after) = if let Some(tail) = after.strip_prefix("NULL") {
            (None, tail)
        } else {
            let (v, tail) = hstore_token(after)?;
            (Some(v), tail)
        };
        entries.push((key, value));
        rest = after.trim_start();
        if let Some(tail) = rest.strip_prefix(',') {
            rest = tail.trim_start();
        } else if !rest.is_empty() {
            return None;
        }
    }
    let order = java_hashmap_order(entries.iter().map(|(k, _)| k.as_str()));
    Some(match mode {
        HstoreMode::Json => {
            let mut out = Vec::with_capacity(s.len() + 2);
            out.push(b'{');
            for (n, &i) in order.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                let (k, v) = &entries[i];
                connect_core::convert::json::write_str(&mut out, k);
                out.push(b':');
                match v {
                    Some(v) => connect_core::convert::json::write_str(&mut out, v),
                    None => out.extend_from_slice(b"null"),
                }
            }
            out.push(b'}');
            Value::from(String::from_utf8(out).ok()?)
        }
        HstoreMode::Map => Value::Map(
            order
                .iter()
                .map(|&i| {
                    let (k, v) = &entries[i];
                    (
                        Value::string(k),
                        v.as_deref().map_or(Value::Null, Value::string),
                    )
                })
                .collect(),
        ),
    })
}

/// One double-quoted hstore token (backslash escapes) → (text, rest).
fn hstore_token(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

/// An ISO-8601 interval from PostgreSQL → Debezium's `Interval` string
/// (`P<y>Y<m>M<d>DT<h>H<m>M<s>S`, seconds without trailing zeros).
fn debezium_interval(s: &str) -> Option<String> {
    let body = s.strip_prefix('P')?;
    let (date_part, time_part) = body.split_once('T').unwrap_or((body, ""));
    let mut fields = ["0"; 6];
    iso_fields(date_part, &[('Y', 0), ('M', 1), ('D', 2)], &mut fields)?;
    iso_fields(time_part, &[('H', 3), ('M', 4), ('S', 5)], &mut fields)?;
    let mut whole = [0i64; 5];
    for (n, f) in whole.iter_mut().zip(&fields) {
        *n = f.parse().ok()?;
    }
    let seconds = fields[5];
    seconds.parse::<f64>().ok()?;
    let seconds = if seconds.contains('.') {
        seconds.trim_end_matches('0').trim_end_matches('.')
    } else {
        seconds
    };
    let seconds = if seconds.is_empty() || seconds == "-" || seconds == "-0" {
        "0"
    } else {
        seconds
    };
    let [y, m, d, h, min] = whole;
    Some(format!("P{y}Y{m}M{d}DT{h}H{min}M{seconds}S"))
}

/// Assigns the numbers of one half of an ISO duration (`1Y2M3D` or `4H5M6.5S`) to slots.
fn iso_fields<'a>(part: &'a str, units: &[(char, usize)], fields: &mut [&'a str; 6]) -> Option<()> {
    let mut start = 0;
    for (i, c) in part.char_indices() {
        if c.is_ascii_alphabetic() {
            let &(_, slot) = units.iter().find(|(u, _)| *u == c)?;
            fields[slot] = &part[start..i];
            start = i + 1;
        }
    }
    (start == part.len()).then_some(())
}
/// "-123.4500" → (unscaled big-endian two's complement, scale 4).
fn parse_decimal(s: &str) -> Option<(Bytes, u32)> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int_part, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac.is_empty() {
        return None;
    }
    let all = int_part.bytes().chain(frac.bytes());
    if int_part.len() + frac.len() <= 38 {
        // Fits an i128: the common case, without building the magnitude byte by byte.
        let mut v: i128 = 0;
        for d in all {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i128::from(d - b'0');
        }
        return match Value::decimal(if negative { -v } else { v }) {
            Value::Bytes(b) => Some((b, frac.len() as u32)),
            _ => None,
        };
    }
    // Magnitude as big-endian bytes, built by multiply-add (any precision).
    let mut mag: Vec<u8> = vec![0];
    for d in all {
        if !d.is_ascii_digit() {
            return None;
        }
        let mut carry = u32::from(d - b'0');
        for byte in mag.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    Some((twos_complement(mag, negative), frac.len() as u32))
}

/// Minimal two's complement of a magnitude.
fn twos_complement(mut mag: Vec<u8>, negative: bool) -> Bytes {
    while mag.len() > 1 && mag[0] == 0 {
        mag.remove(0);
    }
    if mag[0] & 0x80 != 0 {
        mag.insert(0, 0);
    }
    if negative && mag.iter().any(|&b| b != 0) {
        for b in mag.iter_mut() {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, overflow) = b.overflowing_add(1);
            *b = v;
            if !overflow {
                break;
            }
        }
        while mag.len() > 1 && mag[0] == 0xff && mag[1] & 0x80 != 0 {
            mag.remove(0);
        }
    }
    Bytes::from(mag)
}

/// Brings an unscaled value from scale `from` to scale `to` (only ever widening, as
/// PostgreSQL prints exactly the column's scale).
fn rescale(unscaled: Bytes, from: u32, to: u32) -> Option<Bytes> {
    if from == to {
        return Some(unscaled);
    }
    if from > to || unscaled.len() > 15 {
        return None;
    }
    let mut v: i128 = if unscaled[0] & 0x80 != 0 { -1 } else { 0 };
    for &b in unscaled.iter() {
        v = (v << 8) | i128::from(b);
    }
    let widened = v.checked_mul(10i128.checked_pow(to - from)?)?;
    match Value::decimal(widened) {
        Value::Bytes(b) => Some(b),
        _ => None,
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// "2024-03-05" (optionally " BC") → days since the epoch.
fn parse_date(s: &str) -> Option<i64> {
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    let mut it = s.splitn(3, '-');
    let mut y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if bc {
        y = 1 - y;
    }
    (1..=12).contains(&m).then_some(())?;
    (1..=31).contains(&d).then_some(())?;
    Some(days_from_civil(y, m, d))
}

/// "13:45:10.123456" → microseconds since midnight ("24:00:00" allowed).
fn parse_time(s: &str) -> Option<i64> {
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut it = hms.splitn(3, ':');
    let h: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let sec: i64 = it.next()?.parse().ok()?;
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut micros: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..6 {
        micros *= 10;
    }
    Some(((h * 60 + m) * 60 + sec) * 1_000_000 + micros)
}

/// "2024-03-05 13:45:10.5" → microseconds since the epoch.
fn parse_timestamp(s: &str) -> Option<i64> {
    if let Some(micros) = canonical_timestamp(s.as_bytes()) {
        return Some(micros);
    }
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    let (date, time) = s.split_once(' ')?;
    let days = parse_date(&if bc {
        format!("{date} BC")
    } else {
        date.to_owned()
    })?;
    Some(days * MICROS_PER_DAY + parse_time(time)?)
}

/// The date, time and fraction digits of a timestamp in the form PostgreSQL prints for
/// four-digit years AD (`YYYY-MM-DD HH:MM:SS[.f{1,6}]`), read byte by byte: the snapshot's
/// hot path. `None` for anything else (the general parser takes it).
fn canonical_fields(b: &[u8]) -> Option<([i64; 6], &[u8])> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        b.get(range)?.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')];
    if b.len() < 19 || separators.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let fields = [
        digits(0..4)?,
        digits(5..7)?,
        digits(8..10)?,
        digits(11..13)?,
        digits(14..16)?,
        digits(17..19)?,
    ];
    if !(1..=12).contains(&fields[1]) || !(1..=31).contains(&fields[2]) {
        return None;
    }
    let frac = match &b[19..] {
        [] => &[][..],
        [b'.', frac @ ..]
            if (1..=6).contains(&frac.len()) && frac.iter().all(u8::is_ascii_digit) =>
        {
            frac
        }
        _ => return None,
    };
    Some((fields, frac))
}

/// A timestamp in [`canonical_fields`]' form → microseconds since the epoch.
fn canonical_timestamp(b: &[u8]) -> Option<i64> {
    let ([y, m, d, h, min, sec], frac) = canonical_fields(b)?;
    let micros = frac
        .iter()
        .fold(0i64, |acc, &c| acc * 10 + i64::from(c - b'0'))
        * 10i64.pow(6 - frac.len() as u32);
    Some(
        days_from_civil(y, m, d) * MICROS_PER_DAY
            + ((h * 60 + min) * 60 + sec) * 1_000_000
            + micros,
    )
}

/// The length of a ZonedTimestamp with `digits` fraction digits and a four-digit year:
/// a `String` of exactly that capacity becomes the value's buffer without another
/// allocation.
fn zoned_len(digits: usize) -> usize {
    20 + if digits > 0 { 1 + digits } else { 0 }
}

/// Debezium's ZonedTimestamp text of a `timestamptz` in the form the UTC session prints
/// for years 1-9999 AD (`YYYY-MM-DD HH:MM:SS[.f{1,digits}]+00`), rewritten without
/// parsing it into a number and formatting that again: the snapshot's hot path. `None` for
/// anything else (other offsets, BC, `24:00:00`), which the general path takes.
fn canonical_utc_zoned(b: &[u8], digits: u8) -> Option<String> {
    let local = b.strip_suffix(b"+00")?;
    let digits = usize::from(digits.min(6));
    let ([y, m, d, h, min, sec], frac) = canonical_fields(local)?;
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if y < 1 || d > month_days || h > 23 || min > 59 || sec > 59 || frac.len() > digits {
        return None;
    }
    let mut out = Vec::with_capacity(zoned_len(digits));
    out.extend_from_slice(&local[..10]);
    out.push(b'T');
    out.extend_from_slice(&local[11..19]);
    if digits > 0 {
        out.push(b'.');
        out.extend_from_slice(frac);
        out.resize(20 + digits, b'0');
    }
    out.push(b'Z');
    String::from_utf8(out).ok()
}

/// "2024-03-05 13:45:10.5+00" (or "+05:30", "-08") → UTC microseconds since the epoch.
fn parse_timestamptz(s: &str) -> Option<i64> {
    // PostgreSQL prints the era after the offset: `0044-03-15 12:00:00+00 BC`.
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    let idx = s.rfind(['+', '-']).filter(|&i| i > 10)?;
    let (local, offset) = s.split_at(idx);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let mut parts = offset[1..].split(':');
    let oh: i64 = parts.next()?.parse().ok()?;
    let om: i64 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    let os: i64 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    let offset_micros = sign * ((oh * 60 + om) * 60 + os) * 1_000_000;
    let local_micros = if bc {
        parse_timestamp(&format!("{local} BC"))?
    } else {
        parse_timestamp(local)?
    };
    Some(local_micros - offset_micros)
}

/// "13:45:10.5+02" → "11:45:10.5Z" (Java's ISO_OFFSET_TIME in UTC, as Debezium writes it).
fn parse_timetz(s: &str) -> Option<String> {
    let idx = s.rfind(['+', '-'])?;
    let (local, offset) = s.split_at(idx);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let mut parts = offset[1..].split(':');
    let oh: i64 = parts.next()?.parse().ok()?;
    let om: i64 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    let os: i64 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    let utc = (parse_time(local)? - sign * ((oh * 60 + om) * 60 + os) * 1_000_000)
        .rem_euclid(MICROS_PER_DAY);
    let secs = utc / 1_000_000;
    let mut out = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    let frac = utc % 1_000_000;
    if frac != 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    Some(out)
}

/// Debezium's ZonedTimestamp text: `2024-03-05T13:45:10.500000Z`, with exactly `digits`
/// fraction digits (the column's precision; none for precision 0). Written digit by digit:
/// this runs once per timestamptz value.
fn format_utc(micros: i64, digits: u8) -> String {
    fn push_digits(out: &mut Vec<u8>, value: i64, width: usize) {
        let start = out.len();
        let mut v = value;
        for _ in 0..width {
            out.push(b'0' + (v % 10) as u8);
            v /= 10;
        }
        out[start..].reverse();
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rem = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1_000_000;
    let digits = usize::from(digits.min(6));
    let mut out = Vec::with_capacity(zoned_len(digits));
    if !(0..=9999).contains(&y) {
        // Outside four digits Java prints a sign (and more digits); rare enough for format!.
        out.extend_from_slice(format!("{y:+05}").as_bytes());
    } else {
        push_digits(&mut out, y, 4);
    }
    out.push(b'-');
    push_digits(&mut out, m, 2);
    out.push(b'-');
    push_digits(&mut out, d, 2);
    out.push(b'T');
    push_digits(&mut out, secs / 3600, 2);
    out.push(b':');
    push_digits(&mut out, secs / 60 % 60, 2);
    out.push(b':');
    push_digits(&mut out, secs % 60, 2);
    if digits > 0 {
        out.push(b'.');
        push_digits(
            &mut out,
            rem % 1_000_000 / 10i64.pow(6 - digits as u32),
            digits,
        );
    }
    out.push(b'Z');
    String::from_utf8(out).expect("ASCII digits")
}

/// ISO-8601 interval ("P1Y2M3DT4H5M6.5S", parts may be negative) → microseconds, with
/// Debezium's month of 30.4375 days.
fn parse_iso_interval(s: &str) -> Option<i64> {
    let body = s.strip_prefix('P')?;
    let (date_part, time_part) = body.split_once('T').unwrap_or((body, ""));
    let mut total: f64 = 0.0;
    let mut scan = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == '-' {
                num.push(c);
            } else {
                let (_, factor) = units.iter().find(|(u, _)| *u == c)?;
                total += num.parse::<f64>().ok()? * factor;
                num.clear();
            }
        }
        num.is_empty().then_some(())
    };
    const DAY: f64 = MICROS_PER_DAY as f64;
    scan(
        date_part,
        &[
            ('Y', 12.0 * 30.4375 * DAY),
            ('M', 30.4375 * DAY),
            ('W', 7.0 * DAY),
            ('D', DAY),
        ],
    )?;
    scan(
        time_part,
        &[
            ('H', 3_600_000_000.0),
            ('M', 60_000_000.0),
            ('S', 1_000_000.0),
        ],
    )?;
    Some(total.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(oid: u32, typmod: i32, text: &str) -> Value {
        column_type(&PgType::builtin(oid), typmod, &TypeModes::default())
            .0
            .parse(Bytes::copy_from_slice(text.as_bytes()))
            .unwrap()
    }

    fn numeric_typmod(p: i32, s: i32) -> i32 {
        ((p << 16) | s) + 4
    }

    /// The byte-wise fast path reads what the general parser reads, and declines the
    /// rest.
    #[test]
    fn canonical_timestamps_read_as_the_general_parser_reads_them() {
        let general = |s: &str| -> Option<i64> {
            let (date, time) = s.split_once(' ')?;
            Some(parse_date(date)? * MICROS_PER_DAY + parse_time(time)?)
        };
        for s in [
            "2024-03-05 13:45:10",
            "2024-03-05 13:45:10.5",
            "2024-03-05 13:45:10.000001",
            "2024-02-29 23:59:59.999999",
            "1970-01-01 00:00:00",
            "1969-12-31 23:59:59.123",
            "0001-01-01 00:00:00",
            "9999-12-31 24:00:00",
        ] {
            assert_eq!(canonical_timestamp(s.as_bytes()), general(s), "{s}");
            assert!(canonical_timestamp(s.as_bytes()).is_some(), "{s}");
        }
        for s in [
            "2024-03-05 13:45:10.",
            "2024-03-05 13:45:10.1234567",
            "2024-13-05 13:45:10",
            "2024-03-00 13:45:10",
            "0044-03-15 12:00:00 BC",
            "12345-01-01 00:00:00",
            "2024-03-05T13:45:10",
            "2024-03-05 1x:45:10",
        ] {
            assert_eq!(canonical_timestamp(s.as_bytes()), None, "{s}");
        }
        // Declined forms still parse, through the general parser.
        assert_eq!(
            parse_timestamp("0044-03-15 12:00:00 BC"),
            Some(parse_date("0044-03-15 BC").unwrap() * MICROS_PER_DAY + 12 * 3_600_000_000)
        );
    }

    /// The rewritten ZonedTimestamp is what parsing and formatting give, for every
    /// precision, and the forms it declines still convert through the general path.
    #[test]
    fn canonical_utc_timestamptz_is_rewritten_as_it_is_formatted() {
        let general = |s: &str, digits: u8| format_utc(parse_timestamptz(s).unwrap(), digits);
        for s in [
            "2024-03-05 13:45:10+00",
            "2024-03-05 13:45:10.5+00",
            "2024-03-05 13:45:10.000001+00",
            "2024-02-29 23:59:59.999999+00",
            "1970-01-01 00:00:00+00",
            "0001-01-01 00:00:00.12+00",
            "9999-12-31 23:59:59.1+00",
        ] {
            let frac = s.split_once('.').map_or(0, |(_, f)| f.len() - 3) as u8;
            for digits in frac..=6 {
                assert_eq!(
                    canonical_utc_zoned(s.as_bytes(), digits).as_deref(),
                    Some(general(s, digits).as_str()),
                    "{s} with {digits} digits"
                );
            }
        }
        for (s, digits) in [
            ("2024-03-05 13:45:10.123+00", 2),
            ("2024-03-05 13:45:10+05:30", 6),
            ("2024-03-05 13:45:10-08", 6),
            ("2023-02-29 13:45:10+00", 6),
            ("2024-04-31 13:45:10+00", 6),
            ("9999-12-31 24:00:00+00", 6),
            ("0044-03-15 12:00:00+00 BC", 6),
            ("12345-01-01 00:00:00+00", 6),
            ("2024-03-05 13:45:1x+00", 6),
            ("2024-03-05 13:45:10.+00", 6),
        ] {
            assert_eq!(canonical_utc_zoned(s.as_bytes(), digits), None, "{s}");
        }
        assert_eq!(
            parse(1184, -1, "2024-03-05 13:45:10+05:30"),
            Value::from("2024-03-05T08:15:10.000000Z".to_owned())
        );
        assert_eq!(
            parse(1184, -1, "9999-12-31 24:00:00+00"),
            Value::from("+10000-01-01T00:00:00.000000Z".to_owned())
        );
    }

    /// A binary numeric: header words and base-10000 digits.
    fn binary_numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [digits.len() as u16, weight as u16, sign, dscale]
            .iter()
            .chain(digits)
        {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b
    }

    #[test]
    fn binary_numerics_read_as_their_text_is_read() {
        let numeric = |scale: u32| Codec::Numeric {
            scale: Some(scale),
            mode: DecimalMode::Precise,
            money: false,
        };
        let cases: &[(Vec<u8>, u32, &str)] = &[
            (binary_numeric(0, 0, 2, &[123, 4500]), 2, "123.45"),
            (binary_numeric(-1, 0x4000, 2, &[100]), 2, "-0.01"),
            (binary_numeric(0, 0, 4, &[]), 4, "0.0000"),
            (binary_numeric(1, 0, 0, &[9, 9999]), 0, "99999"),
            (binary_numeric(-2, 0, 6, &[1200]), 6, "0.000012"),
            (
                binary_numeric(3, 0, 4, &[1, 0, 0, 0, 1]),
                4,
                "1000000000000.0001",
            ),
            // 40 digits: beyond the fast path.
            (
                binary_numeric(6, 0, 10, &[9999; 10]),
                10,
                "9999999999999999999999999999.9999999999",
            ),
            (binary_numeric(0, 0xC000, 0, &[]), 2, "NaN"),
        ];
        for (bytes, scale, text) in cases {
            assert_eq!(numeric_text(bytes).as_deref(), Some(*text), "{text}");
            let buf = Bytes::from(bytes.clone());
            assert_eq!(
                numeric(*scale).parse_binary(&buf, 0, buf.len()),
                numeric(*scale).parse(Bytes::from(text.to_string())),
                "{text}"
            );
        }
        // The fast path took the short ones.
        assert_eq!(binary_decimal(&cases[0].0, 2), Some(12345));
        assert_eq!(binary_decimal(&cases[6].0, 10), None);
        // Digits past the column's scale are not silently dropped.
        assert_eq!(binary_decimal(&binary_numeric(-1, 0, 4, &[1234]), 2), None);
        assert!(numeric_text(&[0, 1, 0]).is_none(), "truncated");
    }

    #[test]
    fn binary_timestamptz_reads_as_its_text_is_read() {
        let codec = Codec::TimestampTz(6);
        let read = |micros_since_2000: i64| {
            let buf = Bytes::copy_from_slice(&micros_since_2000.to_be_bytes());
            codec.parse_binary(&buf, 0, 8)
        };
        assert_eq!(
            read(0),
            codec.parse(Bytes::from_static(b"2000-01-01 00:00:00+00"))
        );
        assert_eq!(
            read(-1),
            codec.parse(Bytes::from_static(b"1999-12-31 23:59:59.999999+00"))
        );
        assert_eq!(read(i64::MAX), Ok(Value::from("infinity")));
        assert_eq!(read(i64::MIN), Ok(Value::from("-infinity")));
        assert!(Codec::Int32
            .parse_binary(&Bytes::from_static(&[0; 3]), 0, 3)
            .is_err());
        // Types without a binary reader say so instead of misreading.
        assert!(!Codec::Text.reads_binary(2950), "uuid");
        assert!(!Codec::Int64.reads_binary(26), "oid: 4 bytes in binary");
        assert!(Codec::Point.parse_binary(&Bytes::new(), 0, 0).is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse(21, -1, "-32768"), Value::Int16(-32768));
        assert_eq!(parse(20, -1, "9223372036854775807"), Value::Int64(i64::MAX));
        assert_eq!(parse(16, -1, "t"), Value::Boolean(true));
        assert!(matches!(parse(701, -1, "NaN"), Value::Float64(v) if v.is_nan()));
        assert_eq!(
            parse(701, -1, "-Infinity"),
            Value::Float64(f64::NEG_INFINITY)
        );
        assert_eq!(
            parse(1700, numeric_typmod(10, 2), "123.45"),
            Value::decimal(12345)
        );
        assert_eq!(
            parse(1700, numeric_typmod(10, 2), "-0.05"),
            Value::decimal(-5)
        );
        assert_eq!(parse(1700, numeric_typmod(10, 2), "NaN"), Value::Null);
        assert_eq!(parse(790, -1, "-$1,234.50"), Value::decimal(-123450));
        let Value::Struct(v) = parse(1700, -1, "3.14159") else {
            panic!()
        };
        assert_eq!(v.get("scale"), Some(&Value::Int32(5)));
        assert_eq!(v.get("value"), Some(&Value::decimal(314159)));
        // Beyond i128: 40 digits.
        let Value::Struct(big) = parse(1700, -1, "1234567890123456789012345678901234567890") else {
            panic!()
        };
        let Some(Value::Bytes(b)) = big.get("value") else {
            panic!()
        };
        assert_eq!(b.len(), 17);
    }

    #[test]
    fn temporal() {
        assert_eq!(parse(1082, -1, "1970-01-02"), Value::Int32(1));
        assert_eq!(parse(1082, -1, "2024-02-29"), Value::Int32(19782));
        assert_eq!(parse(1082, -1, "1969-12-31"), Value::Int32(-1));
        assert_eq!(parse(1083, -1, "13:45:10.5"), Value::Int64(49_510_500_000));
        assert_eq!(parse(1083, 3, "00:00:01.25"), Value::Int32(1250));
        assert_eq!(
            parse(1114, -1, "1970-01-01 00:00:01.000001"),
            Value::Int64(1_000_001)
        );
        assert_eq!(parse(1114, 0, "1969-12-31 23:59:59"), Value::Int64(-1000));
        assert_eq!(
            parse(1184, -1, "2024-03-05 13:45:10.5+00"),
            Value::from("2024-03-05T13:45:10.500000Z")
        );
        assert_eq!(
            parse(1184, -1, "2024-03-05 13:45:10+05:30"),
            Value::from("2024-03-05T08:15:10.000000Z")
        );
        assert_eq!(parse(1184, -1, "infinity"), Value::from("infinity"));
        // The era follows the offset; 44 BC is the proleptic year -43.
        assert_eq!(
            parse(1184, -1, "0044-03-15 12:00:00+00 BC"),
            Value::from("-0043-03-15T12:00:00.000000Z")
        );
        assert_eq!(parse(1266, -1, "10:15:30.5+02"), Value::from("08:15:30.5Z"));
        assert_eq!(parse(1266, -1, "01:00:00-03:30"), Value::from("04:30:00Z"));
        assert_eq!(parse(1266, -1, "00:30:00+01"), Value::from("23:30:00Z"));
        // One month is 30.4375 days in Debezium's numeric mode.
        assert_eq!(parse(1186, -1, "P1M"), Value::Int64(2_629_800_000_000));
        assert_eq!(parse(1186, -1, "P1DT-1H"), Value::Int64(82_800_000_000));
        assert_eq!(parse(1186, -1, "PT0.5S"), Value::Int64(500_000));
    }

    #[test]
    fn text_and_binary() {
        assert_eq!(
            parse(17, -1, "\\x00ff10"),
            Value::Bytes(Bytes::from_static(&[0, 0xff, 0x10]))
        );
        assert_eq!(
            parse(2950, -1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            Value::from("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        );
        let modes = TypeModes::default();
        let named = |oid, name: &str| PgType::Base {
            oid,
            name: name.to_owned(),
        };
        let (_, s) = column_type(&named(3802, "jsonb"), -1, &modes);
        assert_eq!(s.build().name(), Some("io.debezium.data.Json"));
        let (_, s) = column_type(&named(99999, "ltree_x"), -1, &modes);
        assert_eq!(
            s.build().parameter("__debezium.source.column.type"),
            Some("LTREE_X")
        );
        let e = column_type(&PgType::builtin(23), -1, &modes)
            .0
            .parse(Bytes::from_static(b"x1"))
            .unwrap_err();
        assert!(e.contains("int4"), "{e}");
    }

    fn parse_with(ty: PgType, typmod: i32, modes: TypeModes, text: &str) -> Value {
        column_type(&ty, typmod, &modes)
            .0
            .parse(Bytes::copy_from_slice(text.as_bytes()))
            .unwrap()
    }

    #[test]
    fn arrays_enums_bits_points() {
        let modes = TypeModes::default();
        let ints = PgType::Array(Box::new(PgType::builtin(23)));
        assert_eq!(
            parse_with(ints.clone(), -1, modes, "{1,NULL,-3}"),
            Value::Array(vec![Value::Int32(1), Value::Null, Value::Int32(-3)])
        );
        assert_eq!(
            parse_with(ints.clone(), -1, modes, "{}"),
            Value::Array(vec![])
        );
        assert_eq!(
            parse_with(ints.clone(), -1, modes, "[0:1]={7,8}"),
            Value::Array(vec![Value::Int32(7), Value::Int32(8)])
        );
        let texts = PgType::Array(Box::new(PgType::builtin(25)));
        assert_eq!(
            parse_with(
                texts.clone(),
                -1,
                modes,
                r#"{plain,"a, b","q\"x\\",NULL,"NULL"}"#
            ),
            Value::Array(vec![
                Value::from("plain"),
                Value::from("a, b"),
                Value::from("q\"x\\"),
                Value::Null,
                Value::from("NULL"),
            ])
        );
        let err = column_type(&ints, -1, &modes)
            .0
            .parse(Bytes::from_static(b"{{1,2},{3,4}}"))
            .unwrap_err();
        assert!(err.contains("multi-dimensional"), "{err}");
        let mood = PgType::Enum {
            labels: vec!["sad".into(), "ok".into()],
        };
        let schema = column_type(&mood, -1, &modes).1.build();
        assert_eq!(schema.name(), Some("io.debezium.data.Enum"));
        assert_eq!(schema.parameter("allowed"), Some("sad,ok"));
        // bit(1) is a boolean, wider bit strings little-endian bytes sized by the highest set bit.
        assert_eq!(parse(1560, 1, "1"), Value::Boolean(true));
        assert_eq!(
            parse(1560, 10, "0000000101"),
            Value::Bytes(Bytes::from_static(&[5]))
        );
        assert_eq!(
            parse(1562, -1, "100000000"),
            Value::Bytes(Bytes::from_static(&[0, 1]))
        );
        assert_eq!(parse(1562, 8, "00000000"), Value::Bytes(Bytes::new()));
        let Value::Struct(p) = parse(600, -1, "(1.5,-2)") else {
            panic!()
        };
        assert_eq!(p.get("x"), Some(&Value::Float64(1.5)));
        assert_eq!(p.get("y"), Some(&Value::Float64(-2.0)));
        let Some(Value::Bytes(wkb)) = p.get("wkb") else {
            panic!()
        };
        assert_eq!(wkb.len(), 21);
        assert_eq!(&wkb[..5], &[1, 1, 0, 0, 0]);
        assert_eq!(f64::from_le_bytes(wkb[5..13].try_into().unwrap()), 1.5);
    }

    #[test]
    fn hstore_follows_java_hashmap_order() {
        // The order java.util.HashMap iterates these keys (checked with a JVM).
        let keys = [
            "zeta", "a", "key 1", "b", "Ωmega", "c10", "c2", "x", "y", "z", "aa", "bb", "cc", "dd",
        ];
        let order: Vec<&str> = java_hashmap_order(keys.iter().copied())
            .into_iter()
            .map(|i| keys[i])
            .collect();
        assert_eq!(
            order.join("|"),
            "zeta|aa|bb|cc|dd|a|b|key 1|c10|c2|x|y|z|Ωmega"
        );
        let hstore = PgType::Base {
            oid: 16_000,
            name: "hstore".into(),
        };
        let text = r#""b"=>"2", "a"=>NULL, "q\"k"=>"v\\""#;
        assert_eq!(
            parse_with(hstore.clone(), -1, TypeModes::default(), text),
            Value::from(r#"{"a":null,"b":"2","q\"k":"v\\"}"#)
        );
        let map = TypeModes {
            hstore: HstoreMode::Map,
            ..TypeModes::default()
        };
        assert_eq!(
            parse_with(hstore, -1, map, r#""k"=>"v""#),
            Value::Map(vec![(Value::from("k"), Value::from("v"))])
        );
    }

    #[test]
    fn handling_modes_and_infinity() {
        let modes = |decimal, binary, interval, time| TypeModes {
            decimal,
            binary,
            interval,
            time,
            ..TypeModes::default()
        };
        let m = modes(
            DecimalMode::Double,
            BinaryMode::Base64,
            IntervalMode::String,
            TimePrecisionMode::Connect,
        );
        let num = PgType::builtin(1700);
        assert_eq!(parse_with(num.clone(), -1, m, "1.25"), Value::Float64(1.25));
        assert!(matches!(parse_with(num.clone(), -1, m, "NaN"), Value::Float64(v) if v.is_nan()));
        assert_eq!(
            parse_with(PgType::builtin(17), -1, m, "\\x00ff"),
            Value::from("AP8=")
        );
        assert_eq!(
            parse_with(PgType::builtin(1186), -1, m, "P1Y2M3DT4H5M6.500S"),
            Value::from("P1Y2M3DT4H5M6.5S")
        );
        assert_eq!(
            parse_with(PgType::builtin(1186), -1, m, "PT-1H"),
            Value::from("P0Y0M0DT-1H0M0S")
        );
        assert_eq!(
            parse_with(PgType::builtin(1186), -1, m, "P10D"),
            Value::from("P0Y0M10DT0H0M0S")
        );
        let time = column_type(&PgType::builtin(1083), -1, &m);
        assert_eq!(time.1.build().name(), Some(logical::TIME));
        assert_eq!(
            parse_with(PgType::builtin(1114), -1, m, "1970-01-01 00:00:01.999999"),
            Value::Int64(1999)
        );
        let s = modes(
            DecimalMode::String,
            BinaryMode::Hex,
            IntervalMode::Numeric,
            TimePrecisionMode::AdaptiveTimeMicroseconds,
        );
        assert_eq!(
            parse_with(num.clone(), -1, s, "-0.50"),
            Value::from("-0.50")
        );
        assert_eq!(parse_with(num, -1, s, "NaN"), Value::from("NaN"));
        assert_eq!(
            parse_with(PgType::builtin(790), -1, s, "$1,234.50"),
            Value::from("1234.50")
        );
        assert_eq!(
            parse_with(PgType::builtin(17), -1, s, "\\x00ff"),
            Value::from("00ff")
        );
        assert_eq!(
            parse_with(PgType::builtin(1083), 0, s, "00:00:01"),
            Value::Int64(1_000_000)
        );
        let url = modes(
            DecimalMode::Precise,
            BinaryMode::Base64UrlSafe,
            IntervalMode::Numeric,
            TimePrecisionMode::Adaptive,
        );
        assert_eq!(
            parse_with(PgType::builtin(17), -1, url, "\\xfbff"),
            Value::from("-_8=")
        );
        // Variable-scale decimals lose trailing fraction zeros, as in Debezium.
        let Value::Struct(v) = parse(1700, -1, "1.500") else {
            panic!()
        };
        assert_eq!(v.get("scale"), Some(&Value::Int32(1)));
        assert_eq!(v.get("value"), Some(&Value::decimal(15)));
        // Infinities as Debezium 3.6 streams them (observed with its embedded engine).
        assert_eq!(parse(1082, -1, "infinity"), Value::Int32(-2_147_472_692));
        assert_eq!(parse(1082, -1, "-infinity"), Value::Int32(-2_147_472_691));
        assert_eq!(
            parse(1114, -1, "infinity"),
            Value::Int64(-9_223_372_036_832_400_000)
        );
        assert_eq!(
            parse(1114, 3, "-infinity"),
            Value::Int64(-9_223_372_036_832_400)
        );
        // timestamptz keeps exactly the column's fraction digits.
        assert_eq!(
            parse(1184, 3, "2024-03-05 13:45:10.5+00"),
            Value::from("2024-03-05T13:45:10.500Z")
        );
        assert_eq!(
            parse(1184, 0, "2024-03-05 13:45:10+00"),
            Value::from("2024-03-05T13:45:10Z")
        );
    }
}
