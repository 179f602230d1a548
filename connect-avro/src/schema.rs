//! Connect schemas to Avro schemas and back, with Confluent's `AvroData` conventions so
//! that Confluent's AvroConverter reads what we write and we read what it writes:
//! records named after the Connect name (split into namespace and name; unnamed structs
//! are `io.confluent.connect.avro.ConnectDefault`), optional schemas as unions with
//! `null`, `int8`/`int16` as `int` with `connect.type`, the Connect name, version, doc and
//! parameters kept as `connect.*` properties, maps with non-string keys as arrays of
//! `MapEntry` records, and the logical types `decimal`, `date`, `time-millis` and
//! `timestamp-millis` for Connect's, `time-micros` and `timestamp-micros` for Debezium's
//! `MicroTime` and `MicroTimestamp` (which keep their `connect.name`).

use std::collections::HashSet;
use std::sync::Arc;

use connect_core::schema::logical;
use connect_core::{Schema, SchemaBuilder, SchemaType, Value};
use serde_json::{json, Map, Value as Json};

/// Confluent's namespace for the records it names itself.
pub const CONNECT_NAMESPACE: &str = "io.confluent.connect.avro";
const MICRO_TIME: &str = "io.debezium.time.MicroTime";
const MICRO_TIMESTAMP: &str = "io.debezium.time.MicroTimestamp";
/// Decimal precision Confluent assumes when the schema does not give one.
const DEFAULT_DECIMAL_PRECISION: &str = "64";

/// The Avro schema (as JSON) of a Connect schema.
pub fn to_avro(schema: &Schema) -> Json {
    let mut names = Names::default();
    names.schema(schema, true)
}

/// Record names already defined (Avro defines each once, then refers to it by name),
/// and the count of unnamed structs.
#[derive(Default)]
struct Names {
    defined: HashSet<String>,
    unnamed: usize,
}

impl Names {
    /// The schema, in a union with `null` when optional (`with_optional`).
    fn schema(&mut self, schema: &Schema, with_optional: bool) -> Json {
        let base = self.base(schema);
        if !(with_optional && schema.is_optional()) {
            return base;
        }
        match schema.default_value() {
            Some(d) if !d.is_null() => json!([base, "null"]),
            _ => json!(["null", base]),
        }
    }

    fn base(&mut self, schema: &Schema) -> Json {
        let name = schema.name();
        let mut props = Map::new();
        let ty = match schema.schema_type() {
            SchemaType::Int8 | SchemaType::Int16 => {
                props.insert(
                    "connect.type".into(),
                    json!(schema.schema_type().json_name()),
                );
                "int"
            }
            SchemaType::Int32 => {
                match name {
                    Some(logical::DATE) => props.insert("logicalType".into(), json!("date")),
                    Some(logical::TIME) => props.insert("logicalType".into(), json!("time-millis")),
                    _ => None,
                };
                "int"
            }
            SchemaType::Int64 => {
                let logical_type = match name {
                    Some(logical::TIMESTAMP) => Some("timestamp-millis"),
                    Some(MICRO_TIMESTAMP) => Some("timestamp-micros"),
                    Some(MICRO_TIME) => Some("time-micros"),
                    _ => None,
                };
                if let Some(l) = logical_type {
                    props.insert("logicalType".into(), json!(l));
                }
                "long"
            }
            SchemaType::Float32 => "float",
            SchemaType::Float64 => "double",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => {
                if name == Some(logical::DECIMAL) {
                    let scale: i64 = schema
                        .parameter("scale")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let precision: i64 = schema
                        .parameter("connect.decimal.precision")
                        .unwrap_or(DEFAULT_DECIMAL_PRECISION)
                        .parse()
                        .unwrap_or(64);
                    props.insert("scale".into(), json!(scale));
                    props.insert("precision".into(), json!(precision));
                    props.insert("logicalType".into(), json!("decimal"));
                }
                "bytes"
            }
            SchemaType::Array => {
                let items = self.schema(schema.value_schema().expect("array items"), true);
                return self.with_connect_props(
                    json!({"type": "array", "items": items}),
                    schema,
                    false,
                );
            }
            SchemaType::Map => {
                let key = schema.key_schema().expect("map keys");
                let value = schema.value_schema().expect("map values");
                if key.schema_type() == SchemaType::String && !key.is_optional() {
                    let values = self.schema(value, true);
                    return self.with_connect_props(
                        json!({"type": "map", "values": values}),
                        schema,
                        false,
                    );
                }
                let entry = self.entry_record(key, value);
                return self.with_connect_props(
                    json!({"type": "array", "items": entry}),
                    schema,
                    false,
                );
            }
            SchemaType::Struct => return self.record(schema),
        };
        let mut out = Map::new();
        out.insert("type".into(), json!(ty));
        out.extend(props);
        let out = Json::Object(out);
        self.with_connect_props(out, schema, true)
    }

    /// Adds `connect.doc`, `connect.version`, `connect.parameters` and `connect.name`; a
    /// primitive with none of them stays a bare type name.
    fn with_connect_props(&mut self, mut avro: Json, schema: &Schema, primitive: bool) -> Json {
        let obj = avro.as_object_mut().expect("schema objects");
        if let Some(doc) = schema.doc() {
            obj.insert("connect.doc".into(), json!(doc));
        }
        if let Some(v) = schema.version() {
            obj.insert("connect.version".into(), json!(v));
        }
        if !schema.parameters().is_empty() {
            let params: Map<String, Json> = schema
                .parameters()
                .iter()
                .map(|(k, v)| (k.to_string(), json!(&**v)))
                .collect();
            obj.insert("connect.parameters".into(), Json::Object(params));
        }
        if let Some(name) = schema.name() {
            obj.insert("connect.name".into(), json!(name));
        }
        if primitive && obj.len() == 1 {
            return obj.remove("type").expect("type");
        }
        avro
    }

    fn record(&mut self, schema: &Schema) -> Json {
        let full = match schema.name() {
            Some(n) => n.to_owned(),
            None => {
                self.unnamed += 1;
                match self.unnamed {
                    1 => format!("{CONNECT_NAMESPACE}.ConnectDefault"),
                    n => format!("{CONNECT_NAMESPACE}.ConnectDefault{n}"),
                }
            }
        };
        if !self.defined.insert(full.clone()) {
            return json!(full);
        }
        let (namespace, name) = match full.rsplit_once('.') {
            Some((ns, n)) => (Some(ns), n),
            None => (None, full.as_str()),
        };
        let fields: Vec<Json> = schema
            .fields()
            .iter()
            .map(|f| {
                let mut field = Map::new();
                field.insert("name".into(), json!(f.name()));
                field.insert("type".into(), self.schema(f.schema(), true));
                match f.schema().default_value() {
                    Some(d) => {
                        if let Some(d) = default_json(d) {
                            field.insert("default".into(), d);
                        }
                    }
                    None if f.schema().is_optional() => {
                        field.insert("default".into(), Json::Null);
                    }
                    None => {}
                }
                Json::Object(field)
            })
            .collect();
        let mut out = Map::new();
        out.insert("type".into(), json!("record"));
        out.insert("name".into(), json!(name));
        if let Some(ns) = namespace {
            out.insert("namespace".into(), json!(ns));
        }
        out.insert("fields".into(), Json::Array(fields));
        self.with_connect_props(Json::Object(out), schema, false)
    }

    fn entry_record(&mut self, key: &Arc<Schema>, value: &Arc<Schema>) -> Json {
        let full = format!("{CONNECT_NAMESPACE}.MapEntry");
        if !self.defined.insert(full.clone()) {
            return json!(full);
        }
        json!({
            "type": "record",
            "name": "MapEntry",
            "namespace": CONNECT_NAMESPACE,
            "fields": [
                {"name": "key", "type": self.schema(key, true)},
                {"name": "value", "type": self.schema(value, true)},
            ],
        })
    }
}

/// A default value in Avro's JSON encoding (for the types that have one).
fn default_json(value: &Value) -> Option<Json> {
    Some(match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => json!(b),
        Value::Int8(v) => json!(v),
        Value::Int16(v) => json!(v),
        Value::Int32(v) => json!(v),
        Value::Int64(v) => json!(v),
        Value::Float32(v) => json!(v),
        Value::Float64(v) => json!(v),
        Value::String(s) => json!(&**s),
        // Avro writes bytes defaults as a string of the byte values as code points.
        Value::Bytes(b) => json!(b.iter().map(|&c| char::from(c)).collect::<String>()),
        _ => return None,
    })
}

/// Records defined so far in a schema being read, by full name.
type Named = std::collections::HashMap<String, Arc<Schema>>;

/// A map's key and value schemas.
type MapTypes = (Arc<Schema>, Arc<Schema>);

/// An Avro schema (JSON) that cannot be read as a Connect schema.
#[derive(Debug, thiserror::Error)]
#[error("Avro schema not convertible to Connect: {0}")]
pub struct UnsupportedAvro(pub String);

/// The Connect schema of an Avro schema (as JSON), reading back the `connect.*`
/// properties.
pub fn to_connect(avro: &Json) -> Result<Arc<Schema>, UnsupportedAvro> {
    connect_of(avro, None, &mut Named::new())
}

fn connect_of(
    avro: &Json,
    namespace: Option<&str>,
    named: &mut Named,
) -> Result<Arc<Schema>, UnsupportedAvro> {
    match avro {
        Json::String(name) => primitive(name, &Map::new())
            .map(SchemaBuilder::build)
            .or_else(|| {
                let full = qualify(name, namespace);
                named.get(&full).or_else(|| named.get(name)).cloned()
            })
            .ok_or_else(|| UnsupportedAvro(format!("unknown type `{name}`"))),
        Json::Array(branches) => {
            let non_null: Vec<&Json> = branches
                .iter()
                .filter(|b| b.as_str() != Some("null"))
                .collect();
            match (non_null.as_slice(), branches.len()) {
                ([one], 2) => {
                    let inner = connect_of(one, namespace, named)?;
                    Ok(inner.to_builder().optional().build())
                }
                ([one], 1) => connect_of(one, namespace, named),
                _ => Err(UnsupportedAvro(format!(
                    "union {avro} (only a type with null is supported)"
                ))),
            }
        }
        Json::Object(obj) => {
            let ty = obj
                .get("type")
                .ok_or_else(|| UnsupportedAvro(format!("{avro} has no type")))?;
            let builder = match ty.as_str() {
                Some("record") => return record(obj, namespace, named),
                Some("array") => {
                    let items = obj
                        .get("items")
                        .ok_or_else(|| UnsupportedAvro("array without items".into()))?;
                    if let Some(entry) = map_entry(items, namespace, named)? {
                        Schema::map_builder(entry.0, entry.1)
                    } else {
                        Schema::array_builder(connect_of(items, namespace, named)?)
                    }
                }
                Some("map") => {
                    let values = obj
                        .get("values")
                        .ok_or_else(|| UnsupportedAvro("map without values".into()))?;
                    Schema::map_builder(
                        Schema::required(SchemaType::String),
                        connect_of(values, namespace, named)?,
                    )
                }
                Some("enum") => Schema::builder(SchemaType::String),
                Some("fixed") => Schema::builder(SchemaType::Bytes),
                Some(p) => primitive(p, obj)
                    .ok_or_else(|| UnsupportedAvro(format!("unknown type `{p}`")))?,
                None => {
                    // A nested type definition: {"type": {...}}.
                    return connect_of(ty, namespace, named);
                }
            };
            Ok(connect_props(builder, obj).build())
        }
        other => Err(UnsupportedAvro(format!("unexpected schema {other}"))),
    }
}

/// A primitive (with its logical type or `connect.type`), or `None` for a named type.
fn primitive(name: &str, obj: &Map<String, Json>) -> Option<SchemaBuilder> {
    let logical_type = obj.get("logicalType").and_then(Json::as_str);
    let connect_type = obj.get("connect.type").and_then(Json::as_str);
    Some(match name {
        "null" => return None,
        "boolean" => Schema::builder(SchemaType::Boolean),
        "int" => match (connect_type, logical_type) {
            (Some("int8"), _) => Schema::builder(SchemaType::Int8),
            (Some("int16"), _) => Schema::builder(SchemaType::Int16),
            (_, Some("date")) => Schema::builder(SchemaType::Int32)
                .name(logical::DATE)
                .version(1),
            (_, Some("time-millis")) => Schema::builder(SchemaType::Int32)
                .name(logical::TIME)
                .version(1),
            _ => Schema::builder(SchemaType::Int32),
        },
        "long" => match logical_type {
            Some("timestamp-millis") => Schema::builder(SchemaType::Int64)
                .name(logical::TIMESTAMP)
                .version(1),
            _ => Schema::builder(SchemaType::Int64),
        },
        "float" => Schema::builder(SchemaType::Float32),
        "double" => Schema::builder(SchemaType::Float64),
        "string" => Schema::builder(SchemaType::String),
        "bytes" => match logical_type {
            Some("decimal") => {
                let scale = obj.get("scale").and_then(Json::as_i64).unwrap_or(0);
                Schema::builder(SchemaType::Bytes)
                    .name(logical::DECIMAL)
                    .version(1)
                    .parameter("scale", scale.to_string())
            }
            _ => Schema::builder(SchemaType::Bytes),
        },
        _ => return None,
    })
}

/// Applies the `connect.*` properties Confluent writes (they win over the logical type's
/// defaults, so a round trip gives the Connect schema back).
fn connect_props(mut b: SchemaBuilder, obj: &Map<String, Json>) -> SchemaBuilder {
    if let Some(name) = obj.get("connect.name").and_then(Json::as_str) {
        b = b.name(name);
    }
    if let Some(v) = obj.get("connect.version").and_then(Json::as_i64) {
        b = b.version(v as i32);
    }
    if let Some(doc) = obj.get("connect.doc").and_then(Json::as_str) {
        b = b.doc(doc);
    }
    if let Some(params) = obj.get("connect.parameters").and_then(Json::as_object) {
        for (k, v) in params {
            if let Some(v) = v.as_str() {
                b = b.parameter(k.as_str(), v);
            }
        }
    }
    b
}

fn qualify(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !name.contains('.') => format!("{ns}.{name}"),
        _ => name.to_owned(),
    }
}

fn record(
    obj: &Map<String, Json>,
    namespace: Option<&str>,
    named: &mut Named,
) -> Result<Arc<Schema>, UnsupportedAvro> {
    let name = obj
        .get("name")
        .and_then(Json::as_str)
        .ok_or_else(|| UnsupportedAvro("record without a name".into()))?;
    let ns = obj.get("namespace").and_then(Json::as_str).or(namespace);
    let full = qualify(name, ns);
    let ns = full.rsplit_once('.').map(|(ns, _)| ns.to_owned());
    let mut b = Schema::struct_builder();
    let unnamed = full.starts_with(&format!("{CONNECT_NAMESPACE}.ConnectDefault"));
    if !unnamed {
        b = b.name(full.as_str());
    }
    let fields = obj
        .get("fields")
        .and_then(Json::as_array)
        .ok_or_else(|| UnsupportedAvro(format!("record `{full}` has no fields")))?;
    for f in fields {
        let fname = f
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| UnsupportedAvro(format!("a field of `{full}` has no name")))?;
        let ftype = f
            .get("type")
            .ok_or_else(|| UnsupportedAvro(format!("field `{fname}` has no type")))?;
        let mut schema = connect_of(ftype, ns.as_deref(), named)?;
        if let Some(default) = f.get("default").filter(|d| !d.is_null()) {
            if let Some(v) = default_value(&schema, default) {
                schema = schema.to_builder().default_value(v).build();
            }
        }
        b = b.field(fname, schema);
    }
    let schema = connect_props(b, obj).build();
    named.insert(full, schema.clone());
    Ok(schema)
}

/// A record field's array of key/value `MapEntry` records: Confluent's map with
/// non-string keys.
fn map_entry(
    items: &Json,
    namespace: Option<&str>,
    named: &mut Named,
) -> Result<Option<MapTypes>, UnsupportedAvro> {
    let is_entry = items.get("name").and_then(Json::as_str) == Some("MapEntry")
        && items.get("namespace").and_then(Json::as_str) == Some(CONNECT_NAMESPACE);
    if !is_entry {
        return Ok(None);
    }
    let fields = items.get("fields").and_then(Json::as_array);
    let field = |n: &str| {
        fields
            .and_then(|fs| {
                fs.iter()
                    .find(|f| f.get("name").and_then(Json::as_str) == Some(n))
            })
            .and_then(|f| f.get("type"))
            .ok_or_else(|| UnsupportedAvro(format!("MapEntry without `{n}`")))
    };
    let key = connect_of(field("key")?, namespace, named)?;
    let value = connect_of(field("value")?, namespace, named)?;
    Ok(Some((key, value)))
}

/// A field default from Avro's JSON encoding.
fn default_value(schema: &Schema, json: &Json) -> Option<Value> {
    Some(match (schema.schema_type(), json) {
        (SchemaType::Boolean, Json::Bool(b)) => Value::Boolean(*b),
        (SchemaType::Int8, Json::Number(n)) => Value::Int8(n.as_i64()? as i8),
        (SchemaType::Int16, Json::Number(n)) => Value::Int16(n.as_i64()? as i16),
        (SchemaType::Int32, Json::Number(n)) => Value::Int32(n.as_i64()? as i32),
        (SchemaType::Int64, Json::Number(n)) => Value::Int64(n.as_i64()?),
        (SchemaType::Float32, Json::Number(n)) => Value::Float32(n.as_f64()? as f32),
        (SchemaType::Float64, Json::Number(n)) => Value::Float64(n.as_f64()?),
        (SchemaType::String, Json::String(s)) => Value::string(s),
        (SchemaType::Bytes, Json::String(s)) => Value::Bytes(
            s.chars()
                .map(|c| c as u32 as u8)
                .collect::<Vec<u8>>()
                .into(),
        ),
        _ => return None,
    })
}
