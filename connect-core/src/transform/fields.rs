//! Kafka Connect's field transforms, each in a `$Key` and a `$Value` form: `InsertField`,
//! `ReplaceField`, `MaskField`, `ValueToKey`, `ExtractField`, `HoistField` and
//! `SetSchemaMetadata`. Records with a schema need a struct there; schemaless ones a map
//! with string keys (what the JSON converter reads without schemas). Output schemas are
//! built once per input schema.

use std::collections::HashMap;
use std::sync::Arc;

use super::{transform_error, SchemaCache, Side, Transform};
use crate::error::Error;
use crate::properties::Scope;
use crate::record::Record;
use crate::schema::{logical, Schema, SchemaType};
use crate::value::{Struct, Value};

/// The runtime type of a value, for errors.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int8(_) => "int8",
        Value::Int16(_) => "int16",
        Value::Int32(_) => "int32",
        Value::Int64(_) => "int64",
        Value::Float32(_) => "float32",
        Value::Float64(_) => "float64",
        Value::String(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Struct(_) => "struct",
    }
}

/// The struct on `side` of a record with a schema, as Kafka's `requireStruct`.
pub(crate) fn require_struct<'r>(
    record: &'r Record,
    side: Side,
    purpose: &str,
) -> Result<&'r Struct, Error> {
    match side.value(record) {
        Value::Struct(s) => Ok(s),
        other => Err(transform_error(
            record,
            format!(
                "only a struct is supported for [{purpose}], found: {}",
                type_name(other)
            ),
        )),
    }
}

/// The map on `side` of a schemaless record, as Kafka's `requireMap`.
pub(crate) fn require_map<'r>(
    record: &'r Record,
    side: Side,
    purpose: &str,
) -> Result<&'r [(Value, Value)], Error> {
    match side.value(record) {
        Value::Map(m) => Ok(m),
        other => Err(transform_error(
            record,
            format!(
                "only a map is supported for [{purpose}] without a schema, found: {}",
                type_name(other)
            ),
        )),
    }
}

/// The value of `name` in a schemaless map.
pub(crate) fn map_get<'m>(map: &'m [(Value, Value)], name: &str) -> Option<&'m Value> {
    map.iter()
        .find(|(k, _)| k.as_str() == Some(name))
        .map(|(_, v)| v)
}

/// A struct of `schema` from values known to match its arity.
pub(crate) fn new_struct(schema: Arc<Schema>, values: Vec<Value>) -> Value {
    Value::Struct(Struct::new(schema, values).expect("values built from the schema's fields"))
}

/// A field `InsertField` adds; `name!` is required, `name?` or `name` optional.
#[derive(Debug, Clone)]
struct InsertSpec {
    name: Arc<str>,
    optional: bool,
}

impl InsertSpec {
    fn parse(spec: Option<&str>) -> Option<InsertSpec> {
        let spec = spec?;
        let (name, optional) = match (spec.strip_suffix('!'), spec.strip_suffix('?')) {
            (Some(n), _) => (n, false),
            (_, Some(n)) => (n, true),
            _ => (spec, true),
        };
        Some(InsertSpec {
            name: Arc::from(name),
            optional,
        })
    }
}

/// Kafka's `InsertField$Key` / `$Value`: adds the record's topic, partition, Kafka offset
/// (sink records only), timestamp and a static string. Keys `topic.field`,
/// `partition.field`, `offset.field`, `timestamp.field`, `static.field`, `static.value`.
/// Tombstones pass unchanged.
#[derive(Debug)]
pub struct InsertField {
    side: Side,
    topic: Option<InsertSpec>,
    partition: Option<InsertSpec>,
    offset: Option<InsertSpec>,
    timestamp: Option<InsertSpec>,
    static_field: Option<(InsertSpec, Value)>,
    schemas: SchemaCache,
}

impl InsertField {
    /// Builds from `transforms.<alias>.*`.
    pub fn from_props(side: Side, scope: &Scope<'_>) -> Result<Self, Error> {
        let static_field = InsertSpec::parse(scope.get("static.field"))
            .map(|s| (s, Value::from(scope.get("static.value").unwrap_or(""))));
        let t = InsertField {
            side,
            topic: InsertSpec::parse(scope.get("topic.field")),
            partition: InsertSpec::parse(scope.get("partition.field")),
            offset: InsertSpec::parse(scope.get("offset.field")),
            timestamp: InsertSpec::parse(scope.get("timestamp.field")),
            static_field,
            schemas: SchemaCache::default(),
        };
        // Kafka's `replace.null.with.default` concerns values it does not change here.
        scope.bool_or("replace.null.with.default", true)?;
        if t.inserts().next().is_none() {
            return Err(Error::config(
                scope.key("topic.field"),
                "no field to insert: set one of topic.field, partition.field, offset.field, timestamp.field, static.field",
            ));
        }
        Ok(t)
    }

    fn inserts(&self) -> impl Iterator<Item = (&InsertSpec, SchemaType, Option<&'static str>)> {
        [
            (self.topic.as_ref(), SchemaType::String, None),
            (self.partition.as_ref(), SchemaType::Int32, None),
            (self.offset.as_ref(), SchemaType::Int64, None),
            (
                self.timestamp.as_ref(),
                SchemaType::Int64,
                Some(logical::TIMESTAMP),
            ),
            (
                self.static_field.as_ref().map(|(s, _)| s),
                SchemaType::String,
                None,
            ),
        ]
        .into_iter()
        .filter_map(|(s, ty, name)| s.map(|s| (s, ty, name)))
    }

    fn values(&self, record: &Record) -> Result<Vec<(Arc<str>, Value)>, Error> {
        let mut out = Vec::with_capacity(5);
        if let Some(s) = &self.topic {
            out.push((s.name.clone(), Value::string(&record.topic)));
        }
        if let Some(s) = &self.partition {
            out.push((
                s.name.clone(),
                record.partition.map_or(Value::Null, Value::Int32),
            ));
        }
        if let Some(s) = &self.offset {
            let offset = record.kafka_offset.ok_or_else(|| {
                transform_error(
                    record,
                    "offset.field applies to records read from Kafka (sink connectors) only",
                )
            })?;
            out.push((s.name.clone(), Value::Int64(offset)));
        }
        if let Some(s) = &self.timestamp {
            out.push((
                s.name.clone(),
                record.timestamp_ms.map_or(Value::Null, Value::Int64),
            ));
        }
        if let Some((s, v)) = &self.static_field {
            out.push((s.name.clone(), v.clone()));
        }
        for ((name, value), (spec, _, _)) in out.iter().zip(self.inserts()) {
            if value.is_null() && !spec.optional {
                return Err(transform_error(
                    record,
                    format!("required field `{name}` has no value on this record"),
                ));
            }
        }
        Ok(out)
    }
}

impl Transform for InsertField {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        if self.side.value(&record).is_null() {
            return Ok(Some(record));
        }
        let added = self.values(&record)?;
        match self.side.schema(&record).cloned() {
            None => {
                require_map(&record, self.side, "field insertion")?;
                let (_, value) = self.side.take(&mut record);
                let Value::Map(mut map) = value else {
                    unreachable!("checked above")
                };
                for (name, v) in added {
                    map.retain(|(k, _)| k.as_str() != Some(&name));
                    map.push((Value::string(&name), v));
                }
                self.side.set(&mut record, None, Value::Map(map));
            }
            Some(schema) => {
                require_struct(&record, self.side, "field insertion")?;
                let out = self.schemas.get_or_build(&schema, |s| {
                    let mut b = s.basics();
                    for f in s.fields() {
                        b = b.field(f.name(), f.schema().clone());
                    }
                    for (spec, ty, name) in self.inserts() {
                        let mut field = Schema::builder(ty).with_optional(spec.optional);
                        if let Some(name) = name {
                            field = field.name(name).version(1);
                        }
                        b = b.field(spec.name.clone(), field.build());
                    }
                    b.build()
                });
                let (_, value) = self.side.take(&mut record);
                let Value::Struct(row) = value else {
                    unreachable!("checked above")
                };
                let mut values = row.into_values();
                values.extend(added.into_iter().map(|(_, v)| v));
                self.side
                    .set(&mut record, Some(out.clone()), new_struct(out, values));
            }
        }
        Ok(Some(record))
    }
}

/// Kafka's `ReplaceField$Key` / `$Value`: keeps `include` (all when empty), drops
/// `exclude`, renames `renames` (`old:new,...`). The older `whitelist` / `blacklist`
/// names are accepted.
#[derive(Debug)]
pub struct ReplaceField {
    side: Side,
    include: Vec<String>,
    exclude: Vec<String>,
    renames: HashMap<String, String>,
    schemas: SchemaCache,
}

impl ReplaceField {
    /// Builds from `transforms.<alias>.*`.
    pub fn from_props(side: Side, scope: &Scope<'_>) -> Result<Self, Error> {
        let list = |name: &str, old: &str| {
            let mut v = scope.list(name);
            v.extend(scope.list(old));
            v.into_iter().map(str::to_owned).collect::<Vec<_>>()
        };
        let mut renames = HashMap::new();
        for pair in scope.list("renames") {
            let (from, to) = pair
                .split_once(':')
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .ok_or_else(|| {
                    Error::config(
                        scope.key("renames"),
                        format!("invalid rename `{pair}`: expected old:new"),
                    )
                })?;
            renames.insert(from.to_owned(), to.to_owned());
        }
        scope.bool_or("replace.null.with.default", true)?;
        Ok(ReplaceField {
            side,
            include: list("include", "whitelist"),
            exclude: list("exclude", "blacklist"),
            renames,
            schemas: SchemaCache::default(),
        })
    }

    fn kept(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name)
            && (self.include.is_empty() || self.include.iter().any(|i| i == name))
    }

    fn output_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.renames.get(name).map_or(name, String::as_str)
    }
}

impl Transform for ReplaceField {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        if self.side.value(&record).is_null() {
            return Ok(Some(record));
        }
        match self.side.schema(&record).cloned() {
            None => {
                require_map(&record, self.side, "field replacement")?;
                let (_, value) = self.side.take(&mut record);
                let Value::Map(map) = value else {
                    unreachable!("checked above")
                };
                let map = map
                    .into_iter()
                    .filter_map(|(k, v)| {
                        let name = k.as_str()?;
                        self.kept(name)
                            .then(|| (Value::string(self.output_name(name)), v))
                    })
                    .collect();
                self.side.set(&mut record, None, Value::Map(map));
            }
            Some(schema) => {
                require_struct(&record, self.side, "field replacement")?;
                let out = self.schemas.get_or_build(&schema, |s| {
                    let mut b = s.basics();
                    for f in s.fields().iter().filter(|f| self.kept(f.name())) {
                        b = b.field(self.output_name(f.name()), f.schema().clone());
                    }
                    b.build()
                });
                let (_, value) = self.side.take(&mut record);
                let Value::Struct(row) = value else {
                    unreachable!("checked above")
                };
                let values = schema
                    .fields()
                    .iter()
                    .zip(row.into_values())
                    .filter(|(f, _)| self.kept(f.name()))
                    .map(|(_, v)| v)
                    .collect();
                self.side
                    .set(&mut record, Some(out.clone()), new_struct(out, values));
            }
        }
        Ok(Some(record))
    }
}

/// Kafka's `MaskField$Key` / `$Value`: replaces `fields` by `replacement` (parsed as the
/// field's type) or, without one, by the type's empty value (0, false, "", empty bytes,
/// the epoch for dates and times, an empty array or map).
#[derive(Debug)]
pub struct MaskField {
    side: Side,
    fields: Vec<String>,
    replacement: Option<String>,
}

impl MaskField {
    /// Builds from `transforms.<alias>.*`.
    pub fn from_props(side: Side, scope: &Scope<'_>) -> Result<Self, Error> {
        let fields = scope.require_list("fields")?;
        scope.bool_or("replace.null.with.default", true)?;
        Ok(MaskField {
            side,
            fields,
            replacement: scope.get("replacement").map(str::to_owned),
        })
    }

    fn masked(&self, record: &Record, name: &str, value: &Value) -> Result<Value, Error> {
        let Some(replacement) = &self.replacement else {
            return Ok(empty_of(value));
        };
        let bad = || {
            transform_error(
                record,
                format!(
                    "cannot mask field `{name}` of type {} with `{replacement}`",
                    type_name(value)
                ),
            )
        };
        let r = replacement.trim();
        Ok(match value {
            Value::Boolean(_) => Value::Boolean(r.eq_ignore_ascii_case("true")),
            Value::Int8(_) => Value::Int8(r.parse().map_err(|_| bad())?),
            Value::Int16(_) => Value::Int16(r.parse().map_err(|_| bad())?),
            Value::Int32(_) => Value::Int32(r.parse().map_err(|_| bad())?),
            Value::Int64(_) => Value::Int64(r.parse().map_err(|_| bad())?),
            Value::Float32(_) => Value::Float32(r.parse().map_err(|_| bad())?),
            Value::Float64(_) => Value::Float64(r.parse().map_err(|_| bad())?),
            Value::String(_) => Value::string(replacement),
            _ => return Err(bad()),
        })
    }
}

/// The "empty" value of a value's type, what `MaskField` writes without a replacement.
fn empty_of(value: &Value) -> Value {
    match value {
        Value::Boolean(_) => Value::Boolean(false),
        Value::Int8(_) => Value::Int8(0),
        Value::Int16(_) => Value::Int16(0),
        Value::Int32(_) => Value::Int32(0),
        Value::Int64(_) => Value::Int64(0),
        Value::Float32(_) => Value::Float32(0.0),
        Value::Float64(_) => Value::Float64(0.0),
        Value::String(_) => Value::static_str(""),
        Value::Bytes(_) => Value::Bytes(bytes::Bytes::new()),
        Value::Array(_) => Value::Array(Vec::new()),
        Value::Map(_) => Value::Map(Vec::new()),
        Value::Null | Value::Struct(_) => value.clone(),
    }
}

impl Transform for MaskField {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        if self.side.value(&record).is_null() {
            return Ok(Some(record));
        }
        let schemaless = self.side.schema(&record).is_none();
        if schemaless {
            require_map(&record, self.side, "masking fields")?;
        } else {
            require_struct(&record, self.side, "masking fields")?;
        }
        let (schema, value) = self.side.take(&mut record);
        let masked = match value {
            Value::Map(mut map) => {
                for (k, v) in map.iter_mut() {
                    if let Some(name) = k.as_str().filter(|n| self.fields.iter().any(|f| f == n)) {
                        *v = self.masked(&record, name, v)?;
                    }
                }
                Value::Map(map)
            }
            Value::Struct(row) => {
                let row_schema = row.schema().clone();
                let mut values = row.into_values();
                for f in &self.fields {
                    let (i, field) = row_schema.field(f).ok_or_else(|| {
                        transform_error(&record, format!("field `{f}` does not exist"))
                    })?;
                    values[i] = if values[i].is_null() {
                        Value::Null
                    } else if field.schema().name() == Some(logical::DECIMAL)
                        && self.replacement.is_none()
                    {
                        Value::decimal(0)
                    } else {
                        self.masked(&record, f, &values[i])?
                    };
                }
                new_struct(row_schema, values)
            }
            _ => unreachable!("checked above"),
        };
        self.side.set(&mut record, schema, masked);
        Ok(Some(record))
    }
}

/// Kafka's `ValueToKey`: the key becomes a struct (or map) of the value's `fields`.
#[derive(Debug)]
pub struct ValueToKey {
    fields: Vec<String>,
    schemas: SchemaCache,
}

impl ValueToKey {
    /// Builds from `transforms.<alias>.fields`.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        let fields = scope.require_list("fields")?;
        scope.bool_or("replace.null.with.default", true)?;
        Ok(ValueToKey {
            fields,
            schemas: SchemaCache::default(),
        })
    }
}

impl Transform for ValueToKey {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        let missing = |record: &Record, f: &str| {
            transform_error(record, format!("field `{f}` does not exist in the value"))
        };
        match record.value_schema.clone() {
            None => {
                let map = require_map(&record, Side::Value, "copying fields from value to key")?;
                let key = self
                    .fields
                    .iter()
                    .map(|f| {
                        map_get(map, f)
                            .map(|v| (Value::string(f), v.clone()))
                            .ok_or_else(|| missing(&record, f))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                record.key_schema = None;
                record.key = Value::Map(key);
            }
            Some(schema) => {
                let row = require_struct(&record, Side::Value, "copying fields from value to key")?;
                let key_schema = self.schemas.get_or_try(&schema, |s| {
                    let mut b = Schema::struct_builder();
                    for f in &self.fields {
                        let (_, field) = s.field(f).ok_or_else(|| missing(&record, f))?;
                        b = b.field(field.name(), field.schema().clone());
                    }
                    Ok::<_, Error>(b.build())
                })?;
                let values = self
                    .fields
                    .iter()
                    .map(|f| row.get(f).cloned().unwrap_or_default())
                    .collect();
                record.key = new_struct(key_schema.clone(), values);
                record.key_schema = Some(key_schema);
            }
        }
        Ok(Some(record))
    }
}

/// Kafka's `ExtractField$Key` / `$Value`: replaces the struct (or map) by one of its
/// fields; with `field.syntax.version=V2`, a dotted path into nested structs.
#[derive(Debug)]
pub struct ExtractField {
    side: Side,
    path: Vec<String>,
}

impl ExtractField {
    /// Builds from `transforms.<alias>.field` and `.field.syntax.version`.
    pub fn from_props(side: Side, scope: &Scope<'_>) -> Result<Self, Error> {
        let field = scope.require("field")?;
        let version = scope.one_of("field.syntax.version", &["V1", "V2"], "V1")?;
        scope.bool_or("replace.null.with.default", true)?;
        let path = if version == "V2" {
            field.split('.').map(str::to_owned).collect()
        } else {
            vec![field.to_owned()]
        };
        Ok(ExtractField { side, path })
    }
}

impl Transform for ExtractField {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        let (schema, value) = match self.side.schema(&record) {
            None => {
                let mut v = self.side.value(&record);
                for step in &self.path {
                    v = match v {
                        Value::Map(m) => map_get(m, step).unwrap_or(&Value::Null),
                        Value::Null => &Value::Null,
                        other => {
                            return Err(transform_error(
                                &record,
                                format!(
                                    "only a map is supported for [field extraction] without a schema, found: {}",
                                    type_name(other)
                                ),
                            ))
                        }
                    };
                }
                (None, v.clone())
            }
            Some(schema) => {
                let mut s = schema;
                let mut v = self.side.value(&record);
                for step in &self.path {
                    let Some((i, field)) = s.field(step) else {
                        return Err(transform_error(&record, format!("unknown field: {step}")));
                    };
                    s = field.schema();
                    v = match v {
                        Value::Struct(row) => &row.values()[i],
                        _ => &Value::Null,
                    };
                }
                (Some(s.clone()), v.clone())
            }
        };
        self.side.set(&mut record, schema, value);
        Ok(Some(record))
    }
}

/// Kafka's `HoistField$Key` / `$Value`: wraps the whole key or value in a struct (or map)
/// with the single field `field`.
#[derive(Debug)]
pub struct HoistField {
    side: Side,
    field: Arc<str>,
    schemas: SchemaCache,
}

impl HoistField {
    /// Builds from `transforms.<alias>.field`.
    pub fn from_props(side: Side, scope: &Scope<'_>) -> Result<Self, Error> {
        Ok(HoistField {
            side,
            field: Arc::from(scope.require("field")?),
            schemas: SchemaCache::default(),
        })
    }
}

impl Transform for HoistField {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        let (schema, value) = self.side.take(&mut record);
        match schema {
            None => {
                let map = Value::Map(vec![(Value::string(&self.field), value)]);
                self.side.set(&mut record, None, map);
            }
            Some(schema) => {
                let out = self.schemas.get_or_build(&schema, |s| {
                    Schema::struct_builder()
                        .field(self.field.clone(), s.clone())
                        .build()
                });
                self.side
                    .set(&mut record, Some(out.clone()), new_struct(out, vec![value]));
            }
        }
        Ok(Some(record))
    }
}

/// Kafka's `SetSchemaMetadata$Key` / `$Value`: sets the schema's `schema.name` and/or
/// `schema.version` (the struct value is re-bound to the new schema).
#[derive(Debug)]
pub struct SetSchemaMetadata {
    side: Side,
    name: Option<Arc<str>>,
    version: Option<i32>,
    schemas: SchemaCache,
}

impl SetSchemaMetadata {
    /// Builds from `transforms.<alias>.schema.name` / `.schema.version`.
    pub fn from_props(side: Side, scope: &Scope<'_>) -> Result<Self, Error> {
        let name = scope.get("schema.name").map(Arc::from);
        let version = match scope.get("schema.version") {
            None => None,
            Some(_) => Some(scope.parse_or("schema.version", 0)?),
        };
        if name.is_none() && version.is_none() {
            return Err(Error::config(
                scope.key("schema.name"),
                "set schema.name or schema.version (or both)",
            ));
        }
        scope.bool_or("replace.null.with.default", true)?;
        Ok(SetSchemaMetadata {
            side,
            name,
            version,
            schemas: SchemaCache::default(),
        })
    }
}

impl Transform for SetSchemaMetadata {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        let Some(schema) = self.side.schema(&record).cloned() else {
            return Err(transform_error(
                &record,
                "SetSchemaMetadata needs a schema on the record",
            ));
        };
        let out = self.schemas.get_or_build(&schema, |s| {
            let mut b = s.to_builder();
            if let Some(name) = &self.name {
                b = b.name(name.clone());
            }
            if let Some(version) = self.version {
                b = b.version(version);
            }
            b.build()
        });
        let (_, value) = self.side.take(&mut record);
        let value = match value {
            Value::Struct(row) => new_struct(out.clone(), row.into_values()),
            other => other,
        };
        self.side.set(&mut record, Some(out), value);
        Ok(Some(record))
    }
}
