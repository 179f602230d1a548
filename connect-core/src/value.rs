//! Typed values. Strings and bytes are `bytes::Bytes`-backed so a connector can hand out
//! slices of the buffer it received instead of copying every column.

use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;

use crate::schema::Schema;

/// A value of one of Kafka Connect's types. Logical types (Decimal, Date, Timestamp...) are
/// their physical value plus the schema's name, as in Kafka Connect.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// No value (an optional field, a tombstone's value).
    #[default]
    Null,
    /// Boolean.
    Boolean(bool),
    /// int8.
    Int8(i8),
    /// int16.
    Int16(i16),
    /// int32 (also Date, Time).
    Int32(i32),
    /// int64 (also Timestamp, Debezium's MicroTimestamp...).
    Int64(i64),
    /// float.
    Float32(f32),
    /// double.
    Float64(f64),
    /// UTF-8 text; may borrow a received buffer.
    String(ByteString),
    /// Raw bytes (also Decimal's unscaled value); may borrow a received buffer.
    Bytes(Bytes),
    /// An array.
    Array(Vec<Value>),
    /// A map as ordered pairs.
    Map(Vec<(Value, Value)>),
    /// A struct.
    Struct(Struct),
}

impl Value {
    /// A string value, copied from `s`.
    pub fn string(s: &str) -> Value {
        Value::String(ByteString::from(s))
    }

    /// A string value for a name repeated in every event (server, database, schema,
    /// table). Names are interned as `'static` strings, so cloning the value per event
    /// touches no reference count shared with the threads that drop events (one leaked
    /// copy per distinct name, which a process has few of).
    pub fn interned(name: &str) -> Value {
        static NAMES: std::sync::OnceLock<
            std::sync::Mutex<std::collections::HashSet<&'static str>>,
        > = std::sync::OnceLock::new();
        let mut names = NAMES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let name = match names.get(name) {
            Some(known) => *known,
            None => {
                let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
                names.insert(leaked);
                leaked
            }
        };
        Value::static_str(name)
    }

    /// A string value from a `&'static str`, without copying.
    pub fn static_str(s: &'static str) -> Value {
        Value::String(ByteString::from_static(s))
    }

    /// A string value borrowing `bytes` (no copy). Fails when the bytes are not UTF-8.
    pub fn string_from_bytes(bytes: Bytes) -> Result<Value, std::str::Utf8Error> {
        ByteString::try_from(bytes).map(Value::String)
    }

    /// A Decimal's physical value (big-endian two's complement, minimal length) for an
    /// unscaled integer; the scale belongs to the schema (`scale` parameter).
    pub fn decimal(unscaled: i128) -> Value {
        let be = unscaled.to_be_bytes();
        let sign_byte = if unscaled < 0 { 0xff } else { 0x00 };
        // Keep one sign byte: drop leading bytes equal to it while the next keeps the sign.
        let mut start = 0;
        while start < be.len() - 1
            && be[start] == sign_byte
            && (be[start + 1] & 0x80) == (sign_byte & 0x80)
        {
            start += 1;
        }
        Value::Bytes(Bytes::copy_from_slice(&be[start..]))
    }

    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The struct, if this is one.
    pub fn as_struct(&self) -> Option<&Struct> {
        match self {
            Value::Struct(s) => Some(s),
            _ => None,
        }
    }

    /// The integer of any int type, widened.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int8(v) => Some(v.into()),
            Value::Int16(v) => Some(v.into()),
            Value::Int32(v) => Some(v.into()),
            Value::Int64(v) => Some(v),
            _ => None,
        }
    }

    /// An estimate of the memory this value holds, used for byte-bounded batches and queues.
    pub fn size_estimate(&self) -> usize {
        const SLOT: usize = std::mem::size_of::<Value>();
        match self {
            Value::String(s) => SLOT + s.len(),
            Value::Bytes(b) => SLOT + b.len(),
            Value::Array(items) => SLOT + items.iter().map(Value::size_estimate).sum::<usize>(),
            Value::Map(pairs) => {
                SLOT + pairs
                    .iter()
                    .map(|(k, v)| k.size_estimate() + v.size_estimate())
                    .sum::<usize>()
            }
            Value::Struct(s) => SLOT + s.values().iter().map(Value::size_estimate).sum::<usize>(),
            _ => SLOT,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::string(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(ByteString::from(s))
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int32(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int64(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

impl From<Struct> for Value {
    fn from(v: Struct) -> Self {
        Value::Struct(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A struct value: positional field values under a shared schema (one `Vec` per row,
/// never one allocation per column). A struct that many events carry unchanged (a
/// snapshot's `source` block) can be [shared](Struct::shared): cloning it then costs one
/// reference count, not a copy of its values.
#[derive(Clone)]
pub struct Struct(Repr);

#[derive(Clone)]
enum Repr {
    Owned {
        schema: Arc<Schema>,
        values: Vec<Value>,
    },
    Shared(Arc<(Arc<Schema>, Vec<Value>)>),
}

/// A struct whose value count does not match its schema.
#[derive(Debug, thiserror::Error)]
#[error("struct `{schema}` has {expected} fields, got {got} values")]
pub struct StructArityError {
    /// Name of the struct schema (or `<unnamed>`).
    pub schema: String,
    /// Fields in the schema.
    pub expected: usize,
    /// Values given.
    pub got: usize,
}

impl From<StructArityError> for crate::error::Error {
    fn from(e: StructArityError) -> Self {
        crate::error::Error::fatal("schema", e)
    }
}

impl Struct {
    /// A struct from values in the schema's field order.
    pub fn new(schema: Arc<Schema>, values: Vec<Value>) -> Result<Struct, StructArityError> {
        if schema.fields().len() != values.len() {
            return Err(StructArityError {
                schema: schema.name().unwrap_or("<unnamed>").to_owned(),
                expected: schema.fields().len(),
                got: values.len(),
            });
        }
        Ok(Struct(Repr::Owned { schema, values }))
    }

    /// The same struct, its clones sharing one copy of the values (for a struct repeated
    /// in many events; the clones are dropped wherever the events go).
    pub fn shared(self) -> Struct {
        match self.0 {
            Repr::Owned { schema, values } => Struct(Repr::Shared(Arc::new((schema, values)))),
            shared @ Repr::Shared(_) => Struct(shared),
        }
    }

    /// The schema.
    pub fn schema(&self) -> &Arc<Schema> {
        match &self.0 {
            Repr::Owned { schema, .. } => schema,
            Repr::Shared(shared) => &shared.0,
        }
    }

    /// Values in field order.
    pub fn values(&self) -> &[Value] {
        match &self.0 {
            Repr::Owned { values, .. } => values,
            Repr::Shared(shared) => &shared.1,
        }
    }

    /// Consumes the struct into its values (copied if the struct is shared).
    pub fn into_values(self) -> Vec<Value> {
        match self.0 {
            Repr::Owned { values, .. } => values,
            Repr::Shared(shared) => Arc::try_unwrap(shared).map_or_else(|s| s.1.clone(), |s| s.1),
        }
    }

    /// The value of a field by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.schema().field(name).map(|(i, _)| &self.values()[i])
    }

    /// The value at a field position.
    pub fn get_index(&self, index: usize) -> Option<&Value> {
        self.values().get(index)
    }

    /// A struct of the values at `positions`, under `schema` (a row's key, say).
    pub fn project(
        &self,
        schema: Arc<Schema>,
        positions: &[usize],
    ) -> Result<Struct, StructArityError> {
        let values = self.values();
        Struct::new(
            schema,
            positions.iter().map(|&i| values[i].clone()).collect(),
        )
    }
}

impl PartialEq for Struct {
    fn eq(&self, other: &Self) -> bool {
        self.schema() == other.schema() && self.values() == other.values()
    }
}

impl std::fmt::Debug for Struct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Struct")
            .field("schema", self.schema())
            .field("values", &self.values())
            .finish()
    }
}

/// A Decimal's unscaled value (big-endian two's complement, Connect's physical form) in
/// plain notation with `scale` digits after the point, as `BigDecimal.toPlainString`.
pub fn decimal_text(unscaled: &[u8], scale: u32) -> Result<String, String> {
    if unscaled.is_empty() || unscaled.len() > 16 {
        return Err(format!(
            "decimal of {} bytes is outside the supported 1..=16",
            unscaled.len()
        ));
    }
    let fill = if unscaled[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut be = [fill; 16];
    be[16 - unscaled.len()..].copy_from_slice(unscaled);
    let n = i128::from_be_bytes(be);
    let digits = n.unsigned_abs().to_string();
    let scale = scale as usize;
    let mut out = String::with_capacity(digits.len() + scale + 3);
    if n < 0 {
        out.push('-');
    }
    if scale == 0 {
        out.push_str(&digits);
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(&digits);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaType;

    fn bytes_of(v: Value) -> Vec<u8> {
        match v {
            Value::Bytes(b) => b.to_vec(),
            other => panic!("not bytes: {other:?}"),
        }
    }

    #[test]
    fn decimal_bytes_are_minimal_twos_complement() {
        assert_eq!(bytes_of(Value::decimal(0)), vec![0]);
        assert_eq!(bytes_of(Value::decimal(12345)), vec![0x30, 0x39]);
        assert_eq!(bytes_of(Value::decimal(128)), vec![0x00, 0x80]);
        assert_eq!(bytes_of(Value::decimal(-1)), vec![0xff]);
        assert_eq!(bytes_of(Value::decimal(-129)), vec![0xff, 0x7f]);
    }

    #[test]
    fn a_shared_struct_equals_its_owned_form() {
        let schema = Schema::struct_builder()
            .field("a", Schema::required(SchemaType::Int32))
            .field("b", Schema::required(SchemaType::String))
            .build();
        let owned = Struct::new(schema, vec![Value::Int32(1), Value::string("x")]).unwrap();
        let shared = owned.clone().shared();
        let copy = shared.clone();
        assert_eq!(copy, owned);
        assert_eq!(copy.get("b"), Some(&Value::string("x")));
        let key_schema = Schema::struct_builder()
            .field("b", Schema::required(SchemaType::String))
            .build();
        let key = copy.project(key_schema.clone(), &[1]).unwrap();
        assert_eq!(key.values(), &[Value::string("x")]);
        assert!(copy.project(key_schema, &[0, 1]).is_err());
        assert_eq!(shared.into_values(), owned.clone().into_values());
        assert_eq!(copy.into_values(), owned.into_values());
    }

    #[test]
    fn string_from_bytes_rejects_invalid_utf8() {
        assert!(Value::string_from_bytes(Bytes::from_static(b"ok")).is_ok());
        assert!(Value::string_from_bytes(Bytes::from_static(&[0xff, 0xfe])).is_err());
    }
}
