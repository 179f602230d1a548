//! PostgreSQL types → Debezium's schemas and values, from PostgreSQL's text output (as
//! pgoutput and text-mode queries deliver it). Sessions run with `DateStyle=ISO`,
//! `IntervalStyle=iso_8601`, `TimeZone=UTC`, `extra_float_digits=3`, so the text forms
//! parsed here are fixed.
//!
//! Defaults as Debezium's: `decimal.handling.mode=precise`, `time.precision.mode=adaptive`,
//! `binary.handling.mode=bytes`, `interval.handling.mode=numeric`. Types not mapped yet
//! become strings with the type named in the schema's `__debezium.source.column.type`
//! parameter, never a crash.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use connect_core::schema::logical;
use connect_core::{Schema, SchemaBuilder, SchemaType, Struct, Value};

/// Session settings that fix the text formats parsed here.
pub const SESSION_OPTIONS: &str =
    "-c datestyle=ISO,YMD -c intervalstyle=iso_8601 -c timezone=UTC -c extra_float_digits=3 -c lc_monetary=C";

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// How a column's text is turned into a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// numeric(p,s): Kafka Decimal with a fixed scale; NaN/Infinity → null.
    Decimal {
        /// The column's scale.
        scale: u32,
    },
    /// Unconstrained numeric: Debezium's VariableScaleDecimal struct.
    VariableDecimal,
    /// money (scale 2 with `lc_monetary=C`).
    Money,
    /// Text of any kind (text, varchar, char, json, uuid, xml, inet, unknown types...).
    Text,
    /// bytea (`\x` hex text).
    Bytea,
    /// date → days since the epoch.
    Date,
    /// time(p ≤ 3) → milliseconds since midnight.
    TimeMillis,
    /// time(p > 3) → microseconds since midnight.
    TimeMicros,
    /// timestamp(p ≤ 3) → milliseconds since the epoch.
    TimestampMillis,
    /// timestamp(p > 3) → microseconds since the epoch.
    TimestampMicros,
    /// timestamptz → ISO-8601 UTC string with 6 fraction digits.
    TimestampTz,
    /// timetz → UTC time, fraction without trailing zeros (`08:15:30.5Z`).
    TimeTz,
    /// interval → microseconds (a month is 30.4375 days).
    Interval,
}

/// The schema and codec of a column of type `oid` with modifier `typmod`.
pub fn column_type(oid: u32, typmod: i32, type_name: &str) -> (Codec, SchemaBuilder) {
    let named = |ty, name: &str| Schema::builder(ty).name(name).version(1);
    match oid {
        16 => (Codec::Bool, Schema::builder(SchemaType::Boolean)),
        21 => (Codec::Int16, Schema::builder(SchemaType::Int16)),
        23 => (Codec::Int32, Schema::builder(SchemaType::Int32)),
        20 | 26 => (Codec::Int64, Schema::builder(SchemaType::Int64)),
        700 => (Codec::Float32, Schema::builder(SchemaType::Float32)),
        701 => (Codec::Float64, Schema::builder(SchemaType::Float64)),
        1700 if typmod >= 4 => {
            let precision = ((typmod - 4) >> 16) & 0xffff;
            let scale = ((typmod - 4) & 0xffff) as u32;
            (
                Codec::Decimal { scale },
                Schema::builder(SchemaType::Bytes)
                    .name(logical::DECIMAL)
                    .version(1)
                    .parameter("scale", scale.to_string())
                    .parameter("connect.decimal.precision", precision.to_string()),
            )
        }
        1700 => (
            Codec::VariableDecimal,
            variable_scale_decimal().to_builder(),
        ),
        790 => (
            Codec::Money,
            Schema::builder(SchemaType::Bytes)
                .name(logical::DECIMAL)
                .version(1)
                .parameter("scale", "2"),
        ),
        17 => (Codec::Bytea, Schema::builder(SchemaType::Bytes)),
        1082 => (
            Codec::Date,
            named(SchemaType::Int32, "io.debezium.time.Date"),
        ),
        1083 => {
            if precision_of(typmod) <= 3 {
                (
                    Codec::TimeMillis,
                    named(SchemaType::Int32, "io.debezium.time.Time"),
                )
            } else {
                (
                    Codec::TimeMicros,
                    named(SchemaType::Int64, "io.debezium.time.MicroTime"),
                )
            }
        }
        1114 => {
            if precision_of(typmod) <= 3 {
                (
                    Codec::TimestampMillis,
                    named(SchemaType::Int64, "io.debezium.time.Timestamp"),
                )
            } else {
                (
                    Codec::TimestampMicros,
                    named(SchemaType::Int64, "io.debezium.time.MicroTimestamp"),
                )
            }
        }
        1184 => (
            Codec::TimestampTz,
            named(SchemaType::String, "io.debezium.time.ZonedTimestamp"),
        ),
        1266 => (
            Codec::TimeTz,
            named(SchemaType::String, "io.debezium.time.ZonedTime"),
        ),
        1186 => (
            Codec::Interval,
            named(SchemaType::Int64, "io.debezium.time.MicroDuration"),
        ),
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
        18 | 19 | 25 | 1042 | 1043 | 869 | 650 | 829 | 774 => {
            (Codec::Text, Schema::builder(SchemaType::String))
        }
        _ => (
            Codec::Text,
            Schema::builder(SchemaType::String)
                .parameter("__debezium.source.column.type", type_name.to_uppercase()),
        ),
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

impl Codec {
    /// Parses PostgreSQL's text form. Errors say what was expected.
    pub fn parse(self, text: Bytes) -> Result<Value, String> {
        let s = std::str::from_utf8(&text).map_err(|_| "not UTF-8".to_owned())?;
        let bad = |what: &str| format!("invalid {what} `{s}`");
        Ok(match self {
            Codec::Text => Value::string_from_bytes(text.clone()).map_err(|_| bad("text"))?,
            Codec::Bool => Value::Boolean(match s {
                "t" => true,
                "f" => false,
                _ => return Err(bad("boolean")),
            }),
            Codec::Int16 => Value::Int16(s.parse().map_err(|_| bad("int2"))?),
            Codec::Int32 => Value::Int32(s.parse().map_err(|_| bad("int4"))?),
            Codec::Int64 => Value::Int64(s.parse().map_err(|_| bad("int8"))?),
            Codec::Float32 => Value::Float32(s.parse().map_err(|_| bad("float4"))?),
            Codec::Float64 => Value::Float64(s.parse().map_err(|_| bad("float8"))?),
            Codec::Decimal { scale } => match s {
                "NaN" | "Infinity" | "-Infinity" => Value::Null,
                _ => {
                    let (unscaled, got_scale) = parse_decimal(s).ok_or_else(|| bad("numeric"))?;
                    Value::Bytes(rescale(unscaled, got_scale, scale).ok_or_else(|| bad("numeric"))?)
                }
            },
            Codec::VariableDecimal => match s {
                "NaN" | "Infinity" | "-Infinity" => Value::Null,
                _ => {
                    let (unscaled, scale) = parse_decimal(s).ok_or_else(|| bad("numeric"))?;
                    Value::Struct(
                        Struct::new(
                            variable_scale_decimal().clone(),
                            vec![Value::Int32(scale as i32), Value::Bytes(unscaled)],
                        )
                        .map_err(|e| e.to_string())?,
                    )
                }
            },
            Codec::Money => {
                let cleaned: String = s.chars().filter(|c| !matches!(c, '$' | ',')).collect();
                let (unscaled, got) = parse_decimal(&cleaned).ok_or_else(|| bad("money"))?;
                Value::Bytes(rescale(unscaled, got, 2).ok_or_else(|| bad("money"))?)
            }
            Codec::Bytea => {
                let hex = s.strip_prefix("\\x").ok_or_else(|| bad("bytea"))?;
                Value::Bytes(Bytes::from(decode_hex(hex).ok_or_else(|| bad("bytea"))?))
            }
            Codec::Date => Value::Int32(parse_date(s).ok_or_else(|| bad("date"))? as i32),
            Codec::TimeMillis => {
                Value::Int32((parse_time(s).ok_or_else(|| bad("time"))? / 1000) as i32)
            }
            Codec::TimeMicros => Value::Int64(parse_time(s).ok_or_else(|| bad("time"))?),
            Codec::TimestampMillis => Value::Int64(
                parse_timestamp(s)
                    .ok_or_else(|| bad("timestamp"))?
                    .div_euclid(1000),
            ),
            Codec::TimestampMicros => {
                Value::Int64(parse_timestamp(s).ok_or_else(|| bad("timestamp"))?)
            }
            Codec::TimestampTz => match s {
                "infinity" | "-infinity" => Value::String(s.into()),
                _ => Value::from(format_utc(
                    parse_timestamptz(s).ok_or_else(|| bad("timestamptz"))?,
                )),
            },
            Codec::Interval => Value::Int64(parse_iso_interval(s).ok_or_else(|| bad("interval"))?),
            Codec::TimeTz => Value::from(parse_timetz(s).ok_or_else(|| bad("timetz"))?),
        })
    }
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

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
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

/// "2024-03-05 13:45:10.5+00" (or "+05:30", "-08") → UTC microseconds since the epoch.
fn parse_timestamptz(s: &str) -> Option<i64> {
    let idx = s.rfind(['+', '-']).filter(|&i| i > 10)?;
    let (local, offset) = s.split_at(idx);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let mut parts = offset[1..].split(':');
    let oh: i64 = parts.next()?.parse().ok()?;
    let om: i64 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    let os: i64 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    let offset_micros = sign * ((oh * 60 + om) * 60 + os) * 1_000_000;
    Some(parse_timestamp(local)? - offset_micros)
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

/// Debezium's ZonedTimestamp text: `2024-03-05T13:45:10.500000Z`.
fn format_utc(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rem = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1_000_000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        rem % 1_000_000
    )
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
        column_type(oid, typmod, "t")
            .0
            .parse(Bytes::copy_from_slice(text.as_bytes()))
            .unwrap()
    }

    fn numeric_typmod(p: i32, s: i32) -> i32 {
        ((p << 16) | s) + 4
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
        let (_, s) = column_type(3802, -1, "jsonb");
        assert_eq!(s.build().name(), Some("io.debezium.data.Json"));
        let (_, s) = column_type(99999, -1, "ltree");
        assert_eq!(
            s.build().parameter("__debezium.source.column.type"),
            Some("LTREE")
        );
        let e = column_type(23, -1, "int4")
            .0
            .parse(Bytes::from_static(b"x1"))
            .unwrap_err();
        assert!(e.contains("int4"), "{e}");
    }
}
