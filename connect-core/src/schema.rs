//! Kafka Connect's schema model, built once per table version and shared by `Arc`.
//!
//! Each [`Schema`] carries its serialised JSON (as Kafka's `JsonConverter` writes a schema),
//! computed once when it is built, so the JSON converter splices it into every event
//! instead of re-serialising it.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::value::Value;

/// Names of Kafka Connect's logical types.
pub mod logical {
    /// `bytes`: big-endian two's-complement unscaled value; parameter `scale`.
    pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
    /// `int32`: days since the Unix epoch.
    pub const DATE: &str = "org.apache.kafka.connect.data.Date";
    /// `int32`: milliseconds since midnight.
    pub const TIME: &str = "org.apache.kafka.connect.data.Time";
    /// `int64`: milliseconds since the Unix epoch.
    pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";

    use super::{Schema, SchemaBuilder, SchemaType};

    /// Debezium's `io.debezium.data.geometry.Geometry`: `wkb` (Well-Known Binary) and
    /// `srid` (optional).
    pub fn geometry() -> SchemaBuilder {
        Schema::struct_builder()
            .name("io.debezium.data.geometry.Geometry")
            .version(1)
            .doc("Geometry")
            .field("wkb", Schema::required(SchemaType::Bytes))
            .field("srid", Schema::optional(SchemaType::Int32))
    }

    /// Debezium's `io.debezium.data.geometry.Point`: `x`, `y`, and optional `wkb`, `srid`.
    pub fn point() -> SchemaBuilder {
        Schema::struct_builder()
            .name("io.debezium.data.geometry.Point")
            .version(1)
            .doc("Geometry (POINT)")
            .field("x", Schema::required(SchemaType::Float64))
            .field("y", Schema::required(SchemaType::Float64))
            .field("wkb", Schema::optional(SchemaType::Bytes))
            .field("srid", Schema::optional(SchemaType::Int32))
    }
}

/// The type of a schema, as Kafka Connect names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaType {
    /// 8-bit signed integer.
    Int8,
    /// 16-bit signed integer.
    Int16,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// 32-bit IEEE float.
    Float32,
    /// 64-bit IEEE float.
    Float64,
    /// true / false.
    Boolean,
    /// UTF-8 text.
    String,
    /// Raw bytes.
    Bytes,
    /// A list of values of one schema.
    Array,
    /// Key/value pairs.
    Map,
    /// Named, ordered fields.
    Struct,
}

impl SchemaType {
    /// The name used in JSON schemas (`"int32"`, `"struct"`, ...).
    pub fn json_name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float",
            SchemaType::Float64 => "double",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array => "array",
            SchemaType::Map => "map",
            SchemaType::Struct => "struct",
        }
    }

    /// Parses a JSON schema type name.
    pub fn from_json_name(name: &str) -> Option<Self> {
        Some(match name {
            "int8" => SchemaType::Int8,
            "int16" => SchemaType::Int16,
            "int32" => SchemaType::Int32,
            "int64" => SchemaType::Int64,
            "float" => SchemaType::Float32,
            "double" => SchemaType::Float64,
            "boolean" => SchemaType::Boolean,
            "string" => SchemaType::String,
            "bytes" => SchemaType::Bytes,
            "array" => SchemaType::Array,
            "map" => SchemaType::Map,
            "struct" => SchemaType::Struct,
            _ => return None,
        })
    }
}

/// A named field of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    name: Arc<str>,
    schema: Arc<Schema>,
    /// `,"<name>":` escaped once, for the JSON writer (without the comma for the first field).
    json_key: Box<[u8]>,
}

impl Field {
    /// The field's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The field's schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// `,"<name>":` as JSON, escaped once when the schema was built.
    pub(crate) fn json_key(&self) -> &[u8] {
        &self.json_key
    }
}

/// An immutable schema with its JSON form cached. Build one with [`SchemaBuilder`].
#[derive(Debug, Clone)]
pub struct Schema {
    def: SchemaBuilder,
    json: Box<str>,
}

impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        // The cached JSON holds every attribute, in a canonical order.
        self.json == other.json
    }
}

impl Schema {
    /// Kafka's `SchemaUtil.copySchemaBasics`: a builder of this schema's type with its
    /// name, version, doc and parameters only (required, no default, no fields), on which
    /// a transform rebuilds a struct's fields.
    pub fn basics(&self) -> SchemaBuilder {
        let mut b = SchemaBuilder::new(self.def.ty);
        b.name = self.def.name.clone();
        b.version = self.def.version;
        b.doc = self.def.doc.clone();
        b.parameters = self.def.parameters.clone();
        b
    }

    /// The schema's type.
    pub fn schema_type(&self) -> SchemaType {
        self.def.ty
    }

    /// Whether null is allowed.
    pub fn is_optional(&self) -> bool {
        self.def.optional
    }

    /// Logical or semantic name (e.g. `io.debezium.time.Date`), or the record name.
    pub fn name(&self) -> Option<&str> {
        self.def.name.as_deref()
    }

    /// Schema version, if set.
    pub fn version(&self) -> Option<i32> {
        self.def.version
    }

    /// Documentation, if set.
    pub fn doc(&self) -> Option<&str> {
        self.def.doc.as_deref()
    }

    /// Parameters in insertion order (e.g. `scale` of a Decimal).
    pub fn parameters(&self) -> &[(Arc<str>, Arc<str>)] {
        &self.def.parameters
    }

    /// The value of one parameter.
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.def
            .parameters
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    /// Default value, if set.
    pub fn default_value(&self) -> Option<&Value> {
        self.def.default.as_ref()
    }

    /// Fields of a struct schema (empty for other types).
    pub fn fields(&self) -> &[Field] {
        &self.def.fields
    }

    /// Position and definition of a struct field by name.
    pub fn field(&self, name: &str) -> Option<(usize, &Field)> {
        self.def
            .fields
            .iter()
            .enumerate()
            .find(|(_, f)| &*f.name == name)
    }

    /// Key schema of a map.
    pub fn key_schema(&self) -> Option<&Arc<Schema>> {
        self.def.key.as_ref()
    }

    /// Value schema of a map, item schema of an array.
    pub fn value_schema(&self) -> Option<&Arc<Schema>> {
        self.def.items.as_ref()
    }

    /// The schema as Kafka's `JsonConverter` writes it, computed once at build time.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Starts a schema of a primitive type (or an empty struct).
    pub fn builder(ty: SchemaType) -> SchemaBuilder {
        SchemaBuilder::new(ty)
    }

    /// Starts a struct schema.
    pub fn struct_builder() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Struct)
    }

    /// Starts an array schema.
    pub fn array_builder(items: Arc<Schema>) -> SchemaBuilder {
        let mut b = SchemaBuilder::new(SchemaType::Array);
        b.items = Some(items);
        b
    }

    /// Starts a map schema.
    pub fn map_builder(key: Arc<Schema>, value: Arc<Schema>) -> SchemaBuilder {
        let mut b = SchemaBuilder::new(SchemaType::Map);
        b.key = Some(key);
        b.items = Some(value);
        b
    }

    /// A required primitive schema.
    pub fn required(ty: SchemaType) -> Arc<Schema> {
        SchemaBuilder::new(ty).build()
    }

    /// An optional primitive schema.
    pub fn optional(ty: SchemaType) -> Arc<Schema> {
        SchemaBuilder::new(ty).optional().build()
    }

    /// A builder holding this schema's definition (to derive a new schema from it).
    pub fn to_builder(&self) -> SchemaBuilder {
        self.def.clone()
    }
}

/// Builds a [`Schema`]; `build()` computes the cached JSON once.
#[derive(Debug, Clone)]
pub struct SchemaBuilder {
    ty: SchemaType,
    optional: bool,
    name: Option<Arc<str>>,
    version: Option<i32>,
    doc: Option<Arc<str>>,
    parameters: Vec<(Arc<str>, Arc<str>)>,
    default: Option<Value>,
    fields: Vec<Field>,
    key: Option<Arc<Schema>>,
    items: Option<Arc<Schema>>,
}

impl SchemaBuilder {
    fn new(ty: SchemaType) -> Self {
        SchemaBuilder {
            ty,
            optional: false,
            name: None,
            version: None,
            doc: None,
            parameters: Vec::new(),
            default: None,
            fields: Vec::new(),
            key: None,
            items: None,
        }
    }

    /// Allows null.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Sets `optional` explicitly.
    pub fn with_optional(mut self, optional: bool) -> Self {
        self.optional = optional;
        self
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the version.
    pub fn version(mut self, version: i32) -> Self {
        self.version = Some(version);
        self
    }

    /// Sets the documentation.
    pub fn doc(mut self, doc: impl Into<Arc<str>>) -> Self {
        self.doc = Some(doc.into());
        self
    }

    /// Adds a parameter (kept in insertion order, as Kafka's builder does).
    pub fn parameter(mut self, key: impl Into<Arc<str>>, value: impl Into<Arc<str>>) -> Self {
        let (key, value) = (key.into(), value.into());
        // A map in Kafka: setting a key again replaces its value in place.
        match self.parameters.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.parameters.push((key, value)),
        }
        self
    }

    /// Sets the default value.
    pub fn default_value(mut self, value: Value) -> Self {
        self.default = Some(value);
        self
    }

    /// Appends a struct field.
    pub fn field(mut self, name: impl Into<Arc<str>>, schema: Arc<Schema>) -> Self {
        let name = name.into();
        let mut json_key = Vec::with_capacity(name.len() + 4);
        json_key.push(b',');
        crate::convert::json::write_str(&mut json_key, &name);
        json_key.push(b':');
        self.fields.push(Field {
            name,
            schema,
            json_key: json_key.into_boxed_slice(),
        });
        self
    }

    /// Finishes the schema and computes its JSON.
    pub fn build(self) -> Arc<Schema> {
        let mut json = String::with_capacity(64);
        write_schema_json(&mut json, &self);
        Arc::new(Schema {
            def: self,
            json: json.into_boxed_str(),
        })
    }
}

/// Writes a schema in `JsonConverter.asJsonSchema` order: type, fields/items/keys, optional,
/// name, version, doc, parameters, default; struct members end with `field`.
fn write_schema_json(out: &mut String, schema: &SchemaBuilder) {
    out.push_str("{\"type\":\"");
    out.push_str(schema.ty.json_name());
    out.push('"');
    match schema.ty {
        SchemaType::Array => {
            out.push_str(",\"items\":");
            out.push_str(&schema.items.as_ref().expect("array schema has items").json);
        }
        SchemaType::Map => {
            out.push_str(",\"keys\":");
            out.push_str(&schema.key.as_ref().expect("map schema has keys").json);
            out.push_str(",\"values\":");
            out.push_str(&schema.items.as_ref().expect("map schema has values").json);
        }
        SchemaType::Struct => {
            out.push_str(",\"fields\":[");
            for (i, f) in schema.fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // The member's cached JSON with `"field":<name>` as its last key.
                let member = &f.schema.json;
                out.push_str(&member[..member.len() - 1]);
                out.push_str(",\"field\":");
                push_json_string(out, &f.name);
                out.push('}');
            }
            out.push(']');
        }
        _ => {}
    }
    out.push_str(if schema.optional {
        ",\"optional\":true"
    } else {
        ",\"optional\":false"
    });
    if let Some(name) = &schema.name {
        out.push_str(",\"name\":");
        push_json_string(out, name);
    }
    if let Some(v) = schema.version {
        let _ = write!(out, ",\"version\":{v}");
    }
    if let Some(doc) = &schema.doc {
        out.push_str(",\"doc\":");
        push_json_string(out, doc);
    }
    if !schema.parameters.is_empty() {
        out.push_str(",\"parameters\":{");
        for (i, (k, v)) in schema.parameters.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_string(out, k);
            out.push(':');
            push_json_string(out, v);
        }
        out.push('}');
    }
    if let Some(default) = &schema.default {
        out.push_str(",\"default\":");
        let mut bytes = Vec::new();
        crate::convert::json::write_value(&mut bytes, None, default);
        out.push_str(&String::from_utf8(bytes).expect("JSON writer emits UTF-8"));
    }
    out.push('}');
}

fn push_json_string(out: &mut String, s: &str) {
    let mut bytes = std::mem::take(out).into_bytes();
    crate::convert::json::write_str(&mut bytes, s);
    *out = String::from_utf8(bytes).expect("JSON writer emits UTF-8");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_json_matches_json_converter_order() {
        let s = Schema::struct_builder()
            .name("srv.public.t.Value")
            .field("id", Schema::required(SchemaType::Int32))
            .field(
                "kind",
                Schema::builder(SchemaType::String)
                    .optional()
                    .name("io.debezium.data.Enum")
                    .version(1)
                    .parameter("allowed", "a,b")
                    .build(),
            )
            .optional()
            .build();
        assert_eq!(
            s.json(),
            r#"{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"a,b"},"field":"kind"}],"optional":true,"name":"srv.public.t.Value"}"#
        );
    }

    #[test]
    fn map_and_array_json() {
        let m = Schema::map_builder(
            Schema::required(SchemaType::String),
            Schema::optional(SchemaType::Int64),
        )
        .build();
        assert_eq!(
            m.json(),
            r#"{"type":"map","keys":{"type":"string","optional":false},"values":{"type":"int64","optional":true},"optional":false}"#
        );
        let a = Schema::array_builder(Schema::required(SchemaType::Float64)).build();
        assert_eq!(
            a.json(),
            r#"{"type":"array","items":{"type":"double","optional":false},"optional":false}"#
        );
    }

    #[test]
    fn default_is_written_with_the_schema() {
        let s = Schema::builder(SchemaType::String)
            .optional()
            .default_value(Value::string("x\"y"))
            .build();
        assert_eq!(
            s.json(),
            r#"{"type":"string","optional":true,"default":"x\"y"}"#
        );
    }
}
