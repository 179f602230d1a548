//! JSON as Kafka's `JsonConverter` (used by Debezium 3.6) writes it: `{"schema":..,"payload":..}`
//! with schemas enabled, the bare payload without; field order from the schema; bytes and
//! Decimal as base64; doubles as Java's `Double.toString`; NaN and infinities quoted;
//! strings escaped as Jackson escapes them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::Value as Json;

use super::{conversion_error, Converter};
use crate::error::Error;
use crate::schema::{logical, Schema, SchemaBuilder, SchemaType};
use crate::value::{Struct, Value};

/// Schemas parsed from messages, by their JSON text (Kafka's `schemas.cache.size`).
const SCHEMA_CACHE_SIZE: usize = 1000;

/// Kafka's `JsonConverter`. `schemas.enable` defaults to true, as in Kafka.
///
/// Reading keeps the schemas it parsed (up to 1000, Kafka's `schemas.cache.size`): the
/// messages of a topic repeat the same schema text, which is then parsed once.
#[derive(Debug, Clone)]
pub struct JsonConverter {
    schemas_enable: bool,
    schema_cache: Arc<Mutex<HashMap<Box<str>, Arc<Schema>>>>,
}

impl Default for JsonConverter {
    fn default() -> Self {
        JsonConverter::new(true)
    }
}

/// A message with schemas enabled, the schema left as text (it is looked up in the cache
/// before it is parsed).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    schema: &'a RawValue,
    #[serde(borrow)]
    payload: &'a RawValue,
}

impl JsonConverter {
    /// A converter with `schemas.enable` set as given.
    pub fn new(schemas_enable: bool) -> Self {
        JsonConverter {
            schemas_enable,
            schema_cache: Arc::default(),
        }
    }

    /// The schema of this text, parsed once.
    fn cached_schema(&self, topic: &str, text: &RawValue) -> Result<Arc<Schema>, Error> {
        let mut cache = self.schema_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(schema) = cache.get(text.get()) {
            return Ok(schema.clone());
        }
        let json: Json = serde_json::from_str(text.get())
            .map_err(|e| conversion_error(topic, format!("invalid JSON: {e}")))?;
        let schema = parse_schema(topic, &json)?;
        if cache.len() >= SCHEMA_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(text.get().into(), schema.clone());
        Ok(schema)
    }

    /// Whether the schema is embedded in every message.
    pub fn schemas_enabled(&self) -> bool {
        self.schemas_enable
    }
}

impl Converter for JsonConverter {
    fn serialize(
        &self,
        _topic: &str,
        schema: Option<&Arc<Schema>>,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<bool, Error> {
        // Kafka: a null schema with a null value is a null message (tombstones).
        if schema.is_none() && value.is_null() {
            return Ok(false);
        }
        if self.schemas_enable {
            out.extend_from_slice(b"{\"schema\":");
            match schema {
                Some(s) => out.extend_from_slice(s.json().as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"payload\":");
            write_value(out, schema.map(|s| &**s), value);
            out.push(b'}');
        } else {
            write_value(out, schema.map(|s| &**s), value);
        }
        Ok(true)
    }

    fn deserialize(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Arc<Schema>>, Value), Error> {
        let Some(bytes) = bytes else {
            return Ok((None, Value::Null));
        };
        if self.schemas_enable {
            // The common shape first; anything else takes the checks below, which name
            // what is wrong.
            if let Ok(envelope) = serde_json::from_slice::<Envelope<'_>>(bytes) {
                let payload: Json = serde_json::from_str(envelope.payload.get())
                    .map_err(|e| conversion_error(topic, format!("invalid JSON: {e}")))?;
                if envelope.schema.get() == "null" {
                    return Ok((None, schemaless_value(&payload)));
                }
                let schema = self.cached_schema(topic, envelope.schema)?;
                let value = typed_value(topic, &schema, &payload)?;
                return Ok((Some(schema), value));
            }
        }
        let doc: Json = serde_json::from_slice(bytes)
            .map_err(|e| conversion_error(topic, format!("invalid JSON: {e}")))?;
        if !self.schemas_enable {
            return Ok((None, schemaless_value(&doc)));
        }
        let Json::Object(mut envelope) = doc else {
            return Err(conversion_error(
                topic,
                "with schemas.enable=true the message must be an object with `schema` and `payload`",
            ));
        };
        if envelope.len() != 2
            || !envelope.contains_key("schema")
            || !envelope.contains_key("payload")
        {
            return Err(conversion_error(
                topic,
                "with schemas.enable=true the message must have exactly `schema` and `payload`",
            ));
        }
        let payload = envelope.remove("payload").unwrap_or(Json::Null);
        match envelope.remove("schema").unwrap_or(Json::Null) {
            Json::Null => Ok((None, schemaless_value(&payload))),
            schema_json => {
                let schema = parse_schema(topic, &schema_json)?;
                let value = typed_value(topic, &schema, &payload)?;
                Ok((Some(schema), value))
            }
        }
    }
}

/// Bytes that need escaping in JSON strings, and how Jackson escapes them
/// (0 = none, b'u' = `\u00XX` with upper-case hex).
static ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Appends a JSON string literal, escaped as Jackson escapes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPES[b as usize];
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if esc == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', esc]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .expect("buffer sized for base64");
    out.truncate(start + written);
    out.push(b'"');
}

/// Appends a double as Java's `Double.toString` (what Jackson writes), e.g. `1.0`,
/// `1.0E20`, `1.5E-4`; NaN and infinities as quoted strings.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        out.extend_from_slice(non_finite(v.is_nan(), v > 0.0));
        return;
    }
    let mut buf = ryu::Buffer::new();
    write_java_decimal(out, buf.format_finite(v), || format!("{v:.1e}"));
}

/// Appends a float as Java's `Float.toString`.
pub fn write_f32(out: &mut Vec<u8>, v: f32) {
    if !v.is_finite() {
        out.extend_from_slice(non_finite(v.is_nan(), v > 0.0));
        return;
    }
    let mut buf = ryu::Buffer::new();
    write_java_decimal(out, buf.format_finite(v), || format!("{v:.1e}"));
}

fn non_finite(nan: bool, positive: bool) -> &'static [u8] {
    if nan {
        b"\"NaN\""
    } else if positive {
        b"\"Infinity\""
    } else {
        b"\"-Infinity\""
    }
}

/// Re-lays ryu's shortest digits out as Java does: plain notation for 1e-3 <= |v| < 1e7,
/// otherwise `d.dddE±n`, always with a digit after the point. Where the shortest form has a
/// single digit but Java must print two (`d.dE±n`), Java prints the two digits closest to
/// the exact value (`4.9E-324`, not `5.0E-324`): `two_digits` gives them, correctly rounded.
fn write_java_decimal(out: &mut Vec<u8>, ryu_text: &str, two_digits: impl FnOnce() -> String) {
    let (negative, text) = match ryu_text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, ryu_text),
    };
    let (mantissa, exp) = match text.find('e') {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let mut digits = [0u8; 32];
    let mut n = 0;
    let mut point = None;
    for &b in mantissa.as_bytes() {
        if b == b'.' {
            point = Some(n);
        } else {
            digits[n] = b;
            n += 1;
        }
    }
    // value = 0.d1d2..dn × 10^(point + exp) with leading zeros stripped.
    let mut point = point.unwrap_or(n) as i32 + exp;
    let mut first = 0;
    while first < n - 1 && digits[first] == b'0' {
        first += 1;
        point -= 1;
    }
    let mut last = n;
    while last > first + 1 && digits[last - 1] == b'0' {
        last -= 1;
    }
    let digits = &digits[first..last];
    if negative {
        out.push(b'-');
    }
    if digits == b"0" {
        out.extend_from_slice(b"0.0");
        return;
    }
    // Plain notation iff 1e-3 <= |v| < 1e7, i.e. -2 <= point <= 7.
    if (-2..=7).contains(&point) {
        if point <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-point) as usize));
            out.extend_from_slice(digits);
        } else {
            let p = point as usize;
            if digits.len() <= p {
                out.extend_from_slice(digits);
                out.extend(std::iter::repeat_n(b'0', p - digits.len()));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..p]);
                out.push(b'.');
                out.extend_from_slice(&digits[p..]);
            }
        }
    } else if digits.len() == 1 {
        // Rust's `{:.1e}` is "d.de±n", correctly rounded from the exact value.
        let precise = two_digits();
        let precise = precise.trim_start_matches('-');
        let (mantissa, exp) = precise.split_once('e').unwrap_or((precise, "0"));
        out.extend_from_slice(mantissa.as_bytes());
        out.push(b'E');
        out.extend_from_slice(exp.as_bytes());
    } else {
        out.push(digits[0]);
        out.push(b'.');
        out.extend_from_slice(&digits[1..]);
        out.push(b'E');
        let mut b = itoa::Buffer::new();
        out.extend_from_slice(b.format(point - 1).as_bytes());
    }
}

fn write_int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// Appends a value's JSON payload form, following `schema` where given. A null whose
/// schema has a default is written as the default, as Kafka's `JsonConverter` does
/// (`replace.null.with.default=true`, its default).
pub fn write_value(out: &mut Vec<u8>, schema: Option<&Schema>, value: &Value) {
    match value {
        Value::Null => match schema.and_then(Schema::default_value) {
            Some(default) if !default.is_null() => write_value(out, schema, default),
            _ => out.extend_from_slice(b"null"),
        },
        Value::Boolean(true) => out.extend_from_slice(b"true"),
        Value::Boolean(false) => out.extend_from_slice(b"false"),
        Value::Int8(v) => write_int(out, *v),
        Value::Int16(v) => write_int(out, *v),
        Value::Int32(v) => write_int(out, *v),
        Value::Int64(v) => write_int(out, *v),
        Value::Float32(v) => write_f32(out, *v),
        Value::Float64(v) => write_f64(out, *v),
        Value::String(s) => write_str(out, s),
        // Decimal (BASE64 format, Kafka's default) and plain bytes are both base64.
        Value::Bytes(b) => write_base64(out, b),
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.value_schema()).map(|s| &**s);
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item_schema, item);
            }
            out.push(b']');
        }
        Value::Map(pairs) => {
            let key_schema = schema.and_then(|s| s.key_schema()).map(|s| &**s);
            let value_schema = schema.and_then(|s| s.value_schema()).map(|s| &**s);
            let string_keys = match key_schema {
                Some(k) => k.schema_type() == SchemaType::String,
                None => pairs.iter().all(|(k, _)| matches!(k, Value::String(_))),
            };
            if string_keys {
                out.push(b'{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, k.as_str().unwrap_or_default());
                    out.push(b':');
                    write_value(out, value_schema, v);
                }
                out.push(b'}');
            } else {
                out.push(b'[');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'[');
                    write_value(out, key_schema, k);
                    out.push(b',');
                    write_value(out, value_schema, v);
                    out.push(b']');
                }
                out.push(b']');
            }
        }
        Value::Struct(s) => write_struct(out, s),
    }
}

fn write_struct(out: &mut Vec<u8>, s: &Struct) {
    write_fields(out, s.schema().fields(), s.values());
}

/// Appends a JSON object of `fields` with these values, in order: a struct's payload, for
/// callers whose values are not gathered in one `Struct`.
pub(crate) fn write_fields<'v>(
    out: &mut Vec<u8>,
    fields: &[crate::schema::Field],
    values: impl IntoIterator<Item = &'v Value>,
) {
    out.push(b'{');
    for (i, (field, v)) in fields.iter().zip(values).enumerate() {
        let key = field.json_key();
        out.extend_from_slice(if i == 0 { &key[1..] } else { key });
        write_value(out, Some(field.schema()), v);
    }
    out.push(b'}');
}

fn schemaless_value(doc: &Json) -> Value {
    match doc {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int64(i),
            None => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::string(s),
        Json::Array(items) => Value::Array(items.iter().map(schemaless_value).collect()),
        Json::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| (Value::string(k), schemaless_value(v)))
                .collect(),
        ),
    }
}

/// Parses a JSON schema as `JsonConverter.asConnectSchema` does.
pub fn parse_schema(topic: &str, json: &Json) -> Result<Arc<Schema>, Error> {
    let obj = json
        .as_object()
        .ok_or_else(|| conversion_error(topic, "schema must be a JSON object"))?;
    let type_name = obj
        .get("type")
        .and_then(Json::as_str)
        .ok_or_else(|| conversion_error(topic, "schema has no `type`"))?;
    let ty = SchemaType::from_json_name(type_name)
        .ok_or_else(|| conversion_error(topic, format!("unknown schema type `{type_name}`")))?;
    let sub = |key: &str| -> Result<Arc<Schema>, Error> {
        let j = obj
            .get(key)
            .ok_or_else(|| conversion_error(topic, format!("{type_name} schema has no `{key}`")))?;
        parse_schema(topic, j)
    };
    let mut b: SchemaBuilder =
        match ty {
            SchemaType::Array => Schema::array_builder(sub("items")?),
            SchemaType::Map => Schema::map_builder(sub("keys")?, sub("values")?),
            SchemaType::Struct => {
                let mut b = Schema::struct_builder();
                let fields = obj.get("fields").and_then(Json::as_array).ok_or_else(|| {
                    conversion_error(topic, "struct schema has no `fields` array")
                })?;
                for f in fields {
                    let name = f.get("field").and_then(Json::as_str).ok_or_else(|| {
                        conversion_error(topic, "struct field has no `field` name")
                    })?;
                    b = b.field(name, parse_schema(topic, f)?);
                }
                b
            }
            _ => Schema::builder(ty),
        };
    if obj.get("optional").and_then(Json::as_bool).unwrap_or(false) {
        b = b.optional();
    }
    if let Some(name) = obj.get("name").and_then(Json::as_str) {
        b = b.name(name);
    }
    if let Some(v) = obj.get("version").and_then(Json::as_i64) {
        b = b.version(v as i32);
    }
    if let Some(doc) = obj.get("doc").and_then(Json::as_str) {
        b = b.doc(doc);
    }
    if let Some(params) = obj.get("parameters").and_then(Json::as_object) {
        for (k, v) in params {
            b = b.parameter(k.as_str(), v.as_str().unwrap_or_default());
        }
    }
    let without_default = b.clone().build();
    if let Some(default) = obj.get("default") {
        b = b.default_value(typed_value(topic, &without_default, default)?);
        return Ok(b.build());
    }
    Ok(without_default)
}

fn typed_value(topic: &str, schema: &Arc<Schema>, j: &Json) -> Result<Value, Error> {
    let mismatch = || {
        conversion_error(
            topic,
            format!(
                "JSON value `{j}` does not match schema type `{}`",
                schema.schema_type().json_name()
            ),
        )
    };
    if j.is_null() {
        return match schema.default_value() {
            Some(d) => Ok(d.clone()),
            None if schema.is_optional() => Ok(Value::Null),
            None => Err(conversion_error(
                topic,
                "null for a required schema without default",
            )),
        };
    }
    let int = || j.as_i64().ok_or_else(mismatch);
    Ok(match schema.schema_type() {
        SchemaType::Boolean => Value::Boolean(j.as_bool().ok_or_else(mismatch)?),
        SchemaType::Int8 => Value::Int8(i8::try_from(int()?).map_err(|_| mismatch())?),
        SchemaType::Int16 => Value::Int16(i16::try_from(int()?).map_err(|_| mismatch())?),
        SchemaType::Int32 => Value::Int32(i32::try_from(int()?).map_err(|_| mismatch())?),
        SchemaType::Int64 => Value::Int64(int()?),
        SchemaType::Float32 => Value::Float32(json_float(j).ok_or_else(mismatch)? as f32),
        SchemaType::Float64 => Value::Float64(json_float(j).ok_or_else(mismatch)?),
        SchemaType::String => Value::string(j.as_str().ok_or_else(mismatch)?),
        SchemaType::Bytes => {
            let text = j.as_str().ok_or_else(mismatch)?;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| conversion_error(topic, format!("invalid base64: {e}")))?;
            if schema.name() == Some(logical::DECIMAL) && raw.is_empty() {
                return Err(conversion_error(topic, "empty Decimal bytes"));
            }
            Value::Bytes(Bytes::from(raw))
        }
        SchemaType::Array => {
            let items_schema = schema.value_schema().expect("array schema has items");
            let items = j.as_array().ok_or_else(mismatch)?;
            Value::Array(
                items
                    .iter()
                    .map(|i| typed_value(topic, items_schema, i))
                    .collect::<Result<_, _>>()?,
            )
        }
        SchemaType::Map => {
            let ks = schema.key_schema().expect("map schema has keys");
            let vs = schema.value_schema().expect("map schema has values");
            match j {
                Json::Object(m) if ks.schema_type() == SchemaType::String => Value::Map(
                    m.iter()
                        .map(|(k, v)| Ok((Value::string(k), typed_value(topic, vs, v)?)))
                        .collect::<Result<_, Error>>()?,
                ),
                Json::Array(pairs) => Value::Map(
                    pairs
                        .iter()
                        .map(|p| match p.as_array().map(Vec::as_slice) {
                            Some([k, v]) => {
                                Ok((typed_value(topic, ks, k)?, typed_value(topic, vs, v)?))
                            }
                            _ => Err(mismatch()),
                        })
                        .collect::<Result<_, Error>>()?,
                ),
                _ => return Err(mismatch()),
            }
        }
        SchemaType::Struct => {
            let obj = j.as_object().ok_or_else(mismatch)?;
            let values = schema
                .fields()
                .iter()
                .map(|f| typed_value(topic, f.schema(), obj.get(f.name()).unwrap_or(&Json::Null)))
                .collect::<Result<Vec<_>, _>>()?;
            Value::Struct(Struct::new(schema.clone(), values).expect("one value per field"))
        }
    })
}

fn json_float(j: &Json) -> Option<f64> {
    match j {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f64_text(v: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn doubles_are_written_as_java_does() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (100.0, "100.0"),
            (123.456, "123.456"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (1234567.0, "1234567.0"),
            (12345678.0, "1.2345678E7"),
            (1e20, "1.0E20"),
            (-2.5e-7, "-2.5E-7"),
            (f64::MAX, "1.7976931348623157E308"),
            (5e-324, "4.9E-324"),
            (f64::NAN, "\"NaN\""),
            (f64::NEG_INFINITY, "\"-Infinity\""),
        ];
        for (v, want) in cases {
            assert_eq!(&f64_text(*v), want, "for {v:e}");
        }
        let mut out = Vec::new();
        write_f32(&mut out, 0.1f32);
        assert_eq!(out, b"0.1");
    }

    #[test]
    fn strings_are_escaped_as_jackson_does() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}é/\u{7f}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\nd\\u0001é/\u{7f}\""
        );
    }

    #[test]
    fn round_trip_with_schemas() {
        let schema = Schema::struct_builder()
            .name("t.Value")
            .field("id", Schema::required(SchemaType::Int64))
            .field(
                "price",
                Schema::builder(SchemaType::Bytes)
                    .name(logical::DECIMAL)
                    .version(1)
                    .parameter("scale", "2")
                    .optional()
                    .build(),
            )
            .field(
                "tags",
                Schema::array_builder(Schema::required(SchemaType::String))
                    .optional()
                    .build(),
            )
            .field("ratio", Schema::optional(SchemaType::Float64))
            .build();
        let value = Value::Struct(
            Struct::new(
                schema.clone(),
                vec![
                    Value::Int64(7),
                    Value::decimal(12345),
                    Value::Array(vec![Value::string("x")]),
                    Value::Float64(0.5),
                ],
            )
            .unwrap(),
        );
        let conv = JsonConverter::default();
        let mut out = Vec::new();
        assert!(conv
            .serialize("t", Some(&schema), &value, &mut out)
            .unwrap());
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.ends_with(r#""payload":{"id":7,"price":"MDk=","tags":["x"],"ratio":0.5}}"#),
            "{text}"
        );
        let (s2, v2) = conv.deserialize("t", Some(&out)).unwrap();
        assert_eq!(s2.as_deref(), Some(&*schema));
        assert_eq!(v2, value);
        // The same schema text again: parsed once, the cached schema shared.
        let (s3, v3) = conv.deserialize("t", Some(&out)).unwrap();
        assert!(Arc::ptr_eq(s2.as_ref().unwrap(), s3.as_ref().unwrap()));
        assert_eq!(v3, value);
        // A third key is refused, as before the cache.
        let mut extra = out[..out.len() - 1].to_vec();
        extra.extend_from_slice(br#","x":1}"#);
        let e = conv.deserialize("t", Some(&extra)).unwrap_err().to_string();
        assert!(e.contains("exactly `schema` and `payload`"), "{e}");
    }

    #[test]
    fn null_fields_with_a_default_are_written_as_the_default() {
        // Kafka's JsonConverter (replace.null.with.default=true) writes the default.
        let schema = Schema::struct_builder()
            .field(
                "a",
                Schema::builder(SchemaType::String)
                    .optional()
                    .default_value(Value::string("dflt"))
                    .build(),
            )
            .field("b", Schema::optional(SchemaType::String))
            .build();
        let value =
            Value::Struct(Struct::new(schema.clone(), vec![Value::Null, Value::Null]).unwrap());
        let mut out = Vec::new();
        write_value(&mut out, Some(&schema), &value);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":"dflt","b":null}"#);
    }

    #[test]
    fn tombstone_is_a_null_message_and_schemaless_is_bare() {
        let conv = JsonConverter::default();
        let mut out = Vec::new();
        assert!(!conv.serialize("t", None, &Value::Null, &mut out).unwrap());
        assert!(out.is_empty());
        let bare = JsonConverter::new(false);
        bare.serialize(
            "t",
            None,
            &Value::Map(vec![(Value::string("k"), Value::Int32(1))]),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, br#"{"k":1}"#);
    }

    #[test]
    fn deserialize_rejects_malformed_input_with_topic() {
        let conv = JsonConverter::default();
        let e = conv
            .deserialize("orders", Some(b"{oops"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("orders"), "{e}");
        let e = conv
            .deserialize("orders", Some(b"{\"payload\":1}"))
            .unwrap_err();
        assert!(e.to_string().contains("schema"), "{e}");
    }
}
